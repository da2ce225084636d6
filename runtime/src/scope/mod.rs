//! The runtime of `scope!`, `try_scope!` and `sync::Group`: tasks started by `go` on the
//! worker pool, joined before the scope returns.
//!
//! The three open questions of Go's structured-concurrency proposal, answered:
//!
//! - **Panics**: a panicking task cancels the scope's `Context`, the scope waits for every
//!   other task, then the panic resumes in the parent with its original payload (the `go`
//!   site is printed to stderr as it resumes).
//! - **Cancellation**: every task can read the scope's `Context`; the first error or panic
//!   cancels it, and the scope still waits for all tasks — nothing is killed.
//! - **Errors**: the first error is returned (`errors = all`: every error, in completion
//!   order).
//!
//! While it joins, the parent runs the scope's still queued tasks itself rather than only
//! sleeping. The task count is kept so that the parent and the workers do not trade one cache
//! line per task: the parent's `go`s draw on counts added in advance.
//!
//! Tasks borrow from the parent's stack, as with `std::thread::scope`: the scope joins them
//! even when the parent's own code panics, so no borrow outlives its data. Inside a
//! virtual-time bubble each task is a member while it runs, and the join is a durable block.

mod async_scope;
mod job;
pub(crate) mod pool;

pub use async_scope::AsyncScope;

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::{Cancel, Context};
use crate::sync::{Condvar, Mutex as BubbleMutex, WaitGroup};
use crate::time::bubble::{self, Site};

/// How many `go`s on the owning thread one update of a task set's `pending` counts for.
const CREDIT: usize = 64;

/// A value alone on its cache line (and the next, which some CPUs prefetch in pairs).
#[repr(align(128))]
struct CacheLine<T>(T);

/// An id of the calling thread: the address of a thread-local, cheaper than `ThreadId`.
fn this_thread() -> usize {
    thread_local! {
        static MARKER: u8 = const { 0 };
    }
    MARKER.with(|marker| std::ptr::from_ref(marker).addr())
}

/// What a task returns: `()` in `scope!`, `Result<(), E>` in `try_scope!`.
pub trait TaskOutput<E>: Send {
    /// The task's error, if it failed.
    fn into_error(self) -> Option<E>;
}

impl<E> TaskOutput<E> for () {
    fn into_error(self) -> Option<E> {
        None
    }
}

impl<E: Send> TaskOutput<E> for Result<(), E> {
    fn into_error(self) -> Option<E> {
        self.err()
    }
}

/// Options of a scope: `limit = N` and `errors = all`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// At most this many tasks run at once; `go` waits for a slot.
    pub limit: Option<usize>,
    /// Collect every error instead of the first.
    pub all_errors: bool,
}

struct Outcome<E> {
    errors: Vec<E>,
    panic: Option<(Box<dyn Any + Send>, Site)>,
}

/// Running tasks, bounded by the scope's limit.
struct Slots {
    running: BubbleMutex<usize>,
    freed: Condvar,
    limit: usize,
}

/// The tasks of a scope or group: their context, outcome, count and slots.
pub(crate) struct TaskSet<E> {
    ctx: Context,
    cancel: Mutex<Option<Cancel>>,
    outcome: Mutex<Outcome<E>>,
    /// Unfinished tasks, plus one for the owner, plus `credit`; whoever takes it to zero
    /// releases `joined`. On a cache line of its own: the workers write it per task.
    pending: CacheLine<AtomicUsize>,
    /// Counts added to `pending` in advance for `go`s on the owning thread, which then touches
    /// `pending` once per [`CREDIT`] tasks rather than trading its cache line with the
    /// workers for each one. Returned at the join.
    credit: AtomicUsize,
    /// The thread whose `go`s draw on `credit` (see [`this_thread`]); 0: none.
    owner_thread: usize,
    joined: WaitGroup,
    slots: Mutex<Option<Arc<Slots>>>,
    /// Whether `slots` was ever set, so that an unlimited `go` takes no lock for it.
    limited: AtomicBool,
    all_errors: bool,
}

impl<E: Send> TaskSet<E> {
    #[track_caller]
    pub(crate) fn new(parent: &Context, options: Options) -> Self {
        let (ctx, cancel) = parent.with_cancel();
        let joined = WaitGroup::new();
        joined.add(1);
        TaskSet {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            outcome: Mutex::new(Outcome { errors: Vec::new(), panic: None }),
            pending: CacheLine(AtomicUsize::new(1)),
            credit: AtomicUsize::new(0),
            owner_thread: 0,
            joined,
            slots: Mutex::new(options.limit.map(Slots::new)),
            limited: AtomicBool::new(options.limit.is_some()),
            all_errors: options.all_errors,
        }
    }

    /// The same set, with `go`s on the calling thread counted in advance: for a set this
    /// thread also joins.
    fn owned_by_this_thread(mut self) -> Self {
        self.owner_thread = this_thread();
        self
    }

    /// Counts one more unfinished task.
    fn count_launch(&self) {
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

    pub(crate) fn context(&self) -> &Context {
        &self.ctx
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
    fn acquire(&self, wait: bool) -> Option<Option<Arc<Slots>>> {
        let Some(slots) = self.slots() else { return Some(None) };
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

    /// Starts `task` after taking a slot (waiting for one if `wait`); `false` if none was free.
    /// `spawner` puts the job, wrapped for bubble membership, on the pool.
    pub(crate) fn launch<'a, R: TaskOutput<E>>(
        set: impl std::ops::Deref<Target = TaskSet<E>> + Send + 'a,
        task: impl FnOnce(&Context) -> R + Send + 'a,
        site: Site,
        wait: bool,
        spawner: impl Spawner<'a>,
    ) -> bool
    where
        E: 'a,
    {
        let Some(slot) = set.acquire(wait) else { return false };
        set.count_launch();
        let owner = set.owner_id();
        let run = move || {
            let result = catch_unwind(AssertUnwindSafe(|| task(&set.ctx)));
            set.finish(result, site, slot);
        };
        match bubble::current() {
            None => spawner.spawn(run, owner),
            Some(bubble) => {
                let member = bubble.add_member(None, site, false);
                let run_as_member = move || {
                    let membership = bubble::enter_thread_member(&bubble, member);
                    bubble::with_membership(membership, run);
                    bubble.remove_member(member);
                };
                // Owned by no set: in a bubble, a task runs on a thread of its own member.
                spawner.spawn(run_as_member, 0);
            }
        }
        true
    }

    fn finish<R: TaskOutput<E>>(&self, result: std::thread::Result<R>, site: Site, slot: Option<Arc<Slots>>) {
        let failure = match result {
            Ok(output) => output.into_error().map(Ok),
            Err(payload) => Some(Err(payload)),
        };
        if let Some(failure) = failure {
            let mut outcome = self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match failure {
                Ok(error) if self.all_errors || outcome.errors.is_empty() => outcome.errors.push(error),
                Ok(_) => {}
                Err(payload) => {
                    outcome.panic.get_or_insert((payload, site));
                }
            }
            drop(outcome);
            self.cancel_all();
        }
        if let Some(slots) = slot {
            *slots.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) -= 1;
            slots.freed.notify_one();
        }
        self.release();
    }

    /// Drops one pending count; the last one releases the join.
    fn release(&self) {
        if self.pending.0.fetch_sub(1, Ordering::AcqRel) == 1 {
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

    /// Waits for every task (durably, inside a bubble) and takes the outcome: a task's panic
    /// resumes here; otherwise the errors (the first, or all).
    #[track_caller]
    pub(crate) fn join(&self) -> Vec<E> {
        // Unused credit never takes `pending` to zero: the owner's count is still in it.
        self.pending.0.fetch_sub(self.credit.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        self.release();
        self.joined.wait();
        let outcome = std::mem::replace(
            &mut *self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
            Outcome { errors: Vec::new(), panic: None },
        );
        if let Some((payload, go_site)) = outcome.panic {
            if !payload.is::<bubble::BubbleAborted>() {
                eprintln!(
                    "gonext: the task started at {go_site} panicked; resuming the panic where it is joined"
                );
            }
            panic::resume_unwind(payload);
        }
        outcome.errors
    }
}

impl Slots {
    fn new(limit: usize) -> Arc<Slots> {
        Arc::new(Slots { running: BubbleMutex::new(0), freed: Condvar::new(), limit })
    }
}

/// A scope: start tasks with [`go`](Self::go); they are all joined before the scope ends.
pub struct Scope<'scope, 'env: 'scope, E = Infallible> {
    tasks: TaskSet<E>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<E> fmt::Debug for Scope<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.tasks.pending.0.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<'scope, 'env, E: Send + 'env> Scope<'scope, 'env, E> {
    /// The scope's context, cancelled by the first error or panic.
    pub fn context(&self) -> &Context {
        self.tasks.context()
    }

    /// Starts `task` on the pool, after waiting for a slot under a `limit`.
    #[track_caller]
    pub fn go<R: TaskOutput<E>>(&'scope self, task: impl FnOnce(&Context) -> R + Send + 'scope) {
        TaskSet::launch(&self.tasks, task, Location::caller(), true, ScopedSpawner);
    }

    /// Starts `task` if a slot is free (always, without a `limit`); returns whether it did.
    #[track_caller]
    pub fn try_go<R: TaskOutput<E>>(&'scope self, task: impl FnOnce(&Context) -> R + Send + 'scope) -> bool {
        TaskSet::launch(&self.tasks, task, Location::caller(), false, ScopedSpawner)
    }
}

/// Puts jobs that may borrow for `'a` on the pool.
pub(crate) trait Spawner<'a> {
    /// Submits `job`, marked as belonging to the task set `owner` (0: none).
    fn spawn(self, job: impl FnOnce() + Send + 'a, owner: usize);
}

/// For jobs that borrow nothing: `sync::Group`'s.
pub(crate) struct DetachedSpawner;

impl Spawner<'static> for DetachedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'static, owner: usize) {
        pool::submit(pool::Job::new(job).owned_by(owner));
    }
}

/// For the jobs of a [`Scope`], which borrow for the scope's lifetime.
struct ScopedSpawner;

impl<'scope> Spawner<'scope> for ScopedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'scope, owner: usize) {
        // SAFETY: the job borrows data that lives for 'scope. `run_scope` does not return
        // (nor unwind) before every started task has called `finish`, which is the job's
        // last use of those borrows: the join is reached on every path, including a panic of
        // the scope's body. So the job never touches 'scope data after 'scope ends.
        pool::submit(unsafe { pool::Job::new_unchecked(job) }.owned_by(owner));
    }
}

/// Runs `body` with a new scope and joins every task it started; the first error (or all of
/// them) comes back in `Err`. A panic of a task or of `body` resumes after the join.
#[track_caller]
pub fn run_scope<'env, T, E: Send + 'env>(
    options: Options,
    body: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env, E>) -> T,
) -> Result<T, Vec<E>> {
    let scope = Scope {
        tasks: TaskSet::new(&Context::background(), options).owned_by_this_thread(),
        scope: PhantomData,
        env: PhantomData,
    };
    let body_result = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    if body_result.is_err() {
        scope.tasks.cancel_all();
    }
    scope.tasks.help();
    let joined = catch_unwind(AssertUnwindSafe(|| scope.tasks.join()));
    let value = match body_result {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    };
    let errors = joined.unwrap_or_else(|payload| panic::resume_unwind(payload));
    if errors.is_empty() { Ok(value) } else { Err(errors) }
}
