//! `pullstorm merge` on synthetic shard results: sums, lossless histograms,
//! the clock, thresholds, refusals.

use super::check::{check, Part};
use super::combine::merge;
use crate::metrics::fds::FdLimits;
use crate::metrics::{Event, Recorder};
use crate::result::build::{build, RunFacts, StopReason};
use crate::result::model::*;
use crate::scenario::{Loaded, Scenario};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

fn loaded() -> Loaded {
    let mut scenario = Scenario::default();
    scenario.fleet.clusters = 4;
    scenario.fleet.nodes_per_cluster = 1;
    scenario.fill_defaults();
    Loaded {
        scenario,
        path: PathBuf::from("scenarios/sharded.toml"),
        name: "sharded".into(),
    }
}

const T0: u64 = 1_700_000_000;

/// A shard's result: one pull per (cluster, ms, ok), `late_ms` after T0.
fn shard(index: u32, count: u32, pulls: &[(u32, u64, bool)], late_ms: u64) -> ResultDoc {
    let loaded = loaded();
    let mut rec = Recorder::new(4, tokio::time::Instant::now());
    for (cluster, ms, ok) in pulls {
        rec.record(Event::PullStarted { cluster: *cluster });
        rec.record(Event::PullDone {
            cluster: *cluster,
            ok: *ok,
            from_scheduled: Duration::from_millis(*ms),
            from_start: Duration::from_millis(*ms),
            bytes: if *ok { 1000 } else { 0 },
            retry_cost: None,
            kubelet_retry: false,
        });
    }
    rec.timeline = (1..=2)
        .map(|t| TimelineRow {
            t,
            bytes: 100 * t,
            fds: 10,
            connections: 3,
            active_pulls: 1,
            ..TimelineRow::default()
        })
        .collect();
    let started = SystemTime::UNIX_EPOCH + Duration::from_millis(T0 * 1000 + late_ms);
    let facts = RunFacts {
        loaded: &loaded,
        overrides: &[],
        nodes: pulls.len() as u64,
        planned_pulls: Some(pulls.len() as u64),
        profile: serde_json::json!({}),
        target: TargetInfo {
            url: format!("http://10.0.0.{index}:5000/"),
            image: "lab/app:v1".into(),
            embedded: false,
            manifest_digest: None,
            blobs: Vec::new(),
            image_bytes: 1000,
            server: None,
            api_version: None,
        },
        fd_limits: FdLimits {
            soft_at_start: 1024,
            soft: 4096,
            hard: 4096,
        },
        stop: StopReason::Finished,
        started,
        ended: started + Duration::from_secs(2),
        watched: Vec::new(),
    };
    let mut doc = build(facts, &rec);
    doc.shard = Some(ShardInfo {
        index,
        count,
        nodes: pulls.len() as u64,
        clusters: vec![index],
        whole_clusters: true,
        start_at: Some("2023-11-14T22:13:20.000Z".into()),
        started_late_ms: Some(late_ms),
    });
    doc
}

fn parts(docs: &[ResultDoc]) -> Vec<Part<'_>> {
    const FILES: [&str; 6] = [
        "s0.json", "s1.json", "s2.json", "s3.json", "s4.json", "s5.json",
    ];
    docs.iter()
        .enumerate()
        .map(|(i, doc)| Part {
            file: FILES[i],
            doc,
        })
        .collect()
}

#[test]
fn counters_sum_and_histograms_merge_as_the_histogram_of_all_pulls() {
    let a = shard(
        0,
        2,
        &[(0, 1200, true), (0, 3400, true), (0, 90_000, true)],
        0,
    );
    let b = shard(1, 2, &[(1, 800, true), (1, 5600, true)], 250);
    let docs = [a, b];
    let p = parts(&docs);
    assert_eq!(check(&p, false).unwrap(), Vec::<u32>::new());
    let m = merge(&p, &[]).unwrap();
    assert_eq!(m.pulls.started, 5);
    assert_eq!(m.pulls.completed, 5);
    assert_eq!(m.pulls.planned, Some(5));
    assert_eq!(m.bytes.completed_pulls, 5000);
    assert_eq!(m.fleet.nodes, 5);
    // The one-process histogram of the same pulls.
    let all = shard(
        0,
        1,
        &[
            (0, 1200, true),
            (0, 3400, true),
            (0, 90_000, true),
            (1, 800, true),
            (1, 5600, true),
        ],
        0,
    );
    assert_eq!(m.histograms["pull"], all.histograms["pull"], "lossless");
    let (got, want) = (&m.latency["pull"], &all.latency["pull"]);
    assert_eq!(
        (got.count, got.p50, got.p99, got.max),
        (want.count, want.p50, want.p99, want.max)
    );
    // Clusters concatenated, each once.
    let clusters: Vec<(u32, u64)> = m
        .clusters
        .iter()
        .map(|c| (c.cluster, c.pulls_completed))
        .collect();
    assert!(
        clusters.contains(&(0, 3)) && clusters.contains(&(1, 2)),
        "{clusters:?}"
    );
    // The merged result has no shard of its own and says what it came from.
    assert!(m.shard.is_none());
    assert_eq!(m.merged_from.len(), 2);
    assert_eq!(m.merged_from[1].offset_ms, 250);
    assert_eq!(m.merged_from[1].started_late_ms, Some(250));
    assert!(m.complete);
    assert!(m.thresholds.passed, "{:?}", m.thresholds);
    // It reads back as a result, as `pullstorm compare` reads it.
    let text = serde_json::to_string(&m).unwrap();
    let back: ResultDoc = serde_json::from_str(&text).unwrap();
    assert!(crate::compare::load::scenario_mismatch(&back, &docs[0]).is_none());
}

#[test]
fn timelines_align_on_the_clock_and_peaks_are_per_second_sums() {
    let a = shard(0, 2, &[(0, 1000, true)], 0);
    // 1.2 s late: its seconds 1 and 2 are the merged seconds 2 and 3.
    let b = shard(1, 2, &[(1, 1000, true)], 1200);
    let docs = [a, b];
    let m = merge(&parts(&docs), &[]).unwrap();
    let rows: Vec<(u64, u64, u64)> = m.timeline.iter().map(|r| (r.t, r.bytes, r.fds)).collect();
    assert_eq!(rows, [(1, 100, 10), (2, 300, 20), (3, 200, 10)]);
    assert_eq!(m.fd.client_peak, 20);
    assert_eq!(m.connections.peak, 6);
    assert_eq!(m.throughput.peak_bytes_per_sec, 300);
    assert_eq!(m.started_at, docs[0].started_at);
    assert_eq!(m.ended_at, docs[1].ended_at);
    assert_eq!(m.duration_ms, 3200);
}

#[test]
fn thresholds_are_judged_on_the_whole_storm() {
    // Each shard alone: one failure; the default `max_failed_pulls = 0` fails the storm.
    let a = shard(0, 2, &[(0, 1000, true)], 0);
    let b = shard(1, 2, &[(1, 1000, false)], 0);
    let docs = [a, b];
    let m = merge(&parts(&docs), &[]).unwrap();
    assert_eq!(m.pulls.failed, 1);
    assert!(!m.thresholds.passed);
}

#[test]
fn refusals_name_the_files() {
    let ok = |i, n| shard(i, n, &[(i, 1000, true)], 0);
    let refuse = |docs: &[ResultDoc], says: &str| {
        let e = check(&parts(docs), false).unwrap_err();
        assert!(e.contains(says), "{says}: {e}");
        e
    };
    let e = refuse(&[ok(0, 2), ok(0, 2)], "given twice");
    assert!(e.contains("s0.json") && e.contains("s1.json"), "{e}");
    refuse(&[ok(0, 2), ok(1, 3)], "mixed shard counts");
    let e = refuse(&[ok(0, 4), ok(2, 4)], "shards 1, 3 of 4 missing");
    assert!(e.contains("--allow-partial"), "{e}");
    let mut unsharded = ok(1, 2);
    unsharded.shard = None;
    refuse(&[ok(0, 2), unsharded], "s1.json: not a shard's result");
    let mut other = ok(1, 2);
    other.scenario.resolved["fleet"]["client"] = "containerd-2.2".into();
    refuse(&[ok(0, 2), other], "different scenarios");
    // A start time or a target address of its own is the same storm.
    let mut moved = ok(1, 2);
    moved.scenario.resolved["run"]["start_at"] = "2030-01-01T00:00:00Z".into();
    assert!(check(&parts(&[ok(0, 2), moved]), false).is_ok());
    // A partial merge is allowed when asked, and says so.
    let docs = [ok(0, 3), ok(2, 3)];
    let missing = check(&parts(&docs), true).unwrap();
    assert_eq!(missing, [1]);
    let m = merge(&parts(&docs), &missing).unwrap();
    assert!(!m.complete);
    assert_eq!(m.missing_shards, [1]);
}
