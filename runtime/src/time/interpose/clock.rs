//! Clocks: `clock_gettime`, `gettimeofday` and `time` read the bubble's virtual clock on
//! member threads.
//!
//! Every virtual clock is its real origin, captured when the bubble was created, plus the
//! bubble's elapsed virtual time; the realtime clocks start at the bubble's configured start
//! instead. CPU-time clocks and dynamic clocks stay real.

use std::ffi::{c_int, c_long, c_void};
use std::time::Duration;

use super::member_bubble;
use super::raw::{self, RealFn};
use crate::time::bubble::BubbleState;

/// The real readings a bubble's std clocks start from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StdClockBase {
    monotonic: Duration,
    boottime: Duration,
    /// How far `CLOCK_TAI` is ahead of `CLOCK_REALTIME` (the leap seconds, if the kernel knows).
    tai_ahead: Duration,
}

impl StdClockBase {
    /// Reads the real clocks now.
    pub(crate) fn capture() -> StdClockBase {
        let realtime = raw::real_clock(libc::CLOCK_REALTIME);
        StdClockBase {
            monotonic: raw::real_clock(libc::CLOCK_MONOTONIC),
            boottime: raw::real_clock(libc::CLOCK_BOOTTIME),
            tai_ahead: raw::real_clock(libc::CLOCK_TAI).saturating_sub(realtime),
        }
    }
}

/// The reading of `clock` at the bubble's start, for the clocks a bubble makes virtual.
pub(crate) fn origin(bubble: &BubbleState, clock: libc::clockid_t) -> Option<Duration> {
    let base = bubble.std_clock_base();
    match clock {
        libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_RAW | libc::CLOCK_MONOTONIC_COARSE => {
            Some(base.monotonic)
        }
        libc::CLOCK_BOOTTIME | libc::CLOCK_BOOTTIME_ALARM => Some(base.boottime),
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_REALTIME_ALARM => {
            Some(bubble.start_since_epoch())
        }
        libc::CLOCK_TAI => Some(bubble.start_since_epoch() + base.tai_ahead),
        _ => None,
    }
}

/// The virtual reading of `clock` on a member thread, if the clock is virtual there.
#[inline]
fn member_reading(clock: libc::clockid_t) -> Option<Duration> {
    let bubble = member_bubble()?;
    Some(origin(bubble, clock)? + bubble.elapsed())
}

/// std's `Instant::now` and `SystemTime::now`.
///
/// # Safety
///
/// As libc's: `tp` must be valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn clock_gettime(clock: libc::clockid_t, tp: *mut libc::timespec) -> c_int {
    match member_reading(clock) {
        Some(now) if !tp.is_null() => {
            // SAFETY: the caller passes a `tp` valid for writes.
            unsafe { tp.write(raw::timespec_of(now)) };
            0
        }
        // SAFETY: the caller's arguments, passed on.
        _ => unsafe { raw::real_clock_gettime(clock, tp) },
    }
}

/// The realtime clock in microseconds, for C code and older crates.
///
/// # Safety
///
/// As libc's: `tv` and `tz` must each be null or valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn gettimeofday(tv: *mut libc::timeval, tz: *mut c_void) -> c_int {
    type Gettimeofday = unsafe extern "C" fn(*mut libc::timeval, *mut c_void) -> c_int;
    // SAFETY: the type of libc's `gettimeofday`.
    static REAL: RealFn<Gettimeofday> = unsafe { RealFn::new(c"gettimeofday") };
    if let Some(now) = member_reading(libc::CLOCK_REALTIME)
        && !tv.is_null()
        && tz.is_null()
    {
        let timeval = libc::timeval {
            tv_sec: libc::time_t::try_from(now.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(now.subsec_micros()),
        };
        // SAFETY: the caller passes a `tv` valid for writes.
        unsafe { tv.write(timeval) };
        return 0;
    }
    match REAL.get(gettimeofday as *const () as usize) {
        // SAFETY: the caller's arguments, passed on.
        Some(real) => unsafe { real(tv, tz) },
        // SAFETY: as above, through the kernel.
        None => unsafe {
            raw::libc_result(raw::syscall6(libc::SYS_gettimeofday, [tv as c_long, tz as c_long, 0, 0, 0, 0]))
                as c_int
        },
    }
}

/// The realtime clock in seconds.
///
/// # Safety
///
/// As libc's: `t` must be null or valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn time(t: *mut libc::time_t) -> libc::time_t {
    let now = match member_reading(libc::CLOCK_REALTIME) {
        Some(now) => libc::time_t::try_from(now.as_secs()).unwrap_or(libc::time_t::MAX),
        None => libc::time_t::try_from(raw::real_clock(libc::CLOCK_REALTIME).as_secs())
            .unwrap_or(libc::time_t::MAX),
    };
    if !t.is_null() {
        // SAFETY: the caller passes a `t` valid for writes.
        unsafe { t.write(now) };
    }
    now
}

/// Reads `clock` for a `syscall(SYS_clock_gettime, …)` made by a member; `None` when the
/// real call applies.
pub(super) fn syscall_reading(clock: c_long, tp: c_long) -> Option<c_long> {
    let now = member_reading(libc::clockid_t::try_from(clock).ok()?)?;
    let tp = tp as *mut libc::timespec;
    if tp.is_null() {
        return None;
    }
    // SAFETY: the caller of `syscall` passes a `tp` valid for writes.
    unsafe { tp.write(raw::timespec_of(now)) };
    Some(0)
}
