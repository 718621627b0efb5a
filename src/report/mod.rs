//! The self-contained HTML report: one file, no network access when opened,
//! readable with scripts off. Built from result.json alone, so
//! `pullstorm report result.json` rebuilds it from any saved result.

use crate::result::model::ResultDoc;
use crate::result::summary::{bytes, millis};
use std::fmt::Write;
use std::path::Path;

/// Renders the report and writes it atomically.
pub fn write(doc: &ResultDoc, path: &Path) -> std::io::Result<()> {
    crate::result::write_atomic(path, render(doc).as_bytes())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole HTML document.
pub fn render(r: &ResultDoc) -> String {
    let mut h = String::with_capacity(64 << 10);
    let verdict = if !r.thresholds.passed {
        ("failed", "Thresholds failed")
    } else if !r.complete {
        ("warn", "Incomplete run")
    } else {
        ("ok", "Passed")
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>pullstorm: {name}</title><style>{CSS}</style></head><body>\
         <h1>pullstorm report: {name}</h1><p class=\"verdict {cls}\">{text}: {completed} of {planned} pulls completed, {failed} failed, stopped: {stop}</p>",
        name = esc(&r.scenario.name),
        cls = verdict.0,
        text = verdict.1,
        completed = r.pulls.completed,
        planned = r.pulls.planned,
        failed = r.pulls.failed,
        stop = esc(&r.stop_reason),
    );
    let pull = r.latency.get("pull").cloned().unwrap_or_default();
    let figures = [
        ("Target", format!("{} {}", r.target.url, r.target.image)),
        (
            "Fleet",
            format!(
                "{} clusters x {} nodes, {}, {}",
                r.fleet.clusters, r.fleet.nodes_per_cluster, r.fleet.client, r.fleet.arrival
            ),
        ),
        ("Moved", bytes(r.bytes.downloaded as f64)),
        ("Wasted", bytes(r.bytes.wasted as f64)),
        (
            "Throughput",
            format!(
                "{}/s mean, {}/s peak",
                bytes(r.throughput.mean_bytes_per_sec),
                bytes(r.throughput.peak_bytes_per_sec as f64)
            ),
        ),
        (
            "Pull p50 / p99",
            format!("{} / {}", millis(pull.p50), millis(pull.p99)),
        ),
        ("Retries", r.retries.total.to_string()),
        (
            "Harness fds",
            format!("peak {} of {}", r.fd.client_peak, r.fd.client_limit),
        ),
        ("Connections", format!("peak {}", r.connections.peak)),
        ("Duration", millis(r.duration_ms as f64)),
    ];
    h.push_str("<h2>Key figures</h2><table>");
    for (k, v) in figures {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    h.push_str("</table>");

    h.push_str("<h2>Throughput over time</h2>");
    h.push_str(&series_svg(
        &r.timeline
            .iter()
            .map(|t| t.bytes as f64)
            .collect::<Vec<_>>(),
        "bytes/s",
        |v| format!("{}/s", bytes(v)),
    ));
    h.push_str("<h2>Active pulls and connections</h2>");
    h.push_str(&series_svg(
        &r.timeline
            .iter()
            .map(|t| t.connections as f64)
            .collect::<Vec<_>>(),
        "connections",
        |v| format!("{v:.0}"),
    ));

    h.push_str("<h2>Latency (ms)</h2><table><tr><th>metric</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>");
    for (name, l) in &r.latency {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            l.count, l.p50, l.p90, l.p99, l.max
        );
    }
    h.push_str("</table><h2>Errors by class</h2>");
    if r.error_details.is_empty() {
        h.push_str("<p>No errors.</p>");
    } else {
        h.push_str("<table><tr><th>class</th><th>count</th><th>first</th><th>last</th><th>request</th><th>sample</th></tr>");
        for e in &r.error_details {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.1}s</td><td>{:.1}s</td><td>{}</td><td>{}</td></tr>",
                esc(&e.class),
                e.count,
                e.first_s,
                e.last_s,
                esc(&e.request),
                esc(&e.sample)
            );
        }
        h.push_str("</table>");
    }
    if !r.thresholds.checks.is_empty() {
        h.push_str("<h2>Thresholds</h2><table><tr><th>check</th><th>limit</th><th>actual</th><th>result</th></tr>");
        for c in &r.thresholds.checks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.limit),
                esc(&c.actual),
                if c.passed { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</table>");
    }
    let scenario = serde_json::to_string_pretty(&r.scenario.resolved).unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Scenario as run</h2><pre>{}</pre><p class=small>pullstorm {} &middot; {} to {} &middot; file {}</p></body></html>",
        esc(&scenario),
        esc(&r.pullstorm_version),
        esc(&r.started_at),
        esc(&r.ended_at),
        esc(&r.scenario.file)
    );
    h
}

/// A line chart of one per-second series as inline SVG, decimated to at most 600 points.
fn series_svg(values: &[f64], label: &str, fmt: impl Fn(f64) -> String) -> String {
    const W: f64 = 800.0;
    const H: f64 = 160.0;
    if values.is_empty() {
        return "<p>No samples.</p>".into();
    }
    let step = values.len().div_ceil(600).max(1);
    let points: Vec<f64> = values
        .chunks(step)
        .map(|c| c.iter().cloned().fold(0.0, f64::max))
        .collect();
    let max = points.iter().cloned().fold(0.0, f64::max).max(1.0);
    let n = points.len().max(2) as f64 - 1.0;
    let mut path = String::new();
    for (i, v) in points.iter().enumerate() {
        let x = 40.0 + (W - 50.0) * i as f64 / n;
        let y = H - 20.0 - (H - 30.0) * v / max;
        let _ = write!(path, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
    }
    format!(
        "<svg role=img aria-label=\"{label}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\"><rect x=40 y=10 width={} height={} fill=none stroke=#ccc/>\
         <path d=\"{path}\" fill=none stroke=#2563eb stroke-width=1.5/><text x=42 y=22 font-size=11>max {}</text>\
         <text x=40 y={} font-size=11>0 s</text><text x={} y={} font-size=11 text-anchor=end>{} s</text></svg>",
        W - 50.0,
        H - 30.0,
        esc(&fmt(max)),
        H - 5.0,
        W - 10.0,
        H - 5.0,
        values.len()
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#111;padding:0 1em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:14px}\
th{background:#f5f5f5}.verdict{font-size:18px;padding:8px;border-radius:4px}.ok{background:#dcfce7}.warn{background:#fef9c3}\
.failed{background:#fee2e2}pre{background:#f8f8f8;padding:8px;font-size:12px;overflow:auto}.small{color:#666;font-size:12px}";
