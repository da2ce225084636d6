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
///
/// The pointee is `Sized`: `Arc<str>`, `Arc<[T]>` and `Arc<dyn Trait>` have no `Ptr`
/// counterpart yet, because the allocation keeps the cleanup list after the value and
/// building such an allocation for an unsized value would need the unstable
/// `CoerceUnsized` (or hand-made layouts); `Ptr<Box<str>>` or `Ptr<Box<dyn Trait>>` work.
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

    /// The number of weak pointers to this allocation.
    ///
    /// ```
    /// use gonext::{Ptr, weak};
    ///
    /// let p = Ptr::new(1);
    /// let w = weak::make(&p);
    /// assert_eq!(Ptr::weak_count(&p), 1);
    /// # drop(w);
    /// ```
    pub fn weak_count(this: &Ptr<T>) -> usize {
        Arc::weak_count(&this.shared)
    }

    /// A new allocation whose value is built from a weak pointer to itself (for a value that
    /// refers back to its own `Ptr`): `Arc::new_cyclic`. The weak pointer gives `None` until
    /// `build` returns.
    ///
    /// ```
    /// use gonext::{Ptr, weak};
    ///
    /// struct Node {
    ///     me: weak::Pointer<Node>,
    /// }
    /// let node = Ptr::new_cyclic(|me| Node { me: me.clone() });
    /// assert!(Ptr::ptr_eq(&node.me.value().unwrap(), &node));
    /// ```
    pub fn new_cyclic(build: impl FnOnce(&crate::weak::Pointer<T>) -> T) -> Ptr<T> {
        let shared = Arc::new_cyclic(|weak| Shared {
            value: build(&crate::weak::Pointer::from_weak(weak.clone())),
            cleanups: Cleanups::new(),
        });
        Ptr { shared }
    }

    /// A mutable reference to the value if no other `Ptr` or weak pointer shares it:
    /// `Arc::get_mut`.
    ///
    /// ```
    /// use gonext::Ptr;
    ///
    /// let mut p = Ptr::new(1);
    /// *Ptr::get_mut(&mut p).unwrap() += 1;
    /// let q = p.clone();
    /// assert!(Ptr::get_mut(&mut p).is_none());
    /// assert_eq!(*q, 2);
    /// ```
    pub fn get_mut(this: &mut Ptr<T>) -> Option<&mut T> {
        Arc::get_mut(&mut this.shared).map(|shared| &mut shared.value)
    }

    /// A mutable reference to the value, cloning it into a new allocation first if it is
    /// shared: `Arc::make_mut`.
    ///
    /// The cleanups registered on the old allocation stay with it: they run when it dies —
    /// at once, if `this` was its last strong pointer and only weak pointers were left.
    ///
    /// ```
    /// use gonext::Ptr;
    ///
    /// let mut p = Ptr::new(vec![1]);
    /// let shared = p.clone();
    /// Ptr::make_mut(&mut p).push(2);
    /// assert_eq!((&p[..], &shared[..]), (&[1, 2][..], &[1][..]));
    /// ```
    pub fn make_mut(this: &mut Ptr<T>) -> &mut T
    where
        T: Clone,
    {
        if Arc::get_mut(&mut this.shared).is_none() {
            *this = Ptr::new((**this).clone());
        }
        &mut Arc::get_mut(&mut this.shared).expect("a fresh allocation has one owner").value
    }

    /// The value, if `this` is the only strong pointer; otherwise `this` back:
    /// `Arc::try_unwrap`. Taking the value out ends the allocation, so its cleanups are
    /// queued as when the last `Ptr` drops (weak pointers see it dead).
    ///
    /// ```
    /// use gonext::Ptr;
    ///
    /// let p = Ptr::new(String::from("x"));
    /// let q = p.clone();
    /// let p = Ptr::try_unwrap(p).unwrap_err();
    /// drop(q);
    /// assert_eq!(Ptr::try_unwrap(p).unwrap(), "x");
    /// ```
    ///
    /// # Errors
    ///
    /// `this`, unchanged, when another strong pointer shares the allocation.
    pub fn try_unwrap(this: Ptr<T>) -> Result<T, Ptr<T>> {
        Arc::try_unwrap(this.shared).map(Shared::into_value).map_err(|shared| Ptr { shared })
    }

    /// The value, if `this` is the last strong pointer (the others may be dropped
    /// concurrently, and exactly one of them gets it): `Arc::into_inner`. The allocation's
    /// cleanups are queued as with [`try_unwrap`](Self::try_unwrap).
    ///
    /// ```
    /// use gonext::Ptr;
    ///
    /// let p = Ptr::new(7);
    /// let q = p.clone();
    /// assert_eq!(Ptr::into_inner(p), None);
    /// assert_eq!(Ptr::into_inner(q), Some(7));
    /// ```
    pub fn into_inner(this: Ptr<T>) -> Option<T> {
        Arc::into_inner(this.shared).map(Shared::into_value)
    }
}

impl<T> Shared<T> {
    /// The value; the cleanups are queued as the allocation ends.
    fn into_value(self) -> T {
        let Shared { value, cleanups } = self;
        drop(cleanups);
        value
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

impl<T> From<Box<T>> for Ptr<T> {
    fn from(value: Box<T>) -> Self {
        Ptr::new(*value)
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
