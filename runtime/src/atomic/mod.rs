//! Double-width compare-and-swap: ABA-safe tagged pointers and typed word pairs.
//!
//! ```
//! use gonext::atomic::{DoubleWord, TreiberStack};
//! use std::sync::atomic::Ordering::{AcqRel, Acquire};
//!
//! let pair = DoubleWord::new(1u64, 10u64); // Go's atomic.Uint64Pair: one 16-byte CAS
//! assert_eq!(pair.compare_exchange((1, 10), (2, 20), AcqRel, Acquire), Ok((1, 10)));
//! assert_eq!(pair.compare_exchange((1, 10), (3, 30), AcqRel, Acquire), Err((2, 20)));
//!
//! let stack = TreiberStack::new(); // lock-free, recycles nodes: safe from ABA by generations
//! std::thread::scope(|s| {
//!     for i in 0..4 {
//!         let stack = &stack;
//!         s.spawn(move || stack.push(i));
//!     }
//! });
//! let mut popped: Vec<i32> = std::iter::from_fn(|| stack.pop()).collect();
//! popped.sort();
//! assert_eq!(popped, [0, 1, 2, 3]);
//! ```
//!
//! This mirrors Go's proposal for atomic vector operations (#61236), accepted as
//! `sync/atomic.Uint64Pair`: two words updated together by one CAS (a lock table where the
//! platform has no 16-byte CAS). [`DoubleWord<u64, u64>`](DoubleWord) is `Uint64Pair`
//! (`load`/`store`/`swap`/`compare_exchange` for `Load`/`Store`/`Swap`/`CompareAndSwap`).
//! For a pointer and a generation counter gonext adds the polyfills the proposal discussed,
//! behind one trait so that code and benchmarks can swap them:
//!
//! | type | how | lock-free | generation |
//! |---|---|---|---|
//! | [`AtomicTagged`] | one 16-byte CAS (`cmpxchg16b`, detected at run time on x86_64; `casp` on aarch64) through portable-atomic | where the hardware has it ([`AtomicTagged::is_lock_free`]) | 64 bits, never wraps in practice |
//! | [`MutexTagged`] | a `std::sync::Mutex` around the pair | no | 64 bits |
//! | [`PackedTagged`] | the generation in the pointer's low alignment bits, one word CAS | yes | `BITS` bits, wraps after `2^BITS` updates |
//!
//! [`TaggedCas`] is the shared interface and [`TreiberStack`] a lock-free stack with a node
//! freelist written against it. [`HazardStack`] has the same API and gives popped nodes back
//! to the allocator, protected by hazard pointers instead of generations. [`DoubleWord`] is
//! the proposal's typed pair for any two 8-byte plain-data words.
//!
//! Both stacks are checked by loom models over every interleaving of small scenarios:
//! `TreiberStack` over [`MutexTagged`] (loom has no 128-bit atomics, so the model reaches the
//! algorithm through [`TaggedCas`]) in `atomic::stack::loom`, `HazardStack` in
//! `atomic::hazard::loom`; the README's "How gonext is tested" says how to run them.
//!
//! # When ABA is real
//!
//! A CAS on a bare pointer succeeds whenever the pointer *value* matches. If a node can be
//! removed and a node at the same address put back between a thread's load and its CAS — a
//! freelist that recycles nodes, an allocator that reuses the address — the CAS succeeds on a
//! stale view and links in a node that is no longer where the thread thinks (a lost or
//! duplicated node). The generation makes every successful update distinct, so the stale CAS
//! fails. A plain [`AtomicPtr`](std::sync::atomic::AtomicPtr) is enough when nodes are never
//! recycled while a reader may hold them: append-only structures, or memory reclamation by
//! epochs ([crossbeam-epoch](https://docs.rs/crossbeam-epoch)) or hazard pointers
//! ([haphazard](https://docs.rs/haphazard)), which also solve the use-after-free that tags
//! alone do not: [`TreiberStack`] never frees a node before it is dropped, for that reason,
//! and [`HazardStack`] frees nodes only once no hazard pointer names them.
//!
//! # Differences from Go
//!
//! Go's `Uint64Pair` holds two untyped `uint64`s; [`DoubleWord`] types each half. Go's
//! garbage collector already prevents address reuse while a goroutine holds a pointer, so Go
//! code meets ABA only with indices and manual freelists. In Rust, memory is reused as soon
//! as it is freed, so tags matter more; gonext exposes the generation explicitly in
//! [`Tagged`] rather than hiding it inside a pointer type.

mod double_word;
mod hazard;
mod mutex;
mod packed;
mod stack;
mod tagged;

pub use double_word::{DoubleWord, Word};
pub use hazard::HazardStack;
pub use mutex::MutexTagged;
pub use packed::PackedTagged;
pub use stack::{StackNode, TreiberStack};
pub use tagged::{AtomicTagged, Tagged, TaggedCas};

/// A value alone on its cache line (and the next, which some CPUs prefetch in pairs), so that
/// threads contending on it do not also invalidate its neighbours.
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
