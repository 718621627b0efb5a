//! The capacity search ("how many nodes can pull this image at once?"): the
//! staircase's rules as plain data, and the pure logic that judges a step
//! (`judge`), chooses the next herd and the knee (`search`) and fits the
//! Universal Scalability Law to the steps that held (`usl`). The controller
//! that starts and stops nodes and feeds it measured seconds is
//! `run::staircase`; docs/capacity.md explains how to read the result.

pub mod judge;
pub mod search;
pub mod usl;

pub use judge::{judge, StepFigures, Verdict};
pub use search::{Outcome, Phase, Search, StepRecord};

use crate::scenario::{default_warmup, Pattern, Scenario, DEFAULT_STEP_HOLD};
use std::time::Duration;

/// A search as a run ended it: the steps and how it ended, for result.json.
#[derive(Debug, Clone)]
pub struct Searched {
    pub search: Search,
    /// `broke`, `max_nodes`, `max_steps`, `harness`, `deadline` or `interrupted`.
    pub ended_by: String,
    /// Layer downloads a node holds at once: the client's slots, at most the image's layers.
    pub downloads_per_node: u32,
}

/// A staircase as the scenario resolves it (defaults in docs/scenarios.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Staircase {
    pub start_nodes: u32,
    pub step_nodes: u32,
    /// Each step's length, whole seconds (at least 2).
    pub hold_s: u64,
    /// Seconds at the start of each step left out of its judgement (less than `hold_s`).
    pub warmup_s: u64,
    pub max_nodes: u32,
    pub max_steps: Option<u32>,
    pub bisect_rounds: u32,
    pub stops: StopRules,
}

/// When a step is called broken (each a share or a limit; see [`judge`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StopRules {
    /// Failed over ended pulls above this breaks the step.
    pub error_rate: f64,
    /// Completed over offered pulls below this breaks the step.
    pub completion: f64,
    /// A p99 pull time above this (ms) breaks the step.
    pub pull_p99_ms: Option<f64>,
    /// The harness's fd peak over its nofile limit above this stops the search.
    pub fd_ratio: f64,
    /// Completed pulls per second per node below this share of the first step's breaks the step.
    pub efficiency: Option<f64>,
}

impl Default for StopRules {
    fn default() -> Self {
        StopRules {
            error_rate: 0.01,
            completion: 0.95,
            pull_p99_ms: None,
            fd_ratio: 0.9,
            efficiency: None,
        }
    }
}

impl Staircase {
    /// The scenario's staircase, `None` for another arrival pattern. Keys left
    /// out take their defaults (`Scenario::fill_defaults` writes them into
    /// the scenario as run; this reads them again so a hand-built scenario works too).
    pub fn from_scenario(s: &Scenario) -> Option<Staircase> {
        let a = &s.arrival;
        if a.pattern != Pattern::Staircase {
            return None;
        }
        let fleet = u64::from(s.fleet.clusters) * u64::from(s.fleet.nodes_per_cluster);
        let fleet = fleet.min(u64::from(u32::MAX)) as u32;
        let max_nodes = a.max_nodes.unwrap_or(fleet).clamp(1, fleet.max(1));
        let hold = a.step_hold.map_or(DEFAULT_STEP_HOLD, |h| h.0);
        let hold_s = hold.as_secs_f64().ceil().max(2.0) as u64;
        let warmup = a.warmup.map_or_else(|| default_warmup(hold), |w| w.0);
        let warmup_s = (warmup.as_secs_f64().ceil() as u64).min(hold_s - 1);
        let defaults = StopRules::default();
        Some(Staircase {
            start_nodes: a.start_nodes.unwrap_or(10).clamp(1, max_nodes),
            step_nodes: a.step_nodes.unwrap_or(10).max(1),
            hold_s,
            warmup_s,
            max_nodes,
            max_steps: a.max_steps,
            bisect_rounds: a.bisect_rounds.unwrap_or(3),
            stops: StopRules {
                error_rate: a.stop_error_rate.unwrap_or(defaults.error_rate),
                completion: a.stop_completion.unwrap_or(defaults.completion),
                pull_p99_ms: a
                    .stop_pull_p99
                    .map(|p| Duration::as_secs_f64(&p.0) * 1000.0),
                fd_ratio: a.stop_fd_ratio.unwrap_or(defaults.fd_ratio),
                efficiency: a.stop_efficiency,
            },
        })
    }

    /// Seconds judged per step.
    pub fn judged_s(&self) -> u64 {
        self.hold_s - self.warmup_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    #[test]
    fn defaults_follow_the_fleet() {
        let s = parse(
            "[fleet]\nclusters = 2\nnodes_per_cluster = 8\n[arrival]\npattern = \"staircase\"\n",
            "c.toml",
            &[],
        )
        .unwrap();
        let st = Staircase::from_scenario(&s).unwrap();
        assert_eq!((st.start_nodes, st.step_nodes, st.max_nodes), (10, 10, 16));
        assert_eq!((st.hold_s, st.warmup_s, st.judged_s()), (30, 10, 20));
        assert_eq!(st.stops, StopRules::default());
        // The scenario as run says the defaults.
        assert_eq!(s.arrival.max_nodes, Some(16));
        assert_eq!(s.arrival.bisect_rounds, Some(3));
    }

    #[test]
    fn a_small_fleet_starts_smaller() {
        let s = parse(
            "[fleet]\nnodes_per_cluster = 4\n[arrival]\npattern = \"staircase\"\nstep_hold = \"6s\"\nstop_pull_p99 = \"2s\"\n",
            "c.toml",
            &[],
        )
        .unwrap();
        let st = Staircase::from_scenario(&s).unwrap();
        assert_eq!((st.start_nodes, st.max_nodes), (4, 4));
        assert_eq!((st.hold_s, st.warmup_s), (6, 2));
        assert_eq!(st.stops.pull_p99_ms, Some(2000.0));
    }

    #[test]
    fn other_patterns_have_none() {
        let s = parse("", "c.toml", &[]).unwrap();
        assert_eq!(Staircase::from_scenario(&s), None);
        assert_eq!(s.arrival.max_nodes, None);
    }
}
