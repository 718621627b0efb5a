//! The watched processes and endpoints as written to result.json (`targets[]`):
//! their peaks, events and per-second series. The watcher in `metrics::watch`
//! fills them; the report reads them.
//!
//! In code these are "watched" things; "target" means the registry under test.
//! The JSON key stays `targets` (schema v1 is a contract).

use super::leak::Trends;
use crate::metrics::watch::label;
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
    /// A process's command line: program file name and arguments, secrets
    /// masked, cut to 80 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The TCP ports a process listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen_ports: Vec<u16>,
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
    /// A process's (and the harness's) RSS, fds and threads over the run after
    /// its warm-up: Theil-Sen slope per hour with its 95 % interval
    /// (`result::leak`, docs/soak.md); absent when no metric had enough points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trends>,
    /// Whether any of `trend`'s metrics is suspected of leaking; null when not
    /// judged (an endpoint, or too few points).
    #[serde(default)]
    pub leak_suspected: Option<bool>,
}

impl WatchedSummary {
    /// A target not sampled yet: nothing measured, one-second steps.
    pub fn empty(name: String, kind: WatchedKind, pid: Option<u32>, url: Option<String>) -> Self {
        WatchedSummary {
            name,
            kind,
            pid,
            url,
            command: None,
            listen_ports: Vec::new(),
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
            trend: None,
            leak_suspected: None,
        }
    }

    /// The name as the report shows it: a process with the ports it listens
    /// on (`docker-registry[812] :5000`), else with its command line, so
    /// processes of one name read apart; others by their name alone.
    pub fn label(&self) -> String {
        if self.kind != WatchedKind::Process {
            return self.name.clone();
        }
        if !self.listen_ports.is_empty() {
            return format!("{} {}", self.name, label::ports_label(&self.listen_ports));
        }
        match &self.command {
            Some(c) => format!("{} ({})", self.name, label::shorten(c, LABEL_COMMAND)),
            None => self.name.clone(),
        }
    }
}

/// Most characters of a command line in a label (the watched table shows it whole).
const LABEL_COMMAND: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(pid: u32, command: &str, ports: &[u16]) -> WatchedSummary {
        WatchedSummary {
            command: Some(command.into()),
            listen_ports: ports.to_vec(),
            ..WatchedSummary::empty(
                format!("docker-registry[{pid}]"),
                WatchedKind::Process,
                Some(pid),
                None,
            )
        }
    }

    #[test]
    fn processes_of_one_name_are_labelled_by_port_else_by_command() {
        let a = registry(812, "docker-registry serve /etc/a.yml", &[5000]);
        let b = registry(907, "docker-registry serve /etc/b.yml", &[5001, 5002]);
        assert_eq!(a.label(), "docker-registry[812] :5000");
        assert_eq!(b.label(), "docker-registry[907] :5001,5002");
        let c = registry(
            999,
            "docker-registry serve /etc/docker/registry/config-c.yml",
            &[],
        );
        assert_eq!(
            c.label(),
            "docker-registry[999] (docker-registry serve /etc/docker/regis…)"
        );
        let bare = WatchedSummary::empty("x[1]".into(), WatchedKind::Process, Some(1), None);
        assert_eq!(bare.label(), "x[1]");
        // The harness and endpoints keep their names.
        let harness = WatchedSummary {
            listen_ports: vec![40000],
            ..WatchedSummary::empty("harness".into(), WatchedKind::Harness, Some(2), None)
        };
        assert_eq!(harness.label(), "harness");
    }
}
