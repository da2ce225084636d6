//! Go's Task 7: an ABA-safe lock-free stack on a double-width CAS, and the polyfills.
//!
//! Run it with `cargo run --example tagged`.

use gonext::atomic::{AtomicTagged, MutexTagged, PackedTagged, StackNode, TaggedCas, TreiberStack};
use std::sync::Arc;
use std::thread;

/// Four threads push and pop on one stack; every value comes out exactly once.
fn hammer<C: TaggedCas<StackNode<u64>> + 'static>(name: &str) {
    let stack = Arc::new(TreiberStack::<u64, C>::default());
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let stack = Arc::clone(&stack);
            thread::spawn(move || {
                let mut sum = 0;
                for i in 0..10_000 {
                    stack.push(t * 10_000 + i);
                    sum += stack.pop().expect("at least our own value is there");
                }
                sum
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert_eq!(total, (0..40_000).sum::<u64>());
    println!("{name:>13}: 40000 pushes and pops, nothing lost or duplicated");
}

fn main() {
    println!("hardware double-width CAS on this machine: {}", AtomicTagged::<u64>::is_lock_free());
    hammer::<AtomicTagged<_>>("AtomicTagged");
    hammer::<MutexTagged<_>>("MutexTagged");
    hammer::<PackedTagged<_, 3>>("PackedTagged");
}
