//! A Treiber stack that gives popped nodes back to the allocator, made safe by hazard
//! pointers: the reclamation Go's proposal names as the alternative to double-width CAS.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use super::CacheLine;
use crate::sync_shim::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync_shim::atomic::{AtomicBool, AtomicIsize, AtomicPtr, fence};
use crate::sync_shim::{UnsafeCell, shim_thread_local};

/// Popped nodes are freed in batches once this many wait (and no hazard protects them);
/// under loom after every pop, so that the models reach the reclamation.
const RETIRE_BATCH: isize = if cfg!(loom) { 1 } else { 64 };

struct Node<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    /// The next node on the stack, then on the retired list. Atomic because a popper with a
    /// stale view may read it while the node moves on; its CAS then fails.
    next: AtomicPtr<Node<T>>,
    /// Under loom, freeing writes here and a popper's read of `next` reads here first, so a
    /// node freed while a popper can still reach it is reported as a race.
    #[cfg(loom)]
    reclaimed: UnsafeCell<()>,
}

impl<T> Node<T> {
    fn alloc(value: T) -> NonNull<Node<T>> {
        let node = Box::new(Node {
            value: UnsafeCell::new(MaybeUninit::new(value)),
            next: AtomicPtr::new(ptr::null_mut()),
            #[cfg(loom)]
            reclaimed: UnsafeCell::new(()),
        });
        NonNull::from(Box::leak(node))
    }

    /// Frees a node whose value was taken out (or never pushed).
    ///
    /// # Safety
    ///
    /// `node` came from [`Node::alloc`], no list holds it and no hazard protects it.
    unsafe fn free(node: NonNull<Node<T>>) {
        // SAFETY: the caller owns the node alone.
        #[cfg(loom)]
        unsafe { node.as_ref() }.reclaimed.with_mut(|_| ());
        // SAFETY: allocated by `Box` in `alloc`; the `MaybeUninit` value is not dropped.
        drop(unsafe { Box::from_raw(node.as_ptr()) });
    }
}

/// A slot in which one popping thread publishes the node it is about to read; on a cache
/// line of its own, since its popper writes it on every pop.
#[repr(align(128))]
struct Record {
    hazard: AtomicPtr<()>,
    /// Claimed by a popper.
    active: AtomicBool,
    /// The next record. Records are only ever appended, so a record keeps its position.
    next: AtomicPtr<Record>,
}

impl Record {
    fn try_claim(&self) -> bool {
        !self.active.load(Relaxed) && !self.active.swap(true, Acquire)
    }
}

shim_thread_local! {
    /// The position of the record this thread claimed last: tried first, so that threads
    /// popping concurrently settle on records of their own instead of contending for one.
    static HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A lock-free LIFO stack that frees popped nodes: the same API as
/// [`TreiberStack`](super::TreiberStack), with memory that comes back after a burst.
///
/// [`TreiberStack`](super::TreiberStack) keeps every node it ever allocated until it is
/// dropped: that is what lets a popper with a stale view read a node's link safely, and its
/// generations reject the stale CAS (ABA). This stack frees nodes instead, with *hazard
/// pointers* (Michael, 2004): a popper publishes the top node in a hazard slot and checks that
/// it is still the top before reading its link, and popped nodes are only freed, in batches of
/// 64, once no slot names them. A node that some popper may still read is therefore never
/// freed, so its address cannot be reused while that popper holds it — which is also why a
/// plain pointer CAS is enough here: ABA needs the address to come back.
///
/// After a burst at most about 64 popped nodes stay allocated, plus one hazard slot per thread
/// that ever popped concurrently; a `TreiberStack` keeps the burst's peak. The price is an
/// allocation per push and a fence per pop: see `stack/push_pop_2t` and
/// `stack/burst_then_idle` in `bench/RESULTS.md`.
///
/// ```
/// use gonext::atomic::HazardStack;
/// use std::sync::Arc;
///
/// let stack = Arc::new(HazardStack::new());
/// let workers: Vec<_> = (0..4)
///     .map(|t| {
///         let stack = Arc::clone(&stack);
///         std::thread::spawn(move || {
///             (0..100).for_each(|i| stack.push(t * 100 + i));
///             (0..50).filter_map(|_| stack.pop()).count()
///         })
///     })
///     .collect();
/// let popped: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// let left = std::iter::from_fn(|| stack.pop()).count();
/// assert_eq!(popped + left, 400);
/// assert!(stack.is_empty());
/// ```
///
/// Its loom model is `atomic::hazard::loom` (see the README's "How gonext is tested").
pub struct HazardStack<T> {
    top: CacheLine<AtomicPtr<Node<T>>>,
    records: CacheLine<AtomicPtr<Record>>,
    retired: CacheLine<Retired<T>>,
    _owns: PhantomData<T>,
}

/// Popped nodes waiting to be freed, and about how many.
struct Retired<T> {
    head: AtomicPtr<Node<T>>,
    count: AtomicIsize,
}

// SAFETY: the stack owns its values like a `Mutex<Vec<T>>`: moving it moves the values.
unsafe impl<T: Send> Send for HazardStack<T> {}
// SAFETY: a value pushed on one thread may be popped on another (`T: Send`); no `&T` is
// handed out. Nodes and records are shared only through atomics.
unsafe impl<T: Send> Sync for HazardStack<T> {}

impl<T> HazardStack<T> {
    /// An empty stack.
    pub fn new() -> Self {
        HazardStack {
            top: CacheLine(AtomicPtr::new(ptr::null_mut())),
            records: CacheLine(AtomicPtr::new(ptr::null_mut())),
            retired: CacheLine(Retired { head: AtomicPtr::new(ptr::null_mut()), count: AtomicIsize::new(0) }),
            _owns: PhantomData,
        }
    }

    /// Pushes `value` on top (one allocation).
    pub fn push(&self, value: T) {
        let node = Node::alloc(value);
        push_chain(&self.top, node, node);
    }

    /// Pops the top value, or `None` when the stack is empty.
    pub fn pop(&self) -> Option<T> {
        let record = self.claim_record();
        let node = loop {
            let head = self.top.load(Acquire);
            let Some(node) = NonNull::new(head) else {
                release(record);
                return None;
            };
            // Release, as the store in `release`: this thread's reads of the node it protected
            // before happen before a reclaimer that no longer sees that node here frees it.
            record.hazard.store(head.cast(), Release);
            // Pairs with the fence in `reclaim`: either the reclaimer sees this hazard, or the
            // load below sees that the node left the top (then it is not read).
            fence(SeqCst);
            if self.top.load(Acquire) != head {
                continue;
            }
            // SAFETY: the hazard keeps `node` allocated: it was the top after the hazard was
            // published, so no reclaimer that could free it has scanned the slots yet.
            let node_ref = unsafe { node.as_ref() };
            #[cfg(loom)]
            node_ref.reclaimed.with(|_| ());
            let next = node_ref.next.load(Relaxed);
            if self.top.compare_exchange(head, next, Acquire, Relaxed).is_ok() {
                break node;
            }
        };
        release(record);
        // SAFETY: the CAS took the node off the stack, so this thread alone reads its value,
        // written before the node was pushed (ordered by the Release/Acquire pair on `top`).
        let value = unsafe { node.as_ref() }.value.with_mut(|slot| unsafe { slot.read() });
        // SAFETY: a pushed node's value is initialized (by `Node::alloc`), and read only here.
        let value = unsafe { value.assume_init() };
        self.retire(node);
        Some(value)
    }

    /// Whether the stack was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.top.load(Acquire).is_null()
    }

    /// A free hazard record, claimed: the one at this thread's hinted position if free, else
    /// the first free one, else a new one appended to the list.
    fn claim_record(&self) -> &Record {
        let hint = HINT.try_with(std::cell::Cell::get).unwrap_or(0);
        let (mut link, mut position): (&AtomicPtr<Record>, usize) = (&self.records, 0);
        // SAFETY: records are freed only when the stack drops, and `&self` outlives this.
        while let Some(record) = unsafe { link.load(Acquire).as_ref() } {
            if position == hint {
                if record.try_claim() {
                    return record;
                }
                break;
            }
            (link, position) = (&record.next, position + 1);
        }
        let (mut link, mut position): (&AtomicPtr<Record>, usize) = (&self.records, 0);
        let mut fresh: Option<Box<Record>> = None;
        loop {
            let next = link.load(Acquire);
            // SAFETY: as above.
            if let Some(record) = unsafe { next.as_ref() } {
                if record.try_claim() {
                    let _ = HINT.try_with(|hint| hint.set(position));
                    return record;
                }
                (link, position) = (&record.next, position + 1);
                continue;
            }
            let record = fresh.take().unwrap_or_else(|| {
                Box::new(Record {
                    hazard: AtomicPtr::new(ptr::null_mut()),
                    active: AtomicBool::new(true),
                    next: AtomicPtr::new(ptr::null_mut()),
                })
            });
            let raw = Box::into_raw(record);
            match link.compare_exchange(ptr::null_mut(), raw, Release, Relaxed) {
                Ok(_) => {
                    let _ = HINT.try_with(|hint| hint.set(position));
                    // SAFETY: just published; records live as long as the stack.
                    return unsafe { &*raw };
                }
                // SAFETY: the CAS failed, so `raw` was not published and is still ours.
                Err(_) => fresh = Some(unsafe { Box::from_raw(raw) }),
            }
        }
    }

    /// Queues a popped node for freeing, and frees a batch once enough wait.
    fn retire(&self, node: NonNull<Node<T>>) {
        push_chain(&self.retired.head, node, node);
        if self.retired.count.fetch_add(1, Relaxed) + 1 >= RETIRE_BATCH {
            self.reclaim();
        }
    }

    /// Frees every retired node no hazard names; the others go back to wait.
    fn reclaim(&self) {
        let mut taken = NonNull::new(self.retired.head.swap(ptr::null_mut(), Acquire));
        if taken.is_none() {
            return;
        }
        // Pairs with the fence in `pop`: a popper that still reads one of these nodes
        // published its hazard before this point.
        fence(SeqCst);
        let mut hazards = Vec::new();
        let mut cursor = self.records.load(Acquire);
        // SAFETY: records live as long as the stack.
        while let Some(record) = unsafe { cursor.as_ref() } {
            let hazard = record.hazard.load(Acquire);
            if !hazard.is_null() {
                hazards.push(hazard);
            }
            cursor = record.next.load(Acquire);
        }
        let (mut freed, mut kept): (isize, Option<Chain<T>>) = (0, None);
        while let Some(node) = taken {
            // SAFETY: retired nodes stay allocated until freed here, by the thread that took
            // the list (the swap made it this thread's alone).
            taken = NonNull::new(unsafe { node.as_ref() }.next.load(Relaxed));
            if hazards.contains(&node.as_ptr().cast()) {
                let first = kept.map_or(ptr::null_mut(), |(first, _)| first.as_ptr());
                // SAFETY: as above; the kept chain is this thread's until pushed back.
                unsafe { node.as_ref() }.next.store(first, Relaxed);
                kept = Some((node, kept.map_or(node, |(_, last)| last)));
            } else {
                // SAFETY: the node left the stack and its list, and no hazard names it after
                // the fence, so no popper can reach it any more.
                unsafe { Node::free(node) };
                freed += 1;
            }
        }
        if let Some((first, last)) = kept {
            push_chain(&self.retired.head, first, last);
        }
        self.retired.count.fetch_sub(freed, Relaxed);
    }
}

/// The first and last node of a chain linked through `next`.
type Chain<T> = (NonNull<Node<T>>, NonNull<Node<T>>);

/// Gives up a claimed record.
fn release(record: &Record) {
    record.hazard.store(ptr::null_mut(), Release);
    record.active.store(false, Release);
}

/// Pushes the chain `first ..= last` (owned by the caller) onto `list`.
fn push_chain<T>(list: &AtomicPtr<Node<T>>, first: NonNull<Node<T>>, last: NonNull<Node<T>>) {
    let mut head = list.load(Relaxed);
    loop {
        // SAFETY: the caller owns the chain until the CAS publishes it.
        unsafe { last.as_ref() }.next.store(head, Relaxed);
        match list.compare_exchange(head, first.as_ptr(), Release, Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

impl<T> Default for HazardStack<T> {
    fn default() -> Self {
        HazardStack::new()
    }
}

impl<T> Drop for HazardStack<T> {
    fn drop(&mut self) {
        /// Frees the nodes and records even if dropping a value panics.
        struct FreeOnExit<'a, T>(&'a HazardStack<T>);
        impl<T> Drop for FreeOnExit<'_, T> {
            fn drop(&mut self) {
                while self.0.pop().is_some() {}
                let mut retired = self.0.retired.head.swap(ptr::null_mut(), Relaxed);
                while let Some(node) = NonNull::new(retired) {
                    // SAFETY: `&mut` access to the stack: no popper is left, the node is
                    // retired (its value taken) and reached from this list only.
                    retired = unsafe { node.as_ref() }.next.load(Relaxed);
                    // SAFETY: as above.
                    unsafe { Node::free(node) };
                }
                let mut record = self.0.records.swap(ptr::null_mut(), Relaxed);
                while !record.is_null() {
                    // SAFETY: every record was leaked from a `Box` by `claim_record`, and
                    // no popper is left to use it.
                    let owned = unsafe { Box::from_raw(record) };
                    record = owned.next.load(Relaxed);
                }
            }
        }
        let stack = FreeOnExit(self);
        while let Some(value) = stack.0.pop() {
            drop(value);
        }
    }
}

impl<T> fmt::Debug for HazardStack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HazardStack").field("empty", &self.is_empty()).finish_non_exhaustive()
    }
}

#[cfg(all(test, loom))]
mod loom;
