//! Loom models of the bubble's counting protocol: the running count, the parks and wakes of
//! thread members, the idle step, and the executor's deferred blocks, all on the bubble's
//! real code with its lock and parker on loom's types (see `sync_shim`). Each model drives
//! `BubbleState` directly, as members and the executor do, and checks the rule everything
//! rests on: the count never reaches zero while a wake-up is in flight, so the clock cannot
//! move past a member that was woken but has not run yet, and no wake-up is lost.
//!
//! Caught when broken:
//! - With the count raised by the woken member itself when it resumes (`inner.running += 1`
//!   moved from `wake_locked` into `park_until`), every model fails, first
//!   `a_wake_in_flight_keeps_the_clock_still`: once the waker leaves, the count is zero while
//!   the woken member has not run yet, and the idle step fails the bubble with a false deadlock.
//! - With `block_task` blocking a deferred task even when a wake arrived before its executor
//!   took the lock (the `notified` check dropped from `mark_blocked`'s caller),
//!   `a_wake_before_the_executor_takes_the_lock_requeues_the_task` fails: the task is blocked
//!   with no one left to wake it, and the bubble reports a deadlock.

use std::panic::Location;
use std::time::Duration;

use ::loom::thread;

use super::member::PendingOn;
use super::parker::ThreadParker;
use super::{BubbleState, Config, MemberId, State};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

fn bubble() -> std::sync::Arc<BubbleState> {
    BubbleState::new(Config {
        start_since_epoch: Duration::ZERO,
        timeout: None,
        stall: Duration::from_secs(30),
        adopt_std_threads: false,
        name: None,
        timeline: 0,
        record_all: false,
    })
}

fn blocked() -> State {
    State::Blocked { site: Some(Location::caller()), op: "model" }
}

/// Runs `body` as thread member `id` of `bubble` on a new loom thread, then removes it.
fn member<T: Send + 'static>(
    bubble: &std::sync::Arc<BubbleState>,
    id: MemberId,
    body: impl FnOnce(&BubbleState, MemberId) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let bubble = std::sync::Arc::clone(bubble);
    thread::spawn(move || {
        bubble.attach_thread(id, ThreadParker::current());
        let result = body(&bubble, id);
        bubble.remove_member(id);
        result
    })
}

/// Two thread members: one parked until a wake or its 10 s timer, one running `wake` (given
/// the first's id); returns when the first woke.
fn woken_at(wake: impl FnOnce(&BubbleState, MemberId, MemberId) + Send + 'static) -> Duration {
    let bubble = bubble();
    let sleeper = bubble.add_member(None, Location::caller(), false);
    let waker = bubble.add_member(None, Location::caller(), false);
    let sleeping = member(&bubble, sleeper, |bubble, id| {
        assert!(bubble.park_until(id, blocked(), Some(Duration::from_secs(10))).is_ok());
        bubble.elapsed()
    });
    let waking = member(&bubble, waker, move |bubble, id| wake(bubble, id, sleeper));
    let woken_at = sleeping.join().unwrap();
    waking.join().unwrap();
    assert!(!bubble.has_failed());
    woken_at
}

#[test]
fn a_wake_in_flight_keeps_the_clock_still() {
    model(|| {
        let woken_at = woken_at(|bubble, _, sleeper| bubble.wake(sleeper));
        assert_eq!(woken_at, Duration::ZERO, "woken by its partner, not its timer");
    });
}

#[test]
fn the_clock_moves_only_when_every_member_is_blocked() {
    model(|| {
        let woken_at = woken_at(|bubble, id, sleeper| {
            bubble.sleep_member(id, Duration::from_secs(5), Location::caller());
            bubble.wake(sleeper);
        });
        assert_eq!(woken_at, Duration::from_secs(5));
    });
}

#[test]
fn a_wake_before_the_executor_takes_the_lock_requeues_the_task() {
    model(|| {
        let bubble = bubble();
        let task = bubble.add_member(None, Location::caller(), true);
        let waker = bubble.add_member(None, Location::caller(), false);
        // The executor polled the task, which returned `Pending`: its block is deferred.
        bubble.defer_block(task, PendingOn::Bubble(Location::caller(), "model"));
        let waking = member(&bubble, waker, move |bubble, _| bubble.wake(task));
        // The executor's batch is done: it takes the lock and waits for a runnable task.
        let mut inner = bubble.lock();
        bubble.flush_own(&mut inner);
        inner = bubble.settle(inner);
        let runnable = loop {
            assert!(inner.failure.is_none(), "the bubble failed: the task's wake-up was lost");
            if let Some(id) = inner.run_queue.pop_front() {
                break id;
            }
            inner.executor_waiting = true;
            inner = bubble.changed.wait(inner).unwrap();
            inner.executor_waiting = false;
        };
        drop(inner);
        assert_eq!(runnable, task);
        waking.join().unwrap();
        bubble.remove_member(task);
        assert!(!bubble.has_failed());
    });
}

#[test]
fn the_last_member_to_block_runs_the_idle_step() {
    model(|| {
        let bubble = bubble();
        let members: Vec<_> = (0..2).map(|_| bubble.add_member(None, Location::caller(), false)).collect();
        let sleepers: Vec<_> = members
            .into_iter()
            .zip([3, 7])
            .map(|(id, secs)| {
                member(&bubble, id, move |bubble, id| {
                    bubble.sleep_member(id, Duration::from_secs(secs), Location::caller());
                    bubble.elapsed()
                })
            })
            .collect();
        let woke_at: Vec<_> = sleepers.into_iter().map(|sleeper| sleeper.join().unwrap()).collect();
        assert_eq!(woke_at, [Duration::from_secs(3), Duration::from_secs(7)]);
        assert!(!bubble.has_failed());
    });
}
