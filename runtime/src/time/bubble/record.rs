//! What a bubble remembers of its own history: members starting and finishing, parking and
//! waking (and by whom), the clock moving, `wait()` calls and timers firing, each stamped with
//! virtual time and a sequence number.
//!
//! Recording is off unless asked for (it would cost the bubble's hot paths about a tenth):
//! with a timeline, the bubble keeps its last few events for its failure reports, in a ring
//! written under the lock it already holds for each of them; with a trace, it keeps them all.
//! Events are recorded raw (ids, `&'static` sites) and named only when read.

use super::{IdMap, MemberId, Site};

/// How many of the latest events a report shows when recording is on without a count.
pub(crate) const DEFAULT_TIMELINE: usize = 20;

/// The timeline length `GONEXT_TIMELINE` asks for (`GONEXT_TIMELINE=1` and other values
/// below 2 mean the default), or 0 when it is unset; a value that is not a count is reported
/// once and ignored.
pub(crate) fn timeline_from_env() -> usize {
    let Some(value) = std::env::var_os("GONEXT_TIMELINE") else { return 0 };
    match value.to_str().and_then(|text| text.trim().parse::<usize>().ok()) {
        Some(0) => 0,
        Some(1) => DEFAULT_TIMELINE,
        Some(count) => count,
        None => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!("gonext: GONEXT_TIMELINE={value:?} is not a number of events; timelines stay off");
            });
            0
        }
    }
}

/// One recorded event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEvent {
    /// Virtual nanoseconds since the bubble's start.
    pub(crate) at: u64,
    /// The member it happened to; `NO_MEMBER` for the clock and for timers of futures.
    pub(crate) member: MemberId,
    pub(crate) kind: RawKind,
}

/// The `member` of events that happen to no member.
pub(crate) const NO_MEMBER: MemberId = MemberId::MAX;

#[derive(Clone, Copy, Debug)]
pub(crate) enum RawKind {
    Started {
        spawned_at: Site,
    },
    Finished,
    /// Parked in `op` at `site` (no site for std calls); `durable` unless it waits on
    /// something outside the bubble.
    Parked {
        op: &'static str,
        site: Option<Site>,
        durable: bool,
    },
    Woken {
        by: WakeCause,
    },
    /// The clock jumped from `from` (virtual nanoseconds) to the event's time.
    ClockAdvanced {
        from: u64,
    },
    /// A member called `wait()` at `site`.
    Waiting {
        site: Site,
    },
    /// A timer that wakes no member directly (a future's waker) fired.
    TimerFired,
}

/// Who or what made a member runnable again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeCause {
    Timer,
    Member(MemberId),
    /// The bubble woke its `wait()` caller: every other member was blocked.
    WaitReturned,
    /// A thread outside the bubble, or a waker gonext cannot attribute.
    Outside,
    /// Its std wait turned out to be over (a descriptor became ready, a futex word changed).
    #[cfg_attr(not(gonext_std_time), allow(dead_code, reason = "only the std-time layer waits in std"))]
    StdReady,
    /// The bubble failed.
    Failure,
}

/// Events taken from a recorder: consecutive sequence numbers from `first_seq`, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct RecordedEvents {
    pub(crate) first_seq: u64,
    pub(crate) events: Vec<RawEvent>,
    pub(crate) names: IdMap<String>,
}

/// The recorder of one bubble.
pub(crate) struct Recorder {
    /// How many events to keep; `usize::MAX` for a trace, 0 for none.
    keep: usize,
    /// The events: the latest `keep` in a ring (the oldest at `head` once full), or all.
    events: Vec<RawEvent>,
    /// The slot the next event overwrites once the ring is full.
    head: usize,
    /// How many events were recorded.
    next: u64,
    /// Member names, kept after members leave so that old events can name them.
    names: IdMap<String>,
}

impl Recorder {
    /// A recorder keeping the last `keep` events, or all of them with `all`.
    pub(crate) fn new(keep: usize, all: bool) -> Recorder {
        let keep = if all { usize::MAX } else { keep };
        Recorder { keep, events: Vec::new(), head: 0, next: 0, names: IdMap::default() }
    }

    /// Whether anything is recorded.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.keep > 0
    }

    /// Records an event at `at` virtual nanoseconds: a store into the ring, under the bubble's
    /// lock that the caller holds anyway.
    #[inline]
    pub(crate) fn record(&mut self, at: u64, member: MemberId, kind: RawKind) {
        if self.keep != 0 {
            self.push(RawEvent { at, member, kind });
        }
    }

    /// Out of line, so that the bubble's hot paths stay small.
    #[inline(never)]
    fn push(&mut self, event: RawEvent) {
        self.next += 1;
        if self.events.len() < self.keep {
            self.events.push(event);
            return;
        }
        self.events[self.head] = event;
        self.head += 1;
        if self.head == self.events.len() {
            self.head = 0;
        }
    }

    /// Remembers a member's name for events read after it left.
    pub(crate) fn name(&mut self, id: MemberId, name: &str) {
        if self.keep > 0 {
            self.names.insert(id, name.to_owned());
        }
    }

    /// The sequence number of the oldest event kept.
    fn first_seq(&self) -> u64 {
        self.next - self.events.len() as u64
    }

    /// A copy of the events, oldest first, and names, for a report's timeline.
    pub(crate) fn snapshot(&self) -> RecordedEvents {
        let (newer, older) = self.events.split_at(self.head);
        let events = older.iter().chain(newer).copied().collect();
        RecordedEvents { first_seq: self.first_seq(), events, names: self.names.clone() }
    }

    /// Takes every event and name, leaving the recorder empty. A trace's ring never wraps, so
    /// its events move out as they are, without a copy.
    pub(crate) fn take(&mut self) -> RecordedEvents {
        let first_seq = self.first_seq();
        let mut events = std::mem::take(&mut self.events);
        events.rotate_left(self.head);
        self.head = 0;
        self.next = 0;
        RecordedEvents { first_seq, events, names: std::mem::take(&mut self.names) }
    }
}
