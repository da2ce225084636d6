//! Timers as futures: `sleep`, `sleep_until`, `timeout` and `Ticker`, on the virtual clock
//! inside a bubble and on the real-time timer thread outside.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::bubble::{self, BubbleState, Site, TimerTarget};
use super::clock::Instant;
use super::real_timer::{self, ClockTimer};

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
    Sleep::new(Instant::now().checked_add(duration).unwrap_or_else(far_future), site)
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
/// Polling it from outside its bubble (or from another bubble) panics, naming both.
pub struct Sleep {
    deadline: Instant,
    bubble: Option<Arc<BubbleState>>,
    registration: Option<ClockTimer>,
    site: Site,
}

impl Sleep {
    pub(crate) fn new(deadline: Instant, site: Site) -> Sleep {
        Sleep { deadline, bubble: bubble::current(), registration: None, site }
    }

    /// The instant this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed on the caller's clock.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// What a due timer of this sleep should wake: the polling member itself when `waker` is
    /// its own, else `waker`.
    ///
    /// # Panics
    ///
    /// When polled outside the sleep's bubble.
    fn timer_target(&self, waker: &std::task::Waker) -> TimerTarget {
        let target = bubble::with_current(|c| match (c, &self.bubble) {
            (Some(c), Some(own)) if Arc::ptr_eq(&c.bubble, own) => Some(if waker.will_wake(&c.waker) {
                TimerTarget::Member(c.member)
            } else {
                TimerTarget::Waker(waker.clone())
            }),
            (None, None) => Some(TimerTarget::Waker(waker.clone())),
            _ => None,
        });
        target.unwrap_or_else(|| match &self.bubble {
            Some(owner) => bubble::foreign_use(owner, "time::sleep", self.site, self.site),
            None => panic!(
                "time::sleep created at {} outside any bubble was polled inside {}; timers belong to \
                 the clock they were created on",
                self.site,
                bubble::current().map_or_else(String::new, |b| b.label())
            ),
        })
    }

    fn unregister(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.remove(self.bubble.as_ref());
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let target = this.timer_target(cx.waker());
        if this.is_elapsed() {
            // A virtual timer is gone once the clock reached its deadline; a real one may not be.
            if let Some(ClockTimer::Real(key)) = this.registration.take() {
                real_timer::remove(key);
            }
            return Poll::Ready(());
        }
        let (registration, target) = match (this.registration.take(), &this.bubble, target) {
            (Some(ClockTimer::Virtual(key)), Some(bubble), target) => {
                match bubble.refresh_timer(key, target) {
                    true => (Some(ClockTimer::Virtual(key)), None),
                    false => (None, None),
                }
            }
            (Some(ClockTimer::Real(key)), _, _) if real_timer::refresh(key, cx.waker()) => {
                (Some(ClockTimer::Real(key)), None)
            }
            (_, _, target) => (None, Some(target)),
        };
        this.registration = registration.or_else(|| {
            Some(match (&this.bubble, target) {
                (Some(bubble), Some(target)) => {
                    ClockTimer::Virtual(bubble.add_timer(bubble.offset_of(this.deadline.into_std()), target))
                }
                (Some(bubble), None) => {
                    let target = this.timer_target(cx.waker());
                    ClockTimer::Virtual(bubble.add_timer(bubble.offset_of(this.deadline.into_std()), target))
                }
                (None, _) => ClockTimer::Real(real_timer::add(this.deadline.into_std(), cx.waker().clone())),
            })
        });
        bubble::note_blocked_at(this.site, "time::sleep");
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).field("site", &self.site).finish()
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
