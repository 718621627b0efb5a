//! Sharding a storm over several processes (one Kubernetes Indexed Job pod
//! each, docs/distributed.md): which shard this process is (`--shard I/N`, or
//! the Job's environment), which of the fleet's nodes it runs, and when the
//! herd begins (`--start-at`, `run.start_at`).
//!
//! The split is a pure function of the full plan: every shard lays out the
//! whole fleet as the unsharded run would (same node numbers, clusters, start
//! offsets and seeds) and keeps its own part, so the shards together are the
//! same storm. Whole clusters go to a shard when there are at least as many
//! clusters as shards (per-cluster figures then come from one process);
//! otherwise contiguous ranges of node numbers.

use crate::fleet::NodePlan;
use crate::result::model::{ResultDoc, ShardInfo};
use crate::run::Plan;
use crate::scenario::{Pattern, Scenario};
use std::time::{Duration, SystemTime};

/// This process's part of a sharded storm: shard `index` of `count`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// `JOB_COMPLETION_INDEX`: Kubernetes sets it in each pod of an Indexed Job.
pub const ENV_JOB_INDEX: &str = "JOB_COMPLETION_INDEX";
/// `PULLSTORM_SHARDS=N`: the shard count, with the Job's index.
pub const ENV_SHARDS: &str = "PULLSTORM_SHARDS";
/// `PULLSTORM_SHARD=I/N`: both at once.
pub const ENV_SHARD: &str = "PULLSTORM_SHARD";

impl Shard {
    /// `I/N` with `0 <= I < N`; `what` names where the text came from.
    pub fn parse(text: &str, what: &str) -> Result<Shard, String> {
        let bad = |why: &str| format!("{what} {text:?}: {why}");
        let (i, n) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("expected I/N, e.g. 0/4 (shard I of N, counted from 0)"))?;
        let index = parse_count(i).map_err(|e| bad(&format!("shard index: {e}")))?;
        let count = parse_count(n).map_err(|e| bad(&format!("shard count: {e}")))?;
        Shard::new(index, count).map_err(|e| bad(&e))
    }

    fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: shards are numbered 0 to {} (0-based)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard of this process: the `--shard` flag when given (it wins), else
    /// `PULLSTORM_SHARD=I/N`, else `JOB_COMPLETION_INDEX` with `PULLSTORM_SHARDS=N`;
    /// `None` when not sharded. Values that disagree, or `PULLSTORM_SHARDS`
    /// without an index, are an error. `JOB_COMPLETION_INDEX` alone is not:
    /// a Job may run unsharded storms in parallel.
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Shard>, String> {
        if let Some(f) = flag {
            return Shard::parse(f, "--shard").map(Some);
        }
        let job_index = env(ENV_JOB_INDEX).filter(|v| !v.trim().is_empty());
        let shards = env(ENV_SHARDS).filter(|v| !v.trim().is_empty());
        let shard = env(ENV_SHARD).filter(|v| !v.trim().is_empty());
        let count = shards
            .as_deref()
            .map(|n| parse_count(n).map_err(|e| format!("{ENV_SHARDS}={n:?}: {e}")))
            .transpose()?;
        if let Some(s) = shard {
            let parsed = Shard::parse(&s, ENV_SHARD)?;
            if let Some(n) = count.filter(|n| *n != parsed.count) {
                return Err(format!(
                    "{ENV_SHARD}={s} and {ENV_SHARDS}={n} disagree on the shard count"
                ));
            }
            if let Some(i) = &job_index {
                let i = parse_count(i).map_err(|e| format!("{ENV_JOB_INDEX}={i:?}: {e}"))?;
                if count.is_some() && i != parsed.index {
                    return Err(format!(
                        "{ENV_SHARD}={s} and {ENV_JOB_INDEX}={i} disagree on the shard index"
                    ));
                }
            }
            return Ok(Some(parsed));
        }
        match (job_index, count) {
            (Some(i), Some(n)) => {
                let index = parse_count(&i).map_err(|e| format!("{ENV_JOB_INDEX}={i:?}: {e}"))?;
                Shard::new(index, n)
                    .map(Some)
                    .map_err(|e| format!("{ENV_JOB_INDEX}={i} with {ENV_SHARDS}={n}: {e}"))
            }
            (None, Some(n)) => Err(format!(
                "{ENV_SHARDS}={n} is set but {ENV_JOB_INDEX} is not: run in an Indexed Job, or give --shard I/{n}"
            )),
            _ => Ok(None),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn parse_count(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| format!("{:?} is not a whole number", text.trim()))
}

/// A shard's part of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The shard's nodes, in the full plan's order, each as the full plan has it.
    pub nodes: Vec<NodePlan>,
    /// The cluster numbers the shard runs nodes of, ascending.
    pub clusters: Vec<u32>,
    /// Each of those clusters runs whole in this shard.
    pub whole_clusters: bool,
}

/// The nodes of `shard` out of the full plan's `nodes` (fleet of `clusters`
/// clusters). Whole clusters, contiguous and as even as can be, when there
/// are at least as many clusters as shards; else contiguous ranges of node
/// numbers. An error only when there are more shards than nodes (some shard
/// would run nothing).
pub fn split(nodes: &[NodePlan], clusters: u32, shard: Shard) -> Result<Split, String> {
    let n = shard.count as u64;
    if n > nodes.len() as u64 {
        return Err(format!(
            "{} shards for a fleet of {} nodes: some shard would run no node; use at most {} shards",
            shard.count,
            nodes.len(),
            nodes.len()
        ));
    }
    let i = shard.index as u64;
    let whole_clusters = u64::from(clusters) >= n;
    let mine: Vec<NodePlan> = if whole_clusters {
        // Cluster c belongs to shard floor(c * N / C): contiguous, sizes differ by at most one.
        nodes
            .iter()
            .filter(|p| u64::from(p.cluster) * n / u64::from(clusters) == i)
            .copied()
            .collect()
    } else {
        let mut by_number: Vec<u32> = nodes.iter().map(|p| p.node).collect();
        by_number.sort_unstable();
        let total = by_number.len() as u64;
        let (from, to) = ((i * total / n) as usize, ((i + 1) * total / n) as usize);
        let range = &by_number[from..to];
        nodes
            .iter()
            .filter(|p| range.binary_search(&p.node).is_ok())
            .copied()
            .collect()
    };
    let mut cluster_list: Vec<u32> = mine.iter().map(|p| p.cluster).collect();
    cluster_list.sort_unstable();
    cluster_list.dedup();
    Ok(Split {
        nodes: mine,
        clusters: cluster_list,
        whole_clusters,
    })
}

/// What `pullstorm run` was told of sharding: `--shard` (or the Job's
/// environment) and `--start-at` (or else `run.start_at`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sharding {
    pub shard: Option<Shard>,
    /// `--start-at`; wins over `run.start_at`.
    pub start_at: Option<SystemTime>,
}

impl Sharding {
    /// `[push]` runners are not split: shard 0 (or an unsharded run) runs them all.
    pub fn runs_pushers(&self) -> bool {
        self.shard.is_none_or(|s| s.index == 0)
    }

    /// When the herd begins: `--start-at`, else `run.start_at` (validated when
    /// the scenario was loaded), else `None` (at once).
    pub fn start_at(&self, s: &Scenario) -> Option<SystemTime> {
        self.start_at.or_else(|| {
            s.run
                .start_at
                .as_deref()
                .and_then(|t| parse_start_at(t).ok())
        })
    }

    /// How late a herd that began at `started` is (zero without a start time).
    pub fn late_by(&self, s: &Scenario, started: SystemTime) -> Duration {
        self.start_at(s)
            .map_or(Duration::ZERO, |at| lateness(at, started))
    }
}

/// The plan of this process: the whole fleet, or the shard's part of it
/// (see [`split`]). A staircase cannot be sharded: its controller decides
/// each step from the figures of the whole herd.
pub fn plan(s: &Scenario, shard: Option<Shard>) -> Result<Plan, String> {
    let mut plan = Plan::new(s);
    let Some(shard) = shard else {
        return Ok(plan);
    };
    if s.arrival.pattern == Pattern::Staircase {
        return Err(format!(
            "--shard {shard}: a staircase (arrival.pattern = \"staircase\") cannot be sharded: its controller judges each step on the whole herd"
        ));
    }
    plan.nodes = split(&plan.nodes, s.fleet.clusters, shard)?.nodes;
    Ok(plan)
}

/// Sets `doc.shard` for a sharded run and keeps only its clusters' rows (the
/// recorder lists every cluster of the fleet; the others ran elsewhere).
pub fn describe(
    doc: &mut ResultDoc,
    sharding: &Sharding,
    s: &Scenario,
    plan: &Plan,
    started: SystemTime,
) {
    let Some(shard) = sharding.shard else {
        return;
    };
    let mut clusters: Vec<u32> = plan.nodes.iter().map(|p| p.cluster).collect();
    clusters.sort_unstable();
    clusters.dedup();
    let split = Split {
        nodes: plan.nodes.clone(),
        whole_clusters: s.fleet.clusters >= shard.count,
        clusters,
    };
    doc.clusters
        .retain(|c| split.clusters.binary_search(&c.cluster).is_ok());
    doc.shard = Some(info(shard, &split, sharding.start_at(s), started));
}

/// Starts within this much after `start_at` are on time (not reported as late on the console).
pub const START_TOLERANCE: Duration = Duration::from_secs(1);

/// A `--start-at` or `run.start_at` value: an RFC 3339 instant.
/// humantime reads only UTC (`Z`); a numeric offset (`+02:00`) is applied here.
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let bad = |why: &dyn std::fmt::Display| {
        format!("{text:?} is not an RFC 3339 instant ({why}), e.g. 2026-11-27T22:30:00Z")
    };
    let t = text.trim();
    let (utc, offset_s) = match t.len().checked_sub(6).map(|at| t.split_at(at)) {
        Some((head, tail))
            if head.contains('T') && (tail.starts_with('+') || tail.starts_with('-')) =>
        {
            let (h, m) = tail[1..]
                .split_once(':')
                .ok_or_else(|| bad(&"bad offset"))?;
            let (h, m): (i64, i64) = (
                h.parse().map_err(|_| bad(&"bad offset"))?,
                m.parse().map_err(|_| bad(&"bad offset"))?,
            );
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            (format!("{head}Z"), sign * (h * 3600 + m * 60))
        }
        _ => (t.to_string(), 0),
    };
    let at = humantime::parse_rfc3339(&utc).map_err(|e| bad(&e))?;
    // 12:00+02:00 is 10:00Z: subtract a positive offset.
    let shift = Duration::from_secs(offset_s.unsigned_abs());
    Ok(if offset_s >= 0 {
        at - shift
    } else {
        at + shift
    })
}

/// How late `started` is after `start_at` (zero when on time or early).
pub fn lateness(start_at: SystemTime, started: SystemTime) -> Duration {
    started.duration_since(start_at).unwrap_or_default()
}

/// What result.json says of a shard: who it was, what it ran, its clock facts.
pub fn info(
    shard: Shard,
    split: &Split,
    start_at: Option<SystemTime>,
    started: SystemTime,
) -> ShardInfo {
    ShardInfo {
        index: shard.index,
        count: shard.count,
        nodes: split.nodes.len() as u64,
        clusters: split.clusters.clone(),
        whole_clusters: split.whole_clusters,
        start_at: start_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        started_late_ms: start_at.map(|t| lateness(t, started).as_millis() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan(clusters: u32, per_cluster: u32) -> Vec<NodePlan> {
        let mut s = Scenario::default();
        s.fleet.clusters = clusters;
        s.fleet.nodes_per_cluster = per_cluster;
        s.arrival.pattern = Pattern::Herd;
        s.arrival.jitter = crate::scenario::units::Span(Duration::from_secs(3));
        Plan::new(&s).nodes
    }

    fn all_splits(nodes: &[NodePlan], clusters: u32, count: u32) -> Vec<Split> {
        (0..count)
            .map(|index| split(nodes, clusters, Shard { index, count }).unwrap())
            .collect()
    }

    /// Every node in exactly one shard, unchanged (same number, cluster, start).
    fn assert_partition(nodes: &[NodePlan], splits: &[Split]) {
        let mut seen: HashMap<u32, NodePlan> = HashMap::new();
        for s in splits {
            for p in &s.nodes {
                assert!(seen.insert(p.node, *p).is_none(), "node {} twice", p.node);
            }
        }
        assert_eq!(seen.len(), nodes.len());
        for p in nodes {
            assert_eq!(seen[&p.node], *p);
        }
    }

    #[test]
    fn whole_clusters_when_there_are_enough() {
        let nodes = plan(8, 2);
        let splits = all_splits(&nodes, 8, 4);
        assert_partition(&nodes, &splits);
        for (i, s) in splits.iter().enumerate() {
            assert!(s.whole_clusters);
            assert_eq!(s.clusters, [2 * i as u32, 2 * i as u32 + 1]);
            assert_eq!(s.nodes.len(), 4);
        }
        // Uneven: 5 clusters over 4 shards, no cluster split, sizes differ by one at most.
        let nodes = plan(5, 3);
        let splits = all_splits(&nodes, 5, 4);
        assert_partition(&nodes, &splits);
        let sizes: Vec<usize> = splits.iter().map(|s| s.clusters.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 5);
        assert!(sizes.iter().all(|n| (1..=2).contains(n)), "{sizes:?}");
        for s in &splits {
            let in_shard = s.nodes.len();
            assert_eq!(in_shard, s.clusters.len() * 3, "whole clusters");
        }
    }

    #[test]
    fn node_ranges_when_clusters_are_fewer_than_shards() {
        let nodes = plan(2, 5);
        let splits = all_splits(&nodes, 2, 4);
        assert_partition(&nodes, &splits);
        for s in &splits {
            assert!(!s.whole_clusters);
            assert!((2..=3).contains(&s.nodes.len()));
            let mut numbers: Vec<u32> = s.nodes.iter().map(|p| p.node).collect();
            numbers.sort();
            assert_eq!(
                numbers.last().unwrap() - numbers[0] + 1,
                numbers.len() as u32,
                "contiguous"
            );
        }
        // One node per shard is fine; more shards than nodes is not.
        let nodes = plan(1, 3);
        assert_partition(&nodes, &all_splits(&nodes, 1, 3));
        let e = split(&nodes, 1, Shard { index: 0, count: 4 }).unwrap_err();
        assert!(e.contains("4 shards for a fleet of 3 nodes"), "{e}");
    }

    #[test]
    fn the_split_is_deterministic_and_one_shard_is_the_whole_fleet() {
        let nodes = plan(6, 4);
        assert_eq!(all_splits(&nodes, 6, 3), all_splits(&plan(6, 4), 6, 3));
        let whole = split(&nodes, 6, Shard { index: 0, count: 1 }).unwrap();
        assert_eq!(whole.nodes, nodes);
        // The jitter of a node is the one the unsharded plan gives it.
        assert!(nodes.iter().any(|p| !p.start.is_zero()));
    }

    #[test]
    fn the_flag_wins_over_the_environment_and_bad_values_are_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let job = env(&[("JOB_COMPLETION_INDEX", "2"), ("PULLSTORM_SHARDS", "4")]);
        assert_eq!(
            Shard::resolve(None, job).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        assert_eq!(
            Shard::resolve(Some("1/3"), job).unwrap(),
            Some(Shard { index: 1, count: 3 })
        );
        assert_eq!(
            Shard::resolve(None, env(&[("PULLSTORM_SHARD", "3/4")])).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        assert_eq!(Shard::resolve(None, env(&[])).unwrap(), None);
        assert_eq!(
            Shard::resolve(None, env(&[("JOB_COMPLETION_INDEX", "5")])).unwrap(),
            None
        );
        for (flag, pairs, says) in [
            (Some("4/4"), &[][..], "out of range"),
            (Some("1"), &[][..], "expected I/N"),
            (Some("-1/4"), &[][..], "not a whole number"),
            (Some("0/0"), &[][..], "at least 1"),
            (
                None,
                &[("PULLSTORM_SHARDS", "4")][..],
                "JOB_COMPLETION_INDEX is not",
            ),
            (
                None,
                &[("JOB_COMPLETION_INDEX", "4"), ("PULLSTORM_SHARDS", "4")][..],
                "out of range",
            ),
            (
                None,
                &[("PULLSTORM_SHARD", "1/4"), ("PULLSTORM_SHARDS", "3")][..],
                "disagree on the shard count",
            ),
            (
                None,
                &[
                    ("PULLSTORM_SHARD", "1/4"),
                    ("PULLSTORM_SHARDS", "4"),
                    ("JOB_COMPLETION_INDEX", "2"),
                ][..],
                "disagree on the shard index",
            ),
        ] {
            let lookup = |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            let e = Shard::resolve(flag, lookup).unwrap_err();
            assert!(e.contains(says), "{flag:?} {pairs:?}: {e}");
        }
    }

    #[test]
    fn start_times_parse_as_rfc3339_and_lateness_is_never_negative() {
        let t = parse_start_at("2026-11-27T22:30:00Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339(t).to_string(),
            "2026-11-27T22:30:00Z"
        );
        assert_eq!(
            parse_start_at("2026-11-28T00:30:00+02:00").unwrap(),
            t,
            "an offset is applied"
        );
        assert_eq!(
            parse_start_at("2026-11-27T22:30:00.250Z").unwrap(),
            t + Duration::from_millis(250)
        );
        assert!(parse_start_at("tomorrow").unwrap_err().contains("RFC 3339"));
        assert_eq!(lateness(t, t - Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(
            lateness(t, t + Duration::from_millis(1500)),
            Duration::from_millis(1500)
        );
    }
}
