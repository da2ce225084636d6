//! `RwLock` with std's API whose blocking is durable inside a bubble.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

use super::queue::{Acquire, WaitQueue};
use crate::time::bubble;

/// The state value of a write-locked lock; any other value counts readers.
const WRITER: usize = usize::MAX;

/// A reader-writer lock with [`std::sync::RwLock`]'s API (poisoning included) whose blocking
/// is durable inside a virtual-time bubble.
///
/// Released waiters all retry, so neither readers nor writers are preferred.
///
/// As with [`Mutex`](super::Mutex), a member waiting while a thread outside every bubble
/// holds the lock (as writer or reader), or while a member of another bubble holds it as
/// writer, is not durably blocked: the clock waits for that holder. Readers that are members
/// of another bubble are not told apart from the waiter's own.
///
/// ```
/// use gonext::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let (a, b) = (lock.read().unwrap(), lock.read().unwrap());
///     assert_eq!(*a + *b, 10);
/// }
/// *lock.write().unwrap() += 1;
/// assert_eq!(*lock.read().unwrap(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    state: AtomicUsize,
    /// The writer's [`bubble::holder_tag`], while it holds the lock.
    writer: AtomicU64,
    /// Readers outside every bubble.
    outside_readers: AtomicUsize,
    poisoned: AtomicBool,
    queue: WaitQueue,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::RwLock`: moving the lock moves the data.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as `std::sync::RwLock`: readers share `&T` across threads (needs `T: Sync`), a
// writer gets `&mut T` on any thread (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to a [`RwLock`]'s data; releases on drop.
#[must_use = "the lock is released as soon as the guard drops"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// Counted in `outside_readers`.
    outside: bool,
    _data: PhantomData<&'a T>,
}

/// Exclusive access to a [`RwLock`]'s data; releases on drop.
#[must_use = "the lock is released as soon as the guard drops"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    panicking_at_lock: bool,
    _data: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            writer: AtomicU64::new(0),
            outside_readers: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            queue: WaitQueue::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The data, consuming the lock; `Err` if it is poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.is_poisoned();
        let value = self.data.into_inner();
        if poisoned { Err(PoisonError::new(value)) } else { Ok(value) }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Fails with whether the holders are of the caller's bubble (`tag`), as far as known.
    fn try_acquire_read(&self, tag: u64) -> Result<(), bool> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state >= WRITER - 1 {
                return Err(self.held_by(tag, state));
            }
            match self.state.compare_exchange_weak(state, state + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    if tag == bubble::OUTSIDE_TAG {
                        self.outside_readers.fetch_add(1, Ordering::SeqCst);
                    }
                    return Ok(());
                }
                Err(actual) => state = actual,
            }
        }
    }

    fn try_acquire_write(&self, tag: u64) -> Result<(), bool> {
        match self.state.compare_exchange(0, WRITER, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => {
                self.writer.store(tag, Ordering::SeqCst);
                Ok(())
            }
            Err(state) => Err(self.held_by(tag, state)),
        }
    }

    /// Whether the holders in `state` are of bubble `tag`: the writer's tag is recorded just
    /// after it takes the lock (0 until then), readers outside any bubble are counted.
    fn held_by(&self, tag: u64, state: usize) -> bool {
        if state == WRITER {
            let writer = self.writer.load(Ordering::SeqCst);
            return writer == 0 || writer == tag;
        }
        self.outside_readers.load(Ordering::SeqCst) == 0
    }

    fn read_guard(&self, tag: u64) -> LockResult<RwLockReadGuard<'_, T>> {
        let guard = RwLockReadGuard { lock: self, outside: tag == bubble::OUTSIDE_TAG, _data: PhantomData };
        if self.is_poisoned() { Err(PoisonError::new(guard)) } else { Ok(guard) }
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let guard =
            RwLockWriteGuard { lock: self, panicking_at_lock: std::thread::panicking(), _data: PhantomData };
        if self.is_poisoned() { Err(PoisonError::new(guard)) } else { Ok(guard) }
    }

    /// Locks for reading, blocking (durably, inside a bubble) while a writer holds it.
    ///
    /// # Errors
    ///
    /// If a writer panicked, the lock is poisoned: the guard comes inside the error.
    #[track_caller]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let tag = bubble::holder_tag();
        if self.try_acquire_read(tag).is_err() {
            let site = Location::caller();
            let acquire = Acquire {
                queue: &self.queue,
                try_acquire: || self.try_acquire_read(tag),
                slot: None,
                site,
                op: "RwLock::read",
            };
            bubble::block_on(acquire, site, "RwLock::read");
        }
        self.read_guard(tag)
    }

    /// Locks for writing, blocking (durably, inside a bubble) while anyone holds it.
    ///
    /// # Errors
    ///
    /// If a writer panicked, the lock is poisoned: the guard comes inside the error.
    #[track_caller]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let tag = bubble::holder_tag();
        if self.try_acquire_write(tag).is_err() {
            let site = Location::caller();
            let acquire = Acquire {
                queue: &self.queue,
                try_acquire: || self.try_acquire_write(tag),
                slot: None,
                site,
                op: "RwLock::write",
            };
            bubble::block_on(acquire, site, "RwLock::write");
        }
        self.write_guard()
    }

    /// Locks for reading if no writer holds it.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if a writer holds it, `Poisoned` if a writer panicked.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let tag = bubble::holder_tag();
        if self.try_acquire_read(tag).is_err() {
            return Err(TryLockError::WouldBlock);
        }
        self.read_guard(tag).map_err(TryLockError::from)
    }

    /// Locks for writing if no one holds it.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if held, `Poisoned` if a writer panicked.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if self.try_acquire_write(bubble::holder_tag()).is_err() {
            return Err(TryLockError::WouldBlock);
        }
        self.write_guard().map_err(TryLockError::from)
    }

    /// Whether a writer panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// The data through `&mut`, no locking needed; `Err` if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let data = self.data.get_mut();
        if poisoned { Err(PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: while a read guard lives the state counts it, so no writer holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        if self.outside {
            self.lock.outside_readers.fetch_sub(1, Ordering::SeqCst);
        }
        if self.lock.state.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.lock.queue.release_all();
        }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the state is `WRITER` while this guard lives: it is the only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the only holder, and `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking_at_lock && std::thread::panicking() {
            self.lock.poisoned.store(true, Ordering::Relaxed);
        }
        self.lock.writer.store(0, Ordering::SeqCst);
        self.lock.state.store(0, Ordering::SeqCst);
        self.lock.queue.release_all();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(poisoned)) => d.field("data", &&*poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned()).finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
