//! The runtime of `#[weak_cache]`: a map from arguments to weak pointers, with singleflight
//! loading and entries removed by a cleanup when their value dies.
//!
//! A call hashes and compares its arguments as they were passed (`&str`, not `String`): the
//! expansion hands over a *probe* (the arguments), how to compare it with a stored key, and
//! how to own it into a key, which happens only on a miss. The shared map is keyed by that
//! hash, with the keys of one hash in a short list.
//!
//! In front of the shared map each thread keeps a small cache per `#[weak_cache]` fn (64
//! sets of 4) of the keys it looked up and weak pointers to their values, so a hit takes no
//! lock: it hashes the key (a seeded fast hash), compares it and upgrades the weak pointer.
//! A dead weak pointer sends the call to the shared map; [`WeakCache::clear`] bumps a
//! generation that every remembered pointer is checked against, so calls after `clear`
//! load anew. The thread caches keep no value alive; until a slot is reused (or its thread
//! calls again with that key, or exits) it holds a clone of the key and a weak pointer, which
//! keeps a dead value's `Ptr` block allocated: the size of `V` itself, not of what `V` owns
//! (box a large inline `V`). At most 256 slots per fn and thread.

use std::any::Any;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::hash::FastMap;
use crate::sync::{Condvar, Mutex as BubbleMutex};
use crate::{Ptr, runtime, weak};

const SETS: usize = 64;
const WAYS: usize = 4;

/// The argument tuples a `#[weak_cache]` fn can key its cache with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot key a #[weak_cache]: the arguments must be owned into a key that is `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "this argument's owned form is not a usable cache key"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

/// A key's state in a weak map: its value, or the load that will produce it.
pub(crate) enum Entry<V> {
    Ready(weak::Pointer<V>),
    Loading(Arc<Flight>),
}

/// One load in progress; waiters block on it (durably, inside a bubble).
#[derive(Default)]
pub(crate) struct Flight {
    done: BubbleMutex<bool>,
    finished: Condvar,
}

impl Flight {
    pub(crate) fn wait(&self) {
        let done = self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(self.finished.wait_while(done, |done| !*done));
    }

    pub(crate) fn finish(&self) {
        *self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.finished.notify_all();
    }
}

/// The keys (and entries) of one hash.
type Bucket<K, V> = Vec<(K, Entry<V>)>;

/// How often a `#[weak_cache]` fn was answered from its cache (the `stats()` of its
/// companion type).
///
/// ```
/// use gonext::{Ptr, weak_cache};
///
/// #[weak_cache]
/// fn square(n: u64) -> Ptr<u64> {
///     Ptr::new(n * n)
/// }
///
/// fn main() {
///     let first = square(4);
///     let again = square(4);
///     let stats = square::stats();
///     assert_eq!((stats.hits, stats.misses), (1, 1));
///     # drop((first, again));
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered with a value that was cached (or loaded by a concurrent caller).
    pub hits: u64,
    /// Calls that ran the fn's body: the value was missing or dead.
    pub misses: u64,
}

/// The cache behind one `#[weak_cache]` fn.
pub struct WeakCache<K, V> {
    map: OnceLock<Mutex<FastMap<u64, Bucket<K, V>>>>,
    /// Bumped by `clear` and `invalidate`: thread caches remember the generation they saw.
    generation: AtomicU64,
    misses: AtomicU64,
    /// Hits in the shared map (thread caches count their own).
    shared_hits: AtomicU64,
    /// The hits of thread caches whose threads exited.
    retired_hits: AtomicU64,
    /// The hit counters of live thread caches, each written by its thread only.
    local_hits: Mutex<Vec<Arc<AtomicU64>>>,
}

struct Remembered<K, V> {
    hash: u64,
    key: K,
    value: weak::Pointer<V>,
    generation: u64,
}

/// One thread's memory of one cache's lookups.
struct Local<K: 'static, V: 'static> {
    slots: Box<[Option<Remembered<K, V>>]>,
    victim: usize,
    /// Hits answered here; only this thread writes it, so no hit contends.
    hits: Arc<AtomicU64>,
    cache: &'static WeakCache<K, V>,
}

impl<K: CacheKey, V: Send + Sync + 'static> Local<K, V> {
    fn new(cache: &'static WeakCache<K, V>) -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        lock_counters(&cache.local_hits).push(Arc::clone(&hits));
        Local { slots: (0..SETS * WAYS).map(|_| None).collect(), victim: 0, hits, cache }
    }

    fn set(hash: u64) -> std::ops::Range<usize> {
        let first = (hash as usize % SETS) * WAYS;
        first..first + WAYS
    }

    fn get(&self, hash: u64, generation: u64, is_key: impl Fn(&K) -> bool) -> Option<Ptr<V>> {
        let value = self.slots[Self::set(hash)]
            .iter()
            .flatten()
            .find(|slot| slot.hash == hash && slot.generation == generation && is_key(&slot.key))?
            .value
            .value()?;
        // A plain increment: this thread is the counter's only writer.
        self.hits.store(self.hits.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Some(value)
    }

    fn remember(&mut self, slot: Remembered<K, V>) -> Option<Remembered<K, V>> {
        let set = Self::set(slot.hash);
        let way = self.slots[set.clone()]
            .iter()
            .position(|old| match old {
                None => true,
                Some(old) => old.value.value().is_none() || (old.hash == slot.hash && old.key == slot.key),
            })
            .unwrap_or_else(|| {
                self.victim = (self.victim + 1) % WAYS;
                self.victim
            });
        self.slots[set.start + way].replace(slot)
    }
}

impl<K: 'static, V: 'static> Drop for Local<K, V> {
    fn drop(&mut self) {
        // Under the lock, so that `stats` counts these hits exactly once.
        let mut counters = lock_counters(&self.cache.local_hits);
        self.cache.retired_hits.fetch_add(self.hits.load(Ordering::Relaxed), Ordering::Relaxed);
        counters.retain(|counter| !Arc::ptr_eq(counter, &self.hits));
    }
}

fn lock_counters(counters: &Mutex<Vec<Arc<AtomicU64>>>) -> MutexGuard<'_, Vec<Arc<AtomicU64>>> {
    counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    /// This thread's `Local`s by cache address, the most recently used first.
    static LOCALS: RefCell<Vec<(usize, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// Ends a load: on success the entry was already made `Ready`; on error or panic the
/// `Loading` entry is removed so the next caller loads again (nothing failed is cached).
struct LoadGuard<'a, K: CacheKey, V: Send + Sync + 'static> {
    cache: &'a WeakCache<K, V>,
    key: Option<(u64, K)>,
    flight: Arc<Flight>,
}

impl<K: CacheKey, V: Send + Sync + 'static> Drop for LoadGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some((hash, key)) = self.key.take() {
            let mut map = self.cache.lock();
            let flight = &self.flight;
            remove_where(&mut map, hash, |(k, entry)| {
                *k == key && matches!(entry, Entry::Loading(f) if Arc::ptr_eq(f, flight))
            });
        }
        self.flight.finish();
    }
}

/// Removes the entries of `hash` that match, and the hash once it has none.
fn remove_where<K, V>(
    map: &mut FastMap<u64, Bucket<K, V>>,
    hash: u64,
    matches: impl Fn(&(K, Entry<V>)) -> bool,
) {
    if let Some(bucket) = map.get_mut(&hash) {
        bucket.retain(|slot| !matches(slot));
        if bucket.is_empty() {
            map.remove(&hash);
        }
    }
}

impl<K, V> WeakCache<K, V> {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> Self {
        WeakCache {
            map: OnceLock::new(),
            generation: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            shared_hits: AtomicU64::new(0),
            retired_hits: AtomicU64::new(0),
            local_hits: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FastMap<u64, Bucket<K, V>>> {
        self.map.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of cached values that are alive.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .flatten()
            .filter(|(_, entry)| matches!(entry, Entry::Ready(weak) if weak.is_alive()))
            .count()
    }

    /// Whether no cached value is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached value (values still in use stay alive; the next call loads anew).
    pub fn clear(&self) {
        let mut map = self.lock();
        // Under the lock, before the entries go: a call that sees the old generation and
        // misses its thread cache finds the map not yet cleared, as if it ran before `clear`.
        self.generation.fetch_add(1, Ordering::Release);
        map.retain(|_, bucket| {
            bucket.retain(|(_, entry)| matches!(entry, Entry::Loading(_)));
            !bucket.is_empty()
        });
    }

    /// Forgets the value of the key (with probe hash `hash`) that `is_key` recognizes;
    /// returns whether it was alive. A load in progress is not affected.
    pub fn invalidate_by(&self, hash: u64, is_key: impl Fn(&K) -> bool) -> bool {
        let mut map = self.lock();
        // As in `clear`: thread caches must not answer with the forgotten value.
        self.generation.fetch_add(1, Ordering::Release);
        let mut alive = false;
        if let Some(bucket) = map.get_mut(&hash) {
            bucket.retain(|(key, entry)| match entry {
                Entry::Ready(weak) if is_key(key) => {
                    alive |= weak.is_alive();
                    false
                }
                _ => true,
            });
            if bucket.is_empty() {
                map.remove(&hash);
            }
        }
        alive
    }

    /// The hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        let counters = lock_counters(&self.local_hits);
        let local: u64 = counters.iter().map(|hits| hits.load(Ordering::Relaxed)).sum();
        let hits =
            local + self.retired_hits.load(Ordering::Relaxed) + self.shared_hits.load(Ordering::Relaxed);
        CacheStats { hits, misses: self.misses.load(Ordering::Relaxed) }
    }

    /// A hasher for probes. Equal probes hash alike; a probe's hash is never compared with
    /// a hash of an owned key, so `&str` and `String` need not agree.
    pub fn probe_hasher(&self) -> impl Hasher + use<K, V> {
        crate::hash::seeded(crate::hash::process_seed())
    }

    /// Adds one argument to a probe's hash (one call per argument, so that the expansion
    /// can span each on its argument).
    pub fn hash_arg<T: Hash + ?Sized>(&self, hasher: &mut impl Hasher, arg: &T) {
        arg.hash(hasher);
    }
}

impl<K: CacheKey, V: Send + Sync + 'static> WeakCache<K, V> {
    /// As [`invalidate_by`](Self::invalidate_by), for an owned key.
    pub fn invalidate(&self, key: K) -> bool {
        let mut hasher = self.probe_hasher();
        key.hash(&mut hasher);
        self.invalidate_by(hasher.finish(), |stored| *stored == key)
    }

    /// Runs `f` on this thread's memory of this cache; `None` while it is in use (a call
    /// from a key's `Eq`, `Hash` or `Drop`) or gone (the thread is exiting).
    fn with_local<R>(&'static self, f: impl FnOnce(&mut Local<K, V>) -> R) -> Option<R> {
        let id = std::ptr::from_ref(self) as usize;
        LOCALS
            .try_with(|locals| {
                let mut locals = locals.try_borrow_mut().ok()?;
                let index = match locals.iter().position(|(cache, _)| *cache == id) {
                    Some(index) => index,
                    None => {
                        locals.push((id, Box::new(Local::<K, V>::new(self))));
                        locals.len() - 1
                    }
                };
                locals.swap(0, index);
                let local =
                    locals[0].1.downcast_mut::<Local<K, V>>().expect("locals are stored under their type");
                Some(f(local))
            })
            .ok()
            .flatten()
    }

    /// Remembers `value` for `key` in this thread's memory.
    fn remember(&'static self, key: &K, hash: u64, generation: u64, value: &Ptr<V>) {
        let slot = Remembered { hash, key: key.clone(), value: weak::make(value), generation };
        // The replaced slot drops after the memory is released (its key's `Drop` may call in).
        let replaced = self.with_local(|local| local.remember(slot));
        drop(replaced);
    }

    /// The live value for `key`, or `load()`'s, shared by concurrent callers of the same key.
    pub fn get_or_load(&'static self, key: K, load: impl FnOnce() -> Ptr<V>) -> Ptr<V> {
        match self.try_get_or_load(key, || Ok::<_, std::convert::Infallible>(load())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`get_or_load`](Self::get_or_load) for a fallible load; errors are not cached.
    ///
    /// # Errors
    ///
    /// The error of this caller's own `load()`.
    pub fn try_get_or_load<E>(
        &'static self,
        key: K,
        load: impl FnOnce() -> Result<Ptr<V>, E>,
    ) -> Result<Ptr<V>, E> {
        let mut hasher = self.probe_hasher();
        key.hash(&mut hasher);
        self.try_get_or_load_by(hasher.finish(), key, |args, key| args == key, K::clone, |_| load())
    }

    /// As [`get_or_load`](Self::get_or_load), looked up by a probe: the arguments as
    /// passed (`args`, whose hash from [`probe_hasher`](Self::probe_hasher) and
    /// [`hash_arg`](Self::hash_arg) is `hash`), whether a stored key equals them
    /// (`is_key`) and how to own them into a key (`to_key`, on a miss only).
    pub fn get_or_load_by<P>(
        &'static self,
        hash: u64,
        args: P,
        is_key: impl Fn(&P, &K) -> bool,
        to_key: impl FnOnce(&P) -> K,
        load: impl FnOnce(P) -> Ptr<V>,
    ) -> Ptr<V> {
        let load = |args| Ok::<_, std::convert::Infallible>(load(args));
        match self.try_get_or_load_by(hash, args, is_key, to_key, load) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`get_or_load_by`](Self::get_or_load_by) for a fallible load; errors are not
    /// cached.
    ///
    /// # Errors
    ///
    /// The error of this caller's own `load()`.
    pub fn try_get_or_load_by<P, E>(
        &'static self,
        hash: u64,
        args: P,
        is_key: impl Fn(&P, &K) -> bool,
        to_key: impl FnOnce(&P) -> K,
        load: impl FnOnce(P) -> Result<Ptr<V>, E>,
    ) -> Result<Ptr<V>, E> {
        let is_key = |key: &K| is_key(&args, key);
        // Acquire: pairs with `clear`'s bump, so a call after `clear` sees the new generation.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(Some(value)) = self.with_local(|local| local.get(hash, generation, is_key)) {
            return Ok(value);
        }
        let (key, flight) = loop {
            let mut map = self.lock();
            let found = map.get(&hash).and_then(|bucket| bucket.iter().find(|(key, _)| is_key(key)));
            let waiting = match found {
                Some((key, Entry::Ready(weak))) => match weak.value() {
                    Some(value) => {
                        let key = key.clone();
                        drop(map);
                        self.shared_hits.fetch_add(1, Ordering::Relaxed);
                        self.remember(&key, hash, generation, &value);
                        return Ok(value);
                    }
                    None => None,
                },
                Some((_, Entry::Loading(flight))) => Some(Arc::clone(flight)),
                None => None,
            };
            match waiting {
                Some(flight) => {
                    drop(map);
                    flight.wait();
                }
                None => {
                    let key = to_key(&args);
                    let flight = Arc::new(Flight::default());
                    let bucket = map.entry(hash).or_default();
                    bucket.retain(|(k, _)| *k != key);
                    bucket.push((key.clone(), Entry::Loading(Arc::clone(&flight))));
                    break (key, flight);
                }
            }
        };
        let mut guard = LoadGuard { cache: self, key: Some((hash, key.clone())), flight };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = load(args)?;
        {
            let mut map = self.lock();
            let bucket = map.entry(hash).or_default();
            bucket.retain(|(k, _)| *k != key);
            bucket.push((key.clone(), Entry::Ready(weak::make(&value))));
        }
        guard.key = None;
        drop(guard);
        self.remember(&key, hash, generation, &value);
        // The handle is not kept: this cleanup is never stopped.
        let _ = runtime::add_cleanup(&value, move |key: K| self.forget_dead(hash, &key), key);
        Ok(value)
    }

    /// Removes `key`'s entry if its value is dead (a newer live value stays).
    fn forget_dead(&self, hash: u64, key: &K) {
        let mut map = self.lock();
        remove_where(&mut map, hash, |(k, entry)| {
            k == key && matches!(entry, Entry::Ready(weak) if !weak.is_alive())
        });
    }
}

impl<K, V> Default for WeakCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The expansion's entry points: free functions, so that an argument that cannot key the
/// cache fails on `CacheKey` (whose message says so) rather than on a method lookup.
pub fn get_or_load<K: CacheKey, V: Send + Sync + 'static>(
    cache: &'static WeakCache<K, V>,
    key: K,
    load: impl FnOnce() -> Ptr<V>,
) -> Ptr<V> {
    cache.get_or_load(key, load)
}

/// See [`get_or_load`]; errors are not cached.
///
/// # Errors
///
/// The error of this caller's own `load()`.
pub fn try_get_or_load<K: CacheKey, V: Send + Sync + 'static, E>(
    cache: &'static WeakCache<K, V>,
    key: K,
    load: impl FnOnce() -> Result<Ptr<V>, E>,
) -> Result<Ptr<V>, E> {
    cache.try_get_or_load(key, load)
}

/// The number of live values in `cache`.
pub fn len<K, V>(cache: &WeakCache<K, V>) -> usize {
    cache.len()
}

/// Forgets every value in `cache`.
pub fn clear<K, V>(cache: &WeakCache<K, V>) {
    cache.clear();
}

/// The hits and misses of `cache`.
pub fn stats<K, V>(cache: &WeakCache<K, V>) -> CacheStats {
    cache.stats()
}

/// Forgets `key`'s value in `cache` (a fn with owned arguments only).
pub fn invalidate<K: CacheKey, V: Send + Sync + 'static>(cache: &WeakCache<K, V>, key: K) -> bool {
    cache.invalidate(key)
}

impl<K, V> std::fmt::Debug for WeakCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakCache").finish_non_exhaustive()
    }
}
