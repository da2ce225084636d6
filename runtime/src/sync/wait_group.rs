//! Go's `sync.WaitGroup`: wait for a set of threads or tasks to finish.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::waiters::Waiters;
use crate::sync_shim::{Arc, Mutex, MutexGuard};
use crate::time::bubble::{self, BubbleState, Site};

/// A counter of outstanding work with a blocking (or async) wait for it to reach zero.
///
/// Cloning gives another handle to the same counter. Inside a virtual-time bubble, `wait` is a
/// durable block.
///
/// ```
/// use gonext::sync::WaitGroup;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let wg = WaitGroup::new();
/// let done = Arc::new(AtomicUsize::new(0));
/// for _ in 0..4 {
///     let done = Arc::clone(&done);
///     wg.go(move || {
///         done.fetch_add(1, Ordering::SeqCst);
///     });
/// }
/// wg.wait();
/// assert_eq!(done.load(Ordering::SeqCst), 4);
/// ```
///
/// # Differences from Go
///
/// Go's `Add` takes a signed delta; here [`add`](Self::add) only adds and [`done`](Self::done)
/// subtracts one, so the counter cannot be driven negative by a typo in the sign.
///
/// # Virtual time
///
/// As in Go, a group belongs to a bubble once it is created there, or once [`add`](Self::add)
/// (or [`go`](Self::go)) is called there while nothing is outstanding; from then on a wait on
/// it is durable, and using it outside that bubble panics, naming both. A wait on a group that
/// belongs to no bubble is never durable: a thread outside may still call `done`.
#[derive(Clone)]
pub struct WaitGroup {
    shared: Arc<Mutex<Counter>>,
}

struct Counter {
    outstanding: usize,
    waiters: Waiters,
    /// The bubble the group belongs to, and where it joined it.
    owner: Option<(std::sync::Arc<BubbleState>, Site)>,
}

impl WaitGroup {
    /// A group with nothing outstanding.
    #[track_caller]
    pub fn new() -> WaitGroup {
        let site = Location::caller();
        let owner = bubble::current().map(|bubble| (bubble, site));
        WaitGroup { shared: Arc::new(Mutex::new(Counter { outstanding: 0, waiters: Waiters::new(), owner })) }
    }

    fn lock(&self) -> MutexGuard<'_, Counter> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `n` outstanding units of work; inside a bubble, an idle group that belongs to no
    /// bubble joins the caller's.
    ///
    /// # Panics
    ///
    /// Outside the bubble the group belongs to, naming both.
    #[track_caller]
    pub fn add(&self, n: usize) {
        let used_at = Location::caller();
        let mut counter = self.lock();
        if counter.owner.is_none() && counter.outstanding == 0 {
            counter.owner = bubble::current().map(|bubble| (bubble, used_at));
        }
        counter.check(used_at);
        counter.outstanding += n;
    }

    /// Marks one unit done, waking the waiters when none is left.
    ///
    /// # Panics
    ///
    /// When nothing is outstanding (more `done` than `add`), naming the caller, and outside
    /// the bubble the group was created in.
    #[track_caller]
    pub fn done(&self) {
        let mut counter = self.lock();
        counter.check(Location::caller());
        assert!(
            counter.outstanding > 0,
            "WaitGroup::done at {}: called more times than add",
            Location::caller()
        );
        counter.outstanding -= 1;
        let waiters = if counter.outstanding == 0 { counter.waiters.take_all() } else { Vec::new() };
        drop(counter);
        waiters.into_iter().for_each(Waker::wake);
    }

    /// The number of outstanding units.
    pub fn outstanding(&self) -> usize {
        self.lock().outstanding
    }

    /// Runs `f` on a new [`thread`](crate::thread::spawn) (a bubble member inside a bubble),
    /// counted by the group: Go 1.25's `WaitGroup.Go`.
    #[track_caller]
    pub fn go(&self, f: impl FnOnce() + Send + 'static) {
        self.add(1);
        let group = self.clone();
        crate::thread::spawn(move || {
            /// Marks the unit done even if `f` panics.
            struct Done(WaitGroup);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.done();
                }
            }
            let _done = Done(group);
            f();
        });
    }

    /// Blocks until nothing is outstanding.
    #[track_caller]
    pub fn wait(&self) {
        let site = Location::caller();
        bubble::block_on(self.wait_at(site), site, "WaitGroup::wait");
    }

    /// The async form of [`wait`](Self::wait).
    #[track_caller]
    pub fn wait_async(&self) -> Wait<'_> {
        self.wait_at(Location::caller())
    }

    fn wait_at(&self, site: Site) -> Wait<'_> {
        Wait { group: self, slot: None, site }
    }
}

impl Counter {
    /// Panics if the group of a bubble is used outside it.
    fn check(&self, used_at: Site) {
        if let Some((owner, joined_at)) = &self.owner {
            bubble::check_owner(owner, "WaitGroup", joined_at, used_at);
        }
    }
}

/// The future of [`WaitGroup::wait_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    group: &'a WaitGroup,
    slot: Option<u64>,
    site: Site,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut counter = this.group.lock();
        counter.check(this.site);
        if counter.outstanding == 0 {
            counter.waiters.forget(&mut this.slot);
            return Poll::Ready(());
        }
        counter.waiters.register(&mut this.slot, cx.waker());
        bubble::note_pending_on(counter.owner.as_ref().map(|(owner, _)| owner), this.site, "WaitGroup::wait");
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.group.lock().waiters.forget(&mut self.slot);
        }
    }
}

impl Default for WaitGroup {
    #[track_caller]
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("outstanding", &self.outstanding()).finish()
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("site", &self.site).finish()
    }
}
