//! The synchronization types gonext's lock-free kernels are written against: std's in every
//! ordinary build, [loom](https://docs.rs/loom)'s under `--cfg loom`, so that the loom models
//! (the `loom` test modules beside each kernel) check the very code that ships.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p gonext --lib --release loom::
//! ```
//!
//! Only what a model reaches goes through here: the cleanup lists, nodes and block pool,
//! `unique`'s counters, `TreiberStack` and `HazardStack`, the state of channels and
//! `WaitGroup`, the scope pool's queues and worker hand-off, a task result slot's state and
//! waker hand-off and its blocks' counts, and a bubble's lock, condition variable and
//! per-thread pending work (its parker uses loom's threads directly). Everything else keeps
//! std's types, whose `const` constructors loom's lack.

#[cfg(not(loom))]
pub(crate) use std::{
    alloc::{alloc, dealloc},
    cell::Cell,
    hint::spin_loop,
    sync::{Arc, Condvar, Mutex, MutexGuard, atomic},
    thread::yield_now,
};

#[cfg(loom)]
pub(crate) use loom::{
    alloc::{alloc, dealloc},
    cell::{Cell, UnsafeCell},
    hint::spin_loop,
    sync::{Arc, Condvar, Mutex, MutexGuard, atomic},
    thread::yield_now,
};

/// std's `UnsafeCell` with loom's closure API, so that loom can check every access.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A `const fn` in ordinary builds, a plain `fn` under loom (whose types have no `const`
/// constructors).
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident() -> $ret:ty $body:block) => {
        $(#[$attr])*
        #[cfg(not(loom))]
        $vis const fn $name() -> $ret $body

        $(#[$attr])*
        #[cfg(loom)]
        $vis fn $name() -> $ret $body
    };
}

/// A `static` of a shim type: a plain static in ordinary builds, a loom `lazy_static` (one
/// per model execution) under loom.
macro_rules! shim_static {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        $(#[$attr])*
        #[cfg(not(loom))]
        static $name: $t = $init;

        #[cfg(loom)]
        ::loom::lazy_static! {
            $(#[$attr])*
            static ref $name: $t = $init;
        }
    };
}

/// A `thread_local!` with a `const` initializer in ordinary builds, loom's per-model-thread
/// one under loom (all of loom's threads share one OS thread).
macro_rules! shim_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        #[cfg(not(loom))]
        std::thread_local! {
            $(#[$attr])*
            static $name: $t = const { $init };
        }

        #[cfg(loom)]
        ::loom::thread_local! {
            $(#[$attr])*
            static $name: $t = $init;
        }
    };
}

pub(crate) use {const_fn, shim_static, shim_thread_local};
