//! Loom models of [`TreiberStack`] over [`MutexTagged`]: loom has no 128-bit atomics, so the
//! models reach the algorithm (the spare slot, the freelist, the value hand-off) through the
//! [`TaggedCas`] trait with the mutex polyfill, whose lock loom sees.
//!
//! Values are loom `Arc`s, so a value lost or dropped twice fails the model (loom checks that
//! every `Arc` is dropped exactly once), and the value slots are loom `UnsafeCell`s, so a
//! push whose write is not ordered before the pop that reads it fails as a data race.
//!
//! The model catches a broken cell: [`RelaxedPtr`] is a pointer CAS with every ordering
//! replaced by `Relaxed` (and no generation); `relaxed_cell_is_caught` runs the same model on
//! it and expects loom's report ("Causality violation: Concurrent write accesses to
//! `UnsafeCell`").

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

use ::loom::sync::Arc;
use ::loom::sync::atomic::AtomicPtr;
use ::loom::thread;

use crate::atomic::{MutexTagged, StackNode, Tagged, TaggedCas, TreiberStack};

/// Enough interleavings to reach every hand-off of two threads, small enough for CI.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Two threads push and pop concurrently, one of them twice, so that nodes move through the
/// spare slot and the freelist while the other thread reads the same lists.
fn push_pop_race<C: TaggedCas<StackNode<Arc<usize>>> + 'static>() {
    model(|| {
        let stack = Arc::new(TreiberStack::<Arc<usize>, C>::default());
        stack.push(Arc::new(0));
        let other = {
            let stack = Arc::clone(&stack);
            thread::spawn(move || {
                stack.push(Arc::new(1));
                stack.pop().map(|value| *value)
            })
        };
        let mine = [stack.pop().map(|value| *value), {
            stack.push(Arc::new(2));
            stack.pop().map(|value| *value)
        }];
        let theirs = other.join().unwrap();
        let mut seen: Vec<usize> = mine.into_iter().chain([theirs]).flatten().collect();
        seen.extend(std::iter::from_fn(|| stack.pop()).map(|value| *value));
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2], "every value is popped exactly once");
    });
}

#[test]
fn push_pop_race_over_mutex_tagged() {
    push_pop_race::<MutexTagged<StackNode<Arc<usize>>>>();
}

/// A pointer CAS that ignores generations and downgrades every ordering to `Relaxed`: the
/// bug the model must catch.
struct RelaxedPtr<T>(AtomicPtr<T>);

// SAFETY: only a pointer value is stored, never dereferenced (as `AtomicPtr`).
unsafe impl<T> Send for RelaxedPtr<T> {}
// SAFETY: see `Send`.
unsafe impl<T> Sync for RelaxedPtr<T> {}

impl<T> TaggedCas<T> for RelaxedPtr<T> {
    fn new(ptr: Option<NonNull<T>>) -> Self {
        RelaxedPtr(AtomicPtr::new(ptr.map_or(ptr::null_mut(), NonNull::as_ptr)))
    }

    fn load(&self, _: Ordering) -> Tagged<T> {
        Tagged { ptr: NonNull::new(self.0.load(Ordering::Relaxed)), tag: 0 }
    }

    fn compare_exchange(
        &self,
        current: Tagged<T>,
        new: Option<NonNull<T>>,
        _: Ordering,
        _: Ordering,
    ) -> Result<Tagged<T>, Tagged<T>> {
        let current = current.ptr.map_or(ptr::null_mut(), NonNull::as_ptr);
        let new = new.map_or(ptr::null_mut(), NonNull::as_ptr);
        let tagged = |ptr| Tagged { ptr: NonNull::new(ptr), tag: 0 };
        self.0
            .compare_exchange(current, new, Ordering::Relaxed, Ordering::Relaxed)
            .map(tagged)
            .map_err(tagged)
    }
}

#[test]
fn relaxed_cell_is_caught() {
    let caught = catch_unwind(AssertUnwindSafe(push_pop_race::<RelaxedPtr<StackNode<Arc<usize>>>>));
    assert!(caught.is_err(), "the model accepted a stack whose pushes are not ordered before its pops");
}
