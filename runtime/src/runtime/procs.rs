//! CPU-quota detection: how many threads a CPU-bound pool should run.
//!
//! The order of sources is the contract:
//!
//! 1. an environment override (`GONEXT_MAX_PROCS` by default; the name is configurable),
//!    which wins without a single cgroup file being read,
//! 2. the cgroup v2 `cpu.max` quota,
//! 3. the cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` quota,
//! 4. the CPU affinity mask (`Cpus_allowed_list` of `/proc/self/status`, which is what
//!    `sched_getaffinity` reports), never the host's CPU count.
//!
//! The process's cgroups come from `/proc/self/cgroup`, their directories from
//! `/proc/self/mountinfo` (v1, v2 and hybrid layouts, with paths relative to each mount's root
//! as seen in containers). Every ancestor up to the mount point is read and the smallest quota
//! wins, because a parent's limit caps its children. A quota becomes a thread count with
//! [`Rounding::Ceil`] by default, then is raised to the configured minimum and capped at the
//! affinity count. The same walk finds the memory limit (`memory.max`, v1
//! `memory.limit_in_bytes`), and the quota's cgroup tells how often it was throttled
//! (`cpu.stat`).
//!
//! On other systems than Linux there is no `/proc`: detection finds no cgroup and no
//! affinity list and falls back to `std::thread::available_parallelism`, without warnings.
//!
//! Nothing here panics on bad input: an unreadable or malformed file, or an unusable
//! environment value, is recorded in [`Procs::warnings`] and detection moves on to the next
//! source. The mechanics of reading cgroup files live in the private `cgroup` submodule, the
//! process-wide value and its live updates in `global`.

mod cgroup;
mod global;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgroup::{CgroupVersion, Layout};

pub use global::{
    OnMaxProcsChange, max_procs, max_procs_report, memory_limit, on_max_procs_change, refresh,
    set_default_max_procs, set_max_procs, set_update_max_procs,
};

/// The environment variable that overrides detection unless [`Detector::env_var`] names another.
const DEFAULT_ENV_VAR: &str = "GONEXT_MAX_PROCS";
/// The environment variable that turns the periodic re-detection off (`0`) or on (`1`).
const UPDATE_ENV_VAR: &str = "GONEXT_UPDATE_MAX_PROCS";

/// How a fractional CPU quota becomes a whole number of threads.
///
/// ```
/// use gonext::runtime::{Detector, Rounding};
/// # let root = std::env::temp_dir().join("gonext-doc-rounding-missing");
/// // With no cgroup files below `root`, rounding has nothing to act on.
/// let procs = Detector::new().root(&root).cpus(4).env([("", "")]).rounding(Rounding::Floor).detect();
/// assert_eq!(procs.value, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// `ceil(quota / period)`: `--cpus=1.5` gives 2 threads, so a burst can use the whole quota
    /// (Go 1.25's choice, and gonext's default).
    #[default]
    Ceil,
    /// `floor(quota / period)`: `--cpus=1.5` gives 1 thread, as uber-go/automaxprocs does, so
    /// the process is never throttled.
    Floor,
}

/// The source that decided [`Procs::value`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// An environment override such as `GONEXT_MAX_PROCS=4`.
    Env {
        /// The variable that was read.
        var: String,
    },
    /// The cgroup v2 `cpu.max` file.
    CgroupV2,
    /// The cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` files.
    CgroupV1,
    /// No override and no quota: the number of CPUs this process may run on.
    Affinity,
    /// A call of [`set_max_procs`], in force until [`set_default_max_procs`].
    Set {
        /// Where `set_max_procs` was called.
        at: &'static Location<'static>,
    },
}

/// How often a cgroup's CPU quota stopped its tasks, from its `cpu.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Throttling {
    /// Enforcement periods that have elapsed while tasks were runnable (`nr_periods`).
    pub periods: u64,
    /// Periods in which the quota ran out and tasks were stopped (`nr_throttled`).
    pub throttled_periods: u64,
    /// The total time tasks were stopped (`throttled_usec`, v1 `throttled_time`).
    pub throttled: Duration,
}

/// The result of a detection: the value and everything that explains it.
///
/// Its `Display` is a one-line summary for a startup log:
///
/// ```
/// # let root = std::env::temp_dir().join("gonext-doc-procs-missing");
/// let procs = gonext::runtime::Detector::new().root(&root).env([("GONEXT_MAX_PROCS", "3")]).cpus(8).detect();
/// assert_eq!(procs.to_string(), "max_procs=3: from env GONEXT_MAX_PROCS=3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Procs {
    /// The number of threads to run.
    pub value: usize,
    /// Which source decided `value`.
    pub source: Source,
    /// The effective CPU quota as `(quota, period)` in microseconds, when a cgroup sets one.
    /// `None` under an environment override, which reads no cgroup file.
    pub quota: Option<(u64, u64)>,
    /// The cgroup directory that holds the effective quota, relative to the cgroup mount.
    pub cgroup_path: Option<PathBuf>,
    /// The number of CPUs in the affinity mask: the upper bound of a quota-derived value.
    pub cpus: usize,
    /// The throttling counters of the cgroup that holds the quota, when it has them.
    pub throttling: Option<Throttling>,
    /// The smallest memory limit of the process's cgroup and its ancestors, in bytes
    /// (`None` when unlimited, and under an environment override; see
    /// [`memory_limit`](crate::runtime::memory_limit)).
    pub memory_limit: Option<u64>,
    /// Everything that was ignored on the way, one sentence each.
    pub warnings: Vec<String>,
}

impl fmt::Display for Procs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "max_procs={}: ", self.value)?;
        match (&self.source, self.quota) {
            (Source::Set { at }, _) => write!(f, "set by runtime::set_max_procs at {at}")?,
            (Source::Env { var }, _) => write!(f, "from env {var}={}", self.value)?,
            (Source::CgroupV2, Some((quota, period))) => {
                write!(f, "from cgroup v2 cpu.max {quota}/{period}")?;
            }
            (Source::CgroupV1, Some((quota, period))) => {
                write!(f, "from cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us {quota}/{period}")?;
            }
            _ => write!(f, "from CPU affinity ({} CPUs allowed)", self.cpus)?,
        }
        if let (Source::CgroupV1 | Source::CgroupV2, Some(path)) = (&self.source, &self.cgroup_path) {
            write!(f, " at {}", path.display())?;
        }
        if let Some(throttling) = &self.throttling {
            let Throttling { periods, throttled_periods, throttled } = throttling;
            write!(f, ", throttled in {throttled_periods} of {periods} periods ({throttled:?})")?;
        }
        if let Some(bytes) = self.memory_limit {
            write!(f, ", memory limit {bytes} bytes")?;
        }
        if !self.warnings.is_empty() {
            let noun = if self.warnings.len() == 1 { "warning" } else { "warnings" };
            write!(f, " ({} {noun}: {})", self.warnings.len(), self.warnings.join("; "))?;
        }
        Ok(())
    }
}

/// Runs the detection with explicit inputs: a filesystem root, an environment, a CPU count.
///
/// [`max_procs`] is `Detector::new().detect()`, cached and re-detected once a second;
/// [`install`](Self::install) makes a configured detector the one it uses. Tests and tools
/// point a `Detector` at a directory that mimics `/proc/self/{cgroup,mountinfo,status}` and
/// the cgroup mounts.
///
/// ```
/// use gonext::runtime::{Detector, Rounding, Source};
/// use std::fs;
///
/// let root = std::env::temp_dir().join(format!("gonext-doc-detector-{}", std::process::id()));
/// fs::create_dir_all(root.join("proc/self")).unwrap();
/// fs::create_dir_all(root.join("sys/fs/cgroup/app")).unwrap();
/// fs::write(root.join("proc/self/cgroup"), "0::/app\n").unwrap();
/// fs::write(
///     root.join("proc/self/mountinfo"),
///     "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
/// )
/// .unwrap();
/// fs::write(root.join("sys/fs/cgroup/app/cpu.max"), "150000 100000\n").unwrap();
///
/// let detector = Detector::new().root(&root).env(Vec::<(String, String)>::new()).cpus(8);
/// let ceil = detector.clone().detect();
/// assert_eq!((ceil.value, ceil.source, ceil.quota), (2, Source::CgroupV2, Some((150000, 100000))));
/// assert_eq!(detector.rounding(Rounding::Floor).detect().value, 1);
/// # fs::remove_dir_all(&root).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    root: PathBuf,
    env: Option<HashMap<OsString, OsString>>,
    env_var: String,
    cpus: Option<usize>,
    rounding: Rounding,
    min: usize,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// The real system: root `/`, the process environment, `GONEXT_MAX_PROCS`, the affinity
    /// mask, [`Rounding::Ceil`] and a minimum of 1.
    pub fn new() -> Self {
        Detector {
            root: PathBuf::from("/"),
            env: None,
            env_var: DEFAULT_ENV_VAR.to_owned(),
            cpus: None,
            rounding: Rounding::Ceil,
            min: 1,
        }
    }

    /// Reads `proc/self/…` and the cgroup mounts below `root` instead of `/`.
    pub fn root(mut self, root: impl AsRef<Path>) -> Self {
        self.root = root.as_ref().to_path_buf();
        self
    }

    /// Uses these variables instead of the process environment (also for
    /// `GONEXT_UPDATE_MAX_PROCS` once [installed](Self::install)).
    pub fn env<K: Into<OsString>, V: Into<OsString>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Reads the override from `name` instead of `GONEXT_MAX_PROCS`.
    pub fn env_var(mut self, name: impl Into<String>) -> Self {
        self.env_var = name.into();
        self
    }

    /// Uses `n` as the affinity CPU count instead of reading it.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero: a process always runs on at least one CPU.
    #[track_caller]
    pub fn cpus(mut self, n: usize) -> Self {
        assert!(n > 0, "Detector::cpus at {}: a process runs on at least one CPU, got 0", Location::caller());
        self.cpus = Some(n);
        self
    }

    /// Chooses how a fractional quota is rounded (default [`Rounding::Ceil`]).
    pub fn rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// The smallest value a quota or the affinity count may produce (default 1; Go uses 2).
    ///
    /// # Panics
    ///
    /// Panics if `min` is zero: a pool needs at least one thread.
    #[track_caller]
    pub fn min(mut self, min: usize) -> Self {
        assert!(min > 0, "Detector::min at {}: a pool needs at least one thread, got 0", Location::caller());
        self.min = min;
        self
    }

    /// Runs the detection. Never panics: problems become [`Procs::warnings`].
    pub fn detect(&self) -> Procs {
        let mut warnings = Vec::new();
        self.updates_enabled(&mut warnings);
        let cpus = self.cpus.unwrap_or_else(|| affinity_cpus(&self.root, &mut warnings));
        let mut procs = Procs {
            value: cpus.max(self.min),
            source: Source::Affinity,
            quota: None,
            cgroup_path: None,
            cpus,
            throttling: None,
            memory_limit: None,
            warnings,
        };
        if let Some(value) = self.env_override(&mut procs.warnings) {
            procs.value = value;
            procs.source = Source::Env { var: self.env_var.clone() };
            return procs;
        }
        let Some(layout) = Layout::read(&self.root, &mut procs.warnings) else { return procs };
        let warnings = &mut procs.warnings;
        let quota =
            [CgroupVersion::V2, CgroupVersion::V1].into_iter().find_map(|v| layout.quota(v, warnings));
        if let Some(quota) = quota {
            procs.value = quota.threads(self.rounding).min(cpus).max(self.min);
            procs.source = match quota.version {
                CgroupVersion::V1 => Source::CgroupV1,
                CgroupVersion::V2 => Source::CgroupV2,
            };
            procs.quota = Some((quota.quota, quota.period));
            procs.throttling = quota.throttling(warnings);
            procs.cgroup_path = Some(quota.path);
        }
        procs.memory_limit = memory_of(&layout, warnings);
        procs
    }

    /// The memory limit alone (what [`memory_limit`](crate::runtime::memory_limit) needs
    /// when an environment override kept [`detect`](Self::detect) from reading cgroups).
    fn detect_memory(&self) -> Option<u64> {
        let mut ignored = Vec::new();
        memory_of(&Layout::read(&self.root, &mut ignored)?, &mut ignored)
    }

    /// Makes this detector the one behind [`max_procs`], [`refresh`] and the periodic
    /// re-detection (an explicit [`set_max_procs`] still wins), and returns its first report.
    ///
    /// ```
    /// use gonext::runtime::{self, Detector, Rounding};
    ///
    /// // automaxprocs's policy instead of Go's: round down, never below 1.
    /// let report = Detector::new().rounding(Rounding::Floor).install();
    /// assert_eq!(runtime::max_procs(), report.value);
    /// # Detector::new().install();
    /// ```
    pub fn install(self) -> Procs {
        global::install(self)
    }

    fn env_value(&self, name: &str) -> Option<OsString> {
        match &self.env {
            Some(vars) => vars.get(OsString::from(name).as_os_str()).cloned(),
            None => std::env::var_os(name),
        }
    }

    fn env_override(&self, warnings: &mut Vec<String>) -> Option<usize> {
        let raw = self.env_value(&self.env_var)?;
        let text = raw.to_string_lossy();
        match text.trim().parse::<usize>() {
            Ok(0) => warnings.push(format!("{}={text:?} ignored: must be at least 1", self.env_var)),
            Ok(n) => return Some(n),
            Err(_) => warnings.push(format!("{}={text:?} ignored: not a positive integer", self.env_var)),
        }
        None
    }

    /// Whether `GONEXT_UPDATE_MAX_PROCS` allows the periodic re-detection (unset: yes).
    fn updates_enabled(&self, warnings: &mut Vec<String>) -> bool {
        let Some(raw) = self.env_value(UPDATE_ENV_VAR) else { return true };
        match raw.to_string_lossy().trim() {
            "0" => false,
            "1" => true,
            other => {
                warnings.push(format!("{UPDATE_ENV_VAR}={other:?} ignored: expected 0 or 1"));
                true
            }
        }
    }
}

/// The memory limit of the v2 hierarchy, else of the v1 memory controller.
fn memory_of(layout: &Layout, warnings: &mut Vec<String>) -> Option<u64> {
    [CgroupVersion::V2, CgroupVersion::V1]
        .into_iter()
        .find_map(|version| layout.memory_limit(version, warnings))
}

/// The number of CPUs in this process's affinity mask, from `proc/self/status` below `root`.
///
/// `std::thread::available_parallelism` is only the fallback: on Linux it already divides by
/// the cgroup quota, which would make the quota count twice.
fn affinity_cpus(root: &Path, warnings: &mut Vec<String>) -> usize {
    let path = root.join("proc/self/status");
    let listed = fs::read_to_string(&path).ok().and_then(|status| {
        let line = status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
        let count = cpu_list_len(line.trim());
        if count.is_none() {
            warnings.push(format!("{}: unreadable Cpus_allowed_list {:?}", path.display(), line.trim()));
        }
        count
    });
    listed.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The highest CPU number a list may name: Linux supports at most 8192 CPUs today, so a
/// larger number is a malformed list, not a machine.
const MAX_CPU: usize = 65_535;

/// Counts the CPUs in a kernel CPU list such as `0-3,8,10-11`.
fn cpu_list_len(list: &str) -> Option<usize> {
    let cpu = |text: &str| text.parse::<usize>().ok().filter(|&n| n <= MAX_CPU);
    list.split(',')
        .try_fold(0usize, |total, part| {
            let count = match part.split_once('-') {
                Some((lo, hi)) => cpu(hi)?.checked_sub(cpu(lo)?)? + 1,
                None => cpu(part).map(|_| 1)?,
            };
            total.checked_add(count)
        })
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::cpu_list_len;

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(cpu_list_len("0-1"), Some(2));
        assert_eq!(cpu_list_len("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_list_len("5"), Some(1));
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len(""), None);
        assert_eq!(cpu_list_len("x"), None);
        assert_eq!(cpu_list_len("0-18446744073709551615"), None, "no such CPU, and no overflow");
        assert_eq!(cpu_list_len("0-65535"), Some(65_536));
    }
}
