//! `runtime::max_procs`: CPU-quota detection from cgroup fixtures and from this machine.

use gonext::runtime::{self, Detector, Procs, Rounding, Source};
use gonext_tests::fixtures_dir;
use std::path::PathBuf;

/// A detector over `fixtures/cgroups/<name>` with an empty environment and 8 allowed CPUs.
fn fixture(name: &str) -> Detector {
    let root = fixtures_dir().join("cgroups").join(name);
    assert!(root.is_dir(), "missing fixture {}", root.display());
    Detector::new().root(root).env(Vec::<(String, String)>::new()).cpus(8)
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
        ("v2_too_few_fields", "expected"),
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
    assert_eq!(procs.quota, Some((50_000, 100_000)), "the quota is still reported");
    assert_eq!(procs.to_string(), "max_procs=6: from env GONEXT_MAX_PROCS=6");
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
#[should_panic(expected = "Detector::min: a pool needs at least one thread, got 0")]
fn zero_minimum_is_rejected() {
    let _ = Detector::new().min(0);
}

#[test]
#[should_panic(expected = "Detector::cpus: a process runs on at least one CPU, got 0")]
fn zero_cpu_count_is_rejected() {
    let _ = Detector::new().cpus(0);
}

#[test]
fn live_machine_report_is_consistent() {
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
