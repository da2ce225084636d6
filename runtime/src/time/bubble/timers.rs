//! The virtual timers of a bubble, bucketed by deadline.
//!
//! Timers cluster on few deadlines (every member sleeping the same period, tickers on one
//! grid), so each distinct deadline holds a bucket and all of a deadline's timers fire
//! together. A timer that wakes a member (the common case: a member sleeping) lives in its
//! bucket alone, with no other table to update when it is added or fires; only timers that
//! wake a foreign waker keep that waker in a map. Removing a member's timer before it fires
//! records its sequence number as cancelled; the number is skipped when its bucket fires, and
//! buckets are compacted when such stale entries outnumber the live timers.

use std::collections::BTreeMap;

use super::{IdMap, MemberId, TimerKey, TimerTarget};

/// A timer in a bucket: its sequence number and the member it wakes, or [`WAKER`].
#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    member: MemberId,
}

/// The `member` of an entry whose target is a waker in `Timers::wakers`.
const WAKER: MemberId = MemberId::MAX;

pub(super) struct Timers {
    /// By deadline, in virtual nanoseconds.
    buckets: BTreeMap<u64, Vec<Entry>>,
    /// The wakers of timers that wake a waker, by sequence number.
    wakers: IdMap<std::task::Waker>,
    /// Member timers removed before firing, by sequence number, still in their buckets.
    cancelled: crate::hash::FastSet<u64>,
    /// Entries in buckets, live or stale.
    queued: usize,
    /// Timers added and neither fired nor removed.
    live: usize,
    /// Emptied buckets, reused so that a steady stream of sleeps allocates nothing.
    spare: Vec<Vec<Entry>>,
}

/// A bucket that never fires keeps the map from freeing its last node, and allocating it
/// again, on every sleep of a lone member.
const SENTINEL: u64 = u64::MAX;

impl Default for Timers {
    fn default() -> Self {
        Timers {
            buckets: BTreeMap::from([(SENTINEL, Vec::new())]),
            wakers: IdMap::default(),
            cancelled: Default::default(),
            queued: 0,
            live: 0,
            spare: Vec::new(),
        }
    }
}

impl Timers {
    /// Adds a timer under `key`, whose sequence number is unique in the bubble.
    pub(super) fn insert(&mut self, (deadline, seq): TimerKey, target: TimerTarget) {
        let member = match target {
            TimerTarget::Member(id) => id,
            TimerTarget::Waker(waker) => {
                self.wakers.insert(seq, waker);
                WAKER
            }
        };
        let bucket = self.buckets.entry(deadline).or_insert_with(|| self.spare.pop().unwrap_or_default());
        bucket.push(Entry { seq, member });
        self.queued += 1;
        self.live += 1;
    }

    /// The waker of a registered waker timer; `None` once it fired or was removed.
    pub(super) fn waker_mut(&mut self, key: TimerKey) -> Option<&mut std::task::Waker> {
        self.wakers.get_mut(&key.1)
    }

    /// Removes a timer that has not fired: its deadline is still ahead of the clock (`now`).
    /// A timer at or before `now` has fired, and there is nothing left to remove.
    pub(super) fn remove(&mut self, (deadline, seq): TimerKey, now: u64) {
        if deadline <= now {
            return;
        }
        if self.wakers.remove(&seq).is_none() && !self.cancelled.insert(seq) {
            return;
        }
        self.live -= 1;
        if self.queued > 2 * self.live + 64 {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let (wakers, cancelled) = (&self.wakers, &mut self.cancelled);
        self.buckets.retain(|deadline, entries| {
            entries.retain(|entry| Self::is_live(entry, wakers, cancelled));
            !entries.is_empty() || *deadline == SENTINEL
        });
        self.cancelled.clear();
        self.queued = self.buckets.values().map(Vec::len).sum();
    }

    /// Whether `entry` still wakes something; a cancelled member entry found here is dropped
    /// from `cancelled`, since its bucket forgets it.
    fn is_live(
        entry: &Entry,
        wakers: &IdMap<std::task::Waker>,
        cancelled: &mut crate::hash::FastSet<u64>,
    ) -> bool {
        match entry.member {
            WAKER => wakers.contains_key(&entry.seq),
            _ => cancelled.is_empty() || !cancelled.remove(&entry.seq),
        }
    }

    /// The earliest deadline of a live timer.
    pub(super) fn first_deadline(&mut self) -> Option<u64> {
        loop {
            let mut entry = self.buckets.first_entry().filter(|entry| *entry.key() != SENTINEL)?;
            let (wakers, cancelled) = (&self.wakers, &mut self.cancelled);
            let before = entry.get().len();
            entry.get_mut().retain(|timer| Self::is_live(timer, wakers, cancelled));
            self.queued -= before - entry.get().len();
            if !entry.get().is_empty() {
                return Some(*entry.key());
            }
            self.spare.push(entry.remove());
        }
    }

    /// Removes every timer due at `now`: member targets go to `members`, others to
    /// `wakers`, earliest deadline first and in registration order within a deadline.
    pub(super) fn take_due(
        &mut self,
        now: u64,
        members: &mut Vec<MemberId>,
        wakers: &mut Vec<std::task::Waker>,
    ) {
        while let Some(entry) = self.buckets.first_entry().filter(|entry| *entry.key() <= now) {
            let mut entries = entry.remove();
            self.queued -= entries.len();
            entries.sort_unstable_by_key(|entry| entry.seq);
            for entry in entries.drain(..) {
                match entry.member {
                    WAKER => match self.wakers.remove(&entry.seq) {
                        Some(waker) => wakers.push(waker),
                        None => continue,
                    },
                    _ if !self.cancelled.is_empty() && self.cancelled.remove(&entry.seq) => continue,
                    member => members.push(member),
                }
                self.live -= 1;
            }
            self.spare.push(entries);
        }
    }

    pub(super) fn take_all(&mut self) -> Timers {
        std::mem::take(self)
    }
}
