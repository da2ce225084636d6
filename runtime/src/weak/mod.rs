//! Go's `weak` package: pointers that do not keep their object alive.
//!
//! ```
//! use gonext::{Ptr, weak};
//!
//! let session = Ptr::new(String::from("session of ann"));
//! let observer = weak::make(&session); // Go's weak.Make: does not keep it alive
//! assert_eq!(observer.value().as_deref().map(String::as_str), Some("session of ann"));
//! drop(session); // the last strong pointer: the object is gone
//! assert!(observer.value().is_none());
//!
//! let users = weak::WeakMap::new(); // entries vanish when their value dies
//! let ann = users.get_or_insert_with("ann", || Ptr::new(41));
//! assert!(Ptr::ptr_eq(&ann, &users.get("ann").unwrap()));
//! ```
//!
//! A [`Pointer`] is made from a [`Ptr`] and gives it back with [`Pointer::value`] while any
//! strong `Ptr` lives. Like Go's weak pointers, two `Pointer`s compare equal exactly when
//! they were made from the same allocation — also after the object died — so they can key a
//! map (the canonicalization-map pattern of Go's proposal #67552). [`WeakMap`] is that map,
//! concurrent, with entries that vanish when their value dies.

pub(crate) mod cache;
mod map;

pub use cache::CacheStats;
pub use map::WeakMap;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Weak;

use crate::Ptr;
use crate::ptr::Shared;

/// A weak pointer to a [`Ptr`]'s allocation.
///
/// ```
/// use gonext::{Ptr, weak};
///
/// let strong = Ptr::new(42);
/// let w1 = weak::make(&strong);
/// let w2 = weak::make(&strong.clone());
/// assert_eq!(w1, w2); // same allocation
/// assert_eq!(w1.value().as_deref(), Some(&42));
/// drop(strong);
/// assert_eq!(w1.value(), None);
/// assert_eq!(w1, w2); // still equal after the object died
/// ```
///
/// # Differences from Go
///
/// Go's `weak.Pointer[T]` is comparable by value; here `Eq` and `Hash` use the allocation
/// address, which Rust keeps reserved while any weak pointer to it exists, so the identity
/// cannot be reused by another object in the meantime.
pub struct Pointer<T> {
    weak: Weak<Shared<T>>,
}

impl<T> Pointer<T> {
    pub(crate) fn from_weak(weak: Weak<Shared<T>>) -> Pointer<T> {
        Pointer { weak }
    }

    /// Whether the object lives, without making a strong pointer (whose drop could end it).
    pub(crate) fn is_alive(&self) -> bool {
        self.weak.strong_count() > 0
    }
}

/// A weak pointer to `ptr`'s allocation: Go's `weak.Make`.
///
/// The weak pointer does not keep the object alive; [`Pointer::value`] gives a strong
/// pointer back while any other strong pointer lives, and `None` afterwards.
///
/// ```
/// use gonext::{Ptr, weak};
///
/// let config = Ptr::new(vec!["eu-west-1", "us-east-2"]);
/// let observer = weak::make(&config);
/// if let Some(live) = observer.value() {
///     assert_eq!(live.len(), 2); // a strong Ptr while we hold it
/// }
/// assert_eq!(observer, weak::make(&config.clone())); // equal: same allocation
/// drop(config);
/// assert!(observer.value().is_none()); // the object died with its last strong Ptr
/// ```
///
/// # Differences from Go
///
/// Go's object dies when the garbage collector finds it unreachable; here, when its last
/// strong [`Ptr`] is dropped, deterministically.
pub fn make<T>(ptr: &Ptr<T>) -> Pointer<T> {
    Pointer { weak: std::sync::Arc::downgrade(&ptr.shared) }
}

impl<T> Pointer<T> {
    /// A weak pointer to no object, Go's zero `weak.Pointer[T]`: [`value`](Self::value) is
    /// `None`, and all such pointers are equal to each other and to no other.
    ///
    /// ```
    /// use gonext::{Ptr, weak};
    ///
    /// let zero = weak::Pointer::<u32>::new();
    /// assert_eq!(zero.value(), None);
    /// assert_eq!(zero, weak::Pointer::default());
    /// assert_ne!(zero, weak::make(&Ptr::new(7)));
    /// ```
    pub const fn new() -> Pointer<T> {
        Pointer { weak: Weak::new() }
    }

    /// A strong pointer to the object, or `None` if it died: Go's `Pointer.Value`.
    #[inline]
    pub fn value(&self) -> Option<Ptr<T>> {
        self.weak.upgrade().map(|shared| Ptr { shared })
    }

    /// Whether this weak pointer was made from `ptr`'s allocation.
    pub fn points_to(&self, ptr: &Ptr<T>) -> bool {
        std::ptr::eq(self.weak.as_ptr(), std::sync::Arc::as_ptr(&ptr.shared))
    }
}

impl<T> Clone for Pointer<T> {
    fn clone(&self) -> Self {
        Pointer { weak: self.weak.clone() }
    }
}

impl<T> Default for Pointer<T> {
    fn default() -> Self {
        Pointer::new()
    }
}

impl<T> PartialEq for Pointer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.weak.ptr_eq(&other.weak)
    }
}

impl<T> Eq for Pointer<T> {}

impl<T> Hash for Pointer<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.weak.as_ptr().hash(state);
    }
}

impl<T> fmt::Debug for Pointer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pointer").field("alive", &(self.weak.strong_count() > 0)).finish()
    }
}
