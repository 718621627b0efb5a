//! The top of the report: the header (the run as resolved, then the
//! scenario author's description, labelled as such), the verdict in one line,
//! the key figures as cards (coloured when they need attention), and the
//! threshold checks.

use super::html::{esc, fig, table};
use crate::human;
use crate::result::model::{ResultDoc, WatchedKind, WatchedSummary};
use crate::result::summary::{self, NO_DATA};
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

/// The page header: the scenario's name, then what actually ran, built from
/// the resolved run (fleet, client, arrival, image, target), so `--target`,
/// `--image` and `--set` show; the description written in the scenario file
/// follows on its own line, labelled as the author's (it is not adjusted for
/// overrides).
pub fn header(doc: &ResultDoc) -> String {
    let f = &doc.fleet;
    let target = if doc.target.embedded {
        format!(
            "the embedded registry ({})",
            super::tables::redact(&doc.target.url)
        )
    } else {
        super::tables::redact(&doc.target.url)
    };
    let run = format!(
        "{} x {} = {} {} nodes, {}, pulling {} from {}",
        plural(f.clusters as u64, "cluster"),
        plural(f.nodes_per_cluster as u64, "node"),
        f.nodes,
        f.client,
        f.arrival,
        doc.target.image,
        target
    );
    let mut h = format!(
        "<header><h1>pullstorm report: {}</h1><div class=\"sub\" id=\"run-as-resolved\">{} &middot; started {}</div>",
        esc(&doc.scenario.name),
        esc(&run),
        esc(&doc.started_at)
    );
    if let Some(description) = author_description(doc) {
        let _ = write!(
            h,
            "<div class=\"sub\" id=\"scenario-description\">Scenario description, as written in {}{}: &ldquo;{}&rdquo;</div>",
            esc(&doc.scenario.file),
            if doc.scenario.overrides.is_empty() {
                ""
            } else {
                " (before this run's overrides, listed under Environment)"
            },
            esc(description)
        );
    }
    h.push_str("</header>");
    h
}

/// The scenario file's `description`, when it has one.
fn author_description(doc: &ResultDoc) -> Option<&str> {
    doc.scenario
        .resolved
        .get("description")
        .and_then(|d| d.as_str())
        .filter(|d| !d.trim().is_empty())
}

/// `1 cluster`, `4 clusters`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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
        planned_fig(p.planned),
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
    if doc.harness.as_ref().is_some_and(|h| h.saturated) {
        let _ = write!(
            why,
            " <span class=\"warnline\" id=\"harness-saturated\">Harness {}.</span>",
            esc(&summary::harness(doc.harness.as_ref()))
        );
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
    push_cards(&mut s, doc);
    harness_fd_card(&mut s, doc);
    connections_card(&mut s, doc);
    harness_cpu_card(&mut s, doc);
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
/// The planned pulls, or what stands for them in an open-ended run (a staircase).
fn planned_fig(planned: Option<u64>) -> String {
    match planned {
        Some(n) => fig("pulls.planned", n, &n.to_string()),
        None => fig("pulls.planned", "null", "open-ended (staircase)"),
    }
}

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
            planned_fig(p.planned)
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
    if pull.count == 0 {
        // No pull completed: no pull time, rather than zeros that read as instant pulls.
        card(
            s,
            Tone::Bad,
            "Pull time p50 / p99",
            NO_DATA,
            "no pull completed &middot; from scheduled start",
        );
        return;
    }
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

/// The CI runners' pushes (`[push]`): completed of started, bytes and rate; retries by code.
fn push_cards(s: &mut String, doc: &ResultDoc) {
    let Some(p) = &doc.pushes else {
        return;
    };
    let rate = p.upload_bytes_per_sec.map_or("no data".to_string(), |r| {
        format!("{}/s", crate::human::bytes(r))
    });
    card(
        s,
        if p.failed > 0 || p.interrupted > 0 {
            Tone::Bad
        } else {
            Tone::Ok
        },
        "Pushes",
        &format!(
            "{} / {}",
            fig("pushes.completed", p.completed, &p.completed.to_string()),
            fig("pushes.started", p.started, &p.started.to_string())
        ),
        &format!(
            "{} failed, {} interrupted; {} uploaded ({})",
            fig("pushes.failed", p.failed, &p.failed.to_string()),
            fig(
                "pushes.interrupted",
                p.interrupted,
                &p.interrupted.to_string()
            ),
            fig(
                "pushes.bytes_uploaded",
                p.bytes_uploaded,
                &crate::human::bytes(p.bytes_uploaded as f64)
            ),
            esc(&rate)
        ),
    );
    card(
        s,
        if p.retries > 0 { Tone::Warn } else { Tone::Ok },
        "Push retries",
        &fig("pushes.retries", p.retries, &p.retries.to_string()),
        &esc(&non_empty(top_classes(&p.retries_by_code, 3), "none")),
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

/// The connections the pulls opened and how many requests each carried; none for a
/// result written before they were counted.
fn connections_card(s: &mut String, doc: &ResultDoc) {
    let c = &doc.connections;
    let (Some(opened), Some(requests)) = (c.opened, c.requests) else {
        return;
    };
    let mut detail = vec![format!(
        "{} requests",
        fig("connections.requests", requests, &requests.to_string())
    )];
    match (c.requests_per_connection, c.max_requests_per_connection) {
        (Some(per), Some(most)) => {
            detail.push(format!(
                "{} per connection",
                fig("connections.requests_per_connection", per, &per.to_string())
            ));
            detail.push(format!(
                "at most {} on one",
                fig(
                    "connections.max_requests_per_connection",
                    most,
                    &most.to_string()
                )
            ));
        }
        _ => detail.push(format!("per connection: {NO_DATA}")),
    }
    for (key, n, what) in [
        ("connections.https_probes", c.https_probes, "HTTPS probes"),
        (
            "connections.tls_handshakes",
            c.tls_handshakes,
            "TLS handshakes",
        ),
    ] {
        if let Some(n) = n.filter(|n| *n > 0) {
            detail.push(format!("{} {what}", fig(key, n, &n.to_string())));
        }
    }
    card(
        s,
        Tone::Plain,
        "Connections opened",
        &fig("connections.opened", opened, &opened.to_string()),
        &detail.join(" &middot; "),
    );
}

/// Whether the harness was saturated (bad when it was: the figures may then
/// describe pullstorm rather than the target), with the console's sentence.
fn harness_cpu_card(s: &mut String, doc: &ResultDoc) {
    let Some(h) = doc.harness.as_ref().filter(|h| h.measured_seconds > 0) else {
        card(
            s,
            Tone::Plain,
            "Harness saturated",
            NO_DATA,
            "no CPU or timer figures in this result",
        );
        return;
    };
    let seconds = fig(
        "harness.saturated_seconds",
        h.saturated_seconds,
        &h.saturated_seconds.to_string(),
    );
    let (tone, value) = if h.saturated {
        (Tone::Bad, format!("SATURATED {seconds} s"))
    } else {
        (Tone::Ok, "not saturated".to_string())
    };
    let detail = format!(
        "{} &middot; {seconds} of {} s over the limits &middot; {} s CPU",
        esc(&summary::harness_figures(h)),
        h.measured_seconds,
        fig(
            "harness.cpu_seconds",
            h.cpu_seconds,
            &format!("{:.1}", h.cpu_seconds)
        )
    );
    card(s, tone, "Harness saturated", &value, &detail);
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
        &format!("{} fds peak / limit", t.label()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::build::tests::sample_doc;

    #[test]
    fn no_completed_pull_shows_no_data_not_zero_pull_time() {
        let doc = sample_doc(false);
        let html = cards(&doc);
        assert!(html.contains("Pull time p50 / p99"), "{html}");
        assert!(html.contains(">no data<"), "{html}");
        assert!(!html.contains("0.0ms"), "{html}");
        let page = crate::report::render(&doc);
        assert!(
            !page.contains("0.0ms"),
            "a zero latency somewhere in the page"
        );
        assert!(page.contains("no data"));
    }

    #[test]
    fn measured_pull_time_is_shown() {
        let html = cards(&sample_doc(true));
        assert!(html.contains("data-k=\"latency.pull.p50\""), "{html}");
        let pull_card = html
            .split("<div class=\"card")
            .find(|c| c.contains("Pull time"))
            .unwrap();
        assert!(!pull_card.contains("no data"), "{html}");
    }

    #[test]
    fn the_harness_card_says_saturated_or_not_and_no_data_for_old_results() {
        let mut doc = sample_doc(true);
        let card_of = |doc: &ResultDoc| {
            cards(doc)
                .split("<div class=\"card")
                .find(|c| c.contains("Harness saturated"))
                .unwrap()
                .to_string()
        };
        // A result written before pullstorm measured itself.
        assert!(card_of(&doc).contains(">no data<"));
        let mut h = crate::result::model::HarnessInfo {
            cpu_seconds: 12.5,
            usable_cores: 2.0,
            affinity_cores: 2,
            cpu_quota_cores: None,
            cpu_mean_percent: Some(50.0),
            cpu_peak_percent: Some(97.0),
            cpu_wait_peak_percent: Some(1.0),
            timer_lag_max_ms: Some(20.0),
            measured_seconds: 10,
            saturated_seconds: 4,
            saturated: true,
            embedded_registry: false,
        };
        doc.harness = Some(h.clone());
        let card = card_of(&doc);
        assert!(card.starts_with(" c-bad\""), "{card}");
        assert!(
            card.contains(
                ">SATURATED <span data-k=\"harness.saturated_seconds\" data-v=\"4\">4</span> s<"
            ),
            "{card}"
        );
        assert!(card.contains("peak 97% of 2 cores"), "{card}");
        assert!(verdict(&doc)
            .contains("id=\"harness-saturated\">Harness SATURATED for 4 s (40% of the run;"));
        h.saturated = false;
        h.saturated_seconds = 0;
        doc.harness = Some(h);
        let card = card_of(&doc);
        assert!(card.starts_with(" c-ok\""), "{card}");
        assert!(card.contains(">not saturated<"), "{card}");
        assert!(!verdict(&doc).contains("harness-saturated"));
    }

    #[test]
    fn the_header_describes_the_run_and_labels_the_authors_description() {
        let mut doc = sample_doc(true);
        doc.scenario.resolved =
            serde_json::json!({"description": "32 dockerd nodes pull from the embedded registry"});
        doc.scenario.overrides = vec!["fleet.clusters=2".into()];
        doc.target.embedded = false;
        doc.target.url = "https://user:secret@registry.example:5000/".into();
        doc.target.image = "team/app:v2".into();
        let h = header(&doc);
        assert!(
            h.contains("2 clusters x 2 nodes = 4 dockerd-27 nodes, herd"),
            "{h}"
        );
        assert!(h.contains("pulling team/app:v2 from https://"), "{h}");
        assert!(!h.contains("secret"), "{h}");
        let (run, described) = h.split_once("id=\"scenario-description\"").unwrap();
        assert!(!run.contains("32 dockerd"), "{h}");
        assert!(described.starts_with(">Scenario description, as written in scenarios/synthetic.toml (before this run's overrides"), "{h}");
        assert!(described.contains("32 dockerd nodes pull from the embedded registry"));

        doc.scenario.resolved = serde_json::json!({});
        assert!(!header(&doc).contains("Scenario description"));
        doc.target.embedded = true;
        assert!(header(&doc).contains("from the embedded registry ("));
    }
}
