//! Virtual time: the cost of a virtual sleep alone and with 1000 sleepers, against tokio's
//! paused clock; a channel ping-pong between bubble threads; `Instant::now` outside bubbles;
//! and, when built with the `std-time` feature, std's own sleep in a bubble, std's clock
//! outside one, and tokio runtimes inside bubbles against tokio's paused clock.
//!
//! Every case times its bubble from outside: with `std-time`, std's `Instant` inside a bubble
//! reads the virtual clock.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gonext::{sync, task, thread, time};

use crate::harness::{Case, iter};

const SLEEPERS: u64 = 1000;

fn paused_tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

fn sleep_lone() -> Case {
    Case::time("time/sleep_lone", gonext_sleeps).peer("tokio_paused", tokio_paused_sleeps)
}

fn gonext_sleeps(iters: u64) -> Duration {
    let start = Instant::now();
    time::bubble(|| {
        for _ in 0..iters {
            thread::sleep(Duration::from_millis(1));
        }
    });
    start.elapsed()
}

fn tokio_paused_sleeps(iters: u64) -> Duration {
    paused_tokio().block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start.elapsed()
    })
}

/// `std::thread::sleep` in a bubble: the `std-time` interposer's cost over gonext's own sleep.
fn std_sleep_lone() -> Case {
    Case::time("time/std_sleep_lone", |iters| {
        let start = Instant::now();
        time::bubble(|| {
            for _ in 0..iters {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        start.elapsed()
    })
    .peer("gonext_thread_sleep", gonext_sleeps)
    .peer("tokio_paused", tokio_paused_sleeps)
}

/// `std::time::Instant::now()` outside bubbles through the `std-time` interposer, against
/// libc's own `clock_gettime` (the vDSO) called directly.
fn std_now_outside() -> Case {
    type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;
    // SAFETY: RTLD_NEXT from the executable finds libc's `clock_gettime`, past gonext's.
    let real = unsafe { libc::dlsym(libc::RTLD_NEXT, c"clock_gettime".as_ptr()) };
    assert!(!real.is_null(), "libc's clock_gettime");
    // SAFETY: that symbol has this type.
    let real = unsafe { std::mem::transmute::<*mut libc::c_void, ClockGettime>(real) };
    Case::time("time/std_now_outside", iter(Instant::now)).peer(
        "vdso_clock_gettime",
        iter(move || {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `now` is valid for writes.
            unsafe { real(libc::CLOCK_MONOTONIC, &mut now) };
            now
        }),
    )
}

/// Task `i` of `SLEEPERS` sleeps `rounds` times for `1 + i % 7` ms: many distinct deadlines.
fn delay(i: u64) -> Duration {
    Duration::from_millis(1 + i % 7)
}

/// `SLEEPERS` tasks of a bubble sleeping for many distinct deadlines, `rounds` times each.
async fn gonext_sleepers(rounds: u64) {
    let tasks: Vec<_> = (0..SLEEPERS)
        .map(|i| {
            task::spawn(async move {
                for _ in 0..rounds {
                    time::sleep(delay(i)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

/// The time per sleep of `SLEEPERS` sleepers run by `run` for `rounds` rounds each.
fn per_sleep(iters: u64, run: impl FnOnce(u64)) -> Duration {
    let rounds = iters.div_ceil(SLEEPERS);
    let start = Instant::now();
    run(rounds);
    start.elapsed().mul_f64(iters as f64 / (rounds * SLEEPERS) as f64)
}

/// The recording cost: `time/1000_sleepers_async` recording every event for a trace (kept in
/// memory), and writing it as a Chrome trace file, against the same without recording.
fn trace_overhead() -> Case {
    let path = std::env::temp_dir().join(format!("gonext-bench-trace-{}.json", std::process::id()));
    Case::time("time/trace_overhead", |iters| {
        per_sleep(iters, |rounds| {
            std::hint::black_box(time::Bubble::new().run_async_traced(gonext_sleepers(rounds)));
        })
    })
    .peer("tracing_off", |iters| {
        per_sleep(iters, |rounds| time::Bubble::new().timeline(0).run_async(gonext_sleepers(rounds)))
    })
    .peer("tracing_to_a_file", move |iters| {
        per_sleep(iters, |rounds| time::Bubble::new().trace(&path).run_async(gonext_sleepers(rounds)))
    })
}

fn sleepers_async() -> Case {
    Case::time("time/1000_sleepers_async", |iters| {
        per_sleep(iters, |rounds| time::bubble_async(gonext_sleepers(rounds)))
    })
    .peer("tokio_paused", |iters| per_sleep(iters, |rounds| paused_tokio().block_on(tokio_sleepers(rounds))))
}

/// A paused tokio runtime as `#[tokio::test(start_paused = true)]` builds it: I/O and time
/// enabled, like the runtime `#[virtual_time_test(tokio)]` builds.
fn paused_tokio_all() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

/// A tokio runtime as `#[virtual_time_test(tokio)]` builds it inside a bubble.
fn tokio_in_bubble() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(time::runtime_parked)
        .on_thread_unpark(time::runtime_unparked)
        .build()
        .expect("tokio runtime")
}

/// One tokio task sleeping 1 ms at a time: on a runtime inside a bubble, and on tokio's paused
/// clock, both built as the test attributes build them.
fn tokio_in_bubble_sleep_lone() -> Case {
    let sleeps = |iters| async move {
        for _ in 0..iters {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    Case::time("time/tokio_in_bubble_sleep_lone", move |iters| {
        let start = Instant::now();
        time::bubble(|| tokio_in_bubble().block_on(time::root_future(sleeps(iters))));
        start.elapsed()
    })
    .peer("tokio_paused", move |iters| {
        let runtime = paused_tokio_all();
        let start = Instant::now();
        runtime.block_on(sleeps(iters));
        start.elapsed()
    })
}

/// `SLEEPERS` tokio tasks sleeping for many distinct deadlines, `rounds` times each, as
/// `gonext_sleepers` does.
async fn tokio_sleepers(rounds: u64) {
    let tasks: Vec<_> = (0..SLEEPERS)
        .map(|i| {
            tokio::spawn(async move {
                for _ in 0..rounds {
                    tokio::time::sleep(delay(i)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sleeper task");
    }
}

fn tokio_in_bubble_sleepers() -> Case {
    Case::time("time/tokio_in_bubble_1000_sleepers", |iters| {
        per_sleep(iters, |rounds| {
            time::bubble(|| tokio_in_bubble().block_on(time::root_future(tokio_sleepers(rounds))));
        })
    })
    .peer("tokio_paused", |iters| {
        per_sleep(iters, |rounds| paused_tokio_all().block_on(tokio_sleepers(rounds)))
    })
}

fn threads_pingpong() -> Case {
    Case::time("time/threads_pingpong", |iters| {
        let start = Instant::now();
        time::bubble(|| {
            let (ping_tx, ping_rx) = sync::chan::<u64>(0);
            let (pong_tx, pong_rx) = sync::chan::<u64>(0);
            let echo = thread::spawn(move || {
                for n in &ping_rx {
                    pong_tx.send(n).expect("pong");
                }
            });
            for n in 0..iters {
                ping_tx.send(n).expect("ping");
                black_box(pong_rx.recv());
            }
            drop(ping_tx);
            echo.join().expect("echo thread");
        });
        start.elapsed()
    })
    .peer("std_mpsc_real_time", |iters| {
        let (ping_tx, ping_rx) = mpsc::sync_channel::<u64>(0);
        let (pong_tx, pong_rx) = mpsc::sync_channel::<u64>(0);
        let echo = std::thread::spawn(move || {
            for n in ping_rx {
                pong_tx.send(n).expect("pong");
            }
        });
        let start = Instant::now();
        for n in 0..iters {
            ping_tx.send(n).expect("ping");
            black_box(pong_rx.recv().expect("pong"));
        }
        let elapsed = start.elapsed();
        drop(ping_tx);
        echo.join().expect("echo thread");
        elapsed
    })
}

fn now_outside() -> Case {
    Case::time("time/now_outside", iter(time::Instant::now)).peer("std_instant_now", iter(Instant::now))
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![sleep_lone(), sleepers_async(), trace_overhead(), threads_pingpong(), now_outside()];
    if time::bubble(time::std_time_is_virtual) {
        cases.extend([
            std_sleep_lone(),
            std_now_outside(),
            tokio_in_bubble_sleep_lone(),
            tokio_in_bubble_sleepers(),
        ]);
    } else {
        eprintln!(
            "compare: time/std_* and time/tokio_in_bubble_* need the std-time feature (`--features std-time`); skipped"
        );
    }
    cases
}
