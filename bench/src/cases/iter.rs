//! Generators and coroutines: Go's Task 2 — Fibonacci by stackless generator, stream and
//! `pull`, against a hand-written iterator, genawaiter, async-stream, raw corosensei and a
//! thread-per-generator; a coroutine resumed with arguments against genawaiter's
//! `resume_with` and a hand-written state machine; and the memory of 10 000 suspended
//! generators.

use std::hint::black_box;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, ScopedCoroutine};
use futures::Stream;
use genawaiter::GeneratorState;
use gonext::iter::{Coroutine as _, CoroutineState, Seq, pull, pull_scoped};
use gonext::{generator, stream};

use crate::alloc::{measure_live_bytes, rss_bytes};
use crate::harness::Case;

const STEPS: u64 = 1000;
const GENERATORS: u64 = 10_000;

#[generator]
fn fib() -> impl Iterator<Item = u64> {
    let (mut a, mut b) = (0u64, 1u64);
    loop {
        yield_!(a);
        (a, b) = (b, a.wrapping_add(b));
    }
}

/// The hand-written reference.
struct Fib(u64, u64);

impl Iterator for Fib {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let a = self.0;
        (self.0, self.1) = (self.1, self.0.wrapping_add(self.1));
        Some(a)
    }
}

fn genawaiter_fib() -> impl Iterator<Item = u64> {
    genawaiter::rc::Gen::new(|co| async move {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            co.yield_(a).await;
            (a, b) = (b, a.wrapping_add(b));
        }
    })
    .into_iter()
}

fn fib_seq() -> Seq<u64> {
    Seq::new(|y| {
        let (mut a, mut b) = (0u64, 1u64);
        while y.yield_(a) {
            (a, b) = (b, a.wrapping_add(b));
        }
    })
}

/// Runs `make()` and sums its first `STEPS` items, `iters / STEPS` times.
fn steps<I: Iterator<Item = u64>>(mut make: impl FnMut() -> I) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let rounds = iters.div_ceil(STEPS);
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(make().take(STEPS as usize).fold(0u64, u64::wrapping_add));
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * STEPS) as f64)
    }
}

/// Like [`steps`], with the trip count hidden from the optimizer, so that it cannot peel the
/// first step off a loop of known length.
fn steps_n<I: Iterator<Item = u64>>(mut make: impl FnMut() -> I) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let rounds = iters.div_ceil(STEPS);
        let start = Instant::now();
        for _ in 0..rounds {
            let mut sum = 0u64;
            for v in make().take(black_box(STEPS) as usize) {
                sum = sum.wrapping_add(v);
            }
            black_box(sum);
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * STEPS) as f64)
    }
}

fn gen_fib_n() -> Case {
    Case::time("gen/fib_n", steps_n(fib))
        .peer("hand_written", steps_n(|| Fib(0, 1)))
        .peer("genawaiter", steps_n(genawaiter_fib))
}

/// A running total, resumed with each addend and yielding the sum so far.
#[generator]
fn running_total(#[resume] first: u64) -> impl gonext::iter::Coroutine<u64, Yield = u64, Return = ()> {
    let mut total = first;
    loop {
        total = total.wrapping_add(yield_!(total));
    }
}

/// The hand-written state machine of [`running_total`].
struct RunningTotal {
    total: u64,
}

impl RunningTotal {
    fn resume(&mut self, addend: u64) -> u64 {
        self.total = self.total.wrapping_add(addend);
        self.total
    }
}

/// One round of `gen/resume_1000`: a fresh coroutine resumed `STEPS` times with the step
/// number (hidden from the optimizer), summing what it yields. Each implementation gets its
/// own out-of-line round, so all of them are compiled alike, apart from the harness loop.
#[inline(never)]
fn gonext_resume_round() -> u64 {
    let mut total = running_total();
    (0..STEPS).fold(0u64, |sum, i| match total.resume(black_box(i)) {
        CoroutineState::Yielded(t) => sum.wrapping_add(t),
        CoroutineState::Complete(()) => sum,
    })
}

#[inline(never)]
fn genawaiter_resume_round() -> u64 {
    let mut total = genawaiter::rc::Gen::new(|co| async move {
        let mut total = 0u64;
        loop {
            total = total.wrapping_add(co.yield_(total).await);
        }
    });
    (0..STEPS).fold(0u64, |sum, i| match total.resume_with(black_box(i)) {
        GeneratorState::Yielded(t) => sum.wrapping_add(t),
        GeneratorState::Complete(()) => sum,
    })
}

#[inline(never)]
fn hand_written_resume_round() -> u64 {
    let mut total = RunningTotal { total: 0 };
    (0..STEPS).fold(0u64, |sum, i| sum.wrapping_add(total.resume(black_box(i))))
}

/// Runs `round` (of `STEPS` resumes) `iters / STEPS` times.
fn resume_rounds(round: fn() -> u64) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let rounds = iters.div_ceil(STEPS);
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(round());
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * STEPS) as f64)
    }
}

fn gen_resume() -> Case {
    Case::time("gen/resume_1000", resume_rounds(gonext_resume_round))
        .peer("genawaiter_resume_with", resume_rounds(genawaiter_resume_round))
        .peer("hand_written", resume_rounds(hand_written_resume_round))
}

fn gen_fib() -> Case {
    Case::time("gen/fib_1000", steps(fib))
        .peer("hand_written", steps(|| Fib(0, 1)))
        .peer("genawaiter", steps(genawaiter_fib))
        .peer(
            "std_from_fn",
            steps(|| {
                let (mut a, mut b) = (0u64, 1u64);
                std::iter::from_fn(move || {
                    let out = a;
                    (a, b) = (b, a.wrapping_add(b));
                    Some(out)
                })
            }),
        )
}

/// Sums the first `STEPS` items of a stream, polled with a no-op waker (it never waits).
fn stream_steps<S: Stream<Item = u64>>(mut make: impl FnMut() -> S) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let rounds = iters.div_ceil(STEPS);
        let mut cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        for _ in 0..rounds {
            let mut stream = pin!(make());
            let mut sum = 0u64;
            for _ in 0..STEPS {
                if let Poll::Ready(Some(v)) = stream.as_mut().poll_next(&mut cx) {
                    sum = sum.wrapping_add(v);
                }
            }
            black_box(sum);
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * STEPS) as f64)
    }
}

fn stream_fib() -> Case {
    Case::time(
        "stream/fib_1000",
        stream_steps(|| {
            stream! {
                let (mut a, mut b) = (0u64, 1u64);
                loop {
                    yield a;
                    (a, b) = (b, a.wrapping_add(b));
                }
            }
        }),
    )
    .peer(
        "async_stream",
        stream_steps(|| {
            async_stream::stream! {
                let (mut a, mut b) = (0u64, 1u64);
                loop {
                    yield a;
                    (a, b) = (b, a.wrapping_add(b));
                }
            }
        }),
    )
}

/// One long-lived coroutine per routine call, resumed `iters` times.
fn pull_steps(iters: u64) -> Duration {
    let mut values = pull(fib_seq());
    let start = Instant::now();
    for _ in 0..iters {
        black_box(values.next());
    }
    start.elapsed()
}

fn corosensei_steps(iters: u64) -> Duration {
    let mut coroutine = Coroutine::new(|suspend: &corosensei::Yielder<(), u64>, ()| {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            suspend.suspend(a);
            (a, b) = (b, a.wrapping_add(b));
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        let CoroutineResult::Yield(v) = coroutine.resume(());
        black_box(v);
    }
    let elapsed = start.elapsed();
    coroutine.force_unwind();
    elapsed
}

/// Go's goroutine + unbuffered channel generator, as a thread + `sync_channel(0)`.
fn thread_generator() -> (mpsc::Receiver<u64>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::sync_channel(0);
    let producer = std::thread::spawn(move || {
        let (mut a, mut b) = (0u64, 1u64);
        while tx.send(a).is_ok() {
            (a, b) = (b, a.wrapping_add(b));
        }
    });
    (rx, producer)
}

fn thread_steps(iters: u64) -> Duration {
    let (rx, producer) = thread_generator();
    let start = Instant::now();
    for _ in 0..iters {
        black_box(rx.recv().ok());
    }
    let elapsed = start.elapsed();
    drop(rx);
    producer.join().expect("producer thread");
    elapsed
}

/// A scoped pull over a push function that borrows its starting pair from the caller,
/// resumed `iters` times inside its scope.
fn pull_borrowed_steps(iters: u64) -> Duration {
    let seed = (0u64, 1u64);
    pull_scoped(
        |y| {
            let (mut a, mut b) = seed;
            while y.yield_(a) {
                (a, b) = (b, a.wrapping_add(b));
            }
        },
        |mut values| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(values.next());
            }
            start.elapsed()
        },
    )
}

fn scoped_corosensei_steps(iters: u64) -> Duration {
    let seed = (0u64, 1u64);
    let coroutine = ScopedCoroutine::new(|suspend: &corosensei::Yielder<(), u64>, ()| {
        let (mut a, mut b) = seed;
        loop {
            suspend.suspend(a);
            (a, b) = (b, a.wrapping_add(b));
        }
    });
    coroutine.scope(|mut coroutine| {
        let start = Instant::now();
        for _ in 0..iters {
            let CoroutineResult::Yield(v) = coroutine.as_mut().resume(());
            black_box(v);
        }
        start.elapsed()
    })
}

fn pull_fib_borrowed() -> Case {
    Case::time("pull/fib_1000_borrowed", pull_borrowed_steps)
        .peer("corosensei_scoped_raw", scoped_corosensei_steps)
}

fn pull_fib() -> Case {
    Case::time("pull/fib_1000", pull_steps)
        .peer("corosensei_raw", corosensei_steps)
        .peer("thread_sync_channel", thread_steps)
        .peer("genawaiter", steps(genawaiter_fib))
}

/// Bytes per suspended generator, each advanced once and kept alive.
fn generator_bytes(n: u64) -> u64 {
    let (bytes, live) = measure_live_bytes(|| {
        let mut live: Vec<_> = (0..n).map(|_| fib()).collect();
        live.iter_mut().for_each(|g| {
            black_box(g.next());
        });
        live
    });
    let vec_bytes = (live.capacity() * size_of_val(&live[0])) as i64;
    drop(live);
    u64::try_from(bytes - vec_bytes).unwrap_or(0) + n * size_of::<usize>() as u64
}

fn pull_bytes(n: u64) -> u64 {
    let before = rss_bytes();
    let mut live: Vec<_> = (0..n).map(|_| pull(fib_seq())).collect();
    live.iter_mut().for_each(|p| {
        black_box(p.next());
    });
    let grown = rss_bytes().saturating_sub(before);
    drop(live);
    grown
}

fn thread_bytes(n: u64) -> u64 {
    let before = rss_bytes();
    let live: Vec<_> = (0..n)
        .map(|_| {
            let (rx, producer) = thread_generator();
            black_box(rx.recv().ok());
            (rx, producer)
        })
        .collect();
    let grown = rss_bytes().saturating_sub(before);
    for (rx, producer) in live {
        drop(rx);
        producer.join().expect("producer thread");
    }
    grown
}

fn memory() -> Case {
    Case::bytes("mem/10k_generators", GENERATORS, generator_bytes)
        .peer_bytes("gonext_pull_rss", pull_bytes)
        .peer_bytes("thread_sync_channel_rss", thread_bytes)
}

pub(super) fn cases() -> Vec<Case> {
    vec![gen_fib(), gen_fib_n(), gen_resume(), stream_fib(), pull_fib(), pull_fib_borrowed(), memory()]
}
