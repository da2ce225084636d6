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
