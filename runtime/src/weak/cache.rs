//! The runtime of `#[weak_cache]`: a map from arguments to weak pointers, with singleflight
//! loading and entries removed by a cleanup when their value dies.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::sync::{Condvar, Mutex as BubbleMutex};
use crate::{Ptr, runtime, weak};

/// The argument tuples a `#[weak_cache]` fn can key its cache with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot key a #[weak_cache]: the arguments must be owned into a key that is `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "this argument's owned form is not a usable cache key"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

enum Entry<V> {
    Ready(weak::Pointer<V>),
    Loading(Arc<Flight>),
}

/// One load in progress; waiters block on it (durably, inside a bubble).
#[derive(Default)]
struct Flight {
    done: BubbleMutex<bool>,
    finished: Condvar,
}

impl Flight {
    fn wait(&self) {
        let done = self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(self.finished.wait_while(done, |done| !*done));
    }

    fn finish(&self) {
        *self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.finished.notify_all();
    }
}

/// The cache behind one `#[weak_cache]` fn.
pub struct WeakCache<K, V> {
    map: OnceLock<Mutex<HashMap<K, Entry<V>>>>,
}

/// Ends a load: on success the entry was already made `Ready`; on error or panic the
/// `Loading` entry is removed so the next caller loads again (nothing failed is cached).
struct LoadGuard<'a, K: CacheKey, V: Send + Sync + 'static> {
    cache: &'a WeakCache<K, V>,
    key: Option<K>,
    flight: Arc<Flight>,
}

impl<K: CacheKey, V: Send + Sync + 'static> Drop for LoadGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut map = self.cache.lock();
            if matches!(map.get(&key), Some(Entry::Loading(flight)) if Arc::ptr_eq(flight, &self.flight)) {
                map.remove(&key);
            }
        }
        self.flight.finish();
    }
}

impl<K, V> WeakCache<K, V> {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> Self {
        WeakCache { map: OnceLock::new() }
    }
}

impl<K: CacheKey, V: Send + Sync + 'static> WeakCache<K, V> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.map.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let flight = loop {
            let mut map = self.lock();
            let waiting = match map.get(&key) {
                Some(Entry::Ready(weak)) => match weak.value() {
                    Some(value) => return Ok(value),
                    None => None,
                },
                Some(Entry::Loading(flight)) => Some(Arc::clone(flight)),
                None => None,
            };
            match waiting {
                Some(flight) => {
                    drop(map);
                    flight.wait();
                }
                None => {
                    let flight = Arc::new(Flight::default());
                    map.insert(key.clone(), Entry::Loading(Arc::clone(&flight)));
                    break flight;
                }
            }
        };
        let mut guard = LoadGuard { cache: self, key: Some(key.clone()), flight };
        let value = load()?;
        self.lock().insert(key.clone(), Entry::Ready(weak::make(&value)));
        guard.key = None;
        drop(guard);
        // The handle is not kept: this cleanup is never stopped.
        let _ = runtime::add_cleanup(&value, move |key: K| self.forget_dead(&key), key);
        Ok(value)
    }

    /// Removes `key`'s entry if its value is dead (a newer live value stays).
    fn forget_dead(&self, key: &K) {
        let mut map = self.lock();
        if matches!(map.get(key), Some(Entry::Ready(weak)) if weak.value().is_none()) {
            map.remove(key);
        }
    }

    /// The number of cached values that are alive.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|entry| matches!(entry, Entry::Ready(weak) if weak.value().is_some()))
            .count()
    }

    /// Whether no cached value is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached value (values still in use stay alive; the next call loads anew).
    pub fn clear(&self) {
        self.lock().retain(|_, entry| matches!(entry, Entry::Loading(_)));
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
pub fn len<K: CacheKey, V: Send + Sync + 'static>(cache: &WeakCache<K, V>) -> usize {
    cache.len()
}

/// Forgets every value in `cache`.
pub fn clear<K: CacheKey, V: Send + Sync + 'static>(cache: &WeakCache<K, V>) {
    cache.clear();
}

impl<K, V> std::fmt::Debug for WeakCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakCache").finish_non_exhaustive()
    }
}
