//! The failure reports of a bubble: deadlock, virtual timeout and stall.

use std::fmt::Write as _;
use std::time::Duration;

use super::{BubbleState, Inner, Member, State};

/// Every member is durably blocked and no timer is pending.
pub(super) fn deadlock(bubble: &BubbleState, inner: &Inner) -> String {
    let mut report = String::from("deadlock: all tasks in bubble are blocked");
    if inner.root_done {
        report.push_str(" (the bubble's root returned, but the members below never finish)");
    }
    write!(report, "\n{} at virtual time {}:", bubble.label(), rfc3339(bubble.now_since_epoch()))
        .expect("writing to a String cannot fail");
    members(&mut report, inner);
    with_timeline(report, inner)
}

/// The next timer lies beyond the configured virtual timeout.
pub(super) fn timeout(bubble: &BubbleState, inner: &Inner, limit: Duration) -> String {
    let mut report = format!(
        "virtual timeout: {} did not finish within {limit:?} of virtual time (the clock reached {}); \
         the next timer was further ahead",
        bubble.label(),
        rfc3339(bubble.now_since_epoch()),
    );
    members(&mut report, inner);
    with_timeline(report, inner)
}

/// Nothing changed for `stall` of real time.
#[cfg_attr(loom, allow(dead_code, reason = "only the watchdog reports stalls, and models run without it"))]
pub(super) fn stall(bubble: &BubbleState, inner: &Inner, stall: Duration) -> String {
    let mut report = format!(
        "stall: nothing in {} moved for {stall:?} of real time; members marked running are busy or \
         blocked outside gonext (a std lock, real I/O, a foreign future):",
        bubble.label(),
    );
    members(&mut report, inner);
    with_timeline(report, inner)
}

/// `report` followed by the timeline, if the bubble recorded one, else by how to get one.
fn with_timeline(mut report: String, inner: &Inner) -> String {
    let timeline = timeline(inner);
    if timeline.is_empty() {
        report.push_str(
            "\n(run again with GONEXT_TIMELINE=20 to end this report with the bubble's last 20 events, \
             or GONEXT_TRACE=<dir> to write its trace for Perfetto)",
        );
        return report;
    }
    report.push('\n');
    report.push_str(&timeline);
    report
}

/// The recorded events as text, under a heading: `the last 20 events (virtual time since the
/// start):` and one line per event; empty when nothing was recorded.
pub(super) fn timeline(inner: &Inner) -> String {
    let recorded = inner.recorder.snapshot();
    if recorded.events.is_empty() {
        return String::new();
    }
    let count = recorded.events.len();
    let trace = crate::time::Trace::new(String::new(), recorded);
    format!("the last {count} events (virtual time since the start):\n{}", trace.timeline().trim_end())
}

fn members(report: &mut String, inner: &Inner) {
    let mut listed: Vec<&Member> = inner.members.iter().map(|(_, member)| member).collect();
    listed.sort_by_key(|member| member.number);
    for member in listed {
        let state = match member.state {
            State::Running if in_untimed_std_wait(member) => {
                "in an untimed std wait (counts as running)".to_owned()
            }
            State::Running => "running".to_owned(),
            State::Blocked { site: Some(site), op } => format!("blocked in {op} at {site}"),
            State::Blocked { site: None, op } => format!("blocked in {op}"),
            State::Outside { site, op: None } => format!("pending outside gonext (spawned at {site})"),
            State::Outside { site, op: Some(op) } => {
                format!(
                    "blocked in {op} at {site} on an object created outside the bubble (counts as running)"
                )
            }
        };
        write!(report, "\n  - {} (started at {}): {state}", member.name, member.spawned_at)
            .expect("writing to a String cannot fail");
    }
}

/// Whether a running member sits in a futex wait without a timeout (`std-time`).
fn in_untimed_std_wait(member: &Member) -> bool {
    #[cfg(gonext_std_time)]
    if let super::Kind::Thread(Some(parker)) = &member.kind {
        return parker.in_std_wait.load(std::sync::atomic::Ordering::Relaxed);
    }
    let _ = member;
    false
}

/// Formats a time since the Unix epoch as RFC 3339 in UTC, with fractional seconds only when
/// there are any.
pub(crate) fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out =
        format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    let nanos = since_epoch.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        write!(out, ".{}", fraction.trim_end_matches('0')).expect("writing to a String cannot fail");
    }
    out.push('Z');
    out
}

/// Howard Hinnant's days-to-civil algorithm for the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::Duration;

    #[test]
    fn formats_the_default_start_and_fractions() {
        assert_eq!(rfc3339(Duration::from_secs(946_684_800)), "2000-01-01T00:00:00Z");
        assert_eq!(rfc3339(Duration::from_millis(946_685_400_250)), "2000-01-01T00:10:00.25Z");
        assert_eq!(rfc3339(Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
    }
}
