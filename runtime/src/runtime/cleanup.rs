//! Cleanups: functions run after an object dies, on background workers (Go's
//! `runtime.AddCleanup`).
//!
//! Each cleanup is one allocation, a `Node`: its state (pending, started, stopped), the link
//! of an intrusive list, where it was registered, and the job (the function with its
//! argument). A `Ptr`'s allocation holds the head of its list ([`Cleanups`], one atomic
//! pointer, pushed with a CAS); the [`Cleanup`] handle shares the node through its reference
//! count. When the object dies its whole list is handed to the workers (the `workers`
//! submodule), which run cleanups concurrently so that one that blocks cannot stall the
//! others. Node memory is recycled through a lock-free pool of cache-line blocks, so a worker
//! never frees memory the producer allocated (the slowest path of an allocator) in the
//! common case.
//!
//! The lists, the workers' queue hand-off, `stop` racing a worker and the block pool are
//! checked by the loom models in `runtime::cleanup::loom` (see `crate::sync_shim`).

use std::alloc::Layout;
use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::ptr::{self, NonNull};

use crate::sync_shim::atomic::{AtomicPtr, AtomicU8, AtomicU32, Ordering, fence};
use crate::sync_shim::{self, UnsafeCell};
use crate::{Ptr, weak};

mod workers;

pub use workers::{flush_cleanups, pending_cleanups, set_slow_cleanup_threshold};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// The type-erased start of every `Node`: what the lists, the worker and the handle need.
#[repr(C)]
struct Header {
    /// References: the list the node is in (until a worker is done with it) and each
    /// [`Cleanup`] handle.
    refs: AtomicU32,
    state: AtomicU8,
    /// The flush epoch the node was queued in (see the `workers` module).
    epoch: AtomicU8,
    /// The next node of the list this node is in (its object's list, then the queue).
    next: AtomicPtr<Header>,
    vtable: &'static VTable,
    /// Where `add_cleanup` was called, for reports.
    site: &'static Location<'static>,
}

/// The operations that need the node's concrete type.
struct VTable {
    /// Takes the job out and runs it (`true`) or drops it unrun (`false`).
    finish: unsafe fn(NonNull<Header>, bool),
    /// Drops the node in place and frees it, or returns its block to recycle.
    destroy: unsafe fn(NonNull<Header>) -> Option<NonNull<FreeBlock>>,
}

/// One registered cleanup. Nodes that fit a [`BLOCK`] live in recycled blocks (see
/// [`pool`]); larger ones get their own allocation.
#[repr(C)]
struct Node<F> {
    header: Header,
    /// Touched only by the worker, once (`finish`), or dropped with the node.
    job: UnsafeCell<Option<F>>,
}

impl<F: FnOnce() + Send + 'static> Node<F> {
    const VTABLE: VTable = VTable { finish: Self::finish, destroy: Self::destroy };
    /// Under loom every node has its own allocation, which loom checks is freed exactly
    /// once; the pool has a model of its own.
    const POOLED: bool = !cfg!(loom)
        && Layout::new::<Node<F>>().size() <= BLOCK.size()
        && Layout::new::<Node<F>>().align() <= BLOCK.align();

    /// A new node with `refs` references, all owned by the returned pointer.
    fn create(job: F, refs: u32, site: &'static Location<'static>) -> NonNull<Header> {
        let memory = if Self::POOLED {
            pool::take().cast::<Node<F>>()
        } else {
            let layout = Layout::new::<Node<F>>();
            // SAFETY: `Node<F>` is not zero-sized (its header is not).
            let raw = unsafe { sync_shim::alloc(layout) }.cast::<Node<F>>();
            NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
        };
        let node = Node {
            header: Header {
                refs: AtomicU32::new(refs),
                state: AtomicU8::new(PENDING),
                epoch: AtomicU8::new(0),
                next: AtomicPtr::new(ptr::null_mut()),
                vtable: &Self::VTABLE,
                site,
            },
            job: UnsafeCell::new(Some(job)),
        };
        // SAFETY: `memory` is fresh or recycled memory with `Node<F>`'s size and alignment
        // (a block is at least that, see `POOLED`), owned by no one else.
        unsafe { memory.write(node) };
        // `Node` is `repr(C)` with the header first: the node's address is the header's.
        memory.cast()
    }

    /// # Safety
    ///
    /// `header` is the header of a live `Node<F>` and the caller is the cleanup worker that
    /// took it from the queue, which alone touches the job.
    unsafe fn finish(header: NonNull<Header>, run: bool) {
        // SAFETY: the node is alive (the caller holds the queue's reference).
        let node = unsafe { header.cast::<Node<F>>().as_ref() };
        // SAFETY: only that worker accesses `job`, so this exclusive access does not race.
        let job = node.job.with_mut(|job| unsafe { (*job).take() });
        if let Some(job) = job
            && run
        {
            job();
        }
    }

    /// # Safety
    ///
    /// `header` is the header of a `Node<F>` whose last reference was just given up.
    unsafe fn destroy(header: NonNull<Header>) -> Option<NonNull<FreeBlock>> {
        let node = header.cast::<Node<F>>();
        // SAFETY: no reference is left, so no one else can reach the node: drop it in place
        // (a job left in it, never run, drops with it).
        unsafe { node.drop_in_place() };
        if Self::POOLED {
            return Some(node.cast());
        }
        // SAFETY: a node that is not pooled was allocated by `create` with this layout.
        unsafe { sync_shim::dealloc(node.as_ptr().cast(), Layout::new::<Node<F>>()) };
        None
    }
}

/// Gives up one reference to `node`; the last one destroys it and returns its block.
///
/// # Safety
///
/// The caller owns a reference to `node` and does not use it afterwards.
unsafe fn release(node: NonNull<Header>) -> Option<NonNull<FreeBlock>> {
    // SAFETY: the caller's reference keeps the node alive until the decrement.
    let header = unsafe { node.as_ref() };
    let vtable = header.vtable;
    if header.refs.fetch_sub(1, Ordering::Release) != 1 {
        return None;
    }
    // Pairs with the Release decrements of the other owners: their uses happened before.
    fence(Ordering::Acquire);
    // SAFETY: that was the last reference.
    unsafe { (vtable.destroy)(node) }
}

/// The size of the recycled blocks nodes live in: one cache line, so the worker and the
/// producers never share a line of two different nodes.
const BLOCK: Layout = match Layout::from_size_align(64, 64) {
    Ok(layout) => layout,
    Err(_) => panic!("64 is a power of two"),
};

/// A block in a free list: its link is the only thing written into a free block.
struct FreeBlock {
    next: UnsafeCell<*mut FreeBlock>,
}

impl FreeBlock {
    /// Makes `block` (free, owned by the caller) a link to `next`.
    ///
    /// # Safety
    ///
    /// The caller owns `block`, which is a block of [`BLOCK`]'s layout.
    unsafe fn link(block: NonNull<FreeBlock>, next: *mut FreeBlock) {
        // SAFETY: the block is the caller's and large and aligned enough (see `BLOCK`).
        unsafe { block.write(FreeBlock { next: UnsafeCell::new(next) }) };
    }

    /// The block after `block`.
    ///
    /// # Safety
    ///
    /// The caller owns `block`, which was linked by [`FreeBlock::link`].
    unsafe fn next(block: NonNull<FreeBlock>) -> *mut FreeBlock {
        // SAFETY: as the caller promises; the link was written before the block was handed
        // to the caller.
        unsafe { block.as_ref() }.next.with(|next| unsafe { *next })
    }
}

/// Recycled node blocks, so that the producer's allocation and the worker's free (of memory
/// another thread allocated, the slowest path of most allocators) become a pop and a push.
///
/// Freed blocks go to one global lock-free stack (the worker pushes a whole batch with one
/// CAS); a thread that needs a block takes the stack whole into its own list (a swap, so the
/// stack is never popped concurrently and ABA cannot happen) and pops from that. The stack
/// keeps at most about [`pool::KEEP`] blocks; the rest go back to the allocator. Its model
/// test is `runtime::cleanup::loom::pool_*`.
mod pool {
    use super::{BLOCK, FreeBlock};
    use crate::sync_shim::atomic::{AtomicPtr, AtomicUsize, Ordering};
    use crate::sync_shim::{self, Cell, const_fn, shim_static, shim_thread_local};
    use std::ptr::{self, NonNull};

    /// About how many blocks the global stack keeps (256 KiB); under loom one, so that the
    /// models reach the path that frees.
    pub(super) const KEEP: usize = if cfg!(loom) { 1 } else { 4096 };

    /// The shared stack of free blocks.
    pub(super) struct Pool {
        free: AtomicPtr<FreeBlock>,
        /// Blocks pushed since the stack was last taken (a bound, not an exact count).
        pushed: AtomicUsize,
    }

    shim_static! {
        static POOL: Pool = Pool::new();
    }

    /// This thread's blocks, returned to the global stack when the thread exits.
    pub(super) struct Local(pub(super) Cell<*mut FreeBlock>);

    impl Drop for Local {
        fn drop(&mut self) {
            POOL.give_back(self);
        }
    }

    shim_thread_local! {
        static LOCAL: Local = const { Local(Cell::new(ptr::null_mut())) };
    }

    /// A free block: this thread's, the global stack's, or a new one.
    pub(super) fn take() -> NonNull<u8> {
        match LOCAL.try_with(|local| POOL.take_pooled(local)).ok().flatten() {
            Some(block) => block.cast(),
            None => new_block(),
        }
    }

    /// Gives back the chain `first ..= last` of `count` free blocks.
    pub(super) fn give(first: NonNull<FreeBlock>, last: NonNull<FreeBlock>, count: usize) {
        POOL.give(first, last, count);
    }

    /// Frees the blocks of the chain `first ..= last` after its first `keep`; returns the
    /// last block kept, if any.
    fn free_beyond(
        first: NonNull<FreeBlock>,
        last: NonNull<FreeBlock>,
        keep: usize,
    ) -> Option<NonNull<FreeBlock>> {
        let (mut kept_last, mut position) = (None, 0);
        let mut next = Some(first);
        while let Some(block) = next {
            // SAFETY: the chain's blocks are free and owned by the caller; `next` of `last`
            // is not read.
            next = if block == last { None } else { NonNull::new(unsafe { FreeBlock::next(block) }) };
            if position < keep {
                kept_last = Some(block);
            } else {
                // SAFETY: every block was allocated by `new_block` with `BLOCK`, and this one
                // left the chain.
                unsafe { sync_shim::dealloc(block.as_ptr().cast(), BLOCK) };
            }
            position += 1;
        }
        kept_last
    }

    pub(super) fn new_block() -> NonNull<u8> {
        // SAFETY: `BLOCK` is not zero-sized.
        let raw = unsafe { sync_shim::alloc(BLOCK) };
        NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(BLOCK))
    }

    impl Pool {
        const_fn! {
            pub(super) fn new() -> Pool {
                Pool { free: AtomicPtr::new(ptr::null_mut()), pushed: AtomicUsize::new(0) }
            }
        }

        /// A block from `local`, refilled from the shared stack when empty; `None` when both
        /// are empty.
        pub(super) fn take_pooled(&self, local: &Local) -> Option<NonNull<FreeBlock>> {
            let mut head = local.0.get();
            if head.is_null() {
                head = self.free.swap(ptr::null_mut(), Ordering::Acquire);
                self.pushed.store(0, Ordering::Relaxed);
            }
            let block = NonNull::new(head)?;
            // SAFETY: the block is free and owned by this thread's list (taken by the swap,
            // whose Acquire makes the pushers' links visible).
            local.0.set(unsafe { FreeBlock::next(block) });
            Some(block)
        }

        /// Gives back the chain `first ..= last` of `count` free blocks (linked through
        /// `next`): as many as the stack has room for go onto it, the rest are freed.
        pub(super) fn give(&self, first: NonNull<FreeBlock>, last: NonNull<FreeBlock>, count: usize) {
            let room = KEEP.saturating_sub(self.pushed.load(Ordering::Relaxed));
            let kept_last = if count <= room { Some(last) } else { free_beyond(first, last, room) };
            let Some(kept_last) = kept_last else { return };
            self.pushed.fetch_add(count.min(room), Ordering::Relaxed);
            let mut top = self.free.load(Ordering::Relaxed);
            loop {
                // SAFETY: `kept_last` is free and owned by the caller until the CAS publishes it.
                unsafe { FreeBlock::link(kept_last, top) };
                match self.free.compare_exchange_weak(
                    top,
                    first.as_ptr(),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(current) => top = current,
                }
            }
        }

        /// Returns every block of `local` to the shared stack (one at a time: the `KEEP`
        /// bound frees the excess).
        pub(super) fn give_back(&self, local: &Local) {
            let mut head = local.0.replace(ptr::null_mut());
            while let Some(block) = NonNull::new(head) {
                // SAFETY: the blocks of this list are free and owned by this thread.
                head = unsafe { FreeBlock::next(block) };
                self.give(block, block, 1);
            }
        }
    }
}

/// The cleanups registered on one allocation: the head of an intrusive list of nodes, handed
/// to the worker when the allocation is dropped.
pub(crate) struct Cleanups {
    head: AtomicPtr<Header>,
}

// The list owns `Node<F>`s with `F: Send` whose jobs are touched only by the worker, and
// every other access goes through atomics, so `Cleanups` is `Send` and `Sync` as its
// `AtomicPtr` already makes it; no manual impl is needed.

impl Cleanups {
    pub(crate) fn new() -> Cleanups {
        Cleanups { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Registers `job` on this list and returns its handle.
    fn register(&self, job: impl FnOnce() + Send + 'static, site: &'static Location<'static>) -> Cleanup {
        let node = Node::create(job, 2, site);
        self.push(node);
        Cleanup { node }
    }

    /// Takes the whole list (with its references to the nodes); the object has died.
    fn take(&mut self) -> Option<NonNull<Header>> {
        // `&mut self`: plain loads and stores (loom's atomics have no `get_mut`).
        let head = self.head.load(Ordering::Relaxed);
        self.head.store(ptr::null_mut(), Ordering::Relaxed);
        NonNull::new(head)
    }

    /// Pushes `node` (and the list's reference to it) onto this list.
    fn push(&self, node: NonNull<Header>) {
        // SAFETY: the node is alive (this list now owns a reference to it).
        let link = unsafe { &node.as_ref().next };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            link.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(head, node.as_ptr(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }
}

impl Drop for Cleanups {
    fn drop(&mut self) {
        // `&mut self`: every push happened before (the last `Arc` drop synchronizes with the
        // others), so the list is complete and ours alone.
        if let Some(head) = self.take() {
            workers::queue(head);
        }
    }
}

/// Runs one node's job unless it was stopped (then drops it unrun), contains a panic, and
/// gives the queue's reference back; returns the node's block if that freed it.
fn run(node: NonNull<Header>) -> Option<NonNull<FreeBlock>> {
    // SAFETY: the worker owns the queue's reference to `node`, so it is alive.
    let header = unsafe { node.as_ref() };
    let (vtable, site) = (header.vtable, header.site);
    let start = header.state.compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok();
    // SAFETY: the node is alive, this is the worker that took it, and each node is run once
    // (it is in the queue once).
    let finished = catch_unwind(AssertUnwindSafe(|| unsafe { (vtable.finish)(node, start) }));
    if let Err(payload) = finished {
        let what = if start { "panicked" } else { "panicked when dropped after `stop`" };
        eprintln!(
            "gonext: the cleanup registered at {site} {what} (the other cleanups still run): {}",
            message(&*payload)
        );
    }
    // SAFETY: the worker gives back the queue's reference and does not touch the node again.
    unsafe { release(node) }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string payload>")
}

/// Registers `cleanup(arg)` to run after `ptr`'s object dies (the last strong `Ptr` is
/// dropped): Go's `runtime.AddCleanup`.
///
/// The cleanup never sees the object, so it cannot resurrect it: it gets `arg` instead (a
/// file descriptor, a key to remove from a map). Cleanups run on a small set of background
/// worker threads, never on the thread that drops the object, concurrently and in no
/// particular order: one that blocks does not delay the others (they move to another worker
/// within a few milliseconds), though it holds a worker thread, and one that runs longer than
/// [`set_slow_cleanup_threshold`] is reported on stderr with this call's location. A
/// panicking cleanup is reported the same way and the others still run. [`flush_cleanups`]
/// waits for them, [`pending_cleanups`] counts them.
///
/// ```
/// use gonext::{Ptr, runtime};
/// use std::sync::{Arc, Mutex};
///
/// let closed = Arc::new(Mutex::new(Vec::new()));
/// let resource = Ptr::new("handle");
/// let log = Arc::clone(&closed);
/// runtime::add_cleanup(&resource, move |fd: i32| log.lock().unwrap().push(fd), 7);
/// drop(resource);
/// runtime::flush_cleanups();
/// assert_eq!(*closed.lock().unwrap(), [7]);
/// ```
///
/// # Panics
///
/// If `arg` is a `Ptr` (or weak pointer) to `ptr`'s own allocation: the cleanup would keep
/// the object alive (or see it), exactly what Go forbids too. The message names the caller.
///
/// A `Ptr` to the object captured by the `cleanup` closure itself keeps the object alive
/// just the same (the cleanup then never runs), but cannot be detected: Rust gives no way to
/// look into a closure's captures (scanning its bytes would read uninitialized padding).
/// Capture what the cleanup needs, or pass it as `arg`, never the object.
///
/// # Differences from Go
///
/// Go runs cleanups after a garbage collection finds the object unreachable, at some later
/// time; here they are queued the moment the last strong `Ptr` drops. A stopped cleanup's
/// argument is dropped (unused) on a worker once the object dies. Go runs cleanups on
/// goroutines, which cost nothing while blocked; here each blocked cleanup holds one of at
/// most 64 worker threads, and cleanups beyond that wait for one to return. A panic in a Go
/// cleanup crashes the program; here it is reported and contained.
#[track_caller]
pub fn add_cleanup<T, V: Send + 'static>(
    ptr: &Ptr<T>,
    cleanup: impl FnOnce(V) + Send + 'static,
    arg: V,
) -> Cleanup
where
    T: 'static,
{
    check_arg(ptr, &arg);
    ptr.shared.cleanups.register(move || cleanup(arg), Location::caller())
}

#[track_caller]
fn check_arg<T: 'static, V: 'static>(ptr: &Ptr<T>, arg: &V) {
    let arg: &dyn Any = arg;
    let same = arg.downcast_ref::<Ptr<T>>().is_some_and(|p| Ptr::ptr_eq(p, ptr))
        || arg.downcast_ref::<weak::Pointer<T>>().is_some_and(|w| w.points_to(ptr));
    assert!(
        !same,
        "runtime::add_cleanup at {}: the cleanup's argument is the object itself (a pointer to the same \
         allocation), which would keep it alive forever; pass what the cleanup needs instead",
        Location::caller()
    );
}

/// The handle of a registered cleanup: [`stop`](Self::stop) cancels it.
pub struct Cleanup {
    /// Owns one reference to the node.
    node: NonNull<Header>,
}

// SAFETY: a handle only reads and CASes the node's atomic state and changes its reference
// count; the job (the only non-`Sync` part, `Send` by `add_cleanup`'s bounds) is touched by
// the worker alone. So handles can move to and be shared by any thread.
unsafe impl Send for Cleanup {}
// SAFETY: see `Send`: every access through `&Cleanup` is atomic.
unsafe impl Sync for Cleanup {}

impl Cleanup {
    fn header(&self) -> &Header {
        // SAFETY: the handle owns a reference, so the node is alive.
        unsafe { self.node.as_ref() }
    }

    /// Cancels the cleanup if it has not started; a no-op once it started or ran: Go's
    /// `Cleanup.Stop`. Returns whether this call cancelled it.
    ///
    /// ```
    /// use gonext::{Ptr, runtime};
    ///
    /// let object = Ptr::new(1);
    /// let cleanup = runtime::add_cleanup(&object, |_: ()| panic!("stopped cleanups never run"), ());
    /// assert!(cleanup.stop());
    /// drop(object);
    /// runtime::flush_cleanups();
    /// ```
    pub fn stop(&self) -> bool {
        self.header().state.compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

impl Clone for Cleanup {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc::clone`: this handle's reference keeps the node alive meanwhile.
        if self.header().refs.fetch_add(1, Ordering::Relaxed) > u32::MAX / 2 {
            // As `Arc`: only leaked clones can get here, and wrapping would free a live node.
            std::process::abort();
        }
        Cleanup { node: self.node }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // SAFETY: the handle gives back the reference it owns and is gone afterwards.
        if let Some(block) = unsafe { release(self.node) } {
            pool::give(block, block, 1);
        }
    }
}

impl fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.header().state.load(Ordering::Acquire) {
            PENDING => "pending",
            RUNNING => "started",
            _ => "stopped",
        };
        f.debug_struct("Cleanup")
            .field("state", &state)
            .field("registered_at", &format_args!("{}", self.header().site))
            .finish()
    }
}

#[cfg(all(test, loom))]
mod loom;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::pool::{KEEP, Local, Pool, new_block};
    use super::{BLOCK, FreeBlock};
    use std::cell::Cell;
    use std::ptr::{self, NonNull};

    #[test]
    fn a_large_batch_fills_the_pool_up_to_its_bound_and_frees_the_rest() {
        let pool = Pool::new();
        let blocks: Vec<NonNull<FreeBlock>> = (0..KEEP + 100).map(|_| new_block().cast()).collect();
        for pair in blocks.windows(2) {
            // SAFETY: fresh blocks, owned here.
            unsafe { FreeBlock::link(pair[0], pair[1].as_ptr()) };
        }
        pool.give(blocks[0], blocks[blocks.len() - 1], blocks.len());
        let local = Local(Cell::new(ptr::null_mut()));
        let mut pooled = 0;
        while let Some(block) = pool.take_pooled(&local) {
            pooled += 1;
            // SAFETY: taken from the pool, allocated by `new_block`.
            unsafe { std::alloc::dealloc(block.as_ptr().cast(), BLOCK) };
        }
        assert_eq!(pooled, KEEP, "the pool keeps its bound; the rest went back to the allocator");
    }
}
