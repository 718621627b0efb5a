//! The "over time" section: stacked charts on one time axis (the run's own
//! charts: throughput; pulls and connections; fds of the harness and every
//! watched process against their limits; errors by class; retries; then,
//! when processes were watched, sockets by TCP state, memory, CPU and
//! endpoint values), the data behind the hover box, and the same numbers as
//! a table for readers without scripts or on paper.
//!
//! `charts` collects the charts and their hover data in order,
//! `run_charts` and `watched_charts` draw them, `hover` writes the hover
//! data, `table` the table.

mod charts;
mod hover;
mod run_charts;
mod table;
mod watched_charts;

use super::decimate::Grid;
use super::html::script_json;
use crate::result::model::ResultDoc;
use charts::Charts;
use std::fmt::Write;

/// Seconds the time axis spans: the run, or the last sample if later.
pub fn span(doc: &ResultDoc) -> f64 {
    let last_row = doc.timeline.iter().map(|r| r.t).max().unwrap_or(0);
    let last_watched = doc
        .watched
        .iter()
        .flat_map(|t| t.series.last().map(|p| p.t))
        .max()
        .unwrap_or(0);
    (doc.duration_ms as f64 / 1000.0)
        .max(last_row as f64)
        .max(last_watched as f64)
        .max(1.0)
}

/// The section's HTML, hover data included.
pub fn section(doc: &ResultDoc) -> String {
    let grid = Grid::new(span(doc));
    let mut charts = Charts::new(grid, doc, watched_charts::markers(&doc.watched));
    run_charts::add(&mut charts);
    watched_charts::add(&mut charts);

    let mut html = charts.html;
    html.push_str(&table::table(doc));
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"tl-data\">{}</script>",
        script_json(&hover::json(&grid, &charts.hover))
    );
    html
}
