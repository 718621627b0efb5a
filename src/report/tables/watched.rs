//! The "watched" section: every watched process and endpoint with its
//! peaks, limits, exits and sampling health; a process with what tells it
//! from others of its name (its listening ports and command line). (In the page and in
//! result.json these are still called targets; in the code "target" is only
//! the registry under test.)

use super::{redact, truncate};
use crate::human;
use crate::metrics::watch::label;
use crate::report::html::{esc, table};
use crate::result::model::{ResultDoc, WatchedKind, WatchedSummary};

/// Longest last sampling error shown.
const MAX_ERROR: usize = 200;

/// One row per watched process or endpoint.
pub fn watched(doc: &ResultDoc) -> String {
    if doc.watched.is_empty() {
        return "<p>Nothing was watched besides the harness's own counters (see the timeline).</p>"
            .into();
    }
    let rows: Vec<Vec<String>> = doc.watched.iter().map(row).collect();
    table(
        "tg",
        &[
            "target",
            "kind",
            "fds peak / limit",
            "RSS peak",
            "threads",
            "CPU used",
            "events",
            "samples / failed",
            "other peaks",
            "trend per hour (95 %)",
        ],
        &rows,
    )
}

fn row(w: &WatchedSummary) -> Vec<String> {
    let events = events(w);
    vec![
        format!("{}<br><small>{}</small>", esc(&w.name), esc(&what(w))),
        esc(kind(w.kind)),
        esc(&fds(w)),
        esc(&w
            .rss_peak_bytes
            .map(|r| human::bytes(r as f64))
            .unwrap_or_default()),
        w.threads_peak.map(|n| n.to_string()).unwrap_or_default(),
        esc(&cpu(w)),
        if events.is_empty() {
            String::new()
        } else {
            format!("<span class=\"fail\">{}</span>", esc(&events))
        },
        format!("{} / {}", w.samples, w.failures),
        other_peaks(w),
        trend(w),
    ]
}

/// A process's RSS, fds and threads slopes after the warm-up (`result::leak`),
/// a suspected leak marked; "no data" when too short to judge, nothing for an endpoint.
fn trend(w: &WatchedSummary) -> String {
    use crate::result::leak::Metric;
    if !matches!(w.kind, WatchedKind::Process | WatchedKind::Harness) {
        return String::new();
    }
    let Some(trends) = &w.trend else {
        return "no data".into();
    };
    let lines: Vec<String> = Metric::ALL
        .iter()
        .filter_map(|&m| {
            let t = trends.get(m)?;
            let text = esc(&format!("{} {}", m.key(), t.describe(m)));
            Some(if t.leak_suspected {
                format!("<span class=\"fail\">LEAK? {text}</span>")
            } else {
                text
            })
        })
        .collect();
    let from = [&trends.rss, &trends.fds, &trends.threads]
        .into_iter()
        .flatten()
        .map(|t| t.from_s)
        .min()
        .unwrap_or(0);
    format!(
        "{}<br><small>from {}</small>",
        lines.join("<br>"),
        esc(&human::secs(from as f64))
    )
}

/// What is watched: the pid of a process (with the ports it listens on
/// and its command line), the URL of an endpoint.
fn what(w: &WatchedSummary) -> String {
    match (w.pid, &w.url) {
        (Some(pid), _) => {
            let mut what = format!("pid {pid}");
            if !w.listen_ports.is_empty() {
                what.push_str(&format!(
                    ", listening on {}",
                    label::ports_label(&w.listen_ports)
                ));
            }
            if let Some(command) = &w.command {
                what.push_str(&format!(": {}", redact(command)));
            }
            what
        }
        (None, Some(u)) => redact(u),
        _ => String::new(),
    }
}

fn kind(k: WatchedKind) -> &'static str {
    match k {
        WatchedKind::Harness => "harness",
        WatchedKind::Process => "process",
        WatchedKind::Prometheus => "prometheus",
        WatchedKind::StubStatus => "stub_status",
    }
}

/// `950 / 1024 (93%)`, or what is known of peak and limit.
fn fds(w: &WatchedSummary) -> String {
    match (w.fd_peak, w.fd_limit) {
        (Some(p), Some(l)) => format!("{p} / {l} ({})", human::pct(p as f64, l as f64)),
        (Some(p), None) => p.to_string(),
        (None, Some(l)) => format!("\u{2013} / {l}"),
        _ => String::new(),
    }
}

/// CPU seconds used, with the busiest sample's share of one core.
fn cpu(w: &WatchedSummary) -> String {
    w.cpu_seconds
        .map(|c| {
            format!(
                "{c:.1} s, peak {}%",
                human::num(w.cpu_peak_pct.unwrap_or(0.0))
            )
        })
        .unwrap_or_default()
}

/// When it turned zombie or exited.
fn events(w: &WatchedSummary) -> String {
    let mut events = Vec::new();
    if let Some(at) = w.zombie_at_s {
        events.push(format!("zombie at {}", human::secs(at)));
    }
    if let Some(at) = w.exited_at_s {
        events.push(format!("exited at {}", human::secs(at)));
    }
    events.join(", ")
}

/// Peaks of other values (TCP states only when seen), then the last
/// sampling error if any.
fn other_peaks(w: &WatchedSummary) -> String {
    let peaks: Vec<String> = w
        .peaks
        .iter()
        .filter(|(k, v)| !k.starts_with("tcp_") || **v > 0.0)
        .map(|(k, v)| format!("{k} {}", human::num(*v)))
        .collect();
    format!(
        "<span style=\"white-space:normal\">{}{}</span>",
        esc(&peaks.join(", ")),
        w.last_error
            .as_ref()
            .map(|e| format!(
                "<br><span class=\"fail\">last error: {}</span>",
                esc(&truncate(e, MAX_ERROR))
            ))
            .unwrap_or_default()
    )
}
