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

/// Random trees of contexts, cancels and sleeps in virtual time against a model: a context
/// is done once it was cancelled, its deadline passed, or its parent was done, with the
/// first of those causes as its error.
mod against_a_model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        WithCancel(usize),
        WithTimeout(usize, u64),
        WithValue(usize),
        Cancel(usize),
        Sleep(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Timeouts are odd and sleeps even milliseconds, so no deadline falls exactly at the
        // end of a sleep.
        prop_oneof![
            2 => any::<usize>().prop_map(Op::WithCancel),
            2 => (any::<usize>(), 0u64..50).prop_map(|(parent, ms)| Op::WithTimeout(parent, 2 * ms + 1)),
            1 => any::<usize>().prop_map(Op::WithValue),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => (0u64..40).prop_map(|ms| Op::Sleep(2 * ms)),
        ]
    }

    struct Modelled {
        ctx: Context,
        cancel: Option<gonext::context::Cancel>,
        parent: Option<usize>,
        /// The effective deadline, in milliseconds since the start.
        deadline: Option<u64>,
        err: Option<ContextError>,
    }

    proptest! {
        #[test]
        fn contexts_follow_the_model(ops in prop::collection::vec(op(), 0..40)) {
            time::bubble(move || -> Result<(), TestCaseError> {
                let start = time::Instant::now();
                let mut now = 0u64;
                let root = Modelled { ctx: Context::background(), cancel: None, parent: None, deadline: None, err: None };
                let mut nodes = vec![root];
                for op in ops {
                    match op {
                        Op::WithCancel(parent) | Op::WithTimeout(parent, _) | Op::WithValue(parent) => {
                            let parent = parent % nodes.len();
                            let (ctx, cancel, own) = match op {
                                Op::WithCancel(_) => {
                                    let (ctx, cancel) = nodes[parent].ctx.with_cancel();
                                    (ctx, Some(cancel), None)
                                }
                                Op::WithTimeout(_, ms) => {
                                    let (ctx, cancel) = nodes[parent].ctx.with_timeout(Duration::from_millis(ms));
                                    (ctx, Some(cancel), Some(now + ms))
                                }
                                _ => (nodes[parent].ctx.with_value(parent), None, None),
                            };
                            let deadline = match (own, nodes[parent].deadline) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                            let err = nodes[parent].err;
                            nodes.push(Modelled { ctx, cancel, parent: Some(parent), deadline, err });
                        }
                        Op::Cancel(node) => {
                            let node = node % nodes.len();
                            if let Some(cancel) = nodes[node].cancel.take() {
                                cancel.cancel();
                                // Children come after their parents: one pass marks the subtree.
                                let mut in_subtree = vec![false; nodes.len()];
                                in_subtree[node] = true;
                                for i in node..nodes.len() {
                                    in_subtree[i] |= nodes[i].parent.is_some_and(|p| in_subtree[p]);
                                    if in_subtree[i] && nodes[i].err.is_none() {
                                        nodes[i].err = Some(ContextError::Canceled);
                                    }
                                }
                            }
                        }
                        Op::Sleep(ms) => {
                            thread::sleep(Duration::from_millis(ms));
                            now += ms;
                            for node in nodes.iter_mut().filter(|n| n.err.is_none()) {
                                if node.deadline.is_some_and(|deadline| deadline <= now) {
                                    node.err = Some(ContextError::DeadlineExceeded);
                                }
                            }
                        }
                    }
                    for (i, node) in nodes.iter().enumerate() {
                        prop_assert_eq!(node.ctx.err(), node.err, "context {}", i);
                        prop_assert_eq!(node.ctx.is_done(), node.err.is_some());
                        let deadline = node.deadline.map(|ms| start + Duration::from_millis(ms));
                        prop_assert_eq!(node.ctx.deadline(), deadline);
                    }
                }
                Ok(())
            })?;
        }

        /// Cancels from several threads at once: afterwards every context's state is the
        /// model's, and an error, once seen, never changes.
        #[test]
        fn concurrent_cancels_leave_the_models_state(parents in prop::collection::vec(any::<usize>(), 1..12), cancelled in prop::collection::vec(any::<bool>(), 12)) {
            let mut nodes: Vec<(Context, Option<usize>)> = vec![(Context::background(), None)];
            let mut cancels = Vec::new();
            for parent in parents {
                let parent = parent % nodes.len();
                let (ctx, cancel) = nodes[parent].0.with_cancel();
                nodes.push((ctx, Some(parent)));
                cancels.push((nodes.len() - 1, cancel));
            }
            let (to_cancel, kept): (Vec<_>, Vec<_>) = cancels.into_iter().partition(|(i, _)| cancelled[i - 1]);
            let watcher = {
                let watched: Vec<Context> = nodes.iter().map(|(ctx, _)| ctx.clone()).collect();
                std::thread::spawn(move || {
                    let mut seen = vec![None; watched.len()];
                    for _ in 0..50 {
                        for (seen, ctx) in seen.iter_mut().zip(&watched) {
                            let err = ctx.err();
                            assert!(seen.is_none() || err == *seen, "an error changed");
                            *seen = err;
                        }
                    }
                })
            };
            let cancellers: Vec<_> = to_cancel
                .into_iter()
                .map(|(_, cancel)| std::thread::spawn(move || cancel.cancel()))
                .collect();
            cancellers.into_iter().for_each(|c| c.join().unwrap());
            watcher.join().unwrap();
            let mut done = vec![false; nodes.len()];
            for i in 1..nodes.len() {
                let parent = nodes[i].1.expect("only the root has no parent");
                done[i] = done[parent] || cancelled[i - 1];
                let expected = done[i].then_some(ContextError::Canceled);
                prop_assert_eq!(nodes[i].0.err(), expected, "context {}", i);
            }
            drop(kept);
        }
    }
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
