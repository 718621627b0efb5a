//! The console summary printed at the end of a run: key figures, errors by
//! class and percentiles, in a form that reads well in a CI log. Text that
//! came from the target or the user (error samples, URL, image, names) is
//! escaped: a control sequence in a registry's error body is shown, not obeyed.

use super::model::ResultDoc;
use crate::human::{bytes, millis, rate, secs_short};
use crate::terminal::escape;
use std::fmt::Write;

/// The summary as text.
pub fn render(r: &ResultDoc) -> String {
    let mut s = String::new();
    headline(&mut s, r);
    figures(&mut s, r);
    latency_table(&mut s, r);
    errors(&mut s, r);
    failed_thresholds(&mut s, r);
    s
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

/// Fleet, pulls, bytes, retries and resources: one line each.
fn figures(s: &mut String, r: &ResultDoc) {
    let _ = writeln!(
        s,
        "  fleet     {} clusters x {} nodes = {} nodes, {} client, {}",
        r.fleet.clusters, r.fleet.nodes_per_cluster, r.fleet.nodes, r.fleet.client, r.fleet.arrival
    );
    let _ = writeln!(
        s,
        "  pulls     {} planned, {} started, {} completed, {} failed, {} interrupted",
        r.pulls.planned, r.pulls.started, r.pulls.completed, r.pulls.failed, r.pulls.interrupted
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

/// One line per threshold that failed.
fn failed_thresholds(s: &mut String, r: &ResultDoc) {
    for c in r.thresholds.checks.iter().filter(|c| !c.passed) {
        let _ = writeln!(
            s,
            "  threshold {} failed: limit {}, actual {}",
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
