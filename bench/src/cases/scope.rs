//! Structured concurrency: spawning and joining 10 000 trivial `go` tasks, against
//! `std::thread::scope`, `rayon::scope` and a tokio `JoinSet`.

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

const ELEMENTS: usize = 16 * 1024 * 1024;
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
    ]
}
