//! CPU-quota detection: how many threads a CPU-bound pool should run.
//!
//! The order of sources is the contract:
//!
//! 1. an environment override (`GONEXT_MAX_PROCS` by default; the name is configurable),
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
//! affinity count.
//!
//! On other systems than Linux there is no `/proc`: detection finds no cgroup and no
//! affinity list and falls back to `std::thread::available_parallelism`, without warnings.
//!
//! Nothing here panics on bad input: an unreadable or malformed file, or an unusable
//! environment value, is recorded in [`Procs::warnings`] and detection moves on to the next
//! source. The mechanics of reading cgroup files live in the private `cgroup` submodule.

mod cgroup;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cgroup::{CgroupVersion, Quota};

/// The environment variable that overrides detection unless [`Detector::env_var`] names another.
const DEFAULT_ENV_VAR: &str = "GONEXT_MAX_PROCS";

/// `0` until the first detection; afterwards the value [`max_procs`] returns.
static CACHED: AtomicUsize = AtomicUsize::new(0);
/// The report behind [`CACHED`], kept for [`max_procs_report`].
static REPORT: Mutex<Option<Procs>> = Mutex::new(None);

/// The number of threads a CPU-bound pool should run in this process.
///
/// Detected once from the real system with [`Detector::new`]'s defaults and cached: after the
/// first call this is one atomic load. Call [`refresh`] to detect again (after the container's
/// quota changed, or after setting `GONEXT_MAX_PROCS`).
///
/// ```
/// let threads = gonext::runtime::max_procs();
/// assert!(threads >= 1);
/// assert_eq!(threads, gonext::runtime::max_procs_report().value);
/// ```
///
/// # Differences from Go
///
/// Go 1.25 sets `GOMAXPROCS` itself at startup and keeps adjusting it as the quota changes;
/// Rust has no runtime that owns your threads, so gonext only computes the number and every
/// pool (gonext's scopes, a tokio runtime, a rayon pool) decides to use it. Go reads
/// `GOMAXPROCS` as the override; gonext reads `GONEXT_MAX_PROCS` so that setting one never
/// changes the other language's programs by accident. Go rounds a fractional quota up and
/// never goes below 2 threads when a quota is set; gonext rounds up too, with a minimum of 1
/// by default ([`Detector::min`]).
#[inline]
pub fn max_procs() -> usize {
    match CACHED.load(Ordering::Relaxed) {
        0 => first_max_procs(),
        cached => cached,
    }
}

#[cold]
fn first_max_procs() -> usize {
    refresh().value
}

/// Where [`max_procs`]'s value came from, with the quota, the cgroup and any warnings.
///
/// Detected on first use and cached together with [`max_procs`]; [`refresh`] replaces both.
///
/// ```
/// let report = gonext::runtime::max_procs_report();
/// println!("{report}"); // e.g. "max_procs=2: from CPU affinity (2 CPUs allowed)"
/// assert!(report.value >= 1 && report.value <= report.cpus);
/// ```
pub fn max_procs_report() -> Procs {
    let cached = REPORT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    cached.unwrap_or_else(refresh)
}

/// Detects again from the real system, updates the value [`max_procs`] returns and returns the
/// new report.
///
/// ```
/// let report = gonext::runtime::refresh();
/// assert_eq!(report.value, gonext::runtime::max_procs());
/// ```
pub fn refresh() -> Procs {
    let report = Detector::new().detect();
    let mut slot = REPORT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    CACHED.store(report.value, Ordering::Relaxed);
    *slot = Some(report.clone());
    report
}

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
    /// The effective CPU quota as `(quota, period)` in microseconds, when a cgroup sets one
    /// (also reported when an environment override wins over it).
    pub quota: Option<(u64, u64)>,
    /// The cgroup directory that holds the effective quota, relative to the cgroup mount.
    pub cgroup_path: Option<PathBuf>,
    /// The number of CPUs in the affinity mask: the upper bound of a quota-derived value.
    pub cpus: usize,
    /// Everything that was ignored on the way, one sentence each.
    pub warnings: Vec<String>,
}

impl fmt::Display for Procs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "max_procs={}: from ", self.value)?;
        match (&self.source, self.quota) {
            (Source::Env { var }, _) => write!(f, "env {var}={}", self.value)?,
            (Source::CgroupV2, Some((quota, period))) => write!(f, "cgroup v2 cpu.max {quota}/{period}")?,
            (Source::CgroupV1, Some((quota, period))) => {
                write!(f, "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us {quota}/{period}")?;
            }
            _ => write!(f, "CPU affinity ({} CPUs allowed)", self.cpus)?,
        }
        if let (Source::CgroupV1 | Source::CgroupV2, Some(path)) = (&self.source, &self.cgroup_path) {
            write!(f, " at {}", path.display())?;
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
/// [`max_procs`] is `Detector::new().detect()`, cached. Tests and tools point a `Detector` at a
/// directory that mimics `/proc/self/{cgroup,mountinfo,status}` and the cgroup mounts.
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

    /// Uses these variables instead of the process environment.
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
        assert!(n > 0, "Detector::cpus: a process runs on at least one CPU, got 0");
        self.cpus = Some(n);
        self
    }

    /// Chooses how a fractional quota is rounded (default [`Rounding::Ceil`]).
    pub fn rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// The smallest value a quota or the affinity count may produce (default 1).
    ///
    /// # Panics
    ///
    /// Panics if `min` is zero: a pool needs at least one thread.
    #[track_caller]
    pub fn min(mut self, min: usize) -> Self {
        assert!(min > 0, "Detector::min: a pool needs at least one thread, got 0");
        self.min = min;
        self
    }

    /// Runs the detection. Never panics: problems become [`Procs::warnings`].
    pub fn detect(&self) -> Procs {
        let mut warnings = Vec::new();
        let cpus = self.cpus.unwrap_or_else(|| affinity_cpus(&self.root, &mut warnings));
        let quota = self.cgroup_quota(&mut warnings);
        let mut procs = Procs {
            value: cpus.max(self.min),
            source: Source::Affinity,
            quota: quota.as_ref().map(|q| (q.quota, q.period)),
            cgroup_path: quota.as_ref().map(|q| q.path.clone()),
            cpus,
            warnings,
        };
        if let Some(quota) = &quota {
            procs.value = quota.threads(self.rounding).min(cpus).max(self.min);
            procs.source = match quota.version {
                CgroupVersion::V1 => Source::CgroupV1,
                CgroupVersion::V2 => Source::CgroupV2,
            };
        }
        if let Some(value) = self.env_override(&mut procs.warnings) {
            procs.value = value;
            procs.source = Source::Env { var: self.env_var.clone() };
        }
        procs
    }

    fn cgroup_quota(&self, warnings: &mut Vec<String>) -> Option<Quota> {
        let layout = cgroup::Layout::read(&self.root, warnings)?;
        [CgroupVersion::V2, CgroupVersion::V1].into_iter().find_map(|version| layout.quota(version, warnings))
    }

    fn env_override(&self, warnings: &mut Vec<String>) -> Option<usize> {
        let raw = match &self.env {
            Some(vars) => vars.get(OsString::from(&self.env_var).as_os_str()).cloned(),
            None => std::env::var_os(&self.env_var),
        }?;
        let text = raw.to_string_lossy();
        match text.trim().parse::<usize>() {
            Ok(0) => warnings.push(format!("{}={text:?} ignored: must be at least 1", self.env_var)),
            Ok(n) => return Some(n),
            Err(_) => warnings.push(format!("{}={text:?} ignored: not a positive integer", self.env_var)),
        }
        None
    }
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

/// Counts the CPUs in a kernel CPU list such as `0-3,8,10-11`.
fn cpu_list_len(list: &str) -> Option<usize> {
    list.split(',')
        .try_fold(0usize, |total, part| {
            let count = match part.split_once('-') {
                Some((lo, hi)) => hi.parse::<usize>().ok()?.checked_sub(lo.parse().ok()?)? + 1,
                None => part.parse::<usize>().map(|_| 1).ok()?,
            };
            Some(total + count)
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
    }
}
