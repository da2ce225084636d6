//! `gonext::atomic`: generations, a scripted ABA reproduction, and stress tests of the stacks.

use gonext::atomic::{
    AtomicTagged, DoubleWord, HazardStack, MutexTagged, PackedTagged, StackNode, Tagged, TaggedCas,
    TreiberStack,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicUsize};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;

/// Counts the live heap bytes allocated inside [`tracked`] sections, so that the stack's
/// node recycling can be checked for leaks while other tests allocate concurrently.
struct CountingAlloc;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn is_tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

/// Runs `f` with its allocations counted in [`LIVE_BYTES`].
fn tracked<R>(f: impl FnOnce() -> R) -> R {
    struct Untrack;
    impl Drop for Untrack {
        fn drop(&mut self) {
            TRACKED.with(|t| t.set(false));
        }
    }
    TRACKED.with(|t| t.set(true));
    let _untrack = Untrack;
    f()
}

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_tracked() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_tracked() {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Tests that count allocations run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A pointer CAS that ignores generations: the plain `AtomicPtr` stack that ABA corrupts.
struct PlainPtr<T>(AtomicPtr<T>);

impl<T> TaggedCas<T> for PlainPtr<T> {
    fn new(ptr: Option<NonNull<T>>) -> Self {
        PlainPtr(AtomicPtr::new(ptr.map_or(ptr::null_mut(), NonNull::as_ptr)))
    }

    fn load(&self, order: std::sync::atomic::Ordering) -> Tagged<T> {
        Tagged { ptr: NonNull::new(self.0.load(order)), tag: 0 }
    }

    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        success: std::sync::atomic::Ordering,
        failure: std::sync::atomic::Ordering,
    ) -> Result<Tagged<T>, Tagged<T>> {
        let raw = |p: Option<NonNull<T>>| p.map_or(ptr::null_mut(), NonNull::as_ptr);
        let wrap = |p: *mut T| Tagged { ptr: NonNull::new(p), tag: 0 };
        self.0.compare_exchange(raw(current.ptr), raw(new), success, failure).map(wrap).map_err(wrap)
    }
}

fn bumps_generation_and_rejects_stale_views<C: TaggedCas<u64>>() {
    let (mut a, mut b) = (1u64, 2u64);
    let (pa, pb) = (NonNull::from(&mut a), NonNull::from(&mut b));
    let cell = C::new(Some(pa));
    let first = cell.load(Acquire);
    assert_eq!(first, Tagged { ptr: Some(pa), tag: 0 });
    assert_eq!(cell.compare_exchange(first, Some(pb), AcqRel, Acquire), Ok(first));
    let second = cell.load(Acquire);
    assert_eq!(second, Tagged { ptr: Some(pb), tag: 1 });
    assert_eq!(cell.swap(Some(pa), AcqRel), second);
    assert_eq!(cell.compare_exchange(first, None, AcqRel, Acquire), Err(Tagged { ptr: Some(pa), tag: 2 }));
    cell.store(None, AcqRel);
    assert_eq!(cell.load(Acquire), Tagged { ptr: None, tag: 3 });
}

#[test]
fn every_cell_bumps_the_generation_and_rejects_stale_views() {
    bumps_generation_and_rejects_stale_views::<AtomicTagged<u64>>();
    bumps_generation_and_rejects_stale_views::<MutexTagged<u64>>();
    bumps_generation_and_rejects_stale_views::<PackedTagged<u64, 3>>();
}

#[test]
fn packed_generation_wraps_after_two_to_the_bits_updates() {
    let mut x = 0u64;
    let cell = PackedTagged::<u64, 3>::new(Some(NonNull::from(&mut x)));
    let start = cell.load(Acquire);
    for _ in 0..8 {
        let seen = cell.load(Acquire);
        cell.compare_exchange(seen, seen.ptr, AcqRel, Acquire).unwrap();
    }
    assert_eq!(cell.load(Acquire), start, "8 updates of a 3-bit generation come back to the start");
}

#[test]
#[cfg(target_arch = "x86_64")]
fn hardware_cas_is_used_when_the_cpu_has_cmpxchg16b() {
    assert_eq!(AtomicTagged::<u8>::is_lock_free(), std::is_x86_feature_detected!("cmpxchg16b"));
}

#[test]
#[should_panic(expected = "there is no such thing as a release failure ordering")]
fn mutex_polyfill_rejects_a_release_failure_ordering_like_std() {
    let cell = MutexTagged::<u8>::new(None);
    let _ = cell.compare_exchange(cell.load(Acquire), None, AcqRel, AcqRel);
}

#[test]
#[should_panic(expected = "is not aligned for T")]
fn packed_cell_rejects_a_misaligned_pointer() {
    let words = [0u64; 2];
    let misaligned = NonNull::new(words.as_ptr().cast::<u8>().wrapping_add(1).cast::<u64>().cast_mut());
    let _ = PackedTagged::<u64, 3>::new(misaligned);
}

#[test]
fn double_word_halves_are_updated_together() {
    let cell = Arc::new(DoubleWord::new(0u64, 0i64));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                for _ in 0..10_000 {
                    cell.fetch_update(AcqRel, Acquire, |(a, b)| Some((a + 1, b - 1))).unwrap();
                    let (a, b) = cell.load(Acquire);
                    assert_eq!(a as i64, -b, "torn read");
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(cell.load(Acquire), (40_000, -40_000));
}

#[test]
fn double_word_compares_bit_for_bit() {
    let cell = DoubleWord::new(f64::NAN, 0.0f64);
    assert_eq!(
        cell.compare_exchange((f64::NAN, -0.0), (1.0, 1.0), AcqRel, Acquire).map_err(|(_, b)| b.to_bits()),
        Err(0)
    );
    assert!(cell.compare_exchange((f64::NAN, 0.0), (1.0, 2.0), AcqRel, Acquire).is_ok());
    assert_eq!(cell.swap((3.0, 4.0), AcqRel), (1.0, 2.0));
    assert_eq!(cell.fetch_update(AcqRel, Acquire, |_| None), Err((3.0, 4.0)));
    cell.store((5.0, 6.0), Relaxed);
    assert_eq!(cell.load(Acquire), (5.0, 6.0));
}

/// A node of the scripted stack; never freed during the script, so a stale pointer is safe.
struct Node {
    name: char,
    next: AtomicPtr<Node>,
}

/// Plays the textbook ABA interleaving on a stack `X → Y → Z` held in a `C`:
/// thread A reads head `X` and next `Y`, then stalls; thread B pops `X`, pops `Y` (which it
/// now considers freed), pushes `X` back (`X → Z`), and makes `extra` more no-op updates of
/// the head; then A's CAS `X → Y` runs. Returns the stack as A leaves it.
fn scripted_aba<C: TaggedCas<Node> + 'static>(extra: usize) -> Vec<char> {
    let nodes: Vec<NonNull<Node>> = ['X', 'Y', 'Z']
        .into_iter()
        .map(|name| NonNull::from(Box::leak(Box::new(Node { name, next: AtomicPtr::default() }))))
        .collect();
    let (x, y, z) = (nodes[0], nodes[1], nodes[2]);
    let node = |n: NonNull<Node>| {
        // SAFETY: the nodes are leaked for the whole script and freed only at its end.
        unsafe { n.as_ref() }
    };
    node(x).next.store(y.as_ptr(), SeqCst);
    node(y).next.store(z.as_ptr(), SeqCst);
    let head = Arc::new(C::new(Some(x)));
    let (read_done, b_done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));

    let victim = {
        let (head, read_done, b_done) = (Arc::clone(&head), Arc::clone(&read_done), Arc::clone(&b_done));
        thread::spawn(move || {
            let seen = head.load(Acquire);
            let top = seen.ptr.expect("stack starts non-empty");
            // SAFETY: see `node` above.
            let next = NonNull::new(unsafe { top.as_ref() }.next.load(SeqCst));
            read_done.wait();
            b_done.wait();
            head.compare_exchange(seen, next, AcqRel, Acquire).is_ok()
        })
    };

    read_done.wait();
    let pop = |expected: NonNull<Node>| {
        let seen = head.load(Acquire);
        assert_eq!(seen.ptr, Some(expected));
        let next = NonNull::new(node(expected).next.load(SeqCst));
        head.compare_exchange(seen, next, AcqRel, Acquire).expect("B runs alone");
    };
    pop(x);
    pop(y);
    node(x).next.store(z.as_ptr(), SeqCst);
    let seen = head.load(Acquire);
    head.compare_exchange(seen, Some(x), AcqRel, Acquire).expect("B runs alone");
    for _ in 0..extra {
        let seen = head.load(Acquire);
        head.compare_exchange(seen, seen.ptr, AcqRel, Acquire).expect("B runs alone");
    }
    b_done.wait();
    victim.join().unwrap();

    let mut names = Vec::new();
    let mut cursor = head.load(Acquire).ptr;
    while let Some(n) = cursor {
        names.push(node(n).name);
        cursor = NonNull::new(node(n).next.load(SeqCst));
    }
    for n in nodes {
        // SAFETY: allocated above by `Box`, no longer referenced by anyone.
        drop(unsafe { Box::from_raw(n.as_ptr()) });
    }
    names
}

#[test]
fn aba_corrupts_a_plain_pointer_stack() {
    // A's stale CAS succeeds: the popped (freed) Y is back on the stack and X is lost.
    assert_eq!(scripted_aba::<PlainPtr<Node>>(0), ['Y', 'Z']);
}

#[test]
fn aba_is_rejected_by_tagged_cells() {
    assert_eq!(scripted_aba::<AtomicTagged<Node>>(0), ['X', 'Z']);
    assert_eq!(scripted_aba::<MutexTagged<Node>>(0), ['X', 'Z']);
    assert_eq!(scripted_aba::<PackedTagged<Node, 2>>(0), ['X', 'Z']);
}

#[test]
fn packed_cell_suffers_aba_once_its_generation_wraps() {
    // B's three updates plus one more make four: a 2-bit generation is back where A saw it.
    assert_eq!(scripted_aba::<PackedTagged<Node, 2>>(1), ['Y', 'Z']);
    assert_eq!(scripted_aba::<AtomicTagged<Node>>(1), ['X', 'Z']);
}

/// A value that counts its drops.
struct Counted {
    id: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

fn stress<C: TaggedCas<StackNode<Counted>> + 'static>() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 5_000;
    let _serial = serial();
    let live_before = LIVE_BYTES.load(SeqCst);
    let drops = Arc::new(AtomicUsize::new(0));
    let stack = Arc::new(TreiberStack::<Counted, C>::default());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stack, drops) = (Arc::clone(&stack), Arc::clone(&drops));
            thread::spawn(move || {
                let mut popped = Vec::new();
                for i in 0..PER_THREAD {
                    tracked(|| stack.push(Counted { id: t * PER_THREAD + i, drops: Arc::clone(&drops) }));
                    if i % 3 != 0 {
                        popped.extend(tracked(|| stack.pop()).map(|c| c.id));
                    }
                }
                popped
            })
        })
        .collect();
    let mut seen: Vec<usize> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let left_in_stack = THREADS * PER_THREAD - seen.len();
    seen.extend((0..left_in_stack / 2).map(|_| tracked(|| stack.pop()).expect("value left on the stack").id));
    let unique: HashSet<usize> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a value was popped twice");
    assert!(seen.iter().all(|&id| id < THREADS * PER_THREAD));
    assert_eq!(drops.load(SeqCst), seen.len(), "popped values are dropped by their popper");
    let stack = Arc::into_inner(stack).expect("workers are done");
    tracked(move || drop(stack));
    assert_eq!(drops.load(SeqCst), THREADS * PER_THREAD, "dropping the stack drops what is left");
    assert_eq!(LIVE_BYTES.load(SeqCst), live_before, "nodes leaked");
}

#[test]
fn stack_under_contention_loses_and_duplicates_nothing() {
    stress::<AtomicTagged<StackNode<Counted>>>();
    stress::<MutexTagged<StackNode<Counted>>>();
    stress::<PackedTagged<StackNode<Counted>, 3>>();
}

/// A value whose drop panics when asked to.
struct Bomb {
    armed: bool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed {
            // Unwind without the panic hook, whose backtrace caches would count as a leak.
            std::panic::resume_unwind(Box::new("boom"));
        }
    }
}

/// Pushes ten `Bomb`s onto `stack` (the one at `armed` panics when dropped), pops one, drops
/// the stack, and checks that the panic reaches the dropper, that every value was dropped
/// once, and that no node leaked.
fn drop_survives_a_panicking_value<S>(
    stack: S,
    push: impl Fn(&S, Bomb),
    pop: impl Fn(&S) -> Option<Bomb>,
    armed: usize,
) {
    let _serial = serial();
    let live_before = LIVE_BYTES.load(SeqCst);
    let drops = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        tracked(|| push(&stack, Bomb { armed: i == armed, drops: Arc::clone(&drops) }));
    }
    drop(tracked(|| pop(&stack)));
    let reached_dropper = tracked(|| catch_unwind(AssertUnwindSafe(move || drop(stack))).is_err());
    assert!(reached_dropper, "the panic reaches the dropper");
    assert_eq!(drops.load(SeqCst), 10, "every value was dropped once");
    assert_eq!(LIVE_BYTES.load(SeqCst), live_before, "nodes leaked");
}

#[test]
fn a_panicking_value_drop_still_drops_the_rest_and_frees_every_node() {
    drop_survives_a_panicking_value(TreiberStack::new(), TreiberStack::push, TreiberStack::pop, 7);
}

#[test]
fn stack_is_lifo_and_reuses_nodes() {
    let _serial = serial();
    let stack = TreiberStack::new();
    (0..3).for_each(|i| stack.push(i));
    assert_eq!([stack.pop(), stack.pop()], [Some(2), Some(1)]);
    let live = LIVE_BYTES.load(SeqCst);
    tracked(|| (10..12).for_each(|i| stack.push(i)));
    assert_eq!(LIVE_BYTES.load(SeqCst), live, "pushes after pops reuse freed nodes");
    assert_eq!([stack.pop(), stack.pop(), stack.pop(), stack.pop()], [Some(11), Some(10), Some(0), None]);
    assert!(stack.is_empty());
}

/// The operations the two stacks share, so that one stress test drives both.
trait Stack<T>: Send + Sync {
    fn push(&self, value: T);
    fn pop(&self) -> Option<T>;
}

impl<T: Send, C: TaggedCas<StackNode<T>>> Stack<T> for TreiberStack<T, C> {
    fn push(&self, value: T) {
        TreiberStack::push(self, value);
    }
    fn pop(&self) -> Option<T> {
        TreiberStack::pop(self)
    }
}

impl<T: Send> Stack<T> for HazardStack<T> {
    fn push(&self, value: T) {
        HazardStack::push(self, value);
    }
    fn pop(&self) -> Option<T> {
        HazardStack::pop(self)
    }
}

/// Pushes `burst` values and pops them all; returns the bytes the stack still holds.
fn bytes_held_after_burst<S: Stack<u64>>(stack: &S, burst: u64) -> isize {
    let before = LIVE_BYTES.load(SeqCst);
    tracked(|| {
        (0..burst).for_each(|i| stack.push(i));
        while stack.pop().is_some() {}
    });
    LIVE_BYTES.load(SeqCst) - before
}

#[test]
fn hazard_stack_gives_a_burst_back_and_a_treiber_stack_keeps_it() {
    let _serial = serial();
    let hazard = HazardStack::new();
    let treiber = TreiberStack::<u64>::new();
    let (kept_by_hazard, kept_by_treiber) =
        (bytes_held_after_burst(&hazard, 10_000), bytes_held_after_burst(&treiber, 10_000));
    assert!(kept_by_treiber >= 10_000 * 16, "the freelist keeps the peak: {kept_by_treiber} bytes");
    // A node of `u64` is 16 bytes; one hazard record (128 bytes, padded to its own cache
    // lines) for this one thread.
    let batch = 64 * 16 + 128;
    assert!(kept_by_hazard <= batch, "at most a retire batch is kept: {kept_by_hazard} bytes");
    let after_second = kept_by_hazard + bytes_held_after_burst(&hazard, 10_000);
    assert!(after_second <= batch, "a second burst does not add to it: {after_second} bytes");
}

#[test]
fn hazard_stack_under_contention_loses_duplicates_and_leaks_nothing() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 20_000;
    let _serial = serial();
    let live_before = LIVE_BYTES.load(SeqCst);
    let drops = Arc::new(AtomicUsize::new(0));
    let stack = Arc::new(HazardStack::new());
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stack, drops, start) = (Arc::clone(&stack), Arc::clone(&drops), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut popped = Vec::new();
                for i in 0..PER_THREAD {
                    tracked(|| stack.push(Counted { id: t * PER_THREAD + i, drops: Arc::clone(&drops) }));
                    if i % 3 != 0 {
                        popped.extend(tracked(|| stack.pop()).map(|c| c.id));
                    }
                }
                popped
            })
        })
        .collect();
    let mut seen: Vec<usize> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    while let Some(counted) = tracked(|| stack.pop()) {
        seen.push(counted.id);
    }
    let unique: HashSet<usize> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a value was popped twice");
    assert_eq!(seen.len(), THREADS * PER_THREAD, "a value was lost");
    assert_eq!(drops.load(SeqCst), seen.len());
    let stack = Arc::into_inner(stack).expect("workers are done");
    tracked(move || drop(stack));
    assert_eq!(LIVE_BYTES.load(SeqCst), live_before, "nodes or hazard records leaked");
}

#[test]
fn hazard_stack_drops_what_is_left_even_if_a_drop_panics() {
    drop_survives_a_panicking_value(HazardStack::new(), HazardStack::push, HazardStack::pop, 3);
}

#[test]
fn hazard_stack_is_lifo() {
    let stack = HazardStack::new();
    assert!(stack.is_empty());
    (0..3).for_each(|i| stack.push(i));
    assert_eq!([stack.pop(), stack.pop(), stack.pop(), stack.pop()], [Some(2), Some(1), Some(0), None]);
    assert!(stack.is_empty());
    assert_eq!(format!("{stack:?}"), "HazardStack { empty: true, .. }");
}
