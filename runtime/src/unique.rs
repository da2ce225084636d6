//! Go's `unique` package: canonical handles for equal values, compared in O(1).
//!
//! [`make`] interns a value: equal values give handles to one shared copy, so comparing two
//! handles is a pointer comparison. The interner holds its entries weakly: when the last
//! handle to a value drops, the value is freed and its entry removed. A hit takes a read lock
//! on one of 64 shards, so lookups on different threads do not serialize.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, RwLock, RwLockWriteGuard, Weak};

const SHARDS: usize = 64;

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
/// Go's handles are values the garbage collector traces; here a handle is reference-counted
/// and the interned value is freed as soon as the last handle drops.
pub struct Handle<T: Internable> {
    entry: Arc<Entry<T>>,
}

struct Entry<T: Internable> {
    value: T,
    hash: u64,
}

type Bucket<T> = Vec<Weak<Entry<T>>>;

/// Keys that are already hashes (value hashes, `TypeId`s) need no second hashing.
type PrehashedMap<K, V> = crate::hash::FastMap<K, V>;

struct Interner<T: Internable> {
    hasher: RandomState,
    shards: Vec<RwLock<PrehashedMap<u64, Bucket<T>>>>,
}

/// Interners by type, leaked on first use: one per interned type for the whole process.
static INTERNERS: RwLock<Option<PrehashedMap<TypeId, &'static (dyn Any + Send + Sync)>>> = RwLock::new(None);

thread_local! {
    static LOCAL_INTERNERS: RefCell<PrehashedMap<TypeId, &'static (dyn Any + Send + Sync)>> = RefCell::new(PrehashedMap::default());
}

fn interner<T: Internable>() -> &'static Interner<T> {
    let id = TypeId::of::<T>();
    let any = LOCAL_INTERNERS.with_borrow(|local| local.get(&id).copied()).unwrap_or_else(|| {
        let any = shared_interner::<T>(id);
        LOCAL_INTERNERS.with_borrow_mut(|local| local.insert(id, any));
        any
    });
    any.downcast_ref().expect("interners are registered under their own type")
}

fn shared_interner<T: Internable>(id: TypeId) -> &'static (dyn Any + Send + Sync) {
    let mut all = INTERNERS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *all.get_or_insert_with(PrehashedMap::default).entry(id).or_insert_with(|| {
        let shards = (0..SHARDS).map(|_| RwLock::new(PrehashedMap::default())).collect();
        Box::leak(Box::new(Interner::<T> { hasher: RandomState::new(), shards }))
    })
}

impl<T: Internable> Interner<T> {
    fn shard(&self, hash: u64) -> &RwLock<PrehashedMap<u64, Bucket<T>>> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, PrehashedMap<u64, Bucket<T>>> {
        self.shard(hash).write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn find(bucket: Option<&Bucket<T>>, value: &T) -> Option<Arc<Entry<T>>> {
        bucket?.iter().filter_map(Weak::upgrade).find(|entry| entry.value == *value)
    }
}

/// The canonical handle for `value`: Go's `unique.Make`. Equal values (by `Eq`) give equal
/// handles for as long as one of them lives.
pub fn make<T: Internable>(value: T) -> Handle<T> {
    let interner = interner::<T>();
    let hash = interner.hasher.hash_one(&value);
    let hit = {
        let shard = interner.shard(hash).read().unwrap_or_else(|poisoned| poisoned.into_inner());
        Interner::find(shard.get(&hash), &value)
    };
    if let Some(entry) = hit {
        return Handle { entry };
    }
    let mut shard = interner.write(hash);
    if let Some(entry) = Interner::find(shard.get(&hash), &value) {
        return Handle { entry };
    }
    let entry = Arc::new(Entry { value, hash });
    shard.entry(hash).or_default().push(Arc::downgrade(&entry));
    Handle { entry }
}

impl<T: Internable> Drop for Entry<T> {
    fn drop(&mut self) {
        let mut shard = interner::<T>().write(self.hash);
        if let Some(bucket) = shard.get_mut(&self.hash) {
            bucket.retain(|weak| weak.strong_count() > 0);
            if bucket.is_empty() {
                shard.remove(&self.hash);
            }
        }
    }
}

impl<T: Internable> Handle<T> {
    /// The canonical value.
    pub fn value(&self) -> &T {
        &self.entry.value
    }
}

impl<T: Internable> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle { entry: Arc::clone(&self.entry) }
    }
}

impl<T: Internable> Deref for Handle<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.entry.value
    }
}

impl<T: Internable> PartialEq for Handle<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.entry, &other.entry)
    }
}

impl<T: Internable> Eq for Handle<T> {}

impl<T: Internable> Hash for Handle<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.entry).hash(state);
    }
}

impl<T: Internable + fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.entry.value).finish()
    }
}

/// The number of live interned values of type `T` (for tests and monitoring).
///
/// ```
/// let before = gonext::unique::live::<u128>();
/// let handle = gonext::unique::make(7u128);
/// assert_eq!(gonext::unique::live::<u128>(), before + 1);
/// drop(handle);
/// assert_eq!(gonext::unique::live::<u128>(), before);
/// ```
pub fn live<T: Internable>() -> usize {
    interner::<T>()
        .shards
        .iter()
        .map(|shard| {
            let shard = shard.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.values().flatten().filter(|weak| weak.strong_count() > 0).count()
        })
        .sum()
}
