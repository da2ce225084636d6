//! Result slots allocated in blocks: a [`SlotRef`] is an `Arc<Slot<T>>` whose memory is one
//! of up to [`BLOCK_SLOTS`] slots of one allocation.
//!
//! A scope's `go`s on its own thread take their slots from the scope's [`SlotCursor`], which
//! carves them out of a block until it is full, so a loop of `let h = go …` costs one
//! allocation per block rather than one per task. Profiling `scope/10k_with_results` showed
//! the allocator as the costliest step of a `go` with a handle: ten thousand slots alive at
//! once miss the allocator's thread caches, and each slot was allocated by the scope's thread
//! and freed by whichever of the task and the handle let go last.
//!
//! Each slot counts its references (the task's, the handle's, and the scope's while it holds a
//! failure); the last one drops the slot's value in place and releases the slot from its
//! block. A block counts the slots not yet released, the cursor releasing those it never
//! handed out when it moves on; the last release frees the block. Slots of any type whose
//! slot has the same size and alignment share a cursor's block: the block itself never needs
//! to know their type, only its own layout, which its header keeps.
//!
//! The counting is written against `crate::sync_shim` and checked by the loom models in
//! `slots/loom.rs` (references dropped on different threads in every order, the cursor
//! leaving a block, two layouts from one cursor).

use std::alloc::{Layout, handle_alloc_error};
use std::ops::Deref;
use std::ptr::NonNull;

use crate::sync_shim::atomic::{AtomicUsize, Ordering, fence};
use crate::sync_shim::{alloc, dealloc};

use super::handle::Slot;

/// The most slots one block holds.
const BLOCK_SLOTS: usize = 32;
/// A block's slots take at most about this many bytes, so large outputs come in small blocks.
const BLOCK_BYTES: usize = 4096;

/// The start of a block: how many of its slots are still in use (or not yet handed out), and
/// the layout it was allocated with.
struct Header {
    live: AtomicUsize,
    layout: Layout,
}

/// One slot of a block: its reference count, its block, and the slot itself.
struct Inner<T> {
    refs: AtomicUsize,
    block: NonNull<Header>,
    slot: Slot<T>,
}

/// A counted reference to a [`Slot`] in a block; the last one dropped frees the slot.
pub(crate) struct SlotRef<T> {
    inner: NonNull<Inner<T>>,
}

// SAFETY: as `Arc<Slot<T>>`: the slot is shared, so `SlotRef<T>` is `Send` and `Sync` exactly
// when `Slot<T>` is both; the counts and the block's header are atomic.
unsafe impl<T> Send for SlotRef<T> where Slot<T>: Send + Sync {}
// SAFETY: as above.
unsafe impl<T> Sync for SlotRef<T> where Slot<T>: Send + Sync {}

/// Hands out the slots of the current block, one after another. Used by one thread at a time
/// (its owner's `&mut`).
pub(crate) struct SlotCursor {
    block: Option<NonNull<Header>>,
    /// Where the slots start in the block, the slot stride, and their alignment.
    offset: usize,
    stride: usize,
    align: usize,
    next: usize,
    capacity: usize,
}

// SAFETY: a cursor only points to a block whose counts are atomic; it hands out slots to its
// owner, and moving it to another thread moves that ownership.
unsafe impl Send for SlotCursor {}

impl SlotCursor {
    pub(crate) const fn new() -> SlotCursor {
        SlotCursor { block: None, offset: 0, stride: 0, align: 0, next: 0, capacity: 0 }
    }

    /// The next free place for an `Inner<T>`, starting a new block if the current one is full
    /// or holds slots of another layout.
    fn place<T>(&mut self) -> (NonNull<Inner<T>>, NonNull<Header>) {
        let slot = Layout::new::<Inner<T>>();
        let fits = self.block.is_some() && self.stride == slot.size() && self.align == slot.align();
        if !fits || self.next == self.capacity {
            self.retire();
            let capacity = (BLOCK_BYTES / slot.size().max(1)).clamp(1, BLOCK_SLOTS);
            let (header, offset) = new_block(slot, capacity);
            *self = SlotCursor {
                block: Some(header),
                offset,
                stride: slot.size(),
                align: slot.align(),
                next: 0,
                capacity,
            };
        }
        let header = self.block.expect("a block was just made");
        // SAFETY: `next < capacity`, so the place is inside the block allocated for
        // `capacity` slots of this layout, `offset` bytes after its header.
        let place = unsafe { header.byte_add(self.offset + self.next * self.stride) }.cast::<Inner<T>>();
        self.next += 1;
        (place, header)
    }

    /// Leaves the current block, releasing the slots it never handed out.
    fn retire(&mut self) {
        if let Some(header) = self.block.take() {
            // SAFETY: the block lives while a slot of it, handed out or not, is unreleased.
            unsafe { release(header, self.capacity - self.next) };
        }
    }
}

impl Drop for SlotCursor {
    fn drop(&mut self) {
        self.retire();
    }
}

/// Allocates a block for `capacity` slots of layout `slot`, all counted live; its header and
/// where its slots start.
fn new_block(slot: Layout, capacity: usize) -> (NonNull<Header>, usize) {
    let slots = Layout::from_size_align(slot.size() * capacity, slot.align()).expect("a block's size fits");
    let (layout, offset) = Layout::new::<Header>().extend(slots).expect("a block's size fits");
    let layout = layout.pad_to_align();
    // SAFETY: the layout has a nonzero size (it holds the header).
    let Some(header) = NonNull::new(unsafe { alloc(layout) }.cast::<Header>()) else {
        handle_alloc_error(layout)
    };
    // SAFETY: freshly allocated, large and aligned enough for the header.
    unsafe { header.write(Header { live: AtomicUsize::new(capacity), layout }) };
    (header, offset)
}

/// Releases `count` slots of the block at `header`; the last release frees it.
///
/// # Safety
///
/// The block is alive, and the caller owns `count` of its unreleased slots (whose values are
/// already dropped or were never written).
unsafe fn release(header: NonNull<Header>, count: usize) {
    if count == 0 {
        return;
    }
    // SAFETY: the caller's unreleased slots keep the block alive.
    let block = unsafe { header.as_ref() };
    if block.live.fetch_sub(count, Ordering::Release) != count {
        return;
    }
    // Every other release happened before this one frees the memory.
    fence(Ordering::Acquire);
    let layout = block.layout;
    // SAFETY: no slot is left, so nothing refers to the block, allocated with `layout`.
    unsafe { dealloc(header.as_ptr().cast(), layout) };
}

impl<T> SlotRef<T> {
    /// The slot's address, which names its task while the slot lives.
    pub(crate) fn addr(&self) -> usize {
        self.inner.as_ptr().addr()
    }

    /// A slot holding `slot`, from `cursor`'s block, or from a block of its own without one.
    pub(crate) fn new(slot: Slot<T>, cursor: Option<&mut SlotCursor>) -> SlotRef<T> {
        Self::with_refs(slot, cursor, 1)
    }

    /// [`new`](Self::new) and a clone at once, for the task's end and its handle: one count
    /// written instead of an increment.
    pub(crate) fn pair(slot: Slot<T>, cursor: Option<&mut SlotCursor>) -> (SlotRef<T>, SlotRef<T>) {
        let first = Self::with_refs(slot, cursor, 2);
        let second = SlotRef { inner: first.inner };
        (first, second)
    }

    /// A slot with `refs` references, the caller making all but the returned one.
    fn with_refs(slot: Slot<T>, cursor: Option<&mut SlotCursor>, refs: usize) -> SlotRef<T> {
        let (place, block) = match cursor {
            Some(cursor) => cursor.place::<T>(),
            None => {
                let (header, offset) = new_block(Layout::new::<Inner<T>>(), 1);
                // SAFETY: the slot is `offset` bytes after the header of its block.
                (unsafe { header.byte_add(offset) }.cast(), header)
            }
        };
        // SAFETY: `place` is a free place for an `Inner<T>` in `block`, which the cursor
        // hands out once; the caller makes the `refs` references counted here.
        unsafe { place.write(Inner { refs: AtomicUsize::new(refs), block, slot }) };
        SlotRef { inner: place }
    }
}

impl<T> Clone for SlotRef<T> {
    fn clone(&self) -> Self {
        // SAFETY: this reference keeps the slot alive.
        let inner = unsafe { self.inner.as_ref() };
        // As `Arc::clone`: a new reference is made from an existing one, so no ordering is
        // needed.
        inner.refs.fetch_add(1, Ordering::Relaxed);
        SlotRef { inner: self.inner }
    }
}

impl<T> Drop for SlotRef<T> {
    fn drop(&mut self) {
        // SAFETY: this reference keeps the slot alive until the decrement.
        let inner = unsafe { self.inner.as_ref() };
        if inner.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let block = inner.block;
        // SAFETY: the reference kept the slot alive so far; the field's address is computed
        // without reading it.
        let slot = unsafe { &raw mut (*self.inner.as_ptr()).slot };
        // SAFETY: this was the last reference: nobody else reaches the slot, dropped once.
        unsafe { std::ptr::drop_in_place(slot) };
        // SAFETY: the slot is unreleased and its value dropped; this owned it.
        unsafe { release(block, 1) };
    }
}

impl<T> Deref for SlotRef<T> {
    type Target = Slot<T>;

    fn deref(&self) -> &Slot<T> {
        // SAFETY: this reference keeps the slot alive.
        unsafe { &self.inner.as_ref().slot }
    }
}

#[cfg(all(test, loom))]
mod loom;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{SlotCursor, SlotRef};
    use crate::scope::handle::Slot;
    use std::panic::Location;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops, to show each value is dropped once.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn slots_of_mixed_types_from_one_cursor_drop_their_values_once_across_threads() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut cursor = SlotCursor::new();
        let mut counted = Vec::new();
        let mut numbers = Vec::new();
        for i in 0..100u64 {
            let slot = SlotRef::new(Slot::new(Location::caller()), Some(&mut cursor));
            slot.fill(Ok(Counted(Arc::clone(&drops))));
            counted.push(slot);
            let number = SlotRef::<u64>::new(Slot::new(Location::caller()), Some(&mut cursor));
            number.fill(Ok(i));
            numbers.push(number);
        }
        let copies: Vec<_> = counted.iter().map(SlotRef::clone).collect();
        drop(cursor);
        let dropper = std::thread::spawn(move || drop(copies));
        drop(counted);
        dropper.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            100,
            "each filled value is dropped once, by the last reference"
        );
        assert!(numbers.iter().all(|slot| slot.is_done()), "slots of another layout stay intact");
    }

    #[test]
    fn slots_without_a_cursor_get_a_block_each() {
        let first = SlotRef::<String>::new(Slot::new(Location::caller()), None);
        let second = SlotRef::<String>::new(Slot::new(Location::caller()), None);
        first.fill(Ok("first".to_owned()));
        assert!(first.is_done());
        assert!(!second.is_done(), "a slot of its own block is not shared");
    }
}
