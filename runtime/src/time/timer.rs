//! One-shot timers that can be stopped and reset: Go's `time.NewTimer` and `time.AfterFunc`,
//! with Go 1.23's semantics (no stale value after `stop` or `reset`).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::bubble::{self, BubbleState, Site};
use super::clock::Instant;
use super::real_timer::ClockTimer;
use crate::sync::waiters::Waiters;

/// A timer that fires once, `duration` after it is armed, on the caller's clock: Go's
/// `time.NewTimer`. Wait for it with [`wait`](Self::wait) or
/// [`wait_blocking`](Self::wait_blocking); [`stop`](Self::stop) and [`reset`](Self::reset)
/// return Go's booleans.
///
/// ```
/// use gonext::time::{self, Instant, Timer};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let start = Instant::now();
///     let timer = Timer::new(Duration::from_secs(5));
///     assert!(timer.reset(Duration::from_secs(2))); // it was armed
///     let fired = timer.wait_blocking();
///     assert_eq!(fired - start, Duration::from_secs(2));
///     assert!(!timer.stop()); // already fired and received
/// });
/// ```
///
/// A timer belongs to the bubble it was created in (or to real time, outside any bubble);
/// using it elsewhere panics, naming both.
///
/// # Differences from Go
///
/// Go's timer delivers its value on a channel `C`; here [`wait`](Self::wait) is the receive,
/// and it can sit in a [`select!`](crate::select). As in Go 1.23, a value that fired but was
/// not received yet is dropped by `stop` and `reset` (which then return `true`), so a wait
/// after them never sees a stale time. Dropping a `Timer` made by [`Timer::new`] stops it;
/// one made by [`after_func`] still runs its function. Go lets a bubble wait on a timer
/// created outside it (in real time); gonext panics, as for [`Ticker`](super::Ticker),
/// because inside a bubble its instants would be read on the virtual clock.
pub struct Timer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    bubble: Option<Arc<BubbleState>>,
    /// What runs when an [`after_func`] timer fires, on a new thread each time.
    func: Option<Arc<dyn Fn() + Send + Sync>>,
    site: Site,
}

#[derive(Default)]
struct State {
    /// Bumped by every stop and reset, so that a firing registered before is ignored.
    generation: u64,
    /// The deadline while armed.
    armed: Option<Instant>,
    registration: Option<ClockTimer>,
    /// The time of a firing nobody has received yet.
    fired: Option<Instant>,
    waiters: Waiters,
}

/// Runs `f` on a thread of its own once `duration` has passed on the caller's clock, and
/// returns the timer, which can stop or reset it: Go's `time.AfterFunc`.
///
/// Inside a bubble, the thread is a member of the bubble, started at the virtual deadline
/// (timers that one thread or task of the bubble armed for the same instant fire in the order
/// it armed them).
///
/// ```
/// use gonext::time;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let ran = Arc::new(AtomicBool::new(false));
///     let flag = Arc::clone(&ran);
///     let _timer = time::after_func(Duration::from_secs(30), move || flag.store(true, Ordering::SeqCst));
///     time::sleep_then_wait(Duration::from_secs(30)); // the function ran at +30 s
///     assert!(ran.load(Ordering::SeqCst));
/// });
/// ```
///
/// # Panics
///
/// [`Timer::wait`] and [`Timer::wait_blocking`] on the returned timer panic: it delivers no
/// value (Go's `AfterFunc` timer has no channel).
#[track_caller]
pub fn after_func(duration: Duration, f: impl Fn() + Send + Sync + 'static) -> Timer {
    Timer::armed(duration, Some(Arc::new(f)), Location::caller())
}

impl Timer {
    /// A timer that fires once, `duration` from now.
    #[track_caller]
    pub fn new(duration: Duration) -> Timer {
        Timer::armed(duration, None, Location::caller())
    }

    fn armed(duration: Duration, func: Option<Arc<dyn Fn() + Send + Sync>>, site: Site) -> Timer {
        let shared = Arc::new(Shared { state: Mutex::default(), bubble: bubble::current(), func, site });
        let timer = Timer { shared };
        timer.shared.arm(&mut timer.shared.lock(), duration);
        timer
    }

    /// Stops the timer: `true` if it was armed, or had fired without its value being
    /// received yet (that value is dropped); `false` if it was stopped or already received.
    /// For an [`after_func`] timer, `true` means the function will not run.
    #[track_caller]
    pub fn stop(&self) -> bool {
        self.shared.check(Location::caller());
        let mut state = self.shared.lock();
        let active = state.armed.is_some() || state.fired.is_some();
        self.shared.disarm(&mut state);
        active
    }

    /// Re-arms the timer to fire `duration` from now; returns what [`stop`](Self::stop)
    /// would have. For an [`after_func`] timer, the function runs again at the new deadline.
    #[track_caller]
    pub fn reset(&self, duration: Duration) -> bool {
        self.shared.check(Location::caller());
        let mut state = self.shared.lock();
        let active = state.armed.is_some() || state.fired.is_some();
        self.shared.disarm(&mut state);
        self.shared.arm(&mut state, duration);
        active
    }

    /// Waits until the timer fires and returns when it did (on the caller's clock): Go's
    /// `<-t.C`. A stopped timer is never received from.
    ///
    /// # Panics
    ///
    /// On an [`after_func`] timer, or outside the timer's bubble.
    #[track_caller]
    pub fn wait(&self) -> TimerWait<'_> {
        let site = Location::caller();
        assert!(
            self.shared.func.is_none(),
            "Timer::wait at {site}: the timer of after_func (created at {}) delivers no value",
            self.shared.site
        );
        TimerWait { timer: self, slot: None, site }
    }

    /// Blocks until the timer fires (durably, in a bubble); see [`wait`](Self::wait).
    #[track_caller]
    pub fn wait_blocking(&self) -> Instant {
        let wait = self.wait();
        let site = wait.site;
        bubble::block_on(wait, site, "Timer::wait")
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[track_caller]
    fn check(&self, used_at: Site) {
        bubble::check_clock(self.bubble.as_ref(), "time::Timer", self.site, used_at);
    }

    fn arm(self: &Arc<Self>, state: &mut State, duration: Duration) {
        let now = Instant::now();
        let deadline = now.checked_add(duration).unwrap_or(now + FAR);
        let fire = Waker::from(Arc::new(Fire { shared: Arc::clone(self), generation: state.generation }));
        state.registration = Some(ClockTimer::add(self.bubble.as_ref(), deadline, fire));
        state.armed = Some(deadline);
    }

    fn disarm(&self, state: &mut State) {
        state.generation += 1;
        state.armed = None;
        state.fired = None;
        if let Some(registration) = state.registration.take() {
            registration.remove(self.bubble.as_ref());
        }
    }

    /// The firing armed as `generation`, unless a stop or reset came since.
    fn fire(&self, generation: u64) {
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        let Some(deadline) = state.armed.take() else { return };
        state.registration = None;
        if let Some(func) = &self.func {
            let func = Arc::clone(func);
            drop(state);
            crate::thread::spawn_detached(self.bubble.as_ref(), self.site, move || func());
            return;
        }
        state.fired = Some(deadline);
        let waiters = state.waiters.take_all();
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// About thirty years: the deadline of a duration too long for the clock.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The timer target of one arming.
struct Fire {
    shared: Arc<Shared>,
    generation: u64,
}

impl Wake for Fire {
    fn wake(self: Arc<Self>) {
        self.shared.fire(self.generation);
    }
}

/// The future of [`Timer::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct TimerWait<'a> {
    timer: &'a Timer,
    slot: Option<u64>,
    site: Site,
}

impl Future for TimerWait<'_> {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let this = self.get_mut();
        let shared = &this.timer.shared;
        shared.check(this.site);
        let mut state = shared.lock();
        if let Some(fired) = state.fired.take() {
            state.waiters.forget(&mut this.slot);
            return Poll::Ready(fired);
        }
        state.waiters.register(&mut this.slot, cx.waker());
        bubble::note_pending_on(shared.bubble.as_ref(), this.site, "Timer::wait");
        Poll::Pending
    }
}

impl Drop for TimerWait<'_> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            let waker = self.timer.shared.lock().waiters.cancel(&mut self.slot);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.shared.func.is_none() {
            self.shared.disarm(&mut self.shared.lock());
        }
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Timer")
            .field("armed", &state.armed)
            .field("after_func", &self.shared.func.is_some())
            .field("site", &self.shared.site)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TimerWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWait").field("site", &self.site).finish_non_exhaustive()
    }
}
