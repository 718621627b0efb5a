//! Pass/fail rules of `[thresholds]`, checked against the finished result.
//!
//! Two sorts of rules: the fixed keys (`max_failed_pulls`, `pull_p99`, ...),
//! and limits on any figure of result.json by its path (`"latency.pull.p99" =
//! "< 8m"`), judged on the result as a JSON value so every figure is reachable
//! (`paths`, `expr`). The same path checks are judged on a sliding window
//! during the run when the scenario aborts on failure (`run::abort`).
//!
//! Each check records its limit and the actual value as text in result.json.
//! The text is written in the scenario's own unit syntax (`179ms`,
//! `150694087B/s`), not for people (see `crate::human` for that), so a limit
//! and its actual value compare at a glance and parse back.

pub mod expr;
pub mod paths;

use super::model::{CheckWindow, LatencySummary, ResultDoc, ThresholdCheck, ThresholdReport};
use crate::scenario::units::Span;
use crate::scenario::{PathCheck, Thresholds};
use expr::{Comparison, Right};
use paths::{Figure, Kind};
use serde_json::Value;

/// What the `rate` form divides by. At the end of the run: `pulls.started`
/// (every pull begun, the kubelet's re-pulls included). Over a window during
/// the run: the pulls in play in it, those in flight as it began plus those
/// started in it (which, over a whole run, is `pulls.started` again).
pub const RATE_DENOMINATOR: &str = "pulls.started";

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
    if !t.paths.is_empty() {
        let doc = serde_json::to_value(r).unwrap_or_default();
        let started = paths::value(&doc, RATE_DENOMINATOR);
        let denominator = match started {
            Figure::Value(v) => Some(v),
            Figure::NoData(_) => None,
        };
        for check in &t.paths {
            for c in &check.comparisons {
                let (actual, passed) = judge(c, &check.path, &doc, denominator);
                checks.add(&check.path, c.text.clone(), actual, passed);
            }
        }
    }
    after_run_verify(&mut checks, r);
    let checks = checks.0;
    let passed = checks.iter().all(|c| c.passed);
    ThresholdReport { passed, checks }
}

/// `[verify] after_run`: the registry must still serve every checked object whole;
/// a check that did not run fails (nothing was judged).
fn after_run_verify(checks: &mut Checks, r: &ResultDoc) {
    let Some(v) = &r.verify else { return };
    let actual = match (&v.report, &v.reason) {
        (Some(report), _) if report.consistent => {
            let c = &report.checked;
            format!(
                "consistent ({} manifest(s), {} blob(s))",
                c.manifests, c.blobs
            )
        }
        (Some(report), _) => {
            let kinds: std::collections::BTreeSet<&str> =
                report.findings.iter().map(|f| f.kind.name()).collect();
            let kinds: Vec<&str> = kinds.into_iter().collect();
            format!("{} finding(s): {}", report.findings.len(), kinds.join(", "))
        }
        (None, reason) => format!(
            "not run: {}",
            reason.as_deref().unwrap_or("no reason given")
        ),
    };
    checks.add(
        "verify.after_run",
        "consistent".to_string(),
        actual,
        v.outcome == "consistent",
    );
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
            window: None,
        });
    }
}

/// Whether a path check can be judged: its path (and any path on the right)
/// can exist in result.json, and each comparison's units fit the figure.
pub fn fit(check: &PathCheck) -> Result<(), String> {
    let kind = paths::check(&check.path)?;
    for c in &check.comparisons {
        let right = match &c.right {
            Right::Scaled { path, .. } => {
                Some(paths::check(path).map_err(|e| format!("`{}`: the limit's {e}", c.text))?)
            }
            Right::Literal(_) => None,
        };
        c.fit(kind, right)?;
    }
    Ok(())
}

/// Judges one comparison of the figure at `path` of `doc` (a result, or a
/// window shaped like one); `denominator` is what a `rate` divides by.
/// Returns the `actual` text and whether the check holds. A figure with no
/// data fails: a gate never passes a run it could not judge.
pub fn judge(c: &Comparison, path: &str, doc: &Value, denominator: Option<f64>) -> (String, bool) {
    let kind = paths::kind(path);
    let v = match paths::value(doc, path) {
        Figure::Value(v) => v,
        Figure::NoData(why) => return (why, false),
    };
    if c.rate {
        let Some(d) = denominator.filter(|d| *d > 0.0) else {
            return ("no data (no pulls to divide by)".into(), false);
        };
        return match c.fit(Kind::Count, None) {
            Ok(Some(limit)) => {
                let rate = v / d;
                let actual = format!(
                    "{} ({} of {} pulls)",
                    paths::number(rate),
                    paths::number(v),
                    paths::number(d)
                );
                (actual, c.op.holds(rate, limit))
            }
            Ok(None) | Err(_) => (format!("`{}` cannot be judged", c.text), false),
        };
    }
    match &c.right {
        Right::Literal(_) => match c.fit(kind, None) {
            Ok(Some(limit)) => (kind.show(v), c.op.holds(v, limit)),
            Ok(None) => (format!("`{}` cannot be judged", c.text), false),
            Err(e) => (e, false),
        },
        Right::Scaled {
            factor,
            path: other,
        } => match paths::value(doc, other) {
            Figure::Value(base) => {
                let limit = factor * base;
                let actual = format!(
                    "{} against {} ({} x {other})",
                    kind.show(v),
                    kind.show(limit),
                    paths::number(*factor)
                );
                (actual, c.op.holds(v, limit))
            }
            Figure::NoData(why) => (format!("{why}, for {other}"), false),
        },
    }
}

/// A path check that broke over the sliding window during the run.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBreach {
    pub path: String,
    /// The comparison as written.
    pub limit: String,
    pub actual: String,
    pub window: CheckWindow,
}

/// Adds the check that aborted the run, first (it is why the run ended), and fails the report.
pub fn record_abort(report: &mut ThresholdReport, b: &WindowBreach) {
    let w = &b.window;
    report.checks.insert(
        0,
        ThresholdCheck {
            name: b.path.clone(),
            limit: format!("{} over a {}s window", b.limit, w.seconds),
            actual: format!("{} in seconds {}-{}", b.actual, w.from_s, w.to_s),
            passed: false,
            window: Some(w.clone()),
        },
    );
    report.passed = false;
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
            planned_pulls: Some(started),
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

    #[test]
    fn path_checks_judge_any_figure() {
        let t = thresholds(
            "[thresholds]\nmax_failure_rate = 1.0\n\"pulls.failed\" = \"== 0\"\n\"latency.pull.p99\" = \"< 2s\"\n\
             \"errors.connection_reset\" = [\"<= 10\", \"rate < 0.1\"]\n\"bytes.wasted\" = \"< 1KiB\"\n\
             \"retries.total\" = \"< 0.5 * pulls.started\"\n",
        );
        let mut r = doc(20, 0);
        let pull = r.latency.entry("pull".into()).or_default();
        pull.count = 20;
        pull.p99 = 1500.0;
        r.errors.insert("connection_reset".into(), 1);
        r.retries.total = 9;
        let report = evaluate(&t, &r);
        assert!(report.passed, "{:?}", report.checks);
        let names: Vec<(&str, &str)> = report
            .checks
            .iter()
            .filter(|c| c.name.contains('.'))
            .map(|c| (c.name.as_str(), c.actual.as_str()))
            .collect();
        assert_eq!(
            names,
            // In key order, each comparison of a path in its own order.
            [
                ("bytes.wasted", "0B"),
                ("errors.connection_reset", "1"),
                ("errors.connection_reset", "0.05 (1 of 20 pulls)"),
                ("latency.pull.p99", "1500ms"),
                ("pulls.failed", "0"),
                ("retries.total", "9 against 10 (0.5 x pulls.started)"),
            ]
        );
        // Each figure over its limit fails its own check.
        r.pulls.failed = 1;
        r.latency.get_mut("pull").unwrap().p99 = 2000.0;
        r.errors.insert("connection_reset".into(), 2);
        r.bytes.wasted = 1024;
        r.retries.total = 10;
        let report = evaluate(&t, &r);
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.limit.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "< 1KiB",
                "rate < 0.1",
                "< 2s",
                "== 0",
                "< 0.5 * pulls.started"
            ]
        );
    }

    #[test]
    fn a_path_check_with_no_data_fails() {
        let t = thresholds(
            "[thresholds]\nmax_failure_rate = 1.0\n\"latency.pull.p99\" = \"< 1h\"\n\
             \"harness.cpu_peak_percent\" = \"< 90%\"\n\"errors.http_503\" = [\"== 0\", \"rate < 0.5\"]\n",
        );
        let report = evaluate(&t, &doc(0, 0));
        let actual: Vec<(&str, bool)> = report
            .checks
            .iter()
            .filter(|c| c.name.contains('.'))
            .map(|c| (c.actual.as_str(), c.passed))
            .collect();
        assert_eq!(
            actual,
            [
                // A class never seen is a count of 0, which holds...
                ("0", true),
                // ...but a rate of no pulls cannot be judged.
                ("no data (no pulls to divide by)", false),
                ("no data (harness.cpu_peak_percent not measured)", false),
                ("no data (no pull samples)", false),
            ]
        );
        assert!(!report.passed);
    }

    #[test]
    fn unknown_paths_and_unfit_units_are_scenario_errors() {
        let error = |toml: &str| scenario::parse(toml, "t.toml", &[]).unwrap_err().message;
        let e = error("[thresholds]\nmax_retries = 1\n\"latency.pull.p95\" = \"< 1s\"\n");
        assert!(
            e.starts_with("t.toml:3:22: thresholds.\"latency.pull.p95\": `latency.pull.p95` is not a figure of result.json: latency.pull has no `p95`"),
            "{e}"
        );
        let e = error("[thresholds]\n\"bytes.wasted\" = \"< 8m\"\n");
        assert!(
            e.starts_with(
                "t.toml:2:18: thresholds.\"bytes.wasted\": `< 8m`: the limit is a duration"
            ),
            "{e}"
        );
        let e = error("[thresholds]\n\"retries.total\" = \"< 0.05 * pulls.begun\"\n");
        assert!(
            e.contains("the limit's `pulls.begun` is not a figure"),
            "{e}"
        );
        let e = error(
            "[thresholds]\n\"pulls.failed\" = \"== 0\"\n[thresholds.pulls]\nfailed = \"< 1\"\n",
        );
        assert!(e.contains("`pulls.failed` is given twice"), "{e}");
        // A misspelt fixed key is not taken for a path that exists.
        let e = error("[thresholds]\nmax_failed_pull = 1\n");
        assert!(
            e.starts_with("t.toml:2:19: thresholds.max_failed_pull:"),
            "{e}"
        );
    }

    #[test]
    fn the_abort_is_the_first_check_and_fails_the_report() {
        let mut report = evaluate(&thresholds(""), &doc(3, 0));
        assert!(report.passed);
        record_abort(
            &mut report,
            &WindowBreach {
                path: "errors.http_503".into(),
                limit: "rate < 0.01".into(),
                actual: "0.5 (1 of 2 pulls)".into(),
                window: CheckWindow {
                    seconds: 3,
                    from_s: 4,
                    to_s: 6,
                },
            },
        );
        assert!(!report.passed);
        let c = &report.checks[0];
        assert_eq!(c.limit, "rate < 0.01 over a 3s window");
        assert_eq!(c.actual, "0.5 (1 of 2 pulls) in seconds 4-6");
    }
}
