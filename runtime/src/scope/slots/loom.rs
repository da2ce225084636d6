//! Loom models of the result slots' blocks: references to slots of one block dropped on
//! different threads, in every order, against the scope's cursor leaving the block.
//!
//! Blocks are allocated through loom, which fails a model that leaks one (a count that never
//! reaches zero) or frees one twice; each slot's value is a loom `Arc`, so a value dropped
//! twice or never fails it too.
//!
//! Caught when broken: with `SlotCursor::retire` releasing one slot fewer than it never
//! handed out, `slots_of_two_layouts_from_one_cursor_release_their_own_blocks` fails with
//! loom's "Allocation leaked" report (the block's count never reaches zero); with `SlotRef`'s
//! last drop releasing the slot without dropping its value in place, both models fail with
//! "Arc leaked".

use std::panic::Location;

use ::loom::sync::Arc;
use ::loom::thread;

use super::{SlotCursor, SlotRef};
use crate::scope::handle::Slot;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn a_block_is_freed_once_whoever_lets_go_last() {
    model(|| {
        let mut cursor = SlotCursor::new();
        let one = SlotRef::new(Slot::new(Location::caller()), Some(&mut cursor));
        let two = SlotRef::new(Slot::new(Location::caller()), Some(&mut cursor));
        let (task_one, task_two) = (one.clone(), two.clone());
        let worker = thread::spawn(move || {
            task_one.fill(Ok(Arc::new(1)));
            task_two.fill(Ok(Arc::new(2)));
        });
        drop(cursor);
        drop(two);
        drop(one);
        worker.join().unwrap();
    });
}

#[test]
fn slots_of_two_layouts_from_one_cursor_release_their_own_blocks() {
    model(|| {
        let mut cursor = SlotCursor::new();
        let small = SlotRef::new(Slot::new(Location::caller()), Some(&mut cursor));
        let large = SlotRef::new(Slot::new(Location::caller()), Some(&mut cursor));
        let task_small = small.clone();
        let task_large = large.clone();
        let worker = thread::spawn(move || {
            task_small.fill(Ok(Arc::new(1u8)));
            task_large.fill(Ok((Arc::new(2u64), [0u64; 8])));
        });
        drop(small);
        drop(cursor);
        drop(large);
        worker.join().unwrap();
    });
}
