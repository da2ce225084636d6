//! Sleeps: `clock_nanosleep` (std's `thread::sleep`), `nanosleep`, `usleep` and `sleep`
//! durably block a member on the virtual clock until the deadline.
//!
//! They return success with nothing remaining, never `EINTR`. After the bubble failed, a sleep
//! in progress ends at once, and later ones take a few real milliseconds each.

use std::ffi::{c_int, c_long, c_uint};
use std::time::Duration;

use super::raw::{self, RealFn};
use super::{clock, enter, member_bubble};
use crate::time::bubble::{self, StdWake};

/// What a member's sleep came to: `None` when the real call applies.
fn member_sleep(clock_id: libc::clockid_t, absolute: bool, request: *const libc::timespec) -> Option<c_int> {
    let bubble = member_bubble()?;
    let origin = clock::origin(bubble, clock_id)?;
    let _busy = enter()?;
    if request.is_null() {
        return Some(libc::EFAULT);
    }
    // SAFETY: a non-null request points to a timespec, as the caller's contract says.
    let Some(request) = raw::duration_of(unsafe { &*request }) else { return Some(libc::EINVAL) };
    let deadline =
        if absolute { request.saturating_sub(origin) } else { bubble.elapsed().saturating_add(request) };
    if bubble.has_failed() {
        real_sleep(bubble.wait_after_failure(deadline));
        bubble.jump_after_failure(deadline);
        return Some(0);
    }
    match bubble::std_sleep_until(deadline) {
        StdWake::NotMember => None,
        StdWake::Failed => {
            bubble.jump_after_failure(deadline);
            Some(0)
        }
        StdWake::Woken | StdWake::TimedOut => Some(0),
    }
}

/// A relative sleep on the real monotonic clock; an error number or 0.
pub(super) fn real_sleep(duration: Duration) -> c_int {
    let request = raw::timespec_of(duration);
    // SAFETY: `request` outlives the call; no remainder is asked for.
    unsafe { real_clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &request, std::ptr::null_mut()) }
}

/// libc's `clock_nanosleep`.
///
/// # Safety
///
/// As libc's.
unsafe fn real_clock_nanosleep(
    clock_id: libc::clockid_t,
    flags: c_int,
    request: *const libc::timespec,
    remain: *mut libc::timespec,
) -> c_int {
    type ClockNanosleep =
        unsafe extern "C" fn(libc::clockid_t, c_int, *const libc::timespec, *mut libc::timespec) -> c_int;
    // SAFETY: the type of libc's `clock_nanosleep`.
    static REAL: RealFn<ClockNanosleep> = unsafe { RealFn::new(c"clock_nanosleep") };
    match REAL.get(clock_nanosleep as *const () as usize) {
        // SAFETY: the caller's arguments, passed on.
        Some(real) => unsafe { real(clock_id, flags, request, remain) },
        // SAFETY: as above, through the kernel, which returns the error negated.
        None => unsafe {
            -raw::syscall6(
                libc::SYS_clock_nanosleep,
                [clock_id as c_long, flags as c_long, request as c_long, remain as c_long, 0, 0],
            ) as c_int
        },
    }
}

/// std's `thread::sleep` (and `sleep_until`).
///
/// # Safety
///
/// As libc's: `request` must point to a timespec, `remain` be null or valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn clock_nanosleep(
    clock_id: libc::clockid_t,
    flags: c_int,
    request: *const libc::timespec,
    remain: *mut libc::timespec,
) -> c_int {
    match member_sleep(clock_id, flags & libc::TIMER_ABSTIME != 0, request) {
        Some(code) => code,
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { real_clock_nanosleep(clock_id, flags, request, remain) },
    }
}

/// The POSIX relative sleep.
///
/// # Safety
///
/// As libc's: `request` must point to a timespec, `remain` be null or valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn nanosleep(
    request: *const libc::timespec,
    remain: *mut libc::timespec,
) -> c_int {
    let code = match member_sleep(libc::CLOCK_MONOTONIC, false, request) {
        Some(code) => code,
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { real_clock_nanosleep(libc::CLOCK_REALTIME, 0, request, remain) },
    };
    if code == 0 {
        return 0;
    }
    raw::set_errno(code);
    -1
}

/// Sleeps `micros` microseconds.
///
/// # Safety
///
/// None beyond libc's: it takes no pointers.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn usleep(micros: libc::useconds_t) -> c_int {
    let request = raw::timespec_of(Duration::from_micros(u64::from(micros)));
    // SAFETY: `request` outlives the call.
    unsafe { nanosleep(&request, std::ptr::null_mut()) }
}

/// Sleeps `secs` seconds; returns the seconds left (always 0: sleeps are not interrupted).
///
/// # Safety
///
/// None beyond libc's: it takes no pointers.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    let request = raw::timespec_of(Duration::from_secs(u64::from(secs)));
    let mut remain = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: both timespecs outlive the call.
    if unsafe { nanosleep(&request, &mut remain) } == 0 {
        return 0;
    }
    c_uint::try_from(remain.tv_sec).unwrap_or(0)
}

/// `syscall(SYS_clock_nanosleep, …)` made by a member; `None` when the real call applies.
pub(super) fn syscall_clock_nanosleep(args: [c_long; 6]) -> Option<c_long> {
    let clock_id = libc::clockid_t::try_from(args[0]).ok()?;
    let absolute = (args[1] as c_int) & libc::TIMER_ABSTIME != 0;
    member_sleep(clock_id, absolute, args[2] as *const libc::timespec).map(|code| -c_long::from(code))
}

/// `syscall(SYS_nanosleep, …)` made by a member; `None` when the real call applies.
pub(super) fn syscall_nanosleep(args: [c_long; 6]) -> Option<c_long> {
    member_sleep(libc::CLOCK_MONOTONIC, false, args[0] as *const libc::timespec)
        .map(|code| -c_long::from(code))
}
