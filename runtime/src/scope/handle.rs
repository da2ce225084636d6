//! Task results: the slot a task leaves its output in, the [`TaskHandle`] that joins it, and
//! [`as_completed`], which joins many in the order they finish.
//!
//! A slot is written once by its task (its value, its panic, or "cancelled") and taken once,
//! by the handle's `join` or — for a failure nobody joined — by the scope when it ends, so
//! that an error or a panic is never lost with a dropped handle.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::panic::{self, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use super::async_scope::body_waker;
use super::slots::SlotRef;
use super::{Failure, Mode, TaskResult, pool};
use crate::sync_shim::UnsafeCell;
use crate::sync_shim::atomic::{AtomicU8, Ordering};
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
/// A waker is in `Slot::waker`: whoever ends the `EMPTY` state takes it and wakes it.
const WAITING: u8 = 4;
/// The body of the `async_scope!` running the task awaits it: whoever ends the `EMPTY` state
/// tells that scope (`fill` and `cancel` return it), which polls its body next, so the body's
/// await needs no waker.
const BODY_WAITING: u8 = 8;

/// Where one task leaves its output.
///
/// The state's `WAITING` bit hands the waker over: the registrar (the handle's owner, one at a
/// time) writes the waker only while the bit is clear, then sets it; the thread that ends the
/// `EMPTY` state takes the waker only if the bit was set at that moment. A registrar that
/// replaces its waker first clears the bit, which it can only do while the slot is `EMPTY`,
/// so the two never touch the waker at once. Checked by the models in `handle/loom.rs`.
pub(crate) struct Slot<T> {
    state: AtomicU8,
    output: std::cell::UnsafeCell<MaybeUninit<Output<T>>>,
    waker: UnsafeCell<Option<Waker>>,
    /// The `go` that started the task.
    site: Site,
}

// SAFETY: the output is written once, by the task, before `READY` is published with release
// ordering, and read once, by whoever moves the state from `READY` to `TAKEN`; so it is only
// ever accessed by one thread at a time, and it is sent between threads only if `T: Send`.
// The waker is accessed by one thread at a time too, as `WAITING` hands it over (see `Slot`).
unsafe impl<T: Send> Send for Slot<T> {}
// SAFETY: as above; `&Slot` gives access to the output and the waker only through that state
// machine.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub(crate) fn new(site: Site) -> Slot<T> {
        Slot {
            state: AtomicU8::new(EMPTY),
            output: std::cell::UnsafeCell::new(MaybeUninit::uninit()),
            waker: UnsafeCell::new(None),
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

    /// Called once by the task: stores its output and wakes the joiner; whether the body of
    /// the `async_scope!` running the task awaits it.
    pub(crate) fn fill(&self, output: Output<T>) -> bool {
        // SAFETY: only the task writes, once, and nobody reads before `READY` is published.
        unsafe { (*self.output.get()).write(output) };
        let before = self.state.fetch_or(READY, Ordering::AcqRel);
        self.wake(before)
    }

    /// Marks a task that ended cancelled (or was dropped unfinished), unless it has already
    /// left its output; whether the body of the `async_scope!` running the task awaits it.
    pub(crate) fn cancel(&self) -> bool {
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
        false
    }

    /// Wakes the registered joiner, if `before` (the state this thread moved away from
    /// `EMPTY`) says there is one; whether the scope's body awaits the task.
    fn wake(&self, before: u8) -> bool {
        if before & WAITING != 0 {
            // SAFETY: `WAITING` was set when this thread ended `EMPTY`: the registrar had
            // written the waker, and touches it no more (it reclaims it only while `EMPTY`).
            let waker = self.waker.with_mut(|waker| unsafe { (*waker).take() });
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        before & BODY_WAITING != 0
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

    /// Registers `waker` for the task's end; whether the task has already ended. Called by
    /// the handle's owner, one registrar at a time.
    fn register(&self, waker: &Waker) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        while current & WAITING != 0 {
            if current & STATE != EMPTY {
                return true;
            }
            // Take the registered waker back before replacing it; the task may end meanwhile.
            match self.state.compare_exchange_weak(
                current,
                current & !WAITING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        if current & STATE != EMPTY {
            return true;
        }
        // SAFETY: `WAITING` is clear while `EMPTY` (never set, or cleared above), so the task's
        // end will not touch the waker; there is one registrar at a time.
        self.waker.with_mut(|registered| match unsafe { &mut *registered } {
            Some(old) => old.clone_from(waker),
            registered @ None => *registered = Some(waker.clone()),
        });
        self.state.fetch_or(WAITING, Ordering::AcqRel) & STATE != EMPTY
    }

    /// Records that the body of the `async_scope!` running the task awaits it, so that its end
    /// makes the scope poll the body; whether the task has already ended. With `alone`, the
    /// caller vouches for what [`take_alone`](Self::take_alone) asks.
    fn register_body(&self, alone: bool) -> bool {
        let current = self.state.load(Ordering::Acquire);
        if current & STATE != EMPTY {
            return true;
        }
        if current & BODY_WAITING != 0 {
            return false;
        }
        if alone {
            self.state.store(current | BODY_WAITING, Ordering::Relaxed);
            return false;
        }
        self.state.fetch_or(BODY_WAITING, Ordering::AcqRel) & STATE != EMPTY
    }

    /// [`take`](Self::take) by a load and a store instead of a compare-and-swap.
    ///
    /// # Safety
    ///
    /// No other thread writes the state or takes meanwhile: the caller polls, on the thread
    /// running an `async_scope!`'s children, the body of that scope, whose child this slot is
    /// (its end runs on that thread, outside the body's poll; only its handle takes from it).
    unsafe fn take_alone(&self) -> Option<Output<T>> {
        let current = self.state.load(Ordering::Acquire);
        if current & STATE != READY {
            return None;
        }
        self.state.store((current & !STATE) | TAKEN, Ordering::Relaxed);
        // SAFETY: `READY` was published after the write, and nobody else takes, so the output
        // is initialized, nobody else touches it, and it is read only here.
        Some(unsafe { self.output.get().cast::<Output<T>>().read() })
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // A load rather than `get_mut`, which loom's atomics lack; `&mut self` orders it.
        if self.state.load(Ordering::Acquire) & STATE == READY {
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
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(slot: SlotRef<T>) -> TaskHandle<T> {
        TaskHandle { slot }
    }

    /// Whether the task has ended (or will never run): `join` would not block.
    pub fn is_finished(&self) -> bool {
        self.slot.is_done()
    }

    /// Waits for the task and returns its output. If no worker has started the task yet, the
    /// join runs it on the calling thread; it never runs any other task meanwhile, so a task
    /// that waits for what the caller does after the join cannot block the join.
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

    /// Blocks until the task ended; runs the task here if no worker has taken it yet.
    fn wait(&self, joined_at: Site) {
        if self.slot.is_done() || pool::run_queued(self.slot.addr()) {
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
///
/// Awaited by the body of the scope that runs the child (`body` is that scope's body cell),
/// the slot records only that, and the child's end has the scope poll its body: no waker is
/// cloned, stored or woken for the most common await of a handle.
pub(crate) fn poll_slot<T>(
    slot: &Slot<T>,
    cx: &mut TaskContext<'_>,
    site: Site,
    body: usize,
) -> Poll<Result<T, Canceled>> {
    // A slot still `EMPTY` has a live child, so its scope is alive and no other scope's body
    // cell can have its address: the check cannot mistake another scope's body for its own.
    let alone = body_waker(cx.waker(), body);
    let ended = match alone {
        Some(alone) => slot.register_body(alone),
        None => slot.register(cx.waker()),
    };
    if !ended {
        return Poll::Pending;
    }
    let taken = if alone == Some(true) {
        // SAFETY: this thread polls the body of the scope whose children run on it, and the
        // slot is a child's of that scope (or of a scope that is gone, whose slots nobody else
        // writes any more).
        unsafe { slot.take_alone() }
    } else {
        slot.take()
    };
    Poll::Ready(match taken {
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
    /// Its slot, which also keeps the `go` site.
    slot: SlotRef<T>,
    /// The address of its scope's body cell (see `poll_slot`); never dereferenced.
    body: usize,
}

impl<T> AsyncTaskHandle<T> {
    pub(crate) fn new(slot: SlotRef<T>, body: usize) -> Self {
        AsyncTaskHandle { slot, body }
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
        std::future::poll_fn(|cx| poll_slot(&self.slot, cx, self.slot.site, self.body)).await
    }
}

impl<T> Future for AsyncTaskHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<T> {
        let site = self.slot.site;
        poll_slot(&self.slot, cx, site, self.body)
            .map(|output| output.unwrap_or_else(|canceled| raise(canceled, site)))
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

#[cfg(all(test, loom))]
mod loom;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Slot, poll_slot};
    use crate::scope::slots::SlotRef;
    use std::panic::Location;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    /// Counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Each of many tasks ends on its own thread while its joiner registers one waker and then
    /// another: whenever a registration says "not yet", the waker it left is woken.
    #[test]
    fn a_waker_registered_while_the_task_ends_on_another_thread_is_woken() {
        for round in 0..2_000u64 {
            let (slot, task) = SlotRef::pair(Slot::new(Location::caller()), None);
            let filler = std::thread::spawn(move || {
                task.fill(Ok(round));
            });
            let first = Arc::new(Counter(AtomicUsize::new(0)));
            let second = Arc::new(Counter(AtomicUsize::new(0)));
            let first_pending = !slot.register(&Waker::from(Arc::clone(&first)));
            let second_pending = !slot.register(&Waker::from(Arc::clone(&second)));
            filler.join().unwrap();
            if second_pending {
                assert_eq!(second.0.load(Ordering::SeqCst), 1, "the last waker registered is woken");
                assert_eq!(first.0.load(Ordering::SeqCst), 0, "a replaced waker is not");
            } else if first_pending {
                assert_eq!(first.0.load(Ordering::SeqCst), 1, "the waker left in the slot is woken");
            }
            let waker = Waker::from(Arc::clone(&first));
            let polled = poll_slot(&slot, &mut Context::from_waker(&waker), Location::caller(), 0);
            assert!(matches!(polled, Poll::Ready(Ok(value)) if value == round));
        }
    }
}
