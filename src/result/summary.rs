//! The console summary printed at the end of a run: key figures, errors by
//! class and percentiles, in a form that reads well in a CI log. Text that
//! came from the target or the user (error samples, URL, image, names) is
//! escaped: a control sequence in a registry's error body is shown, not obeyed.

use super::model::{HarnessInfo, ResultDoc};
use crate::human::{bytes, millis, rate, secs_short};
use crate::terminal::escape;
use std::fmt::Write;

/// The summary as text.
pub fn render(r: &ResultDoc) -> String {
    let mut s = String::new();
    headline(&mut s, r);
    figures(&mut s, r);
    capacity(&mut s, r);
    after_run_verify(&mut s, r);
    if let Some(p) = &r.pushes {
        let _ = writeln!(s, "  {}", escape(&super::pushes::summary_line(p)));
    }
    latency_table(&mut s, r);
    errors(&mut s, r);
    leaks(&mut s, r);
    failed_thresholds(&mut s, r);
    s
}

/// A line per watched process whose RSS, fds or threads climbed (`result::leak`).
fn leaks(s: &mut String, r: &ResultDoc) {
    for w in r.watched.iter().filter(|w| w.leak_suspected == Some(true)) {
        for (metric, t) in w.trend.iter().flat_map(|t| t.suspected()) {
            let _ = writeln!(
                s,
                "  LEAK?     {} {}: {} from {}",
                escape(&w.label()),
                metric.key(),
                t.describe(metric),
                secs_short(t.from_s as f64, 0)
            );
        }
    }
}

/// The verdict line, then what was pulled from where.
fn headline(s: &mut String, r: &ResultDoc) {
    let verdict = if !r.thresholds.passed {
        "FAILED thresholds"
    } else if !r.complete {
        "INCOMPLETE"
    } else {
        "OK"
    };
    let _ = writeln!(
        s,
        "pullstorm: {} - {} ({}, stopped: {})",
        escape(&r.scenario.name),
        verdict,
        secs_short(r.duration_ms as f64 / 1000.0, 1),
        r.stop_reason
    );
    let _ = writeln!(
        s,
        "  target    {} {}{}",
        escape(&r.target.url),
        escape(&r.target.image),
        if r.target.embedded {
            " (embedded registry)"
        } else {
            ""
        }
    );
}

/// `[verify] after_run`: the check's closing line, or why it did not run.
fn after_run_verify(s: &mut String, r: &ResultDoc) {
    let Some(v) = &r.verify else { return };
    let line = match (&v.report, &v.reason) {
        (Some(report), _) => report.summary(),
        (None, reason) => format!(
            "verify: not run: {}",
            reason.as_deref().unwrap_or("no reason given")
        ),
    };
    let _ = writeln!(s, "  {}", escape(&line));
}

/// A staircase's answer in one sentence: the herd that held, what it moved,
/// and what broke the next one.
fn capacity(s: &mut String, r: &ResultDoc) {
    if let Some(c) = &r.capacity {
        let _ = writeln!(s, "  capacity  {}", escape(&capacity_sentence(c)));
    }
}

/// `holds 48 nodes (144 concurrent downloads, 1.9 GiB/s); at 56 nodes connection_reset 4.0 %`.
pub fn capacity_sentence(c: &super::model::Capacity) -> String {
    let knee = c.refined_knee_nodes.or(c.knee_nodes);
    let broken = c.refined_broken_nodes.or(c.broken_nodes);
    let broken_step = broken.and_then(|n| {
        c.steps
            .iter()
            .find(|st| st.nodes == n && st.verdict == "broke")
    });
    let harness = broken_step
        .and_then(|st| st.broken_by.as_deref())
        .is_some_and(crate::capacity::search::is_harness_cause);
    let mut out = match knee {
        Some(n) => {
            let mut figures = Vec::new();
            if let Some(d) = c.knee_downloads {
                figures.push(format!("{d} concurrent downloads"));
            }
            if let Some(b) = c.knee_bytes_per_sec {
                figures.push(rate(b));
            }
            let at_least = if harness || broken.is_none() {
                "at least "
            } else {
                ""
            };
            let figures = if figures.is_empty() {
                String::new()
            } else {
                format!(" ({})", figures.join(", "))
            };
            format!("holds {at_least}{n} nodes{figures}")
        }
        None => "no herd held".to_string(),
    };
    match (broken, broken_step) {
        (Some(n), Some(st)) => {
            let by = st.broken_by.as_deref().unwrap_or("?");
            let what = match st.error_rate {
                Some(e)
                    if st
                        .why
                        .as_deref()
                        .is_some_and(|w| w.contains("pulls failed")) =>
                {
                    format!("{by} {:.1} %", e * 100.0)
                }
                _ if harness => format!("the harness, not the target, ran short ({by})"),
                _ => st.why.clone().unwrap_or_else(|| by.to_string()),
            };
            let _ = write!(out, "; at {n} nodes {what}");
        }
        _ if c.ended_by == "max_nodes" || c.ended_by == "max_steps" => {
            let _ = write!(out, ", the most tried ({})", c.ended_by);
        }
        _ => {}
    }
    if let (Some(k), Some(b)) = (c.knee_nodes, c.broken_nodes) {
        if c.refined_knee_nodes.is_some() {
            let _ = write!(out, " (climb: {k} held, {b} broke)");
        }
    }
    if c.ended_by == "deadline" || c.ended_by == "interrupted" {
        let _ = write!(out, "; search cut short ({})", c.ended_by);
    }
    out
}

/// Fleet, pulls, bytes, retries and resources: one line each.
fn figures(s: &mut String, r: &ResultDoc) {
    let _ = writeln!(
        s,
        "  fleet     {} clusters x {} nodes = {} nodes, {} client, {}",
        r.fleet.clusters, r.fleet.nodes_per_cluster, r.fleet.nodes, r.fleet.client, r.fleet.arrival
    );
    let planned = match r.pulls.planned {
        Some(n) => format!("{n} planned"),
        None if r.fleet.arrival.starts_with("soak") => {
            "open-ended (soak; interrupted: cut at its end, not failed)".to_string()
        }
        None => "open-ended (staircase)".to_string(),
    };
    let _ = writeln!(
        s,
        "  pulls     {planned}, {} started, {} completed, {} failed, {} interrupted",
        r.pulls.started, r.pulls.completed, r.pulls.failed, r.pulls.interrupted
    );
    let _ = writeln!(
        s,
        "  bytes     {} downloaded, {} wasted; mean {}, peak {}",
        bytes(r.bytes.downloaded as f64),
        bytes(r.bytes.wasted as f64),
        rate(r.throughput.mean_bytes_per_sec),
        rate(r.throughput.peak_bytes_per_sec as f64)
    );
    let _ = writeln!(
        s,
        "  retries   {}   fds peak {} of {}   connections peak {}",
        r.retries.total, r.fd.client_peak, r.fd.client_limit, r.connections.peak
    );
    if let Some(line) = connections_line(&r.connections) {
        let _ = writeln!(s, "  conns     {line}");
    }
    if r.redirects.followed > 0 {
        let _ = writeln!(s, "  redirects {}", redirects_line(r));
    }
    let _ = writeln!(s, "  harness   {}", harness(r.harness.as_ref()));
}

/// `12 followed, 12 to storage; storage ttfb p50 3.1ms p99 9.0ms` (a registry on object
/// storage): the storage hop's own figures, apart from the registry's 307s.
fn redirects_line(r: &ResultDoc) -> String {
    let mut line = format!(
        "{} followed, {} to storage",
        r.redirects.followed, r.redirects.to_storage
    );
    if let Some(l) = r.latency.get("storage_ttfb").filter(|l| l.count > 0) {
        let _ = write!(
            line,
            "; storage ttfb p50 {} p99 {}",
            crate::human::millis(l.p50),
            crate::human::millis(l.p99)
        );
    }
    line
}

/// `8 opened for 7 requests (0.875 per connection, at most 1 on one), 1 HTTPS probe`;
/// None for a result written before connections were counted.
pub fn connections_line(c: &crate::result::model::ConnectionInfo) -> Option<String> {
    let (opened, requests) = (c.opened?, c.requests?);
    let mut line = format!("{opened} opened for {requests} requests");
    if let (Some(per), Some(most)) = (c.requests_per_connection, c.max_requests_per_connection) {
        let _ = write!(line, " ({per} per connection, at most {most} on one)");
    }
    for (n, what) in [
        (c.https_probes.unwrap_or(0), "HTTPS probe"),
        (c.tls_handshakes.unwrap_or(0), "TLS handshake"),
    ] {
        if n > 0 {
            let _ = write!(line, ", {n} {what}{}", if n == 1 { "" } else { "s" });
        }
    }
    Some(line)
}

/// Whether the harness was saturated, said plainly either way, with the
/// figures to judge it: `not saturated (peak 41% of 2 cores, waiting for a
/// CPU up to 3%, timer lag max 3.0ms)`, or `SATURATED for 12 s (18% of the run; ...): figures may
/// describe pullstorm, not the target; ...`. The report shows the same text.
pub fn harness(h: Option<&HarnessInfo>) -> String {
    // Nothing measured is no verdict, not "not saturated".
    let Some(h) = h.filter(|h| h.measured_seconds > 0) else {
        return NO_DATA.to_string();
    };
    let figures = harness_figures(h);
    if !h.saturated {
        return format!("not saturated ({figures})");
    }
    format!(
        "SATURATED for {} s ({} of the run; {figures}): figures may describe pullstorm, not the target; use fewer nodes or more cores{}",
        h.saturated_seconds,
        crate::human::pct(h.saturated_seconds as f64, h.measured_seconds as f64),
        if h.embedded_registry {
            ", or a registry outside pullstorm"
        } else {
            ""
        }
    )
}

/// `peak 41% of 2 cores, waiting for a CPU up to 3%, timer lag max 3.0ms`,
/// and whether the embedded
/// registry's CPU is in it.
pub fn harness_figures(h: &HarnessInfo) -> String {
    let peak = match h.cpu_peak_percent {
        Some(p) => format!("peak {p:.0}% of {}", cores(h.usable_cores)),
        None => format!("CPU {NO_DATA}"),
    };
    let wait = match h.cpu_wait_peak_percent {
        Some(w) => format!("waiting for a CPU up to {w:.0}%"),
        None => format!("CPU wait {NO_DATA}"),
    };
    let lag = match h.timer_lag_max_ms {
        Some(l) => format!("timer lag max {}", millis(l)),
        None => format!("timer lag {NO_DATA}"),
    };
    let embedded = if h.embedded_registry {
        "; the in-process embedded registry included"
    } else {
        ""
    };
    format!("{peak}, {wait}, {lag}{embedded}")
}

/// `1 core`, `2 cores`, `1.5 cores`.
pub fn cores(n: f64) -> String {
    if n == 1.0 {
        return "1 core".to_string();
    }
    let text = format!("{n:.2}");
    format!("{} cores", text.trim_end_matches('0').trim_end_matches('.'))
}

/// What a figure with no samples shows (never a zero that reads as "instant").
pub const NO_DATA: &str = "no data";

/// Percentiles of every metric that has samples; `pull` is always listed
/// (`no data` when no pull completed), the other empty metrics on one line.
fn latency_table(s: &mut String, r: &ResultDoc) {
    let _ = writeln!(
        s,
        "  latency           count        p50        p90        p99        max"
    );
    let mut empty = Vec::new();
    for (name, l) in &r.latency {
        if l.count > 0 {
            let _ = writeln!(
                s,
                "    {:<13} {:>8} {:>10} {:>10} {:>10} {:>10}",
                name,
                l.count,
                millis(l.p50),
                millis(l.p90),
                millis(l.p99),
                millis(l.max)
            );
        } else if name == "pull" {
            let _ = writeln!(s, "    {:<13} {:>8} {:>10}", name, 0, NO_DATA);
        } else {
            empty.push(name.as_str());
        }
    }
    if !empty.is_empty() {
        let _ = writeln!(s, "    {NO_DATA}: {}", empty.join(", "));
    }
}

/// Errors by class with when they happened and one sample each.
fn errors(s: &mut String, r: &ResultDoc) {
    if r.error_details.is_empty() {
        let _ = writeln!(s, "  errors    none");
        return;
    }
    let _ = writeln!(s, "  errors");
    for e in &r.error_details {
        let _ = writeln!(
            s,
            "    {:<26} {:>8}  first {} last {}  e.g. {}",
            escape(&e.class),
            e.count,
            secs_short(e.first_s, 1),
            secs_short(e.last_s, 1),
            escape(&e.sample)
        );
    }
}

/// One line per threshold that failed; the one that aborted the run says when.
fn failed_thresholds(s: &mut String, r: &ResultDoc) {
    for c in r.thresholds.checks.iter().filter(|c| !c.passed) {
        let aborted = c
            .window
            .as_ref()
            .map(|w| format!("; the run was aborted as second {} closed", w.to_s))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  threshold {} failed: limit {}, actual {}{aborted}",
            escape(&c.name),
            escape(&c.limit),
            escape(&c.actual)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::build::tests::sample_doc;
    use crate::result::model::ErrorDetail;

    #[test]
    fn a_targets_control_sequences_are_shown_not_obeyed() {
        let mut doc = crate::result::thresholds::tests::doc(2, 2);
        doc.target.url = "http://evil.example/\u{1b}]0;owned\u{7}".into();
        doc.error_details.push(ErrorDetail {
            class: "http_500".into(),
            count: 2,
            first_s: 0.5,
            last_s: 1.0,
            phase: "status".into(),
            request: "blob".into(),
            sample: "boom\u{1b}[2J\rpullstorm: quickstart - OK\u{7}\u{9b}1A".into(),
        });
        let text = render(&doc);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::terminal::is_control(c)),
            "{text:?}"
        );
        assert!(
            text.contains("e.g. boom\\x1b[2J\\rpullstorm: quickstart - OK\\x07\\u{9b}1A"),
            "{text}"
        );
        assert!(text.contains("evil.example/\\x1b]0;owned\\x07"), "{text}");
    }

    #[test]
    fn empty_latencies_read_no_data_not_zero() {
        let doc = sample_doc(false);
        assert_eq!(doc.latency["pull"].count, 0);
        let text = render(&doc);
        assert!(
            text.contains("    pull                 0    no data"),
            "{text}"
        );
        assert!(
            text.contains("    no data: connect, layer, manifest"),
            "{text}"
        );
        assert!(!text.contains("0.0ms"), "{text}");
    }

    fn harness_info(saturated_seconds: u64, embedded: bool) -> HarnessInfo {
        HarnessInfo {
            cpu_seconds: 3.2,
            usable_cores: 2.0,
            affinity_cores: 2,
            cpu_quota_cores: None,
            cpu_mean_percent: Some(30.0),
            cpu_peak_percent: Some(41.26),
            cpu_wait_peak_percent: Some(2.6),
            timer_lag_max_ms: Some(3.04),
            measured_seconds: 66,
            saturated_seconds,
            saturated: saturated_seconds * 20 > 66,
            embedded_registry: embedded,
        }
    }

    #[test]
    fn the_harness_line_says_plainly_whether_it_was_saturated() {
        assert_eq!(
            harness(Some(&harness_info(0, false))),
            "not saturated (peak 41% of 2 cores, waiting for a CPU up to 3%, timer lag max 3.0ms)"
        );
        let saturated = harness(Some(&harness_info(12, false)));
        assert_eq!(
            saturated,
            "SATURATED for 12 s (18% of the run; peak 41% of 2 cores, waiting for a CPU up to 3%, timer lag max 3.0ms): \
             figures may describe pullstorm, not the target; use fewer nodes or more cores"
        );
        let embedded = harness(Some(&harness_info(12, true)));
        assert!(
            embedded.contains("timer lag max 3.0ms; the in-process embedded registry included)"),
            "{embedded}"
        );
        assert!(
            embedded.ends_with("or a registry outside pullstorm"),
            "{embedded}"
        );
        // Unknown figures read "no data", never 0.
        let no_lag = HarnessInfo {
            timer_lag_max_ms: None,
            usable_cores: 1.5,
            ..harness_info(0, false)
        };
        assert_eq!(
            harness(Some(&no_lag)),
            "not saturated (peak 41% of 1.5 cores, waiting for a CPU up to 3%, timer lag no data)"
        );
        let nothing = HarnessInfo {
            measured_seconds: 0,
            cpu_peak_percent: None,
            timer_lag_max_ms: None,
            ..harness_info(0, false)
        };
        assert_eq!(harness(Some(&nothing)), "no data");
        assert_eq!(harness(None), "no data");
        assert_eq!(
            (cores(1.0), cores(1.5), cores(4.0)),
            ("1 core".into(), "1.5 cores".into(), "4 cores".into())
        );
    }

    #[test]
    fn the_summary_has_a_harness_line() {
        let mut doc = sample_doc(true);
        doc.harness = Some(harness_info(12, false));
        let text = render(&doc);
        assert!(text.contains("\n  harness   SATURATED for 12 s"), "{text}");
    }

    #[test]
    fn the_connections_line_says_what_was_counted_and_nothing_when_nothing_was() {
        use crate::result::model::ConnectionInfo;
        let c = ConnectionInfo {
            peak: 3,
            opened: Some(8),
            requests: Some(7),
            requests_per_connection: Some(0.875),
            max_requests_per_connection: Some(1),
            https_probes: Some(1),
            tls_handshakes: Some(0),
        };
        assert_eq!(
            connections_line(&c).as_deref(),
            Some("8 opened for 7 requests (0.875 per connection, at most 1 on one), 1 HTTPS probe")
        );
        let none = ConnectionInfo {
            opened: Some(0),
            requests: Some(0),
            ..c.clone()
        };
        let none = ConnectionInfo {
            requests_per_connection: None,
            max_requests_per_connection: None,
            https_probes: Some(0),
            ..none
        };
        assert_eq!(
            connections_line(&none).as_deref(),
            Some("0 opened for 0 requests")
        );
        // A result written before connections were counted: no line, not zeros.
        assert_eq!(connections_line(&ConnectionInfo::default()), None);
    }

    #[test]
    fn measured_latencies_keep_their_rows() {
        let text = render(&sample_doc(true));
        assert!(text.contains("    pull                 2 "), "{text}");
        assert!(
            !text.contains("pull                 0    no data"),
            "{text}"
        );
    }
}
