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
    /// Makes `value` the generator's next item and returns the await point that suspends
    /// the body until the item is taken.
    #[inline(always)]
    pub fn yield_(self, value: T) -> SuspendOnce {
        // SAFETY: the yielder points to the slot of the generator whose body is running
        // right now (a yielder never leaves that body), and the slot is declared after the
        // future, so it is alive; `Cell` allows the write through a shared pointer, and
        // nothing else touches the slot while the body runs.
        unsafe { self.slot.as_ref() }.set(Some(value));
        SuspendOnce { suspended: false }
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The await point of one `yield`: suspends once, then resumes. One byte in the state
/// machine, as the value already sits in the generator's slot.
#[must_use = "a yield does nothing unless awaited"]
#[derive(Debug)]
pub struct SuspendOnce {
    suspended: bool,
}

impl Future for SuspendOnce {
    type Output = ();

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.suspended {
            return Poll::Ready(());
        }
        self.suspended = true;
        Poll::Pending
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
#[inline(always)]
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

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        match resume(self.state.as_mut(), &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(item) => item,
            Poll::Pending => awaited_in_sync_generator(),
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

#[cold]
#[inline(never)]
fn awaited_in_sync_generator() -> ! {
    panic!("a synchronous generator awaited a future that is not a yield")
}

/// A generator as a [`futures_core::Stream`]; the expansion of an `async` `#[generator]`
/// and `stream!`. Awaiting inside the body forwards the caller's waker.
///
/// A stream is polled pinned, so the state lives inline (no allocation): the body's future
/// is built at the first poll, once the slot has its final address.
pub struct AsyncGenerator<T, B, F> {
    body: Option<B>,
    /// Declared before `slot` so that it drops first: its yielders point into `slot`.
    future: Option<F>,
    slot: Cell<Option<T>>,
    _pinned: PhantomPinned,
}

impl<T, B: FnOnce(Yielder<T>) -> F, F: Future<Output = ()>> AsyncGenerator<T, B, F> {
    #[doc(hidden)]
    pub fn new(body: B) -> Self {
        AsyncGenerator { body: Some(body), future: None, slot: Cell::new(None), _pinned: PhantomPinned }
    }
}

impl<T, B: FnOnce(Yielder<T>) -> F, F: Future<Output = ()>> futures_core::Stream for AsyncGenerator<T, B, F> {
    type Item = T;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // SAFETY: `future` is structurally pinned: it is created in place below and never
        // moved until it is dropped in place; `body` and `slot` are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(body) = this.body.take() {
            this.future = Some(body(Yielder { slot: NonNull::from(&this.slot) }));
        }
        let Some(future) = this.future.as_mut() else { return Poll::Ready(None) };
        // SAFETY: see above; the generator is pinned, so the future stays at this address.
        let future = unsafe { Pin::new_unchecked(future) };
        match future.poll(cx) {
            Poll::Ready(()) => {
                this.future = None;
                Poll::Ready(None)
            }
            Poll::Pending => match this.slot.take() {
                Some(value) => Poll::Ready(Some(value)),
                None => Poll::Pending,
            },
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match (&self.body, &self.future) {
            (None, None) => (0, Some(0)),
            _ => (0, None),
        }
    }
}

impl<T, B: FnOnce(Yielder<T>) -> F, F: Future<Output = ()>> futures_core::FusedStream
    for AsyncGenerator<T, B, F>
{
    fn is_terminated(&self) -> bool {
        self.body.is_none() && self.future.is_none()
    }
}

impl<T, B, F> fmt::Debug for AsyncGenerator<T, B, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGenerator")
            .field("finished", &(self.body.is_none() && self.future.is_none()))
            .finish()
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
