//! The `std-time` layer: libc symbols defined by gonext, so that std — and every crate built
//! on it — runs on a bubble's virtual clock on member threads.
//!
//! std is linked statically into each binary and calls libc by name; a `#[no_mangle]`
//! definition in an rlib binds before libc's shared one. So gonext defines the clocks
//! ([`clock`]), the sleeps ([`sleep`]), `syscall` for std's futex waits ([`futex`]) and
//! `pthread_create`/`pthread_join` ([`thread`]). Each one first asks whether the calling
//! thread is a bubble member — a thread-local pointer set with the membership, const and
//! without a destructor so that it is readable from any libc call, during thread exit too —
//! and passes every other call on to libc's own definition (found with `dlsym(RTLD_NEXT)`)
//! or to the kernel.
//!
//! Rules every interposer keeps:
//!
//! - It never panics and never unwinds: its callers are `extern "C"` and would abort. When
//!   the bubble fails, a member blocked in an interposed call returns normally; each later
//!   sleep or timed wait of a member takes a few real milliseconds and moves the clock to its
//!   deadline, so the member soon finishes or reaches a gonext primitive, which unwinds.
//! - It never takes the bubble's lock where the thread may already hold it: clock reads are
//!   lock-free, untimed futex waits are only marked in an atomic, and gonext's own parking
//!   uses raw system calls that no interposer sees. A thread-local guard passes through the
//!   calls made while an interposer runs (std's mutex inside the bubble, for instance).

pub(crate) mod clock;
pub(crate) mod futex;
mod poll;
pub(crate) mod raw;
mod sleep;
pub(crate) mod thread;

use std::cell::Cell;
use std::sync::Arc;

pub(crate) use clock::StdClockBase;

use crate::time::bubble::{BubbleState, ThreadParker};

thread_local! {
    /// The bubble of the member running on this thread; null elsewhere.
    static MEMBER_BUBBLE: Cell<*const BubbleState> = const { Cell::new(std::ptr::null()) };
    /// The parker of this thread while it is a member.
    static MEMBER_PARKER: Cell<*const ThreadParker> = const { Cell::new(std::ptr::null()) };
    /// An interposer is running on this thread: the calls it makes go straight to libc.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// gonext is starting one of its own threads, which never joins a bubble by itself.
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
    /// A runtime of the bubble has parked this thread because it is idle: its untimed waits
    /// are durable (see `crate::time::runtime_parked`).
    static RUNTIME_PARKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as parked (or no longer) by an idle runtime of its bubble.
pub(crate) fn set_runtime_parked(parked: bool) {
    RUNTIME_PARKED.set(parked);
}

/// Whether a runtime of the bubble has parked the calling thread as idle.
fn runtime_parked() -> bool {
    RUNTIME_PARKED.get()
}

/// Makes the calling thread's libc calls virtual while it lives: installed with a membership.
pub(crate) struct MemberHook {
    previous: (*const BubbleState, *const ThreadParker),
    /// Keep what the thread-locals point to alive.
    _bubble: Arc<BubbleState>,
    _parker: Arc<ThreadParker>,
}

impl MemberHook {
    pub(crate) fn install(bubble: &Arc<BubbleState>) -> MemberHook {
        let parker = ThreadParker::current();
        let previous =
            (MEMBER_BUBBLE.replace(Arc::as_ptr(bubble)), MEMBER_PARKER.replace(Arc::as_ptr(&parker)));
        MemberHook { previous, _bubble: Arc::clone(bubble), _parker: parker }
    }
}

impl Drop for MemberHook {
    fn drop(&mut self) {
        MEMBER_BUBBLE.set(self.previous.0);
        MEMBER_PARKER.set(self.previous.1);
    }
}

/// The bubble whose clock this thread's libc calls read, if any.
#[inline]
fn member_bubble<'a>() -> Option<&'a BubbleState> {
    let bubble = MEMBER_BUBBLE.get();
    // SAFETY: a non-null pointer was set by a `MemberHook` of this thread, which holds an
    // `Arc` of the bubble until it is dropped, on this thread, outside any interposer call.
    let bubble = unsafe { bubble.as_ref() }?;
    (!bubble.std_released()).then_some(bubble)
}

/// Marks (or clears) this member thread as sitting in an untimed std wait.
fn mark_untimed_wait(waiting: bool) {
    // SAFETY: as in `member_bubble`, for the parker.
    if let Some(parker) = unsafe { MEMBER_PARKER.get().as_ref() } {
        parker.in_std_wait.store(waiting, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Marks the calling thread as inside an interposer until the guard drops; `None` if it
/// already is, in which case the call must go straight to libc.
fn enter() -> Option<Busy> {
    (!BUSY.replace(true)).then_some(Busy)
}

struct Busy;

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.set(false);
    }
}

/// Runs `f` (which starts one of gonext's own threads) so that the new thread is not adopted
/// into the caller's bubble.
pub(crate) fn exempt<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXEMPT.set(self.0);
        }
    }
    let _restore = Restore(EXEMPT.replace(true));
    f()
}

/// The `std::time::Instant` of the bubble's start, as std will read it on member threads.
pub(crate) fn start_instant(bubble: &BubbleState) -> std::time::Instant {
    let previous = MEMBER_BUBBLE.replace(bubble);
    let start = std::time::Instant::now();
    MEMBER_BUBBLE.set(previous);
    start
}
