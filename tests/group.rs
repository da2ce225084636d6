//! `sync::Group` (Go's errgroup, with x/sync's own tests ported) and `sync::Manager` (the
//! bgtask pattern).

use gonext::context::Context;
use gonext::sync::{self, Group, Manager, Sender};
use gonext::{select, thread, time, virtual_time_test};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct TaskFailure(&'static str);

/// A task that returns `err`, as errgroup's tests' `func() error { return err }`.
fn returning(err: Option<&'static str>) -> impl FnOnce(&Context) -> Result<(), &'static str> {
    move |_ctx| err.map_or(Ok(()), Err)
}

/// x/sync's `TestZeroGroup`: a new group waits as often as asked and keeps its first error.
#[test]
fn a_new_group_waits_repeatedly_and_keeps_its_first_error() {
    let cases: [&[Option<&str>]; 5] =
        [&[], &[None], &[Some("1")], &[Some("1"), None], &[Some("1"), None, Some("2")]];
    for errs in cases {
        let group = Group::new();
        let mut first = None;
        for (i, &err) in errs.iter().enumerate() {
            group.go(returning(err));
            first = first.or(err);
            assert_eq!(group.wait().err(), first, "after {} tasks of {errs:?}", i + 1);
        }
    }
}

/// x/sync's `TestWithContext`: the context is done after the wait, with or without an error.
#[test]
fn with_context_returns_the_first_error_and_the_context_is_done_after_the_wait() {
    let cases: [(&[Option<&str>], Option<&str>); 4] = [
        (&[], None),
        (&[None], None),
        (&[Some("doomed")], Some("doomed")),
        (&[Some("doomed"), None], Some("doomed")),
    ];
    for (errs, want) in cases {
        let (group, ctx) = Group::with_context(&Context::background());
        for &err in errs {
            group.go(returning(err));
        }
        assert_eq!(group.wait().err(), want, "for {errs:?}");
        let done = select! {
            _ = ctx.done() => true,
            default => false,
        };
        assert!(done, "the context of {errs:?} is done after the wait");
    }
}

/// x/sync's `TestGoLimit`.
#[test]
fn go_never_runs_more_tasks_than_the_limit() {
    const LIMIT: usize = 10;
    let group = Group::<String>::new();
    group.set_limit(LIMIT);
    let active = Arc::new(AtomicUsize::new(0));
    for _ in 0..=1 << 10 {
        let active = Arc::clone(&active);
        group.go(move |_ctx| {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            if now > LIMIT {
                return Err(format!("saw {now} active tasks; want at most {LIMIT}"));
            }
            std::thread::sleep(Duration::from_micros(1));
            active.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
    }
    assert_eq!(group.wait(), Ok(()));
}

/// A task that blocks until its value is received.
fn sending(tx: &Sender<()>) -> impl FnOnce(&Context) -> Result<(), ()> + use<> {
    let tx = tx.clone();
    move |_ctx| {
        tx.send(()).expect("a receiver drains the channel");
        Ok(())
    }
}

/// x/sync's `TestTryGo`, including `SetLimit(0)`.
#[test]
fn try_go_admits_tasks_up_to_the_limit_and_none_under_a_limit_of_zero() {
    const N: usize = 42;
    let group = Group::<()>::new();
    group.set_limit(N);
    let (tx, rx) = sync::chan::<()>(0);
    let drain = |n: usize| {
        let rx = rx.clone();
        std::thread::spawn(move || (0..n).for_each(|_| assert_eq!(rx.recv(), Some(()))))
    };
    for i in 0..N {
        assert!(group.try_go(sending(&tx)), "try_go fails at call {i} of {N}");
    }
    assert!(!group.try_go(sending(&tx)), "try_go succeeds beyond the limit");
    let drained = drain(N);
    assert_eq!(group.wait(), Ok(()));
    drained.join().unwrap();

    assert!(group.try_go(sending(&tx)), "try_go fails after every task ended");
    let drained = drain(1);
    assert_eq!(group.wait(), Ok(()));
    drained.join().unwrap();

    group.set_limit(1);
    assert!(group.try_go(sending(&tx)), "try_go fails under a new limit");
    assert!(!group.try_go(sending(&tx)), "try_go succeeds beyond the new limit");
    let drained = drain(1);
    assert_eq!(group.wait(), Ok(()));
    drained.join().unwrap();

    group.set_limit(0);
    for _ in 0..1 << 10 {
        assert!(!group.try_go(sending(&tx)), "try_go succeeds under a limit of 0");
    }
    assert_eq!(group.wait(), Ok(()));
}

#[test]
fn go_under_a_limit_of_zero_panics_naming_the_caller() {
    let group = Group::<()>::new();
    group.set_limit(0);
    let payload = catch_unwind(AssertUnwindSafe(|| group.go(|_ctx| Ok(())))).unwrap_err();
    let message = payload.downcast_ref::<String>().expect("a message");
    assert!(message.contains("limit is 0") && message.contains(file!()), "{message}");
}

#[test]
fn try_go_respects_the_limit() {
    let group: Group<String> = Group::new();
    group.set_limit(1);
    let (release_tx, release_rx) = sync::chan::<()>(0);
    assert!(group.try_go(move |_ctx| {
        release_rx.recv();
        Ok(())
    }));
    assert!(!group.try_go(|_ctx| Ok(())), "the only slot is taken");
    release_tx.send(()).unwrap();
    assert_eq!(group.wait(), Ok(()));
}

#[test]
fn wait_all_returns_every_error_in_the_order_they_happened() {
    let group = Group::<u32>::new();
    group.go(|_ctx| Err(1));
    assert_eq!(group.wait_all(), Err(vec![1]));
    group.go(|_ctx| Err(2));
    assert_eq!(group.wait_all(), Err(vec![1, 2]), "errors accumulate across waits");
    assert_eq!(group.wait(), Err(1), "the first stays first");
}

#[test]
fn wait_reraises_a_task_panic_and_keeps_the_errors_for_the_next_wait() {
    let group: Group<&str> = Group::new();
    let (failed_tx, failed_rx) = sync::chan::<()>(1);
    group.go(move |_ctx| {
        failed_tx.send(()).unwrap();
        Err("an error beside the panic")
    });
    group.go(move |_ctx| -> Result<(), &str> {
        failed_rx.recv();
        std::panic::panic_any(TaskFailure("in a group"))
    });
    let payload = catch_unwind(AssertUnwindSafe(|| group.wait())).unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("in a group")));
    assert_eq!(group.wait(), Err("an error beside the panic"), "the panic was reported once, the error kept");
}

#[virtual_time_test]
async fn wait_async_lets_async_code_wait_for_the_tasks() {
    let group = Group::<String>::new();
    group.go(|_ctx| {
        thread::sleep(Duration::from_secs(2));
        Err("slow failure".to_owned())
    });
    let start = time::Instant::now();
    assert_eq!(group.wait_async().await, Err("slow failure".to_owned()));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[virtual_time_test]
fn manager_stop_cancels_long_lived_tasks_and_returns_the_first_error() {
    let manager = Manager::<String>::new();
    manager.go(|ctx| {
        // `select!` waits durably; a foreign `block_on` would count as running and stall.
        select! { _ = ctx.done() => Ok(()) }
    });
    manager.go(|ctx| {
        while !ctx.is_done() {
            thread::sleep(Duration::from_secs(1));
        }
        Err("worker saw the stop".to_owned())
    });
    thread::sleep(Duration::from_secs(10));
    assert_eq!(manager.stop(), Err("worker saw the stop".to_owned()));
}

#[virtual_time_test]
fn manager_failed_reports_a_panic_as_it_happens() {
    let manager = Manager::<()>::new();
    manager.go(|ctx| {
        select! { _ = ctx.done() => Ok(()) }
    });
    manager.go(|_ctx| -> Result<(), ()> {
        thread::sleep(Duration::from_secs(3));
        std::panic::panic_any(TaskFailure("worker crashed"))
    });
    let start = time::Instant::now();
    let failure = select! { failure = manager.failed() => failure };
    assert_eq!(start.elapsed(), Duration::from_secs(3), "reported when it happened, long before stop");
    assert_eq!(failure.go_site().file(), file!());
    assert!(failure.is_panic());
    assert_eq!(failure.panic_message(), None, "the payload is not a string");
    assert!(manager.context().is_done(), "the failure cancelled the other task");
    let payload = catch_unwind(AssertUnwindSafe(|| manager.stop())).unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("worker crashed")));
}

#[virtual_time_test]
async fn manager_stop_async_cancels_and_waits_in_async_code() {
    let manager = Manager::<String>::new();
    manager.go(|ctx| {
        select! { _ = ctx.done() => Err("stopped".to_owned()) }
    });
    time::sleep(Duration::from_secs(5)).await;
    assert_eq!(manager.stop_async().await, Err("stopped".to_owned()));
}
