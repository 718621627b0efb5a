//! The result.json model. Field names are a contract (docs/result-schema.md):
//! add fields freely, never rename or remove one without a new schema version.

pub use super::watched::{WatchedKind, WatchedPoint, WatchedSummary};
use crate::metrics::recorder::{Metric, Recorder};
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: &str = "pullstorm/result/v1";

/// One run's result.json (schema `pullstorm/result/v1`): what ran, what happened, how fast.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ResultDoc {
    pub schema: String,
    pub pullstorm_version: String,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub ended_at: String,
    pub duration_ms: u64,
    /// False when the deadline or Ctrl-C stopped the run with pulls in flight or not started.
    pub complete: bool,
    /// `finished`, `deadline`, `interrupted` or `threshold_abort` (a check of
    /// `abort_on_fail` broke over its window: see `thresholds.checks[].window`).
    pub stop_reason: String,
    pub fleet: FleetInfo,
    pub pulls: Pulls,
    pub layers: Layers,
    pub bytes: Bytes,
    pub throughput: Throughput,
    pub retries: Retries,
    /// Count per fault class; every fixed class is present, `http_<code>` when seen.
    pub errors: BTreeMap<String, u64>,
    /// One row per fault class seen: count, first/last time, a sample detail.
    pub error_details: Vec<ErrorDetail>,
    /// Percentiles per metric, milliseconds.
    pub latency: BTreeMap<String, LatencySummary>,
    /// Every histogram, HdrHistogram V2 + DEFLATE, base64: merge these, not the percentiles.
    pub histograms: BTreeMap<String, String>,
    pub fd: FdInfo,
    pub connections: ConnectionInfo,
    /// Whether the harness itself ran short of CPU or lagged: when it did, the
    /// figures may describe pullstorm rather than the target. Absent in
    /// results written before it existed.
    #[serde(default)]
    pub harness: Option<HarnessInfo>,
    pub clusters: Vec<ClusterStat>,
    pub timeline: Vec<TimelineRow>,
    pub thresholds: ThresholdReport,
    /// Watched targets (the harness itself, processes, endpoints) with their
    /// peaks, events and per-second series; empty when nothing was watched.
    #[serde(default, rename = "targets")]
    pub watched: Vec<WatchedSummary>,
    /// Blob redirects the pulls followed (a registry on object storage answers blob GETs
    /// with a 307 to a presigned URL of the storage). Absent in results written before it
    /// existed.
    #[serde(default)]
    pub redirects: Redirects,
    /// The capacity search of a staircase (`arrival.pattern = "staircase"`,
    /// docs/capacity.md); absent for other patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The registry's consistency after the storm (`[verify] after_run`,
    /// docs/verify.md); absent when not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<AfterRunVerify>,
    /// This run was one shard of a sharded storm (`--shard I/N`, docs/merge.md);
    /// absent when not sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// This result is `pullstorm merge` of these shards' results, in shard order;
    /// absent (empty) for a run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedShard>,
    /// Shard indexes missing from a merge made with `--allow-partial` (then `complete` is false).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
    /// What the CI runners of `[push]` did (docs/result-schema.md); absent without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushes: Option<super::pushes::Pushes>,
}

/// `[verify] after_run`: did the registry still serve every tag, manifest and
/// blob of the checked images whole once the storm was over?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AfterRunVerify {
    /// `consistent`, `inconsistent`, or `not_run` (see `reason`): only
    /// `consistent` passes the run's `verify` check.
    pub outcome: String,
    /// Why the check did not run or did not finish (`not_run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The check's report, as `pullstorm verify --json` writes it; absent for `not_run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::verify::Report>,
}

/// One shard's identity and clock facts, as the shard measured them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// 0-based index of this shard, and the shard count.
    pub index: u32,
    pub count: u32,
    /// Nodes this shard ran (its part of `fleet.clusters` x `fleet.nodes_per_cluster`).
    pub nodes: u64,
    /// Cluster numbers it ran nodes of.
    pub clusters: Vec<u32>,
    /// Each of those clusters ran whole in this shard (false: the fleet was split by node ranges).
    pub whole_clusters: bool,
    /// The agreed start (`--start-at` or `run.start_at`), RFC 3339 UTC; null when none was given.
    pub start_at: Option<String>,
    /// How late this shard's herd began after `start_at` (its `started_at` minus
    /// `start_at`, on this machine's clock), ms; 0 when it waited and started on
    /// time; null without `start_at`.
    pub started_late_ms: Option<u64>,
}

/// One shard of a merged result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MergedShard {
    pub index: u32,
    pub count: u32,
    /// The result.json merged, as given to `pullstorm merge`.
    pub file: String,
    /// The shard's own `started_at` and `ended_at`.
    pub started_at: String,
    pub ended_at: String,
    /// Its `started_at` minus the merged `started_at`, ms (its timeline is shifted by this).
    pub offset_ms: u64,
    pub nodes: u64,
    pub clusters: Vec<u32>,
    pub start_at: Option<String>,
    pub started_late_ms: Option<u64>,
    pub complete: bool,
    pub stop_reason: String,
    /// Its harness ran short of CPU (`harness.saturated`); null when it did not measure.
    pub harness_saturated: Option<bool>,
}

/// What a staircase found: the largest herd that held, the first that broke
/// and what broke it, each step's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Capacity {
    /// The largest herd (nodes pulling at once, each in a closed loop) that held on the climb; null if none did.
    pub knee_nodes: Option<u32>,
    /// The first herd that broke on the climb; null if none did up to the limit.
    pub broken_nodes: Option<u32>,
    /// What broke it: an error class (`http_503`, `connection_reset`, ...),
    /// `pull_failures` (failed pulls with no error class), `pull_p99`, `completion`,
    /// `no_progress`, `efficiency`, or, when pullstorm rather than the target ran
    /// short, `harness_saturated` or `fd_ratio`; null if nothing broke.
    pub broken_by: Option<String>,
    /// After bisection: the largest herd that held and the smallest that broke
    /// (by the target); null when no bisection step ran.
    pub refined_knee_nodes: Option<u32>,
    pub refined_broken_nodes: Option<u32>,
    /// Concurrent layer downloads at the knee: its herd x the client's download
    /// slots per node, at most the image's layers.
    pub knee_downloads: Option<u64>,
    /// Throughput (bytes/s) of the step at the knee.
    pub knee_bytes_per_sec: Option<f64>,
    /// How the search ended: `broke`, `max_nodes`, `max_steps`, `harness`,
    /// `deadline` or `interrupted`.
    pub ended_by: String,
    /// The staircase as run.
    pub start_nodes: u32,
    pub step_nodes: u32,
    pub max_nodes: u32,
    pub step_hold_s: u64,
    pub warmup_s: u64,
    /// The Universal Scalability Law fitted on the steps that held; null with fewer than three herds.
    pub usl: Option<UslFit>,
    /// Every judged step, in the order run (a step cut by the deadline is not listed).
    pub steps: Vec<CapacityStep>,
}

/// X(N) = λN / (1 + σ(N−1) + κN(N−1)), X in completed pulls per second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct UslFit {
    /// Completed pulls per second of one node.
    pub lambda: f64,
    /// Contention.
    pub sigma: f64,
    /// Coherency (crosstalk).
    pub kappa: f64,
    /// Coefficient of determination; null when every point had the same X.
    pub r2: Option<f64>,
    /// Steps fitted, and the smallest and largest herd among them.
    pub points: u64,
    pub nodes_min: u32,
    pub nodes_max: u32,
    /// The herd where the model's throughput peaks, √((1−σ)/κ); null unless it lies within the herds fitted.
    pub peak_nodes: Option<f64>,
}

/// One step of the staircase, judged on its seconds after the warm-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CapacityStep {
    /// `climb` or `bisect`.
    pub phase: String,
    pub nodes: u32,
    /// The step's first and last second (timeline `t`), warm-up included.
    pub start_s: u64,
    pub end_s: u64,
    /// Seconds judged (after the warm-up).
    pub judged_s: u64,
    /// Pulls started in the judged seconds.
    pub offered: u64,
    /// Pulls completed in them.
    pub completed: u64,
    pub failed: u64,
    /// completed / offered; null when none was offered.
    pub completion: Option<f64>,
    /// Completed pulls per second (X).
    pub completed_per_sec: Option<f64>,
    /// Mean pulls in flight (L, measured).
    pub in_flight_mean: Option<f64>,
    /// X x mean pull time (Little's law: close to `in_flight_mean` in a steady step).
    pub littles_l: Option<f64>,
    /// Pull time from the scheduled start, ms.
    pub pull_p50_ms: Option<f64>,
    pub pull_p99_ms: Option<f64>,
    /// failed / (completed + failed); null when none ended.
    pub error_rate: Option<f64>,
    /// Retries per offered pull; null when none was offered.
    pub retry_rate: Option<f64>,
    pub errors_by_class: BTreeMap<String, u64>,
    pub bytes_per_sec: Option<f64>,
    pub fds_peak: u64,
    pub connections_peak: i64,
    pub harness_saturated_s: u64,
    /// `held` or `broke`.
    pub verdict: String,
    /// What broke it (see `capacity.broken_by`) and the figures, for a person; null when it held.
    pub broken_by: Option<String>,
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: String,
    /// `--set` overrides, in order.
    pub overrides: Vec<String>,
    /// The scenario as run (defaults filled in, overrides applied).
    pub resolved: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    pub url: String,
    pub image: String,
    pub embedded: bool,
    pub manifest_digest: Option<String>,
    /// Config and layer blobs of the resolved image.
    pub blobs: Vec<BlobInfo>,
    /// Bytes one pull moves (config + layers).
    pub image_bytes: u64,
    /// The `Server` header of `GET /v2/` at start.
    pub server: Option<String>,
    /// The `Docker-Distribution-API-Version` header of `GET /v2/` at start.
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BlobInfo {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FleetInfo {
    pub clusters: u32,
    pub nodes_per_cluster: u32,
    pub nodes: u64,
    pub client: String,
    pub profile: serde_json::Value,
    pub arrival: String,
    pub node_bandwidth_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Pulls {
    /// nodes x pulls_per_node; `None` (null) in a staircase, whose nodes pull until the search ends.
    pub planned: Option<u64>,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Started but neither completed nor failed when the run stopped.
    pub interrupted: u64,
    /// Re-pulls by the kubelet after a failure (included in `started`).
    #[serde(default)]
    pub kubelet_retries: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Layers {
    pub completed: u64,
    pub failed: u64,
    /// attempts -> number of layers that took that many.
    pub attempts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Bytes {
    /// Body bytes received, wasted ones included.
    pub downloaded: u64,
    /// Bytes received and then thrown away (restarts, bad digests, skipped prefixes).
    pub wasted: u64,
    /// Bytes of completed pulls.
    pub completed_pulls: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Throughput {
    /// downloaded / duration.
    pub mean_bytes_per_sec: f64,
    /// Best one-second row of the timeline.
    pub peak_bytes_per_sec: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Retries {
    pub total: u64,
    pub by_class: BTreeMap<String, u64>,
    /// Retries by how far the blob had come when the attempt failed, in ten buckets
    /// `"0-10"` ... `"90-100"` (percent of the blob): a cut by an LB timeout shows as a
    /// peak at the fraction the timeout allows.
    #[serde(default)]
    pub at_progress: BTreeMap<String, u64>,
}

/// Redirects of blob GETs that were followed (docs/result-schema.md, "redirects").
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Redirects {
    /// Every blob redirect followed.
    pub followed: u64,
    /// Of them, those to another host or port than the registry's (object storage): the
    /// Authorization of the registry was not sent there. Their requests are timed under
    /// `latency.storage_ttfb` and `latency.storage_connect`, and their error answers are
    /// counted as `storage_<status>`.
    pub to_storage: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    pub class: String,
    pub count: u64,
    pub first_s: f64,
    pub last_s: f64,
    pub phase: String,
    pub request: String,
    pub sample: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FdInfo {
    pub client_peak: u64,
    /// The soft nofile limit the run had (after raising it to the hard limit).
    pub client_limit: u64,
    pub client_hard_limit: u64,
    pub client_limit_at_start: u64,
}

/// Client connections: the most open at once, and what the pulls' connections did.
/// The counted fields are absent (null) in results written before they existed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionInfo {
    pub peak: i64,
    /// Connections the pulls opened (the preflight's not included), HTTPS probes included.
    #[serde(default)]
    pub opened: Option<u64>,
    /// Requests sent on them.
    #[serde(default)]
    pub requests: Option<u64>,
    /// `requests / opened`; null when no connection was opened.
    #[serde(default)]
    pub requests_per_connection: Option<f64>,
    /// Most requests sent on one connection; null when no request was sent.
    #[serde(default)]
    pub max_requests_per_connection: Option<u64>,
    /// dockerd's HTTPS attempts on a plain-HTTP target (each one of `opened`, none a request).
    #[serde(default)]
    pub https_probes: Option<u64>,
    /// Completed TLS handshakes (their times: `latency.tls_handshake`).
    #[serde(default)]
    pub tls_handshakes: Option<u64>,
}

impl ConnectionInfo {
    /// The figures of a run: the gauge's peak and the recorder's totals.
    pub fn measured(rec: &Recorder) -> ConnectionInfo {
        let c = &rec.connections;
        let tls = rec
            .histograms
            .get(&Metric::TlsHandshake)
            .map_or(0, |h| h.len());
        ConnectionInfo {
            peak: rec.connections_peak,
            opened: Some(c.opened),
            requests: Some(c.requests),
            requests_per_connection: (c.opened > 0)
                .then(|| (c.requests as f64 / c.opened as f64 * 1000.0).round() / 1000.0),
            max_requests_per_connection: (c.requests > 0).then_some(c.most_requests),
            https_probes: Some(c.https_probes),
            tls_handshakes: Some(tls),
        }
    }
}

/// The harness watching itself (see `metrics::harness`): its CPU against the
/// cores it may use and the lag of its timers, per second in `timeline[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessInfo {
    /// CPU time pullstorm used during the run, all threads, user + system.
    pub cpu_seconds: f64,
    /// Cores pullstorm could use: the fewer of `affinity_cores` and `cpu_quota_cores`.
    pub usable_cores: f64,
    /// CPUs in its affinity mask (`taskset`, cpuset).
    pub affinity_cores: u32,
    /// The cgroup CPU quota in cores, when one is set.
    pub cpu_quota_cores: Option<f64>,
    /// `cpu_seconds` over the time measured, percent of the usable cores.
    pub cpu_mean_percent: Option<f64>,
    /// The busiest second, percent of the usable cores.
    pub cpu_peak_percent: Option<f64>,
    /// The second in which its threads waited longest for a CPU (other
    /// processes had the cores), percent of the usable cores.
    pub cpu_wait_peak_percent: Option<f64>,
    /// The latest a timer on the fleet's runtime woke, ms.
    pub timer_lag_max_ms: Option<f64>,
    /// Seconds with a figure (timeline rows).
    pub measured_seconds: u64,
    /// Seconds in which pullstorm used, or used and waited for, 90 % of its
    /// usable cores or more, or a timer woke over 100 ms late.
    pub saturated_seconds: u64,
    /// Saturated seconds are more than 5 % of the measured ones.
    pub saturated: bool,
    /// The embedded registry ran in this process: its CPU is counted too.
    pub embedded_registry: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdReport {
    pub passed: bool,
    pub checks: Vec<ThresholdCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdCheck {
    /// The fixed rule's key (`max_failed_pulls`) or the path into result.json (`latency.pull.p99`).
    pub name: String,
    /// As the scenario wrote it (`< 8m`, `rate < 0.01`); with ` over a Ns window` for a window abort.
    pub limit: String,
    /// The figure in the limit's unit syntax, or `no data (...)` when the run had none (the check fails).
    pub actual: String,
    pub passed: bool,
    /// Set on the check that aborted the run (`abort_on_fail`): the window it broke over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<CheckWindow>,
}

/// The sliding window over which a check broke and aborted the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckWindow {
    /// The window's length, s.
    pub seconds: u64,
    /// First and last second (`timeline[].t`) the window held; the run was aborted as `to_s` closed.
    pub from_s: u64,
    pub to_s: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TimelineRow {
    /// Seconds since the run started.
    pub t: u64,
    pub active_pulls: i64,
    pub connections: i64,
    /// Body bytes received during this second.
    pub bytes: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub retries: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_class: BTreeMap<String, u64>,
    pub fds: u64,
    /// The harness's CPU in this second, percent of its usable cores; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpu_percent: Option<f64>,
    /// Time the harness's threads waited for a CPU in this second, percent of its usable cores; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpu_wait_percent: Option<f64>,
    /// How late a timer on the fleet's runtime woke in this second, at worst, ms; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_lag_ms: Option<f64>,
}

/// Per-cluster counts for the breakdown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStat {
    pub cluster: u32,
    pub pulls_started: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Slowest pull of the cluster (from scheduled start), ms.
    pub pull_max_ms: f64,
}

/// Percentiles of a microsecond histogram, in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        min: ms(h.min()),
        mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// HdrHistogram V2 + DEFLATE, base64 (standard alphabet, padded).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a valid histogram.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The inverse of [`encode_histogram`].
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("bad histogram: {e:?}"))
}

/// The measured parts of the result, from the recorder.
pub fn measured(rec: &Recorder) -> (BTreeMap<String, LatencySummary>, BTreeMap<String, String>) {
    let mut latency = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for m in Metric::ALL {
        if let Some(h) = rec.histograms.get(&m) {
            latency.insert(m.key().to_string(), summarize(h));
            histograms.insert(m.key().to_string(), encode_histogram(h));
        }
    }
    (latency, histograms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_losslessly() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).unwrap();
        for v in [1u64, 10, 1_000, 1_234_567, 60_000_000] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        let s = summarize(&h);
        assert_eq!(s.count, 5);
        assert!((s.p50 - 1.0).abs() < 0.01, "{s:?}");
    }
}
