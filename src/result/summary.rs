//! The console summary printed at the end of a run: key figures, errors by
//! class and percentiles, in a form that reads well in a CI log.

use super::model::ResultDoc;
use std::fmt::Write;

/// Human bytes (binary units).
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Milliseconds as a short human duration.
pub fn millis(ms: f64) -> String {
    if ms >= 60_000.0 {
        format!("{:.1}m", ms / 60_000.0)
    } else if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// The summary as text.
pub fn render(r: &ResultDoc) -> String {
    let mut s = String::new();
    let verdict = if !r.thresholds.passed {
        "FAILED thresholds"
    } else if !r.complete {
        "INCOMPLETE"
    } else {
        "OK"
    };
    let secs = r.duration_ms as f64 / 1000.0;
    let _ = writeln!(
        s,
        "pullstorm: {} - {} ({:.1}s, stopped: {})",
        r.scenario.name, verdict, secs, r.stop_reason
    );
    let _ = writeln!(
        s,
        "  target    {} {}{}",
        r.target.url,
        r.target.image,
        if r.target.embedded {
            " (embedded registry)"
        } else {
            ""
        }
    );
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
        "  bytes     {} downloaded, {} wasted; mean {}/s, peak {}/s",
        bytes(r.bytes.downloaded as f64),
        bytes(r.bytes.wasted as f64),
        bytes(r.throughput.mean_bytes_per_sec),
        bytes(r.throughput.peak_bytes_per_sec as f64)
    );
    let _ = writeln!(
        s,
        "  retries   {}   fds peak {} of {}   connections peak {}",
        r.retries.total, r.fd.client_peak, r.fd.client_limit, r.connections.peak
    );
    let _ = writeln!(
        s,
        "  latency          count        p50        p90        p99        max"
    );
    for (name, l) in &r.latency {
        if l.count == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "    {:<12} {:>8} {:>10} {:>10} {:>10} {:>10}",
            name,
            l.count,
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.max)
        );
    }
    let seen: Vec<_> = r.error_details.iter().collect();
    if seen.is_empty() {
        let _ = writeln!(s, "  errors    none");
    } else {
        let _ = writeln!(s, "  errors");
        for e in seen {
            let _ = writeln!(
                s,
                "    {:<26} {:>8}  first {:.1}s last {:.1}s  e.g. {}",
                e.class, e.count, e.first_s, e.last_s, e.sample
            );
        }
    }
    for c in r.thresholds.checks.iter().filter(|c| !c.passed) {
        let _ = writeln!(
            s,
            "  threshold {} failed: limit {}, actual {}",
            c.name, c.limit, c.actual
        );
    }
    s
}
