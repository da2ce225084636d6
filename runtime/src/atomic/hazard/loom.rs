//! Loom models of [`HazardStack`]: the hazard-pointer protocol that lets a popper read a node
//! another thread may be popping and freeing.
//!
//! Under loom every pop reclaims at once (the batch is 1), so every interleaving of a popper's
//! publish-and-check with another thread's pop-and-free is explored. Freeing a node writes a
//! loom `UnsafeCell` in it and a popper reads that cell before the node's link, so a node
//! freed while a popper can still reach it is reported as a data race; values are loom
//! `Arc`s, so a lost or doubly dropped value fails the model too.
//!
//! Caught when broken: without the `fence(SeqCst)` in `pop`, `a_push_racing_a_pop_is_popped_once`
//! fails with loom's "Causality violation: Concurrent read and write accesses to
//! `UnsafeCell`" and `concurrent_pops_never_free_a_protected_node` with loom reading a freed
//! object ("unexpected object stored at reference"): the reclaimer missed the hazard and
//! freed the node the other popper was reading. The first draft of this stack loaded the
//! hazards in `reclaim` with `Relaxed` (and published them the same way); these models failed
//! on it with the same causality violation — a popper's read of a node did not happen
//! before the free that followed its clearing of the hazard — which is why those are
//! `Acquire` and `Release` now.

use ::loom::sync::Arc;
use ::loom::thread;

use crate::atomic::HazardStack;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn concurrent_pops_never_free_a_protected_node() {
    model(|| {
        let stack = Arc::new(HazardStack::new());
        stack.push(Arc::new(0));
        stack.push(Arc::new(1));
        let other = {
            let stack = Arc::clone(&stack);
            thread::spawn(move || stack.pop().map(|value| *value))
        };
        let mine = stack.pop().map(|value| *value);
        let theirs = other.join().unwrap();
        let mut seen: Vec<usize> = [mine, theirs].into_iter().flatten().collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1], "each value is popped exactly once");
        assert!(stack.is_empty());
    });
}

#[test]
fn a_push_racing_a_pop_is_popped_once() {
    model(|| {
        let stack = Arc::new(HazardStack::new());
        stack.push(Arc::new(0));
        let other = {
            let stack = Arc::clone(&stack);
            thread::spawn(move || {
                stack.push(Arc::new(1));
                stack.pop().map(|value| *value)
            })
        };
        let mine = stack.pop().map(|value| *value);
        let theirs = other.join().unwrap();
        let mut seen: Vec<usize> = [mine, theirs].into_iter().flatten().collect();
        seen.extend(std::iter::from_fn(|| stack.pop()).map(|value| *value));
        seen.sort_unstable();
        assert_eq!(seen, [0, 1], "each value is popped exactly once");
    });
}
