//! File descriptors: the one counter of a process's open fds, the harness's
//! nofile limit (raised at start so the harness is not its own bottleneck),
//! the harness's fd figure of each second, and the gauge through which it is
//! shared.
//!
//! The harness's fds of a second ([`second_fds`]) are the highest of three
//! counts, so a peak between two looks is not missed:
//! - the recorder's sampler lists `/proc/self/fd` four times a second (the
//!   cross-check, and the only count of fds that are not connections);
//! - at every connection open the socket's fd number + 1: Linux gives the
//!   lowest free number, so every lower one was open at that instant (an
//!   exact count at the event, for free; see `net::ConnectionGauge`);
//! - the fds that were not client connections at the second's peeks (the
//!   fewest seen) plus the most connections open at once in the second,
//!   from the connection high-water gauge: each connection is one fd.
//!
//! The sampler publishes each second's figure in [`FdGauge`] (`Gauges::fds`)
//! with the run's high-water. The timeline's `fds`, `fd.client_peak`, the
//! watcher's harness row and the live progress display all read these, so one
//! thing shows one figure. A watcher used on its own (no recorder, as in its
//! tests) counts with [`count_open`].

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

/// The harness's fds of one second: the highest of the sampler's counts
/// (`counted`), the fds in use at a connection's open (`at_open`), and the
/// fewest non-connection fds seen at a peek (`others`) plus the most
/// connections open at once (`connections`). Never below `connections`.
pub fn second_fds(counted: u64, at_open: u64, others: u64, connections: i64) -> u64 {
    let connections = u64::try_from(connections).unwrap_or(0);
    counted.max(at_open).max(others.saturating_add(connections))
}

/// The harness's fds as the recorder's sampler publishes them: the last
/// closed second's figure (empty until the first second closes, as the
/// timeline is) and the run's high-water (the highest second).
#[derive(Debug)]
pub struct FdGauge {
    last: AtomicU64,
    peak: AtomicU64,
}

/// What the gauge holds before any count (no process has `u64::MAX` fds).
const UNSET: u64 = u64::MAX;

impl Default for FdGauge {
    fn default() -> Self {
        FdGauge {
            last: AtomicU64::new(UNSET),
            peak: AtomicU64::new(UNSET),
        }
    }
}

impl FdGauge {
    /// Publishes a closed second's figure and raises the high-water with it.
    pub fn set(&self, fds: u64) {
        let fds = fds.min(UNSET - 1);
        self.last.store(fds, Ordering::Relaxed);
        // UNSET is the largest value: the first second replaces it.
        let _ = self
            .peak
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(if p == UNSET { fds } else { p.max(fds) })
            });
    }

    /// The last closed second's figure.
    pub fn get(&self) -> Option<u64> {
        Some(self.last.load(Ordering::Relaxed)).filter(|n| *n != UNSET)
    }

    /// The highest second so far: the run's fd high-water.
    pub fn peak(&self) -> Option<u64> {
        Some(self.peak.load(Ordering::Relaxed)).filter(|n| *n != UNSET)
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
        assert_eq!(g.peak(), None);
        g.set(42);
        assert_eq!(g.get(), Some(42));
        assert_eq!(g.peak(), Some(42));
    }

    #[test]
    fn gauge_keeps_the_highest_second_while_the_last_one_moves() {
        let g = FdGauge::default();
        for fds in [10, 250, 30] {
            g.set(fds);
        }
        assert_eq!(g.get(), Some(30));
        assert_eq!(g.peak(), Some(250));
    }

    #[test]
    fn a_second_takes_the_highest_of_its_counts() {
        // The sampler's count wins when connections were few.
        assert_eq!(second_fds(40, 12, 30, 5), 40);
        // A burst of connections between two peeks: the other fds plus the burst.
        assert_eq!(second_fds(25, 0, 20, 200), 220);
        // An fd number seen at an open beats both.
        assert_eq!(second_fds(25, 300, 20, 200), 300);
        // Never below the connections, whatever the counts.
        assert_eq!(second_fds(0, 0, 0, 96), 96);
        assert_eq!(second_fds(3, 0, 0, -1), 3);
    }
}
