//! Virtual time: Go's synctest Task 1 port, the bgtask ticker, failure reports, members.

use gonext::context::Context;
use gonext::retry::{Backoff, RetryError};
use gonext::time::{self, Bubble, Instant, SystemTime};
use gonext::{select, sync, task, thread, virtual_time_test};
use gonext_tests::panic_message;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Go's Task 1: `RetryWithBackoff(ctx, op, maxAttempts)` with delays of 100, 200, 400… ms.
fn retry_with_backoff<T>(
    ctx: &Context,
    max_attempts: u32,
    op: impl FnMut() -> Result<T, String>,
) -> Result<T, RetryError<String>> {
    Backoff::new(ms(100)).max_attempts(max_attempts).context(ctx).retry(op)
}

#[virtual_time_test]
fn retry_succeeding_on_the_third_attempt_takes_exactly_300ms() {
    let start = Instant::now();
    let mut attempts = 0;
    let result = retry_with_backoff(&Context::background(), 5, || {
        attempts += 1;
        if attempts == 3 { Ok("done") } else { Err(format!("attempt {attempts} failed")) }
    });
    assert_eq!(result, Ok("done"));
    assert_eq!(start.elapsed(), ms(300));
}

#[virtual_time_test]
fn retry_always_failing_returns_the_last_error_after_the_schedule() {
    let start = Instant::now();
    let mut attempts = 0;
    let result: Result<(), _> = retry_with_backoff(&Context::background(), 4, || {
        attempts += 1;
        Err(format!("attempt {attempts} failed"))
    });
    assert_eq!(result, Err(RetryError::Exhausted { last: "attempt 4 failed".to_owned(), attempts: 4 }));
    assert_eq!(start.elapsed(), ms(100 + 200 + 400));
}

#[virtual_time_test]
fn retry_sleeps_between_attempts_instead_of_spinning() {
    let attempts = Arc::new(AtomicU32::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let counted = Arc::clone(&attempts);
    let worker = thread::spawn(move || {
        retry_with_backoff::<()>(&ctx, 100, || {
            counted.fetch_add(1, Ordering::SeqCst);
            Err("down".to_owned())
        })
    });
    time::wait();
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "the loop is asleep after its first attempt");
    cancel.cancel();
    let outcome = worker.join().unwrap();
    assert!(matches!(outcome, Err(RetryError::Canceled { attempts: 1, .. })), "{outcome:?}");
}

#[virtual_time_test]
fn retry_stops_when_the_context_deadline_passes_mid_sleep() {
    let (ctx, _cancel) = Context::background().with_timeout(ms(250));
    let start = Instant::now();
    let result: Result<(), _> = retry_with_backoff(&ctx, 10, || Err("down".to_owned()));
    assert!(matches!(result, Err(RetryError::Canceled { attempts: 2, .. })), "{result:?}");
    assert_eq!(start.elapsed(), ms(250));
}

#[virtual_time_test]
async fn async_retry_follows_the_same_schedule() {
    let start = Instant::now();
    let mut attempts = 0;
    let result = Backoff::new(ms(100))
        .retry_async(|| {
            attempts += 1;
            let outcome = if attempts == 4 { Ok(attempts) } else { Err("no") };
            async move { outcome }
        })
        .await;
    assert_eq!(result, Ok(4));
    assert_eq!(start.elapsed(), ms(700));
}

#[test]
fn jitter_stays_within_its_fraction_and_is_reproducible() {
    let policy = Backoff::new(ms(1000)).factor(1.0).jitter(0.25).seed(7);
    let delays: Vec<Duration> = policy.delays().take(200).collect();
    assert!(delays.iter().all(|d| *d >= ms(750) && *d <= ms(1250)), "{delays:?}");
    assert!(delays.iter().any(|d| *d < ms(950)) && delays.iter().any(|d| *d > ms(1050)), "jitter spreads");
    assert_eq!(delays, policy.delays().take(200).collect::<Vec<_>>());
}

#[virtual_time_test]
fn ticker_task_stopped_after_five_virtual_seconds_ticked_five_times() {
    let (ctx, cancel) = Context::background().with_cancel();
    let worker = thread::spawn(move || {
        let mut ticker = time::Ticker::new(Duration::from_secs(1));
        let mut ticks = 0;
        loop {
            select! {
                _ = ctx.done() => return ticks,
                _ = ticker.tick() => ticks += 1,
            }
        }
    });
    thread::sleep(Duration::from_millis(5500));
    cancel.cancel();
    assert_eq!(worker.join().unwrap(), 5);
}

#[test]
fn clock_starts_at_2000_and_can_start_elsewhere() {
    let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    time::bubble(|| assert_eq!(since_epoch(SystemTime::now()), Duration::from_secs(946_684_800)));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    Bubble::new().start(start).run(|| {
        thread::sleep(Duration::from_secs(5));
        assert_eq!(since_epoch(SystemTime::now()), Duration::from_secs(1_000_000_005));
    });
}

#[virtual_time_test(start = "2024-02-29T12:00:00Z")]
fn start_option_sets_the_virtual_wall_clock() {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs, 1_709_208_000);
}

#[test]
fn instant_outside_a_bubble_is_real_time() {
    let start = Instant::now();
    std::thread::sleep(ms(20));
    assert!(start.elapsed() >= ms(20));
    let std_start = std::time::Instant::now();
    assert!(Instant::now().into_std() >= std_start);
}

#[virtual_time_test]
fn channel_ping_pong_between_threads_uses_virtual_time() {
    let (ping_tx, ping_rx) = sync::chan::<u32>(0);
    let (pong_tx, pong_rx) = sync::chan::<u32>(0);
    let start = Instant::now();
    let ponger = thread::spawn(move || {
        for n in &ping_rx {
            thread::sleep(ms(10));
            pong_tx.send(n + 1).unwrap();
        }
    });
    let mut n = 0;
    for _ in 0..10 {
        ping_tx.send(n).unwrap();
        n = pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    ponger.join().unwrap();
    assert_eq!(n, 10);
    assert_eq!(start.elapsed(), ms(100));
}

#[virtual_time_test]
fn nested_spawns_join_the_bubble() {
    let start = Instant::now();
    let outer = thread::spawn(|| {
        let inner = thread::spawn(|| {
            thread::sleep(Duration::from_secs(3));
            Instant::now()
        });
        thread::sleep(Duration::from_secs(1));
        inner.join().unwrap()
    });
    let inner_end = outer.join().unwrap();
    assert_eq!(inner_end - start, Duration::from_secs(3));
}

#[virtual_time_test]
async fn async_tasks_and_threads_share_one_clock() {
    let (tx, rx) = sync::chan::<&str>(1);
    let sender = tx.clone();
    let thread_member = thread::spawn(move || {
        thread::sleep(Duration::from_secs(2));
        sender.send("thread").unwrap();
    });
    let task_member = task::spawn(async move {
        time::sleep(Duration::from_secs(1)).await;
        tx.send_async("task").await.unwrap();
    });
    let start = Instant::now();
    assert_eq!(rx.recv_async().await, Some("task"));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(rx.recv_async().await, Some("thread"));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    task_member.await;
    assert!(rx.recv_async().await.is_none());
    drop(thread_member);
}

#[virtual_time_test]
fn wait_returns_once_every_other_member_is_blocked() {
    let (tx, rx) = sync::chan::<u32>(3);
    let sender = thread::spawn(move || {
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        thread::sleep(Duration::from_secs(60));
    });
    let start = Instant::now();
    time::wait();
    assert_eq!(rx.len(), 3, "the sender ran until it slept");
    assert_eq!(start.elapsed(), Duration::ZERO);
    sender.join().unwrap();
}

#[virtual_time_test]
fn sleep_then_wait_observes_effects_at_the_new_time() {
    let hits = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&hits);
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        counted.fetch_add(1, Ordering::SeqCst);
    });
    time::sleep_then_wait(Duration::from_secs(1));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn deadlock_reports_blocked_sites() {
    let message = panic_message(|| {
        time::bubble(|| {
            let (_tx, rx) = sync::chan::<u32>(0);
            let (tx2, rx2) = sync::chan::<u32>(0);
            let _worker = thread::spawn(move || {
                let _keep = &tx2;
                rx2.recv()
            });
            rx.recv();
        });
    });
    assert!(message.starts_with("deadlock: all tasks in bubble are blocked"), "{message}");
    assert!(message.contains("root (started at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("blocked in chan recv at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("thread-1 (started at tests/virtual_time.rs:"), "{message}");
    let members = message.split("the last").next().unwrap();
    assert_eq!(members.matches("blocked in chan recv").count(), 2, "{message}");
}

#[test]
fn deadlock_after_the_root_returned_names_the_stuck_members() {
    let message = panic_message(|| {
        time::bubble(|| {
            let (tx, rx) = sync::chan::<u32>(0);
            thread::spawn(move || {
                let _keep = &tx;
                rx.recv()
            });
        });
    });
    assert!(message.contains("the bubble's root returned"), "{message}");
    assert!(message.contains("thread-1"), "{message}");
}

#[test]
fn a_member_left_ticking_after_the_root_returned_is_a_deadlock_and_the_clock_stops() {
    let ticks = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&ticks);
    let message = panic_message(|| {
        time::bubble(move || {
            thread::spawn(move || {
                let mut ticker = time::interval(Duration::from_secs(1));
                loop {
                    ticker.tick_blocking();
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            });
        });
    });
    assert!(message.starts_with("deadlock: all tasks in bubble are blocked"), "{message}");
    assert!(message.contains("the bubble's root returned"), "{message}");
    assert!(message.contains("at virtual time 2000-01-01T00:00:00Z"), "{message}");
    assert!(
        message.contains("thread-1 (started at tests/virtual_time.rs:")
            && message.contains("blocked in Ticker::tick_blocking at"),
        "{message}"
    );
    assert_eq!(ticks.load(Ordering::SeqCst), 0, "the clock never moved past the root's return");
}

/// Runs `f` on a thread outside every bubble after a short real delay, as a server, a signal
/// handler or another test's thread would.
fn from_outside_after_a_real_delay(f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(ms(30));
        f();
    })
}

#[test]
fn receiving_on_a_channel_created_outside_waits_for_the_outside_sender() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || tx.send(7).unwrap());
    assert_eq!(time::bubble(move || rx.recv()), Some(7));
    outside.join().unwrap();
}

#[test]
fn sending_on_a_channel_created_outside_waits_for_the_outside_receiver() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || assert_eq!(rx.recv(), Some(8)));
    time::bubble(move || tx.send(8).unwrap());
    outside.join().unwrap();
}

#[test]
fn a_channel_created_outside_and_closed_outside_ends_the_members_receive() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || drop(tx));
    assert_eq!(time::bubble(move || rx.recv()), None);
    outside.join().unwrap();
}

#[test]
fn select_over_only_outside_channels_waits_for_the_outside_world() {
    let (tx, rx) = sync::chan::<u32>(0);
    let (_tx2, rx2) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || tx.send(9).unwrap());
    let got = time::bubble(move || {
        select! {
            v = rx.recv_async() => v,
            v = rx2.recv_async() => v,
        }
    });
    assert_eq!(got, Some(9));
    outside.join().unwrap();
}

#[test]
fn select_mixing_an_outside_channel_with_bubble_objects_is_not_a_durable_block() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || tx.send(10).unwrap());
    let (got, elapsed) = time::bubble(move || {
        let start = Instant::now();
        let (_inner_tx, inner_rx) = sync::chan::<u32>(0);
        let got = select! {
            v = rx.recv_async() => v,
            v = inner_rx.recv_async() => v,
            _ = time::sleep(Duration::from_secs(3600)) => None,
        };
        (got, start.elapsed())
    });
    assert_eq!(
        got,
        Some(10),
        "the hour-long timer must not fire while the outside channel may still deliver"
    );
    assert_eq!(elapsed, Duration::ZERO);
    outside.join().unwrap();
}

#[test]
fn select_with_a_foreign_future_is_not_a_durable_block() {
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let outside = from_outside_after_a_real_delay(move || tx.send(11).unwrap());
    let got = time::bubble(move || {
        let (_inner_tx, inner_rx) = sync::chan::<u32>(0);
        select! {
            v = rx => v.ok(),
            v = inner_rx.recv_async() => v,
        }
    });
    assert_eq!(got, Some(11));
    outside.join().unwrap();
}

#[test]
fn waiting_on_a_waitgroup_created_outside_waits_for_the_outside_done() {
    let group = sync::WaitGroup::new();
    group.add(1);
    let done = group.clone();
    let outside = from_outside_after_a_real_delay(move || done.done());
    time::bubble(move || group.wait());
    outside.join().unwrap();
}

#[test]
fn a_waitgroup_created_outside_and_first_added_to_in_a_bubble_belongs_to_it() {
    let group = sync::WaitGroup::new();
    let inside = group.clone();
    let message = panic_message(move || {
        time::bubble(move || {
            inside.add(1);
            inside.wait(); // durable now: nothing in the bubble calls done, so it is a deadlock
        });
    });
    assert!(message.starts_with("deadlock: all tasks in bubble are blocked"), "{message}");
    let message = panic_message(|| group.add(1));
    assert!(message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn a_task_receiving_on_an_outside_channel_is_not_durably_blocked() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = from_outside_after_a_real_delay(move || tx.send(12).unwrap());
    assert_eq!(time::bubble_async(async move { rx.recv_async().await }), Some(12));
    outside.join().unwrap();
}

#[test]
fn a_member_waiting_on_an_outside_object_is_named_in_the_stall_report() {
    let (_tx, rx) = sync::chan::<u32>(0);
    let message = panic_message(|| {
        Bubble::new().stall(ms(200)).run(move || {
            rx.recv();
        });
    });
    assert!(message.starts_with("stall: nothing in bubble #"), "{message}");
    assert!(
        message.contains("blocked in chan recv at tests/virtual_time.rs:")
            && message.contains("on an object created outside the bubble (counts as running)"),
        "{message}"
    );
}

#[test]
fn stall_reports_members_blocked_outside_gonext() {
    let lock = Arc::new(std::sync::Mutex::new(()));
    let held = lock.lock().unwrap();
    let message = panic_message(|| {
        Bubble::new().stall(ms(200)).run(|| {
            let blocked = Arc::clone(&lock);
            thread::spawn(move || drop(blocked.lock()));
            // The clock cannot move while thread-1 waits on a std lock: it counts as running.
            thread::sleep(ms(1));
        });
    });
    drop(held);
    assert!(message.starts_with("stall: nothing in bubble #"), "{message}");
    assert!(message.contains("moved for 200ms of real time"), "{message}");
    assert!(
        message.contains("thread-1 (started at tests/virtual_time.rs:") && message.contains("): running"),
        "{message}"
    );
    assert!(
        message.contains("root (started at") && message.contains("blocked in thread::sleep at"),
        "{message}"
    );
}

#[test]
fn virtual_timeout_reports_the_time_reached() {
    let message = panic_message(|| {
        Bubble::new().timeout(Duration::from_secs(600)).run(|| thread::sleep(Duration::from_secs(3600)));
    });
    assert!(message.starts_with("virtual timeout: bubble #"), "{message}");
    assert!(
        message.contains("within 600s of virtual time (the clock reached 2000-01-01T00:10:00Z)"),
        "{message}"
    );
    assert!(message.contains("blocked in thread::sleep at tests/virtual_time.rs:"), "{message}");
}

#[derive(Debug, PartialEq)]
struct Payload(u32);

#[test]
fn member_panic_is_reraised_with_its_payload_after_joining_everyone() {
    let finished = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&finished);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        time::bubble(|| {
            let (_tx, rx) = sync::chan::<u32>(0);
            let waiter = Arc::clone(&seen);
            thread::spawn(move || {
                struct Count(Arc<AtomicU32>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _count = Count(waiter);
                rx.recv()
            });
            thread::spawn(|| {
                thread::sleep(Duration::from_secs(1));
                std::panic::panic_any(Payload(42));
            });
            thread::sleep(Duration::from_secs(10));
        });
    }))
    .expect_err("the member's panic reaches the caller");
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(42)));
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the blocked member was unwound and joined");
}

#[test]
fn async_task_panic_is_reraised() {
    let message = panic_message(|| {
        time::bubble_async(async {
            let failing = task::spawn(async {
                time::sleep(Duration::from_secs(1)).await;
                panic!("task failed at one second");
            });
            failing.await;
        });
    });
    assert_eq!(message, "task failed at one second");
}

#[test]
fn bubbles_do_not_nest() {
    let message = panic_message(|| time::bubble(|| time::bubble(|| ())));
    assert!(
        message.contains("already inside bubble #") && message.contains("bubbles do not nest"),
        "{message}"
    );
}

#[test]
fn a_timer_used_outside_its_bubble_panics_naming_both() {
    let sleep = time::bubble(|| time::sleep(Duration::from_secs(1)));
    let message = panic_message(|| futures::executor::block_on(sleep));
    assert!(message.starts_with("time::sleep created at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("in bubble #") && message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn a_channel_used_outside_its_bubble_panics() {
    let (tx, _rx) = time::bubble(|| sync::chan::<u8>(1));
    let message = panic_message(|| {
        let _ = tx.try_send(1);
    });
    assert!(message.contains("objects of a bubble stay in it"), "{message}");
}

#[test]
fn a_waitgroup_waited_on_outside_its_bubble_panics() {
    let group = time::bubble(|| {
        let group = sync::WaitGroup::new();
        group.add(1);
        group
    });
    let message = panic_message(|| group.wait());
    assert!(message.starts_with("WaitGroup created at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn threads_spawned_with_std_keep_real_time() {
    time::bubble(|| {
        let real = std::thread::spawn(|| {
            let start = Instant::now();
            std::thread::sleep(ms(5));
            start.elapsed()
        });
        assert!(real.join().unwrap() >= ms(5));
    });
}

#[test]
fn async_sleep_works_outside_bubbles_under_other_executors() {
    futures::executor::block_on(time::sleep(ms(5)));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let start = std::time::Instant::now();
        time::sleep(ms(5)).await;
        assert!(start.elapsed() >= ms(5));
        assert!(time::timeout(ms(5), time::sleep(Duration::from_secs(60))).await.is_err());
    });
}

#[virtual_time_test]
fn hold_clock_keeps_the_clock_still() {
    let hold = time::hold_clock();
    let sleeper = thread::spawn(|| thread::sleep(Duration::from_secs(1)));
    time::wait();
    assert_eq!(Instant::now().elapsed(), Duration::ZERO);
    assert!(!sleeper.is_finished());
    drop(hold);
    sleeper.join().unwrap();
}

#[virtual_time_test]
fn a_mutex_held_across_a_sleep_does_not_hang_the_bubble() {
    let shared = Arc::new(sync::Mutex::new(Vec::new()));
    let writer = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            let mut log = shared.lock().unwrap();
            thread::sleep(Duration::from_secs(1));
            log.push("writer");
        })
    };
    thread::sleep(ms(1));
    shared.lock().unwrap().push("root");
    writer.join().unwrap();
    assert_eq!(*shared.lock().unwrap(), ["writer", "root"]);
}

#[test]
fn a_waitgroup_added_to_in_another_bubble_panics_naming_both() {
    let group = time::bubble(|| sync::WaitGroup::new());
    let message = panic_message(|| time::bubble(move || group.add(1)));
    assert!(message.starts_with("WaitGroup created at tests/virtual_time.rs:"), "{message}");
    let bubbles: Vec<&str> = message.matches("bubble #").collect();
    assert_eq!(bubbles.len(), 2, "both bubbles are named: {message}");
    assert!(message.contains("objects of a bubble stay in it"), "{message}");
}

#[test]
fn a_waitgroup_marked_done_outside_its_bubble_panics() {
    let group = time::bubble(|| {
        let group = sync::WaitGroup::new();
        group.add(1);
        group
    });
    let message = panic_message(|| group.done());
    assert!(message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn a_ticker_of_a_bubble_ticked_outside_it_panics_instead_of_running_a_real_timer() {
    let mut ticker = time::bubble(|| time::Ticker::new(Duration::from_secs(60)));
    let message = panic_message(|| {
        ticker.tick_blocking();
    });
    assert!(message.starts_with("time::Ticker created at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("in bubble #") && message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn a_ticker_of_a_bubble_reset_outside_it_panics() {
    let mut ticker = time::bubble(|| time::Ticker::new(Duration::from_secs(60)));
    let message = panic_message(|| ticker.reset(Duration::from_secs(1)));
    assert!(message.contains("was used outside any bubble"), "{message}");
}

#[test]
fn a_real_time_ticker_used_inside_a_bubble_panics() {
    let mut ticker = time::Ticker::new(Duration::from_secs(60));
    let message = panic_message(|| {
        time::bubble(move || {
            ticker.tick_blocking();
        });
    });
    assert!(message.contains("time::Ticker created at tests/virtual_time.rs:"), "{message}");
    assert!(message.contains("outside any bubble was used inside bubble #"), "{message}");
}

#[virtual_time_test]
fn after_func_runs_as_a_member_at_its_virtual_deadline() {
    let start = Instant::now();
    let (tx, rx) = sync::chan(1);
    let _timer = time::after_func(Duration::from_secs(90), move || {
        tx.send(Instant::now()).unwrap();
    });
    // The receive is a durable block on a channel of the bubble: only the timer can end it.
    let ran_at = rx.recv().unwrap();
    assert_eq!(ran_at - start, Duration::from_secs(90));
}

#[virtual_time_test]
fn after_funcs_run_in_deadline_order_before_later_sleepers_wake() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    for (name, secs) in [("c", 30), ("a", 10), ("b", 20)] {
        let order = Arc::clone(&order);
        let _timer = time::after_func(Duration::from_secs(secs), move || order.lock().unwrap().push(name));
    }
    thread::sleep(Duration::from_secs(25));
    assert_eq!(*order.lock().unwrap(), ["a", "b"]);
    time::sleep_then_wait(Duration::from_secs(5));
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
}

#[virtual_time_test]
fn after_funcs_due_at_one_instant_all_run_before_the_clock_moves_on() {
    let ran_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    for _ in 0..3 {
        let ran_at = Arc::clone(&ran_at);
        let _timer =
            time::after_func(Duration::from_secs(5), move || ran_at.lock().unwrap().push(Instant::now()));
    }
    thread::sleep(Duration::from_secs(6));
    let ran_at = ran_at.lock().unwrap();
    assert_eq!(ran_at.len(), 3);
    assert!(ran_at.iter().all(|&at| at - start == Duration::from_secs(5)), "{ran_at:?}");
}

#[virtual_time_test]
fn a_stopped_after_func_never_runs_and_a_reset_one_runs_at_its_new_deadline() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let stopped = time::after_func(Duration::from_secs(1), move || {
        counted.fetch_add(100, Ordering::SeqCst);
    });
    assert!(stopped.stop(), "it was armed");
    assert!(!stopped.stop(), "already stopped");

    let counted = Arc::clone(&runs);
    let reset = time::after_func(Duration::from_secs(1), move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    assert!(reset.reset(Duration::from_secs(10)), "it was armed");
    time::sleep_then_wait(Duration::from_secs(9));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    time::sleep_then_wait(Duration::from_secs(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!reset.stop(), "it already ran");
}

#[virtual_time_test]
fn dropping_an_after_func_timer_does_not_cancel_it() {
    let ran = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&ran);
    drop(time::after_func(Duration::from_secs(3), move || {
        counted.fetch_add(1, Ordering::SeqCst);
    }));
    time::sleep_then_wait(Duration::from_secs(3));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_after_func_fails_the_bubble_with_its_payload() {
    let message = panic_message(|| {
        time::bubble(|| {
            let _timer = time::after_func(Duration::from_secs(1), || panic!("after_func went wrong"));
            thread::sleep(Duration::from_secs(2));
        });
    });
    assert_eq!(message, "after_func went wrong");
}

#[virtual_time_test]
fn timer_stop_and_reset_return_gos_booleans() {
    let timer = time::Timer::new(Duration::from_secs(5));
    assert!(timer.stop(), "stopping an armed timer");
    assert!(!timer.stop(), "stopping a stopped timer");
    assert!(!timer.reset(Duration::from_secs(1)), "resetting a stopped timer");
    assert!(timer.reset(Duration::from_secs(2)), "resetting an armed timer");
    let start = Instant::now();
    assert_eq!(timer.wait_blocking() - start, Duration::from_secs(2));
    assert!(!timer.stop(), "stopping a timer whose value was received");
}

#[virtual_time_test]
fn a_timer_that_fired_unreceived_gives_no_stale_value_after_reset() {
    let start = Instant::now();
    let timer = time::Timer::new(Duration::from_secs(1));
    thread::sleep(Duration::from_secs(3)); // fired at +1 s, nobody received it
    assert!(timer.reset(Duration::from_secs(4)), "a fired, unreceived timer counts as active (Go 1.23)");
    let fired = timer.wait_blocking();
    assert_eq!(fired - start, Duration::from_secs(7), "the +1 s value was dropped by reset");
}

#[virtual_time_test]
fn a_stopped_timer_is_never_received_from_and_that_is_a_deadlock() {
    let timer = time::Timer::new(Duration::from_secs(1));
    timer.stop();
    let (tx, rx) = sync::chan::<()>(0);
    let chosen = select! {
        at = timer.wait() => at.duration_since(Instant::now()),
        _ = time::sleep(Duration::from_secs(2)) => Duration::from_secs(2),
        _ = rx.recv_async() => Duration::ZERO,
    };
    drop(tx);
    assert_eq!(chosen, Duration::from_secs(2), "the stopped timer never fired");
}

#[test]
fn timers_outside_bubbles_run_on_real_time_under_any_executor() {
    let start = std::time::Instant::now();
    let timer = time::Timer::new(ms(5));
    futures::executor::block_on(timer.wait());
    assert!(start.elapsed() >= ms(5));
    let (tx, rx) = std::sync::mpsc::channel();
    let _timer = time::after_func(ms(5), move || tx.send(std::thread::current().id()).unwrap());
    let ran_on = rx.recv().unwrap();
    assert_ne!(ran_on, std::thread::current().id(), "after_func runs on a thread of its own");
}

#[test]
fn waiting_on_an_after_func_timer_panics() {
    let timer = time::after_func(Duration::from_secs(3600), || ());
    let message = panic_message(|| drop(timer.wait()));
    assert!(message.contains("delivers no value"), "{message}");
    assert!(timer.stop());
}

#[virtual_time_test]
fn context_after_func_runs_once_when_the_context_is_cancelled() {
    let runs = Arc::new(AtomicU32::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let counted = Arc::clone(&runs);
    let after = ctx.after_func(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    time::wait();
    assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the cancel");
    cancel.cancel();
    time::wait();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!after.stop(), "it was already started");
}

#[virtual_time_test]
fn context_after_func_stopped_before_the_deadline_never_runs() {
    let runs = Arc::new(AtomicU32::new(0));
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
    let counted = Arc::clone(&runs);
    let after = ctx.after_func(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    assert!(after.stop());
    time::sleep_then_wait(Duration::from_secs(10));
    assert!(ctx.is_done());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[virtual_time_test]
fn context_after_func_on_a_done_context_runs_at_once_and_follows_its_parent() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, _cancel_child) = parent.with_cancel();
    let (tx, rx) = sync::chan(2);
    let tx2 = tx.clone();
    let _on_child = child.after_func(move || tx.send("child").unwrap());
    cancel_parent.cancel();
    assert_eq!(rx.recv(), Some("child"), "cancelling the parent ran the child's function");
    let _late = child.after_func(move || tx2.send("late").unwrap());
    assert_eq!(rx.recv(), Some("late"), "registered on a done context: runs at once");
}

#[virtual_time_test]
fn context_after_func_at_a_deadline_runs_at_that_virtual_instant() {
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(42));
    let (tx, rx) = sync::chan(1);
    let _after = ctx.after_func(move || tx.send(Instant::now()).unwrap());
    assert_eq!(rx.recv().unwrap() - start, Duration::from_secs(42));
}

#[test]
fn wait_async_inside_bubble_async_returns_once_the_other_tasks_are_blocked() {
    time::bubble_async(async {
        let (tx, rx) = sync::chan::<u32>(4);
        let progress = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&progress);
        task::spawn(async move {
            for i in 0..3 {
                tx.send_async(i).await.unwrap();
                seen.fetch_add(1, Ordering::SeqCst);
            }
            time::sleep(Duration::from_secs(60)).await;
            seen.fetch_add(1, Ordering::SeqCst);
        });
        time::wait_async().await;
        assert_eq!(progress.load(Ordering::SeqCst), 3, "the task ran until its sleep");
        assert_eq!(rx.try_recv(), Ok(0));
        time::sleep(Duration::from_secs(60)).await;
        time::wait_async().await;
        assert_eq!(progress.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn two_members_calling_wait_async_at_once_panics() {
    let message = panic_message(|| {
        time::bubble_async(async {
            task::spawn(time::wait_async());
            time::wait_async().await;
        });
    });
    assert!(message.contains("only one member may call wait() at a time"), "{message}");
}

/// Runs `hold` on a thread outside every bubble: it takes a lock, calls `held`, and releases
/// the lock a short real time later. Returns once the lock is held.
fn held_outside_for_a_while(hold: impl FnOnce(&dyn Fn()) + Send + 'static) -> std::thread::JoinHandle<()> {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let outside = std::thread::spawn(move || {
        hold(&|| {
            held_tx.send(()).unwrap();
            std::thread::sleep(ms(30));
        });
    });
    held_rx.recv().unwrap();
    outside
}

#[test]
fn a_mutex_held_outside_the_bubble_is_waited_for_without_moving_the_clock() {
    let lock = Arc::new(sync::Mutex::new(0));
    let holder = Arc::clone(&lock);
    let outside = held_outside_for_a_while(move |held| {
        let mut guard = holder.lock().unwrap();
        *guard = 1;
        held();
    });
    time::bubble(move || {
        let start = Instant::now();
        let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
        // Were the wait durable, the clock would jump to the context's deadline and the
        // bubble would then report a deadlock.
        assert_eq!(*lock.lock().unwrap(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(!ctx.is_done());
    });
    outside.join().unwrap();
}

#[test]
fn a_rwlock_written_outside_the_bubble_is_waited_for_without_moving_the_clock() {
    let lock = Arc::new(sync::RwLock::new(0));
    let writer = Arc::clone(&lock);
    let outside = held_outside_for_a_while(move |held| {
        let _guard = writer.write().unwrap();
        held();
    });
    time::bubble(move || {
        let start = Instant::now();
        let sleeper = thread::spawn(|| thread::sleep(Duration::from_secs(60)));
        drop(lock.read().unwrap());
        assert_eq!(start.elapsed(), Duration::ZERO, "the clock waited for the outside writer");
        sleeper.join().unwrap();
    });
    outside.join().unwrap();
}

#[test]
fn a_rwlock_read_outside_the_bubble_is_waited_for_by_a_writer() {
    let lock = Arc::new(sync::RwLock::new(0));
    let reader = Arc::clone(&lock);
    let outside = held_outside_for_a_while(move |held| {
        let _guard = reader.read().unwrap();
        held();
    });
    time::bubble(move || {
        let start = Instant::now();
        let sleeper = thread::spawn(|| thread::sleep(Duration::from_secs(60)));
        *lock.write().unwrap() += 1;
        assert_eq!(start.elapsed(), Duration::ZERO, "the clock waited for the outside reader");
        sleeper.join().unwrap();
    });
    outside.join().unwrap();
}

#[test]
fn a_sleep_polled_by_one_task_and_awaited_by_another_wakes_the_second() {
    let woke_at = time::bubble_async(async {
        let (tx, rx) = sync::chan(1);
        let first = task::spawn(async move {
            let mut sleep = Box::pin(time::sleep(ms(500)));
            // Polled once here, so its timer is registered for this task.
            assert!(futures::poll!(sleep.as_mut()).is_pending());
            tx.send_async(sleep).await.unwrap();
        });
        let second = task::spawn(async move {
            let sleep = rx.recv_async().await.expect("the sleep");
            sleep.await;
            Instant::now()
        });
        let start = Instant::now();
        first.await;
        second.await - start
    });
    assert_eq!(woke_at, ms(500));
}

/// Polls its future with a waker of its own that forwards to the task's, as combinators that
/// track their children's wake-ups do.
struct ForwardingWaker<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for ForwardingWaker<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        struct Forward(std::task::Waker);
        impl std::task::Wake for Forward {
            fn wake(self: Arc<Self>) {
                self.0.wake_by_ref();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Forward(cx.waker().clone())));
        self.0.as_mut().poll(&mut std::task::Context::from_waker(&waker))
    }
}

#[test]
fn a_sleep_polled_directly_then_through_another_waker_fires_once_on_time() {
    let elapsed = time::bubble_async(async {
        let start = Instant::now();
        let mut sleep = Box::pin(time::sleep(ms(250)));
        // Registered for the task itself first, then for a waker that is not the task's.
        assert!(futures::poll!(sleep.as_mut()).is_pending());
        ForwardingWaker(sleep).await;
        start.elapsed()
    });
    assert_eq!(elapsed, ms(250));
}

#[test]
fn a_sleep_dropped_before_its_deadline_never_moves_the_clock() {
    let ((), trace) = Bubble::new().run_async_traced(async {
        assert_eq!(time::timeout(Duration::from_secs(10), async {}).await, Ok(()));
        time::sleep(Duration::from_secs(20)).await;
    });
    let jumps: Vec<Duration> = trace
        .events()
        .iter()
        .filter(|event| matches!(event.kind(), time::EventKind::ClockAdvanced { .. }))
        .map(|event| event.at())
        .collect();
    assert_eq!(jumps, [Duration::from_secs(20)], "the timeout's timer was cancelled with it");
}
