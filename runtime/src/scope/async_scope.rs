//! The runtime of `async_scope!` and `try_async_scope!`: a future that polls its children
//! itself, so they may borrow from the enclosing async fn and need no spawning, under any
//! executor.
//!
//! Each child has a waker of its own that queues the child's index and wakes the task awaiting
//! the scope; a poll of the scope then polls the body only if its waker fired, and the queued
//! children only, so a wake costs the same with ten children or ten thousand (as in
//! `FuturesUnordered`). Under `limit = N`, children beyond the `N` live ones wait in a queue,
//! unpolled, for one to finish. A child's failure (an `Err` in `try_async_scope!`, or a panic)
//! drops the body and every other child at once: cancellation by drop, as in moro.

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use super::handle::Slot;
use super::{AsyncTaskHandle, Canceled, Fallible, Mode, Options, TaskResult, in_scope, with_enclosing};
use crate::context::{Cancel, Context};
use crate::time::bubble::{PendingNote, Site};

type ChildFuture<'a, E> = Pin<Box<dyn Future<Output = Option<E>> + Send + 'a>>;

/// Marks the handle of a child dropped before it finished.
trait Abandon: Send + Sync {
    fn abandon(&self);
}

impl<T: Send> Abandon for Slot<T> {
    fn abandon(&self) {
        self.cancel();
    }
}

struct Child<'a, E> {
    future: Option<ChildFuture<'a, E>>,
    waker: Arc<ChildWaker>,
    site: Site,
    slot: Option<Arc<dyn Abandon + 'a>>,
    /// Whether its last `Pending` waited only on objects of the caller's bubble.
    durable: bool,
}

/// The index the body's waker queues.
const BODY: usize = usize::MAX;

/// The wake-ups of a scope: indices of the children (or the body) woken since the last poll,
/// and the waker of the task awaiting the scope.
#[derive(Default)]
struct Woken {
    inner: Mutex<WokenInner>,
}

#[derive(Default)]
struct WokenInner {
    queue: Vec<usize>,
    parent: Option<Waker>,
}

impl Woken {
    fn lock(&self) -> MutexGuard<'_, WokenInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, index: usize) {
        let mut inner = self.lock();
        inner.queue.push(index);
        let parent = if inner.queue.len() == 1 { inner.parent.clone() } else { None };
        drop(inner);
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

/// The waker of one child (or of the body): queues its index once until it is polled.
struct ChildWaker {
    woken: Arc<Woken>,
    index: usize,
    queued: AtomicBool,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.woken.push(self.index);
        }
    }
}

/// A child not started yet: beyond the limit.
struct Waiting<'a, E> {
    future: ChildFuture<'a, E>,
    site: Site,
    slot: Option<Arc<dyn Abandon + 'a>>,
}

struct Children<'a, E> {
    slots: Vec<Option<Child<'a, E>>>,
    free: Vec<usize>,
    waiting: VecDeque<Waiting<'a, E>>,
    live: usize,
    /// Live children whose last poll did not block durably (not polled yet, or waiting on
    /// something foreign): while there is one, the scope's wait is not durable either.
    not_durable: usize,
    /// A durable child's note, repeated on polls that skip the children.
    durable_note: Option<PendingNote>,
}

/// The children of one `async_scope!`, polled by [`AsyncScope::run`].
pub struct AsyncScope<'a, M: Mode = Infallible> {
    ctx: Context,
    cancel: Mutex<Option<Cancel>>,
    children: Mutex<Children<'a, M::Error>>,
    woken: Arc<Woken>,
    limit: Option<usize>,
    site: Site,
}

impl<M: Mode> fmt::Debug for AsyncScope<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncScope").field("context", &self.ctx).finish_non_exhaustive()
    }
}

impl<'a, M: Mode + 'a> Default for AsyncScope<'a, M>
where
    M::Error: 'a,
{
    #[track_caller]
    fn default() -> Self {
        Self::new(Options::default())
    }
}

impl<'a, M: Mode + 'a> AsyncScope<'a, M>
where
    M::Error: 'a,
{
    /// A scope with no children, whose context derives from `options.context`, else from the
    /// scope or task this runs in, else `background()`.
    #[track_caller]
    pub fn new(mut options: Options) -> Self {
        let (parent, deadline) = options.parent();
        let (ctx, cancel) = match deadline {
            Some(deadline) => parent.with_deadline(deadline),
            None => parent.with_cancel(),
        };
        AsyncScope {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            children: Mutex::new(Children {
                slots: Vec::new(),
                free: Vec::new(),
                waiting: VecDeque::new(),
                live: 0,
                not_durable: 0,
                durable_note: None,
            }),
            woken: Arc::default(),
            limit: options.limit,
            site: Location::caller(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Children<'a, M::Error>> {
        self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The scope's context: cancelled by [`cancel`](Self::cancel), by its deadline, with the
    /// context it derives from, or when a child fails.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Cancels the scope's context; `go` starts no new child afterwards.
    pub fn cancel(&self) {
        drop(self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    }

    /// Adds `child`, polled from now on by the scope's `run`; its output goes to the handle.
    #[track_caller]
    pub fn go<T: TaskResult<M> + 'a>(
        &self,
        child: impl Future<Output = T> + Send + 'a,
    ) -> AsyncTaskHandle<T> {
        let site = Location::caller();
        if self.ctx.is_done() {
            return AsyncTaskHandle::new(Arc::new(Slot::canceled(site)), site);
        }
        let slot = Arc::new(Slot::new(site));
        let output = Arc::clone(&slot);
        let future = async move {
            let value = child.await;
            if value.is_failure() {
                return value.into_error();
            }
            output.fill(Ok(value));
            None
        };
        self.add(Box::pin(future), site, Some(slot.clone() as Arc<dyn Abandon + 'a>));
        AsyncTaskHandle::new(slot, site)
    }

    /// Adds `child` without a handle: `go` used as a statement.
    #[doc(hidden)]
    #[track_caller]
    pub fn spawn<T: TaskResult<M> + 'a>(&self, child: impl Future<Output = T> + Send + 'a) {
        let site = Location::caller();
        if self.ctx.is_done() {
            return;
        }
        let future = async move {
            let value = child.await;
            if value.is_failure() { value.into_error() } else { None }
        };
        self.add(Box::pin(future), site, None);
    }

    fn add(&self, future: ChildFuture<'a, M::Error>, site: Site, slot: Option<Arc<dyn Abandon + 'a>>) {
        let mut children = self.lock();
        let child = Waiting { future, site, slot };
        if self.limit.is_some_and(|limit| children.live >= limit) {
            children.waiting.push_back(child);
            return;
        }
        self.start(&mut children, child);
    }

    /// Makes `child` live at a free index and queues its first poll.
    fn start(&self, children: &mut Children<'a, M::Error>, child: Waiting<'a, M::Error>) {
        let index = children.free.pop().unwrap_or(children.slots.len());
        let waker =
            Arc::new(ChildWaker { woken: Arc::clone(&self.woken), index, queued: AtomicBool::new(false) });
        let live = Child {
            future: Some(child.future),
            waker: Arc::clone(&waker),
            site: child.site,
            slot: child.slot,
            durable: false,
        };
        if index == children.slots.len() {
            children.slots.push(Some(live));
        } else {
            children.slots[index] = Some(live);
        }
        children.live += 1;
        children.not_durable += 1;
        waker.wake_by_ref();
    }

    /// Runs `body` and every child until all are done, and returns the body's value. A
    /// child's `Err` (or the body's) drops the body and the other children and comes back at
    /// once; a child's panic drops them too, then resumes.
    pub async fn run<T>(&self, body: impl Future<Output = Result<T, M::Error>>) -> Result<T, M::Error> {
        let mut body = std::pin::pin!(Some(body));
        let body_waker = Arc::new(ChildWaker {
            woken: Arc::clone(&self.woken),
            index: BODY,
            queued: AtomicBool::new(false),
        });
        let body_waker_handle = Waker::from(Arc::clone(&body_waker));
        let mut value: Option<T> = None;
        let silent = PendingNote::capture(|| ()).1;
        let mut body_note = silent;
        body_waker.wake_by_ref();
        let ended = std::future::poll_fn(|cx| {
            {
                let mut woken = self.woken.lock();
                if !woken.parent.as_ref().is_some_and(|parent| parent.will_wake(cx.waker())) {
                    woken.parent = Some(cx.waker().clone());
                }
            }
            loop {
                let queue = std::mem::take(&mut self.woken.lock().queue);
                if queue.is_empty() {
                    break;
                }
                for index in queue {
                    if index == BODY {
                        body_waker.queued.store(false, Ordering::Release);
                        let Some(future) = body.as_mut().as_pin_mut() else { continue };
                        let mut body_cx = TaskContext::from_waker(&body_waker_handle);
                        let (polled, note) = PendingNote::capture(|| {
                            with_enclosing(&self.ctx, || {
                                catch_unwind(AssertUnwindSafe(|| future.poll(&mut body_cx)))
                            })
                        });
                        match polled {
                            Ok(Poll::Pending) => body_note = note,
                            Ok(Poll::Ready(Ok(output))) => {
                                value = Some(output);
                                body.set(None);
                            }
                            Ok(Poll::Ready(Err(error))) => return Poll::Ready(End::Failed(error)),
                            Err(payload) => return Poll::Ready(End::Panicked(payload, None)),
                        }
                        continue;
                    }
                    if let Some(end) = self.poll_child(index) {
                        return Poll::Ready(end);
                    }
                }
            }
            let children = self.lock();
            if body.is_none() && children.live == 0 {
                return Poll::Ready(End::Done);
            }
            // Repeat what the skipped children and body noted: the scope waits durably only
            // if each of them does.
            if body.is_some() {
                body_note.replay(self.site, "async_scope! body");
            }
            if children.not_durable > 0 {
                silent.replay(self.site, "async_scope! (a child waiting on something foreign)");
            } else if let Some(note) = children.durable_note {
                note.replay(self.site, "async_scope!");
            }
            Poll::Pending
        })
        .await;
        match ended {
            End::Done => Ok(value.expect("the body completed")),
            End::Failed(error) => {
                self.cancel();
                body.set(None);
                self.abandon_all();
                Err(error)
            }
            End::Panicked(payload, site) => {
                body.set(None);
                self.abandon_all();
                if let Some(site) = site {
                    eprintln!(
                        "gonext: the future started by `go` at {site} panicked; resuming the panic in its async_scope"
                    );
                }
                if payload.is::<Canceled>() && !in_scope() {
                    let canceled = payload.downcast::<Canceled>().expect("checked");
                    panic!("an async scope's body awaited a child that never ran or was dropped: {canceled}");
                }
                panic::resume_unwind(payload)
            }
        }
    }

    /// Polls the live child at `index` once; what ends the scope, if it failed.
    fn poll_child(&self, index: usize) -> Option<End<M::Error>> {
        let (mut future, waker, site) = {
            let mut children = self.lock();
            let child = children.slots.get_mut(index)?.as_mut()?;
            child.waker.queued.store(false, Ordering::Release);
            (child.future.take()?, Arc::clone(&child.waker), child.site)
        };
        let waker = Waker::from(waker);
        let mut cx = TaskContext::from_waker(&waker);
        let (polled, note) = PendingNote::capture(|| {
            with_enclosing(&self.ctx, || catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))))
        });
        let mut children = self.lock();
        let was_durable = children.slots[index].as_ref().is_some_and(|child| child.durable);
        if !was_durable {
            children.not_durable -= 1;
        }
        match polled {
            Ok(Poll::Pending) => {
                let durable = note.is_durable();
                if durable {
                    children.durable_note = Some(note);
                } else {
                    children.not_durable += 1;
                }
                if let Some(Some(child)) = children.slots.get_mut(index) {
                    child.future = Some(future);
                    child.durable = durable;
                }
                return None;
            }
            Ok(Poll::Ready(None)) => {}
            Ok(Poll::Ready(Some(error))) => {
                drop(children);
                drop(future);
                self.cancel();
                return Some(End::Failed(error));
            }
            Err(payload) if payload.is::<Canceled>() => {
                if let Some(Some(Child { slot: Some(slot), .. })) = children.slots.get(index) {
                    slot.abandon();
                }
            }
            Err(payload) => {
                drop(children);
                drop(future);
                self.cancel();
                return Some(End::Panicked(payload, Some(site)));
            }
        }
        children.slots[index] = None;
        children.free.push(index);
        children.live -= 1;
        if let Some(next) = children.waiting.pop_front() {
            self.start(&mut children, next);
        }
        None
    }

    /// Drops every child, marking their handles.
    fn abandon_all(&self) {
        let mut children = self.lock();
        let slots = std::mem::take(&mut children.slots);
        let waiting = std::mem::take(&mut children.waiting);
        children.live = 0;
        children.not_durable = 0;
        drop(children);
        for child in slots.into_iter().flatten() {
            drop(child.future);
            if let Some(slot) = child.slot {
                slot.abandon();
            }
        }
        for child in waiting {
            drop(child.future);
            if let Some(slot) = child.slot {
                slot.abandon();
            }
        }
    }
}

/// How a scope's run ended.
enum End<E> {
    Done,
    Failed(E),
    Panicked(Box<dyn Any + Send>, Option<Site>),
}

impl<'a> AsyncScope<'a, Infallible> {
    /// [`run`](Self::run) for a body that cannot fail: `async_scope!`.
    pub async fn run_infallible<T>(&self, body: impl Future<Output = T>) -> T {
        match self.run(async { Ok(body.await) }).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

impl<E: Send> AsyncScope<'_, Fallible<E>> {
    /// The type of a `try_async_scope!`'s error, fixed by its body's `?`s.
    #[doc(hidden)]
    pub fn error_type(&self) -> PhantomData<E> {
        PhantomData
    }
}
