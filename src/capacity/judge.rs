//! One step's figures and its verdict: held, or broken and by what.
//!
//! A step is judged on its seconds after the warm-up. In a closed loop each
//! node has at most one pull in flight, so *offered* is the pulls started in
//! those seconds and *completed* the pulls that completed in them: while the
//! target keeps up the two match (each completion starts the next pull);
//! when it does not, pulls pile up in flight and completed falls behind.

use super::StopRules;
use std::collections::BTreeMap;

/// What one step measured in its judged seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepFigures {
    /// Nodes pulling during the step (the herd).
    pub nodes: u32,
    /// Seconds judged (after the warm-up).
    pub seconds: u64,
    /// Pulls started in the judged seconds.
    pub offered: u64,
    /// Pulls completed in them.
    pub completed: u64,
    pub failed: u64,
    pub retries: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Mean pulls in flight per second (Little's L).
    pub in_flight_mean: Option<f64>,
    /// Mean time of the completed pulls from their actual start, ms (Little's R).
    pub pull_mean_ms: Option<f64>,
    /// Pull time from the scheduled start (as `latency.pull`), ms.
    pub pull_p50_ms: Option<f64>,
    pub pull_p99_ms: Option<f64>,
    pub fds_peak: u64,
    /// The harness's nofile limit (soft, after raising it).
    pub fd_limit: u64,
    pub connections_peak: i64,
    /// Judged seconds in which the harness was saturated (`metrics::harness`).
    pub harness_saturated_seconds: u64,
}

impl StepFigures {
    /// Completed pulls per second (X); `None` with no seconds.
    pub fn completed_rate(&self) -> Option<f64> {
        (self.seconds > 0).then(|| self.completed as f64 / self.seconds as f64)
    }

    /// Failed over ended pulls; `None` when none ended.
    pub fn error_rate(&self) -> Option<f64> {
        let ended = self.completed + self.failed;
        (ended > 0).then(|| self.failed as f64 / ended as f64)
    }

    /// Completed over offered pulls; `None` when none was offered.
    pub fn completion(&self) -> Option<f64> {
        (self.offered > 0).then(|| self.completed as f64 / self.offered as f64)
    }

    /// Retries per offered pull; `None` when none was offered.
    pub fn retry_rate(&self) -> Option<f64> {
        (self.offered > 0).then(|| self.retries as f64 / self.offered as f64)
    }

    pub fn bytes_per_sec(&self) -> Option<f64> {
        (self.seconds > 0).then(|| self.bytes as f64 / self.seconds as f64)
    }

    /// Little's law: X·R, the in-flight count the completed rate and the mean
    /// pull time imply, to set beside the measured L (`in_flight_mean`).
    pub fn littles_l(&self) -> Option<f64> {
        Some(self.completed_rate()? * self.pull_mean_ms? / 1000.0)
    }

    /// Share of the fd limit the harness reached; `None` without a limit.
    pub fn fd_ratio(&self) -> Option<f64> {
        (self.fd_limit > 0).then(|| self.fds_peak as f64 / self.fd_limit as f64)
    }

    /// The error class seen most in the step (ties: the first by name).
    pub fn top_error_class(&self) -> Option<(&str, u64)> {
        self.errors_by_class.iter().filter(|(_, n)| **n > 0).fold(
            None,
            |best: Option<(&str, u64)>, (class, n)| match best {
                Some((_, m)) if m >= *n => best,
                _ => Some((class.as_str(), *n)),
            },
        )
    }
}

/// A step's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Held,
    /// `by`: what broke it, a short key (`http_503`, `pull_p99`, `harness_saturated`, ...);
    /// `why`: the figures, for a person.
    Broke {
        by: String,
        why: String,
    },
}

impl Verdict {
    pub fn held(&self) -> bool {
        matches!(self, Verdict::Held)
    }

    /// Whether the harness, not the target, stopped the step: such a step
    /// says nothing about the target's knee.
    pub fn harness_bound(&self) -> bool {
        matches!(self, Verdict::Broke { by, .. } if by == HARNESS_SATURATED || by == FD_RATIO)
    }
}

/// `broken_by` when pullstorm itself ran short of CPU or timers.
pub const HARNESS_SATURATED: &str = "harness_saturated";
/// `broken_by` when the harness neared its own fd limit.
pub const FD_RATIO: &str = "fd_ratio";

/// Share of a step's judged seconds that may be harness-saturated (as for a
/// whole run, `metrics::harness::SATURATED_RUN_PERCENT`).
const SATURATED_SHARE: f64 = crate::metrics::harness::SATURATED_RUN_PERCENT / 100.0;

/// Judges a step; `first` is the first step of the search (for `efficiency`).
/// The harness is checked first: a saturated harness is never blamed on the target.
pub fn judge(step: &StepFigures, rules: &StopRules, first: Option<&StepFigures>) -> Verdict {
    let broke = |by: &str, why: String| Verdict::Broke {
        by: by.to_string(),
        why,
    };
    if step.seconds == 0 {
        return broke("no_data", "no second was judged".into());
    }
    let saturated = step.harness_saturated_seconds as f64 / step.seconds as f64;
    if saturated > SATURATED_SHARE {
        return broke(
            HARNESS_SATURATED,
            format!(
                "the harness was saturated {} of {} s: the figures describe pullstorm, not the target",
                step.harness_saturated_seconds, step.seconds
            ),
        );
    }
    if let Some(ratio) = step.fd_ratio().filter(|r| *r > rules.fd_ratio) {
        return broke(
            FD_RATIO,
            format!(
                "the harness held {} fds, {:.0} % of its limit {}",
                step.fds_peak,
                ratio * 100.0,
                step.fd_limit
            ),
        );
    }
    if let Some(rate) = step.error_rate().filter(|r| *r > rules.error_rate) {
        let (by, class) = match step.top_error_class() {
            Some((class, n)) => (class.to_string(), format!(" ({class} {n})")),
            None => ("pull_failures".to_string(), String::new()),
        };
        return broke(
            &by,
            format!(
                "{:.1} % of pulls failed{class}, over the {:.1} % allowed",
                rate * 100.0,
                rules.error_rate * 100.0
            ),
        );
    }
    if let (Some(p99), Some(limit)) = (step.pull_p99_ms, rules.pull_p99_ms) {
        if p99 > limit {
            return broke(
                "pull_p99",
                format!(
                    "p99 pull time {} over {}",
                    crate::human::millis(p99),
                    crate::human::millis(limit)
                ),
            );
        }
    }
    match step.completion() {
        None if step.completed == 0 => {
            return broke(
                "no_progress",
                format!(
                    "no pull started or completed in {} s: pulls take longer than the judged part of the step",
                    step.seconds
                ),
            )
        }
        Some(c) if c < rules.completion => {
            return broke(
                "completion",
                format!(
                    "{} of {} offered pulls completed ({:.0} %, under {:.0} %)",
                    step.completed,
                    step.offered,
                    c * 100.0,
                    rules.completion * 100.0
                ),
            )
        }
        _ => {}
    }
    if let Some(share) = rules.efficiency {
        let per_node = |f: &StepFigures| Some(f.completed_rate()? / f64::from(f.nodes.max(1)));
        if let (Some(now), Some(base)) = (per_node(step), first.and_then(per_node)) {
            if base > 0.0 && now < base * share {
                return broke(
                    "efficiency",
                    format!(
                        "{:.3} pulls/s per node, {:.0} % of the first step's {:.3}",
                        now,
                        now / base * 100.0,
                        base
                    ),
                );
            }
        }
    }
    Verdict::Held
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A healthy step: `nodes` nodes, 20 s, each completing one pull per second.
    pub(crate) fn healthy(nodes: u32) -> StepFigures {
        let pulls = u64::from(nodes) * 20;
        StepFigures {
            nodes,
            seconds: 20,
            offered: pulls,
            completed: pulls,
            bytes: pulls * 1000,
            in_flight_mean: Some(f64::from(nodes)),
            pull_mean_ms: Some(1000.0),
            pull_p50_ms: Some(900.0),
            pull_p99_ms: Some(1500.0),
            fds_peak: 100,
            fd_limit: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_step_holds_and_obeys_littles_law() {
        let s = healthy(8);
        assert_eq!(judge(&s, &StopRules::default(), None), Verdict::Held);
        assert_eq!(s.completed_rate(), Some(8.0));
        assert_eq!(s.littles_l(), Some(8.0));
        assert_eq!(s.error_rate(), Some(0.0));
    }

    #[test]
    fn failures_break_it_by_their_class() {
        let mut s = healthy(10);
        s.completed = 190;
        s.failed = 10;
        s.errors_by_class.insert("connection_reset".into(), 3);
        s.errors_by_class.insert("http_503".into(), 9);
        match judge(&s, &StopRules::default(), None) {
            Verdict::Broke { by, why } => {
                assert_eq!(by, "http_503");
                assert!(
                    why.starts_with("5.0 % of pulls failed (http_503 9)"),
                    "{why}"
                );
            }
            v => panic!("{v:?}"),
        }
        // Under the allowed share it holds.
        s.failed = 1;
        assert!(judge(&s, &StopRules::default(), None).held());
    }

    #[test]
    fn a_saturated_harness_is_blamed_before_the_target() {
        let mut s = healthy(10);
        s.failed = 100;
        s.harness_saturated_seconds = 2;
        let v = judge(&s, &StopRules::default(), None);
        assert!(v.harness_bound(), "{v:?}");
        // One second in twenty is 5 %, the share allowed.
        s.harness_saturated_seconds = 1;
        assert!(!judge(&s, &StopRules::default(), None).harness_bound());
    }

    #[test]
    fn fds_near_the_limit_stop_the_search() {
        let mut s = healthy(10);
        s.fds_peak = 950;
        let v = judge(&s, &StopRules::default(), None);
        assert!(
            matches!(&v, Verdict::Broke { by, .. } if by == FD_RATIO),
            "{v:?}"
        );
    }

    #[test]
    fn slow_pulls_break_on_p99_only_when_a_limit_is_set() {
        let mut s = healthy(10);
        s.pull_p99_ms = Some(9000.0);
        assert!(judge(&s, &StopRules::default(), None).held());
        let rules = StopRules {
            pull_p99_ms: Some(5000.0),
            ..StopRules::default()
        };
        assert!(matches!(judge(&s, &rules, None), Verdict::Broke { by, .. } if by == "pull_p99"));
    }

    #[test]
    fn pulls_piling_up_break_the_completion_ratio() {
        let mut s = healthy(10);
        s.completed = 180;
        assert!(matches!(
            judge(&s, &StopRules::default(), None),
            Verdict::Broke { by, .. } if by == "completion"
        ));
        s.offered = 0;
        s.completed = 0;
        assert!(matches!(
            judge(&s, &StopRules::default(), None),
            Verdict::Broke { by, .. } if by == "no_progress"
        ));
    }

    #[test]
    fn efficiency_compares_per_node_rates_with_the_first_step() {
        let first = healthy(4);
        let mut s = healthy(16);
        s.completed = 160; // half the per-node rate
        s.offered = 160;
        let rules = StopRules {
            efficiency: Some(0.7),
            ..StopRules::default()
        };
        assert!(
            matches!(judge(&s, &rules, Some(&first)), Verdict::Broke { by, .. } if by == "efficiency")
        );
        assert!(judge(&s, &StopRules::default(), Some(&first)).held());
    }

    #[test]
    fn no_data_is_none() {
        let s = StepFigures::default();
        assert_eq!(s.completed_rate(), None);
        assert_eq!(s.error_rate(), None);
        assert_eq!(s.littles_l(), None);
        assert_eq!(s.top_error_class(), None);
    }
}
