//! Go's push iterators (`iter.Seq`) and `iter.Pull`: a push function run as a stackful
//! coroutine on a pooled stack, pulled one value at a time.

use std::cell::RefCell;
use std::fmt;
use std::iter::FusedIterator;
use std::panic::Location;

use corosensei::stack::{DefaultStack, Stack};
use corosensei::{Coroutine, CoroutineResult, Yielder as Suspend};

use super::overflow::Guard;

/// The stack size of [`pull`] coroutines, 256 KiB: address space is reserved (plus a guard
/// page), memory is only used for the pages the producer touches.
///
/// # Choosing a size
///
/// A producer needs the depth of its deepest call chain times the size of its frames, plus a
/// few KiB for whatever it calls at the bottom (formatting, allocation, I/O). 256 KiB holds,
/// for example, a recursive walk about 2 000 levels deep with 100-byte frames. Frames are
/// larger in debug builds, so size for the build you run.
///
/// To measure, run the producer in a test with a candidate size,
/// `PullOptions::new().stack_size(bytes)`: on Linux (x86_64, aarch64) an overflow aborts the
/// process with `the pull coroutine created at <file:line:col> overflowed its <bytes>-byte
/// stack`, so lower the size until that report appears (in a child process, as gonext's own
/// test does) and keep a margin of two to four times the last size that passed. Since untouched
/// pages cost only address space, a generous size is cheap; only stacks of exactly this default
/// size are pooled, so another size costs a fresh mapping (a few microseconds) per pull.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// At most this many idle stacks are kept per thread for reuse.
const POOLED_STACKS: usize = 16;

thread_local! {
    static STACKS: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
}

/// A Go-style push iterator: a function that calls [`Yield::yield_`] for each value and stops
/// early when it returns `false`.
///
/// Run it push-style with [`for_each`](Self::for_each), or iterate it with `for`, which
/// turns it into a [`Pull`] coroutine.
///
/// ```
/// use gonext::iter::Seq;
///
/// let countdown = Seq::new(|y| {
///     for i in (1..=3).rev() {
///         if !y.yield_(i) {
///             return;
///         }
///     }
/// });
/// let got: Vec<u32> = countdown.into_iter().collect();
/// assert_eq!(got, [3, 2, 1]);
/// ```
///
/// # Differences from Go
///
/// Go's `iter.Seq` is a plain `func(yield func(V) bool)` that can be ranged over more than
/// once; a `Seq` owns a `FnOnce` and is consumed by iteration, as Rust iterators are.
pub struct Seq<T> {
    body: Box<SeqBody<T>>,
}

/// The push function of a [`Seq`].
type SeqBody<T> = dyn FnOnce(&mut Yield<'_, T>);

/// The handle a push function sends values through; with a resume type `A` (see
/// [`pull_scoped_resume`]) it also receives the consumer's answers.
pub struct Yield<'a, T, A = ()> {
    sink: Sink<'a, T, A>,
}

/// Where a [`Yield`] sends values: straight to a suspended [`pull`] consumer (no indirect call
/// per value) or to the closure of [`Seq::for_each`].
enum Sink<'a, T, A> {
    Coroutine(&'a Suspend<Resume<A>, T>),
    Closure(&'a mut dyn FnMut(T) -> Option<A>),
}

impl<T> Yield<'_, T> {
    /// Pushes `value` to the consumer; `false` means the consumer stopped and the body should
    /// return.
    #[inline]
    pub fn yield_(&mut self, value: T) -> bool {
        self.exchange(value).is_some()
    }
}

impl<T, A> Yield<'_, T, A> {
    /// Pushes `value` to the consumer and returns its answer: the argument of the
    /// [`ScopedPull::resume`] that continues the body. `None` means the consumer stopped and
    /// the body should return.
    #[inline]
    pub fn exchange(&mut self, value: T) -> Option<A> {
        match &mut self.sink {
            Sink::Coroutine(suspend) => match suspend.suspend(value) {
                Resume::Next(answer) => Some(answer),
                Resume::Stop => None,
            },
            Sink::Closure(f) => f(value),
        }
    }
}

impl<T, A> fmt::Debug for Yield<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yield").finish_non_exhaustive()
    }
}

impl<T: 'static> Seq<T> {
    /// A push iterator running `body`.
    pub fn new(body: impl FnOnce(&mut Yield<'_, T>) + 'static) -> Seq<T> {
        Seq { body: Box::new(body) }
    }

    /// Runs the body, passing each value to `f` until it returns `false` (Go's
    /// `for v := range seq`, without a coroutine).
    ///
    /// ```
    /// let mut first_two = Vec::new();
    /// gonext::iter::Seq::new(|y| {
    ///     let _ = (0..).take_while(|&i| y.yield_(i)).count();
    /// })
    /// .for_each(|v| {
    ///     first_two.push(v);
    ///     first_two.len() < 2
    /// });
    /// assert_eq!(first_two, [0, 1]);
    /// ```
    pub fn for_each(self, mut f: impl FnMut(T) -> bool) {
        (self.body)(&mut Yield { sink: Sink::Closure(&mut |value| f(value).then_some(())) });
    }
}

impl<T: 'static> IntoIterator for Seq<T> {
    type Item = T;
    type IntoIter = Pull<T>;

    fn into_iter(self) -> Pull<T> {
        pull(self)
    }
}

impl<T> fmt::Debug for Seq<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seq").finish_non_exhaustive()
    }
}

/// Turns a push iterator into a pull iterator: Go's `iter.Pull`.
///
/// The body runs as a stackful coroutine (corosensei) on a pooled stack, so it may recurse
/// freely — a tree walk written with plain recursion becomes an `Iterator`. Each `next()`
/// resumes the body until its next yield. The body must be `'static`; [`pull_scoped`] takes
/// one that borrows from the caller.
///
/// ```
/// use gonext::iter::{Seq, pull};
///
/// enum Tree { Leaf(u32), Node(Box<Tree>, Box<Tree>) }
/// fn walk(tree: &Tree, y: &mut gonext::iter::Yield<'_, u32>) -> bool {
///     match tree {
///         Tree::Leaf(v) => y.yield_(*v),
///         Tree::Node(l, r) => walk(l, y) && walk(r, y),
///     }
/// }
/// let tree = Tree::Node(Box::new(Tree::Leaf(1)), Box::new(Tree::Node(Box::new(Tree::Leaf(2)), Box::new(Tree::Leaf(3)))));
/// let mut values = pull(Seq::new(move |y| { walk(&tree, y); }));
/// assert_eq!(values.next(), Some(1));
/// assert_eq!(values.next(), Some(2));
/// values.stop(); // the walk sees `yield_` return false and returns
/// assert_eq!(values.next(), None);
/// ```
///
/// # Panics
///
/// A panic in the body resumes in the caller of `next()`; afterwards `next()` returns `None`.
///
/// A stack overflow in the body cannot be unwound: on Linux (x86_64, aarch64) the process
/// aborts with a message naming the `pull` call site and the stack size (see
/// [`DEFAULT_STACK_SIZE`] for choosing one); elsewhere it is a `SIGSEGV`.
///
/// # Differences from Go
///
/// Go returns a `next` and a `stop` function; here both are methods of [`Pull`], which also
/// stops on drop, unwinding the body's stack if it ignores the stop. Go's goroutine stacks
/// grow; a coroutine stack has a fixed size.
#[track_caller]
pub fn pull<T: 'static>(seq: Seq<T>) -> Pull<T> {
    PullOptions::new().pull(seq)
}

/// [`pull`] over a push function that borrows from the caller's stack: the pull iterator
/// exists only inside `consume`, which receives it, so it is finished (and its stack
/// unwound) before anything the push function borrows goes away.
///
/// ```
/// use gonext::iter::{Yield, pull_scoped};
///
/// fn walk<'t>(tree: &'t [Vec<u32>], at: usize, y: &mut Yield<'_, &'t u32>) -> bool {
///     tree[at].iter().all(|v| y.yield_(v) && (*v as usize >= tree.len() || walk(tree, *v as usize, y)))
/// }
/// let tree = vec![vec![1, 2], vec![7], vec![8, 9]]; // node 0 has children 1 and 2
/// let first_three: Vec<u32> = pull_scoped(|y| { walk(&tree, 0, y); }, |values| values.take(3).copied().collect());
/// assert_eq!(first_three, [1, 7, 2]);
/// ```
///
/// # Panics
///
/// As [`pull`]; a panic in `consume` stops the body and unwinds its stack on the way out.
#[track_caller]
pub fn pull_scoped<T, R>(
    push: impl FnOnce(&mut Yield<'_, T>),
    consume: impl FnOnce(ScopedPull<'_, T>) -> R,
) -> R {
    PullOptions::new().scoped(push, consume)
}

/// [`pull_scoped`] with resume values: the consumer answers each value with
/// [`ScopedPull::resume`]`(answer)`, which [`Yield::exchange`] returns to the push function.
/// The first `resume` starts the body, and its answer is the push function's second argument,
/// as in nightly coroutines.
///
/// ```
/// use gonext::iter::pull_scoped_resume;
///
/// // A running average: the consumer passes in numbers, the producer answers with the
/// // average so far.
/// let averages = pull_scoped_resume(
///     |y, first: f64| {
///         let (mut sum, mut count) = (first, 1.0);
///         while let Some(next) = y.exchange(sum / count) {
///             sum += next;
///             count += 1.0;
///         }
///     },
///     |mut average| [2.0, 4.0, 9.0].map(|x| average.resume(x).unwrap()),
/// );
/// assert_eq!(averages, [2.0, 3.0, 5.0]);
/// ```
#[track_caller]
pub fn pull_scoped_resume<T, A, R>(
    push: impl FnOnce(&mut Yield<'_, T, A>, A),
    consume: impl FnOnce(ScopedPull<'_, T, A>) -> R,
) -> R {
    PullOptions::new().scoped_resume(push, consume)
}

/// How [`pull`] coroutines are run: for now, the size of their stack.
///
/// ```
/// use gonext::iter::{PullOptions, Seq};
///
/// fn depth(n: u64) -> u64 { if n == 0 { 0 } else { 1 + depth(std::hint::black_box(n - 1)) } }
/// let mut deep = PullOptions::new().stack_size(16 << 20).pull(Seq::new(|y| { y.yield_(depth(100_000)); }));
/// assert_eq!(deep.next(), Some(100_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullOptions {
    stack_size: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions::new()
    }
}

impl PullOptions {
    /// The defaults: a [`DEFAULT_STACK_SIZE`] stack from the per-thread pool.
    pub const fn new() -> Self {
        PullOptions { stack_size: DEFAULT_STACK_SIZE }
    }

    /// A stack of `bytes` (rounded up to pages, plus a guard page) for a body that recurses
    /// deeper than the default allows. Only stacks of the default size are pooled.
    pub const fn stack_size(self, bytes: usize) -> Self {
        PullOptions { stack_size: bytes }
    }

    /// [`pull`] with these options.
    ///
    /// # Panics
    ///
    /// If the stack cannot be allocated.
    #[track_caller]
    pub fn pull<T: 'static>(self, seq: Seq<T>) -> Pull<T> {
        let core = Core::start(self.stack_size, Location::caller(), |stack| {
            Coroutine::with_stack(stack, move |suspend: &Suspend<Resume<()>, T>, first: Resume<()>| {
                if let Resume::Next(()) = first {
                    (seq.body)(&mut Yield { sink: Sink::Coroutine(suspend) });
                }
            })
        });
        Pull { core }
    }

    /// [`pull_scoped`] with these options.
    #[track_caller]
    pub fn scoped<T, R>(
        self,
        push: impl FnOnce(&mut Yield<'_, T>),
        consume: impl FnOnce(ScopedPull<'_, T>) -> R,
    ) -> R {
        self.scoped_resume(|y, ()| push(y), consume)
    }

    /// [`pull_scoped_resume`] with these options.
    #[track_caller]
    pub fn scoped_resume<T, A, R>(
        self,
        push: impl FnOnce(&mut Yield<'_, T, A>, A),
        consume: impl FnOnce(ScopedPull<'_, T, A>) -> R,
    ) -> R {
        let mut core = Core::start(self.stack_size, Location::caller(), |stack| {
            let body = move |suspend: &Suspend<Resume<A>, T>, first: Resume<A>| {
                if let Resume::Next(first) = first {
                    push(&mut Yield { sink: Sink::Coroutine(suspend) }, first);
                }
            };
            // SAFETY: the coroutine lives in `core`, a local of this function that is never
            // moved or handed out: `consume` only receives a `ScopedPull` borrowing it, which
            // its result cannot hold (the borrow's lifetime is chosen by this call). When this
            // function returns or unwinds, `core`'s drop finishes the coroutine and unwinds
            // its stack, so it never outlives what `push` borrows, and it cannot be leaked.
            unsafe { Coroutine::with_stack_unchecked(stack, body) }
        });
        consume(ScopedPull { core: &mut core })
    }
}

/// What the consumer tells a suspended body: go on (with an answer), or stop.
enum Resume<A> {
    Next(A),
    Stop,
}

/// A running push function: the coroutine, its stack's size (for the pool) and its
/// registration for overflow reports. Dropping it stops the body.
struct Core<T, A> {
    coroutine: Option<Coroutine<Resume<A>, T, (), DefaultStack>>,
    stack_size: usize,
    _overflow: Guard,
}

impl<T, A> Core<T, A> {
    #[track_caller]
    fn start(
        stack_size: usize,
        site: &'static Location<'static>,
        coroutine: impl FnOnce(DefaultStack) -> Coroutine<Resume<A>, T, (), DefaultStack>,
    ) -> Self {
        let stack = take_stack(stack_size).unwrap_or_else(|error| {
            panic!("pull at {site}: cannot allocate a {stack_size}-byte stack: {error}")
        });
        let overflow = Guard::new(stack.limit().get(), stack.base().get(), stack_size, site);
        Core { coroutine: Some(coroutine(stack)), stack_size, _overflow: overflow }
    }

    /// Inlined so that a loop over `next()` is a resume and a suspend, like raw corosensei; the
    /// end of the iteration is out of line.
    #[inline]
    fn resume(&mut self, answer: A) -> Option<T> {
        let coroutine = self.coroutine.as_mut()?;
        if coroutine.done() {
            // The producer panicked during the previous resume.
            return self.finish();
        }
        match coroutine.resume(Resume::Next(answer)) {
            CoroutineResult::Yield(value) => Some(value),
            CoroutineResult::Return(()) => self.finish(),
        }
    }

    fn stop(&mut self) {
        let Some(mut coroutine) = self.coroutine.take() else { return };
        if coroutine.started() && !coroutine.done() {
            if let CoroutineResult::Yield(_) = coroutine.resume(Resume::Stop) {
                coroutine.force_unwind();
            }
        } else {
            coroutine.force_unwind();
        }
        self.recycle(coroutine);
    }

    /// Ends the iteration after the body returned or panicked, recycling its stack.
    #[cold]
    #[inline(never)]
    fn finish(&mut self) -> Option<T> {
        if let Some(coroutine) = self.coroutine.take() {
            self.recycle(coroutine);
        }
        None
    }

    fn recycle(&self, coroutine: Coroutine<Resume<A>, T, (), DefaultStack>) {
        if self.stack_size == DEFAULT_STACK_SIZE {
            let stack = coroutine.into_stack();
            STACKS.with_borrow_mut(|pool| {
                if pool.len() < POOLED_STACKS {
                    pool.push(stack);
                }
            });
        }
    }
}

impl<T, A> Drop for Core<T, A> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn take_stack(size: usize) -> std::io::Result<DefaultStack> {
    if size == DEFAULT_STACK_SIZE
        && let Some(stack) = STACKS.with_borrow_mut(Vec::pop)
    {
        return Ok(stack);
    }
    DefaultStack::new(size)
}

/// A pull iterator over a [`Seq`], running it as a coroutine; see [`pull`].
pub struct Pull<T> {
    core: Core<T, ()>,
}

impl<T: 'static> Pull<T> {
    /// Like [`pull`], with a stack of `stack_size` bytes; the same as
    /// `PullOptions::new().stack_size(stack_size).pull(seq)`.
    ///
    /// # Panics
    ///
    /// If the stack cannot be allocated.
    #[track_caller]
    pub fn with_stack_size(seq: Seq<T>, stack_size: usize) -> Pull<T> {
        PullOptions::new().stack_size(stack_size).pull(seq)
    }
}

impl<T> Pull<T> {
    /// Stops the iteration: the body's pending `yield_` returns `false` so it can return
    /// (its stack is unwound if it yields again instead). Later `next()` calls return `None`.
    pub fn stop(&mut self) {
        self.core.stop();
    }
}

impl<T> Iterator for Pull<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.core.resume(())
    }
}

impl<T> FusedIterator for Pull<T> {}

impl<T> fmt::Debug for Pull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pull").field("finished", &self.core.coroutine.is_none()).finish()
    }
}

/// The pull iterator of [`pull_scoped`] (an [`Iterator`]) and [`pull_scoped_resume`]
/// (resumed with answers), alive only inside the closure that receives it.
///
/// ```
/// let words = vec!["go", "next"];
/// let (first, stopped) = gonext::iter::pull_scoped(
///     |y| {
///         for w in &words {
///             if !y.yield_(w.len()) {
///                 return;
///             }
///         }
///     },
///     |mut lengths| {
///         let first = lengths.next();
///         lengths.stop(); // the push function sees `yield_` return false
///         (first, lengths.next())
///     },
/// );
/// assert_eq!((first, stopped), (Some(2), None));
/// ```
pub struct ScopedPull<'s, T, A = ()> {
    core: &'s mut Core<T, A>,
}

impl<T, A> ScopedPull<'_, T, A> {
    /// Runs the push function to its next value, answering the previous one with `answer`
    /// (the first call passes `answer` as the push function's argument instead). `None` once
    /// the push function returned or was stopped.
    ///
    /// # Panics
    ///
    /// A panic in the push function resumes here; afterwards `resume` returns `None`.
    #[inline]
    pub fn resume(&mut self, answer: A) -> Option<T> {
        self.core.resume(answer)
    }

    /// Stops the push function: its pending [`Yield::exchange`] returns `None` (its stack is
    /// unwound if it yields again instead). Later calls return `None`.
    pub fn stop(&mut self) {
        self.core.stop();
    }
}

impl<T> Iterator for ScopedPull<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.core.resume(())
    }
}

impl<T> FusedIterator for ScopedPull<'_, T> {}

impl<T, A> fmt::Debug for ScopedPull<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedPull").field("finished", &self.core.coroutine.is_none()).finish()
    }
}
