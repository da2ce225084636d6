//! Reading cgroup limits: `/proc/self/cgroup` names the process's cgroups,
//! `/proc/self/mountinfo` says where each hierarchy is mounted, and the files of the cgroup
//! directory and its ancestors give the CPU quota (`cpu.max`, `cpu.cfs_*`), its throttling
//! (`cpu.stat`) and the memory limit (`memory.max`, `memory.limit_in_bytes`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Rounding, Throttling};

/// The period the kernel uses when `cpu.max` names only a quota (`CFS_PERIOD_US_DEFAULT`).
const DEFAULT_PERIOD_US: u64 = 100_000;
/// A v1 `memory.limit_in_bytes` at or above this is the kernel's "no limit" (it reports
/// `PAGE_COUNTER_MAX` pages, just below `i64::MAX` bytes, rounded to the page size).
const V1_UNLIMITED_MEMORY: u64 = 1 << 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CgroupVersion {
    V1,
    V2,
}

/// The controllers whose limits gonext reads; v1 mounts each hierarchy separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Controller {
    Cpu,
    Memory,
}

impl Controller {
    /// The name of the controller in `/proc/self/cgroup` and in a v1 mount's options.
    fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
        }
    }
}

/// The smallest quota found for one hierarchy.
#[derive(Debug, Clone)]
pub(super) struct Quota {
    pub(super) version: CgroupVersion,
    pub(super) quota: u64,
    pub(super) period: u64,
    /// The cgroup that sets it, relative to the hierarchy's mount.
    pub(super) path: PathBuf,
    /// Where that cgroup is on disk, for its `cpu.stat`.
    dir: PathBuf,
}

impl Quota {
    pub(super) fn threads(&self, rounding: Rounding) -> usize {
        let threads = match rounding {
            Rounding::Ceil => self.quota.div_ceil(self.period),
            Rounding::Floor => self.quota / self.period,
        };
        usize::try_from(threads).unwrap_or(usize::MAX)
    }

    fn is_below(&self, other: &Quota) -> bool {
        u128::from(self.quota) * u128::from(other.period) < u128::from(other.quota) * u128::from(self.period)
    }

    /// The throttling counters of the cgroup that sets the quota; `None` without a
    /// `cpu.stat` there, with a warning when it cannot be read or lacks the counters.
    pub(super) fn throttling(&self, warnings: &mut Vec<String>) -> Option<Throttling> {
        let file = self.dir.join("cpu.stat");
        let text = read_optional(&file, warnings)?;
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
        };
        let throttled = match self.version {
            CgroupVersion::V2 => field("throttled_usec").map(Duration::from_micros),
            CgroupVersion::V1 => field("throttled_time").map(Duration::from_nanos),
        };
        match (field("nr_periods"), field("nr_throttled"), throttled) {
            (Some(periods), Some(throttled_periods), Some(throttled)) => {
                Some(Throttling { periods, throttled_periods, throttled })
            }
            _ => {
                warnings.push(format!("{}: no throttling counters in {text:?}", file.display()));
                None
            }
        }
    }
}

/// Where this process's cgroups sit in each hierarchy that exists.
#[derive(Debug)]
pub(super) struct Layout {
    v2: Option<Placement>,
    v1_cpu: Option<Placement>,
    v1_memory: Option<Placement>,
}

/// A cgroup directory on disk: `mount` is the hierarchy's mount point below the detection
/// root, `cgroup` the process's path inside it.
#[derive(Debug)]
struct Placement {
    mount: PathBuf,
    cgroup: PathBuf,
}

impl Placement {
    /// The process's cgroup and each ancestor up to the mount: (path in the hierarchy,
    /// directory on disk), innermost first.
    fn levels(&self) -> impl Iterator<Item = (&Path, PathBuf)> {
        self.cgroup
            .ancestors()
            .map(|relative| (relative, self.mount.join(relative.strip_prefix("/").unwrap_or(relative))))
    }
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup hierarchy.
struct CgroupMount {
    version: CgroupVersion,
    /// The mount's options (v1 hierarchies name their controllers there).
    options: String,
    root: String,
    mount_point: String,
}

impl CgroupMount {
    fn has(&self, controller: Controller) -> bool {
        self.version == CgroupVersion::V2 || self.options.split(',').any(|option| option == controller.name())
    }
}

/// What one line of `/proc/self/cgroup` is a member of.
#[derive(Debug, PartialEq)]
enum Membership<'a> {
    V2,
    /// A v1 hierarchy with these controllers (comma-separated).
    V1(&'a str),
}

impl Layout {
    /// Reads `proc/self/cgroup` and `proc/self/mountinfo` below `root`; `None` when either is
    /// missing (no cgroups, or not Linux).
    pub(super) fn read(root: &Path, warnings: &mut Vec<String>) -> Option<Layout> {
        let cgroup_file = root.join("proc/self/cgroup");
        let mountinfo_file = root.join("proc/self/mountinfo");
        let memberships = read_optional(&cgroup_file, warnings)?;
        let mountinfo = read_optional(&mountinfo_file, warnings)?;
        let mounts = parse_mountinfo(&mountinfo, &mountinfo_file, warnings);
        let mut layout = Layout { v2: None, v1_cpu: None, v1_memory: None };
        for (number, line) in memberships.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let Some((membership, path)) = parse_membership(line) else {
                warnings.push(format!("{}:{}: malformed line {line:?}", cgroup_file.display(), number + 1));
                continue;
            };
            let mut place = |version, controller, slot: &mut Option<Placement>| {
                let mount = mounts.iter().find(|mount| mount.version == version && mount.has(controller));
                if let Some(mount) = mount {
                    *slot = Some(mount.place(root, path, warnings));
                }
            };
            match membership {
                Membership::V2 => place(CgroupVersion::V2, Controller::Cpu, &mut layout.v2),
                Membership::V1(controllers) => {
                    let named =
                        |controller: Controller| controllers.split(',').any(|c| c == controller.name());
                    if named(Controller::Cpu) {
                        place(CgroupVersion::V1, Controller::Cpu, &mut layout.v1_cpu);
                    }
                    if named(Controller::Memory) {
                        place(CgroupVersion::V1, Controller::Memory, &mut layout.v1_memory);
                    }
                }
            }
        }
        Some(layout)
    }

    fn placement(&self, version: CgroupVersion, controller: Controller) -> Option<&Placement> {
        match (version, controller) {
            (CgroupVersion::V2, _) => self.v2.as_ref(),
            (CgroupVersion::V1, Controller::Cpu) => self.v1_cpu.as_ref(),
            (CgroupVersion::V1, Controller::Memory) => self.v1_memory.as_ref(),
        }
    }

    /// The smallest quota set on the process's cgroup or an ancestor in `version`'s hierarchy.
    /// A malformed or unreadable quota file discards the whole hierarchy, with a warning.
    pub(super) fn quota(&self, version: CgroupVersion, warnings: &mut Vec<String>) -> Option<Quota> {
        let placement = self.placement(version, Controller::Cpu)?;
        let mut smallest: Option<Quota> = None;
        for (relative, dir) in placement.levels() {
            let limit = match version {
                CgroupVersion::V1 => read_v1(&dir),
                CgroupVersion::V2 => read_v2(&dir, warnings),
            };
            match limit {
                Ok(Some((quota, period))) => {
                    let found = Quota { version, quota, period, path: relative.to_path_buf(), dir };
                    if smallest.as_ref().is_none_or(|current| found.is_below(current)) {
                        smallest = Some(found);
                    }
                }
                Ok(None) => {}
                Err(problem) => {
                    warnings.push(format!("{problem}; cgroup {version:?} quota ignored"));
                    return None;
                }
            }
        }
        smallest
    }

    /// The smallest memory limit of the process's cgroup or an ancestor in `version`'s
    /// hierarchy; a malformed or unreadable file discards the hierarchy, with a warning.
    pub(super) fn memory_limit(&self, version: CgroupVersion, warnings: &mut Vec<String>) -> Option<u64> {
        let placement = self.placement(version, Controller::Memory)?;
        let mut smallest: Option<u64> = None;
        for (_, dir) in placement.levels() {
            match read_memory(&dir, version) {
                Ok(Some(bytes)) => smallest = Some(smallest.map_or(bytes, |current| current.min(bytes))),
                Ok(None) => {}
                Err(problem) => {
                    warnings.push(format!("{problem}; cgroup {version:?} memory limit ignored"));
                    return None;
                }
            }
        }
        smallest
    }
}

impl CgroupMount {
    /// Places the process's cgroup `path` inside this mount. In a container the mount's root is
    /// often the container's own cgroup, so its prefix is stripped from `path`.
    fn place(&self, root: &Path, path: &str, warnings: &mut Vec<String>) -> Placement {
        let mount = root.join(self.mount_point.trim_start_matches('/'));
        let cgroup = match path.strip_prefix(self.root.trim_end_matches('/')) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("/{}", rest.trim_start_matches('/'))
            }
            _ => {
                if path != "/" {
                    warnings.push(format!(
                        "cgroup {path:?} is outside the {:?} mount's root {:?}; using the mount itself",
                        self.version, self.root
                    ));
                }
                "/".to_owned()
            }
        };
        Placement { mount, cgroup: PathBuf::from(cgroup) }
    }
}

/// Splits `hierarchy-id:controllers:path`.
fn parse_membership(line: &str) -> Option<(Membership<'_>, &str)> {
    let mut fields = line.splitn(3, ':');
    let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
    if !path.starts_with('/') || id.parse::<u32>().is_err() {
        return None;
    }
    let membership =
        if id == "0" && controllers.is_empty() { Membership::V2 } else { Membership::V1(controllers) };
    Some((membership, path))
}

/// The cgroup mounts of `mountinfo`; lines that are not cgroup mounts are skipped, malformed
/// lines are skipped with a warning.
fn parse_mountinfo(mountinfo: &str, file: &Path, warnings: &mut Vec<String>) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for (number, line) in mountinfo.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        match parse_mount_line(line) {
            Some(Some(mount)) => mounts.push(mount),
            Some(None) => {}
            None => warnings.push(format!("{}:{}: malformed line {line:?}", file.display(), number + 1)),
        }
    }
    mounts
}

/// `None` for a malformed line, `Some(None)` for a well-formed line that is no cgroup mount.
fn parse_mount_line(line: &str) -> Option<Option<CgroupMount>> {
    let (mount_fields, fs_fields) = line.split_once(" - ")?;
    let mount_fields: Vec<&str> = mount_fields.split_whitespace().collect();
    let fs_fields: Vec<&str> = fs_fields.split_whitespace().collect();
    if mount_fields.len() < 6 || fs_fields.len() < 3 {
        return None;
    }
    let version = match fs_fields[0] {
        "cgroup2" => CgroupVersion::V2,
        "cgroup" => CgroupVersion::V1,
        _ => return Some(None),
    };
    Some(Some(CgroupMount {
        version,
        options: fs_fields[2].to_owned(),
        root: unescape_octal(mount_fields[3]),
        mount_point: unescape_octal(mount_fields[4]),
    }))
}

/// Undoes mountinfo's `\040`-style escapes of spaces, tabs, newlines and backslashes.
fn unescape_octal(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `cpu.max`: `max [period]` is unlimited, `quota period` a limit. A lone quota (`150000`,
/// which some tools write) gets the kernel's default period, with a warning, as
/// automaxprocs reads it.
fn read_v2(dir: &Path, warnings: &mut Vec<String>) -> Result<Option<(u64, u64)>, String> {
    let file = dir.join("cpu.max");
    let Some(text) = read_limit_file(&file)? else { return Ok(None) };
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["max"] => Ok(None),
        ["max", period] => positive(period, &file).map(|_| None),
        [quota] => {
            let quota = positive(quota, &file)?;
            warnings.push(format!(
                "{}: {:?} names no period; read as {quota}/{DEFAULT_PERIOD_US} (the kernel's default)",
                file.display(),
                text.trim()
            ));
            Ok(Some((quota, DEFAULT_PERIOD_US)))
        }
        [quota, period] => Ok(Some((positive(quota, &file)?, positive(period, &file)?))),
        _ => Err(format!("{}: expected \"<quota|max> <period>\", found {text:?}", file.display())),
    }
}

/// `cpu.cfs_quota_us` (`-1` is unlimited) and `cpu.cfs_period_us`.
fn read_v1(dir: &Path) -> Result<Option<(u64, u64)>, String> {
    let quota_file = dir.join("cpu.cfs_quota_us");
    let Some(quota) = read_limit_file(&quota_file)? else { return Ok(None) };
    if quota.trim() == "-1" {
        return Ok(None);
    }
    let quota = positive(quota.trim(), &quota_file)?;
    let period_file = dir.join("cpu.cfs_period_us");
    let period = read_limit_file(&period_file)?
        .ok_or_else(|| format!("{}: missing beside {}", period_file.display(), quota_file.display()))?;
    Ok(Some((quota, positive(period.trim(), &period_file)?)))
}

/// v2 `memory.max` (`max` is unlimited) or v1 `memory.limit_in_bytes` (a value near
/// `i64::MAX` is unlimited), in bytes.
fn read_memory(dir: &Path, version: CgroupVersion) -> Result<Option<u64>, String> {
    let file = match version {
        CgroupVersion::V2 => dir.join("memory.max"),
        CgroupVersion::V1 => dir.join("memory.limit_in_bytes"),
    };
    let Some(text) = read_limit_file(&file)? else { return Ok(None) };
    match (version, text.trim()) {
        (CgroupVersion::V2, "max") => Ok(None),
        (_, field) => match field.parse::<u64>() {
            Ok(bytes) if version == CgroupVersion::V1 && bytes >= V1_UNLIMITED_MEMORY => Ok(None),
            Ok(bytes) => Ok(Some(bytes)),
            Err(_) => Err(format!("{}: {field:?} is not a number of bytes", file.display())),
        },
    }
}

/// A missing file is no limit at this level; any other read error is reported.
fn read_limit_file(file: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: unreadable ({error})", file.display())),
    }
}

fn positive(field: &str, file: &Path) -> Result<u64, String> {
    match field.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{}: {field:?} is not a positive number of microseconds", file.display())),
    }
}

/// Reads a file detection can do without; a missing one is silent, any other error is
/// reported.
fn read_optional(file: &Path, warnings: &mut Vec<String>) -> Option<String> {
    read_limit_file(file).unwrap_or_else(|problem| {
        warnings.push(problem);
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_parsed_with_optional_fields_and_escapes() {
        let v1 =
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct";
        let mount = parse_mount_line(v1).unwrap().unwrap();
        assert_eq!(
            (mount.version, mount.mount_point.as_str()),
            (CgroupVersion::V1, "/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(mount.has(Controller::Cpu) && !mount.has(Controller::Memory));
        let spaced = "41 31 0:38 /a\\040b /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw";
        assert_eq!(parse_mount_line(spaced).unwrap().unwrap().root, "/a b");
        let memory = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";
        assert!(parse_mount_line(memory).unwrap().unwrap().has(Controller::Memory));
        let ext4 = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw";
        assert!(parse_mount_line(ext4).unwrap().is_none());
        assert!(parse_mount_line("bogus").is_none());
        assert!(parse_mount_line("1 2 3 - cgroup2").is_none());
    }

    #[test]
    fn membership_lines_name_the_version() {
        assert_eq!(parse_membership("0::/app"), Some((Membership::V2, "/app")));
        assert_eq!(parse_membership("4:cpu,cpuacct:/x"), Some((Membership::V1("cpu,cpuacct"), "/x")));
        assert!(parse_membership("garbage").is_none());
        assert!(parse_membership("x::/").is_none());
    }

    #[test]
    fn the_smaller_ratio_is_below() {
        let quota = |quota, period| Quota {
            version: CgroupVersion::V2,
            quota,
            period,
            path: PathBuf::new(),
            dir: PathBuf::new(),
        };
        assert!(quota(50_000, 100_000).is_below(&quota(100_000, 100_000)));
        assert!(quota(200_000, 100_000).is_below(&quota(150_000, 50_000)));
        assert!(!quota(150_000, 50_000).is_below(&quota(200_000, 100_000)));
        assert_eq!(quota(150_000, 100_000).threads(Rounding::Ceil), 2);
        assert_eq!(quota(150_000, 100_000).threads(Rounding::Floor), 1);
    }
}
