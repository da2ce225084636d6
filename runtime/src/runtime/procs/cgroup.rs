//! Reading cgroup CPU quotas: `/proc/self/cgroup` names the process's cgroups,
//! `/proc/self/mountinfo` says where each hierarchy is mounted, and the quota files of the
//! cgroup directory and its ancestors give the limit.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Rounding;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CgroupVersion {
    V1,
    V2,
}

/// The smallest quota found for one hierarchy.
#[derive(Debug, Clone)]
pub(super) struct Quota {
    pub(super) version: CgroupVersion,
    pub(super) quota: u64,
    pub(super) period: u64,
    /// The cgroup that sets it, relative to the hierarchy's mount.
    pub(super) path: PathBuf,
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
}

/// Where this process's CPU cgroup sits in each hierarchy that exists.
#[derive(Debug)]
pub(super) struct Layout {
    v1: Option<Placement>,
    v2: Option<Placement>,
}

/// A cgroup directory on disk: `mount` is the hierarchy's mount point below the detection
/// root, `cgroup` the process's path inside it.
#[derive(Debug)]
struct Placement {
    mount: PathBuf,
    cgroup: PathBuf,
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup hierarchy.
struct CgroupMount {
    version: CgroupVersion,
    root: String,
    mount_point: String,
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
        let mut layout = Layout { v1: None, v2: None };
        for (number, line) in memberships.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let Some((version, path)) = parse_membership(line) else {
                warnings.push(format!("{}:{}: malformed line {line:?}", cgroup_file.display(), number + 1));
                continue;
            };
            let Some(version) = version else { continue };
            let Some(mount) = mounts.iter().find(|mount| mount.version == version) else { continue };
            let placement = mount.place(root, path, warnings);
            match version {
                CgroupVersion::V1 => layout.v1 = Some(placement),
                CgroupVersion::V2 => layout.v2 = Some(placement),
            }
        }
        Some(layout)
    }

    /// The smallest quota set on the process's cgroup or an ancestor in `version`'s hierarchy.
    /// A malformed or unreadable quota file discards the whole hierarchy, with a warning.
    pub(super) fn quota(&self, version: CgroupVersion, warnings: &mut Vec<String>) -> Option<Quota> {
        let placement = match version {
            CgroupVersion::V1 => self.v1.as_ref(),
            CgroupVersion::V2 => self.v2.as_ref(),
        }?;
        let mut smallest: Option<Quota> = None;
        for relative in placement.cgroup.ancestors() {
            let dir = placement.mount.join(relative.strip_prefix("/").unwrap_or(relative));
            let limit = match version {
                CgroupVersion::V1 => read_v1(&dir),
                CgroupVersion::V2 => read_v2(&dir),
            };
            match limit {
                Ok(Some((quota, period))) => {
                    let found = Quota { version, quota, period, path: relative.to_path_buf() };
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

/// Splits `hierarchy-id:controllers:path`; the version is `None` for a v1 hierarchy without
/// the `cpu` controller.
fn parse_membership(line: &str) -> Option<(Option<CgroupVersion>, &str)> {
    let mut fields = line.splitn(3, ':');
    let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
    if !path.starts_with('/') || id.parse::<u32>().is_err() {
        return None;
    }
    let version = if id == "0" && controllers.is_empty() {
        Some(CgroupVersion::V2)
    } else {
        controllers.split(',').any(|c| c == "cpu").then_some(CgroupVersion::V1)
    };
    Some((version, path))
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
        "cgroup" if fs_fields[2].split(',').any(|option| option == "cpu") => CgroupVersion::V1,
        _ => return Some(None),
    };
    Some(Some(CgroupMount {
        version,
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

/// `cpu.max`: `max [period]` is unlimited, `quota period` a limit.
fn read_v2(dir: &Path) -> Result<Option<(u64, u64)>, String> {
    let file = dir.join("cpu.max");
    let Some(text) = read_quota_file(&file)? else { return Ok(None) };
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["max"] => Ok(None),
        ["max", period] => positive(period, &file).map(|_| None),
        [quota, period] => Ok(Some((positive(quota, &file)?, positive(period, &file)?))),
        _ => Err(format!("{}: expected \"<quota|max> <period>\", found {text:?}", file.display())),
    }
}

/// `cpu.cfs_quota_us` (`-1` is unlimited) and `cpu.cfs_period_us`.
fn read_v1(dir: &Path) -> Result<Option<(u64, u64)>, String> {
    let quota_file = dir.join("cpu.cfs_quota_us");
    let Some(quota) = read_quota_file(&quota_file)? else { return Ok(None) };
    if quota.trim() == "-1" {
        return Ok(None);
    }
    let quota = positive(quota.trim(), &quota_file)?;
    let period_file = dir.join("cpu.cfs_period_us");
    let period = read_quota_file(&period_file)?
        .ok_or_else(|| format!("{}: missing beside {}", period_file.display(), quota_file.display()))?;
    Ok(Some((quota, positive(period.trim(), &period_file)?)))
}

/// A missing file is no limit at this level; any other read error is reported.
fn read_quota_file(file: &Path) -> Result<Option<String>, String> {
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

/// Reads a file the layout needs; a missing one means no cgroups, any other error is reported.
fn read_optional(file: &Path, warnings: &mut Vec<String>) -> Option<String> {
    read_quota_file(file).unwrap_or_else(|problem| {
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
        let spaced = "41 31 0:38 /a\\040b /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw";
        assert_eq!(parse_mount_line(spaced).unwrap().unwrap().root, "/a b");
        let memory = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";
        assert!(parse_mount_line(memory).unwrap().is_none());
        assert!(parse_mount_line("bogus").is_none());
        assert!(parse_mount_line("1 2 3 - cgroup2").is_none());
    }

    #[test]
    fn membership_lines_name_the_version() {
        assert_eq!(
            parse_membership("0::/app").map(|(v, p)| (v, p.to_owned())),
            Some((Some(CgroupVersion::V2), "/app".into()))
        );
        assert_eq!(parse_membership("4:cpu,cpuacct:/x").map(|(v, _)| v), Some(Some(CgroupVersion::V1)));
        assert_eq!(parse_membership("2:cpuacct:/x").map(|(v, _)| v), Some(None));
        assert!(parse_membership("garbage").is_none());
        assert!(parse_membership("x::/").is_none());
    }

    #[test]
    fn the_smaller_ratio_is_below() {
        let quota = |quota, period| Quota { version: CgroupVersion::V2, quota, period, path: PathBuf::new() };
        assert!(quota(50_000, 100_000).is_below(&quota(100_000, 100_000)));
        assert!(quota(200_000, 100_000).is_below(&quota(150_000, 50_000)));
        assert!(!quota(150_000, 50_000).is_below(&quota(200_000, 100_000)));
        assert_eq!(quota(150_000, 100_000).threads(Rounding::Ceil), 2);
        assert_eq!(quota(150_000, 100_000).threads(Rounding::Floor), 1);
    }
}
