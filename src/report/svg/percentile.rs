//! Latency by percentile, as HdrHistogram plots it: milliseconds against
//! the percentile on a log axis from 0% to 99.999%, so the tail gets as
//! much room as the body.

use super::{axes, draw_legend, legend_rows, y_grid, LegendEntry, LEGEND_ROW};
use crate::report::axis::{self, Unit};
use crate::report::html::esc;
use std::fmt::Write;

/// View box and margins of a percentile chart.
const W: f64 = 540.0;
const H: f64 = 250.0;
const L: f64 = 64.0;
const R: f64 = 14.0;
const B: f64 = 34.0;
const TOP_MARGIN: f64 = 8.0 + LEGEND_ROW;
const PLOT_W: f64 = W - L - R;
const PLOT_H: f64 = H - TOP_MARGIN - B;
/// Decades of the quantile axis: 0% to 99.999%.
const DECADES: f64 = 5.0;

/// One percentile curve: (quantile 0..=1, milliseconds) points.
#[derive(Debug, Clone)]
pub struct Curve {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// The x position of a quantile on the HdrHistogram axis: 0 at 0%, 1 at 90%,
/// 2 at 99%... 5 at 99.999%.
pub fn quantile_x(q: f64) -> f64 {
    let q = q.clamp(0.0, 0.999_99);
    (1.0 / (1.0 - q)).log10()
}

/// Latency by percentile, every curve on one chart.
pub fn percentile_chart(title: &str, curves: &[Curve]) -> String {
    let max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (top, yticks) = axis::value_ticks(max, Unit::Millis);
    let y = |v: f64| TOP_MARGIN + PLOT_H - (v / top).clamp(0.0, 1.0) * PLOT_H;
    let mut s = String::with_capacity(8 << 10);
    let _ = write!(
        s,
        "<svg class=\"pc\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    y_grid(&mut s, &yticks, L, PLOT_W, y);
    quantile_ticks(&mut s);
    for c in curves {
        draw_curve(&mut s, c, &y);
    }
    axes(&mut s, L, TOP_MARGIN, PLOT_W, PLOT_H);
    let legend: Vec<LegendEntry> = curves
        .iter()
        .map(|c| (c.name.clone(), c.color, c.dashed))
        .collect();
    let rows = legend_rows(&legend);
    // One legend row: the chart has room for no more.
    draw_legend(&mut s, &rows[..1.min(rows.len())], L, 6.0);
    s.push_str("</svg>");
    s
}

fn x(q: f64) -> f64 {
    L + quantile_x(q) / DECADES * PLOT_W
}

/// A grid line and label per decade, and the axis caption.
fn quantile_ticks(s: &mut String) {
    for (k, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let xx = L + k as f64 / DECADES * PLOT_W;
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP_MARGIN:.1}\" y2=\"{:.1}\"/>\
             <text class=\"ax\" x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP_MARGIN + PLOT_H,
            TOP_MARGIN + PLOT_H + 15.0
        );
    }
    let _ = write!(
        s,
        "<text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile (log scale)</text>",
        L + PLOT_W / 2.0,
        H - 3.0
    );
}

/// A curve as a path, or a dot when it has a single point.
fn draw_curve(s: &mut String, c: &Curve, y: &impl Fn(f64) -> f64) {
    if let [(q, v)] = c.points[..] {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
            x(q),
            y(v),
            c.color
        );
        return;
    }
    let mut d = String::new();
    for (i, (q, v)) in c.points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            x(*q),
            y(*v)
        );
    }
    if !d.is_empty() {
        let _ = write!(
            s,
            "<path class=\"ln{}\" d=\"{d}\" stroke=\"{}\"/>",
            if c.dashed { " da" } else { "" },
            c.color
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_axis() {
        assert_eq!(quantile_x(0.0), 0.0);
        assert!((quantile_x(0.9) - 1.0).abs() < 1e-9);
        assert!((quantile_x(0.999) - 3.0).abs() < 1e-9);
        assert!((quantile_x(1.0) - 5.0).abs() < 1e-6);
    }
}
