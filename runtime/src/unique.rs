//! Go's `unique` package: canonical handles for equal values, compared in O(1).
//!
//! [`make`] interns a value: equal values give handles to one shared copy, so comparing two
//! handles is a pointer comparison. [`make_ref`] does the same from a borrowed value (`&str`
//! for a [`Handle<str>`](Handle)) and copies it only when it is not interned yet; [`get`]
//! only looks up, for input that must not grow the table. The interner holds its entries
//! weakly: once no handle to a value is left, the value is freed and its entry removed.
//!
//! ```
//! use gonext::unique::{self, Handle};
//!
//! let region: Handle<str> = unique::make_ref("eu-west-1"); // copied once, on this miss
//! assert_eq!(region, unique::make_ref("eu-west-1")); // a hit: no allocation
//! assert_eq!(unique::get("eu-west-1"), Some(region.clone()));
//! assert_eq!(unique::get::<str>("mars-north-1"), None); // never inserted
//! assert_eq!(region.to_string(), "eu-west-1");
//! ```
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
//!
//! The counters' protocol (the owner's plain counts, other threads' atomic ones, exactly one
//! free) is checked by the loom models in `unique::loom`.

use std::any::{Any, TypeId};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::mem::offset_of;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockWriteGuard, Weak};

use crate::sync_shim::atomic::{AtomicIsize, Ordering, fence};
use crate::sync_shim::{Cell, shim_thread_local};

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

/// The values [`make_ref`] and [`get`] look up by reference: every `Clone` [`Internable`]
/// type, `str` and slices of `Clone` internable values.
///
/// ```
/// use gonext::unique::{self, Handle};
///
/// let word: Handle<[u8]> = unique::make_ref(&b"ok"[..]);
/// let port: Handle<u16> = unique::make_ref(&8080);
/// assert_eq!((&*word, *port), (&b"ok"[..], 8080));
/// ```
pub trait InternRef: Eq + Hash + Send + Sync + 'static {
    /// How the interner keeps the value: the value itself, or a box for `str` and slices.
    /// Its `Hash` and `Eq` agree with the value's (the contract of `Borrow`).
    type Stored: Internable + Borrow<Self>;

    /// Copies the value into the form the interner keeps; called on a miss only.
    fn to_stored(&self) -> Self::Stored;
}

impl<T: Internable + Clone> InternRef for T {
    type Stored = T;

    fn to_stored(&self) -> T {
        self.clone()
    }
}

impl InternRef for str {
    type Stored = Box<str>;

    fn to_stored(&self) -> Box<str> {
        Box::from(self)
    }
}

impl<T: Internable + Clone> InternRef for [T] {
    type Stored = Box<[T]>;

    fn to_stored(&self) -> Box<[T]> {
        Box::from(self)
    }
}

/// A canonical handle to an interned value: Go's `unique.Handle[T]`.
///
/// Equal handles point to one value, so `==` and `Hash` use the pointer; `Ord`, `Display`
/// and `Debug` are the value's (consistent with `==`, because equal values share a handle).
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
/// assert!(c < a); // by value
/// assert_eq!(format!("{a} {a:?}"), "us-east-1 \"us-east-1\"");
/// ```
///
/// A value may hold handles of its own type, as in Go's `TestNestedHandle`:
///
/// ```
/// use gonext::unique::{self, Handle};
///
/// #[derive(PartialEq, Eq, Hash)]
/// struct Node {
///     name: String,
///     next: Option<Handle<Node>>,
/// }
/// let tail = unique::make(Node { name: "b".into(), next: None });
/// let head = unique::make(Node { name: "a".into(), next: Some(tail.clone()) });
/// assert!(head.next.as_ref() == Some(&tail));
/// ```
///
/// # Differences from Go
///
/// Go's handles are values the garbage collector traces; here a handle is counted (by the
/// thread that made it, see the [module docs](self)) and the interned value is freed once no
/// handle is left and the threads that cached it let go of it. A handle is two pointers
/// (three for `str` and slices), where Go's is one: the value's, so that reading it is one
/// hop, and the counter's, which is what lets hits on different threads write no shared
/// memory. Go has no `Ord` on handles.
pub struct Handle<T: ?Sized> {
    /// The canonical value, kept alive by `counts`.
    value: NonNull<T>,
    /// The counter this handle is counted in; the handle owns one count.
    counts: NonNull<Counts>,
}

// SAFETY: a handle gives `&T` access (needs `T: Sync`) and changes its counter only through
// the atomic `shared` count, except on the counter's owner thread, which alone touches the
// plain fields (see `Counts`). Dropping a handle on any thread may free the entry and so drop
// the stored value there (`T: Send`; the stored form of `str` and slices is a `Box` of
// them). The bounds are auto traits only, so a value type holding handles of itself is
// `Send` and `Sync` by the usual coinductive reasoning instead of overflowing.
unsafe impl<T: ?Sized + Send + Sync> Send for Handle<T> {}
// SAFETY: `&Handle` only allows reading the value and cloning, which is as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Handle<T> {}

struct Entry<S: Internable> {
    value: S,
    hash: u64,
    interner: &'static Interner<S>,
}

/// One thread's count of the handles it made for one entry (see [`Counter`]).
///
/// The count is `local + shared / 2`. `local` (and `used`) belong to the owner thread: it
/// alone reads or writes them, and only while `shared` has `CACHED`. Everyone else, and the
/// owner once `CACHED` is cleared, counts in `shared`, in steps of 2 (it may go below zero:
/// a handle counted by the owner and dropped elsewhere). `CACHED` says that the owner's
/// cache holds the counter; only the owner clears it. The counter is freed (by `free`, which
/// knows its type) when `shared` reaches 0: not cached and no handle left.
struct Counts {
    /// The owner thread (see [`thread_id`]), or 0 for a counter no cache holds.
    owner: u64,
    local: Cell<isize>,
    /// Hit since the cache's last sweep.
    used: Cell<bool>,
    shared: AtomicIsize,
    free: unsafe fn(NonNull<Counts>),
}

/// The allocation behind [`Counts`]: the counts and the entry they keep alive.
///
/// The owner writes `local` on every hit, while other threads read the entry (often the
/// allocation right before a counter) on theirs: 64 bytes of padding on each side keep
/// every cache line the counts touch inside the counter, without paying for an aligned
/// allocation.
#[repr(C)]
struct Counter<S: Internable> {
    _before: [u8; 64],
    counts: Counts,
    entry: Arc<Entry<S>>,
    _after: [u8; 64],
}

const CACHED: isize = 1;

impl<S: Internable> Counter<S> {
    fn create(entry: Arc<Entry<S>>, owner: u64) -> NonNull<Counter<S>> {
        let (local, shared) = if owner == 0 { (0, 2) } else { (1, CACHED) };
        let counts = Counts {
            owner,
            local: Cell::new(local),
            used: Cell::new(true),
            shared: AtomicIsize::new(shared),
            free: Counter::<S>::free,
        };
        let counter = Counter { _before: [0; 64], counts, entry, _after: [0; 64] };
        NonNull::from(Box::leak(Box::new(counter)))
    }

    /// The counts of `counter`, as a pointer that may free the whole counter later.
    fn counts(counter: NonNull<Counter<S>>) -> NonNull<Counts> {
        // SAFETY: `counter` points to a live counter; a field projection of its raw pointer
        // keeps the provenance of the whole allocation, which `free` needs.
        let counts = unsafe { &raw mut (*counter.as_ptr()).counts };
        NonNull::new(counts).expect("a field of a live allocation is not null")
    }

    /// A new handle counted in `counter` (the caller already counted it).
    fn handle<T: ?Sized>(counter: NonNull<Counter<S>>) -> Handle<T>
    where
        S: Borrow<T>,
    {
        // SAFETY: the counter is alive (the caller's count keeps it so).
        let value = unsafe { counter.as_ref() }.entry.value.borrow();
        Handle { value: NonNull::from(value), counts: Counter::counts(counter) }
    }

    /// # Safety
    ///
    /// `counts` came from [`Counter::counts`] of a `Counter<S>` that nothing refers to any
    /// more.
    unsafe fn free(counts: NonNull<Counts>) {
        // SAFETY: `counts` is the `counts` field of a boxed `Counter<S>` with the provenance
        // of the whole box (see `counts`), so stepping back to its start stays inside it.
        let counter = unsafe { counts.byte_sub(offset_of!(Counter<S>, counts)) }.cast::<Counter<S>>();
        // SAFETY: as above, the counter is alive until the drop below.
        unsafe { counter.as_ref() }.counts.destroying();
        // SAFETY: the counter was leaked from a `Box` by `create` and is not used again.
        drop(unsafe { Box::from_raw(counter.as_ptr()) });
    }

    /// Takes the counter out of its owner's cache: moves the local count into `shared` and
    /// clears `CACHED`, freeing the counter if no handle is left. Returns whether it freed.
    ///
    /// # Safety
    ///
    /// Called by the owner thread, on a counter its cache holds, which it then forgets.
    unsafe fn uncache(counter: NonNull<Counter<S>>) -> bool {
        // SAFETY: the cache's `CACHED` keeps the counter alive until the `fetch_add`.
        let counts = unsafe { &counter.as_ref().counts };
        let delta = 2 * counts.local.replace(0) - CACHED;
        if counts.shared.fetch_add(delta, Ordering::AcqRel) + delta != 0 {
            return false;
        }
        counts.destroying();
        // SAFETY: no handle and no cache refers to the counter any more.
        drop(unsafe { Box::from_raw(counter.as_ptr()) });
        true
    }
}

impl Counts {
    /// Marks the counter as being freed. Under loom this writes the owner's fields, so that a
    /// free not ordered after the owner's last use of them is reported as a data race (the
    /// model of `unique` relies on it); otherwise it does nothing.
    #[inline(always)]
    fn destroying(&self) {
        #[cfg(loom)]
        {
            self.local.set(0);
            self.used.set(false);
        }
    }

    /// The handle count, as the owner sees it.
    fn idle(&self) -> bool {
        // Acquire: pairs with the Release of other threads' drops, so their uses of the
        // value happened before the owner lets the counter go.
        self.local.get() + (self.shared.load(Ordering::Acquire) >> 1) == 0
    }

    /// Whether this thread may count in the plain `local` field: it is the owner and its
    /// cache still holds the counter (only the owner clears `CACHED`).
    #[inline]
    fn counts_locally(&self) -> bool {
        self.owner != 0 && self.owner == thread_id() && self.shared.load(Ordering::Relaxed) & CACHED != 0
    }
}

/// The entries whose values share a hash: nearly always one, kept inline (no allocation).
struct Bucket<S: Internable> {
    first: Weak<Entry<S>>,
    rest: Vec<Weak<Entry<S>>>,
}

impl<S: Internable> Default for Bucket<S> {
    fn default() -> Self {
        Bucket { first: Weak::new(), rest: Vec::new() }
    }
}

impl<S: Internable> Bucket<S> {
    fn iter(&self) -> impl Iterator<Item = &Weak<Entry<S>>> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    fn push(&mut self, entry: Weak<Entry<S>>) {
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

    /// The entry equal to `probe`. Entries of the same hash that are not equal are upgraded
    /// to be compared and go to `others`, which the caller drops after releasing the shard:
    /// one of them may hold the last reference, and dropping an entry locks its shard.
    fn find<T: ?Sized + Eq>(&self, probe: &T, others: &mut Vec<Arc<Entry<S>>>) -> Option<Arc<Entry<S>>>
    where
        S: Borrow<T>,
    {
        for entry in self.iter().filter_map(Weak::upgrade) {
            if entry.value.borrow() == probe {
                return Some(entry);
            }
            others.push(entry);
        }
        None
    }
}

/// Keys that are already hashes (value hashes, `TypeId`s) need no second hashing.
type PrehashedMap<K, V> = crate::hash::FastMap<K, V>;

struct Interner<S: Internable> {
    seed: u64,
    shards: Vec<RwLock<PrehashedMap<u64, Bucket<S>>>>,
}

/// Interners by stored type, leaked on first use: one per type for the whole process.
static INTERNERS: RwLock<Option<PrehashedMap<TypeId, &'static (dyn Any + Send + Sync)>>> = RwLock::new(None);

fn shared_interner<S: Internable>() -> &'static Interner<S> {
    let id = TypeId::of::<S>();
    let found = INTERNERS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .and_then(|all| all.get(&id).copied());
    let any = found.unwrap_or_else(|| {
        let mut all = INTERNERS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *all.get_or_insert_with(PrehashedMap::default).entry(id).or_insert_with(|| {
            let shards = (0..SHARDS).map(|_| RwLock::new(PrehashedMap::default())).collect();
            Box::leak(Box::new(Interner::<S> { seed: RandomState::new().hash_one(id), shards }))
        })
    });
    any.downcast_ref().expect("interners are registered under their own type")
}

/// What a lookup starts from: an owned value, or a borrowed one and how to store it.
enum Key<'a, S, T: ?Sized> {
    Owned(S),
    Borrowed(&'a T, fn(&T) -> S),
}

impl<S: Borrow<T>, T: ?Sized> Key<'_, S, T> {
    fn probe(&self) -> &T {
        match self {
            Key::Owned(value) => value.borrow(),
            Key::Borrowed(value, _) => value,
        }
    }

    fn into_stored(self) -> S {
        match self {
            Key::Owned(value) => value,
            Key::Borrowed(value, store) => store(value),
        }
    }
}

impl<S: Internable> Interner<S> {
    #[inline]
    fn hash<T: ?Sized + Hash>(&self, value: &T) -> u64 {
        let mut hasher = crate::hash::seeded(self.seed);
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> &RwLock<PrehashedMap<u64, Bucket<S>>> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, PrehashedMap<u64, Bucket<S>>> {
        self.shard(hash).write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The canonical entry for `probe` (whose hash is `hash`), if there is one.
    fn find<T: ?Sized + Eq>(&self, probe: &T, hash: u64) -> Option<Arc<Entry<S>>>
    where
        S: Borrow<T>,
    {
        // Declared before the guard, so dropped after it (see `Bucket::find`).
        let mut others = Vec::new();
        let shard = self.shard(hash).read().unwrap_or_else(|poisoned| poisoned.into_inner());
        shard.get(&hash)?.find(probe, &mut others)
    }

    /// The canonical entry for `key` (whose hash is `hash`), created if there is none.
    fn entry<T: ?Sized + Eq>(&'static self, key: Key<'_, S, T>, hash: u64) -> Arc<Entry<S>>
    where
        S: Borrow<T>,
    {
        if let Some(entry) = self.find(key.probe(), hash) {
            return entry;
        }
        // Declared before the guard, so dropped after it (see `Bucket::find`).
        let mut others = Vec::new();
        let mut shard = self.write(hash);
        if let Some(entry) = shard.get(&hash).and_then(|bucket| bucket.find(key.probe(), &mut others)) {
            return entry;
        }
        let entry = Arc::new(Entry { value: key.into_stored(), hash, interner: self });
        shard.entry(hash).or_default().push(Arc::downgrade(&entry));
        entry
    }
}

impl<S: Internable> Drop for Entry<S> {
    fn drop(&mut self) {
        let mut shard = self.interner.write(self.hash);
        if shard.get_mut(&self.hash).is_some_and(Bucket::forget_dead) {
            shard.remove(&self.hash);
        }
    }
}

/// A process-unique id of the current thread (never 0); 0 while thread-locals are gone.
#[inline]
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    shim_thread_local! {
        static ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    ID.try_with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
    .unwrap_or(0)
}

/// A cached counter, with its hash and its entry's value: a hit compares through `value`
/// while it loads `counter`, instead of reaching the value through the counter.
struct Slot<S: Internable> {
    hash: u64,
    counter: Option<NonNull<Counter<S>>>,
    /// The stored value of `counter`'s entry, alive while the counter is cached.
    value: *const S,
}

/// One thread's cache of counters for stored type `S`.
struct LocalCache<S: Internable> {
    interner: &'static Interner<S>,
    owner: u64,
    slots: Box<[Slot<S>]>,
    calls: u32,
    /// The next way to evict when a set has no idle counter.
    victim: usize,
}

impl<S: Internable> LocalCache<S> {
    fn new(owner: u64) -> LocalCache<S> {
        let slots =
            (0..SETS * WAYS).map(|_| Slot { hash: 0, counter: None, value: std::ptr::null() }).collect();
        LocalCache { interner: shared_interner::<S>(), owner, slots, calls: 0, victim: 0 }
    }

    /// A hit in this cache, counted, for `probe` with hash `hash`.
    #[inline]
    fn hit<T: ?Sized + Eq>(&mut self, probe: &T, hash: u64) -> Option<Handle<T>>
    where
        S: Borrow<T>,
    {
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(SWEEP_EVERY) {
            self.sweep(false);
        }
        let set = (hash as usize % SETS) * WAYS;
        let (counter, value) = self.slots[set..set + WAYS].iter().find_map(|slot| {
            let counter = slot.counter.filter(|_| slot.hash == hash)?;
            // SAFETY: a cached counter is alive (its `CACHED` bit is the cache's) and keeps
            // its entry, whose value `slot.value` points to, alive.
            let value: &S = unsafe { &*slot.value };
            (value.borrow() == probe).then_some((counter, value))
        })?;
        // SAFETY: as above; this thread owns the counter and its cache holds it, so the
        // plain fields are this thread's to write.
        let counts = unsafe { &counter.as_ref().counts };
        counts.local.set(counts.local.get() + 1);
        counts.used.set(true);
        Some(Handle { value: NonNull::from(value.borrow()), counts: Counter::counts(counter) })
    }

    /// Caches a new counter of `entry` (counting one handle) and returns it.
    fn insert(&mut self, entry: Arc<Entry<S>>) -> NonNull<Counter<S>> {
        let set = (entry.hash as usize % SETS) * WAYS;
        let (hash, value) = (entry.hash, std::ptr::from_ref(&entry.value));
        let counter = Counter::create(entry, self.owner);
        let way = self.pick(set);
        let old = std::mem::replace(&mut self.slots[way], Slot { hash, counter: Some(counter), value });
        if let Some(old) = old.counter {
            // SAFETY: this is the owner thread, and the cache no longer holds `old`.
            unsafe { Counter::uncache(old) };
        }
        counter
    }

    /// The way of `set` to fill: an empty one, else an idle counter not used lately, else
    /// any idle one, else one in turn.
    fn pick(&mut self, set: usize) -> usize {
        let ways = set..set + WAYS;
        let counts = |way: &usize| {
            // SAFETY: the counters in the cache are alive.
            self.slots[*way].counter.map(|c| unsafe { &c.as_ref().counts })
        };
        let idle = |way: &usize| counts(way).is_some_and(Counts::idle);
        let unused = |way: &usize| counts(way).is_some_and(|c| !c.used.get());
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

    /// Lets go of idle counters: those unused since the last sweep, or, with `all`, every
    /// idle one, until none is left — freeing a value drops the handles it holds, which can
    /// make counters idle that this pass already looked at (a chain of nested handles).
    fn sweep(&mut self, all: bool) {
        while self.sweep_once(all) && all {}
    }

    /// One pass of [`sweep`](Self::sweep); returns whether it freed any counter.
    fn sweep_once(&mut self, all: bool) -> bool {
        let mut freed = false;
        for slot in self.slots.iter_mut() {
            let Some(counter) = slot.counter else { continue };
            // SAFETY: the counters in the cache are alive.
            let counts = unsafe { &counter.as_ref().counts };
            if counts.idle() && (all || !counts.used.get()) {
                slot.counter = None;
                // SAFETY: this is the owner thread, and the cache no longer holds it.
                freed |= unsafe { Counter::uncache(counter) };
            } else {
                counts.used.set(false);
            }
        }
        freed
    }
}

impl<S: Internable> Drop for LocalCache<S> {
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

shim_thread_local! {
    /// This thread's caches by stored type, the most recently used first.
    static CACHES: RefCell<Vec<(TypeId, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's cache for `S`; `None` while the caches are in use (a `make`
/// from a value's own `Eq`, `Hash` or `Drop`) or gone (the thread is exiting).
fn with_cache<S: Internable, R>(f: impl FnOnce(&mut LocalCache<S>) -> R) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let id = TypeId::of::<S>();
            let index = match caches.iter().position(|(type_id, _)| *type_id == id) {
                Some(index) => index,
                None => {
                    caches.push((id, Box::new(LocalCache::<S>::new(thread_id()))));
                    caches.len() - 1
                }
            };
            if index != 0 {
                caches.swap(0, index);
            }
            let any: *mut dyn Any = &mut *caches[0].1;
            // SAFETY: each cache is stored beside the `TypeId` of its own type, which matched.
            let cache = unsafe { &mut *any.cast::<LocalCache<S>>() };
            Some(f(cache))
        })
        .ok()
        .flatten()
}

/// The canonical handle for `key`, or with `insert == false` only an existing one.
fn lookup<S, T>(key: Key<'_, S, T>, insert: bool) -> Option<Handle<T>>
where
    S: Internable + Borrow<T>,
    T: ?Sized + Eq + Hash,
{
    let mut key = Some(key);
    let cached = with_cache(|cache: &mut LocalCache<S>| {
        let probe = key.as_ref().expect("the key is taken once").probe();
        let hash = cache.interner.hash(probe);
        if let Some(handle) = cache.hit(probe, hash) {
            return Some(handle);
        }
        let entry = match insert {
            true => cache.interner.entry(key.take().expect("the key is taken once"), hash),
            false => cache.interner.find(probe, hash)?,
        };
        Some(Counter::handle(cache.insert(entry)))
    });
    if let Some(handle) = cached {
        return handle;
    }
    // Without this thread's cache: a counter of its own, counted atomically.
    let key = key.expect("the cache did not take the key");
    let interner = shared_interner::<S>();
    let hash = interner.hash(key.probe());
    let entry = match insert {
        true => interner.entry(key, hash),
        false => interner.find(key.probe(), hash)?,
    };
    Some(Counter::handle(Counter::create(entry, 0)))
}

/// The canonical handle for `value`: Go's `unique.Make`. Equal values (by `Eq`) give equal
/// handles for as long as one of them lives.
///
/// ```
/// use gonext::unique::{self, Handle};
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash)]
/// struct Endpoint { host: String, port: u16 }
///
/// let a: Handle<Endpoint> = unique::make(Endpoint { host: "db".into(), port: 5432 });
/// let b = unique::make(Endpoint { host: "db".into(), port: 5432 });
/// assert_eq!(a, b); // one pointer comparison, however large the value
/// assert!(std::ptr::eq(a.value(), b.value())); // both point to the one canonical copy
/// assert_eq!(a.port, 5432); // a handle derefs to the value
/// ```
///
/// For borrowed input (`&str`, slices), [`make_ref`] copies the value only on a miss.
pub fn make<T: Internable>(value: T) -> Handle<T> {
    lookup(Key::Owned(value), true).expect("an inserting lookup always finds the value")
}

/// The canonical handle for `*value`, copying it (with [`InternRef::to_stored`]) only when
/// it is not interned yet: a hit allocates nothing.
///
/// ```
/// use gonext::unique::{self, Handle};
///
/// let line = String::from("GET /index.html");
/// let method: Handle<str> = unique::make_ref(&line[..3]);
/// assert_eq!(method, unique::make_ref("GET"));
/// ```
///
/// # Differences from Go
///
/// Go's `unique.Make` takes the value; its compiler avoids the copy of `Make(string(bytes))`
/// on a hit only in some cases (golang/go#71926). Here the borrowed form is the API.
pub fn make_ref<T: ?Sized + InternRef>(value: &T) -> Handle<T> {
    lookup(Key::Borrowed(value, T::to_stored), true).expect("an inserting lookup always finds the value")
}

/// The handle for `*value` if it is interned now, without inserting it: for untrusted
/// input that must not grow the table.
///
/// ```
/// use gonext::unique;
///
/// let known = unique::make_ref("admin");
/// assert_eq!(unique::get("admin"), Some(known));
/// assert!(unique::get::<str>("'; DROP TABLE users; --").is_none());
/// ```
pub fn get<T: ?Sized + InternRef>(value: &T) -> Option<Handle<T>> {
    lookup(Key::Borrowed(value, T::to_stored), false)
}

impl<T: ?Sized> Handle<T> {
    /// The canonical value.
    pub fn value(&self) -> &T {
        self
    }

    fn counts(&self) -> &Counts {
        // SAFETY: the handle owns a count, which keeps its counter alive.
        unsafe { self.counts.as_ref() }
    }
}

impl<T: ?Sized> Clone for Handle<T> {
    fn clone(&self) -> Self {
        let counts = self.counts();
        if counts.counts_locally() {
            counts.local.set(counts.local.get() + 1);
        } else if counts.shared.fetch_add(2, Ordering::Relaxed) > isize::MAX / 2 {
            // As `Arc`: only leaked clones get here, and wrapping would free a live counter.
            std::process::abort();
        }
        Handle { value: self.value, counts: self.counts }
    }
}

impl<T: ?Sized> Drop for Handle<T> {
    fn drop(&mut self) {
        let counts = self.counts();
        if counts.counts_locally() {
            counts.local.set(counts.local.get() - 1);
            return;
        }
        if counts.shared.fetch_sub(2, Ordering::Release) == 2 {
            // The last count of a counter no cache holds: the other drops happened before.
            fence(Ordering::Acquire);
            let free = counts.free;
            // SAFETY: no handle and no cache refers to the counter any more, and `counts`
            // came from `Counter::counts` of the counter `free` was made for.
            unsafe { free(self.counts) };
        }
    }
}

impl<T: ?Sized> Deref for Handle<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the handle's counter holds the entry, and so the value, alive.
        unsafe { self.value.as_ref() }
    }
}

impl<T: ?Sized> AsRef<T> for Handle<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: ?Sized> PartialEq for Handle<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(self.value.as_ptr(), other.value.as_ptr())
    }
}

impl<T: ?Sized> Eq for Handle<T> {}

impl<T: ?Sized> Hash for Handle<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.as_ptr().cast::<()>().hash(state);
    }
}

impl<T: ?Sized + Ord> PartialOrd for Handle<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<T: ?Sized + Ord> Ord for Handle<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        if self == other { CmpOrdering::Equal } else { (**self).cmp(&**other) }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The number of live interned values stored as `S` (for tests and monitoring): `T` for
/// [`make`]'s `Handle<T>`, `Box<str>` for `Handle<str>`, `Box<[T]>` for `Handle<[T]>`.
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
pub fn live<S: Internable>() -> usize {
    with_cache::<S, _>(|cache| cache.sweep(true));
    shared_interner::<S>()
        .shards
        .iter()
        .map(|shard| {
            let shard = shard.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.values().flat_map(Bucket::iter).filter(|weak| weak.strong_count() > 0).count()
        })
        .sum()
}

#[cfg(all(test, loom))]
mod loom;
