//! Pass/fail rules of `[thresholds]`, checked against the finished result.

use super::model::{ResultDoc, ThresholdCheck, ThresholdReport};
use crate::scenario::Thresholds;

/// Checks every threshold the scenario sets; `passed` is true when all hold.
pub fn evaluate(t: &Thresholds, r: &ResultDoc) -> ThresholdReport {
    let mut checks = Vec::new();
    let mut check = |name: &str, limit: String, actual: String, passed: bool| {
        checks.push(ThresholdCheck {
            name: name.to_string(),
            limit,
            actual,
            passed,
        });
    };
    if let Some(max) = t.max_failed_pulls {
        check(
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
        check(
            "max_failure_rate",
            format!("{max}"),
            format!("{rate:.4}"),
            rate <= max,
        );
    }
    if let Some(max) = t.max_retries {
        check(
            "max_retries",
            max.to_string(),
            r.retries.total.to_string(),
            r.retries.total <= max,
        );
    }
    if let Some(max) = t.max_errors {
        let total: u64 = r.errors.values().sum();
        check(
            "max_errors",
            max.to_string(),
            total.to_string(),
            total <= max,
        );
    }
    let latency = |metric: &str, pick: fn(&super::model::LatencySummary) -> f64| {
        r.latency.get(metric).map(pick).unwrap_or(0.0)
    };
    if let Some(limit) = t.pull_p50 {
        let actual = latency("pull", |l| l.p50);
        check(
            "pull_p50",
            format!("{limit}"),
            format!("{actual:.0}ms"),
            actual <= limit.0.as_secs_f64() * 1000.0,
        );
    }
    if let Some(limit) = t.pull_p99 {
        let actual = latency("pull", |l| l.p99);
        check(
            "pull_p99",
            format!("{limit}"),
            format!("{actual:.0}ms"),
            actual <= limit.0.as_secs_f64() * 1000.0,
        );
    }
    if let Some(limit) = t.ttfb_p99 {
        let actual = latency("ttfb", |l| l.p99);
        check(
            "ttfb_p99",
            format!("{limit}"),
            format!("{actual:.0}ms"),
            actual <= limit.0.as_secs_f64() * 1000.0,
        );
    }
    if let Some(min) = t.min_throughput {
        let actual = r.throughput.mean_bytes_per_sec;
        check(
            "min_throughput",
            format!("{min}"),
            format!("{actual:.0}B/s"),
            actual >= min.0 as f64,
        );
    }
    if t.require_complete {
        check(
            "require_complete",
            "true".into(),
            r.complete.to_string(),
            r.complete,
        );
    }
    let passed = checks.iter().all(|c| c.passed);
    ThresholdReport { passed, checks }
}
