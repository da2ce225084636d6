//! Task results: the slot a task leaves its output in, the [`TaskHandle`] that joins it, and
//! [`as_completed`], which joins many in the order they finish.
//!
//! A slot is written once by its task (its value, its panic, or "cancelled") and taken once,
//! by the handle's `join` or — for a failure nobody joined — by the scope when it ends, so
//! that an error or a panic is never lost with a dropped handle.

use std::any::Any;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::panic::{self, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use super::slots::SlotRef;
use super::{Failure, Mode, TaskResult, pool};
use crate::time::bubble::{self, Site};

/// The output of a task that ran: its value or its panic's payload.
pub(crate) type Output<T> = Result<T, Box<dyn Any + Send>>;

/// The slot is empty: the task has not finished.
const EMPTY: u8 = 0;
/// The task's output is in the slot.
const READY: u8 = 1;
/// The output was taken, by a join or by the scope.
const TAKEN: u8 = 2;
/// The task never ran (its scope was cancelled first) or ended by a join of such a task.
const CANCELED: u8 = 3;
const STATE: u8 = 3;
/// A waker is registered: the task wakes it when it fills the slot.
const WAITING: u8 = 4;

/// Where one task leaves its output.
pub(crate) struct Slot<T> {
    state: AtomicU8,
    output: UnsafeCell<MaybeUninit<Output<T>>>,
    waker: Mutex<Option<Waker>>,
    /// The `go` that started the task.
    site: Site,
}

// SAFETY: the output is written once, by the task, before `READY` is published with release
// ordering, and read once, by whoever moves the state from `READY` to `TAKEN`; so it is only
// ever accessed by one thread at a time, and it is sent between threads only if `T: Send`.
unsafe impl<T: Send> Send for Slot<T> {}
// SAFETY: as above; `&Slot` gives access to the output only through that state machine.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub(crate) fn new(site: Site) -> Slot<T> {
        Slot {
            state: AtomicU8::new(EMPTY),
            output: UnsafeCell::new(MaybeUninit::uninit()),
            waker: Mutex::default(),
            site,
        }
    }

    /// A slot whose task will never run: its scope was cancelled before the `go`.
    pub(crate) fn canceled(site: Site) -> Slot<T> {
        let slot = Slot::new(site);
        slot.state.store(CANCELED, Ordering::Relaxed);
        slot
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire) & STATE
    }

    pub(super) fn is_done(&self) -> bool {
        self.state() != EMPTY
    }

    /// Called once by the task: stores its output and wakes the joiner.
    pub(crate) fn fill(&self, output: Output<T>) {
        // SAFETY: only the task writes, once, and nobody reads before `READY` is published.
        unsafe { (*self.output.get()).write(output) };
        self.publish(READY);
    }

    /// Marks a task that ended cancelled (or was dropped unfinished), unless it has already
    /// left its output.
    pub(crate) fn cancel(&self) {
        let mut current = self.state.load(Ordering::Acquire);
        while current & STATE == EMPTY {
            match self.state.compare_exchange_weak(
                current,
                current | CANCELED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.wake(current),
                Err(now) => current = now,
            }
        }
    }

    fn publish(&self, state: u8) {
        let before = self.state.fetch_or(state, Ordering::AcqRel);
        self.wake(before);
    }

    /// Wakes the registered joiner, if `before` (the state before the change) says there is one.
    fn wake(&self, before: u8) {
        if before & WAITING != 0 {
            let waker = self.waker.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Moves the output out if it is there and nobody took it yet.
    fn take(&self) -> Option<Output<T>> {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & STATE != READY {
                return None;
            }
            match self.state.compare_exchange_weak(
                current,
                (current & !STATE) | TAKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // `MaybeUninit<U>` has the layout of `U`.
                    let output = self.output.get().cast::<Output<T>>();
                    // SAFETY: `READY` was published after the write, and this thread alone
                    // moved the state away from it, so the output is initialized, nobody else
                    // touches it, and it is read only here.
                    return Some(unsafe { output.read() });
                }
                Err(now) => current = now,
            }
        }
    }

    /// Registers `waker` for the task's end; whether the task has already ended.
    fn register(&self, waker: &Waker) -> bool {
        if self.is_done() {
            return true;
        }
        let mut slot = self.waker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &mut *slot {
            Some(old) => old.clone_from(waker),
            None => *slot = Some(waker.clone()),
        }
        drop(slot);
        self.state.fetch_or(WAITING, Ordering::AcqRel) & STATE != EMPTY
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() & STATE == READY {
            // SAFETY: `READY` and not taken: the output is initialized and owned here.
            unsafe { self.output.get_mut().assume_init_drop() };
        }
    }
}

/// A failure kept in a slot until its handle joins it or the scope ends.
pub(crate) trait Held<E>: Send {
    /// The failure, unless a join took it first.
    fn take_failure(&self) -> Option<Failure<E>>;
}

/// The slot of a task that failed, seen by its scope as a task of mode `M`.
pub(crate) struct HeldSlot<M, T>(pub(crate) SlotRef<T>, pub(crate) std::marker::PhantomData<fn() -> M>);

impl<M: Mode, T: TaskResult<M>> Held<M::Error> for HeldSlot<M, T> {
    fn take_failure(&self) -> Option<Failure<M::Error>> {
        match self.0.take()? {
            Ok(value) => value.into_error().map(Failure::Error),
            Err(payload) => Some(Failure::Panic(payload, self.0.site)),
        }
    }
}

/// The unwinding payload (and the `try_join` error) of a join whose task never ran because its
/// scope was cancelled before the task's `go`.
///
/// [`TaskHandle::join`] unwinds with it, and every scope treats a body or a task that ends so
/// as *cancelled*, not failed: cancellation travels up through joins to the scope that was
/// cancelled, like Kotlin's `CancellationException`. Outside any scope it becomes a panic
/// whose message names the `go` site.
///
/// ```
/// let (result, started) = gonext::scope(|s| {
///     s.cancel();
///     let late = s.go(|_ctx| 42); // the scope is cancelled: this task never runs
///     (late.try_join(), s.context().is_done())
/// });
/// assert_eq!(result.map_err(|canceled| canceled.to_string().contains("never ran")), Err(true));
/// assert!(started);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Canceled {
    site: Site,
}

impl Canceled {
    /// The `go` whose task never ran.
    pub fn go_site(&self) -> &'static Location<'static> {
        self.site
    }
}

impl fmt::Debug for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceled").field("go_site", &format_args!("{}", self.site)).finish()
    }
}

impl fmt::Display for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the task started at {} never ran: its scope was cancelled first", self.site)
    }
}

impl std::error::Error for Canceled {}

/// Raises `canceled` for the scope around: a silent unwind inside a scope, a panic naming the
/// `go` site outside any.
pub(crate) fn raise(canceled: Canceled, joined_at: Site) -> ! {
    if super::in_scope() {
        panic::resume_unwind(Box::new(canceled));
    }
    panic!("TaskHandle::join at {joined_at}: {canceled}; use try_join to handle a task that may never run")
}

/// Waits for a task started with `go` and gives its output: `std::thread::ScopedJoinHandle`
/// for gonext's scopes.
///
/// `join` returns what the task returned (in a fallible scope, its `Result`: the error goes
/// to the joiner, not to the scope). A handle can be joined inside the scope, by the body or by
/// another task, or returned from the scope's block; one that is dropped unjoined leaves its
/// task to the scope, which joins it anyway and reports its error or panic.
///
/// ```
/// let sum = gonext::scope! {
///     let left = go (1..=50u64).sum::<u64>();
///     let right = go (51..=100u64).sum::<u64>();
///     left.join() + right.join()
/// };
/// assert_eq!(sum, 5050);
/// ```
///
/// # Cost: one task per chunk, not per element
///
/// A `go` with a handle, joined, costs on the order of 150 ns on a 2-core machine (a job for
/// the pool, a result slot, and the join): about what `rayon::scope`'s `spawn` costs, and
/// hundreds of times less than a `std::thread::scope` handle. For data-parallel work on small
/// elements that is far more than the work itself: rayon's `par_iter().map().collect()` spends
/// ~6 ns per element because it never makes a task per element. Start one task per chunk
/// instead, a few chunks per core: the `scope/10k_with_results_chunked` benchmark, the same
/// ten thousand results from eight `go`s, beats `par_iter().collect()`.
///
/// ```
/// let data: Vec<u64> = (0..10_000).collect();
/// let doubled: Vec<u64> = gonext::scope! {
///     let mut handles = Vec::new();
///     for chunk in data.chunks(data.len().div_ceil(8)) {
///         handles.push(go move { chunk.iter().map(|x| x * 2).collect::<Vec<u64>>() });
///     }
///     handles.into_iter().flat_map(|h| h.join()).collect()
/// };
/// assert_eq!(doubled[9_999], 19_998);
/// ```
///
/// # Differences from Go
///
/// Go's `go` statement has no result; errgroup collects only errors. This is the handle of
/// std's and Kotlin's scoped tasks, with Go's syntax kept: `let h = go f(x);` evaluates `f`
/// and `x` at the `go`.
pub struct TaskHandle<T> {
    slot: SlotRef<T>,
    /// The task set whose queued jobs the joiner may run while it waits.
    owner: usize,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(slot: SlotRef<T>, owner: usize) -> TaskHandle<T> {
        TaskHandle { slot, owner }
    }

    /// Whether the task has ended (or will never run): `join` would not block.
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }

    /// Waits for the task and returns its output.
    ///
    /// # Panics
    ///
    /// Resumes the task's panic. If the task never ran because its scope was cancelled before
    /// its `go`, unwinds with [`Canceled`]: a scope around treats that as cancellation, outside
    /// any scope it is a panic naming the `go` site. If the scope already reported the task's
    /// failure (only possible for a handle smuggled out of a failed scope), panics saying so.
    #[track_caller]
    pub fn join(self) -> T {
        let joined_at = Location::caller();
        self.try_join_at(joined_at).unwrap_or_else(|canceled| raise(canceled, joined_at))
    }

    /// [`join`](Self::join), with a task that never ran reported as `Err(Canceled)`.
    ///
    /// # Errors
    ///
    /// [`Canceled`] when the scope was cancelled before the task's `go`, or when the task
    /// itself ended by joining such a task.
    ///
    /// # Panics
    ///
    /// Resumes the task's panic.
    #[track_caller]
    pub fn try_join(self) -> Result<T, Canceled> {
        self.try_join_at(Location::caller())
    }

    fn try_join_at(self, joined_at: Site) -> Result<T, Canceled> {
        self.wait(joined_at);
        self.take(joined_at)
    }

    /// Blocks until the task ended, running this scope's queued jobs meanwhile.
    fn wait(&self, joined_at: Site) {
        while !self.slot.is_done() && pool::help(self.owner) {}
        if self.slot.is_done() {
            return;
        }
        bubble::block_on(
            std::future::poll_fn(|cx| {
                if self.slot.register(cx.waker()) { Poll::Ready(()) } else { Poll::Pending }
            }),
            joined_at,
            "TaskHandle::join",
        );
    }

    /// The output of an ended task.
    fn take(&self, joined_at: Site) -> Result<T, Canceled> {
        match self.slot.take() {
            Some(Ok(value)) => Ok(value),
            Some(Err(payload)) => panic::resume_unwind(payload),
            None if self.slot.state() == CANCELED => Err(Canceled { site: self.slot.site }),
            None => panic!(
                "TaskHandle::join at {joined_at}: the task started at {} failed and its scope already \
                 reported the failure",
                self.slot.site
            ),
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("go_site", &format_args!("{}", self.slot.site))
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Joins `handles` in the order their tasks finish: tokio's `JoinSet::join_next`, Swift's
/// `for await` over a task group, Python's `as_completed`.
///
/// Each item is what [`TaskHandle::join`] returns, as soon as that task has ended; waiting
/// for the next one is a durable block inside a virtual-time bubble.
///
/// ```
/// use gonext::{thread, time};
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let order: Vec<u64> = gonext::scope! {
///         let mut handles = Vec::new();
///         for secs in [3u64, 1, 2] {
///             handles.push(go move { thread::sleep(Duration::from_secs(secs)); secs });
///         }
///         gonext::sync::as_completed(handles).collect()
///     };
///     assert_eq!(order, [1, 2, 3]);
/// });
/// ```
///
/// # Panics
///
/// As [`TaskHandle::join`], when the next task to finish panicked or never ran.
#[track_caller]
pub fn as_completed<T>(handles: impl IntoIterator<Item = TaskHandle<T>>) -> AsCompleted<T> {
    let ready = Arc::new(ReadyQueue::default());
    let handles: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
    for (index, handle) in handles.iter().flatten().enumerate() {
        let waker = Waker::from(Arc::new(ReadyWaker { queue: Arc::clone(&ready), index }));
        if handle.slot.register(&waker) {
            ready.push(index);
        }
    }
    let remaining = handles.len();
    AsCompleted { handles, ready, remaining, site: Location::caller() }
}

/// The iterator of [`as_completed`]: each `next` waits for the next task to end (see there
/// for an example).
pub struct AsCompleted<T> {
    handles: Vec<Option<TaskHandle<T>>>,
    ready: Arc<ReadyQueue>,
    remaining: usize,
    site: Site,
}

#[derive(Default)]
struct ReadyQueue {
    inner: Mutex<(VecDeque<usize>, Option<Waker>)>,
}

impl ReadyQueue {
    fn push(&self, index: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.0.push_back(index);
        let waker = inner.1.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn poll_pop(&self, cx: &mut TaskContext<'_>) -> Poll<usize> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match inner.0.pop_front() {
            Some(index) => Poll::Ready(index),
            None => {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Queues its handle's index when the task ends.
struct ReadyWaker {
    queue: Arc<ReadyQueue>,
    index: usize,
}

impl Wake for ReadyWaker {
    fn wake(self: Arc<Self>) {
        self.queue.push(self.index);
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        let owner = self.handles.iter().flatten().next().map(|h| h.owner);
        if let Some(owner) = owner {
            loop {
                let idle =
                    self.ready.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.is_empty();
                if !idle || !pool::help(owner) {
                    break;
                }
            }
        }
        let ready = &self.ready;
        let index =
            bubble::block_on(std::future::poll_fn(|cx| ready.poll_pop(cx)), self.site, "as_completed");
        let handle = self.handles[index].take().expect("each task ends once");
        self.remaining -= 1;
        Some(handle.take(self.site).unwrap_or_else(|canceled| raise(canceled, self.site)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for AsCompleted<T> {}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("remaining", &self.remaining).finish_non_exhaustive()
    }
}

/// The slot of an `async_scope!` child, awaited through its [`AsyncTaskHandle`].
pub(crate) fn poll_slot<T>(
    slot: &Slot<T>,
    cx: &mut TaskContext<'_>,
    site: Site,
) -> Poll<Result<T, Canceled>> {
    if !slot.register(cx.waker()) {
        return Poll::Pending;
    }
    Poll::Ready(match slot.take() {
        Some(Ok(value)) => Ok(value),
        Some(Err(payload)) => panic::resume_unwind(payload),
        None if slot.state() == CANCELED => Err(Canceled { site: slot.site }),
        None => panic!(
            "a handle awaited at {site}: the child started at {} failed and its scope already reported it",
            slot.site
        ),
    })
}

/// The handle of a future started by `go` in an `async_scope!`: await it for the child's
/// output.
///
/// ```
/// let total = futures::executor::block_on(gonext::async_scope! {
///     let a = go async { 20 };
///     let b = go async { 22 };
///     a.await + b.await
/// });
/// assert_eq!(total, 42);
/// ```
///
/// # Panics
///
/// Awaiting it resumes the child's panic, and unwinds with [`Canceled`] when the child was
/// dropped (its scope failed or was cancelled) before it finished.
pub struct AsyncTaskHandle<T> {
    slot: SlotRef<T>,
    site: Site,
}

impl<T> AsyncTaskHandle<T> {
    pub(crate) fn new(slot: SlotRef<T>, site: Site) -> Self {
        AsyncTaskHandle { slot, site }
    }

    /// Whether the child has ended: awaiting would not wait.
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }

    /// The child's output, or `Err(Canceled)` if it was dropped before it finished.
    ///
    /// # Panics
    ///
    /// Resumes the child's panic.
    pub async fn try_join(self) -> Result<T, Canceled> {
        std::future::poll_fn(|cx| poll_slot(&self.slot, cx, self.site)).await
    }
}

impl<T> Future for AsyncTaskHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<T> {
        let site = self.site;
        poll_slot(&self.slot, cx, site).map(|output| output.unwrap_or_else(|canceled| raise(canceled, site)))
    }
}

impl<T> fmt::Debug for AsyncTaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTaskHandle")
            .field("go_site", &format_args!("{}", self.slot.site))
            .field("finished", &self.is_finished())
            .finish()
    }
}
