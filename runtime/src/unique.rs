//! Go's `unique` package: canonical handles for equal values, compared in O(1).
//!
//! [`make`] interns a value: equal values give handles to one shared copy, so comparing two
//! handles is a pointer comparison. The interner holds its entries weakly: once no handle to
//! a value is left, the value is freed and its entry removed.
//!
//! # How a hit avoids shared writes
//!
//! The canonical entries live in a table of 64 shards behind read-write locks, looked up
//! with a seeded fast hash. In front of it every thread keeps a small cache per type (64 sets
//! of 4) of *counters*: a counter belongs to one thread, holds the entry alive and counts the
//! handles that thread made for it. The owning thread counts with plain writes, other
//! threads (a handle sent away and dropped or cloned there) with an atomic in the counter. A
//! hit in the cache and the drop of its handle on the same thread therefore write only
//! memory of that thread: hits on different threads do not contend, not even on the same
//! hot value.
//!
//! The price is that a counter whose handles are all gone still holds its value until its
//! thread lets go of it: when the cache evicts it for another value, when a periodic sweep
//! (every 4096 `make` calls of that type on that thread) finds it unused since the previous
//! sweep, when the thread calls [`live`], or when the thread exits. A thread keeps at most
//! 256 such values per type.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering, fence};
use std::sync::{Arc, RwLock, RwLockWriteGuard, Weak};

const SHARDS: usize = 64;
/// The per-thread cache: `SETS` sets of `WAYS` counters, chosen by the low hash bits.
const SETS: usize = 64;
const WAYS: usize = 4;
/// A thread's cache drops counters unused for this many `make` calls (between one and two
/// such periods).
const SWEEP_EVERY: u32 = 4096;

/// The values [`make`] can intern: comparable, hashable and shareable across threads.
pub trait Internable: Eq + Hash + Send + Sync + 'static {}

impl<T: Eq + Hash + Send + Sync + 'static> Internable for T {}

/// A canonical handle to an interned value: Go's `unique.Handle[T]`.
///
/// ```
/// use gonext::unique;
///
/// let a = unique::make(String::from("us-east-1"));
/// let b = unique::make(String::from("us-east-1"));
/// let c = unique::make(String::from("eu-west-1"));
/// assert_eq!(a, b); // one pointer comparison
/// assert_ne!(a, c);
/// assert_eq!(a.value(), "us-east-1");
/// ```
///
/// # Differences from Go
///
/// Go's handles are values the garbage collector traces; here a handle is counted (by the
/// thread that made it, see the [module docs](self)) and the interned value is freed once no
/// handle is left and the threads that cached it let go of it. A handle is two pointers.
pub struct Handle<T: Internable> {
    /// The canonical entry, kept alive by `counter`.
    entry: NonNull<Entry<T>>,
    /// The counter this handle is counted in; the handle owns one count.
    counter: NonNull<Counter<T>>,
}

// SAFETY: a handle gives `&T` access (needs `T: Sync`, which `Internable` requires) and
// changes its counter only through the atomic `shared` count, except on the counter's owner
// thread, which alone touches the plain fields (see `Counter`). Dropping a handle on any
// thread may free the entry and so drop the `T` there (`T: Send`).
unsafe impl<T: Internable> Send for Handle<T> {}
// SAFETY: `&Handle` only allows reading the value and cloning, which is as above.
unsafe impl<T: Internable> Sync for Handle<T> {}

struct Entry<T: Internable> {
    value: T,
    hash: u64,
    interner: &'static Interner<T>,
}

/// One thread's count of the handles it made for one entry, which it keeps alive.
///
/// The count is `local + shared / 2`. `local` (and `used`) belong to the owner thread: it
/// alone reads or writes them, and only while `shared` has `CACHED`. Everyone else, and the
/// owner once `CACHED` is cleared, counts in `shared`, in steps of 2 (it may go below zero:
/// a handle counted by the owner and dropped elsewhere). `CACHED` says that the owner's
/// cache holds the counter; only the owner clears it. The counter is freed when `shared`
/// reaches 0: not cached and no handle left.
///
/// The owner writes `local` on every hit, while other threads read the entry (often the
/// allocation right before a counter) on theirs: 64 bytes of padding on each side keep
/// every cache line the counter's fields touch inside the counter, without paying for an
/// aligned allocation.
#[repr(C)]
struct Counter<T: Internable> {
    _before: [u8; 64],
    entry: Arc<Entry<T>>,
    /// The owner thread (see [`thread_id`]), or 0 for a counter no cache holds.
    owner: u64,
    local: Cell<isize>,
    /// Hit since the cache's last sweep.
    used: Cell<bool>,
    shared: AtomicIsize,
    _after: [u8; 64],
}

const CACHED: isize = 1;

impl<T: Internable> Counter<T> {
    fn create(entry: Arc<Entry<T>>, owner: u64) -> NonNull<Counter<T>> {
        let (local, shared) = if owner == 0 { (0, 2) } else { (1, CACHED) };
        let counter = Counter {
            _before: [0; 64],
            entry,
            owner,
            local: Cell::new(local),
            used: Cell::new(true),
            shared: AtomicIsize::new(shared),
            _after: [0; 64],
        };
        NonNull::from(Box::leak(Box::new(counter)))
    }

    /// The handle count, as the owner sees it.
    fn idle(&self) -> bool {
        // Acquire: pairs with the Release of other threads' drops, so their uses of the
        // value happened before the owner lets the counter go.
        self.local.get() + (self.shared.load(Ordering::Acquire) >> 1) == 0
    }

    /// Takes the counter out of its owner's cache: moves the local count into `shared` and
    /// clears `CACHED`, freeing the counter if no handle is left.
    ///
    /// # Safety
    ///
    /// Called by the owner thread, on a counter its cache holds, which it then forgets.
    unsafe fn uncache(counter: NonNull<Counter<T>>) {
        // SAFETY: the cache's `CACHED` keeps the counter alive until the `fetch_add`.
        let this = unsafe { counter.as_ref() };
        let delta = 2 * this.local.replace(0) - CACHED;
        if this.shared.fetch_add(delta, Ordering::AcqRel) + delta == 0 {
            // SAFETY: no handle and no cache refers to the counter any more.
            drop(unsafe { Box::from_raw(counter.as_ptr()) });
        }
    }
}

/// The entries whose values share a hash: nearly always one, kept inline (no allocation).
struct Bucket<T: Internable> {
    first: Weak<Entry<T>>,
    rest: Vec<Weak<Entry<T>>>,
}

impl<T: Internable> Default for Bucket<T> {
    fn default() -> Self {
        Bucket { first: Weak::new(), rest: Vec::new() }
    }
}

impl<T: Internable> Bucket<T> {
    fn iter(&self) -> impl Iterator<Item = &Weak<Entry<T>>> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    fn push(&mut self, entry: Weak<Entry<T>>) {
        if self.first.strong_count() == 0 {
            self.first = entry;
        } else {
            self.rest.push(entry);
        }
    }

    /// Forgets the dead entries; returns whether none is left.
    fn forget_dead(&mut self) -> bool {
        self.rest.retain(|weak| weak.strong_count() > 0);
        if self.first.strong_count() == 0 {
            self.first = self.rest.pop().unwrap_or_default();
        }
        self.first.strong_count() == 0
    }
}

/// Keys that are already hashes (value hashes, `TypeId`s) need no second hashing.
type PrehashedMap<K, V> = crate::hash::FastMap<K, V>;

struct Interner<T: Internable> {
    seed: u64,
    shards: Vec<RwLock<PrehashedMap<u64, Bucket<T>>>>,
}

/// Interners by type, leaked on first use: one per interned type for the whole process.
static INTERNERS: RwLock<Option<PrehashedMap<TypeId, &'static (dyn Any + Send + Sync)>>> = RwLock::new(None);

fn shared_interner<T: Internable>() -> &'static Interner<T> {
    let id = TypeId::of::<T>();
    let found = INTERNERS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .and_then(|all| all.get(&id).copied());
    let any = found.unwrap_or_else(|| {
        let mut all = INTERNERS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *all.get_or_insert_with(PrehashedMap::default).entry(id).or_insert_with(|| {
            let shards = (0..SHARDS).map(|_| RwLock::new(PrehashedMap::default())).collect();
            Box::leak(Box::new(Interner::<T> { seed: RandomState::new().hash_one(id), shards }))
        })
    });
    any.downcast_ref().expect("interners are registered under their own type")
}

impl<T: Internable> Interner<T> {
    fn hash(&self, value: &T) -> u64 {
        let mut hasher = crate::hash::seeded(self.seed);
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> &RwLock<PrehashedMap<u64, Bucket<T>>> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, PrehashedMap<u64, Bucket<T>>> {
        self.shard(hash).write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn find(bucket: Option<&Bucket<T>>, value: &T) -> Option<Arc<Entry<T>>> {
        bucket?.iter().filter_map(Weak::upgrade).find(|entry| entry.value == *value)
    }

    /// The canonical entry for `value` (whose hash is `hash`), created if there is none.
    fn entry(&'static self, value: T, hash: u64) -> Arc<Entry<T>> {
        let hit = {
            let shard = self.shard(hash).read().unwrap_or_else(|poisoned| poisoned.into_inner());
            Interner::find(shard.get(&hash), &value)
        };
        if let Some(entry) = hit {
            return entry;
        }
        let mut shard = self.write(hash);
        if let Some(entry) = Interner::find(shard.get(&hash), &value) {
            return entry;
        }
        let entry = Arc::new(Entry { value, hash, interner: self });
        shard.entry(hash).or_default().push(Arc::downgrade(&entry));
        entry
    }
}

impl<T: Internable> Drop for Entry<T> {
    fn drop(&mut self) {
        let mut shard = self.interner.write(self.hash);
        if shard.get_mut(&self.hash).is_some_and(Bucket::forget_dead) {
            shard.remove(&self.hash);
        }
    }
}

/// A process-unique id of the current thread (never 0); 0 while thread-locals are gone.
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.try_with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
    .unwrap_or(0)
}

struct Slot<T: Internable> {
    hash: u64,
    counter: Option<NonNull<Counter<T>>>,
}

/// One thread's cache of counters for type `T`.
struct LocalCache<T: Internable> {
    interner: &'static Interner<T>,
    owner: u64,
    slots: Box<[Slot<T>]>,
    calls: u32,
    /// The next way to evict when a set has no idle counter.
    victim: usize,
}

impl<T: Internable> LocalCache<T> {
    fn new(owner: u64) -> LocalCache<T> {
        let slots = (0..SETS * WAYS).map(|_| Slot { hash: 0, counter: None }).collect();
        LocalCache { interner: shared_interner::<T>(), owner, slots, calls: 0, victim: 0 }
    }

    fn make(&mut self, value: T) -> Handle<T> {
        let hash = self.interner.hash(&value);
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(SWEEP_EVERY) {
            self.sweep(false);
        }
        let set = (hash as usize % SETS) * WAYS;
        for slot in &self.slots[set..set + WAYS] {
            if slot.hash == hash
                && let Some(counter) = slot.counter
            {
                // SAFETY: a counter in the cache is alive (its `CACHED` bit is the cache's).
                let found = unsafe { counter.as_ref() };
                if found.entry.value == value {
                    // This thread owns the counter and its cache holds it: plain writes.
                    found.local.set(found.local.get() + 1);
                    found.used.set(true);
                    return Handle { entry: NonNull::from(&*found.entry), counter };
                }
            }
        }
        let entry = self.interner.entry(value, hash);
        let handle = Handle { entry: NonNull::from(&*entry), counter: Counter::create(entry, self.owner) };
        let way = self.pick(set);
        let old = std::mem::replace(&mut self.slots[way], Slot { hash, counter: Some(handle.counter) });
        if let Some(old) = old.counter {
            // SAFETY: this is the owner thread, and the cache no longer holds `old`.
            unsafe { Counter::uncache(old) };
        }
        handle
    }

    /// The way of `set` to fill: an empty one, else an idle counter not used lately, else
    /// any idle one, else one in turn.
    fn pick(&mut self, set: usize) -> usize {
        let ways = set..set + WAYS;
        let counter = |way: &usize| {
            // SAFETY: the counters in the cache are alive.
            self.slots[*way].counter.map(|c| unsafe { c.as_ref() })
        };
        let idle = |way: &usize| counter(way).is_some_and(Counter::idle);
        let unused = |way: &usize| counter(way).is_some_and(|c| !c.used.get());
        if let Some(way) = ways.clone().find(|way| self.slots[*way].counter.is_none()) {
            return way;
        }
        if let Some(way) = ways.clone().find(|way| idle(way) && unused(way)) {
            return way;
        }
        if let Some(way) = ways.clone().find(idle) {
            return way;
        }
        self.victim = (self.victim + 1) % WAYS;
        set + self.victim
    }

    /// Lets go of idle counters: those unused since the last sweep, or all with `all`.
    fn sweep(&mut self, all: bool) {
        for slot in self.slots.iter_mut() {
            let Some(counter) = slot.counter else { continue };
            // SAFETY: the counters in the cache are alive.
            let this = unsafe { counter.as_ref() };
            if this.idle() && (all || !this.used.get()) {
                slot.counter = None;
                // SAFETY: this is the owner thread, and the cache no longer holds it.
                unsafe { Counter::uncache(counter) };
            } else {
                this.used.set(false);
            }
        }
    }
}

impl<T: Internable> Drop for LocalCache<T> {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut() {
            if let Some(counter) = slot.counter.take() {
                // SAFETY: this is the owner thread (a cache drops on its own thread, when it
                // exits), and the cache no longer holds the counter.
                unsafe { Counter::uncache(counter) };
            }
        }
    }
}

thread_local! {
    /// This thread's caches by type, the most recently used first.
    static CACHES: RefCell<Vec<(TypeId, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's cache for `T`; `None` while the caches are in use (a `make`
/// from `T`'s own `Eq`, `Hash` or `Drop`) or gone (the thread is exiting).
fn with_cache<T: Internable, R>(f: impl FnOnce(&mut LocalCache<T>) -> R) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let id = TypeId::of::<T>();
            let index = match caches.iter().position(|(type_id, _)| *type_id == id) {
                Some(index) => index,
                None => {
                    caches.push((id, Box::new(LocalCache::<T>::new(thread_id()))));
                    caches.len() - 1
                }
            };
            caches.swap(0, index);
            let cache =
                caches[0].1.downcast_mut::<LocalCache<T>>().expect("caches are stored under their type");
            Some(f(cache))
        })
        .ok()
        .flatten()
}

/// The canonical handle for `value`: Go's `unique.Make`. Equal values (by `Eq`) give equal
/// handles for as long as one of them lives.
pub fn make<T: Internable>(value: T) -> Handle<T> {
    let mut value = Some(value);
    if let Some(handle) = with_cache(|cache| cache.make(value.take().expect("the value is taken once"))) {
        return handle;
    }
    // Without this thread's cache: a counter of its own, counted atomically.
    let value = value.expect("the cache did not take the value");
    let interner = shared_interner::<T>();
    let hash = interner.hash(&value);
    let entry = interner.entry(value, hash);
    Handle { entry: NonNull::from(&*entry), counter: Counter::create(entry, 0) }
}

impl<T: Internable> Handle<T> {
    /// The canonical value.
    pub fn value(&self) -> &T {
        self
    }

    fn counter(&self) -> &Counter<T> {
        // SAFETY: the handle owns a count, which keeps its counter alive.
        unsafe { self.counter.as_ref() }
    }

    /// Whether this thread may count in the counter's plain `local` field: it is the owner
    /// and its cache still holds the counter (only the owner clears `CACHED`).
    fn counts_locally(counter: &Counter<T>) -> bool {
        counter.owner != 0
            && counter.owner == thread_id()
            && counter.shared.load(Ordering::Relaxed) & CACHED != 0
    }
}

impl<T: Internable> Clone for Handle<T> {
    fn clone(&self) -> Self {
        let counter = self.counter();
        if Self::counts_locally(counter) {
            counter.local.set(counter.local.get() + 1);
        } else if counter.shared.fetch_add(2, Ordering::Relaxed) > isize::MAX / 2 {
            // As `Arc`: only leaked clones get here, and wrapping would free a live counter.
            std::process::abort();
        }
        Handle { entry: self.entry, counter: self.counter }
    }
}

impl<T: Internable> Drop for Handle<T> {
    fn drop(&mut self) {
        let counter = self.counter();
        if Self::counts_locally(counter) {
            counter.local.set(counter.local.get() - 1);
            return;
        }
        if counter.shared.fetch_sub(2, Ordering::Release) == 2 {
            // The last count of a counter no cache holds: the other drops happened before.
            fence(Ordering::Acquire);
            // SAFETY: no handle and no cache refers to the counter any more.
            drop(unsafe { Box::from_raw(self.counter.as_ptr()) });
        }
    }
}

impl<T: Internable> Deref for Handle<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the handle's counter holds the entry alive.
        unsafe { &self.entry.as_ref().value }
    }
}

impl<T: Internable> PartialEq for Handle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry
    }
}

impl<T: Internable> Eq for Handle<T> {}

impl<T: Internable> Hash for Handle<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entry.hash(state);
    }
}

impl<T: Internable + fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(self.value()).finish()
    }
}

/// The number of live interned values of type `T` (for tests and monitoring).
///
/// The calling thread first lets go of the values only its cache still holds; values held
/// only by other threads' caches count until those threads let go (see the
/// [module docs](self)).
///
/// ```
/// let before = gonext::unique::live::<u128>();
/// let handle = gonext::unique::make(7u128);
/// assert_eq!(gonext::unique::live::<u128>(), before + 1);
/// drop(handle);
/// assert_eq!(gonext::unique::live::<u128>(), before);
/// ```
pub fn live<T: Internable>() -> usize {
    with_cache::<T, _>(|cache| cache.sweep(true));
    shared_interner::<T>()
        .shards
        .iter()
        .map(|shard| {
            let shard = shard.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.values().flat_map(Bucket::iter).filter(|weak| weak.strong_count() > 0).count()
        })
        .sum()
}
