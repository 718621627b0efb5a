//! The watched processes and endpoints as written to result.json (`targets[]`):
//! their peaks, events and per-second series. The watcher in `metrics::watch`
//! fills them; the report reads them.
//!
//! In code these are "watched" things; "target" means the registry under test.
//! The JSON key stays `targets` (schema v1 is a contract).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of thing a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchedKind {
    Harness,
    Process,
    Prometheus,
    StubStatus,
}

/// One point of a target's series: the highest value of its `step_s` seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchedPoint {
    /// Seconds since the run started (the clock of `timeline[].t`).
    pub t: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// Resident memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// CPU used since the previous sample, percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// Other values by name: `tcp_<state>` (harness), stub_status fields,
    /// `go_goroutines` and the extra Prometheus metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
}

impl WatchedPoint {
    /// Keeps the higher value of each field (peaks must survive merging).
    pub fn merge_max(&mut self, o: &WatchedPoint) {
        fn max_u(a: &mut Option<u64>, b: Option<u64>) {
            *a = match (*a, b) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        max_u(&mut self.fds, o.fds);
        max_u(&mut self.rss, o.rss);
        max_u(&mut self.threads, o.threads);
        self.cpu_pct = match (self.cpu_pct, o.cpu_pct) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        for (k, v) in &o.values {
            let e = self.values.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
    }
}

/// One watched target in result.json (`targets[]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WatchedSummary {
    /// `harness`, `nginx[1234]`, `127.0.0.1:5001/metrics`...
    pub name: String,
    pub kind: WatchedKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd_peak: Option<u64>,
    /// Soft nofile limit (process) or `process_max_fds` (endpoint), last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_peak: Option<u64>,
    /// CPU time used while watched, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_peak_pct: Option<f64>,
    /// Seconds into the run when the process was first seen gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at_s: Option<f64>,
    /// Seconds into the run when the process was first seen a zombie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zombie_at_s: Option<f64>,
    /// Samples taken and samples that failed (endpoint down, permission...).
    pub samples: u64,
    pub failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Highest value of each `values` key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peaks: BTreeMap<String, f64>,
    /// Seconds per series point (1 unless the run outgrew `metrics::watch::MAX_POINTS`).
    pub step_s: u64,
    pub series: Vec<WatchedPoint>,
}

impl WatchedSummary {
    /// A target not sampled yet: nothing measured, one-second steps.
    pub fn empty(name: String, kind: WatchedKind, pid: Option<u32>, url: Option<String>) -> Self {
        WatchedSummary {
            name,
            kind,
            pid,
            url,
            fd_peak: None,
            fd_limit: None,
            rss_peak_bytes: None,
            threads_peak: None,
            cpu_seconds: None,
            cpu_peak_pct: None,
            exited_at_s: None,
            zombie_at_s: None,
            samples: 0,
            failures: 0,
            last_error: None,
            peaks: BTreeMap::new(),
            step_s: 1,
            series: Vec::new(),
        }
    }
}
