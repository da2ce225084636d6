//! Generators and coroutines: Go's range-over-func iterators and `iter.Pull`, as Rust syntax.
//!
//! ```
//! use gonext::{generator, seq};
//!
//! #[generator]
//! fn fib() -> impl Iterator<Item = u64> {
//!     let (mut a, mut b) = (0u64, 1u64);
//!     loop {
//!         yield_!(a);
//!         (a, b) = (b, a.wrapping_add(b));
//!     }
//! }
//! assert_eq!(fib().take(6).collect::<Vec<_>>(), [0, 1, 1, 2, 3, 5]);
//!
//! let evens = seq! { for x in 0..10 { if x % 2 == 0 { yield x; } } };
//! assert_eq!(evens.collect::<Vec<i32>>(), [0, 2, 4, 6, 8]);
//! ```
//!
//! - [`generator`](crate::generator) functions and [`seq!`](crate::seq) blocks are
//!   *stackless* generators: the body, with `yield_!(v)` (or the real `yield v;` inside
//!   `seq!`), becomes one state machine behind an [`Iterator`]. A step costs what a
//!   hand-written `next()` costs: no allocation, no thread, no dynamic dispatch. Dropping a
//!   suspended generator drops its locals.
//! - `async` generators and [`stream!`](crate::stream) blocks are the same for
//!   `futures::Stream`: the body may `.await`, and the caller's waker is forwarded.
//! - A generator declared `-> impl` [`Coroutine`]`<A, Yield = Y, Return = R>` (or
//!   [`AsyncCoroutine`]) is resumed with arguments, which its yields evaluate to, and
//!   completes with a value: [`CoroutineState`]'s `Yielded` / `Complete`, nightly's shape.
//!   Sans-IO protocol code is written as one: fed what the transport read, it yields what
//!   to send.
//! - `#[generator(boxed)]` returns the nameable [`BoxGenerator`] / [`BoxAsyncGenerator`], for
//!   recursion, trait methods and struct fields; [`try_seq!`](crate::try_seq) and
//!   [`try_stream!`](crate::try_stream) are the blocks whose `?` ends them with the error.
//! - [`Seq`] is Go's push iterator (`iter.Seq`), and [`pull`] is `iter.Pull`: the push
//!   function runs as a *stackful* coroutine on a pooled stack, so it may recurse (tree
//!   walks) and still be consumed one `next()` at a time. [`pull_scoped`] takes a push
//!   function that borrows from the caller, [`pull_scoped_resume`] one that receives answers,
//!   and a stack overflow in a producer is reported with its `pull` site (see
//!   [`DEFAULT_STACK_SIZE`]).
//! - [`to_channel`] is Go's `IterToChan`: an iterator drained into a [`crate::sync::chan`] by
//!   a producer thread, for several consumers.
//!
//! # Differences from Go
//!
//! Go's range-over-func iterators are push functions the compiler calls with the loop body;
//! Rust's `for` pulls from an `Iterator`, so gonext compiles generator bodies into pull
//! iterators directly (no coroutine needed) and keeps the push form for [`Seq`].

mod channel;
pub(crate) mod coroutine;
mod overflow;
mod pull;
pub(crate) mod stackless;

pub use channel::to_channel;
pub use coroutine::{AsyncCoroutine, Coroutine, CoroutineState};
pub use pull::{
    DEFAULT_STACK_SIZE, Pull, PullOptions, ScopedPull, Seq, Yield, pull, pull_scoped, pull_scoped_resume,
};
pub use stackless::{
    AsyncGenerator, BoxAsyncGenerator, BoxGenerator, Generator, LocalBoxAsyncGenerator, LocalBoxGenerator,
};
