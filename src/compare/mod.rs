//! `pullstorm compare BASELINE CANDIDATE`: the regression gate. "May we
//! upgrade Harbor or the LB without making mass pulls worse?"
//!
//! Each side is one run or a folder of repeated runs of one scenario
//! (`load`); both must have run the same scenario. Every metric (`metrics`)
//! gets a value per side, a change, a 95 % bootstrap interval (`stats`: over
//! runs, or over time for a single run) and a verdict (`verdict`). Outputs:
//! the console table (`console`), and on request a self-contained HTML page
//! (`html`), a Markdown summary for a pull request (`markdown`) and JUnit XML
//! for CI (`junit`), each written whole or not at all. docs/upgrade-gate.md
//! is the user's guide.
//!
//! Exit codes: 0 no regression, 1 a regression, 2 bad input (a file that is
//! not a result, different scenarios, a bad tolerance), 3 an output could
//! not be written.

pub mod console;
pub mod format;
pub mod html;
pub mod junit;
pub mod load;
pub mod markdown;
pub mod metrics;
pub mod stats;
pub mod verdict;

use crate::exit::{self, Failure};
use clap::Args;
use load::Side;
use std::path::PathBuf;

/// The arguments of `pullstorm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Baseline: a result.json, a run folder, or a folder of repeated runs (subfolders
    /// each with a result.json, or *.json files).
    pub baseline: PathBuf,
    /// Candidate: the same forms as the baseline.
    pub candidate: PathBuf,
    /// Write a self-contained HTML comparison report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a Markdown summary (for a pull-request comment).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write JUnit XML (one testcase per metric) for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Override a tolerance, e.g. --tolerance pull_p99=20% --tolerance failure_rate=2pp (repeatable).
    #[arg(long, value_name = "METRIC=VALUE")]
    pub tolerance: Vec<String>,
    /// Read tolerances from a TOML file of METRIC = VALUE lines (flags win over it).
    #[arg(long, value_name = "FILE")]
    pub tolerances: Option<PathBuf>,
    /// Compare even when the sides ran different scenarios (a note says so).
    #[arg(long)]
    pub allow_different_scenarios: bool,
}

/// Everything a comparison found, before it is printed or written.
pub struct Comparison {
    pub baseline: Side,
    pub candidate: Side,
    pub rows: Vec<verdict::Row>,
    /// Things the reader must know (scenarios allowed to differ, saturated harness, ...).
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.is_regression())
    }
}

/// Loads both sides, checks they are comparable and judges every metric.
pub fn compare(args: &CompareArgs) -> Result<Comparison, Failure> {
    let mut tolerances = metrics::Tolerances::default();
    if let Some(f) = &args.tolerances {
        tolerances
            .load_file(f)
            .map_err(|e| Failure::bad_input(format!("--tolerances {e}")))?;
    }
    for t in &args.tolerance {
        tolerances
            .set(t)
            .map_err(|e| Failure::bad_input(format!("--tolerance {e}")))?;
    }
    let baseline =
        load::side(&args.baseline).map_err(|e| Failure::bad_input(format!("baseline: {e}")))?;
    let candidate =
        load::side(&args.candidate).map_err(|e| Failure::bad_input(format!("candidate: {e}")))?;
    let mut notes = Vec::new();
    let (b0, c0) = (&baseline.runs[0], &candidate.runs[0]);
    if let Some(why) = load::scenario_mismatch(&b0.doc, &c0.doc) {
        if !args.allow_different_scenarios {
            return Err(Failure::bad_input(format!(
                "{} and {} ran different scenarios: {why} (--allow-different-scenarios compares them anyway)",
                b0.path.display(),
                c0.path.display()
            )));
        }
        notes.push(format!("different scenarios compared: {why}"));
    }
    notes.extend(run_notes(&baseline, "baseline"));
    notes.extend(run_notes(&candidate, "candidate"));
    let all_runs = || baseline.runs.iter().chain(candidate.runs.iter());
    let mut classes: Vec<String> = all_runs()
        .flat_map(|r| {
            r.doc
                .errors
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.clone())
        })
        .collect();
    classes.sort();
    classes.dedup();
    let with_ttfb = all_runs().any(|r| r.doc.latency.get("ttfb").is_some_and(|l| l.count > 0));
    let defs = metrics::list(&classes, with_ttfb, &tolerances);
    let rows = verdict::compare_all(&defs, &baseline, &candidate);
    Ok(Comparison {
        baseline,
        candidate,
        rows,
        notes,
    })
}

/// What the reader must know about a side's runs.
fn run_notes(side: &Side, which: &str) -> Vec<String> {
    let mut out = Vec::new();
    let first_bytes = side.runs[0].doc.target.image_bytes;
    for r in &side.runs {
        let p = r.path.display();
        if !r.doc.complete {
            out.push(format!(
                "{which} run {p} is incomplete (stopped: {})",
                r.doc.stop_reason
            ));
        }
        if r.doc.harness.as_ref().is_some_and(|h| h.saturated) {
            out.push(format!(
                "{which} run {p}: the harness was saturated; its figures may describe pullstorm, not the target"
            ));
        }
        if r.doc.target.image_bytes != first_bytes {
            out.push(format!(
                "{which} run {p} pulled {} bytes per image, the first run {first_bytes}",
                r.doc.target.image_bytes
            ));
        }
    }
    if side.runs.len() == 1 {
        out.push(format!(
            "one {which} run: intervals come from its own time series (repeat runs for a firmer verdict)"
        ));
    }
    out
}

/// The command: compare, print, write the files asked for; the exit code.
pub fn compare_main(args: CompareArgs) -> Result<i32, Failure> {
    let c = compare(&args)?;
    let outputs: [(&Option<PathBuf>, &dyn Fn() -> String); 3] = [
        (&args.html, &|| {
            html::render(&c.baseline, &c.candidate, &c.rows, &c.notes)
        }),
        (&args.markdown, &|| {
            markdown::render(&c.baseline, &c.candidate, &c.rows, &c.notes)
        }),
        (&args.junit, &|| junit::render(c.baseline.name(), &c.rows)),
    ];
    for (path, render) in outputs {
        if let Some(p) = path {
            crate::result::write_atomic(p, render().as_bytes()).map_err(|e| {
                Failure::cannot_proceed(format!("cannot write {}: {e}", p.display()))
            })?;
        }
    }
    let text = console::render(&c.baseline, &c.candidate, &c.rows, &c.notes);
    if let Err(e) = crate::terminal::print(&text) {
        tracing::warn!("cannot write to stdout: {e}");
    }
    Ok(if c.regressed() {
        exit::THRESHOLDS_FAILED
    } else {
        exit::OK
    })
}
