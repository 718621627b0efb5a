//! Building `result.json` from what a run measured and what it knew: a pure
//! function of plain inputs (the recorder, the plan's numbers, the target,
//! the timing and why the run stopped), so it is unit-tested with synthetic
//! events and no network. Thresholds are checked afterwards, on the document.

use super::model::*;
use crate::metrics::fds::FdLimits;
use crate::metrics::harness;
use crate::metrics::Recorder;
use crate::net::FaultClass;
use crate::scenario::{Loaded, Pattern, Scenario};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Why the fleet stopped (`stop_reason` in result.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every node did all its pulls.
    Finished,
    /// `run.duration` ran out first (a soak's end is `Finished`).
    Deadline,
    /// Ctrl-C, SIGTERM or the caller's shutdown future.
    Interrupted,
    /// A threshold with `abort_on_fail` broke over its sliding window.
    ThresholdAbort,
}

impl StopReason {
    /// The word written to result.json.
    pub fn key(self) -> &'static str {
        match self {
            StopReason::Finished => "finished",
            StopReason::Deadline => "deadline",
            StopReason::Interrupted => "interrupted",
            StopReason::ThresholdAbort => "threshold_abort",
        }
    }
}

/// What the run knew besides its measurements.
pub struct RunFacts<'a> {
    /// The scenario as run, with its file and name.
    pub loaded: &'a Loaded,
    /// `--set` overrides, in order.
    pub overrides: &'a [String],
    /// Nodes in the plan.
    pub nodes: u64,
    /// nodes x pulls per node; `None` when open-ended (a staircase).
    pub planned_pulls: Option<u64>,
    /// The client profile as resolved (defaults filled in).
    pub profile: serde_json::Value,
    /// The target as preflight found it.
    pub target: TargetInfo,
    pub fd_limits: FdLimits,
    pub stop: StopReason,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// Summaries of the harness and the watched processes and endpoints.
    pub watched: Vec<WatchedSummary>,
}

/// The result document, thresholds not yet checked (an empty report).
pub fn build(facts: RunFacts<'_>, rec: &Recorder) -> ResultDoc {
    let s = &facts.loaded.scenario;
    let duration = facts
        .ended
        .duration_since(facts.started)
        .unwrap_or_default();
    let pulls = pulls(rec, facts.planned_pulls);
    let embedded = facts.target.embedded;
    let (latency, histograms) = measured(rec);
    let mut doc = ResultDoc {
        schema: SCHEMA.to_string(),
        pullstorm_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: ScenarioInfo {
            name: facts.loaded.name.clone(),
            file: facts.loaded.path.display().to_string(),
            overrides: facts.overrides.to_vec(),
            resolved: serde_json::to_value(s).unwrap_or_default(),
        },
        target: facts.target,
        started_at: humantime::format_rfc3339_millis(facts.started).to_string(),
        ended_at: humantime::format_rfc3339_millis(facts.ended).to_string(),
        duration_ms: duration.as_millis() as u64,
        // A run is complete only when it finished by itself with no pull cut short;
        // a soak's end cuts the pulls under way by design (counted `interrupted`).
        complete: facts.stop == StopReason::Finished
            && (pulls.interrupted == 0 || s.arrival.pattern == Pattern::Soak),
        stop_reason: facts.stop.key().to_string(),
        fleet: fleet(s, facts.nodes, facts.profile),
        pulls,
        layers: layers(rec),
        bytes: Bytes {
            downloaded: rec.bytes_downloaded(),
            wasted: rec.bytes_wasted,
            completed_pulls: rec.bytes_pulled_ok,
        },
        throughput: throughput(rec, duration.as_secs_f64()),
        retries: retries(rec),
        errors: errors(rec),
        error_details: error_details(rec),
        latency,
        histograms,
        fd: FdInfo {
            client_peak: rec.fd_peak,
            client_limit: facts.fd_limits.soft,
            client_hard_limit: facts.fd_limits.hard,
            client_limit_at_start: facts.fd_limits.soft_at_start,
        },
        connections: ConnectionInfo::measured(rec),
        harness: harness(rec, embedded),
        clusters: rec.clusters.clone(),
        timeline: rec.timeline.clone(),
        thresholds: ThresholdReport::default(),
        watched: harness_from_recorder(facts.watched, rec),
        redirects: Redirects {
            followed: rec.redirects,
            to_storage: rec.redirects_to_storage,
        },
        capacity: None,
        verify: None,
        shard: None,
        merged_from: Vec::new(),
        missing_shards: Vec::new(),
        pushes: super::pushes::build(&rec.pushes, s.push.runners),
    };
    super::leak::judge_all(&mut doc.watched);
    // No password of any URL (target, `[watch]`, `--set`) reaches the result or the report.
    crate::redact::result_doc(&mut doc);
    doc
}

/// `capacity` of result.json from a staircase's search: the outcome, the
/// staircase as run and every judged step. `downloads_per_node` is the
/// client's download slots per node (the knee's concurrent downloads).
pub fn capacity(run: &crate::capacity::Searched) -> Capacity {
    use crate::capacity::Verdict;
    let search = &run.search;
    let st = &search.staircase;
    let o = search.outcome();
    let knee_step = o.refined_knee_nodes.or(o.knee_nodes).and_then(|n| {
        search
            .steps
            .iter()
            .rev()
            .find(|s| s.figures.nodes == n && s.verdict.held())
    });
    let round = |v: f64, places: i32| {
        let f = 10f64.powi(places);
        (v * f).round() / f
    };
    let steps = search
        .steps
        .iter()
        .map(|s| {
            let f = &s.figures;
            let (verdict, broken_by, why) = match &s.verdict {
                Verdict::Held => ("held", None, None),
                Verdict::Broke { by, why } => ("broke", Some(by.clone()), Some(why.clone())),
            };
            CapacityStep {
                phase: s.phase.key().to_string(),
                nodes: f.nodes,
                start_s: s.start_t,
                end_s: s.end_t,
                judged_s: f.seconds,
                offered: f.offered,
                completed: f.completed,
                failed: f.failed,
                completion: f.completion().map(|v| round(v, 4)),
                completed_per_sec: f.completed_rate().map(|v| round(v, 3)),
                in_flight_mean: f.in_flight_mean.map(|v| round(v, 2)),
                littles_l: f.littles_l().map(|v| round(v, 2)),
                pull_p50_ms: f.pull_p50_ms,
                pull_p99_ms: f.pull_p99_ms,
                error_rate: f.error_rate().map(|v| round(v, 4)),
                retry_rate: f.retry_rate().map(|v| round(v, 4)),
                errors_by_class: f.errors_by_class.clone(),
                bytes_per_sec: f.bytes_per_sec().map(|v| v.round()),
                fds_peak: f.fds_peak,
                connections_peak: f.connections_peak,
                harness_saturated_s: f.harness_saturated_seconds,
                verdict: verdict.to_string(),
                broken_by,
                why,
            }
        })
        .collect();
    Capacity {
        knee_nodes: o.knee_nodes,
        broken_nodes: o.broken_nodes,
        broken_by: o.broken_by,
        refined_knee_nodes: o.refined_knee_nodes,
        refined_broken_nodes: o.refined_broken_nodes,
        knee_downloads: knee_step
            .map(|s| u64::from(s.figures.nodes) * u64::from(run.downloads_per_node)),
        knee_bytes_per_sec: knee_step.and_then(|s| s.figures.bytes_per_sec().map(f64::round)),
        ended_by: run.ended_by.clone(),
        start_nodes: st.start_nodes,
        step_nodes: st.step_nodes,
        max_nodes: st.max_nodes,
        step_hold_s: st.hold_s,
        warmup_s: st.warmup_s,
        usl: o.usl.map(|f| UslFit {
            lambda: round(f.lambda, 4),
            sigma: round(f.sigma, 5),
            kappa: round(f.kappa, 7),
            r2: f.r2.map(|v| round(v, 4)),
            points: f.points as u64,
            nodes_min: f.n_min as u32,
            nodes_max: f.n_max as u32,
            peak_nodes: f.peak_nodes().map(|v| round(v, 1)),
        }),
        steps,
    }
}

/// The harness row of `targets[]` takes its fd peak, CPU seconds and CPU
/// peak from the recorder, the source of `fd.client_peak` and `harness`: one
/// figure for one thing, whatever second the watcher happened to read.
fn harness_from_recorder(mut watched: Vec<WatchedSummary>, rec: &Recorder) -> Vec<WatchedSummary> {
    if rec.timeline.is_empty() {
        return watched;
    }
    let cpu_peak = rec.cores.and_then(|cores| {
        let peak = harness::verdict(harness_seconds(&rec.timeline)).cpu_peak_percent?;
        Some(harness::one_core_percent(peak, cores.usable))
    });
    for w in watched
        .iter_mut()
        .filter(|w| w.kind == WatchedKind::Harness)
    {
        w.fd_peak = Some(rec.fd_peak);
        if rec.cores.is_some() {
            w.cpu_seconds = Some(harness_cpu_seconds(rec));
            w.cpu_peak_pct = cpu_peak;
        }
    }
    watched
}

/// The harness's CPU seconds, to the millisecond, as `harness` and its watched row show them.
fn harness_cpu_seconds(rec: &Recorder) -> f64 {
    (rec.harness_cpu_seconds * 1000.0).round() / 1000.0
}

/// Each row's harness figures, as [`harness::verdict`] takes them.
pub fn harness_seconds(rows: &[TimelineRow]) -> impl Iterator<Item = harness::Second> + '_ {
    rows.iter().map(|r| harness::Second {
        cpu_percent: r.harness_cpu_percent,
        cpu_wait_percent: r.harness_cpu_wait_percent,
        timer_lag_ms: r.timer_lag_ms,
    })
}

/// The harness's verdict over the timeline; `None` when the recorder never
/// sampled (no cores known, no rows).
fn harness(rec: &Recorder, embedded_registry: bool) -> Option<HarnessInfo> {
    let cores = rec.cores?;
    let v = harness::verdict(harness_seconds(&rec.timeline));
    let measured = rec.sampled_for.as_secs_f64();
    Some(HarnessInfo {
        cpu_seconds: harness_cpu_seconds(rec),
        usable_cores: cores.usable,
        affinity_cores: cores.affinity,
        cpu_quota_cores: cores.quota,
        cpu_mean_percent: harness::cpu_percent(
            Duration::from_secs_f64(rec.harness_cpu_seconds),
            rec.sampled_for,
            cores.usable,
        )
        .filter(|_| measured > 0.0),
        cpu_peak_percent: v.cpu_peak_percent,
        cpu_wait_peak_percent: v.cpu_wait_peak_percent,
        timer_lag_max_ms: v.timer_lag_max_ms,
        measured_seconds: v.measured_seconds,
        saturated_seconds: v.saturated_seconds,
        saturated: v.saturated,
        embedded_registry,
    })
}

fn fleet(s: &Scenario, nodes: u64, profile: serde_json::Value) -> FleetInfo {
    FleetInfo {
        clusters: s.fleet.clusters,
        nodes_per_cluster: s.fleet.nodes_per_cluster,
        nodes,
        client: s.fleet.client.name().to_string(),
        profile,
        arrival: match s.arrival.pattern {
            Pattern::Herd => "herd".to_string(),
            Pattern::Waves => format!(
                "waves of {} every {}",
                s.arrival.wave_size, s.arrival.wave_interval
            ),
            Pattern::Soak => format!(
                "soak: waves of {} every {}, repeated until {}",
                s.arrival.wave_size, s.arrival.wave_interval, s.run.duration
            ),
            Pattern::Staircase => match crate::capacity::Staircase::from_scenario(s) {
                Some(st) => format!(
                    "staircase from {} nodes, +{} every {} s, up to {}",
                    st.start_nodes, st.step_nodes, st.hold_s, st.max_nodes
                ),
                None => "staircase".to_string(),
            },
        },
        node_bandwidth_bytes_per_sec: s.fleet.node_bandwidth.map(|r| r.0),
    }
}

/// Pull counts; `interrupted` are the pulls started that neither completed nor failed.
fn pulls(rec: &Recorder, planned: Option<u64>) -> Pulls {
    Pulls {
        planned,
        started: rec.pulls_started,
        completed: rec.pulls_completed,
        failed: rec.pulls_failed,
        interrupted: rec
            .pulls_started
            .saturating_sub(rec.pulls_completed + rec.pulls_failed),
        kubelet_retries: rec.kubelet_retries,
    }
}

fn layers(rec: &Recorder) -> Layers {
    Layers {
        completed: rec.layers_completed,
        failed: rec.layers_failed,
        attempts: rec
            .attempts_per_layer
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    }
}

/// Throughput of the recorder's bytes over `secs` of wall time; see [`rates`].
fn throughput(rec: &Recorder, secs: f64) -> Throughput {
    rates(
        rec.bytes_downloaded(),
        secs,
        &rec.timeline,
        rec.sampled_for.as_secs_f64(),
    )
}

/// Mean over the whole run (at least the `covered` seconds of the timeline,
/// and a millisecond, so a run that ended at once divides by something); peak
/// over the best second of the timeline, see [`peak_rate`]. The peak is never
/// below the mean: both divide the same bytes, the mean by at least the time
/// the peak's windows add up to.
pub(crate) fn rates(downloaded: u64, secs: f64, rows: &[TimelineRow], covered: f64) -> Throughput {
    Throughput {
        mean_bytes_per_sec: (downloaded as f64 / secs.max(covered).max(1e-3)).round(),
        peak_bytes_per_sec: peak_rate(rows, covered).round() as u64,
    }
}

/// The best one-second rate of the timeline: each complete row is one second;
/// a partial last row (the run stopped `covered` seconds in, before the row's
/// second ended) is joined to the row before it and divided by their real
/// length, 1 to 2 s, so a few bytes in a short last moment are neither a low
/// "second" nor blown up into a rate. A run shorter than a second has one
/// partial row: its rate is the mean. `covered` of 0 (unknown) takes every row
/// as complete.
fn peak_rate(rows: &[TimelineRow], covered: f64) -> f64 {
    let best_complete =
        |rows: &[TimelineRow]| rows.iter().map(|r| r.bytes).max().unwrap_or(0) as f64;
    let Some(last) = rows.last() else {
        return 0.0;
    };
    let last_start = last.t.saturating_sub(1) as f64;
    let partial = covered - last_start;
    if covered <= 0.0 || partial >= 1.0 || partial <= 0.0 {
        return best_complete(rows);
    }
    let before = &rows[..rows.len() - 1];
    let joined = match before.last() {
        Some(prev) => (prev.bytes + last.bytes) as f64 / (partial + 1.0),
        None => last.bytes as f64 / partial,
    };
    best_complete(before).max(joined)
}

/// Retries in total, by class, and by how far the blob had come, in ten buckets.
fn retries(rec: &Recorder) -> Retries {
    Retries {
        total: rec.retries,
        by_class: rec.retries_by_class.clone(),
        at_progress: rec
            .retries_at_progress
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{}-{}", i * 10, i * 10 + 10), *n))
            .collect(),
    }
}

/// Every fixed class, zero when not seen (so readers need no defaults), plus
/// each `http_<code>` that was seen.
fn errors(rec: &Recorder) -> BTreeMap<String, u64> {
    let mut errors: BTreeMap<String, u64> =
        FaultClass::FIXED.iter().map(|c| (c.key(), 0)).collect();
    for (class, stat) in &rec.errors {
        errors.insert(class.key(), stat.count);
    }
    errors
}

/// One row per class seen, times rounded to the millisecond.
fn error_details(rec: &Recorder) -> Vec<ErrorDetail> {
    let millis = |s: f64| (s * 1000.0).round() / 1000.0;
    rec.errors
        .iter()
        .map(|(class, e)| ErrorDetail {
            class: class.key(),
            count: e.count,
            first_s: millis(e.first_s),
            last_s: millis(e.last_s),
            phase: format!("{:?}", e.phase).to_lowercase(),
            request: format!("{:?}", e.request).to_lowercase(),
            sample: e.sample.clone(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::{Event, ExchangeKind};
    use crate::net::{Fault, Phase};
    use std::path::PathBuf;
    use std::time::Duration;
    use tokio::time::Instant;

    fn loaded() -> Loaded {
        let mut scenario = Scenario::default();
        scenario.fleet.clusters = 2;
        scenario.fleet.nodes_per_cluster = 2;
        Loaded {
            scenario,
            path: PathBuf::from("scenarios/synthetic.toml"),
            name: "synthetic".into(),
        }
    }

    fn target() -> TargetInfo {
        TargetInfo {
            url: "http://127.0.0.1:5000/".into(),
            image: "synthetic/app:v1".into(),
            embedded: true,
            manifest_digest: Some("sha256:00".into()),
            blobs: Vec::new(),
            image_bytes: 1000,
            server: None,
            api_version: None,
        }
    }

    fn facts(loaded: &Loaded, stop: StopReason) -> RunFacts<'_> {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        RunFacts {
            loaded,
            overrides: &[],
            nodes: 4,
            planned_pulls: Some(4),
            profile: serde_json::json!({"max_concurrent_downloads": 3}),
            target: target(),
            fd_limits: FdLimits {
                soft_at_start: 1024,
                soft: 4096,
                hard: 4096,
            },
            stop,
            started,
            ended: started + Duration::from_secs(2),
            watched: Vec::new(),
        }
    }

    fn fault(class: FaultClass, detail: &str, cluster: u32, at: Instant) -> Event {
        Event::Fault {
            fault: Fault::new(class, Phase::Body, detail),
            kind: ExchangeKind::Blob,
            cluster,
            at,
        }
    }

    fn pull_done(cluster: u32, ok: bool, bytes: u64) -> Event {
        Event::PullDone {
            cluster,
            ok,
            from_scheduled: Duration::from_millis(900),
            from_start: Duration::from_millis(800),
            bytes,
            retry_cost: None,
            kubelet_retry: false,
        }
    }

    fn layer_done(ok: bool, attempts: u32, wasted: u64) -> Event {
        Event::LayerDone {
            ok,
            took: Duration::from_millis(500),
            attempts,
            retry_latency: (attempts > 1).then_some(Duration::from_millis(100)),
            wasted,
        }
    }

    /// Four pulls started over two clusters: two complete (one after a retried
    /// layer), one fails, one is still running when the run stops.
    fn recorder() -> Recorder {
        let t0 = Instant::now();
        let mut rec = Recorder::new(2, t0);
        for cluster in [0, 0, 1, 1] {
            rec.record(Event::PullStarted { cluster });
        }
        rec.record(Event::Exchange {
            kind: ExchangeKind::Blob,
            connect: Some(Duration::from_millis(2)),
            ttfb: Duration::from_millis(20),
        });
        let cut = fault(FaultClass::UnexpectedEof, "short body", 0, t0 + ms(250));
        rec.record(cut);
        rec.record(Event::Retry {
            class: FaultClass::UnexpectedEof,
            progress: 0.75,
        });
        let unavailable = fault(FaultClass::Http(503), "UNAVAILABLE", 1, t0 + ms(1500));
        rec.record(unavailable);
        let again = fault(FaultClass::UnexpectedEof, "short body", 0, t0 + ms(1234));
        rec.record(again);
        rec.record(layer_done(true, 2, 300));
        rec.record(layer_done(true, 1, 0));
        rec.record(layer_done(false, 3, 0));
        rec.record(pull_done(0, true, 1000));
        rec.record(pull_done(0, true, 1000));
        rec.record(pull_done(1, false, 10));
        rec.timeline = [0, 1500, 700]
            .iter()
            .enumerate()
            .map(|(t, bytes)| TimelineRow {
                t: t as u64,
                bytes: *bytes,
                ..TimelineRow::default()
            })
            .collect();
        rec
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A whole result for the summary's and the report's unit tests: the
    /// synthetic run above (two pulls completed), or one where every pull
    /// failed and nothing was timed (every latency empty).
    pub(crate) fn sample_doc(any_completed: bool) -> ResultDoc {
        let l = loaded();
        let rec = if any_completed {
            recorder()
        } else {
            let mut rec = Recorder::new(2, Instant::now());
            rec.record(Event::PullStarted { cluster: 0 });
            rec.record(pull_done(0, false, 0));
            rec
        };
        build(facts(&l, StopReason::Finished), &rec)
    }

    #[test]
    fn counts_pulls_layers_and_the_interrupted_ones() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Interrupted), &recorder());
        let p = &doc.pulls;
        assert_eq!(
            (p.planned, p.started, p.completed, p.failed),
            (Some(4), 4, 2, 1)
        );
        assert_eq!(p.interrupted, 1, "started - completed - failed");
        assert_eq!((doc.layers.completed, doc.layers.failed), (2, 1));
        let attempts: Vec<(&str, u64)> = doc
            .layers
            .attempts
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(attempts, [("1", 1), ("2", 1), ("3", 1)]);
        assert_eq!((doc.bytes.wasted, doc.bytes.completed_pulls), (300, 2000));
        assert_eq!(doc.clusters[0].pulls_completed, 2);
        assert_eq!(doc.clusters[1].pulls_failed, 1);
        assert_eq!(doc.fleet.nodes, 4);
        assert_eq!(doc.fleet.arrival, "herd");
        assert_eq!(doc.scenario.name, "synthetic");
        assert_eq!(doc.fd.client_limit_at_start, 1024);
    }

    #[test]
    fn every_fixed_error_class_is_present_and_details_follow_what_was_seen() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        for class in FaultClass::FIXED {
            assert!(doc.errors.contains_key(&class.key()), "{}", class.key());
        }
        assert_eq!(doc.errors.len(), FaultClass::FIXED.len() + 1);
        assert_eq!(doc.errors["unexpected_eof"], 2);
        assert_eq!(doc.errors["http_503"], 1);
        assert_eq!(doc.errors["connection_reset"], 0);
        let eof = doc
            .error_details
            .iter()
            .find(|d| d.class == "unexpected_eof")
            .expect("a row for each class seen");
        assert_eq!((eof.count, eof.first_s, eof.last_s), (2, 0.25, 1.234));
        assert_eq!((eof.phase.as_str(), eof.request.as_str()), ("body", "blob"));
        assert_eq!(eof.sample, "short body");
        assert_eq!(doc.error_details.len(), 2);
    }

    #[test]
    fn retries_by_class_and_progress() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        assert_eq!(doc.retries.total, 1);
        assert_eq!(doc.retries.by_class["unexpected_eof"], 1);
        assert_eq!(doc.retries.at_progress.len(), 10);
        assert_eq!(doc.retries.at_progress["70-80"], 1);
        assert_eq!(doc.retries.at_progress["0-10"], 0);
    }

    #[test]
    fn complete_only_when_finished_with_nothing_in_flight() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        assert_eq!(doc.stop_reason, "finished");
        assert!(!doc.complete, "a pull was still in flight");

        let mut rec = recorder();
        rec.record(pull_done(1, true, 1000));
        let doc = build(facts(&l, StopReason::Finished), &rec);
        assert_eq!(doc.pulls.interrupted, 0);
        assert!(doc.complete);

        for (stop, key) in [
            (StopReason::Deadline, "deadline"),
            (StopReason::Interrupted, "interrupted"),
        ] {
            let doc = build(facts(&l, stop), &rec);
            assert_eq!(doc.stop_reason, key);
            assert!(!doc.complete, "{key}");
        }
    }

    fn rows(bytes: &[u64]) -> Vec<TimelineRow> {
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| TimelineRow {
                t: i as u64 + 1,
                bytes: *b,
                ..TimelineRow::default()
            })
            .collect()
    }

    #[test]
    fn a_run_shorter_than_a_second_has_its_mean_as_peak() {
        // 20 MiB in 0.5 s: the one row holds 20 MiB but lasted half a second.
        let mib = 1u64 << 20;
        let t = rates(20 * mib, 0.503, &rows(&[20 * mib]), 0.5);
        assert_eq!(t.peak_bytes_per_sec, 40 * mib);
        assert!(t.peak_bytes_per_sec as f64 >= t.mean_bytes_per_sec, "{t:?}");
        assert!((t.mean_bytes_per_sec - 39.76 * mib as f64).abs() < 0.01 * mib as f64);
    }

    #[test]
    fn a_partial_last_second_joins_the_one_before() {
        // Stopped 0.1 s into the third second: 100 bytes then, 1000 in the second.
        let t = rates(2100, 2.1, &rows(&[1000, 1000, 100]), 2.1);
        assert_eq!(t.peak_bytes_per_sec, 1000);
        assert_eq!(t.mean_bytes_per_sec, 1000.0);
        // A burst in the last moment is not blown up to a rate over 0.1 s.
        let t = rates(1500, 2.1, &rows(&[1000, 0, 500]), 2.1);
        assert_eq!(t.peak_bytes_per_sec, 1000);
        // Complete rows only (the last second ended): the best row.
        let t = rates(2100, 3.0, &rows(&[1000, 1000, 100]), 3.0);
        assert_eq!(t.peak_bytes_per_sec, 1000);
    }

    #[test]
    fn the_peak_is_never_below_the_mean() {
        let shapes: [&[u64]; 5] = [
            &[5],
            &[0, 0, 9_000],
            &[100, 3_000, 7, 0, 12_345],
            &[1 << 30, 1, 1 << 30],
            &[0, 0, 0],
        ];
        for bytes in shapes {
            let n = bytes.len() as f64;
            for partial in [0.01, 0.25, 0.5, 0.99, 1.0] {
                let covered = n - 1.0 + partial;
                for wall in [covered, covered + 0.3] {
                    let total = bytes.iter().sum();
                    let t = rates(total, wall, &rows(bytes), covered);
                    assert!(
                        t.peak_bytes_per_sec as f64 >= t.mean_bytes_per_sec,
                        "{bytes:?} covered {covered}: {t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_harness_row_shows_the_recorders_fd_peak() {
        let l = loaded();
        let mut rec = recorder();
        rec.fd_peak = 214;
        rec.connections_peak = 96;
        let mut harness =
            WatchedSummary::empty("harness".into(), WatchedKind::Harness, Some(1), None);
        harness.fd_peak = Some(199);
        let mut other =
            WatchedSummary::empty("nginx[7]".into(), WatchedKind::Process, Some(7), None);
        other.fd_peak = Some(50);
        let mut f = facts(&l, StopReason::Finished);
        f.watched = vec![harness, other];
        let doc = build(f, &rec);
        assert_eq!(doc.fd.client_peak, 214);
        assert_eq!(doc.connections.peak, 96);
        assert_eq!(doc.watched[0].fd_peak, Some(214));
        assert_eq!(
            doc.watched[1].fd_peak,
            Some(50),
            "other processes keep theirs"
        );
    }

    /// Four seconds on 2 cores, one at 95 % and one with a 250 ms timer lag, one
    /// without figures: 2 of 3 measured seconds saturated; the watched harness
    /// row shows the recorder's CPU, in its unit (percent of one core).
    #[test]
    fn the_harness_verdict_comes_from_the_timeline_and_the_harness_row_agrees() {
        let l = loaded();
        let mut rec = recorder();
        rec.cores = Some(harness::Cores::new(2, None));
        rec.harness_cpu_seconds = 4.25;
        rec.sampled_for = Duration::from_millis(3_500);
        let figures = [
            (Some(40.0), Some(1.0), Some(2.0)),
            (Some(95.0), Some(0.0), Some(4.0)),
            (None, None, None),
            (Some(30.0), Some(7.5), Some(250.0)),
        ];
        rec.timeline = figures
            .iter()
            .enumerate()
            .map(|(t, (cpu, wait, lag))| TimelineRow {
                t: t as u64 + 1,
                harness_cpu_percent: *cpu,
                harness_cpu_wait_percent: *wait,
                timer_lag_ms: *lag,
                ..TimelineRow::default()
            })
            .collect();
        let mut f = facts(&l, StopReason::Finished);
        f.watched = vec![WatchedSummary::empty(
            "harness".into(),
            WatchedKind::Harness,
            Some(1),
            None,
        )];
        let doc = build(f, &rec);
        let h = doc.harness.expect("harness measured");
        assert_eq!(
            h,
            HarnessInfo {
                cpu_seconds: 4.25,
                usable_cores: 2.0,
                affinity_cores: 2,
                cpu_quota_cores: None,
                // 4.25 s of CPU over 3.5 s on 2 cores.
                cpu_mean_percent: Some(60.7),
                cpu_peak_percent: Some(95.0),
                cpu_wait_peak_percent: Some(7.5),
                timer_lag_max_ms: Some(250.0),
                measured_seconds: 3,
                saturated_seconds: 2,
                saturated: true,
                embedded_registry: true,
            }
        );
        let row = &doc.watched[0];
        assert_eq!(row.cpu_seconds, Some(4.25));
        assert_eq!(row.cpu_peak_pct, Some(190.0));
        // The row without figures stays without them in the document.
        assert_eq!(doc.timeline[2].harness_cpu_percent, None);
    }

    #[test]
    fn no_sampler_no_harness_verdict() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        assert_eq!(doc.harness, None);
    }

    #[test]
    fn connection_figures_come_from_the_recorder_and_no_connection_is_no_ratio() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        let c = &doc.connections;
        assert_eq!((c.opened, c.requests), (Some(0), Some(0)));
        assert_eq!(
            (c.requests_per_connection, c.max_requests_per_connection),
            (None, None),
            "nothing opened: no ratio, not a zero"
        );
        let mut rec = recorder();
        rec.record(Event::Connections(crate::net::ConnectionTally {
            opened: 4,
            requests: 6,
            most_requests: 3,
            https_probes: 1,
            tls_handshakes: vec![Duration::from_millis(4)],
        }));
        let doc = build(facts(&l, StopReason::Finished), &rec);
        let c = &doc.connections;
        assert_eq!(
            (c.opened, c.requests, c.https_probes),
            (Some(4), Some(6), Some(1))
        );
        assert_eq!(c.requests_per_connection, Some(1.5));
        assert_eq!(c.max_requests_per_connection, Some(3));
        assert_eq!(c.tls_handshakes, Some(1));
        assert_eq!(doc.latency["tls_handshake"].count, 1);
    }

    #[test]
    fn timing_and_throughput() {
        let l = loaded();
        let doc = build(facts(&l, StopReason::Finished), &recorder());
        assert_eq!(doc.duration_ms, 2000);
        assert_eq!(doc.started_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(doc.ended_at, "2023-11-14T22:13:22.000Z");
        assert_eq!(doc.throughput.peak_bytes_per_sec, 1500);
        // No sampler ran: nothing counted as downloaded, so the mean is zero.
        assert_eq!(doc.throughput.mean_bytes_per_sec, 0.0);
        assert_eq!(doc.latency["ttfb"].count, 1);
        assert!(doc.histograms.contains_key("ttfb"));
    }
}
