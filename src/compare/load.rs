//! The two sides of a comparison, read from disk: a side is one run (a
//! result.json, or the run folder holding it and its latency.hlog) or a folder
//! of repeated runs (subfolders each holding a result.json, or `*.json` files).
//! Also the rule that both sides, and every run of a side, ran the same
//! scenario. Every error names the file and what is wrong.

use crate::result::model::{decode_histogram, ResultDoc, SCHEMA};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One latency interval of a run's `latency.hlog`.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the run started.
    pub start_s: f64,
    /// Microsecond values and their counts.
    pub sample: super::stats::Sample,
}

/// One run: its result and, when its latency.hlog was found, its intervals per metric.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: PathBuf,
    pub doc: ResultDoc,
    /// Intervals per metric tag, in time order; `None` without a latency.hlog.
    pub intervals: Option<BTreeMap<String, Vec<Interval>>>,
}

/// A side of the comparison.
#[derive(Debug, Clone)]
pub struct Side {
    /// The path as given.
    pub label: String,
    pub runs: Vec<Run>,
}

impl Side {
    pub fn name(&self) -> &str {
        &self.runs[0].doc.scenario.name
    }
}

/// Reads a side from a file or folder (see the module doc).
pub fn side(path: &Path) -> Result<Side, String> {
    let runs = runs(path)?;
    same_scenario_within(&runs)?;
    Ok(Side {
        label: path.display().to_string(),
        runs,
    })
}

/// The runs a path holds: a result.json, a run folder, or a folder of run
/// folders or `*.json` files (also what `pullstorm merge` reads).
pub fn runs(path: &Path) -> Result<Vec<Run>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut runs = Vec::new();
    if meta.is_file() {
        runs.push(run(path)?);
    } else if path.join("result.json").is_file() {
        runs.push(run(&path.join("result.json"))?);
    } else {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{shown}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() && p.join("result.json").is_file() {
                runs.push(run(&p.join("result.json"))?);
            } else if p.is_file() && p.extension().is_some_and(|x| x == "json") {
                runs.push(run(&p)?);
            }
        }
        if runs.is_empty() {
            return Err(format!(
                "{shown}: holds no result.json, no run folders (each with a result.json) and no *.json files"
            ));
        }
    }
    Ok(runs)
}

/// One result.json and the latency.hlog beside it (`<stem>.hlog` for a `<stem>.json`
/// that is not `result.json`).
fn run(path: &Path) -> Result<Run, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let doc: ResultDoc = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{shown}:{}:{}: not a pullstorm result: {e}",
            e.line(),
            e.column()
        )
    })?;
    if doc.schema != SCHEMA {
        return Err(format!(
            "{shown}: schema `{}`, expected `{SCHEMA}`",
            doc.schema
        ));
    }
    for (metric, text) in &doc.histograms {
        decode_histogram(text).map_err(|e| format!("{shown}: key `histograms.{metric}`: {e}"))?;
    }
    let hlog = if path.file_name().is_some_and(|n| n == "result.json") {
        path.with_file_name("latency.hlog")
    } else {
        path.with_extension("hlog")
    };
    let intervals = if hlog.is_file() {
        let bytes = std::fs::read(&hlog).map_err(|e| format!("{}: {e}", hlog.display()))?;
        Some(parse_hlog(&bytes).map_err(|e| format!("{}: {e}", hlog.display()))?)
    } else {
        None
    };
    Ok(Run {
        path: path.to_path_buf(),
        doc,
        intervals,
    })
}

/// The interval histograms of an HdrHistogram interval log, per tag.
pub fn parse_hlog(bytes: &[u8]) -> Result<BTreeMap<String, Vec<Interval>>, String> {
    let mut out: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
    for (n, entry) in IntervalLogIterator::new(bytes).enumerate() {
        let entry = entry.map_err(|e| {
            let offset = match e {
                hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                    offset,
                } => offset,
            };
            let line = bytes[..offset.min(bytes.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            format!("line {line}: not an HdrHistogram interval log line")
        })?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let (tag, h) = interval_histogram(&i).map_err(|e| format!("interval {}: {e}", n + 1))?;
        let sample = h
            .iter_recorded()
            .map(|v| {
                (
                    h.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                )
            })
            .collect();
        out.entry(tag).or_default().push(Interval {
            start_s: i.start_timestamp().as_secs_f64(),
            sample,
        });
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    }
    Ok(out)
}

/// Keys of `scenario.resolved` that may differ between runs of one scenario:
/// where the target is and how it is trusted (the candidate is another
/// deployment), what is watched, the thresholds (a verdict, not load), the
/// description, the run's seed (repeated runs may sample the start jitter anew),
/// and its start time (`run.start_at`: when, not what).
pub const MAY_DIFFER: [&str; 8] = [
    "target.url",
    "target.ca_file",
    "target.insecure_tls",
    "watch",
    "thresholds",
    "description",
    "run.seed",
    "run.start_at",
];

/// The dotted keys where two resolved scenarios differ, outside [`MAY_DIFFER`].
pub fn differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", a, b, &mut out);
    out
}

fn diff(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    if MAY_DIFFER.contains(&prefix) {
        return;
    }
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = serde_json::Value::Null;
                diff(
                    &path,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(if prefix.is_empty() {
            "(the whole scenario)".into()
        } else {
            prefix.to_string()
        }),
        _ => {}
    }
}

/// Why two runs did not run the same scenario, or None when they did.
pub fn scenario_mismatch(a: &ResultDoc, b: &ResultDoc) -> Option<String> {
    if a.scenario.name != b.scenario.name {
        return Some(format!(
            "scenario.name `{}` vs `{}`",
            a.scenario.name, b.scenario.name
        ));
    }
    let keys = differences(&a.scenario.resolved, &b.scenario.resolved);
    if keys.is_empty() {
        return None;
    }
    let show = |doc: &ResultDoc, k: &str| {
        let mut v = &doc.scenario.resolved;
        for part in k.split('.') {
            v = v.get(part).unwrap_or(&serde_json::Value::Null);
        }
        v.to_string()
    };
    let first: Vec<String> = keys
        .iter()
        .take(5)
        .map(|k| format!("{k} ({} vs {})", show(a, k), show(b, k)))
        .collect();
    Some(format!(
        "scenario.resolved differs at {}{}",
        first.join(", "),
        if keys.len() > 5 {
            format!(" and {} more", keys.len() - 5)
        } else {
            String::new()
        }
    ))
}

/// Every run of a side ran the first run's scenario.
fn same_scenario_within(runs: &[Run]) -> Result<(), String> {
    let first = &runs[0];
    for r in &runs[1..] {
        if let Some(why) = scenario_mismatch(&first.doc, &r.doc) {
            return Err(format!(
                "{} and {} are runs of different scenarios: {why}; a side's runs must repeat one scenario",
                first.path.display(),
                r.path.display()
            ));
        }
    }
    Ok(())
}

/// One interval of a `latency.hlog`: its tag (the metric) and its histogram,
/// decoded from base64 V2 + DEFLATE (shared by `compare` and `merge`).
pub(crate) fn interval_histogram(
    i: &hdrhistogram::serialization::interval_log::IntervalLogHistogram<'_>,
) -> Result<(String, hdrhistogram::Histogram<u64>), String> {
    let tag = i.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        i.encoded_histogram(),
    )
    .map_err(|e| format!("(tag {tag}): bad base64: {e}"))?;
    let h = Deserializer::new()
        .deserialize(&mut &raw[..])
        .map_err(|e| format!("(tag {tag}): bad histogram: {e:?}"))?;
    Ok((tag, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_target_watch_seed_and_thresholds_may_differ_the_load_may_not() {
        let a = json!({"target": {"url": "http://a", "image": "x:1"}, "run": {"seed": 1, "duration": "1m"},
                       "watch": {"processes": []}, "fleet": {"clusters": 2}});
        let b = json!({"target": {"url": "http://b", "image": "x:1"}, "run": {"seed": 2, "duration": "1m"},
                       "watch": {"processes": ["nginx"]}, "fleet": {"clusters": 2}});
        assert!(differences(&a, &b).is_empty());
        let c = json!({"target": {"url": "http://b", "image": "x:2"}, "run": {"seed": 2, "duration": "2m"},
                       "fleet": {"clusters": 2, "client": "dockerd"}});
        assert_eq!(
            differences(&a, &c),
            ["fleet.client", "run.duration", "target.image"]
        );
    }

    #[test]
    fn an_interval_log_parses_per_tag_and_bad_lines_are_named() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).unwrap();
        let mut log = Vec::new();
        let mut ser = hdrhistogram::serialization::V2DeflateSerializer::new();
        {
            let mut w = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut log, &mut ser)
                .unwrap();
            for (i, v) in [1000u64, 2000, 3000].iter().enumerate() {
                h.reset();
                h.record(*v).unwrap();
                h.record(*v).unwrap();
                let tag = hdrhistogram::serialization::interval_log::Tag::new("pull");
                w.write_histogram(
                    &h,
                    std::time::Duration::from_secs(5 * i as u64),
                    std::time::Duration::from_secs(5),
                    tag,
                )
                .unwrap();
            }
        }
        let parsed = parse_hlog(&log).unwrap();
        let pull = &parsed["pull"];
        assert_eq!(pull.len(), 3);
        assert_eq!(pull[2].start_s, 10.0);
        assert_eq!(pull[1].sample.iter().map(|p| p.1).sum::<u64>(), 2);
        assert!((pull[1].sample[0].0 as i64 - 2000).abs() <= 2);
        let mut bad = log.clone();
        bad.extend_from_slice(b"Tag=pull,notanumber\n");
        assert!(parse_hlog(&bad).unwrap_err().contains("line"));
    }

    #[test]
    fn a_folder_without_runs_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = side(dir.path()).unwrap_err();
        assert!(e.contains("holds no result.json"), "{e}");
        std::fs::write(dir.path().join("a.json"), "{\"schema\": 1").unwrap();
        let e = side(dir.path()).unwrap_err();
        assert!(
            e.contains("a.json:1:") && e.contains("not a pullstorm result"),
            "{e}"
        );
        let e = side(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.contains("missing.json"), "{e}");
    }
}
