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
    /// Unfinished tasks, plus one for the owner; whoever takes it to zero releases `joined`.
    pending: AtomicUsize,
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
            pending: AtomicUsize::new(1),
            joined,
            slots: Mutex::new(options.limit.map(Slots::new)),
            limited: AtomicBool::new(options.limit.is_some()),
            all_errors: options.all_errors,
        }
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
        set.pending.fetch_add(1, Ordering::Relaxed);
        let run = move || {
            let result = catch_unwind(AssertUnwindSafe(|| task(&set.ctx)));
            set.finish(result, site, slot);
        };
        match bubble::current() {
            None => spawner.spawn(run),
            Some(bubble) => {
                let member = bubble.add_member(None, site, false);
                spawner.spawn(move || {
                    let membership = bubble::enter_thread_member(&bubble, member);
                    bubble::with_membership(membership, run);
                    bubble.remove_member(member);
                });
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
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.joined.done();
        }
    }

    pub(crate) fn cancel_all(&self) {
        let cancel = self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        drop(cancel);
    }

    /// Waits for every task (durably, inside a bubble) and takes the outcome: a task's panic
    /// resumes here; otherwise the errors (the first, or all).
    #[track_caller]
    pub(crate) fn join(&self) -> Vec<E> {
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
            .field("pending", &self.tasks.pending.load(Ordering::Relaxed))
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
    fn spawn(self, job: impl FnOnce() + Send + 'a);
}

/// For jobs that borrow nothing: `sync::Group`'s.
pub(crate) struct DetachedSpawner;

impl Spawner<'static> for DetachedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'static) {
        pool::submit(pool::Job::new(job));
    }
}

/// For the jobs of a [`Scope`], which borrow for the scope's lifetime.
struct ScopedSpawner;

impl<'scope> Spawner<'scope> for ScopedSpawner {
    fn spawn(self, job: impl FnOnce() + Send + 'scope) {
        // SAFETY: the job borrows data that lives for 'scope. `run_scope` does not return
        // (nor unwind) before every started task has called `finish`, which is the job's
        // last use of those borrows: the join is reached on every path, including a panic of
        // the scope's body. So the job never touches 'scope data after 'scope ends.
        pool::submit(unsafe { pool::Job::new_unchecked(job) });
    }
}

/// Runs `body` with a new scope and joins every task it started; the first error (or all of
/// them) comes back in `Err`. A panic of a task or of `body` resumes after the join.
#[track_caller]
pub fn run_scope<'env, T, E: Send + 'env>(
    options: Options,
    body: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env, E>) -> T,
) -> Result<T, Vec<E>> {
    let scope =
        Scope { tasks: TaskSet::new(&Context::background(), options), scope: PhantomData, env: PhantomData };
    let body_result = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    if body_result.is_err() {
        scope.tasks.cancel_all();
    }
    let joined = catch_unwind(AssertUnwindSafe(|| scope.tasks.join()));
    let value = match body_result {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    };
    let errors = joined.unwrap_or_else(|payload| panic::resume_unwind(payload));
    if errors.is_empty() { Ok(value) } else { Err(errors) }
}
