//! `Instant` and `SystemTime`: std's clocks, read from the bubble's virtual clock inside one.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::Duration;

use super::bubble;

/// A monotonic instant, like [`std::time::Instant`], that reads the virtual clock inside a
/// bubble.
///
/// Outside a bubble, [`now`](Self::now) is `std::time::Instant::now()` after one
/// thread-local read. Inside, it is the bubble's start plus the virtual time elapsed, so
/// `elapsed()` measures virtual time:
///
/// ```
/// use gonext::time::{self, Instant};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let start = Instant::now();
///     gonext::thread::sleep(Duration::from_secs(3600));
///     assert_eq!(start.elapsed(), Duration::from_secs(3600)); // instantly, in real time
/// });
/// ```
///
/// # Differences from Go
///
/// Go's `time.Now()` carries both a wall and a monotonic reading; Rust separates them, and so
/// does gonext: [`Instant`] for durations, [`SystemTime`] for the calendar.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(std::time::Instant);

impl Instant {
    /// The current instant: virtual inside a bubble, real outside.
    #[inline]
    pub fn now() -> Instant {
        Instant(bubble::with_current(|c| match c {
            Some(c) => c.bubble.now_instant(),
            None => std::time::Instant::now(),
        }))
    }

    /// The time elapsed since `self`, on the clock of the caller.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// The time from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.0.checked_duration_since(earlier.0)
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// `self + duration`, or `None` on overflow.
    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_add(duration).map(Instant)
    }

    /// `self - duration`, or `None` on underflow.
    pub fn checked_sub(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_sub(duration).map(Instant)
    }

    /// The std instant this one stands for.
    pub fn into_std(self) -> std::time::Instant {
        self.0
    }
}

impl From<std::time::Instant> for Instant {
    fn from(instant: std::time::Instant) -> Self {
        Instant(instant)
    }
}

impl From<Instant> for std::time::Instant {
    fn from(instant: Instant) -> Self {
        instant.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0 - rhs)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 -= rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A calendar time, like [`std::time::SystemTime`], that reads the virtual clock inside a
/// bubble. A bubble's clock starts at 2000-01-01T00:00:00Z unless
/// [`Bubble::start`](super::Bubble::start) says otherwise.
///
/// ```
/// use gonext::time::{self, SystemTime};
///
/// time::bubble(|| {
///     let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
///     assert_eq!(since_epoch.as_secs(), 946_684_800); // 2000-01-01T00:00:00Z
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemTime(std::time::SystemTime);

impl SystemTime {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: SystemTime = SystemTime(std::time::SystemTime::UNIX_EPOCH);

    /// The current time: virtual inside a bubble, real outside.
    pub fn now() -> SystemTime {
        SystemTime(bubble::with_current(|c| match c {
            Some(c) => std::time::SystemTime::UNIX_EPOCH + c.bubble.now_since_epoch(),
            None => std::time::SystemTime::now(),
        }))
    }

    /// The time from `earlier` to `self`; `Err` holds how far `earlier` is ahead.
    pub fn duration_since(&self, earlier: SystemTime) -> Result<Duration, std::time::SystemTimeError> {
        self.0.duration_since(earlier.0)
    }

    /// The time elapsed since `self` on the caller's clock.
    pub fn elapsed(&self) -> Result<Duration, std::time::SystemTimeError> {
        SystemTime::now().duration_since(*self)
    }

    /// `self + duration`, or `None` on overflow.
    pub fn checked_add(&self, duration: Duration) -> Option<SystemTime> {
        self.0.checked_add(duration).map(SystemTime)
    }

    /// `self - duration`, or `None` on underflow.
    pub fn checked_sub(&self, duration: Duration) -> Option<SystemTime> {
        self.0.checked_sub(duration).map(SystemTime)
    }

    /// The std time this one stands for.
    pub fn into_std(self) -> std::time::SystemTime {
        self.0
    }
}

impl From<std::time::SystemTime> for SystemTime {
    fn from(time: std::time::SystemTime) -> Self {
        SystemTime(time)
    }
}

impl From<SystemTime> for std::time::SystemTime {
    fn from(time: SystemTime) -> Self {
        time.0
    }
}

impl Add<Duration> for SystemTime {
    type Output = SystemTime;

    fn add(self, rhs: Duration) -> SystemTime {
        SystemTime(self.0 + rhs)
    }
}

impl Sub<Duration> for SystemTime {
    type Output = SystemTime;

    fn sub(self, rhs: Duration) -> SystemTime {
        SystemTime(self.0 - rhs)
    }
}

impl fmt::Debug for SystemTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
