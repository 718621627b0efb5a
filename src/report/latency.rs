//! Latency distributions: HdrHistogram percentile curves (0% to 99.999% on
//! a log axis, as HdrHistogram's own plots draw them) decoded from the
//! result's serialized histograms, and the percentile table.

use super::colors::PALETTE;
use super::html::{esc, fig, table};
use super::svg::{percentile_chart, Curve};
use crate::human;
use crate::result::model::{decode_histogram, ResultDoc};
use crate::result::summary::NO_DATA;
use hdrhistogram::Histogram;
use std::fmt::Write;

/// Most points per curve.
const MAX_POINTS: usize = 400;

/// Charts in order, each with the metrics it overlays and what it measures.
const CHARTS: [(&str, &[&str], &str); 6] = [
    (
        "Pull time",
        &["pull", "pull_actual"],
        "pull: from the node's scheduled start (queueing included); pull_actual: from its first request",
    ),
    ("Layer download", &["layer"], "one blob, all attempts and backoff included"),
    (
        "Time to first byte",
        &["ttfb", "manifest", "storage_ttfb"],
        "ttfb: blob request to response head; manifest: manifest requests; storage_ttfb: blob requests to where a redirect led (object storage)",
    ),
    (
        "Connect",
        &["connect"],
        "TCP connect, DNS included, every connection a request opened",
    ),
    (
        "TLS handshake",
        &["tls_handshake"],
        "after the TCP connect, every completed handshake",
    ),
    ("Retry cost", &["retry"], "a blob's first failure to its completion"),
];

/// Metrics in the table, in order; any other metric in the result follows.
const ORDER: [&str; 8] = [
    "pull",
    "pull_actual",
    "layer",
    "ttfb",
    "manifest",
    "connect",
    "tls_handshake",
    "retry",
];

/// (quantile, milliseconds) points of a microsecond histogram.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts = vec![(0.0, h.min() as f64 / 1000.0)];
    for v in h.iter_quantiles(8) {
        let q = v.quantile_iterated_to().min(1.0);
        let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        pts.push((q, ms.min(h.max() as f64 / 1000.0)));
        if q >= 0.999_99 {
            break;
        }
    }
    if pts.len() > MAX_POINTS {
        let step = pts.len().div_ceil(MAX_POINTS);
        let last = pts[pts.len() - 1];
        pts = pts.into_iter().step_by(step).collect();
        pts.push(last);
    }
    pts
}

/// The section's HTML: the percentile charts, then the percentile table.
pub fn section(doc: &ResultDoc) -> String {
    let mut s = charts(doc);
    s.push_str(&percentile_table(doc));
    s
}

/// One percentile chart per entry of [`CHARTS`] that has samples.
fn charts(doc: &ResultDoc) -> String {
    let mut s = String::new();
    s.push_str("<div class=\"lat\">");
    let mut drawn = 0;
    for (title, metrics, what) in CHARTS {
        let curves = curves(doc, metrics);
        if curves.is_empty() {
            continue;
        }
        drawn += 1;
        let _ = write!(
            s,
            "<div class=\"chart\"><h3>{}</h3><p class=\"note\">{}</p>{}</div>",
            esc(title),
            esc(what),
            percentile_chart(title, &curves)
        );
    }
    s.push_str("</div>");
    if drawn == 0 {
        s = "<p>No latency samples.</p>".into();
    }
    s
}

/// The curves of `metrics` that decode and have samples; the first solid,
/// the others dashed.
fn curves(doc: &ResultDoc, metrics: &[&str]) -> Vec<Curve> {
    let mut curves = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let Some(text) = doc.histograms.get(*m) else {
            continue;
        };
        let Ok(h) = decode_histogram(text) else {
            continue;
        };
        let points = curve(&h);
        if points.is_empty() {
            continue;
        }
        curves.push(Curve {
            name: format!("{m} ({} samples)", human::count(h.len())),
            color: PALETTE[i % PALETTE.len()],
            points,
            dashed: i > 0,
        });
    }
    curves
}

/// Count and percentiles of every metric, in [`ORDER`], each figure tagged
/// with its result.json path.
fn percentile_table(doc: &ResultDoc) -> String {
    let mut names: Vec<&String> = doc.latency.keys().collect();
    names.sort_by_key(|n| ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()));
    let rows: Vec<Vec<String>> = names
        .into_iter()
        .map(|name| {
            let l = &doc.latency[name];
            let cell = |p: &str, v: f64| {
                let text = if l.count == 0 {
                    NO_DATA.to_string()
                } else {
                    human::millis(v)
                };
                fig(&format!("latency.{name}.{p}"), v, &text)
            };
            vec![
                esc(name),
                fig(
                    &format!("latency.{name}.count"),
                    l.count,
                    &l.count.to_string(),
                ),
                cell("min", l.min),
                cell("p50", l.p50),
                cell("p90", l.p90),
                cell("p99", l.p99),
                cell("p999", l.p999),
                cell("max", l.max),
                cell("mean", l.mean),
            ]
        })
        .collect();
    table(
        "num",
        &[
            "metric", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_spans_min_to_max() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let c = curve(&h);
        assert!(c.len() > 20 && c.len() <= MAX_POINTS + 1);
        assert_eq!(c[0], (0.0, 0.1));
        let (q, ms) = *c.last().unwrap();
        assert!(q >= 0.9999, "{q}");
        assert!((ms - 1000.0).abs() < 1.0, "{ms}");
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
