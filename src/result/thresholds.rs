//! Pass/fail rules of `[thresholds]`, checked against the finished result.
//!
//! Each check records its limit and the actual value as text in result.json.
//! The text is written in the scenario's own unit syntax (`179ms`,
//! `150694087B/s`), not for people (see `crate::human` for that), so a limit
//! and its actual value compare at a glance and parse back.

use super::model::{LatencySummary, ResultDoc, ThresholdCheck, ThresholdReport};
use crate::scenario::units::Span;
use crate::scenario::Thresholds;

/// The `actual` of a pull-time limit when no pull completed.
pub const NO_PULLS: &str = "no completed pulls to measure";
/// The `actual` of a time-to-first-byte limit when no blob answered.
pub const NO_FIRST_BYTES: &str = "no blob responses to measure";

/// Checks every threshold the scenario sets; `passed` is true when all hold.
/// Checks are listed in a fixed order: counts, latency, throughput, completeness.
pub fn evaluate(t: &Thresholds, r: &ResultDoc) -> ThresholdReport {
    let mut checks = Checks::default();
    counts(&mut checks, t, r);
    latency(&mut checks, t, r);
    throughput_and_completion(&mut checks, t, r);
    let checks = checks.0;
    let passed = checks.iter().all(|c| c.passed);
    ThresholdReport { passed, checks }
}

/// The checks made so far, in order.
#[derive(Default)]
struct Checks(Vec<ThresholdCheck>);

impl Checks {
    fn add(&mut self, name: &str, limit: String, actual: String, passed: bool) {
        self.0.push(ThresholdCheck {
            name: name.to_string(),
            limit,
            actual,
            passed,
        });
    }
}

/// Failed pulls (absolute and as a share of started ones), retries, errors.
fn counts(checks: &mut Checks, t: &Thresholds, r: &ResultDoc) {
    if let Some(max) = t.max_failed_pulls {
        checks.add(
            "max_failed_pulls",
            max.to_string(),
            r.pulls.failed.to_string(),
            r.pulls.failed <= max,
        );
    }
    if let Some(max) = t.max_failure_rate {
        let rate = if r.pulls.started == 0 {
            0.0
        } else {
            r.pulls.failed as f64 / r.pulls.started as f64
        };
        checks.add(
            "max_failure_rate",
            format!("{max}"),
            format!("{rate:.4}"),
            rate <= max,
        );
    }
    if let Some(max) = t.max_retries {
        checks.add(
            "max_retries",
            max.to_string(),
            r.retries.total.to_string(),
            r.retries.total <= max,
        );
    }
    if let Some(max) = t.max_errors {
        let total: u64 = r.errors.values().sum();
        checks.add(
            "max_errors",
            max.to_string(),
            total.to_string(),
            total <= max,
        );
    }
}

/// Percentile limits on pull time and time to first byte. A metric without
/// samples fails its limit: when no pull completed there is no pull time to
/// hold under it, and a gate must not pass on the pulls that never finished.
fn latency(checks: &mut Checks, t: &Thresholds, r: &ResultDoc) {
    type Pick = fn(&LatencySummary) -> f64;
    // (check, its limit, the metric, the percentile checked, what an empty metric lacks)
    let rules: [(&str, Option<Span>, &str, Pick, &str); 3] = [
        ("pull_p50", t.pull_p50, "pull", |l| l.p50, NO_PULLS),
        ("pull_p99", t.pull_p99, "pull", |l| l.p99, NO_PULLS),
        ("ttfb_p99", t.ttfb_p99, "ttfb", |l| l.p99, NO_FIRST_BYTES),
    ];
    for (name, limit, metric, pick, nothing) in rules {
        let Some(limit) = limit else {
            continue;
        };
        match r.latency.get(metric).filter(|l| l.count > 0) {
            Some(l) => {
                let actual = pick(l);
                checks.add(
                    name,
                    format!("{limit}"),
                    format!("{actual:.0}ms"),
                    actual <= limit.0.as_secs_f64() * 1000.0,
                );
            }
            None => checks.add(name, format!("{limit}"), nothing.to_string(), false),
        }
    }
}

/// The mean throughput floor, and whether the run had to finish.
fn throughput_and_completion(checks: &mut Checks, t: &Thresholds, r: &ResultDoc) {
    if let Some(min) = t.min_throughput {
        let actual = r.throughput.mean_bytes_per_sec;
        checks.add(
            "min_throughput",
            format!("{min}"),
            format!("{actual:.0}B/s"),
            actual >= min.0 as f64,
        );
    }
    if t.require_complete {
        checks.add(
            "require_complete",
            "true".into(),
            r.complete.to_string(),
            r.complete,
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::fds::FdLimits;
    use crate::metrics::Recorder;
    use crate::result::build::{self, RunFacts, StopReason};
    use crate::result::model::TargetInfo;
    use crate::scenario::{self, Loaded, Scenario};
    use std::time::{Duration, SystemTime};

    /// A finished run of `started` pulls of which `failed` failed, nothing measured.
    pub(crate) fn doc(started: u64, failed: u64) -> ResultDoc {
        let loaded = Loaded {
            scenario: Scenario::default(),
            path: "unit.toml".into(),
            name: "unit".into(),
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let facts = RunFacts {
            loaded: &loaded,
            overrides: &[],
            nodes: started,
            planned_pulls: started,
            profile: serde_json::Value::Null,
            target: TargetInfo {
                url: "http://127.0.0.1:5000/".into(),
                image: "synthetic/app:v1".into(),
                embedded: true,
                manifest_digest: None,
                blobs: Vec::new(),
                image_bytes: 0,
                server: None,
                api_version: None,
            },
            fd_limits: FdLimits {
                soft_at_start: 1024,
                soft: 1024,
                hard: 1024,
            },
            stop: StopReason::Finished,
            started: t0,
            ended: t0 + Duration::from_secs(1),
            watched: Vec::new(),
        };
        let mut doc = build::build(facts, &Recorder::new(1, tokio::time::Instant::now()));
        doc.pulls.started = started;
        doc.pulls.failed = failed;
        doc.pulls.completed = started - failed;
        doc
    }

    fn thresholds(toml: &str) -> Thresholds {
        scenario::parse(toml, "unit.toml", &[])
            .expect("valid scenario")
            .thresholds
    }

    fn check<'a>(report: &'a ThresholdReport, name: &str) -> &'a ThresholdCheck {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {:?}", report.checks))
    }

    #[test]
    fn a_latency_limit_over_no_completed_pull_fails() {
        let t = thresholds("[thresholds]\npull_p99 = \"1ms\"\npull_p50 = \"1h\"\nttfb_p99 = \"1h\"\nmax_failed_pulls = 2\n");
        let report = evaluate(&t, &doc(2, 2));
        assert!(!report.passed, "{:?}", report.checks);
        for name in ["pull_p50", "pull_p99"] {
            let c = check(&report, name);
            assert!(!c.passed, "{c:?}");
            assert_eq!(c.actual, NO_PULLS);
        }
        let ttfb = check(&report, "ttfb_p99");
        assert!(!ttfb.passed);
        assert_eq!(ttfb.actual, NO_FIRST_BYTES);
        assert!(check(&report, "max_failed_pulls").passed);
    }

    #[test]
    fn a_latency_limit_over_samples_compares_them() {
        let t = thresholds("[thresholds]\npull_p99 = \"2s\"\n");
        let mut r = doc(1, 0);
        let pull = r.latency.entry("pull".into()).or_default();
        pull.count = 1;
        pull.p99 = 1500.0;
        assert!(evaluate(&t, &r).passed);
        r.latency.get_mut("pull").unwrap().p99 = 2500.0;
        let report = evaluate(&t, &r);
        assert!(!report.passed);
        assert_eq!(check(&report, "pull_p99").actual, "2500ms");
    }

    #[test]
    fn without_a_thresholds_section_any_failed_pull_fails_the_run() {
        let t = thresholds("");
        assert_eq!(t.max_failed_pulls, Some(0));
        assert!(evaluate(&t, &doc(3, 0)).passed);
        let report = evaluate(&t, &doc(3, 1));
        assert!(!report.passed);
        let c = check(&report, "max_failed_pulls");
        assert_eq!((c.limit.as_str(), c.actual.as_str()), ("0", "1"));
        // A section that names other rules keeps the default too.
        assert_eq!(
            thresholds("[thresholds]\npull_p99 = \"5m\"\n").max_failed_pulls,
            Some(0)
        );
    }

    #[test]
    fn failures_allowed_on_purpose_are_the_scenarios_own_limit() {
        let t = thresholds("[thresholds]\nmax_failed_pulls = 6\n");
        assert!(evaluate(&t, &doc(6, 6)).passed);
        // A failure rate replaces the default count: it is the rule the author chose.
        let t = thresholds("[thresholds]\nmax_failure_rate = 0.5\n");
        assert_eq!(t.max_failed_pulls, None);
        assert!(evaluate(&t, &doc(4, 2)).passed);
        assert!(!evaluate(&t, &doc(4, 3)).passed);
    }
}
