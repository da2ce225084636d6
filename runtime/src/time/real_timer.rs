//! Async timers outside any bubble: one lazily started thread that wakes each timer at its
//! real deadline, so `time::sleep` works under tokio, `futures::executor` or any executor.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread;
use std::time::Instant;

use super::bubble::{BubbleState, TimerKey, TimerTarget};

/// A registered real-time timer.
pub(crate) type RealKey = (Instant, u64);

struct Timers {
    pending: BTreeMap<RealKey, Waker>,
    next: u64,
    started: bool,
}

static TIMERS: Mutex<Timers> = Mutex::new(Timers { pending: BTreeMap::new(), next: 0, started: false });
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Timers> {
    TIMERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wakes `waker` at `deadline`.
pub(crate) fn add(deadline: Instant, waker: Waker) -> RealKey {
    let mut timers = lock();
    if !timers.started {
        timers.started = true;
        crate::thread::spawn_unadopted(thread::Builder::new().name("gonext-timer".into()), run)
            .expect("the gonext timer thread starts");
    }
    let key = (deadline, timers.next);
    timers.next += 1;
    let earliest = timers.pending.first_key_value().is_none_or(|(&first, _)| key < first);
    timers.pending.insert(key, waker);
    if earliest {
        CHANGED.notify_one();
    }
    key
}

/// Replaces the waker of a pending timer; `false` if it already fired.
pub(crate) fn refresh(key: RealKey, waker: &Waker) -> bool {
    match lock().pending.get_mut(&key) {
        Some(registered) => {
            registered.clone_from(waker);
            true
        }
        None => false,
    }
}

/// Forgets a timer nobody awaits any more.
pub(crate) fn remove(key: RealKey) {
    lock().pending.remove(&key);
}

fn run() {
    let mut timers = lock();
    loop {
        let now = Instant::now();
        let later = timers.pending.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut timers.pending, later);
        if !due.is_empty() {
            drop(timers);
            due.into_values().for_each(Waker::wake);
            timers = lock();
            continue;
        }
        timers = match timers.pending.first_key_value() {
            Some((&(deadline, _), _)) => {
                CHANGED
                    .wait_timeout(timers, deadline - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
            None => CHANGED.wait(timers).unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}

/// A timer registered on a clock: its bubble's virtual one, or this module's real one outside
/// any bubble.
pub(crate) enum ClockTimer {
    Virtual(TimerKey),
    Real(RealKey),
}

impl ClockTimer {
    /// Wakes `waker` at `deadline` on `bubble`'s clock, or in real time for `None`.
    pub(crate) fn add(
        bubble: Option<&Arc<BubbleState>>,
        deadline: crate::time::Instant,
        waker: Waker,
    ) -> ClockTimer {
        match bubble {
            Some(bubble) => ClockTimer::Virtual(
                bubble.add_timer(bubble.offset_nanos_of(deadline.into_std()), TimerTarget::Waker(waker)),
            ),
            None => ClockTimer::Real(add(deadline.into_std(), waker)),
        }
    }

    /// Forgets the timer; `bubble` is the one it was added on.
    pub(crate) fn remove(self, bubble: Option<&Arc<BubbleState>>) {
        match (self, bubble) {
            (ClockTimer::Virtual(key), Some(bubble)) => bubble.remove_timer(key),
            (ClockTimer::Real(key), _) => remove(key),
            (ClockTimer::Virtual(_), None) => {}
        }
    }
}
