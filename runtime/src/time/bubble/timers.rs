//! The virtual timers of a bubble, bucketed by deadline.
//!
//! Timers cluster on few deadlines (every member sleeping the same period, tickers on one
//! grid), so each distinct deadline holds a bucket of sequence numbers and all of a
//! deadline's timers fire together. Removing a timer only forgets its target; its sequence
//! number is skipped when the bucket fires, and buckets are compacted when such stale
//! numbers outnumber the live timers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{IdMap, TimerKey, TimerTarget};

pub(super) struct Timers {
    buckets: BTreeMap<Duration, Vec<u64>>,
    targets: IdMap<TimerTarget>,
    /// Sequence numbers in buckets, live or stale.
    queued: usize,
    /// Emptied buckets, reused so that a steady stream of sleeps allocates nothing.
    spare: Vec<Vec<u64>>,
}

/// A bucket that never fires keeps the map from freeing its last node, and allocating it
/// again, on every sleep of a lone member.
const SENTINEL: Duration = Duration::MAX;

impl Default for Timers {
    fn default() -> Self {
        Timers {
            buckets: BTreeMap::from([(SENTINEL, Vec::new())]),
            targets: IdMap::default(),
            queued: 0,
            spare: Vec::new(),
        }
    }
}

impl Timers {
    /// Adds a timer under `key`, whose sequence number is unique in the bubble.
    pub(super) fn insert(&mut self, (deadline, seq): TimerKey, target: TimerTarget) {
        self.buckets.entry(deadline).or_insert_with(|| self.spare.pop().unwrap_or_default()).push(seq);
        self.targets.insert(seq, target);
        self.queued += 1;
    }

    pub(super) fn get_mut(&mut self, key: TimerKey) -> Option<&mut TimerTarget> {
        self.targets.get_mut(&key.1)
    }

    pub(super) fn remove(&mut self, key: TimerKey) {
        self.targets.remove(&key.1);
        if self.queued > 2 * self.targets.len() + 64 {
            let targets = &self.targets;
            self.buckets.retain(|deadline, seqs| {
                seqs.retain(|seq| targets.contains_key(seq));
                !seqs.is_empty() || *deadline == SENTINEL
            });
            self.queued = self.targets.len();
        }
    }

    /// The earliest deadline of a live timer.
    pub(super) fn first_deadline(&mut self) -> Option<Duration> {
        loop {
            let entry = self.buckets.first_entry().filter(|entry| *entry.key() != SENTINEL)?;
            if entry.get().iter().any(|seq| self.targets.contains_key(seq)) {
                return Some(*entry.key());
            }
            self.queued -= entry.remove().len();
        }
    }

    /// Removes every timer due at `now`: member targets go to `members`, others to
    /// `wakers`, earliest deadline first and in registration order within a deadline.
    pub(super) fn take_due(
        &mut self,
        now: Duration,
        members: &mut Vec<super::MemberId>,
        wakers: &mut Vec<std::task::Waker>,
    ) {
        while let Some(entry) = self.buckets.first_entry().filter(|entry| *entry.key() <= now) {
            let mut seqs = entry.remove();
            self.queued -= seqs.len();
            seqs.sort_unstable();
            for seq in seqs.drain(..) {
                match self.targets.remove(&seq) {
                    Some(TimerTarget::Member(id)) => members.push(id),
                    Some(TimerTarget::Waker(waker)) => wakers.push(waker),
                    None => {}
                }
            }
            self.spare.push(seqs);
        }
    }

    pub(super) fn take_all(&mut self) -> Timers {
        std::mem::take(self)
    }
}
