//! Go's newest concurrency features, for Rust.
//!
//! ```
//! use gonext::{generator, scope, sync, thread, time, unique};
//! use std::time::Duration;
//!
//! #[generator] // Go's range-over-func, with a real yield
//! fn countdown(from: u64) -> impl Iterator<Item = u64> { for n in (1..=from).rev() { yield_!(n); } }
//!
//! time::bubble(|| {                                  // Go's synctest: a virtual clock
//!     let (start, (tx, rx)) = (time::Instant::now(), sync::chan(0)); // Go's channel
//!     scope! {                                       // `go` statements, all joined at the end
//!         go move { for n in countdown(3) { thread::sleep(Duration::from_secs(n)); tx.send(n).unwrap(); } }
//!         go { assert_eq!(rx.iter().collect::<Vec<_>>(), [3, 2, 1]); };
//!     }
//!     assert_eq!(start.elapsed(), Duration::from_secs(6)); // six virtual seconds, no real wait
//! });
//! assert_eq!(unique::make_ref("eu-west-1"), unique::make_ref("eu-west-1")); // Go's unique: O(1) ==
//! ```
//!
//! `gonext` brings the concurrency features that Go shipped or proposed in 1.23–1.25 to
//! Rust, and turns Go's "language-level" sketches into real syntax through macros. Each
//! feature lives in one module that names the Go feature it mirrors, and each module's page
//! opens with an example; items that behave differently from Go say so in a
//! `# Differences from Go` section.
//!
//! | Go feature (proposal)                         | gonext                                                |
//! |-----------------------------------------------|-------------------------------------------------------|
//! | range-over-func, `iter.Seq` (#61897, #61405)  | [`generator`] fns, [`seq!`], [`iter::Seq`]            |
//! | `iter.Pull` coroutines                        | [`iter::pull`]                                        |
//! | async generators (none in Go)                 | [`stream!`] → `futures::Stream`                       |
//! | `testing/synctest` (#67434)                   | [`virtual_time_test`], [`time::bubble`], [`time::wait`] |
//! | `time.NewTimer`, `time.AfterFunc`, `context.AfterFunc` | [`time::Timer`], [`time::after_func`], [`Context::after_func`](context::Context::after_func) |
//! | `go` statement, errgroup, nursery (#40221)    | [`scope!`]`{ go f(x); }`, [`try_scope!`], [`async_scope!`], [`scope()`], [`sync::Group`] |
//! | `context.Context`                             | [`context::Context`]                                  |
//! | `weak.Pointer` (#67552), `unique` (1.23)      | [`weak::Pointer`], [`weak_cache`], [`unique::Handle`] |
//! | `runtime.AddCleanup` (#67535)                 | [`runtime::add_cleanup`], [`runtime::Cleanup::stop`]  |
//! | `Uint64Pair`, double-width CAS (#61236)       | [`atomic::DoubleWord`], [`atomic::AtomicTagged`]      |
//! | GOMAXPROCS from cgroup quota (#33803, #73193) | [`runtime::max_procs()`], live, with a full report    |
//! | goroutine-local storage (declined, #21355)    | not provided on purpose: use [`Context::with_value`](context::Context::with_value) |
//!
//! Each row links to the items that implement it. Go declined goroutine-local storage, and
//! gonext leaves it out for the same reason: values travel down a call tree in a `Context`.
//!
//! # Modules
//!
//! - [`iter`]: generators and coroutines (range-over-func, `iter.Pull`), with the
//!   [`generator`], [`seq!`], [`stream!`], [`try_seq!`] and [`try_stream!`] macros.
//! - [`time`]: virtual-time bubbles (`testing/synctest`) and bubble-aware clocks and timers,
//!   with [`thread`] and [`task`] for members, and [`virtual_time_test`].
//! - [`scope!`], [`try_scope!`] and [`async_scope!`]: `go` statements in blocks that join
//!   every task.
//! - [`sync`]: Go channels, `WaitGroup`, errgroup and bubble-aware locks, waited on with
//!   [`select!`].
//! - [`context`]: Go's `context.Context`; [`retry`]: exponential backoff on gonext's clock.
//! - [`Ptr`], [`weak`], [`unique`] and [`runtime::add_cleanup`]: Go's weak pointers, cleanups
//!   and interning, where "collected" means "the last strong `Ptr` was dropped".
//! - [`atomic`]: double-width compare-and-swap (Go's atomic vector operations proposal) —
//!   ABA-safe [`atomic::AtomicTagged`], its polyfills and a [`atomic::TreiberStack`].
//! - [`runtime`]: Go's `runtime` package — [`runtime::max_procs`] (automatic `GOMAXPROCS`
//!   from the cgroup CPU quota) and cleanups.
//!
//! # Cargo features
//!
//! - `std-time` (off by default, meant for `[dev-dependencies]`): inside virtual-time bubbles,
//!   std's own clocks, sleeps, timed waits and threads (and every crate built on them) run on
//!   the bubble's clock, on Linux with glibc (x86_64, aarch64); a no-op elsewhere. See
//!   [Virtual time for std code](time#virtual-time-for-std-code).
//!
//! # Status
//!
//! This is 0.1.0, the first version, and it has not been released yet: the
//! [changelog](https://github.com/gonext-rs/gonext/blob/main/CHANGELOG.md) lists what it
//! will contain.

pub mod atomic;
pub mod context;
mod hash;
pub mod iter;
mod ptr;
pub mod retry;
pub mod runtime;
pub(crate) mod scope;
pub mod sync;
mod sync_shim;
pub mod task;
pub mod thread;
pub mod time;
pub mod unique;
pub mod weak;

pub use ptr::Ptr;
pub use scope::{scope, try_scope};

/// Turns a function whose body yields with [`yield_!`] into a generator: Go's
/// range-over-func iterators as Rust syntax.
///
/// On `fn … -> impl Iterator<Item = T>` the body becomes a stackless state machine behind an
/// `Iterator` (fused, no allocation per step); on `async fn … -> impl Stream<Item = T>` it may
/// also `.await` and becomes a `futures::Stream`. Arguments, generics, lifetimes, `where`
/// clauses and `self` receivers are kept. `return;` ends the generator; with items of type
/// `Result<T, E>`, `?` yields the `Err` and ends it. [`yield_from!`] yields everything another
/// iterator (or, in an async generator, stream) produces.
///
/// ```
/// use gonext::generator; // `yield_!` and `yield_from!` need no import inside its body
///
/// #[generator]
/// fn fib() -> impl Iterator<Item = u64> {
///     let (mut a, mut b) = (0u64, 1u64);
///     loop {
///         yield_!(a);
///         (a, b) = (b, a.wrapping_add(b));
///     }
/// }
///
/// #[generator]
/// fn words<'a>(text: &'a str, stop: &'a str) -> impl Iterator<Item = &'a str> + 'a {
///     for word in text.split_whitespace() {
///         if word == stop {
///             return;
///         }
///         yield_!(word);
///     }
/// }
///
/// #[generator]
/// fn parse_all(lines: Vec<&'static str>) -> impl Iterator<Item = Result<u32, std::num::ParseIntError>> {
///     yield_from!([Ok(0)]);
///     for line in lines {
///         yield_!(Ok(line.parse::<u32>()?)); // an Err is yielded, then the generator ends
///     }
/// }
///
/// assert_eq!(fib().take(5).collect::<Vec<_>>(), [0, 1, 1, 2, 3]);
/// assert_eq!(words("a b stop c", "stop").collect::<Vec<_>>(), ["a", "b"]);
/// let parsed: Vec<_> = parse_all(vec!["1", "x", "3"]).collect();
/// assert_eq!(parsed.len(), 3);
/// assert!(parsed[2].is_err());
/// ```
///
/// # In the body
///
/// - `yield_!(v)` may also sit inside other macros whose input holds expressions (`vec!`,
///   `matches!`, `format!`, `tokio::select!` / `futures::select!` arms, your own
///   `macro_rules!`): it is rewritten there like anywhere else. Inside a closure, an `async`
///   block or a nested fn it is a compile error, since it could not suspend this generator.
/// - In an `async` generator, `#[for_await] for x in stream { … }` loops over a stream (rustc
///   rejects `for await` in an attribute macro's input; [`stream!`] accepts `for await`).
/// - `?` needs items of type `Result<T, E>` (or, in a coroutine, a `Result` return type);
///   elsewhere it is a compile error that says so.
///
/// # Coroutines: resume arguments and return values
///
/// Declared as `-> impl Coroutine<A, Yield = Y, Return = R>` (or, on an `async fn`,
/// `impl AsyncCoroutine<…>`; both in [`iter`]), the generator is resumed with arguments:
/// `let reply = yield_!(request);` receives what the next `resume(arg)` passed, and the body's
/// value (or `return r;`) completes it. The first `resume` starts the body; its argument goes to
/// the parameter marked `#[resume]`, which is not a parameter of the fn the caller sees (it is
/// required unless `A` is `()`). The caller sees [`iter::CoroutineState`]'s `Yielded(y)` /
/// `Complete(r)`, the shape of nightly's `CoroutineState`. Stackless like the others: one
/// allocation at creation, none per step.
///
/// ```
/// use gonext::iter::{Coroutine, CoroutineState::*};
///
/// /// Sans-IO: fed the bytes a transport read, yields each complete line's length.
/// #[gonext::generator]
/// fn line_lengths(#[resume] first: Vec<u8>) -> impl Coroutine<Vec<u8>, Yield = Vec<usize>, Return = usize> {
///     let (mut buffer, mut lines) = (first, 0);
///     while !buffer.is_empty() || lines == 0 {
///         let mut lengths = Vec::new();
///         while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
///             lengths.push(buffer.drain(..=end).count() - 1);
///             lines += 1;
///         }
///         let more = yield_!(lengths);
///         if more.is_empty() {
///             break;
///         }
///         buffer.extend(more);
///     }
///     lines
/// }
///
/// let mut parser = line_lengths();
/// assert_eq!(parser.resume(b"ab\ncd".to_vec()), Yielded(vec![2]));
/// assert_eq!(parser.resume(b"e\n".to_vec()), Yielded(vec![3]));
/// assert_eq!(parser.resume(Vec::new()), Complete(2));
/// ```
///
/// `yield_from!` is not available in coroutines (each yield there receives an argument).
///
/// # Boxed generators: recursion, trait methods, struct fields
///
/// `#[generator(boxed)]` (or `boxed_local` for bodies that are not `Send`) returns a
/// nameable type instead of `impl Trait`: [`iter::BoxGenerator`]`<'a, T>` for an iterator,
/// [`iter::BoxAsyncGenerator`]`<'a, T>` for a stream, where `'a` is the `+ 'a` bound of the
/// declared return type (`'static` without one). The body is still boxed only once, so a
/// boxed generator can call itself and be stored or returned from a trait method. A coroutine
/// is boxed as `Box<dyn Coroutine<…>>`, which implements [`iter::Coroutine`] too.
///
/// ```
/// enum Tree { Leaf(u32), Node(Box<Tree>, Box<Tree>) }
///
/// #[gonext::generator(boxed)]
/// fn leaves(tree: &Tree) -> impl Iterator<Item = u32> + '_ {
///     match tree {
///         Tree::Leaf(v) => yield_!(*v),
///         Tree::Node(left, right) => {
///             yield_from!(leaves(left));
///             yield_from!(leaves(right));
///         }
///     }
/// }
///
/// let tree = Tree::Node(Box::new(Tree::Leaf(1)), Box::new(Tree::Leaf(2)));
/// let walk: gonext::iter::BoxGenerator<'_, u32> = leaves(&tree);
/// assert_eq!(walk.collect::<Vec<_>>(), [1, 2]);
/// ```
///
/// # Differences from Go
///
/// Go generators are push functions (`func(yield func(T) bool)`) driven by the `for` loop;
/// a `#[generator]` is compiled into a pull `Iterator`, so it composes with every iterator
/// adapter and stops simply by not being polled. Stable Rust does not accept the `yield`
/// keyword in an attribute macro's input, hence `yield_!`; [`seq!`] and [`stream!`] accept
/// `yield v;`. Go has no coroutines with resume values; nightly Rust's `Coroutine::resume`
/// takes `Pin<&mut Self>`, gonext's (boxed, so `Unpin`) takes `&mut self`.
pub use gonext_macros::generator;

/// A generator block with the real `yield` keyword, as an `impl Iterator`.
///
/// `yield v;` yields a value and `yield from iter;` every value of an iterator; the block
/// captures its environment by move, as an `async move` block does. A `yield` inside another
/// macro's input (`vec!`, `matches!`, your `macro_rules!`) is rewritten too; one whose
/// following tokens do not parse as an expression is a compile error on that `yield`. A block
/// without any `yield` has items `()`, as async-stream's do. `?` needs [`try_seq!`].
///
/// ```
/// let limit = 20;
/// let evens = gonext::seq! {
///     for x in 0..limit {
///         if x % 2 == 0 {
///             yield x;
///         }
///     }
///     yield from [100, 200];
/// };
/// assert_eq!(evens.filter(|x| x % 3 == 0).collect::<Vec<_>>(), [0, 6, 12, 18]);
/// ```
pub use gonext_macros::seq;

/// A generator block with the real `yield` keyword and `.await`, as a `futures::Stream`.
///
/// It runs under any executor: pending awaits forward the caller's waker. `for await x in s
/// { … }` loops over another stream, and a `yield` inside `tokio::select!` /
/// `futures::select!` arms (or any macro whose input holds expressions) is rewritten. As in
/// [`seq!`], a block without `yield` has items `()`, and `?` needs [`try_stream!`].
///
/// ```
/// use futures::StreamExt;
/// use std::time::Duration;
///
/// let ticks = gonext::stream! {
///     for i in 0..3u32 {
///         gonext::time::sleep(Duration::from_millis(1)).await;
///         yield i;
///     }
/// };
/// let got: Vec<u32> = futures::executor::block_on(ticks.collect());
/// assert_eq!(got, [0, 1, 2]);
/// ```
pub use gonext_macros::stream;

/// [`seq!`] for fallible work: the items are `Result`s, `yield v;` yields `Ok(v)`, and `?` on
/// an error yields the `Err` (converted with `From`, as `?` does) and ends the block.
///
/// The item type is inferred, so the error type must be known from where the block is used —
/// usually the return type of the fn around it, as below.
///
/// ```
/// use std::num::ParseIntError;
///
/// fn numbers(lines: &[&'static str]) -> impl Iterator<Item = Result<u32, ParseIntError>> {
///     let lines = lines.to_vec();
///     gonext::try_seq! {
///         for line in lines {
///             yield line.trim().parse::<u32>()? * 10;
///         }
///     }
/// }
///
/// let items: Vec<_> = numbers(&["1", " 2", "x", "4"]).collect();
/// assert_eq!(items[..2], [Ok(10), Ok(20)]);
/// assert!(items[2].is_err()); // the parse error, and then nothing: "4" is never read
/// assert_eq!(items.len(), 3);
/// ```
///
/// A block with no `yield` has items `Result<(), E>`, and `seq!`/`stream!` blocks with no
/// `yield` have items `()`, as async-stream's do.
pub use gonext_macros::try_seq;

/// [`stream!`] for fallible work: the items are `Result`s, `yield v;` yields `Ok(v)`, and `?`
/// yields the `Err` and ends the stream — async-stream's `try_stream!`.
///
/// ```
/// use futures::StreamExt;
///
/// fn checked(values: Vec<i64>) -> impl futures::Stream<Item = Result<i64, String>> {
///     gonext::try_stream! {
///         for await v in futures::stream::iter(values) {
///             if v < 0 {
///                 Err(format!("negative: {v}"))?;
///             }
///             yield v;
///         }
///     }
/// }
///
/// let got: Vec<_> = futures::executor::block_on(checked(vec![1, -2, 3]).collect());
/// assert_eq!(got, [Ok(1), Err("negative: -2".to_owned())]);
/// ```
pub use gonext_macros::try_stream;

/// Yields a value from a [`generator`] body; anywhere else it is a compile error that says
/// where it may be used.
///
/// Inside a `#[generator]` fn it needs no import: the attribute rewrites it. In a coroutine
/// it evaluates to the argument of the next `resume` (see [`generator`]).
///
/// ```
/// #[gonext::generator]
/// fn squares(n: u32) -> impl Iterator<Item = u32> {
///     for i in 1..=n {
///         yield_!(i * i);
///     }
/// }
///
/// assert_eq!(squares(3).collect::<Vec<_>>(), [1, 4, 9]);
/// ```
pub use gonext_macros::yield_;

/// Yields every value of an iterator (a stream, in an async generator) from a [`generator`]
/// body, in order, before the body goes on; anywhere else it is a compile error.
///
/// ```
/// #[gonext::generator]
/// fn framed(items: Vec<&'static str>) -> impl Iterator<Item = &'static str> {
///     yield_!("[");
///     yield_from!(items);
///     yield_!("]");
/// }
///
/// assert_eq!(framed(vec!["a", "b"]).collect::<String>(), "[ab]");
/// ```
pub use gonext_macros::yield_from;

/// A block whose `go` statements start tasks on gonext's worker pool; the block returns its
/// value only after every task has finished: Go's `go` statement inside a nursery.
///
/// `go f(a, b);` and `go recv.method(a);` evaluate the callee and the arguments in the parent,
/// at the `go` statement, as Go does (a receiver that is a place is borrowed), then run the
/// call as a task; `go { … }` runs a block that borrows from the surroundings, `go move { … }`
/// one that moves them, and `go |ctx| …` (or `go move |ctx| …`) a closure that receives the
/// scope's [`Context`](context::Context). `go` may appear in loops, `if`s and `match` arms,
/// and inside a task's own body, where it starts a sibling in the same scope (recursive
/// worklists, parallel tree walks); never in another closure or a nested fn. Tasks may borrow
/// anything that outlives the `scope!`, as with `std::thread::scope`.
///
/// ```
/// use gonext::scope;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// fn add(total: &AtomicU64, n: u64) {
///     total.fetch_add(n, Ordering::Relaxed);
/// }
///
/// let sum = AtomicU64::new(0);
/// let total = &sum;
/// let words = ["go", "statement", "scope"];
/// let count = scope!(limit = 2; {
///     for n in 1..=10 {
///         go add(total, n); // `n` is evaluated here, at the go statement
///     }
///     for word in &words {
///         go move |_ctx| add(total, word.len() as u64);
///     }
///     go { add(total, 100) }
///     words.len()
/// });
/// assert_eq!(count, 3);
/// assert_eq!(sum.load(Ordering::Relaxed), 55 + 16 + 100);
/// ```
///
/// # Results
///
/// `go` used as an expression — `let h = go f(x);`, an argument, an array element, or the
/// block's last expression — gives the task's [`TaskHandle`](sync::TaskHandle): its
/// `join()` returns what the task returned (and resumes its panic). Handles can be joined by
/// the body or by other tasks, or returned from the block; one that is dropped unjoined is
/// still joined by the scope. [`sync::as_completed`] joins many in the order they finish.
///
/// ```
/// use gonext::scope;
///
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// let (a, b) = scope! {
///     let a = go fib(20);
///     let b = go fib(21);
///     (a.join(), b.join())
/// };
/// assert_eq!(a + b, fib(22));
/// ```
///
/// # Options and cancellation
///
/// Options come first, `name = value` separated by commas and ended by `;`:
///
/// - `limit = N` bounds the running tasks (`go` waits for a slot; errgroup's `SetLimit`);
/// - `ctx = parent` makes the scope's context a child of `parent` (a `Context` or a
///   reference); without it the scope's context derives from the scope or task the `scope!`
///   runs in, so cancelling an outer scope reaches the tasks of every scope nested in its tasks;
/// - `timeout = "5s"` (a Go duration, checked at compile time, or a `Duration` expression) and
///   `deadline = at` (a [`time::Instant`]) cancel the scope's context then — on the virtual
///   clock inside a bubble;
/// - `policy = supervisor`: a failure does not cancel the siblings (Kotlin's
///   `supervisorScope`); the default, `fail_fast`, cancels them.
///
/// A leading `|s|` names the scope for the body: `s.context()`, and `s.cancel()` to cancel it
/// (Trio's `cancel_scope.cancel()`). Once the scope is cancelled, `go` starts no new task: a
/// statement's task is skipped, and a handle's `join` unwinds with [`sync::Canceled`], which
/// the scope around treats as cancellation, not failure (use `try_join` to handle it).
///
/// ```
/// use gonext::{scope, select, thread, time};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let start = time::Instant::now();
///     let stopped = scope!(timeout = "2s"; |s| {
///         let worker = go |ctx| select! {
///             _ = ctx.done() => "stopped by the timeout",
///             _ = time::sleep(Duration::from_secs(60)) => "ran its minute",
///         };
///         assert!(!s.context().is_done());
///         worker.join()
///     });
///     assert_eq!(stopped, "stopped by the timeout");
///     assert_eq!(start.elapsed(), Duration::from_secs(2)); // virtual seconds, at once
/// });
/// ```
///
/// A panicking task cancels the others' context (unless supervised), waits for them, and
/// resumes in the parent with its original payload. Inside a virtual-time bubble, tasks are
/// bubble members and the join is a durable block. [`scope()`] is the same without a macro.
///
/// # Differences from Go
///
/// A Go `go` statement can outlive its caller; a gonext `go` cannot outlive its `scope!`
/// (structured concurrency, as in Go's proposal #40221 and the nursery pattern), and it can
/// return a value. A Go goroutine started after its context was cancelled still runs; a
/// cancelled scope starts nothing. Tasks run on about `runtime::max_procs()` reusable OS
/// threads, not goroutines: a task that blocks in a gonext primitive (channel, `WaitGroup`,
/// nested scope) is replaced by another thread at once, one blocked elsewhere (std locks,
/// I/O) after a tick of a few milliseconds. A million queued tasks are cheap; a million
/// blocked at the same time are a million threads.
pub use gonext_macros::scope;

/// [`scope!`] for tasks that may fail: tasks return `()` or `Result<T, E>`, the block's value
/// is wrapped in `Ok`, and the first `Err` — of a task, or of the body through `?` or
/// `return Err(…)` — cancels the scope's context and, once every task has finished, is the
/// block's value. Go's `errgroup.WithContext` with `go` syntax.
///
/// ```
/// use gonext::context::Context;
/// use gonext::try_scope;
///
/// fn check(ctx: &Context, n: u32) -> Result<(), String> {
///     if ctx.is_done() {
///         return Ok(()); // a sibling failed: stop early
///     }
///     if n == 3 { Err(format!("{n} is unlucky")) } else { Ok(()) }
/// }
///
/// let result = try_scope! {
///     for n in 0..5 {
///         go move |ctx| check(ctx, n); // `move`: each task owns its `n`
///     }
///     "all checked"
/// };
/// assert_eq!(result, Err("3 is unlucky".to_owned()));
///
/// let all: Result<(), Vec<String>> = try_scope!(errors = all, policy = supervisor; {
///     go |_ctx| Err::<(), _>("a".to_owned());
///     go |_ctx| Err::<(), _>("b".to_owned());
/// });
/// assert_eq!(all.map_err(|e| e.len()), Err(2));
/// ```
///
/// A handle's `join` returns the task's `Result`, so `h.join()?` hands its error to the body;
/// the error of a task nobody joined goes to the scope. `?` in the body cancels the tasks,
/// joins them, and returns that error:
///
/// ```
/// use gonext::try_scope;
///
/// fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
///     text.trim().parse()
/// }
///
/// let sum: Result<u32, std::num::ParseIntError> = try_scope! {
///     let a = go parse("20");
///     let b = go parse(" 22");
///     a.join()? + b.join()?
/// };
/// assert_eq!(sum, Ok(42));
/// let bad: Result<u32, std::num::ParseIntError> = try_scope! { parse("x")? + 1 };
/// assert!(bad.is_err());
/// ```
///
/// It takes [`scope!`]'s options, and:
///
/// - `errors = all`: `Err(Vec<E>)` with every error, in the order they happened;
/// - `policy = first_success`: a race (Java's `anySuccessfulResultOrThrow`): the first task
///   to return `Ok(v)` cancels the others and the block is `Ok(v)`; if none succeeds it is
///   `Err(Vec<E>)` with every error. The body's value must be `()`, and its `go`s have no
///   handles.
///
/// ```
/// use gonext::context::Context;
/// use gonext::{select, time, try_scope};
/// use std::time::Duration;
///
/// fn mirror(ctx: &Context, name: &'static str, secs: u64) -> Result<&'static str, String> {
///     select! {
///         _ = time::sleep(Duration::from_secs(secs)) => Ok(name),
///         _ = ctx.done() => Err(format!("{name} was cancelled")),
///     }
/// }
///
/// time::bubble(|| {
///     let fastest = try_scope!(policy = first_success; {
///         go |ctx| mirror(ctx, "eu", 3);
///         go |ctx| mirror(ctx, "us", 1);
///     });
///     assert_eq!(fastest, Ok("us"));
/// });
/// ```
///
/// [`try_scope()`] is the same without a macro.
pub use gonext_macros::try_scope;

/// [`scope!`] for async code: an `async` block whose `go` statements add futures that the
/// block polls itself, together with its own body — no spawning, no `'static`, any executor.
///
/// `go fut;` evaluates `fut` at the `go` (calling an async fn evaluates its arguments there);
/// `go { … }` / `go move { … }` run a block as a future; `go |ctx| …` builds the future from
/// the scope's [`Context`](context::Context). As an expression, `go` gives the child's
/// [`AsyncTaskHandle`](sync::AsyncTaskHandle), a future of its output; a handle returned
/// from the block holds the output. The block's value comes back once every child finished.
/// A child's panic drops the body and every other child, then resumes;
/// [`try_async_scope!`] does the same with a child's `Err`.
///
/// Each child is woken on its own: a wake-up polls the woken child only, not all of them.
/// Options: `limit = N` (children beyond `N` live ones wait, unpolled, for a slot), `ctx`,
/// `timeout` and `deadline` as in [`scope!`]; `|s|` names the scope.
///
/// ```
/// use gonext::async_scope;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// async fn add(total: &AtomicU32, n: u32) -> u32 {
///     gonext::time::sleep(std::time::Duration::from_millis(1)).await;
///     total.fetch_add(n, Ordering::SeqCst);
///     n
/// }
///
/// let total = AtomicU32::new(0);
/// let (children, last) = futures::executor::block_on(async_scope!(limit = 2; {
///     for n in 1..=3 {
///         go add(&total, n);
///     }
///     let last = go add(&total, 4);
///     (4, last.await)
/// }));
/// assert_eq!((children, last, total.load(Ordering::SeqCst)), (4, 4, 10));
/// ```
///
/// # Differences from Go
///
/// Go has no async/await; this is the async twin of [`scope!`], like moro's `async_scope!`.
/// Children are polled on the task that awaits the scope, not in parallel, and a failure
/// cancels them by dropping them rather than through their `Context`.
pub use gonext_macros::async_scope;

/// [`async_scope!`] whose children and body may fail: children return `()` or `Result<T, E>`,
/// the body's value is wrapped in `Ok`, and `?` in the body returns its error. The first
/// `Err` — of a child or of the body — drops the body and every other child at once and is the
/// block's value.
///
/// ```
/// use gonext::try_async_scope;
/// use std::time::Duration;
///
/// async fn fetch(n: u32) -> Result<u32, String> {
///     gonext::time::sleep(Duration::from_millis(u64::from(n))).await;
///     if n == 2 { Err(format!("{n} failed")) } else { Ok(n * 10) }
/// }
///
/// let result: Result<u32, String> = futures::executor::block_on(try_async_scope! {
///     let one = go fetch(1);
///     go fetch(2);
///     go fetch(1000); // dropped when fetch(2) fails, long before its sleep ends
///     one.await? + 1
/// });
/// assert_eq!(result, Err("2 failed".to_owned()));
/// ```
pub use gonext_macros::try_async_scope;

/// Memoizes a function returning [`Ptr<V>`](Ptr) (or `Result<Ptr<V>, E>`) by its arguments,
/// for as long as anyone holds the value: the cache of Go's weak-pointer proposal.
///
/// Equal arguments — owned into a key: `&str` becomes `String`, other references go through
/// `ToOwned` — return the same `Ptr` while any strong reference lives. When the value dies a
/// cleanup removes its entry, so the cache never keeps values alive and stays bounded.
/// Concurrent calls with an equal key run the body once and share the result (singleflight);
/// errors are not cached and a panicking body does not poison the key. A companion type with
/// the same name (an empty enum, so `load_config::len()` reads like a module path) offers
/// `len()`, `is_empty()`, `clear()`, `invalidate(args…) -> bool` (forget one key's value, on
/// every thread) and `stats()` ([`weak::CacheStats`]: hits and misses, counted per thread so
/// that hits still write no shared memory). The fn may sit at module level or inside a fn
/// body. For a map of your own, outside a fn, use [`weak::WeakMap`].
///
/// ```
/// use gonext::{Ptr, weak_cache};
///
/// #[weak_cache]
/// fn load_config(name: &str, version: u32) -> Ptr<String> {
///     Ptr::new(format!("{name}@{version}"))
/// }
///
/// fn main() {
///     let a = load_config("db", 3);
///     let b = load_config("db", 3);
///     assert!(Ptr::ptr_eq(&a, &b)); // the body ran once
///     assert_eq!(load_config::len(), 1);
///     assert_eq!(load_config::stats().hits, 1);
///     assert!(load_config::invalidate("db", 3)); // the next call loads again
///     assert!(!Ptr::ptr_eq(&a, &load_config("db", 3)));
///     drop((a, b));
///     gonext::runtime::flush_cleanups(); // the dead entry is removed by its cleanup
///     assert_eq!(load_config::len(), 0);
/// }
/// ```
///
/// # Differences from Go
///
/// Go builds this by hand from `weak.Pointer`, `runtime.AddCleanup` and a map; the attribute
/// writes it for one function, with the singleflight Go's sketch leaves out.
pub use gonext_macros::weak_cache;

/// Waits for the first of several futures to complete, from blocking code: Go's `select`.
///
/// Each branch is `pattern = future => body`. When several are ready, one is chosen uniformly
/// at random, as Go does, so a busy branch cannot starve the others; `biased;` as the first
/// line polls them in written order instead (tokio's opt-in). The winner's output is matched
/// against its `pattern` and its body runs. A branch whose output does not match is disabled
/// and the others are still awaited (with none left, `default` runs, or `select!` panics
/// without one). Inside a bubble the wait is a durable block, and the random choices come from
/// the bubble's seeded sequence, so a run in virtual time repeats exactly. With a
/// `default => body` branch, `select!` does not wait: if nothing is ready on the first poll,
/// `default` runs. The futures that lose are dropped, which cancels them: a channel receive
/// that lost takes no value, a send that lost sends nothing.
///
/// ```
/// use gonext::context::Context;
/// use gonext::{select, sync, thread, time};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let (tx, rx) = sync::chan::<&str>(0);
///     let (ctx, cancel) = Context::background().with_cancel();
///     let sender = tx.clone();
///     thread::spawn(move || {
///         thread::sleep(Duration::from_secs(1));
///         sender.send("ping").unwrap();
///     });
///     let got = select! {
///         msg = rx.recv_async() => msg,
///         _ = ctx.done() => None,
///         _ = time::sleep(Duration::from_secs(5)) => Some("timeout"),
///     };
///     assert_eq!(got, Some("ping"));
///     let polled = select! {
///         msg = rx.recv_async() => msg,
///         default => Some("nothing ready"),
///     };
///     assert_eq!(polled, Some("nothing ready")); // `tx` is alive: the channel is open, empty
///     let urgent_first = select! {
///         biased;
///         _ = ctx.done() => "cancelled",
///         _ = std::future::ready(()) => "work",
///     };
///     assert_eq!(urgent_first, "work"); // `ctx` is not done: the first branch is pending
///     drop(cancel);
/// });
/// ```
///
/// # Differences from Go
///
/// Go's choice is random on every run; gonext's is random too, except inside a virtual-time
/// bubble, where each bubble draws from the same seeded sequence so that a test repeats.
/// `select!` blocks the thread; in async code, use your runtime's `select!` over the same
/// futures.
pub use gonext_macros::select;

/// Turns a test function (sync or `async`) into a `#[test]` that runs in a virtual-time
/// bubble: Go's `synctest.Test`.
///
/// Options, all checked at compile time:
///
/// - `start = "2024-02-29T12:00:00Z"`: where the virtual clock starts (RFC 3339; the
///   default is 2000-01-01T00:00:00Z);
/// - `timeout = "10m"`: fail once the virtual clock would pass this (Go-style durations:
///   `1h30m`, `1.5s`, `250ms`);
/// - `stall = "30s"`: fail when nothing moves for this much real time (default 30 s);
/// - `tokio` (or `tokio = "current_thread"`), `tokio = "multi_thread"` with an optional
///   `worker_threads = 4`: run the `async fn` on a tokio runtime built inside the bubble, I/O
///   and time enabled, on the bubble's clock — what `#[tokio::test(start_paused = true)]` does
///   with tokio's paused clock, for multi-thread runtimes too, and for std and gonext time
///   alongside. It needs the `std-time` feature (a compile error says so without it) and
///   `tokio` among the crate's dependencies; see [tokio in a bubble](time#tokio-in-a-bubble).
///
/// std's own clocks, sleeps and timed waits (and the crates built on them) are virtual in the
/// test only with gonext's `std-time` feature, on Linux with glibc; otherwise they keep real
/// time. Assert [`time::std_time_is_virtual`] in a test that depends on it. See
/// [Virtual time for std code](time#virtual-time-for-std-code).
///
/// ```
/// # use gonext::virtual_time_test;
/// #[virtual_time_test(timeout = "1h")]
/// fn retry_backs_off() {
///     let start = gonext::time::Instant::now();
///     gonext::thread::sleep(std::time::Duration::from_millis(300));
///     assert_eq!(start.elapsed(), std::time::Duration::from_millis(300));
/// }
///
/// #[virtual_time_test(start = "2024-02-29T12:00:00Z")]
/// async fn leap_day() {
///     let now = gonext::time::SystemTime::now();
///     let secs = now.duration_since(gonext::time::SystemTime::UNIX_EPOCH).unwrap().as_secs();
///     assert_eq!(secs, 1_709_208_000);
/// }
/// ```
///
/// With tokio (and `features = ["std-time"]`):
///
/// ```ignore
/// #[gonext::virtual_time_test(tokio = "multi_thread", worker_threads = 2)]
/// async fn backoff_on_tokio() {
///     let start = tokio::time::Instant::now();
///     tokio::time::sleep(std::time::Duration::from_secs(3600)).await; // returns at once
///     assert_eq!(start.elapsed(), std::time::Duration::from_secs(3600));
/// }
/// ```
pub use gonext_macros::virtual_time_test;

#[cfg(doctest)]
mod readme;

#[doc(hidden)]
pub mod __private {
    //! Support items for the expansions of gonext's macros. Not public API: anything here
    //! may change in any release.

    use std::panic::Location;
    use std::task::Poll;
    use std::time::Duration;

    pub use crate::context::Context;
    pub use crate::iter::coroutine::{AsyncStacklessCoroutine, CoYielder, SyncCoroutine};
    pub use crate::iter::stackless::{TryItem, Yielder, next_of};
    pub use crate::iter::{
        AsyncGenerator, BoxAsyncGenerator, BoxGenerator, Generator, LocalBoxAsyncGenerator, LocalBoxGenerator,
    };
    pub use crate::scope::{AsyncScope, Fallible, Options as ScopeOptions, Scope, run_scope};
    pub use ::core::convert::Infallible;

    /// The value of a `scope!`, whose tasks cannot fail.
    pub fn scope_value<T>(result: Result<T, Vec<std::convert::Infallible>>) -> T {
        match result {
            Ok(value) => value,
            Err(errors) => match errors.into_iter().next() {
                Some(never) => match never {},
                None => unreachable!("a failed scope has an error"),
            },
        }
    }

    /// The value of a `try_scope!`: its first error, if any.
    pub fn first_error<T, E>(result: Result<T, Vec<E>>) -> Result<T, E> {
        result.map_err(|errors| errors.into_iter().next().expect("a failed scope has an error"))
    }

    /// The parent context of a scope's `ctx = …` option, given a `Context` or a reference.
    pub fn context_of(ctx: &Context) -> Context {
        ctx.clone()
    }

    /// The winner of a `policy = first_success` scope: the first task's success.
    #[derive(Debug)]
    pub struct Race<V>(std::sync::Mutex<Option<V>>);

    impl<V> Race<V> {
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Race(std::sync::Mutex::new(None))
        }
    }

    /// A race task's output: a success is kept if it is the first, and cancels the others.
    pub fn race_offer<V: Send, E: Send>(
        race: &Race<V>,
        scope: &Scope<'_, '_, Fallible<E>>,
        output: Result<V, E>,
    ) -> Result<(), E> {
        let value = output?;
        let mut winner = race.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if winner.is_none() {
            *winner = Some(value);
            drop(winner);
            scope.cancel();
        }
        Ok(())
    }

    /// The value of a `policy = first_success` scope: the winner, or every error.
    pub fn race_result<V, E>(race: &Race<V>, result: Result<(), Vec<E>>) -> Result<V, Vec<E>> {
        let winner = race.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        match (winner, result) {
            (Some(value), _) => Ok(value),
            (None, Err(errors)) => Err(errors),
            (None, Ok(())) => Err(Vec::new()),
        }
    }
    pub use crate::time;
    pub use crate::weak::cache::{CacheKey, CacheStats, WeakCache};

    pub use crate::time::runtime_hooks::OneClock;

    /// Fails to compile, naming the feature, when `#[virtual_time_test(tokio)]` is used where
    /// std's time is not virtual: tokio parks in std calls, which only the `std-time` layer
    /// makes virtual.
    pub const fn assert_std_time_for_tokio() {
        #[cfg(not(gonext_std_time))]
        panic!(
            "#[virtual_time_test(tokio)] needs gonext's `std-time` feature (Linux with glibc, x86_64 or \
             aarch64): add `features = [\"std-time\"]` to gonext in [dev-dependencies]"
        );
    }

    /// The entry points of `#[weak_cache]` expansions.
    pub mod weak_cache {
        pub use crate::weak::cache::{clear, get_or_load, invalidate, len, stats, try_get_or_load};
    }

    /// Fails to compile, with `CacheKey`'s message, when an argument cannot key a cache.
    pub const fn assert_cache_key<K: CacheKey>() {}
    pub use futures_core::Stream;

    /// The `start` option of `#[virtual_time_test]`.
    pub fn unix_time(secs: u64, nanos: u32) -> time::SystemTime {
        time::SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// Taken before a `select!` branch is polled: a branch that is pending without a gonext
    /// primitive saying so waits on something foreign, so the select is not a durable block.
    #[derive(Clone, Copy, Debug)]
    pub struct PendingMarker(crate::time::bubble::PendingMarker);

    impl PendingMarker {
        #[allow(clippy::new_without_default)]
        pub fn new() -> PendingMarker {
            PendingMarker(crate::time::bubble::PendingMarker::new())
        }

        pub fn foreign_if_silent(self, site: &'static Location<'static>) {
            self.0.foreign_if_silent(site, "select! (a branch that is not a gonext primitive)");
        }
    }

    /// The order in which an unbiased `select!` polls its `N` branches this time: a uniformly
    /// random permutation, so that the first ready branch in it is uniformly random among the
    /// ready ones (Go's rule). Inside a bubble the numbers come from the bubble's seeded
    /// sequence, so a run repeats exactly; outside, from a per-thread generator.
    pub fn select_order<const N: usize>() -> [usize; N] {
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        let mut random = crate::time::bubble::with_current(|current| match current {
            Some(current) => current.bubble.next_random(),
            None => thread_random(),
        });
        for i in (1..N).rev() {
            // Multiply-shift: an unbiased enough index in 0..=i from 32 fresh bits.
            let j = ((random & 0xffff_ffff) * (i as u64 + 1)) >> 32;
            order.swap(i, j as usize);
            random = random.rotate_right(32) ^ random.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        order
    }

    /// A per-thread xorshift generator, seeded once from std's random hasher keys.
    fn thread_random() -> u64 {
        use std::cell::Cell;
        use std::hash::BuildHasher;
        thread_local! {
            static STATE: Cell<u64> = Cell::new(std::hash::RandomState::new().hash_one(0u8) | 1);
        }
        STATE.with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x
        })
    }

    /// The wait of `select!`: polls once with `default`, else blocks (durably in a bubble)
    /// until a branch is ready.
    pub fn select<T>(
        has_default: bool,
        site: &'static Location<'static>,
        mut poll: impl FnMut(&mut std::task::Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        if has_default {
            return match poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            };
        }
        Some(crate::time::bubble::block_on(std::future::poll_fn(poll), site, "select!"))
    }
}
