//! The tagged-pointer value, the interface its cells share, and the hardware cell.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

use portable_atomic::AtomicU128;

/// A pointer and the generation it was stored with: the value every [`TaggedCas`] cell holds.
///
/// Two `Tagged` values are equal only if both the pointer and the generation are, which is
/// what makes a compare-and-swap on them immune to ABA.
///
/// ```
/// use gonext::atomic::Tagged;
/// use std::ptr::NonNull;
///
/// let mut x = 5;
/// let a = Tagged { ptr: Some(NonNull::from(&mut x)), tag: 1 };
/// let b = Tagged { tag: 2, ..a };
/// assert_eq!(a.ptr, b.ptr);
/// assert_ne!(a, b); // same pointer, different generation
/// ```
pub struct Tagged<T> {
    /// The pointer, `None` for null.
    pub ptr: Option<NonNull<T>>,
    /// The generation: bumped by every successful update of the cell.
    pub tag: u64,
}

impl<T> Clone for Tagged<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Tagged<T> {}

impl<T> PartialEq for Tagged<T> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr && self.tag == other.tag
    }
}

impl<T> Eq for Tagged<T> {}

impl<T> Hash for Tagged<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
        self.tag.hash(state);
    }
}

impl<T> fmt::Debug for Tagged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tagged").field("ptr", &self.ptr).field("tag", &self.tag).finish()
    }
}

/// A cell holding a [`Tagged`] pointer that is updated by compare-and-swap, each successful
/// update bumping the generation.
///
/// Implemented by [`AtomicTagged`] (hardware double-width CAS), [`MutexTagged`](super::MutexTagged)
/// (lock) and [`PackedTagged`](super::PackedTagged) (generation in alignment bits), so code
/// such as [`TreiberStack`](super::TreiberStack) runs on any of them.
///
/// ```
/// use gonext::atomic::{AtomicTagged, MutexTagged, TaggedCas};
/// use std::ptr::NonNull;
/// use std::sync::atomic::Ordering::{AcqRel, Acquire};
///
/// fn replace<C: TaggedCas<u32>>(cell: &C, new: &mut u32) -> u64 {
///     let seen = cell.load(Acquire);
///     let previous = cell.compare_exchange(seen, Some(NonNull::from(new)), AcqRel, Acquire).unwrap();
///     assert_eq!(previous, seen);
///     cell.load(Acquire).tag
/// }
/// let (mut a, mut b) = (1, 2);
/// assert_eq!(replace(&AtomicTagged::new(None), &mut a), 1);
/// assert_eq!(replace(&MutexTagged::new(None), &mut b), 1);
/// ```
pub trait TaggedCas<T>: Send + Sync {
    /// A cell holding `ptr` with generation 0.
    fn new(ptr: Option<NonNull<T>>) -> Self
    where
        Self: Sized;

    /// The current pointer and generation.
    fn load(&self, order: Ordering) -> Tagged<T>;

    /// Stores `new` with generation `current.tag + 1` if the cell still holds exactly
    /// `current` (pointer and generation). Returns the previous value on success and the
    /// actual value on failure, like [`AtomicPtr::compare_exchange`](std::sync::atomic::AtomicPtr::compare_exchange).
    ///
    /// # Panics
    ///
    /// Panics if `failure` is `Release` or `AcqRel`, as std's atomics do.
    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Tagged<T>, Tagged<T>>;

    /// Stores `ptr` with the next generation and returns the previous value.
    fn swap(&self, ptr: Option<NonNull<T>>, order: Ordering) -> Tagged<T> {
        let mut seen = self.load(Ordering::Relaxed);
        loop {
            match self.compare_exchange(seen, ptr, order, Ordering::Relaxed) {
                Ok(previous) => return previous,
                Err(actual) => seen = actual,
            }
        }
    }

    /// Stores `ptr` with the next generation.
    fn store(&self, ptr: Option<NonNull<T>>, order: Ordering) {
        self.swap(ptr, order);
    }
}

/// An ABA-safe tagged pointer updated by one hardware double-width CAS.
///
/// The pointer and a 64-bit generation share one 16-byte atomic (portable-atomic's
/// `AtomicU128`: `cmpxchg16b` on x86_64, detected at run time; `casp` on aarch64 with LSE;
/// a lock-based fallback elsewhere, see [`is_lock_free`](Self::is_lock_free)).
///
/// Memory orderings are explicit, as in std. The usual choice is `Acquire` for loads and the
/// failure ordering and `AcqRel` for a successful update that publishes or consumes a node.
///
/// ```
/// use gonext::atomic::{AtomicTagged, TaggedCas};
/// use std::ptr::NonNull;
/// use std::sync::atomic::Ordering::{AcqRel, Acquire};
///
/// let (mut a, mut b) = (1u64, 2u64);
/// let cell = AtomicTagged::new(Some(NonNull::from(&mut a)));
/// let seen = cell.load(Acquire);
/// assert!(cell.compare_exchange(seen, Some(NonNull::from(&mut b)), AcqRel, Acquire).is_ok());
/// // Same pointer as before, but a stale generation: the CAS fails.
/// let stale = cell.compare_exchange(seen, None, AcqRel, Acquire).unwrap_err();
/// assert_eq!(stale.tag, 1);
/// ```
///
/// # Differences from Go
///
/// Go's proposal exposes raw 128-bit words; gonext types the pair as pointer + generation and
/// bumps the generation itself, so a caller cannot forget to.
pub struct AtomicTagged<T> {
    bits: AtomicU128,
    _points_to: std::marker::PhantomData<*mut T>,
}

// SAFETY: like `AtomicPtr<T>`, the cell only stores a pointer value; it never dereferences it,
// so sharing or sending the cell cannot cause a data race on `T`.
unsafe impl<T> Send for AtomicTagged<T> {}
// SAFETY: see `Send`; all access to the pair goes through the atomic.
unsafe impl<T> Sync for AtomicTagged<T> {}

impl<T> AtomicTagged<T> {
    /// Whether the CAS runs on a hardware double-width instruction on this machine (checked
    /// at run time on x86_64), rather than portable-atomic's lock-based fallback.
    ///
    /// ```
    /// # #[cfg(target_arch = "x86_64")]
    /// if std::is_x86_feature_detected!("cmpxchg16b") {
    ///     assert!(gonext::atomic::AtomicTagged::<u8>::is_lock_free());
    /// }
    /// ```
    pub fn is_lock_free() -> bool {
        AtomicU128::is_lock_free()
    }
}

fn pack<T>(ptr: Option<NonNull<T>>, tag: u64) -> u128 {
    let addr = ptr.map_or(0, |p| p.as_ptr().expose_provenance());
    (u128::from(tag) << 64) | addr as u128
}

fn unpack<T>(bits: u128) -> Tagged<T> {
    // The pointer was exposed by `pack`; `with_exposed_provenance_mut` picks its provenance back up.
    let ptr = NonNull::new(ptr::with_exposed_provenance_mut::<T>(bits as u64 as usize));
    Tagged { ptr, tag: (bits >> 64) as u64 }
}

impl<T> TaggedCas<T> for AtomicTagged<T> {
    fn new(ptr: Option<NonNull<T>>) -> Self {
        AtomicTagged { bits: AtomicU128::new(pack(ptr, 0)), _points_to: std::marker::PhantomData }
    }

    #[inline]
    fn load(&self, order: Ordering) -> Tagged<T> {
        unpack(self.bits.load(order))
    }

    #[inline]
    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Tagged<T>, Tagged<T>> {
        let expected = pack(current.ptr, current.tag);
        let replacement = pack(new, current.tag.wrapping_add(1));
        self.bits.compare_exchange(expected, replacement, success, failure).map(unpack).map_err(unpack)
    }
}

impl<T> fmt::Debug for AtomicTagged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AtomicTagged").field(&self.load(Ordering::Relaxed)).finish()
    }
}
