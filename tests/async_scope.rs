//! `async_scope!` / `try_async_scope!`: children polled in place by the future of the block,
//! with handles, errors that drop the rest, a limit, and wake-ups that poll only the woken.

use gonext::context::{Context, ContextError};
use gonext::{async_scope, scope, time, try_async_scope};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct TaskFailure(&'static str);

async fn bump(counter: &AtomicUsize, by: usize) {
    time::sleep(Duration::from_millis(1)).await;
    counter.fetch_add(by, Ordering::SeqCst);
}

/// Counts its drops: a child dropped before it finished.
struct DropCounter<'a>(&'a AtomicUsize);

impl Drop for DropCounter<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn children_borrow_from_the_caller_under_futures_and_tokio() {
    let counter = AtomicUsize::new(0);
    let value = futures::executor::block_on(async_scope! {
        for n in 1..=3 {
            go bump(&counter, n);
        }
        go { bump(&counter, 10).await }
        "body"
    });
    assert_eq!((value, counter.load(Ordering::SeqCst)), ("body", 16));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let counter = AtomicUsize::new(0);
    let counter_ref = &counter;
    runtime.block_on(async_scope! {
        for n in 0..100 {
            go move { counter_ref.fetch_add(n, Ordering::SeqCst); }
        }
    });
    assert_eq!(counter.load(Ordering::SeqCst), 4950);
}

#[test]
fn handles_keep_the_children_outputs() {
    let words = ["one", "three"];
    let (total, late) = futures::executor::block_on(async_scope! {
        let first = go async { words[0].len() };
        let second = go async move { time::sleep(Duration::from_millis(1)).await; words[1].len() };
        let late = go async { 7 };
        (first.await + second.await, late)
    });
    assert_eq!(total, 8);
    assert!(late.is_finished(), "the scope polled it to its end");
    assert_eq!(futures::executor::block_on(late), 7, "a handle returned from the block holds the output");
}

#[test]
fn a_child_error_drops_the_other_children_and_is_the_scope_error() {
    // Issue #16's example: the child's error used to be dropped and "value" returned.
    let dropped = AtomicUsize::new(0);
    let dropped = &dropped;
    let result: Result<&str, &str> = futures::executor::block_on(try_async_scope! {
        go async move {
            let _guard = DropCounter(dropped);
            std::future::pending::<()>().await;
        };
        go async { Err::<(), _>("child error") };
        "value"
    });
    assert_eq!(result, Err("child error"));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the pending sibling was dropped");
}

#[test]
fn question_mark_in_the_body_drops_the_children() {
    let dropped = AtomicUsize::new(0);
    let dropped = &dropped;
    let result: Result<u32, String> = futures::executor::block_on(try_async_scope! {
        let slow = go async move {
            let _guard = DropCounter(dropped);
            std::future::pending::<()>().await;
            Ok::<u32, String>(1)
        };
        yield_now().await; // the child starts
        let parsed: u32 = "x".parse().map_err(|_| "not a number".to_owned())?;
        slow.await? + parsed
    });
    assert_eq!(result, Err("not a number".to_owned()));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_child_panic_drops_the_others_and_resumes() {
    let dropped = AtomicUsize::new(0);
    let dropped_ref = &dropped;
    let payload = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(async_scope! {
            go async move {
                let _guard = DropCounter(dropped_ref);
                std::future::pending::<()>().await;
            };
            go async { std::panic::panic_any(TaskFailure("async child")) };
        });
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("async child")));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the sibling was dropped, not awaited");
}

#[test]
fn limit_bounds_the_live_children() {
    let (live, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (live, peak) = (&live, &peak);
    let elapsed = time::bubble_async(async move {
        let start = time::Instant::now();
        async_scope!(limit = 3; {
            for _ in 0..10 {
                go async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    time::sleep(Duration::from_secs(1)).await;
                    live.fetch_sub(1, Ordering::SeqCst);
                };
            }
        })
        .await;
        start.elapsed()
    });
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(elapsed, Duration::from_secs(4), "ten one-second children, three at a time");
}

/// A future that stays pending until opened, counting its polls.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    polls: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx: &mut TaskContext<'_>| {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// Yields once to the executor, so that the scope polls what was woken meanwhile.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx: &mut TaskContext<'_>| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

#[test]
fn scopes_one_after_another_on_a_thread_wake_only_their_own_children() {
    // Each scope's children are woken from another thread, and the first child of each round
    // keeps its waker past its scope; the next scope on this thread starts its children in the
    // waker cells the last one left, and the kept wakers of earlier scopes are woken while it
    // runs: they must reach none of its children.
    const CHILDREN: usize = 300;
    let kept: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
    let kept = &kept;
    for round in 0..5 {
        let gates: Vec<Gate> = (0..CHILDREN).map(|_| Gate::default()).collect();
        let gates = &gates;
        let earlier: Vec<Waker> = std::mem::take(&mut *kept.lock().unwrap());
        let total = futures::executor::block_on(async_scope! {
            let mut handles = Vec::new();
            for (i, gate) in gates.iter().enumerate() {
                handles.push(go async move {
                    if i == 0 {
                        std::future::poll_fn(|cx| {
                            kept.lock().unwrap().push(cx.waker().clone());
                            Poll::Ready(())
                        })
                        .await;
                    }
                    gate.wait().await;
                    i
                });
            }
            yield_now().await;
            std::thread::scope(|threads| {
                threads.spawn(|| {
                    earlier.iter().for_each(Waker::wake_by_ref);
                    gates.iter().rev().for_each(Gate::open);
                });
            });
            let mut total = 0;
            for handle in handles {
                total += handle.await;
            }
            total
        });
        // The last count of the earlier scope's shared state goes here, on this thread.
        drop(earlier);
        assert_eq!(
            total,
            (0..CHILDREN).sum::<usize>(),
            "round {round}: every child ended with its own index"
        );
        let polls: Vec<usize> = gates.iter().map(|g| g.polls.load(Ordering::SeqCst)).collect();
        assert!(
            polls.iter().all(|&n| n == 2),
            "round {round}: each child polled when started and once woken, never by an earlier scope's waker: {polls:?}"
        );
    }
}

#[test]
fn a_wake_polls_only_the_woken_child() {
    const CHILDREN: usize = 100;
    let gates: Vec<Gate> = (0..CHILDREN).map(|_| Gate::default()).collect();
    let gates = &gates;
    futures::executor::block_on(async_scope! {
        for gate in gates {
            go gate.wait();
        }
        yield_now().await;
        for gate in gates {
            gate.open();
            yield_now().await;
        }
    });
    let polls: Vec<usize> = gates.iter().map(|g| g.polls.load(Ordering::SeqCst)).collect();
    assert!(polls.iter().all(|&n| n == 2), "each child was polled when started and when woken: {polls:?}");
}

#[test]
fn async_scopes_advance_virtual_time() {
    let elapsed = time::bubble_async(async {
        let start = time::Instant::now();
        async_scope! {
            for secs in [3u64, 1, 2] {
                go time::sleep(Duration::from_secs(secs));
            }
        }
        .await;
        start.elapsed()
    });
    assert_eq!(elapsed, Duration::from_secs(3));
}

#[test]
fn the_scope_context_derives_from_the_enclosing_task_and_the_options() {
    let outcome: Result<ContextError, String> = gonext::try_scope! {
        let child = go |_ctx| {
            let seen = futures::executor::block_on(async_scope!(|s| {
                let ctx = s.context().clone();
                ctx.done().await
            }));
            Ok(seen)
        };
        go |_ctx| Err::<(), _>("outer failure".to_owned());
        child.join()?
    };
    assert_eq!(
        outcome,
        Err("outer failure".to_owned()),
        "the async scope's context was cancelled with the task's"
    );

    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let started = AtomicUsize::new(0);
    let started = &started;
    let late = futures::executor::block_on(async_scope!(ctx = parent; {
        go async move { started.fetch_add(1, Ordering::SeqCst); };
        "no child starts in a cancelled scope"
    }));
    assert_eq!((late, started.load(Ordering::SeqCst)), ("no child starts in a cancelled scope", 0));

    let timed_out = time::bubble_async(async {
        async_scope!(timeout = "2s"; |s| {
            let ctx = s.context().clone();
            (ctx.done().await, time::Instant::now())
        })
        .await
    });
    assert_eq!(timed_out.0, ContextError::DeadlineExceeded);
}

#[test]
fn an_async_scope_in_a_sync_scope_task_keeps_borrowing() {
    let total = AtomicUsize::new(0);
    let total = &total;
    scope! {
        for n in 0..4 {
            go move {
                futures::executor::block_on(async_scope! {
                    go bump(total, n);
                    go bump(total, 10 * n);
                });
            };
        }
    };
    assert_eq!(total.load(Ordering::SeqCst), 66);
}

#[test]
fn the_handle_of_a_dropped_child_reports_cancellation() {
    let handle = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&handle);
    let result: Result<(), &str> = futures::executor::block_on(try_async_scope! {
        *slot.lock().unwrap() = Some(go std::future::pending::<Result<(), &str>>());
        go async { Err::<(), _>("fails") };
    });
    assert_eq!(result, Err("fails"));
    let orphan = handle.lock().unwrap().take().unwrap();
    let joined = futures::executor::block_on(orphan.try_join());
    assert!(joined.unwrap_err().to_string().contains("never ran"));
}

#[test]
fn a_handle_gives_its_output_to_the_body_a_sibling_and_a_nested_scope() {
    let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
    let gates = &gates;
    // `now_or_never`: the scope must end in one poll, every wake-up being its own.
    let outputs = futures::FutureExt::now_or_never(async_scope! {
        let to_body = go async { gates[0].wait().await; 1 };
        let to_sibling = go async { gates[1].wait().await; 2 };
        let to_nested = go async { gates[2].wait().await; 3 };
        let sibling = go async move { to_sibling.await * 10 };
        let nested = go async move {
            async_scope! {
                let inner = go async { 100 };
                inner.await + to_nested.await
            }
            .await
        };
        yield_now().await;
        for gate in gates.iter().rev() {
            gate.open();
        }
        (to_body.await, sibling.await, nested.await)
    });
    assert_eq!(outputs, Some((1, 20, 103)));
}

#[test]
fn a_handle_awaited_under_another_waker_in_the_body_is_woken_through_it() {
    use futures::StreamExt;
    let gates: Vec<Gate> = (0..2).map(|_| Gate::default()).collect();
    let gates = &gates;
    let order = futures::FutureExt::now_or_never(async_scope! {
        let first = go async { gates[0].wait().await; "first" };
        let second = go async { gates[1].wait().await; "second" };
        // FuturesUnordered polls each handle with a waker of its own, not the body's.
        let mut pending: futures::stream::FuturesUnordered<_> = [first, second].into_iter().collect();
        yield_now().await;
        gates[1].open();
        let mut order = vec![pending.next().await.unwrap()];
        gates[0].open();
        order.push(pending.next().await.unwrap());
        order
    });
    assert_eq!(order.as_deref(), Some(&["second", "first"][..]));
}

#[test]
fn the_body_awaiting_a_child_that_ends_cancelled_is_woken_and_told() {
    let (send, receive) = futures::channel::oneshot::channel();
    // `now_or_never`: the scope must end in one poll, every wake-up being its own.
    let joined = futures::FutureExt::now_or_never(async_scope!(|s| {
        let waiter = go async move { receive.await.unwrap().await };
        yield_now().await;
        s.cancel();
        // Started after the cancellation, this child never runs: the waiter's join of it
        // ends the waiter cancelled.
        let never_ran = go async { 0 };
        send.send(never_ran).unwrap();
        waiter.try_join().await
    }))
    .expect("the body is woken when the child it awaits is dropped cancelled");
    assert!(joined.unwrap_err().to_string().contains("never ran"));
}

#[test]
fn go_on_a_scoped_thread_of_the_body_starts_a_child_of_the_scope() {
    // `now_or_never`: the children started from the threads must be polled in the same poll.
    let sum = futures::FutureExt::now_or_never(async_scope!(|s| {
        let handles: Vec<_> = std::thread::scope(|threads| {
            let started: Vec<_> =
                (1..=3).map(|n| threads.spawn(move || s.go(async move { n * 10 }))).collect();
            started.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        let local = go async { 1 };
        let mut sum = local.await;
        for handle in handles {
            sum += handle.await;
        }
        sum
    }));
    assert_eq!(sum, Some(61));
}

#[test]
fn many_threads_starting_children_while_the_body_does_lose_none() {
    for round in 0..50usize {
        let started = futures::executor::block_on(async_scope!(|s| {
            let from_threads: Vec<_> = std::thread::scope(|threads| {
                let workers: Vec<_> = (0..4usize)
                    .map(|worker| {
                        threads.spawn(move || {
                            (0..50usize)
                                .map(|n| s.go(async move { worker * 1000 + n + round }))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                // The body starts its own children meanwhile, on its own thread.
                let mine: Vec<_> = (0..50usize).map(|n| s.go(async move { 4000 + n + round })).collect();
                workers.into_iter().flat_map(|worker| worker.join().unwrap()).chain(mine).collect()
            });
            let mut outputs = Vec::new();
            for handle in from_threads {
                outputs.push(handle.await);
            }
            outputs
        }));
        let mut expected: Vec<usize> =
            (0..5usize).flat_map(|worker| (0..50).map(move |n| worker * 1000 + n + round)).collect();
        expected.sort_unstable();
        let mut started = started;
        started.sort_unstable();
        assert_eq!(started, expected, "round {round}: every child ran once and its handle has its output");
    }
}

#[test]
fn a_handle_polled_on_another_thread_with_the_body_waker_still_wakes_the_body() {
    let gate = Gate::default();
    let gate = &gate;
    // `now_or_never`: the scope must end in one poll, every wake-up being its own.
    let output = futures::FutureExt::now_or_never(async_scope! {
        let handle = go async { gate.wait().await; 5 };
        let body_waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let mut handle = std::thread::scope(|threads| {
            threads
                .spawn(move || {
                    let mut handle = handle;
                    let polled =
                        std::pin::Pin::new(&mut handle).poll(&mut TaskContext::from_waker(&body_waker));
                    assert!(polled.is_pending(), "the child waits on its gate");
                    handle
                })
                .join()
                .unwrap()
        });
        gate.open();
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut handle).poll(cx)).await
    });
    assert_eq!(output, Some(5));
}
