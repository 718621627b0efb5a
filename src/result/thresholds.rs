//! Pass/fail rules of `[thresholds]`, checked against the finished result.
//!
//! Each check records its limit and the actual value as text in result.json.
//! The text is written in the scenario's own unit syntax (`179ms`,
//! `150694087B/s`), not for people (see `crate::human` for that), so a limit
//! and its actual value compare at a glance and parse back.

use super::model::{LatencySummary, ResultDoc, ThresholdCheck, ThresholdReport};
use crate::scenario::units::Span;
use crate::scenario::Thresholds;

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

/// Percentile limits on pull time and time to first byte; a metric without
/// samples counts as 0 ms.
fn latency(checks: &mut Checks, t: &Thresholds, r: &ResultDoc) {
    type Pick = fn(&LatencySummary) -> f64;
    // (check, its limit, the metric, the percentile checked)
    let rules: [(&str, Option<Span>, &str, Pick); 3] = [
        ("pull_p50", t.pull_p50, "pull", |l| l.p50),
        ("pull_p99", t.pull_p99, "pull", |l| l.p99),
        ("ttfb_p99", t.ttfb_p99, "ttfb", |l| l.p99),
    ];
    for (name, limit, metric, pick) in rules {
        let Some(limit) = limit else {
            continue;
        };
        let actual = r.latency.get(metric).map(pick).unwrap_or(0.0);
        checks.add(
            name,
            format!("{limit}"),
            format!("{actual:.0}ms"),
            actual <= limit.0.as_secs_f64() * 1000.0,
        );
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
