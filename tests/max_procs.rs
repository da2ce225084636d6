//! `runtime::max_procs`: CPU-quota detection from cgroup fixtures and from this machine.

use gonext::runtime::{self, Detector, Procs, Rounding, Source};
use gonext_tests::fixtures_dir;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// A detector over `fixtures/cgroups/<name>` with an empty environment and 8 allowed CPUs.
fn fixture(name: &str) -> Detector {
    let root = fixtures_dir().join("cgroups").join(name);
    assert!(root.is_dir(), "missing fixture {}", root.display());
    Detector::new().root(root).env(Vec::<(String, String)>::new()).cpus(8)
}

/// A fresh copy of `fixtures/cgroups/<name>` that a test may change.
fn copy_fixture(name: &str) -> PathBuf {
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("gonext-max-procs-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    copy(&fixtures_dir().join("cgroups").join(name), &root);
    root
}

/// Tests that change the process-wide value run one at a time and leave the defaults behind.
struct Global(#[allow(dead_code)] MutexGuard<'static, ()>);

fn global() -> Global {
    static GLOBAL: Mutex<()> = Mutex::new(());
    Global(GLOBAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

impl Drop for Global {
    fn drop(&mut self) {
        runtime::set_update_max_procs(true);
        Detector::new().install();
        runtime::set_default_max_procs();
    }
}

fn detect(name: &str) -> Procs {
    fixture(name).detect()
}

fn assert_warns(procs: &Procs, needle: &str) {
    assert!(
        procs.warnings.iter().any(|w| w.contains(needle)),
        "expected a warning containing {needle:?}, got {:?}",
        procs.warnings
    );
}

#[test]
fn v2_quota_rounds_up_by_default() {
    let procs = detect("v2_set");
    assert_eq!(procs.value, 2);
    assert_eq!(procs.source, Source::CgroupV2);
    assert_eq!(procs.quota, Some((150_000, 100_000)));
    assert_eq!(procs.cgroup_path, Some(PathBuf::from("/app")));
    assert!(procs.warnings.is_empty(), "{:?}", procs.warnings);
    assert_eq!(procs.to_string(), "max_procs=2: from cgroup v2 cpu.max 150000/100000 at /app");
}

#[test]
fn floor_rounding_matches_automaxprocs() {
    assert_eq!(fixture("v2_set").rounding(Rounding::Floor).detect().value, 1);
    assert_eq!(fixture("v1_set").rounding(Rounding::Floor).detect().value, 2);
}

#[test]
fn unlimited_v2_quota_falls_back_to_affinity() {
    for name in ["v2_unset", "v2_only_max", "v2_no_quota_files"] {
        let procs = detect(name);
        assert_eq!((procs.value, &procs.source, procs.quota), (8, &Source::Affinity, None), "{name}");
        assert!(procs.warnings.is_empty(), "{name}: {:?}", procs.warnings);
    }
}

#[test]
fn nested_cgroups_take_the_smallest_quota_of_any_ancestor() {
    let procs = detect("v2_nested_parent_smaller");
    assert_eq!((procs.value, procs.quota), (2, Some((200_000, 100_000))));
    assert_eq!(procs.cgroup_path, Some(PathBuf::from("/kubepods/pod1")));
}

#[test]
fn container_relative_paths_are_resolved_against_the_mount_root() {
    let procs = detect("v2_container_relative");
    assert_eq!((procs.value, procs.quota), (1, Some((50_000, 100_000))));
    assert_eq!(procs.cgroup_path, Some(PathBuf::from("/ctr")));
}

#[test]
fn quota_is_capped_at_the_affinity_count() {
    assert_eq!(detect("v2_large_quota").value, 8);
    assert_eq!(fixture("v2_large_quota").cpus(3).detect().value, 3);
}

#[test]
fn minimum_applies_to_small_quotas() {
    let floor = fixture("v2_container_relative").rounding(Rounding::Floor);
    assert_eq!(floor.clone().detect().value, 1);
    assert_eq!(floor.min(3).detect().value, 3);
}

#[test]
fn v1_quota_and_period_are_read() {
    let procs = detect("v1_set");
    assert_eq!((procs.value, &procs.source, procs.quota), (3, &Source::CgroupV1, Some((250_000, 100_000))));
    assert_eq!(procs.cgroup_path, Some(PathBuf::from("/docker/abc")));
    let unset = detect("v1_unset");
    assert_eq!((unset.value, unset.source), (8, Source::Affinity));
    assert!(unset.warnings.is_empty(), "{:?}", unset.warnings);
}

#[test]
fn hybrid_layout_reads_the_v1_cpu_controller() {
    let procs = detect("hybrid");
    assert_eq!((procs.value, &procs.source), (1, &Source::CgroupV1));
    assert_eq!(procs.cgroup_path, Some(PathBuf::from("/user.slice")));
    assert!(procs.warnings.is_empty(), "{:?}", procs.warnings);
}

#[test]
fn malformed_v2_falls_back_to_v1_with_a_warning() {
    let procs = detect("hybrid_malformed_v2_falls_back_to_v1");
    assert_eq!((procs.value, &procs.source), (3, &Source::CgroupV1));
    assert_warns(&procs, "cpu.max");
}

#[test]
fn missing_files_mean_no_quota_and_no_warning() {
    let procs = detect("missing_files");
    assert_eq!((procs.value, &procs.source), (8, &Source::Affinity));
    assert!(procs.warnings.is_empty(), "{:?}", procs.warnings);
}

#[test]
fn malformed_quota_files_are_ignored_with_a_warning() {
    let cases = [
        ("v2_empty_file", "expected"),
        ("v2_too_many_fields", "expected"),
        ("v2_non_numeric", "\"lots\" is not a positive number"),
        ("v2_zero_period", "\"0\" is not a positive number"),
        ("v2_unreadable", "unreadable"),
        ("v1_negative_period", "\"-100000\" is not a positive number"),
        ("v1_missing_period", "missing beside"),
    ];
    for (name, needle) in cases {
        let procs = detect(name);
        assert_eq!((procs.value, &procs.source, procs.quota), (8, &Source::Affinity, None), "{name}");
        assert_warns(&procs, needle);
        assert!(procs.to_string().contains("(1 warning: "), "{name}: {procs}");
    }
}

#[test]
fn bogus_mountinfo_and_cgroup_lines_are_skipped_with_warnings() {
    let procs = detect("bogus_mountinfo");
    assert_eq!((procs.value, &procs.source), (3, &Source::CgroupV2));
    assert_warns(&procs, "mountinfo:1: malformed line");
    assert_warns(&procs, "mountinfo:3: malformed line");
    let procs = detect("bogus_cgroup_lines");
    assert_eq!((procs.value, &procs.source), (1, &Source::CgroupV2));
    assert_warns(&procs, "cgroup:1: malformed line");
    assert_warns(&procs, "cgroup:3: malformed line");
}

#[test]
fn affinity_count_comes_from_the_cpus_allowed_list() {
    let root = fixtures_dir().join("cgroups/affinity_status");
    let procs = Detector::new().root(root).env([("GONEXT_MAX_PROCS", "")]).detect();
    assert_eq!((procs.value, procs.cpus, &procs.source), (4, 4, &Source::Affinity));
    assert_eq!(procs.to_string().split(" (").next(), Some("max_procs=4: from CPU affinity"));
}

#[test]
fn valid_env_value_wins_even_over_a_smaller_quota() {
    let procs = fixture("v2_container_relative").env([("GONEXT_MAX_PROCS", " 6 ")]).detect();
    assert_eq!(procs.value, 6);
    assert_eq!(procs.source, Source::Env { var: "GONEXT_MAX_PROCS".into() });
    assert_eq!(procs.quota, None, "the override wins before any cgroup file is read");
    assert_eq!(procs.to_string(), "max_procs=6: from env GONEXT_MAX_PROCS=6");
}

#[test]
fn env_override_reads_no_cgroup_files() {
    // Every cgroup file of this fixture is a directory: reading one is a warning.
    let unreadable = detect("env_override_unreadable_cgroups");
    assert_warns(&unreadable, "unreadable");
    let procs = fixture("env_override_unreadable_cgroups").env([("GONEXT_MAX_PROCS", "4")]).detect();
    assert_eq!((procs.value, &procs.source), (4, &Source::Env { var: "GONEXT_MAX_PROCS".into() }));
    assert!(procs.warnings.is_empty(), "nothing was read: {:?}", procs.warnings);
    assert_eq!((procs.memory_limit, procs.throttling), (None, None));
}

#[test]
fn a_quota_without_period_reads_with_the_kernel_default_period() {
    let procs = detect("v2_quota_only");
    assert_eq!((procs.value, &procs.source, procs.quota), (2, &Source::CgroupV2, Some((150_000, 100_000))));
    assert_warns(&procs, "\"150000\" names no period; read as 150000/100000");
    assert_eq!(fixture("v2_quota_only").rounding(Rounding::Floor).detect().value, 1);
}

#[test]
fn throttling_counters_of_the_quota_cgroup_are_reported() {
    let v2 = detect("v2_throttled_memory");
    let throttling = v2.throttling.expect("cpu.stat has the counters");
    assert_eq!((throttling.periods, throttling.throttled_periods), (340, 12));
    assert_eq!(throttling.throttled, Duration::from_micros(1_250_000));
    assert_eq!(
        v2.to_string(),
        "max_procs=2: from cgroup v2 cpu.max 150000/100000 at /pod/app, throttled in 12 of 340 periods \
         (1.25s), memory limit 536870912 bytes"
    );
    let v1 = detect("v1_memory").throttling.expect("v1 cpu.stat has the counters");
    assert_eq!((v1.periods, v1.throttled_periods, v1.throttled), (50, 5, Duration::from_secs(2)));
    assert_eq!(detect("v2_set").throttling, None, "no cpu.stat, no counters, no warning");
    let malformed = detect("v2_memory_malformed");
    assert_eq!(malformed.throttling, None);
    assert_warns(&malformed, "cpu.stat: no throttling counters");
}

#[test]
fn memory_limits_come_from_the_smallest_cgroup_limit() {
    assert_eq!(detect("v2_throttled_memory").memory_limit, Some(512 << 20), "the parent's is smaller");
    assert_eq!(detect("v1_memory").memory_limit, Some(256 << 20), "v1 memory.limit_in_bytes");
    for unlimited in ["v2_memory_unlimited", "v1_memory_unlimited", "v2_set", "missing_files"] {
        let procs = detect(unlimited);
        assert_eq!(procs.memory_limit, None, "{unlimited}");
        assert!(procs.warnings.is_empty(), "{unlimited}: {:?}", procs.warnings);
    }
    let malformed = detect("v2_memory_malformed");
    assert_eq!((malformed.memory_limit, malformed.value), (None, 2), "the CPU quota still counts");
    assert_warns(&malformed, "memory.max: \"lots\" is not a number of bytes");
}

#[test]
fn a_quota_that_changes_between_two_detections_is_followed() {
    let root = copy_fixture("v2_set");
    let detector = Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8);
    assert_eq!(detector.detect().value, 2);
    std::fs::write(root.join("sys/fs/cgroup/app/cpu.max"), "400000 100000\n").unwrap();
    assert_eq!(detector.detect().value, 4);
    std::fs::write(root.join("sys/fs/cgroup/app/cpu.max"), "max 100000\n").unwrap();
    assert_eq!((detector.detect().value, detector.detect().source), (8, Source::Affinity));
}

#[test]
fn unusable_env_values_are_ignored_with_a_warning() {
    for (value, needle) in [
        ("", "not a positive integer"),
        ("0", "at least 1"),
        ("-2", "not a positive"),
        ("two", "not a positive"),
    ] {
        let procs = fixture("v2_set").env([("GONEXT_MAX_PROCS", value)]).detect();
        assert_eq!((procs.value, &procs.source), (2, &Source::CgroupV2), "{value:?}");
        assert_warns(&procs, needle);
        assert_warns(&procs, "GONEXT_MAX_PROCS");
    }
}

#[test]
fn env_variable_name_is_configurable() {
    let env = [("GONEXT_MAX_PROCS", "5"), ("APP_THREADS", "7")];
    let procs = fixture("v2_set").env(env).env_var("APP_THREADS").detect();
    assert_eq!((procs.value, procs.source), (7, Source::Env { var: "APP_THREADS".into() }));
}

#[test]
#[should_panic(expected = "a pool needs at least one thread, got 0")]
fn zero_minimum_is_rejected() {
    let _ = Detector::new().min(0);
}

#[test]
#[should_panic(expected = "a process runs on at least one CPU, got 0")]
fn zero_cpu_count_is_rejected() {
    let _ = Detector::new().cpus(0);
}

#[test]
fn live_machine_report_is_consistent() {
    let _global = global();
    let report = runtime::refresh();
    assert_eq!(runtime::max_procs(), report.value);
    assert_eq!(runtime::max_procs_report(), report);
    let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(report.cpus >= 1);
    match &report.source {
        // std's count already divides by the quota, as ours does (up to rounding).
        Source::CgroupV1 | Source::CgroupV2 => assert!(report.value.abs_diff(parallelism) <= 1, "{report}"),
        Source::Affinity => assert_eq!(report.value, report.cpus.max(1), "{report}"),
        Source::Env { var } => assert!(std::env::var_os(var).is_some(), "{report}"),
        other => panic!("unexpected source {other:?}"),
    }
    assert!(report.value <= report.cpus || matches!(report.source, Source::Env { .. }), "{report}");
}

#[test]
fn set_max_procs_fixes_the_value_until_set_default_max_procs() {
    let _global = global();
    let detected = runtime::refresh().value;
    let previous = runtime::set_max_procs(detected + 5);
    assert_eq!((previous, runtime::max_procs()), (detected, detected + 5));
    let report = runtime::max_procs_report();
    assert!(matches!(report.source, Source::Set { at } if at.file().ends_with("max_procs.rs")), "{report}");
    assert!(report.to_string().contains("set by runtime::set_max_procs at tests/max_procs.rs:"), "{report}");
    assert_eq!(runtime::refresh().value, detected + 5, "a fixed value survives re-detection");
    assert_eq!(runtime::set_default_max_procs().value, detected);
    assert_eq!(runtime::max_procs(), detected);
}

#[test]
fn set_max_procs_zero_names_the_caller() {
    let _global = global();
    let payload = catch_unwind(|| runtime::set_max_procs(0)).unwrap_err();
    let message = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("runtime::set_max_procs at tests/max_procs.rs:"), "{message}");
    assert!(message.contains("at least one thread, got 0"), "{message}");
}

#[test]
fn change_callbacks_hear_each_change_until_their_handle_drops() {
    let _global = global();
    let base = runtime::max_procs();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let watch = runtime::on_max_procs_change(move |old, new| log.lock().unwrap().push((old, new)));
    runtime::set_max_procs(base + 1);
    runtime::set_max_procs(base + 1);
    runtime::set_max_procs(base + 3);
    assert_eq!(*seen.lock().unwrap(), [(base, base + 1), (base + 1, base + 3)], "no call without a change");
    drop(watch);
    runtime::set_max_procs(base + 4);
    assert_eq!(seen.lock().unwrap().len(), 2, "a dropped handle hears nothing");
}

#[test]
fn a_callback_that_changes_the_value_itself_is_told_why_not() {
    let _global = global();
    let base = runtime::max_procs();
    let outcome = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&outcome);
    let _watch = runtime::on_max_procs_change(move |_, _| {
        let nested = catch_unwind(|| runtime::set_max_procs(1));
        let message = nested.map_err(|p| p.downcast_ref::<String>().cloned().unwrap_or_default());
        *slot.lock().unwrap() = Some(message);
    });
    let _panicking = runtime::on_max_procs_change(|_, _| panic!("a callback fails on purpose"));
    runtime::set_max_procs(base + 2);
    let message = outcome.lock().unwrap().take().expect("the callback ran").unwrap_err();
    assert!(message.contains("called by an on_max_procs_change callback"), "{message}");
    assert_eq!(runtime::max_procs(), base + 2, "the nested change was refused, the panic contained");
}

/// Waits (generously) until `max_procs()` is `want`.
fn eventually_max_procs(want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if runtime::max_procs() == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn an_installed_detector_is_re_run_as_its_quota_changes() {
    let _global = global();
    let root = copy_fixture("v2_set");
    let detector = Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8).min(2);
    let (tell, changes) = mpsc::channel();
    let _watch = runtime::on_max_procs_change(move |old, new| tell.send((old, new)).unwrap());
    assert_eq!(detector.clone().rounding(Rounding::Floor).install().value, 2, "min 2 beats floor(1.5)");
    assert_eq!(detector.install().value, 2);
    while changes.try_recv().is_ok() {}
    std::fs::write(root.join("sys/fs/cgroup/app/cpu.max"), "350000 100000\n").unwrap();
    let change = changes.recv_timeout(Duration::from_secs(20)).expect("the watcher saw the new quota");
    assert_eq!(change, (2, 4));
    assert_eq!(runtime::max_procs_report().quota, Some((350_000, 100_000)));
}

#[test]
fn updates_can_be_turned_off_by_env_or_api() {
    let _global = global();
    let root = copy_fixture("v2_set");
    let cpu_max = root.join("sys/fs/cgroup/app/cpu.max");
    let quiet = [("GONEXT_UPDATE_MAX_PROCS", "0")];
    assert_eq!(Detector::new().root(&root).env(quiet).cpus(8).install().value, 2);
    std::fs::write(&cpu_max, "300000 100000\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // two and a half update intervals
    assert_eq!(runtime::max_procs(), 2, "GONEXT_UPDATE_MAX_PROCS=0 stopped the watcher");
    assert_eq!(runtime::refresh().value, 3, "refresh still re-detects");

    runtime::set_update_max_procs(false);
    Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8).install();
    std::fs::write(&cpu_max, "100000 100000\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(runtime::max_procs(), 3, "set_update_max_procs(false) stopped it");
    runtime::set_update_max_procs(true);
    assert!(eventually_max_procs(1), "set_update_max_procs(true) let it run again");

    let odd = fixture("v2_set").env([("GONEXT_UPDATE_MAX_PROCS", "maybe")]).detect();
    assert_warns(&odd, "GONEXT_UPDATE_MAX_PROCS=\"maybe\" ignored: expected 0 or 1");
}

#[test]
fn memory_limit_is_read_even_under_a_cpu_override() {
    let _global = global();
    let root = fixtures_dir().join("cgroups/v2_throttled_memory");
    Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8).install();
    assert_eq!(runtime::memory_limit(), Some(512 << 20));
    Detector::new().root(&root).env([("GONEXT_MAX_PROCS", "3")]).cpus(8).install();
    assert_eq!(runtime::max_procs_report().memory_limit, None, "the report read no cgroup file");
    assert_eq!(runtime::memory_limit(), Some(512 << 20), "memory_limit reads them anyway");
    Detector::new().root(fixtures_dir().join("cgroups/v2_memory_unlimited")).cpus(8).install();
    assert_eq!(runtime::memory_limit(), None, "kept current by each detection");
}

/// The most tasks of one scope that ever ran at once, each spinning for `each`.
fn peak_concurrency(tasks: usize, each: Duration) -> usize {
    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let task = || {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        let start = Instant::now();
        while start.elapsed() < each {
            std::hint::spin_loop();
        }
        running.fetch_sub(1, Ordering::SeqCst);
    };
    gonext::scope! {
        for _ in 0..tasks {
            go task();
        }
    }
    peak.load(Ordering::SeqCst)
}

#[test]
fn gonexts_worker_pool_follows_max_procs() {
    let _global = global();
    runtime::set_max_procs(1);
    std::thread::sleep(Duration::from_millis(300)); // idle surplus workers retire
    let narrow = peak_concurrency(16, Duration::from_millis(5));
    assert!(narrow <= 2, "one worker plus the joining thread, got {narrow}");
    runtime::set_max_procs(4);
    let wide = peak_concurrency(16, Duration::from_millis(20));
    assert!(wide >= 3, "the pool grew with max_procs, got {wide}");
}

/// README.md's CPU-quota example, as written there (extracted by `build.rs`): it sizes a rayon
/// pool and a tokio runtime from `max_procs()`, which gonext's own doctests cannot depend on.
mod readme {
    include!(concat!(env!("OUT_DIR"), "/readme_max_procs.rs"));

    #[test]
    fn the_readme_example_sizes_rayon_and_tokio_pools() {
        let _global = super::global();
        main().unwrap();
    }
}

/// Arbitrary input for the detection: every file it reads and both environment variables,
/// each either near the real format (to reach deep into the parsers) or arbitrary bytes.
mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn bytes_or(text: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => text.prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..48),
        ]
    }

    fn text(pattern: &str) -> impl Strategy<Value = String> + use<> {
        proptest::string::string_regex(pattern).expect("a valid pattern")
    }

    fn number() -> &'static str {
        "(0|1|-1|[0-9]{1,6}|[0-9]{17,21}|18446744073709551615|18446744073709551616)"
    }

    #[derive(Debug)]
    struct Files {
        cgroup: Vec<u8>,
        mountinfo: Vec<u8>,
        cpu_max: Vec<u8>,
        cfs_quota: Vec<u8>,
        cfs_period: Vec<u8>,
        memory_max: Vec<u8>,
        memory_limit: Vec<u8>,
        cpu_stat: Vec<u8>,
        status: Vec<u8>,
    }

    fn files() -> impl Strategy<Value = Files> {
        let n = number();
        (
            (
                bytes_or(prop_oneof![
                    Just("0::/app\n4:cpu,cpuacct:/app\n5:memory:/app\n".to_owned()),
                    "([0-9]{1,2}:[a-z,=]{0,14}:(/[a-z]{0,4}){0,3}\n){0,4}",
                ]),
                bytes_or(prop_oneof![
                    Just(
                        "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                         32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                         35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                            .to_owned()
                    ),
                    "([0-9 :/a-z,\\\\-]{0,60} - cgroup2? [a-z0-9]{0,6} [a-z,]{0,16}\n){0,3}",
                ]),
                bytes_or(text(&format!("(max|{n})( {n})?( {n})?\n?"))),
                bytes_or(text(&format!(" ?{n}\n?"))),
                bytes_or(text(&format!(" ?{n}\n?"))),
            ),
            (
                bytes_or(text(&format!("(max|{n})\n?"))),
                bytes_or(text(&format!("{n}\n?"))),
                bytes_or(text(&format!(
                    "nr_periods {n}\nnr_throttled {n}\n(throttled_usec|throttled_time) {n}\n"
                ))),
                bytes_or(text(&format!("Cpus_allowed_list:\t({n}(-{n})?)(,{n}(-{n})?){{0,3}}\n"))),
            ),
        )
            .prop_map(
                |(
                    (cgroup, mountinfo, cpu_max, cfs_quota, cfs_period),
                    (memory_max, memory_limit, cpu_stat, status),
                )| {
                    Files {
                        cgroup,
                        mountinfo,
                        cpu_max,
                        cfs_quota,
                        cfs_period,
                        memory_max,
                        memory_limit,
                        cpu_stat,
                        status,
                    }
                },
            )
    }

    /// A detection root holding `files`, in a directory of its own per test.
    fn root_with(files: &Files, test: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("gonext-max-procs-prop-{}-{test}", std::process::id()));
        let write = |relative: &str, bytes: &[u8]| {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write("proc/self/cgroup", &files.cgroup);
        write("proc/self/mountinfo", &files.mountinfo);
        write("proc/self/status", &files.status);
        write("sys/fs/cgroup/app/cpu.max", &files.cpu_max);
        write("sys/fs/cgroup/app/cpu.stat", &files.cpu_stat);
        write("sys/fs/cgroup/app/memory.max", &files.memory_max);
        write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us", &files.cfs_quota);
        write("sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us", &files.cfs_period);
        write("sys/fs/cgroup/cpu,cpuacct/app/cpu.stat", &files.cpu_stat);
        write("sys/fs/cgroup/memory/app/memory.limit_in_bytes", &files.memory_limit);
        root
    }

    fn env_value() -> impl Strategy<Value = OsString> {
        bytes_or(text("[ +\\-]?[0-9]{0,22} ?")).prop_map(OsString::from_vec)
    }

    proptest! {
        // Failures print their input; the test crate has no lib.rs to keep seeds beside.
        #![proptest_config(ProptestConfig {
            cases: 200,
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Off)),
            ..ProptestConfig::default()
        })]

        #[test]
        fn cgroup_and_proc_files_give_a_value_and_never_panic(files in files()) {
            let root = root_with(&files, "files");
            let procs = Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8).detect();
            prop_assert!((1..=8).contains(&procs.value), "{procs:?}");
            prop_assert!(procs.warnings.iter().all(|warning| !warning.is_empty()));
            let _ = procs.to_string();
            let affinity = Detector::new().root(&root).env(Vec::<(String, String)>::new()).detect();
            prop_assert!(affinity.value >= 1 && affinity.cpus >= 1, "{affinity:?}");
        }

        #[test]
        fn env_values_are_an_override_or_a_warning(value in env_value(), update in env_value()) {
            let root = fixtures_dir().join("cgroups").join("v2_set");
            let env = vec![("GONEXT_MAX_PROCS", value.clone()), ("GONEXT_UPDATE_MAX_PROCS", update)];
            let procs = Detector::new().root(root).env(env).cpus(8).detect();
            let parsed = value.to_str().and_then(|text| text.trim().parse::<usize>().ok()).filter(|&n| n > 0);
            match parsed {
                Some(n) => prop_assert_eq!((procs.value, &procs.source), (n, &Source::Env { var: "GONEXT_MAX_PROCS".into() })),
                None => {
                    prop_assert_eq!(&procs.source, &Source::CgroupV2);
                    prop_assert!(procs.warnings.iter().any(|w| w.contains("GONEXT_MAX_PROCS")), "{procs:?}");
                }
            }
        }
    }
}
