//! Virtual time for std code (the `std-time` feature): std's clocks, sleeps, timed waits and
//! threads inside bubbles, and the crates built on them.

use gonext::time::{self, Bubble};
use gonext::virtual_time_test;
use gonext_tests::panic_message;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn std_sleep_of_an_hour_returns_at_once_with_exact_clocks() {
    let real_start = Instant::now();
    time::bubble(|| {
        let start = Instant::now();
        let wall = SystemTime::now();
        std::thread::sleep(secs(3600));
        assert_eq!(start.elapsed(), secs(3600));
        assert_eq!(wall.elapsed().unwrap(), secs(3600));
        assert_eq!(gonext::time::Instant::now().into_std(), Instant::now());
        assert_eq!(gonext::time::SystemTime::now().into_std(), SystemTime::now());
    });
    assert!(real_start.elapsed() < secs(60), "an hour of virtual sleep took real time");
}

#[virtual_time_test]
fn std_time_reports_itself_virtual_inside_a_bubble() {
    assert!(time::std_time_is_virtual());
}

#[test]
fn outside_bubbles_std_time_is_real() {
    assert!(!time::std_time_is_virtual());
    let start = Instant::now();
    let wall = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert!(wall.elapsed().unwrap() >= Duration::from_millis(19));
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert!(since_epoch > secs(1_700_000_000), "the real calendar, not 2000-01-01");
}

#[virtual_time_test(start = "2024-02-29T12:00:00Z")]
fn std_system_time_starts_at_the_bubbles_start() {
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(since_epoch, secs(1_709_208_000));
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is valid for writes.
    assert_eq!(unsafe { libc::clock_gettime(id, &mut now) }, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn raw_syscall_clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: SYS_clock_gettime with a clock id and a timespec valid for writes.
    assert_eq!(unsafe { libc::syscall(libc::SYS_clock_gettime, id, &mut now as *mut libc::timespec) }, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[virtual_time_test]
fn every_wall_and_monotonic_clock_is_virtual_and_cpu_clocks_are_real() {
    let monotonic = [
        libc::CLOCK_MONOTONIC,
        libc::CLOCK_MONOTONIC_COARSE,
        libc::CLOCK_MONOTONIC_RAW,
        libc::CLOCK_BOOTTIME,
    ];
    let before: Vec<Duration> = monotonic.iter().map(|&id| clock(id)).collect();
    let wall_before = clock(libc::CLOCK_REALTIME_COARSE);
    let cpu_before = clock(libc::CLOCK_THREAD_CPUTIME_ID);
    std::thread::sleep(secs(90));
    for (&id, before) in monotonic.iter().zip(before) {
        assert_eq!(clock(id) - before, secs(90), "clock {id}");
    }
    assert_eq!(clock(libc::CLOCK_REALTIME_COARSE) - wall_before, secs(90));
    assert_eq!(clock(libc::CLOCK_REALTIME).as_secs(), 946_684_800 + 90);
    assert_eq!(raw_syscall_clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_MONOTONIC));
    assert!(clock(libc::CLOCK_THREAD_CPUTIME_ID) - cpu_before < secs(1), "CPU time stays real");
}

#[virtual_time_test]
fn gettimeofday_and_time_read_the_virtual_calendar() {
    std::thread::sleep(secs(5));
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: `tv` is valid for writes; no timezone is asked for.
    assert_eq!(unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) }, 0);
    assert_eq!((tv.tv_sec, tv.tv_usec), (946_684_805, 0));
    // SAFETY: `time` accepts a null pointer.
    assert_eq!(unsafe { libc::time(std::ptr::null_mut()) }, 946_684_805);
}

#[virtual_time_test]
fn condvar_wait_timeout_without_a_notifier_times_out_exactly() {
    let pair = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let guard = pair.0.lock().unwrap();
    let (_guard, result) = pair.1.wait_timeout(guard, secs(10)).unwrap();
    assert!(result.timed_out());
    assert_eq!(start.elapsed(), secs(10));
}

#[virtual_time_test]
fn condvar_wait_timeout_is_woken_by_a_member_that_notifies_after_sleeping() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let start = Instant::now();
    let notifier = {
        let pair = Arc::clone(&pair);
        gonext::thread::spawn(move || {
            std::thread::sleep(secs(3));
            *pair.0.lock().unwrap() = true;
            pair.1.notify_one();
        })
    };
    let (ready, result) =
        pair.1.wait_timeout_while(pair.0.lock().unwrap(), secs(3600), |ready| !*ready).unwrap();
    assert!(*ready && !result.timed_out());
    assert_eq!(start.elapsed(), secs(3));
    drop(ready);
    notifier.join().unwrap();
}

#[virtual_time_test]
fn recv_timeout_times_out_exactly_and_receives_from_a_std_thread() {
    let (tx, rx) = mpsc::channel::<&str>();
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(secs(5)), Err(mpsc::RecvTimeoutError::Timeout));
    assert_eq!(start.elapsed(), secs(5));
    let sender = std::thread::spawn(move || {
        std::thread::sleep(secs(2));
        tx.send("late").unwrap();
    });
    assert_eq!(rx.recv_timeout(secs(60)), Ok("late"));
    assert_eq!(start.elapsed(), secs(7));
    sender.join().unwrap();
}

#[virtual_time_test]
fn park_timeout_parks_for_exactly_its_timeout_in_virtual_time() {
    let start = Instant::now();
    std::thread::park_timeout(secs(7));
    assert_eq!(start.elapsed(), secs(7));
}

#[virtual_time_test]
fn unpark_ends_a_virtual_park_timeout_early() {
    let start = Instant::now();
    let parked = std::thread::current();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(secs(1));
        parked.unpark();
    });
    while start.elapsed() < secs(1) {
        std::thread::park_timeout(secs(3600));
    }
    assert_eq!(start.elapsed(), secs(1));
    waker.join().unwrap();
}

#[virtual_time_test]
fn a_relative_futex_wait_times_out_on_the_virtual_clock() {
    let word = std::sync::atomic::AtomicU32::new(0);
    let timeout = libc::timespec { tv_sec: 3, tv_nsec: 0 };
    let start = Instant::now();
    // SAFETY: FUTEX_WAIT on a live word with a valid relative timespec, as parking_lot does.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            0u32,
            &timeout as *const libc::timespec,
        )
    };
    assert_eq!(ret, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ETIMEDOUT));
    assert_eq!(start.elapsed(), secs(3));
}

#[virtual_time_test]
fn a_std_thread_spawned_in_the_bubble_is_a_member_joined_in_virtual_time() {
    let start = Instant::now();
    let worker = std::thread::Builder::new()
        .name("std-worker".into())
        .spawn(|| {
            std::thread::sleep(secs(40));
            Instant::now()
        })
        .unwrap();
    let finished = worker.join().unwrap();
    assert_eq!(finished - start, secs(40));
    assert_eq!(start.elapsed(), secs(40));
}

#[virtual_time_test]
fn a_detached_std_thread_is_waited_for_by_the_bubble() {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    drop(std::thread::spawn(move || {
        std::thread::sleep(secs(5));
        flag.store(true, Ordering::SeqCst);
    }));
    std::thread::sleep(secs(6));
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn adoption_can_be_turned_off_per_bubble() {
    let elapsed = Bubble::new().adopt_std_threads(false).run(|| {
        let start = Instant::now();
        std::thread::spawn(|| std::thread::sleep(Duration::from_millis(30))).join().unwrap();
        start.elapsed()
    });
    assert_eq!(elapsed, Duration::ZERO, "the plain thread slept in real time; the bubble's clock stayed");
}

#[test]
fn an_idle_lazily_started_pool_thread_does_not_keep_the_bubble_open() {
    type Job = Box<dyn FnOnce() + Send>;
    static POOL: std::sync::OnceLock<Mutex<mpsc::Sender<Job>>> = std::sync::OnceLock::new();
    let ran = time::bubble(|| {
        let (done_tx, done_rx) = mpsc::channel();
        let pool = POOL.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::spawn(move || rx.iter().for_each(|job| job()));
            Mutex::new(tx)
        });
        pool.lock().unwrap().send(Box::new(move || done_tx.send(7).unwrap())).unwrap();
        done_rx.recv().unwrap()
    });
    assert_eq!(ran, 7);
    let (tx, rx) = mpsc::channel();
    POOL.get().unwrap().lock().unwrap().send(Box::new(move || tx.send(Instant::now()).unwrap())).unwrap();
    let reported = rx.recv().unwrap();
    let since_epoch = reported.elapsed();
    assert!(since_epoch < secs(60), "the released pool thread keeps real time");
}

#[test]
fn gonext_service_threads_are_not_adopted() {
    let elapsed = time::bubble(|| {
        let start = Instant::now();
        gonext::scope! {
            go std::thread::sleep(secs(2));
        }
        let (ptr, _) = (gonext::Ptr::new(1u8), ());
        let _cleanup = gonext::runtime::add_cleanup(&ptr, |_| (), ());
        drop(ptr);
        start.elapsed()
    });
    assert_eq!(elapsed, secs(2));
    gonext::runtime::flush_cleanups();
}

#[virtual_time_test]
fn backoff_crates_retry_takes_exactly_its_schedule() {
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_interval: secs(60),
        max_elapsed_time: Some(secs(60)),
        ..backoff::ExponentialBackoff::default()
    };
    let start = Instant::now();
    let mut attempts = 0;
    let result: Result<u32, backoff::Error<&str>> = backoff::retry(policy, || {
        attempts += 1;
        if attempts <= 5 { Err(backoff::Error::transient("not yet")) } else { Ok(attempts) }
    });
    assert_eq!(result.unwrap(), 6);
    assert_eq!(start.elapsed(), Duration::from_millis(100 + 200 + 400 + 800 + 1600));
}

#[virtual_time_test]
fn backoff_crates_max_elapsed_time_is_measured_in_virtual_time() {
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_elapsed_time: Some(secs(1)),
        ..backoff::ExponentialBackoff::default()
    };
    let start = Instant::now();
    let mut attempts = 0;
    let result: Result<(), backoff::Error<&str>> = backoff::retry(policy, || {
        attempts += 1;
        Err(backoff::Error::transient("never"))
    });
    assert!(result.is_err());
    assert_eq!(attempts, 4, "100 + 200 + 400 ms fit in a second, 800 more do not");
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[virtual_time_test]
fn a_notify_followed_by_a_sleep_never_loses_the_wake_up() {
    let shared = Arc::new((Mutex::new(0u32), Condvar::new()));
    let rounds = 10_000;
    let notifier = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for round in 1..=rounds {
                *shared.0.lock().unwrap() = round;
                shared.1.notify_one();
                std::thread::sleep(secs(1));
            }
        })
    };
    let start = Instant::now();
    for round in 1..=rounds {
        let guard = shared.0.lock().unwrap();
        let (guard, result) = shared.1.wait_timeout_while(guard, secs(3600), |seen| *seen < round).unwrap();
        assert!(!result.timed_out(), "round {round} lost its wake-up");
        assert_eq!(start.elapsed(), secs(u64::from(round) - 1), "round {round} woke late");
        drop(guard);
    }
    notifier.join().unwrap();
}

#[test]
fn a_member_panicking_while_another_sleeps_in_std_reraises_its_payload() {
    let message = panic_message(|| {
        time::bubble(|| {
            let sleeper = std::thread::spawn(|| std::thread::sleep(secs(3600)));
            std::thread::sleep(secs(1));
            let _keep = sleeper;
            panic!("the root failed");
        });
    });
    assert_eq!(message, "the root failed");
}

#[test]
fn the_next_bubble_after_a_failed_one_runs_normally() {
    let _ = catch_unwind(|| {
        time::bubble(|| {
            gonext::thread::spawn(|| std::thread::sleep(secs(3600)));
            panic!("first bubble fails");
        })
    });
    let elapsed = time::bubble(|| {
        let start = Instant::now();
        std::thread::sleep(secs(9));
        start.elapsed()
    });
    assert_eq!(elapsed, secs(9));
}

// A member stuck in std code cannot be unwound (std calls libc through `extern "C"`), so the
// stuck code runs in a spawned member: the root, blocked in gonext, unwinds, and the bubble
// raises its report once the stall limit gives up on the stuck member.

#[test]
fn an_untimed_std_wait_nobody_answers_is_a_stall_naming_it() {
    let (tx, rx) = mpsc::channel::<u8>();
    let message = panic_message(|| {
        Bubble::new().stall(Duration::from_millis(300)).run(|| {
            gonext::thread::spawn(move || rx.recv()).join().unwrap().ok();
        });
    });
    assert!(message.starts_with("stall: nothing in bubble #"), "{message}");
    assert!(
        message.contains("thread-1 (started at tests/std_time.rs:")
            && message.contains("in an untimed std wait (counts as running)"),
        "{message}"
    );
    drop(tx);
}

#[test]
fn a_periodic_std_wait_loop_runs_into_the_virtual_timeout() {
    let message = panic_message(|| {
        Bubble::new().timeout(secs(3600)).stall(Duration::from_millis(300)).run(|| {
            let looping = gonext::thread::spawn(|| {
                let pair = (Mutex::new(()), Condvar::new());
                let mut guard = pair.0.lock().unwrap();
                for _ in 0..10_000 {
                    guard = pair.1.wait_timeout(guard, secs(1)).unwrap().0;
                }
            });
            looping.join().unwrap();
        });
    });
    assert!(message.starts_with("virtual timeout:"), "{message}");
    assert!(message.contains("blocked in a std timed wait (std-time)"), "{message}");
}

#[test]
fn a_thread_local_destructor_that_reads_the_clock_does_not_crash() {
    struct ReadsTheClock(Arc<AtomicU32>);
    impl Drop for ReadsTheClock {
        fn drop(&mut self) {
            let _ = Instant::now();
            let _ = SystemTime::now();
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static GUARD: std::cell::RefCell<Option<ReadsTheClock>> = const { std::cell::RefCell::new(None) };
    }
    let dropped = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&dropped);
    time::bubble(move || {
        std::thread::spawn(move || GUARD.with_borrow_mut(|guard| *guard = Some(ReadsTheClock(counter))))
            .join()
            .unwrap();
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[virtual_time_test]
async fn a_std_sleep_inside_an_async_task_blocks_its_executor_in_virtual_time() {
    let start = Instant::now();
    let other = gonext::task::spawn(async {
        gonext::time::sleep(secs(1)).await;
        Instant::now()
    });
    gonext::time::sleep(Duration::from_millis(1)).await; // `other` registers its timer
    std::thread::sleep(secs(5));
    assert_eq!(start.elapsed(), secs(5) + Duration::from_millis(1));
    let other_woke = other.await;
    assert_eq!(
        other_woke - start,
        secs(5) + Duration::from_millis(1),
        "it could not run while its executor slept"
    );
}

#[test]
fn many_bubbles_at_once_keep_their_std_clocks_apart_and_exact() {
    let workers: Vec<_> = (0..8u64)
        .map(|n| {
            std::thread::spawn(move || {
                for round in 0..20u64 {
                    let step = secs(n + 1);
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        time::bubble(|| {
                            let pair = Arc::new((Mutex::new(0u64), Condvar::new()));
                            let start = Instant::now();
                            let ticker = {
                                let pair = Arc::clone(&pair);
                                std::thread::spawn(move || {
                                    for tick in 1..=5 {
                                        std::thread::sleep(step);
                                        *pair.0.lock().unwrap() = tick;
                                        pair.1.notify_all();
                                    }
                                })
                            };
                            let mut seen = pair.0.lock().unwrap();
                            while *seen < 5 {
                                seen = pair.1.wait_timeout(seen, secs(3600)).unwrap().0;
                            }
                            drop(seen);
                            ticker.join().unwrap();
                            assert_eq!(start.elapsed(), step * 5);
                            if round % 7 == 3 {
                                panic!("round {round} of bubble {n} fails on purpose");
                            }
                        });
                    }));
                    match outcome {
                        Ok(()) => assert_ne!(round % 7, 3),
                        Err(payload) => assert_eq!(
                            payload.downcast_ref::<String>().map(String::as_str),
                            Some(format!("round {round} of bubble {n} fails on purpose").as_str())
                        ),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

/// README.md's `std-time` example, as written there (extracted by `build.rs`).
mod readme {
    include!(concat!(env!("OUT_DIR"), "/readme_std_time.rs"));
}
