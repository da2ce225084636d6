//! Generators and coroutines: Go's range-over-func and `iter.Pull`, as Rust.

use futures::StreamExt;
use gonext::iter::{Seq, Yield, pull};
use gonext::{generator, seq, stream};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[generator]
fn fibonacci() -> impl Iterator<Item = u64> {
    let (mut a, mut b) = (0u64, 1u64);
    loop {
        yield_!(a);
        (a, b) = (b, a.wrapping_add(b));
    }
}

/// Go's `Take(seq, n)` as a generator over another iterator.
#[generator]
fn take<I: Iterator>(source: I, n: usize) -> impl Iterator<Item = I::Item> {
    if n == 0 {
        return;
    }
    let mut taken = 0;
    for item in source {
        yield_!(item);
        taken += 1;
        if taken == n {
            return;
        }
    }
}

#[test]
fn fibonacci_sequence_with_take_matches_go() {
    assert_eq!(take(fibonacci(), 10).collect::<Vec<_>>(), [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
    assert_eq!(take(fibonacci(), 0).count(), 0);
}

#[test]
fn early_break_stops_the_generator_and_it_stays_fused() {
    let mut fib = fibonacci();
    for (i, v) in fib.by_ref().enumerate() {
        if v > 100 {
            assert_eq!(i, 12);
            break;
        }
    }
    assert_eq!(fib.next(), Some(233));
    let mut short = take(0..3, 2);
    assert_eq!(short.size_hint(), (0, None));
    assert_eq!((short.next(), short.next(), short.next(), short.next()), (Some(0), Some(1), None, None));
    assert_eq!(short.size_hint(), (0, Some(0)));
}

#[generator]
fn words<'a>(text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    for word in text.split(' ') {
        if !word.is_empty() {
            yield_!(word);
        }
    }
}

struct Library {
    books: Vec<String>,
}

impl Library {
    #[generator]
    fn titles_longer_than(&self, min: usize) -> impl Iterator<Item = &str> + '_ {
        for book in &self.books {
            if book.len() > min {
                yield_!(book.as_str());
            }
        }
    }
}

#[test]
fn generators_borrow_their_arguments_and_self() {
    let text = String::from("to  be or not");
    assert_eq!(words(&text).collect::<Vec<_>>(), ["to", "be", "or", "not"]);
    let library = Library { books: vec!["Dune".into(), "Middlemarch".into(), "Emma".into()] };
    assert_eq!(library.titles_longer_than(4).collect::<Vec<_>>(), ["Middlemarch"]);
}

#[generator]
fn parse_numbers(lines: Vec<&'static str>) -> impl Iterator<Item = Result<i32, std::num::ParseIntError>> {
    for line in lines {
        let n: i32 = line.trim().parse()?;
        yield_!(Ok(n * 10));
    }
}

#[test]
fn question_mark_yields_the_error_and_ends_the_generator() {
    let results: Vec<_> = parse_numbers(vec!["1", "2", "three", "4"]).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[..2], [Ok(10), Ok(20)]);
    assert!(results[2].is_err());
    assert_eq!(parse_numbers(vec!["5"]).collect::<Vec<_>>(), [Ok(50)]);
}

#[generator]
fn nested_sources() -> impl Iterator<Item = u32> {
    yield_from!([1, 2]);
    yield_from!(seq! { yield 3; yield from 4..6; });
    yield_!(6);
}

#[test]
fn yield_from_delegates_to_other_iterators() {
    assert_eq!(nested_sources().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
}

/// Counts live values so that dropping a suspended generator is observable.
struct Guard(Rc<Cell<u32>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn dropping_a_suspended_generator_runs_its_destructors() {
    let dropped = Rc::new(Cell::new(0));
    let counter = Rc::clone(&dropped);
    let mut generator = seq! {
        let _guard = Guard(counter);
        for i in 0.. {
            yield i;
        }
    };
    assert_eq!(generator.next(), Some(0));
    assert_eq!(dropped.get(), 0);
    drop(generator);
    assert_eq!(dropped.get(), 1, "the local guard was dropped with the generator");
}

#[test]
fn a_panicking_generator_drops_its_locals_and_is_finished_afterwards() {
    let dropped = Rc::new(Cell::new(0));
    let counter = Rc::clone(&dropped);
    let mut generator = seq! {
        let _guard = Guard(counter);
        yield 1;
        panic!("the body failed");
    };
    assert_eq!(generator.next(), Some(1));
    let panic = catch_unwind(AssertUnwindSafe(|| generator.next())).expect_err("the body panics");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the body failed"));
    assert_eq!(dropped.get(), 1, "the unwind dropped the body's locals");
    assert_eq!(generator.next(), None, "a panicked generator is finished, not poisoned");
    assert_eq!(generator.size_hint(), (0, Some(0)));
}

#[test]
fn a_panicking_stream_drops_its_locals_and_is_finished_afterwards() {
    use futures::stream::{FusedStream, Stream};
    use std::task::{Context, Poll, Waker};

    let dropped = Rc::new(Cell::new(0));
    let counter = Rc::clone(&dropped);
    let mut failing = Box::pin(stream! {
        let _guard = Guard(counter);
        yield 1u8;
        panic!("the stream failed");
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(failing.as_mut().poll_next(&mut cx), Poll::Ready(Some(1)));
    let panic = catch_unwind(AssertUnwindSafe(|| failing.as_mut().poll_next(&mut cx)));
    assert!(panic.is_err(), "the body panics");
    assert_eq!(dropped.get(), 1, "the unwind dropped the body's locals");
    assert!(failing.is_terminated());
    assert_eq!(failing.as_mut().poll_next(&mut cx), Poll::Ready(None));
}

#[test]
fn generators_are_send_when_their_captures_are() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let data = vec![1u64, 2, 3];
    let generator = assert_send(seq! { for x in data { yield x * 2; } });
    let handle = std::thread::spawn(move || generator.sum::<u64>());
    assert_eq!(handle.join().unwrap(), 12);
}

fn tick_stream(n: u32) -> impl futures::Stream<Item = u32> {
    stream! {
        for i in 0..n {
            gonext::time::sleep(std::time::Duration::from_millis(1)).await;
            yield i;
        }
    }
}

#[generator]
async fn doubled(n: u32) -> impl futures::Stream<Item = u32> {
    yield_from!(tick_stream(n));
    let extra = async { 100 }.await;
    yield_!(extra);
}

#[test]
fn streams_run_under_futures_executor() {
    let got: Vec<u32> = futures::executor::block_on(doubled(3).collect());
    assert_eq!(got, [0, 1, 2, 100]);
}

#[test]
fn streams_run_under_tokio() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let got: Vec<u32> = runtime.block_on(async { tick_stream(4).collect().await });
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn streams_run_in_virtual_time() {
    let (got, elapsed) = gonext::time::bubble_async(async {
        let start = gonext::time::Instant::now();
        let got: Vec<u32> = tick_stream(5).collect().await;
        (got, start.elapsed())
    });
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(elapsed, std::time::Duration::from_millis(5));
}

/// Counts the wake-ups it receives.
#[derive(Default)]
struct WakeCounter(AtomicUsize);

impl std::task::Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_stream_forwards_its_callers_waker_to_the_futures_it_awaits() {
    use futures::Stream;
    use std::task::{Context, Poll, Waker};

    let stored: Rc<Cell<Option<Waker>>> = Rc::default();
    let store = Rc::clone(&stored);
    let mut ticks = Box::pin(stream! {
        let mut polled = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut polled, true) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            store.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        yield 1u8;
    });
    let counter = Arc::new(WakeCounter::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);

    assert_eq!(ticks.as_mut().poll_next(&mut cx), Poll::Pending);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "wake_by_ref reached the caller's waker");
    let clone = stored.take().expect("the awaited future kept a clone");
    assert!(clone.will_wake(&waker), "a clone of the lent waker is the caller's waker");
    std::thread::spawn(move || clone.wake()).join().unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 2, "the clone outlived the poll and woke the caller");
    assert_eq!(ticks.as_mut().poll_next(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(ticks.as_mut().poll_next(&mut cx), Poll::Ready(None));
}

#[test]
fn a_yield_smuggled_out_of_its_generator_panics_instead_of_writing() {
    use gonext::__private::{Generator, Yielder};

    let leaked: Rc<Cell<Option<Yielder<u64>>>> = Rc::default();
    let leak = Rc::clone(&leaked);
    let mut owner = Generator::<u64, _>::new(move |y: Yielder<u64>| {
        leak.set(Some(y));
        async move { y.yield_(1).await }
    });
    let smuggled = leaked.take().expect("the body builder ran");
    let mut thief = Generator::<String, _>::new(move |_: Yielder<String>| async move {
        smuggled.yield_(7).await;
    });
    let panic = catch_unwind(AssertUnwindSafe(|| thief.next())).expect_err("a foreign yield must not write");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("polled outside that generator"), "{message}");

    let polled_by_an_executor =
        catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(smuggled.yield_(2))));
    assert!(polled_by_an_executor.is_err(), "an executor's waker is not a generator's hand");
    assert_eq!(owner.next(), Some(1), "the owner is unaffected");
    assert_eq!(owner.next(), None);
}

enum Tree {
    Leaf(u32),
    Node(Box<Tree>, Box<Tree>),
}

fn build(depth: u32, next: &mut u32) -> Tree {
    if depth == 0 {
        *next += 1;
        return Tree::Leaf(*next);
    }
    Tree::Node(Box::new(build(depth - 1, next)), Box::new(build(depth - 1, next)))
}

fn walk(tree: &Tree, y: &mut Yield<'_, u32>) -> bool {
    match tree {
        Tree::Leaf(v) => y.yield_(*v),
        Tree::Node(left, right) => walk(left, y) && walk(right, y),
    }
}

#[test]
fn pull_turns_a_recursive_tree_walk_into_an_iterator() {
    let tree = build(10, &mut 0);
    let mut leaves = pull(Seq::new(move |y| {
        walk(&tree, y);
    }));
    assert_eq!(leaves.by_ref().take(3).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(leaves.count(), 1024 - 3);
}

#[test]
fn pull_stop_makes_the_producer_see_false_and_return() {
    let returned = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&returned);
    let mut values = pull(Seq::new(move |y| {
        let mut i = 0;
        while y.yield_(i) {
            i += 1;
        }
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!((values.next(), values.next()), (Some(0), Some(1)));
    values.stop();
    assert_eq!(returned.load(Ordering::SeqCst), 1);
    assert_eq!(values.next(), None);
}

#[test]
fn dropping_a_pull_unwinds_a_producer_that_ignores_stop() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counter = Arc::clone(&dropped);
    let mut stubborn = pull(Seq::new(move |y| {
        let _count = Count(counter);
        loop {
            y.yield_(7);
        }
    }));
    assert_eq!(stubborn.next(), Some(7));
    drop(stubborn);
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the producer's stack was unwound");
}

#[test]
fn a_producer_panic_resumes_in_the_consumer_and_ends_the_iteration() {
    let mut values = pull(Seq::new(|y| {
        y.yield_(1);
        panic!("producer failed");
    }));
    assert_eq!(values.next(), Some(1));
    let payload = catch_unwind(AssertUnwindSafe(|| values.next())).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"producer failed"));
    assert_eq!(values.next(), None);
}

#[test]
fn seq_for_each_pushes_without_a_coroutine_and_for_loops_pull() {
    let make = || {
        Seq::new(|y| {
            for i in 0..5 {
                if !y.yield_(i) {
                    return;
                }
            }
        })
    };
    let mut pushed = Vec::new();
    make().for_each(|v| {
        pushed.push(v);
        v < 2
    });
    assert_eq!(pushed, [0, 1, 2]);
    let mut pulled = Vec::new();
    for v in make() {
        pulled.push(v);
    }
    assert_eq!(pulled, [0, 1, 2, 3, 4]);
}

#[test]
fn many_pulls_reuse_pooled_stacks() {
    for round in 0..200u32 {
        let total: u32 = pull(Seq::new(move |y| {
            for i in 0..=round {
                y.yield_(i);
            }
        }))
        .sum();
        assert_eq!(total, round * (round + 1) / 2);
    }
}

#[test]
fn a_pull_with_a_larger_stack_walks_deeper() {
    fn deep(n: u32, y: &mut Yield<'_, u32>) -> bool {
        let padding = [n; 64];
        if n == 0 { y.yield_(padding[0]) } else { deep(n - 1, y) && std::hint::black_box(padding)[1] == n }
    }
    let mut values = gonext::iter::Pull::with_stack_size(
        Seq::new(|y| {
            deep(20_000, y);
        }),
        64 * 1024 * 1024,
    );
    assert_eq!(values.next(), Some(0));
}

#[test]
fn to_channel_feeds_several_consumers_and_closes() {
    let rx = gonext::iter::to_channel(0..1000u32, 4);
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            gonext::thread::spawn(move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(rx);
    let mut all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

#[test]
fn to_channel_producer_stops_when_the_receiver_drops() {
    let produced = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&produced);
    gonext::time::bubble(move || {
        let rx = gonext::iter::to_channel(
            (0..).inspect(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
            0,
        );
        assert_eq!(rx.recv(), Some(0));
        drop(rx);
    });
    // The bubble returned, so its member (the producer thread) has exited: it stopped after
    // the item it was blocked sending when the receiver went away.
    assert_eq!(produced.load(Ordering::SeqCst), 2);
}

// --- `?` in blocks: try_seq! and try_stream! -------------------------------------------

#[derive(Debug, PartialEq)]
enum ConfigError {
    BadNumber(String),
    Missing(&'static str),
}

impl From<std::num::ParseIntError> for ConfigError {
    fn from(error: std::num::ParseIntError) -> Self {
        ConfigError::BadNumber(error.to_string())
    }
}

fn ports(lines: Vec<&'static str>) -> impl Iterator<Item = Result<u16, ConfigError>> {
    gonext::try_seq! {
        for line in lines {
            if line.is_empty() {
                return;
            }
            let port = line.strip_prefix("port=").ok_or(ConfigError::Missing("port="))?;
            yield port.parse::<u16>()?;
        }
    }
}

#[test]
fn try_seq_yields_ok_values_and_ends_with_the_first_error_converted_by_from() {
    let got: Vec<_> = ports(vec!["port=80", "port=443", "port=http", "port=8080"]).collect();
    assert_eq!(got[..2], [Ok(80), Ok(443)]);
    assert!(matches!(&got[2], Err(ConfigError::BadNumber(message)) if message.contains("invalid digit")));
    assert_eq!(got.len(), 3, "the generator ended at the error");

    let missing: Vec<_> = ports(vec!["port=1", "host=x", "port=2"]).collect();
    assert_eq!(missing, [Ok(1), Err(ConfigError::Missing("port="))]);
    assert_eq!(
        ports(vec!["port=7", "", "port=8"]).collect::<Vec<_>>(),
        [Ok(7)],
        "`return;` ends it without an error"
    );
}

fn try_block_without_yield(fail: bool) -> impl Iterator<Item = Result<(), String>> {
    gonext::try_seq! {
        if fail {
            Err("failed".to_owned())?;
        }
    }
}

#[test]
fn a_try_block_without_yield_has_unit_ok_items() {
    assert_eq!(try_block_without_yield(true).collect::<Vec<_>>(), [Err("failed".to_owned())]);
    assert_eq!(try_block_without_yield(false).count(), 0);
}

fn doubled_lengths(words: Vec<&'static str>) -> impl futures::Stream<Item = Result<usize, std::io::Error>> {
    gonext::try_stream! {
        for word in words {
            gonext::time::sleep(std::time::Duration::from_millis(1)).await;
            if word == "eof" {
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"))?;
            }
            yield word.len() * 2;
        }
    }
}

#[test]
fn try_stream_yields_ok_values_then_the_error_and_ends() {
    let got: Vec<_> =
        futures::executor::block_on(doubled_lengths(vec!["go", "next", "eof", "never"]).collect());
    assert_eq!(got.len(), 3);
    assert_eq!((got[0].as_ref().ok(), got[1].as_ref().ok()), (Some(&4), Some(&8)));
    assert_eq!(got[2].as_ref().unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
}

// --- `yield` inside other macros --------------------------------------------------------

macro_rules! twice {
    ($e:expr) => {{
        $e;
        $e;
    }};
}

#[test]
fn yield_inside_vec_matches_and_user_macros_is_rewritten() {
    let generator = seq! {
        let mut units = vec![yield 1, yield 2];
        units.push(());
        assert_eq!(units.len(), 3);
        let mut n = 10;
        twice!({ n += 1; yield n });
        if matches!(n, 12 if { yield 100; true }) {
            yield 99;
        }
        let _ = format!("{:?}", yield 3);
    };
    assert_eq!(generator.collect::<Vec<u32>>(), [1, 2, 11, 12, 100, 99, 3]);
}

#[generator]
fn tagged(values: Vec<u32>) -> impl Iterator<Item = String> {
    for v in values {
        let label = format!("#{}", v);
        yield_!(label);
        twice!(yield_!(format!("{v}!")));
    }
}

#[test]
fn yield_macro_inside_other_macros_in_a_generator_fn() {
    assert_eq!(tagged(vec![1, 2]).collect::<Vec<_>>(), ["#1", "1!", "1!", "#2", "2!", "2!"]);
}

#[test]
fn yield_inside_tokio_select_arms() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let merged: Vec<&str> = runtime.block_on(async {
        let (fast_tx, mut fast) = tokio::sync::mpsc::channel::<&str>(4);
        let (slow_tx, mut slow) = tokio::sync::mpsc::channel::<&str>(4);
        fast_tx.send("fast").await.unwrap();
        drop(fast_tx);
        slow_tx.send("slow").await.unwrap();
        drop(slow_tx);
        let events = stream! {
            let (mut fast_open, mut slow_open) = (true, true);
            while fast_open || slow_open {
                tokio::select! {
                    biased;
                    v = fast.recv(), if fast_open => match v {
                        Some(v) => yield v,
                        None => fast_open = false,
                    },
                    v = slow.recv(), if slow_open => {
                        match v {
                            Some(v) => { yield v; }
                            None => { slow_open = false; }
                        }
                    }
                }
            }
            yield "done";
        };
        events.collect().await
    });
    assert_eq!(merged, ["fast", "slow", "done"]);
}

#[test]
fn yield_inside_futures_select_in_an_async_generator() {
    #[generator]
    async fn first_ready(a: u8, b: u8) -> impl futures::Stream<Item = u8> {
        let mut left = std::pin::pin!(futures::FutureExt::fuse(async { a }));
        let mut right = std::pin::pin!(futures::FutureExt::fuse(async { b }));
        for _ in 0..2 {
            futures::select_biased! {
                x = left => yield_!(x),
                y = right => yield_!(y * 10),
            }
        }
    }
    assert_eq!(futures::executor::block_on(first_ready(1, 2).collect::<Vec<_>>()), [1, 20]);
}

// --- `for await` --------------------------------------------------------------------------

#[test]
fn for_await_in_stream_blocks_consumes_a_stream() {
    let source = futures::stream::iter(1..=6u32);
    let evens_doubled = stream! {
        'outer: for await v in source {
            if v % 2 == 1 {
                continue;
            }
            if v > 4 {
                break 'outer;
            }
            yield v * 2;
        }
        for await (i, s) in futures::stream::iter(["a", "b"]).enumerate() {
            yield (i as u32 + 1) * 100 + s.len() as u32;
        }
    };
    assert_eq!(futures::executor::block_on(evens_doubled.collect::<Vec<_>>()), [4, 8, 101, 201]);
}

#[generator]
async fn running_sum(source: impl futures::Stream<Item = u32>) -> impl futures::Stream<Item = u32> {
    let mut sum = 0;
    #[for_await]
    for v in source {
        sum += v;
        yield_!(sum);
    }
}

#[test]
fn for_await_in_async_generator_fns_is_spelled_as_an_attribute() {
    let sums = running_sum(tick_stream(4));
    assert_eq!(futures::executor::block_on(sums.collect::<Vec<_>>()), [0, 1, 3, 6]);
}

// --- defaults: no `yield` ---------------------------------------------------------------

#[test]
fn blocks_without_yield_have_unit_items() {
    let ran = Cell::new(false);
    let flag = &ran;
    let empty = seq! {
        flag.set(true);
    };
    let items: Vec<()> = empty.collect();
    assert!(items.is_empty());
    assert!(ran.get(), "the body ran when iterated");

    let nothing = stream! {};
    let items: Vec<()> = futures::executor::block_on(nothing.collect());
    assert!(items.is_empty());
}

// --- coroutines: return values and resume arguments -------------------------------------

/// What a key-value session reports when the client quits or hangs up.
#[derive(Debug, PartialEq)]
struct Session {
    commands: usize,
    unread: Vec<u8>,
}

/// A sans-IO line protocol (`SET k v`, `GET k`, `QUIT`): resumed with each chunk of bytes the
/// transport read, it yields the replies to the complete lines so far; an empty chunk is the
/// end of the stream. No I/O happens here, so the parser is tested without sockets.
#[generator]
fn kv_session(
    #[resume] first: Vec<u8>,
) -> impl gonext::iter::Coroutine<Vec<u8>, Yield = Vec<String>, Return = Session> {
    let mut store = std::collections::HashMap::new();
    let (mut buffer, mut commands) = (first, 0);
    loop {
        let mut replies = Vec::new();
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            commands += 1;
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["SET", key, value] => {
                    store.insert(key.to_owned(), value.to_owned());
                    replies.push("OK".to_owned());
                }
                ["GET", key] => replies.push(store.get(key).cloned().unwrap_or_else(|| "(nil)".to_owned())),
                ["QUIT"] => return Session { commands, unread: buffer },
                _ => replies.push(format!("ERR unknown command '{line}'")),
            }
        }
        let chunk = yield_!(replies);
        if chunk.is_empty() {
            return Session { commands, unread: buffer };
        }
        buffer.extend(chunk);
    }
}

#[test]
fn a_sans_io_line_parser_is_a_coroutine_fed_by_resume_arguments() {
    use gonext::iter::{Coroutine, CoroutineState::*};

    let mut session = kv_session();
    assert_eq!(session.resume(b"SET a 1\nGE".to_vec()), Yielded(vec!["OK".to_owned()]));
    assert_eq!(session.resume(b"T a".to_vec()), Yielded(vec![]), "half a line waits for more");
    assert_eq!(
        session.resume(b"\nGET b\nPING\n".to_vec()),
        Yielded(vec!["1".to_owned(), "(nil)".to_owned(), "ERR unknown command 'PING'".to_owned()])
    );
    assert_eq!(
        session.resume(b"QUIT\nSET c".to_vec()),
        Complete(Session { commands: 5, unread: b"SET c".to_vec() })
    );

    let mut hung_up = kv_session();
    assert_eq!(hung_up.resume(b"GET x\nGET".to_vec()), Yielded(vec!["(nil)".to_owned()]));
    assert_eq!(hung_up.resume(Vec::new()), Complete(Session { commands: 1, unread: b"GET".to_vec() }));
}

#[generator]
fn checked_total(limit: u32) -> impl gonext::iter::Coroutine<Yield = u32, Return = Result<u32, String>> {
    let mut total = 0u32;
    for step in 1.. {
        total = total.checked_add(step * 1000).filter(|t| *t <= limit).ok_or(format!("over {limit}"))?;
        yield_!(total);
    }
    Ok(total)
}

#[test]
fn a_coroutine_returns_its_value_and_question_mark_returns_the_error() {
    use gonext::iter::{Coroutine, CoroutineState::*};

    let mut total = checked_total(3500);
    assert_eq!((total.resume(()), total.resume(())), (Yielded(1000), Yielded(3000)));
    assert_eq!(total.resume(()), Complete(Err("over 3500".to_owned())));
    let again =
        catch_unwind(AssertUnwindSafe(|| total.resume(()))).expect_err("a completed coroutine panics");
    let message = again.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("resumed after it completed"), "{message}");
}

#[generator]
fn fragile(#[resume] first: u8) -> impl gonext::iter::Coroutine<u8, Yield = u8, Return = ()> {
    let _guard = GuardSend(Arc::clone(&LIVE_GUARDS));
    let mut next = first;
    loop {
        if next == 0 {
            panic!("resumed with zero");
        }
        next = yield_!(next * 2);
    }
}

static LIVE_GUARDS: std::sync::LazyLock<Arc<AtomicUsize>> = std::sync::LazyLock::new(Arc::default);

/// Counts its drops in a shared counter.
struct GuardSend(Arc<AtomicUsize>);

impl Drop for GuardSend {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_coroutine_drops_its_locals_when_dropped_suspended_or_when_it_panics() {
    use gonext::iter::{Coroutine, CoroutineState::*};

    let dropped = || LIVE_GUARDS.load(Ordering::SeqCst);
    let before = dropped();
    let mut suspended = fragile();
    assert_eq!(suspended.resume(3), Yielded(6));
    drop(suspended);
    assert_eq!(dropped(), before + 1, "dropping a suspended coroutine dropped its locals");

    let mut failing = fragile();
    assert_eq!(failing.resume(1), Yielded(2));
    let panic = catch_unwind(AssertUnwindSafe(|| failing.resume(0))).expect_err("the body panics");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"resumed with zero"));
    assert_eq!(dropped(), before + 2, "the unwind dropped the body's locals");
    assert!(
        catch_unwind(AssertUnwindSafe(|| failing.resume(1))).is_err(),
        "a panicked coroutine stays finished"
    );
}

/// Answers each question after a (virtual) delay, counting them.
#[generator]
async fn slow_oracle(
    #[resume] first: String,
) -> impl gonext::iter::AsyncCoroutine<String, Yield = usize, Return = usize> {
    let mut question = first;
    let mut asked = 0;
    while !question.is_empty() {
        gonext::time::sleep(std::time::Duration::from_secs(1)).await;
        asked += 1;
        question = yield_!(question.len());
    }
    asked
}

#[test]
fn an_async_coroutine_awaits_between_resumes() {
    use gonext::iter::{AsyncCoroutine, CoroutineState::*};

    let (answers, elapsed) = gonext::time::bubble_async(async {
        let start = gonext::time::Instant::now();
        let mut oracle = std::pin::pin!(slow_oracle());
        let mut answers = Vec::new();
        for question in ["why", "how come", ""] {
            answers.push(oracle.as_mut().resume(question.to_owned()).await);
        }
        (answers, start.elapsed())
    });
    assert_eq!(answers, [Yielded(3), Yielded(8), Complete(2)]);
    assert_eq!(elapsed, std::time::Duration::from_secs(2));
}

#[test]
fn coroutines_are_send_and_box_as_trait_objects() {
    use gonext::iter::{Coroutine, CoroutineState::*};

    let mut boxed: Box<dyn Coroutine<Vec<u8>, Yield = Vec<String>, Return = Session> + Send> =
        Box::new(kv_session());
    let replies = std::thread::spawn(move || boxed.resume(b"SET k v\nGET k\n".to_vec())).join().unwrap();
    assert_eq!(replies, Yielded(vec!["OK".to_owned(), "v".to_owned()]));
}

// --- boxed generators -----------------------------------------------------------------------

#[generator(boxed)]
fn leaves(tree: &Tree) -> impl Iterator<Item = u32> + '_ {
    match tree {
        Tree::Leaf(v) => yield_!(*v),
        Tree::Node(left, right) => {
            yield_from!(leaves(left));
            yield_from!(leaves(right));
        }
    }
}

#[test]
fn boxed_generators_recurse() {
    let tree = build(4, &mut 0);
    assert_eq!(leaves(&tree).collect::<Vec<_>>(), (1..=16).collect::<Vec<_>>());
}

/// A source of readings, implemented by generators: trait methods return the nameable
/// boxed type.
trait Sensor {
    fn readings(&self) -> gonext::iter::BoxGenerator<'_, f64>;
}

struct Thermometer {
    offsets: Vec<f64>,
}

impl Sensor for Thermometer {
    #[generator(boxed)]
    fn readings(&self) -> impl Iterator<Item = f64> + '_ {
        for offset in &self.offsets {
            yield_!(20.0 + offset);
        }
    }
}

/// A struct that holds a running generator without `Box<dyn Iterator>`.
struct Poller {
    pending: gonext::iter::BoxGenerator<'static, u32>,
}

#[generator(boxed)]
fn countdown(from: u32) -> impl Iterator<Item = u32> {
    for i in (0..from).rev() {
        yield_!(i);
    }
}

#[test]
fn boxed_generators_are_nameable_in_traits_and_struct_fields() {
    let sensors: Vec<Box<dyn Sensor>> = vec![Box::new(Thermometer { offsets: vec![0.5, -1.0] })];
    let all: Vec<f64> = sensors.iter().flat_map(|s| s.readings()).collect();
    assert_eq!(all, [20.5, 19.0]);

    let mut poller = Poller { pending: countdown(3) };
    assert_eq!(poller.pending.next(), Some(2));
    poller.pending = std::thread::spawn(move || {
        assert_eq!(poller.pending.next(), Some(1));
        poller.pending
    })
    .join()
    .unwrap();
    assert_eq!(poller.pending.collect::<Vec<_>>(), [0]);
}

#[generator(boxed_local)]
fn shared_counts(counter: Rc<Cell<u32>>) -> impl Iterator<Item = u32> {
    for _ in 0..3 {
        counter.set(counter.get() + 1);
        yield_!(counter.get());
    }
}

#[generator(boxed)]
async fn nested_countdown(n: u32) -> impl futures::Stream<Item = u32> {
    if n > 0 {
        yield_!(n);
        yield_from!(nested_countdown(n - 1));
    }
}

#[test]
fn local_boxed_generators_hold_non_send_state_and_async_ones_recurse() {
    let counter = Rc::new(Cell::new(10));
    let local: gonext::iter::LocalBoxGenerator<'static, u32> = shared_counts(Rc::clone(&counter));
    assert_eq!(local.collect::<Vec<_>>(), [11, 12, 13]);
    let stream: gonext::iter::BoxAsyncGenerator<'static, u32> = nested_countdown(3);
    assert_eq!(futures::executor::block_on(stream.collect::<Vec<_>>()), [3, 2, 1]);
}

// --- borrowing pull and resume values through pull -------------------------------------------

fn walk_borrowed<'t>(tree: &'t Tree, y: &mut Yield<'_, &'t u32>) -> bool {
    match tree {
        Tree::Leaf(v) => y.yield_(v),
        Tree::Node(left, right) => walk_borrowed(left, y) && walk_borrowed(right, y),
    }
}

#[test]
fn pull_scoped_walks_a_borrowed_tree_recursively_and_yields_references_into_it() {
    let tree = build(8, &mut 0);
    let mut finished = false;
    let (first, rest) = gonext::iter::pull_scoped(
        |y| {
            walk_borrowed(&tree, y);
            finished = true;
        },
        |mut leaves| {
            let first: Vec<&u32> = leaves.by_ref().take(2).collect();
            (first, leaves.count())
        },
    );
    assert_eq!(first, [&1, &2], "the values borrow from the tree, which was never moved");
    assert_eq!(rest, 256 - 2);
    assert!(finished, "the walk wrote to a borrowed local when it finished");

    let mut stopped_early = true;
    let two = gonext::iter::pull_scoped(
        |y| {
            stopped_early = walk_borrowed(&tree, y);
        },
        |leaves| leaves.take(2).count(),
    );
    assert_eq!(two, 2);
    assert!(!stopped_early, "leaving the scope stopped the walk: its yield_ returned false");
}

/// A directory tree, walked with the consumer deciding at each directory whether to enter it.
struct Dir {
    name: &'static str,
    children: Vec<Dir>,
}

fn visit<'d>(dir: &'d Dir, y: &mut Yield<'_, &'d str, bool>) -> bool {
    for child in &dir.children {
        match y.exchange(child.name) {
            None => return false,
            Some(true) => {
                if !visit(child, y) {
                    return false;
                }
            }
            Some(false) => {}
        }
    }
    true
}

#[test]
fn pull_scoped_resume_lets_the_consumer_steer_a_recursive_producer() {
    let leaf = |name| Dir { name, children: vec![] };
    let root = Dir {
        name: "/",
        children: vec![
            Dir { name: "src", children: vec![leaf("main.rs"), leaf("lib.rs")] },
            Dir { name: "target", children: vec![leaf("debug")] },
            leaf("README"),
        ],
    };
    let seen = gonext::iter::pull_scoped_resume(
        |y, enter_root: bool| {
            if enter_root {
                visit(&root, y);
            }
        },
        |mut walk| {
            let mut seen = vec![walk.resume(true).expect("the root has children")];
            while let Some(name) = walk.resume(seen.last() != Some(&"target")) {
                seen.push(name);
            }
            seen
        },
    );
    assert_eq!(seen, ["src", "main.rs", "lib.rs", "target", "README"], "`target` was skipped");
}

#[test]
fn a_panic_in_the_scope_stops_and_unwinds_the_borrowing_producer() {
    let dropped = Cell::new(0);
    struct Count<'a>(&'a Cell<u32>);
    impl Drop for Count<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let panic = catch_unwind(AssertUnwindSafe(|| {
        gonext::iter::pull_scoped(
            |y| {
                let _count = Count(&dropped);
                loop {
                    y.yield_(1u8); // ignores the stop: the stack is unwound
                }
            },
            |mut values| {
                assert_eq!(values.next(), Some(1));
                panic!("consumer failed");
            },
        )
    }))
    .expect_err("the consumer's panic propagates");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"consumer failed"));
    assert_eq!(dropped.get(), 1, "the producer's borrowed guard was dropped before the scope ended");
}

#[test]
fn scoped_pulls_with_a_larger_stack_recurse_deeper() {
    fn depth(n: u32, y: &mut Yield<'_, u32>) -> bool {
        let padding = std::hint::black_box([n; 32]);
        if n == 0 { y.yield_(padding[0]) } else { depth(n - 1, y) && padding[1] == n }
    }
    let levels = 40_000;
    let bottom = gonext::iter::PullOptions::new().stack_size(64 << 20).scoped(
        |y| {
            depth(levels, y);
        },
        |mut values| values.next(),
    );
    assert_eq!(bottom, Some(0));
}

/// Stress for the unsafe code of `pull`: scoped and `'static` pulls nested inside producers,
/// created and dropped in every order on several threads, some stopped early, some panicking,
/// all registered for overflow reports while they live.
#[test]
fn nested_pulls_on_many_threads_keep_their_stacks_and_registrations_straight() {
    let threads: Vec<_> = (0..4u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut total = 0u64;
                for round in 0..300u64 {
                    let words: Vec<u64> = (0..(round + seed) % 7 + 1).collect();
                    let inner_take = ((round * 31 + seed) % 5) as usize;
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        gonext::iter::pull_scoped(
                            |y| {
                                for w in &words {
                                    let nested = pull(Seq::new({
                                        let w = *w;
                                        move |y| {
                                            for i in 0..w {
                                                if !y.yield_(i) {
                                                    return;
                                                }
                                            }
                                        }
                                    }));
                                    let inner: u64 = nested.take(inner_take).sum();
                                    if !y.yield_(w * 100 + inner) {
                                        return;
                                    }
                                }
                            },
                            |values| {
                                let mut sum = 0;
                                for (i, v) in values.enumerate() {
                                    if round % 11 == 5 && i == 2 {
                                        panic!("planned");
                                    }
                                    if round % 3 == 0 && i == 1 {
                                        break;
                                    }
                                    sum += v;
                                }
                                sum
                            },
                        )
                    }));
                    let expected: u64 = words
                        .iter()
                        .take(if round % 3 == 0 { 1 } else { usize::MAX })
                        .map(|w| w * 100 + (0..*w).take(inner_take).sum::<u64>())
                        .sum();
                    match outcome {
                        Ok(sum) => assert_eq!(sum, expected, "thread {seed} round {round}"),
                        Err(_) => assert!(round % 11 == 5 && words.len() > 2 && round % 3 != 0),
                    }
                    total += 1;
                }
                total
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 300);
    }
}

// --- stack overflow in a pull producer ------------------------------------------------------

/// Set in the child process that overflows a pull stack on purpose.
const OVERFLOW_CHILD: &str = "GONEXT_TEST_PULL_OVERFLOW";

/// Recurses until the stack runs out (the end condition is never met in practice).
fn bottomless(n: u64) -> u64 {
    let padding = std::hint::black_box([n; 16]);
    if n == u64::MAX {
        return 0;
    }
    bottomless(std::hint::black_box(n + 1)) + padding[3]
}

#[test]
fn a_stack_overflow_in_a_pull_producer_reports_its_site_and_stack_size() {
    if std::env::var_os(OVERFLOW_CHILD).is_some() {
        let site = line!() + 1;
        let mut doomed = pull(Seq::new(|y| {
            y.yield_(bottomless(0));
        }));
        eprintln!("expected site: {}:{site}:", file!());
        doomed.next();
        unreachable!("the overflow aborts the process");
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_stack_overflow_in_a_pull_producer_reports_its_site_and_stack_size",
            "--nocapture",
        ])
        .env(OVERFLOW_CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let site =
        stderr.lines().find_map(|l| l.strip_prefix("expected site: ")).expect("the child started the pull");
    assert!(
        stderr.contains(&format!("the pull coroutine created at {site}")),
        "the report names the pull site {site}:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("overflowed its {}-byte stack", gonext::iter::DEFAULT_STACK_SIZE)),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(6), "the child aborted: {:?}", output.status);
}

/// Set in the child process that overflows an ordinary thread stack after using `pull`.
const THREAD_OVERFLOW_CHILD: &str = "GONEXT_TEST_THREAD_OVERFLOW";

#[test]
fn other_stack_overflows_still_reach_the_standard_report() {
    if std::env::var_os(THREAD_OVERFLOW_CHILD).is_some() {
        assert_eq!(pull(fib_seq_for_overflow()).nth(3), Some(2), "gonext's handler is installed");
        let thread = std::thread::Builder::new().name("deep".into()).stack_size(256 * 1024);
        let _ = thread.spawn(|| bottomless(0)).unwrap().join();
        unreachable!("the overflow aborts the process");
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "other_stack_overflows_still_reach_the_standard_report", "--nocapture"])
        .env(THREAD_OVERFLOW_CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = stderr.lines().find(|l| l.contains("has overflowed its stack")).unwrap_or_default();
    assert!(report.starts_with("thread 'deep'"), "std's report:\n{stderr}");
    assert!(!stderr.contains("pull coroutine"), "{stderr}");
}

fn fib_seq_for_overflow() -> Seq<u64> {
    Seq::new(|y| {
        let (mut a, mut b) = (0u64, 1u64);
        while y.yield_(a) {
            (a, b) = (b, a + b);
        }
    })
}

// --- the coroutine hand-off's own checks ------------------------------------------------

#[test]
fn a_coroutine_yield_smuggled_into_another_coroutine_panics_instead_of_writing() {
    use gonext::__private::{CoYielder, SyncCoroutine};
    use gonext::iter::{Coroutine, CoroutineState::*};

    let leaked: Rc<Cell<Option<CoYielder<u64, u8>>>> = Rc::default();
    let leak = Rc::clone(&leaked);
    let mut owner = SyncCoroutine::<u64, u8, _>::new(move |y: CoYielder<u64, u8>| {
        leak.set(Some(y));
        async move {
            let first = y.first_resume().await;
            let answer = y.yield_(u64::from(first)).await;
            u32::from(answer)
        }
    });
    let smuggled = leaked.take().expect("the body builder ran");
    let mut thief =
        SyncCoroutine::<String, Vec<u8>, _>::new(move |y: CoYielder<String, Vec<u8>>| async move {
            y.first_resume().await;
            smuggled.yield_(7).await;
        });
    let panic =
        catch_unwind(AssertUnwindSafe(|| thief.resume(vec![1]))).expect_err("a foreign yield must not write");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("polled outside that generator"), "{message}");
    assert_eq!(owner.resume(4), Yielded(4), "the owner is unaffected");
    assert_eq!(owner.resume(9), Complete(9));
}

/// Stress for the unsafe hand-off of stackless coroutines: coroutines of different yield
/// and resume types, resumed alternately on several threads, each answer checked.
#[test]
fn interleaved_coroutines_of_different_types_keep_their_values_apart() {
    use gonext::iter::{Coroutine, CoroutineState::*};

    #[generator]
    fn echo_len(#[resume] first: String) -> impl Coroutine<String, Yield = usize, Return = usize> {
        let (mut text, mut count) = (first, 0);
        while !text.is_empty() {
            count += 1;
            text = yield_!(text.len());
        }
        count
    }

    #[generator]
    fn doubler(#[resume] first: u16) -> impl Coroutine<u16, Yield = Vec<u16>, Return = ()> {
        let mut n = first;
        while n != 0 {
            n = yield_!(vec![n; 2]);
        }
    }

    let threads: Vec<_> = (0..4usize)
        .map(|seed| {
            std::thread::spawn(move || {
                for round in 0..500usize {
                    let mut texts = echo_len();
                    let mut numbers = doubler();
                    let steps = (round + seed) % 9 + 1;
                    for step in 1..=steps {
                        assert_eq!(texts.resume("x".repeat(step)), Yielded(step));
                        let n = (step * 3 + seed) as u16;
                        assert_eq!(numbers.resume(n), Yielded(vec![n, n]));
                    }
                    assert_eq!(texts.resume(String::new()), Complete(steps));
                    if round % 2 == 0 {
                        assert_eq!(numbers.resume(0), Complete(()));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn nested_streams_keep_their_own_yields() {
    let outer = stream! {
        for i in 0..3u32 {
            let inner = stream! {
                for j in 0..i {
                    yield j * 10;
                }
            };
            let inner: Vec<u32> = inner.collect().await;
            yield inner.len() as u32;
            yield from futures::stream::iter(inner);
        }
    };
    assert_eq!(futures::executor::block_on(outer.collect::<Vec<_>>()), [0, 1, 0, 2, 0, 10]);
}
