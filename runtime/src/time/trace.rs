//! A bubble's recorded history, readable as events, as a text timeline and as a Chrome
//! trace-event file (for Perfetto and `chrome://tracing`).

use std::fmt::{self, Write as _};
use std::panic::Location;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::bubble::record::{NO_MEMBER, RawKind, RecordedEvents, WakeCause};
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
#[derive(Clone)]
pub struct Trace {
    bubble: String,
    /// The events as the bubble recorded them; read as [`Event`]s on first use, so that a
    /// trace only written to a file or dropped costs no conversion.
    recorded: RecordedEvents,
    events: OnceLock<Vec<Event>>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace").field("bubble", &self.bubble).field("events", &self.events()).finish()
    }
}

/// One event of a [`Trace`].
#[derive(Debug, Clone)]
pub struct Event {
    seq: u64,
    at: Duration,
    member: Option<(MemberId, Arc<str>)>,
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
    pub(crate) fn new(bubble: String, recorded: RecordedEvents) -> Trace {
        Trace { bubble, recorded, events: OnceLock::new() }
    }

    fn convert(recorded: &RecordedEvents) -> Vec<Event> {
        let names: IdMap<Arc<str>> =
            recorded.names.iter().map(|(&id, name)| (id, Arc::from(name.as_str()))).collect();
        let name =
            |id: MemberId| names.get(&id).cloned().unwrap_or_else(|| Arc::from(format!("member-{id}")));
        let first = recorded.first_seq;
        (first..)
            .zip(&recorded.events)
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
                            WakeCause::Member(id) => WokenBy::Member(name(id).to_string()),
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
            .collect()
    }

    /// The bubble's label (`bubble #3`, with its name if it has one).
    pub fn bubble(&self) -> &str {
        &self.bubble
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[Event] {
        self.events.get_or_init(|| Self::convert(&self.recorded))
    }

    /// One line per event: `+1.5s  worker  woken by timer`.
    pub fn timeline(&self) -> String {
        let mut text = String::new();
        for event in self.events() {
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

    /// Writes [`to_chrome_json`](Self::to_chrome_json) to `path`, creating its directory if
    /// needed.
    ///
    /// # Errors
    ///
    /// Any error from creating the directory or writing the file.
    pub fn write_chrome_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
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
        self.member.as_ref().map(|(_, name)| &**name)
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

/// Builds the Chrome trace-event JSON of a [`Trace`], straight into one string (`fmt` is
/// avoided for the numbers: a trace has several per event).
struct ChromeTrace {
    json: String,
    first: bool,
    /// Per member: since when it runs (`None`) or is blocked.
    open: IdMap<(Duration, Option<Blocked>)>,
}

/// A member's blocked span, until it is woken.
#[derive(Clone, Copy)]
struct Blocked {
    op: &'static str,
    durable: bool,
    site: Option<&'static Location<'static>>,
}

impl ChromeTrace {
    fn new(trace: &Trace) -> ChromeTrace {
        let mut chrome = ChromeTrace {
            json: String::with_capacity(64 + trace.events().len() * 160),
            first: true,
            open: IdMap::default(),
        };
        chrome.json.push_str("{\"traceEvents\":[");
        chrome.metadata("process_name", 0, &trace.bubble);
        let mut named = IdMap::default();
        for event in trace.events() {
            if let Some((id, name)) = &event.member
                && named.insert(*id, ()).is_none()
            {
                chrome.metadata("thread_name", Self::tid(*id), name);
            }
            chrome.event(event);
        }
        let end = trace.events().last().map_or(Duration::ZERO, |event| event.at);
        let mut open: Vec<(MemberId, (Duration, Option<Blocked>))> = chrome.open.drain().collect();
        open.sort_by_key(|&(id, _)| id);
        for (id, (since, blocked)) in open {
            chrome.slice(id, since, end, blocked);
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
        let Some((id, _)) = &event.member else {
            return match &event.kind {
                EventKind::ClockAdvanced { from } => {
                    let jump = at.saturating_sub(*from);
                    self.instant(0, at, format_args!("clock +{jump:?}"), "g", None);
                }
                _ => self.instant(0, at, format_args!("timer fired"), "g", None),
            };
        };
        let id = *id;
        match &event.kind {
            EventKind::Started { spawned_at } => {
                self.open.insert(id, (at, None));
                self.instant(
                    Self::tid(id),
                    at,
                    format_args!("started"),
                    "t",
                    Some(("spawned_at", spawned_at)),
                );
            }
            EventKind::Finished => self.close(id, at),
            EventKind::Blocked { op, site, durable } => {
                self.close(id, at);
                self.open.insert(id, (at, Some(Blocked { op, durable: *durable, site: *site })));
            }
            EventKind::Woken { by } => {
                self.close(id, at);
                self.open.insert(id, (at, None));
                match by {
                    WokenBy::Member(name) => {
                        self.instant(Self::tid(id), at, format_args!("woken"), "t", Some(("by", name)));
                    }
                    other => {
                        let by = match other {
                            WokenBy::Timer => "timer",
                            WokenBy::WaitReturned => "wait returned",
                            WokenBy::Outside => "outside the bubble",
                            WokenBy::StdReady => "std wait over",
                            WokenBy::Failure => "failure",
                            WokenBy::Member(_) => unreachable!("handled above"),
                        };
                        self.instant(Self::tid(id), at, format_args!("woken"), "t", Some(("by", &by)));
                    }
                }
            }
            EventKind::Waiting { site } => {
                self.instant(Self::tid(id), at, format_args!("time::wait"), "t", Some(("site", site)));
            }
            EventKind::ClockAdvanced { .. } | EventKind::TimerFired => {}
        }
    }

    /// Ends member `id`'s open span at `at` as a slice.
    fn close(&mut self, id: MemberId, at: Duration) {
        if let Some((since, blocked)) = self.open.remove(&id) {
            self.slice(id, since, at, blocked);
        }
    }

    /// A complete event (`"ph":"X"`): member `id` ran, or was blocked, from `since` to `until`.
    fn slice(&mut self, id: MemberId, since: Duration, until: Duration, blocked: Option<Blocked>) {
        self.begin();
        self.json.push_str("{\"name\":");
        match blocked {
            None => self.json.push_str("\"running\",\"cat\":\"running\""),
            Some(Blocked { op, durable, .. }) => {
                self.json.push_str(if durable { "\"blocked: " } else { "\"waiting outside: " });
                escape_into(&mut self.json, op);
                self.json.push_str("\",\"cat\":\"blocked\"");
            }
        }
        self.json.push_str(",\"ph\":\"X\",\"ts\":");
        push_micros(&mut self.json, since);
        self.json.push_str(",\"dur\":");
        push_micros(&mut self.json, until.saturating_sub(since));
        self.ids(Self::tid(id));
        match blocked.and_then(|blocked| blocked.site) {
            Some(site) => {
                self.json.push_str(",\"args\":{\"site\":\"");
                escape_into(&mut self.json, site.file());
                self.json.push(':');
                push_u64(&mut self.json, u64::from(site.line()));
                self.json.push(':');
                push_u64(&mut self.json, u64::from(site.column()));
                self.json.push_str("\"}}");
            }
            None => self.json.push('}'),
        }
    }

    /// An instant event (`"ph":"i"`) of `scope` `g` (global) or `t` (its thread).
    fn instant(
        &mut self,
        tid: u64,
        at: Duration,
        name: fmt::Arguments<'_>,
        scope: &str,
        arg: Option<(&str, &dyn fmt::Display)>,
    ) {
        self.begin();
        self.json.push_str("{\"name\":");
        push_json_string(&mut self.json, name);
        self.json.push_str(",\"ph\":\"i\",\"s\":\"");
        self.json.push_str(scope);
        self.json.push_str("\",\"ts\":");
        push_micros(&mut self.json, at);
        self.ids(tid);
        self.json.push_str(",\"args\":{");
        if let Some((key, value)) = arg {
            push_json_string(&mut self.json, format_args!("{key}"));
            self.json.push(':');
            push_json_string(&mut self.json, format_args!("{value}"));
        }
        self.json.push_str("}}");
    }

    /// A metadata event (`"ph":"M"`) naming the process or a thread's track.
    fn metadata(&mut self, kind: &str, tid: u64, name: &str) {
        self.begin();
        self.json.push_str("{\"name\":\"");
        self.json.push_str(kind);
        self.json.push_str("\",\"ph\":\"M\"");
        self.ids(tid);
        self.json.push_str(",\"args\":{\"name\":");
        push_json_string(&mut self.json, format_args!("{name}"));
        self.json.push_str("}}");
    }

    /// Appends the process and thread ids of an event.
    fn ids(&mut self, tid: u64) {
        self.json.push_str(",\"pid\":1,\"tid\":");
        push_u64(&mut self.json, tid);
    }

    fn begin(&mut self) {
        if !self.first {
            self.json.push(',');
        }
        self.first = false;
    }
}

/// Appends a duration in microseconds, with nanosecond precision.
fn push_micros(out: &mut String, duration: Duration) {
    let nanos =
        duration.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(duration.subsec_nanos()));
    push_u64(out, nanos / 1000);
    let fraction = nanos % 1000;
    out.push('.');
    for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Appends `value` in decimal.
fn push_u64(out: &mut String, value: u64) {
    let mut divisor = 1;
    while value / divisor >= 10 {
        divisor *= 10;
    }
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: fmt::Arguments<'_>) {
    out.push('"');
    match text.as_str() {
        Some(text) => escape_into(out, text),
        None => fmt::Write::write_fmt(&mut JsonEscape(out), text).expect("writing to a String cannot fail"),
    }
    out.push('"');
}

/// Escapes what is written through it for the inside of a JSON string.
struct JsonEscape<'a>(&'a mut String);

impl fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text);
        Ok(())
    }
}

fn escape_into(out: &mut String, text: &str) {
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(text);
        return;
    }
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
}

#[cfg(test)]
mod tests {
    use super::{push_json_string, push_micros};
    use std::time::Duration;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        push_json_string(&mut out, format_args!(r#"a "b" \c"#));
        assert_eq!(out, r#""a \"b\" \\c""#);
        out.clear();
        push_json_string(&mut out, format_args!("line\nnext\u{1}"));
        assert_eq!(out, "\"line\\nnext\\u0001\"");
    }

    #[test]
    fn micros_keep_nanoseconds() {
        let mut out = String::new();
        push_micros(&mut out, Duration::from_nanos(1_500_250));
        assert_eq!(out, "1500.250");
        out.clear();
        push_micros(&mut out, Duration::ZERO);
        assert_eq!(out, "0.000");
    }
}
