//! Inline SVG charts, written by hand: timeline charts that share one time
//! axis (`time_chart`: lines with min-max bands, stacked bars, dashed
//! limits, event markers) and HdrHistogram-style percentile curves on a log
//! axis (`percentile`). This module holds what both draw alike: legends,
//! grid lines, axes and paths. Styling is by CSS class (see `html::CSS`) to
//! keep the markup small.

mod percentile;
mod time_chart;

pub use percentile::{percentile_chart, quantile_x, Curve};
pub use time_chart::{Limit, Line, Marker, Stack, TimeChart, Values};

use super::html::esc;
use std::fmt::Write;

/// Width of every chart's view box; charts scale to the page width.
pub const WIDTH: f64 = 1100.0;
/// Left and right margins of timeline charts: identical for all of them so
/// their time axes line up when stacked.
const LEFT: f64 = 78.0;
const RIGHT: f64 = 18.0;
const LEGEND_ROW: f64 = 17.0;
/// Approximate width of one legend character at 11 px.
const CHAR_W: f64 = 6.4;

/// A legend entry: text, colour, dashed.
type LegendEntry = (String, &'static str, bool);
/// A legend entry placed in its row: x offset, text, colour (empty for a
/// plain note), dashed.
type LegendRow = Vec<(f64, String, &'static str, bool)>;

/// Legend entries laid out left to right, wrapped into rows that fit the chart.
fn legend_rows(entries: &[LegendEntry]) -> Vec<LegendRow> {
    let mut rows = vec![Vec::new()];
    let mut x = 0.0;
    let max = WIDTH - LEFT - RIGHT;
    for (text, color, dashed) in entries {
        let w = 22.0 + text.chars().count() as f64 * CHAR_W + 14.0;
        if x + w > max && x > 0.0 {
            rows.push(Vec::new());
            x = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push((x, text.clone(), *color, *dashed));
        }
        x += w;
    }
    rows
}

fn draw_legend(s: &mut String, rows: &[LegendRow], left: f64, top: f64) {
    for (r, row) in rows.iter().enumerate() {
        let y = top + r as f64 * LEGEND_ROW + 6.0;
        for (x, text, color, dashed) in row {
            if color.is_empty() {
                let _ = write!(
                    s,
                    "<text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    left + x + 21.0,
                    y + 4.0,
                    esc(text)
                );
                continue;
            }
            let _ = write!(
                s,
                "<line class=\"sw{}\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\"/>\
                 <text class=\"lg\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                if *dashed { " da" } else { "" },
                left + x,
                left + x + 16.0,
                left + x + 21.0,
                y + 4.0,
                esc(text)
            );
        }
    }
}

/// Horizontal grid lines across the plot, each with its value label left of the axis.
fn y_grid(s: &mut String, ticks: &[(f64, String)], left: f64, plot_w: f64, y: impl Fn(f64) -> f64) {
    for (v, label) in ticks {
        let yy = y(*v);
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            yy + 4.0,
            esc(label)
        );
    }
}

/// The value axis and the base line of a plot whose top-left corner is
/// (`left`, `top`).
fn axes(s: &mut String, left: f64, top: f64, plot_w: f64, plot_h: f64) {
    let _ = write!(
        s,
        "<line class=\"axl\" x1=\"{left}\" x2=\"{left}\" y1=\"{top:.1}\" y2=\"{:.1}\"/>\
         <line class=\"axl\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
}

/// Runs of buckets where both bounds are known: (bucket, low, high).
fn runs(lo: &[Option<f64>], hi: &[Option<f64>]) -> Vec<Vec<(usize, f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for i in 0..lo.len().min(hi.len()) {
        match (lo[i], hi[i]) {
            (Some(l), Some(h)) => cur.push((i, l, h)),
            _ => {
                if cur.len() > 1 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// An SVG path through the known values, broken at gaps.
fn line_path(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: &impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_break_lines() {
        let d = line_path(
            &[Some(1.0), None, Some(2.0), Some(3.0)],
            |i| i as f64,
            &|v| v,
        );
        assert_eq!(d, "M0.0,1.0M2.0,2.0L3.0,3.0");
        let r = runs(
            &[Some(0.0), Some(1.0), None, Some(1.0)],
            &[Some(2.0), Some(2.0), None, Some(2.0)],
        );
        assert_eq!(r.len(), 1);
    }
}
