//! Virtual time: Go's `testing/synctest` bubbles, for threads and async tasks.
//!
//! A *bubble* is a set of threads and async tasks that share one virtual clock, starting at
//! 2000-01-01T00:00:00Z. Inside it, [`Instant::now`], [`SystemTime::now`], [`sleep`],
//! [`thread::sleep`](crate::thread::sleep), [`Ticker`], [`Timer`], [`after_func`],
//! channels, `WaitGroup`s, locks and `Context` deadlines all use that clock. The clock only moves when every member is
//! *durably blocked* — parked inside a gonext primitive — and then jumps straight to the
//! earliest timer. A test that sleeps for an hour finishes in microseconds, and the order of
//! events is exactly what the code says, every run.
//!
//! ```
//! use gonext::{thread, time};
//! use std::time::Duration;
//!
//! time::bubble(|| {
//!     let start = time::Instant::now();
//!     let worker = thread::spawn(|| thread::sleep(Duration::from_secs(5))); // joins the bubble
//!     thread::sleep(Duration::from_secs(2));
//!     worker.join().unwrap();
//!     assert_eq!(start.elapsed(), Duration::from_secs(5));
//! });
//! ```
//!
//! # The model
//!
//! - Members: the closure of [`bubble`] (or the future of [`bubble_async`]), every thread
//!   started with [`crate::thread::spawn`] by a member, and every task started with
//!   [`crate::task::spawn`] inside `bubble_async`. A thread started with `std::thread::spawn`
//!   is not a member and keeps real time.
//! - When every member is blocked, in Go's order: members whose timer is due wake (and due
//!   [`after_func`] functions start, each on a new member thread); else the [`wait`] (or
//!   [`wait_async`]) caller wakes; else the clock advances to the earliest timer; else the bubble
//!   panics with `deadlock: all tasks in bubble are blocked` and, for each member, its name,
//!   where it started and where it is blocked. Tokio's paused clock hangs silently here.
//! - Blocking outside gonext (a `std::sync::Mutex`, real I/O, a foreign future) counts as
//!   running: the clock waits. So does waiting on a channel, `WaitGroup` or `Context` created
//!   *outside* the bubble, and a `select!` with such a branch: as in Go, something outside
//!   may still complete it, so it is never a durable block and never causes a deadlock
//!   report. If nothing moves for the stall limit of real time (30 s by
//!   default, [`Bubble::stall`]), the bubble panics with the same member report.
//! - Once the root (the closure or future given to the bubble) returns, the clock stops, as
//!   in Go: members still blocked then, even on timers, are reported as a deadlock.
//! - The bubble returns only after every member has finished. A member's panic aborts the
//!   others (they unwind from their blocking call) and is re-raised in the caller with its
//!   original payload.
//! - Objects created in a bubble (timers, tickers, channels, `WaitGroup`s, `Context`s) belong
//!   to it; using one from outside its bubble, or in another bubble, panics naming both, and
//!   so does using a timer or ticker made outside any bubble inside one (it would run a real
//!   timer against the virtual clock). Dropping is not a use: a bubble's values may be dropped
//!   anywhere (see [`sync::chan`](crate::sync::chan) for what closing a channel from outside
//!   does).
//!
//! # Seeing what happened
//!
//! A failure report shows where every member is blocked; a bubble can also tell the story of
//! how it got there. It records, when asked, each member's start and end, each park (the
//! operation and its site), each wake and by whom, each jump of the clock, each `wait()` and
//! each timer that fires, stamped with virtual time and a sequence number.
//!
//! - **Timelines in reports.** With `GONEXT_TIMELINE=20` in the environment (or
//!   [`Bubble::timeline`], or `#[virtual_time_test(timeline = 20)]`), deadlock, stall and
//!   virtual-timeout reports end with the bubble's last 20 events, and a member's panic prints
//!   them on stderr before it is re-raised:
//!
//!   ```text
//!   the last 5 events (virtual time since the start):
//!   +0ns          root         started at tests/orders.rs:12:5
//!   +0ns          root         blocked in thread::sleep at tests/orders.rs:14:9
//!   +1.5s         (clock)      advanced by 1.5s (every member was blocked)
//!   +1.5s         root         woken by its timer
//!   +1.5s         root         blocked in chan recv at tests/orders.rs:15:29
//!   ```
//!
//!   Recording is off by default, because it costs the bubble's hot paths about a tenth; a
//!   report says how to turn it on, and since a virtual-time test fails the same way every
//!   run, the next run's report tells the story.
//! - **Trace files.** `GONEXT_TRACE=dir` writes one file per bubble into `dir` (named after the
//!   bubble, `#[virtual_time_test]` names it after the test), [`Bubble::trace`] and
//!   `#[virtual_time_test(trace = "target/traces/retry.json")]` one file each — also when the
//!   bubble fails. They are Chrome trace-event JSON: open ui.perfetto.dev and drop the file on
//!   the page (or use "Open trace file"), or open `chrome://tracing` in Chrome and press
//!   "Load". Each member is a track: "running" slices while it runs, `blocked: time::sleep`-style slices
//!   (with their site in the slice's arguments) while it is parked, instant marks where it was
//!   woken (the waker in the arguments), and the clock's jumps as marks across the whole
//!   timeline. The time axis is virtual time since the bubble's start: a retry schedule of an
//!   hour reads as an hour.
//! - **In code.** [`Bubble::run_traced`] and [`Bubble::run_async_traced`] return the
//!   [`Trace`] with the output: its [`events`](Trace::events), a text
//!   [`timeline`](Trace::timeline), or the JSON.
//!
//! ```
//! use gonext::time::{Bubble, EventKind};
//! use gonext::{sync, thread};
//! use std::time::Duration;
//!
//! let ((), trace) = Bubble::new().run_traced(|| {
//!     let (tx, rx) = sync::chan(0);
//!     let worker = thread::spawn(move || tx.send(rx_len()).unwrap());
//!     thread::sleep(Duration::from_secs(1));
//!     assert_eq!(rx.recv(), Some(3));
//!     worker.join().unwrap();
//! });
//! # fn rx_len() -> usize { 3 }
//! let jumps = trace.events().iter().filter(|e| matches!(e.kind(), EventKind::ClockAdvanced { .. }));
//! assert_eq!(jumps.count(), 1);
//! println!("{}", trace.timeline());
//! ```
//!
//! Outside a bubble every call is a pass-through: `Instant::now()` is std's after one
//! thread-local read, `thread::sleep` is std's, and async timers run on one lazily started
//! timer thread, so they work under tokio, `futures::executor` or any other executor.
//!
//! Without the `std-time` feature, only gonext's own clocks, timers and primitives are
//! virtual: `std::time::Instant`, `std::thread::sleep`, std's timed waits and every crate
//! built on them keep real time inside a bubble. [`std_time_is_virtual`] tells which applies.
//!
//! # Virtual time for std code
//!
//! Go's promise is that code under test needs no clock injection. With the opt-in feature
//! `std-time` (meant for `[dev-dependencies]`), gonext keeps it for std and everything built
//! on std, on Linux with glibc (x86_64 and aarch64):
//!
//! ```toml
//! [dev-dependencies]
//! gonext = { version = "0.1", features = ["std-time"] }
//! ```
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! gonext::time::bubble(|| {
//!     if gonext::time::std_time_is_virtual() {
//!         let start = Instant::now(); // std's own Instant
//!         std::thread::sleep(Duration::from_secs(3600)); // returns at once
//!         assert_eq!(start.elapsed(), Duration::from_secs(3600));
//!     }
//! });
//! ```
//!
//! **How.** std is linked into every binary and calls libc by name; the feature defines the
//! libc symbols std calls, and a definition in the binary wins over libc's. Each checks
//! whether the calling thread is a bubble member (one thread-local read) and otherwise calls
//! libc's own function, so outside bubbles everything behaves exactly as before.
//!
//! **What is covered, for members:**
//!
//! - Clocks: `clock_gettime` (`CLOCK_MONOTONIC`, `BOOTTIME`, `REALTIME`, `TAI` and their
//!   coarse, raw and alarm variants), `gettimeofday`, `time`; so `std::time::Instant`,
//!   `SystemTime` and gonext's [`Instant`]/[`SystemTime`] agree exactly. CPU-time clocks stay
//!   real.
//! - Sleeps: `clock_nanosleep` (`std::thread::sleep`), `nanosleep`, `usleep`, `sleep` are
//!   durable virtual sleeps, as [`crate::thread::sleep`] is.
//! - Timed waits: std turns a timeout into an absolute deadline read from the (virtual) clock
//!   and hands it to the kernel's futex. `syscall(SYS_futex, …)` is interposed: a member's
//!   timed wait (`Condvar::wait_timeout`, `mpsc::Receiver::recv_timeout`,
//!   `thread::park_timeout`, parking_lot's timed parks) is a durable virtual timer, and a
//!   wake-up from any thread makes the member count as running before it runs, so the clock
//!   cannot jump past a notification in flight.
//! - Untimed waits (a contended `std::sync::Mutex`, `Condvar::wait`, `recv`) are not durable:
//!   the waker may be outside the bubble (Go's rule for objects the bubble did not create).
//!   They count as running; a bubble stuck there ends in the stall report, which names the
//!   member "in an untimed std wait".
//! - Threads: a thread a member starts with `std::thread::spawn` (any `pthread_create`, so
//!   the pools of other crates too) joins the bubble, as a goroutine started in a bubble
//!   does; the bubble waits for it, and joining it is a durable block.
//!   [`Bubble::adopt_std_threads`] turns this off. gonext's own threads (the worker pool, the
//!   cleanup workers, the watchdog, timer threads) are never adopted. Once the root has
//!   returned, adopted threads that only sit in untimed waits while nothing else in the
//!   bubble runs — the idle workers of a lazily started global pool — are let go and keep
//!   real time from then on, instead of keeping the bubble open forever.
//! - Failures: an interposer never panics. When the bubble fails, members inside std calls
//!   return normally; their later std sleeps and timed waits take at most a few real
//!   milliseconds each and move the clock to their deadline, so they soon finish or reach a
//!   gonext call, which unwinds. A member looping forever in std code cannot be unwound: the
//!   stall limit gives up on it.
//!
//! - Readiness waits: `epoll_wait`, `epoll_pwait`, `epoll_pwait2`, `poll`, `ppoll`, `select`
//!   and `pselect` with a timeout are durable virtual timeouts; a descriptor that becomes
//!   ready (a socket's bytes, another thread's wake-up write) ends them, and the bubble checks
//!   every such wait's descriptors before it moves the clock, so a virtual timeout never fires
//!   while one is ready. Without a timeout they count as running — a peer outside the bubble
//!   may answer — unless a runtime of the bubble parked the thread as idle (see below).
//!
//! **Not covered:** calls made inside glibc itself (its `pthread_cond_timedwait`, `sem_*`
//! timed waits and internal clock reads), code that bypasses libc (rustix's raw system
//! calls, hence async-io and smol; `quanta` and other TSC clocks; kernel timers such as
//! `SO_RCVTIMEO` or `timerfd`), statically linked binaries (`crt-static`, musl) and every target other than Linux glibc
//! on x86_64 or aarch64, where the feature compiles to nothing. Another crate that defines
//! the same symbols (madsim, msim, libfaketime-style interposers) cannot be linked beside
//! it.
//!
//! **Differences from Go.** A timed std wait is durable even when a thread outside the
//! bubble would answer it, so its timeout may fire early in virtual time: the clock moves as
//! soon as every member is blocked. Keep such helpers inside the bubble (they are adopted by
//! default) or hold the clock with [`hold_clock`] while they work.
//!
//! # tokio in a bubble
//!
//! tokio parks in std calls — a futex wait, or `epoll_wait` once I/O is enabled — and reads
//! `std::time::Instant`, so with `std-time` a tokio runtime *built inside a bubble* runs on the
//! bubble's clock: `tokio::time::{sleep, timeout, interval, Instant}`, `spawn_blocking`
//! threads and every worker of a multi-thread runtime, with I/O enabled, and without tokio's
//! `test-util`. Its threads are adopted members (they are started by a member). Two hooks tell
//! the bubble when the runtime parks a thread because it is idle, so that such a park is a
//! durable block ([`runtime_parked`], [`runtime_unparked`]), and [`root_future`] wraps the
//! future given to `block_on`. `#[virtual_time_test(tokio)]` sets all of it up:
//!
//! ```ignore
//! #[gonext::virtual_time_test(tokio = "multi_thread", worker_threads = 2)]
//! async fn retries_back_off() {
//!     let start = tokio::time::Instant::now();
//!     let tasks: Vec<_> = (0..100u64)
//!         .map(|i| tokio::spawn(tokio::time::sleep(std::time::Duration::from_millis(i * 10))))
//!         .collect();
//!     for task in tasks { task.await.unwrap(); }
//!     assert_eq!(start.elapsed(), std::time::Duration::from_millis(990)); // exactly, at once
//! }
//! ```
//!
//! Building one by hand inside a bubble:
//!
//! ```ignore
//! gonext::time::bubble(|| {
//!     let runtime = tokio::runtime::Builder::new_multi_thread()
//!         .enable_all()
//!         .on_thread_park(gonext::time::runtime_parked)
//!         .on_thread_unpark(gonext::time::runtime_unparked)
//!         .build()
//!         .unwrap();
//!     runtime.block_on(gonext::time::root_future(async { /* the test */ }));
//! }); // drop the runtime inside the bubble: its threads are members the bubble waits for
//! ```
//!
//! gonext's primitives and tokio's mix: a `gonext::thread::sleep` and a `tokio::time::sleep`
//! of the same length end at the same virtual instant, `gonext::time::sleep` can be awaited in
//! a tokio task, and channels of either kind connect gonext threads with tokio tasks. A runtime
//! built without the hooks still runs its timers on the bubble's clock (a timed park is durable
//! anyway), but an idle multi-thread runtime then counts as running, which stalls the clock.
//!
//! Real I/O between members works, and a virtual timeout cannot fire while a socket of the
//! bubble has bytes waiting. I/O with the world outside the bubble is not a durable block for
//! the outside peer, though: if every member waits while a remote server takes real time to
//! answer, the clock may jump past the member's timeout first — the race Go documents for real
//! network I/O in synctest. Use an in-memory transport (`tokio::io::duplex`) or hold the clock
//! ([`hold_clock`]) around such I/O.
//!
//! ## Differences from tokio's paused clock
//!
//! - It works on multi-thread runtimes, which tokio cannot pause, and `spawn_blocking`
//!   threads are on the same clock instead of running in real time while the clock
//!   auto-advances (tokio issues #4614, #6242, #8232).
//! - A runtime where every task waits on something that is not a timer is a deadlock report
//!   naming the threads and where they wait (tokio hangs silently).
//! - gonext cannot see which objects a tokio task waits on, so Go's rule for objects created
//!   outside the bubble holds for gonext's primitives and std's untimed waits, not inside an
//!   idle runtime: a task awaiting a tokio channel whose other end a thread outside the bubble
//!   holds makes the runtime look idle, and the bubble may move its clock or report a deadlock
//!   before that thread acts, whatever kind of channel it is. Hold the clock
//!   ([`hold_clock`]) while a task waits on the world outside, or move that thread into the
//!   bubble.
//! - std's clocks, sleeps and timed waits, gonext's primitives and every crate built on them
//!   share the clock (tokio#3281).
//! - tokio's paused clock starts where the real clock is; a bubble starts at
//!   2000-01-01T00:00:00Z (`Bubble::start`, or `start = "…"` on the attribute, to change it).
//! - Do not also pause tokio (`start_paused`, `tokio::time::pause`) inside a bubble: tokio
//!   would then keep a second, frozen clock of its own and auto-advance it behind the
//!   bubble's back. Under `#[virtual_time_test(tokio)]`, a `tokio::time::pause()` in the
//!   test panics at the next poll with a message saying so (the attribute checks that
//!   tokio's clock reads as std's); a paused runtime built by hand makes no call gonext sees,
//!   so there it is up to you.
//! - Deadlines keep tokio's millisecond rounding, as in production: a 1.5 ms tokio sleep ends
//!   2 ms later in virtual time too.
//!
//! # Differences from Go
//!
//! Go's bubbles contain goroutines; Rust has two kinds of concurrency, so a bubble holds OS
//! threads and async tasks together. Go detects "durably blocked" inside its scheduler for
//! channels, `sync.Cond` and `select`; gonext does so for its own primitives — including
//! `sync::Mutex`, which Go cannot, so a mutex held across a sleep does not hang the bubble.

pub(crate) mod bubble;
mod clock;
#[cfg(gonext_std_time)]
pub(crate) mod interpose;
pub(crate) mod real_timer;
pub(crate) mod runtime_hooks;
mod sleep;
mod timer;
mod trace;

use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

pub use clock::{Instant, SystemTime};
pub use runtime_hooks::{RootFuture, root_future, runtime_parked, runtime_unparked};
pub use sleep::{Elapsed, Sleep, Ticker, Timeout, interval, sleep, sleep_until, timeout};
pub use timer::{Timer, TimerWait, after_func};
pub use trace::{Event, EventKind, Trace, WokenBy};

use bubble::{BubbleAborted, BubbleState, Config, Current};

/// Numbers trace files written through `GONEXT_TRACE`, so that bubbles never share one.
static TRACE_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Seconds from the Unix epoch to 2000-01-01T00:00:00Z, where every bubble's clock starts.
const DEFAULT_START_SECS: u64 = 946_684_800;

/// The options of a bubble; [`bubble`] and [`bubble_async`] use the defaults.
///
/// ```
/// use gonext::time::{Bubble, SystemTime};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let start = SystemTime::from(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// Bubble::new().start(start).timeout(Duration::from_secs(60)).run(|| {
///     assert_eq!(SystemTime::now(), start);
/// });
/// ```
#[derive(Debug, Clone)]
pub struct Bubble {
    config: Config,
    /// Where to write the trace when the bubble ends.
    trace_to: Option<std::path::PathBuf>,
}

impl Default for Bubble {
    fn default() -> Self {
        Bubble::new()
    }
}

impl Bubble {
    /// Start at 2000-01-01T00:00:00Z, no virtual timeout, a 30 s stall limit.
    pub fn new() -> Bubble {
        Bubble {
            config: Config {
                start_since_epoch: Duration::from_secs(DEFAULT_START_SECS),
                timeout: None,
                stall: Duration::from_secs(30),
                adopt_std_threads: true,
                name: None,
                timeline: bubble::record::timeline_from_env(),
                record_all: false,
            },
            trace_to: None,
        }
    }

    /// Names the bubble in reports and trace files: `bubble #3 (retry_backs_off)`.
    /// `#[virtual_time_test]` names it after the test.
    ///
    /// ```
    /// use gonext::time::Bubble;
    ///
    /// let ((), trace) = Bubble::new().name("checkout").run_traced(|| ());
    /// assert!(trace.bubble().ends_with("(checkout)"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Bubble {
        self.config.name = Some(name.into());
        self
    }

    /// Records the bubble's latest `events` so that a failure report (deadlock, stall, virtual
    /// timeout, and a member's panic, on stderr) ends with them. Off (0) by default, because
    /// recording costs the bubble's hot paths about a tenth; the environment variable
    /// `GONEXT_TIMELINE=20` turns it on for every bubble — a failing virtual-time test fails
    /// the same way when run again, so the report of the second run tells the story.
    ///
    /// ```
    /// use gonext::time::Bubble;
    /// use std::time::Duration;
    ///
    /// let report = std::panic::catch_unwind(|| {
    ///     Bubble::new().timeline(3).run(|| {
    ///         gonext::thread::sleep(Duration::from_secs(1));
    ///         gonext::sync::chan::<u8>(0).1.recv() // nobody will ever send
    ///     })
    /// })
    /// .unwrap_err();
    /// let report = report.downcast_ref::<String>().unwrap();
    /// assert!(report.starts_with("deadlock"));
    /// assert!(report.contains("the last 3 events")); // the clock moved, the root woke, blocked
    /// assert!(report.contains("+1s           root         woken by its timer"));
    /// ```
    pub fn timeline(mut self, events: usize) -> Bubble {
        self.config.timeline = events;
        self
    }

    /// Records every event and writes them to `path` as a Chrome trace-event file when the
    /// bubble ends — failed or not — for Perfetto or `chrome://tracing` (see
    /// [Seeing what happened](self#seeing-what-happened)). The environment variable
    /// `GONEXT_TRACE=dir` does the same for every bubble, into `dir`.
    ///
    /// ```
    /// use gonext::time::Bubble;
    /// use std::time::Duration;
    ///
    /// let path = std::env::temp_dir().join("gonext-doc-trace.json");
    /// Bubble::new().trace(&path).run(|| gonext::thread::sleep(Duration::from_secs(1)));
    /// let json = std::fs::read_to_string(&path).unwrap();
    /// assert!(json.starts_with("{\"traceEvents\":["));
    /// # std::fs::remove_file(&path).ok();
    /// ```
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Bubble {
        self.trace_to = Some(path.into());
        self.config.record_all = true;
        self
    }

    /// Runs `f` as [`run`](Self::run) does, recording every event, and returns its result with
    /// the bubble's [`Trace`].
    ///
    /// ```
    /// use gonext::time::{Bubble, EventKind, WokenBy};
    /// use std::time::Duration;
    ///
    /// let ((), trace) = Bubble::new().run_traced(|| gonext::thread::sleep(Duration::from_secs(2)));
    /// let woken = trace.events().iter().find(|e| matches!(e.kind(), EventKind::Woken { .. })).unwrap();
    /// assert_eq!(woken.kind(), &EventKind::Woken { by: WokenBy::Timer });
    /// assert_eq!((woken.member(), woken.at()), (Some("root"), Duration::from_secs(2)));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run).
    #[track_caller]
    pub fn run_traced<R>(mut self, f: impl FnOnce() -> R) -> (R, Trace) {
        self.config.record_all = true;
        let site = Location::caller();
        let (output, bubble) = self.run_at(site, f);
        (output, bubble.take_trace())
    }

    /// Starts the virtual clock at `start`.
    ///
    /// # Panics
    ///
    /// If `start` is before the Unix epoch.
    #[track_caller]
    pub fn start(mut self, start: SystemTime) -> Bubble {
        self.config.start_since_epoch = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_else(|_| panic!("Bubble::start: {start:?} is before the Unix epoch"));
        self
    }

    /// Fails the bubble when its virtual clock would pass `limit` (measured from the start).
    pub fn timeout(mut self, limit: Duration) -> Bubble {
        self.config.timeout = Some(limit);
        self
    }

    /// Fails the bubble when nothing in it moves for `limit` of real time.
    ///
    /// # Panics
    ///
    /// If `limit` is zero.
    #[track_caller]
    pub fn stall(mut self, limit: Duration) -> Bubble {
        assert!(!limit.is_zero(), "Bubble::stall: the limit must be positive");
        self.config.stall = limit;
        self
    }

    /// Whether threads that members start with `std::thread::spawn` (or any other
    /// `pthread_create`) join the bubble; on by default. Only the `std-time` feature adopts
    /// such threads (see [the module docs](self#virtual-time-for-std-code)): without it they
    /// always keep real time, and this setting does nothing.
    ///
    /// ```
    /// use gonext::time::Bubble;
    ///
    /// Bubble::new().adopt_std_threads(false).run(|| {
    ///     std::thread::spawn(|| {}).join().unwrap(); // a plain thread, outside the bubble
    /// });
    /// ```
    pub fn adopt_std_threads(mut self, adopt: bool) -> Bubble {
        self.config.adopt_std_threads = adopt;
        self
    }

    /// Runs `future` as [`run_async`](Self::run_async) does, recording every event, and returns
    /// its output with the bubble's [`Trace`].
    ///
    /// ```
    /// use gonext::time::Bubble;
    /// use std::time::Duration;
    ///
    /// let ((), trace) = Bubble::new().run_async_traced(async { gonext::time::sleep(Duration::from_secs(1)).await });
    /// assert!(trace.timeline().contains("root         woken by its timer"));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run).
    #[track_caller]
    pub fn run_async_traced<F: Future>(mut self, future: F) -> (F::Output, Trace) {
        self.config.record_all = true;
        let site = Location::caller();
        let (output, bubble) = self.run_async_at(site, future);
        (output, bubble.take_trace())
    }

    /// Runs `f` as the root of a new bubble and returns its result once every member has
    /// finished.
    ///
    /// # Panics
    ///
    /// Re-raises a member's panic with its payload; panics with a report on deadlock, stall
    /// or virtual timeout; panics when called inside a bubble (bubbles do not nest).
    #[track_caller]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        self.run_at(Location::caller(), f).0
    }

    fn run_at<R>(mut self, site: bubble::Site, f: impl FnOnce() -> R) -> (R, Arc<BubbleState>) {
        let trace_to = self.trace_path();
        let bubble = self.create(site);
        let root = bubble.add_member(None, site, false);
        let membership = bubble::enter_thread_member(&bubble, root);
        let output = match bubble::with_membership(membership, || catch_unwind(AssertUnwindSafe(f))) {
            Ok(output) => Some(output),
            Err(payload) => {
                if !payload.is::<BubbleAborted>() {
                    bubble.fail(payload);
                }
                None
            }
        };
        let output = Self::finish(&bubble, root, output, trace_to.as_deref());
        (output, bubble)
    }

    /// Runs `future` as the root task of a new bubble, on a built-in executor on this thread,
    /// together with the tasks it spawns with [`crate::task::spawn`]; returns its output once
    /// every member has finished.
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run).
    #[track_caller]
    pub fn run_async<F: Future>(self, future: F) -> F::Output {
        self.run_async_at(Location::caller(), future).0
    }

    fn run_async_at<F: Future>(mut self, site: bubble::Site, future: F) -> (F::Output, Arc<BubbleState>) {
        let trace_to = self.trace_path();
        let bubble = self.create(site);
        let root = bubble.add_member(None, site, true);
        bubble.queue_task(root);
        let output = bubble::run_async(&bubble, root, future);
        let output = Self::finish(&bubble, root, output, trace_to.as_deref());
        (output, bubble)
    }

    /// Where this bubble's trace goes: the path given to [`trace`](Self::trace), else a file
    /// in `$GONEXT_TRACE`, if set.
    fn trace_path(&mut self) -> Option<std::path::PathBuf> {
        if let Some(path) = self.trace_to.take() {
            return Some(path);
        }
        let dir = std::env::var_os("GONEXT_TRACE").filter(|dir| !dir.is_empty())?;
        self.config.record_all = true;
        let name: String = self
            .config
            .name
            .as_deref()
            .unwrap_or("bubble")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let unique = TRACE_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(std::path::Path::new(&dir).join(format!("{name}-{}-{unique}.json", std::process::id())))
    }

    fn create(self, site: bubble::Site) -> Arc<BubbleState> {
        if let Some(outer) = bubble::current() {
            panic!("time::bubble at {site}: already inside {}; bubbles do not nest", outer.label());
        }
        BubbleState::new(self.config)
    }

    /// Waits for the other members, writes the trace if asked, raises the bubble's failure
    /// if any, else returns the root's output.
    fn finish<R>(
        bubble: &Arc<BubbleState>,
        root: bubble::MemberId,
        output: Option<R>,
        trace_to: Option<&std::path::Path>,
    ) -> R {
        bubble.root_done();
        bubble.remove_member(root);
        bubble.join_members(|| {
            #[cfg(gonext_std_time)]
            bubble.release_std_threads();
            bubble.clear();
            if let Some(path) = trace_to
                && let Err(error) = bubble.take_trace().write_chrome_json(path)
            {
                eprintln!("gonext: writing the trace of {} to {}: {error}", bubble.label(), path.display());
            }
        });
        output.unwrap_or_else(|| unreachable!("a bubble whose root did not finish has failed"))
    }
}

/// Runs `f` in a new bubble with default options: see [`Bubble::run`].
///
/// ```
/// use gonext::time;
/// use std::time::Duration;
///
/// let elapsed = time::bubble(|| {
///     let start = time::Instant::now();
///     gonext::thread::sleep(Duration::from_millis(300));
///     start.elapsed()
/// });
/// assert_eq!(elapsed, Duration::from_millis(300));
/// ```
#[track_caller]
pub fn bubble<R>(f: impl FnOnce() -> R) -> R {
    Bubble::new().run(f)
}

/// Runs `future` in a new bubble with default options: see [`Bubble::run_async`].
///
/// ```
/// use gonext::time;
/// use std::time::Duration;
///
/// let order = time::bubble_async(async {
///     let slow = gonext::task::spawn(async {
///         time::sleep(Duration::from_secs(2)).await;
///         "slow"
///     });
///     time::sleep(Duration::from_secs(1)).await;
///     ("fast", slow.await)
/// });
/// assert_eq!(order, ("fast", "slow"));
/// ```
#[track_caller]
pub fn bubble_async<F: Future>(future: F) -> F::Output {
    Bubble::new().run_async(future)
}

/// Blocks until every other member of the bubble is durably blocked (Go's `synctest.Wait`).
///
/// Use it to observe the effects of what other members did before checking them, without
/// moving the clock.
///
/// ```
/// use gonext::{sync, thread, time};
///
/// time::bubble(|| {
///     let (tx, rx) = sync::chan::<u32>(1);
///     thread::spawn(move || tx.send(7).unwrap());
///     time::wait(); // the spawned thread has sent and exited
///     assert_eq!(rx.try_recv(), Ok(7));
/// });
/// ```
///
/// # Panics
///
/// Outside a bubble, inside an async task (use [`wait_async`] there), or when another member
/// is already waiting.
#[track_caller]
pub fn wait() {
    let site = Location::caller();
    let Some((bubble, id)) = thread_member(site, "time::wait") else {
        panic!("time::wait at {site}: not inside a bubble");
    };
    loop {
        bubble.set_waiter(id, site);
        bubble.park(id, site, "time::wait");
        if !bubble.is_waiter(id) {
            return;
        }
    }
}

/// Whether std's own clocks show the bubble's virtual time on this thread: true inside a
/// bubble when the `std-time` layer is active, false outside bubbles, without the feature, or
/// where it compiles to nothing (not Linux with glibc on x86_64 or aarch64, or a static
/// build).
///
/// A test that relies on std code (or a crate) running in virtual time can assert it, so
/// that a build where the layer is missing fails loudly instead of sleeping for real.
///
/// ```
/// use gonext::time;
/// use std::time::Duration;
///
/// assert!(!time::std_time_is_virtual()); // outside a bubble, std time is always real
/// time::bubble(|| {
///     if time::std_time_is_virtual() {
///         let start = std::time::Instant::now();
///         std::thread::sleep(Duration::from_secs(60)); // returns at once
///         assert_eq!(start.elapsed(), Duration::from_secs(60));
///     }
/// });
/// ```
pub fn std_time_is_virtual() -> bool {
    bubble::with_current(|c| c.is_some_and(|c| std::time::Instant::now() == c.bubble.now_instant()))
}

/// The async form of [`wait`], for tasks of [`bubble_async`]: completes once every other
/// member is durably blocked.
///
/// ```
/// use gonext::{sync, task, time};
///
/// time::bubble_async(async {
///     let (tx, rx) = sync::chan::<u32>(1);
///     task::spawn(async move { tx.send_async(7).await.unwrap() });
///     time::wait_async().await; // the task has sent and finished
///     assert_eq!(rx.try_recv(), Ok(7));
/// });
/// ```
///
/// # Panics
///
/// When polled outside a bubble, or while another member is waiting.
#[track_caller]
pub fn wait_async() -> WaitAsync {
    WaitAsync { site: Location::caller(), registered: None }
}

/// The future of [`wait_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WaitAsync {
    site: bubble::Site,
    /// The member registered as the bubble's waiter.
    registered: Option<bubble::MemberId>,
}

impl Future for WaitAsync {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = self.get_mut();
        let site = this.site;
        let Some((bubble, id)) = bubble::with_current(|c| c.map(|c| (Arc::clone(&c.bubble), c.member)))
        else {
            panic!("time::wait_async at {site}: not inside a bubble");
        };
        if this.registered == Some(id) && !bubble.is_waiter(id) {
            this.registered = None;
            return std::task::Poll::Ready(());
        }
        bubble.set_waiter(id, site);
        this.registered = Some(id);
        bubble::note_blocked_at(site, "time::wait_async");
        std::task::Poll::Pending
    }
}

/// Sleeps for `duration`, then [`wait`]s: Go's `synctest.Sleep`.
#[track_caller]
pub fn sleep_then_wait(duration: Duration) {
    crate::thread::sleep(duration);
    wait();
}

/// Stops the bubble's clock from advancing while the guard lives, for work the bubble cannot
/// see (like tokio's `inhibit_auto_advance`). Due timers and `wait()` still proceed.
///
/// ```
/// use gonext::time;
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let hold = time::hold_clock();
///     let start = time::Instant::now();
///     std::thread::spawn(|| {}).join().unwrap(); // real work outside the bubble
///     assert_eq!(start.elapsed(), Duration::ZERO);
///     drop(hold);
/// });
/// ```
///
/// # Panics
///
/// Outside a bubble.
#[track_caller]
pub fn hold_clock() -> ClockHold {
    let Some(bubble) = bubble::current() else {
        panic!("time::hold_clock at {}: not inside a bubble", Location::caller());
    };
    bubble.hold_clock();
    ClockHold { bubble }
}

/// The guard of [`hold_clock`]: the clock may advance again once it drops.
#[must_use = "the clock is released as soon as the guard drops"]
pub struct ClockHold {
    bubble: Arc<BubbleState>,
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.bubble.release_clock();
    }
}

impl std::fmt::Debug for ClockHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockHold").field("bubble", &self.bubble.label()).finish()
    }
}

/// The bubble and member id of the calling thread, if it is a thread member.
fn thread_member(site: bubble::Site, op: &str) -> Option<(Arc<BubbleState>, bubble::MemberId)> {
    bubble::with_current(|c| {
        let c: &Current = c?;
        assert!(!c.is_task, "{op} at {site}: cannot block inside an async task of bubble_async");
        Some((Arc::clone(&c.bubble), c.member))
    })
}
