//! Parking: how a thread blocks, inside a bubble (as a durably blocked member) or outside
//! (a plain thread park), and the bubble-aware `block_on` every blocking call goes through.

use std::cell::Cell;
use std::future::Future;
use std::panic;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use super::parker::ThreadParker;
use super::{BubbleAborted, BubbleState, Current, MemberId, Site, State, TimerTarget, with_current};

thread_local! {
    /// What the gonext primitives polled on this thread said when they returned `Pending`,
    /// read by `block_on` and the executor to decide whether the member is durably blocked.
    static PENDING_ON: Cell<Notes> = const { Cell::new(Notes { count: 0, on: PendingOn::Nothing }) };
    /// Parks this thread outside any bubble.
    static THREAD_NOTIFY: Arc<ThreadNotify> = Arc::new(ThreadNotify {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
}

/// The notes of the current poll, and how many were taken on this thread so that `select!`
/// can tell which branch was silent.
#[derive(Clone, Copy)]
struct Notes {
    count: u32,
    on: PendingOn,
}

/// Why a poll of a member returned `Pending`, as far as gonext can tell.
#[derive(Clone, Copy)]
pub(super) enum PendingOn {
    /// No gonext primitive said: a foreign future.
    Nothing,
    /// Only objects of the member's own bubble: a durable block.
    Bubble(Site, &'static str),
    /// At least one object created outside the bubble, which the outside world may complete:
    /// never a durable block (Go's rule).
    Outside(Site, &'static str),
}

/// Called by primitives when they return `Pending` on an object of the caller's bubble, so
/// that the block is durable and reports name the await site.
#[inline]
pub(crate) fn note_blocked_at(site: Site, op: &'static str) {
    let notes = PENDING_ON.get();
    let on = match notes.on {
        PendingOn::Outside(..) => notes.on,
        _ => PendingOn::Bubble(site, op),
    };
    PENDING_ON.set(Notes { count: notes.count.wrapping_add(1), on });
}

/// Called by primitives when they return `Pending` on an object created outside any bubble:
/// the wait is not durable, whatever else the same poll waits on.
#[inline]
pub(crate) fn note_blocked_outside(site: Site, op: &'static str) {
    let count = PENDING_ON.get().count.wrapping_add(1);
    PENDING_ON.set(Notes { count, on: PendingOn::Outside(site, op) });
}

/// Notes a `Pending` on an object created in `owner` (checked to be the caller's bubble) or,
/// for `None`, outside any bubble.
#[inline]
pub(crate) fn note_pending_on(owner: Option<&Arc<BubbleState>>, site: Site, op: &'static str) {
    match owner {
        Some(_) => note_blocked_at(site, op),
        None => note_blocked_outside(site, op),
    }
}

/// Taken before polling one of several futures (the branches of `select!`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingMarker(u32);

impl PendingMarker {
    pub(crate) fn new() -> PendingMarker {
        PendingMarker(PENDING_ON.get().count)
    }

    /// The future polled since the marker was taken returned `Pending` without a gonext note:
    /// it is foreign, so the wait it is part of is not durable.
    pub(crate) fn foreign_if_silent(self, site: Site, op: &'static str) {
        if PENDING_ON.get().count == self.0 {
            note_blocked_outside(site, op);
        }
    }
}

/// What one future noted when it returned `Pending`, captured so that a poller of many futures
/// (`async_scope!`, which polls only the woken ones) can repeat it on polls that skip it.
#[derive(Clone, Copy)]
pub(crate) struct PendingNote(PendingOn);

impl PendingNote {
    /// Runs `poll` and returns what it noted; the notes taken before it are kept as they were.
    pub(crate) fn capture<R>(poll: impl FnOnce() -> R) -> (R, PendingNote) {
        let before = PENDING_ON.get();
        PENDING_ON.set(Notes { count: before.count, on: PendingOn::Nothing });
        let result = poll();
        let after = PENDING_ON.get();
        PENDING_ON.set(Notes { count: after.count, on: before.on });
        (result, PendingNote(after.on))
    }

    /// Whether the future waits only on objects of the caller's bubble.
    pub(crate) fn is_durable(self) -> bool {
        matches!(self.0, PendingOn::Bubble(..))
    }

    /// Notes it again for the current poll; a silent future counts as foreign, at `site`.
    pub(crate) fn replay(self, site: Site, op: &'static str) {
        match self.0 {
            PendingOn::Bubble(site, op) => note_blocked_at(site, op),
            PendingOn::Outside(site, op) => note_blocked_outside(site, op),
            PendingOn::Nothing => note_blocked_outside(site, op),
        }
    }
}

#[inline]
pub(super) fn take_pending_on() -> PendingOn {
    let notes = PENDING_ON.get();
    PENDING_ON.set(Notes { count: notes.count, on: PendingOn::Nothing });
    notes.on
}

struct ThreadNotify {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for ThreadNotify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Wakes a member of a bubble: makes it count as running, then unparks its thread or queues
/// its task.
struct MemberWaker {
    bubble: Arc<BubbleState>,
    id: MemberId,
}

impl Wake for MemberWaker {
    fn wake(self: Arc<Self>) {
        self.bubble.wake(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.bubble.wake(self.id);
    }
}

/// The waker of member `id` (a thread or a task).
pub(super) fn member_waker(bubble: &Arc<BubbleState>, id: MemberId) -> Waker {
    Waker::from(Arc::new(MemberWaker { bubble: Arc::clone(bubble), id }))
}

/// The membership of thread member `id`, to install with `with_membership`.
pub(crate) fn enter_thread_member(bubble: &Arc<BubbleState>, id: MemberId) -> Current {
    bubble.attach_thread(id, ThreadParker::current());
    let waker = member_waker(bubble, id);
    Current::new(Arc::clone(bubble), id, waker, false)
}

/// Runs `future` to completion on this thread. In a bubble, the thread is blocked at `site`
/// while the future is pending — durably, unless the future waits on an object created
/// outside the bubble — so the virtual clock may advance; outside, this is a plain
/// park/unpark loop.
///
/// # Panics
///
/// Inside an async task of `bubble_async`, where blocking would stall every other task.
pub(crate) fn block_on<F: Future>(future: F, site: Site, op: &'static str) -> F::Output {
    let membership = with_current(|c| c.map(|c| (Arc::clone(&c.bubble), c.member, c.own_waker(), c.is_task)));
    match membership {
        None => block_on_thread(future),
        Some((_, _, _, true)) => panic!(
            "{op} at {site}: a blocking gonext call inside an async task of bubble_async would stall \
             every task of the bubble; use its async form with `.await`"
        ),
        Some((bubble, id, waker, false)) => block_on_member(future, &bubble, id, &waker, site, op),
    }
}

fn block_on_thread<F: Future>(future: F) -> F::Output {
    let notify = THREAD_NOTIFY.with(Arc::clone);
    let waker = Waker::from(Arc::clone(&notify));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let mut spin = Spin::default();
        while !notify.notified.swap(false, Ordering::Acquire) {
            spin.wait_or_park(thread::park);
        }
    }
}

/// Waits briefly before parking: a wake-up that arrives within a few microseconds (a
/// channel partner answering) then costs no sleep and wake of the OS thread, whose latency
/// dominates ping-pong traffic, especially on virtual machines.
#[derive(Default)]
pub(super) struct Spin(u32);

impl Spin {
    const SPINS: u32 = 6;
    const YIELDS: u32 = 10;

    pub(super) fn wait_or_park(&mut self, park: impl FnOnce()) {
        if cfg!(loom) {
            // Spinning would only multiply the interleavings a model explores.
            return park();
        }
        match self.0 {
            n if n < Self::SPINS => (0..1u32 << n).for_each(|_| std::hint::spin_loop()),
            n if n < Self::SPINS + Self::YIELDS => thread::yield_now(),
            _ => crate::scope::pool::blocking(park),
        }
        self.0 += 1;
    }
}

fn block_on_member<F: Future>(
    future: F,
    bubble: &BubbleState,
    id: MemberId,
    waker: &Waker,
    site: Site,
    op: &'static str,
) -> F::Output {
    let mut cx = Context::from_waker(waker);
    let mut future = pin!(future);
    loop {
        take_pending_on();
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let state = match take_pending_on() {
            PendingOn::Outside(site, op) => State::Outside { site, op: Some(op) },
            PendingOn::Bubble(..) | PendingOn::Nothing => State::Blocked { site: Some(site), op },
        };
        bubble.park_as(id, state, None);
    }
}

impl BubbleState {
    /// Blocks thread member `id` until `duration` of virtual time has passed: `thread::sleep`
    /// without a future, a timer registered under the same lock as the block.
    pub(crate) fn sleep_member(&self, id: MemberId, duration: Duration, site: Site) {
        let deadline = self.elapsed().saturating_add(duration);
        while self.elapsed() < deadline {
            self.park_as(id, State::Blocked { site: Some(site), op: "thread::sleep" }, Some(deadline));
        }
    }

    /// Parks thread member `id`, durably blocked at `site`, until a wake-up arrives; unwinds
    /// if the bubble failed.
    pub(crate) fn park(&self, id: MemberId, site: Site, op: &'static str) {
        self.park_as(id, State::Blocked { site: Some(site), op }, None);
    }

    fn park_as(&self, id: MemberId, state: State, deadline: Option<Duration>) {
        if self.park_until(id, state, deadline).is_err() {
            panic::resume_unwind(Box::new(BubbleAborted));
        }
    }

    /// Parks thread member `id` in `state` until a wake-up arrives or, with a `deadline`, the
    /// clock reaches it; `Err` if the bubble failed.
    pub(super) fn park_until(
        &self,
        id: MemberId,
        state: State,
        deadline: Option<Duration>,
    ) -> Result<(), BubbleAborted> {
        let mut inner = self.lock();
        if let Some(deadline) = deadline {
            let key = self.timer_key(super::duration_nanos(deadline));
            inner.timers.insert(key, TimerTarget::Member(id));
        }
        if inner.failure.is_some() {
            return Err(BubbleAborted);
        }
        let (mut inner, blocked) = self.block_locked(inner, id, state);
        if !blocked {
            return Ok(());
        }
        let mut spin = Spin::default();
        loop {
            if inner.failure.is_some() {
                return Err(BubbleAborted);
            }
            if inner.members.get_mut(&id).is_none_or(|member| std::mem::take(&mut member.notified)) {
                return Ok(());
            }
            drop(inner);
            spin.wait_or_park(ThreadParker::park_current);
            inner = self.lock();
        }
    }
}
