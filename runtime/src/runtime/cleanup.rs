//! Cleanups: functions run after an object dies, on a background worker (Go's
//! `runtime.AddCleanup`).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use crate::{Ptr, weak};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// One registered cleanup: its function with its argument, and a state shared with its
/// [`Cleanup`] handle so that `stop` works until it starts.
pub(crate) struct Job {
    state: Arc<AtomicU8>,
    run: Box<dyn FnOnce() + Send>,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Jobs ever queued and ever finished (run, stopped or panicked), for `flush_cleanups`.
    queued: u64,
    finished: u64,
    worker: bool,
    /// The worker waits for jobs: only then does queuing pay for a wake-up.
    worker_idle: bool,
    /// `flush_cleanups` callers waiting: only then does the worker signal progress.
    flushing: usize,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    queued: 0,
    finished: 0,
    worker: false,
    worker_idle: false,
    flushing: 0,
});
static QUEUED: Condvar = Condvar::new();
static FINISHED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands the cleanups of a dead object to the worker.
pub(crate) fn queue(jobs: Vec<Job>) {
    let mut queue = lock();
    queue.queued += jobs.len() as u64;
    queue.jobs.extend(jobs);
    if !queue.worker {
        queue.worker = true;
        thread::Builder::new()
            .name("gonext-cleanup".into())
            .spawn(work)
            .expect("the cleanup worker thread starts");
    }
    let wake = std::mem::take(&mut queue.worker_idle);
    drop(queue);
    if wake {
        QUEUED.notify_one();
    }
}

fn work() {
    let mut queue = lock();
    loop {
        let batch: Vec<Job> = queue.jobs.drain(..).collect();
        if batch.is_empty() {
            queue.worker_idle = true;
            queue = QUEUED.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            continue;
        }
        drop(queue);
        let ran = batch.len() as u64;
        batch.into_iter().for_each(run);
        queue = lock();
        queue.finished += ran;
        if queue.flushing > 0 {
            FINISHED.notify_all();
        }
    }
}

/// Runs one job unless it was stopped; a panic is reported and contained.
fn run(job: Job) {
    if job.state.compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
        && let Err(payload) = catch_unwind(AssertUnwindSafe(job.run))
    {
        eprintln!("gonext: a cleanup panicked (the other cleanups still run): {}", message(&*payload));
    }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string payload>")
}

/// Registers `cleanup(arg)` to run after `ptr`'s object dies (the last strong `Ptr` is
/// dropped): Go's `runtime.AddCleanup`.
///
/// The cleanup never sees the object, so it cannot resurrect it: it gets `arg` instead (a
/// file descriptor, a key to remove from a map). Cleanups run on a background worker thread,
/// never on the thread that drops the object, in no particular order; a panicking cleanup is
/// reported on stderr and the others still run. [`flush_cleanups`] waits for them.
///
/// ```
/// use gonext::{Ptr, runtime};
/// use std::sync::{Arc, Mutex};
///
/// let closed = Arc::new(Mutex::new(Vec::new()));
/// let resource = Ptr::new("handle");
/// let log = Arc::clone(&closed);
/// runtime::add_cleanup(&resource, move |fd: i32| log.lock().unwrap().push(fd), 7);
/// drop(resource);
/// runtime::flush_cleanups();
/// assert_eq!(*closed.lock().unwrap(), [7]);
/// ```
///
/// # Panics
///
/// If `arg` is a `Ptr` (or weak pointer) to `ptr`'s own allocation: the cleanup would keep
/// the object alive (or see it), exactly what Go forbids too.
///
/// # Differences from Go
///
/// Go runs cleanups after a garbage collection finds the object unreachable, at some later
/// time; here they are queued the moment the last strong `Ptr` drops.
#[track_caller]
pub fn add_cleanup<T, V: Send + 'static>(
    ptr: &Ptr<T>,
    cleanup: impl FnOnce(V) + Send + 'static,
    arg: V,
) -> Cleanup
where
    T: 'static,
{
    check_arg(ptr, &arg);
    let state = Arc::new(AtomicU8::new(PENDING));
    ptr.shared.cleanups.register(Job { state: Arc::clone(&state), run: Box::new(move || cleanup(arg)) });
    Cleanup { state }
}

#[track_caller]
fn check_arg<T: 'static, V: 'static>(ptr: &Ptr<T>, arg: &V) {
    let arg: &dyn Any = arg;
    let same = arg.downcast_ref::<Ptr<T>>().is_some_and(|p| Ptr::ptr_eq(p, ptr))
        || arg.downcast_ref::<weak::Pointer<T>>().is_some_and(|w| w.points_to(ptr));
    assert!(
        !same,
        "runtime::add_cleanup at {}: the cleanup's argument is the object itself (a pointer to the same \
         allocation), which would keep it alive forever; pass what the cleanup needs instead",
        Location::caller()
    );
}

/// Waits until every cleanup queued so far has run (or was stopped).
///
/// ```
/// gonext::runtime::flush_cleanups(); // returns at once when nothing is queued
/// ```
pub fn flush_cleanups() {
    let mut queue = lock();
    let target = queue.queued;
    queue.flushing += 1;
    while queue.finished < target {
        queue = FINISHED.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    queue.flushing -= 1;
}

/// The handle of a registered cleanup: [`stop`](Self::stop) cancels it.
#[derive(Clone)]
pub struct Cleanup {
    state: Arc<AtomicU8>,
}

impl Cleanup {
    /// Cancels the cleanup if it has not started; a no-op once it started or ran: Go's
    /// `Cleanup.Stop`. Returns whether this call cancelled it.
    ///
    /// ```
    /// use gonext::{Ptr, runtime};
    ///
    /// let object = Ptr::new(1);
    /// let cleanup = runtime::add_cleanup(&object, |_: ()| panic!("stopped cleanups never run"), ());
    /// assert!(cleanup.stop());
    /// drop(object);
    /// runtime::flush_cleanups();
    /// ```
    pub fn stop(&self) -> bool {
        self.state.compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

impl fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            RUNNING => "started",
            _ => "stopped",
        };
        f.debug_struct("Cleanup").field("state", &state).finish()
    }
}
