//! Go's `errgroup.Group` and the bgtask `Manager`: task groups as library types, for code
//! that prefers them to the `scope!` macro or needs tasks to outlive one block.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::context::Context;
use crate::scope::{
    DetachedSpawner, FailureReport, Fallible, GroupResult, Launch, TaskSet, resume_task_panic,
};

/// A group of tasks that share a `Context` and report their first error: Go's
/// `errgroup.Group`.
///
/// Tasks are `'static` (the group can be stored and passed around); [`wait`](Self::wait)
/// joins them, as often as needed: the group can take new tasks after a wait, and the first
/// error is sticky, as in Go. Inside a virtual-time bubble the tasks are bubble members.
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
/// assert_eq!(group.wait(), Err("task 3 failed".to_owned()), "the first error is sticky");
/// ```
///
/// # Differences from Go
///
/// A panicking task is re-raised by `wait` with its payload (Go's errgroup lets a panic crash
/// the program). Because the first error is returned by every later `wait` too, `wait` needs
/// `E: Clone` (wrap other errors in an `Arc`). [`wait_all`](Self::wait_all) returns every
/// error, which Go's errgroup cannot (Go #57534).
pub struct Group<E = ()> {
    tasks: Arc<TaskSet<'static, E>>,
    /// Every error the waits have collected, in the order they happened.
    errors: Mutex<Vec<E>>,
    /// `with_context`'s groups cancel their context when a wait returns, as errgroup's do.
    cancel_on_wait: bool,
}

impl<E: Send + 'static> Group<E> {
    /// A group whose context derives from `Context::background()`.
    #[track_caller]
    pub fn new() -> Self {
        Group {
            tasks: Arc::new(TaskSet::group(&Context::background())),
            errors: Mutex::default(),
            cancel_on_wait: false,
        }
    }

    /// A group whose context derives from `parent`, and that context: cancelled by the first
    /// error, by a panic, when `parent` is, or when [`wait`](Self::wait) returns (Go's
    /// `errgroup.WithContext`).
    #[track_caller]
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let tasks = Arc::new(TaskSet::group(parent));
        let ctx = tasks.context().clone();
        (Group { tasks, errors: Mutex::default(), cancel_on_wait: true }, ctx)
    }

    /// Bounds the number of tasks running at once from now on; `go` then waits for a slot. A
    /// limit of 0 admits no task: [`try_go`](Self::try_go) returns `false` and `go` panics.
    ///
    /// ```
    /// let group = gonext::sync::Group::<()>::new();
    /// group.set_limit(0);
    /// assert!(!group.try_go(|_ctx| Ok(())));
    /// ```
    pub fn set_limit(&self, limit: usize) {
        self.tasks.set_limit(limit);
    }

    /// Starts `task`, waiting for a slot under a limit.
    ///
    /// # Panics
    ///
    /// Under a limit of 0, which would never admit it (Go's `Go` blocks forever there).
    #[track_caller]
    pub fn go<R: GroupResult<E> + 'static>(&self, task: impl FnOnce(&Context) -> R + Send + 'static) {
        launch(&self.tasks, task, true);
    }

    /// Starts `task` if a slot is free; returns whether it did.
    #[track_caller]
    pub fn try_go<R: GroupResult<E> + 'static>(
        &self,
        task: impl FnOnce(&Context) -> R + Send + 'static,
    ) -> bool {
        matches!(launch(&self.tasks, task, false), Launch::Started)
    }

    /// The group's context.
    pub fn context(&self) -> &Context {
        self.tasks.context()
    }

    /// Moves the errors of the tasks that ended into the sticky list, then resumes a task's
    /// panic if there was one (the errors stay for the next wait).
    fn collect(&self) {
        let (new, panic) = self.tasks.take_failures();
        self.errors.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(new);
        if self.cancel_on_wait {
            self.tasks.cancel_all();
        }
        if let Some((payload, go_site)) = panic {
            resume_task_panic(payload, go_site);
        }
    }

    fn first_error(&self) -> Result<(), E>
    where
        E: Clone,
    {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .first()
            .cloned()
            .map_or(Ok(()), Err)
    }

    /// Waits for every task started so far and returns the first error of any task since the
    /// group was made.
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    #[track_caller]
    pub fn wait(&self) -> Result<(), E>
    where
        E: Clone,
    {
        self.tasks.help();
        self.tasks.join_group();
        self.collect();
        self.first_error()
    }

    /// [`wait`](Self::wait), returning every error, in the order they happened (`errors =
    /// all`).
    ///
    /// ```
    /// let group = gonext::sync::Group::<u32>::new();
    /// for n in 0..4 {
    ///     group.go(move |_ctx| if n % 2 == 1 { Err(n) } else { Ok(()) });
    /// }
    /// let mut errors = group.wait_all().unwrap_err();
    /// errors.sort_unstable();
    /// assert_eq!(errors, [1, 3]);
    /// ```
    ///
    /// # Errors
    ///
    /// Every error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    #[track_caller]
    pub fn wait_all(&self) -> Result<(), Vec<E>>
    where
        E: Clone,
    {
        self.tasks.help();
        self.tasks.join_group();
        self.collect();
        let errors = self.errors.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The async form of [`wait`](Self::wait), for async code: the tasks still run on the
    /// pool, and the awaiting task is woken when the last one ends.
    ///
    /// ```
    /// let group = gonext::sync::Group::<String>::new();
    /// group.go(|_ctx| Err("late".to_owned()));
    /// assert_eq!(futures::executor::block_on(group.wait_async()), Err("late".to_owned()));
    /// ```
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    pub async fn wait_async(&self) -> Result<(), E>
    where
        E: Clone,
    {
        self.tasks.wait_async().await;
        self.collect();
        self.first_error()
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
        f.debug_struct("Group").field("context", self.tasks.context()).finish_non_exhaustive()
    }
}

/// Long-lived background tasks stopped together: the bgtask pattern.
///
/// Tasks run until their `Context` is cancelled; [`stop`](Self::stop) cancels it, waits for
/// them and returns the first error. The first failure (an error or a panic) cancels the
/// others and is reported at once by [`failed`](Self::failed), not only at `stop`.
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
///
/// # Differences from Go
///
/// Go's errgroup once re-raised panics in `Wait` and reverted it (#53757, #74275) because a
/// deferred `Wait` reports them arbitrarily late; [`failed`](Self::failed) reports the first
/// failure as it happens, and `stop` still re-raises the panic with its payload.
pub struct Manager<E = ()> {
    tasks: Arc<TaskSet<'static, E>>,
}

/// The first failure of a [`Manager`] task, as [`Manager::failed`] reports it (see there for
/// an example).
#[derive(Clone)]
pub struct TaskFailure {
    report: FailureReport,
}

impl TaskFailure {
    /// The `go` that started the failed task.
    pub fn go_site(&self) -> &'static Location<'static> {
        self.report.site
    }

    /// Whether the task panicked (rather than returned an error, which goes to
    /// [`Manager::stop`]).
    pub fn is_panic(&self) -> bool {
        self.report.panicked
    }

    /// The panic's message, when the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        self.report.message.as_deref()
    }
}

impl fmt::Debug for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFailure")
            .field("go_site", &format_args!("{}", self.report.site))
            .field("panicked", &self.report.panicked)
            .field("message", &self.report.message)
            .finish()
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.report.panicked, &self.report.message) {
            (true, Some(message)) => {
                write!(f, "the task started at {} panicked: {message}", self.report.site)
            }
            (true, None) => write!(f, "the task started at {} panicked", self.report.site),
            (false, _) => write!(f, "the task started at {} returned an error", self.report.site),
        }
    }
}

/// Starts `task` of a `Group` or `Manager` on the pool, detached from the caller, at the
/// caller's location; with `wait`, waits for a slot under a limit.
#[track_caller]
fn launch<E: Send + 'static, R: GroupResult<E> + 'static>(
    tasks: &Arc<TaskSet<'static, E>>,
    task: impl FnOnce(&Context) -> R + Send + 'static,
    wait: bool,
) -> Launch {
    TaskSet::launch::<Fallible<E>, R>(
        Arc::clone(tasks),
        task,
        Location::caller(),
        wait,
        None,
        DetachedSpawner,
    )
}

impl<E: Send + 'static> Manager<E> {
    /// A manager with no tasks.
    #[track_caller]
    pub fn new() -> Self {
        Manager { tasks: Arc::new(TaskSet::group(&Context::background())) }
    }

    /// Starts a long-lived task; it should return once its `Context` is done.
    #[track_caller]
    pub fn go<R: GroupResult<E> + 'static>(&self, task: impl FnOnce(&Context) -> R + Send + 'static) {
        launch(&self.tasks, task, true);
    }

    /// The context every task receives.
    pub fn context(&self) -> &Context {
        self.tasks.context()
    }

    /// A future that completes with the first failure of a task (an error or a panic), as
    /// soon as it happens.
    ///
    /// ```
    /// use gonext::sync::Manager;
    ///
    /// let manager = Manager::<()>::new();
    /// manager.go(|_ctx| -> Result<(), ()> { panic!("disk on fire") });
    /// let failure = futures::executor::block_on(manager.failed());
    /// assert_eq!(failure.panic_message(), Some("disk on fire"));
    /// let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| manager.stop()));
    /// assert!(stopped.is_err(), "stop re-raises the panic");
    /// ```
    #[track_caller]
    pub fn failed(&self) -> Failed<'_, E> {
        Failed { tasks: &self.tasks, registration: None, site: Location::caller() }
    }

    /// Cancels every task, waits for them and returns the first error.
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    #[track_caller]
    pub fn stop(self) -> Result<(), E> {
        self.tasks.cancel_all();
        self.tasks.help();
        self.tasks.join_group();
        self.tasks.take_errors().into_iter().next().map_or(Ok(()), Err)
    }

    /// The async form of [`stop`](Self::stop).
    ///
    /// # Errors
    ///
    /// The first error a task returned.
    ///
    /// # Panics
    ///
    /// Re-raises a task's panic with its payload.
    pub async fn stop_async(self) -> Result<(), E> {
        self.tasks.cancel_all();
        self.tasks.wait_async().await;
        self.tasks.take_errors().into_iter().next().map_or(Ok(()), Err)
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
        f.debug_struct("Manager").field("context", self.tasks.context()).finish_non_exhaustive()
    }
}

/// The future of [`Manager::failed`] (see there for an example).
#[must_use = "futures do nothing unless polled"]
pub struct Failed<'a, E> {
    tasks: &'a TaskSet<'static, E>,
    registration: Option<u64>,
    site: &'static Location<'static>,
}

impl<E: Send> Future for Failed<'_, E> {
    type Output = TaskFailure;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<TaskFailure> {
        let this = self.get_mut();
        this.tasks.poll_failure(cx, &mut this.registration, this.site).map(|report| TaskFailure { report })
    }
}

impl<E> Drop for Failed<'_, E> {
    fn drop(&mut self) {
        self.tasks.forget_failure_waiter(&mut self.registration);
    }
}

impl<E> fmt::Debug for Failed<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failed").finish_non_exhaustive()
    }
}
