//! The proposal's typed pair: two 8-byte plain-data words behind one 16-byte atomic.

use std::fmt;
use std::marker::PhantomData;
use std::mem::transmute_copy;
use std::num::NonZeroU64;
use std::sync::atomic::Ordering;

use portable_atomic::AtomicU128;

/// An 8-byte plain-data value that [`DoubleWord`] may store as raw bits.
///
/// # Safety
///
/// Implementors must be exactly 8 bytes with no padding, and any 8 bytes copied out of a
/// value of the type must form a valid value of the type again (so no references, and no
/// pointers: an integer round-trip loses their provenance — use
/// [`AtomicTagged`](super::AtomicTagged) for pointers). A type of the wrong size is caught at
/// compile time when a `DoubleWord` of it is created.
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(transparent)]
/// struct Ticket(u64);
/// // SAFETY: a transparent u64.
/// unsafe impl gonext::atomic::Word for Ticket {}
/// let pair = gonext::atomic::DoubleWord::new(Ticket(1), 2u64);
/// assert_eq!(pair.load(std::sync::atomic::Ordering::Acquire), (Ticket(1), 2));
/// ```
pub unsafe trait Word: Copy {}

// SAFETY: 8-byte integers, floats and arrays of integers without padding; every bit pattern
// is valid, and `NonZeroU64` is only ever rebuilt from bits of a `NonZeroU64`.
unsafe impl Word for u64 {}
// SAFETY: as above.
unsafe impl Word for i64 {}
// SAFETY: as above.
unsafe impl Word for f64 {}
// SAFETY: as above.
unsafe impl Word for NonZeroU64 {}
// SAFETY: as above.
unsafe impl Word for [u8; 8] {}
// SAFETY: as above.
unsafe impl Word for [u16; 4] {}
// SAFETY: as above.
unsafe impl Word for [u32; 2] {}
// SAFETY: as above, on 64-bit targets (elsewhere the size check rejects it at compile time).
unsafe impl Word for usize {}
// SAFETY: as above.
unsafe impl Word for isize {}

/// Two 8-byte words `(A, B)` read and updated together by one 16-byte compare-and-swap.
///
/// Comparison in [`compare_exchange`](Self::compare_exchange) is bitwise (so `-0.0` and `0.0`
/// differ, and a NaN equals itself), as for every hardware CAS.
///
/// ```
/// use gonext::atomic::DoubleWord;
/// use std::sync::atomic::Ordering::{AcqRel, Acquire};
///
/// // A (value, version) pair: readers see both halves of the same update.
/// let cell = DoubleWord::new(10i64, 0u64);
/// let next = cell.fetch_update(AcqRel, Acquire, |(value, version)| Some((value * 2, version + 1)));
/// assert_eq!(next, Ok((10, 0)));
/// assert_eq!(cell.load(Acquire), (20, 1));
/// ```
///
/// Words that are not 8 bytes are rejected at compile time:
///
/// ```compile_fail
/// #[derive(Clone, Copy)]
/// struct Small(u32);
/// unsafe impl gonext::atomic::Word for Small {}
/// let cell = gonext::atomic::DoubleWord::new(Small(1), 2u64);
/// ```
///
/// # Differences from Go
///
/// Go's proposal offers untyped 128-bit values; `DoubleWord` keeps both halves typed, and
/// the [`Word`] bound states which types may travel as raw bits.
pub struct DoubleWord<A: Word, B: Word> {
    bits: AtomicU128,
    _words: PhantomData<(A, B)>,
}

// SAFETY: values of `A` and `B` are copied in and out by value; moving the cell to another
// thread moves those values, which is fine when they are `Send`.
unsafe impl<A: Word + Send, B: Word + Send> Send for DoubleWord<A, B> {}
// SAFETY: a shared cell hands copies of `A` and `B` to every thread that loads it, which is
// sound when they are `Send`; the bits themselves are only accessed atomically.
unsafe impl<A: Word + Send, B: Word + Send> Sync for DoubleWord<A, B> {}

impl<A: Word, B: Word> DoubleWord<A, B> {
    const WORDS_ARE_8_BYTES: () = assert!(
        size_of::<A>() == 8 && size_of::<B>() == 8,
        "DoubleWord<A, B>: A and B must both be exactly 8 bytes (u64-sized plain data)"
    );

    /// A cell holding `(a, b)`.
    pub fn new(a: A, b: B) -> Self {
        let () = Self::WORDS_ARE_8_BYTES;
        DoubleWord { bits: AtomicU128::new(Self::pack((a, b))), _words: PhantomData }
    }

    fn pack((a, b): (A, B)) -> u128 {
        (u128::from(to_bits(b)) << 64) | u128::from(to_bits(a))
    }

    fn unpack(bits: u128) -> (A, B) {
        // SAFETY: every value in the cell came from `pack` of a valid (A, B), so the low half
        // holds the bits of a valid `A`...
        let a = unsafe { from_bits(bits as u64) };
        // SAFETY: ...and the high half those of a valid `B`.
        let b = unsafe { from_bits((bits >> 64) as u64) };
        (a, b)
    }

    /// Both words, from the same update.
    pub fn load(&self, order: Ordering) -> (A, B) {
        Self::unpack(self.bits.load(order))
    }

    /// Replaces both words.
    pub fn store(&self, pair: (A, B), order: Ordering) {
        self.bits.store(Self::pack(pair), order);
    }

    /// Replaces both words and returns the previous pair.
    pub fn swap(&self, pair: (A, B), order: Ordering) -> (A, B) {
        Self::unpack(self.bits.swap(Self::pack(pair), order))
    }

    /// Stores `new` if the cell holds `current` bit for bit; returns the previous pair on
    /// success and the actual pair on failure.
    ///
    /// # Panics
    ///
    /// Panics if `failure` is `Release` or `AcqRel`, as std's atomics do.
    pub fn compare_exchange(
        &self,
        current: (A, B),
        new: (A, B),
        success: Ordering,
        failure: Ordering,
    ) -> Result<(A, B), (A, B)> {
        self.bits
            .compare_exchange(Self::pack(current), Self::pack(new), success, failure)
            .map(Self::unpack)
            .map_err(Self::unpack)
    }

    /// Applies `f` until its result is stored without interference, like
    /// [`AtomicU64::fetch_update`](std::sync::atomic::AtomicU64::fetch_update); returns the
    /// previous pair, or `Err` with the current pair if `f` returned `None`.
    pub fn fetch_update(
        &self,
        set_order: Ordering,
        fetch_order: Ordering,
        mut f: impl FnMut((A, B)) -> Option<(A, B)>,
    ) -> Result<(A, B), (A, B)> {
        self.bits
            .fetch_update(set_order, fetch_order, |bits| f(Self::unpack(bits)).map(Self::pack))
            .map(Self::unpack)
            .map_err(Self::unpack)
    }
}

/// The 8 bytes of `word`. Only called on the words of a `DoubleWord`, whose constructor
/// checked that they are 8 bytes.
fn to_bits<W: Word>(word: W) -> u64 {
    // SAFETY: `W` is 8 bytes (checked by `DoubleWord::WORDS_ARE_8_BYTES`) without padding
    // (`Word`'s contract), so all 8 bytes read are initialized.
    unsafe { transmute_copy::<W, u64>(&word) }
}

/// The word whose bytes are `bits`.
///
/// # Safety
///
/// `bits` must come from [`to_bits`] of a valid `W`.
unsafe fn from_bits<W: Word>(bits: u64) -> W {
    // SAFETY: the caller passes the bytes of a valid `W`, which `Word` says may be copied.
    unsafe { transmute_copy::<u64, W>(&bits) }
}

impl<A: Word + fmt::Debug, B: Word + fmt::Debug> fmt::Debug for DoubleWord<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DoubleWord").field(&self.load(Ordering::Relaxed)).finish()
    }
}
