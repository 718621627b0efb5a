//! The plan: every node of the fleet with its cluster and start offset,
//! from the arrival pattern. Pure and deterministic, so it is unit-tested.

use crate::fleet::profile::SlotScope;
use crate::fleet::{NodePlan, Profile};
use crate::scenario::{Pattern, Scenario};
use std::time::Duration;

/// The fleet laid out in time.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: Vec<NodePlan>,
    /// Pulls each node makes; [`UNTIL_STOPPED`] for a staircase and a soak.
    pub pulls_per_node: u32,
    /// A soak's cycle: each node pulls again this long after its previous
    /// pull was due (waves x `wave_interval`), so the waves repeat as planned.
    pub pull_every: Option<Duration>,
}

/// `pulls_per_node` of a staircase: each node pulls in a closed loop until its
/// controller stops it (`fleet::run_node`).
pub const UNTIL_STOPPED: u32 = 0;

impl Plan {
    pub fn new(s: &Scenario) -> Plan {
        let clusters = s.fleet.clusters;
        let per_cluster = s.fleet.nodes_per_cluster;
        let mut nodes = Vec::with_capacity((clusters as usize) * (per_cluster as usize));
        // A staircase plans its largest herd; its controller starts them step by step.
        let most = match s.arrival.pattern {
            Pattern::Staircase => s.arrival.max_nodes.map_or(usize::MAX, |m| m as usize),
            _ => usize::MAX,
        };
        // Interleave clusters so a wave draws from every cluster, as a rollout across clusters does.
        for n in 0..per_cluster {
            for c in 0..clusters {
                let index = nodes.len() as u32;
                if nodes.len() >= most {
                    break;
                }
                let base = match s.arrival.pattern {
                    // A staircase node's start is its jitter within its step.
                    Pattern::Herd | Pattern::Staircase => Duration::ZERO,
                    Pattern::Waves | Pattern::Soak => {
                        s.arrival.wave_interval.0 * (index / s.arrival.wave_size.max(1))
                    }
                };
                let jitter = jitter_for(index, s.arrival.jitter.0);
                nodes.push(NodePlan {
                    cluster: c,
                    node: c * per_cluster + n,
                    start: base + jitter,
                });
            }
        }
        let waves = (nodes.len() as u32)
            .div_ceil(s.arrival.wave_size.max(1))
            .max(1);
        Plan {
            nodes,
            pulls_per_node: match s.arrival.pattern {
                Pattern::Staircase | Pattern::Soak => UNTIL_STOPPED,
                _ => s.run.pulls_per_node,
            },
            pull_every: (s.arrival.pattern == Pattern::Soak)
                .then(|| s.arrival.wave_interval.0 * waves),
        }
    }

    /// Pulls the plan makes; `None` for a staircase or a soak, whose nodes pull
    /// until the search or the duration ends.
    pub fn planned_pulls(&self) -> Option<u64> {
        (self.pulls_per_node != UNTIL_STOPPED)
            .then(|| self.nodes.len() as u64 * self.pulls_per_node as u64)
    }

    /// Client-side fds the run may hold at once: one socket per download slot in use
    /// (and one for a config fetched outside the slots, as dockerd does), plus the
    /// embedded registry's side of each when it runs in this process.
    pub fn fds_needed(&self, profile: &Profile, embedded: bool) -> u64 {
        let per_node = match profile.slot_scope {
            SlotScope::Node | SlotScope::Pull => profile.max_concurrent_downloads as u64,
        } + u64::from(profile.config_outside_slots);
        let sockets = self.nodes.len() as u64 * per_node;
        let sides = if embedded { 2 } else { 1 };
        sockets * sides + FD_MARGIN
    }
}

/// Fds for everything that is not a download: stdio, the runtime, listeners, files.
pub const FD_MARGIN: u64 = 64;

/// A deterministic per-node delay in `[0, max)`: runs are reproducible.
fn jitter_for(index: u32, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    // splitmix64 of the node index: well spread, no RNG state to carry.
    max.mul_f64(crate::random::unit(crate::random::splitmix64(index as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::Span;

    fn scenario(clusters: u32, nodes: u32, pattern: Pattern) -> Scenario {
        let mut s = Scenario::default();
        s.fleet.clusters = clusters;
        s.fleet.nodes_per_cluster = nodes;
        s.arrival.pattern = pattern;
        s.arrival.wave_size = 4;
        s.arrival.wave_interval = Span(Duration::from_secs(2));
        s
    }

    #[test]
    fn herd_starts_everyone_at_once() {
        let p = Plan::new(&scenario(3, 5, Pattern::Herd));
        assert_eq!(p.nodes.len(), 15);
        assert!(p.nodes.iter().all(|n| n.start.is_zero()));
        let mut ids: Vec<u32> = p.nodes.iter().map(|n| n.node).collect();
        ids.sort();
        assert_eq!(ids, (0..15).collect::<Vec<_>>());
    }

    #[test]
    fn waves_start_wave_size_nodes_every_interval() {
        let p = Plan::new(&scenario(2, 5, Pattern::Waves));
        let starts: Vec<u64> = p.nodes.iter().map(|n| n.start.as_secs()).collect();
        assert_eq!(starts, [0, 0, 0, 0, 2, 2, 2, 2, 4, 4]);
        // Each wave mixes clusters.
        assert_eq!(p.nodes[0].cluster, 0);
        assert_eq!(p.nodes[1].cluster, 1);
    }

    #[test]
    fn a_staircase_plans_its_largest_herd_pulling_until_stopped() {
        let mut s = scenario(3, 5, Pattern::Staircase);
        s.arrival.max_nodes = Some(7);
        let p = Plan::new(&s);
        assert_eq!(p.nodes.len(), 7);
        assert!(p.nodes.iter().all(|n| n.start.is_zero()));
        // The first herds draw from every cluster.
        assert_eq!(
            p.nodes
                .iter()
                .take(3)
                .map(|n| n.cluster)
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!((p.pulls_per_node, p.planned_pulls()), (UNTIL_STOPPED, None));
    }

    #[test]
    fn a_soak_repeats_its_waves_every_cycle() {
        let p = Plan::new(&scenario(2, 5, Pattern::Soak));
        let starts: Vec<u64> = p.nodes.iter().map(|n| n.start.as_secs()).collect();
        assert_eq!(starts, [0, 0, 0, 0, 2, 2, 2, 2, 4, 4]);
        // Three waves of (at most) four, two seconds apart: each node every 6 s.
        assert_eq!(p.pull_every, Some(Duration::from_secs(6)));
        assert_eq!((p.pulls_per_node, p.planned_pulls()), (UNTIL_STOPPED, None));
        assert_eq!(Plan::new(&scenario(2, 5, Pattern::Waves)).pull_every, None);
    }

    #[test]
    fn jitter_is_bounded_and_deterministic() {
        let mut s = scenario(1, 100, Pattern::Herd);
        s.arrival.jitter = Span(Duration::from_secs(1));
        let a = Plan::new(&s);
        let b = Plan::new(&s);
        assert!(a.nodes.iter().all(|n| n.start < Duration::from_secs(1)));
        assert_eq!(
            a.nodes.iter().map(|n| n.start).collect::<Vec<_>>(),
            b.nodes.iter().map(|n| n.start).collect::<Vec<_>>()
        );
        assert!(a.nodes.iter().any(|n| n.start > Duration::from_millis(500)));
    }
}
