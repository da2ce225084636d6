//! The bubble: one virtual clock shared by a set of threads and async tasks, and the single
//! blocking primitive every gonext operation parks through.
//!
//! A [`BubbleState`] counts its *running* members. A member stops counting when it parks in a
//! gonext primitive (it is then *durably blocked*, at a recorded [`Site`]); whoever wakes it
//! makes it count again *before* it resumes, so the count can never drop to zero while a
//! wake-up is in flight. When the count reaches zero, the member that parked last runs the
//! idle step ([`BubbleState::settle`]) in Go's order: wake the timers that are due, else the
//! [`wait`](super::wait) caller, else move the clock to the earliest timer, else report a
//! deadlock. Failures (a member's panic, a deadlock, a stall, the virtual timeout) abort every
//! parked member, which unwinds with a private payload; the bubble's caller joins them all and
//! raises the failure.
//!
//! The hot paths avoid the lock where the rule allows. A member's timers for itself stay on its
//! thread until it blocks. The executor of `bubble_async` does not block a task when its poll
//! returns `Pending`: it notes the block and applies the batch under one lock when it runs out
//! of runnable tasks (or before any wake or spawn it makes, so recorded events keep their
//! order). A task whose block is deferred still counts as running, which can only keep the
//! clock still a little longer; a wake that arrives meanwhile requeues it. Members live in a
//! slab (`members`), so a block or wake finds its member by index.
//!
//! The counting protocol (parks, wakes, the idle step and the deferred blocks) is checked on
//! this code by the loom models in `bubble::loom`, run with `--cfg loom` (see `sync_shim`).

mod executor;
mod member;
mod members;
mod parker;
pub(crate) mod record;
mod report;
#[cfg(gonext_std_time)]
mod std_wait;
mod timers;
#[cfg(not(loom))]
mod watchdog;

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{self, Location};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sync_shim::{Condvar, Mutex, MutexGuard, shim_thread_local};
use std::task::Waker;
use std::time::Duration;

pub(crate) use executor::{BoxTask, run_async};
use member::PendingOn;
pub(crate) use member::{
    PendingMarker, PendingNote, block_on, enter_thread_member, note_blocked_at, note_blocked_outside,
    note_pending_on,
};
pub(crate) use parker::ThreadParker;
#[cfg(gonext_std_time)]
pub(crate) use std_wait::{
    StdProbe, StdWake, adoptable, std_block_until, std_member, std_sleep_until, std_wait,
};

/// Where a member was spawned or is blocked: the `#[track_caller]` location of the call.
pub(crate) type Site = &'static Location<'static>;

/// A member's identity inside its bubble.
pub(crate) type MemberId = u64;

/// A bubble's identity in the process, for what a thread keeps for a bubble without its lock.
type BubbleId = u64;

/// A registered timer: its virtual deadline (nanoseconds from the bubble's start) and a
/// sequence number that makes keys unique and fires equal deadlines in the order each thread
/// registered them (see `BubbleState::next_timer_seq`).
pub(crate) type TimerKey = (u64, u64);

/// What a due timer wakes: a member directly (when it registered its own waker, the common
/// case, handled under the bubble's lock) or any other waker.
pub(crate) enum TimerTarget {
    Member(MemberId),
    Waker(Waker),
}

/// A map keyed by member id.
pub(crate) type IdMap<V> = crate::hash::FastMap<MemberId, V>;

/// The unwinding payload of a member aborted because its bubble failed; never shown to users.
pub(crate) struct BubbleAborted;

/// Options of a bubble, set through [`Bubble`](super::Bubble).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) start_since_epoch: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stall: Duration,
    /// Threads that members start with `std::thread::spawn` join the bubble (`std-time`).
    pub(crate) adopt_std_threads: bool,
    /// A name for reports and trace files (the test's, under `#[virtual_time_test]`).
    pub(crate) name: Option<String>,
    /// How many of the latest events failure reports end with.
    pub(crate) timeline: usize,
    /// Record every event, for a trace.
    pub(crate) record_all: bool,
}

/// Shared state of one bubble.
pub(crate) struct BubbleState {
    id: u64,
    inner: Mutex<Inner>,
    /// Signalled when tasks become runnable, when the last member leaves, and on failure.
    changed: Condvar,
    /// The virtual time since the start, readable without the lock.
    now_nanos: AtomicU64,
    /// Set with the first failure, readable without the lock.
    failed: AtomicBool,
    /// Sequence numbers of timers, allocated without the lock.
    next_timer: AtomicU64,
    /// The state of the bubble's random numbers (`select!`'s choice), from a fixed seed.
    random: AtomicU64,
    /// The real instant that stands for the virtual start, so virtual `Instant`s are plain
    /// `std::time::Instant`s.
    base: std::time::Instant,
    config: Config,
    /// The real clock readings std's virtual clocks start from.
    #[cfg(gonext_std_time)]
    std_clock: crate::time::interpose::StdClockBase,
    /// Set once the bubble finished: threads it adopted and let go keep real time.
    #[cfg(gonext_std_time)]
    std_released: AtomicBool,
}

enum Failure {
    Panic(Box<dyn Any + Send>),
    Report(String),
}

#[derive(Clone, Copy)]
enum State {
    Running,
    /// Durably blocked in a gonext primitive (at `site`) or, through the `std-time` layer, in
    /// std code (no site).
    Blocked {
        site: Option<Site>,
        op: &'static str,
    },
    /// Waiting on something the bubble does not own — an object created outside it (`op`
    /// names the operation), or a foreign future (`op` is `None`): it still counts as
    /// running, because nothing in the bubble can tell when it will be woken.
    Outside {
        site: Site,
        op: Option<&'static str>,
    },
}

enum Kind {
    Thread(Option<Arc<ThreadParker>>),
    Task,
}

struct Member {
    name: String,
    /// Members are numbered in the order they joined, from 0 for the root.
    number: u64,
    spawned_at: Site,
    kind: Kind,
    /// A thread started with `std::thread::spawn` that joined the bubble (`std-time`).
    #[cfg(gonext_std_time)]
    adopted: bool,
    state: State,
    /// A wake-up arrived that the member has not consumed yet.
    notified: bool,
}

struct Inner {
    members: members::Members,
    next_member: MemberId,
    running: usize,
    /// Wake-outs in progress outside the lock: they count as running.
    waking: usize,
    timers: timers::Timers,
    /// Members whose timers are firing; kept to reuse its allocation.
    due: Vec<MemberId>,
    waiter: Option<MemberId>,
    holds: usize,
    run_queue: VecDeque<MemberId>,
    /// The executor of `bubble_async` is waiting on `changed` for a runnable task.
    executor_waiting: bool,
    spawned: Vec<(MemberId, BoxTask)>,
    failure: Option<Failure>,
    /// Futures to wake when the bubble fails (see `wake_on_failure`).
    failure_wakers: crate::sync::waiters::Waiters,
    root_done: bool,
    recorder: record::Recorder,
    /// Incremented on every state change; the stall watchdog compares it.
    progress: u64,
    /// Set by the watchdog when failed members cannot be joined.
    abandoned: bool,
    /// A task that blocked its executor thread in an interposed std call, and that thread's
    /// parker: until it returns, no other task can run.
    #[cfg(gonext_std_time)]
    executor_blocked: Option<(MemberId, Arc<ThreadParker>)>,
    /// Members in interposed std waits, with what they wait for (see `StdProbe`).
    #[cfg(gonext_std_time)]
    probes: Vec<(MemberId, StdProbe)>,
}

thread_local! {
    pub(super) static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

shim_thread_local! {
    /// Timers that the running member registered for itself, not yet in its bubble's heap.
    /// A member only needs its own timers once it blocks, and blocking takes the bubble's
    /// lock anyway: the timers are moved in then, saving a lock per sleep.
    static OWN_TIMERS: RefCell<Vec<(BubbleId, TimerKey, MemberId)>> = const { RefCell::new(Vec::new()) };
}

shim_thread_local! {
    /// The calling thread's block of timer sequence numbers: its bubble, the next and the end.
    static TIMER_SEQS: std::cell::Cell<(BubbleId, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

shim_thread_local! {
    /// Tasks of the executor on this thread that returned `Pending` since it last took the
    /// bubble's lock, with what their polls noted (see `BubbleState::defer_block`).
    static DEFERRED_BLOCKS: RefCell<Vec<(BubbleId, MemberId, PendingOn)>> = const { RefCell::new(Vec::new()) };
}

/// The tag of a thread outside every bubble in [`holder_tag`]; bubble ids start at 1.
pub(crate) const OUTSIDE_TAG: u64 = u64::MAX;

/// Who the caller is, for locks that record their holders: its bubble's id, or
/// [`OUTSIDE_TAG`]. A member waiting for a lock whose holders all carry its own tag is
/// durably blocked; any other holder may release it from outside the bubble.
#[inline]
pub(crate) fn holder_tag() -> u64 {
    CURRENT.with_borrow(|c| c.as_ref().map_or(OUTSIDE_TAG, |c| c.bubble.id))
}

/// The bubble membership of the running thread or task.
pub(crate) struct Current {
    pub(crate) bubble: Arc<BubbleState>,
    pub(crate) member: MemberId,
    /// The waker that makes this member runnable again; on an executor, the root task's.
    waker: Waker,
    /// The data pointer of the current member's own waker. The executor sets it at every
    /// poll of a task, which costs no reference count as a waker clone would.
    polled_waker: *const (),
    /// An async task polled by the executor, which must not block its thread.
    pub(crate) is_task: bool,
}

impl Current {
    pub(crate) fn new(bubble: Arc<BubbleState>, member: MemberId, waker: Waker, is_task: bool) -> Current {
        let polled_waker = waker.data();
        Current { bubble, member, waker, polled_waker, is_task }
    }

    /// Whether `waker` wakes the current member itself (every member's waker has the same
    /// vtable; a vtable duplicated by codegen only makes this say `false`, which is safe).
    #[inline]
    fn is_own_waker(&self, waker: &Waker) -> bool {
        waker.data() == self.polled_waker && std::ptr::eq(waker.vtable(), self.waker.vtable())
    }

    /// A waker of the current member.
    pub(crate) fn own_waker(&self) -> Waker {
        match self.is_task {
            true => member::member_waker(&self.bubble, self.member),
            false => self.waker.clone(),
        }
    }
}

/// A bubble named by its id, for values reached only through their bubble's members (a
/// `Sleep`): holding it costs no reference count, and it does not keep the bubble alive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BubbleRef {
    id: BubbleId,
    /// The bubble's start, so that its instants can be read without it.
    base: std::time::Instant,
}

impl BubbleRef {
    /// The caller's bubble, and `f` run with it, if the caller is a member of one.
    #[inline]
    pub(crate) fn current<R>(f: impl FnOnce(&BubbleState) -> R) -> Option<(BubbleRef, R)> {
        CURRENT.with_borrow(|c| {
            let bubble = &c.as_ref()?.bubble;
            Some((BubbleRef { id: bubble.id, base: bubble.base }, f(bubble)))
        })
    }

    /// Runs `f` with the bubble if the caller is one of its members.
    pub(crate) fn with<R>(self, f: impl FnOnce(&BubbleState) -> R) -> Option<R> {
        CURRENT.with_borrow(|c| Some(f(&c.as_ref().filter(|c| c.bubble.id == self.id)?.bubble)))
    }

    /// Runs `f` with the bubble and the member polling with `waker` (when `waker` is the
    /// member's own, so that a timer can wake it directly); `None` if the caller is not a
    /// member of this bubble.
    #[inline]
    pub(crate) fn with_polling_member<R>(
        self,
        waker: &Waker,
        f: impl FnOnce(&BubbleState, Option<MemberId>) -> R,
    ) -> Option<R> {
        CURRENT.with_borrow(|c| {
            let c = c.as_ref().filter(|c| c.bubble.id == self.id)?;
            Some(f(&c.bubble, c.is_own_waker(waker).then_some(c.member)))
        })
    }

    /// The `std::time::Instant` at virtual offset `offset`.
    pub(crate) fn instant_at(self, offset: Duration) -> std::time::Instant {
        self.base + offset
    }

    /// A name for messages, as `BubbleState::label` without the bubble's own name.
    pub(crate) fn label(self) -> String {
        format!("bubble #{}", self.id)
    }
}

/// The bubble the current thread or task belongs to, if any: one thread-local read.
pub(crate) fn current() -> Option<Arc<BubbleState>> {
    CURRENT.with_borrow(|c| c.as_ref().map(|c| Arc::clone(&c.bubble)))
}

/// Runs `f` with the current membership, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with_borrow(|c| f(c.as_ref()))
}

/// Installs `current` for the duration of `f`.
pub(crate) fn with_membership<R>(current: Current, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Current>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with_borrow_mut(|c| *c = self.0.take());
        }
    }
    #[cfg(gonext_std_time)]
    let hook = crate::time::interpose::MemberHook::install(&current.bubble);
    let _restore = Restore(CURRENT.with_borrow_mut(|c| c.replace(current)));
    #[cfg(gonext_std_time)]
    let _hook = hook;
    f()
}

/// Panics unless the caller runs inside `owner`, the bubble `what` (created at
/// `created_at`) belongs to; `used_at` is where it is used.
pub(crate) fn check_owner(owner: &Arc<BubbleState>, what: &str, created_at: Site, used_at: Site) {
    if !with_current(|c| c.is_some_and(|c| Arc::ptr_eq(&c.bubble, owner))) {
        foreign_use(&owner.label(), what, created_at, used_at);
    }
}

/// Panics unless the caller runs on the clock of a timer (`what`, created at `created_at`)
/// that belongs to `owner`, or to no bubble for `None`; `used_at` is where it is used.
pub(crate) fn check_clock(owner: Option<&Arc<BubbleState>>, what: &str, created_at: Site, used_at: Site) {
    match owner {
        Some(owner) => check_owner(owner, what, created_at, used_at),
        None => {
            if let Some(bubble) = current() {
                foreign_clock(&bubble, what, created_at, used_at);
            }
        }
    }
}

/// The panic of a timer made outside any bubble and used inside `bubble`.
#[cold]
#[inline(never)]
fn foreign_clock(bubble: &BubbleState, what: &str, created_at: Site, used_at: Site) -> ! {
    panic!(
        "{what} created at {created_at} outside any bubble was used inside {} at {used_at}; timers belong \
         to the clock they were created on",
        bubble.label()
    );
}

/// The panic of an object of the bubble labelled `owner` used elsewhere.
#[cold]
#[inline(never)]
pub(crate) fn foreign_use(owner: &str, what: &str, created_at: Site, used_at: Site) -> ! {
    let here = current().map_or_else(|| "outside any bubble".to_owned(), |b| format!("in {}", b.label()));
    panic!(
        "{what} created at {created_at} in {owner} was used {here} at {used_at}; objects of a bubble stay in it"
    );
}

static NEXT_BUBBLE: AtomicU64 = AtomicU64::new(1);

impl BubbleState {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        #[allow(unused_mut)]
        let mut state = BubbleState {
            id: NEXT_BUBBLE.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::new(Inner {
                members: members::Members::default(),
                next_member: 0,
                running: 0,
                waking: 0,
                timers: timers::Timers::default(),
                due: Vec::new(),
                waiter: None,
                holds: 0,
                run_queue: VecDeque::new(),
                executor_waiting: false,
                spawned: Vec::new(),
                failure: None,
                failure_wakers: crate::sync::waiters::Waiters::new(),
                root_done: false,
                recorder: record::Recorder::new(config.timeline, config.record_all),
                progress: 0,
                abandoned: false,
                #[cfg(gonext_std_time)]
                executor_blocked: None,
                #[cfg(gonext_std_time)]
                probes: Vec::new(),
            }),
            changed: Condvar::new(),
            now_nanos: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            next_timer: AtomicU64::new(0),
            random: AtomicU64::new(0x853c_49e6_748f_ea9b),
            base: std::time::Instant::now(),
            config,
            #[cfg(gonext_std_time)]
            std_clock: crate::time::interpose::StdClockBase::capture(),
            #[cfg(gonext_std_time)]
            std_released: AtomicBool::new(false),
        };
        // std's `Instant` on members must be exactly gonext's: take the start from std's own
        // reading of the virtual clock at zero.
        #[cfg(gonext_std_time)]
        {
            state.base = crate::time::interpose::start_instant(&state);
        }
        let bubble = Arc::new(state);
        // A model checks interleavings, not stalls; the watchdog's thread is a real one.
        #[cfg(not(loom))]
        watchdog::watch(&bubble);
        bubble
    }

    /// The next of the bubble's random numbers: the same sequence in every run, so that
    /// `select!`'s random choices repeat (splitmix64 over a fixed seed).
    pub(crate) fn next_random(&self) -> u64 {
        let mut z = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A short name for messages: `bubble #3`, with the bubble's name if it has one.
    pub(crate) fn label(&self) -> String {
        match &self.config.name {
            Some(name) => format!("bubble #{} ({name})", self.id),
            None => format!("bubble #{}", self.id),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held: user code never runs under it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Virtual time elapsed since the bubble started.
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    /// Virtual nanoseconds since the bubble started.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        self.now_nanos.load(Ordering::Acquire)
    }

    /// The virtual now as a `std::time::Instant`.
    pub(crate) fn now_instant(&self) -> std::time::Instant {
        self.instant_at(self.elapsed())
    }

    /// The `std::time::Instant` at virtual offset `offset`.
    pub(crate) fn instant_at(&self, offset: Duration) -> std::time::Instant {
        self.base + offset
    }

    /// The virtual offset, in nanoseconds, `duration` from now; a duration too long for an
    /// `Instant` ends in thirty years, as a sleep outside bubbles does.
    #[inline]
    pub(crate) fn offset_after(&self, duration: Duration) -> u64 {
        const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
        let now = self.now_nanos();
        if duration <= FAR {
            return now.saturating_add(duration_nanos(duration));
        }
        let far = now.saturating_add(duration_nanos(duration));
        match self.base.checked_add(Duration::from_nanos(far)) {
            Some(_) => far,
            None => now + duration_nanos(FAR),
        }
    }

    /// The virtual wall clock: the configured start plus the elapsed virtual time.
    pub(crate) fn now_since_epoch(&self) -> Duration {
        self.config.start_since_epoch + self.elapsed()
    }

    /// The virtual offset of a `std::time::Instant` produced by this bubble's clock.
    pub(crate) fn offset_of(&self, instant: std::time::Instant) -> Duration {
        instant.saturating_duration_since(self.base)
    }

    /// The same offset in nanoseconds.
    pub(crate) fn offset_nanos_of(&self, instant: std::time::Instant) -> u64 {
        duration_nanos(self.offset_of(instant))
    }

    /// Whether the bubble has failed (its members are being aborted).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Registers a running member; it counts as running from now on, so the clock cannot
    /// move before it starts.
    pub(crate) fn add_member(&self, name: Option<String>, spawned_at: Site, task: bool) -> MemberId {
        let mut inner = self.lock();
        // The spawner runs (it counts), so the bubble cannot turn idle here.
        self.flush_own(&mut inner);
        let number = inner.next_member;
        inner.next_member += 1;
        let name = name.unwrap_or_else(|| match (number, task) {
            (0, _) => "root".to_owned(),
            (_, true) => format!("task-{number}"),
            (_, false) => format!("thread-{number}"),
        });
        let kind = if task { Kind::Task } else { Kind::Thread(None) };
        let id = inner.members.insert(Member {
            name,
            number,
            spawned_at,
            kind,
            #[cfg(gonext_std_time)]
            adopted: false,
            state: State::Running,
            notified: false,
        });
        if inner.recorder.is_on() {
            let name = inner.members.get(&id).map(|member| member.name.clone()).unwrap_or_default();
            inner.recorder.name(id, &name);
            inner.recorder.record(self.now_nanos(), id, record::RawKind::Started { spawned_at });
        }
        inner.running += 1;
        inner.progress += 1;
        id
    }

    /// Whether any member is left; once none is, the bubble is over.
    pub(crate) fn has_members(&self) -> bool {
        !self.lock().members.is_empty()
    }

    /// Records the parker of a thread member, so that wake-ups can unpark it.
    pub(crate) fn attach_thread(&self, id: MemberId, parker: Arc<ThreadParker>) {
        if let Some(member) = self.lock().members.get_mut(&id) {
            member.kind = Kind::Thread(Some(parker));
        }
    }

    /// Removes a finished member.
    pub(crate) fn remove_member(&self, id: MemberId) {
        let mut inner = self.lock();
        self.flush_own(&mut inner);
        let Some(member) = inner.members.remove(&id) else {
            drop(self.settle(inner));
            return;
        };
        if matches!(member.state, State::Running | State::Outside { .. }) {
            inner.running -= 1;
        }
        inner.recorder.record(self.now_nanos(), id, record::RawKind::Finished);
        inner.progress += 1;
        if inner.members.is_empty() {
            self.changed.notify_all();
        }
        drop(self.settle(inner));
    }

    /// Marks the root as returned: from now on the bubble only waits for its other members.
    pub(crate) fn root_done(&self) {
        self.lock().root_done = true;
    }

    /// Makes a blocked member runnable again (a no-op for finished members).
    pub(crate) fn wake(&self, id: MemberId) {
        let mut inner = self.lock();
        self.flush_own(&mut inner);
        let by =
            if inner.recorder.is_on() { self.waker_on_this_thread() } else { record::WakeCause::Outside };
        self.wake_locked(&mut inner, id, by);
        drop(self.settle(inner));
    }

    /// The member of this bubble running on the calling thread, as a wake's cause.
    fn waker_on_this_thread(&self) -> record::WakeCause {
        let member = CURRENT
            .try_with(|current| {
                let current = current.try_borrow().ok()?;
                let current = current.as_ref()?;
                std::ptr::eq(Arc::as_ptr(&current.bubble), self).then_some(current.member)
            })
            .ok()
            .flatten();
        member.map_or(record::WakeCause::Outside, record::WakeCause::Member)
    }

    fn wake_locked(&self, inner: &mut Inner, id: MemberId, by: record::WakeCause) {
        let Some(member) = inner.members.get_mut(&id) else { return };
        let was = std::mem::replace(&mut member.state, State::Running);
        if matches!(was, State::Running) {
            // Consumed when it next blocks: it polls or checks again instead.
            member.notified = true;
            return;
        }
        inner.recorder.record(self.now_nanos(), id, record::RawKind::Woken { by });
        match &member.kind {
            Kind::Thread(parker) => {
                member.notified = true;
                if let Some(parker) = parker {
                    parker.unpark();
                }
            }
            #[cfg(gonext_std_time)]
            Kind::Task if inner.executor_blocked.as_ref().is_some_and(|(task, _)| *task == id) => {
                // Blocked inside its poll, in std code: it resumes on the executor's thread.
                member.notified = true;
                if let Some((_, parker)) = &inner.executor_blocked {
                    parker.unpark();
                }
            }
            Kind::Task => {
                inner.run_queue.push_back(id);
                if inner.executor_waiting {
                    self.changed.notify_all();
                }
            }
        }
        if matches!(was, State::Blocked { .. }) {
            inner.running += 1;
        }
        inner.progress += 1;
    }

    /// Marks member `id` blocked in `state` unless a wake-up is pending; returns whether it
    /// blocked.
    fn block_locked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        id: MemberId,
        state: State,
    ) -> (MutexGuard<'a, Inner>, bool) {
        self.flush_own(&mut inner);
        let blocked = self.mark_blocked(&mut inner, id, |_| state) == Some(true);
        (self.settle(inner), blocked)
    }

    /// Moves running member `id` to the blocked `state` (of the member), unless a wake-up is
    /// pending; returns whether it blocked, `None` if it left. The caller settles the bubble.
    fn mark_blocked(
        &self,
        inner: &mut Inner,
        id: MemberId,
        state: impl FnOnce(&Member) -> State,
    ) -> Option<bool> {
        let member = inner.members.get_mut(&id)?;
        if std::mem::take(&mut member.notified) {
            return Some(false);
        }
        let state = state(member);
        member.state = state;
        inner.progress += 1;
        if inner.recorder.is_on() {
            let parked = match state {
                State::Running => None,
                State::Blocked { site, op } => Some(record::RawKind::Parked { op, site, durable: true }),
                State::Outside { site, op } => Some(record::RawKind::Parked {
                    op: op.unwrap_or("a future gonext does not know"),
                    site: Some(site),
                    durable: false,
                }),
            };
            if let Some(parked) = parked {
                inner.recorder.record(self.now_nanos(), id, parked);
            }
        }
        if matches!(state, State::Blocked { .. }) {
            inner.running -= 1;
        }
        Some(true)
    }

    /// The idle step: when no member runs, wake due timers, else the `wait()` caller, else
    /// advance the clock to the next timer, else fail with a deadlock report.
    #[inline]
    fn settle<'a>(&'a self, inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        if inner.running > 0 && !Self::may_stall_while_running(&inner) {
            return inner;
        }
        self.settle_idle(inner)
    }

    /// Whether members counted as running may all be unable to move (see `any_running`).
    #[inline]
    fn may_stall_while_running(inner: &Inner) -> bool {
        #[cfg(gonext_std_time)]
        return inner.executor_blocked.is_some() || inner.root_done;
        #[cfg(not(gonext_std_time))]
        return {
            let _ = inner;
            false
        };
    }

    #[inline(never)]
    fn settle_idle<'a>(&'a self, mut inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        loop {
            if inner.waking > 0
                || inner.failure.is_some()
                || self.any_running(&mut inner)
                || inner.members.is_empty()
            {
                return inner;
            }
            let now = self.now_nanos();
            let mut foreign = Vec::new();
            let mut due = std::mem::take(&mut inner.due);
            inner.timers.take_due(now, &mut due, &mut foreign);
            for id in due.drain(..) {
                self.wake_locked(&mut inner, id, record::WakeCause::Timer);
            }
            inner.due = due;
            if !foreign.is_empty() {
                for _ in &foreign {
                    inner.recorder.record(self.now_nanos(), record::NO_MEMBER, record::RawKind::TimerFired);
                }
                inner.waking += 1;
                inner.progress += 1;
                drop(inner);
                foreign.into_iter().for_each(Waker::wake);
                inner = self.lock();
                inner.waking -= 1;
                #[cfg(gonext_std_time)]
                self.wake_std_waiter_on_this_thread(&mut inner);
                continue;
            }
            if self.any_running(&mut inner) {
                return inner;
            }
            #[cfg(gonext_std_time)]
            if self.wake_ready_std_waiters(&mut inner) {
                return inner;
            }
            if let Some(waiter) = inner.waiter.take() {
                self.wake_locked(&mut inner, waiter, record::WakeCause::WaitReturned);
                return inner;
            }
            if inner.holds > 0 {
                return inner;
            }
            let deadline = inner.timers.first_deadline();
            // As in Go, the clock stops once the root has returned: members left sleeping or
            // ticking would otherwise run the clock forward forever.
            let Some(deadline) = deadline.filter(|_| !inner.root_done) else {
                let report = report::deadlock(self, &inner);
                return self.fail_locked(inner, Failure::Report(report));
            };
            if let Some(limit) = self.config.timeout.filter(|&limit| deadline > duration_nanos(limit)) {
                self.now_nanos.store(duration_nanos(limit), Ordering::Release);
                let report = report::timeout(self, &inner, limit);
                return self.fail_locked(inner, Failure::Report(report));
            }
            self.now_nanos.store(deadline, Ordering::Release);
            inner.recorder.record(deadline, record::NO_MEMBER, record::RawKind::ClockAdvanced { from: now });
        }
    }

    /// Whether some member may still make progress by itself.
    #[inline]
    fn any_running(&self, inner: &mut Inner) -> bool {
        if inner.running == 0 {
            return false;
        }
        #[cfg(gonext_std_time)]
        if Self::may_stall_while_running(inner) {
            return self.std_running(inner) > 0;
        }
        true
    }

    /// Records the first failure and aborts every parked member.
    pub(crate) fn fail(&self, failure_panic: Box<dyn Any + Send>) {
        let inner = self.lock();
        drop(self.fail_locked(inner, Failure::Panic(failure_panic)));
    }

    fn fail_locked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        failure: Failure,
    ) -> MutexGuard<'a, Inner> {
        if inner.failure.is_none() {
            inner.failure = Some(failure);
            self.failed.store(true, Ordering::Release);
            Self::wake_failure_wakers(inner.failure_wakers.take_all());
        }
        let blocked: Vec<MemberId> = inner.members.keys().collect();
        for id in blocked {
            self.wake_locked(&mut inner, id, record::WakeCause::Failure);
        }
        inner.waiter = None;
        self.changed.notify_all();
        inner
    }

    /// Registers `waker` in `slot` to be woken when the bubble fails; `false` if it already
    /// has. For futures a foreign executor polls, which would never return to gonext otherwise.
    pub(crate) fn wake_on_failure(&self, slot: &mut Option<u64>, waker: &Waker) -> bool {
        let mut inner = self.lock();
        if inner.failure.is_some() {
            return false;
        }
        inner.failure_wakers.register(slot, waker);
        true
    }

    /// Forgets the registration in `slot`.
    pub(crate) fn forget_failure_waker(&self, slot: &mut Option<u64>) {
        if slot.is_some() {
            self.lock().failure_wakers.forget(slot);
        }
    }

    /// Wakes `wakers` on a thread of their own: the bubble's lock is held here, and a waker may
    /// reach it again (through the interposers, or a member's wake).
    fn wake_failure_wakers(wakers: Vec<Waker>) {
        if wakers.is_empty() {
            return;
        }
        let spawned = crate::thread::spawn_unadopted(std::thread::Builder::new(), move || {
            wakers.into_iter().for_each(Waker::wake);
        });
        if let Err(error) = spawned {
            eprintln!("gonext: the OS refused a thread to wake futures of a failed bubble: {error}");
        }
    }

    /// Waits (as a non-member) until every member has left or the bubble failed and its
    /// members were abandoned, then raises the failure, if any.
    ///
    /// `finished` runs once the members are joined, before a failure is raised.
    pub(crate) fn join_members(&self, finished: impl FnOnce()) {
        let mut inner = self.lock();
        while !inner.members.is_empty() && !inner.abandoned {
            inner = self.changed.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let failure = inner.failure.take();
        let timeline = match failure {
            Some(Failure::Panic(_)) => report::timeline(&inner),
            _ => String::new(),
        };
        drop(inner);
        finished();
        match failure {
            None => {}
            Some(Failure::Panic(payload)) => {
                if !timeline.is_empty() {
                    eprintln!("gonext: a member of {} panicked; {timeline}", self.label());
                }
                panic::resume_unwind(payload);
            }
            Some(Failure::Report(report)) => panic!("{report}"),
        }
    }

    /// The recorded events, leaving the recorder empty: the bubble's trace.
    pub(crate) fn take_trace(&self) -> crate::time::Trace {
        let recorded = self.lock().recorder.take();
        crate::time::Trace::new(self.label(), recorded)
    }

    pub(super) fn timer_key(&self, deadline: u64) -> TimerKey {
        // `u64::MAX` is the timers' sentinel that never fires; 584 years is as far as they go.
        (deadline.min(u64::MAX - 1), self.next_timer_seq())
    }

    /// A sequence number for a timer: from a block of the bubble's numbers that the calling
    /// thread took, one atomic operation per block rather than per timer. Numbers then grow in
    /// each thread's registration order, which is the only order two timers of one deadline
    /// can be seen to fire in: members on other threads run concurrently once woken.
    fn next_timer_seq(&self) -> u64 {
        const BLOCK: u64 = 1024;
        TIMER_SEQS.with(|seqs| {
            let (bubble, next, end) = seqs.get();
            if bubble == self.id && next < end {
                seqs.set((bubble, next + 1, end));
                return next;
            }
            let start = self.next_timer.fetch_add(BLOCK, Ordering::Relaxed);
            seqs.set((self.id, start + 1, start + BLOCK));
            start
        })
    }

    /// Registers a timer that wakes `target` at virtual offset `deadline` (in nanoseconds);
    /// returns its key.
    ///
    /// A timer is removed when it fires, and it fires before any member can observe the
    /// clock at or past its deadline. A member's timer for itself is kept on its thread until
    /// it blocks (see `OWN_TIMERS`).
    pub(crate) fn add_timer(&self, deadline: u64, target: TimerTarget) -> TimerKey {
        let key = self.timer_key(deadline);
        match target {
            TimerTarget::Member(id) => OWN_TIMERS.with(|own| own.borrow_mut().push((self.id, key, id))),
            target => self.lock().timers.insert(key, target),
        }
        key
    }

    /// Points a registered timer at `target`; returns its key (a new one, unless only a
    /// waker changed), or `None` if it already fired.
    pub(crate) fn retarget_timer(&self, key: TimerKey, target: TimerTarget) -> Option<TimerKey> {
        let own = self.take_own_timer(key);
        if own {
            self.add_timer_with_key(key, target);
            return Some(key);
        }
        let mut inner = self.lock();
        let now = self.now_nanos();
        if key.0 <= now {
            return None;
        }
        if let TimerTarget::Waker(waker) = &target
            && let Some(registered) = inner.timers.waker_mut(key)
        {
            registered.clone_from(waker);
            return Some(key);
        }
        inner.timers.remove(key, now);
        let key = self.timer_key(key.0);
        inner.timers.insert(key, target);
        Some(key)
    }

    fn add_timer_with_key(&self, key: TimerKey, target: TimerTarget) {
        match target {
            TimerTarget::Member(id) => OWN_TIMERS.with(|own| own.borrow_mut().push((self.id, key, id))),
            target => self.lock().timers.insert(key, target),
        }
    }

    /// Forgets a timer that is no longer awaited.
    pub(crate) fn remove_timer(&self, key: TimerKey) {
        if !self.take_own_timer(key) {
            let mut inner = self.lock();
            let now = self.now_nanos();
            inner.timers.remove(key, now);
        }
    }

    /// Applies what this thread did without the lock: moves its own timers into the heap and
    /// blocks the tasks it deferred. Called under the lock; a caller that may have blocked a
    /// task here settles the bubble afterwards.
    fn flush_own(&self, inner: &mut Inner) {
        OWN_TIMERS.with(|own| {
            let mut own = own.borrow_mut();
            own.retain(|&(bubble, key, id)| {
                if bubble == self.id {
                    inner.timers.insert(key, TimerTarget::Member(id));
                }
                bubble != self.id
            });
        });
        DEFERRED_BLOCKS.with(|blocks| {
            let mut blocks = blocks.borrow_mut();
            blocks.retain(|&(bubble, id, pending_on)| {
                if bubble == self.id {
                    self.block_task(inner, id, pending_on);
                }
                bubble != self.id
            });
        });
    }

    /// Forgets what this thread kept for the bubble without its lock: the executor of a failed
    /// bubble stops without applying it.
    pub(super) fn discard_own(&self) {
        OWN_TIMERS.with(|own| own.borrow_mut().retain(|&(bubble, ..)| bubble != self.id));
        DEFERRED_BLOCKS.with(|blocks| blocks.borrow_mut().retain(|&(bubble, ..)| bubble != self.id));
    }

    /// Removes `key` from this thread's own timers; whether it was there.
    fn take_own_timer(&self, key: TimerKey) -> bool {
        OWN_TIMERS.with(|own| {
            let mut own = own.borrow_mut();
            let position = own.iter().position(|&(bubble, own_key, _)| bubble == self.id && own_key == key);
            position.map(|position| own.swap_remove(position)).is_some()
        })
    }

    /// Task `id` returned `Pending` in `state`. It keeps counting as running until the
    /// executor next takes the lock (when its batch of runnable tasks is done), which then
    /// blocks it, or requeues it if it was woken meanwhile: one lock per batch instead of one
    /// per poll. Counting a blocked task as running a little longer only keeps the clock still.
    /// Recorded events keep their order: a wake or spawn from this thread applies the deferred
    /// blocks first.
    fn defer_block(&self, id: MemberId, pending_on: PendingOn) {
        DEFERRED_BLOCKS.with(|blocks| blocks.borrow_mut().push((self.id, id, pending_on)));
    }

    /// Blocks task `id` as its poll's notes say, or requeues it if it was woken meanwhile.
    fn block_task(&self, inner: &mut Inner, id: MemberId, pending_on: PendingOn) {
        let state = |member: &Member| match pending_on {
            PendingOn::Bubble(site, op) => State::Blocked { site: Some(site), op },
            PendingOn::Outside(site, op) => State::Outside { site, op: Some(op) },
            PendingOn::Nothing => State::Outside { site: member.spawned_at, op: None },
        };
        if self.mark_blocked(inner, id, state) == Some(false) {
            inner.run_queue.push_back(id);
        }
    }

    /// Registers `id` as the `wait()` caller.
    #[track_caller]
    pub(crate) fn set_waiter(&self, id: MemberId, site: Site) {
        let mut inner = self.lock();
        if let Some(other) = inner.waiter.filter(|&other| other != id) {
            let name = inner.members.get(&other).map_or("?", |m| m.name.as_str()).to_owned();
            drop(inner);
            panic!(
                "time::wait: {name} is already waiting in this bubble; only one member may call wait() at a time"
            );
        }
        if inner.waiter != Some(id) {
            inner.recorder.record(self.now_nanos(), id, record::RawKind::Waiting { site });
        }
        inner.waiter = Some(id);
    }

    /// Stops the clock from advancing until [`release_clock`](Self::release_clock).
    pub(crate) fn hold_clock(&self) {
        self.lock().holds += 1;
    }

    pub(crate) fn release_clock(&self) {
        let mut inner = self.lock();
        inner.holds -= 1;
        inner.progress += 1;
        drop(self.settle(inner));
    }

    /// Whether `id` is still registered as the `wait()` caller.
    pub(crate) fn is_waiter(&self, id: MemberId) -> bool {
        self.lock().waiter == Some(id)
    }

    /// Queues a just-registered task for its first poll.
    pub(crate) fn queue_task(&self, id: MemberId) {
        self.lock().run_queue.push_back(id);
    }

    /// Drops what the finished bubble still holds (timers and their wakers refer back to it).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        let timers = inner.timers.take_all();
        let spawned = std::mem::take(&mut inner.spawned);
        inner.run_queue.clear();
        drop(inner);
        drop((timers, spawned));
    }

    /// Adds a spawned task, runnable at once.
    pub(crate) fn spawn_task(&self, id: MemberId, task: BoxTask) {
        let mut inner = self.lock();
        inner.spawned.push((id, task));
        inner.run_queue.push_back(id);
        if inner.executor_waiting {
            self.changed.notify_all();
        }
    }
}

pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, loom))]
mod loom;
