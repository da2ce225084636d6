//! `Ptr<T>`: a shared pointer whose allocation can carry cleanups — the object Go's garbage
//! collector would track, made explicit.
//!
//! In Rust the Go moment "the object is collected" is "the last strong `Ptr` is dropped".
//! A `Ptr` is an `Arc` whose allocation also holds one atomic pointer, the head of its list of
//! cleanups: cloning and dropping cost what `Arc`'s do, and the list is only read when the last
//! strong reference goes. Weak pointers ([`crate::weak`]) and
//! cleanups ([`crate::runtime::add_cleanup`]) attach to the allocation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::runtime::cleanup::Cleanups;

/// A thread-safe shared pointer, like [`Arc`], whose allocation can carry cleanups.
///
/// `Clone`, `Deref`, `Send`/`Sync`, comparison and hashing behave as for `Arc<T>` (by value);
/// [`ptr_eq`](Self::ptr_eq) compares allocations.
///
/// ```
/// use gonext::Ptr;
///
/// let a = Ptr::new(String::from("config"));
/// let b = a.clone();
/// assert!(Ptr::ptr_eq(&a, &b));
/// assert_eq!(a.len(), 6); // Deref
/// assert_eq!(a, Ptr::new(String::from("config"))); // equal by value
/// let weak = Ptr::downgrade(&a);
/// drop((a, b));
/// assert!(weak.value().is_none()); // "collected": the last strong Ptr is gone
/// ```
///
/// # Differences from Go
///
/// Go's pointers are traced by its garbage collector; a `Ptr` is reference-counted, so the
/// object dies — and its cleanups are queued — deterministically when the last strong `Ptr`
/// is dropped. Cycles of `Ptr`s are never collected, as with `Arc`.
pub struct Ptr<T> {
    pub(crate) shared: Arc<Shared<T>>,
}

/// The allocation: the value and the cleanups registered on it. Fields drop in order, so
/// the value is gone before its cleanups are queued.
pub(crate) struct Shared<T> {
    value: T,
    pub(crate) cleanups: Cleanups,
}

impl<T> Ptr<T> {
    /// A new allocation holding `value`.
    pub fn new(value: T) -> Ptr<T> {
        Ptr { shared: Arc::new(Shared { value, cleanups: Cleanups::new() }) }
    }

    /// A weak pointer to `this`'s allocation: [`weak::make`](crate::weak::make).
    pub fn downgrade(this: &Ptr<T>) -> crate::weak::Pointer<T> {
        crate::weak::make(this)
    }

    /// Whether `a` and `b` point to the same allocation.
    pub fn ptr_eq(a: &Ptr<T>, b: &Ptr<T>) -> bool {
        Arc::ptr_eq(&a.shared, &b.shared)
    }

    /// The number of strong pointers to this allocation.
    pub fn strong_count(this: &Ptr<T>) -> usize {
        Arc::strong_count(&this.shared)
    }

    /// The address of the allocation, for identity (never dereference it).
    pub fn as_ptr(this: &Ptr<T>) -> *const () {
        Arc::as_ptr(&this.shared).cast()
    }
}

impl<T> Clone for Ptr<T> {
    #[inline]
    fn clone(&self) -> Self {
        Ptr { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Deref for Ptr<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.shared.value
    }
}

impl<T> AsRef<T> for Ptr<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T> std::borrow::Borrow<T> for Ptr<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T> From<T> for Ptr<T> {
    fn from(value: T) -> Self {
        Ptr::new(value)
    }
}

impl<T: Default> Default for Ptr<T> {
    fn default() -> Self {
        Ptr::new(T::default())
    }
}

impl<T: PartialEq> PartialEq for Ptr<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Ptr<T> {}

impl<T: PartialOrd> PartialOrd for Ptr<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Ord> Ord for Ptr<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: Hash> Hash for Ptr<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for Ptr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for Ptr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
