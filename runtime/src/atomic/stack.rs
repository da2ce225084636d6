//! A Treiber stack whose nodes are recycled through a freelist: the textbook place where ABA
//! corrupts a plain pointer CAS, written once against [`TaggedCas`].

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use super::{AtomicTagged, CacheLine, TaggedCas};
use crate::sync_shim::UnsafeCell;
use crate::sync_shim::atomic::AtomicPtr;
use crate::sync_shim::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// A node of a [`TreiberStack`]; opaque, it only appears in the stack's cell type parameter.
pub struct StackNode<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    /// Atomic because a thread holding a stale view of the list may still read it while the
    /// node's new owner rewrites it; that read is then rejected by the generation.
    next: AtomicPtr<StackNode<T>>,
}

impl<T> StackNode<T> {
    /// Runs `f` on the node's value slot, whether filled or not.
    fn with_value<R>(node: NonNull<Self>, f: impl FnOnce(*mut T) -> R) -> R {
        // SAFETY: nodes stay allocated until their stack drops, so `node` is valid to borrow;
        // only the atomic `next` is shared, the slot is reached through a raw pointer.
        unsafe { node.as_ref() }.value.with_mut(|slot| f(slot.cast()))
    }
}

impl<T> fmt::Debug for StackNode<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackNode").finish_non_exhaustive()
    }
}

/// A lock-free LIFO stack with a node freelist, generic over the tagged cell `C`.
///
/// Popped nodes go to a freelist and are reused by later pushes, so steady push/pop traffic
/// allocates nothing. Reuse is exactly what makes a plain-pointer CAS suffer ABA; the
/// generation in `C` (an [`AtomicTagged`] by default) makes a stale CAS fail instead. Nodes
/// are freed only when the stack is dropped, so a stale reader never touches freed memory.
///
/// The most recently popped node waits in a one-node spare slot before the freelist: taking
/// or leaving it is an unconditional swap of a plain pointer, which cannot suffer ABA, and
/// spares a push/pop pair two of its four double-width CASes.
///
/// ```
/// use gonext::atomic::{MutexTagged, TreiberStack};
/// use std::sync::Arc;
///
/// let stack = Arc::new(TreiberStack::new());
/// let workers: Vec<_> = (0..4)
///     .map(|t| {
///         let stack = Arc::clone(&stack);
///         std::thread::spawn(move || (0..100).for_each(|i| stack.push(t * 100 + i)))
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// let mut all: Vec<u32> = std::iter::from_fn(|| stack.pop()).collect();
/// all.sort();
/// assert_eq!(all, (0..400).collect::<Vec<_>>());
///
/// // The same stack on the mutex polyfill:
/// let polyfill = TreiberStack::<&str, MutexTagged<_>>::default();
/// polyfill.push("a");
/// assert_eq!(polyfill.pop(), Some("a"));
/// ```
///
/// Its loom model is `atomic::stack::loom` (over [`MutexTagged`](super::MutexTagged)); the
/// ABA it prevents is replayed step by step in `tests/atomic.rs`. For a stack that gives
/// memory back after a burst, see [`HazardStack`](super::HazardStack).
pub struct TreiberStack<T, C: TaggedCas<StackNode<T>> = AtomicTagged<StackNode<T>>> {
    top: CacheLine<C>,
    free: CacheLine<C>,
    /// An empty node owned by the slot; whoever swaps it out owns it.
    spare: CacheLine<AtomicPtr<StackNode<T>>>,
    _owns: PhantomData<T>,
}

/// Exponential spinning after a failed CAS: under contention, retrying at once mostly fails
/// again and steals the cache line from the thread that is about to succeed.
struct Backoff(u32);

impl Backoff {
    const MAX_STEP: u32 = 6;

    fn spin(&mut self) {
        (0..1u32 << self.0).for_each(|_| crate::sync_shim::spin_loop());
        self.0 = (self.0 + 1).min(Self::MAX_STEP);
    }
}

// SAFETY: the stack owns its values like a `Mutex<Vec<T>>`: moving it moves the values.
unsafe impl<T: Send, C: TaggedCas<StackNode<T>>> Send for TreiberStack<T, C> {}
// SAFETY: a value pushed on one thread may be popped on another, which needs `T: Send`; no
// `&T` is ever handed out, so `T: Sync` is not needed. Nodes are shared only through `C`.
unsafe impl<T: Send, C: TaggedCas<StackNode<T>>> Sync for TreiberStack<T, C> {}

impl<T> TreiberStack<T> {
    /// An empty stack on the hardware double-width CAS.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T, C: TaggedCas<StackNode<T>>> Default for TreiberStack<T, C> {
    fn default() -> Self {
        TreiberStack {
            top: CacheLine(C::new(None)),
            free: CacheLine(C::new(None)),
            spare: CacheLine(AtomicPtr::default()),
            _owns: PhantomData,
        }
    }
}

impl<T, C: TaggedCas<StackNode<T>>> TreiberStack<T, C> {
    /// Pushes `value` on top, reusing a freed node when there is one.
    pub fn push(&self, value: T) {
        let spare = NonNull::new(self.spare.swap(ptr::null_mut(), Acquire));
        let node = spare.or_else(|| pop_node(&*self.free)).unwrap_or_else(|| {
            let fresh = Box::new(StackNode {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                next: AtomicPtr::default(),
            });
            NonNull::from(Box::leak(fresh))
        });
        // SAFETY: the node was just allocated, swapped out of the spare slot or taken off the
        // freelist by a successful CAS, so this thread owns its value slot, which is empty (the
        // popper's read of it is ordered before by the Release/Acquire pairs on `spare` and
        // `free`).
        StackNode::with_value(node, |slot| unsafe { slot.write(value) });
        push_node(&*self.top, node);
    }

    /// Pops the top value, or `None` when the stack is empty.
    pub fn pop(&self) -> Option<T> {
        let node = pop_node(&*self.top)?;
        // SAFETY: the successful CAS in `pop_node` made this thread the node's only owner, and
        // a node on the stack always holds an initialized value (written before it was pushed,
        // ordered by the Release/Acquire pair on `top`).
        let value = StackNode::with_value(node, |slot| unsafe { slot.read() });
        if let Some(evicted) = NonNull::new(self.spare.swap(node.as_ptr(), AcqRel)) {
            push_node(&*self.free, evicted);
        }
        Some(value)
    }

    /// Whether the stack was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.top.load(Acquire).ptr.is_none()
    }
}

/// Takes the head node off `list`.
fn pop_node<T, C: TaggedCas<StackNode<T>>>(list: &C) -> Option<NonNull<StackNode<T>>> {
    let mut head = list.load(Acquire);
    let mut backoff = Backoff(0);
    loop {
        let node = head.ptr?;
        // SAFETY: nodes are freed only when the stack drops, so `node` is live memory even if
        // another thread took it meanwhile; `next` is atomic, and a stale value is rejected by
        // the CAS because the head's generation has moved on.
        let next = unsafe { node.as_ref() }.next.load(Relaxed);
        match list.compare_exchange(head, NonNull::new(next), Acquire, Acquire) {
            Ok(_) => return Some(node),
            Err(actual) => head = actual,
        }
        backoff.spin();
    }
}

/// Puts `node`, owned by the caller, on top of `list`.
fn push_node<T, C: TaggedCas<StackNode<T>>>(list: &C, node: NonNull<StackNode<T>>) {
    let mut head = list.load(Relaxed);
    let mut backoff = Backoff(0);
    loop {
        let next = head.ptr.map_or(ptr::null_mut(), NonNull::as_ptr);
        // SAFETY: the caller owns `node`; other threads can only read its `next` atomically.
        unsafe { node.as_ref() }.next.store(next, Relaxed);
        match list.compare_exchange(head, Some(node), Release, Relaxed) {
            Ok(_) => return,
            Err(actual) => head = actual,
        }
        backoff.spin();
    }
}

/// Frees every node of `list`, which `&mut` access to the stack makes exclusive.
fn free_nodes<T, C: TaggedCas<StackNode<T>>>(list: &C) {
    while let Some(node) = pop_node(list) {
        // SAFETY: every node was allocated by `Box` in `push`, and popping it from the last
        // list that holds it makes this its only reference. Its value slot is empty.
        drop(unsafe { Box::from_raw(node.as_ptr()) });
    }
}

impl<T, C: TaggedCas<StackNode<T>>> Drop for TreiberStack<T, C> {
    fn drop(&mut self) {
        /// Frees the nodes even if dropping a value panics.
        struct FreeOnExit<'a, T, C: TaggedCas<StackNode<T>>>(&'a TreiberStack<T, C>);
        impl<T, C: TaggedCas<StackNode<T>>> Drop for FreeOnExit<'_, T, C> {
            fn drop(&mut self) {
                while self.0.pop().is_some() {}
                if let Some(spare) = NonNull::new(self.0.spare.swap(ptr::null_mut(), Relaxed)) {
                    push_node(&*self.0.free, spare);
                }
                free_nodes(&*self.0.free);
            }
        }
        let stack = FreeOnExit(self);
        while let Some(value) = stack.0.pop() {
            drop(value);
        }
    }
}

impl<T, C: TaggedCas<StackNode<T>>> fmt::Debug for TreiberStack<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreiberStack").field("empty", &self.is_empty()).finish_non_exhaustive()
    }
}

#[cfg(all(test, loom))]
mod loom;
