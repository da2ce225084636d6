//! The runtime of `scope!`, `try_scope!`, `gonext::scope` and `sync::Group`: tasks started by
//! `go` on the worker pool, joined before the scope returns.
//!
//! The three open questions of Go's structured-concurrency proposal, answered:
//!
//! - **Panics**: a panicking task cancels the scope's `Context` (unless the scope supervises),
//!   the scope waits for every other task, then the panic resumes in the parent with its
//!   original payload (the `go` site is printed to stderr as it resumes). A task with a handle
//!   keeps its panic for the join, which resumes it there.
//! - **Cancellation**: every task can read the scope's `Context`, which derives from the
//!   context of the scope body or task the scope is opened in (the thread-local `ENCLOSING`),
//!   so cancellation flows into nested scopes. The first error or panic cancels it; `go` in a
//!   cancelled scope starts nothing, and the scope still waits for the tasks already running —
//!   nothing is killed. A join of a task that never ran unwinds with [`Canceled`], which every
//!   scope reads as "cancelled", like Kotlin's `CancellationException`.
//! - **Errors**: the first error is returned (`errors = all`: every error, in the order they
//!   happened). A handle's join takes its task's error; failures nobody joined are held in
//!   their slots and taken by the scope at its end, so none is lost with a dropped handle.
//!
//! At its end, the scope's thread runs the scope's still queued tasks itself rather than only
//! sleeping: whatever such a task waits for, the scope's end waits for too. A join runs only
//! the task it waits for (if no worker has taken it yet), never another: that one might wait
//! for what the joiner does after the join, and would then wait forever (a Go `Wait` never
//! runs a goroutine either). The task count is kept so that the parent and the workers do not
//! trade one cache line per task: the parent's `go`s draw on counts added in advance. A
//! handle's result slot comes from a block of slots the scope carves up (`slots.rs`), not from
//! an allocation per `go`.
//!
//! Tasks borrow from the parent's stack, as with `std::thread::scope`: the scope joins them
//! even when the parent's own code panics, so no borrow outlives its data. Inside a
//! virtual-time bubble each task is a member while it runs, and the join is a durable block.

mod async_scope;
mod handle;
mod job;
pub(crate) mod pool;
mod slots;

pub use async_scope::AsyncScope;
pub use handle::{AsCompleted, AsyncTaskHandle, Canceled, TaskHandle, as_completed};

use std::any::Any;
use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handle::{Held, HeldSlot, Slot};
use slots::{SlotCursor, SlotRef};

use crate::atomic::CacheLine;
use crate::context::{Cancel, Context};
use crate::sync::waiters::Waiters;
use crate::sync::{Condvar, Mutex as BubbleMutex, WaitGroup};
use crate::time::Instant;
use crate::time::bubble::{self, Site};

/// How many `go`s on the owning thread one update of a task set's `pending` counts for.
const CREDIT: usize = 64;

/// A task set's [`SlotCursor`], used only on the set's owning thread.
struct OwnerCursor(std::cell::UnsafeCell<SlotCursor>);

// SAFETY: the cursor is reached only through `TaskSet::new_slot` on the owning thread (other
// threads get slots of their own), so it is never used from two threads at once.
unsafe impl Sync for OwnerCursor {}

/// An id of the calling thread: the address of a thread-local, cheaper than `ThreadId`.
fn this_thread() -> usize {
    thread_local! {
        static MARKER: u8 = const { 0 };
    }
    MARKER.with(|marker| std::ptr::from_ref(marker).addr())
}

thread_local! {
    /// The context of the scope body or task running on this thread (null: none), from which a
    /// scope opened here derives its own.
    static ENCLOSING: Cell<*const Context> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` as code of the scope or task whose context is `ctx`.
pub(crate) fn with_enclosing<R>(ctx: &Context, f: impl FnOnce() -> R) -> R {
    struct Restore(*const Context);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENCLOSING.set(self.0);
        }
    }
    let _restore = Restore(ENCLOSING.replace(ctx));
    f()
}

/// The context of the scope body or task running on this thread.
pub(crate) fn enclosing_context() -> Option<Context> {
    let ctx = ENCLOSING.get();
    // SAFETY: a non-null pointer was set by `with_enclosing`, whose borrow of the context
    // lasts until it restores the previous value, after `f` (this caller) returned.
    (!ctx.is_null()).then(|| unsafe { (*ctx).clone() })
}

/// Whether a scope body or a task is running on this thread.
pub(crate) fn in_scope() -> bool {
    !ENCLOSING.get().is_null()
}

/// What a scope's tasks may fail with: [`Infallible`] for `scope!`, [`Fallible<E>`] for
/// `try_scope!`; it is the third parameter of [`Scope`].
///
/// ```
/// use gonext::sync::{Fallible, Scope};
///
/// fn start_checks<'scope>(s: &'scope Scope<'scope, '_, Fallible<String>>) {
///     s.go(|_ctx| Err::<(), _>("bad input".to_owned()));
/// }
///
/// assert_eq!(gonext::try_scope(|s| {
///     start_checks(s);
///     Ok(())
/// }), Err("bad input".to_owned()));
/// ```
pub trait Mode {
    /// The error a task may return.
    type Error: Send;
}

impl Mode for Infallible {
    type Error = Infallible;
}

/// The mode of a scope whose tasks may fail with `E`: see [`TryScope`] and the example of
/// [`Mode`].
pub struct Fallible<E>(PhantomData<fn() -> E>);

impl<E> fmt::Debug for Fallible<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fallible")
    }
}

impl<E: Send> Mode for Fallible<E> {
    type Error = E;
}

/// The output of a task in a scope of mode `M`: any value in an infallible scope; `()` or a
/// `Result<T, E>` in a fallible one, whose `Err` is a failure.
///
/// ```
/// let (word, parsed) = gonext::scope(|s| {
///     let word = s.go(|_ctx| "any value"); // an infallible scope takes any output
///     let parsed = s.go(|_ctx| "7".parse::<u8>()); // here a `Result` is just a value
///     (word.join(), parsed.join())
/// });
/// assert_eq!((word, parsed), ("any value", Ok(7)));
/// ```
#[diagnostic::on_unimplemented(
    message = "a task of a fallible scope returns `()` or `Result<T, E>`, not `{Self}`",
    label = "this task's output cannot fail the scope",
    note = "wrap a value that cannot fail in `Ok(…)`, or start the task in an infallible `scope!`"
)]
pub trait TaskResult<M: Mode>: Send {
    /// Whether the task failed.
    fn is_failure(&self) -> bool;
    /// The task's error, if it failed.
    fn into_error(self) -> Option<M::Error>;
}

impl<T: Send> TaskResult<Infallible> for T {
    fn is_failure(&self) -> bool {
        false
    }

    fn into_error(self) -> Option<Infallible> {
        None
    }
}

impl<E: Send> TaskResult<Fallible<E>> for () {
    fn is_failure(&self) -> bool {
        false
    }

    fn into_error(self) -> Option<E> {
        None
    }
}

impl<T: Send, E: Send> TaskResult<Fallible<E>> for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }

    fn into_error(self) -> Option<E> {
        self.err()
    }
}

/// The output of a [`Group`](crate::sync::Group) or [`Manager`](crate::sync::Manager) task:
/// `()` or `Result<(), E>`, as an errgroup function returns only an error.
///
/// ```
/// let group = gonext::sync::Group::<String>::new();
/// group.go(|_ctx| {}); // `()` cannot fail
/// group.go(|_ctx| Err("failed".to_owned()));
/// assert_eq!(group.wait(), Err("failed".to_owned()));
/// ```
#[diagnostic::on_unimplemented(
    message = "a Group or Manager task returns `()` or `Result<(), E>`, not `{Self}`",
    note = "errgroup's functions return only an error; send values through a channel or use `gonext::try_scope`"
)]
pub trait GroupResult<E: Send>: TaskResult<Fallible<E>> {}

impl<E: Send> GroupResult<E> for () {}

impl<E: Send> GroupResult<E> for Result<(), E> {}

/// Options of a scope, set by the macros' `key = value;` prefix.
#[derive(Debug, Default)]
pub struct Options {
    /// At most this many tasks run at once; `go` waits for a slot.
    pub limit: Option<usize>,
    /// Collect every error instead of the first.
    pub all_errors: bool,
    /// A failure does not cancel the siblings (Kotlin's `supervisorScope`).
    pub supervise: bool,
    /// The parent context; by default the enclosing scope's or task's, else `background()`.
    pub context: Option<Context>,
    /// The scope's context expires at this instant.
    pub deadline: Option<Instant>,
    /// The scope's context expires this long after the scope opens.
    pub timeout: Option<Duration>,
}

impl Options {
    /// The context a scope with these options derives its own from, and its deadline.
    fn parent(&mut self) -> (Context, Option<Instant>) {
        let parent = self.context.take().or_else(enclosing_context).unwrap_or_default();
        let timeout = self.timeout.map(|timeout| Instant::now() + timeout);
        let deadline = match (self.deadline, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (parent, deadline)
    }
}

/// A task's panic: its payload and the `go` that started the task.
pub(crate) type TaskPanic = (Box<dyn Any + Send>, Site);

/// A failure: a task's error, or a panic's payload and the `go` that started the task.
pub(crate) enum Failure<E> {
    Error(E),
    Panic(Box<dyn Any + Send>, Site),
}

/// A failure as the task set records it when it happens: in hand, or held in the slot of a
/// handle that may still join it.
enum Recorded<'a, E> {
    Now(Failure<E>),
    Held(Box<dyn Held<E> + 'a>),
}

/// The first failure of a task set, as [`Manager::failed`](crate::sync::Manager::failed) reports it.
#[derive(Clone)]
pub(crate) struct FailureReport {
    pub(crate) site: Site,
    pub(crate) panicked: bool,
    /// The panic's message, when its payload is a string.
    pub(crate) message: Option<String>,
}

struct Outcome<'a, E> {
    records: Vec<Recorded<'a, E>>,
    first_failure: Option<FailureReport>,
    failure_waiters: Waiters,
}

/// Running tasks, bounded by the scope's limit.
struct Slots {
    running: BubbleMutex<usize>,
    freed: Condvar,
    limit: usize,
}

/// What became of a `go`.
pub(crate) enum Launch {
    Started,
    /// No slot was free (only when not waiting for one).
    NoSlot,
    /// The scope was cancelled before the `go`: the task will never run.
    Canceled,
}

/// The tasks of a scope or group: their context, outcome, count and slots. `'a` is how long
/// the tasks' outputs may borrow.
pub(crate) struct TaskSet<'a, E> {
    ctx: Context,
    cancel: Mutex<Option<Cancel>>,
    outcome: Mutex<Outcome<'a, E>>,
    /// Unfinished tasks, plus one for the owner, plus `credit`; whoever takes it to zero
    /// releases `joined`. On a cache line of its own: the workers write it per task. Unused
    /// by groups, which count in `joined` itself so that they can be joined repeatedly.
    pending: CacheLine<AtomicUsize>,
    /// Counts added to `pending` in advance for `go`s on the owning thread, which then touches
    /// `pending` once per [`CREDIT`] tasks rather than trading its cache line with the
    /// workers for each one. Returned at the join.
    credit: AtomicUsize,
    /// The thread whose `go`s draw on `credit` (see [`this_thread`]); 0: none.
    owner_thread: usize,
    /// Where the owning thread's `go`s take their handles' slots from.
    cursor: OwnerCursor,
    joined: WaitGroup,
    slots: Mutex<Option<Arc<Slots>>>,
    /// Whether `slots` was ever set, so that an unlimited `go` takes no lock for it.
    limited: AtomicBool,
    all_errors: bool,
    supervise: bool,
    /// A group (errgroup): joined any number of times, and its tasks start even once its
    /// context is done, as Go's do; a scope's `go` after cancellation starts nothing.
    group: bool,
    /// The bubble the set was made in, which a wait for its first failure blocks in.
    bubble: Option<Arc<bubble::BubbleState>>,
}

impl<'a, E: Send> TaskSet<'a, E> {
    /// The tasks of a scope, with a context derived from `parent` (expiring at `deadline`).
    #[track_caller]
    fn scope(parent: &Context, deadline: Option<Instant>, options: &Options) -> Self {
        let (ctx, cancel) = match deadline {
            Some(deadline) => parent.with_deadline(deadline),
            None => parent.with_cancel(),
        };
        let joined = WaitGroup::new();
        joined.add(1);
        TaskSet {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            outcome: Mutex::new(Outcome {
                records: Vec::new(),
                first_failure: None,
                failure_waiters: Waiters::new(),
            }),
            pending: CacheLine(AtomicUsize::new(1)),
            credit: AtomicUsize::new(0),
            owner_thread: this_thread(),
            cursor: OwnerCursor(std::cell::UnsafeCell::new(SlotCursor::new())),
            joined,
            slots: Mutex::new(options.limit.map(Slots::new)),
            limited: AtomicBool::new(options.limit.is_some()),
            all_errors: options.all_errors,
            supervise: options.supervise,
            group: false,
            bubble: None,
        }
    }

    /// The tasks of a group, with a context derived from `parent`.
    #[track_caller]
    pub(crate) fn group(parent: &Context) -> Self {
        let (ctx, cancel) = parent.with_cancel();
        TaskSet {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            outcome: Mutex::new(Outcome {
                records: Vec::new(),
                first_failure: None,
                failure_waiters: Waiters::new(),
            }),
            pending: CacheLine(AtomicUsize::new(0)),
            credit: AtomicUsize::new(0),
            owner_thread: 0,
            cursor: OwnerCursor(std::cell::UnsafeCell::new(SlotCursor::new())),
            joined: WaitGroup::new(),
            slots: Mutex::new(None),
            limited: AtomicBool::new(false),
            all_errors: true,
            supervise: false,
            group: true,
            bubble: bubble::current(),
        }
    }

    /// Counts one more unfinished task.
    fn count_launch(&self) {
        if self.group {
            self.joined.add(1);
            return;
        }
        if self.owner_thread != this_thread() {
            self.pending.0.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let credit = self.credit.load(Ordering::Relaxed);
        if credit > 0 {
            self.credit.store(credit - 1, Ordering::Relaxed);
            return;
        }
        self.pending.0.fetch_add(CREDIT, Ordering::Relaxed);
        self.credit.store(CREDIT - 1, Ordering::Relaxed);
    }

    /// A slot for a task's output: from the set's blocks on the owning thread, from a block
    /// of its own elsewhere.
    fn new_slot<T>(&self, slot: Slot<T>) -> SlotRef<T> {
        if self.owner_thread != this_thread() {
            return SlotRef::new(slot, None);
        }
        // SAFETY: only the owning thread reaches the cursor, and `SlotRef::new` runs no job
        // that could start another `go` while this borrow lasts.
        SlotRef::new(slot, Some(unsafe { &mut *self.cursor.0.get() }))
    }

    fn slots(&self) -> Option<Arc<Slots>> {
        if !self.limited.load(Ordering::Acquire) {
            return None;
        }
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Bounds the running tasks from now on (tasks already running are not counted).
    pub(crate) fn set_limit(&self, limit: usize) {
        *self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Slots::new(limit));
        self.limited.store(true, Ordering::Release);
    }

    /// Takes a slot, waiting for one if `wait`; `None` when none is free and not waiting.
    ///
    /// # Panics
    ///
    /// When waiting under a limit of 0, which would never end.
    fn acquire(&self, wait: bool, site: Site) -> Option<Option<Arc<Slots>>> {
        let Some(slots) = self.slots() else { return Some(None) };
        assert!(
            !(wait && slots.limit == 0),
            "go at {site}: the limit is 0, so no task may start (errgroup's SetLimit(0)); \
             raise it with set_limit, or use try_go, which returns false"
        );
        let running = slots.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut running = if wait {
            slots
                .freed
                .wait_while(running, |running| *running >= slots.limit)
                .unwrap_or_else(|p| p.into_inner())
        } else if *running >= slots.limit {
            return None;
        } else {
            running
        };
        *running += 1;
        drop(running);
        Some(Some(slots))
    }

    /// Starts `task` after taking a slot (waiting for one if `wait`), leaving its output in
    /// `handle` if there is one. A scope that is cancelled starts nothing. `spawner` puts the
    /// job, wrapped for bubble membership, on the pool.
    pub(crate) fn launch<'s, M, R>(
        set: impl std::ops::Deref<Target = TaskSet<'a, E>> + Send + 's,
        task: impl FnOnce(&Context) -> R + Send + 's,
        site: Site,
        wait: bool,
        handle: Option<SlotRef<R>>,
        spawner: impl Spawner<'s>,
    ) -> Launch
    where
        M: Mode<Error = E> + 'a + 's,
        R: TaskResult<M> + 'a + 's,
        E: 'a + 's,
    {
        let Some(slot) = set.acquire(wait, site) else { return Launch::NoSlot };
        if !set.group && set.ctx.is_done() {
            set.free(slot);
            return Launch::Canceled;
        }
        set.count_launch();
        let owner = set.owner_id();
        let key = handle.as_ref().map_or(0, SlotRef::addr);
        let run = move || {
            let result = with_enclosing(&set.ctx, || catch_unwind(AssertUnwindSafe(|| task(&set.ctx))));
            set.finish::<M, R>(result, site, slot, handle);
        };
        match bubble::current() {
            None => spawner.spawn(run, owner, key),
            Some(bubble) => {
                let member = bubble.add_member(None, site, false);
                let run_as_member = move || {
                    let membership = bubble::enter_thread_member(&bubble, member);
                    bubble::with_membership(membership, run);
                    bubble.remove_member(member);
                };
                // Owned by no set: in a bubble, a task runs on a thread of its own member.
                spawner.spawn(run_as_member, 0, 0);
            }
        }
        Launch::Started
    }

    fn finish<M, R>(
        &self,
        result: std::thread::Result<R>,
        site: Site,
        slot: Option<Arc<Slots>>,
        handle: Option<SlotRef<R>>,
    ) where
        M: Mode<Error = E> + 'a,
        R: TaskResult<M> + 'a,
    {
        let held = |slot: &SlotRef<R>| Recorded::Held(Box::new(HeldSlot::<M, R>(slot.clone(), PhantomData)));
        let failed = match result {
            Err(payload) if payload.is::<Canceled>() => {
                if let Some(handle) = handle {
                    handle.cancel();
                }
                None
            }
            Ok(output) => {
                let failed = output.is_failure();
                match handle {
                    Some(handle) => {
                        if failed {
                            self.record(held(&handle));
                        }
                        handle.fill(Ok(output));
                    }
                    None => {
                        if let Some(error) = output.into_error() {
                            self.record(Recorded::Now(Failure::Error(error)));
                        }
                    }
                }
                failed.then_some((false, None))
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                match handle {
                    Some(handle) => {
                        self.record(held(&handle));
                        handle.fill(Err(payload));
                    }
                    None => self.record(Recorded::Now(Failure::Panic(payload, site))),
                }
                Some((true, message))
            }
        };
        if let Some((panicked, message)) = failed {
            if !self.supervise {
                self.cancel_all();
            }
            self.report(FailureReport { site, panicked, message });
        }
        self.free(slot);
        self.release();
    }

    fn record(&self, failure: Recorded<'a, E>) {
        self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).records.push(failure);
    }

    /// Records the first failure for [`wait_failure`](Self::poll_failure) and wakes its waiters.
    fn report(&self, report: FailureReport) {
        let mut outcome = self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if outcome.first_failure.is_some() {
            return;
        }
        outcome.first_failure = Some(report);
        let waiters = outcome.failure_waiters.take_all();
        drop(outcome);
        waiters.into_iter().for_each(std::task::Waker::wake);
    }

    fn free(&self, slot: Option<Arc<Slots>>) {
        if let Some(slots) = slot {
            *slots.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) -= 1;
            slots.freed.notify_one();
        }
    }

    /// Drops one pending count; the last one releases the join.
    fn release(&self) {
        if self.group || self.pending.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.joined.done();
        }
    }

    pub(crate) fn cancel_all(&self) {
        let cancel = self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        drop(cancel);
    }

    /// The id that marks this set's jobs, so its joining thread can find them.
    fn owner_id(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Runs this set's queued jobs on the calling thread while the queue ends with one.
    pub(crate) fn help(&self) {
        while pool::help(self.owner_id()) {}
    }

    /// Waits for every task (durably, inside a bubble); a scope waits once, a group any
    /// number of times.
    #[track_caller]
    fn wait(&self) {
        if !self.group {
            // Unused credit never takes `pending` to zero: the owner's count is still in it.
            self.pending.0.fetch_sub(self.credit.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            self.release();
        }
        self.joined.wait();
    }

    /// Takes the failures recorded so far, in the order they happened, leaving out those a
    /// handle has joined: the errors (the first, or all) and the first panic with its `go`
    /// site (later panics are dropped).
    pub(crate) fn take_failures(&self) -> (Vec<E>, Option<TaskPanic>) {
        let records =
            std::mem::take(&mut self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).records);
        let mut errors = Vec::new();
        let mut panic = None;
        for record in records {
            let failure = match record {
                Recorded::Now(failure) => failure,
                Recorded::Held(held) => match held.take_failure() {
                    Some(failure) => failure,
                    None => continue,
                },
            };
            match failure {
                Failure::Error(error) if self.all_errors || errors.is_empty() => errors.push(error),
                Failure::Error(_) => {}
                Failure::Panic(payload, site) => {
                    panic.get_or_insert((payload, site));
                }
            }
        }
        (errors, panic)
    }

    /// [`take_failures`](Self::take_failures), with a task's panic resumed here.
    pub(crate) fn take_errors(&self) -> Vec<E> {
        let (errors, panic) = self.take_failures();
        if let Some((payload, go_site)) = panic {
            resume_task_panic(payload, go_site);
        }
        errors
    }

    /// Waits for every task of a group started so far (durably, inside a bubble).
    #[track_caller]
    pub(crate) fn join_group(&self) {
        self.wait();
    }

    /// The async form of [`wait`](Self::wait), for groups.
    pub(crate) async fn wait_async(&self) {
        self.joined.wait_async().await;
    }
}

impl<E> TaskSet<'_, E> {
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Ready with the first failure once a task failed.
    pub(crate) fn poll_failure(
        &self,
        cx: &mut std::task::Context<'_>,
        registration: &mut Option<u64>,
        site: Site,
    ) -> std::task::Poll<FailureReport> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(report) = &outcome.first_failure {
            let report = report.clone();
            outcome.failure_waiters.forget(registration);
            return std::task::Poll::Ready(report);
        }
        outcome.failure_waiters.register(registration, cx.waker());
        bubble::note_pending_on(self.bubble.as_ref(), site, "Manager::failed");
        std::task::Poll::Pending
    }

    /// Forgets a waiter of [`poll_failure`](Self::poll_failure).
    pub(crate) fn forget_failure_waiter(&self, registration: &mut Option<u64>) {
        if registration.is_some() {
            self.outcome
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .failure_waiters
                .forget(registration);
        }
    }
}

/// Resumes a task's panic where its scope or group is joined, saying which `go` started it.
pub(crate) fn resume_task_panic(payload: Box<dyn Any + Send>, go_site: Site) -> ! {
    if !payload.is::<bubble::BubbleAborted>() {
        eprintln!("gonext: the task started at {go_site} panicked; resuming the panic where it is joined");
    }
    panic::resume_unwind(payload)
}

/// The message of a panic payload, when it is a string.
fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

impl Slots {
    fn new(limit: usize) -> Arc<Slots> {
        Arc::new(Slots { running: BubbleMutex::new(0), freed: Condvar::new(), limit })
    }
}

/// A scope: start tasks with [`go`](Self::go); they are all joined before the scope ends.
/// Made by [`scope`](crate::scope()) and by the [`scope!`](crate::scope!) macro (name it with
/// `scope!(|s| …)`); see [`TryScope`] for scopes whose tasks may fail.
///
/// `M` is the scope's mode: [`Infallible`] (tasks return any value) or [`Fallible<E>`] (tasks
/// return `()` or `Result<T, E>`). Tasks may capture the scope and start siblings with it.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// /// Counts the nodes of a tree of `depth` levels of `width` children, one task per node.
/// fn count<'scope>(s: &'scope gonext::sync::Scope<'scope, '_>, total: &'scope AtomicUsize, depth: u32, width: u32) {
///     total.fetch_add(1, Ordering::Relaxed);
///     for _ in 0..if depth == 0 { 0 } else { width } {
///         s.go(move |_ctx| count(s, total, depth - 1, width));
///     }
/// }
///
/// let total = AtomicUsize::new(0);
/// gonext::scope(|s| count(s, &total, 3, 3));
/// assert_eq!(total.into_inner(), 1 + 3 + 9 + 27);
/// ```
pub struct Scope<'scope, 'env: 'scope, M: Mode = Infallible> {
    tasks: TaskSet<'env, M::Error>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
    mode: PhantomData<fn() -> M>,
}

/// A scope whose tasks return `()` or `Result<T, E>`: the first `Err` cancels the scope's
/// context and becomes the scope's error. Made by [`try_scope`](crate::try_scope()) and the
/// [`try_scope!`](crate::try_scope!) macro.
///
/// ```
/// let failed: Result<(), &str> = gonext::try_scope(|s: &gonext::sync::TryScope<'_, '_, &str>| {
///     s.go(|_ctx| Err::<(), _>("first"));
///     Ok(())
/// });
/// assert_eq!(failed, Err("first"));
/// ```
pub type TryScope<'scope, 'env, E> = Scope<'scope, 'env, Fallible<E>>;

impl<M: Mode> fmt::Debug for Scope<'_, '_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("context", &self.tasks.ctx)
            .field("pending", &self.tasks.pending.0.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<M: Mode> Scope<'_, '_, M> {
    /// The scope's context: cancelled by the first failure (under the default policy), by
    /// [`cancel`](Self::cancel), by its deadline, or with the context it derives from.
    pub fn context(&self) -> &Context {
        self.tasks.context()
    }

    /// Cancels the scope's context: running tasks see it, and `go` starts no new task
    /// (Trio's `cancel_scope.cancel()`, moro's `cancel`).
    pub fn cancel(&self) {
        self.tasks.cancel_all();
    }
}

impl<'scope, 'env, M: Mode + 'env> Scope<'scope, 'env, M>
where
    M::Error: 'env,
{
    /// Starts `task` on the pool, after waiting for a slot under a `limit`, and returns its
    /// handle. Once the scope is cancelled, the task is not started and its handle reports
    /// [`Canceled`].
    #[track_caller]
    pub fn go<T: TaskResult<M> + 'env>(
        &'scope self,
        task: impl FnOnce(&Context) -> T + Send + 'scope,
    ) -> TaskHandle<T> {
        self.start(task, true).expect("a waiting go always gets a slot")
    }

    /// Starts `task` if a slot is free (always, without a `limit`); `None` if none was.
    #[track_caller]
    pub fn try_go<T: TaskResult<M> + 'env>(
        &'scope self,
        task: impl FnOnce(&Context) -> T + Send + 'scope,
    ) -> Option<TaskHandle<T>> {
        self.start(task, false)
    }

    #[track_caller]
    fn start<T: TaskResult<M> + 'env>(
        &'scope self,
        task: impl FnOnce(&Context) -> T + Send + 'scope,
        wait: bool,
    ) -> Option<TaskHandle<T>> {
        let site = Location::caller();
        let slot = self.tasks.new_slot(Slot::new(site));
        let launched =
            TaskSet::launch::<M, T>(&self.tasks, task, site, wait, Some(slot.clone()), ScopedSpawner);
        match launched {
            Launch::Started => Some(TaskHandle::new(slot)),
            Launch::NoSlot => None,
            Launch::Canceled => Some(TaskHandle::new(self.tasks.new_slot(Slot::canceled(site)))),
        }
    }

    /// Starts `task` without a handle: `go` used as a statement.
    #[doc(hidden)]
    #[track_caller]
    pub fn spawn<R: TaskResult<M> + 'env>(&'scope self, task: impl FnOnce(&Context) -> R + Send + 'scope) {
        TaskSet::launch::<M, R>(&self.tasks, task, Location::caller(), true, None, ScopedSpawner);
    }
}

/// Puts jobs that may borrow for `'a` on the pool.
pub(crate) trait Spawner<'a> {
    /// Submits `job`, marked as belonging to the task set `owner` (0: none) and as the task
    /// whose result slot is at `key` (0: none).
    fn spawn(self, job: impl FnOnce() + Send + 'a, owner: usize, key: usize);
}

/// For jobs that borrow nothing: `sync::Group`'s.
pub(crate) struct DetachedSpawner;

impl Spawner<'static> for DetachedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'static, owner: usize, key: usize) {
        pool::submit(pool::Job::new(job).owned_by(owner).keyed(key));
    }
}

/// For the jobs of a [`Scope`], which borrow for the scope's lifetime.
struct ScopedSpawner;

impl<'scope> Spawner<'scope> for ScopedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'scope, owner: usize, key: usize) {
        // SAFETY: the job borrows data that lives for 'scope. `run_scope` does not return
        // (nor unwind) before every started task has called `finish`, which is the job's
        // last use of those borrows: the join is reached on every path, including a panic of
        // the scope's body. So the job never touches 'scope data after 'scope ends.
        pool::submit(unsafe { pool::Job::new_unchecked(job) }.owned_by(owner).keyed(key));
    }
}

/// Runs `body` with a new scope and joins every task it started. The body's error (or, after
/// the join, the first task error, or all of them) comes back in `Err`, in the order they
/// happened; a panic of a task or of `body` resumes after the join.
#[track_caller]
pub fn run_scope<'env, M: Mode + 'env, T>(
    mut options: Options,
    body: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env, M>) -> Result<T, M::Error>,
) -> Result<T, Vec<M::Error>>
where
    M::Error: 'env,
{
    let site = Location::caller();
    let (parent, deadline) = options.parent();
    let scope = Scope {
        tasks: TaskSet::scope(&parent, deadline, &options),
        scope: PhantomData,
        env: PhantomData,
        mode: PhantomData,
    };
    drop(parent);
    let body_result = with_enclosing(&scope.tasks.ctx, || catch_unwind(AssertUnwindSafe(|| body(&scope))));
    let value = match body_result {
        Ok(Ok(value)) => Some(Ok(value)),
        Ok(Err(error)) => {
            scope.tasks.record(Recorded::Now(Failure::Error(error)));
            scope.tasks.cancel_all();
            None
        }
        Err(payload) => {
            scope.tasks.cancel_all();
            Some(Err(payload))
        }
    };
    scope.tasks.help();
    scope.tasks.wait();
    let errors = catch_unwind(AssertUnwindSafe(|| scope.tasks.take_errors()));
    let value = match value {
        Some(Err(payload)) if !payload.is::<Canceled>() => panic::resume_unwind(payload),
        other => other,
    };
    let errors = errors.unwrap_or_else(|payload| panic::resume_unwind(payload));
    match value {
        Some(Ok(value)) if errors.is_empty() => Ok(value),
        Some(Err(canceled)) if errors.is_empty() => {
            let canceled = *canceled.downcast::<Canceled>().expect("only a Canceled body is left");
            if in_scope() {
                panic::resume_unwind(Box::new(canceled));
            }
            panic!(
                "the scope at {site} was cancelled ({}), and its body joined a task that never ran: {canceled}; \
                 TaskHandle::try_join handles that case",
                scope.tasks.ctx.err().map_or_else(|| "by a task".to_owned(), |err| err.to_string()),
            )
        }
        _ => Err(errors),
    }
}

/// Opens a scope, runs `f` with it, and joins every task `f` started before returning `f`'s
/// value: [`std::thread::scope`]'s shape for gonext's pool, the library form of
/// [`scope!`](crate::scope!).
///
/// Tasks may borrow anything that outlives the call, and may start siblings through the
/// scope they capture. The scope's [`Context`] derives from the scope or task this is called
/// in, so an outer cancellation reaches these tasks too.
///
/// ```
/// let words = ["go", "statement", "scope"];
/// let lengths = gonext::scope(|s| {
///     let handles: Vec<_> = words.iter().map(|w| s.go(move |_ctx| w.len())).collect();
///     handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
/// });
/// assert_eq!(lengths, [2, 9, 5]);
/// ```
///
/// # Panics
///
/// A task's panic cancels the scope's context, waits for the other tasks, and resumes here
/// with its original payload.
///
/// # Differences from Go
///
/// Go's `go` statement is unstructured; this is the nursery of Go's proposal #40221, with the
/// scope passed explicitly as in `std::thread::scope`.
#[track_caller]
pub fn scope<'env, T>(f: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T) -> T {
    match run_scope::<Infallible, T>(Options::default(), |s| Ok(f(s))) {
        Ok(value) => value,
        Err(errors) => match errors.into_iter().next() {
            Some(never) => match never {},
            None => unreachable!("a failed scope has an error"),
        },
    }
}

/// [`scope`](crate::scope()) for tasks that may fail: the first `Err` of a task (or of `f`)
/// cancels the scope's context, and comes back once every task has finished; the library
/// form of [`try_scope!`](crate::try_scope!) and of Go's `errgroup.WithContext`.
///
/// ```
/// use gonext::context::Context;
///
/// fn check(ctx: &Context, n: u32) -> Result<u32, String> {
///     if ctx.is_done() { return Ok(0) }
///     if n == 3 { Err(format!("{n} is unlucky")) } else { Ok(n) }
/// }
///
/// let result = gonext::try_scope(|s| {
///     for n in 0..5 {
///         s.go(move |ctx| check(ctx, n));
///     }
///     Ok("all checked")
/// });
/// assert_eq!(result, Err("3 is unlucky".to_owned()));
/// ```
///
/// # Errors
///
/// The first error of a task, or of `f`, in the order they happened.
///
/// # Panics
///
/// As [`scope`](crate::scope()).
#[track_caller]
pub fn try_scope<'env, T, E: Send + 'env>(
    f: impl for<'scope> FnOnce(&'scope TryScope<'scope, 'env, E>) -> Result<T, E>,
) -> Result<T, E> {
    run_scope::<Fallible<E>, T>(Options::default(), f)
        .map_err(|errors| errors.into_iter().next().expect("a failed scope has an error"))
}
