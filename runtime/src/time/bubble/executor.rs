//! The executor of `bubble_async`: polls the root future and every spawned task on the
//! calling thread, each task a member of the bubble.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::member::{member_waker, take_pending_on};
use super::members::slot_of;
use super::{BubbleAborted, BubbleState, CURRENT, Current, MemberId, with_membership};

/// A spawned task, type-erased.
pub(crate) type BoxTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `root` (member `root_id`, already registered and queued) and the tasks spawned into
/// the bubble until every task finished or the bubble failed. Returns the root's output if
/// it completed.
pub(crate) fn run_async<F: Future>(
    bubble: &Arc<BubbleState>,
    root_id: MemberId,
    root: F,
) -> Option<F::Output> {
    let root_waker = member_waker(bubble, root_id);
    let membership = Current::new(Arc::clone(bubble), root_id, root_waker.clone(), true);
    with_membership(membership, || run_tasks(bubble, root_id, &root_waker, root))
}

fn run_tasks<F: Future>(
    bubble: &Arc<BubbleState>,
    root_id: MemberId,
    root_waker: &Waker,
    root: F,
) -> Option<F::Output> {
    let mut root = pin!(root);
    take_pending_on();
    let mut tasks = Tasks::default();
    let mut output = None;
    let mut batch = VecDeque::new();
    while let Some(id) = next_runnable(bubble, &mut tasks, &mut batch) {
        let polled = if id == root_id {
            if output.is_some() {
                continue;
            }
            poll_member(bubble, id, root_waker, |cx| root.as_mut().poll(cx))
                .map(|polled| polled.map(|ready| output = Some(ready)))
        } else {
            let Some((task, waker)) = tasks.get_mut(id) else { continue };
            poll_member(bubble, id, waker, |cx| task.as_mut().poll(cx))
        };
        match polled {
            Some(Poll::Pending) => bubble.after_pending(id),
            Some(Poll::Ready(())) | None => {
                // What a finished task's futures noted must not describe the next poll.
                take_pending_on();
                tasks.remove(id);
                bubble.remove_member(id);
            }
        }
    }
    drop(tasks);
    bubble.discard_own();
    output
}

/// The spawned tasks with their wakers, by member slot (see `members`).
#[derive(Default)]
struct Tasks(Vec<Option<(MemberId, BoxTask, Waker)>>);

impl Tasks {
    fn insert(&mut self, id: MemberId, task: BoxTask, waker: Waker) {
        let slot = slot_of(id);
        if slot >= self.0.len() {
            self.0.resize_with(slot + 1, || None);
        }
        self.0[slot] = Some((id, task, waker));
    }

    fn get_mut(&mut self, id: MemberId) -> Option<(&mut BoxTask, &Waker)> {
        match self.0.get_mut(slot_of(id))? {
            Some((task_id, task, waker)) if *task_id == id => Some((task, waker)),
            _ => None,
        }
    }

    fn remove(&mut self, id: MemberId) {
        if let Some(entry) =
            self.0.get_mut(slot_of(id)).filter(|entry| entry.as_ref().is_some_and(|e| e.0 == id))
        {
            *entry = None;
        }
    }
}

/// Polls one member with its membership installed; `None` if it panicked (the bubble then
/// fails with the payload).
fn poll_member<T>(
    bubble: &Arc<BubbleState>,
    id: MemberId,
    waker: &Waker,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Option<Poll<T>> {
    set_current_task(id, waker);
    let mut cx = Context::from_waker(waker);
    match catch_unwind(AssertUnwindSafe(|| poll(&mut cx))) {
        Ok(polled) => Some(polled),
        Err(payload) => {
            if !payload.is::<BubbleAborted>() {
                bubble.fail(payload);
            }
            None
        }
    }
}

/// The next task to poll; `None` once every member left or the bubble failed. Runnable
/// tasks are taken from the bubble in batches, one lock per batch.
fn next_runnable(
    bubble: &Arc<BubbleState>,
    tasks: &mut Tasks,
    batch: &mut VecDeque<MemberId>,
) -> Option<MemberId> {
    if bubble.has_failed() {
        return None;
    }
    if let Some(id) = batch.pop_front() {
        return Some(id);
    }
    let mut inner = bubble.lock();
    bubble.flush_own(&mut inner);
    inner = bubble.settle(inner);
    loop {
        if inner.failure.is_some() {
            return None;
        }
        for (id, task) in std::mem::take(&mut inner.spawned) {
            tasks.insert(id, task, member_waker(bubble, id));
        }
        if !inner.run_queue.is_empty() {
            std::mem::swap(batch, &mut inner.run_queue);
            return batch.pop_front();
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
    /// Task `id` returned `Pending`: it is blocked where its gonext primitives said (durably,
    /// unless one waits on an object created outside the bubble), or outside gonext (still
    /// running); requeued instead if it was woken meanwhile.
    fn after_pending(&self, id: MemberId) {
        self.defer_block(id, take_pending_on());
    }
}

/// Makes task `id`, polled with `waker`, the current member of the executor thread.
fn set_current_task(id: MemberId, waker: &Waker) {
    CURRENT.with_borrow_mut(|current| {
        let current = current.as_mut().expect("the executor runs inside its bubble's membership");
        current.member = id;
        current.polled_waker = waker.data();
    });
}
