//! Loom models of `unique`'s counters: the owner thread counting in its plain fields while
//! other threads count atomically, and the owner letting a counter go (a sweep, an eviction
//! or its exit) while a handle it made is dropped elsewhere — exactly one of them frees it.
//!
//! Each loom thread has its own caches and thread id (through `sync_shim`). The owner's
//! fields are loom `Cell`s and freeing a counter writes them (`Counts::destroying`), so a free
//! that is not ordered after the owner's last use, or a non-owner touching them, is reported
//! as a data race. The values carry a loom `Arc`, so a value freed twice or never fails the
//! model.
//!
//! Loom lets `join` return before the joined thread's thread-locals are dropped, so the
//! models check the end state through the values' `Arc`s (loom reports "Arc leaked" for a
//! value whose entry is never freed, checked after every thread-local is gone), not through
//! [`unique::live`].
//!
//! Caught when broken: with `Counter::uncache`'s `fetch_add` `Relaxed` instead of `AcqRel`,
//! both models fail with "Causality violation: Concurrent write accesses to `UnsafeCell`" (a
//! drop elsewhere freed the counter without seeing the owner's last write of its count); with
//! `uncache` never freeing, both fail with "Arc leaked".

use std::hash::{Hash, Hasher};

use ::loom::sync::{Arc, Mutex};
use ::loom::thread;

use crate::unique::{self, Handle};

/// A value whose copies loom tracks.
#[derive(Clone, Debug)]
struct Tracked {
    id: u32,
    _token: Arc<()>,
}

impl Tracked {
    fn new(id: u32) -> Tracked {
        Tracked { id, _token: Arc::new(()) }
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Tracked {}

impl Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Takes the handle another thread leaves in `slot`.
fn receive(slot: &Mutex<Option<Handle<Tracked>>>) -> Handle<Tracked> {
    loop {
        if let Some(handle) = slot.lock().unwrap().take() {
            return handle;
        }
        thread::yield_now();
    }
}

#[test]
fn a_handle_dropped_elsewhere_races_the_owner_letting_go() {
    model(|| {
        let slot = Arc::new(Mutex::new(None));
        let owner = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                let first = unique::make(Tracked::new(1));
                *slot.lock().unwrap() = Some(first.clone());
                drop(first);
                // Lets the counter go while the other thread may still hold its handle.
                unique::live::<Tracked>();
            })
        };
        let other = thread::spawn(move || drop(receive(&slot)));
        owner.join().unwrap();
        other.join().unwrap();
    });
}

#[test]
fn a_cached_value_is_resurrected_while_another_thread_interns_it() {
    model(|| {
        let slot = Arc::new(Mutex::new(None));
        let owner = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                let first = unique::make(Tracked::new(2));
                *slot.lock().unwrap() = Some(first.clone());
                drop(first);
                // A hit on the idle cached counter revives it.
                let again = unique::make(Tracked::new(2));
                assert_eq!(again.id, 2);
            })
        };
        let other = thread::spawn(move || {
            let received = receive(&slot);
            let mine = unique::make(Tracked::new(2));
            assert!(mine == received, "equal values give equal handles while one lives");
        });
        owner.join().unwrap();
        other.join().unwrap();
    });
}
