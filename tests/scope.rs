//! `scope!` / `try_scope!`: Go's `go` statement inside structured-concurrency blocks.

use gonext::context::{Context, ContextError};
use gonext::{scope, select, thread, time, try_scope, virtual_time_test};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn record(seen: &Mutex<Vec<usize>>, value: usize) {
    seen.lock().unwrap().push(value);
}

#[test]
fn go_statement_args_are_evaluated_eagerly() {
    let seen = Mutex::new(Vec::new());
    let seen_ref = &seen;
    scope! {
        let mut i = 0;
        while i < 5 {
            go record(seen_ref, i * 10); // evaluated now: later changes to `i` do not leak in
            i += 1;
        }
    };
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, [0, 10, 20, 30, 40]);
}

struct Counter {
    hits: AtomicUsize,
}

impl Counter {
    fn hit(&self, by: usize) {
        self.hits.fetch_add(by, Ordering::SeqCst);
    }
}

#[test]
fn method_calls_blocks_and_closures_borrow_from_the_parent() {
    let counter = Counter { hits: AtomicUsize::new(0) };
    let names = vec!["a".to_owned(), "bb".to_owned()];
    let shared = &counter; // `move` closures copy this reference, not the counter
    let value = scope! {
        go counter.hit(1);
        go { counter.hit(names.len()) }
        for name in &names {
            go move |_ctx| shared.hit(name.len());
        }
        if names.is_empty() { go counter.hit(1000); } else { go counter.hit(100); }
        "done"
    };
    assert_eq!(value, "done");
    assert_eq!(counter.hits.load(Ordering::SeqCst), 1 + 2 + 3 + 100);
}

#[test]
fn first_error_is_returned_and_cancels_the_siblings() {
    let cancelled = AtomicUsize::new(0);
    let cancelled = &cancelled;
    let result: Result<(), String> = try_scope! {
        go |_ctx| Err::<(), _>("boom".to_owned());
        for _ in 0..3 {
            go move |ctx| {
                // Observed through the context: each sibling waits until it is cancelled.
                futures::executor::block_on(ctx.done());
                cancelled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            };
        }
    };
    assert_eq!(result, Err("boom".to_owned()));
    assert_eq!(cancelled.load(Ordering::SeqCst), 3, "every sibling saw the cancellation and finished");
}

#[test]
fn errors_all_collects_every_error() {
    let result: Result<u8, Vec<u32>> = try_scope!(errors = all; {
        for n in 0..6u32 {
            go move |_ctx| if n % 2 == 0 { Err(n) } else { Ok(()) };
        }
        7
    });
    let mut errors = result.unwrap_err();
    errors.sort_unstable();
    assert_eq!(errors, [0, 2, 4]);
    let fine: Result<u8, Vec<u32>> = try_scope!(errors = all; { go |_ctx| Ok::<(), u32>(()); 7 });
    assert_eq!(fine, Ok(7));
}

#[derive(Debug, PartialEq)]
struct TaskFailure(&'static str);

#[test]
fn a_panic_keeps_its_payload_and_siblings_are_joined_first() {
    let finished = AtomicUsize::new(0);
    let finished = &finished;
    let payload = catch_unwind(AssertUnwindSafe(|| {
        scope! {
            go { std::panic::panic_any(TaskFailure("disk on fire")) }
            for _ in 0..4 {
                go move |ctx| {
                    futures::executor::block_on(ctx.done());
                    finished.fetch_add(1, Ordering::SeqCst);
                };
            }
        }
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("disk on fire")));
    assert_eq!(finished.load(Ordering::SeqCst), 4, "the siblings were cancelled and joined");
}

#[test]
fn limit_is_never_exceeded() {
    let running = AtomicUsize::new(0);
    let high_water = AtomicUsize::new(0);
    let (running, high_water) = (&running, &high_water);
    scope!(limit = 3; {
        for _ in 0..40 {
            go move |_ctx| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                high_water.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
                running.fetch_sub(1, Ordering::SeqCst);
            };
        }
    });
    let peak = high_water.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak {peak}");
}

#[test]
fn nested_scopes_do_not_deadlock_the_pool() {
    let total = AtomicUsize::new(0);
    let total = &total;
    scope! {
        for _ in 0..16 {
            go move |_ctx| {
                scope! {
                    for _ in 0..16 {
                        go move |_ctx| { total.fetch_add(1, Ordering::SeqCst); };
                    }
                }
            };
        }
    };
    assert_eq!(total.load(Ordering::SeqCst), 256);
}

#[test]
fn tasks_waiting_for_each_other_in_gonext_primitives_all_run() {
    // Every task blocks until all of them have started: the pool must run 200 at once,
    // far more than `max_procs`, by replacing each worker that parks in the WaitGroup.
    const TASKS: usize = 200;
    let all_started = gonext::sync::WaitGroup::new();
    all_started.add(TASKS);
    let all_started = &all_started;
    scope! {
        for _ in 0..TASKS {
            go move |_ctx| {
                all_started.done();
                all_started.wait();
            };
        }
    };
}

#[test]
fn tasks_blocked_in_std_primitives_do_not_starve_the_queue() {
    // The pool cannot see a std barrier; its monitor adds workers when no job starts.
    const TASKS: usize = 12;
    let barrier = std::sync::Barrier::new(TASKS);
    let barrier = &barrier;
    let passed = AtomicUsize::new(0);
    let passed = &passed;
    scope! {
        for _ in 0..TASKS {
            go move |_ctx| {
                barrier.wait();
                passed.fetch_add(1, Ordering::SeqCst);
            };
        }
    };
    assert_eq!(passed.load(Ordering::SeqCst), TASKS);
}

#[test]
fn scopes_of_tasks_blocked_in_std_primitives_keep_finishing_round_after_round() {
    // Each round leaves the pool with workers that parked in a std barrier and took a batch of
    // jobs first; a job left last in such a batch must still reach a new worker. Rounds used
    // to hang within a few dozen once a searching worker missed such a job.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for round in 0..120 {
            let tasks = 2 + round * 7 % 40;
            let barrier = std::sync::Barrier::new(tasks);
            let barrier = &barrier;
            scope! {
                for _ in 0..tasks {
                    go move |_ctx| {
                        barrier.wait();
                    };
                }
            };
        }
        done_tx.send(()).unwrap();
    });
    // Far beyond the few seconds the rounds take; only a hang gets here.
    let outcome = done_rx.recv_timeout(Duration::from_secs(300));
    assert!(outcome.is_ok(), "a scope of tasks on a std barrier never finished: some task never started");
}

#[test]
fn tasks_spinning_until_a_later_task_runs_do_not_hang_the_pool() {
    // More spinners than cores keep every worker computing; the monitor still makes room for
    // the task they wait for, after its patience with computing workers runs out.
    let spinners = gonext::runtime::max_procs() + 1;
    let flag = std::sync::atomic::AtomicBool::new(false);
    let flag = &flag;
    scope! {
        for _ in 0..spinners {
            go move |_ctx| {
                while !flag.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            };
        }
        go move |_ctx| flag.store(true, Ordering::Release);
    };
    assert!(flag.load(Ordering::Acquire));
}

#[test]
fn a_task_handed_over_by_a_parked_worker_runs_while_it_waits() {
    // Started in one burst, the consumer may share a worker's batch with its producer;
    // parking hands the rest of the batch back, so the producer runs elsewhere.
    for _ in 0..50 {
        let (tx, rx) = gonext::sync::chan::<u32>(0);
        let got = Mutex::new(Vec::new());
        let got = &got;
        scope! {
            go move |_ctx| { got.lock().unwrap().extend(rx.iter()); };
            go move |_ctx| { for i in 0..3 { tx.send(i).unwrap(); } };
        };
        assert_eq!(*got.lock().unwrap(), [0, 1, 2]);
    }
}

#[test]
fn every_task_closure_is_dropped_exactly_once_small_or_large() {
    // Small closures travel inline in the pool's jobs, large ones boxed: either way each
    // capture is dropped once, after its task ran, also when the task panics.
    let token = std::sync::Arc::new(());
    let big = [7u64; 32];
    let result = catch_unwind(AssertUnwindSafe(|| {
        scope! {
            for i in 0..1_000 {
                let small = std::sync::Arc::clone(&token);
                let large = (std::sync::Arc::clone(&token), big);
                go move |_ctx| { drop(small); assert!(i != 500, "task {i} fails"); };
                go move |_ctx| { assert_eq!(large.1.iter().sum::<u64>(), 224); };
            }
        }
    }));
    assert!(result.is_err(), "the failing task's panic resumes in the parent");
    assert_eq!(std::sync::Arc::strong_count(&token), 1, "every capture was dropped once");
}

#[test]
fn tasks_started_from_other_tasks_are_joined_too() {
    // The library form lets a task start siblings from a worker thread; the parent's own
    // `go`s are counted in advance, theirs one by one, and the join waits for all of them.
    let total = AtomicUsize::new(0);
    let total = &total;
    let joined = gonext::__private::run_scope::<_, std::convert::Infallible>(Default::default(), |s| {
        for _ in 0..100 {
            s.go(move |_ctx| {
                for _ in 0..10 {
                    s.go(move |_ctx| {
                        total.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
        }
    });
    assert!(joined.is_ok());
    assert_eq!(total.load(Ordering::SeqCst), 1_000);
}

#[test]
fn ten_thousand_tasks() {
    let total = AtomicUsize::new(0);
    let total = &total;
    scope! {
        for i in 0..10_000 {
            go move |_ctx| { total.fetch_add(i, Ordering::Relaxed); };
        }
    };
    assert_eq!(total.load(Ordering::Relaxed), (0..10_000).sum());
}

/// Go's Task 6: a `Run` that starts workers with `Go` and waits; in virtual time.
#[virtual_time_test]
fn scopes_inside_a_bubble_advance_virtual_time() {
    let start = time::Instant::now();
    let results = Mutex::new(Vec::new());
    let results_ref = &results;
    scope! {
        for (i, secs) in [3u64, 1, 2].into_iter().enumerate() {
            go move |_ctx| {
                thread::sleep(Duration::from_secs(secs));
                results_ref.lock().unwrap().push(i);
            };
        }
    };
    assert_eq!(start.elapsed(), Duration::from_secs(3), "the tasks slept in parallel, virtually");
    assert_eq!(results.into_inner().unwrap(), [1, 2, 0], "woken in deadline order");
}

#[virtual_time_test]
fn a_scope_context_deadline_cancels_tasks_in_virtual_time() {
    let outcome: Result<(), ContextError> = try_scope! {
        go |ctx| {
            let (deadline, _cancel) = ctx.with_timeout(Duration::from_secs(5));
            select! {
                err = deadline.done() => Err(err),
                _ = time::sleep(Duration::from_secs(60)) => Ok(()),
            }
        };
    };
    assert_eq!(outcome, Err(ContextError::DeadlineExceeded));
    let _ = Context::background();
}

#[test]
fn group_try_go_respects_the_limit() {
    use gonext::sync::Group;
    let group: Group<String> = Group::new();
    group.set_limit(1);
    let (release_tx, release_rx) = gonext::sync::chan::<()>(0);
    assert!(group.try_go(move |_ctx| {
        release_rx.recv();
        Ok(())
    }));
    assert!(!group.try_go(|_ctx| Ok(())), "the only slot is taken");
    release_tx.send(()).unwrap();
    assert_eq!(group.wait(), Ok(()));
}

#[test]
fn group_wait_reraises_a_task_panic() {
    let group: gonext::sync::Group<()> = gonext::sync::Group::new();
    group.go(|_ctx| -> Result<(), ()> { std::panic::panic_any(TaskFailure("in a group")) });
    let payload = catch_unwind(AssertUnwindSafe(|| group.wait())).unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("in a group")));
}

#[virtual_time_test]
fn manager_stop_cancels_long_lived_tasks_and_returns_the_first_error() {
    let manager = gonext::sync::Manager::<String>::new();
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

async fn bump(counter: &AtomicUsize, by: usize) {
    time::sleep(Duration::from_millis(1)).await;
    counter.fetch_add(by, Ordering::SeqCst);
}

#[test]
fn async_scope_runs_borrowing_children_under_futures_and_tokio() {
    let counter = AtomicUsize::new(0);
    let value = futures::executor::block_on(gonext::async_scope! {
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
    runtime.block_on(gonext::async_scope! {
        for n in 0..100 {
            go move { counter_ref.fetch_add(n, Ordering::SeqCst); }
        }
    });
    assert_eq!(counter.load(Ordering::SeqCst), 4950);
}

#[test]
fn async_scope_child_panic_resumes_after_the_others_and_cancels_them() {
    let finished = AtomicUsize::new(0);
    let finished_ref = &finished;
    let payload = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(gonext::async_scope! {
            go |ctx| async move {
                ctx.done().await;
                finished_ref.fetch_add(1, Ordering::SeqCst);
            };
            go { std::panic::panic_any(TaskFailure("async child")) }
        });
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<TaskFailure>(), Some(&TaskFailure("async child")));
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the sibling was cancelled and finished first");
}

#[test]
fn async_scope_in_virtual_time() {
    let elapsed = time::bubble_async(async {
        let start = time::Instant::now();
        gonext::async_scope! {
            for secs in [3u64, 1, 2] {
                go time::sleep(Duration::from_secs(secs));
            }
        }
        .await;
        start.elapsed()
    });
    assert_eq!(elapsed, Duration::from_secs(3));
}
