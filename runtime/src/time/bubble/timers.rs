//! The virtual timers of a bubble: a binary heap of deadlines with lazy removal.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::{IdMap, TimerKey, TimerTarget};

/// Pending timers, fired in `(deadline, registration)` order. Removing a timer only forgets
/// its target; its heap entry is skipped when it surfaces, and the heap is compacted when
/// such entries outnumber the live ones.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<TimerKey>>,
    targets: IdMap<TimerTarget>,
}

impl Timers {
    /// Adds a timer under `key`, whose sequence number is unique in the bubble.
    pub(super) fn insert(&mut self, key: TimerKey, target: TimerTarget) {
        self.heap.push(Reverse(key));
        self.targets.insert(key.1, target);
    }

    pub(super) fn get_mut(&mut self, key: TimerKey) -> Option<&mut TimerTarget> {
        self.targets.get_mut(&key.1)
    }

    pub(super) fn remove(&mut self, key: TimerKey) {
        self.targets.remove(&key.1);
        if self.heap.len() > 2 * self.targets.len() + 64 {
            let targets = &self.targets;
            self.heap.retain(|Reverse((_, seq))| targets.contains_key(seq));
        }
    }

    /// The earliest deadline of a live timer.
    pub(super) fn first_deadline(&mut self) -> Option<Duration> {
        while let Some(&Reverse((deadline, seq))) = self.heap.peek() {
            if self.targets.contains_key(&seq) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the target of the earliest timer due at `now`, if any.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<TimerTarget> {
        loop {
            let &Reverse((deadline, seq)) = self.heap.peek()?;
            if deadline > now {
                return None;
            }
            self.heap.pop();
            if let Some(target) = self.targets.remove(&seq) {
                return Some(target);
            }
        }
    }

    pub(super) fn take_all(&mut self) -> Timers {
        std::mem::take(self)
    }
}
