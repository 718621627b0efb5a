//! Inline SVG charts, written by hand: timeline charts that share one time
//! axis (lines with min-max bands, stacked bars, dashed limits, event
//! markers) and HdrHistogram-style percentile curves on a log axis.
//! Styling is by CSS class (see `html::CSS`) to keep the markup small.

use super::decimate::Grid;
use super::fmt::{self, Unit};
use super::html::esc;
use std::fmt::Write;

/// Width of every chart's view box; charts scale to the page width.
pub const WIDTH: f64 = 1100.0;
/// Left and right margins of timeline charts: identical for all of them so
/// their time axes line up when stacked.
const LEFT: f64 = 78.0;
const RIGHT: f64 = 18.0;
const BOTTOM: f64 = 22.0;
const LEGEND_ROW: f64 = 17.0;
/// Approximate width of one legend character at 11 px.
const CHAR_W: f64 = 6.4;

/// Values per bucket; `None` where a bucket has no sample.
pub type Values = Vec<Option<f64>>;

/// A line, optionally with a min-max band behind it.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<Option<f64>>,
    /// (min, max) per bucket, drawn as a light band when buckets span several seconds.
    pub band: Option<(Values, Values)>,
    pub dashed: bool,
    /// Shade the area under the line (when it has no band).
    pub fill: bool,
}

/// One layer of stacked bars.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<Option<f64>>,
}

/// A horizontal dashed line (an fd limit).
#[derive(Debug, Clone)]
pub struct Limit {
    pub name: String,
    pub color: &'static str,
    pub value: f64,
}

/// A vertical line at a moment (a process exit).
#[derive(Debug, Clone)]
pub struct Marker {
    pub t: f64,
    pub label: String,
}

/// A chart on the shared time axis.
#[derive(Debug, Clone)]
pub struct TimeChart {
    /// Index in the page's hover data.
    pub id: usize,
    pub title: String,
    pub unit: Unit,
    pub height: f64,
    pub lines: Vec<Line>,
    pub stacks: Vec<Stack>,
    pub limits: Vec<Limit>,
    pub markers: Vec<Marker>,
    /// The y axis reaches at least this high (so a flat zero line is not mid-chart).
    pub min_top: f64,
}

impl TimeChart {
    pub fn new(id: usize, title: &str, unit: Unit) -> TimeChart {
        TimeChart {
            id,
            title: title.to_string(),
            unit,
            height: 200.0,
            lines: Vec::new(),
            stacks: Vec::new(),
            limits: Vec::new(),
            markers: Vec::new(),
            min_top: 0.0,
        }
    }

    /// Highest value drawn by lines, bands and stacked bars.
    fn data_peak(&self) -> f64 {
        let mut peak: f64 = 0.0;
        for l in &self.lines {
            let band_max = l.band.as_ref().map(|b| &b.1);
            for v in l
                .values
                .iter()
                .chain(band_max.into_iter().flatten())
                .flatten()
            {
                peak = peak.max(*v);
            }
        }
        let buckets = self
            .stacks
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0);
        for i in 0..buckets {
            let sum: f64 = self
                .stacks
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten())
                .sum();
            peak = peak.max(sum);
        }
        peak
    }

    /// Limits drawn to scale: those within 3x of the data (a limit 100x
    /// above the data would flatten it to a line at the bottom).
    fn limit_in_scale(&self, l: &Limit, peak: f64) -> bool {
        l.value <= (peak * 3.0).max(self.min_top)
    }

    pub fn render(&self, grid: &Grid) -> String {
        let peak = self.data_peak();
        let mut top_value = peak.max(self.min_top);
        for l in &self.limits {
            if self.limit_in_scale(l, peak) {
                top_value = top_value.max(l.value * 1.05);
            }
        }
        let (top, yticks) = fmt::value_ticks(top_value, self.unit);

        // Legend entries: every line and stack, then the limits.
        let mut legend: Vec<(String, &'static str, bool)> = Vec::new();
        for l in &self.lines {
            legend.push((l.name.clone(), l.color, l.dashed));
        }
        for s in self.stacks.iter().rev() {
            legend.push((s.name.clone(), s.color, false));
        }
        let mut above = Vec::new();
        for l in &self.limits {
            if self.limit_in_scale(l, peak) {
                legend.push((format!("{} {}", l.name, fmt::num(l.value)), l.color, true));
            } else {
                above.push(format!("{} {}", l.name, fmt::num(l.value)));
            }
        }
        let mut rows = legend_rows(&legend);
        if !above.is_empty() {
            // Far above the data: named, not drawn, so the data keeps its height.
            rows.push(vec![(
                -22.0,
                format!("Above the scale: {}", above.join(" \u{b7} ")),
                "",
                false,
            )]);
        }
        let top_margin = 8.0 + rows.len() as f64 * LEGEND_ROW;
        let h = self.height + rows.len().saturating_sub(1) as f64 * LEGEND_ROW;
        let plot_h = h - top_margin - BOTTOM;
        let plot_w = WIDTH - LEFT - RIGHT;
        let x = |t: f64| LEFT + (t / grid.span).clamp(0.0, 1.0) * plot_w;
        let y = |v: f64| top_margin + plot_h - (v / top).clamp(0.0, 1.02) * plot_h;

        let mut s = String::with_capacity(16 << 10);
        let _ = write!(
            s,
            "<svg class=\"tl\" data-chart=\"{}\" viewBox=\"0 0 {WIDTH} {h}\" role=\"img\" aria-label=\"{}\" \
             data-l=\"{LEFT}\" data-w=\"{plot_w}\" data-t=\"{top_margin}\" data-h=\"{plot_h}\">",
            self.id,
            esc(&self.title)
        );
        // Grid lines and value labels.
        y_grid(&mut s, &yticks, LEFT, plot_w, y);
        for (t, label) in fmt::time_ticks(grid.span) {
            let xx = x(t);
            let _ = write!(
                s,
                "<line class=\"tk\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"ax\" x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                top_margin + plot_h,
                top_margin + plot_h + 4.0,
                top_margin + plot_h + 16.0,
                esc(&label)
            );
        }

        // Stacked bars, one column per bucket.
        if !self.stacks.is_empty() {
            let bw = plot_w / grid.buckets as f64;
            for i in 0..grid.buckets {
                let mut base = 0.0;
                let x0 = LEFT + i as f64 * bw;
                for st in &self.stacks {
                    let Some(v) = st.values.get(i).copied().flatten() else {
                        continue;
                    };
                    if v <= 0.0 {
                        continue;
                    }
                    let (y0, y1) = (y(base), y(base + v));
                    base += v;
                    let _ = write!(
                        s,
                        "<rect x=\"{x0:.1}\" y=\"{y1:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"/>",
                        (bw - if bw > 3.0 { 1.0 } else { 0.0 }).max(0.6),
                        (y0 - y1).max(0.5),
                        st.color
                    );
                }
            }
        }

        // Bands, then lines on top.
        for l in &self.lines {
            if let Some((lo, hi)) = &l.band {
                for run in runs(lo, hi) {
                    let mut d = String::new();
                    for (k, (i, _, h)) in run.iter().enumerate() {
                        let _ = write!(
                            d,
                            "{}{:.1},{:.1}",
                            if k == 0 { "M" } else { "L" },
                            x(grid.centre(*i)),
                            y(*h)
                        );
                    }
                    for (i, l, _) in run.iter().rev() {
                        let _ = write!(d, "L{:.1},{:.1}", x(grid.centre(*i)), y(*l));
                    }
                    let _ = write!(
                        s,
                        "<path d=\"{d}Z\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                        l.color
                    );
                }
            }
        }
        for l in self.lines.iter().filter(|l| l.fill && l.band.is_none()) {
            for run in runs(&vec![Some(0.0); l.values.len()], &l.values) {
                let mut d = String::new();
                for (k, (i, _, h)) in run.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if k == 0 { "M" } else { "L" },
                        x(grid.centre(*i)),
                        y(*h)
                    );
                }
                if let (Some(first), Some(last)) = (run.first(), run.last()) {
                    let _ = write!(
                        d,
                        "L{:.1},{:.1}L{:.1},{:.1}Z",
                        x(grid.centre(last.0)),
                        y(0.0),
                        x(grid.centre(first.0)),
                        y(0.0)
                    );
                }
                let _ = write!(
                    s,
                    "<path d=\"{d}\" fill=\"{}\" fill-opacity=\"0.12\" stroke=\"none\"/>",
                    l.color
                );
            }
        }
        for l in &self.lines {
            let d = line_path(&l.values, |i| x(grid.centre(i)), &y);
            if d.is_empty() {
                continue;
            }
            let _ = write!(
                s,
                "<path class=\"ln{}\" d=\"{d}\" stroke=\"{}\"/>",
                if l.dashed { " da" } else { "" },
                l.color
            );
            // A lone point would draw nothing as a path.
            if l.values.iter().flatten().count() == 1 {
                if let Some((i, v)) = l
                    .values
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| Some((i, (*v)?)))
                {
                    let _ = write!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                        x(grid.centre(i)),
                        y(v),
                        l.color
                    );
                }
            }
        }
        for l in &self.limits {
            if self.limit_in_scale(l, peak) {
                let yy = y(l.value);
                let _ = write!(
                    s,
                    "<line class=\"lim\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{}\"/>",
                    LEFT + plot_w,
                    l.color
                );
            }
        }
        for m in &self.markers {
            let xx = x(m.t);
            let _ = write!(
                s,
                "<line class=\"mk\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top_margin:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"mkt\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                top_margin + plot_h,
                xx + 3.0,
                top_margin + 11.0,
                esc(&m.label)
            );
        }
        // Axes, legend, and the hover cursor (hidden until the script moves it).
        let _ = write!(
            s,
            "<line class=\"axl\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{top_margin:.1}\" y2=\"{:.1}\"/>\
             <line class=\"axl\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
            top_margin + plot_h,
            LEFT + plot_w,
            top_margin + plot_h,
            top_margin + plot_h
        );
        draw_legend(&mut s, &rows, LEFT, 6.0);
        let _ = write!(
            s,
            "<line class=\"cur\" x1=\"0\" x2=\"0\" y1=\"{top_margin:.1}\" y2=\"{:.1}\"/></svg>",
            top_margin + plot_h
        );
        s
    }
}

/// Legend entries laid out left to right, wrapped into rows that fit the chart.
fn legend_rows(
    entries: &[(String, &'static str, bool)],
) -> Vec<Vec<(f64, String, &'static str, bool)>> {
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

fn draw_legend(
    s: &mut String,
    rows: &[Vec<(f64, String, &'static str, bool)>],
    left: f64,
    top: f64,
) {
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

/// Latency by percentile, as HdrHistogram plots it.
pub fn percentile_chart(title: &str, curves: &[Curve]) -> String {
    const W: f64 = 540.0;
    const H: f64 = 250.0;
    const L: f64 = 64.0;
    const R: f64 = 14.0;
    const B: f64 = 34.0;
    let legend: Vec<(String, &'static str, bool)> = curves
        .iter()
        .map(|c| (c.name.clone(), c.color, c.dashed))
        .collect();
    let top_margin = 8.0 + LEGEND_ROW;
    let plot_w = W - L - R;
    let plot_h = H - top_margin - B;
    let max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (top, yticks) = fmt::value_ticks(max, Unit::Millis);
    let x = |q: f64| L + quantile_x(q) / 5.0 * plot_w;
    let y = |v: f64| top_margin + plot_h - (v / top).clamp(0.0, 1.0) * plot_h;
    let mut s = String::with_capacity(8 << 10);
    let _ = write!(
        s,
        "<svg class=\"pc\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    y_grid(&mut s, &yticks, L, plot_w, y);
    for (k, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let xx = L + k as f64 / 5.0 * plot_w;
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top_margin:.1}\" y2=\"{:.1}\"/>\
             <text class=\"ax\" x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            top_margin + plot_h,
            top_margin + plot_h + 15.0
        );
    }
    let _ = write!(
        s,
        "<text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile (log scale)</text>",
        L + plot_w / 2.0,
        H - 3.0
    );
    for c in curves {
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
        if c.points.len() == 1 {
            let (q, v) = c.points[0];
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                x(q),
                y(v),
                c.color
            );
        } else if !d.is_empty() {
            let _ = write!(
                s,
                "<path class=\"ln{}\" d=\"{d}\" stroke=\"{}\"/>",
                if c.dashed { " da" } else { "" },
                c.color
            );
        }
    }
    let _ = write!(
        s,
        "<line class=\"axl\" x1=\"{L}\" x2=\"{L}\" y1=\"{top_margin:.1}\" y2=\"{:.1}\"/>\
         <line class=\"axl\" x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        top_margin + plot_h,
        L + plot_w,
        top_margin + plot_h,
        top_margin + plot_h
    );
    let rows = legend_rows(&legend);
    draw_legend(&mut s, &rows[..1.min(rows.len())], L, 6.0);
    s.push_str("</svg>");
    s
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

    #[test]
    fn limits_far_above_the_data_are_not_to_scale() {
        let grid = Grid::new(10.0);
        let mut c = TimeChart::new(0, "fds", Unit::Count);
        c.lines.push(Line {
            name: "harness".into(),
            color: "#000",
            values: vec![Some(200.0); grid.buckets],
            band: None,
            dashed: false,
            fill: false,
        });
        c.limits.push(Limit {
            name: "harness limit".into(),
            color: "#000",
            value: 20000.0,
        });
        c.limits.push(Limit {
            name: "nginx limit".into(),
            color: "#111",
            value: 512.0,
        });
        let svg = c.render(&grid);
        assert!(svg.contains("Above the scale: harness limit 20000<"));
        assert!(svg.contains("nginx limit 512<"));
        assert_eq!(svg.matches("class=\"lim\"").count(), 1);
    }
}
