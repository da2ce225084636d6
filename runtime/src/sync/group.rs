//! Go's `errgroup.Group` and the bgtask `Manager`: task groups as library types, for code
//! that prefers them to the `scope!` macro or needs tasks to outlive one block.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::context::Context;
use crate::scope::{DetachedSpawner, Options, TaskOutput, TaskSet};

/// A group of tasks that share a `Context` and report their first error: Go's
/// `errgroup.Group`.
///
/// Tasks are `'static` (the group can be stored and passed around); [`wait`](Self::wait)
/// joins them. Inside a virtual-time bubble the tasks are bubble members.
///
/// ```
/// use gonext::context::Context;
/// use gonext::sync::Group;
///
/// let (group, ctx) = Group::with_context(&Context::background());
/// group.set_limit(2);
/// for n in 0..5u32 {
///     group.go(move |ctx| if n == 3 { Err(format!("task {n} failed")) } else { Ok(()) });
/// }
/// assert_eq!(group.wait(), Err("task 3 failed".to_owned()));
/// assert!(ctx.is_done(), "the first error cancelled the group's context");
/// ```
///
/// # Differences from Go
///
/// `wait` consumes the group, and a panicking task is re-raised by `wait` with its payload
/// (Go's errgroup lets a panic crash the program).
pub struct Group<E = ()> {
    tasks: Arc<TaskSet<E>>,
}

impl<E: Send + 'static> Group<E> {
    /// A group whose context derives from `Context::background()`.
    #[track_caller]
    pub fn new() -> Self {
        Group::with_context(&Context::background()).0
    }

    /// A group whose context derives from `parent`, and that context (cancelled by the first
    /// error, by a panic, or when `parent` is).
    #[track_caller]
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let tasks = Arc::new(TaskSet::new(parent, Options::default()));
        let ctx = tasks.context().clone();
        (Group { tasks }, ctx)
    }

    /// Bounds the number of tasks running at once; `go` then waits for a slot.
    ///
    /// # Panics
    ///
    /// If `limit` is zero.
    #[track_caller]
    pub fn set_limit(&self, limit: usize) {
        assert!(limit > 0, "Group::set_limit at {}: a limit of 0 would never run a task", Location::caller());
        self.tasks.set_limit(limit);
    }

    /// Starts `task`, waiting for a slot under a limit.
    #[track_caller]
    pub fn go<R: TaskOutput<E> + 'static>(&self, task: impl FnOnce(&Context) -> R + Send + 'static) {
        TaskSet::launch(Arc::clone(&self.tasks), task, Location::caller(), true, DetachedSpawner);
    }

    /// Starts `task` if a slot is free; returns whether it did.
    #[track_caller]
    pub fn try_go<R: TaskOutput<E> + 'static>(
        &self,
        task: impl FnOnce(&Context) -> R + Send + 'static,
    ) -> bool {
        TaskSet::launch(Arc::clone(&self.tasks), task, Location::caller(), false, DetachedSpawner)
    }

    /// Waits for every task and returns the first error.
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    #[track_caller]
    pub fn wait(self) -> Result<(), E> {
        self.tasks.help();
        self.tasks.join().into_iter().next().map_or(Ok(()), Err)
    }
}

impl<E: Send + 'static> Default for Group<E> {
    #[track_caller]
    fn default() -> Self {
        Group::new()
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

/// Long-lived background tasks stopped together: the bgtask pattern.
///
/// Tasks run until their `Context` is cancelled; [`stop`](Self::stop) cancels it, waits for
/// them and returns the first error.
///
/// ```
/// use gonext::sync::Manager;
/// use gonext::{thread, time};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let ticks = Arc::new(AtomicU32::new(0));
///     let manager = Manager::<String>::new();
///     let counter = Arc::clone(&ticks);
///     manager.go(move |ctx| {
///         let mut ticker = time::Ticker::new(Duration::from_secs(1));
///         while !ctx.is_done() {
///             gonext::select! {
///                 _ = ctx.done() => {},
///                 _ = ticker.tick() => { counter.fetch_add(1, Ordering::SeqCst); },
///             }
///         }
///         Ok(())
///     });
///     thread::sleep(Duration::from_millis(5500));
///     assert_eq!(manager.stop(), Ok(()));
///     assert_eq!(ticks.load(Ordering::SeqCst), 5);
/// });
/// ```
pub struct Manager<E = ()> {
    group: Group<E>,
}

impl<E: Send + 'static> Manager<E> {
    /// A manager with no tasks.
    #[track_caller]
    pub fn new() -> Self {
        Manager { group: Group::new() }
    }

    /// Starts a long-lived task; it should return once its `Context` is done.
    #[track_caller]
    pub fn go<R: TaskOutput<E> + 'static>(&self, task: impl FnOnce(&Context) -> R + Send + 'static) {
        self.group.go(task);
    }

    /// The context every task receives.
    pub fn context(&self) -> &Context {
        self.group.tasks.context()
    }

    /// Cancels every task, waits for them and returns the first error.
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    #[track_caller]
    pub fn stop(self) -> Result<(), E> {
        self.group.tasks.cancel_all();
        self.group.wait()
    }
}

impl<E: Send + 'static> Default for Manager<E> {
    #[track_caller]
    fn default() -> Self {
        Manager::new()
    }
}

impl<E> fmt::Debug for Manager<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager").finish_non_exhaustive()
    }
}
