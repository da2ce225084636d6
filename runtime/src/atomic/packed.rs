//! The pointer-packing polyfill: the generation lives in the low bits that alignment leaves
//! zero, so one word-sized CAS updates both.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::{Tagged, TaggedCas};

/// A tagged pointer with a `BITS`-bit generation stored in the pointer's alignment bits.
///
/// Lock-free on every platform with a pointer-sized CAS, but the generation wraps after
/// `2^BITS` updates: a thread that sleeps through exactly a multiple of `2^BITS` updates and
/// then sees the same pointer again suffers ABA. `T`'s alignment must be at least `2^BITS`;
/// anything else is rejected at compile time (a `u64` allows `BITS <= 3`).
///
/// ```
/// use gonext::atomic::{PackedTagged, TaggedCas};
/// use std::ptr::NonNull;
/// use std::sync::atomic::Ordering::{AcqRel, Acquire};
///
/// let mut x = 7u64;
/// let cell = PackedTagged::<u64, 2>::new(Some(NonNull::from(&mut x)));
/// for expected_tag in [1, 2, 3, 0] {
///     let seen = cell.load(Acquire);
///     cell.compare_exchange(seen, seen.ptr, AcqRel, Acquire).unwrap();
///     assert_eq!(cell.load(Acquire).tag, expected_tag); // wraps after 2^2 updates
/// }
/// ```
///
/// Too few alignment bits for the generation is a compile error:
///
/// ```compile_fail
/// use gonext::atomic::{PackedTagged, TaggedCas};
/// let cell = PackedTagged::<u16, 3>::new(None); // u16 has 1 free bit, not 3
/// ```
pub struct PackedTagged<T, const BITS: u32> {
    word: AtomicPtr<T>,
    _points_to: PhantomData<*mut T>,
}

// SAFETY: the cell stores a pointer value and never dereferences it (as `AtomicPtr<T>`).
unsafe impl<T, const BITS: u32> Send for PackedTagged<T, BITS> {}
// SAFETY: see `Send`; all access goes through the atomic.
unsafe impl<T, const BITS: u32> Sync for PackedTagged<T, BITS> {}

impl<T, const BITS: u32> PackedTagged<T, BITS> {
    /// Rejects, at compile time, a generation that does not fit in `T`'s alignment bits.
    const GENERATION_FITS: () = {
        assert!(BITS > 0, "PackedTagged needs at least one generation bit (BITS = 0)");
        assert!(
            BITS < usize::BITS && align_of::<T>() >= 1 << BITS,
            "PackedTagged<T, BITS>: T's alignment is below 2^BITS; lower BITS or use AtomicTagged"
        );
    };
    const MASK: usize = {
        let () = Self::GENERATION_FITS;
        (1 << BITS) - 1
    };

    #[track_caller]
    fn pack(ptr: Option<NonNull<T>>, tag: u64) -> *mut T {
        let raw = ptr.map_or(ptr::null_mut(), NonNull::as_ptr);
        assert!(raw.addr() & Self::MASK == 0, "PackedTagged: pointer {raw:p} is not aligned for T");
        raw.map_addr(|addr| addr | (tag as usize & Self::MASK))
    }

    fn unpack(raw: *mut T) -> Tagged<T> {
        Tagged {
            ptr: NonNull::new(raw.map_addr(|addr| addr & !Self::MASK)),
            tag: (raw.addr() & Self::MASK) as u64,
        }
    }
}

impl<T, const BITS: u32> TaggedCas<T> for PackedTagged<T, BITS> {
    #[track_caller]
    fn new(ptr: Option<NonNull<T>>) -> Self {
        let () = Self::GENERATION_FITS;
        PackedTagged { word: AtomicPtr::new(Self::pack(ptr, 0)), _points_to: PhantomData }
    }

    #[inline]
    fn load(&self, order: Ordering) -> Tagged<T> {
        Self::unpack(self.word.load(order))
    }

    #[inline]
    #[track_caller]
    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Tagged<T>, Tagged<T>> {
        let expected = Self::pack(current.ptr, current.tag);
        let replacement = Self::pack(new, current.tag.wrapping_add(1));
        self.word
            .compare_exchange(expected, replacement, success, failure)
            .map(Self::unpack)
            .map_err(Self::unpack)
    }
}

impl<T, const BITS: u32> fmt::Debug for PackedTagged<T, BITS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PackedTagged").field(&self.load(Ordering::Relaxed)).finish()
    }
}
