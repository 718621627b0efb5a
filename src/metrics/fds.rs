//! File descriptors: the one counter of a process's open fds, the harness's
//! nofile limit (raised at start so the harness is not its own bottleneck),
//! and the gauge through which the harness's count is shared.
//!
//! One count of the harness, read three ways: the recorder's sampler thread
//! counts the harness's fds at each of its quarter-second peeks and keeps the
//! second's highest, which becomes the timeline's `fds` and is published in
//! [`FdGauge`] (`Gauges::fds`). The watcher's harness row and the live progress
//! display read that gauge rather than listing `/proc/self/fd` again on their
//! own threads, so the timeline, the harness row and the bar show the same
//! number, counted once. The recorder is the producer because it runs in every
//! run and already owns the per-second clock of the timeline. A watcher used
//! on its own (no recorder, as in its tests) counts with [`count_open`].

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Open fds of process `pid`: the entries of `/proc/PID/fd` (another user's
/// process needs root).
pub fn count_open(pid: u32) -> io::Result<u64> {
    let ours = pid == std::process::id();
    let dir = if ours {
        "/proc/self/fd".to_string()
    } else {
        format!("/proc/{pid}/fd")
    };
    let n = std::fs::read_dir(dir)?.count() as u64;
    // Listing our own fd folder opens one fd for the listing itself.
    Ok(if ours { n.saturating_sub(1) } else { n })
}

/// Open fds of this process, or 0 where /proc is missing.
pub fn open_fds() -> u64 {
    count_open(std::process::id()).unwrap_or(0)
}

/// The harness's open fds in the last second the recorder closed (its
/// highest peek); empty until the first second closes, as the timeline is.
#[derive(Debug)]
pub struct FdGauge(AtomicU64);

/// What the gauge holds before any count (no process has `u64::MAX` fds).
const UNSET: u64 = u64::MAX;

impl Default for FdGauge {
    fn default() -> Self {
        FdGauge(AtomicU64::new(UNSET))
    }
}

impl FdGauge {
    pub fn set(&self, fds: u64) {
        self.0.store(fds.min(UNSET - 1), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|n| *n != UNSET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_fds_open() {
        assert!(open_fds() >= 3);
    }

    #[test]
    fn gauge_is_empty_until_set() {
        let g = FdGauge::default();
        assert_eq!(g.get(), None);
        g.set(42);
        assert_eq!(g.get(), Some(42));
    }
}
