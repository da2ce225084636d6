//! The process-wide value behind [`max_procs`]: detected on first use, re-detected once a
//! second by a watcher thread (like Go 1.25's `GODEBUG=updatemaxprocs`), fixed by
//! [`set_max_procs`], and announced to [`on_max_procs_change`] callbacks and gonext's own
//! worker pool.
//!
//! [`max_procs`] reads one atomic. Everything else goes through `GLOBAL`, and every change
//! with its notification happens under `CHANGES`, so callbacks see the changes one at a time
//! and in order.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::Duration;

use super::{Detector, Procs, Source};

/// How often the watcher re-detects.
const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// `0` until the first detection; afterwards the value [`max_procs`] returns.
static CACHED: AtomicUsize = AtomicUsize::new(0);

struct Global {
    /// The installed detector; `None` is `Detector::new()`.
    detector: Option<Detector>,
    /// The value [`set_max_procs`] fixed, and where.
    fixed: Option<(usize, &'static Location<'static>)>,
    /// The report behind [`CACHED`].
    report: Option<Procs>,
    /// [`set_update_max_procs`]'s choice (`GONEXT_UPDATE_MAX_PROCS=0` can veto it too).
    updates: bool,
    /// The memory limit, once [`memory_limit`] was asked (then kept fresh with the report).
    memory: Option<Option<u64>>,
}

static GLOBAL: Mutex<Global> =
    Mutex::new(Global { detector: None, fixed: None, report: None, updates: true, memory: None });
/// Held while a change is applied and announced.
static CHANGES: Mutex<()> = Mutex::new(());
static WATCHER: Once = Once::new();

type Callback = Arc<dyn Fn(usize, usize) + Send + Sync>;
static CALLBACKS: Mutex<Vec<(u64, Callback)>> = Mutex::new(Vec::new());
static NEXT_CALLBACK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this thread runs the callbacks of a change.
    static ANNOUNCING: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The number of threads a CPU-bound pool should run in this process.
///
/// Detected from the real system with [`Detector::new`]'s defaults (or the
/// [installed](Detector::install) detector) on first use and cached: afterwards this is one
/// atomic load. A watcher thread re-detects at most once a second, so the value follows a
/// container whose quota is changed in place; [`on_max_procs_change`] announces each change.
/// `GONEXT_UPDATE_MAX_PROCS=0` or [`set_update_max_procs`] turn that off, [`refresh`]
/// re-detects at once, and [`set_max_procs`] fixes the value.
///
/// ```
/// let threads = gonext::runtime::max_procs();
/// assert!(threads >= 1);
/// assert_eq!(threads, gonext::runtime::max_procs_report().value);
/// ```
///
/// # Differences from Go
///
/// Go 1.25 sets `GOMAXPROCS` itself and adjusts it as the quota changes; Rust has no runtime
/// that owns your threads, so gonext computes the number, resizes its own worker pool, and
/// tells [`on_max_procs_change`] callbacks so that other pools and semaphores can follow (a
/// tokio or rayon pool cannot be resized). Go reads `GOMAXPROCS` as the override; gonext
/// reads `GONEXT_MAX_PROCS` so that setting one never changes the other language's programs
/// by accident. Go rounds a fractional quota up and never goes below 2 threads when a quota
/// is set; gonext rounds up too, with a minimum of 1 by default ([`Detector::min`]). Go reads
/// only the process's own cgroup (golang/go#81180); gonext takes the smallest quota of it and
/// its ancestors.
#[inline]
pub fn max_procs() -> usize {
    match CACHED.load(Ordering::Relaxed) {
        0 => first_max_procs(),
        cached => cached,
    }
}

#[cold]
fn first_max_procs() -> usize {
    refresh().value
}

/// Where [`max_procs`]'s value came from, with the quota, the cgroup and any warnings.
///
/// Detected on first use and kept current with [`max_procs`].
///
/// ```
/// let report = gonext::runtime::max_procs_report();
/// println!("{report}"); // e.g. "max_procs=2: from CPU affinity (2 CPUs allowed)"
/// assert!(report.value >= 1 && report.value <= report.cpus);
/// ```
pub fn max_procs_report() -> Procs {
    let cached = lock(&GLOBAL).report.clone();
    cached.unwrap_or_else(refresh)
}

/// Detects again now, updates the value [`max_procs`] returns (unless [`set_max_procs`]
/// fixed it) and returns the new report.
///
/// ```
/// let report = gonext::runtime::refresh();
/// assert_eq!(report.value, gonext::runtime::max_procs());
/// ```
///
/// # Panics
///
/// When called by an [`on_max_procs_change`] callback, which would wait for its own change.
#[track_caller]
pub fn refresh() -> Procs {
    let detector = lock(&GLOBAL).detector.clone().unwrap_or_default();
    let detected = detector.detect();
    let memory = wanted_memory(&detector, &detected);
    change("refresh", |global| {
        global.report = Some(detected);
        if memory.is_some() {
            global.memory = memory;
        }
    })
}

/// The memory limit to keep, if [`memory_limit`] was asked before: from the report, or read
/// separately when an environment override kept the detection from reading cgroups.
fn wanted_memory(detector: &Detector, detected: &Procs) -> Option<Option<u64>> {
    lock(&GLOBAL).memory?;
    Some(match detected.source {
        Source::Env { .. } => detector.detect_memory(),
        _ => detected.memory_limit,
    })
}

/// Fixes [`max_procs`] at `n` and returns the value it replaces: Go's `runtime.GOMAXPROCS(n)`.
///
/// The periodic re-detection no longer changes the value until [`set_default_max_procs`];
/// [`max_procs_report`] says where it was set.
///
/// ```
/// use gonext::runtime;
///
/// let before = runtime::set_max_procs(3);
/// assert_eq!(runtime::max_procs(), 3);
/// assert!(runtime::max_procs_report().to_string().starts_with("max_procs=3: set by runtime::set_max_procs at "));
/// runtime::set_default_max_procs();
/// # let _ = before;
/// ```
///
/// # Panics
///
/// If `n` is zero, or when called by an [`on_max_procs_change`] callback.
///
/// # Differences from Go
///
/// `GOMAXPROCS(0)` queries the value; here `0` is a mistake, and [`max_procs`] queries.
#[track_caller]
pub fn set_max_procs(n: usize) -> usize {
    let at = Location::caller();
    assert!(n > 0, "runtime::set_max_procs at {at}: a pool needs at least one thread, got 0");
    let previous = max_procs();
    change("set_max_procs", |global| global.fixed = Some((n, at)));
    previous
}

/// Undoes [`set_max_procs`]: detects again and lets the periodic re-detection follow the
/// quota: Go's `runtime.SetDefaultGOMAXPROCS`. Returns the new report.
///
/// ```
/// use gonext::runtime;
///
/// runtime::set_max_procs(7);
/// let report = runtime::set_default_max_procs();
/// assert_eq!(runtime::max_procs(), report.value);
/// ```
///
/// # Panics
///
/// When called by an [`on_max_procs_change`] callback.
#[track_caller]
pub fn set_default_max_procs() -> Procs {
    lock(&GLOBAL).fixed = None;
    refresh()
}

/// Turns the once-a-second re-detection off, or back on: the API twin of
/// `GONEXT_UPDATE_MAX_PROCS=0` (Go's `GODEBUG=updatemaxprocs=0`). The updates run while
/// neither turned them off; [`refresh`] still re-detects when asked.
///
/// ```
/// gonext::runtime::set_update_max_procs(false);
/// let fixed_until_refreshed = gonext::runtime::max_procs();
/// # let _ = fixed_until_refreshed;
/// gonext::runtime::set_update_max_procs(true);
/// ```
pub fn set_update_max_procs(enabled: bool) {
    lock(&GLOBAL).updates = enabled;
    if enabled {
        start_watcher();
    }
}

/// The smallest cgroup memory limit of this process and its ancestors, in bytes, or `None`
/// when there is none (or no cgroups): what uber-go/automemlimit sets `GOMEMLIMIT` from.
///
/// Read from cgroup v2 `memory.max` or v1 `memory.limit_in_bytes` on first use, also when
/// `GONEXT_MAX_PROCS` overrides the CPU detection, and kept current with [`max_procs`].
///
/// ```
/// if let Some(limit) = gonext::runtime::memory_limit() {
///     let cache_budget = limit / 4;
///     # let _ = cache_budget;
/// }
/// ```
///
/// # Differences from Go
///
/// Go has no automatic memory limit; `debug.SetMemoryLimit` takes the number. Rust has no
/// garbage collector to give it to, so gonext only reports it, for caches and allocators.
pub fn memory_limit() -> Option<u64> {
    if let Some(known) = lock(&GLOBAL).memory {
        return known;
    }
    let report = max_procs_report();
    let memory = match report.source {
        Source::Env { .. } | Source::Set { .. } => {
            lock(&GLOBAL).detector.clone().unwrap_or_default().detect_memory()
        }
        _ => report.memory_limit,
    };
    *lock(&GLOBAL).memory.get_or_insert(memory)
}

/// Calls `callback(old, new)` after each change of [`max_procs`], until the returned handle
/// is dropped: resize a pool or a semaphore with it.
///
/// Callbacks run one change at a time, in order, on the thread that made the change (the
/// caller of [`set_max_procs`] or [`refresh`], or gonext's watcher thread), after gonext's
/// own pool was resized. A panicking callback is reported on stderr and the others still run.
///
/// ```
/// use gonext::runtime;
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let watch = runtime::on_max_procs_change(move |old, new| log.lock().unwrap().push((old, new)));
/// let before = runtime::set_max_procs(runtime::max_procs() + 1);
/// assert_eq!(*seen.lock().unwrap(), [(before, before + 1)]);
/// drop(watch);
/// runtime::set_default_max_procs();
/// assert_eq!(seen.lock().unwrap().len(), 1, "a dropped handle hears nothing");
/// ```
///
/// # Differences from Go
///
/// Go has no notification: its scheduler is the only pool, and it resizes itself.
pub fn on_max_procs_change(callback: impl Fn(usize, usize) + Send + Sync + 'static) -> OnMaxProcsChange {
    let id = NEXT_CALLBACK.fetch_add(1, Ordering::Relaxed);
    lock(&CALLBACKS).push((id, Arc::new(callback)));
    start_watcher();
    OnMaxProcsChange { id }
}

/// The registration of an [`on_max_procs_change`] callback; dropping it unregisters it.
#[derive(Debug)]
#[must_use = "dropping the handle unregisters the callback at once"]
pub struct OnMaxProcsChange {
    id: u64,
}

impl Drop for OnMaxProcsChange {
    fn drop(&mut self) {
        lock(&CALLBACKS).retain(|(id, _)| *id != self.id);
    }
}

pub(super) fn install(detector: Detector) -> Procs {
    lock(&GLOBAL).detector = Some(detector);
    refresh()
}

/// Applies `update` to the global state, publishes the resulting value and announces it if
/// it changed; returns the new report.
#[track_caller]
fn change(what: &str, update: impl FnOnce(&mut Global)) -> Procs {
    assert!(
        !ANNOUNCING.with(Cell::get),
        "runtime::{what} at {}: called by an on_max_procs_change callback, which would wait for its \
         own change; make the change from another thread",
        Location::caller()
    );
    let _changes = lock(&CHANGES);
    let (old, report) = {
        let mut global = lock(&GLOBAL);
        update(&mut global);
        let mut report =
            global.report.clone().unwrap_or_else(|| global.detector.clone().unwrap_or_default().detect());
        if let Some((value, at)) = global.fixed {
            report.value = value;
            report.source = Source::Set { at };
        }
        global.report = Some(report.clone());
        (CACHED.swap(report.value, Ordering::Relaxed), report)
    };
    start_watcher();
    if old != 0 && old != report.value {
        announce(old, report.value);
    }
    report
}

fn announce(old: usize, new: usize) {
    crate::scope::pool::follow_max_procs();
    let callbacks: Vec<Callback> =
        lock(&CALLBACKS).iter().map(|(_, callback)| Arc::clone(callback)).collect();
    ANNOUNCING.with(|flag| flag.set(true));
    for callback in callbacks {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| callback(old, new))) {
            eprintln!(
                "gonext: an on_max_procs_change callback panicked on {old} -> {new} (the others still run): {}",
                message(&*payload)
            );
        }
    }
    ANNOUNCING.with(|flag| flag.set(false));
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string payload>")
}

/// Starts the watcher once, unless updates are off (then [`set_update_max_procs`] starts it).
fn start_watcher() {
    if !updates_wanted() {
        return;
    }
    WATCHER.call_once(|| {
        // Without a thread the value stays as detected, which is what it was before Go 1.25.
        let _ = crate::thread::spawn_unadopted(thread::Builder::new().name("gonext-max-procs".into()), watch);
    });
}

/// Whether the periodic re-detection should run now.
fn updates_wanted() -> bool {
    let global = lock(&GLOBAL);
    let detector = global.detector.clone().unwrap_or_default();
    global.fixed.is_none() && global.updates && detector.updates_enabled(&mut Vec::new())
}

fn watch() {
    loop {
        thread::sleep(UPDATE_INTERVAL);
        if updates_wanted() {
            refresh();
        }
    }
}
