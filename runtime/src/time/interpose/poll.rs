//! The readiness waits: `epoll_wait`, `epoll_pwait`, `epoll_pwait2`, `poll`, `ppoll`, `select`
//! and `pselect` — where an I/O runtime (mio, hence tokio) parks.
//!
//! For a member, a wait with a finite timeout that finds nothing ready is a durable virtual
//! timer: the member parks in its bubble, and the call returns when a descriptor becomes ready
//! or the virtual clock reaches the timeout. Readiness that nobody announces to the bubble (a
//! socket that received bytes, mio's `eventfd` waker written by another thread) is caught by
//! polling the descriptors without waiting: by the member every few real milliseconds, and by
//! the bubble before it moves its clock, so a virtual timeout never fires while a descriptor is
//! ready. A wait without a timeout stays real and counts as running (a peer outside the bubble
//! may answer it, as Go's rule for network I/O says), unless a runtime of the bubble has parked
//! the thread as idle: then it is durable too.
//!
//! A member woken without a ready descriptor returns 0 before its timeout, as after a
//! spurious wake-up: the bubble wakes the member whose thread ran a waker that may have queued
//! work for it (tokio's current-thread scheduler queues a task woken on its own thread and
//! looks at the queue when the poll returns). Event loops recompute their timeout and wait
//! again. Signal masks are applied to the real polls only; a virtual wait is not interrupted by
//! signals. `select` updates its timeout to the virtual time left, as Linux does with the real
//! one.

use std::ffi::{c_int, c_long};
use std::time::Duration;

use super::raw::{self, RealFn, syscall6};
use super::{enter, mark_untimed_wait, member_bubble, runtime_parked, sleep};
use crate::time::bubble::{self, BubbleState, StdProbe, StdWake};

/// A member's readiness wait for at most `timeout` (`None`: no limit) on the descriptors of
/// `probe`; `poll_now` is the real call without waiting, `real` the call as the caller made it.
/// Returns libc's result, as the caller's function does. `timed_out` is what a virtual timeout
/// returns: 0 for the epoll family, whose events are only written when there are some, and
/// `poll_now` for the others, which clear their results.
fn readiness_wait(
    op: &'static str,
    timeout: Option<Duration>,
    probe: impl FnOnce() -> StdProbe,
    mut poll_now: impl FnMut() -> c_int,
    real: impl FnOnce() -> c_int,
    timed_out: TimedOut,
) -> c_int {
    let Some(bubble) = member_bubble() else { return real() };
    if timeout == Some(Duration::ZERO) {
        return real();
    }
    if timeout.is_none() && !runtime_parked() {
        mark_untimed_wait(true);
        let ret = real();
        mark_untimed_wait(false);
        return ret;
    }
    let Some(_busy) = enter() else { return real() };
    let deadline = timeout.map(|timeout| bubble.elapsed().saturating_add(timeout));
    if bubble.has_failed() {
        return after_failure(bubble, deadline, poll_now);
    }
    let mut ready = 0;
    let end = bubble::std_wait(
        op,
        deadline,
        probe(),
        Some(&mut || {
            ready = poll_now();
            ready != 0
        }),
    );
    match end {
        StdWake::Woken if ready != 0 => ready,
        StdWake::TimedOut if timed_out == TimedOut::Zero => 0,
        StdWake::Woken | StdWake::TimedOut | StdWake::Failed => poll_now(),
        StdWake::NotMember => real(),
    }
}

/// What a readiness wait returns when its virtual timeout passes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimedOut {
    /// 0, without looking: the caller's buffers hold nothing to clear.
    Zero,
    /// A poll without waiting, which fills in (or clears) the caller's results.
    PollNow,
}

/// A readiness wait after the bubble failed: a few real milliseconds at most, after which the
/// clock has reached the deadline.
fn after_failure(
    bubble: &BubbleState,
    deadline: Option<Duration>,
    mut poll_now: impl FnMut() -> c_int,
) -> c_int {
    let wait =
        deadline.map_or(BubbleState::AFTER_FAILURE_WAIT, |deadline| bubble.wait_after_failure(deadline));
    sleep::real_sleep(wait);
    if let Some(deadline) = deadline {
        bubble.jump_after_failure(deadline);
    }
    poll_now()
}

/// A timeout in milliseconds as `poll` and `epoll_wait` take it: negative means none.
fn millis(timeout: c_int) -> Option<Duration> {
    u64::try_from(timeout).ok().map(Duration::from_millis)
}

/// A timeout as `ppoll`, `epoll_pwait2` and `pselect` take it: null means none. An invalid one
/// is left to the real call, which reports it.
fn timespec(timeout: *const libc::timespec) -> Result<Option<Duration>, ()> {
    if timeout.is_null() {
        return Ok(None);
    }
    // SAFETY: a non-null timeout points to a timespec, as the caller's contract says.
    raw::duration_of(unsafe { &*timeout }).map(Some).ok_or(())
}

/// An epoll instance is readable while it has events to report.
fn epoll_probe(epfd: c_int) -> StdProbe {
    StdProbe::Fd(libc::pollfd { fd: epfd, events: libc::POLLIN, revents: 0 })
}

/// A copy of `fds` with the results cleared, to poll from another thread.
///
/// # Safety
///
/// `fds` must be valid for reads of `nfds` entries.
unsafe fn pollfd_probe(fds: *const libc::pollfd, nfds: libc::nfds_t) -> StdProbe {
    if fds.is_null() {
        return StdProbe::Fds(Vec::new());
    }
    // SAFETY: as the caller guarantees.
    let fds = unsafe { std::slice::from_raw_parts(fds, nfds as usize) };
    StdProbe::Fds(fds.iter().map(|fd| libc::pollfd { revents: 0, ..*fd }).collect())
}

/// `epoll_wait`, mio's (and so tokio's) park.
///
/// # Safety
///
/// As libc's: `events` must be valid for writes of `maxevents` entries.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    readiness_wait(
        "epoll_wait (std-time)",
        millis(timeout),
        || epoll_probe(epfd),
        || {
            // SAFETY: the caller's arguments, with a zero timeout.
            unsafe { real_epoll_pwait(epfd, events, maxevents, 0, std::ptr::null()) }
        },
        || {
            // SAFETY: the caller's arguments, passed on.
            unsafe { real_epoll_pwait(epfd, events, maxevents, timeout, std::ptr::null()) }
        },
        TimedOut::Zero,
    )
}

/// `epoll_pwait`: `epoll_wait` with a signal mask.
///
/// # Safety
///
/// As libc's: `events` must be valid for writes of `maxevents` entries, `sigmask` null or
/// valid.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
) -> c_int {
    readiness_wait(
        "epoll_pwait (std-time)",
        millis(timeout),
        || epoll_probe(epfd),
        || {
            // SAFETY: the caller's arguments, with a zero timeout.
            unsafe { real_epoll_pwait(epfd, events, maxevents, 0, sigmask) }
        },
        || {
            // SAFETY: the caller's arguments, passed on.
            unsafe { real_epoll_pwait(epfd, events, maxevents, timeout, sigmask) }
        },
        TimedOut::Zero,
    )
}

/// `epoll_pwait2`: `epoll_pwait` with a nanosecond timeout.
///
/// # Safety
///
/// As libc's: `events` must be valid for writes of `maxevents` entries, `timeout` and
/// `sigmask` null or valid.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let real = || {
        // SAFETY: the caller's arguments, passed on.
        unsafe { real_epoll_pwait2(epfd, events, maxevents, timeout, sigmask) }
    };
    let Ok(duration) = timespec(timeout) else { return real() };
    readiness_wait(
        "epoll_pwait2 (std-time)",
        duration,
        || epoll_probe(epfd),
        || {
            // SAFETY: the caller's arguments, with a zero timeout.
            unsafe { real_epoll_pwait2(epfd, events, maxevents, &zero, sigmask) }
        },
        real,
        TimedOut::Zero,
    )
}

/// `poll`.
///
/// # Safety
///
/// As libc's: `fds` must be valid for reads and writes of `nfds` entries.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    readiness_wait(
        "poll (std-time)",
        millis(timeout),
        || {
            // SAFETY: the caller's `fds`, valid for `nfds` entries while the call lasts.
            unsafe { pollfd_probe(fds, nfds) }
        },
        || {
            // SAFETY: the caller's arguments, with a zero timeout.
            unsafe { real_ppoll(fds, nfds, &zero, std::ptr::null()) }
        },
        || {
            // SAFETY: the caller's arguments, passed on.
            unsafe { real_poll(fds, nfds, timeout) }
        },
        TimedOut::PollNow,
    )
}

/// `ppoll`: `poll` with a nanosecond timeout and a signal mask.
///
/// # Safety
///
/// As libc's: `fds` must be valid for reads and writes of `nfds` entries, `timeout` and
/// `sigmask` null or valid.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let real = || {
        // SAFETY: the caller's arguments, passed on.
        unsafe { real_ppoll(fds, nfds, timeout, sigmask) }
    };
    let Ok(duration) = timespec(timeout) else { return real() };
    readiness_wait(
        "ppoll (std-time)",
        duration,
        || {
            // SAFETY: the caller's `fds`, valid for `nfds` entries while the call lasts.
            unsafe { pollfd_probe(fds, nfds) }
        },
        || {
            // SAFETY: the caller's arguments, with a zero timeout.
            unsafe { real_ppoll(fds, nfds, &zero, sigmask) }
        },
        real,
        TimedOut::PollNow,
    )
}

/// The three descriptor sets of a `select`, kept so that each poll without waiting starts from
/// the caller's sets (the real call overwrites them with its result).
struct SelectSets {
    sets: [*mut libc::fd_set; 3],
    saved: [Option<libc::fd_set>; 3],
}

impl SelectSets {
    /// # Safety
    ///
    /// Each set must be null or valid for reads and writes.
    unsafe fn new(sets: [*mut libc::fd_set; 3]) -> SelectSets {
        // SAFETY: as the caller guarantees.
        let saved = sets.map(|set| unsafe { set.as_ref() }.copied());
        SelectSets { sets, saved }
    }

    fn restore(&self) {
        for (set, saved) in self.sets.iter().zip(&self.saved) {
            if let Some(saved) = saved {
                // SAFETY: a set that was saved is valid for writes (see `new`).
                unsafe { **set = *saved };
            }
        }
    }

    /// The descriptors below `nfds` in the sets, as `poll` entries.
    fn probe(&self, nfds: c_int) -> StdProbe {
        let events = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI];
        let limit = nfds.clamp(0, libc::FD_SETSIZE as c_int);
        let fds = (0..limit)
            .filter_map(|fd| {
                let mut wanted = 0;
                for (saved, event) in self.saved.iter().zip(events) {
                    // SAFETY: `fd` is below FD_SETSIZE, and the set is a valid copy.
                    if saved.as_ref().is_some_and(|set| unsafe { libc::FD_ISSET(fd, set) }) {
                        wanted |= event;
                    }
                }
                (wanted != 0).then_some(libc::pollfd { fd, events: wanted, revents: 0 })
            })
            .collect();
        StdProbe::Fds(fds)
    }
}

/// `select`. On return the timeout holds the virtual time left, as Linux's does.
///
/// # Safety
///
/// As libc's: each set null or valid for reads and writes, `timeout` null or valid.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    let real = || {
        // SAFETY: the caller's arguments, passed on.
        unsafe { real_select(nfds, readfds, writefds, exceptfds, timeout) }
    };
    // SAFETY: a non-null timeout points to a timeval, as the caller's contract says.
    let duration = match unsafe { timeout.as_ref() } {
        None => None,
        Some(tv) => match (u64::try_from(tv.tv_sec), u32::try_from(tv.tv_usec)) {
            (Ok(secs), Ok(micros)) if micros < 1_000_000 => Some(Duration::new(secs, micros * 1000)),
            _ => return real(),
        },
    };
    // SAFETY: the caller's sets.
    let sets = unsafe { SelectSets::new([readfds, writefds, exceptfds]) };
    let start = member_bubble().map(BubbleState::elapsed);
    let ret = readiness_wait(
        "select (std-time)",
        duration,
        || sets.probe(nfds),
        || {
            sets.restore();
            let mut zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
            // SAFETY: the caller's sets, with a zero timeout.
            unsafe { real_select(nfds, readfds, writefds, exceptfds, &mut zero) }
        },
        real,
        TimedOut::PollNow,
    );
    // SAFETY: a non-null timeout points to a timeval the caller lets `select` write.
    let timeval = unsafe { timeout.as_mut() };
    if let (Some(bubble), Some(start), Some(duration), Some(tv)) = (member_bubble(), start, duration, timeval)
    {
        let left = duration.saturating_sub(bubble.elapsed().saturating_sub(start));
        *tv = libc::timeval {
            tv_sec: left.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(left.subsec_micros() as i32),
        };
    }
    ret
}

/// `pselect`: `select` with a nanosecond timeout (left as it is) and a signal mask.
///
/// # Safety
///
/// As libc's: each set null or valid for reads and writes, `timeout` and `sigmask` null or
/// valid.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let real = || {
        // SAFETY: the caller's arguments, passed on.
        unsafe { real_pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask) }
    };
    let Ok(duration) = timespec(timeout) else { return real() };
    // SAFETY: the caller's sets.
    let sets = unsafe { SelectSets::new([readfds, writefds, exceptfds]) };
    readiness_wait(
        "pselect (std-time)",
        duration,
        || sets.probe(nfds),
        || {
            sets.restore();
            // SAFETY: the caller's sets and mask, with a zero timeout.
            unsafe { real_pselect(nfds, readfds, writefds, exceptfds, &zero, sigmask) }
        },
        real,
        TimedOut::PollNow,
    )
}

/// libc has no such function (and the fallback is the system call): `ENOSYS`.
fn missing() -> c_int {
    raw::set_errno(libc::ENOSYS);
    -1
}

/// Declares `$real`, which calls libc's function `$name` (found past gonext's interposer of
/// that name, whose signature it shares), or fails with `ENOSYS` where libc has none.
macro_rules! real_libc_fn {
    ($(#[$doc:meta])* fn $real:ident = $name:ident($($arg:ident: $ty:ty),* $(,)?);) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// As libc's.
        unsafe fn $real($($arg: $ty),*) -> c_int {
            // SAFETY: the type of libc's function, which gonext's interposer of the same name
            // shares.
            static REAL: RealFn<unsafe extern "C" fn($($ty),*) -> c_int> = unsafe {
                RealFn::new(match std::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                    Ok(name) => name,
                    Err(_) => panic!("a C function name"),
                })
            };
            match REAL.get($name as *const () as usize) {
                // SAFETY: the caller's arguments.
                Some(real) => unsafe { real($($arg),*) },
                None => missing(),
            }
        }
    };
}

real_libc_fn! {
    /// libc's `epoll_pwait`, which `epoll_wait` is with no signal mask.
    fn real_epoll_pwait = epoll_pwait(
        epfd: c_int,
        events: *mut libc::epoll_event,
        maxevents: c_int,
        timeout: c_int,
        sigmask: *const libc::sigset_t,
    );
}

real_libc_fn! {
    /// libc's `poll`.
    fn real_poll = poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int);
}

real_libc_fn! {
    /// libc's `ppoll`.
    fn real_ppoll = ppoll(
        fds: *mut libc::pollfd,
        nfds: libc::nfds_t,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
    );
}

real_libc_fn! {
    /// libc's `select`.
    fn real_select = select(
        nfds: c_int,
        readfds: *mut libc::fd_set,
        writefds: *mut libc::fd_set,
        exceptfds: *mut libc::fd_set,
        timeout: *mut libc::timeval,
    );
}

real_libc_fn! {
    /// libc's `pselect`.
    fn real_pselect = pselect(
        nfds: c_int,
        readfds: *mut libc::fd_set,
        writefds: *mut libc::fd_set,
        exceptfds: *mut libc::fd_set,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
    );
}

/// libc's `epoll_pwait2`, or the system call where libc predates it (glibc < 2.35).
///
/// # Safety
///
/// As libc's.
unsafe fn real_epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    type EpollPwait2 = unsafe extern "C" fn(
        c_int,
        *mut libc::epoll_event,
        c_int,
        *const libc::timespec,
        *const libc::sigset_t,
    ) -> c_int;
    // SAFETY: the type of libc's `epoll_pwait2`.
    static REAL: RealFn<EpollPwait2> = unsafe { RealFn::new(c"epoll_pwait2") };
    match REAL.get(epoll_pwait2 as *const () as usize) {
        // SAFETY: the caller's arguments.
        Some(real) => unsafe { real(epfd, events, maxevents, timeout, sigmask) },
        // SAFETY: the caller's arguments; the kernel wants the size of the signal mask.
        None => unsafe {
            raw::libc_result(syscall6(
                libc::SYS_epoll_pwait2,
                [
                    c_long::from(epfd),
                    events as c_long,
                    c_long::from(maxevents),
                    timeout as c_long,
                    sigmask as c_long,
                    8,
                ],
            )) as c_int
        },
    }
}
