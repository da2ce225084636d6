//! Soak tests: long runs of the concurrent machinery, each asserting that nothing was lost
//! (the counts match) and that neither live heap memory nor the process's threads grow from
//! one round to the next.
//!
//! Each test runs a few seconds at most by default (the sizes below); `GONEXT_SOAK=long`
//! runs the sizes the issue names (1M virtual-time events, 1M cleanups, 10M interning calls)
//! and more rounds, for local runs:
//!
//! ```text
//! GONEXT_SOAK=long cargo test --release -p gonext-tests --test soak
//! ```

use gonext::{Ptr, runtime, scope, task, time, unique};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counts the heap bytes live in the whole process.
struct CountingAlloc;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The soaks run one at a time, so that each one's memory and threads are its own.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `(work, rounds)` for this run: `short` by default, `long` with `GONEXT_SOAK=long`.
fn size(short: usize, long: usize) -> (usize, usize) {
    match std::env::var("GONEXT_SOAK").as_deref() {
        Ok("long") => (long, 5),
        _ => (short, 3),
    }
}

/// Threads that just finished and may still be exiting when a round ends.
const EXITING: usize = 4;

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find_map(|line| line.strip_prefix("Threads:")).expect("a Threads line");
    line.trim().parse().expect("a thread count")
}

/// Runs `round` `rounds` times; after the first (which warms up pools and caches), live
/// memory may not grow by more than `slack` bytes, nor threads by more than `thread_slack`
/// (threads that just finished may still be exiting, and worker sets grow to their cap).
fn soak(rounds: usize, slack: i64, thread_slack: usize, mut round: impl FnMut()) {
    round();
    let (bytes, threads_before) = (LIVE_BYTES.load(Ordering::SeqCst), threads());
    for _ in 1..rounds {
        round();
    }
    // Background workers give memory back a moment after their last job (a cleanup worker
    // returns a batch's node blocks once the batch is done): wait for it, generously.
    let settled_by = Instant::now() + Duration::from_secs(10);
    while LIVE_BYTES.load(Ordering::SeqCst) - bytes > slack && Instant::now() < settled_by {
        std::thread::sleep(Duration::from_millis(5));
    }
    let grown = LIVE_BYTES.load(Ordering::SeqCst) - bytes;
    assert!(grown <= slack, "live memory grew by {grown} bytes over {} rounds", rounds - 1);
    let threads_after = threads();
    assert!(
        threads_after <= threads_before + thread_slack,
        "threads grew from {threads_before} to {threads_after} over {} rounds",
        rounds - 1
    );
}

#[test]
fn virtual_time_events_across_a_hundred_members() {
    const MEMBERS: u64 = 100;
    let _serial = serial();
    let (events, rounds) = size(100_000, 1_000_000);
    let per_member = events as u64 / MEMBERS;
    soak(rounds, 16 * 1024, EXITING, || {
        let (woken, elapsed) = time::bubble_async(async move {
            let start = time::Instant::now();
            let members: Vec<_> = (1..=MEMBERS)
                .map(|member| {
                    task::spawn(async move {
                        for _ in 0..per_member {
                            time::sleep(Duration::from_micros(member)).await;
                        }
                        per_member
                    })
                })
                .collect();
            let mut woken = 0;
            for member in members {
                woken += member.await;
            }
            (woken, start.elapsed())
        });
        assert_eq!(woken, MEMBERS * per_member, "every sleep ended");
        assert_eq!(elapsed, Duration::from_micros(MEMBERS * per_member), "the slowest member set the clock");
    });
}

#[test]
fn cleanups_from_sixteen_threads() {
    const THREADS: usize = 16;
    let _serial = serial();
    let (cleanups, rounds) = size(200_000, 1_000_000);
    let ran = Arc::new(AtomicUsize::new(0));
    let mut expected = 0;
    // The block pool keeps up to 256 KiB of node blocks between rounds. With 16 producers on
    // a small machine, workers preempted in a job look stuck to the monitor, which starts
    // more of them, up to 64 (idle ones retire after 10 s).
    soak(rounds, 512 * 1024, 64 + EXITING, || {
        let producers: Vec<_> = (0..THREADS)
            .map(|_| {
                let ran = Arc::clone(&ran);
                std::thread::spawn(move || {
                    for i in 0..cleanups / THREADS {
                        let object = Ptr::new(i);
                        let ran = Arc::clone(&ran);
                        let handle = runtime::add_cleanup(
                            &object,
                            move |_: usize| {
                                ran.fetch_add(1, Ordering::Relaxed);
                            },
                            i,
                        );
                        if i % 7 == 0 {
                            assert!(handle.stop(), "a pending cleanup stops");
                        }
                    }
                })
            })
            .collect();
        producers.into_iter().for_each(|producer| producer.join().unwrap());
        runtime::flush_cleanups();
        expected += THREADS * (cleanups / THREADS - (cleanups / THREADS).div_ceil(7));
        assert_eq!(ran.load(Ordering::Relaxed), expected, "every cleanup not stopped ran once");
        assert_eq!(runtime::pending_cleanups(), 0);
    });
}

/// Interned with a hash that collides often, so that lookups walk buckets whose other values
/// are dying.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key(u64);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.0 % 64).hash(state);
    }
}

#[test]
fn interning_hits_and_misses_with_values_dying_concurrently() {
    const THREADS: u64 = 8;
    const HOT: u64 = 32;
    let _serial = serial();
    let (calls, rounds) = size(200_000, 10_000_000);
    let per_thread = calls as u64 / THREADS;
    soak(rounds, 64 * 1024, EXITING, || {
        let canonical: Vec<_> = (0..HOT).map(|k| unique::make(Key(k))).collect();
        let canonical = Arc::new(canonical);
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let canonical = Arc::clone(&canonical);
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..per_thread {
                        let hot = i % HOT;
                        let hit = unique::make(Key(hot));
                        assert!(hit == canonical[hot as usize], "equal values share one handle");
                        // A miss on a value that dies soon, here or on another thread.
                        let miss = unique::make(Key(HOT + t * per_thread + i));
                        if i % 16 == 0 {
                            kept.push(miss);
                        }
                        if kept.len() > 64 {
                            kept.clear();
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|worker| worker.join().unwrap());
        drop(canonical);
        assert_eq!(unique::live::<Key>(), 0, "every value died with its last handle");
    });
}

fn spin_until(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

fn count(counter: &AtomicUsize, by: usize) {
    counter.fetch_add(by, Ordering::Relaxed);
}

#[test]
fn scope_pool_under_three_cpu_hogs() {
    let _serial = serial();
    let (tasks, rounds) = size(100_000, 1_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || spin_until(&stop))
        })
        .collect();
    let counter = AtomicUsize::new(0);
    let mut expected = 0;
    soak(rounds, 64 * 1024, EXITING, || {
        for _ in 0..tasks / 100 {
            let counter = &counter;
            scope! {
                for i in 0..100 {
                    go count(counter, i);
                }
            };
        }
        expected += tasks / 100 * (0..100).sum::<usize>();
        assert_eq!(counter.load(Ordering::Relaxed), expected, "every task ran once");
    });
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|hog| hog.join().unwrap());
}
