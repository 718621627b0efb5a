//! The list of timeline charts as the section fills it: each chart is
//! rendered on the shared time grid, gets the run's event markers, and adds
//! its series to the hover data in the same order (a chart's id is its index
//! there, which is how the inline script finds a chart's values).

use super::hover::HoverSeries;
use crate::report::axis::Unit;
use crate::report::decimate::{Agg, Grid};
use crate::report::html::esc;
use crate::report::svg::{Line, Marker, TimeChart};
use crate::result::model::ResultDoc;
use std::fmt::Write;

/// Longest run of missing buckets a line is drawn across.
const MAX_GAP: usize = 3;

/// Fills runs of at most `max_gap` missing values between two known ones
/// by linear interpolation; longer gaps stay gaps.
pub fn bridge(values: &[Option<f64>], max_gap: usize) -> Vec<Option<f64>> {
    let mut out = values.to_vec();
    let mut last: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            if let Some((j, prev)) = last {
                let gap = i - j - 1;
                if gap > 0 && gap <= max_gap {
                    for k in 1..=gap {
                        out[j + k] = Some(prev + (v - prev) * k as f64 / (gap + 1) as f64);
                    }
                }
            }
            last = Some((i, *v));
        }
    }
    out
}

/// The section's charts so far: their HTML and hover data.
pub(super) struct Charts<'a> {
    pub grid: Grid,
    pub doc: &'a ResultDoc,
    pub html: String,
    pub hover: Vec<Vec<HoverSeries>>,
    /// Exits and zombies of watched processes, drawn on every chart.
    markers: Vec<Marker>,
}

impl<'a> Charts<'a> {
    pub fn new(grid: Grid, doc: &'a ResultDoc, markers: Vec<Marker>) -> Charts<'a> {
        Charts {
            grid,
            doc,
            html: String::new(),
            hover: Vec::new(),
            markers,
        }
    }

    /// A new, empty chart with the next id.
    pub fn chart(&self, title: &str, unit: Unit) -> TimeChart {
        TimeChart::new(self.hover.len(), title, unit)
    }

    /// A line of bucket means with its min-max band (when buckets are wider than 1 s).
    /// Short gaps (a second the recorder's row or a scrape missed) are
    /// bridged in the drawing; the hover box and the table still show them
    /// as missing.
    pub fn line(&self, name: &str, color: &'static str, agg: &Agg) -> Line {
        Line {
            name: name.to_string(),
            color,
            values: bridge(&agg.mean(), MAX_GAP),
            band: (self.grid.width > 1).then(|| {
                (
                    bridge(&agg.min_opt(), MAX_GAP),
                    bridge(&agg.max_opt(), MAX_GAP),
                )
            }),
            dashed: false,
            fill: false,
        }
    }

    /// Adds a chart of lines, `aggs` being the data of its lines in order:
    /// the hover box shows each line's mean, and its max when buckets are wide.
    pub fn push_lines(&mut self, chart: TimeChart, aggs: &[Agg], note: &str) {
        let hover = chart
            .lines
            .iter()
            .zip(aggs)
            .map(|(l, a)| HoverSeries {
                name: l.name.clone(),
                color: l.color,
                unit: chart.unit,
                values: a.mean(),
                max: (self.grid.width > 1).then(|| a.max_opt()),
            })
            .collect();
        self.push(chart, note, hover);
    }

    /// Adds a chart of stacked bars; the hover box shows each layer's value.
    pub fn push_stacks(&mut self, chart: TimeChart, note: &str) {
        let hover = chart
            .stacks
            .iter()
            .map(|s| HoverSeries {
                name: s.name.clone(),
                color: s.color,
                unit: chart.unit,
                values: s.values.clone(),
                max: None,
            })
            .collect();
        self.push(chart, note, hover);
    }

    /// A chart's place when there is nothing to draw: its title and why.
    pub fn push_empty(&mut self, title: &str, note: &str) {
        let _ = write!(
            self.html,
            "<div class=\"chart\"><h3>{}</h3><p class=\"note\">{}</p></div>",
            esc(title),
            esc(note)
        );
    }

    fn push(&mut self, mut chart: TimeChart, note: &str, hover: Vec<HoverSeries>) {
        chart.markers = self.markers.clone();
        let _ = write!(
            self.html,
            "<div class=\"chart\"><h3>{}</h3>{}{}</div>",
            esc(&chart.title),
            if note.is_empty() {
                String::new()
            } else {
                format!("<p class=\"note\">{}</p>", esc(note))
            },
            chart.render(&self.grid)
        );
        self.hover.push(hover);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_gaps_are_bridged_long_ones_kept() {
        let v = [
            Some(1.0),
            None,
            Some(3.0),
            None,
            None,
            None,
            None,
            Some(0.0),
            None,
        ];
        let b = bridge(&v, 3);
        assert_eq!(b[1], Some(2.0));
        assert_eq!(&b[3..7], &[None, None, None, None]);
        assert_eq!(b[8], None);
    }
}
