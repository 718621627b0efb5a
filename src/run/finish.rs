//! Step 3 of a run: the result. Build it from what the storm measured, check
//! the thresholds, write result.json, latency.hlog and report.html (each whole
//! or not at all, each tried even when another could not be written), print
//! the summary, and turn the verdict into the exit code.

use super::out_dir::OutDir;
use super::prepare::Ready;
use super::storm::Stormed;
use super::RunOptions;
use crate::exit::{self, Failure};
use crate::metrics::Recorder;
use crate::result::build::{self, RunFacts, StopReason};
use crate::result::model::AfterRunVerify;
use crate::result::{self, summary, thresholds, ResultDoc};
use crate::shutdown::Caught;
use crate::terminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Builds, checks, writes and prints the result; returns the exit code:
/// 130 or 143 when `caught` (SIGINT, SIGTERM) stopped the run, else 0 or 1 as
/// the thresholds say. When an output file cannot be written the others
/// still are and the summary is still printed; the error then ends the
/// command with exit code 3.
pub(super) fn finish(
    opts: &RunOptions,
    out: &OutDir,
    ready: Ready,
    stormed: Stormed,
    verified: Option<AfterRunVerify>,
    caught: Option<Caught>,
) -> Result<i32, Failure> {
    let stop = stormed.stop;
    let facts = RunFacts {
        loaded: &opts.loaded,
        overrides: &opts.overrides,
        nodes: ready.plan.nodes.len() as u64,
        planned_pulls: ready.plan.planned_pulls(),
        profile: serde_json::to_value(&ready.profile).unwrap_or_default(),
        target: ready.target,
        fd_limits: ready.limits,
        stop,
        started: stormed.started,
        ended: stormed.ended,
        watched: stormed.watched,
    };
    let mut doc = build::build(facts, &stormed.recorder);
    doc.capacity = stormed.capacity.as_ref().map(build::capacity);
    doc.verify = verified.map(|mut v| {
        crate::redact::after_run_verify(&mut v);
        v
    });
    if !opts.sharding.runs_pushers() {
        doc.pushes = None;
    }
    crate::shard::describe(
        &mut doc,
        &opts.sharding,
        &opts.loaded.scenario,
        &ready.plan,
        stormed.started,
    );
    doc.thresholds = thresholds::evaluate(&opts.loaded.scenario.thresholds, &doc);
    if let Some(breach) = &stormed.breach {
        thresholds::record_abort(&mut doc.thresholds, breach);
    }

    let outputs = write_outputs(&out.path, &doc, &stormed.recorder, stormed.started);
    let mut console = summary::render(&doc);
    for (label, path, error) in [
        ("result", &outputs.result, &outputs.result_error),
        ("report", &outputs.report, &outputs.report_error),
    ] {
        let path = terminal::escape(&path.display().to_string()).into_owned();
        let note = if error.is_some() { "  NOT WRITTEN" } else { "" };
        console.push_str(&format!("  {label:<9} {path}{note}\n"));
    }
    if let Err(e) = terminal::print(&console) {
        tracing::warn!("cannot print the summary: {e}");
    }
    if !outputs.errors.is_empty() {
        return Err(Failure::cannot_proceed(outputs.errors.join("\n")));
    }
    Ok(exit_code(stop, caught, doc.thresholds.passed))
}

/// A signal's own code when it stopped the run (so CI tells an abort from a
/// regression), else the thresholds' verdict.
fn exit_code(stop: StopReason, caught: Option<Caught>, passed: bool) -> i32 {
    match (stop, caught) {
        (StopReason::Interrupted, Some(signal)) => signal.exit_code(),
        _ if passed => exit::OK,
        _ => exit::THRESHOLDS_FAILED,
    }
}

/// The three output files and what went wrong writing them.
struct Outputs {
    result: PathBuf,
    report: PathBuf,
    result_error: Option<String>,
    report_error: Option<String>,
    /// Every error, in the order the files were written.
    errors: Vec<String>,
}

/// Writes result.json, latency.hlog and report.html into `out_dir`, each
/// atomically (a temp file renamed, removed on error); a file that fails does
/// not stop the others.
fn write_outputs(
    out_dir: &Path,
    doc: &ResultDoc,
    recorder: &Recorder,
    started: SystemTime,
) -> Outputs {
    let cannot_write =
        |path: &Path, e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let result = out_dir.join("result.json");
    let result_error = match serde_json::to_vec_pretty(doc) {
        Ok(json) => result::write_atomic(&result, &json)
            .err()
            .map(|e| cannot_write(&result, &e)),
        Err(e) => Some(cannot_write(&result, &e)),
    };
    let hlog = out_dir.join("latency.hlog");
    let hlog_error = result::write_atomic(&hlog, &interval_log(recorder, started))
        .err()
        .map(|e| cannot_write(&hlog, &e));
    let report = out_dir.join("report.html");
    let report_error = crate::report::write(doc, &report)
        .err()
        .map(|e| cannot_write(&report, &e));
    let errors = [&result_error, &hlog_error, &report_error]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    Outputs {
        result,
        report,
        result_error,
        report_error,
        errors,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_has_its_own_exit_code_and_the_deadline_does_not() {
        use StopReason::*;
        assert_eq!(exit_code(Interrupted, Some(Caught::Interrupt), false), 130);
        assert_eq!(exit_code(Interrupted, Some(Caught::Terminate), false), 143);
        assert_eq!(exit_code(Deadline, None, false), exit::THRESHOLDS_FAILED);
        assert_eq!(exit_code(Finished, None, false), exit::THRESHOLDS_FAILED);
        assert_eq!(exit_code(Finished, None, true), exit::OK);
    }
}
