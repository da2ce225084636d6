//! `gonext::atomic`: Go's Task 7 — tagged CAS cost alone and under contention, and the
//! Treiber stacks (freelist and hazard pointers) against a locked `Vec` and crossbeam's
//! `SegQueue`, in time and in the memory a burst leaves behind.

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::atomic::{AtomicPtr, AtomicU64};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::queue::SegQueue;
use gonext::atomic::{AtomicTagged, HazardStack, MutexTagged, TaggedCas, TreiberStack};
use portable_atomic::AtomicU128;

use crate::alloc::measure_live_bytes;
use crate::harness::{Case, iter};

/// A static target for the pointers being swapped; never dereferenced.
static TARGETS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(1)];

fn target(i: u64) -> NonNull<AtomicU64> {
    NonNull::from(&TARGETS[(i & 1) as usize])
}

/// One successful update of a tagged cell: load, then CAS to the other target.
fn tagged_update<C: TaggedCas<AtomicU64>>(cell: &C, i: u64) {
    let mut seen = cell.load(Acquire);
    while let Err(actual) = cell.compare_exchange(seen, Some(target(i)), AcqRel, Acquire) {
        seen = actual;
    }
}

fn ptr_update(cell: &AtomicPtr<AtomicU64>, i: u64) {
    let mut seen = cell.load(Acquire);
    while let Err(actual) = cell.compare_exchange(seen, target(i).as_ptr(), AcqRel, Acquire) {
        seen = actual;
    }
}

/// The raw double-width CAS the typed wrapper is built on: pointer bits and a generation.
fn u128_update(cell: &AtomicU128, i: u64) {
    let mut seen = cell.load(Acquire);
    loop {
        let next = ((seen >> 64).wrapping_add(1) << 64) | target(i).as_ptr() as usize as u128;
        match cell.compare_exchange(seen, next, AcqRel, Acquire) {
            Ok(_) => return,
            Err(actual) => seen = actual,
        }
    }
}

/// Runs `iters` updates split over `threads` threads that start together; returns the wall
/// time from the start signal until the last thread is done.
fn contended<S: Send + Sync + 'static>(
    threads: u64,
    shared: Arc<S>,
    update: fn(&S, u64),
) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let per_thread = iters.div_ceil(threads);
        let start = Arc::new(Barrier::new(threads as usize + 1));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (shared, start) = (Arc::clone(&shared), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    (0..per_thread).for_each(|i| update(&shared, i));
                })
            })
            .collect();
        // Timed from before the release: with more threads than cores, this thread may be
        // descheduled right after it, while the workers run.
        let began = Instant::now();
        start.wait();
        workers.into_iter().for_each(|w| w.join().expect("bench thread"));
        began.elapsed().mul_f64(iters as f64 / (per_thread * threads) as f64)
    }
}

fn cas_case(name: &'static str, threads: u64) -> Case {
    let tagged = Arc::new(AtomicTagged::new(Some(target(0))));
    let ptr = Arc::new(AtomicPtr::new(target(0).as_ptr()));
    let mutex = Arc::new(MutexTagged::new(Some(target(0))));
    Case::time(name, contended(threads, tagged, tagged_update::<AtomicTagged<AtomicU64>>))
        .peer("std_atomicptr", contended(threads, ptr, ptr_update))
        .peer("mutex_tagged", contended(threads, mutex, tagged_update::<MutexTagged<AtomicU64>>))
}

fn uncontended() -> Case {
    let tagged = AtomicTagged::new(Some(target(0)));
    let raw = AtomicU128::new(0);
    let ptr = AtomicPtr::new(target(0).as_ptr());
    let mutex = MutexTagged::new(Some(target(0)));
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    Case::time("cas/uncontended", iter(move || tagged_update(black_box(&tagged), next(&mut a))))
        .peer("portable_atomic_u128", iter(move || u128_update(black_box(&raw), next(&mut b))))
        .peer("std_atomicptr", iter(move || ptr_update(black_box(&ptr), next(&mut c))))
        .peer("mutex_tagged", iter(move || tagged_update(black_box(&mutex), next(&mut d))))
}

fn next(counter: &mut u64) -> u64 {
    *counter = counter.wrapping_add(1);
    *counter
}

/// Two threads each pushing then popping `iters / 2` times.
fn push_pop<S: Send + Sync + 'static>(
    shared: Arc<S>,
    push: fn(&S, u64),
    pop: fn(&S),
) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let per_thread = iters.div_ceil(2);
        let start = Arc::new(Barrier::new(3));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (shared, start) = (Arc::clone(&shared), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        push(&shared, i);
                        pop(&shared);
                    }
                })
            })
            .collect();
        let began = Instant::now();
        start.wait();
        workers.into_iter().for_each(|w| w.join().expect("bench thread"));
        began.elapsed().mul_f64(iters as f64 / (per_thread * 2) as f64)
    }
}

fn stack_case() -> Case {
    let stack = Arc::new(TreiberStack::<u64>::new());
    let hazard = Arc::new(HazardStack::<u64>::new());
    let locked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let queue = Arc::new(SegQueue::<u64>::new());
    Case::time(
        "stack/push_pop_2t",
        push_pop(
            stack,
            |s, i| s.push(i),
            |s| {
                black_box(s.pop());
            },
        ),
    )
    .peer(
        "gonext_hazard_stack",
        push_pop(
            hazard,
            |s, i| s.push(i),
            |s| {
                black_box(s.pop());
            },
        ),
    )
    .peer(
        "mutex_vec",
        push_pop(
            locked,
            |v, i| v.lock().expect("unpoisoned").push(i),
            |v| {
                black_box(v.lock().expect("unpoisoned").pop());
            },
        ),
    )
    .peer(
        "crossbeam_segqueue",
        push_pop(
            queue,
            |q, i| q.push(i),
            |q| {
                black_box(q.pop());
            },
        ),
    )
}

/// Values pushed in one burst by `stack/burst_then_idle`.
const BURST: u64 = 100_000;

/// The heap bytes a container still holds after `n` pushes and as many pops: what a burst
/// leaves allocated while the program idles (the container itself included).
fn held_after_burst<S>(n: u64, new: fn() -> S, push: fn(&S, u64), pop: fn(&S) -> Option<u64>) -> u64 {
    let (bytes, container) = measure_live_bytes(|| {
        let container = new();
        (0..n).for_each(|i| push(&container, i));
        while pop(&container).is_some() {}
        container
    });
    drop(container);
    u64::try_from(bytes).unwrap_or(0)
}

fn burst_case() -> Case {
    Case::bytes("stack/burst_then_idle", BURST, |n| {
        held_after_burst(n, HazardStack::<u64>::new, |s, i| s.push(i), HazardStack::pop)
    })
    .peer_bytes("gonext_treiber_stack", |n| {
        held_after_burst(n, TreiberStack::<u64>::new, |s, i| s.push(i), TreiberStack::pop)
    })
    .peer_bytes("mutex_vec", |n| {
        held_after_burst(
            n,
            || Mutex::new(Vec::new()),
            |v, i| v.lock().expect("unpoisoned").push(i),
            |v| v.lock().expect("unpoisoned").pop(),
        )
    })
    .peer_bytes("crossbeam_segqueue", |n| held_after_burst(n, SegQueue::new, |q, i| q.push(i), SegQueue::pop))
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        uncontended(),
        cas_case("cas/2threads", 2),
        cas_case("cas/16threads", 16),
        stack_case(),
        burst_case(),
    ]
}
