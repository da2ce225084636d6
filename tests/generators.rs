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
