//! `Mutex` and `Condvar` with std's API whose blocking is durable inside a bubble.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::task::Poll;
use std::time::Duration;

use super::queue::{Acquire, WaitQueue};
use super::waiters::Waiters;
use crate::time::Sleep;
use crate::time::bubble::{self, Site};

/// A mutual-exclusion lock with [`std::sync::Mutex`]'s API (poisoning included) whose
/// blocking is durable inside a virtual-time bubble.
///
/// Holding it across a virtual sleep does not hang the bubble: another member waiting for it
/// is durably blocked, so the clock moves on. Uncontended, `lock` is one atomic
/// compare-and-swap, like std's, and one thread-local read.
///
/// The lock records which bubble its holder belongs to: a member waiting while a thread
/// outside its bubble (or in another bubble) holds the lock is not durably blocked — that
/// holder may release it at any moment, so the clock waits, as Go's rule for objects the
/// bubble does not own says.
///
/// ```
/// use gonext::{sync::Mutex, thread, time};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let shared = Arc::new(Mutex::new(0));
///     let holder = {
///         let shared = Arc::clone(&shared);
///         thread::spawn(move || {
///             let mut value = shared.lock().unwrap();
///             thread::sleep(Duration::from_secs(1)); // held across a sleep
///             *value += 1;
///         })
///     };
///     thread::sleep(Duration::from_millis(1));
///     *shared.lock().unwrap() += 1; // waits, durably, for the holder
///     holder.join().unwrap();
///     assert_eq!(*shared.lock().unwrap(), 2);
/// });
/// ```
///
/// # Differences from Go
///
/// Go's `synctest` cannot treat `sync.Mutex` as durably blocking, so a mutex held across a
/// sleep hangs a Go bubble; gonext's can (what golang/go#77687 asks of Go). As in Go, a
/// mutex created outside a bubble is never a durable block for its members. Like std's and unlike Go's, the lock owns its data
/// and is poisoned by a panic while held.
pub struct Mutex<T: ?Sized> {
    /// 0 while unlocked, else the holder's [`bubble::holder_tag`].
    holder: AtomicU64,
    poisoned: AtomicBool,
    queue: WaitQueue,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out its data to one thread at a time, so sending or sharing it only
// requires that the data may move between threads, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: see `Send`: `&Mutex<T>` only gives exclusive access, one holder at a time.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The guard of a locked [`Mutex`]; unlocks on drop.
#[must_use = "the lock is released as soon as the guard drops"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    panicking_at_lock: bool,
    /// Makes the guard `Sync` only for `T: Sync`, as it hands out `&T`.
    _data: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            holder: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            queue: WaitQueue::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the mutex; `Err` if it is poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.is_poisoned();
        let value = self.data.into_inner();
        if poisoned { Err(PoisonError::new(value)) } else { Ok(value) }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Fails with whether the holder is of the caller's bubble (`tag`).
    fn try_acquire(&self, tag: u64) -> Result<(), bool> {
        match self.holder.compare_exchange(0, tag, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(holder) => Err(holder == tag || holder == 0),
        }
    }

    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let guard =
            MutexGuard { mutex: self, panicking_at_lock: std::thread::panicking(), _data: PhantomData };
        if self.is_poisoned() { Err(PoisonError::new(guard)) } else { Ok(guard) }
    }

    /// Locks, blocking (durably, inside a bubble) while another holder has it.
    ///
    /// # Errors
    ///
    /// If a holder panicked, the lock is poisoned: the guard comes inside the error.
    #[track_caller]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let tag = bubble::holder_tag();
        if self.try_acquire(tag).is_err() {
            let site = Location::caller();
            bubble::block_on(self.acquire(tag, site), site, "Mutex::lock");
        }
        self.guard()
    }

    /// The async form of [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    #[track_caller]
    pub fn lock_async(&self) -> impl std::future::Future<Output = LockResult<MutexGuard<'_, T>>> {
        let acquire = self.acquire(bubble::holder_tag(), Location::caller());
        async move {
            acquire.await;
            self.guard()
        }
    }

    fn acquire(&self, tag: u64, site: Site) -> Acquire<'_, impl Fn() -> Result<(), bool> + '_> {
        Acquire {
            queue: &self.queue,
            try_acquire: move || self.try_acquire(tag),
            slot: None,
            site,
            op: "Mutex::lock",
        }
    }

    /// Locks if no one holds it.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if held, `Poisoned` if a holder panicked.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.try_acquire(bubble::holder_tag()).is_err() {
            return Err(TryLockError::WouldBlock);
        }
        self.guard().map_err(TryLockError::from)
    }

    /// Whether a holder panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Forgets a past panic.
    pub fn clear_poison(&self) {
        self.poisoned.store(false, Ordering::Relaxed);
    }

    /// The data through `&mut`, no locking needed; `Err` if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let data = self.data.get_mut();
        if poisoned { Err(PoisonError::new(data)) } else { Ok(data) }
    }

    fn unlock(&self) {
        self.holder.store(0, Ordering::SeqCst);
        self.queue.release_one();
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock, so no `&mut T`
        // exists elsewhere.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the lock's only holder, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking_at_lock && std::thread::panicking() {
            self.mutex.poisoned.store(true, Ordering::Relaxed);
        }
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(poisoned)) => d.field("data", &&*poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned()).finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A condition variable with [`std::sync::Condvar`]'s API for gonext's [`Mutex`]; waiting is
/// durable inside a bubble, and timed waits use the bubble's clock.
///
/// ```
/// use gonext::sync::{Condvar, Mutex};
/// use gonext::{thread, time};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// time::bubble(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let setter = Arc::clone(&pair);
///     thread::spawn(move || {
///         thread::sleep(Duration::from_secs(5));
///         *setter.0.lock().unwrap() = true;
///         setter.1.notify_all();
///     });
///     let (ready, cv) = &*pair;
///     let guard = cv.wait_while(ready.lock().unwrap(), |ready| !*ready).unwrap();
///     assert!(*guard);
/// });
/// ```
#[derive(Default)]
pub struct Condvar {
    waiters: std::sync::Mutex<Waiters>,
}

/// Whether a timed [`Condvar`] wait ended because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait timed out.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with no waiters.
    pub const fn new() -> Condvar {
        Condvar { waiters: std::sync::Mutex::new(Waiters::new()) }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unlocks, waits for a notification, and locks again (spurious wake-ups are possible).
    ///
    /// # Errors
    ///
    /// If the mutex is poisoned when it is locked again.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None, Location::caller()).0
    }

    /// Waits until `condition` is false, re-checking after every wake-up.
    ///
    /// # Errors
    ///
    /// If the mutex is poisoned when it is locked again.
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<MutexGuard<'a, T>> {
        let site = Location::caller();
        while condition(&mut *guard) {
            guard = self.wait_until(guard, None, site).0?;
        }
        Ok(guard)
    }

    /// As [`wait`](Self::wait), giving up after `timeout` on the caller's clock.
    ///
    /// # Errors
    ///
    /// If the mutex is poisoned when it is locked again.
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let site = Location::caller();
        let deadline = crate::time::Instant::now() + timeout;
        let (relocked, timed_out) = self.wait_until(guard, Some(Sleep::new(deadline, site)), site);
        let result = WaitTimeoutResult(timed_out);
        relocked
            .map(|guard| (guard, result))
            .map_err(|poisoned| PoisonError::new((poisoned.into_inner(), result)))
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        mut sleep: Option<Sleep>,
        site: Site,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let mutex = guard.mutex;
        let mut slot = None;
        self.waiters().register(&mut slot, std::task::Waker::noop());
        drop(guard);
        let timed_out = bubble::block_on(
            std::future::poll_fn(|cx| {
                let mut waiters = self.waiters();
                if waiters.was_woken(slot) {
                    slot = None;
                    return Poll::Ready(false);
                }
                if let Some(sleep) = &mut sleep
                    && std::pin::Pin::new(sleep).poll(cx).is_ready()
                {
                    waiters.forget(&mut slot);
                    return Poll::Ready(true);
                }
                waiters.register(&mut slot, cx.waker());
                bubble::note_blocked_at(site, "Condvar::wait");
                Poll::Pending
            }),
            site,
            "Condvar::wait",
        );
        (mutex.lock(), timed_out)
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        let waker = self.waiters().take_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let wakers = self.waiters().take_all();
        wakers.into_iter().for_each(std::task::Waker::wake);
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
