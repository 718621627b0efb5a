//! The console table of a comparison: one line per metric (metric, baseline,
//! candidate, change, 95 % interval, verdict), regressions first, then the
//! verdict line. Text that came from the results is escaped.

use super::format;
use super::load::Side;
use super::verdict::{ordered, Row, Verdict};
use crate::terminal::escape;
use std::fmt::Write;

/// The whole console output.
pub fn render(baseline: &Side, candidate: &Side, rows: &[Row], notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pullstorm compare: {} ({} baseline run{}, {} candidate run{})",
        escape(baseline.name()),
        baseline.runs.len(),
        plural(baseline.runs.len()),
        candidate.runs.len(),
        plural(candidate.runs.len())
    );
    let _ = writeln!(s, "  baseline   {}", escape(&baseline.label));
    let _ = writeln!(s, "  candidate  {}", escape(&candidate.label));
    for n in notes {
        let _ = writeln!(s, "  note       {}", escape(n));
    }
    let head = [
        "metric",
        "baseline",
        "candidate",
        "change",
        "95% interval",
        "verdict",
    ];
    let mut lines: Vec<[String; 6]> = vec![head.map(String::from)];
    for r in ordered(rows) {
        lines.push([
            r.def.key.clone(),
            format::value(r.def.unit, r.baseline),
            format::value(r.def.unit, r.candidate),
            format::row_change(r),
            format::row_interval(r),
            if r.note.is_empty() {
                r.verdict.label().to_string()
            } else {
                format!("{} ({})", r.verdict.label(), r.note)
            },
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in &lines {
        let _ = write!(s, "  ");
        for (c, w) in widths.iter().enumerate() {
            // Numbers right-aligned, the metric name left-aligned.
            if c == 0 {
                let _ = write!(s, "{:<w$}  ", escape(&l[c]));
            } else {
                let _ = write!(s, "{:>w$}  ", l[c]);
            }
        }
        let _ = writeln!(s, "{}", l[5]);
    }
    let _ = writeln!(s, "{}", headline(rows));
    s
}

/// `REGRESSION: a, b` or `OK: no regression (...)`.
pub fn headline(rows: &[Row]) -> String {
    let worse: Vec<&str> = rows
        .iter()
        .filter(|r| r.is_regression())
        .map(|r| r.def.key.as_str())
        .collect();
    let better = rows.iter().filter(|r| r.verdict == Verdict::Better).count();
    if worse.is_empty() {
        format!(
            "OK: no regression ({} metric{} compared, {better} better)",
            rows.len(),
            plural(rows.len())
        )
    } else {
        format!("REGRESSION: {}", worse.join(", "))
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
