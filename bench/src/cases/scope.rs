//! Structured concurrency: spawning and joining 10 000 trivial `go` tasks, against
//! `std::thread::scope`, `rayon::scope` and a tokio `JoinSet`; the same with every task's
//! result joined through its handle, per element and per chunk; and `async_scope!` children
//! woken one at a time, against `FuturesUnordered`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gonext::scope;

use crate::harness::Case;

const TASKS: u64 = 10_000;

/// Runs `round` (10 000 tasks) `iters / 10 000` times; ns per task.
fn per_task(mut round: impl FnMut(&AtomicU64)) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let rounds = iters.div_ceil(TASKS);
        let sum = AtomicU64::new(0);
        let start = Instant::now();
        for _ in 0..rounds {
            round(&sum);
        }
        black_box(sum.load(Ordering::Relaxed));
        start.elapsed().mul_f64(iters as f64 / (rounds * TASKS) as f64)
    }
}

fn gonext_round(sum: &AtomicU64) {
    scope! {
        for i in 0..TASKS {
            go move |_ctx| { sum.fetch_add(i, Ordering::Relaxed); };
        }
    };
}

fn rayon_round(sum: &AtomicU64) {
    rayon::scope(|s| {
        for i in 0..TASKS {
            s.spawn(move |_| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
        }
    });
}

fn std_round(sum: &AtomicU64) {
    std::thread::scope(|s| {
        for i in 0..TASKS {
            s.spawn(move || sum.fetch_add(i, Ordering::Relaxed));
        }
    });
}

fn tokio_joinset(runtime: &tokio::runtime::Runtime) -> impl FnMut(&AtomicU64) + '_ {
    move |sum| {
        let total = runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..TASKS {
                set.spawn(async move { i });
            }
            let mut total = 0;
            while let Some(v) = set.join_next().await {
                total += v.expect("task");
            }
            total
        });
        sum.fetch_add(total, Ordering::Relaxed);
    }
}

/// `async_scope!` with 10 000 ready children, polled with a no-op waker loop.
fn async_round(sum: &AtomicU64) {
    futures::executor::block_on(gonext::async_scope! {
        for i in 0..TASKS {
            go async move { sum.fetch_add(i, Ordering::Relaxed); };
        }
    });
}

fn futures_unordered_round(sum: &AtomicU64) {
    use futures::StreamExt;
    let mut set = futures::stream::FuturesUnordered::new();
    for i in 0..TASKS {
        set.push(async move {
            sum.fetch_add(i, Ordering::Relaxed);
        });
    }
    futures::executor::block_on(async { while set.next().await.is_some() {} });
}

/// `let h = go …` for 10 000 tasks, then every handle joined and the results summed.
fn gonext_results_round(sum: &AtomicU64) {
    let total = scope! {
        let mut handles = Vec::with_capacity(TASKS as usize);
        for i in 0..TASKS {
            handles.push(go move { i * 2 });
        }
        handles.into_iter().map(|h| h.join()).sum::<u64>()
    };
    sum.fetch_add(total, Ordering::Relaxed);
}

/// How many chunks `scope/10k_with_results_chunked` splits its range into: a few per core.
const RESULT_CHUNKS: u64 = 8;

/// The same 10 000 results from one `go` per chunk of the range: the shape the handle's docs
/// recommend for small elements.
fn gonext_chunked_results_round(sum: &AtomicU64) {
    const CHUNK: u64 = TASKS / RESULT_CHUNKS;
    let results: Vec<u64> = scope! {
        let mut handles = Vec::new();
        for start in (0..TASKS).step_by(CHUNK as usize) {
            handles.push(go move { (start..start + CHUNK).map(|i| i * 2).collect::<Vec<u64>>() });
        }
        let mut results = Vec::with_capacity(TASKS as usize);
        for handle in handles {
            results.extend(handle.join());
        }
        results
    };
    sum.fetch_add(results.into_iter().sum::<u64>(), Ordering::Relaxed);
}

fn std_results_round(sum: &AtomicU64) {
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..TASKS).map(|i| s.spawn(move || i * 2)).collect();
        handles.into_iter().map(|h| h.join().expect("task")).sum::<u64>()
    });
    sum.fetch_add(total, Ordering::Relaxed);
}

fn rayon_collect_round(sum: &AtomicU64) {
    use rayon::prelude::*;
    let results: Vec<u64> = (0..TASKS).into_par_iter().map(|i| i * 2).collect();
    sum.fetch_add(results.into_iter().sum::<u64>(), Ordering::Relaxed);
}

/// A future pending until its flag is set: one of the 10 000 children of the wake case.
struct Gate {
    open: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Gate {
    fn new() -> Gate {
        Gate { open: std::sync::atomic::AtomicBool::new(false), waker: std::sync::Mutex::new(None) }
    }

    fn open(&self) {
        self.open.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().expect("gate").take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.open.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            *self.waker.lock().expect("gate") = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
    }
}

/// 10 000 pending children; the body opens their gates one at a time and awaits each child's
/// handle, so every step is one wake-up of one child among thousands still pending.
fn async_wake_round(sum: &AtomicU64) {
    let gates: Vec<Gate> = (0..TASKS).map(|_| Gate::new()).collect();
    let gates = &gates;
    let total = futures::executor::block_on(gonext::async_scope! {
        let mut handles = Vec::with_capacity(TASKS as usize);
        for (i, gate) in gates.iter().enumerate() {
            handles.push(go async move { gate.wait().await; i as u64 });
        }
        let mut total = 0;
        for (gate, handle) in gates.iter().zip(handles) {
            gate.open();
            total += handle.await;
        }
        total
    });
    sum.fetch_add(total, Ordering::Relaxed);
}

fn futures_unordered_wake_round(sum: &AtomicU64) {
    use futures::StreamExt;
    let gates: Vec<Gate> = (0..TASKS).map(|_| Gate::new()).collect();
    let mut set = futures::stream::FuturesUnordered::new();
    for (i, gate) in gates.iter().enumerate() {
        set.push(async move {
            gate.wait().await;
            i as u64
        });
    }
    let total = futures::executor::block_on(async {
        // Every child is polled once, as the scope's are when they start.
        futures::future::poll_fn(|cx| {
            let _ = set.poll_next_unpin(cx);
            std::task::Poll::Ready(())
        })
        .await;
        let mut total = 0;
        for gate in &gates {
            gate.open();
            total += set.next().await.expect("a child");
        }
        total
    });
    sum.fetch_add(total, Ordering::Relaxed);
}

const ELEMENTS: usize = 16 * 1024 * 1024;
/// How many chunks the chunked cases split their data into.
const CHUNKS: usize = 64;

/// Sums a 16M-element slice in 64 chunks: one "op" is one element.
fn fanout(sum_chunks: fn(&[u64]) -> u64) -> impl FnMut(u64) -> Duration {
    let data: Vec<u64> = (0..ELEMENTS as u64).collect();
    move |iters| {
        let rounds = iters.div_ceil(ELEMENTS as u64);
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(sum_chunks(black_box(&data)));
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * ELEMENTS as u64) as f64)
    }
}

fn gonext_fanout(data: &[u64]) -> u64 {
    let total = AtomicU64::new(0);
    let total_ref = &total;
    scope! {
        for chunk in data.chunks(data.len() / CHUNKS) {
            go move |_ctx| { total_ref.fetch_add(chunk.iter().sum::<u64>(), Ordering::Relaxed); };
        }
    };
    total.into_inner()
}

fn rayon_fanout(data: &[u64]) -> u64 {
    use rayon::prelude::*;
    data.par_chunks(data.len() / CHUNKS).map(|chunk| chunk.iter().sum::<u64>()).sum()
}

fn sequential(data: &[u64]) -> u64 {
    data.iter().sum()
}

pub(super) fn cases() -> Vec<Case> {
    let runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime"),
    ));
    vec![
        Case::time("scope/10k_trivial", per_task(gonext_round))
            .peer("std_thread_scope", per_task(std_round))
            .peer("rayon_scope", per_task(rayon_round))
            .peer("tokio_joinset", per_task(tokio_joinset(runtime))),
        Case::time("scope/fanout_sum", fanout(gonext_fanout))
            .peer("rayon_par_chunks", fanout(rayon_fanout))
            .peer("sequential", fanout(sequential)),
        Case::time("scope/async_10k", per_task(async_round))
            .peer("futures_unordered", per_task(futures_unordered_round)),
        Case::time("scope/10k_with_results", per_task(gonext_results_round))
            .peer("std_thread_scope_handles", per_task(std_results_round))
            .peer("rayon_par_iter_collect", per_task(rayon_collect_round)),
        Case::time("scope/10k_with_results_chunked", per_task(gonext_chunked_results_round))
            .peer("rayon_par_iter_collect", per_task(rayon_collect_round)),
        Case::time("scope/async_wake_one_of_10k", per_task(async_wake_round))
            .peer("futures_unordered", per_task(futures_unordered_wake_round)),
    ]
}
