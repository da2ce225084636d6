//! The executor of `bubble_async`: polls the root future and every spawned task on the
//! calling thread, each task a member of the bubble.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::member::take_blocked_at;
use super::{BubbleAborted, BubbleState, Current, IdMap, MemberId, State, with_membership};

/// A spawned task, type-erased.
pub(crate) type BoxTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Makes task `id` runnable.
struct TaskWaker {
    bubble: Arc<BubbleState>,
    id: MemberId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.bubble.wake(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.bubble.wake(self.id);
    }
}

fn task_waker(bubble: &Arc<BubbleState>, id: MemberId) -> Waker {
    Waker::from(Arc::new(TaskWaker { bubble: Arc::clone(bubble), id }))
}

/// Runs `root` (member `root_id`, already registered and queued) and the tasks spawned into
/// the bubble until every task finished or the bubble failed. Returns the root's output if
/// it completed.
pub(crate) fn run_async<F: Future>(
    bubble: &Arc<BubbleState>,
    root_id: MemberId,
    root: F,
) -> Option<F::Output> {
    let mut root = pin!(root);
    let root_waker = task_waker(bubble, root_id);
    let mut tasks: IdMap<(BoxTask, Waker)> = IdMap::default();
    let mut output = None;
    while let Some(id) = next_runnable(bubble, &mut tasks) {
        let polled = if id == root_id {
            if output.is_some() {
                continue;
            }
            poll_member(bubble, id, &root_waker, |cx| root.as_mut().poll(cx))
                .map(|polled| polled.map(|ready| output = Some(ready)))
        } else {
            let Some((task, waker)) = tasks.get_mut(&id) else { continue };
            poll_member(bubble, id, waker, |cx| task.as_mut().poll(cx))
        };
        match polled {
            Some(Poll::Pending) => bubble.after_pending(id),
            Some(Poll::Ready(())) | None => {
                tasks.remove(&id);
                bubble.remove_member(id);
            }
        }
    }
    drop(tasks);
    output
}

/// Polls one member with its membership installed; `None` if it panicked (the bubble then
/// fails with the payload).
fn poll_member<T>(
    bubble: &Arc<BubbleState>,
    id: MemberId,
    waker: &Waker,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Option<Poll<T>> {
    let current = Current { bubble: Arc::clone(bubble), member: id, waker: waker.clone(), is_task: true };
    let mut cx = Context::from_waker(waker);
    let result = with_membership(current, || catch_unwind(AssertUnwindSafe(|| poll(&mut cx))));
    match result {
        Ok(polled) => Some(polled),
        Err(payload) => {
            if !payload.is::<BubbleAborted>() {
                bubble.fail(payload);
            }
            None
        }
    }
}

/// The next task to poll; `None` once every member left or the bubble failed.
fn next_runnable(
    bubble: &Arc<BubbleState>,
    tasks: &mut IdMap<(BoxTask, Waker)>,
) -> Option<MemberId> {
    let mut inner = bubble.lock();
    loop {
        if inner.failure.is_some() {
            return None;
        }
        for (id, task) in std::mem::take(&mut inner.spawned) {
            tasks.insert(id, (task, task_waker(bubble, id)));
        }
        if let Some(id) = inner.run_queue.pop_front() {
            return Some(id);
        }
        if inner.members.is_empty() {
            return None;
        }
        inner.executor_waiting = true;
        inner = bubble.changed.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.executor_waiting = false;
    }
}

impl BubbleState {
    /// Task `id` returned `Pending`: requeue it if it was woken meanwhile, else it is blocked
    /// where its last gonext primitive said (durably), or outside gonext (still running).
    fn after_pending(&self, id: MemberId) {
        let blocked_at = take_blocked_at();
        let mut inner = self.lock();
        let Some(member) = inner.members.get_mut(&id) else { return };
        if std::mem::take(&mut member.notified) {
            inner.run_queue.push_back(id);
            return;
        }
        match blocked_at {
            Some((site, op)) => drop(self.block_member_locked(inner, id, State::Blocked { site, op })),
            None => member.state = State::Outside { site: member.spawned_at },
        }
    }
}
