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

use super::{BubbleAborted, BubbleState, Current, MemberId, Site, TimerTarget, with_current};

thread_local! {
    /// The site and operation of the gonext primitive that last returned `Pending` on this
    /// thread, read by the executor to describe where a task is blocked.
    static LAST_BLOCK: Cell<Option<(Site, &'static str)>> = const { Cell::new(None) };
    /// Parks this thread outside any bubble.
    static THREAD_NOTIFY: Arc<ThreadNotify> = Arc::new(ThreadNotify {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
}

/// Called by primitives when they return `Pending`, so that reports name the await site.
pub(crate) fn note_blocked_at(site: Site, op: &'static str) {
    LAST_BLOCK.set(Some((site, op)));
}

pub(super) fn take_blocked_at() -> Option<(Site, &'static str)> {
    LAST_BLOCK.take()
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
    bubble.attach_thread(id, thread::current());
    let waker = member_waker(bubble, id);
    Current { bubble: Arc::clone(bubble), member: id, waker, is_task: false }
}

/// Runs `future` to completion on this thread. In a bubble, the thread is durably blocked at
/// `site` while the future is pending, so the virtual clock may advance; outside, this is a
/// plain park/unpark loop.
///
/// # Panics
///
/// Inside an async task of `bubble_async`, where blocking would stall every other task.
pub(crate) fn block_on<F: Future>(future: F, site: Site, op: &'static str) -> F::Output {
    let membership =
        with_current(|c| c.map(|c| (Arc::clone(&c.bubble), c.member, c.waker.clone(), c.is_task)));
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
            spin.wait_or_park();
        }
    }
}

/// Waits briefly before parking: a wake-up that arrives within a few microseconds (a
/// channel partner answering) then costs no sleep and wake of the OS thread, whose latency
/// dominates ping-pong traffic, especially on virtual machines.
#[derive(Default)]
struct Spin(u32);

impl Spin {
    const SPINS: u32 = 6;
    const YIELDS: u32 = 10;

    fn wait_or_park(&mut self) {
        match self.0 {
            n if n < Self::SPINS => (0..1u32 << n).for_each(|_| std::hint::spin_loop()),
            n if n < Self::SPINS + Self::YIELDS => thread::yield_now(),
            _ => crate::scope::pool::blocking(thread::park),
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
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        bubble.park(id, site, op);
    }
}

impl BubbleState {
    /// Blocks thread member `id` until `duration` of virtual time has passed: `thread::sleep`
    /// without a future, a timer registered under the same lock as the block.
    pub(crate) fn sleep_member(&self, id: MemberId, duration: Duration, site: Site) {
        let deadline = self.elapsed().saturating_add(duration);
        while self.elapsed() < deadline {
            self.park_until(id, site, "thread::sleep", Some(deadline));
        }
    }

    /// Parks thread member `id` until a wake-up arrives; unwinds if the bubble failed.
    pub(crate) fn park(&self, id: MemberId, site: Site, op: &'static str) {
        self.park_until(id, site, op, None);
    }

    fn park_until(&self, id: MemberId, site: Site, op: &'static str, deadline: Option<Duration>) {
        let mut inner = self.lock();
        if let Some(deadline) = deadline {
            let key = self.timer_key(deadline);
            inner.timers.insert(key, TimerTarget::Member(id));
        }
        if inner.failure.is_some() {
            drop(inner);
            panic::resume_unwind(Box::new(BubbleAborted));
        }
        let (mut inner, blocked) = self.block_locked(inner, id, site, op);
        if !blocked {
            return;
        }
        let mut spin = Spin::default();
        loop {
            if inner.failure.is_some() {
                drop(inner);
                panic::resume_unwind(Box::new(BubbleAborted));
            }
            let member = inner.members.get_mut(&id).expect("a parked member is registered");
            if std::mem::take(&mut member.notified) {
                return;
            }
            drop(inner);
            spin.wait_or_park();
            inner = self.lock();
        }
    }
}
