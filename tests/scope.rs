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

/// Runs `body` on a thread of its own and says whether it finished within `limit`, which
/// callers set far beyond what `body` needs, so that only a hang gets `false`.
fn finishes_within(limit: Duration, body: impl FnOnce() + Send + 'static) -> bool {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        body();
        done_tx.send(()).unwrap();
    });
    done_rx.recv_timeout(limit).is_ok()
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
        for _ in 0..3 {
            go move |ctx| {
                // Observed through the context: each sibling waits until it is cancelled.
                futures::executor::block_on(ctx.done());
                cancelled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            };
        }
        go |_ctx| Err::<(), _>("boom".to_owned());
    };
    assert_eq!(result, Err("boom".to_owned()));
    assert_eq!(cancelled.load(Ordering::SeqCst), 3, "every sibling saw the cancellation and finished");
}

#[test]
fn errors_all_collects_every_error() {
    // Every task starts before any fails: a cancelled scope would start no more of them.
    let all_started = gonext::sync::WaitGroup::new();
    all_started.add(6);
    let all_started = &all_started;
    let result: Result<u8, Vec<u32>> = try_scope!(errors = all; {
        for n in 0..6u32 {
            go move |_ctx| {
                all_started.done();
                all_started.wait();
                if n % 2 == 0 { Err(n) } else { Ok(()) }
            };
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
    let rounds = || {
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
    };
    // Far beyond the few seconds the rounds take; only a hang runs out of it.
    assert!(
        finishes_within(Duration::from_secs(300), rounds),
        "a scope of tasks on a std barrier never finished: some task never started"
    );
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
    gonext::scope(|s| {
        for _ in 0..100 {
            let _ = s.go(move |_ctx| {
                for _ in 0..10 {
                    let _ = s.go(move |_ctx| {
                        total.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
        }
    });
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

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn go_expressions_return_handles_whose_join_gives_the_value() {
    let mut x = 3;
    let (squared, doubled, words) = scope! {
        let squared = go square(x); // `x` is read here, at the go
        x = 100;
        let doubled = go move { x * 2 };
        let words = go |_ctx| "a b c".split(' ').count();
        (squared.join(), doubled.join(), words.join())
    };
    assert_eq!((squared, doubled, words), (9, 200, 3));
}

#[test]
fn handles_in_collections_and_arguments_are_joined_in_any_order() {
    let data: Vec<u64> = (1..=8).collect();
    let total = scope! {
        let mut handles = Vec::new();
        for chunk in data.chunks(3) {
            handles.push(go chunk.iter().sum::<u64>());
        }
        let pair = [go square(2), go square(3)];
        let rest: u64 = handles.into_iter().rev().map(|h| h.join()).sum();
        rest + pair.into_iter().map(|h| h.join()).sum::<u64>()
    };
    assert_eq!(total, 36 + 4 + 9);
}

#[test]
fn handles_returned_from_the_block_hold_the_values() {
    let handles = scope! {
        let first = go square(4);
        let second = go square(5);
        [first, second]
    };
    assert!(handles.iter().all(gonext::sync::TaskHandle::is_finished), "the scope joined them");
    let [first, second] = handles;
    assert_eq!((first.join(), second.join()), (16, 25));
}

/// A task's output that counts its drops.
struct Tracked<'a>(u64, &'a AtomicUsize);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn many_handles_joined_inside_returned_or_dropped_each_drop_their_value_once() {
    let drops = AtomicUsize::new(0);
    let drops_ref = &drops;
    let (joined_inside, returned) = scope! {
        let mut handles = Vec::new();
        let mut strings = Vec::new();
        for i in 0..1000u64 {
            handles.push(go Tracked(i, drops_ref));
            if i % 10 == 0 {
                // Outputs of another type in between share nothing with these.
                strings.push(go (i / 10).to_string());
            }
        }
        let returned = handles.split_off(500);
        let unjoined = handles.split_off(250);
        drop(unjoined);
        let joined_inside: u64 = handles.into_iter().map(|h| h.join().0).sum();
        assert_eq!(strings.into_iter().map(|h| h.join()).collect::<Vec<_>>()[99], "99");
        (joined_inside, returned)
    };
    assert_eq!(joined_inside, (0..250).sum::<u64>());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        500,
        "joined and unjoined outputs are dropped, returned ones kept"
    );
    let from_another_thread =
        std::thread::scope(|s| s.spawn(move || returned.into_iter().map(|h| h.join().0).sum::<u64>()).join());
    assert_eq!(from_another_thread.unwrap(), (500..1000).sum::<u64>());
    assert_eq!(drops.load(Ordering::SeqCst), 1000, "every output is dropped exactly once");
}

#[test]
fn a_joined_error_goes_to_the_joiner_and_an_unjoined_one_to_the_scope() {
    fn parse(text: &str) -> Result<u32, String> {
        text.parse().map_err(|_| format!("{text:?} is not a number"))
    }
    let recovered: Result<u32, String> = try_scope! {
        let bad = go parse("x");
        bad.join().or(Ok::<_, String>(0))?
    };
    assert_eq!(recovered, Ok(0), "the body handled the error it joined");
    let dropped: Result<u32, String> = try_scope! {
        let _forgotten = go parse("y");
        1
    };
    assert_eq!(dropped, Err("\"y\" is not a number".to_owned()), "nobody joined it: the scope reports it");
}

#[test]
fn a_task_panic_resumes_at_its_join() {
    let caught = scope! {
        let handle = go std::panic::panic_any(TaskFailure("joined panic"));
        catch_unwind(AssertUnwindSafe(move || handle.join())).unwrap_err()
    };
    assert_eq!(caught.downcast_ref::<TaskFailure>(), Some(&TaskFailure("joined panic")));
}

#[test]
fn a_join_never_runs_another_task_that_waits_for_the_joiner() {
    // `b` waits for what the body sends after joining `a`. A join that ran `b` inline while
    // `a` sleeps would wait for itself; in Go a Wait never runs a goroutine, and neither may a
    // join run any task but the one it waits for. Many rounds, so that `b` is still queued
    // while `a` runs in most of them.
    assert!(finishes_within(Duration::from_secs(60), || {
        for _ in 0..20 {
            let (tx, rx) = gonext::sync::chan::<u32>(0);
            let sum = scope! {
                let a = go move { std::thread::sleep(Duration::from_millis(5)); 1 };
                let b = go move { rx.recv().expect("the body sends") };
                let first = a.join();
                tx.send(41).expect("b receives");
                first + b.join()
            };
            assert_eq!(sum, 42);
        }
    }));
}

#[test]
fn as_completed_never_runs_a_task_that_waits_for_the_caller() {
    assert!(finishes_within(Duration::from_secs(60), || {
        for _ in 0..20 {
            let (tx, rx) = gonext::sync::chan::<u32>(0);
            let results: Vec<u32> = scope! {
                let quick = go move { std::thread::sleep(Duration::from_millis(5)); 1 };
                let waiting = go move { rx.recv().expect("the caller sends") };
                let mut results = Vec::new();
                for value in gonext::sync::as_completed([quick, waiting]) {
                    if results.is_empty() {
                        tx.send(41).expect("the waiting task receives");
                    }
                    results.push(value);
                }
                results
            };
            assert_eq!(results, [1, 41]);
        }
    }));
}

#[virtual_time_test]
fn as_completed_yields_results_in_completion_order() {
    let start = time::Instant::now();
    let order: Vec<u64> = scope! {
        let mut handles = Vec::new();
        for secs in [4u64, 1, 3, 2] {
            handles.push(go move { thread::sleep(Duration::from_secs(secs)); secs });
        }
        gonext::sync::as_completed(handles).collect()
    };
    assert_eq!(order, [1, 2, 3, 4]);
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}

#[test]
fn the_library_forms_take_a_scope_argument() {
    let numbers = [1u64, 2, 3];
    let squares = gonext::scope(|s| {
        let handles: Vec<_> = numbers.iter().map(|&n| s.go(move |_ctx| square(n))).collect();
        handles.into_iter().map(gonext::sync::TaskHandle::join).collect::<Vec<_>>()
    });
    assert_eq!(squares, [1, 4, 9]);
    let failed: Result<(), String> = gonext::try_scope(|s| {
        for n in numbers {
            s.go(move |_ctx| if n == 2 { Err(format!("{n} failed")) } else { Ok(n) });
        }
        Ok(())
    });
    assert_eq!(failed, Err("2 failed".to_owned()));
}

/// Waits until `ctx` is done or a virtual minute passes; whether it was cancelled.
fn wait_for_cancellation(ctx: &Context) -> bool {
    select! {
        _ = ctx.done() => true,
        _ = time::sleep(Duration::from_secs(60)) => false,
    }
}

#[virtual_time_test]
fn cancellation_reaches_scopes_nested_three_levels_deep() {
    let start = time::Instant::now();
    let saw = AtomicUsize::new(0);
    let saw = &saw;
    let outcome: Result<(), &str> = try_scope! {
        go |_ctx| {
            scope! {
                go |_ctx| {
                    scope! {
                        go |ctx| {
                            if wait_for_cancellation(ctx) {
                                saw.fetch_add(1, Ordering::SeqCst);
                            }
                        };
                    }
                };
            }
            Ok(())
        };
        go |_ctx| {
            thread::sleep(Duration::from_secs(1));
            Err::<(), _>("outer failure")
        };
    };
    assert_eq!(outcome, Err("outer failure"));
    assert_eq!(saw.load(Ordering::SeqCst), 1, "the innermost task saw the outer cancellation");
    assert_eq!(start.elapsed(), Duration::from_secs(1), "it stopped at once, not after its minute");
}

#[virtual_time_test]
fn a_scope_inside_a_group_task_is_cancelled_with_the_group() {
    let (group, group_ctx) = gonext::sync::Group::<String>::with_context(&Context::background());
    let (seen_tx, seen_rx) = gonext::sync::chan::<bool>(1);
    let (started_tx, started_rx) = gonext::sync::chan::<()>(1);
    group.go(move |_ctx| {
        let seen = scope! {
            let waiter = go move |ctx| {
                started_tx.send(()).unwrap();
                wait_for_cancellation(ctx)
            };
            waiter.join()
        };
        seen_tx.send(seen).unwrap();
        Ok(())
    });
    group.go(move |_ctx| {
        started_rx.recv(); // fail only once the inner scope's task runs
        Err("group failure".to_owned())
    });
    assert_eq!(group.wait(), Err("group failure".to_owned()));
    assert!(group_ctx.is_done());
    assert_eq!(seen_rx.recv(), Some(true));
}

#[virtual_time_test]
fn ctx_timeout_and_deadline_options_bound_the_scope() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let start = time::Instant::now();
    let cancelled_by_parent = scope!(ctx = parent; {
        let waiter = go |ctx| wait_for_cancellation(ctx);
        thread::sleep(Duration::from_secs(2));
        cancel_parent.cancel();
        waiter.join()
    });
    assert!(cancelled_by_parent);
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    let timed_out = scope!(timeout = "5s"; {
        let waiter = go |ctx| (wait_for_cancellation(ctx), ctx.err());
        waiter.join()
    });
    assert_eq!(timed_out, (true, Some(ContextError::DeadlineExceeded)));
    assert_eq!(start.elapsed(), Duration::from_secs(7));

    let at = time::Instant::now() + Duration::from_secs(3);
    let limit = Duration::from_secs(30);
    let past_deadline: Result<bool, ContextError> = try_scope!(deadline = at, timeout = limit; {
        let waiter = go |ctx| if wait_for_cancellation(ctx) { Err(ctx.err().unwrap()) } else { Ok(false) };
        waiter.join()?
    });
    assert_eq!(past_deadline, Err(ContextError::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(10), "the earlier of deadline and timeout");
}

#[test]
fn no_task_starts_once_the_scope_is_cancelled() {
    let ran = AtomicUsize::new(0);
    let ran = &ran;
    let late = scope!(|s| {
        go move { ran.fetch_add(1, Ordering::SeqCst); }
        s.cancel();
        go move { ran.fetch_add(10, Ordering::SeqCst); }
        let late = go move { ran.fetch_add(100, Ordering::SeqCst) };
        late.try_join()
    });
    assert_eq!(ran.load(Ordering::SeqCst), 1, "only the task started before the cancellation ran");
    let canceled = late.unwrap_err();
    assert!(canceled.to_string().contains("never ran"), "{canceled}");
    assert_eq!(canceled.go_site().file(), file!());
}

#[test]
fn joining_a_task_that_never_ran_outside_any_scope_panics_with_its_site() {
    let handle = scope!(|s| {
        s.cancel();
        go square(2)
    });
    let payload = catch_unwind(AssertUnwindSafe(|| handle.join())).unwrap_err();
    let message = payload.downcast_ref::<String>().expect("a message");
    assert!(message.contains("never ran") && message.contains(file!()), "{message}");
}

#[virtual_time_test]
fn a_task_joining_a_task_that_never_ran_ends_cancelled_not_failed() {
    // The inner scope is cancelled by its timeout before its body's second `go`; the join
    // unwinds, the inner scope passes that on, and the outer scope treats the task as cancelled.
    let outcome: Result<&str, String> = try_scope! {
        let inner = go |_ctx| {
            Ok(scope!(timeout = "1s"; {
                thread::sleep(Duration::from_secs(2));
                let late = go square(3);
                late.join()
            }))
        };
        match inner.try_join() {
            Ok(_) => "finished",
            Err(_) => "cancelled",
        }
    };
    assert_eq!(outcome, Ok("cancelled"));
}

#[virtual_time_test]
fn question_mark_in_the_body_cancels_and_joins_a_sleeping_task() {
    let start = time::Instant::now();
    let stopped_early = AtomicUsize::new(0);
    let stopped_early = &stopped_early;
    let outcome: Result<u32, String> = try_scope! {
        go move |ctx| {
            if wait_for_cancellation(ctx) {
                stopped_early.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        };
        thread::sleep(Duration::from_secs(1));
        let parsed: u32 = "not a number".parse().map_err(|_| "bad input".to_owned())?;
        parsed + 1
    };
    assert_eq!(outcome, Err("bad input".to_owned()));
    assert_eq!(stopped_early.load(Ordering::SeqCst), 1, "the body's error cancelled the task");
    assert_eq!(start.elapsed(), Duration::from_secs(1), "and the scope joined it before returning");
}

#[test]
fn return_err_in_the_body_is_the_scope_error() {
    fn check(limit: u32) -> Result<u32, String> {
        try_scope! {
            let doubled = go move { Ok(limit * 2) };
            if limit > 10 {
                return Err(format!("{limit} is over the limit"));
            }
            doubled.join()?
        }
    }
    assert_eq!(check(4), Ok(8));
    assert_eq!(check(11), Err("11 is over the limit".to_owned()));
}

#[virtual_time_test]
fn the_body_can_name_the_scope_and_cancel_it() {
    let start = time::Instant::now();
    let value = try_scope!(|s| {
        let waiter = go | ctx | Ok::<_, String>(wait_for_cancellation(ctx));
        thread::sleep(Duration::from_secs(3));
        s.cancel();
        assert!(s.context().is_done());
        waiter.join()?
    });
    assert_eq!(value, Ok(true));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

struct Tree {
    value: u64,
    children: Vec<Tree>,
}

fn tree(depth: u32) -> Tree {
    Tree { value: u64::from(depth), children: (0..depth).map(|_| tree(depth - 1)).collect() }
}

fn walk<'t>(tree: &'t Tree, total: &'t AtomicUsize) {
    total.fetch_add(tree.value as usize, Ordering::Relaxed);
}

#[test]
fn go_inside_a_task_starts_a_sibling_in_the_same_scope() {
    // A parallel tree walk: each task visits one node and starts a sibling per child; the
    // scope joins them all, however deep the recursion goes.
    let root = tree(6);
    let total = AtomicUsize::new(0);
    let (root_ref, total_ref) = (&root, &total);
    let visited = AtomicUsize::new(0);
    let visited_ref = &visited;
    scope! {
        go move {
            let mut pending = vec![root_ref];
            while let Some(node) = pending.pop() {
                walk(node, total_ref);
                visited_ref.fetch_add(1, Ordering::Relaxed);
                for child in &node.children {
                    go move |_ctx| {
                        walk(child, total_ref);
                        visited_ref.fetch_add(1, Ordering::Relaxed);
                        for grandchild in &child.children {
                            go visit_all(grandchild, total_ref, visited_ref);
                        }
                    };
                }
            }
        };
    };
    fn visit_all(tree: &Tree, total: &AtomicUsize, visited: &AtomicUsize) {
        walk(tree, total);
        visited.fetch_add(1, Ordering::Relaxed);
        for child in &tree.children {
            visit_all(child, total, visited);
        }
    }
    fn count(tree: &Tree) -> (usize, usize) {
        tree.children.iter().map(count).fold((1, tree.value as usize), |(n, v), (cn, cv)| (n + cn, v + cv))
    }
    let (nodes, sum) = count(&root);
    assert_eq!(visited.load(Ordering::Relaxed), nodes);
    assert_eq!(total.load(Ordering::Relaxed), sum);
}

#[test]
fn siblings_started_by_tasks_return_handles_too() {
    let sums = scope! {
        let outer = go {
            let a = go square(3);
            let b = go square(4);
            a.join() + b.join()
        };
        outer.join()
    };
    assert_eq!(sums, 25);
}

#[virtual_time_test]
fn supervisor_policy_keeps_the_siblings_running_after_a_failure() {
    let finished = AtomicUsize::new(0);
    let finished = &finished;
    let start = time::Instant::now();
    let outcome: Result<(), Vec<String>> = try_scope!(policy = supervisor, errors = all; {
        go |_ctx| Err::<(), _>("first".to_owned());
        for secs in 1..=3u64 {
            go move |ctx| {
                thread::sleep(Duration::from_secs(secs));
                assert!(!ctx.is_done(), "a failure does not cancel a supervised scope");
                finished.fetch_add(1, Ordering::SeqCst);
                if secs == 2 { Err("second".to_owned()) } else { Ok(()) }
            };
        }
    });
    assert_eq!(outcome, Err(vec!["first".to_owned(), "second".to_owned()]));
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[virtual_time_test]
fn first_success_policy_returns_the_winner_and_cancels_the_rest() {
    fn mirror(ctx: &Context, name: &'static str, secs: u64, works: bool) -> Result<&'static str, String> {
        select! {
            _ = time::sleep(Duration::from_secs(secs)) => if works { Ok(name) } else { Err(format!("{name} is down")) },
            _ = ctx.done() => Err(format!("{name} cancelled")),
        }
    }
    let start = time::Instant::now();
    let fastest = try_scope!(policy = first_success; {
        go |ctx| mirror(ctx, "down", 1, false);
        go |ctx| mirror(ctx, "slow", 9, true);
        go |ctx| mirror(ctx, "fast", 2, true);
    });
    assert_eq!(fastest, Ok("fast"));
    assert_eq!(start.elapsed(), Duration::from_secs(2), "the winner cancelled the slow mirror");

    let none: Result<&str, Vec<String>> = try_scope!(policy = first_success; {
        go |ctx| mirror(ctx, "a", 1, false);
        go |ctx| mirror(ctx, "b", 2, false);
    });
    assert_eq!(none, Err(vec!["a is down".to_owned(), "b is down".to_owned()]));
}

#[test]
fn a_scope_inside_a_failing_try_scope_task_stops_early() {
    // The first case of issue #16, in real time: the inner task ran its full second.
    let started = std::time::Instant::now();
    let outcome: Result<(), &str> = try_scope! {
        go |_ctx| {
            scope! {
                go |ctx| {
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    while !ctx.is_done() && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                };
            }
            Ok(())
        };
        go |_ctx| Err::<(), _>("fails at once");
    };
    assert_eq!(outcome, Err("fails at once"));
    assert!(started.elapsed() < Duration::from_secs(60), "the inner task saw the cancellation");
}
