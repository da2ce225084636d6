//! The bubble's side of the `std-time` layer: std calls that block a member (interposed
//! sleeps, timed futex waits, joins of adopted threads) and the std threads a bubble adopts.
//!
//! None of this may panic or unwind: it runs inside `extern "C"` functions called by std.

use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use super::{BubbleState, CURRENT, Inner, Kind, Member, MemberId, State, ThreadParker, TimerTarget};
use crate::time::interpose::raw::poll_now;

/// How an interposed blocking call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StdWake {
    /// Woken before its deadline (possibly spuriously: callers re-check).
    Woken,
    /// The virtual clock reached the deadline.
    TimedOut,
    /// The bubble failed: the call returns, and the member continues in real time.
    Failed,
    /// The caller is not (or no longer) a member: the real call applies.
    NotMember,
}

/// Real time between two checks of a futex word whose waker may bypass the interposer
/// (a raw system call, glibc's own code, another process), or of file descriptors made ready
/// by another thread.
const RECHECK: Duration = Duration::from_millis(2);

/// What an interposed wait is waiting for, checkable from any thread. The waiting member
/// checks it every [`RECHECK`], and the bubble checks every waiter's before it moves the clock
/// or reports a deadlock: a wake that bypassed the interposers (a futex word changed by a raw
/// system call, a descriptor made ready by a write) can then never be overtaken by a virtual
/// deadline.
#[derive(Clone)]
pub(crate) enum StdProbe {
    /// A futex word that holds the value the wait expects while it should go on.
    Futex { address: usize, expected: u32 },
    /// A descriptor with the events waited for (an epoll instance, for `epoll_wait`).
    Fd(libc::pollfd),
    /// Descriptors with the events waited for; the wait is over once one is ready.
    Fds(Vec<libc::pollfd>),
}

impl StdProbe {
    fn still_waiting(&self) -> bool {
        match self {
            StdProbe::Futex { address, expected } => {
                // SAFETY: the member waiting on this futex word is blocked inside the call that
                // passed its address, so the word is alive (the kernel relies on the same).
                let word = unsafe { &*(*address as *const std::sync::atomic::AtomicU32) };
                word.load(std::sync::atomic::Ordering::SeqCst) == *expected
            }
            StdProbe::Fd(fd) => poll_now(&mut [*fd]) == 0,
            StdProbe::Fds(fds) => poll_now(&mut fds.clone()) == 0,
        }
    }
}

/// Sleeps the calling member until virtual offset `deadline`.
pub(crate) fn std_sleep_until(deadline: Duration) -> StdWake {
    with_std_member(|bubble, id, is_task, _| {
        loop {
            match bubble.std_park(id, is_task, "std::thread::sleep (std-time)", Some(deadline), None, None) {
                StdWake::Woken => continue,
                end => return end,
            }
        }
    })
}

/// Blocks the calling member, durably, until it is woken, `probe` says its wait is over or
/// the clock reaches `deadline` (if any). `ready_now`, if given, is asked first, under the
/// bubble's lock: `true` ends the wait at once (`Woken`).
pub(crate) fn std_wait(
    op: &'static str,
    deadline: Option<Duration>,
    probe: StdProbe,
    ready_now: Option<&mut dyn FnMut() -> bool>,
) -> StdWake {
    with_std_member(|bubble, id, is_task, _| {
        bubble.std_park(id, is_task, op, deadline, Some(probe), ready_now)
    })
}

/// Blocks the calling member, durably, until `ready` (which registers the member's waker to
/// be woken by) returns true.
pub(crate) fn std_block_until(op: &'static str, mut ready: impl FnMut(&Waker) -> bool) -> StdWake {
    with_std_member(|bubble, id, is_task, waker| {
        loop {
            if ready(waker) {
                return StdWake::Woken;
            }
            match bubble.std_park(id, is_task, op, None, None, None) {
                StdWake::Woken => continue,
                end => return end,
            }
        }
    })
}

/// Runs `f` with the calling member's bubble, id, kind and waker.
fn with_std_member(f: impl FnOnce(&Arc<BubbleState>, MemberId, bool, &Waker) -> StdWake) -> StdWake {
    CURRENT
        .try_with(|current| {
            let Ok(current) = current.try_borrow() else { return StdWake::NotMember };
            match current.as_ref() {
                Some(c) => f(&c.bubble, c.member, c.is_task, &c.own_waker()),
                None => StdWake::NotMember,
            }
        })
        .unwrap_or(StdWake::NotMember)
}

/// The calling member's bubble and id.
pub(crate) fn std_member() -> Option<(Arc<BubbleState>, MemberId)> {
    CURRENT
        .try_with(|current| {
            let current = current.try_borrow().ok()?;
            current.as_ref().map(|c| (Arc::clone(&c.bubble), c.member))
        })
        .ok()
        .flatten()
}

/// The bubble a thread started now by the calling member would join, and the member.
pub(crate) fn adoptable() -> Option<(Arc<BubbleState>, MemberId)> {
    CURRENT
        .try_with(|current| {
            let current = current.try_borrow().ok()?;
            let c = current.as_ref()?;
            let adopts = c.bubble.config.adopt_std_threads && !c.bubble.has_failed();
            adopts.then(|| (Arc::clone(&c.bubble), c.member))
        })
        .ok()
        .flatten()
}

impl BubbleState {
    /// The real readings the virtual std clocks start from.
    pub(crate) fn std_clock_base(&self) -> &crate::time::interpose::StdClockBase {
        &self.std_clock
    }

    /// The configured start of the virtual wall clock, since the Unix epoch.
    pub(crate) fn start_since_epoch(&self) -> Duration {
        self.config.start_since_epoch
    }

    /// After the bubble failed, members left in std code cannot be unwound: each of their
    /// sleeps and timed waits takes at most this much real time, and moves the (no longer
    /// shared) clock to its deadline, so that they reach their end or a gonext call soon,
    /// without spinning.
    pub(crate) const AFTER_FAILURE_WAIT: Duration = Duration::from_millis(10);

    /// The real time a sleep or timed wait until `deadline` takes after a failure.
    pub(crate) fn wait_after_failure(&self, deadline: Duration) -> Duration {
        deadline.saturating_sub(self.elapsed()).min(Self::AFTER_FAILURE_WAIT)
    }

    /// Moves a failed bubble's clock to `deadline`, for the member whose wait ended there.
    pub(crate) fn jump_after_failure(&self, deadline: Duration) {
        self.now_nanos.fetch_max(super::duration_nanos(deadline), std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether the bubble has finished, so that threads it let go keep real time.
    #[inline]
    pub(crate) fn std_released(&self) -> bool {
        self.std_released.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn release_std_threads(&self) {
        self.std_released.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Registers a thread that member `parent` is starting with `std::thread::spawn`.
    pub(crate) fn add_adopted_thread(&self, parent: MemberId, site: super::Site) -> MemberId {
        let parent_name = self.lock().members.get(&parent).map(|m| m.name.clone()).unwrap_or_default();
        let id = self.add_member(Some(String::new()), site, false);
        if let Some(member) = self.lock().members.get_mut(&id) {
            member.name = format!("std-thread-{id} (std::thread::spawn by {parent_name})");
            member.adopted = true;
        }
        id
    }

    /// Blocks member `id` in std code until woken, the deadline or a failure.
    fn std_park(
        &self,
        id: MemberId,
        is_task: bool,
        op: &'static str,
        deadline: Option<Duration>,
        probe: Option<StdProbe>,
        ready_now: Option<&mut dyn FnMut() -> bool>,
    ) -> StdWake {
        let parker = ThreadParker::current();
        let mut inner = self.lock();
        if inner.failure.is_some() {
            return StdWake::Failed;
        }
        if deadline.is_some_and(|deadline| deadline <= self.elapsed()) {
            return StdWake::TimedOut;
        }
        // Asked under the lock, so no other member can block, and so settle, before this one
        // blocks: the idle step that blocking may run need not check this member's probe again.
        if ready_now.is_some_and(|ready_now| ready_now()) {
            return StdWake::Woken;
        }
        let key = deadline.map(|deadline| {
            let key = self.timer_key(super::duration_nanos(deadline));
            inner.timers.insert(key, TimerTarget::Member(id));
            key
        });
        if is_task {
            inner.executor_blocked = Some((id, Arc::clone(&parker)));
        }
        let (mut inner, blocked) = self.block_locked(inner, id, State::Blocked { site: None, op });
        if !blocked && !inner.members.contains_key(&id) {
            Self::forget_wait(&mut inner, id, key, self.now_nanos());
            return StdWake::NotMember;
        }
        if let Some(probe) = probe.as_ref().filter(|_| blocked) {
            inner.probes.push((id, probe.clone()));
        }
        let mut failed = false;
        if blocked {
            loop {
                if inner.failure.is_some() {
                    failed = true;
                    break;
                }
                if inner.members.get_mut(&id).is_none_or(|member| std::mem::take(&mut member.notified)) {
                    break;
                }
                drop(inner);
                self.wait_for_unpark(&parker, id, probe.as_ref());
                inner = self.lock();
            }
        }
        if is_task {
            inner.executor_blocked = None;
        }
        let end = match deadline {
            _ if failed => StdWake::Failed,
            // A timer fires, and is removed, before anyone sees the clock at its deadline.
            Some(deadline) if self.elapsed() >= deadline => StdWake::TimedOut,
            _ => StdWake::Woken,
        };
        let key = key.filter(|_| end != StdWake::TimedOut);
        let now = self.now_nanos();
        Self::forget_wait(&mut inner, id, key, now);
        end
    }

    /// Forgets the probe and, unless it fired, the timer of member `id`'s std wait.
    fn forget_wait(inner: &mut Inner, id: MemberId, key: Option<super::TimerKey>, now: u64) {
        if let Some(key) = key {
            inner.timers.remove(key, now);
        }
        if !inner.probes.is_empty() {
            inner.probes.retain(|(waiter, _)| *waiter != id);
        }
    }

    /// Parks until the member's parker is unparked, waking the member itself once its probe
    /// says its wait is over.
    fn wait_for_unpark(&self, parker: &ThreadParker, id: MemberId, probe: Option<&StdProbe>) {
        while !parker.park_timeout(RECHECK) {
            if probe.is_some_and(|probe| !probe.still_waiting()) {
                self.wake(id);
            }
        }
    }

    /// Wakes the member running on this thread if it is in a std wait: the wakers just called
    /// here may have queued work for it without a word (tokio's current-thread scheduler
    /// schedules a task woken on its own thread into its local queue, trusting the thread to
    /// look there before it parks again). A spurious wake costs the member one more check.
    pub(super) fn wake_std_waiter_on_this_thread(&self, inner: &mut Inner) {
        let Some((_, id)) = std_member() else { return };
        let in_std_wait = inner
            .members
            .get(&id)
            .is_some_and(|member| matches!(member.state, State::Blocked { site: None, .. }));
        if in_std_wait {
            self.wake_locked(inner, id, super::record::WakeCause::Member(id));
        }
    }

    /// Wakes the members whose std waits are over although nobody woke them (see
    /// [`StdProbe`]); whether there was one. Called before the clock moves.
    pub(super) fn wake_ready_std_waiters(&self, inner: &mut Inner) -> bool {
        if inner.probes.is_empty() {
            return false;
        }
        let ready: Vec<MemberId> =
            inner.probes.iter().filter(|(_, probe)| !probe.still_waiting()).map(|&(id, _)| id).collect();
        for &id in &ready {
            self.wake_locked(inner, id, super::record::WakeCause::StdReady);
        }
        !ready.is_empty()
    }

    /// The running count without the members that cannot move by themselves: tasks behind an
    /// executor blocked in std code and, once the root returned, adopted threads that only wait
    /// in untimed std waits when nothing else runs — those are let go.
    pub(super) fn std_running(&self, inner: &mut Inner) -> usize {
        let mut running = inner.running;
        if let Some((blocked, _)) = &inner.executor_blocked {
            let starved =
                inner.members.iter().filter(|&(id, m)| id != *blocked && is_task_waiting_for_executor(m));
            running -= starved.count();
        }
        if running == 0 || !inner.root_done {
            return running;
        }
        let idle: Vec<MemberId> =
            inner.members.iter().filter(|(_, m)| is_idle_adopted_thread(m)).map(|(id, _)| id).collect();
        if idle.len() != running {
            return running;
        }
        for id in idle {
            inner.members.remove(&id);
            inner.running -= 1;
        }
        inner.progress += 1;
        if inner.members.is_empty() {
            self.changed.notify_all();
        }
        0
    }

    /// Lets go of idle adopted threads once the root returned, from the watchdog: entering an
    /// untimed wait does not settle the bubble.
    pub(super) fn settle_idle_std_threads(&self) {
        let inner = self.lock();
        if inner.root_done && inner.running > 0 {
            drop(self.settle(inner));
        }
    }
}

fn is_task_waiting_for_executor(member: &Member) -> bool {
    matches!(member.kind, Kind::Task) && !matches!(member.state, State::Blocked { .. })
}

fn is_idle_adopted_thread(member: &Member) -> bool {
    let in_std_wait = match &member.kind {
        Kind::Thread(Some(parker)) => parker.in_std_wait.load(std::sync::atomic::Ordering::Relaxed),
        _ => false,
    };
    member.adopted && in_std_wait && matches!(member.state, State::Running)
}
