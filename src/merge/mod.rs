//! `pullstorm merge`: the shards of a sharded storm (`pullstorm run --shard
//! I/N`, one per Kubernetes pod) made into one result and one report, as if
//! one process had run the whole fleet. Histograms merge losslessly, so the
//! merged percentiles are those of every pull of the storm, not an average
//! of the shards' percentiles.
//!
//! `check` says what is refused, `combine` builds the merged document,
//! `timeline` puts the shards' seconds on one clock, `hlog` merges the
//! interval logs. This file reads the inputs and writes the outputs.
//! docs/merge.md.

pub mod check;
pub mod combine;
pub mod hlog;
#[cfg(test)]
mod tests;
pub mod timeline;

use crate::compare::load;
use crate::exit::{self, Failure};
use crate::result::{self, summary, ResultDoc};
use crate::terminal;
use check::Part;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `pullstorm merge` arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' results: result.json files, run folders, or folders of run folders.
    #[arg(required = true, value_name = "RESULT|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Output folder for result.json, report.html and latency.hlog; must not hold a result.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Merge even when shards are missing; the result is marked incomplete (`complete: false`,
    /// `missing_shards`).
    #[arg(long)]
    pub allow_partial: bool,
    /// Print only the output paths.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `pullstorm merge`; returns 0 when the merged result passes its
/// thresholds, 1 when not.
pub fn merge_main(args: MergeArgs) -> Result<i32, Failure> {
    let mut runs = Vec::new();
    for input in &args.inputs {
        runs.extend(load::runs(input).map_err(Failure::bad_input)?);
    }
    let out_result = args.out.join("result.json");
    if out_result.exists() {
        return Err(Failure::bad_input(format!(
            "{}: already holds a result; merge into a new folder",
            args.out.display()
        )));
    }
    runs.sort_by_key(|r| r.doc.shard.as_ref().map_or(u32::MAX, |s| s.index));
    let files: Vec<String> = runs.iter().map(|r| r.path.display().to_string()).collect();
    let parts: Vec<Part<'_>> = runs
        .iter()
        .zip(&files)
        .map(|(r, f)| Part {
            file: f,
            doc: &r.doc,
        })
        .collect();
    let missing = check::check(&parts, args.allow_partial).map_err(Failure::bad_input)?;
    let doc = combine::merge(&parts, &missing).map_err(Failure::bad_input)?;
    let hlog = merged_hlog(&runs, &doc).map_err(Failure::bad_input)?;

    std::fs::create_dir_all(&args.out).map_err(|e| {
        Failure::cannot_proceed(format!("cannot create {}: {e}", args.out.display()))
    })?;
    let mut errors = Vec::new();
    let write = |path: &Path, bytes: &[u8]| {
        result::write_atomic(path, bytes)
            .err()
            .map(|e| format!("cannot write {}: {e}", path.display()))
    };
    match serde_json::to_vec_pretty(&doc) {
        Ok(json) => errors.extend(write(&out_result, &json)),
        Err(e) => errors.push(format!("cannot write {}: {e}", out_result.display())),
    }
    match &hlog {
        Ok(bytes) => errors.extend(write(&args.out.join("latency.hlog"), bytes)),
        Err(why) => eprintln!("pullstorm: note: no merged latency.hlog: {why}"),
    }
    let report = args.out.join("report.html");
    if let Err(e) = crate::report::write(&doc, &report) {
        errors.push(format!("cannot write {}: {e}", report.display()));
    }
    let mut console = if args.quiet {
        String::new()
    } else {
        let mut head = format!(
            "merged {} of {} shards{}\n",
            runs.len(),
            runs.len() + missing.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(
                    " (missing: {})",
                    missing
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        head.push_str(&summary::render(&doc));
        head
    };
    for (label, path) in [("result", &out_result), ("report", &report)] {
        console.push_str(&format!(
            "  {label:<9} {}\n",
            terminal::escape(&path.display().to_string())
        ));
    }
    if let Err(e) = terminal::print(&console) {
        tracing::warn!("cannot print the summary: {e}");
    }
    if !errors.is_empty() {
        return Err(Failure::cannot_proceed(errors.join("\n")));
    }
    Ok(if doc.thresholds.passed {
        exit::OK
    } else {
        exit::THRESHOLDS_FAILED
    })
}

/// The merged interval log when every shard has one (`Ok(Err(why))` when
/// not: the merge goes on without it); a log that does not parse is bad input.
fn merged_hlog(runs: &[load::Run], doc: &ResultDoc) -> Result<Result<Vec<u8>, String>, String> {
    let mut merged = hlog::Merged::default();
    for (run, shard) in runs.iter().zip(&doc.merged_from) {
        let path = if run.path.file_name().is_some_and(|n| n == "result.json") {
            run.path.with_file_name("latency.hlog")
        } else {
            run.path.with_extension("hlog")
        };
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(Err(format!(
                "{} has no latency.hlog beside it",
                run.path.display()
            )));
        };
        merged
            .add(&bytes, Duration::from_millis(shard.offset_ms))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let started = humantime::parse_rfc3339(&doc.started_at).map_err(|e| e.to_string())?;
    Ok(Ok(merged.write(started, runs.len())))
}
