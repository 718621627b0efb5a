//! The timeline as a table, for readers without scripts or on paper: at
//! most [`TABLE_ROWS`] spans, each with the run's rates, levels and counts
//! and the fds of the busiest watched processes.

use super::span;
use crate::human;
use crate::report::decimate::{Agg, Grid};
use crate::report::html::{esc, table as html_table};
use crate::result::model::{ResultDoc, TimelineRow, WatchedKind, WatchedSummary};
use std::collections::BTreeMap;

/// Most rows of the timeline table.
const TABLE_ROWS: usize = 120;
/// Most watched processes given an fds column.
const WATCHED_COLUMNS: usize = 4;

/// The table inside a `<details>`, or a line saying there are no rows.
pub(super) fn table(doc: &ResultDoc) -> String {
    if doc.timeline.is_empty() {
        return "<p>No timeline rows.</p>".into();
    }
    let grid = Grid::with_max(span(doc), TABLE_ROWS);
    let run = RunColumns::new(&grid, &doc.timeline);
    let watched = busiest_watched(doc);
    let watched_fds: Vec<Vec<Option<f64>>> = watched
        .iter()
        .map(|t| {
            Agg::new(
                &grid,
                t.series.iter().filter_map(|p| Some((p.t, p.fds? as f64))),
            )
            .max_opt()
        })
        .collect();
    let rows: Vec<Vec<String>> = (0..grid.buckets)
        // A span is listed when the run or a watched process has a sample in it.
        .filter(|&i| run.sampled[i] || watched_fds.iter().any(|w| w[i].is_some()))
        .map(|i| {
            let mut cells = vec![span_label(&grid, i)];
            cells.extend(run.levels(i));
            cells.extend(watched_fds.iter().map(|w| opt(w[i], human::num)));
            cells.extend(run.counts(i));
            cells.push(errors_by_class(doc, &grid, i));
            cells.into_iter().map(|c| esc(&c)).collect()
        })
        .collect();
    let head = head(&watched);
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    format!(
        "<details><summary>The timeline as a table ({} rows{})</summary>{}</details>",
        rows.len(),
        if grid.width > 1 {
            format!(
                ", {} s each: rates are means, levels are peaks, counts are sums",
                grid.width
            )
        } else {
            String::new()
        },
        html_table("num", &head_refs, &rows)
    )
}

/// The run's columns per span: throughput as a mean rate and a peak,
/// levels (pulls, connections, fds) as peaks, counts as sums.
struct RunColumns {
    sampled: Vec<bool>,
    throughput_mean: Vec<Option<f64>>,
    throughput_peak: Vec<Option<f64>>,
    active: Vec<Option<f64>>,
    connections: Vec<Option<f64>>,
    fds: Vec<Option<f64>>,
    harness_cpu: Vec<Option<f64>>,
    harness_wait: Vec<Option<f64>>,
    timer_lag: Vec<Option<f64>>,
    completed: Vec<f64>,
    failed: Vec<f64>,
    retries: Vec<f64>,
    errors: Vec<f64>,
}

impl RunColumns {
    fn new(grid: &Grid, rows: &[TimelineRow]) -> RunColumns {
        let agg = |f: fn(&TimelineRow) -> f64| Agg::new(grid, rows.iter().map(|r| (r.t, f(r))));
        let bytes = agg(|r| r.bytes as f64);
        RunColumns {
            sampled: bytes.n.iter().map(|n| *n > 0).collect(),
            throughput_mean: bytes.rate(grid),
            throughput_peak: bytes.max_opt(),
            active: agg(|r| r.active_pulls as f64).max_opt(),
            connections: agg(|r| r.connections as f64).max_opt(),
            fds: agg(|r| r.fds as f64).max_opt(),
            // Seconds without a figure stay out, so a span without any is empty, not 0.
            harness_cpu: Agg::new(
                grid,
                rows.iter()
                    .filter_map(|r| Some((r.t, r.harness_cpu_percent?))),
            )
            .max_opt(),
            harness_wait: Agg::new(
                grid,
                rows.iter()
                    .filter_map(|r| Some((r.t, r.harness_cpu_wait_percent?))),
            )
            .max_opt(),
            timer_lag: Agg::new(
                grid,
                rows.iter().filter_map(|r| Some((r.t, r.timer_lag_ms?))),
            )
            .max_opt(),
            completed: agg(|r| r.pulls_completed as f64).sum,
            failed: agg(|r| r.pulls_failed as f64).sum,
            retries: agg(|r| r.retries as f64).sum,
            errors: agg(|r| r.errors as f64).sum,
        }
    }

    /// Throughput mean and peak, active pulls, connections, fds, the
    /// harness's CPU used and waited for, and its timer lag.
    fn levels(&self, i: usize) -> [String; 8] {
        [
            opt(self.throughput_mean[i], human::rate),
            opt(self.throughput_peak[i], human::rate),
            opt(self.active[i], human::num),
            opt(self.connections[i], human::num),
            opt(self.fds[i], human::num),
            opt(self.harness_cpu[i], |p| format!("{p:.0}%")),
            opt(self.harness_wait[i], |p| format!("{p:.0}%")),
            opt(self.timer_lag[i], human::millis),
        ]
    }

    /// Pulls completed and failed, retries, errors.
    fn counts(&self, i: usize) -> [String; 4] {
        [
            human::num(self.completed[i]),
            human::num(self.failed[i]),
            human::num(self.retries[i]),
            human::num(self.errors[i]),
        ]
    }
}

/// A value, or an empty cell when the span has no sample.
fn opt(v: Option<f64>, format: fn(f64) -> String) -> String {
    v.map(format).unwrap_or_default()
}

/// Watched processes with fds, the busiest relative to their limit first, at most
/// [`WATCHED_COLUMNS`].
fn busiest_watched(doc: &ResultDoc) -> Vec<&WatchedSummary> {
    let mut watched: Vec<&WatchedSummary> = doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness && t.fd_peak.is_some())
        .collect();
    let share = |t: &WatchedSummary| {
        t.fd_peak.unwrap_or(0) as f64 / t.fd_limit.unwrap_or(u64::MAX).max(1) as f64
    };
    watched.sort_by(|a, b| share(b).total_cmp(&share(a)));
    watched.truncate(WATCHED_COLUMNS);
    watched
}

fn head(watched: &[&WatchedSummary]) -> Vec<String> {
    let run = [
        "t",
        "throughput mean",
        "throughput peak",
        "active pulls",
        "connections",
        "fds",
        "harness CPU",
        "CPU wait",
        "timer lag",
    ];
    let counts = [
        "completed",
        "failed",
        "retries",
        "errors",
        "errors by class",
    ];
    run.iter()
        .map(|s| s.to_string())
        .chain(watched.iter().map(|t| format!("{} fds", t.label())))
        .chain(counts.iter().map(|s| s.to_string()))
        .collect()
}

/// `12 s` for a one-second span, `1:00–1:29` for a wider one.
fn span_label(grid: &Grid, i: usize) -> String {
    let from = i as u64 * grid.width;
    let to = ((i as u64 + 1) * grid.width - 1).min(grid.span.ceil() as u64);
    if grid.width == 1 {
        format!("{from} s")
    } else {
        format!(
            "{}\u{2013}{}",
            human::secs(from as f64),
            human::secs(to as f64)
        )
    }
}

/// `connection_reset 3, http_503 1`: the span's errors by class, by name.
fn errors_by_class(doc: &ResultDoc, grid: &Grid, i: usize) -> String {
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in doc.timeline.iter().filter(|r| grid.bucket(r.t) == i) {
        for (k, v) in &r.errors_by_class {
            *classes.entry(k).or_default() += v;
        }
    }
    let classes: Vec<String> = classes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    classes.join(", ")
}
