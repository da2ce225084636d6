//! `syscall`, for std's futex: a member's timed wait (`Condvar::wait_timeout`,
//! `thread::park_timeout`, `recv_timeout`, parking_lot's timed parks) becomes a durable virtual
//! timer, and a wake from any thread makes the waiting member count as running before it runs.
//!
//! std turns a timeout into an absolute `CLOCK_MONOTONIC` deadline read from `clock_gettime`,
//! so on a member it is virtual and the kernel cannot be asked to wait for it. Instead the
//! member registers in a table of waiters by futex address, checks the futex word (as the
//! kernel would, after registering, so a wake cannot slip between), and parks in the bubble
//! with a timer. `FUTEX_WAKE` and its relatives look the address up first: every registered
//! member there is woken through the bubble (a spurious wake for some, which every futex user
//! allows), then the kernel wakes its own waiters. A waker that bypasses libc's `syscall` is
//! caught by re-reading the word every few real milliseconds.
//!
//! Untimed waits stay real and count as running: the waker may be outside the bubble (Go's
//! rule for objects the bubble did not create), so they are only marked for the stall report.
//! The exception is a thread that a runtime of the bubble parks while it is idle (see
//! [`crate::time::runtime_parked`]): the runtime is an object of the bubble, so that wait is
//! durable, without a deadline.

use std::ffi::{c_int, c_long};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};
use std::time::Duration;

use super::raw::{self, SpinLock, syscall6};
use super::{clock, enter, mark_untimed_wait, member_bubble, runtime_parked, sleep};
use crate::time::bubble::{self, BubbleState, MemberId, StdProbe, StdWake};

/// libc's `syscall`, with a fixed arity: stable Rust cannot define a C-variadic function, and
/// on the x86_64 and AArch64 Linux ABIs the integer arguments of a variadic call sit where
/// these parameters are read (extra ones are unused stack or register contents).
///
/// # Safety
///
/// As libc's: the arguments must be valid for system call `number`.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn syscall(
    number: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let args = [a1, a2, a3, a4, a5, a6];
    let handled = match number {
        libc::SYS_futex => futex(args),
        libc::SYS_clock_gettime => clock::syscall_reading(a1, a2),
        libc::SYS_clock_nanosleep => sleep::syscall_clock_nanosleep(args),
        libc::SYS_nanosleep => sleep::syscall_nanosleep(args),
        _ => None,
    };
    // SAFETY: the caller's arguments, passed on to the kernel.
    raw::libc_result(handled.unwrap_or_else(|| unsafe { syscall6(number, args) }))
}

/// A futex call; `None` when it goes to the kernel as it is. Returns the kernel convention.
fn futex(args: [c_long; 6]) -> Option<c_long> {
    let op = args[1] as c_int;
    match op & libc::FUTEX_CMD_MASK {
        libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET => wait(args),
        libc::FUTEX_WAKE | libc::FUTEX_WAKE_BITSET | libc::FUTEX_REQUEUE | libc::FUTEX_CMP_REQUEUE => {
            Some(wake(args, &[args[0] as usize]))
        }
        libc::FUTEX_WAKE_OP => Some(wake(args, &[args[0] as usize, args[4] as usize])),
        _ => None,
    }
}

fn wait(args: [c_long; 6]) -> Option<c_long> {
    let bubble = member_bubble()?;
    let _busy = enter()?;
    let op = args[1] as c_int;
    let timeout = args[3] as *const libc::timespec;
    let address = args[0] as usize;
    let expected = args[2] as u32;
    if timeout.is_null() && runtime_parked() && !bubble.has_failed() {
        return Some(virtual_wait(address, expected, None));
    }
    if timeout.is_null() {
        mark_untimed_wait(true);
        // SAFETY: the caller's arguments, passed on to the kernel.
        let ret = unsafe { syscall6(libc::SYS_futex, args) };
        mark_untimed_wait(false);
        return Some(ret);
    }
    // SAFETY: a non-null timeout points to a timespec, as the caller's contract says.
    let Some(timeout) = raw::duration_of(unsafe { &*timeout }) else {
        return Some(-c_long::from(libc::EINVAL));
    };
    let deadline = match op & libc::FUTEX_CMD_MASK {
        libc::FUTEX_WAIT => bubble.elapsed().saturating_add(timeout),
        _ => {
            let clock_id = match op & libc::FUTEX_CLOCK_REALTIME {
                0 => libc::CLOCK_MONOTONIC,
                _ => libc::CLOCK_REALTIME,
            };
            timeout.saturating_sub(clock::origin(bubble, clock_id)?)
        }
    };
    if bubble.has_failed() {
        return Some(real_timed_wait(bubble, args, deadline));
    }
    Some(virtual_wait(address, expected, Some(deadline)))
}

/// A timed wait after the bubble failed: a few real milliseconds at most, after which the
/// clock has reached the deadline.
fn real_timed_wait(bubble: &BubbleState, args: [c_long; 6], deadline: Duration) -> c_long {
    let wait = raw::timespec_of(bubble.wait_after_failure(deadline));
    let private = (args[1] as c_int) & libc::FUTEX_PRIVATE_FLAG;
    let relative =
        [args[0], c_long::from(libc::FUTEX_WAIT | private), args[2], &wait as *const _ as c_long, 0, 0];
    // SAFETY: the caller's futex word, with a timespec that outlives the call.
    let ret = unsafe { syscall6(libc::SYS_futex, relative) };
    if ret == -c_long::from(libc::ETIMEDOUT) {
        bubble.jump_after_failure(deadline);
    }
    ret
}

/// A durable wait of the calling member on the futex word at `address`, until a wake or the
/// virtual `deadline`.
fn virtual_wait(address: usize, expected: u32, deadline: Option<Duration>) -> c_long {
    // SAFETY: the caller passed the address of a live, aligned futex word, as the kernel
    // requires; reading it atomically is what the kernel does too.
    let word = unsafe { &*(address as *const AtomicU32) };
    let Some(entry) = WAITERS.register(address) else { return -c_long::from(libc::ETIMEDOUT) };
    // Pairs with the fence in `wake`: either the waker sees this entry, or this load sees
    // the waker's store to the word.
    fence(Ordering::SeqCst);
    if word.load(Ordering::SeqCst) != expected {
        WAITERS.unregister(entry);
        return -c_long::from(libc::EAGAIN);
    }
    let op =
        if deadline.is_some() { "a std timed wait (std-time)" } else { "a runtime's idle park (std-time)" };
    let end = bubble::std_wait(op, deadline, StdProbe::Futex { address, expected }, None);
    WAITERS.unregister(entry);
    match end {
        StdWake::TimedOut => -c_long::from(libc::ETIMEDOUT),
        StdWake::Woken | StdWake::Failed | StdWake::NotMember => 0,
    }
}

fn wake(args: [c_long; 6], addresses: &[usize]) -> c_long {
    fence(Ordering::SeqCst);
    let woken = if WAITERS.count.load(Ordering::Relaxed) == 0 { 0 } else { WAITERS.wake(addresses) };
    // SAFETY: the caller's arguments, passed on to the kernel.
    let ret = unsafe { syscall6(libc::SYS_futex, args) };
    if ret < 0 { ret } else { ret + woken as c_long }
}

/// Members in a virtual timed wait, by futex address.
struct Waiters {
    /// How many entries there are: a wake with none costs one load.
    count: AtomicUsize,
    /// The entries and the next token.
    table: SpinLock<(Vec<Entry>, u64)>,
}

struct Entry {
    token: u64,
    address: usize,
    bubble: Arc<BubbleState>,
    member: MemberId,
}

static WAITERS: Waiters = Waiters { count: AtomicUsize::new(0), table: SpinLock::new((Vec::new(), 0)) };

impl Waiters {
    /// Registers the calling member as waiting on `address`; `None` if it is not a member.
    fn register(&self, address: usize) -> Option<u64> {
        let (bubble, member) = bubble::std_member()?;
        let token = self.table.with(|(entries, next)| {
            let token = *next;
            *next += 1;
            entries.push(Entry { token, address, bubble, member });
            token
        });
        self.count.fetch_add(1, Ordering::SeqCst);
        Some(token)
    }

    fn unregister(&self, token: u64) {
        let removed = self.table.with(|(entries, _)| {
            let position = entries.iter().position(|e| e.token == token)?;
            Some(entries.swap_remove(position))
        });
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes the members waiting on any of `addresses`; how many.
    fn wake(&self, addresses: &[usize]) -> usize {
        let woken: Vec<(Arc<BubbleState>, MemberId)> = self.table.with(|(entries, _)| {
            entries
                .iter()
                .filter(|e| addresses.contains(&e.address))
                .map(|e| (Arc::clone(&e.bubble), e.member))
                .collect()
        });
        for (bubble, member) in &woken {
            bubble.wake(*member);
        }
        woken.len()
    }
}
