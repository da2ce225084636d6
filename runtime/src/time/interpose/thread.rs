//! Threads: a thread a member starts with `pthread_create` (std's `thread::spawn`, and every
//! pool built on it) becomes a member, as a goroutine started in a bubble belongs to it; a
//! member's `pthread_join` of it is a durable block, since only the bubble can end it.
//!
//! gonext's own threads are started [`exempt`](super::exempt) and join no bubble this way.
//! Adoption can be turned off per bubble (`Bubble::adopt_std_threads(false)`).

use std::ffi::{c_int, c_void};
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use super::raw::{RealFn, SpinLock};
use super::{BUSY, EXEMPT, enter, member_bubble};
use crate::time::bubble::{self, BubbleState, MemberId};

type StartRoutine = extern "C" fn(*mut c_void) -> *mut c_void;

/// What the adopted thread starts with.
struct Start {
    routine: StartRoutine,
    arg: *mut c_void,
    bubble: Arc<BubbleState>,
    member: MemberId,
    exit: Arc<Exit>,
}

/// Whether an adopted thread has left its bubble, and who waits to join it.
#[derive(Default)]
struct Exit {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Exit {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Option<Waker>)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn finish(&self) {
        let joiner = {
            let mut state = self.lock();
            state.0 = true;
            state.1.take()
        };
        if let Some(joiner) = joiner {
            joiner.wake();
        }
    }

    /// Whether the thread left its bubble; if not, `waker` is woken when it does.
    fn done_or_register(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if !state.0 {
            state.1 = Some(waker.clone());
        }
        state.0
    }
}

/// Adopted threads not yet joined or detached: their handle, bubble and exit.
struct Adopted {
    thread: libc::pthread_t,
    bubble: *const BubbleState,
    exit: Arc<Exit>,
}

// SAFETY: `bubble` is only compared, never dereferenced.
unsafe impl Send for Adopted {}

static ADOPTED: SpinLock<Vec<Adopted>> = SpinLock::new(Vec::new());

fn take_adopted(thread: libc::pthread_t) -> Option<Adopted> {
    ADOPTED.with(|adopted| {
        let position = adopted.iter().position(|a| a.thread == thread)?;
        Some(adopted.swap_remove(position))
    })
}

type Create = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut c_void,
) -> c_int;
type Join = unsafe extern "C" fn(libc::pthread_t, *mut *mut c_void) -> c_int;
type Detach = unsafe extern "C" fn(libc::pthread_t) -> c_int;

// SAFETY: the types of libc's `pthread_create`, `pthread_join` and `pthread_detach`.
static REAL_CREATE: RealFn<Create> = unsafe { RealFn::new(c"pthread_create") };
// SAFETY: see above.
static REAL_JOIN: RealFn<Join> = unsafe { RealFn::new(c"pthread_join") };
// SAFETY: see above.
static REAL_DETACH: RealFn<Detach> = unsafe { RealFn::new(c"pthread_detach") };

/// Starts a thread; from a member, the thread joins the member's bubble.
///
/// # Safety
///
/// As libc's.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    let Some(real) = REAL_CREATE.get(pthread_create as *const () as usize) else { return libc::EAGAIN };
    let adoption = if EXEMPT.get() || BUSY.get() || thread.is_null() { None } else { bubble::adoptable() };
    let Some((bubble, parent)) = adoption else {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real(thread, attr, routine, arg) };
    };
    let member = bubble.add_adopted_thread(parent, Location::caller());
    let exit = Arc::new(Exit::default());
    let start =
        Box::new(Start { routine, arg, bubble: Arc::clone(&bubble), member, exit: Arc::clone(&exit) });
    let start = Box::into_raw(start);
    // SAFETY: the caller's `thread` and `attr`; `start` stays valid until the trampoline
    // takes it back, or below if no thread starts.
    let code = unsafe { real(thread, attr, trampoline, start.cast()) };
    if code != 0 {
        // SAFETY: no thread was started, so the box is still ours.
        drop(unsafe { Box::from_raw(start) });
        bubble.remove_member(member);
        return code;
    }
    // SAFETY: on success libc wrote the new thread's handle to `thread`.
    let handle = unsafe { *thread };
    ADOPTED.with(|adopted| adopted.push(Adopted { thread: handle, bubble: Arc::as_ptr(&bubble), exit }));
    0
}

extern "C" fn trampoline(start: *mut c_void) -> *mut c_void {
    // SAFETY: `pthread_create` passed a `Box<Start>` it gave up.
    let Start { routine, arg, bubble, member, exit } = *unsafe { Box::from_raw(start.cast::<Start>()) };
    let membership = bubble::enter_thread_member(&bubble, member);
    let result = bubble::with_membership(membership, || routine(arg));
    exit.finish();
    bubble.remove_member(member);
    result
}

/// Waits for a thread to end; a member joining a thread of its bubble blocks durably.
///
/// # Safety
///
/// As libc's.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn pthread_join(thread: libc::pthread_t, retval: *mut *mut c_void) -> c_int {
    let Some(real) = REAL_JOIN.get(pthread_join as *const () as usize) else { return libc::ESRCH };
    let exit = ADOPTED.with(|adopted| {
        let own = member_bubble().map(|b| b as *const BubbleState)?;
        adopted.iter().find(|a| a.thread == thread && a.bubble == own).map(|a| Arc::clone(&a.exit))
    });
    if let Some(exit) = exit
        && let Some(_busy) = enter()
    {
        bubble::std_block_until("std::thread::JoinHandle::join (std-time)", |waker| {
            exit.done_or_register(waker)
        });
    }
    // SAFETY: the caller's arguments, passed on.
    let code = unsafe { real(thread, retval) };
    if code == 0 {
        take_adopted(thread);
    }
    code
}

/// Detaches a thread: nobody will join it.
///
/// # Safety
///
/// As libc's.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn pthread_detach(thread: libc::pthread_t) -> c_int {
    let Some(real) = REAL_DETACH.get(pthread_detach as *const () as usize) else { return libc::ESRCH };
    take_adopted(thread);
    // SAFETY: the caller's argument, passed on.
    unsafe { real(thread) }
}
