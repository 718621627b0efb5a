//! The harness's own file descriptors: raise the soft limit to the hard one at
//! start (so the harness is not its own bottleneck) and count what is open.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The nofile limits before and after raising.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FdLimits {
    pub soft_at_start: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft nofile limit to the hard limit and reports both.
pub fn raise_nofile() -> FdLimits {
    let before = getrlimit(Resource::Nofile);
    let soft_at_start = before.current.unwrap_or(u64::MAX);
    let hard = before.maximum;
    if before.current != hard {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    let after = getrlimit(Resource::Nofile);
    FdLimits {
        soft_at_start,
        soft: after.current.unwrap_or(u64::MAX),
        hard: hard.unwrap_or(u64::MAX),
    }
}

/// Open fds of this process (entries of /proc/self/fd), or 0 where /proc is missing.
pub fn open_fds() -> u64 {
    match std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        Ok(dir) => dir.count().saturating_sub(1) as u64,
        Err(_) => 0,
    }
}
