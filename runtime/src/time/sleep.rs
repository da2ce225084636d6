//! Timers as futures: `sleep`, `sleep_until`, `timeout` and `Ticker`, on the virtual clock
//! inside a bubble and on the real-time timer thread outside.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::bubble::{self, BubbleRef, BubbleState, MemberId, Site, TimerKey, TimerTarget};
use super::clock::Instant;
use super::real_timer;

/// Waits until `duration` has passed on the caller's clock (virtual inside a bubble).
///
/// Works under any executor; inside `bubble_async` the bubble's clock jumps to the deadline
/// as soon as every member is blocked.
///
/// ```
/// use gonext::time::{self, Instant};
/// use std::time::Duration;
///
/// let waited = time::bubble_async(async {
///     let start = Instant::now();
///     time::sleep(Duration::from_secs(90)).await;
///     start.elapsed()
/// });
/// assert_eq!(waited, Duration::from_secs(90));
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    let site = Location::caller();
    let clock = match BubbleRef::current(|bubble| bubble.offset_after(duration)) {
        Some((bubble, offset)) => SleepClock::Virtual { bubble, offset, timer: None },
        None => SleepClock::Real {
            deadline: Instant::now().checked_add(duration).unwrap_or_else(far_future),
            timer: None,
        },
    };
    Sleep { clock, site }
}

/// Waits until `deadline` on the caller's clock.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline, Location::caller())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]. It belongs to the bubble it was created in.
///
/// # Panics
///
/// Polling it from outside its bubble (or from another bubble) panics, naming both. Dropped
/// there before its deadline, it cannot reach its bubble to cancel its timer, which then fires
/// and wakes nothing that still waits for it.
pub struct Sleep {
    clock: SleepClock,
    site: Site,
}

/// The clock a [`Sleep`] waits on, with its deadline and registered timer.
enum SleepClock {
    /// A bubble's: the deadline as an offset from the bubble's start, in nanoseconds. The
    /// bubble is named, not held: a sleep is created and polled by the bubble's members, whose
    /// membership reaches it, and a reference count per sleep cost a fifth of a task's sleep.
    Virtual { bubble: BubbleRef, offset: u64, timer: Option<VirtualTimer> },
    /// Real time, outside any bubble.
    Real { deadline: Instant, timer: Option<real_timer::RealKey> },
}

/// A timer on a bubble's clock, and the member it wakes directly (when the sleep was polled
/// with its member's own waker), so that a poll by the same member again needs no update.
struct VirtualTimer {
    key: TimerKey,
    wakes: Option<MemberId>,
}

impl Sleep {
    pub(crate) fn new(deadline: Instant, site: Site) -> Sleep {
        let clock = match BubbleRef::current(|bubble| bubble.offset_nanos_of(deadline.into_std())) {
            Some((bubble, offset)) => SleepClock::Virtual { bubble, offset, timer: None },
            None => SleepClock::Real { deadline, timer: None },
        };
        Sleep { clock, site }
    }

    /// The instant this sleep ends.
    pub fn deadline(&self) -> Instant {
        match &self.clock {
            SleepClock::Virtual { bubble, offset, .. } => {
                Instant::from(bubble.instant_at(Duration::from_nanos(*offset)))
            }
            SleepClock::Real { deadline, .. } => *deadline,
        }
    }

    /// Whether the deadline has passed on the caller's clock.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline()
    }

    fn poll_virtual(&mut self, waker: &Waker) -> Poll<()> {
        let SleepClock::Virtual { bubble, offset, timer } = &mut self.clock else {
            unreachable!("a sleep on a bubble's clock")
        };
        let owner = *bubble;
        let polled = owner.with_polling_member(waker, |bubble, member| {
            if bubble.now_nanos() >= *offset {
                // A virtual timer is gone once the clock reached its deadline.
                *timer = None;
                return Poll::Ready(());
            }
            let target = || match member {
                Some(id) => TimerTarget::Member(id),
                None => TimerTarget::Waker(waker.clone()),
            };
            let key = match timer.take() {
                Some(registered) if member.is_some() && registered.wakes == member => Some(registered.key),
                Some(registered) => bubble.retarget_timer(registered.key, target()),
                None => None,
            };
            let key = key.unwrap_or_else(|| bubble.add_timer(*offset, target()));
            *timer = Some(VirtualTimer { key, wakes: member });
            Poll::Pending
        });
        match polled {
            Some(Poll::Pending) => {
                bubble::note_blocked_at(self.site, "time::sleep");
                Poll::Pending
            }
            Some(ready) => ready,
            None => bubble::foreign_use(&owner.label(), "time::sleep", self.site, self.site),
        }
    }

    #[inline(never)]
    fn poll_real(&mut self, waker: &Waker) -> Poll<()> {
        let SleepClock::Real { deadline, timer } = &mut self.clock else {
            unreachable!("a sleep on the real clock")
        };
        if let Some(bubble) = bubble::current() {
            panic!(
                "time::sleep created at {} outside any bubble was polled inside {}; timers belong to \
                 the clock they were created on",
                self.site,
                bubble.label()
            );
        }
        if std::time::Instant::now() >= deadline.into_std() {
            if let Some(key) = timer.take() {
                real_timer::remove(key);
            }
            return Poll::Ready(());
        }
        match timer {
            Some(key) if real_timer::refresh(*key, waker) => {}
            _ => *timer = Some(real_timer::add(deadline.into_std(), waker.clone())),
        }
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.clock {
            SleepClock::Virtual { .. } => this.poll_virtual(cx.waker()),
            SleepClock::Real { .. } => this.poll_real(cx.waker()),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        match &mut self.clock {
            SleepClock::Virtual { bubble, timer, .. } => {
                if let Some(timer) = timer.take() {
                    bubble.with(|bubble| bubble.remove_timer(timer.key));
                }
            }
            SleepClock::Real { timer, .. } => {
                if let Some(key) = timer.take() {
                    real_timer::remove(key);
                }
            }
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline()).field("site", &self.site).finish()
    }
}

/// Runs `future` for at most `duration` on the caller's clock.
///
/// ```
/// use gonext::time;
/// use std::time::Duration;
///
/// time::bubble_async(async {
///     let slow = time::sleep(Duration::from_secs(10));
///     assert!(time::timeout(Duration::from_secs(1), slow).await.is_err());
///     let quick = async { 7 };
///     assert_eq!(time::timeout(Duration::from_secs(1), quick).await, Ok(7));
/// });
/// ```
#[track_caller]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep(duration) }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// A ticker that fires every `period`, like Go's `time.NewTicker` (alias: [`interval`]).
///
/// The first tick comes one period after creation. A consumer that falls behind gets one
/// tick at once and then the ticker returns to its grid, as Go drops ticks for slow receivers.
///
/// ```
/// use gonext::time::{self, Instant, Ticker};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let start = Instant::now();
///     let mut ticker = Ticker::new(Duration::from_millis(100));
///     for _ in 0..3 {
///         ticker.tick_blocking();
///     }
///     assert_eq!(start.elapsed(), Duration::from_millis(300));
/// });
/// ```
///
/// A ticker belongs to the bubble it was created in (or to real time, outside any bubble):
/// ticking or resetting it elsewhere panics, naming both.
///
/// # Differences from Go
///
/// Go delivers ticks on a channel `C`; here the ticker is polled with [`tick`](Self::tick)
/// (async) or [`tick_blocking`](Self::tick_blocking), which can sit in a `select!` as well.
/// Go panics when a bubble's ticker is used outside it, as gonext does, but lets a bubble
/// receive from a ticker created outside, ticking in real time. gonext panics there too: inside
/// a bubble every [`Instant`] is virtual, so a real ticker's instants would be compared with
/// the wrong clock; create the ticker where it is used.
pub struct Ticker {
    period: Duration,
    next: Instant,
    bubble: Option<Arc<BubbleState>>,
    site: Site,
}

/// A [`Ticker`] with the given period.
///
/// # Panics
///
/// If `period` is zero.
#[track_caller]
pub fn interval(period: Duration) -> Ticker {
    Ticker::new(period)
}

impl Ticker {
    /// A ticker whose first tick is one `period` from now.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    #[track_caller]
    pub fn new(period: Duration) -> Ticker {
        assert!(!period.is_zero(), "Ticker::new: the period must be positive");
        Ticker { period, next: Instant::now() + period, bubble: bubble::current(), site: Location::caller() }
    }

    #[track_caller]
    fn check(&self, used_at: Site) {
        bubble::check_clock(self.bubble.as_ref(), "time::Ticker", self.site, used_at);
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the ticker with a new period, the next tick one `period` from now.
    ///
    /// # Panics
    ///
    /// If `period` is zero, or outside the ticker's bubble.
    #[track_caller]
    pub fn reset(&mut self, period: Duration) {
        self.check(Location::caller());
        *self = Ticker::new(period);
    }

    /// Waits for the next tick and returns its scheduled instant.
    ///
    /// # Panics
    ///
    /// Outside the ticker's bubble.
    #[track_caller]
    pub fn tick(&mut self) -> impl Future<Output = Instant> + '_ {
        let site = Location::caller();
        self.check(site);
        async move {
            Sleep::new(self.next, site).await;
            self.advance()
        }
    }

    /// Blocks the thread until the next tick (durably, inside a bubble).
    ///
    /// # Panics
    ///
    /// Outside the ticker's bubble.
    #[track_caller]
    pub fn tick_blocking(&mut self) -> Instant {
        let site = Location::caller();
        self.check(site);
        bubble::block_on(Sleep::new(self.next, site), site, "Ticker::tick_blocking");
        self.advance()
    }

    fn advance(&mut self) -> Instant {
        let tick = self.next;
        let now = Instant::now();
        self.next += self.period;
        if self.next <= now {
            let behind = (now - self.next).as_nanos() / self.period.as_nanos() + 1;
            self.next += self.period * u32::try_from(behind).unwrap_or(u32::MAX);
        }
        tick
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("period", &self.period)
            .field("next", &self.next)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}
