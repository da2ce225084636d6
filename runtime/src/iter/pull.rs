//! Go's push iterators (`iter.Seq`) and `iter.Pull`: a push function run as a stackful
//! coroutine on a pooled stack, pulled one value at a time.

use std::cell::RefCell;
use std::fmt;
use std::iter::FusedIterator;
use std::panic::Location;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder as Suspend};

/// The stack size of [`pull`] coroutines: address space is reserved, memory is only used
/// for the pages the producer touches.
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

/// The handle a [`Seq`] body pushes values through.
pub struct Yield<'a, T> {
    sink: Sink<'a, T>,
}

/// Where a [`Yield`] sends values: straight to a suspended [`pull`] consumer (no indirect call
/// per value) or to the closure of [`Seq::for_each`].
enum Sink<'a, T> {
    Coroutine(&'a Suspend<Resume, T>),
    Closure(&'a mut dyn FnMut(T) -> bool),
}

impl<T> Yield<'_, T> {
    /// Pushes `value` to the consumer; `false` means the consumer stopped and the body should
    /// return.
    #[inline]
    pub fn yield_(&mut self, value: T) -> bool {
        match &mut self.sink {
            Sink::Coroutine(suspend) => suspend.suspend(value) == Resume::Next,
            Sink::Closure(f) => f(value),
        }
    }
}

impl<T> fmt::Debug for Yield<'_, T> {
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
        (self.body)(&mut Yield { sink: Sink::Closure(&mut f) });
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
/// resumes the body until its next yield.
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
/// # Differences from Go
///
/// Go returns a `next` and a `stop` function; here both are methods of [`Pull`], which also
/// stops on drop, unwinding the body's stack if it ignores the stop.
#[track_caller]
pub fn pull<T: 'static>(seq: Seq<T>) -> Pull<T> {
    Pull::with_stack_size(seq, DEFAULT_STACK_SIZE)
}

/// What the consumer tells a suspended body: go on, or stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resume {
    Next,
    Stop,
}

/// A pull iterator over a [`Seq`], running it as a coroutine; see [`pull`].
pub struct Pull<T> {
    coroutine: Option<Coroutine<Resume, T, (), DefaultStack>>,
    stack_size: usize,
}

impl<T: 'static> Pull<T> {
    /// Like [`pull`], with a stack of `stack_size` bytes (rounded up to pages) for a body that
    /// recurses deeper than the default 256 KiB allows.
    ///
    /// # Panics
    ///
    /// If the stack cannot be allocated.
    #[track_caller]
    pub fn with_stack_size(seq: Seq<T>, stack_size: usize) -> Pull<T> {
        let stack = take_stack(stack_size).unwrap_or_else(|error| {
            panic!("pull at {}: cannot allocate a {stack_size}-byte stack: {error}", Location::caller())
        });
        let coroutine = Coroutine::with_stack(stack, move |suspend: &Suspend<Resume, T>, first: Resume| {
            if first == Resume::Stop {
                return;
            }
            (seq.body)(&mut Yield { sink: Sink::Coroutine(suspend) });
        });
        Pull { coroutine: Some(coroutine), stack_size }
    }
}

impl<T> Pull<T> {
    /// Stops the iteration: the body's pending `yield_` returns `false` so it can return
    /// (its stack is unwound if it yields again instead). Later `next()` calls return `None`.
    pub fn stop(&mut self) {
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

    fn recycle(&self, coroutine: Coroutine<Resume, T, (), DefaultStack>) {
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

fn take_stack(size: usize) -> std::io::Result<DefaultStack> {
    if size == DEFAULT_STACK_SIZE
        && let Some(stack) = STACKS.with_borrow_mut(Vec::pop)
    {
        return Ok(stack);
    }
    DefaultStack::new(size)
}

impl<T> Iterator for Pull<T> {
    type Item = T;

    /// Inlined so that a loop over `next()` is a resume and a suspend, like raw corosensei; the
    /// end of the iteration is out of line.
    #[inline]
    fn next(&mut self) -> Option<T> {
        let coroutine = self.coroutine.as_mut()?;
        if coroutine.done() {
            // The producer panicked during the previous `next()`.
            return self.finish();
        }
        match coroutine.resume(Resume::Next) {
            CoroutineResult::Yield(value) => Some(value),
            CoroutineResult::Return(()) => self.finish(),
        }
    }
}

impl<T> FusedIterator for Pull<T> {}

impl<T> Drop for Pull<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<T> fmt::Debug for Pull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pull").field("finished", &self.coroutine.is_none()).finish()
    }
}
