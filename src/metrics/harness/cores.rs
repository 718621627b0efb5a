//! The cores the harness may use: the CPUs of its affinity mask (`taskset`,
//! cpuset) and its cgroup CPU quota (v2 `cpu.max`, v1 CFS quota), whichever
//! is fewer. The parsers are pure; [`usable_cores`] reads them.

use std::path::{Path, PathBuf};

/// The cores this process may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cores {
    /// The fewer of `affinity` and `quota`.
    pub usable: f64,
    /// CPUs in the process's affinity mask (`taskset`, cpuset).
    pub affinity: u32,
    /// The cgroup CPU quota in cores (`cpu.max`, or `cpu.cfs_quota_us` /
    /// `cpu.cfs_period_us`), the lowest on the path to the root; `None` when unlimited.
    pub quota: Option<f64>,
}

impl Cores {
    pub fn new(affinity: u32, quota: Option<f64>) -> Cores {
        let affinity = affinity.max(1);
        let usable = quota.map_or(affinity as f64, |q| q.min(affinity as f64));
        Cores {
            usable,
            affinity,
            quota,
        }
    }
}

/// Cores of a cgroup v2 `cpu.max` (`"150000 100000"` is 1.5; `"max 100000"` is none).
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut f = text.split_whitespace();
    let quota: f64 = f.next()?.parse().ok()?;
    let period: f64 = f.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Cores of a cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (`-1` is none).
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Where a CPU quota may be set for this process, from `/proc/self/cgroup`
/// (`0::/path` for v2, `N:cpu,cpuacct:/path` for v1): the process's cgroup
/// folder under each mount point and every folder above it, since a parent's
/// quota limits its children too. In a container the path is often `/`.
pub fn quota_dirs(proc_self_cgroup: &str, root: &Path) -> Vec<(PathBuf, bool)> {
    let mut dirs = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mounts: Vec<(PathBuf, bool)> = if controllers.is_empty() {
            vec![(root.to_path_buf(), true), (root.join("unified"), true)]
        } else if controllers.split(',').any(|c| c == "cpu") {
            ["cpu", "cpu,cpuacct", "cpuacct,cpu"]
                .iter()
                .map(|m| (root.join(m), false))
                .collect()
        } else {
            continue;
        };
        for (mount, v2) in mounts {
            let mut dir = mount.join(path.trim_start_matches('/'));
            loop {
                dirs.push((dir.clone(), v2));
                if dir == mount || !dir.pop() {
                    break;
                }
            }
        }
    }
    dirs
}

/// The cores this process may use now: its affinity mask, and the lowest
/// cgroup quota found on its path.
pub fn usable_cores() -> Cores {
    let affinity = rustix::thread::sched_getaffinity(None)
        .map(|set| set.count())
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let quota = quota_dirs(&cgroup, Path::new("/sys/fs/cgroup"))
        .iter()
        .filter_map(|(dir, v2)| {
            if *v2 {
                parse_cpu_max(&read(dir, "cpu.max")?)
            } else {
                parse_cfs(
                    &read(dir, "cpu.cfs_quota_us")?,
                    &read(dir, "cpu.cfs_period_us")?,
                )
            }
        })
        .reduce(f64::min);
    Cores::new(affinity, quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_cores_are_the_fewer_of_affinity_and_quota() {
        assert_eq!(Cores::new(8, Some(1.5)).usable, 1.5);
        assert_eq!(Cores::new(2, Some(4.0)).usable, 2.0);
        assert_eq!(Cores::new(2, None).usable, 2.0);
        assert_eq!(Cores::new(0, None).usable, 1.0);
    }

    #[test]
    fn cgroup_quotas_parse() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs("200000\n", "100000\n"), Some(2.0));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("x", "100000"), None);
    }

    #[test]
    fn quota_folders_are_the_cgroup_and_its_parents() {
        let root = Path::new("/sys/fs/cgroup");
        let v2 = quota_dirs("0::/user.slice/run-1.scope\n", root);
        let paths: Vec<&str> = v2.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(
            &paths[..3],
            [
                "/sys/fs/cgroup/user.slice/run-1.scope",
                "/sys/fs/cgroup/user.slice",
                "/sys/fs/cgroup"
            ]
        );
        assert!(v2.iter().all(|(_, v2)| *v2));
        // v1: only the cpu controller's line, under its possible mount points.
        let v1 = quota_dirs("4:memory:/x\n2:cpuacct:/\n1:cpu:/docker/abc\n", root);
        assert_eq!(v1[0].0, Path::new("/sys/fs/cgroup/cpu/docker/abc"));
        assert!(v1.contains(&(PathBuf::from("/sys/fs/cgroup/cpu"), false)));
        assert!(!v1.iter().any(|(p, _)| p.ends_with("x")));
        assert!(quota_dirs("garbage", root).is_empty());
    }
}
