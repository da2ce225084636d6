//! Loom models of a result slot's hand-off: a joiner registering (and replacing) its waker,
//! or marking the scope's body as waiting, while the task ends on another thread.
//!
//! Caught when broken: with `Slot::register` writing the new waker without first taking the
//! `WAITING` bit back, `a_replaced_waker_is_the_one_woken` fails with loom's report of a
//! concurrent access to the waker's cell; with `Slot::wake` ignoring `BODY_WAITING`,
//! `the_body_is_told_of_an_end_it_did_not_see` fails its assertion.

use std::panic::Location;
use std::sync::Arc;
use std::task::{Wake, Waker};

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use super::Slot;
use crate::scope::slots::SlotRef;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Counts its wakes.
struct Counter(AtomicUsize);

impl Counter {
    fn new() -> Arc<Counter> {
        Arc::new(Counter(AtomicUsize::new(0)))
    }

    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_registered_waker_is_woken_unless_the_registration_saw_the_end() {
    model(|| {
        let (slot, task) = SlotRef::pair(Slot::new(Location::caller()), None);
        let filler = thread::spawn(move || {
            task.fill(Ok(7u8));
        });
        let counter = Counter::new();
        let ended = slot.register(&Waker::from(Arc::clone(&counter)));
        filler.join().unwrap();
        if !ended {
            assert_eq!(counter.wakes(), 1, "a pending registration is woken once");
        }
        assert!(matches!(slot.take(), Some(Ok(7))), "the output is there after the end");
    });
}

#[test]
fn a_replaced_waker_is_the_one_woken() {
    model(|| {
        let (slot, task) = SlotRef::<u8>::pair(Slot::new(Location::caller()), None);
        let first = Counter::new();
        assert!(!slot.register(&Waker::from(Arc::clone(&first))));
        let canceler = thread::spawn(move || {
            task.cancel();
        });
        let second = Counter::new();
        let ended = slot.register(&Waker::from(Arc::clone(&second)));
        canceler.join().unwrap();
        if ended {
            assert_eq!(second.wakes(), 0, "a registration that saw the end is not woken");
            assert!(first.wakes() <= 1, "the end woke the waker it found, if any, once");
        } else {
            assert_eq!((first.wakes(), second.wakes()), (0, 1), "the replacement is woken, not the first");
        }
        assert!(slot.is_done());
    });
}

#[test]
fn the_body_is_told_of_an_end_it_did_not_see() {
    model(|| {
        let (slot, task) = SlotRef::<u8>::pair(Slot::new(Location::caller()), None);
        let filler = thread::spawn(move || task.fill(Ok(1)));
        let ended = slot.register_body(false);
        let told = filler.join().unwrap();
        assert!(ended || told, "either the body saw the end or the end reports the waiting body");
    });
}
