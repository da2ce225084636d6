//! The runtime of `async_scope!` and `try_async_scope!`: a future that polls its children
//! itself, so they may borrow from the enclosing async fn and need no spawning, under any
//! executor.
//!
//! Each child has a waker of its own that pushes the child's cell on a lock-free stack and
//! wakes the task awaiting the scope; a poll of the scope then polls the body only if its
//! waker fired, and the woken children only, so a wake costs the same with ten children or ten
//! thousand (as in `FuturesUnordered`). The wakers are cells in chunks owned by the scope's
//! shared state, one per child index, so a child costs one allocation (its boxed future) and
//! its waker none; when the last waker of a scope is gone, its chunks are kept (up to 1 MiB
//! per thread) for the next scopes on that thread. A handle awaited by the scope's own body
//! registers no waker either: its slot records that the body waits, and the child's end tells
//! the scope to poll the body in the same round (see `poll_slot`). Under `limit = N`, children
//! beyond the `N` live ones wait in a queue, unpolled, for one to finish. A child's failure
//! (an `Err` in `try_async_scope!`, or a panic) drops the body and every other child at once:
//! cancellation by drop, as in moro.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, RawWaker, RawWakerVTable, Waker};

use super::handle::Slot;
use super::slots::{SlotCursor, SlotRef};
use super::{AsyncTaskHandle, Canceled, Mode, Options, TaskResult, in_scope, with_enclosing};
use crate::context::{Cancel, Context};
use crate::time::bubble::{PendingNote, Site};

/// A child as the scope polls it: it ends with its error, or with whether the scope's body
/// awaits its handle (and must be polled next).
type ChildFuture<'a, E> = std::pin::Pin<Box<dyn Future<Output = Result<bool, E>> + Send + 'a>>;

/// How many wakers one allocation holds.
const CHUNK: usize = 64;

/// The index the body's waker queues.
const BODY: usize = usize::MAX;

/// The index queued when a `go` on another thread left a child in `AsyncScope::remote`.
const REMOTE: usize = usize::MAX - 1;

/// What the scope and every waker share: the queue of woken cells, the waker of the task
/// awaiting the scope, and the wakers' cells.
struct Shared {
    /// The woken cells, an intrusive lock-free stack through `Cell::next`: a cell is in it at
    /// most once (its `queued` flag), and is pushed again only after the scope took it out.
    woken: AtomicPtr<Cell>,
    /// The scope is being polled: it drains the stack before it returns, so a wake-up need not
    /// wake the task awaiting it.
    polling: AtomicBool,
    parent: Mutex<Option<Waker>>,
    /// Chunks of cells, never moved or freed before the last waker is gone (they live as long
    /// as this). Boxed so that the vector's growth does not move them.
    #[allow(clippy::vec_box)]
    cells: Mutex<Vec<Box<[Cell; CHUNK]>>>,
    body: Cell,
    remote: Cell,
    /// The thread polling the body, as [`thread_token`], or 0. Only that thread stores its
    /// token, and clears it when the poll ends, so a thread that reads its own token is it.
    body_thread: AtomicUsize,
}

/// One child's waker: queues `index` once until the child is polled.
struct Cell {
    shared: *const Shared,
    index: usize,
    queued: AtomicBool,
    /// The next cell down the woken stack.
    next: AtomicPtr<Cell>,
}

// SAFETY: `shared` is only read, and points to a `Shared`, which is `Sync`; the other fields
// are `Sync` themselves.
unsafe impl Sync for Cell {}
// SAFETY: as above; the pointer is never used to mutate.
unsafe impl Send for Cell {}

impl Shared {
    fn lock_parent(&self) -> MutexGuard<'_, Option<Waker>> {
        self.parent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Pushes `cell` (whose `queued` flag this caller set) and wakes the awaiting task if the
    /// stack was empty and the scope is not polling it.
    fn push(&self, cell: &Cell) {
        let cell_ptr = std::ptr::from_ref(cell).cast_mut();
        let mut head = self.woken.load(Ordering::Relaxed);
        loop {
            cell.next.store(head, Ordering::Relaxed);
            match self.woken.compare_exchange_weak(head, cell_ptr, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        // Pairs with the scope's `polling = false` then `woken` check (both `SeqCst`): either it
        // sees this cell, or this sees that it stopped polling.
        if head.is_null() && !self.polling.load(Ordering::SeqCst) {
            let parent = self.lock_parent().clone();
            if let Some(parent) = parent {
                parent.wake();
            }
        }
    }

    /// Takes every woken cell's index, oldest first, into `batch`.
    fn drain(&self, batch: &mut Vec<usize>) {
        let mut cell = self.woken.swap(std::ptr::null_mut(), Ordering::Acquire);
        let start = batch.len();
        while !cell.is_null() {
            // SAFETY: a cell in the stack belongs to this `Shared`'s chunks (or is its body
            // cell), alive as long as it; its `next` was written before the push published it.
            let taken = unsafe { &*cell };
            batch.push(taken.index);
            cell = taken.next.load(Ordering::Relaxed);
        }
        batch[start..].reverse();
    }

    /// Adds a chunk of cells for the next `CHUNK` indices; its first cell.
    fn add_chunk(self: &Arc<Self>) -> *const Cell {
        let mut chunks = self.cells.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let base = chunks.len() * CHUNK;
        let shared = Arc::as_ptr(self);
        let fresh = |i| Cell {
            shared,
            index: base + i,
            queued: AtomicBool::new(false),
            next: AtomicPtr::new(std::ptr::null_mut()),
        };
        // A cell is reached only through a waker or the scope, each holding a count of its
        // `Shared`: a spare chunk's cells, whose `Shared` is gone, are reached by nothing.
        let chunk = match SPARE_CELLS.with(|spare| spare.borrow_mut().pop()) {
            Some(mut chunk) => {
                for (i, cell) in chunk.iter_mut().enumerate() {
                    *cell = fresh(i);
                }
                chunk
            }
            None => Box::new(std::array::from_fn(fresh)),
        };
        chunks.push(chunk);
        chunks[chunks.len() - 1].as_ptr()
    }
}

/// How many chunks of cells a thread keeps for its next scopes: 1 MiB of them.
const SPARE_CHUNKS: usize = (1 << 20) / size_of::<[Cell; CHUNK]>();

thread_local! {
    /// Chunks of cells left by this thread's finished scopes, for the next scopes' children.
    /// Freeing them at once let glibc give the scope's memory back to the kernel at the end of
    /// each big scope (one `brk` shrink) and fault it in again in the next: 341 page faults per
    /// round of ten thousand children, against 0 with the chunks kept.
    ///
    /// Boxed as `Shared::cells` holds them, so a chunk moves between the two without a copy.
    #[allow(clippy::vec_box)]
    static SPARE_CELLS: RefCell<Vec<Box<[Cell; CHUNK]>>> = const { RefCell::new(Vec::new()) };
}

impl Drop for Shared {
    fn drop(&mut self) {
        let cells = std::mem::take(self.cells.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()));
        // During the thread's exit there is nothing to keep them for: they are simply freed.
        let _ = SPARE_CELLS.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let room = SPARE_CHUNKS.saturating_sub(spare.len());
            spare.extend(cells.into_iter().take(room));
        });
    }
}

impl Cell {
    fn wake(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            // SAFETY: a cell is reached only through a waker, which holds a strong count of its
            // `Shared`, or through the scope, which holds one too.
            unsafe { (*self.shared).push(self) };
        }
    }

    /// A waker for this cell that must not be dropped (it holds no count of its own): valid
    /// for as long as the caller holds one.
    ///
    /// # Safety
    ///
    /// The caller keeps a strong count of the cell's `Shared` while the waker is in use.
    unsafe fn borrowed_waker(cell: *const Cell) -> ManuallyDrop<Waker> {
        // SAFETY: `VTABLE` upholds `RawWaker`'s contract for a pointer to a live cell, which
        // the caller's count guarantees; `ManuallyDrop` keeps the count it does not own.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(cell.cast(), &VTABLE)) })
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake_waker, wake_by_ref_waker, drop_waker);

/// Whether `waker` is the body's waker of the scope whose body cell is at `body` (a handle of
/// that scope awaited by it then needs no waker of its own, see `Slot::register_body`), and if
/// so, whether this thread is the one polling that body, on which the scope's children run.
pub(super) fn body_waker(waker: &Waker, body: usize) -> Option<bool> {
    if waker.data().addr() != body || !std::ptr::eq(waker.vtable(), &VTABLE) {
        return None;
    }
    // SAFETY: `waker` is one of the body cell's wakers, valid for this poll (borrowed by a
    // polling scope, or holding a count of `Shared`): the cell is alive.
    let shared = unsafe { (*waker.data().cast::<Cell>()).shared };
    // SAFETY: as above, its `Shared` too.
    let shared = unsafe { &*shared };
    Some(shared.body_thread.load(Ordering::Relaxed) == thread_token())
}

/// # Safety (for all four)
///
/// `data` points to a `Cell` of a live `Shared`, and the waker owns one strong count of it
/// (except the scope's borrowed wakers, which are never dropped or woken by value).
unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: the contract above: the cell is alive.
    let shared = unsafe { (*data.cast::<Cell>()).shared };
    // SAFETY: its `Shared` is alive too (the waker holds a count); the clone owns a new count.
    unsafe { Arc::increment_strong_count(shared) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake_waker(data: *const ()) {
    // SAFETY: the contract of `clone_waker`.
    unsafe { wake_by_ref_waker(data) };
    // SAFETY: the contract of `clone_waker`: the count this waker owns is released after use.
    unsafe { drop_waker(data) };
}

unsafe fn wake_by_ref_waker(data: *const ()) {
    // SAFETY: the contract of `clone_waker`.
    unsafe { (*data.cast::<Cell>()).wake() };
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the contract of `clone_waker`: the cell is alive.
    let shared = unsafe { (*data.cast::<Cell>()).shared };
    // SAFETY: this waker owns one count of `shared`, released here.
    unsafe { Arc::decrement_strong_count(shared) };
}

/// Marks a handle's slot as never filled when its child is dropped unfinished.
struct Abandon<T>(SlotRef<T>);

impl<T> Drop for Abandon<T> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A pointer to a child's waker cell, kept with the child.
struct CellRef(*const Cell);

// SAFETY: the cell is `Sync`, and outlives the scope that holds this.
unsafe impl Send for CellRef {}

struct Child<'a, E> {
    future: ChildFuture<'a, E>,
    site: Site,
    /// Whether its last `Pending` waited only on objects of the caller's bubble.
    durable: bool,
}

/// A child not started yet: beyond the limit.
struct Waiting<'a, E> {
    future: ChildFuture<'a, E>,
    site: Site,
}

/// The place of a child, by index.
enum Place<'a, E> {
    Live(Child<'a, E>),
    /// Free, with the next free index ([`NO_PLACE`] at the end of the list).
    Free(usize),
}

/// The end of the free list.
const NO_PLACE: usize = usize::MAX;

/// The scope's children. Ten thousand of them cost no vector of ten thousand entries: their
/// places come `CHUNK` to an allocation, as their wakers do, the free places are a list through
/// them, and the children started at new indices since the last round are a range. (Vectors
/// of that size, grown by copying and given back to the kernel at the end of every scope, cost
/// `scope/async_10k` a fifth of its time and `scope/async_wake_one_of_10k` a tenth.)
struct Children<'a, E> {
    /// The places by index, `index / CHUNK` then `index % CHUNK`.
    #[allow(clippy::vec_box)]
    places: Vec<Box<[Place<'a, E>; CHUNK]>>,
    /// How many indices were handed out: those below are live or free.
    used: usize,
    /// The first free place.
    free: usize,
    /// Places at and after this index were new when their children started since the last
    /// round, and are polled first by the next one; `reused` holds the others.
    fresh_from: usize,
    reused: Vec<usize>,
    waiting: VecDeque<Waiting<'a, E>>,
    live: usize,
    /// Live children whose last poll did not block durably (not polled yet, or waiting on
    /// something foreign): while there is one, the scope's wait is not durable either.
    not_durable: usize,
    /// A durable child's note, repeated on polls that skip the children.
    durable_note: Option<PendingNote>,
    /// The chunks of `Shared::cells` made so far, read without their lock.
    chunks: Vec<CellRef>,
    /// Where the handles' slots come from.
    cursor: SlotCursor,
}

/// The children of one `async_scope!`, polled by [`AsyncScope::run`].
///
/// The children are not behind a lock: they are touched only by a poll of `run` (`running`
/// admits one at a time), outside its poll of the body, and during that poll by a `go` on the
/// same thread (`Shared::body_thread`). Children cannot reach their scope, and a `go` on another
/// thread (a scoped thread of the body's) leaves its child in `remote` for the next round.
/// The uncontended lock this replaces cost four atomic read-modify-writes per child (in `go`
/// and in each round), about 20 ns of the ~300 of `scope/async_wake_one_of_10k`.
pub struct AsyncScope<'a, M: Mode = Infallible> {
    ctx: Context,
    cancel: Mutex<Option<Cancel>>,
    children: std::cell::UnsafeCell<Children<'a, M::Error>>,
    /// Held by a poll of `run`, and by `abandon_all`: two at once would share `children`.
    running: AtomicBool,
    /// Children started by a `go` on another thread than the body's, queued by `REMOTE`.
    remote: Mutex<Vec<Waiting<'a, M::Error>>>,
    limit: Option<usize>,
    site: Site,
    /// Last: the children's wakers point into it, and children are dropped before it.
    shared: Arc<Shared>,
}

// SAFETY: every field but `children` is `Sync`; `children` is `Send` (see below) and reached
// by one thread at a time, as `AsyncScope` says: by the poll of `run` holding `running`, or by
// the thread that poll marked in `Shared::body_thread` while it polls the body.
unsafe impl<M: Mode> Sync for AsyncScope<'_, M> {}

/// Fails to compile if `Children` stops being `Send`, which the `Sync` above relies on.
#[expect(dead_code, reason = "a check at compile time, never called")]
fn children_are_send<'a, E: 'a>(children: Children<'a, E>) -> impl Send + 'a {
    children
}

/// A number that identifies the calling thread among the live ones: the address of a
/// thread-local.
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|token| std::ptr::from_ref(token).addr())
}

/// Holds `AsyncScope::running` until dropped.
struct Running<'s>(&'s AtomicBool);

impl<'s> Running<'s> {
    #[track_caller]
    fn acquire(flag: &'s AtomicBool) -> Running<'s> {
        assert!(
            !flag.swap(true, Ordering::Acquire),
            "an async scope's run was polled from two places at once"
        );
        Running(flag)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<M: Mode> fmt::Debug for AsyncScope<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncScope").field("context", &self.ctx).finish_non_exhaustive()
    }
}

impl<'a, M: Mode + 'a> Default for AsyncScope<'a, M>
where
    M::Error: 'a,
{
    #[track_caller]
    fn default() -> Self {
        Self::new(Options::default())
    }
}

impl<'a, M: Mode + 'a> AsyncScope<'a, M>
where
    M::Error: 'a,
{
    /// A scope with no children, whose context derives from `options.context`, else from the
    /// scope or task this runs in, else `background()`.
    #[track_caller]
    pub fn new(mut options: Options) -> Self {
        let (parent, deadline) = options.parent();
        let (ctx, cancel) = match deadline {
            Some(deadline) => parent.with_deadline(deadline),
            None => parent.with_cancel(),
        };
        let shared = Arc::new_cyclic(|shared| Shared {
            woken: AtomicPtr::new(std::ptr::null_mut()),
            polling: AtomicBool::new(false),
            parent: Mutex::new(None),
            cells: Mutex::default(),
            body: Cell {
                shared: shared.as_ptr(),
                index: BODY,
                queued: AtomicBool::new(false),
                next: AtomicPtr::new(std::ptr::null_mut()),
            },
            remote: Cell {
                shared: shared.as_ptr(),
                index: REMOTE,
                queued: AtomicBool::new(false),
                next: AtomicPtr::new(std::ptr::null_mut()),
            },
            body_thread: AtomicUsize::new(0),
        });
        AsyncScope {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            children: std::cell::UnsafeCell::new(Children {
                places: Vec::new(),
                used: 0,
                free: NO_PLACE,
                fresh_from: 0,
                reused: Vec::new(),
                waiting: VecDeque::new(),
                live: 0,
                not_durable: 0,
                durable_note: None,
                chunks: Vec::new(),
                cursor: SlotCursor::new(),
            }),
            running: AtomicBool::new(false),
            remote: Mutex::default(),
            limit: options.limit,
            site: Location::caller(),
            shared,
        }
    }

    /// Runs `f` with the children if this thread is polling the body, else with `None`.
    fn with_children<R>(&self, f: impl FnOnce(Option<&mut Children<'a, M::Error>>) -> R) -> R {
        if self.shared.body_thread.load(Ordering::Relaxed) != thread_token() {
            return f(None);
        }
        // SAFETY: only this thread stores its token, while it polls the body inside a poll of
        // `run` holding `running`, which touches the children only outside that poll; so the
        // children are this thread's until it clears the token. `f` (this module's) does not
        // reenter `go`.
        f(Some(unsafe { &mut *self.children.get() }))
    }

    /// Adds `future`: to the children if this thread polls the body, else to `remote`.
    fn add_here_or_remote(
        &self,
        children: Option<&mut Children<'a, M::Error>>,
        future: ChildFuture<'a, M::Error>,
        site: Site,
    ) {
        match children {
            Some(children) => self.add(children, future, site),
            None => {
                self.remote
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(Waiting { future, site });
                self.shared.remote.wake();
            }
        }
    }

    /// The scope's context: cancelled by [`cancel`](Self::cancel), by its deadline, with the
    /// context it derives from, or when a child fails.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The address of the body's waker cell, which identifies the scope's body waker.
    fn body_address(&self) -> usize {
        std::ptr::from_ref(&self.shared.body).addr()
    }

    /// Cancels the scope's context; `go` starts no new child afterwards.
    pub fn cancel(&self) {
        drop(self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    }

    /// Adds `child`, polled from now on by the scope's `run`; its output goes to the handle.
    #[track_caller]
    pub fn go<T: TaskResult<M> + 'a>(
        &self,
        child: impl Future<Output = T> + Send + 'a,
    ) -> AsyncTaskHandle<T> {
        let site = Location::caller();
        if self.ctx.is_done() {
            return AsyncTaskHandle::new(SlotRef::new(Slot::canceled(site), None), 0);
        }
        self.with_children(|mut children| {
            let cursor = children.as_deref_mut().map(|children| &mut children.cursor);
            let (slot, child_slot) = SlotRef::pair(Slot::new(site), cursor);
            let abandon = Abandon(child_slot);
            let future = async move {
                let abandon = abandon;
                let value = child.await;
                if value.is_failure() {
                    return value.into_error().map_or(Ok(false), Err);
                }
                Ok(abandon.0.fill(Ok(value)))
            };
            self.add_here_or_remote(children, Box::pin(future), site);
            AsyncTaskHandle::new(slot, self.body_address())
        })
    }

    /// Adds `child` without a handle: `go` used as a statement.
    #[doc(hidden)]
    #[track_caller]
    pub fn spawn<T: TaskResult<M> + 'a>(&self, child: impl Future<Output = T> + Send + 'a) {
        let site = Location::caller();
        if self.ctx.is_done() {
            return;
        }
        let future = async move {
            let value = child.await;
            value.into_error().map_or(Ok(false), Err)
        };
        self.with_children(|children| self.add_here_or_remote(children, Box::pin(future), site));
    }

    fn add(&self, children: &mut Children<'a, M::Error>, future: ChildFuture<'a, M::Error>, site: Site) {
        if self.limit.is_some_and(|limit| children.live >= limit) {
            children.waiting.push_back(Waiting { future, site });
            return;
        }
        self.start(children, Waiting { future, site });
    }

    /// Makes `child` live at a free index, to be polled by the next round.
    fn start(&self, children: &mut Children<'a, M::Error>, child: Waiting<'a, M::Error>) {
        let live = Place::Live(Child { future: child.future, site: child.site, durable: false });
        let index = children.free;
        if index == NO_PLACE {
            let index = children.used;
            children.used += 1;
            if index / CHUNK == children.chunks.len() {
                children.chunks.push(CellRef(self.shared.add_chunk()));
            }
            if index / CHUNK == children.places.len() {
                children.places.push(Box::new(std::array::from_fn(|_| Place::Free(NO_PLACE))));
            }
            children.places[index / CHUNK][index % CHUNK] = live;
        } else {
            let Place::Free(next) =
                std::mem::replace(&mut children.places[index / CHUNK][index % CHUNK], live)
            else {
                unreachable!("the free list holds free places only")
            };
            children.free = next;
            children.reused.push(index);
        }
        children.live += 1;
        children.not_durable += 1;
    }

    /// Runs `body` and every child until all are done, and returns the body's value. A
    /// child's `Err` (or the body's) drops the body and the other children and comes back at
    /// once; a child's panic drops them too, then resumes.
    pub async fn run<T>(&self, body: impl Future<Output = Result<T, M::Error>>) -> Result<T, M::Error> {
        let mut body = std::pin::pin!(Some(body));
        let mut value: Option<T> = None;
        let silent = PendingNote::capture(|| ()).1;
        let mut body_note = silent;
        let mut batch: Vec<usize> = Vec::new();
        self.shared.body.wake();
        let ended = std::future::poll_fn(|cx| {
            let _running = Running::acquire(&self.running);
            {
                let mut parent = self.shared.lock_parent();
                if !parent.as_ref().is_some_and(|parent| parent.will_wake(cx.waker())) {
                    *parent = Some(cx.waker().clone());
                }
                self.shared.polling.store(true, Ordering::SeqCst);
            }
            let in_bubble = crate::time::bubble::with_current(|current| current.is_some());
            let round = with_enclosing(&self.ctx, || {
                loop {
                    self.shared.drain(&mut batch);
                    let mut body_woken = false;
                    {
                        // SAFETY: this poll holds `running`, and the body is not being polled:
                        // the children are this thread's (see `AsyncScope`) until the block ends.
                        let children = unsafe { &mut *self.children.get() };
                        batch.append(&mut children.reused);
                        let new = children.fresh_from..children.used;
                        children.fresh_from = new.end;
                        if batch.is_empty() && new.is_empty() {
                            // Only the body adds children, and it is not running: none can
                            // appear now, but a wake-up from another thread still can.
                            self.shared.polling.store(false, Ordering::SeqCst);
                            if self.shared.woken.load(Ordering::SeqCst).is_null() {
                                return None;
                            }
                            self.shared.polling.store(true, Ordering::SeqCst);
                            continue;
                        }
                        // Reused places come first: within a round, children start at the
                        // free places before new ones, so this is the order they started in.
                        for index in batch.iter().copied().chain(new) {
                            if index == BODY {
                                body_woken = true;
                            } else if index == REMOTE {
                                self.start_remote(children);
                            } else if let Some(end) =
                                self.poll_child(children, index, in_bubble, silent, &mut body_woken)
                            {
                                return Some(end);
                            }
                        }
                    }
                    batch.clear();
                    if !body_woken {
                        continue;
                    }
                    self.shared.body.queued.store(false, Ordering::Release);
                    let Some(future) = body.as_mut().as_pin_mut() else { continue };
                    // SAFETY: the scope holds a count of `shared` for the whole poll.
                    let waker = unsafe { Cell::borrowed_waker(&raw const self.shared.body) };
                    let mut body_cx = TaskContext::from_waker(&waker);
                    let poll = || catch_unwind(AssertUnwindSafe(|| future.poll(&mut body_cx)));
                    // The body's `go`s on this thread reach the children directly.
                    self.shared.body_thread.store(thread_token(), Ordering::Relaxed);
                    // Outside a bubble nothing reads the notes; the capture is skipped.
                    let (polled, note) =
                        if in_bubble { PendingNote::capture(poll) } else { (poll(), silent) };
                    self.shared.body_thread.store(0, Ordering::Relaxed);
                    match polled {
                        Ok(Poll::Pending) => body_note = note,
                        Ok(Poll::Ready(Ok(output))) => {
                            value = Some(output);
                            body.set(None);
                        }
                        Ok(Poll::Ready(Err(error))) => return Some(End::Failed(error)),
                        Err(payload) => return Some(End::Panicked(payload, None)),
                    }
                }
            });
            if let Some(end) = round {
                return Poll::Ready(end);
            }
            // SAFETY: as in the rounds: this poll holds `running`, the body is not being polled.
            let children = unsafe { &*self.children.get() };
            if body.is_none() && children.live == 0 {
                return Poll::Ready(End::Done);
            }
            if !in_bubble {
                return Poll::Pending;
            }
            // Repeat what the skipped children and body noted: the scope waits durably only
            // if each of them does.
            if body.is_some() {
                body_note.replay(self.site, "async_scope! body");
            }
            if children.not_durable > 0 {
                silent.replay(self.site, "async_scope! (a child waiting on something foreign)");
            } else if let Some(note) = children.durable_note {
                note.replay(self.site, "async_scope!");
            }
            Poll::Pending
        })
        .await;
        match ended {
            End::Done => Ok(value.expect("the body completed")),
            End::Failed(error) => {
                self.cancel();
                body.set(None);
                self.abandon_all();
                Err(error)
            }
            End::Panicked(payload, site) => {
                self.cancel();
                body.set(None);
                self.abandon_all();
                if let Some(site) = site {
                    eprintln!(
                        "gonext: the future started by `go` at {site} panicked; resuming the panic in its async_scope"
                    );
                }
                if payload.is::<Canceled>() && !in_scope() {
                    let canceled = payload.downcast::<Canceled>().expect("checked");
                    panic!("an async scope's body awaited a child that never ran or was dropped: {canceled}");
                }
                panic::resume_unwind(payload)
            }
        }
    }

    /// Polls the live child at `index` once; what ends the scope, if it failed. Children never
    /// reach their scope (they cannot borrow it), so polling them under its lock is safe.
    /// `silent` is the note of a poll that noted nothing, kept when not `in_bubble`; sets
    /// `body_woken` when the child ended and the body awaits its handle.
    fn poll_child(
        &self,
        children: &mut Children<'a, M::Error>,
        index: usize,
        in_bubble: bool,
        silent: PendingNote,
        body_woken: &mut bool,
    ) -> Option<End<M::Error>> {
        // SAFETY: every queued index has a cell in a chunk made before it (`start`), which lives
        // as long as `shared`. The flag is cleared even if the child is gone (a late wake-up of
        // a finished child), keeping the flag's meaning simple: set while in the stack.
        let cell = unsafe { children.chunks[index / CHUNK].0.add(index % CHUNK) };
        // SAFETY: as above.
        unsafe { (*cell).queued.store(false, Ordering::Release) };
        let Some(Place::Live(child)) =
            children.places.get_mut(index / CHUNK).map(|chunk| &mut chunk[index % CHUNK])
        else {
            return None;
        };
        // SAFETY: the scope holds a count of `shared` for the whole poll.
        let waker = unsafe { Cell::borrowed_waker(cell) };
        let mut cx = TaskContext::from_waker(&waker);
        let mut poll = || catch_unwind(AssertUnwindSafe(|| child.future.as_mut().poll(&mut cx)));
        // Outside a bubble nothing reads the notes; the capture is skipped.
        let (polled, note) = if in_bubble { PendingNote::capture(poll) } else { (poll(), silent) };
        let was_durable = child.durable;
        let site = child.site;
        match polled {
            Ok(Poll::Pending) => {
                let durable = note.is_durable();
                child.durable = durable;
                match (was_durable, durable) {
                    (false, true) => children.not_durable -= 1,
                    (true, false) => children.not_durable += 1,
                    _ => {}
                }
                if durable {
                    children.durable_note = Some(note);
                }
                return None;
            }
            Ok(Poll::Ready(Err(error))) => return Some(End::Failed(error)),
            Err(payload) if !payload.is::<Canceled>() => return Some(End::Panicked(payload, Some(site))),
            Ok(Poll::Ready(Ok(body_awaits))) => *body_woken |= body_awaits,
            // A child that ended by awaiting a dropped sibling's handle ends cancelled: its
            // own handle says so when the child is dropped below, and the body may await it.
            Err(_) => *body_woken = true,
        }
        if !was_durable {
            children.not_durable -= 1;
        }
        children.places[index / CHUNK][index % CHUNK] = Place::Free(children.free);
        children.free = index;
        children.live -= 1;
        if let Some(next) = children.waiting.pop_front() {
            self.start(children, next);
        }
        None
    }

    /// Starts the children a `go` on another thread left in `remote`.
    fn start_remote(&self, children: &mut Children<'a, M::Error>) {
        // Cleared before the take: a `go` after it queues `REMOTE` again.
        self.shared.remote.queued.store(false, Ordering::Release);
        let arrived =
            std::mem::take(&mut *self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for child in arrived {
            self.add(children, child.future, child.site);
        }
    }

    /// Drops every child; their handles then report cancellation.
    fn abandon_all(&self) {
        let running = Running::acquire(&self.running);
        // SAFETY: `running` is held and nothing polls the body (see `AsyncScope`).
        let children = unsafe { &mut *self.children.get() };
        let places = std::mem::take(&mut children.places);
        let waiting = std::mem::take(&mut children.waiting);
        let remote =
            std::mem::take(&mut *self.remote.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        children.used = 0;
        children.free = NO_PLACE;
        children.fresh_from = 0;
        children.reused.clear();
        children.live = 0;
        children.not_durable = 0;
        drop(running);
        drop(places);
        drop(waiting);
        drop(remote);
    }
}

/// How a scope's run ended.
enum End<E> {
    Done,
    Failed(E),
    Panicked(Box<dyn Any + Send>, Option<Site>),
}

impl AsyncScope<'_, Infallible> {
    /// [`run`](Self::run) for a body that cannot fail: `async_scope!`.
    pub async fn run_infallible<T>(&self, body: impl Future<Output = T>) -> T {
        match self.run(async { Ok(body.await) }).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AsyncScope;
    use std::convert::Infallible;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    #[test]
    fn a_run_polled_while_another_run_of_its_scope_is_polled_panics() {
        let scope = AsyncScope::<Infallible>::default();
        let scope = &scope;
        let second = futures::executor::block_on(scope.run_infallible(async {
            std::thread::scope(|threads| {
                let second = threads.spawn(|| {
                    catch_unwind(AssertUnwindSafe(|| {
                        futures::executor::block_on(scope.run_infallible(async {}));
                    }))
                });
                second.join().expect("the panic is caught in the thread")
            })
        }));
        let payload = second.expect_err("two runs at once share the children");
        let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("polled from two places at once"), "{message}");
    }
}
