//! The stackless generators behind `#[generator]`, `seq!` and `stream!`.
//!
//! The macros turn a generator body into an `async` block: the compiler's async transform
//! is the state machine, with every `yield` an await point. Driving it needs no executor:
//! the generator polls the future itself, and a yield hands its value back and suspends
//! once.
//!
//! The hand-off goes through the poll's [`Context`]: each poll lends the body a waker whose
//! data points to a [`Hand`] on the polling frame, and the yield moves its item there. Once
//! the poll is inlined, the hand is a local the optimizer keeps in registers, and nothing
//! else in the generator's memory is written behind its back, so a `fib` generator compiles
//! to nearly the hand-written loop. A stream's hand also carries the caller's waker, to which
//! the lent waker forwards `wake` and `clone`, so awaiting other futures inside a `stream!`
//! works under any executor.
//!
//! The [`Yielder`] is the generator's identity: it is handed to the body as a hygienic
//! identifier no user code can name, and the macros reject a `yield` inside a nested
//! closure, `async` block or fn, so a yield only ever runs inside its own generator's poll
//! (the lesson of async-stream's soundness bugs). A yield still checks both the waker's
//! vtable and the generator's id before it writes, so even a yield smuggled into another
//! context panics instead of writing into a hand of the wrong type. That check matters more
//! now that yields inside other macros' tokens are rewritten: such a macro may wrap them in a
//! block the macro crate cannot see. The generator types are public so they can be named
//! (boxed); their constructors are `#[doc(hidden)]` plumbing for the expansions only.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// Which generator a yield belongs to: unique among the live generators of the process.
pub(super) type GeneratorId = u64;

/// Ids are handed out in blocks per thread, so creating a generator touches no shared line.
const ID_BLOCK: u64 = 1 << 16;

#[inline]
pub(super) fn next_generator_id() -> GeneratorId {
    static BLOCKS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: Cell<GeneratorId> = const { Cell::new(0) };
    }
    NEXT.with(|next| {
        let mut id = next.get();
        if id % ID_BLOCK == 0 {
            id = BLOCKS.fetch_add(ID_BLOCK, Ordering::Relaxed) + 1;
        }
        next.set(id + 1);
        id
    })
}

/// The yield handle of one generator: its id, typed by its item.
pub struct Yielder<T> {
    generator: GeneratorId,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Yielder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Yielder<T> {}

impl<T> Yielder<T> {
    fn new(generator: GeneratorId) -> Self {
        Yielder { generator, _item: PhantomData }
    }

    /// Makes `value` the generator's next item: the returned await point hands it to the
    /// poll that drives the body and suspends until the item is taken.
    #[inline(always)]
    pub fn yield_(self, value: T) -> Yield<T> {
        Yield { item: Some(value), generator: self.generator }
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").field("generator", &self.generator).finish()
    }
}

/// The part of a [`Hand`] that does not depend on the item type, at the same offsets for
/// every `T`, so the lent waker's functions can read it.
#[repr(C)]
struct HandHeader {
    generator: GeneratorId,
    /// The waker of the poll's caller; null for a synchronous generator.
    outer: *const Waker,
}

/// Where one poll of a generator body receives the item its yield hands over, and, for a
/// coroutine, finds the argument its `resume` passed.
#[repr(C)]
pub(super) struct Hand<T, A = ()> {
    header: HandHeader,
    pub(super) item: Option<T>,
    pub(super) resume: Option<A>,
}

/// The vtable of the wakers lent to generator bodies. A `static`, so its address is unique
/// and identifies them.
static HAND_VTABLE: RawWakerVTable = RawWakerVTable::new(clone_hand, wake_hand, wake_hand, drop_hand);

/// The caller's waker of the poll that lent the waker with `data`; `None` for a
/// synchronous generator.
///
/// # Safety
///
/// `data` is the data of a waker with [`HAND_VTABLE`], reached during its poll.
unsafe fn outer_waker<'a>(data: *const ()) -> Option<&'a Waker> {
    // SAFETY: such wakers are only created by `Hand::poll`, with data pointing to a hand
    // that lives for the whole poll.
    let outer = unsafe { (*data.cast::<HandHeader>()).outer };
    // SAFETY: a non-null `outer` is the caller's waker, borrowed for the whole poll.
    unsafe { outer.as_ref() }
}

/// Clones into the caller's waker (a no-op waker for a synchronous generator): the hand
/// lives only for one poll, a clone may outlive it.
unsafe fn clone_hand(data: *const ()) -> RawWaker {
    // SAFETY: the waker functions are only called on wakers lent by `Hand::poll`.
    let waker = ManuallyDrop::new(unsafe { outer_waker(data) }.unwrap_or(Waker::noop()).clone());
    RawWaker::new(waker.data(), waker.vtable())
}

/// `wake` and `wake_by_ref` alike: a lent waker is never owned by anyone but its poll.
unsafe fn wake_hand(data: *const ()) {
    // SAFETY: as in `clone_hand`.
    if let Some(outer) = unsafe { outer_waker(data) } {
        outer.wake_by_ref();
    }
}

unsafe fn drop_hand(_: *const ()) {}

impl<T, A> Hand<T, A> {
    pub(super) fn new(generator: GeneratorId, outer: Option<&Waker>, resume: Option<A>) -> Self {
        let outer = outer.map_or(std::ptr::null(), std::ptr::from_ref);
        Hand { header: HandHeader { generator, outer }, item: None, resume }
    }

    /// Polls `future` with a context whose waker points at this hand.
    #[inline(always)]
    pub(super) fn poll<F: Future + ?Sized>(&mut self, future: Pin<&mut F>) -> Poll<F::Output> {
        let data = std::ptr::from_mut(self).cast::<()>().cast_const();
        // SAFETY: the vtable's functions only read the header of the hand `data` points to,
        // which outlives the waker: both go at the end of this poll. The waker is never
        // dropped: its drop would be a no-op, but a call through a `static` of another crate
        // that the optimizer cannot see through.
        let waker = ManuallyDrop::new(unsafe { Waker::new(data, &HAND_VTABLE) });
        future.poll(&mut Context::from_waker(&waker))
    }
}

/// The await point of one `yield`: hands its item over at the first poll and suspends
/// once, then resumes.
#[must_use = "a yield does nothing unless awaited"]
pub struct Yield<T> {
    item: Option<T>,
    generator: GeneratorId,
}

/// The item is moved out, never pinned.
impl<T> Unpin for Yield<T> {}

impl<T> Future for Yield<T> {
    type Output = ();

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(item) = self.item.take() else { return Poll::Ready(()) };
        let hand = hand_of::<T, ()>(cx, self.generator);
        // SAFETY: `hand_of` checked that this is the hand of this yield's generator, whose
        // item type is `T`; the polling frame does not touch it during the poll.
        unsafe { (*hand).item = Some(item) };
        Poll::Pending
    }
}

impl<T> fmt::Debug for Yield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yield").field("handed_over", &self.item.is_none()).finish()
    }
}

/// The hand of the poll that `cx` belongs to, which must be a poll of `generator`: anything
/// else is a yield smuggled out of its generator, and panics.
///
/// The caller names the hand's types; they are right when they are those of the generator
/// with that id, which only its own yields and resume points know.
#[inline(always)]
pub(super) fn hand_of<T, A>(cx: &Context<'_>, generator: GeneratorId) -> *mut Hand<T, A> {
    let waker = cx.waker();
    if !std::ptr::eq(waker.vtable(), &HAND_VTABLE) {
        yield_outside_generator();
    }
    // SAFETY: a waker with the hand vtable points to a live `Hand` (see `Hand::poll`),
    // which starts with its header whatever its item and resume types.
    if unsafe { (*waker.data().cast::<HandHeader>()).generator } != generator {
        yield_outside_generator();
    }
    waker.data().cast::<Hand<T, A>>().cast_mut()
}

#[cold]
#[inline(never)]
fn yield_outside_generator() -> ! {
    panic!("a generator's yield was polled outside that generator (inside another future's poll)")
}

/// A generator as an [`Iterator`]: what a [`#[generator]`](crate::generator) fn and
/// [`seq!`](crate::seq) return, behind `impl Iterator`.
///
/// `F` is the body's future. The compiler names it only inside the generator, so code that
/// stores a generator names the boxed form, [`BoxGenerator`] or [`LocalBoxGenerator`], that
/// `#[generator(boxed)]` returns.
///
/// The body's future is boxed once, when the generator is created, because an iterator may
/// move between steps while the body's locals may borrow each other.
///
/// ```
/// use gonext::iter::BoxGenerator;
///
/// struct Tokens {
///     words: BoxGenerator<'static, String>,
/// }
///
/// #[gonext::generator(boxed)]
/// fn words(text: String) -> impl Iterator<Item = String> {
///     for word in text.split_whitespace() {
///         yield_!(word.to_uppercase());
///     }
/// }
///
/// let mut tokens = Tokens { words: words("go next".into()) };
/// assert_eq!(tokens.words.next().as_deref(), Some("GO"));
/// ```
pub struct Generator<T, F: ?Sized> {
    future: Option<Pin<Box<F>>>,
    generator: GeneratorId,
    _item: PhantomData<fn() -> T>,
}

/// A generator whose body is boxed as a `Send` trait object: a nameable type for struct
/// fields, trait methods and recursion; what `#[generator(boxed)]` returns.
///
/// ```
/// trait Source {
///     fn values(&self) -> gonext::iter::BoxGenerator<'_, u32>;
/// }
/// struct Range(u32);
/// impl Source for Range {
///     #[gonext::generator(boxed)]
///     fn values(&self) -> impl Iterator<Item = u32> + '_ {
///         yield_from!(0..self.0);
///     }
/// }
/// let sources: Vec<Box<dyn Source>> = vec![Box::new(Range(2)), Box::new(Range(3))];
/// assert_eq!(sources.iter().flat_map(|s| s.values()).sum::<u32>(), 1 + 3);
/// ```
pub type BoxGenerator<'a, T> = Generator<T, dyn Future<Output = ()> + Send + 'a>;

/// [`BoxGenerator`] for bodies that are not `Send`; what `#[generator(boxed_local)]` returns.
///
/// ```
/// use std::rc::Rc;
///
/// #[gonext::generator(boxed_local)]
/// fn shared(names: Rc<Vec<&'static str>>) -> impl Iterator<Item = &'static str> {
///     for name in names.iter() {
///         yield_!(*name);
///     }
/// }
/// let names = Rc::new(vec!["a", "b"]);
/// let walk: gonext::iter::LocalBoxGenerator<'static, &str> = shared(Rc::clone(&names));
/// assert_eq!(walk.collect::<Vec<_>>(), ["a", "b"]);
/// ```
pub type LocalBoxGenerator<'a, T> = Generator<T, dyn Future<Output = ()> + 'a>;

impl<T, F: Future<Output = ()>> Generator<T, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        Generator { future: Some(Box::pin(body(Yielder::new(generator)))), generator, _item: PhantomData }
    }
}

impl<'a, T> BoxGenerator<'a, T> {
    #[doc(hidden)]
    pub fn boxed<F: Future<Output = ()> + Send + 'a>(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        Generator { future: Some(Box::pin(body(Yielder::new(generator)))), generator, _item: PhantomData }
    }
}

impl<'a, T> LocalBoxGenerator<'a, T> {
    #[doc(hidden)]
    pub fn boxed_local<F: Future<Output = ()> + 'a>(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        Generator { future: Some(Box::pin(body(Yielder::new(generator)))), generator, _item: PhantomData }
    }
}

impl<T, F: Future<Output = ()> + ?Sized> Iterator for Generator<T, F> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        // Taken out while it runs, so that a panicking body leaves the generator finished
        // (its locals dropped during the unwind) rather than poisoned.
        let mut future = self.future.take()?;
        let mut hand = Hand::<T>::new(self.generator, None, None);
        if hand.poll(future.as_mut()).is_ready() {
            return None;
        }
        self.future = Some(future);
        match hand.item {
            Some(item) => Some(item),
            None => awaited_in_sync_generator(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.future {
            Some(_) => (0, None),
            None => (0, Some(0)),
        }
    }
}

impl<T, F: Future<Output = ()> + ?Sized> FusedIterator for Generator<T, F> {}

impl<T, F: ?Sized> fmt::Debug for Generator<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator").field("finished", &self.future.is_none()).finish()
    }
}

#[cold]
#[inline(never)]
pub(super) fn awaited_in_sync_generator() -> ! {
    panic!("a synchronous generator awaited a future that is not a yield")
}

pin_project_lite::pin_project! {
    /// A generator as a [`futures_core::Stream`]: what an `async`
    /// [`#[generator]`](crate::generator) fn and [`stream!`](crate::stream) return, behind
    /// `impl Stream`. Awaiting inside the body forwards the caller's waker.
    ///
    /// A stream is polled pinned, so the body's future lives inline: no allocation. Code
    /// that stores one names [`BoxAsyncGenerator`], what `#[generator(boxed)]` returns on an
    /// `async fn`.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use gonext::iter::BoxAsyncGenerator;
    ///
    /// #[gonext::generator(boxed)]
    /// async fn countdown(from: u32) -> impl futures::Stream<Item = u32> {
    ///     for i in (1..=from).rev() {
    ///         yield_!(i);
    ///     }
    /// }
    ///
    /// let stored: BoxAsyncGenerator<'static, u32> = countdown(3);
    /// assert_eq!(futures::executor::block_on(stored.collect::<Vec<_>>()), [3, 2, 1]);
    /// ```
    pub struct AsyncGenerator<T, F> {
        #[pin]
        future: Option<F>,
        generator: GeneratorId,
        _item: PhantomData<fn() -> T>,
    }
}

/// A stream generator whose body is boxed as a `Send` trait object: a nameable, `Unpin`
/// type; what `#[generator(boxed)]` returns on an `async fn`.
///
/// ```
/// use futures::StreamExt;
///
/// #[gonext::generator(boxed)]
/// async fn countdown(n: u32) -> impl futures::Stream<Item = u32> {
///     if n > 0 {
///         yield_!(n);
///         yield_from!(countdown(n - 1)); // recursion needs the named type
///     }
/// }
/// assert_eq!(futures::executor::block_on(countdown(3).collect::<Vec<_>>()), [3, 2, 1]);
/// ```
pub type BoxAsyncGenerator<'a, T> = AsyncGenerator<T, Pin<Box<dyn Future<Output = ()> + Send + 'a>>>;

/// [`BoxAsyncGenerator`] for bodies that are not `Send`; what `#[generator(boxed_local)]`
/// returns on an `async fn`.
///
/// ```
/// use futures::StreamExt;
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// #[gonext::generator(boxed_local)]
/// async fn ticks(counter: Rc<Cell<u32>>) -> impl futures::Stream<Item = u32> {
///     for _ in 0..2 {
///         counter.set(counter.get() + 1);
///         yield_!(counter.get());
///     }
/// }
/// let stream: gonext::iter::LocalBoxAsyncGenerator<'static, u32> = ticks(Rc::new(Cell::new(0)));
/// assert_eq!(futures::executor::block_on(stream.collect::<Vec<_>>()), [1, 2]);
/// ```
pub type LocalBoxAsyncGenerator<'a, T> = AsyncGenerator<T, Pin<Box<dyn Future<Output = ()> + 'a>>>;

impl<T, F: Future<Output = ()>> AsyncGenerator<T, F> {
    #[doc(hidden)]
    pub fn new(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        AsyncGenerator { future: Some(body(Yielder::new(generator))), generator, _item: PhantomData }
    }
}

impl<'a, T> BoxAsyncGenerator<'a, T> {
    #[doc(hidden)]
    pub fn boxed<F: Future<Output = ()> + Send + 'a>(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        AsyncGenerator {
            future: Some(Box::pin(body(Yielder::new(generator)))),
            generator,
            _item: PhantomData,
        }
    }
}

impl<'a, T> LocalBoxAsyncGenerator<'a, T> {
    #[doc(hidden)]
    pub fn boxed_local<F: Future<Output = ()> + 'a>(body: impl FnOnce(Yielder<T>) -> F) -> Self {
        let generator = next_generator_id();
        AsyncGenerator {
            future: Some(Box::pin(body(Yielder::new(generator)))),
            generator,
            _item: PhantomData,
        }
    }
}

impl<T, F: Future<Output = ()>> futures_core::Stream for AsyncGenerator<T, F> {
    type Item = T;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        let mut running = FinishOnUnwind { future: this.future, armed: true };
        let Some(future) = running.future.as_mut().as_pin_mut() else { return Poll::Ready(None) };
        let mut hand = Hand::<T>::new(*this.generator, Some(cx.waker()), None);
        let polled = hand.poll(future);
        running.armed = polled.is_ready();
        drop(running);
        if polled.is_ready() {
            return Poll::Ready(None);
        }
        match hand.item {
            Some(item) => Poll::Ready(Some(item)),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.future {
            Some(_) => (0, None),
            None => (0, Some(0)),
        }
    }
}

/// Drops a stream's body in place when it finished, and when its poll unwinds, so that a
/// panicked stream is finished rather than poisoned.
pub(super) struct FinishOnUnwind<'a, F> {
    pub(super) future: Pin<&'a mut Option<F>>,
    pub(super) armed: bool,
}

impl<F> Drop for FinishOnUnwind<'_, F> {
    fn drop(&mut self) {
        if self.armed {
            self.future.set(None);
        }
    }
}

impl<T, F: Future<Output = ()>> futures_core::FusedStream for AsyncGenerator<T, F> {
    fn is_terminated(&self) -> bool {
        self.future.is_none()
    }
}

impl<T, F> fmt::Debug for AsyncGenerator<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGenerator").field("finished", &self.future.is_none()).finish()
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
