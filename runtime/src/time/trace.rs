//! A bubble's recorded history, readable as events, as a text timeline and as a Chrome
//! trace-event file (for Perfetto and `chrome://tracing`).

use std::fmt::{self, Write as _};
use std::panic::Location;
use std::path::Path;
use std::time::Duration;

use super::bubble::record::{NO_MEMBER, RawEvent, RawKind, WakeCause};
use super::bubble::{IdMap, MemberId};

/// What happened in a bubble, in order: see [`Bubble::run_traced`](super::Bubble::run_traced),
/// [`Bubble::trace`](super::Bubble::trace) and [the module docs](super#seeing-what-happened).
///
/// ```
/// use gonext::time::{Bubble, EventKind};
/// use std::time::Duration;
///
/// let ((), trace) = Bubble::new().run_traced(|| gonext::thread::sleep(Duration::from_secs(3)));
/// let advanced = trace.events().iter().find(|e| matches!(e.kind(), EventKind::ClockAdvanced { .. }));
/// assert_eq!(advanced.unwrap().at(), Duration::from_secs(3));
/// print!("{}", trace.timeline());
/// ```
#[derive(Debug, Clone)]
pub struct Trace {
    bubble: String,
    events: Vec<Event>,
}

/// One event of a [`Trace`].
#[derive(Debug, Clone)]
pub struct Event {
    seq: u64,
    at: Duration,
    member: Option<(MemberId, String)>,
    kind: EventKind,
}

/// What an [`Event`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The member started.
    Started {
        /// The call that started it.
        spawned_at: &'static Location<'static>,
    },
    /// The member finished.
    Finished,
    /// The member blocked.
    Blocked {
        /// The operation, as reports name it (`time::sleep`, `chan::recv`).
        op: &'static str,
        /// Where it blocked; `None` for a std call seen by the `std-time` layer.
        site: Option<&'static Location<'static>>,
        /// `false` when it waits on something outside the bubble, which counts as running.
        durable: bool,
    },
    /// The member became runnable again.
    Woken {
        /// Who or what woke it.
        by: WokenBy,
    },
    /// The virtual clock jumped to the event's time.
    ClockAdvanced {
        /// Where the clock was.
        from: Duration,
    },
    /// The member called [`wait`](super::wait) (or [`wait_async`](super::wait_async)).
    Waiting {
        /// Where it called it.
        site: &'static Location<'static>,
    },
    /// A timer fired that wakes a future rather than a member directly.
    TimerFired,
}

/// Who or what woke a member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WokenBy {
    /// Its timer fired.
    Timer,
    /// Another member (or itself), by name.
    Member(String),
    /// Every other member was blocked, so its `wait()` returned.
    WaitReturned,
    /// A thread outside the bubble, or a waker gonext cannot attribute.
    Outside,
    /// Its std wait was over without a wake-up (a descriptor became ready, a futex word changed).
    StdReady,
    /// The bubble failed, and the member is being unwound.
    Failure,
}

impl Trace {
    pub(crate) fn new(bubble: String, raw: Vec<(u64, RawEvent)>, names: &IdMap<String>) -> Trace {
        let name = |id: MemberId| names.get(&id).map_or_else(|| format!("member-{id}"), Clone::clone);
        let events = raw
            .into_iter()
            .map(|(seq, event)| Event {
                seq,
                at: Duration::from_nanos(event.at),
                member: (event.member != NO_MEMBER).then(|| (event.member, name(event.member))),
                kind: match event.kind {
                    RawKind::Started { spawned_at } => EventKind::Started { spawned_at },
                    RawKind::Finished => EventKind::Finished,
                    RawKind::Parked { op, site, durable } => EventKind::Blocked { op, site, durable },
                    RawKind::Woken { by } => EventKind::Woken {
                        by: match by {
                            WakeCause::Timer => WokenBy::Timer,
                            WakeCause::Member(id) => WokenBy::Member(name(id)),
                            WakeCause::WaitReturned => WokenBy::WaitReturned,
                            WakeCause::Outside => WokenBy::Outside,
                            WakeCause::StdReady => WokenBy::StdReady,
                            WakeCause::Failure => WokenBy::Failure,
                        },
                    },
                    RawKind::ClockAdvanced { from } => {
                        EventKind::ClockAdvanced { from: Duration::from_nanos(from) }
                    }
                    RawKind::Waiting { site } => EventKind::Waiting { site },
                    RawKind::TimerFired => EventKind::TimerFired,
                },
            })
            .collect();
        Trace { bubble, events }
    }

    /// The bubble's label (`bubble #3`, with its name if it has one).
    pub fn bubble(&self) -> &str {
        &self.bubble
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// One line per event: `+1.5s  worker  woken by timer`.
    pub fn timeline(&self) -> String {
        let mut text = String::new();
        for event in &self.events {
            writeln!(text, "{event}").expect("writing to a String cannot fail");
        }
        text
    }

    /// The trace in Chrome's trace-event format (a JSON object with `traceEvents`), which
    /// Perfetto (ui.perfetto.dev) and `chrome://tracing` open as they are: one track per
    /// member, with a slice for each span it ran or was blocked, instant events for wakes
    /// and clock jumps, and virtual time on the time axis (microseconds from the bubble's
    /// start).
    pub fn to_chrome_json(&self) -> String {
        ChromeTrace::new(self).finish()
    }

    /// Writes [`to_chrome_json`](Self::to_chrome_json) to `path`.
    ///
    /// # Errors
    ///
    /// Any error from creating or writing the file.
    pub fn write_chrome_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_chrome_json())
    }
}

impl Event {
    /// Its position among the bubble's events (from 0; a report's timeline shows the last ones).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Virtual time since the bubble's start.
    pub fn at(&self) -> Duration {
        self.at
    }

    /// The member it happened to (`root`, `thread-1`, `task-2`, or a thread's adopted name);
    /// `None` for the clock and for timers of futures.
    pub fn member(&self) -> Option<&str> {
        self.member.as_ref().map(|(_, name)| name.as_str())
    }

    /// What happened.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.member().unwrap_or(match self.kind {
            EventKind::ClockAdvanced { .. } => "(clock)",
            _ => "(timer)",
        });
        write!(f, "+{:<12} {who:<12} ", format!("{:?}", self.at))?;
        match &self.kind {
            EventKind::Started { spawned_at } => write!(f, "started at {spawned_at}"),
            EventKind::Finished => f.write_str("finished"),
            EventKind::Blocked { op, site: Some(site), durable: true } => {
                write!(f, "blocked in {op} at {site}")
            }
            EventKind::Blocked { op, site: None, durable: true } => write!(f, "blocked in {op}"),
            EventKind::Blocked { op, site, durable: false } => {
                write!(f, "waiting in {op}")?;
                if let Some(site) = site {
                    write!(f, " at {site}")?;
                }
                f.write_str(" on something outside the bubble (not durable)")
            }
            EventKind::Woken { by } => match by {
                WokenBy::Timer => f.write_str("woken by its timer"),
                WokenBy::Member(name) => write!(f, "woken by {name}"),
                WokenBy::WaitReturned => f.write_str("woken: every other member is blocked (wait returns)"),
                WokenBy::Outside => f.write_str("woken from outside the bubble"),
                WokenBy::StdReady => f.write_str("woken: its std wait is over"),
                WokenBy::Failure => f.write_str("woken to unwind: the bubble failed"),
            },
            EventKind::ClockAdvanced { from } => {
                write!(f, "advanced by {:?} (every member was blocked)", self.at.saturating_sub(*from))
            }
            EventKind::Waiting { site } => write!(f, "waiting in time::wait at {site}"),
            EventKind::TimerFired => f.write_str("a timer fired"),
        }
    }
}

/// Builds the Chrome trace-event JSON of a [`Trace`].
struct ChromeTrace {
    json: String,
    first: bool,
    /// Per member: what it is doing since when (`None` name: running).
    open: IdMap<(Duration, Option<String>)>,
}

impl ChromeTrace {
    const PID: u64 = 1;

    fn new(trace: &Trace) -> ChromeTrace {
        let mut chrome =
            ChromeTrace { json: String::from("{\"traceEvents\":["), first: true, open: IdMap::default() };
        chrome.metadata("process_name", 0, &trace.bubble);
        let mut named = IdMap::default();
        for event in &trace.events {
            if let Some((id, name)) = &event.member
                && named.insert(*id, ()).is_none()
            {
                chrome.metadata("thread_name", Self::tid(*id), name);
            }
            chrome.event(event);
        }
        let end = trace.events.last().map_or(Duration::ZERO, |event| event.at);
        let open: Vec<(MemberId, (Duration, Option<String>))> = chrome.open.drain().collect();
        for (id, (since, blocked)) in open {
            chrome.slice(id, since, end, blocked.as_deref());
        }
        chrome
    }

    fn finish(mut self) -> String {
        self.json.push_str("],\"displayTimeUnit\":\"ms\"}\n");
        self.json
    }

    /// Member tracks are numbered from 1; track 0 holds the clock.
    fn tid(id: MemberId) -> u64 {
        id + 1
    }

    fn event(&mut self, event: &Event) {
        let at = event.at;
        let Some(&(id, _)) = event.member.as_ref() else {
            let name = match &event.kind {
                EventKind::ClockAdvanced { from } => format!("clock +{:?}", at.saturating_sub(*from)),
                _ => "timer fired".to_owned(),
            };
            return self.instant(0, at, &name, "g", &[]);
        };
        match &event.kind {
            EventKind::Started { spawned_at } => {
                self.open.insert(id, (at, None));
                self.instant(Self::tid(id), at, "started", "t", &[("spawned_at", spawned_at.to_string())]);
            }
            EventKind::Finished => self.close(id, at),
            EventKind::Blocked { op, site, durable } => {
                self.close(id, at);
                let name = if *durable { format!("blocked: {op}") } else { format!("waiting outside: {op}") };
                self.open.insert(id, (at, Some(name)));
                if let Some(site) = site {
                    self.instant(Self::tid(id), at, "park", "t", &[("site", site.to_string())]);
                }
            }
            EventKind::Woken { by } => {
                self.close(id, at);
                self.open.insert(id, (at, None));
                let by = match by {
                    WokenBy::Member(name) => name.clone(),
                    other => format!("{other:?}"),
                };
                self.instant(Self::tid(id), at, "woken", "t", &[("by", by)]);
            }
            EventKind::Waiting { site } => {
                self.instant(Self::tid(id), at, "time::wait", "t", &[("site", site.to_string())]);
            }
            EventKind::ClockAdvanced { .. } | EventKind::TimerFired => {}
        }
    }

    /// Ends member `id`'s open span at `at` as a slice.
    fn close(&mut self, id: MemberId, at: Duration) {
        if let Some((since, blocked)) = self.open.remove(&id) {
            self.slice(id, since, at, blocked.as_deref());
        }
    }

    fn slice(&mut self, id: MemberId, since: Duration, until: Duration, blocked: Option<&str>) {
        self.begin();
        let name = blocked.unwrap_or("running");
        write!(
            self.json,
            "{{\"name\":{},\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{},\"tid\":{}}}",
            json_string(name),
            if blocked.is_some() { "blocked" } else { "running" },
            micros(since),
            micros(until.saturating_sub(since)),
            Self::PID,
            Self::tid(id),
        )
        .expect("writing to a String cannot fail");
    }

    fn instant(&mut self, tid: u64, at: Duration, name: &str, scope: &str, args: &[(&str, String)]) {
        self.begin();
        write!(
            self.json,
            "{{\"name\":{},\"ph\":\"i\",\"s\":\"{scope}\",\"ts\":{},\"pid\":{},\"tid\":{tid},\"args\":{{",
            json_string(name),
            micros(at),
            Self::PID,
        )
        .expect("writing to a String cannot fail");
        for (i, (key, value)) in args.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(self.json, "{comma}{}:{}", json_string(key), json_string(value))
                .expect("writing to a String cannot fail");
        }
        self.json.push_str("}}");
    }

    fn metadata(&mut self, kind: &str, tid: u64, name: &str) {
        self.begin();
        write!(
            self.json,
            "{{\"name\":\"{kind}\",\"ph\":\"M\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":{}}}}}",
            Self::PID,
            json_string(name),
        )
        .expect("writing to a String cannot fail");
    }

    fn begin(&mut self) {
        if !self.first {
            self.json.push(',');
        }
        self.first = false;
    }
}

/// A duration in microseconds, with nanosecond precision.
fn micros(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    format!("{}.{:03}", nanos / 1000, nanos % 1000)
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String cannot fail");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::{json_string, micros};
    use std::time::Duration;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(json_string("line\nnext\u{1}"), "\"line\\nnext\\u0001\"");
    }

    #[test]
    fn micros_keep_nanoseconds() {
        assert_eq!(micros(Duration::from_nanos(1_500_250)), "1500.250");
        assert_eq!(micros(Duration::ZERO), "0.000");
    }
}
