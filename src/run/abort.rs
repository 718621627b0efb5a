//! `[thresholds] abort_on_fail`: the path checks judged during the run, each
//! second, over the last `window` seconds, and the run stopped at the first
//! that fails (`stop_reason: "threshold_abort"`).
//!
//! The recorder publishes each closed second (`metrics::live`); the seconds
//! of the window are summed into [`Totals`] and mapped to a small JSON value
//! with the same paths as result.json (`pulls.*`, `errors.<class>`,
//! `retries.total`, `bytes.downloaded|wasted`, `latency.<metric>.<stat>`,
//! `connections.peak`, `fd.client_peak`, `throughput.mean_bytes_per_sec`), on
//! which the same parsed comparisons are judged. Rules:
//! - a check whose path (or the path on its right) has no window figure is
//!   judged at the end only; the fixed keys (`max_failed_pulls`...) too;
//! - no decision before `grace` has passed (the second closing at `grace`
//!   is the first judged);
//! - a check with no data in the window (no pull time when no pull completed
//!   in it, a rate with no pull in play) does not abort: only the end's
//!   verdict fails it;
//! - a `rate` divides by the pulls in play in the window: those in flight as
//!   it began plus those started in it.

use crate::metrics::live::{self, Feed, LiveSecond, Seconds, Totals};
use crate::result::model::CheckWindow;
use crate::result::thresholds::expr::{Comparison, Right};
use crate::result::thresholds::paths::{self, Figure};
use crate::result::thresholds::{self, WindowBreach};
use crate::scenario::{PathCheck, Thresholds};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Figures a window has besides `errors.<class>` and `latency.<metric>.<stat>`.
const WINDOW_FIGURES: [&str; 11] = [
    "pulls.started",
    "pulls.completed",
    "pulls.failed",
    "layers.completed",
    "layers.failed",
    "retries.total",
    "bytes.downloaded",
    "bytes.wasted",
    "throughput.mean_bytes_per_sec",
    "connections.peak",
    "fd.client_peak",
];

/// The latency figures a window computes from its own histograms.
const LATENCY_STATS: [&str; 8] = ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"];

/// Whether a window has a figure at `path`.
pub fn in_window(path: &str) -> bool {
    let segs: Vec<&str> = path.split('.').collect();
    WINDOW_FIGURES.contains(&path)
        || (segs.len() == 2 && segs[0] == "errors")
        || (segs.len() == 3 && segs[0] == "latency" && LATENCY_STATS.contains(&segs[2]))
}

fn comparison_in_window(path: &str, c: &Comparison) -> bool {
    in_window(path)
        && match &c.right {
            Right::Scaled { path, .. } => in_window(path),
            Right::Literal(_) => true,
        }
}

/// Whether any comparison of the check is judged during the run.
pub fn judged_in_window(check: &PathCheck) -> bool {
    check
        .comparisons
        .iter()
        .any(|c| comparison_in_window(&check.path, c))
}

/// A window's sums as a value shaped like result.json.
pub fn window_doc(t: &Totals) -> Value {
    let mut latency = Map::new();
    for (metric, h) in &t.latencies {
        if h.is_empty() {
            continue;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        latency.insert(
            metric.to_string(),
            json!({
                "count": h.len(),
                "min": ms(h.min()),
                "mean": h.mean() / 1000.0,
                "p50": ms(h.value_at_quantile(0.50)),
                "p90": ms(h.value_at_quantile(0.90)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p999": ms(h.value_at_quantile(0.999)),
                "max": ms(h.max()),
            }),
        );
    }
    json!({
        "pulls": {"started": t.pulls_started, "completed": t.pulls_completed, "failed": t.pulls_failed},
        "layers": {"completed": t.layers_completed, "failed": t.layers_failed},
        "retries": {"total": t.retries},
        "errors": t.errors_by_class,
        "bytes": {"downloaded": t.bytes, "wasted": t.bytes_wasted},
        "throughput": {"mean_bytes_per_sec": t.bytes_per_sec()},
        "connections": {"peak": t.connections_peak},
        "fd": {"client_peak": t.fds_peak},
        "latency": latency,
    })
}

/// The window and the checks it judges: fed one closed second at a time.
pub struct Watch {
    checks: Vec<(String, Comparison)>,
    window: usize,
    grace_s: u64,
    seconds: Seconds,
    /// Pulls in flight at the end of each of the last `window + 1` seconds.
    active: VecDeque<i64>,
    /// Latency metrics some check reads (the others' samples are not kept).
    metrics: BTreeSet<String>,
}

impl Watch {
    /// The watch of a scenario that aborts on failure; `None` otherwise.
    pub fn new(t: &Thresholds) -> Option<Watch> {
        if !t.abort_on_fail {
            return None;
        }
        let mut checks = Vec::new();
        let mut metrics = BTreeSet::new();
        for check in &t.paths {
            for c in &check.comparisons {
                if !comparison_in_window(&check.path, c) {
                    continue;
                }
                let right = match &c.right {
                    Right::Scaled { path, .. } => Some(path.as_str()),
                    Right::Literal(_) => None,
                };
                for path in std::iter::once(check.path.as_str()).chain(right) {
                    if let Some(metric) = path.strip_prefix("latency.") {
                        metrics.insert(metric.split('.').next().unwrap_or("").to_string());
                    }
                }
                checks.push((check.path.clone(), c.clone()));
            }
        }
        if checks.is_empty() {
            return None;
        }
        let whole_seconds = |d: std::time::Duration| d.as_secs_f64().ceil() as u64;
        let window = whole_seconds(t.window().0).max(1) as usize;
        Some(Watch {
            checks,
            window,
            grace_s: whole_seconds(t.grace().0),
            seconds: Seconds::window(window),
            active: VecDeque::new(),
            metrics,
        })
    }

    /// Takes in one closed second; returns the first check that fails over the
    /// window ending with it, once the grace has passed.
    pub fn second(&mut self, s: &LiveSecond) -> Option<WindowBreach> {
        let slim = LiveSecond {
            row: s.row.clone(),
            pulls_started: s.pulls_started,
            layers_completed: s.layers_completed,
            layers_failed: s.layers_failed,
            bytes_wasted: s.bytes_wasted,
            latencies: s
                .latencies
                .iter()
                .filter(|(k, _)| self.metrics.contains(**k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        };
        self.seconds.push(Arc::new(slim));
        self.active.push_back(s.row.active_pulls);
        if self.active.len() > self.window + 1 {
            self.active.pop_front();
        }
        // A row's `t` is the end of its second: `t` seconds of the run have passed.
        if s.row.t < self.grace_s {
            return None;
        }
        let totals = self.seconds.totals();
        // Before the window fills it starts with the run: nothing was in flight.
        let before = if self.active.len() > self.window {
            self.active.front().copied().unwrap_or(0).max(0) as u64
        } else {
            0
        };
        let in_play = (before + totals.pulls_started) as f64;
        let doc = window_doc(&totals);
        for (path, c) in &self.checks {
            if !has_data(path, c, &doc, in_play) {
                continue;
            }
            let (actual, passed) = thresholds::judge(c, path, &doc, Some(in_play));
            if !passed {
                return Some(WindowBreach {
                    path: path.clone(),
                    limit: c.text.clone(),
                    actual,
                    window: CheckWindow {
                        seconds: self.window as u64,
                        from_s: totals.first_t.unwrap_or(s.row.t),
                        to_s: totals.last_t.unwrap_or(s.row.t),
                    },
                });
            }
        }
        None
    }
}

/// Whether the window has every figure the comparison needs.
fn has_data(path: &str, c: &Comparison, doc: &Value, in_play: f64) -> bool {
    let known = |p: &str| matches!(paths::value(doc, p), Figure::Value(_));
    known(path)
        && (!c.rate || in_play > 0.0)
        && match &c.right {
            Right::Scaled { path, .. } => known(path),
            Right::Literal(_) => true,
        }
}

/// The watch on the recorder's feed, for the storm's supervisor.
pub struct Abort {
    watch: Option<Watch>,
    seconds: Option<Receiver<Arc<LiveSecond>>>,
    breach: Option<WindowBreach>,
}

impl Abort {
    /// The abort of a scenario, and the feed the recorder must publish on
    /// (`None` when the scenario does not abort on failure).
    pub fn start(t: &Thresholds) -> (Abort, Option<Feed>) {
        let watch = Watch::new(t);
        let feed = watch.as_ref().map(|_| live::feed());
        let seconds = feed.as_ref().map(|f| f.subscribe());
        let abort = Abort {
            watch,
            seconds,
            breach: None,
        };
        (abort, feed)
    }

    /// Completes when a check breaks over the window; never without a watch.
    pub async fn breached(&mut self) {
        let Abort {
            watch: Some(watch),
            seconds: Some(seconds),
            breach,
        } = self
        else {
            return std::future::pending().await;
        };
        loop {
            match seconds.recv().await {
                Ok(second) => {
                    if let Some(b) = watch.second(&second) {
                        *breach = Some(b);
                        return;
                    }
                }
                // A slow judge misses some seconds; the next windows still count.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return std::future::pending().await,
            }
        }
    }

    /// The check that broke, if one did.
    pub fn breach(self) -> Option<WindowBreach> {
        self.breach
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::recorder::Metric;
    use crate::result::model::TimelineRow;
    use crate::scenario;

    fn thresholds(toml: &str) -> Thresholds {
        scenario::parse(toml, "t.toml", &[])
            .unwrap_or_else(|e| panic!("{}", e.message))
            .thresholds
    }

    /// The second ending at `t`: `started` pulls began, `failed` failed, `resets` connection resets,
    /// `active` in flight at its end, pull times in ms.
    fn second(
        t: u64,
        started: u64,
        failed: u64,
        resets: u64,
        active: i64,
        pulls_ms: &[u64],
    ) -> LiveSecond {
        let mut row = TimelineRow {
            t,
            pulls_failed: failed,
            pulls_completed: pulls_ms.len() as u64,
            active_pulls: active,
            errors: resets,
            ..Default::default()
        };
        if resets > 0 {
            row.errors_by_class
                .insert("connection_reset".into(), resets);
        }
        let mut s = LiveSecond {
            row,
            pulls_started: started,
            ..Default::default()
        };
        for ms in pulls_ms {
            s.latencies
                .entry(Metric::Pull.key())
                .or_default()
                .push(ms * 1000);
        }
        s
    }

    const ABORT: &str = "[thresholds]\nabort_on_fail = true\nwindow = \"3s\"\ngrace = \"2s\"\n";

    #[test]
    fn a_rate_breaks_over_the_window_after_the_grace() {
        let t = thresholds(&format!(
            "{ABORT}\"errors.connection_reset\" = \"rate < 0.1\"\n\"pulls.failed\" = \"< 3\"\n"
        ));
        let mut w = Watch::new(&t).unwrap();
        // 10 pulls start at once and stay in flight; 5 resets in the first second.
        assert_eq!(
            w.second(&second(1, 10, 0, 5, 10, &[])),
            None,
            "inside the grace"
        );
        let b = w
            .second(&second(2, 0, 0, 0, 10, &[]))
            .expect("5 resets of 10 pulls in play");
        assert_eq!(b.path, "errors.connection_reset");
        assert_eq!(b.limit, "rate < 0.1");
        assert_eq!(b.actual, "0.5 (5 of 10 pulls)");
        assert_eq!(
            b.window,
            CheckWindow {
                seconds: 3,
                from_s: 1,
                to_s: 2
            }
        );
    }

    #[test]
    fn the_window_slides_and_counts_pulls_in_flight_as_in_play() {
        let t = thresholds(&format!(
            "{ABORT}\"errors.connection_reset\" = \"rate < 0.5\"\n"
        ));
        let mut w = Watch::new(&t).unwrap();
        for s in 1..=3 {
            // 4 resets in second 1, then quiet: 4 / 10 < 0.5.
            let resets = if s == 1 { 4 } else { 0 };
            let started = if s == 1 { 10 } else { 0 };
            assert_eq!(w.second(&second(s, started, 0, resets, 10, &[])), None);
        }
        // Second 1 has left the window: no pull started in it, but 10 were in flight.
        let b = w.second(&second(4, 0, 0, 6, 10, &[])).expect("6 of 10");
        assert_eq!(b.actual, "0.6 (6 of 10 pulls)");
        assert_eq!((b.window.from_s, b.window.to_s), (2, 4));
    }

    #[test]
    fn no_data_in_the_window_does_not_abort() {
        let t = thresholds(&format!(
            "{ABORT}\"latency.pull.p99\" = \"< 1s\"\n\"errors.connection_reset\" = \"rate < 0.1\"\n"
        ));
        let mut w = Watch::new(&t).unwrap();
        // No pull completed, no pull in play: neither check has data.
        for s in 1..=5 {
            assert_eq!(w.second(&second(s, 0, 0, 0, 0, &[])), None);
        }
        let b = w
            .second(&second(6, 2, 0, 0, 2, &[500, 1500]))
            .expect("a slow pull");
        assert_eq!(b.path, "latency.pull.p99");
        assert!(b.actual.starts_with("15"), "{}", b.actual);
    }

    #[test]
    fn a_check_with_a_path_on_the_right() {
        let t = thresholds(&format!(
            "{ABORT}\"pulls.failed\" = \"<= 0.5 * pulls.started\"\n"
        ));
        let mut w = Watch::new(&t).unwrap();
        assert_eq!(
            w.second(&second(2, 4, 2, 0, 2, &[])),
            None,
            "2 failed <= 0.5 x 4"
        );
        assert!(
            w.second(&second(3, 0, 1, 0, 1, &[])).is_some(),
            "3 failed > 0.5 x 4"
        );
    }

    #[test]
    fn what_is_judged_during_the_run() {
        for path in [
            "pulls.failed",
            "errors.http_503",
            "latency.pull.p99",
            "latency.ttfb.count",
            "bytes.wasted",
            "throughput.mean_bytes_per_sec",
        ] {
            assert!(in_window(path), "{path}");
        }
        for path in [
            "retries.by_class.dns",
            "harness.cpu_peak_percent",
            "pulls.planned",
            "duration_ms",
        ] {
            assert!(!in_window(path), "{path}");
        }
        // End-only checks and no abort: no watch, no feed.
        let t = thresholds("[thresholds]\n\"pulls.failed\" = \"== 0\"\n");
        assert!(Watch::new(&t).is_none());
        let t = thresholds(&format!(
            "{ABORT}\"pulls.failed\" = \"== 0\"\n\"harness.cpu_peak_percent\" = \"< 90%\"\n"
        ));
        let w = Watch::new(&t).unwrap();
        assert_eq!(w.checks.len(), 1);
        let (_, feed) = Abort::start(&thresholds("[thresholds]\n\"pulls.failed\" = \"== 0\"\n"));
        assert!(feed.is_none());
    }

    #[test]
    fn an_abort_without_a_check_it_can_judge_is_a_scenario_error() {
        let e = scenario::parse(
            &format!("{ABORT}\"harness.cpu_peak_percent\" = \"< 90%\"\n"),
            "t.toml",
            &[],
        )
        .unwrap_err()
        .message;
        assert!(
            e.starts_with("t.toml:2:17: thresholds.abort_on_fail: no path threshold"),
            "{e}"
        );
        let e = scenario::parse("[thresholds]\nwindow = \"3s\"\n", "t.toml", &[])
            .unwrap_err()
            .message;
        assert!(
            e.contains("thresholds.window: only applies with abort_on_fail = true"),
            "{e}"
        );
    }
}
