//! Virtual time: the cost of a virtual sleep alone and with 1000 sleepers, against tokio's
//! paused clock; a channel ping-pong between bubble threads; `Instant::now` outside bubbles.

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
    Case::time("time/sleep_lone", |iters| {
        time::bubble(|| {
            let start = Instant::now();
            for _ in 0..iters {
                thread::sleep(Duration::from_millis(1));
            }
            start.elapsed()
        })
    })
    .peer("tokio_paused", |iters| {
        paused_tokio().block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            start.elapsed()
        })
    })
}

/// Task `i` of `SLEEPERS` sleeps `rounds` times for `1 + i % 7` ms: many distinct deadlines.
fn delay(i: u64) -> Duration {
    Duration::from_millis(1 + i % 7)
}

fn sleepers_async() -> Case {
    Case::time("time/1000_sleepers_async", |iters| {
        let rounds = iters.div_ceil(SLEEPERS);
        let start = Instant::now();
        time::bubble_async(async move {
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
        });
        start.elapsed().mul_f64(iters as f64 / (rounds * SLEEPERS) as f64)
    })
    .peer("tokio_paused", |iters| {
        let rounds = iters.div_ceil(SLEEPERS);
        let start = Instant::now();
        paused_tokio().block_on(async move {
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
        });
        start.elapsed().mul_f64(iters as f64 / (rounds * SLEEPERS) as f64)
    })
}

fn threads_pingpong() -> Case {
    Case::time("time/threads_pingpong", |iters| {
        time::bubble(|| {
            let (ping_tx, ping_rx) = sync::chan::<u64>(0);
            let (pong_tx, pong_rx) = sync::chan::<u64>(0);
            let echo = thread::spawn(move || {
                for n in &ping_rx {
                    pong_tx.send(n).expect("pong");
                }
            });
            let start = Instant::now();
            for n in 0..iters {
                ping_tx.send(n).expect("ping");
                black_box(pong_rx.recv());
            }
            let elapsed = start.elapsed();
            drop(ping_tx);
            echo.join().expect("echo thread");
            elapsed
        })
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
    vec![sleep_lone(), sleepers_async(), threads_pingpong(), now_outside()]
}
