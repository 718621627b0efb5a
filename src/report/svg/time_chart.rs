//! A chart on the shared time axis: lines with min-max bands or a shaded
//! area, stacked bars, dashed limits and event markers, with a legend that
//! wraps and a hidden cursor the hover script moves.

use super::{axes, draw_legend, legend_rows, line_path, runs, y_grid, LegendEntry, LegendRow};
use super::{LEFT, LEGEND_ROW, RIGHT, WIDTH};
use crate::human;
use crate::report::axis::{self, Unit};
use crate::report::decimate::Grid;
use crate::report::html::esc;
use std::fmt::Write;

const BOTTOM: f64 = 22.0;

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

/// Where things go on one chart: the plot area below the legend and the
/// scales from seconds and values to view-box coordinates.
struct Plot {
    /// Height of the whole chart, legend included.
    height: f64,
    top_margin: f64,
    plot_w: f64,
    plot_h: f64,
    /// The value at the top of the value axis.
    top: f64,
    /// Seconds the time axis spans.
    span: f64,
}

impl Plot {
    fn new(chart_height: f64, legend_rows: usize, top: f64, span: f64) -> Plot {
        let top_margin = 8.0 + legend_rows as f64 * LEGEND_ROW;
        let height = chart_height + legend_rows.saturating_sub(1) as f64 * LEGEND_ROW;
        Plot {
            height,
            top_margin,
            plot_w: WIDTH - LEFT - RIGHT,
            plot_h: height - top_margin - BOTTOM,
            top,
            span,
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.span).clamp(0.0, 1.0) * self.plot_w
    }

    fn y(&self, v: f64) -> f64 {
        self.top_margin + self.plot_h - (v / self.top).clamp(0.0, 1.02) * self.plot_h
    }

    /// The base line's y.
    fn bottom(&self) -> f64 {
        self.top_margin + self.plot_h
    }
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

    /// The chart as an `<svg>` element on `grid`.
    pub fn render(&self, grid: &Grid) -> String {
        let peak = self.data_peak();
        let (top, yticks) = axis::value_ticks(self.top_value(peak), self.unit);
        let legend = self.legend(peak);
        let plot = Plot::new(self.height, legend.len(), top, grid.span);

        let mut s = String::with_capacity(16 << 10);
        let _ = write!(
            s,
            "<svg class=\"tl\" data-chart=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"{}\" \
             data-l=\"{LEFT}\" data-w=\"{}\" data-t=\"{}\" data-h=\"{}\">",
            self.id,
            plot.height,
            esc(&self.title),
            plot.plot_w,
            plot.top_margin,
            plot.plot_h
        );
        y_grid(&mut s, &yticks, LEFT, plot.plot_w, |v| plot.y(v));
        time_axis(&mut s, &plot);
        self.draw_stacks(&mut s, &plot, grid);
        self.draw_bands(&mut s, &plot, grid);
        self.draw_areas(&mut s, &plot, grid);
        self.draw_lines(&mut s, &plot, grid);
        self.draw_limits(&mut s, &plot, peak);
        self.draw_markers(&mut s, &plot);
        axes(&mut s, LEFT, plot.top_margin, plot.plot_w, plot.plot_h);
        draw_legend(&mut s, &legend, LEFT, 6.0);
        // The hover cursor, hidden until the script moves it.
        let _ = write!(
            s,
            "<line class=\"cur\" x1=\"0\" x2=\"0\" y1=\"{:.1}\" y2=\"{:.1}\"/></svg>",
            plot.top_margin,
            plot.bottom()
        );
        s
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

    /// The least the value axis must reach: the data, `min_top`, and the
    /// limits drawn to scale with a little room above them.
    fn top_value(&self, peak: f64) -> f64 {
        let mut top_value = peak.max(self.min_top);
        for l in &self.limits {
            if self.limit_in_scale(l, peak) {
                top_value = top_value.max(l.value * 1.05);
            }
        }
        top_value
    }

    /// Limits drawn to scale: those within 3x of the data (a limit 100x
    /// above the data would flatten it to a line at the bottom).
    fn limit_in_scale(&self, l: &Limit, peak: f64) -> bool {
        l.value <= (peak * 3.0).max(self.min_top)
    }

    /// Legend rows: every line and stack, then the limits; limits far above
    /// the data are named on a row of their own instead of drawn.
    fn legend(&self, peak: f64) -> Vec<LegendRow> {
        let mut entries: Vec<LegendEntry> = Vec::new();
        for l in &self.lines {
            entries.push((l.name.clone(), l.color, l.dashed));
        }
        for s in self.stacks.iter().rev() {
            entries.push((s.name.clone(), s.color, false));
        }
        let mut above = Vec::new();
        for l in &self.limits {
            let text = format!("{} {}", l.name, human::num(l.value));
            if self.limit_in_scale(l, peak) {
                entries.push((text, l.color, true));
            } else {
                above.push(text);
            }
        }
        let mut rows = legend_rows(&entries);
        if !above.is_empty() {
            // Far above the data: named, not drawn, so the data keeps its height.
            rows.push(vec![(
                -22.0,
                format!("Above the scale: {}", above.join(" \u{b7} ")),
                "",
                false,
            )]);
        }
        rows
    }

    /// Stacked bars, one column per bucket.
    fn draw_stacks(&self, s: &mut String, plot: &Plot, grid: &Grid) {
        if self.stacks.is_empty() {
            return;
        }
        let bw = plot.plot_w / grid.buckets as f64;
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
                let (y0, y1) = (plot.y(base), plot.y(base + v));
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

    /// Min-max bands behind the lines that have them.
    fn draw_bands(&self, s: &mut String, plot: &Plot, grid: &Grid) {
        for l in &self.lines {
            let Some((lo, hi)) = &l.band else {
                continue;
            };
            for run in runs(lo, hi) {
                let mut d = upper_edge(&run, plot, grid);
                for (i, l, _) in run.iter().rev() {
                    let _ = write!(d, "L{:.1},{:.1}", plot.x(grid.centre(*i)), plot.y(*l));
                }
                let _ = write!(
                    s,
                    "<path d=\"{d}Z\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                    l.color
                );
            }
        }
    }

    /// The shaded area under lines that ask for it (and have no band).
    fn draw_areas(&self, s: &mut String, plot: &Plot, grid: &Grid) {
        for l in self.lines.iter().filter(|l| l.fill && l.band.is_none()) {
            for run in runs(&vec![Some(0.0); l.values.len()], &l.values) {
                let mut d = upper_edge(&run, plot, grid);
                if let (Some(first), Some(last)) = (run.first(), run.last()) {
                    let _ = write!(
                        d,
                        "L{:.1},{:.1}L{:.1},{:.1}Z",
                        plot.x(grid.centre(last.0)),
                        plot.y(0.0),
                        plot.x(grid.centre(first.0)),
                        plot.y(0.0)
                    );
                }
                let _ = write!(
                    s,
                    "<path d=\"{d}\" fill=\"{}\" fill-opacity=\"0.12\" stroke=\"none\"/>",
                    l.color
                );
            }
        }
    }

    /// The lines, over bands and areas; a line with one known point is a dot.
    fn draw_lines(&self, s: &mut String, plot: &Plot, grid: &Grid) {
        for l in &self.lines {
            let d = line_path(&l.values, |i| plot.x(grid.centre(i)), &|v| plot.y(v));
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
                        plot.x(grid.centre(i)),
                        plot.y(v),
                        l.color
                    );
                }
            }
        }
    }

    /// Dashed horizontal lines for the limits drawn to scale.
    fn draw_limits(&self, s: &mut String, plot: &Plot, peak: f64) {
        for l in self.limits.iter().filter(|l| self.limit_in_scale(l, peak)) {
            let yy = plot.y(l.value);
            let _ = write!(
                s,
                "<line class=\"lim\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{}\"/>",
                LEFT + plot.plot_w,
                l.color
            );
        }
    }

    /// Vertical lines with their labels at the moments of events.
    fn draw_markers(&self, s: &mut String, plot: &Plot) {
        for m in &self.markers {
            let xx = plot.x(m.t);
            let _ = write!(
                s,
                "<line class=\"mk\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"mkt\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                plot.top_margin,
                plot.bottom(),
                xx + 3.0,
                plot.top_margin + 11.0,
                esc(&m.label)
            );
        }
    }
}

/// Ticks and labels of the time axis below the plot.
fn time_axis(s: &mut String, plot: &Plot) {
    for (t, label) in axis::time_ticks(plot.span) {
        let xx = plot.x(t);
        let _ = write!(
            s,
            "<line class=\"tk\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"ax\" x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            plot.bottom(),
            plot.bottom() + 4.0,
            plot.bottom() + 16.0,
            esc(&label)
        );
    }
}

/// A path along the high side of a run, left to right, starting with a move.
fn upper_edge(run: &[(usize, f64, f64)], plot: &Plot, grid: &Grid) -> String {
    let mut d = String::new();
    for (k, (i, _, h)) in run.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if k == 0 { "M" } else { "L" },
            plot.x(grid.centre(*i)),
            plot.y(*h)
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

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
