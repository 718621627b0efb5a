//! The search itself: which herd comes next, and what the steps say.
//!
//! The climb starts at `start_nodes` and adds `step_nodes` per step while
//! steps hold, up to `max_nodes` (or `max_steps`). The first step that breaks
//! ends the climb; then bisection, for `bisect_rounds` rounds, holds the herd
//! halfway between the largest that held and the smallest that broke. A step
//! stopped by the harness (saturated, or near its fd limit) ends the search
//! without bisecting: it says nothing about the target.

use super::judge::{Verdict, HARNESS_SATURATED};
use super::usl::{self, Fit};
use super::{Staircase, StepFigures};

/// Where a step belongs in the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Climb,
    Bisect,
}

impl Phase {
    pub fn key(self) -> &'static str {
        match self {
            Phase::Climb => "climb",
            Phase::Bisect => "bisect",
        }
    }
}

/// A judged step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub phase: Phase,
    /// First and last second of the step (timeline `t`), warm-up included.
    pub start_t: u64,
    pub end_t: u64,
    /// Seconds of warm-up left out.
    pub warmup_s: u64,
    pub figures: StepFigures,
    pub verdict: Verdict,
}

/// The search's state: the staircase, the steps so far and the bisection's bounds.
#[derive(Debug, Clone)]
pub struct Search {
    pub staircase: Staircase,
    pub steps: Vec<StepRecord>,
    /// Largest herd that held / smallest that broke (by the target), so far.
    lo: Option<u32>,
    hi: Option<u32>,
    rounds_left: u32,
    climbing: bool,
    /// Why the search ended; `None` while it goes on.
    ended: Option<&'static str>,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Largest herd that held on the climb.
    pub knee_nodes: Option<u32>,
    /// First herd that broke on the climb; `None` when none did up to the limit.
    pub broken_nodes: Option<u32>,
    pub broken_by: Option<String>,
    /// After bisection: the largest herd that held and the smallest that broke
    /// (by the target); `None` when no bisection step ran.
    pub refined_knee_nodes: Option<u32>,
    pub refined_broken_nodes: Option<u32>,
    /// The USL fitted on the steps that held, when there were enough.
    pub usl: Option<Fit>,
}

impl Search {
    pub fn new(staircase: Staircase) -> Search {
        Search {
            rounds_left: staircase.bisect_rounds,
            staircase,
            steps: Vec::new(),
            lo: None,
            hi: None,
            climbing: true,
            ended: None,
        }
    }

    /// The herd of the first step.
    pub fn first_herd(&self) -> u32 {
        self.staircase.start_nodes
    }

    /// The phase the next step belongs to.
    pub fn phase(&self) -> Phase {
        if self.climbing {
            Phase::Climb
        } else {
            Phase::Bisect
        }
    }

    /// Records a judged step; returns the next herd, or `None` when the search is over.
    pub fn next(&mut self, step: StepRecord) -> Option<u32> {
        if self.ended.is_some() {
            return None;
        }
        let nodes = step.figures.nodes;
        let held = step.verdict.held();
        let harness_bound = step.verdict.harness_bound();
        let climbing = step.phase == Phase::Climb;
        self.steps.push(step);
        if harness_bound {
            return self.finish("harness");
        }
        if held {
            self.lo = Some(self.lo.map_or(nodes, |lo| lo.max(nodes)));
        } else {
            self.hi = Some(self.hi.map_or(nodes, |hi| hi.min(nodes)));
        }
        if climbing {
            if held {
                let st = &self.staircase;
                let climbed = self.steps.len() as u32;
                if nodes >= st.max_nodes {
                    return self.finish("max_nodes");
                }
                if st.max_steps.is_some_and(|m| climbed >= m) {
                    return self.finish("max_steps");
                }
                return Some(nodes.saturating_add(st.step_nodes).min(st.max_nodes));
            }
            self.climbing = false;
        } else {
            self.rounds_left = self.rounds_left.saturating_sub(1);
        }
        self.bisect()
    }

    /// The next herd halfway between the bounds, while rounds remain and there is room.
    fn bisect(&mut self) -> Option<u32> {
        let hi = self.hi?;
        let lo = self.lo.unwrap_or(0);
        let mid = lo + (hi - lo) / 2;
        if self.rounds_left == 0 || hi <= lo + 1 || mid == 0 {
            return self.finish("broke");
        }
        Some(mid)
    }

    fn finish(&mut self, why: &'static str) -> Option<u32> {
        self.ended = Some(why);
        None
    }

    /// Why the search ended (`broke`, `max_nodes`, `max_steps`, `harness`);
    /// `None` while it goes on.
    pub fn ended_by(&self) -> Option<&'static str> {
        self.ended
    }

    /// What the steps so far say (a search cut short by the deadline too).
    pub fn outcome(&self) -> Outcome {
        let climb = self.steps.iter().filter(|s| s.phase == Phase::Climb);
        let knee_nodes = climb
            .clone()
            .filter(|s| s.verdict.held())
            .map(|s| s.figures.nodes)
            .max();
        let broken = climb.clone().find(|s| !s.verdict.held());
        let broken_by = broken.map(|s| match &s.verdict {
            Verdict::Broke { by, .. } => by.clone(),
            Verdict::Held => String::new(),
        });
        let bisected = self.steps.iter().any(|s| s.phase == Phase::Bisect);
        let target_broken = |s: &&StepRecord| !s.verdict.held() && !s.verdict.harness_bound();
        let points: Vec<(f64, f64)> = self
            .steps
            .iter()
            .filter(|s| s.verdict.held())
            .filter_map(|s| Some((f64::from(s.figures.nodes), s.figures.completed_rate()?)))
            .collect();
        Outcome {
            knee_nodes,
            broken_nodes: broken.map(|s| s.figures.nodes),
            broken_by,
            refined_knee_nodes: bisected
                .then(|| {
                    self.steps
                        .iter()
                        .filter(|s| s.verdict.held())
                        .map(|s| s.figures.nodes)
                        .max()
                })
                .flatten(),
            refined_broken_nodes: bisected
                .then(|| {
                    self.steps
                        .iter()
                        .filter(target_broken)
                        .map(|s| s.figures.nodes)
                        .min()
                })
                .flatten(),
            usl: usl::fit(&points),
        }
    }
}

/// Whether a `broken_by` key names the harness rather than the target.
pub fn is_harness_cause(by: &str) -> bool {
    by == HARNESS_SATURATED || by == super::judge::FD_RATIO
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::judge::tests::healthy;
    use crate::capacity::StopRules;

    fn staircase(start: u32, step: u32, max: u32, rounds: u32) -> Staircase {
        Staircase {
            start_nodes: start,
            step_nodes: step,
            hold_s: 10,
            warmup_s: 3,
            max_nodes: max,
            max_steps: None,
            bisect_rounds: rounds,
            stops: StopRules::default(),
        }
    }

    fn step(phase: Phase, nodes: u32, verdict: Verdict) -> StepRecord {
        StepRecord {
            phase,
            start_t: 0,
            end_t: 0,
            warmup_s: 3,
            figures: healthy(nodes),
            verdict,
        }
    }

    fn broke(by: &str) -> Verdict {
        Verdict::Broke {
            by: by.into(),
            why: String::new(),
        }
    }

    /// Drives a search against a target that holds up to `capacity` nodes;
    /// returns the herds tried.
    fn drive(search: &mut Search, capacity: u32, by: &str) -> Vec<u32> {
        let mut herds = vec![search.first_herd()];
        let mut nodes = search.first_herd();
        loop {
            let verdict = if nodes <= capacity {
                Verdict::Held
            } else {
                broke(by)
            };
            let phase = search.phase();
            match search.next(step(phase, nodes, verdict)) {
                Some(next) => {
                    herds.push(next);
                    nodes = next;
                }
                None => return herds,
            }
        }
    }

    #[test]
    fn climbs_then_bisects_to_the_knee() {
        let mut s = Search::new(staircase(8, 8, 64, 3));
        let herds = drive(&mut s, 29, "http_503");
        // Climb 8..32 (32 breaks), then 28 (holds), 30 (breaks), 29 (holds).
        assert_eq!(herds, [8, 16, 24, 32, 28, 30, 29]);
        let o = s.outcome();
        assert_eq!((o.knee_nodes, o.broken_nodes), (Some(24), Some(32)));
        assert_eq!(o.broken_by.as_deref(), Some("http_503"));
        assert_eq!(s.ended_by(), Some("broke"));
        assert_eq!(
            (o.refined_knee_nodes, o.refined_broken_nodes),
            (Some(29), Some(30))
        );
        assert!(o.usl.is_some(), "five steps held");
    }

    #[test]
    fn holding_up_to_the_limit_breaks_nothing() {
        let mut s = Search::new(staircase(4, 4, 10, 3));
        assert_eq!(drive(&mut s, 100, "x"), [4, 8, 10]);
        let o = s.outcome();
        assert_eq!(
            (o.knee_nodes, o.broken_nodes, o.broken_by),
            (Some(10), None, None)
        );
        assert_eq!(s.ended_by(), Some("max_nodes"));
        assert_eq!(o.refined_knee_nodes, None);
    }

    #[test]
    fn max_steps_ends_the_climb() {
        let mut st = staircase(4, 4, 100, 3);
        st.max_steps = Some(2);
        let mut s = Search::new(st);
        assert_eq!(drive(&mut s, 100, "x"), [4, 8]);
    }

    #[test]
    fn a_first_step_that_breaks_has_no_knee_and_bisects_below_it() {
        let mut s = Search::new(staircase(8, 8, 64, 2));
        assert_eq!(drive(&mut s, 3, "connection_reset"), [8, 4, 2]);
        let o = s.outcome();
        assert_eq!((o.knee_nodes, o.broken_nodes), (None, Some(8)));
        assert_eq!(
            (o.refined_knee_nodes, o.refined_broken_nodes),
            (Some(2), Some(4))
        );
    }

    #[test]
    fn a_saturated_harness_ends_the_search_without_bisecting() {
        let mut s = Search::new(staircase(8, 8, 64, 3));
        assert_eq!(drive(&mut s, 20, HARNESS_SATURATED), [8, 16, 24]);
        let o = s.outcome();
        assert_eq!((o.knee_nodes, o.broken_nodes), (Some(16), Some(24)));
        assert_eq!(o.broken_by.as_deref(), Some(HARNESS_SATURATED));
        assert_eq!(o.refined_knee_nodes, None);
        assert!(is_harness_cause(o.broken_by.as_deref().unwrap()));
    }

    #[test]
    fn no_rounds_no_bisection() {
        let mut s = Search::new(staircase(8, 8, 64, 0));
        assert_eq!(drive(&mut s, 20, "http_503"), [8, 16, 24]);
        assert_eq!(s.outcome().refined_broken_nodes, None);
    }
}
