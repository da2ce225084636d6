//! The worker pool behind `go`: reusable OS threads, about `runtime::max_procs()` of them
//! running at a time, more when some are blocked.
//!
//! A `go` pushes a job on one shared queue. Workers take jobs in batches (half the queue, up
//! to [`BATCH`]) into a queue of their own, so the submitting thread and the workers meet on
//! the shared lock once per batch rather than once per job; an idle worker steals half of a
//! busy one's batch. A scope's thread at the scope's end runs that scope's newest queued jobs
//! itself while the workers take the oldest, and a join runs its own task if it is still
//! queued ([`run_queued`]). A worker that runs out of jobs searches (polls the queue with a
//! growing back-off, which also lets the next batch build up) before it sleeps, and at most one
//! searches at a time, so a burst of `go`s costs no wake-up per job and no core is burnt on
//! idle polling. A push wakes or starts a worker only when no worker is searching and fewer
//! than `max_procs` are active.
//!
//! A job may block: Go's runtime hands the processor of a blocked goroutine to another
//! thread, and the pool does the same in two ways. A worker that parks in a gonext primitive
//! (a channel, a `WaitGroup`, a nested scope's join) tells the pool, which stops counting it
//! as active, hands the rest of its batch back to the shared queue and wakes or starts a
//! replacement; so nested scopes and tasks that wait for each other never deadlock the pool.
//! For blocking the pool cannot see (std locks, I/O, `std::thread::sleep`), a monitor thread
//! watches while jobs wait: each worker still in the same job after a
//! tick that the kernel reports asleep gets a replacement, which takes that worker's batch.
//! Workers that merely compute for long get company only after a much longer wait with no
//! job started at all, for tasks that spin until a queued one runs. Idle workers beyond
//! `max_procs` retire after a short wait, the others after a longer one; when `max_procs`
//! changes, the sleepers re-check which they are.
//!
//! The hand-off (`submit`, batches, `help`, searching and sleeping, `blocking`'s replacement
//! worker) is written against `crate::sync_shim` and checked in every interleaving by the
//! loom models in `pool/loom.rs` (`RUSTFLAGS="--cfg loom" cargo test -p gonext --lib
//! --release scope::pool::loom::`); the monitor, which reads the kernel's view of threads,
//! is left out of them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use crate::sync_shim::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync_shim::{
    Arc, Condvar, Mutex, MutexGuard, shim_static, shim_thread_local, spin_loop, yield_now,
};

pub(crate) use super::job::Job;

/// The queue and what every worker is doing, under one lock.
struct Pool {
    jobs: VecDeque<Job>,
    /// Every worker's own queue, for the monitor to take batches back from.
    workers: Vec<Arc<Worker>>,
    threads: usize,
    /// Workers running a job, not parked in a gonext primitive.
    busy: usize,
    /// Workers out of jobs, looking at the queue before they sleep.
    searching: usize,
    /// Workers asleep on `AVAILABLE`.
    sleeping: usize,
    /// Wake-ups sent to sleepers and not yet taken; each makes a sleeper a searcher.
    wakeups: usize,
    monitor: MonitorState,
    /// The model's `max_procs`, and whether it closed the pool: loom's timed waits never time
    /// out, so a closed pool stands in for the idle timeout that retires the workers.
    #[cfg(loom)]
    model: (usize, bool),
}

#[cfg_attr(loom, allow(dead_code))]
#[derive(PartialEq)]
enum MonitorState {
    NotStarted,
    /// Waiting until jobs queue up with no free worker.
    Idle,
    /// Checking for progress once per tick.
    Watching,
}

/// One worker's batch, how many jobs it started (the monitor's measure of progress), whether
/// it is inside a job where the pool cannot see (not parked in a gonext primitive), and its
/// thread id, through which the monitor sees whether it is computing or blocked.
struct Worker {
    batch: Mutex<VecDeque<Job>>,
    started: AtomicU64,
    in_job: AtomicBool,
    #[cfg_attr(loom, allow(dead_code))]
    thread: Option<os_thread::ThreadId>,
}

shim_static! {
    static POOL: Mutex<Pool> = Mutex::new(Pool {
        jobs: VecDeque::new(),
        workers: Vec::new(),
        threads: 0,
        busy: 0,
        searching: 0,
        sleeping: 0,
        wakeups: 0,
        monitor: MonitorState::NotStarted,
        #[cfg(loom)]
        model: (2, false),
    });
}
shim_static! {
    /// `POOL.jobs.len()`, kept under the lock and read without it by the spinning searcher.
    static QUEUED: AtomicUsize = AtomicUsize::new(0);
}
shim_static! {
    static AVAILABLE: Condvar = Condvar::new();
}
#[cfg(not(loom))]
static STARVING: Condvar = Condvar::new();

/// The most jobs a worker takes at once.
const BATCH: usize = 64;
/// How many times a searching worker checks the queue before it sleeps (spin hints first,
/// then yields): long enough to bridge the gaps of a burst of `go`s. Under loom one check,
/// as every interleaving of the spins is the same as one.
#[cfg(not(loom))]
const SPINS: u32 = 32;
#[cfg(not(loom))]
const YIELDS: u32 = 8;
#[cfg(loom)]
const SPINS: u32 = 1;
#[cfg(loom)]
const YIELDS: u32 = 0;
/// How long the monitor waits for any progress before it adds a worker.
#[cfg_attr(loom, allow(dead_code))]
const MONITOR_TICK: Duration = Duration::from_millis(2);
/// How many ticks without progress the monitor waits while some worker is computing.
#[cfg_attr(loom, allow(dead_code))]
const COMPUTING_TICKS: u32 = 50;
/// How long a surplus idle worker (beyond `max_procs`) waits before retiring.
const SURPLUS_IDLE: Duration = Duration::from_millis(100);
/// How long any idle worker waits before retiring.
const CORE_IDLE: Duration = Duration::from_secs(10);

shim_thread_local! {
    static WORKER: RefCell<Option<Arc<Worker>>> = const { RefCell::new(None) };
}

type Guard = MutexGuard<'static, Pool>;

fn lock() -> Guard {
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the pool must do, decided under the lock and done after it is released.
#[must_use]
enum Action {
    Nothing,
    WakeSleeper,
    StartWorker,
    WakeMonitor,
    StartMonitor,
}

impl Pool {
    #[cfg(not(loom))]
    fn max_procs(&self) -> usize {
        crate::runtime::max_procs()
    }

    #[cfg(loom)]
    fn max_procs(&self) -> usize {
        self.model.0
    }

    /// Whether the workers retire rather than sleep: never, outside the loom models.
    #[cfg(not(loom))]
    fn closed(&self) -> bool {
        false
    }

    #[cfg(loom)]
    fn closed(&self) -> bool {
        self.model.1
    }

    /// Workers that are taking jobs or about to.
    fn free(&self) -> usize {
        self.searching + self.wakeups
    }

    fn active(&self) -> usize {
        self.busy + self.free()
    }

    fn push(&mut self, job: Job) {
        self.jobs.push_back(job);
        QUEUED.store(self.jobs.len(), Ordering::Relaxed);
    }

    fn pop(&mut self) -> Option<Job> {
        let job = self.jobs.pop_front()?;
        QUEUED.store(self.jobs.len(), Ordering::Relaxed);
        Some(job)
    }

    /// Moves half of the queued jobs, up to [`BATCH`], into `batch`; whether there were any.
    /// The other half is for other workers and for a joining thread that helps.
    fn take_batch(&mut self, batch: &Mutex<VecDeque<Job>>) -> bool {
        let n = self.jobs.len().div_ceil(2).min(BATCH);
        if n == 0 {
            return false;
        }
        lock_batch(batch).extend(self.jobs.drain(..n));
        QUEUED.store(self.jobs.len(), Ordering::Relaxed);
        true
    }

    /// Moves half of the largest other batch into `me`'s; whether there was one to split.
    fn steal(&self, me: &Worker) -> bool {
        let mut best: Option<MutexGuard<'_, VecDeque<Job>>> = None;
        for other in self.workers.iter().filter(|w| !std::ptr::eq(&***w, me)) {
            let Ok(theirs) = other.batch.try_lock() else { continue };
            if theirs.len() > best.as_ref().map_or(1, |b| b.len()) {
                best = Some(theirs);
            }
        }
        let Some(mut theirs) = best else { return false };
        let half = theirs.len() / 2;
        let split = theirs.len() - half;
        lock_batch(&me.batch).extend(theirs.drain(split..));
        true
    }

    /// Puts the jobs of `batch`, none started yet, back at the front of the queue.
    fn take_back(&mut self, batch: &mut VecDeque<Job>) {
        while let Some(job) = batch.pop_back() {
            self.jobs.push_front(job);
        }
        QUEUED.store(self.jobs.len(), Ordering::Relaxed);
    }

    /// Jobs started since the pool began, as far as the workers' own counters say.
    #[cfg_attr(loom, allow(dead_code))]
    fn started(&self) -> u64 {
        self.workers.iter().map(|w| w.started.load(Ordering::Relaxed)).sum()
    }

    /// Whether any job waits, in the queue or in a batch. Locks every batch (the pool lock is
    /// always taken first): a batch that is busy right now may still hold a job.
    #[cfg_attr(loom, allow(dead_code))]
    fn waiting(&self) -> bool {
        !self.jobs.is_empty() || self.workers.iter().any(|w| !lock_batch(&w.batch).is_empty())
    }

    /// Makes sure some worker will take the queued jobs: one is free already, else a sleeper
    /// is woken or a thread started while fewer than `max_procs` are active, else the
    /// monitor watches for busy workers that never come back.
    fn serve_queue(&mut self) -> Action {
        self.serve(false)
    }

    /// [`serve_queue`](Self::serve_queue), also for the jobs of a batch that just got more than
    /// one (`stealable`). A free worker takes queued jobs but may miss a batch's: its owner
    /// can pop all but the last before the free worker looks, and then block outside gonext,
    /// so such a batch always has the monitor watch it.
    fn serve(&mut self, stealable: bool) -> Action {
        if self.jobs.is_empty() && !stealable {
            return Action::Nothing;
        }
        if self.free() > 0 {
            return if stealable { self.watch() } else { Action::Nothing };
        }
        if self.active() < self.max_procs() {
            return self.add_worker();
        }
        self.watch()
    }

    /// Makes sure the monitor watches the waiting jobs.
    fn watch(&mut self) -> Action {
        match self.monitor {
            MonitorState::Watching => Action::Nothing,
            MonitorState::Idle => {
                self.monitor = MonitorState::Watching;
                Action::WakeMonitor
            }
            MonitorState::NotStarted => {
                self.monitor = MonitorState::Watching;
                Action::StartMonitor
            }
        }
    }

    /// Wakes a sleeper, or starts a thread (counted as searching) if none sleeps.
    fn add_worker(&mut self) -> Action {
        if self.sleeping > self.wakeups {
            self.wakeups += 1;
            return Action::WakeSleeper;
        }
        self.threads += 1;
        self.searching += 1;
        Action::StartWorker
    }
}

impl Action {
    fn run(self) {
        match self {
            Action::Nothing => {}
            Action::WakeSleeper => AVAILABLE.notify_one(),
            Action::StartWorker => start_thread("gonext-go", work, undo_start_worker),
            // The models' jobs never block where the pool cannot see: no monitor under loom.
            #[cfg(loom)]
            Action::WakeMonitor | Action::StartMonitor => {}
            #[cfg(not(loom))]
            Action::WakeMonitor => STARVING.notify_one(),
            #[cfg(not(loom))]
            Action::StartMonitor => start_thread("gonext-go-monitor", monitor, undo_start_monitor),
        }
    }
}

#[cfg(not(loom))]
fn start_thread(name: &str, main: fn(), undo: fn()) {
    if crate::thread::spawn_unadopted(std::thread::Builder::new().name(name.into()), main).is_err() {
        undo();
    }
}

#[cfg(loom)]
fn start_thread(_name: &str, main: fn(), _undo: fn()) {
    drop(::loom::thread::spawn(main));
}

/// Without a new thread the jobs still run once a worker frees up; with no worker at all,
/// the oldest runs here rather than never.
#[cfg_attr(loom, allow(dead_code))]
fn undo_start_worker() {
    let mut pool = lock();
    pool.threads -= 1;
    pool.searching -= 1;
    let orphan = if pool.threads == 0 { pool.pop() } else { None };
    drop(pool);
    if let Some(job) = orphan {
        job.run();
    }
}

#[cfg(not(loom))]
fn undo_start_monitor() {
    lock().monitor = MonitorState::NotStarted;
}

/// Follows a change of `max_procs`: an increase starts (or wakes) a worker for waiting jobs
/// at once, and the sleepers look again at how long to wait, so that those beyond a smaller
/// value retire after the short surplus wait. Busy workers finish their batches first.
pub(crate) fn follow_max_procs() {
    let action = lock().serve_queue();
    action.run();
    AVAILABLE.notify_all();
}

/// Runs `job` on a pool thread.
pub(crate) fn submit(job: Job) {
    let mut pool = lock();
    pool.push(job);
    let action = pool.serve_queue();
    drop(pool);
    action.run();
}

/// Runs `park` (a gonext primitive putting this thread to sleep): on a pool worker, the
/// worker stops counting as active meanwhile and hands the rest of its batch back, so a
/// replacement takes those jobs.
pub(crate) fn blocking<R>(park: impl FnOnce() -> R) -> R {
    let Some(worker) = WORKER.with(|worker| worker.borrow().clone()) else { return park() };
    let mut pool = lock();
    pool.busy -= 1;
    worker.in_job.store(false, Ordering::Relaxed);
    pool.take_back(&mut lock_batch(&worker.batch));
    let action = pool.serve_queue();
    drop(pool);
    action.run();
    let result = park();
    lock().busy += 1;
    worker.in_job.store(true, Ordering::Relaxed);
    result
}

/// How far from each end of the queue [`run_queued`] looks for its job.
const JOIN_SCAN: usize = 128;

/// Runs the job keyed `key` on this thread if it is still in the queue (within [`JOIN_SCAN`]
/// of either end; workers take from the front); whether it did. A join runs the very task it
/// waits for so, and no other: another task might wait for what the joiner does after the
/// join, which would then never come.
pub(crate) fn run_queued(key: usize) -> bool {
    let mut pool = lock();
    let len = pool.jobs.len();
    // The front, then the back less what the front already covered.
    let found = (0..len.min(JOIN_SCAN))
        .chain(len.saturating_sub(JOIN_SCAN).max(JOIN_SCAN)..len)
        .find(|&i| pool.jobs[i].key() == key);
    let Some(job) = found.and_then(|i| pool.jobs.remove(i)) else { return false };
    QUEUED.store(pool.jobs.len(), Ordering::Relaxed);
    drop(pool);
    job.run();
    true
}

/// Runs the newest queued job of `owner` on this thread if the queue ends with one (the
/// workers take the oldest first); whether it did. A thread waiting for all the tasks of a
/// scope or group at its end helps so: whatever such a task waits for, that wait waits too.
pub(crate) fn help(owner: usize) -> bool {
    let mut pool = lock();
    let Some(job) = pool.jobs.pop_back_if(|job| job.owner() == owner) else { return false };
    QUEUED.store(pool.jobs.len(), Ordering::Relaxed);
    drop(pool);
    job.run();
    true
}

fn lock_batch(batch: &Mutex<VecDeque<Job>>) -> MutexGuard<'_, VecDeque<Job>> {
    batch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A worker: counted as searching from its start, as busy while it has a batch.
fn work() {
    let me = Arc::new(Worker {
        batch: Mutex::new(VecDeque::new()),
        started: AtomicU64::new(0),
        in_job: AtomicBool::new(false),
        thread: if cfg!(loom) { None } else { os_thread::current() },
    });
    WORKER.with(|worker| *worker.borrow_mut() = Some(Arc::clone(&me)));
    let mut pool = lock();
    pool.workers.push(Arc::clone(&me));
    let mut searched = false;
    loop {
        if pool.take_batch(&me.batch) || pool.steal(&me) {
            pool.searching -= 1;
            pool.busy += 1;
            let action = pool.serve(lock_batch(&me.batch).len() > 1);
            drop(pool);
            action.run();
            run_batch(&me);
            search();
            pool = lock();
            pool.busy -= 1;
            pool.searching += 1;
            searched = false;
            continue;
        }
        if !searched && pool.searching == 1 {
            drop(pool);
            search();
            pool = lock();
            searched = true;
            continue;
        }
        let Some(woken) = sleep(pool) else { break };
        pool = woken;
        searched = false;
    }
    WORKER.with(|worker| *worker.borrow_mut() = None);
    lock().workers.retain(|w| !Arc::ptr_eq(w, &me));
}

fn run_batch(me: &Worker) {
    loop {
        let Some(job) = lock_batch(&me.batch).pop_front() else { return };
        me.started.store(me.started.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        me.in_job.store(true, Ordering::Relaxed);
        job.run();
        me.in_job.store(false, Ordering::Relaxed);
    }
}

/// Polls the queue, backing off, until jobs show up or the polls are spent. Early polls
/// wait for a fuller batch, so a worker keeping up with a burst of `go`s takes the jobs in
/// batches instead of fighting the submitter for the lock over each one.
fn search() {
    for round in 0..SPINS + YIELDS {
        if QUEUED.load(Ordering::Relaxed) >= (BATCH >> round.min(usize::BITS - 1)).max(1) {
            return;
        }
        if round < SPINS {
            (0..1u32 << (round / 8)).for_each(|_| spin_loop());
        } else {
            yield_now();
        }
    }
}

/// Sleeps until a wake-up makes this worker a searcher again; `None` when it retires instead.
fn sleep(mut pool: Guard) -> Option<Guard> {
    pool.searching -= 1;
    pool.sleeping += 1;
    let mut timed_out = false;
    loop {
        if pool.wakeups > 0 {
            pool.wakeups -= 1;
            pool.sleeping -= 1;
            pool.searching += 1;
            return Some(pool);
        }
        if timed_out || pool.closed() {
            pool.sleeping -= 1;
            pool.threads -= 1;
            let action = pool.serve_queue();
            drop(pool);
            action.run();
            return None;
        }
        let surplus = pool.threads > pool.max_procs();
        let timeout = if surplus { SURPLUS_IDLE } else { CORE_IDLE };
        let (next, waited) = AVAILABLE.wait_timeout(pool, timeout).unwrap_or_else(|p| p.into_inner());
        pool = next;
        timed_out = waited.timed_out();
    }
}

/// Once per tick while jobs wait anywhere, finds the stalled workers: those still
/// in the job they were running a tick ago. A stalled worker the kernel reports asleep is
/// blocked where the pool cannot see, as a goroutine in a syscall is, and gets a replacement
/// at once, as Go hands its processor to another thread; the stalled workers' batches are
/// taken back for the replacements. Workers that compute for longer than a tick are not
/// blocked and get no company that would only compete for the cores, unless no job at all
/// starts for [`COMPUTING_TICKS`] ticks (a task may spin waiting for one still queued).
#[cfg(not(loom))]
fn monitor() {
    let mut pool = lock();
    let mut quiet_ticks = 0;
    loop {
        // Even with a free worker: it may not reach the last job of a blocked worker's batch.
        if !pool.waiting() {
            quiet_ticks = 0;
            pool.monitor = MonitorState::Idle;
            pool = STARVING
                .wait_while(pool, |p| p.monitor == MonitorState::Idle)
                .unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let seen = pool.started();
        let marks: Vec<_> =
            pool.workers.iter().map(|w| (Arc::clone(w), w.started.load(Ordering::Relaxed))).collect();
        pool = STARVING.wait_timeout(pool, MONITOR_TICK).unwrap_or_else(|p| p.into_inner()).0;
        quiet_ticks = if pool.started() == seen { quiet_ticks + 1 } else { 0 };
        let stalled: Vec<_> = marks
            .into_iter()
            .filter(|(w, mark)| {
                w.in_job.load(Ordering::Relaxed) && w.started.load(Ordering::Relaxed) == *mark
            })
            .map(|(w, _)| w)
            .collect();
        drop(pool);
        let blocked = stalled.iter().filter(|w| !w.thread.is_some_and(os_thread::is_running)).count();
        pool = lock();
        let computing_too_long = stalled.len() > blocked && quiet_ticks >= COMPUTING_TICKS;
        let needed = if blocked > 0 { blocked } else { usize::from(computing_too_long) };
        if needed == 0 {
            continue;
        }
        quiet_ticks = 0;
        for worker in &stalled {
            if let Ok(mut batch) = worker.batch.try_lock() {
                pool.take_back(&mut batch);
            }
        }
        let missing = needed.min(pool.jobs.len()).saturating_sub(pool.free());
        let actions: Vec<_> = (0..missing).map(|_| pool.add_worker()).collect();
        drop(pool);
        actions.into_iter().for_each(Action::run);
        pool = lock();
    }
}

/// What the kernel says of a thread: whether it is running (or runnable) rather than asleep.
/// Only Linux says; elsewhere every busy worker without progress counts as blocked.
/// What the kernel says about a thread (shared with the cleanup workers' monitor).
pub(crate) mod os_thread {
    pub(crate) type ThreadId = u32;

    /// The calling thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
    pub(crate) fn current() -> Option<ThreadId> {
        let link = std::fs::read_link("/proc/thread-self").ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// Whether thread `tid` of this process is in state `R`; its `stat` line has the state
    /// right after the parenthesised name.
    pub(crate) fn is_running(tid: ThreadId) -> bool {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('R')))
            .unwrap_or(false)
    }

    #[cfg(all(test, target_os = "linux"))]
    mod tests {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, mpsc};
        use std::time::{Duration, Instant};

        /// Polls `condition` for up to ten seconds: the kernel's view lags a little.
        fn eventually(condition: impl Fn() -> bool) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if condition() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        }

        #[test]
        fn a_computing_thread_is_running_and_a_blocked_one_is_not() {
            let stop = Arc::new(AtomicBool::new(false));
            let (spinner_tx, spinner_rx) = mpsc::channel();
            let spinning = {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    spinner_tx.send(super::current()).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            };
            let (sleeper_tx, sleeper_rx) = mpsc::channel();
            let (wake_tx, wake_rx) = mpsc::channel::<()>();
            let blocked = std::thread::spawn(move || {
                sleeper_tx.send(super::current()).unwrap();
                wake_rx.recv().unwrap();
            });
            let spinner = spinner_rx.recv().unwrap().expect("Linux has /proc/thread-self");
            let sleeper = sleeper_rx.recv().unwrap().expect("Linux has /proc/thread-self");
            assert!(eventually(|| super::is_running(spinner)), "a spinning thread is running");
            assert!(eventually(|| !super::is_running(sleeper)), "a thread blocked in recv is not");
            stop.store(true, Ordering::Relaxed);
            wake_tx.send(()).unwrap();
            spinning.join().unwrap();
            blocked.join().unwrap();
            // `join` returns once the kernel clears the thread id, while the thread may still
            // be running its exit path; the kernel drops its entry soon after.
            assert!(eventually(|| !super::is_running(sleeper)), "a thread that exited is not running");
        }
    }
}

#[cfg(all(test, loom))]
mod loom;
