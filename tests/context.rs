//! `context::Context`: cancellation trees, deadlines on the caller's clock, values.

use gonext::context::{Context, ContextError};
use gonext::{select, sync, thread, time, virtual_time_test};
use std::time::Duration;

#[test]
fn background_is_never_done() {
    let ctx = Context::background();
    assert_eq!((ctx.err(), ctx.is_done(), ctx.deadline()), (None, false, None));
}

#[test]
fn cancelling_a_parent_cancels_the_subtree_but_not_the_parent_of_a_child() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    let (grandchild, _cancel_grandchild) = child.with_value(1u8).with_cancel();
    cancel_child.cancel();
    assert_eq!(child.err(), Some(ContextError::Canceled));
    assert_eq!(grandchild.err(), Some(ContextError::Canceled));
    assert_eq!(parent.err(), None);
    drop(cancel_parent);
    assert_eq!(parent.err(), Some(ContextError::Canceled), "dropping Cancel cancels");
}

#[test]
fn a_child_of_a_done_context_starts_done() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (child, _cancel) = parent.with_timeout(Duration::from_secs(60));
    assert_eq!(child.err(), Some(ContextError::Canceled));
}

#[virtual_time_test]
fn deadline_expires_in_virtual_time_and_wakes_waiters() {
    let start = time::Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(30));
    let waiter = {
        let ctx = ctx.clone();
        thread::spawn(move || {
            select! { err = ctx.done() => err }
        })
    };
    assert_eq!(waiter.join().unwrap(), ContextError::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(ctx.deadline(), Some(start + Duration::from_secs(30)));
}

#[virtual_time_test]
fn a_child_deadline_never_outlives_its_parent() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(5));
    let (child, _c) = parent.with_timeout(Duration::from_secs(50));
    assert_eq!(child.deadline(), parent.deadline());
    thread::sleep(Duration::from_secs(5));
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
}

#[virtual_time_test]
async fn done_is_a_future_for_async_code() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = sync::chan::<()>(0);
    gonext::task::spawn(async move {
        time::sleep(Duration::from_secs(1)).await;
        drop(cancel);
        drop(tx);
    });
    assert_eq!(ctx.done().await, ContextError::Canceled);
    assert_eq!(rx.recv_async().await, None);
}

#[test]
fn values_are_found_by_type_on_ancestors() {
    #[derive(Debug, PartialEq)]
    struct User(&'static str);
    let ctx = Context::background().with_value(User("ada")).with_value(7u32);
    let (child, _cancel) = ctx.with_cancel();
    assert_eq!(child.value::<User>(), Some(&User("ada")));
    assert_eq!(child.value::<u32>(), Some(&7));
    assert_eq!(child.value::<i64>(), None);
    let shadowed = child.with_value(8u32);
    assert_eq!(shadowed.value::<u32>(), Some(&8));
}

#[test]
fn real_deadlines_work_outside_bubbles() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    futures::executor::block_on(ctx.done());
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
}

#[derive(Debug)]
struct PeerGone;

impl std::fmt::Display for PeerGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer went away")
    }
}

impl std::error::Error for PeerGone {}

#[test]
fn a_cancel_cause_reaches_the_whole_subtree() {
    let (ctx, cancel) = Context::background().with_cancel_cause();
    let (child, _cancel_child) = ctx.with_value(1u8).with_cancel();
    assert!(ctx.cause().is_none() && child.cause().is_none(), "no cause before the cancellation");
    cancel.cancel(PeerGone);
    assert_eq!(child.err(), Some(ContextError::Canceled));
    for done in [&ctx, &child] {
        assert!(done.cause().unwrap().downcast_ref::<PeerGone>().is_some());
    }
    let (late, _cancel_late) = child.with_cancel();
    assert!(late.cause().unwrap().is::<PeerGone>(), "a child made afterwards inherits it too");
}

#[test]
fn the_first_cancellation_sets_the_cause() {
    let (parent, cancel_parent) = Context::background().with_cancel_cause();
    let (child, cancel_child) = parent.with_cancel_cause();
    cancel_child.cancel(std::io::Error::other("child first"));
    cancel_parent.cancel(PeerGone);
    assert_eq!(child.cause().unwrap().to_string(), "child first");
    assert_eq!(parent.cause().unwrap().to_string(), "the peer went away");
}

#[test]
fn without_a_cause_the_cause_is_the_error() {
    let (ctx, cancel) = Context::background().with_cancel_cause();
    drop(cancel);
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.downcast_ref::<ContextError>(), Some(&ContextError::Canceled));
    let (plain, cancel_plain) = Context::background().with_cancel();
    cancel_plain.cancel();
    assert_eq!(plain.cause().unwrap().to_string(), "context canceled");
}

#[virtual_time_test]
fn a_deadline_cause_is_deadline_exceeded_in_virtual_time() {
    let (parent, _cancel) = Context::background().with_cancel_cause();
    let (ctx, _cancel_timeout) = parent.with_timeout(Duration::from_secs(3));
    thread::sleep(Duration::from_secs(3));
    assert_eq!(ctx.cause().unwrap().downcast_ref::<ContextError>(), Some(&ContextError::DeadlineExceeded));
    assert!(parent.cause().is_none(), "the parent is not done");
}

#[virtual_time_test]
fn without_cancel_keeps_the_values_but_not_the_cancellation_or_deadline() {
    #[derive(Debug, PartialEq)]
    struct RequestId(u32);
    let (request, cancel) =
        Context::background().with_value(RequestId(9)).with_timeout(Duration::from_secs(1));
    let detached = request.without_cancel();
    assert_eq!(detached.deadline(), None);
    let (child, cancel_child) = detached.with_timeout(Duration::from_secs(5));
    thread::sleep(Duration::from_secs(2));
    assert_eq!(request.err(), Some(ContextError::DeadlineExceeded));
    drop(cancel);
    assert_eq!((detached.err(), detached.cause().is_none()), (None, true));
    assert_eq!(child.value::<RequestId>(), Some(&RequestId(9)));
    assert_eq!(child.err(), None, "its own deadline has not passed");
    thread::sleep(Duration::from_secs(3));
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded), "its own deadline still works");
    drop(cancel_child);
}

#[virtual_time_test]
fn a_scope_under_without_cancel_outlives_the_cancellation_of_its_task() {
    // A task that must finish its cleanup even though its scope was cancelled.
    let finished = std::sync::atomic::AtomicBool::new(false);
    let finished = &finished;
    let outcome: Result<(), &str> = gonext::try_scope! {
        go |ctx| {
            let shielded = ctx.without_cancel();
            gonext::scope!(ctx = shielded; {
                go |inner| {
                    thread::sleep(Duration::from_secs(2));
                    assert!(!inner.is_done());
                    finished.store(true, std::sync::atomic::Ordering::SeqCst);
                };
            });
            Ok(())
        };
        go |_ctx| Err::<(), _>("cancels the first task's scope");
    };
    assert_eq!(outcome, Err("cancels the first task's scope"));
    assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
}
