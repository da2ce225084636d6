//! Threads that join the caller's virtual-time bubble: `spawn` and `sleep` with std's
//! signatures.
//!
//! ```
//! use gonext::{thread, time};
//! use std::time::Duration;
//!
//! time::bubble(|| {
//!     let start = time::Instant::now();
//!     let worker = thread::spawn(|| {
//!         thread::sleep(Duration::from_secs(60)); // a member: sleeps on the virtual clock
//!         "done"
//!     });
//!     assert_eq!(worker.join().unwrap(), "done");
//!     assert_eq!(start.elapsed(), Duration::from_secs(60)); // no real minute went by
//! });
//! ```
//!
//! Outside a bubble these are `std::thread::spawn` and `std::thread::sleep`. Inside one, a
//! spawned thread becomes a member of the caller's bubble (its sleeps are virtual, and the
//! bubble waits for it), and `sleep` durably blocks on the virtual clock.
//!
//! # Differences from Go
//!
//! Go's `go` statement inside a bubble starts a bubbled goroutine; here that is
//! [`spawn`]. A thread started with `std::thread::spawn` stays outside the bubble and keeps
//! real time, like a goroutine started before `synctest.Run`.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::time::bubble::{self, BubbleAborted, BubbleState};

/// Spawns a thread; inside a bubble it joins the caller's bubble.
///
/// ```
/// use gonext::{thread, time};
/// use std::time::Duration;
///
/// let worker = thread::spawn(|| 6 * 7); // outside a bubble: std::thread::spawn
/// assert_eq!(worker.join().unwrap(), 42);
///
/// time::bubble(|| {
///     let start = time::Instant::now();
///     let sleeper = thread::spawn(|| thread::sleep(Duration::from_secs(60)));
///     sleeper.join().unwrap(); // joining is a durable block: the clock advances
///     assert_eq!(start.elapsed(), Duration::from_secs(60));
/// });
/// ```
///
/// # Panics
///
/// Inside a bubble, a panic in the thread fails the whole bubble: it is re-raised by
/// `time::bubble` with its payload, and `join` on it does not return.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let site = Location::caller();
    match bubble::current() {
        None => JoinHandle(Inner::Std(std::thread::spawn(f))),
        Some(bubble) => spawn_member(bubble, site, f),
    }
}

/// Starts `f` on a thread of its own, detached: a member of `bubble` while that bubble still
/// has members (a bubble that has finished cannot take new ones), else a plain thread. This is
/// how Go's runtime starts the goroutine of `time.AfterFunc` and `context.AfterFunc`.
pub(crate) fn spawn_detached(
    bubble: Option<&Arc<BubbleState>>,
    site: bubble::Site,
    f: impl FnOnce() + Send + 'static,
) {
    match bubble.filter(|bubble| bubble.has_members()) {
        Some(bubble) => drop(spawn_member(Arc::clone(bubble), site, f)),
        None => {
            if let Err(error) = spawn_unadopted(std::thread::Builder::new(), f) {
                panic!("the function registered at {site}: the OS refused a new thread: {error}");
            }
        }
    }
}

pub(crate) fn spawn_member<F, T>(bubble: Arc<BubbleState>, site: bubble::Site, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let id = bubble.add_member(None, site, false);
    let packet = Arc::new(Packet { slot: Mutex::new(Slot { result: None, waker: None }) });
    let their_packet = Arc::clone(&packet);
    let spawned = spawn_unadopted(std::thread::Builder::new(), move || {
        let membership = bubble::enter_thread_member(&bubble, id);
        let result = bubble::with_membership(membership, || catch_unwind(AssertUnwindSafe(f)));
        let result = result.map_err(|payload| {
            if !payload.is::<BubbleAborted>() {
                bubble.fail(payload);
            }
            Box::new(BubbleAborted) as Box<dyn Any + Send>
        });
        their_packet.fill(result);
        bubble.remove_member(id);
    });
    if let Err(error) = spawned {
        packet.fill(Err(Box::new(BubbleAborted)));
        panic!("thread::spawn at {site}: the OS refused a new thread: {error}");
    }
    JoinHandle(Inner::Member(packet))
}

/// Puts the current thread to sleep for `duration`: `std::thread::sleep` outside a bubble,
/// a durable block on the virtual clock inside one.
///
/// ```
/// use gonext::{thread, time};
/// use std::time::Duration;
///
/// let slept = time::bubble(|| {
///     let start = time::Instant::now();
///     thread::sleep(Duration::from_secs(3600));
///     start.elapsed()
/// });
/// assert_eq!(slept, Duration::from_secs(3600));
/// ```
#[track_caller]
pub fn sleep(duration: Duration) {
    let site = Location::caller();
    let in_bubble = bubble::with_current(|current| {
        let Some(current) = current else { return false };
        assert!(
            !current.is_task,
            "thread::sleep at {site}: blocking inside an async task of bubble_async would stall every task; \
             use time::sleep(..).await"
        );
        current.bubble.sleep_member(current.member, duration, site);
        true
    });
    if !in_bubble {
        std::thread::sleep(duration);
    }
}

/// Starts one of gonext's own threads (a worker, the watchdog, a timer thread): with the
/// `std-time` layer, a thread started by a member joins the member's bubble, and these must
/// not.
pub(crate) fn spawn_unadopted<F, T>(
    builder: std::thread::Builder,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(gonext_std_time)]
    return crate::time::interpose::exempt(|| builder.spawn(f));
    #[cfg(not(gonext_std_time))]
    return builder.spawn(f);
}

struct Slot<T> {
    result: Option<std::thread::Result<T>>,
    waker: Option<Waker>,
}

struct Packet<T> {
    slot: Mutex<Slot<T>>,
}

impl<T> Packet<T> {
    fn fill(&self, result: std::thread::Result<T>) {
        let mut slot = self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.result = Some(result);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

enum Inner<T> {
    Std(std::thread::JoinHandle<T>),
    Member(Arc<Packet<T>>),
}

/// An owned permission to join a thread started with [`spawn`].
pub struct JoinHandle<T>(Inner<T>);

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result, like
    /// [`std::thread::JoinHandle::join`]. Inside a bubble, waiting is a durable block.
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        match self.0 {
            Inner::Std(handle) => handle.join(),
            Inner::Member(packet) => {
                let site = Location::caller();
                bubble::block_on(
                    std::future::poll_fn(|cx| {
                        let mut slot = packet.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        match slot.result.take() {
                            Some(result) => Poll::Ready(result),
                            None => {
                                slot.waker = Some(cx.waker().clone());
                                Poll::Pending
                            }
                        }
                    }),
                    site,
                    "JoinHandle::join",
                )
            }
        }
    }

    /// Whether the thread has finished.
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Inner::Std(handle) => handle.is_finished(),
            Inner::Member(packet) => {
                packet.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).result.is_some()
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Inner::Std(_) => "std",
            Inner::Member(_) => "bubble member",
        };
        f.debug_tuple("JoinHandle").field(&kind).finish()
    }
}
