//! The cleanup workers: a small set of threads that run queued cleanups concurrently, so one
//! that blocks cannot stall the others (Go 1.25 runs cleanups on several goroutines too).
//!
//! Producers push whole lists of nodes onto one lock-free stack ([`QUEUE`]); a worker swaps
//! the stack out whole and runs that batch in queue order. While it runs a job it publishes
//! the rest of its batch in its [`Slot`], and takes it back with a swap after the job. A
//! monitor thread looks at every worker once per [`TICK`]: a worker still in the same job as
//! a tick ago and asleep in the kernel (blocked, like a goroutine in a syscall), or in one job
//! for [`COMPUTING_TICKS`], has the rest of its batch taken from it and queued again, and a
//! worker is woken or started for the queue whenever every running worker is stuck so. A
//! cleanup queued behind one that blocks therefore waits about two ticks; a worker that was
//! merely preempted on a busy machine gets no company, so workers do not multiply. The monitor also
//! warns about a cleanup that runs longer than [`set_slow_cleanup_threshold`]'s threshold,
//! and sleeps while no worker runs anything.
//!
//! [`flush_cleanups`] waits by epochs: every queued node is counted in the epoch current when
//! it was queued, a flush switches the epoch and waits until the old one's count drops to 0,
//! so it waits for exactly the cleanups queued before it, however the workers split them up.
//! Workers subtract what they ran in bulk (see [`Finished`]), and after each job while a
//! flush waits.
//!
//! The queue's push and take are modelled in `runtime::cleanup::loom`; the monitor, the
//! flush epochs and the sleeping workers are not (their waits are real-time parks).

use std::cell::Cell;
use std::panic::Location;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::thread::{self, Thread};
use std::time::Duration;

use super::{FreeBlock, Header, pool, run};
use crate::scope::pool::os_thread;
use crate::sync_shim::{self, const_fn, shim_static};

/// How often the monitor looks at the workers while any of them runs a batch.
const TICK: Duration = Duration::from_millis(1);
/// Ticks in one job after which a worker the kernel reports running (computing, or waiting
/// for a core) counts as stuck too; one the kernel reports asleep counts after one tick.
const COMPUTING_TICKS: u64 = 10;
/// Idle ticks after which the monitor sleeps until a worker starts a batch.
const MONITOR_IDLE_TICKS: u32 = 50;
/// At most this many workers; more cleanups than this blocking at once wait for one to end.
const MAX_WORKERS: usize = 64;
/// An idle worker beyond the first retires after this long.
const RETIRE_AFTER: Duration = Duration::from_secs(10);
/// How often an idle worker looks for work before it parks.
const SPINS: u32 = 64;
const YIELDS: u32 = 4;

/// The queue, its epoch and the number of queued, unfinished nodes per epoch, on one cache
/// line: a producer's push touches nothing else.
#[repr(align(64))]
pub(super) struct Queue {
    head: sync_shim::atomic::AtomicPtr<Header>,
    epoch: AtomicUsize,
    pending: [AtomicUsize; 2],
}

shim_static! {
    static QUEUE: Queue = Queue::new();
}

impl Queue {
    const_fn! {
        pub(super) fn new() -> Queue {
            Queue {
                head: sync_shim::atomic::AtomicPtr::new(ptr::null_mut()),
                epoch: AtomicUsize::new(0),
                pending: [AtomicUsize::new(0), AtomicUsize::new(0)],
            }
        }
    }

    /// Pushes the chain `head ..= tail` (owned by the caller); returns the previous top.
    pub(super) fn push(&self, head: NonNull<Header>, tail: NonNull<Header>) -> *mut Header {
        // SAFETY: `tail` is alive and ours until the CAS publishes it.
        let link = unsafe { &tail.as_ref().next };
        let mut top = self.head.load(Ordering::Relaxed);
        loop {
            link.store(top, Ordering::Relaxed);
            // SeqCst, paired with a sleeping worker's SeqCst registration and queue load.
            match self.head.compare_exchange_weak(top, head.as_ptr(), Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return top,
                Err(current) => top = current,
            }
        }
    }

    /// Takes every queued node, newest first.
    pub(super) fn take(&self) -> Option<NonNull<Header>> {
        NonNull::new(self.head.swap(ptr::null_mut(), Ordering::SeqCst))
    }

    fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null()
    }
}

/// One worker as the monitor sees it, on a cache line of its own: the worker writes it on
/// every job.
#[derive(Default)]
#[repr(align(64))]
struct Slot {
    /// Between taking a batch and going idle (set before the queue is swapped).
    active: AtomicBool,
    /// Jobs started and finished, odd while one runs (written by the worker only).
    seq: AtomicU64,
    /// The rest of the batch while a job runs, for the monitor to take.
    rest: AtomicPtr<Header>,
    /// Where the running job was registered.
    site: AtomicPtr<Location<'static>>,
    /// The worker's kernel thread id (0 until known, or where there is none).
    tid: AtomicU32,
}

static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());
/// Parked workers, and how many there are (read by producers without the lock).
static SLEEPERS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());
static SLEEPING: AtomicUsize = AtomicUsize::new(0);
/// Set when a sleeper is woken, cleared by the monitor: a woken worker needs a moment to
/// become active, during which the monitor starts no other.
static WOKEN: AtomicBool = AtomicBool::new(false);
static MONITOR: OnceLock<Thread> = OnceLock::new();
static MONITOR_SLEEPING: AtomicBool = AtomicBool::new(false);
static START: Once = Once::new();
/// The warning threshold in milliseconds.
static SLOW_MS: AtomicU64 = AtomicU64::new(1000);

/// The thread waiting in [`flush_cleanups`], for the worker that ends its epoch.
static FLUSHER: Mutex<Option<Thread>> = Mutex::new(None);
static FLUSHING: Flushing = Flushing(AtomicBool::new(false));

/// Whether a flush waits; read by workers after every job, so it sits on a line that
/// nothing else writes.
#[repr(align(64))]
struct Flushing(AtomicBool);
/// Serializes flushes: each switches the epoch once and waits for the old one.
static FLUSH: Mutex<()> = Mutex::new(());

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a list of nodes (owning one reference to each) to the workers.
pub(super) fn queue(head: NonNull<Header>) {
    let (tail, count) = tail_of(head);
    let epoch = enter_epoch(count);
    let mut node = Some(head);
    while let Some(current) = node {
        // SAFETY: the list's nodes are alive and ours until the push below publishes them.
        let header = unsafe { current.as_ref() };
        header.epoch.store(epoch as u8, Ordering::Relaxed);
        node = NonNull::new(header.next.load(Ordering::Relaxed));
    }
    let top = QUEUE.push(head, tail);
    START.call_once(start);
    // Only a push onto an empty queue can find every worker asleep: before a worker parks,
    // it registers as a sleeper and then looks at the queue again.
    if top.is_null() && SLEEPING.load(Ordering::SeqCst) > 0 {
        wake_one();
    }
}

/// The last node of a list and the list's length.
pub(super) fn tail_of(head: NonNull<Header>) -> (NonNull<Header>, usize) {
    let (mut tail, mut count) = (head, 1);
    // SAFETY: the list's nodes are alive (it owns a reference to each).
    while let Some(next) = NonNull::new(unsafe { tail.as_ref() }.next.load(Ordering::Relaxed)) {
        (tail, count) = (next, count + 1);
    }
    (tail, count)
}

/// Counts `count` nodes in the current epoch and returns it. Re-checked after counting, so
/// a flush that switched the epoch meanwhile either waits for these nodes or they move to
/// the new epoch.
fn enter_epoch(count: usize) -> usize {
    loop {
        let epoch = QUEUE.epoch.load(Ordering::SeqCst);
        QUEUE.pending[epoch].fetch_add(count, Ordering::SeqCst);
        if QUEUE.epoch.load(Ordering::SeqCst) == epoch {
            return epoch;
        }
        finish_in(epoch, count);
    }
}

/// Marks `count` nodes of `epoch` finished, waking a flush that waits for the last.
fn finish_in(epoch: usize, count: usize) {
    if count == 0 {
        return;
    }
    let before = QUEUE.pending[epoch].fetch_sub(count, Ordering::SeqCst);
    if before == count
        && FLUSHING.0.load(Ordering::SeqCst)
        && let Some(flusher) = lock(&FLUSHER).as_ref()
    {
        flusher.unpark();
    }
}

fn start() {
    let monitor = spawn("gonext-cleanup-monitor", monitor).expect("the cleanup monitor thread starts");
    let _ = MONITOR.set(monitor);
    start_worker();
}

fn spawn(name: &str, main: fn()) -> std::io::Result<Thread> {
    crate::thread::spawn_unadopted(thread::Builder::new().name(name.into()), main)
        .map(|handle| handle.thread().clone())
}

/// Starts a worker unless [`MAX_WORKERS`] run; the first one must start.
fn start_worker() {
    let mut slots = lock(&SLOTS);
    if slots.len() >= MAX_WORKERS {
        return;
    }
    let slot = Arc::new(Slot::default());
    slots.push(Arc::clone(&slot));
    let first = slots.len() == 1;
    drop(slots);
    let started =
        crate::thread::spawn_unadopted(thread::Builder::new().name("gonext-cleanup".into()), move || {
            work(&slot);
        });
    assert!(started.is_ok() || !first, "the cleanup worker thread starts");
}

fn wake_one() {
    if let Some(sleeper) = lock(&SLEEPERS).pop() {
        SLEEPING.fetch_sub(1, Ordering::SeqCst);
        WOKEN.store(true, Ordering::SeqCst);
        sleeper.unpark();
    }
}

fn work(slot: &Arc<Slot>) {
    IS_WORKER.with(|is| is.set(true));
    slot.tid.store(os_thread::current().unwrap_or(0), Ordering::Relaxed);
    let mut finished = Finished::default();
    loop {
        slot.active.store(true, Ordering::SeqCst);
        match QUEUE.take() {
            Some(batch) => {
                if MONITOR_SLEEPING.load(Ordering::SeqCst) && MONITOR_SLEEPING.swap(false, Ordering::SeqCst) {
                    MONITOR.get().expect("the monitor starts first").unpark();
                }
                run_batch(slot, reverse(batch), &mut finished);
            }
            None => {
                slot.active.store(false, Ordering::Release);
                if FLUSHING.0.load(Ordering::SeqCst) {
                    finished.publish();
                }
                if idle() {
                    continue;
                }
                finished.publish();
                if retire(slot) {
                    return;
                }
            }
        }
    }
}

/// Nodes a worker finished and has not subtracted from the pending counts yet: it does so
/// while a flush waits, before it parks, and every [`Finished::PUBLISH_EVERY`] jobs, not
/// after every batch, so that a worker keeping up with a producer does not trade the
/// queue's cache line with it twice per cleanup.
#[derive(Default)]
struct Finished {
    counts: [usize; 2],
    since_publish: usize,
}

impl Finished {
    const PUBLISH_EVERY: usize = 256;

    fn add(&mut self, epoch: usize) {
        self.counts[epoch] += 1;
        self.since_publish += 1;
        if self.since_publish >= Self::PUBLISH_EVERY || FLUSHING.0.load(Ordering::Relaxed) {
            self.publish();
        }
    }

    fn publish(&mut self) {
        for (epoch, count) in self.counts.iter_mut().enumerate() {
            finish_in(epoch, std::mem::take(count));
        }
        self.since_publish = 0;
    }
}

/// Reverses a stack (newest first) into queue order.
fn reverse(mut batch: NonNull<Header>) -> NonNull<Header> {
    let mut in_order: *mut Header = ptr::null_mut();
    loop {
        // SAFETY: the swap made this batch the worker's alone (its pushes happened before,
        // through the SeqCst CAS and swap); its nodes are alive.
        let link = unsafe { &batch.as_ref().next };
        let next = link.load(Ordering::Relaxed);
        link.store(in_order, Ordering::Relaxed);
        in_order = batch.as_ptr();
        match NonNull::new(next) {
            Some(next) => batch = next,
            None => return batch,
        }
    }
}

/// Runs a batch in order, offering the rest of it to the monitor during each job.
fn run_batch(slot: &Slot, first: NonNull<Header>, finished: &mut Finished) {
    let mut freed = FreedBlocks::default();
    let mut next = Some(first);
    while let Some(node) = next {
        // SAFETY: the worker owns the queue's reference to `node`, so it is alive; its link
        // and epoch are read before `run` gives the reference back.
        let header = unsafe { node.as_ref() };
        let epoch = usize::from(header.epoch.load(Ordering::Relaxed));
        slot.rest.store(header.next.load(Ordering::Relaxed), Ordering::Release);
        slot.site.store(ptr::from_ref(header.site).cast_mut(), Ordering::Relaxed);
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq + 1, Ordering::Relaxed);
        if let Some(block) = run(node) {
            freed.push(block);
        }
        slot.seq.store(seq + 2, Ordering::Relaxed);
        finished.add(epoch);
        // Acquire: the monitor may have taken the rest; then it is null.
        next = NonNull::new(slot.rest.swap(ptr::null_mut(), Ordering::Acquire));
    }
    freed.give();
}

/// The blocks a batch freed, returned to the pool in one push.
#[derive(Default)]
struct FreedBlocks {
    chain: Option<(NonNull<FreeBlock>, NonNull<FreeBlock>)>,
    count: usize,
}

impl FreedBlocks {
    fn push(&mut self, block: NonNull<FreeBlock>) {
        let first = self.chain.map_or(ptr::null_mut(), |(first, _)| first.as_ptr());
        // SAFETY: the block is free and the worker's: link it into the chain.
        unsafe { FreeBlock::link(block, first) };
        self.chain = Some((block, self.chain.map_or(block, |(_, last)| last)));
        self.count += 1;
    }

    fn give(self) {
        if let Some((first, last)) = self.chain {
            pool::give(first, last, self.count);
        }
    }
}

/// Waits briefly for work; `false` when none came and the worker should park.
fn idle() -> bool {
    for _ in 0..SPINS {
        if !QUEUE.head.load(Ordering::Relaxed).is_null() {
            return true;
        }
        std::hint::spin_loop();
    }
    for _ in 0..YIELDS {
        if !QUEUE.head.load(Ordering::Relaxed).is_null() {
            return true;
        }
        thread::yield_now();
    }
    false
}

/// Parks until woken; returns whether this worker retires (idle too long, not the last).
fn retire(slot: &Arc<Slot>) -> bool {
    let me = thread::current();
    lock(&SLEEPERS).push(me.clone());
    SLEEPING.fetch_add(1, Ordering::SeqCst);
    if QUEUE.is_empty() {
        thread::park_timeout(RETIRE_AFTER);
    }
    let still_asleep = {
        let mut sleepers = lock(&SLEEPERS);
        let position = sleepers.iter().position(|t| t.id() == me.id());
        position.map(|at| sleepers.swap_remove(at)).is_some()
    };
    if !still_asleep {
        return false; // woken: `wake_one` took it off the list and the count
    }
    SLEEPING.fetch_sub(1, Ordering::SeqCst);
    if !QUEUE.is_empty() {
        return false;
    }
    let mut slots = lock(&SLOTS);
    if slots.len() == 1 {
        return false;
    }
    slots.retain(|other| !Arc::ptr_eq(other, slot));
    true
}

/// What the monitor remembers of a worker between ticks.
struct Watched {
    slot: Arc<Slot>,
    seq: u64,
    ticks: u64,
    warned: bool,
}

fn monitor() {
    let mut watched: Vec<Watched> = Vec::new();
    let mut idle_ticks = 0;
    loop {
        thread::park_timeout(TICK);
        let slots: Vec<Arc<Slot>> = lock(&SLOTS).clone();
        watched.retain(|w| slots.iter().any(|s| Arc::ptr_eq(s, &w.slot)));
        for slot in slots {
            if !watched.iter().any(|w| Arc::ptr_eq(&w.slot, &slot)) {
                watched.push(Watched { slot, seq: 0, ticks: 0, warned: false });
            }
        }
        let stuck = watched.iter_mut().map(observe).filter(|&stuck| stuck).count();
        let active = watched.iter().filter(|w| w.slot.active.load(Ordering::SeqCst)).count();
        let woken = WOKEN.swap(false, Ordering::SeqCst);
        if !QUEUE.is_empty() && stuck == active {
            // Every running worker is in a long job: the queue needs another one, unless
            // one was woken since the last tick and has not started yet.
            if SLEEPING.load(Ordering::SeqCst) > 0 {
                wake_one();
            } else if !woken {
                start_worker();
            }
        }
        idle_ticks = if active == 0 { idle_ticks + 1 } else { 0 };
        if idle_ticks >= MONITOR_IDLE_TICKS {
            sleep_monitor(&watched);
            idle_ticks = 0;
        }
    }
}

/// Updates what the monitor knows of one worker; returns whether it is stuck in one job:
/// asleep in it since the last tick (blocked), or in it for [`COMPUTING_TICKS`]. The rest of
/// a stuck worker's batch goes back to the queue.
fn observe(watched: &mut Watched) -> bool {
    let seq = watched.slot.seq.load(Ordering::Relaxed);
    let in_job = seq % 2 == 1;
    if !in_job || seq != watched.seq {
        (watched.seq, watched.ticks, watched.warned) = (seq, 0, false);
        return false;
    }
    watched.ticks += 1;
    warn_if_slow(watched);
    // A worker the kernel shows running is computing or was preempted; only a long stay in
    // one job makes it stuck, so that a busy machine does not multiply the workers.
    let stuck =
        watched.ticks >= COMPUTING_TICKS || !os_thread::is_running(watched.slot.tid.load(Ordering::Relaxed));
    if stuck && let Some(rest) = NonNull::new(watched.slot.rest.swap(ptr::null_mut(), Ordering::AcqRel)) {
        let (tail, _) = tail_of(rest);
        QUEUE.push(rest, tail);
    }
    stuck
}

/// Reports a worker's job once it ran longer than the threshold.
fn warn_if_slow(watched: &mut Watched) {
    let slow_ms = SLOW_MS.load(Ordering::Relaxed);
    if !watched.warned && watched.ticks * TICK.as_millis() as u64 >= slow_ms {
        watched.warned = true;
        let site = watched.slot.site.load(Ordering::Relaxed);
        // SAFETY: the worker stores only `&'static Location`s here.
        let site = unsafe { site.as_ref() }.map_or_else(|| "an unknown site".to_owned(), ToString::to_string);
        eprintln!(
            "gonext: the cleanup registered at {site} has run for more than {slow_ms} ms; cleanups should \
             be short (spawn a thread for long work); the others run on other workers meanwhile"
        );
    }
}

/// Parks the monitor until a worker takes a batch, unless one is active already.
fn sleep_monitor(watched: &[Watched]) {
    MONITOR_SLEEPING.store(true, Ordering::SeqCst);
    let busy = watched.iter().any(|w| w.slot.active.load(Ordering::SeqCst)) || !QUEUE.is_empty();
    if busy {
        MONITOR_SLEEPING.store(false, Ordering::SeqCst);
        return;
    }
    // A worker that takes a batch after the checks above sees `MONITOR_SLEEPING` and
    // unparks; an unpark that comes first makes this return at once.
    while MONITOR_SLEEPING.load(Ordering::SeqCst) {
        thread::park();
    }
}

/// Waits until every cleanup queued so far has run (or was stopped).
///
/// Cleanups queued while it waits are not waited for.
///
/// ```
/// gonext::runtime::flush_cleanups(); // returns at once when nothing is queued
/// ```
///
/// # Panics
///
/// When called by a cleanup (on a cleanup worker), which would wait for itself forever.
#[track_caller]
pub fn flush_cleanups() {
    assert!(
        !IS_WORKER.with(Cell::get),
        "runtime::flush_cleanups at {}: called by a cleanup, which would wait for itself forever",
        Location::caller()
    );
    let _one_at_a_time = lock(&FLUSH);
    let old = QUEUE.epoch.load(Ordering::SeqCst);
    *lock(&FLUSHER) = Some(thread::current());
    FLUSHING.0.store(true, Ordering::SeqCst);
    QUEUE.epoch.store(1 - old, Ordering::SeqCst);
    while QUEUE.pending[old].load(Ordering::SeqCst) != 0 {
        thread::park();
    }
    FLUSHING.0.store(false, Ordering::SeqCst);
    *lock(&FLUSHER) = None;
}

/// The number of cleanups whose objects died and that have not finished yet: queued or
/// running.
///
/// ```
/// use gonext::{Ptr, runtime};
///
/// let object = Ptr::new(());
/// runtime::add_cleanup(&object, |_: ()| {}, ());
/// drop(object);
/// runtime::flush_cleanups();
/// assert_eq!(runtime::pending_cleanups(), 0);
/// ```
///
/// Cleanups that finished recently may still be counted: a busy worker subtracts what it ran
/// every 256 cleanups (at once while a flush waits), an idle one before it sleeps.
pub fn pending_cleanups() -> usize {
    QUEUE.pending.iter().map(|count| count.load(Ordering::SeqCst)).sum()
}

/// Warns on stderr, naming the registration site, about each cleanup that runs longer than
/// `threshold` (1 second unless set). Long cleanups do not delay the others, but they hold a
/// worker thread each.
///
/// ```
/// gonext::runtime::set_slow_cleanup_threshold(std::time::Duration::from_millis(100));
/// ```
pub fn set_slow_cleanup_threshold(threshold: Duration) {
    SLOW_MS.store(u64::try_from(threshold.as_millis()).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
}
