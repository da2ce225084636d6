//! Seeing what a bubble did: recorded events, timelines in failure reports, and Chrome trace
//! files for Perfetto.

use gonext::time::{self, Bubble, Event, EventKind, WokenBy};
use gonext::{sync, thread, virtual_time_test};
use gonext_tests::Json;
use gonext_tests::panic_message;
use std::path::PathBuf;
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An event as `(virtual time, member, what)`, with sites left out.
fn summary(event: &Event) -> (Duration, String, String) {
    let what = match event.kind() {
        EventKind::Started { .. } => "started".to_owned(),
        EventKind::Finished => "finished".to_owned(),
        EventKind::Blocked { op, durable: true, .. } => format!("blocked in {op}"),
        EventKind::Blocked { op, durable: false, .. } => format!("waiting outside in {op}"),
        EventKind::Woken { by: WokenBy::Member(name) } => format!("woken by {name}"),
        EventKind::Woken { by } => format!("woken: {by:?}"),
        EventKind::ClockAdvanced { from } => format!("clock from {from:?}"),
        EventKind::Waiting { .. } => "waiting".to_owned(),
        EventKind::TimerFired => "timer fired".to_owned(),
        other => format!("{other:?}"),
    };
    (event.at(), event.member().unwrap_or("-").to_owned(), what)
}

fn summaries(events: &[Event], member: &str) -> Vec<(Duration, String)> {
    events.iter().map(summary).filter(|(_, who, _)| who == member).map(|(at, _, what)| (at, what)).collect()
}

/// A fresh directory under the target directory, for trace files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_sleeping_root_records_its_park_the_clock_jump_and_its_wake_by_timer() {
    let ((), trace) = Bubble::new().run_traced(|| thread::sleep(secs(2)));
    let events: Vec<_> = trace.events().iter().map(summary).collect();
    let expected = [
        (secs(0), "root", "started"),
        (secs(0), "root", "blocked in thread::sleep"),
        (secs(2), "-", "clock from 0ns"),
        (secs(2), "root", "woken: Timer"),
        (secs(2), "root", "finished"),
    ];
    let expected: Vec<_> =
        expected.iter().map(|&(at, who, what)| (at, who.to_owned(), what.to_owned())).collect();
    assert_eq!(events, expected);
    let seqs: Vec<u64> = trace.events().iter().map(Event::seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert!(matches!(
        trace.events()[1].kind(),
        EventKind::Blocked { site: Some(site), .. } if site.file().ends_with("bubble_trace.rs")
    ));
}

#[test]
fn a_member_woken_by_another_names_who_woke_it() {
    let ((), trace) = Bubble::new().run_traced(|| {
        let (tx, rx) = sync::chan::<u32>(0);
        let receiver = thread::spawn(move || rx.recv());
        thread::sleep(secs(1));
        tx.send(7).unwrap();
        assert_eq!(receiver.join().unwrap(), Some(7));
    });
    let receiver = summaries(trace.events(), "thread-1");
    assert_eq!(receiver[0], (secs(0), "started".to_owned()));
    assert_eq!(receiver[1], (secs(0), "blocked in chan recv".to_owned()));
    assert_eq!(receiver[2], (secs(1), "woken by root".to_owned()));
    assert_eq!(receiver.last().unwrap(), &(secs(1), "finished".to_owned()));
}

#[test]
fn wait_records_the_call_and_its_return_once_the_others_are_blocked() {
    let ((), trace) = Bubble::new().run_traced(|| {
        let sleeper = thread::spawn(|| thread::sleep(secs(5)));
        time::wait();
        sleeper.join().unwrap();
    });
    let root = summaries(trace.events(), "root");
    let waiting = root.iter().position(|(_, what)| what == "waiting").expect("a waiting event");
    assert_eq!(root[waiting + 1], (secs(0), "blocked in time::wait".to_owned()));
    assert_eq!(root[waiting + 2], (secs(0), "woken: WaitReturned".to_owned()));
}

#[test]
fn a_wait_on_something_outside_the_bubble_is_recorded_as_not_durable() {
    let (tx, rx) = sync::chan::<u32>(0);
    let outside = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(1).unwrap();
    });
    let (_, trace) = Bubble::new().run_traced(move || rx.recv());
    outside.join().unwrap();
    let root = summaries(trace.events(), "root");
    assert_eq!(root[1], (secs(0), "waiting outside in chan recv".to_owned()));
    assert_eq!(root[2], (secs(0), "woken: Outside".to_owned()));
}

#[test]
fn a_timer_of_a_future_records_its_firing() {
    let ((), trace) = Bubble::new().run_traced(|| {
        let _timer = time::after_func(secs(3), || ());
        thread::sleep(secs(4));
    });
    let fired = trace.events().iter().map(summary).find(|(_, _, what)| what == "timer fired");
    assert_eq!(fired, Some((secs(3), "-".to_owned(), "timer fired".to_owned())));
    let after_func = summaries(trace.events(), "thread-1");
    assert_eq!(after_func.first(), Some(&(secs(3), "started".to_owned())), "its function ran as a member");
}

#[test]
fn a_deadlock_report_ends_with_the_timeline_line_by_line() {
    let report = panic_message(|| {
        Bubble::new().timeline(10).run(|| {
            thread::sleep(Duration::from_millis(1500));
            sync::chan::<u8>(0).1.recv()
        });
    });
    let timeline: Vec<&str> = report.lines().skip_while(|line| !line.starts_with("the last")).collect();
    assert_eq!(timeline[0], "the last 5 events (virtual time since the start):", "{report}");
    let expected_starts = [
        "+0ns          root         started at tests/bubble_trace.rs:",
        "+0ns          root         blocked in thread::sleep at tests/bubble_trace.rs:",
        "+1.5s         (clock)      advanced by 1.5s (every member was blocked)",
        "+1.5s         root         woken by its timer",
        "+1.5s         root         blocked in chan recv at tests/bubble_trace.rs:",
    ];
    assert_eq!(timeline.len(), expected_starts.len() + 1, "{report}");
    for (line, expected) in timeline[1..].iter().zip(expected_starts) {
        assert!(line.starts_with(expected), "{line:?} should start with {expected:?}");
    }
}

#[test]
fn without_a_timeline_a_report_says_how_to_get_one() {
    let report = panic_message(|| {
        Bubble::new().timeline(0).run(|| sync::chan::<u8>(0).1.recv());
    });
    assert!(!report.contains("the last"), "{report}");
    assert!(report.ends_with("or GONEXT_TRACE=<dir> to write its trace for Perfetto)"), "{report}");
    assert!(report.contains("run again with GONEXT_TIMELINE=20"), "{report}");
}

#[test]
fn a_timeline_keeps_only_the_latest_events() {
    let report = panic_message(|| {
        Bubble::new().timeline(3).run(|| {
            for _ in 0..10 {
                thread::sleep(secs(1));
            }
            sync::chan::<u8>(0).1.recv()
        });
    });
    let timeline: Vec<&str> = report.lines().skip_while(|line| !line.starts_with("the last")).collect();
    assert_eq!(timeline.len(), 4, "{report}");
    assert!(timeline[1].starts_with("+10s          (clock)"), "{report}");
    assert!(timeline[3].starts_with("+10s          root         blocked in chan recv"), "{report}");
}

/// Every event of a Chrome trace-event file, checked against the format's required fields.
fn chrome_events(json: &str) -> Vec<Json> {
    let file = Json::parse(json).expect("a trace file is JSON");
    assert_eq!(file.get("displayTimeUnit").and_then(Json::as_str), Some("ms"));
    let events = file.get("traceEvents").and_then(Json::as_array).expect("a traceEvents array");
    for event in events {
        let phase = event.get("ph").and_then(Json::as_str).expect("every event has a phase");
        assert!(event.get("name").and_then(Json::as_str).is_some(), "{event:?} has a name");
        assert!(event.get("pid").and_then(Json::as_f64).is_some(), "{event:?} has a pid");
        assert!(event.get("tid").and_then(Json::as_f64).is_some(), "{event:?} has a tid");
        match phase {
            "X" => {
                assert!(event.get("ts").and_then(Json::as_f64).is_some_and(|ts| ts >= 0.0), "{event:?}");
                assert!(event.get("dur").and_then(Json::as_f64).is_some_and(|dur| dur >= 0.0), "{event:?}");
            }
            "i" => {
                assert!(event.get("ts").and_then(Json::as_f64).is_some(), "{event:?}");
                assert!(matches!(event.get("s").and_then(Json::as_str), Some("g" | "p" | "t")), "{event:?}");
            }
            "M" => assert!(event.get("args").and_then(|args| args.get("name")).is_some(), "{event:?}"),
            other => panic!("unexpected phase {other:?} in {event:?}"),
        }
    }
    events.to_vec()
}

fn field<'a>(event: &'a Json, key: &str) -> &'a Json {
    event.get(key).unwrap_or_else(|| panic!("{event:?} has no {key}"))
}

#[test]
fn the_trace_file_of_a_ping_pong_has_a_track_per_member_with_its_spans() {
    let dir = scratch_dir("ping-pong-trace");
    let path = dir.join("ping-pong.json");
    Bubble::new().name("ping-pong").trace(&path).run(|| {
        let (ping, pings) = sync::chan::<u32>(0);
        let (pong, pongs) = sync::chan::<u32>(0);
        let ponger = thread::spawn(move || {
            for n in &pings {
                thread::sleep(secs(1));
                pong.send(n).unwrap();
            }
        });
        for n in 0..2 {
            ping.send(n).unwrap();
            assert_eq!(pongs.recv(), Some(n));
        }
        drop(ping);
        ponger.join().unwrap();
    });
    let events = chrome_events(&std::fs::read_to_string(&path).unwrap());
    let name_of = |event: &Json| field(event, "name").as_str().unwrap().to_owned();
    let metadata: Vec<(String, f64, String)> = events
        .iter()
        .filter(|e| field(e, "ph").as_str() == Some("M"))
        .map(|e| {
            (
                name_of(e),
                field(e, "tid").as_f64().unwrap(),
                field(field(e, "args"), "name").as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(metadata[0].0 == "process_name" && metadata[0].2.ends_with("(ping-pong)"), "{metadata:?}");
    assert!(metadata.contains(&("thread_name".to_owned(), 1.0, "root".to_owned())), "{metadata:?}");
    assert!(metadata.contains(&("thread_name".to_owned(), 2.0, "thread-1".to_owned())), "{metadata:?}");

    let slices = |tid: f64, name: &str| -> Vec<(f64, f64)> {
        events
            .iter()
            .filter(|e| field(e, "ph").as_str() == Some("X") && field(e, "tid").as_f64() == Some(tid))
            .filter(|e| name_of(e) == name)
            .map(|e| (field(e, "ts").as_f64().unwrap(), field(e, "dur").as_f64().unwrap()))
            .collect()
    };
    assert_eq!(slices(2.0, "blocked: thread::sleep"), [(0.0, 1e6), (1e6, 1e6)], "the ponger slept 1 s twice");
    let root_recv = slices(1.0, "blocked: chan recv");
    assert!(root_recv.contains(&(0.0, 1e6)) && root_recv.contains(&(1e6, 1e6)), "{root_recv:?}");
    let clock: Vec<(String, f64)> = events
        .iter()
        .filter(|e| field(e, "ph").as_str() == Some("i") && field(e, "s").as_str() == Some("g"))
        .map(|e| (name_of(e), field(e, "ts").as_f64().unwrap()))
        .collect();
    assert_eq!(clock, [("clock +1s".to_owned(), 1e6), ("clock +1s".to_owned(), 2e6)]);
    let woken_by_ponger = events.iter().any(|e| {
        name_of(e) == "woken"
            && field(e, "tid").as_f64() == Some(1.0)
            && field(field(e, "args"), "by").as_str() == Some("thread-1")
    });
    assert!(woken_by_ponger, "the root's wake names the ponger");
}

#[test]
fn a_failed_bubble_still_writes_its_trace() {
    let dir = scratch_dir("failed-trace");
    let path = dir.join("deadlock.json");
    let report = panic_message(|| {
        Bubble::new().trace(&path).run(|| sync::chan::<u8>(0).1.recv());
    });
    assert!(report.starts_with("deadlock"), "{report}");
    assert!(report.contains("the last 2 events"), "a traced bubble's report has the timeline: {report}");
    let events = chrome_events(&std::fs::read_to_string(&path).expect("the trace was written"));
    assert!(events.iter().any(|e| field(e, "name").as_str() == Some("blocked: chan recv")));
}

/// Run by `gonext_trace_writes_one_file_per_bubble` in a child process with `GONEXT_TRACE`;
/// alone, it traces nothing.
#[test]
fn traced_by_the_environment_when_run_by_its_parent() {
    Bubble::new().name("from env").run(|| thread::sleep(secs(1)));
    Bubble::new().run(|| thread::sleep(secs(2)));
}

/// Run by `the_trace_option_of_virtual_time_test_writes_the_file` in a child process, in a
/// directory of its own; alone, it writes into `tests/target/` (ignored by git).
#[virtual_time_test(trace = "target/traces/traced.json")]
fn traced_by_the_attribute_when_run_by_its_parent() {
    thread::sleep(secs(3));
}

/// Runs one test of this binary in a child process, in directory `cwd`, with `env`.
fn run_child(test: &str, cwd: &std::path::Path, env: &[(&str, &std::path::Path)]) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", test, "--test-threads", "1"]);
    child.current_dir(cwd);
    for (key, value) in env {
        child.env(key, value);
    }
    let output = child.output().expect("the test binary runs");
    assert!(
        output.status.success(),
        "{test} failed in the child process:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn gonext_trace_writes_one_file_per_bubble() {
    let dir = scratch_dir("env-trace");
    run_child("traced_by_the_environment_when_run_by_its_parent", &dir, &[("GONEXT_TRACE", &dir)]);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("bubble-") && files[1].starts_with("from_env-"), "{files:?}");
    for file in files {
        chrome_events(&std::fs::read_to_string(dir.join(file)).unwrap());
    }
}

#[test]
fn the_trace_option_of_virtual_time_test_writes_the_file() {
    let dir = scratch_dir("vtt-trace");
    run_child("traced_by_the_attribute_when_run_by_its_parent", &dir, &[]);
    let events = chrome_events(&std::fs::read_to_string(dir.join("target/traces/traced.json")).unwrap());
    let process = events.iter().find(|e| field(e, "name").as_str() == Some("process_name")).unwrap();
    let label = field(field(process, "args"), "name").as_str().unwrap();
    assert!(label.ends_with("(traced_by_the_attribute_when_run_by_its_parent)"), "{label}");
}
