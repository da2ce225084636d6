//! The stackless generators behind `#[generator]`, `seq!` and `stream!`.
//!
//! The macros turn a generator body into an `async` block: the compiler's async transform
//! is the state machine, with every `yield` an await point. Driving it needs no executor:
//! the generator polls the future itself, and a yield stores its value in the generator's
//! slot and suspends once. The slot lives next to the future in one heap allocation made
//! when the generator is created, so a step allocates nothing and calls nothing virtual.
//!
//! The [`Yielder`] is a pointer to that slot. It is handed to the body as a hygienic
//! identifier no user code can name, and the macros reject a `yield` inside a nested
//! closure, `async` block or fn, so a yielder never leaves the future that owns it (the
//! lesson of async-stream's soundness bugs). The constructors here are `#[doc(hidden)]`
//! plumbing for those expansions only.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

/// The yield handle of one generator: a pointer to its slot.
pub struct Yielder<T> {
    slot: NonNull<Cell<Option<T>>>,
}

impl<T> Clone for Yielder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Yielder<T> {}

// SAFETY: a yielder only travels inside its generator's future, together with the slot it
// points to; sending the generator (which needs `T: Send` for the slot) sends both.
unsafe impl<T: Send> Send for Yielder<T> {}

impl<T> Yielder<T> {
    /// Suspends the generator with `value` as its next item.
    #[inline]
    pub fn yield_(self, value: T) -> YieldOnce<T> {
        YieldOnce { yielder: self, value: Some(value) }
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The await point of one `yield`: stores the value, suspends once, then resumes.
#[must_use = "a yield does nothing unless awaited"]
pub struct YieldOnce<T> {
    yielder: Yielder<T>,
    value: Option<T>,
}

impl<T> Unpin for YieldOnce<T> {}

impl<T> fmt::Debug for YieldOnce<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YieldOnce").field("yielded", &self.value.is_none()).finish()
    }
}

impl<T> Future for YieldOnce<T> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.value.take() {
            Some(value) => {
                // SAFETY: the yielder points to the slot of the generator whose future is
                // being polled right now (it never leaves that future), and the slot is
                // declared after the future, so it is alive; `Cell` allows the write through
                // a shared pointer, and nothing else touches the slot during the poll.
                unsafe { this.yielder.slot.as_ref() }.set(Some(value));
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

/// The future and the slot its yields write to, pinned together in one allocation.
struct State<T, F> {
    /// Declared first so that it drops first: its yielders point into `slot`.
    future: Option<F>,
    slot: Cell<Option<T>>,
    _pinned: PhantomPinned,
}

/// Allocates the state and builds the body's future with a yielder pointing into it.
fn start<T, F>(body: impl FnOnce(Yielder<T>) -> F) -> Pin<Box<State<T, F>>> {
    let mut state = Box::pin(State { future: None, slot: Cell::new(None), _pinned: PhantomPinned });
    let yielder = Yielder { slot: NonNull::from(&state.slot) };
    let future = body(yielder);
    // SAFETY: only the `future` field is written; nothing is moved out of the pinned state.
    unsafe { state.as_mut().get_unchecked_mut() }.future = Some(future);
    state
}

/// Polls the body once; `Ready(None)` when it returned.
#[inline]
fn resume<T, F: Future<Output = ()>>(state: Pin<&mut State<T, F>>, cx: &mut Context<'_>) -> Poll<Option<T>> {
    // SAFETY: `future` is structurally pinned (never moved while the state is pinned, only
    // dropped in place), and `slot` is not pinned; neither is moved out here.
    let state = unsafe { state.get_unchecked_mut() };
    let Some(future) = state.future.as_mut() else { return Poll::Ready(None) };
    // SAFETY: see above: the future stays at this address until it is dropped.
    let future = unsafe { Pin::new_unchecked(future) };
    match future.poll(cx) {
        Poll::Ready(()) => {
            state.future = None;
            Poll::Ready(None)
        }
        Poll::Pending => match state.slot.take() {
            Some(value) => Poll::Ready(Some(value)),
            None => Poll::Pending,
        },
    }
}

/// A generator as an [`Iterator`]; the expansion of `#[generator] fn` and `seq!`.
pub struct Generator<T, F> {
    state: Pin<Box<State<T, F>>>,
}

impl<T, F: Future<Output = ()>> Generator<T, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        Generator { state: start(body) }
    }
}

impl<T, F: Future<Output = ()>> Iterator for Generator<T, F> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        match resume(self.state.as_mut(), &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(item) => item,
            Poll::Pending => panic!("a synchronous generator awaited a future that is not a yield"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.state.future {
            Some(_) => (0, None),
            None => (0, Some(0)),
        }
    }
}

impl<T, F: Future<Output = ()>> FusedIterator for Generator<T, F> {}

impl<T, F> fmt::Debug for Generator<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator").field("finished", &self.state.future.is_none()).finish()
    }
}

/// A generator as a [`futures_core::Stream`]; the expansion of an `async` `#[generator]`
/// and `stream!`. Awaiting inside the body forwards the caller's waker.
pub struct AsyncGenerator<T, F> {
    state: Pin<Box<State<T, F>>>,
}

impl<T, F: Future<Output = ()>> AsyncGenerator<T, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        AsyncGenerator { state: start(body) }
    }
}

impl<T, F: Future<Output = ()>> futures_core::Stream for AsyncGenerator<T, F> {
    type Item = T;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        resume(self.state.as_mut(), cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.state.future {
            Some(_) => (0, None),
            None => (0, Some(0)),
        }
    }
}

impl<T, F: Future<Output = ()>> futures_core::FusedStream for AsyncGenerator<T, F> {
    fn is_terminated(&self) -> bool {
        self.state.future.is_none()
    }
}

impl<T, F> fmt::Debug for AsyncGenerator<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGenerator").field("finished", &self.state.future.is_none()).finish()
    }
}

/// The item types a try-generator (`?` in its body) can yield: `Result`s, whose error ends it.
pub trait TryItem {
    /// The error that `?` converts into.
    type Error;

    /// The item that carries `error`.
    fn from_error(error: Self::Error) -> Self;
}

impl<T, E> TryItem for Result<T, E> {
    type Error = E;

    fn from_error(error: E) -> Self {
        Err(error)
    }
}

/// The next item of a stream, for `yield from` in async generators.
pub async fn next_of<S: futures_core::Stream + ?Sized>(stream: Pin<&mut S>) -> Option<S::Item> {
    let mut stream = stream;
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}
