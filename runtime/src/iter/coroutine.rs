//! Stackless coroutines: generators whose yields receive a value back from `resume` and
//! whose body returns a value at the end.
//!
//! They run on the machinery of [`super::stackless`]: the body is an `async` block, a yield
//! is an await point, and each `resume` polls the body once with a lent waker whose hand
//! carries the argument in and the yielded value out. The argument sits in the hand until the
//! resume point the body is suspended at (a yield, or the start of the body) takes it.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::stackless::{
    FinishOnUnwind, GeneratorId, Hand, awaited_in_sync_generator, hand_of, next_generator_id,
};

/// What one step of a coroutine produced: nightly `CoroutineState`'s shape.
///
/// ```
/// use gonext::iter::{Coroutine, CoroutineState};
///
/// #[gonext::generator]
/// fn two_then_done() -> impl Coroutine<Yield = u8, Return = &'static str> {
///     yield_!(1);
///     yield_!(2);
///     "done"
/// }
/// let mut steps = two_then_done();
/// let mut seen = Vec::new();
/// let returned = loop {
///     match steps.resume(()) {
///         CoroutineState::Yielded(v) => seen.push(v),
///         CoroutineState::Complete(r) => break r,
///     }
/// };
/// assert_eq!((seen, returned), (vec![1, 2], "done"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoroutineState<Y, R> {
    /// The coroutine yielded a value and is suspended until the next `resume`.
    Yielded(Y),
    /// The coroutine returned; resuming it again panics.
    Complete(R),
}

/// A coroutine resumed with arguments of type `A`: each [`resume`](Self::resume) runs it to
/// its next yield or to its end. A [`#[generator]`](crate::generator) fn declaring
/// `-> impl Coroutine<A, Yield = Y, Return = R>` is one.
///
/// ```
/// use gonext::iter::{Coroutine, CoroutineState};
///
/// /// Keeps a running total of the numbers it is resumed with, reporting each partial sum.
/// #[gonext::generator]
/// fn running_total(#[resume] first: u32) -> impl Coroutine<u32, Yield = u32, Return = u32> {
///     let mut total = first;
///     loop {
///         let next = yield_!(total);
///         if next == 0 {
///             return total;
///         }
///         total += next;
///     }
/// }
///
/// let mut sum = running_total();
/// assert_eq!(sum.resume(5), CoroutineState::Yielded(5));
/// assert_eq!(sum.resume(7), CoroutineState::Yielded(12));
/// assert_eq!(sum.resume(0), CoroutineState::Complete(12));
/// ```
///
/// # Differences from nightly
///
/// Nightly's `Coroutine::resume` takes `self: Pin<&mut Self>`. A stackless gonext coroutine
/// boxes its body once at creation, so it is `Unpin` and `resume` takes `&mut self`: no
/// pinning at the call site.
pub trait Coroutine<A = ()> {
    /// The type of the values the coroutine yields.
    type Yield;
    /// The type of the value it returns at its end.
    type Return;

    /// Runs the coroutine until it yields or returns. `arg` is the value of the yield it is
    /// suspended at; the first `resume`'s `arg` goes to the body's `#[resume]` parameter.
    ///
    /// # Panics
    ///
    /// If the coroutine already completed, or panicked during an earlier step; a panic in
    /// the body resumes in the caller.
    fn resume(&mut self, arg: A) -> CoroutineState<Self::Yield, Self::Return>;
}

impl<A, C: Coroutine<A> + ?Sized> Coroutine<A> for Box<C> {
    type Yield = C::Yield;
    type Return = C::Return;

    fn resume(&mut self, arg: A) -> CoroutineState<C::Yield, C::Return> {
        (**self).resume(arg)
    }
}

/// [`Coroutine`] for bodies that `.await`: `resume` is a future that runs one step. An
/// `async` [`#[generator]`](crate::generator) fn declaring
/// `-> impl AsyncCoroutine<A, Yield = Y, Return = R>` is one.
///
/// ```
/// use gonext::iter::{AsyncCoroutine, CoroutineState};
/// use std::pin::pin;
///
/// #[gonext::generator]
/// async fn echo_twice(#[resume] first: String) -> impl AsyncCoroutine<String, Yield = String, Return = ()> {
///     let second = yield_!(first.clone() + &first);
///     let doubled = async { second.repeat(2) }.await;
///     yield_!(doubled);
/// }
///
/// futures::executor::block_on(async {
///     let mut echo = pin!(echo_twice());
///     assert_eq!(echo.as_mut().resume("ab".into()).await, CoroutineState::Yielded("abab".into()));
///     assert_eq!(echo.as_mut().resume("c".into()).await, CoroutineState::Yielded("cc".into()));
///     assert_eq!(echo.as_mut().resume(String::new()).await, CoroutineState::Complete(()));
/// });
/// ```
pub trait AsyncCoroutine<A = ()> {
    /// The type of the values the coroutine yields.
    type Yield;
    /// The type of the value it returns at its end.
    type Return;

    /// A future that runs the coroutine until it yields or returns, as
    /// [`Coroutine::resume`] does.
    ///
    /// # Panics
    ///
    /// Polling it panics if the coroutine already completed or panicked.
    ///
    /// # Cancel safety
    ///
    /// The argument is handed to the body at the first poll. Dropping the future after that
    /// but before it finishes leaves the step half done: the next `resume` finishes it, and
    /// that `resume`'s own argument is dropped, since the step already received one.
    fn resume(
        self: Pin<&mut Self>,
        arg: A,
    ) -> impl Future<Output = CoroutineState<Self::Yield, Self::Return>>;
}

/// The yield handle of one coroutine: its id, typed by what it yields and is resumed with.
pub struct CoYielder<Y, A> {
    generator: GeneratorId,
    _types: PhantomData<fn(Y) -> A>,
}

impl<Y, A> Clone for CoYielder<Y, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Y, A> Copy for CoYielder<Y, A> {}

impl<Y, A> CoYielder<Y, A> {
    /// Yields `value`: the await point hands it to the `resume` that drives the body and
    /// evaluates to the argument of the next `resume`.
    #[inline(always)]
    pub fn yield_(self, value: Y) -> CoYield<Y, A> {
        CoYield { item: Some(value), generator: self.generator, _resume: PhantomData }
    }

    /// The argument of the first `resume`, which starts the body.
    #[inline(always)]
    pub fn first_resume(self) -> FirstResume<Y, A> {
        FirstResume { generator: self.generator, _types: PhantomData }
    }
}

impl<Y, A> fmt::Debug for CoYielder<Y, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoYielder").field("generator", &self.generator).finish()
    }
}

/// Takes the resume argument out of the hand of the current poll of `generator`.
#[inline(always)]
fn take_resume<Y, A>(cx: &Context<'_>, generator: GeneratorId) -> A {
    let hand = hand_of::<Y, A>(cx, generator);
    // SAFETY: `hand_of` checked that this is the hand of this coroutine, whose yield and
    // resume types are `Y` and `A`; the polling frame does not touch it during the poll.
    match unsafe { (*hand).resume.take() } {
        Some(arg) => arg,
        None => resumed_without_argument(),
    }
}

#[cold]
#[inline(never)]
fn resumed_without_argument() -> ! {
    panic!("a coroutine's yield resumed in a poll that carried no resume argument")
}

/// The await point of one coroutine `yield`: hands its value over at the first poll, then
/// evaluates to the next `resume`'s argument.
#[must_use = "a yield does nothing unless awaited"]
pub struct CoYield<Y, A> {
    item: Option<Y>,
    generator: GeneratorId,
    _resume: PhantomData<fn() -> A>,
}

/// The value is moved out, never pinned.
impl<Y, A> Unpin for CoYield<Y, A> {}

impl<Y, A> Future for CoYield<Y, A> {
    type Output = A;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A> {
        let Some(item) = self.item.take() else {
            return Poll::Ready(take_resume::<Y, A>(cx, self.generator));
        };
        let hand = hand_of::<Y, A>(cx, self.generator);
        // SAFETY: as in `take_resume`.
        unsafe { (*hand).item = Some(item) };
        Poll::Pending
    }
}

impl<Y, A> fmt::Debug for CoYield<Y, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoYield").field("handed_over", &self.item.is_none()).finish()
    }
}

/// The await point at the start of a coroutine body: evaluates to the first `resume`'s
/// argument without suspending.
#[must_use = "the first resume argument is only taken when awaited"]
pub struct FirstResume<Y, A> {
    generator: GeneratorId,
    _types: PhantomData<fn(Y) -> A>,
}

impl<Y, A> Future for FirstResume<Y, A> {
    type Output = A;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A> {
        Poll::Ready(take_resume::<Y, A>(cx, self.generator))
    }
}

impl<Y, A> fmt::Debug for FirstResume<Y, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstResume").finish_non_exhaustive()
    }
}

#[cold]
#[inline(never)]
fn resumed_after_completion() -> ! {
    panic!("coroutine resumed after it completed or panicked")
}

/// A stackless coroutine: the expansion of a `#[generator]` fn returning
/// `impl Coroutine<A, Yield = Y, Return = R>`. The body's future is boxed once, at creation.
pub struct SyncCoroutine<Y, A, F: ?Sized> {
    future: Option<Pin<Box<F>>>,
    generator: GeneratorId,
    _types: PhantomData<fn(A) -> Y>,
}

impl<Y, A, F: Future> SyncCoroutine<Y, A, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(CoYielder<Y, A>) -> F) -> Self {
        let generator = next_generator_id();
        let yielder = CoYielder { generator, _types: PhantomData };
        SyncCoroutine { future: Some(Box::pin(body(yielder))), generator, _types: PhantomData }
    }
}

impl<Y, A, F: Future + ?Sized> Coroutine<A> for SyncCoroutine<Y, A, F> {
    type Yield = Y;
    type Return = F::Output;

    #[inline]
    fn resume(&mut self, arg: A) -> CoroutineState<Y, F::Output> {
        // Taken out while it runs, so that a panicking body leaves the coroutine finished.
        let Some(mut future) = self.future.take() else { resumed_after_completion() };
        let mut hand = Hand::<Y, A>::new(self.generator, None, Some(arg));
        if let Poll::Ready(returned) = hand.poll(future.as_mut()) {
            return CoroutineState::Complete(returned);
        }
        self.future = Some(future);
        match hand.item {
            Some(item) => CoroutineState::Yielded(item),
            None => awaited_in_sync_generator(),
        }
    }
}

impl<Y, A, F: ?Sized> fmt::Debug for SyncCoroutine<Y, A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncCoroutine").field("finished", &self.future.is_none()).finish()
    }
}

pin_project_lite::pin_project! {
    /// A stackless async coroutine: the expansion of an `async` `#[generator]` fn returning
    /// `impl AsyncCoroutine<A, Yield = Y, Return = R>`. Pinned, so the body lives inline.
    pub struct AsyncStacklessCoroutine<Y, A, F> {
        #[pin]
        future: Option<F>,
        generator: GeneratorId,
        _types: PhantomData<fn(A) -> Y>,
    }
}

impl<Y, A, F: Future> AsyncStacklessCoroutine<Y, A, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(CoYielder<Y, A>) -> F) -> Self {
        let generator = next_generator_id();
        let yielder = CoYielder { generator, _types: PhantomData };
        AsyncStacklessCoroutine { future: Some(body(yielder)), generator, _types: PhantomData }
    }

    /// Polls the body once, handing it `arg` if it has not had it yet.
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        arg: &mut Option<A>,
    ) -> Poll<CoroutineState<Y, F::Output>> {
        let this = self.project();
        let mut running = FinishOnUnwind { future: this.future, armed: true };
        let Some(future) = running.future.as_mut().as_pin_mut() else { resumed_after_completion() };
        let mut hand = Hand::<Y, A>::new(*this.generator, Some(cx.waker()), arg.take());
        let polled = hand.poll(future);
        running.armed = polled.is_ready();
        drop(running);
        match (polled, hand.item) {
            (Poll::Ready(returned), _) => Poll::Ready(CoroutineState::Complete(returned)),
            (Poll::Pending, Some(item)) => Poll::Ready(CoroutineState::Yielded(item)),
            (Poll::Pending, None) => Poll::Pending,
        }
    }
}

impl<Y, A, F: Future> AsyncCoroutine<A> for AsyncStacklessCoroutine<Y, A, F> {
    type Yield = Y;
    type Return = F::Output;

    fn resume(mut self: Pin<&mut Self>, arg: A) -> impl Future<Output = CoroutineState<Y, F::Output>> {
        let mut arg = Some(arg);
        std::future::poll_fn(move |cx| self.as_mut().poll_step(cx, &mut arg))
    }
}

impl<Y, A, F> fmt::Debug for AsyncStacklessCoroutine<Y, A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStacklessCoroutine").field("finished", &self.future.is_none()).finish()
    }
}
