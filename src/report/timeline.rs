//! The "over time" section: stacked charts on one time axis (throughput;
//! pulls and connections; fds of the harness and every watched target
//! against their limits; errors by class; retries; then, when targets were
//! watched, sockets by TCP state, memory, CPU and endpoint values), the
//! data behind the hover box, and the same numbers as a table for readers
//! without scripts or on paper.

use super::decimate::{Agg, Grid};
use super::fmt::{self, Unit};
use super::html::{esc, script_json, table};
use super::svg::{Limit, Line, Marker, Stack, TimeChart};
use crate::result::model::{ResultDoc, WatchedKind, WatchedSummary};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Series colours: distinct, readable on white and in greyscale print.
pub const PALETTE: [&str; 10] = [
    "#2563eb", "#ea580c", "#059669", "#7c3aed", "#0891b2", "#db2777", "#ca8a04", "#4b5563",
    "#92400e", "#65a30d",
];

/// A fixed colour per fault class, so the same class looks the same in every report.
pub fn class_color(class: &str) -> &'static str {
    match class {
        "connection_reset" => "#dc2626",
        "unexpected_eof" => "#f97316",
        "read_timeout" => "#7c3aed",
        "connect_refused" => "#0f766e",
        "connect_timeout" => "#06b6d4",
        "dns" => "#65a30d",
        "tls" => "#4d7c0f",
        "range_not_honoured" => "#eab308",
        "digest_mismatch" => "#db2777",
        "client_fd_exhausted" => "#111827",
        "ephemeral_ports_exhausted" => "#6b7280",
        "other" => "#9ca3af",
        c if c.starts_with("http_5") => "#991b1b",
        c if c.starts_with("http_4") => "#a16207",
        _ => "#78716c",
    }
}

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

/// Seconds the time axis spans: the run, or the last sample if later.
pub fn span(doc: &ResultDoc) -> f64 {
    let last_row = doc.timeline.iter().map(|r| r.t).max().unwrap_or(0);
    let last_target = doc
        .watched
        .iter()
        .flat_map(|t| t.series.last().map(|p| p.t))
        .max()
        .unwrap_or(0);
    (doc.duration_ms as f64 / 1000.0)
        .max(last_row as f64)
        .max(last_target as f64)
        .max(1.0)
}

/// One series as the hover script reads it.
struct HoverSeries {
    name: String,
    color: &'static str,
    unit: Unit,
    values: Vec<Option<f64>>,
    max: Option<Vec<Option<f64>>>,
}

/// Builds charts and their hover data.
struct Builder<'a> {
    grid: Grid,
    doc: &'a ResultDoc,
    html: String,
    hover: Vec<Vec<HoverSeries>>,
    markers: Vec<Marker>,
}

impl<'a> Builder<'a> {
    fn next_id(&self) -> usize {
        self.hover.len()
    }

    /// A line of bucket means with its min-max band (when buckets are wider than 1 s).
    /// Short gaps (a second the recorder's row or a scrape missed) are
    /// bridged in the drawing; the hover box and the table still show them
    /// as missing.
    fn line(&self, name: &str, color: &'static str, agg: &Agg, dashed: bool) -> Line {
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
            dashed,
            fill: false,
        }
    }

    fn push(&mut self, chart: TimeChart, note: &str, hover: Vec<HoverSeries>) {
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

    /// Hover entries for the lines of a chart: mean, and max when buckets are wide.
    fn hover_lines(&self, chart: &TimeChart, aggs: &[&Agg]) -> Vec<HoverSeries> {
        chart
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
            .collect()
    }
}

/// The section's HTML, hover data included.
pub fn section(doc: &ResultDoc) -> String {
    let grid = Grid::new(span(doc));
    let mut b = Builder {
        grid,
        doc,
        html: String::new(),
        hover: Vec::new(),
        markers: watched_markers(&doc.watched),
    };
    let rows = &doc.timeline;
    let bucket_note = if grid.width > 1 {
        format!(
            "Each point is {} s: the line is the mean, the band the lowest and highest second.",
            grid.width
        )
    } else {
        String::new()
    };

    // Throughput.
    let thr = Agg::new(&grid, rows.iter().map(|r| (r.t, r.bytes as f64)));
    let mut c = TimeChart::new(
        b.next_id(),
        "Throughput (all nodes, body bytes received)",
        Unit::BytesPerSec,
    );
    let mut received = b.line("received", PALETTE[0], &thr, false);
    received.fill = true;
    c.lines.push(received);
    c.markers = b.markers.clone();
    let h = b.hover_lines(&c, &[&thr]);
    b.push(c, &bucket_note, h);

    // Active pulls and connections.
    let act = Agg::new(&grid, rows.iter().map(|r| (r.t, r.active_pulls as f64)));
    let con = Agg::new(&grid, rows.iter().map(|r| (r.t, r.connections as f64)));
    let mut c = TimeChart::new(
        b.next_id(),
        "Active pulls and open connections",
        Unit::Count,
    );
    c.lines
        .push(b.line("active pulls", PALETTE[0], &act, false));
    c.lines.push(b.line("connections", PALETTE[1], &con, false));
    c.markers = b.markers.clone();
    c.min_top = 4.0;
    let h = b.hover_lines(&c, &[&act, &con]);
    b.push(c, "Highest value of each second.", h);

    // File descriptors: the harness from the timeline, then each target.
    let fds = Agg::new(&grid, rows.iter().map(|r| (r.t, r.fds as f64)));
    let mut c = TimeChart::new(
        b.next_id(),
        "Open file descriptors against their limits",
        Unit::Count,
    );
    c.lines.push(b.line("harness", PALETTE[0], &fds, false));
    c.limits.push(Limit {
        name: "harness limit".into(),
        color: PALETTE[0],
        value: doc.fd.client_limit as f64,
    });
    let mut aggs = vec![fds];
    for (i, t) in doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
        .enumerate()
    {
        let color = PALETTE[(i + 1) % PALETTE.len()];
        let a = Agg::new(
            &grid,
            t.series.iter().filter_map(|p| Some((p.t, p.fds? as f64))),
        );
        if a.peak().is_none() {
            continue;
        }
        c.lines.push(b.line(&t.name, color, &a, false));
        if let Some(limit) = t.fd_limit {
            c.limits.push(Limit {
                name: format!("{} limit", t.name),
                color,
                value: limit as f64,
            });
        }
        aggs.push(a);
    }
    c.markers = b.markers.clone();
    c.min_top = 4.0;
    let refs: Vec<&Agg> = aggs.iter().collect();
    let h = b.hover_lines(&c, &refs);
    b.push(
        c,
        "Dashed: each process's soft nofile limit (process_max_fds for an endpoint).",
        h,
    );

    // Errors per second, stacked by class.
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        for (k, v) in &r.errors_by_class {
            *classes.entry(k.as_str()).or_default() += v;
        }
    }
    if classes.is_empty() {
        b.html.push_str("<div class=\"chart\"><h3>Errors per second, by class</h3><p class=\"note\">No errors during the run.</p></div>");
    } else {
        let mut c = TimeChart::new(b.next_id(), "Errors per second, by class", Unit::Count);
        let mut ordered: Vec<(&str, u64)> = classes.into_iter().collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut hover = Vec::new();
        for (class, _) in &ordered {
            let a = Agg::new(
                &grid,
                rows.iter().map(|r| {
                    (
                        r.t,
                        r.errors_by_class.get(*class).copied().unwrap_or(0) as f64,
                    )
                }),
            );
            let values = a.rate(&grid);
            hover.push(HoverSeries {
                name: class.to_string(),
                color: class_color(class),
                unit: Unit::Count,
                values: values.clone(),
                max: None,
            });
            c.stacks.push(Stack {
                name: class.to_string(),
                color: class_color(class),
                values,
            });
        }
        c.markers = b.markers.clone();
        c.min_top = 1.0;
        c.height = 180.0;
        let note = if grid.width > 1 {
            format!("Mean per second over each {} s bar.", grid.width)
        } else {
            String::new()
        };
        b.push(c, &note, hover);
    }

    // Retries per second.
    let retries: u64 = rows.iter().map(|r| r.retries).sum();
    if retries == 0 {
        b.html.push_str("<div class=\"chart\"><h3>Retries per second</h3><p class=\"note\">No retries during the run.</p></div>");
    } else {
        let a = Agg::new(&grid, rows.iter().map(|r| (r.t, r.retries as f64)));
        let mut c = TimeChart::new(b.next_id(), "Retries per second", Unit::Count);
        let values = a.rate(&grid);
        c.stacks.push(Stack {
            name: "retries".into(),
            color: PALETTE[3],
            values: values.clone(),
        });
        c.markers = b.markers.clone();
        c.min_top = 1.0;
        c.height = 180.0;
        let hover = vec![HoverSeries {
            name: "retries".into(),
            color: PALETTE[3],
            unit: Unit::Count,
            values,
            max: None,
        }];
        let note = if grid.width > 1 {
            format!("Mean per second over each {} s bar.", grid.width)
        } else {
            String::new()
        };
        b.push(c, &note, hover);
    }

    watched_charts(&mut b);

    let mut html = String::new();
    html.push_str(&b.html);
    html.push_str(&timeline_table(doc));
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"tl-data\">{}</script>",
        script_json(&hover_json(&grid, &b.hover))
    );
    html
}

/// Sockets, memory, CPU and endpoint values of the watched targets.
fn watched_charts(b: &mut Builder) {
    let grid = b.grid;
    let doc = b.doc;
    // Harness sockets by TCP state.
    if let Some(h) = doc.watched.iter().find(|t| t.kind == WatchedKind::Harness) {
        let keys = value_keys(h, "tcp_");
        if !keys.is_empty() {
            let mut c = TimeChart::new(b.next_id(), "Harness sockets by TCP state", Unit::Count);
            let mut aggs = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let a = Agg::new(
                    &grid,
                    h.series
                        .iter()
                        .filter_map(|p| Some((p.t, *p.values.get(k)?))),
                );
                c.lines
                    .push(b.line(&k["tcp_".len()..], PALETTE[i % PALETTE.len()], &a, false));
                aggs.push(a);
            }
            c.markers = b.markers.clone();
            c.min_top = 4.0;
            let refs: Vec<&Agg> = aggs.iter().collect();
            let hv = b.hover_lines(&c, &refs);
            b.push(
                c,
                "This process's sockets (the embedded registry's too, when it runs in-process); TIME_WAIT counts the whole network namespace on the target's port.",
                hv,
            );
        }
    }
    // Memory and CPU of every process and endpoint that reports them.
    for (title, unit, note, pick) in [
        (
            "Resident memory (RSS)",
            Unit::Bytes,
            "",
            (|p: &crate::result::model::WatchedPoint| p.rss.map(|v| v as f64))
                as fn(&_) -> Option<f64>,
        ),
        (
            "CPU, percent of one core",
            Unit::Percent,
            "100% is one core fully busy; the machine's total is 100% x cores.",
            |p: &crate::result::model::WatchedPoint| p.cpu_pct,
        ),
    ] {
        let mut c = TimeChart::new(b.next_id(), title, unit);
        let mut aggs = Vec::new();
        for (i, t) in doc.watched.iter().enumerate() {
            let a = Agg::new(&grid, t.series.iter().filter_map(|p| Some((p.t, pick(p)?))));
            if a.peak().is_none() {
                continue;
            }
            c.lines
                .push(b.line(&t.name, target_color(doc, i), &a, false));
            aggs.push(a);
        }
        if c.lines.is_empty() {
            continue;
        }
        c.markers = b.markers.clone();
        let refs: Vec<&Agg> = aggs.iter().collect();
        let hv = b.hover_lines(&c, &refs);
        b.push(c, note, hv);
    }
    // One chart per endpoint with values (stub_status fields, goroutines, extra metrics).
    for t in doc.watched.iter().filter(|t| {
        matches!(t.kind, WatchedKind::StubStatus | WatchedKind::Prometheus) && !t.peaks.is_empty()
    }) {
        let keys: Vec<String> = if t.kind == WatchedKind::StubStatus {
            ["active", "reading", "writing", "waiting"]
                .iter()
                .map(|s| s.to_string())
                .filter(|k| t.peaks.contains_key(k))
                .collect()
        } else {
            t.peaks.keys().cloned().collect()
        };
        if keys.is_empty() {
            continue;
        }
        let title = match t.kind {
            WatchedKind::StubStatus => format!("nginx connections ({} stub_status)", t.name),
            _ => format!("{} values", t.name),
        };
        let mut c = TimeChart::new(b.next_id(), &title, Unit::Count);
        let mut aggs = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let a = Agg::new(
                &grid,
                t.series
                    .iter()
                    .filter_map(|p| Some((p.t, *p.values.get(k)?))),
            );
            c.lines
                .push(b.line(k, PALETTE[i % PALETTE.len()], &a, false));
            aggs.push(a);
        }
        c.markers = b.markers.clone();
        c.min_top = 4.0;
        let refs: Vec<&Agg> = aggs.iter().collect();
        let hv = b.hover_lines(&c, &refs);
        let note = if t.kind == WatchedKind::StubStatus {
            let dropped = t.peaks.get("dropped").copied().unwrap_or(0.0);
            format!("Connections nginx accepted but dropped (accepts - handled, since nginx started): {}.", fmt::num(dropped))
        } else {
            String::new()
        };
        b.push(c, &note, hv);
    }
}

/// `values` keys of a target starting with `prefix`, always-present TCP states first.
fn value_keys(t: &WatchedSummary, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = t
        .peaks
        .iter()
        .filter(|(k, v)| k.starts_with(prefix) && (**v > 0.0 || is_main_state(k)))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort_by_key(|k| {
        (
            MAIN_STATES
                .iter()
                .position(|m| m == k)
                .unwrap_or(MAIN_STATES.len()),
            k.clone(),
        )
    });
    keys
}

/// TCP states drawn even when zero, in legend order.
const MAIN_STATES: [&str; 4] = [
    "tcp_established",
    "tcp_time_wait",
    "tcp_close_wait",
    "tcp_syn_sent",
];

fn is_main_state(k: &str) -> bool {
    MAIN_STATES.contains(&k)
}

/// The colour of target `i` (the harness keeps the first colour everywhere).
fn target_color(doc: &ResultDoc, i: usize) -> &'static str {
    if doc.watched[i].kind == WatchedKind::Harness {
        return PALETTE[0];
    }
    let nth = doc.watched[..i]
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
        .count();
    PALETTE[(nth + 1) % PALETTE.len()]
}

/// Exits and zombies of watched processes, as vertical markers.
fn watched_markers(targets: &[WatchedSummary]) -> Vec<Marker> {
    let mut m = Vec::new();
    for t in targets {
        if let Some(at) = t.zombie_at_s {
            m.push(Marker {
                t: at,
                label: format!("{} zombie", t.name),
            });
        }
        if let Some(at) = t.exited_at_s {
            m.push(Marker {
                t: at,
                label: format!("{} exited", t.name),
            });
        }
    }
    m
}

/// `{"w":1,"n":91,"span":90,"charts":[[{"n":..,"c":..,"u":..,"v":[..],"x":[..]}]]}`,
/// numbers cut to four significant digits to keep the page small.
fn hover_json(grid: &Grid, charts: &[Vec<HoverSeries>]) -> String {
    let mut s = String::with_capacity(64 << 10);
    let _ = write!(
        s,
        "{{\"w\":{},\"n\":{},\"span\":{},\"charts\":[",
        grid.width,
        grid.buckets,
        short(grid.span)
    );
    for (ci, chart) in charts.iter().enumerate() {
        if ci > 0 {
            s.push(',');
        }
        s.push('[');
        for (si, se) in chart.iter().enumerate() {
            if si > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"n\":{},\"c\":\"{}\",\"u\":\"{}\",\"v\":",
                serde_json::Value::String(se.name.clone()),
                se.color,
                se.unit.js()
            );
            push_values(&mut s, &se.values);
            if let Some(x) = &se.max {
                s.push_str(",\"x\":");
                push_values(&mut s, x);
            }
            s.push('}');
        }
        s.push(']');
    }
    s.push_str("]}");
    s
}

fn push_values(s: &mut String, values: &[Option<f64>]) {
    s.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match v {
            Some(v) if v.is_finite() => s.push_str(&short(*v)),
            _ => s.push_str("null"),
        }
    }
    s.push(']');
}

/// A number with at most four significant digits, integers without a fraction.
fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(3 - mag);
    let r = (v * scale).round() / scale;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.0}")
    } else {
        let decimals = (3 - mag).clamp(0, 6) as usize;
        let text = format!("{r:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Most rows of the timeline table.
const TABLE_ROWS: usize = 120;

/// The timeline as a table, in at most [`TABLE_ROWS`] spans.
fn timeline_table(doc: &ResultDoc) -> String {
    if doc.timeline.is_empty() {
        return "<p>No timeline rows.</p>".into();
    }
    let grid = Grid::with_max(span(doc), TABLE_ROWS);
    let rows = &doc.timeline;
    let agg = |f: &dyn Fn(&crate::result::model::TimelineRow) -> f64| {
        Agg::new(&grid, rows.iter().map(|r| (r.t, f(r))))
    };
    let bytes = agg(&|r| r.bytes as f64);
    let active = agg(&|r| r.active_pulls as f64);
    let conns = agg(&|r| r.connections as f64);
    let fds = agg(&|r| r.fds as f64);
    let done = agg(&|r| r.pulls_completed as f64);
    let failed = agg(&|r| r.pulls_failed as f64);
    let retries = agg(&|r| r.retries as f64);
    let errors = agg(&|r| r.errors as f64);
    // Watched targets' fds, the busiest (relative to their limit) first, at most four.
    let mut watched: Vec<&WatchedSummary> = doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness && t.fd_peak.is_some())
        .collect();
    watched.sort_by(|a, b| {
        let r = |t: &WatchedSummary| {
            t.fd_peak.unwrap_or(0) as f64 / t.fd_limit.unwrap_or(u64::MAX).max(1) as f64
        };
        r(b).total_cmp(&r(a))
    });
    watched.truncate(4);
    let watched_aggs: Vec<Agg> = watched
        .iter()
        .map(|t| {
            Agg::new(
                &grid,
                t.series.iter().filter_map(|p| Some((p.t, p.fds? as f64))),
            )
        })
        .collect();
    let mut head: Vec<String> = [
        "t",
        "throughput mean",
        "throughput peak",
        "active pulls",
        "connections",
        "fds",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    head.extend(watched.iter().map(|t| format!("{} fds", t.name)));
    head.extend(
        [
            "completed",
            "failed",
            "retries",
            "errors",
            "errors by class",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut out = Vec::new();
    for i in 0..grid.buckets {
        if bytes.n[i] == 0 && watched_aggs.iter().all(|a| a.n[i] == 0) {
            continue;
        }
        let from = i as u64 * grid.width;
        let to = ((i as u64 + 1) * grid.width - 1).min(grid.span.ceil() as u64);
        let when = if grid.width == 1 {
            format!("{from} s")
        } else {
            format!("{}\u{2013}{}", fmt::secs(from as f64), fmt::secs(to as f64))
        };
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_default();
        let mut cells = vec![
            when,
            opt(bytes.rate(&grid)[i], &fmt::rate),
            opt(bytes.max_opt()[i], &fmt::rate),
            opt(active.max_opt()[i], &fmt::num),
            opt(conns.max_opt()[i], &fmt::num),
            opt(fds.max_opt()[i], &fmt::num),
        ];
        for a in &watched_aggs {
            cells.push(opt(a.max_opt()[i], &fmt::num));
        }
        let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
        for r in rows.iter().filter(|r| grid.bucket(r.t) == i) {
            for (k, v) in &r.errors_by_class {
                *classes.entry(k).or_default() += v;
            }
        }
        let classes: Vec<String> = classes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        cells.extend([
            fmt::num(done.sum[i]),
            fmt::num(failed.sum[i]),
            fmt::num(retries.sum[i]),
            fmt::num(errors.sum[i]),
            classes.join(", "),
        ]);
        out.push(cells.into_iter().map(|c| esc(&c)).collect());
    }
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    format!(
        "<details><summary>The timeline as a table ({} rows{})</summary>{}</details>",
        out.len(),
        if grid.width > 1 {
            format!(
                ", {} s each: rates are means, levels are peaks, counts are sums",
                grid.width
            )
        } else {
            String::new()
        },
        table("num", &head_refs, &out)
    )
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

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1_888_157_607.0), "1888000000");
        assert_eq!(short(0.123456), "0.1235");
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(96.0), "96");
        assert_eq!(short(-3.25), "-3.25");
    }
}
