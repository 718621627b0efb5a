//! Scraping HTTP status endpoints: a Prometheus text exposition (the
//! registry's `/metrics`) and nginx's `stub_status`. One small GET on its own
//! connection through the project's HTTP client ([`crate::net::send`]), plain
//! http only, bounded in time and size; the parsers are pure functions over
//! the body text.

use crate::net::{self, ConnectionGauge, Fault, Timeouts, Transport};
use http::header::{HeaderValue, ACCEPT, USER_AGENT};
use http::{HeaderMap, Method};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Largest body read from an endpoint; a Prometheus page is usually < 100 KiB.
const MAX_BODY: usize = 8 << 20;

/// GETs `url` (http only) within `timeout`, returning the body as text.
pub async fn get(url: &Url, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, fetch(url, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn fetch(url: &Url, timeout: Duration) -> Result<String, String> {
    if url.scheme() != "http" {
        return Err(format!("{} is not supported (http only)", url.scheme()));
    }
    let transport = transport(timeout);
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("text/plain"));
    headers.insert(USER_AGENT, HeaderValue::from_static("pullstorm-watch"));
    let exchange = net::send(Method::GET, url, headers, &transport)
        .await
        .map_err(describe)?;
    let body = net::read_small(exchange.body, MAX_BODY, transport.timeouts.stall)
        .await
        .map_err(|f| format!("body: {}", describe(f)))?;
    if !exchange.status.is_success() {
        return Err(format!("HTTP {}", exchange.status.as_u16()));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A transport of its own, so scrapes never count in the fleet's connection
/// gauge. [`get`]'s timeout bounds the whole GET; the transport's per-phase
/// timeouts are only a backstop set beyond it, so a silent endpoint always
/// reads "no answer" rather than whichever timer fired first.
fn transport(timeout: Duration) -> Transport {
    let backstop = timeout * 2;
    Transport {
        timeouts: Timeouts {
            connect: backstop,
            response: backstop,
            stall: Some(backstop),
        },
        gauge: Arc::new(ConnectionGauge::default()),
        tls: None,
        loopback_source: None,
        read_buffer: net::FULL_SPEED_READ_BUFFER,
        connections: Default::default(),
        pool: None,
    }
}

/// `connect_refused: connect 127.0.0.1:9: Connection refused (os error 111)`.
fn describe(f: Fault) -> String {
    format!("{}: {}", f.class, f.detail)
}

/// Sums of the wanted metrics in a Prometheus text exposition, summed over
/// all label sets (`http_requests_total{code="200"}` and `{code="503"}` add
/// up). Unparsable lines are skipped: a partial page still yields what it has.
pub fn parse_prometheus(text: &str, wanted: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = split_sample(line) else {
            continue;
        };
        if wanted.contains(&name) {
            *out.entry(name.to_string()).or_insert(0.0) += value;
        }
    }
    out
}

/// `name{labels} value [timestamp]` -> (name, value).
fn split_sample(line: &str) -> Option<(&str, f64)> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        rest = &rest[labels_end(rest)?..];
    }
    let value = rest.split_whitespace().next()?;
    Some((name, parse_value(value)?))
}

/// Index just past the `}` closing a label set, skipping quoted values
/// (which may hold `}` and escaped quotes).
fn labels_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// nginx `stub_status`:
/// ```text
/// Active connections: 291
/// server accepts handled requests
///  16630948 16630948 31070465
/// Reading: 6 Writing: 179 Waiting: 106
/// ```
/// Gives `active`, `accepts`, `handled`, `requests`, `reading`, `writing`,
/// `waiting`, and `dropped` (accepts - handled: connections nginx accepted
/// and closed at once for want of `worker_connections`).
pub fn parse_stub_status(text: &str) -> Option<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(v) = line.strip_prefix("Active connections:") {
            out.insert("active".into(), v.trim().parse().ok()?);
        } else if line.starts_with("server accepts") {
            let nums: Vec<f64> = lines
                .next()?
                .split_whitespace()
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            let [accepts, handled, requests] = nums[..] else {
                return None;
            };
            out.insert("accepts".into(), accepts);
            out.insert("handled".into(), handled);
            out.insert("requests".into(), requests);
            out.insert("dropped".into(), accepts - handled);
        } else if line.starts_with("Reading:") {
            let f: Vec<&str> = line.split_whitespace().collect();
            for pair in f.chunks(2) {
                if let [k, v] = pair {
                    let key = k.trim_end_matches(':').to_lowercase();
                    out.insert(key, v.parse().ok()?);
                }
            }
        }
    }
    out.contains_key("active").then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 1234
# HELP process_open_fds Number of open file descriptors.
process_open_fds 517
process_max_fds 1024
process_resident_memory_bytes 5.0331648e+07
registry_http_in_flight_requests{handler="blob"} 40
registry_http_in_flight_requests{handler="manifest",odd="a}b \"c\""} 2
registry_http_in_flight_requests{handler="tags"} 1 1700000000000
weird_metric +Inf
broken_line{unclosed="x 5
"#;

    #[test]
    fn prometheus_wanted_names_summed_over_labels() {
        let m = parse_prometheus(
            PAGE,
            &[
                "go_goroutines",
                "process_open_fds",
                "process_max_fds",
                "process_resident_memory_bytes",
                "registry_http_in_flight_requests",
                "weird_metric",
                "absent_metric",
            ],
        );
        assert_eq!(m["go_goroutines"], 1234.0);
        assert_eq!(m["process_open_fds"], 517.0);
        assert_eq!(m["process_max_fds"], 1024.0);
        assert_eq!(m["process_resident_memory_bytes"], 50_331_648.0);
        assert_eq!(m["registry_http_in_flight_requests"], 43.0);
        assert!(m["weird_metric"].is_infinite());
        assert!(!m.contains_key("absent_metric"));
        assert!(!m.contains_key("broken_line"));
    }

    #[test]
    fn stub_status_fields() {
        let text = "Active connections: 291 \nserver accepts handled requests\n 16630948 16630940 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";
        let s = parse_stub_status(text).unwrap();
        assert_eq!(s["active"], 291.0);
        assert_eq!(s["accepts"], 16630948.0);
        assert_eq!(s["handled"], 16630940.0);
        assert_eq!(s["dropped"], 8.0);
        assert_eq!(s["requests"], 31070465.0);
        assert_eq!(s["reading"], 6.0);
        assert_eq!(s["writing"], 179.0);
        assert_eq!(s["waiting"], 106.0);
        assert_eq!(parse_stub_status("<html>404</html>"), None);
    }
}
