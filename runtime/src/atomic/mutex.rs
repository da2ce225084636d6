//! The mutex polyfill: the pair behind a lock, for platforms or benchmarks without a
//! double-width CAS.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::sync_shim::{Mutex, MutexGuard};

use super::{Tagged, TaggedCas};

/// A tagged pointer whose compare-and-swap takes a `std::sync::Mutex`.
///
/// The polyfill from Go's proposal discussion: always correct, never lock-free. Uncontended
/// it costs about what a hardware double-width CAS does; under contention threads queue on
/// the lock. The orderings passed in are subsumed by the lock (which orders everything).
///
/// ```
/// use gonext::atomic::{MutexTagged, TaggedCas};
/// use std::sync::atomic::Ordering::{AcqRel, Acquire};
///
/// let cell = MutexTagged::<u8>::new(None);
/// let seen = cell.load(Acquire);
/// assert_eq!(cell.compare_exchange(seen, None, AcqRel, Acquire), Ok(seen));
/// assert_eq!(cell.load(Acquire).tag, 1);
/// ```
pub struct MutexTagged<T> {
    pair: Mutex<Tagged<T>>,
}

// SAFETY: the cell stores a pointer value and never dereferences it (as `AtomicPtr<T>`).
unsafe impl<T> Send for MutexTagged<T> {}
// SAFETY: see `Send`; the pair is only accessed under the mutex.
unsafe impl<T> Sync for MutexTagged<T> {}

impl<T> MutexTagged<T> {
    fn lock(&self) -> MutexGuard<'_, Tagged<T>> {
        // Nothing can panic while the lock is held, and the pair is `Copy`: a poisoned lock
        // still holds a consistent value.
        self.pair.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn check_failure_ordering(failure: Ordering) {
    assert!(
        !matches!(failure, Ordering::Release | Ordering::AcqRel),
        "there is no such thing as a release failure ordering (got {failure:?})"
    );
}

impl<T> TaggedCas<T> for MutexTagged<T> {
    fn new(ptr: Option<NonNull<T>>) -> Self {
        MutexTagged { pair: Mutex::new(Tagged { ptr, tag: 0 }) }
    }

    fn load(&self, _order: Ordering) -> Tagged<T> {
        *self.lock()
    }

    #[track_caller]
    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        _success: Ordering,
        failure: Ordering,
    ) -> Result<Tagged<T>, Tagged<T>> {
        check_failure_ordering(failure);
        let mut pair = self.lock();
        if *pair != current {
            return Err(*pair);
        }
        *pair = Tagged { ptr: new, tag: current.tag.wrapping_add(1) };
        Ok(current)
    }
}

impl<T> fmt::Debug for MutexTagged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MutexTagged").field(&*self.lock()).finish()
    }
}
