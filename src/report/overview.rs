//! The top of the report: title, the verdict in one line, the key figures as
//! cards (coloured when they need attention), and the threshold checks.

use super::html::{esc, fig, table};
use crate::human;
use crate::result::model::{ResultDoc, WatchedKind, WatchedSummary};
use std::fmt::Write;

/// Share of a limit from which a figure is flagged: warn, then bad.
const WARN_AT: f64 = 0.80;
const BAD_AT: f64 = 0.95;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Ok,
    Warn,
    Bad,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Plain => "",
            Tone::Ok => " c-ok",
            Tone::Warn => " c-warn",
            Tone::Bad => " c-bad",
        }
    }

    fn of_ratio(used: f64, limit: f64) -> Tone {
        if limit <= 0.0 {
            Tone::Plain
        } else if used / limit >= BAD_AT {
            Tone::Bad
        } else if used / limit >= WARN_AT {
            Tone::Warn
        } else {
            Tone::Ok
        }
    }
}

/// One card: a label, a big value (HTML), a line of detail (HTML).
fn card(s: &mut String, tone: Tone, label: &str, value: &str, detail: &str) {
    let _ = write!(
        s,
        "<div class=\"card{}\"><div class=\"k\">{}</div><div class=\"n\">{value}</div><div class=\"s\">{detail}</div></div>",
        tone.class(),
        esc(label)
    );
}

/// `connection_reset 3, unexpected_eof 2` for the largest classes.
fn top_classes(m: &std::collections::BTreeMap<String, u64>, n: usize) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().filter(|(_, c)| **c > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = v
        .iter()
        .take(n)
        .map(|(k, c)| format!("{} {}", esc(k), c))
        .collect();
    if v.len() > n {
        out.push(format!("+{} more", v.len() - n));
    }
    out.join(", ")
}

/// The verdict: pass, fail, or incomplete, and why.
pub fn verdict(doc: &ResultDoc) -> String {
    let failed_checks: Vec<&str> = doc
        .thresholds
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    let (class, word) = if !doc.thresholds.passed {
        ("v-bad", "FAILED")
    } else if !doc.complete {
        ("v-warn", "INCOMPLETE")
    } else if doc.pulls.failed > 0 {
        ("v-warn", "PASSED, WITH FAILED PULLS")
    } else {
        ("v-ok", "PASSED")
    };
    let p = &doc.pulls;
    let mut why = format!(
        "{} of {} pulls completed, {} failed, {} interrupted in {}; {} moved at {} mean.",
        fig("pulls.completed", p.completed, &p.completed.to_string()),
        fig("pulls.planned", p.planned, &p.planned.to_string()),
        fig("pulls.failed", p.failed, &p.failed.to_string()),
        fig(
            "pulls.interrupted",
            p.interrupted,
            &p.interrupted.to_string()
        ),
        esc(&human::secs(doc.duration_ms as f64 / 1000.0)),
        esc(&human::bytes(doc.bytes.downloaded as f64)),
        esc(&human::rate(doc.throughput.mean_bytes_per_sec)),
    );
    let errors: u64 = doc.errors.values().sum();
    if errors > 0 {
        let _ = write!(
            why,
            " {} errors ({}), {} retries.",
            errors,
            top_classes(&doc.errors, 3),
            doc.retries.total
        );
    }
    if !failed_checks.is_empty() {
        let _ = write!(
            why,
            " Thresholds failed: {}.",
            esc(&failed_checks.join(", "))
        );
    }
    if doc.stop_reason != "finished" {
        let _ = write!(why, " Stopped by: {}.", esc(&doc.stop_reason));
    }
    for t in &doc.watched {
        if let Some(at) = t.exited_at_s {
            let _ = write!(
                why,
                " <span class=\"warnline\">{} exited at {}.</span>",
                esc(&t.name),
                esc(&human::secs(at))
            );
        }
    }
    format!("<div class=\"verdict {class}\"><b>{word}</b>{why}</div>")
}

/// The key figures: the run's own, then one card per watched process or endpoint.
pub fn cards(doc: &ResultDoc) -> String {
    let mut s = String::from("<div class=\"cards\">");
    pull_cards(&mut s, doc);
    data_cards(&mut s, doc);
    trouble_cards(&mut s, doc);
    harness_fd_card(&mut s, doc);
    for t in doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
    {
        if t.kind == WatchedKind::StubStatus {
            stub_card(&mut s, t);
        } else {
            watched_card(&mut s, t);
        }
    }
    s.push_str("</div>");
    s
}

/// Pulls completed (bad when any failed or was cut short) and pull time.
fn pull_cards(s: &mut String, doc: &ResultDoc) {
    let p = &doc.pulls;
    card(
        s,
        if p.failed > 0 || p.interrupted > 0 {
            Tone::Bad
        } else {
            Tone::Ok
        },
        "Pulls completed",
        &format!(
            "{} / {}",
            fig("pulls.completed", p.completed, &p.completed.to_string()),
            p.planned
        ),
        &format!(
            "{} failed &middot; {} interrupted &middot; {} started",
            fig("pulls.failed", p.failed, &p.failed.to_string()),
            fig(
                "pulls.interrupted",
                p.interrupted,
                &p.interrupted.to_string()
            ),
            p.started
        ),
    );
    let pull = doc.latency.get("pull").cloned().unwrap_or_default();
    card(
        s,
        Tone::Plain,
        "Pull time p50 / p99",
        &format!(
            "{} / {}",
            fig("latency.pull.p50", pull.p50, &human::millis(pull.p50)),
            fig("latency.pull.p99", pull.p99, &human::millis(pull.p99))
        ),
        &format!(
            "max {} &middot; from scheduled start",
            esc(&human::millis(pull.max))
        ),
    );
}

/// Bytes moved (and wasted on retries) and throughput.
fn data_cards(s: &mut String, doc: &ResultDoc) {
    card(
        s,
        Tone::Plain,
        "Data moved",
        &fig(
            "bytes.downloaded",
            doc.bytes.downloaded,
            &human::bytes(doc.bytes.downloaded as f64),
        ),
        &format!(
            "wasted {} {}",
            fig(
                "bytes.wasted",
                doc.bytes.wasted,
                &human::bytes(doc.bytes.wasted as f64)
            ),
            esc(&paren(human::pct(
                doc.bytes.wasted as f64,
                doc.bytes.downloaded as f64
            )))
        ),
    );
    card(
        s,
        Tone::Plain,
        "Throughput mean",
        &fig(
            "throughput.mean_bytes_per_sec",
            doc.throughput.mean_bytes_per_sec,
            &human::rate(doc.throughput.mean_bytes_per_sec),
        ),
        &format!(
            "peak second {}",
            fig(
                "throughput.peak_bytes_per_sec",
                doc.throughput.peak_bytes_per_sec,
                &human::rate(doc.throughput.peak_bytes_per_sec as f64)
            )
        ),
    );
}

/// Retries and errors with their largest classes.
fn trouble_cards(s: &mut String, doc: &ResultDoc) {
    card(
        s,
        if doc.retries.total > 0 {
            Tone::Warn
        } else {
            Tone::Ok
        },
        "Retries",
        &fig(
            "retries.total",
            doc.retries.total,
            &doc.retries.total.to_string(),
        ),
        &non_empty(top_classes(&doc.retries.by_class, 2), "none"),
    );
    let errors: u64 = doc.errors.values().sum();
    // Errors that retries absorbed are a warning; errors that failed pulls are bad.
    card(
        s,
        if doc.pulls.failed > 0 && errors > 0 {
            Tone::Bad
        } else if errors > 0 {
            Tone::Warn
        } else {
            Tone::Ok
        },
        "Errors",
        &fig("errors.total", errors, &errors.to_string()),
        &non_empty(top_classes(&doc.errors, 2), "none"),
    );
}

/// The harness's fds against its soft limit, and its peak connections.
fn harness_fd_card(s: &mut String, doc: &ResultDoc) {
    card(
        s,
        Tone::of_ratio(doc.fd.client_peak as f64, doc.fd.client_limit as f64),
        "Harness fds peak / limit",
        &format!(
            "{} / {}",
            fig(
                "fd.client_peak",
                doc.fd.client_peak,
                &doc.fd.client_peak.to_string()
            ),
            fig(
                "fd.client_limit",
                doc.fd.client_limit,
                &doc.fd.client_limit.to_string()
            )
        ),
        &format!(
            "{} of the soft limit &middot; connections peak {}",
            esc(&human::pct(
                doc.fd.client_peak as f64,
                doc.fd.client_limit as f64
            )),
            fig(
                "connections.peak",
                doc.connections.peak,
                &doc.connections.peak.to_string()
            )
        ),
    );
}

/// A watched process or Prometheus endpoint: fds against its limit, bad
/// when it exited, turned zombie or could never be sampled.
fn watched_card(s: &mut String, t: &WatchedSummary) {
    let gone = t.exited_at_s.or(t.zombie_at_s);
    let tone = if gone.is_some() || (t.samples > 0 && t.failures == t.samples) {
        Tone::Bad
    } else {
        match (t.fd_peak, t.fd_limit) {
            (Some(p), Some(l)) => Tone::of_ratio(p as f64, l as f64),
            _ => Tone::Plain,
        }
    };
    let value = match (t.fd_peak, t.fd_limit) {
        (Some(p), Some(l)) => format!("{p} / {l}"),
        (Some(p), None) => format!("{p}"),
        _ => "\u{2013}".to_string(),
    };
    card(
        s,
        tone,
        &format!("{} fds peak / limit", t.name),
        &esc(&value),
        &esc(&watched_detail(t).join(" \u{b7} ")),
    );
}

/// The small print of a watched card: share of the limit, memory, nginx's
/// active connections, exits, and why sampling failed.
fn watched_detail(t: &WatchedSummary) -> Vec<String> {
    let mut detail = Vec::new();
    if let (Some(p), Some(l)) = (t.fd_peak, t.fd_limit) {
        detail.push(format!("{} of the limit", human::pct(p as f64, l as f64)));
    }
    if let Some(r) = t.rss_peak_bytes {
        detail.push(format!("RSS {}", human::bytes(r as f64)));
    }
    if let Some(a) = t.peaks.get("active") {
        detail.push(format!("active {}", human::num(*a)));
    }
    if let Some(at) = t.zombie_at_s {
        detail.push(format!("ZOMBIE at {}", human::secs(at)));
    }
    if let Some(at) = t.exited_at_s {
        detail.push(format!("EXITED at {}", human::secs(at)));
    }
    if t.samples == 0 || t.failures == t.samples {
        detail.push(
            t.last_error
                .clone()
                .unwrap_or_else(|| "no sample".to_string()),
        );
    }
    detail
}

/// nginx stub_status: connections rather than fds.
fn stub_card(s: &mut String, t: &WatchedSummary) {
    let peak = |k: &str| t.peaks.get(k).map(|v| human::num(*v));
    let failing = t.samples == 0 || t.failures == t.samples;
    let mut detail = Vec::new();
    if let Some(w) = peak("writing") {
        detail.push(format!("writing {w}"));
    }
    if let Some(w) = peak("waiting") {
        detail.push(format!("waiting {w}"));
    }
    let dropped = t.peaks.get("dropped").copied().unwrap_or(0.0);
    if dropped > 0.0 {
        detail.push(format!("{} dropped since start", human::num(dropped)));
    }
    if failing {
        detail.push(t.last_error.clone().unwrap_or_else(|| "no sample".into()));
    }
    card(
        s,
        if failing || dropped > 0.0 {
            Tone::Bad
        } else {
            Tone::Plain
        },
        &format!("{} active connections peak", t.name),
        &esc(&peak("active").unwrap_or_else(|| "\u{2013}".into())),
        &esc(&detail.join(" \u{b7} ")),
    );
}

fn paren(s: String) -> String {
    if s.is_empty() {
        s
    } else {
        format!("({s})")
    }
}

fn non_empty(s: String, otherwise: &str) -> String {
    if s.is_empty() {
        otherwise.to_string()
    } else {
        s
    }
}

/// The threshold checks, or nothing when the scenario set none.
pub fn thresholds(doc: &ResultDoc) -> String {
    if doc.thresholds.checks.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = doc
        .thresholds
        .checks
        .iter()
        .map(|c| {
            vec![
                esc(&c.name),
                esc(&c.limit),
                esc(&c.actual),
                if c.passed {
                    "<span class=\"pass\">pass</span>".to_string()
                } else {
                    "<span class=\"fail\">FAIL</span>".to_string()
                },
            ]
        })
        .collect();
    format!(
        "<h3>Threshold checks</h3>{}",
        table("", &["check", "limit", "actual", "result"], &rows)
    )
}
