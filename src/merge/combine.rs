//! The merged result, a pure function of the shards' results: counters
//! summed, histograms added and their percentiles recomputed, timelines
//! aligned on wall-clock time ([`super::timeline`]), errors, clusters and
//! watched targets gathered, thresholds checked on the whole storm.
//! docs/merge.md says, figure by figure, what happens here.

use super::check::Part;
use super::timeline::{self, Shifted};
use crate::result::model::*;
use crate::result::thresholds;
use crate::scenario::Thresholds;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// One shard's start on the merged clock.
struct Clock {
    started: SystemTime,
    ended: SystemTime,
    /// `started` minus the earliest shard's, ms.
    offset_ms: u64,
}

/// Merges checked parts ([`super::check::check`]), in shard order; `missing`
/// are the shards left out by `--allow-partial`.
pub fn merge(parts: &[Part<'_>], missing: &[u32]) -> Result<ResultDoc, String> {
    let first = parts.first().ok_or("nothing to merge")?.doc;
    let time = |p: &Part<'_>, key: &str, text: &str| {
        humantime::parse_rfc3339(text).map_err(|e| format!("{}: key `{key}` {text:?}: {e}", p.file))
    };
    let mut clocks = Vec::with_capacity(parts.len());
    for p in parts {
        let started = time(p, "started_at", &p.doc.started_at)?;
        let ended = time(p, "ended_at", &p.doc.ended_at)?;
        clocks.push(Clock {
            started,
            ended: ended.max(started),
            offset_ms: 0,
        });
    }
    let started = clocks
        .iter()
        .map(|c| c.started)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let ended = clocks.iter().map(|c| c.ended).max().unwrap_or(started);
    for c in &mut clocks {
        c.offset_ms = c
            .started
            .duration_since(started)
            .unwrap_or_default()
            .as_millis() as u64;
    }
    let duration = ended.duration_since(started).unwrap_or_default();
    let docs: Vec<&ResultDoc> = parts.iter().map(|p| p.doc).collect();
    let sum = |f: &dyn Fn(&ResultDoc) -> u64| docs.iter().map(|d| f(d)).sum::<u64>();

    let (latency, histograms) = histograms(parts)?;
    let shifted: Vec<Shifted<'_>> = docs
        .iter()
        .zip(&clocks)
        .map(|(d, c)| Shifted {
            offset_ms: c.offset_ms,
            rows: &d.timeline,
        })
        .collect();
    let timeline = timeline::align(&shifted);
    let pulls = Pulls {
        planned: docs.iter().map(|d| d.pulls.planned).sum(),
        started: sum(&|d| d.pulls.started),
        completed: sum(&|d| d.pulls.completed),
        failed: sum(&|d| d.pulls.failed),
        interrupted: sum(&|d| d.pulls.interrupted),
        kubelet_retries: sum(&|d| d.pulls.kubelet_retries),
    };
    let downloaded = sum(&|d| d.bytes.downloaded);
    let complete = missing.is_empty() && docs.iter().all(|d| d.complete);
    let mut doc = ResultDoc {
        schema: SCHEMA.to_string(),
        pullstorm_version: first.pullstorm_version.clone(),
        scenario: first.scenario.clone(),
        target: first.target.clone(),
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: humantime::format_rfc3339_millis(ended).to_string(),
        duration_ms: duration.as_millis() as u64,
        complete,
        stop_reason: stop_reason(&docs),
        fleet: FleetInfo {
            nodes: sum(&|d| d.fleet.nodes),
            ..first.fleet.clone()
        },
        pulls,
        layers: Layers {
            completed: sum(&|d| d.layers.completed),
            failed: sum(&|d| d.layers.failed),
            attempts: add_maps(docs.iter().map(|d| &d.layers.attempts)),
        },
        bytes: Bytes {
            downloaded,
            wasted: sum(&|d| d.bytes.wasted),
            completed_pulls: sum(&|d| d.bytes.completed_pulls),
        },
        // As a run computes them, the merged duration standing for the time covered, so the
        // peak is never below the mean (a short last second is joined to the one before).
        throughput: crate::result::build::rates(
            downloaded,
            duration.as_secs_f64(),
            &timeline,
            duration.as_secs_f64(),
        ),
        retries: Retries {
            total: sum(&|d| d.retries.total),
            by_class: add_maps(docs.iter().map(|d| &d.retries.by_class)),
            at_progress: add_maps(docs.iter().map(|d| &d.retries.at_progress)),
        },
        errors: add_maps(docs.iter().map(|d| &d.errors)),
        error_details: error_details(&docs, &clocks),
        latency,
        histograms,
        fd: FdInfo {
            client_peak: peak(&timeline, |r| r.fds).unwrap_or_else(|| sum(&|d| d.fd.client_peak)),
            client_limit: sum(&|d| d.fd.client_limit),
            client_hard_limit: sum(&|d| d.fd.client_hard_limit),
            client_limit_at_start: sum(&|d| d.fd.client_limit_at_start),
        },
        connections: connections(&docs, &timeline),
        harness: worst_harness(&docs),
        clusters: clusters(&docs),
        timeline,
        thresholds: ThresholdReport::default(),
        watched: watched(parts, &clocks),
        capacity: None,
        redirects: crate::result::model::Redirects {
            followed: sum(&|d| d.redirects.followed),
            to_storage: sum(&|d| d.redirects.to_storage),
        },
        verify: after_run_verify(&docs),
        pushes: pushes(&docs),
        shard: None,
        merged_from: parts
            .iter()
            .zip(&clocks)
            .map(|(p, c)| merged_shard(p, c))
            .collect(),
        missing_shards: missing.to_vec(),
    };
    let limits = limits(&first.scenario.resolved)
        .map_err(|e| format!("{}: key `scenario.resolved.thresholds`: {e}", parts[0].file))?;
    doc.thresholds = thresholds::evaluate(&limits, &doc);
    Ok(doc)
}

/// The thresholds of the scenario as run, read back from the result (a
/// null there is a key left unset).
fn limits(resolved: &serde_json::Value) -> Result<Thresholds, String> {
    let mut t = resolved.get("thresholds").cloned().unwrap_or_default();
    if let Some(map) = t.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(t).map_err(|e| e.to_string())
}

/// `latency` and `histograms` of result.json.
type Measured = (BTreeMap<String, LatencySummary>, BTreeMap<String, String>);

/// Each metric's histograms added (lossless: same buckets), percentiles read again.
fn histograms(parts: &[Part<'_>]) -> Result<Measured, String> {
    let mut merged: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for p in parts {
        for (metric, text) in &p.doc.histograms {
            let h = decode_histogram(text)
                .map_err(|e| format!("{}: key `histograms.{metric}`: {e}", p.file))?;
            match merged.get_mut(metric) {
                Some(m) => m.add(&h).map_err(|e| {
                    format!("{}: key `histograms.{metric}`: cannot add: {e:?}", p.file)
                })?,
                None => {
                    merged.insert(metric.clone(), h);
                }
            }
        }
    }
    let latency = merged
        .iter()
        .map(|(k, h)| (k.clone(), summarize(h)))
        .collect();
    let encoded = merged
        .iter()
        .map(|(k, h)| (k.clone(), encode_histogram(h)))
        .collect();
    Ok((latency, encoded))
}

fn add_maps<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k.clone()).or_insert(0) += v;
        }
    }
    out
}

/// The highest summed second; `None` without a timeline.
fn peak<T: Ord>(rows: &[TimelineRow], f: impl Fn(&TimelineRow) -> T) -> Option<T> {
    rows.iter().map(f).max()
}

/// All shards' reason when they agree, else the one that says most about the storm.
fn stop_reason(docs: &[&ResultDoc]) -> String {
    const SEVERITY: [&str; 4] = ["interrupted", "threshold_abort", "deadline", "finished"];
    let rank = |r: &str| SEVERITY.iter().position(|s| *s == r).unwrap_or(0);
    docs.iter()
        .map(|d| d.stop_reason.as_str())
        .min_by_key(|r| rank(r))
        .unwrap_or("finished")
        .to_string()
}

/// One row per class: counts summed, first and last on the merged clock, the
/// sample of the earliest.
fn error_details(docs: &[&ResultDoc], clocks: &[Clock]) -> Vec<ErrorDetail> {
    let mut out: BTreeMap<String, ErrorDetail> = BTreeMap::new();
    for (d, c) in docs.iter().zip(clocks) {
        let shift = c.offset_ms as f64 / 1000.0;
        for e in &d.error_details {
            let mut e = e.clone();
            e.first_s = ((e.first_s + shift) * 1000.0).round() / 1000.0;
            e.last_s = ((e.last_s + shift) * 1000.0).round() / 1000.0;
            match out.get_mut(&e.class) {
                None => {
                    out.insert(e.class.clone(), e);
                }
                Some(m) => {
                    m.count += e.count;
                    m.last_s = m.last_s.max(e.last_s);
                    if e.first_s < m.first_s {
                        (m.first_s, m.phase, m.request, m.sample) =
                            (e.first_s, e.phase, e.request, e.sample);
                    }
                }
            }
        }
    }
    out.into_values().collect()
}

fn connections(docs: &[&ResultDoc], timeline: &[TimelineRow]) -> ConnectionInfo {
    let total = |f: &dyn Fn(&ConnectionInfo) -> Option<u64>| {
        docs.iter().map(|d| f(&d.connections)).sum::<Option<u64>>()
    };
    let opened = total(&|c| c.opened);
    let requests = total(&|c| c.requests);
    ConnectionInfo {
        peak: peak(timeline, |r| r.connections)
            .unwrap_or_else(|| docs.iter().map(|d| d.connections.peak).sum()),
        opened,
        requests,
        requests_per_connection: match (opened, requests) {
            (Some(o), Some(r)) if o > 0 => Some((r as f64 / o as f64 * 1000.0).round() / 1000.0),
            _ => None,
        },
        max_requests_per_connection: docs
            .iter()
            .filter_map(|d| d.connections.max_requests_per_connection)
            .max(),
        https_probes: total(&|c| c.https_probes),
        tls_handshakes: total(&|c| c.tls_handshakes),
    }
}

/// The harness of the shard that ran shortest of CPU (most saturated seconds,
/// then the busiest second), as it wrote it: one process's verdict, the one
/// that may have distorted the figures.
fn worst_harness(docs: &[&ResultDoc]) -> Option<HarnessInfo> {
    docs.iter()
        .filter_map(|d| d.harness.as_ref())
        .max_by(|a, b| {
            (a.saturated_seconds, a.cpu_peak_percent.unwrap_or(0.0))
                .partial_cmp(&(b.saturated_seconds, b.cpu_peak_percent.unwrap_or(0.0)))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .cloned()
}

/// Rows by cluster number: summed when a cluster was split between shards
/// (node ranges), the slowest pull the slowest of any.
fn clusters(docs: &[&ResultDoc]) -> Vec<ClusterStat> {
    let mut out: BTreeMap<u32, ClusterStat> = BTreeMap::new();
    for c in docs.iter().flat_map(|d| &d.clusters) {
        let m = out.entry(c.cluster).or_insert_with(|| ClusterStat {
            cluster: c.cluster,
            ..ClusterStat::default()
        });
        m.pulls_started += c.pulls_started;
        m.pulls_completed += c.pulls_completed;
        m.pulls_failed += c.pulls_failed;
        m.bytes += c.bytes;
        m.errors += c.errors;
        m.pull_max_ms = m.pull_max_ms.max(c.pull_max_ms);
    }
    out.into_values().collect()
}

/// Every shard's watched targets, named `shard I: <name>`, on the merged clock.
fn watched(parts: &[Part<'_>], clocks: &[Clock]) -> Vec<WatchedSummary> {
    let mut out = Vec::new();
    for (p, c) in parts.iter().zip(clocks) {
        let index = p.doc.shard.as_ref().map_or(0, |s| s.index);
        let shift_s = Duration::from_millis(c.offset_ms).as_secs_f64();
        for w in &p.doc.watched {
            let mut w = w.clone();
            w.name = format!("shard {index}: {}", w.name);
            for point in &mut w.series {
                point.t = timeline::merged_second(c.offset_ms, point.t);
            }
            w.exited_at_s = w.exited_at_s.map(|s| s + shift_s);
            w.zombie_at_s = w.zombie_at_s.map(|s| s + shift_s);
            out.push(w);
        }
    }
    out
}

fn merged_shard(p: &Part<'_>, c: &Clock) -> MergedShard {
    let s = p.doc.shard.clone().unwrap_or(ShardInfo {
        index: 0,
        count: 1,
        nodes: p.doc.fleet.nodes,
        clusters: Vec::new(),
        whole_clusters: true,
        start_at: None,
        started_late_ms: None,
    });
    MergedShard {
        index: s.index,
        count: s.count,
        file: p.file.to_string(),
        started_at: p.doc.started_at.clone(),
        ended_at: p.doc.ended_at.clone(),
        offset_ms: c.offset_ms,
        nodes: s.nodes,
        clusters: s.clusters,
        start_at: s.start_at,
        started_late_ms: s.started_late_ms,
        complete: p.doc.complete,
        stop_reason: p.doc.stop_reason.clone(),
        harness_saturated: p.doc.harness.as_ref().map(|h| h.saturated),
    }
}

/// Each shard checks the same registry after its storm (`[verify] after_run`): the
/// storm's verdict is the worst shard's (inconsistent, then not run, then consistent),
/// the first such in shard order, so a finding is never hidden by a later shard's pass.
fn after_run_verify(docs: &[&ResultDoc]) -> Option<crate::result::model::AfterRunVerify> {
    let rank = |outcome: &str| match outcome {
        "inconsistent" => 0,
        "consistent" => 2,
        _ => 1,
    };
    docs.iter()
        .filter_map(|d| d.verify.as_ref())
        .min_by_key(|v| rank(&v.outcome))
        .cloned()
}

/// `[push]` runners run in shard 0 only (`Sharding::runs_pushers`); should several
/// shards carry pushes, their counts add up and their upload rates too (they ran at once).
fn pushes(docs: &[&ResultDoc]) -> Option<crate::result::pushes::Pushes> {
    let mut all = docs.iter().filter_map(|d| d.pushes.as_ref());
    let mut merged = all.next()?.clone();
    for p in all {
        merged.runners += p.runners;
        merged.started += p.started;
        merged.completed += p.completed;
        merged.failed += p.failed;
        merged.interrupted += p.interrupted;
        merged.bytes_uploaded += p.bytes_uploaded;
        merged.upload_bytes_per_sec = match (merged.upload_bytes_per_sec, p.upload_bytes_per_sec) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        merged.blobs.uploaded += p.blobs.uploaded;
        merged.blobs.present += p.blobs.present;
        merged.blobs.mounted += p.blobs.mounted;
        merged.retries += p.retries;
        merged.requests = add_maps([&merged.requests, &p.requests].into_iter());
        merged.retries_by_code =
            add_maps([&merged.retries_by_code, &p.retries_by_code].into_iter());
        merged.faults_by_code = add_maps([&merged.faults_by_code, &p.faults_by_code].into_iter());
    }
    Some(merged)
}
