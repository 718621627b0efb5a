//! Step 3 of a run: the result. Build it from what the storm measured, check
//! the thresholds, write result.json, latency.hlog and report.html (each whole
//! or not at all), print the summary, and turn the verdict into the exit code.

use super::prepare::Ready;
use super::storm::Stormed;
use super::RunOptions;
use crate::exit::{self, Failure};
use crate::metrics::Recorder;
use crate::result::build::{self, RunFacts};
use crate::result::{self, summary, thresholds, ResultDoc};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Builds, checks, writes and prints the result; returns the exit code.
pub(super) fn finish(opts: &RunOptions, ready: Ready, stormed: Stormed) -> Result<i32, Failure> {
    let facts = RunFacts {
        loaded: &opts.loaded,
        overrides: &opts.overrides,
        nodes: ready.plan.nodes.len() as u64,
        planned_pulls: ready.plan.planned_pulls(),
        profile: serde_json::to_value(&ready.profile).unwrap_or_default(),
        target: ready.target,
        fd_limits: ready.limits,
        stop: stormed.stop,
        started: stormed.started,
        ended: stormed.ended,
        watched: stormed.watched,
    };
    let mut doc = build::build(facts, &stormed.recorder);
    doc.thresholds = thresholds::evaluate(&opts.loaded.scenario.thresholds, &doc);

    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| default_out_dir(&opts.loaded.name, stormed.started));
    let written = write_outputs(&out_dir, &doc, &stormed.recorder, stormed.started)?;
    print!("{}", summary::render(&doc));
    println!("  result    {}", written.result.display());
    println!("  report    {}", written.report.display());
    Ok(if doc.thresholds.passed {
        exit::OK
    } else {
        exit::THRESHOLDS_FAILED
    })
}

/// Where the result and the report were written.
struct Written {
    result: PathBuf,
    report: PathBuf,
}

/// Writes result.json, latency.hlog and report.html into `out_dir`, each atomically.
fn write_outputs(
    out_dir: &Path,
    doc: &ResultDoc,
    recorder: &Recorder,
    started: SystemTime,
) -> Result<Written, Failure> {
    let cannot_write = |path: &Path, e: std::io::Error| {
        Failure::cannot_proceed(format!("cannot write {}: {e}", path.display()))
    };
    let json = serde_json::to_vec_pretty(doc)
        .map_err(|e| Failure::cannot_proceed(format!("cannot encode the result: {e}")))?;
    let result_path = out_dir.join("result.json");
    result::write_atomic(&result_path, &json).map_err(|e| cannot_write(&result_path, e))?;
    let hlog_path = out_dir.join("latency.hlog");
    result::write_atomic(&hlog_path, &interval_log(recorder, started))
        .map_err(|e| cannot_write(&hlog_path, e))?;
    let report_path = out_dir.join("report.html");
    crate::report::write(doc, &report_path).map_err(|e| cannot_write(&report_path, e))?;
    Ok(Written {
        result: result_path,
        report: report_path,
    })
}

/// The `.hlog` file: the standard HdrHistogram interval-log header, then the recorder's
/// tagged lines (one per metric per 5 s interval), readable by HistogramLogProcessor
/// and the hdrhistogram libraries.
fn interval_log(recorder: &Recorder, started: SystemTime) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    let _ = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
        .add_comment(concat!("pullstorm ", env!("CARGO_PKG_VERSION"), " latency intervals"))
        .add_comment("values in microseconds; Interval_Max in milliseconds; Tag = result.json latency metric")
        .with_start_time(started)
        .with_base_time(started)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer);
    out.extend_from_slice(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    out.extend_from_slice(recorder.interval_log());
    out
}

/// `reports/<name>-<UTC timestamp>/`.
fn default_out_dir(name: &str, at: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
}
