//! [`WeakMap`]: a concurrent map whose values are held weakly, the pattern Go builds from
//! `sync.Map`, `weak.Pointer` and `runtime.AddCleanup`.
//!
//! The map is split into shards behind mutexes, chosen by the key's hash. Each value gets a
//! cleanup when it is stored, which removes its entry once the value dies (if no newer value
//! replaced it); a lookup that finds a dead entry before its cleanup ran removes it too.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::cache::{Entry, Flight};
use crate::hash::FastMap;
use crate::{Ptr, runtime, weak};

const SHARDS: usize = 16;

/// A concurrent map from keys to values that it does not keep alive: an entry vanishes
/// when its value dies (the last strong [`Ptr`] drops). The public form of what
/// [`#[weak_cache]`](crate::weak_cache) does for a fn.
///
/// [`get_or_insert_with`](Self::get_or_insert_with) loads a missing value once for all
/// concurrent callers of the same key (singleflight). Every method takes `&self`; share the
/// map with an `Arc` or a `static` ([`WeakMap::new`] is not `const`, so use a `LazyLock`).
///
/// ```
/// use gonext::{Ptr, runtime, weak::WeakMap};
///
/// let sessions: WeakMap<u64, String> = WeakMap::new();
/// let alice = sessions.get_or_insert_with(7, || Ptr::new("alice".to_owned()));
/// assert!(Ptr::ptr_eq(&sessions.get(&7).unwrap(), &alice));
/// assert_eq!(sessions.len(), 1);
/// drop(alice); // the last user leaves
/// assert_eq!(sessions.get(&7), None);
/// runtime::flush_cleanups(); // the entry's cleanup removed it
/// assert!(sessions.is_empty());
/// ```
///
/// # Differences from Go
///
/// Go has no such type; its weak-pointer proposal (#67552) shows the pattern and
/// golang/go#43615 asks for a map. Here the value must live in a [`Ptr`], whose death is
/// deterministic, so entries vanish right after the last user drops the value rather than
/// after some garbage collection.
pub struct WeakMap<K, V> {
    inner: Arc<Inner<K, V>>,
}

/// One shard: the keys whose hash falls on it.
type Shard<K, V> = Mutex<FastMap<K, Entry<V>>>;

struct Inner<K, V> {
    hasher: foldhash::fast::RandomState,
    shards: Box<[Shard<K, V>]>,
}

/// Removes a failed or panicked load's entry and wakes its waiters; a successful load
/// replaced the entry already and only wakes them.
struct LoadGuard<'a, K: Hash + Eq, V> {
    inner: &'a Inner<K, V>,
    key: Option<K>,
    flight: Arc<Flight>,
}

impl<K: Hash + Eq, V> Drop for LoadGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut shard = self.inner.shard(&key);
            if matches!(shard.get(&key), Some(Entry::Loading(f)) if Arc::ptr_eq(f, &self.flight)) {
                shard.remove(&key);
            }
        }
        self.flight.finish();
    }
}

impl<K: Hash + Eq, V> Inner<K, V> {
    fn shard<Q: ?Sized + Hash>(&self, key: &Q) -> MutexGuard<'_, FastMap<K, Entry<V>>> {
        let index = (self.hasher.hash_one(key) >> 60) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes `key`'s entry if its value is dead (a newer live value stays).
    fn forget_dead(&self, key: &K) {
        let mut shard = self.shard(key);
        if matches!(shard.get(key), Some(Entry::Ready(weak)) if weak.value().is_none()) {
            shard.remove(key);
        }
    }
}

impl<K, V> WeakMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// An empty map.
    pub fn new() -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(FastMap::default())).collect();
        WeakMap { inner: Arc::new(Inner { hasher: foldhash::fast::RandomState::default(), shards }) }
    }

    /// The live value for `key`, if there is one.
    pub fn get<Q>(&self, key: &Q) -> Option<Ptr<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let mut shard = self.inner.shard(key);
        let Some(Entry::Ready(weak)) = shard.get(key) else { return None };
        let value = weak.value();
        if value.is_none() {
            shard.remove(key);
        }
        value
    }

    /// Stores `value` for `key` (without keeping it alive) and returns the live value it
    /// replaces. A load in progress for `key` is replaced too; its callers still get
    /// their loaded value.
    ///
    /// ```
    /// use gonext::{Ptr, weak::WeakMap};
    ///
    /// let map = WeakMap::new();
    /// let (v1, v2) = (Ptr::new(1), Ptr::new(2));
    /// assert_eq!(map.insert("k", &v1), None);
    /// assert_eq!(map.insert("k", &v2), Some(v1));
    /// ```
    pub fn insert(&self, key: K, value: &Ptr<V>) -> Option<Ptr<V>> {
        let mut shard = self.inner.shard(&key);
        let old = match shard.get(&key) {
            Some(Entry::Ready(weak)) => weak.value(),
            _ => None,
        };
        if old.as_ref().is_some_and(|old| Ptr::ptr_eq(old, value)) {
            return old; // already there, with its cleanup
        }
        shard.insert(key.clone(), Entry::Ready(weak::make(value)));
        drop(shard);
        self.forget_on_death(key, value);
        old
    }

    /// The live value for `key`, or `load()`'s, stored for the next callers. Concurrent
    /// callers with an equal key wait for one `load` (Go's `singleflight`); if it panics,
    /// nothing is stored, the panic goes on in its caller, and a waiter loads anew.
    ///
    /// ```
    /// use gonext::{Ptr, weak::WeakMap};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let loads = AtomicUsize::new(0);
    /// let map = WeakMap::new();
    /// let load = || {
    ///     loads.fetch_add(1, Ordering::Relaxed);
    ///     Ptr::new(String::from("config"))
    /// };
    /// let a = map.get_or_insert_with("app.toml", load);
    /// let b = map.get_or_insert_with("app.toml", load);
    /// assert!(Ptr::ptr_eq(&a, &b));
    /// assert_eq!(loads.load(Ordering::Relaxed), 1);
    /// ```
    pub fn get_or_insert_with(&self, key: K, load: impl FnOnce() -> Ptr<V>) -> Ptr<V> {
        let flight = loop {
            let mut shard = self.inner.shard(&key);
            let waiting = match shard.get(&key) {
                Some(Entry::Ready(weak)) => match weak.value() {
                    Some(value) => return value,
                    None => None,
                },
                Some(Entry::Loading(flight)) => Some(Arc::clone(flight)),
                None => None,
            };
            match waiting {
                Some(flight) => {
                    drop(shard);
                    flight.wait();
                }
                None => {
                    let flight = Arc::new(Flight::default());
                    shard.insert(key.clone(), Entry::Loading(Arc::clone(&flight)));
                    break flight;
                }
            }
        };
        let mut guard = LoadGuard { inner: &self.inner, key: Some(key.clone()), flight };
        let value = load();
        {
            let mut shard = self.inner.shard(&key);
            let ours = matches!(shard.get(&key), Some(Entry::Loading(f)) if Arc::ptr_eq(f, &guard.flight));
            if ours {
                shard.insert(key.clone(), Entry::Ready(weak::make(&value)));
            }
            guard.key = None;
            drop(shard);
            if ours {
                self.forget_on_death(key, &value);
            }
        }
        value
    }

    /// Removes `key`'s entry and returns its value if it is alive. A load in progress is
    /// not affected.
    pub fn remove<Q>(&self, key: &Q) -> Option<Ptr<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let mut shard = self.inner.shard(key);
        match shard.get(key) {
            Some(Entry::Ready(_)) => match shard.remove(key) {
                Some(Entry::Ready(weak)) => weak.value(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Keeps the live entries for which `keep` returns `true` and removes the others, as
    /// well as dead ones. Loads in progress stay. `keep` runs with the entry's shard locked:
    /// it must not use the map.
    pub fn retain(&self, mut keep: impl FnMut(&K, &Ptr<V>) -> bool) {
        for shard in self.inner.shards.iter() {
            // Dropped after the lock: a value whose last user left meanwhile dies here, and
            // its `Drop` may use the map.
            let mut seen = Vec::new();
            let mut shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.retain(|key, entry| match entry {
                Entry::Ready(weak) => weak.value().is_some_and(|value| {
                    let kept = keep(key, &value);
                    seen.push(value);
                    kept
                }),
                Entry::Loading(_) => true,
            });
            drop(shard);
            drop(seen);
        }
    }

    /// The number of live values.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                shard.values().filter(|entry| matches!(entry, Entry::Ready(weak) if weak.is_alive())).count()
            })
            .sum()
    }

    /// Whether no value is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live entries, as a snapshot taken shard by shard (entries added or removed
    /// meanwhile may or may not appear). The snapshot holds the values alive until dropped.
    ///
    /// ```
    /// use gonext::{Ptr, weak::WeakMap};
    ///
    /// let map = WeakMap::new();
    /// let (a, b) = (Ptr::new('a'), Ptr::new('b'));
    /// map.insert(1, &a);
    /// map.insert(2, &b);
    /// drop(b);
    /// let live: Vec<(i32, Ptr<char>)> = map.iter().collect();
    /// assert_eq!(live, [(1, a)]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (K, Ptr<V>)> + use<K, V> {
        let mut live = Vec::new();
        for shard in self.inner.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            live.extend(shard.iter().filter_map(|(key, entry)| match entry {
                Entry::Ready(weak) => Some((key.clone(), weak.value()?)),
                Entry::Loading(_) => None,
            }));
        }
        live.into_iter()
    }

    /// Registers the cleanup that removes `key`'s entry once `value` dies.
    fn forget_on_death(&self, key: K, value: &Ptr<V>) {
        let map: Weak<Inner<K, V>> = Arc::downgrade(&self.inner);
        let forget = |(map, key): (Weak<Inner<K, V>>, K)| {
            if let Some(map) = map.upgrade() {
                map.forget_dead(&key);
            }
        };
        // The handle is not kept: this cleanup is never stopped.
        let _ = runtime::add_cleanup(value, forget, (map, key));
    }
}

impl<K, V> Default for WeakMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for WeakMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakMap").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry, dead or alive, loading or ready.
    fn entries<K: Hash + Eq, V>(map: &WeakMap<K, V>) -> usize {
        map.inner.shards.iter().map(|shard| shard.lock().unwrap().len()).sum()
    }

    #[test]
    fn dead_entries_are_removed_by_their_cleanup() {
        let map = WeakMap::new();
        let values: Vec<Ptr<usize>> = (0..100).map(Ptr::new).collect();
        for (i, value) in values.iter().enumerate() {
            map.insert(i, value);
        }
        let replaced = Ptr::new(1000);
        map.insert(0, &replaced);
        drop(values);
        runtime::flush_cleanups();
        assert_eq!(entries(&map), 1, "only the replacement of key 0 is left");
        assert!(Ptr::ptr_eq(&map.get(&0).unwrap(), &replaced), "its old value's cleanup kept it");
    }
}
