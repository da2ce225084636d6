//! Go's newest concurrency features, for Rust.
//!
//! `gonext` brings the concurrency features that Go shipped or proposed in 1.23–1.25 to
//! Rust, and turns Go's "language-level" sketches into real syntax through macros. Each
//! feature lives in one module that names the Go feature it mirrors; items that behave
//! differently from Go say so in a `# Differences from Go` section.
//!
//! | Go feature (proposal)                         | gonext                                                |
//! |-----------------------------------------------|-------------------------------------------------------|
//! | range-over-func, `iter.Seq` (#61897, #61405)  | `#[generator]` fns, `seq!{}`, `Seq` push iterators   |
//! | `iter.Pull` coroutines                        | `iter::pull`                                          |
//! | async generators (none in Go)                 | `stream!{}` → `futures::Stream`                      |
//! | `testing/synctest` (#67434)                   | `#[virtual_time_test]`, `time::bubble`, `time::wait`  |
//! | `go` statement, errgroup, nursery (#40221)    | `scope!{ go f(x); }`, `try_scope!`, `sync::Group`     |
//! | `context.Context`                             | `context::Context`                                    |
//! | `weak.Pointer` (#67552), `unique` (1.23)      | `weak::Pointer`, `#[weak_cache]`, `unique::Handle`    |
//! | `runtime.AddCleanup` (#67535)                 | `runtime::add_cleanup`, `Cleanup::stop`               |
//! | double-width CAS (#61236)                     | [`atomic::AtomicTagged`], [`atomic::DoubleWord`]      |
//! | GOMAXPROCS from cgroup quota (#33803, #73193) | [`runtime::max_procs()`] with a full report           |
//! | goroutine-local storage (declined, #21355)    | not provided on purpose: use `Context::with_value`    |
//!
//! Rows link to their module once the feature has landed; see `CHANGELOG.md` for what
//! is available in this release.
//!
//! # Modules
//!
//! The modules available in this release are listed below; a module appears only once
//! its feature works.
//!
//! - [`atomic`]: double-width compare-and-swap (Go's atomic vector operations proposal) —
//!   ABA-safe [`atomic::AtomicTagged`], its polyfills and a [`atomic::TreiberStack`].
//! - [`runtime`]: Go's `runtime` package — [`runtime::max_procs`] (automatic `GOMAXPROCS`
//!   from the cgroup CPU quota).

pub mod atomic;
pub mod runtime;
pub mod sync;
pub mod task;
pub mod thread;
pub mod time;

#[doc(hidden)]
pub mod __private {
    //! Support items for the expansions of gonext's macros. Not public API: anything here
    //! may change in any release.
}
