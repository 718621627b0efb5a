//! What the proxy does, in two forms: [`ProxySection`], the flat TOML-friendly
//! struct (a future `[proxy]` scenario section, `pullstorm proxy --config`, and
//! the CLI flags, which carry the same names), and [`ProxyConfig`], the
//! validated form the proxy runs on.
//!
//! Validation refuses every combination that would silently do nothing (a
//! `cut_first` without a cut trigger, a `stall_for` without a stall), so a
//! typo in a lab scenario fails loudly instead of reproducing no fault.

use super::http::RequestCut;
use crate::scenario::units::{ByteSize, Rate, Span};
use crate::scenario::CutWith;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The proxy's options, every one optional except `upstream` (see `docs/proxy.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// `host:port` (or `http://host:port`) of the registry or LB behind the proxy.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Longest wait for the upstream TCP connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Span,
    /// Cut a connection this long after it was accepted.
    #[serde(default)]
    pub cut_after_time: Option<Span>,
    /// Cut a connection once this many bytes were sent to the client (head included).
    #[serde(default)]
    pub cut_after_bytes: Option<ByteSize>,
    /// Cut a connection once this many body bytes of one request were received
    /// from the client and passed on (0 = right after its head): a cut mid-upload.
    #[serde(default)]
    pub cut_after_request_bytes: Option<ByteSize>,
    /// Only requests with one of these methods reach `cut_after_request_bytes` (e.g. `["PATCH", "PUT"]`).
    #[serde(default)]
    pub cut_request_methods: Option<Vec<String>>,
    /// Only requests whose target contains this text reach `cut_after_request_bytes`.
    #[serde(default)]
    pub cut_request_path_contains: Option<String>,
    /// `fin` (clean close: short body) or `rst` (reset).
    #[serde(default)]
    pub cut_with: CutWith,
    /// Cut every Nth connection that reaches a cut trigger (1 = all).
    #[serde(default)]
    pub cut_every: Option<u64>,
    /// Cut only the first K connections that reach a cut trigger.
    #[serde(default)]
    pub cut_first: Option<u64>,
    /// Cut each connection that reaches a cut trigger with this probability (uses `seed`).
    #[serde(default)]
    pub cut_probability: Option<f64>,
    /// Stop forwarding once this many bytes were sent to the client.
    #[serde(default)]
    pub stall_after_bytes: Option<ByteSize>,
    /// How long a stall lasts; absent = until the client or the proxy goes away.
    #[serde(default)]
    pub stall_for: Option<Span>,
    #[serde(default)]
    pub stall_every: Option<u64>,
    #[serde(default)]
    pub stall_first: Option<u64>,
    #[serde(default)]
    pub stall_probability: Option<f64>,
    /// Remove `Range` from requests: the registry answers 200 with the whole blob.
    #[serde(default)]
    pub strip_range: bool,
    /// Most client connections relayed at once; the rest get `over_limit`.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// What a connection over `max_connections` gets (default `refuse`).
    #[serde(default)]
    pub over_limit: Option<OverLimit>,
    /// Bandwidth toward the client, per connection.
    #[serde(default)]
    pub bandwidth: Option<Rate>,
    /// Bandwidth toward the clients, shared by all connections.
    #[serde(default)]
    pub bandwidth_total: Option<Rate>,
    /// Delay before the first byte of each response.
    #[serde(default)]
    pub latency: Option<Span>,
    /// Delay before each chunk sent to the client.
    #[serde(default)]
    pub latency_per_chunk: Option<Span>,
    /// Adds 0..jitter (uniform, seeded) to each of the delays above.
    #[serde(default)]
    pub latency_jitter: Option<Span>,
    /// Answer requests with this HTTP status instead of forwarding them.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub status_every: Option<u64>,
    #[serde(default)]
    pub status_first: Option<u64>,
    #[serde(default)]
    pub status_probability: Option<f64>,
    /// Only requests whose target contains this text are eligible (e.g. `/blobs/`).
    #[serde(default)]
    pub status_path_contains: Option<String>,
    /// Seed of every random choice (probabilities, jitter).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            upstream: None,
            connect_timeout: default_connect_timeout(),
            cut_after_time: None,
            cut_after_bytes: None,
            cut_after_request_bytes: None,
            cut_request_methods: None,
            cut_request_path_contains: None,
            cut_with: CutWith::default(),
            cut_every: None,
            cut_first: None,
            cut_probability: None,
            stall_after_bytes: None,
            stall_for: None,
            stall_every: None,
            stall_first: None,
            stall_probability: None,
            strip_range: false,
            max_connections: None,
            over_limit: None,
            bandwidth: None,
            bandwidth_total: None,
            latency: None,
            latency_per_chunk: None,
            latency_jitter: None,
            status: None,
            status_every: None,
            status_first: None,
            status_probability: None,
            status_path_contains: None,
            seed: default_seed(),
        }
    }
}

fn default_connect_timeout() -> Span {
    Span(Duration::from_secs(10))
}

fn default_seed() -> u64 {
    1
}

/// What a connection over `max_connections` gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Accepted, then reset before any byte (the client's first read fails).
    #[default]
    Refuse,
    /// Accepted, the request head read, then reset.
    Reset,
    /// Accepted and never answered (the client's read times out).
    Hang,
}

impl OverLimit {
    pub fn name(self) -> &'static str {
        match self {
            OverLimit::Refuse => "refuse",
            OverLimit::Reset => "reset",
            OverLimit::Hang => "hang",
        }
    }
}

/// Which of the eligible connections (or requests) a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Select {
    /// Every Nth (1 = all).
    Every(u64),
    /// The first K, then none.
    First(u64),
    /// Each with this probability, drawn from the proxy's seed.
    Probability(f64),
}

/// Cut a connection (FIN or RST) at a time or byte count.
#[derive(Debug, Clone, PartialEq)]
pub struct CutFault {
    pub after_time: Option<Duration>,
    pub after_bytes: Option<u64>,
    /// The trigger on bytes from the client, with the requests it watches.
    pub after_request: Option<RequestCut>,
    pub with: CutWith,
    pub select: Select,
}

/// Stop forwarding after some bytes, for a while or for good.
#[derive(Debug, Clone, PartialEq)]
pub struct StallFault {
    pub after_bytes: u64,
    /// `None`: until the client or the proxy goes away.
    pub duration: Option<Duration>,
    pub select: Select,
}

/// A connection cap and what the connections over it get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimit {
    pub max: u32,
    pub over: OverLimit,
}

/// Delays on the way to the client; zero = none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub first_byte: Duration,
    pub per_chunk: Duration,
    pub jitter: Duration,
}

/// Requests answered by the proxy itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusFault {
    pub code: u16,
    pub select: Select,
    pub path_contains: Option<String>,
}

/// The validated configuration the proxy runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// `host:port`.
    pub upstream: String,
    pub connect_timeout: Duration,
    pub cut: Option<CutFault>,
    pub stall: Option<StallFault>,
    pub strip_range: bool,
    pub limit: Option<ConnLimit>,
    /// Bytes per second per connection, toward the client.
    pub bandwidth: Option<u64>,
    /// Bytes per second for all connections together, toward the clients.
    pub bandwidth_total: Option<u64>,
    pub latency: Latency,
    pub status: Option<StatusFault>,
    pub seed: u64,
}

impl ProxyConfig {
    /// A plain TCP proxy to `upstream` (`host:port`), no faults.
    pub fn passthrough(upstream: &str) -> Result<ProxyConfig, String> {
        ProxyConfig::from_section(&ProxySection {
            upstream: Some(upstream.to_string()),
            ..ProxySection::default()
        })
    }

    /// Checks a section and turns it into a config; errors name the offending key.
    pub fn from_section(s: &ProxySection) -> Result<ProxyConfig, String> {
        let upstream = match &s.upstream {
            Some(u) => normalize_upstream(u).map_err(|e| format!("upstream: {e}"))?,
            None => return Err("upstream: required (host:port of the registry or LB)".into()),
        };
        let cut = cut_fault(s)?;
        let stall = stall_fault(s)?;
        let limit = conn_limit(s)?;
        for (key, rate) in [
            ("bandwidth", s.bandwidth),
            ("bandwidth_total", s.bandwidth_total),
        ] {
            if rate == Some(Rate(0)) {
                return Err(format!("{key}: must be above 0 (leave it out for no cap)"));
            }
        }
        let latency = latency(s)?;
        let status = status_fault(s)?;
        Ok(ProxyConfig {
            upstream,
            connect_timeout: s.connect_timeout.0,
            cut,
            stall,
            strip_range: s.strip_range,
            limit,
            bandwidth: s.bandwidth.map(|r| r.0),
            bandwidth_total: s.bandwidth_total.map(|r| r.0),
            latency,
            status,
            seed: s.seed,
        })
    }

    /// Whether request heads must be parsed (Range stripping, status injection).
    pub fn http_aware(&self) -> bool {
        self.strip_range
            || self.status.is_some()
            || self.cut.as_ref().is_some_and(|c| c.after_request.is_some())
    }
}

/// The cut, when a trigger (`cut_after_time`, `cut_after_bytes`) is given.
fn cut_fault(s: &ProxySection) -> Result<Option<CutFault>, String> {
    let select = select("cut", s.cut_every, s.cut_first, s.cut_probability)?;
    let after_request = request_cut(s)?;
    if s.cut_after_time.is_some() || s.cut_after_bytes.is_some() || after_request.is_some() {
        Ok(Some(CutFault {
            after_time: s.cut_after_time.map(|t| t.0),
            after_bytes: s.cut_after_bytes.map(|b| b.0),
            after_request,
            with: s.cut_with,
            select: select.unwrap_or(Select::Every(1)),
        }))
    } else if select.is_some() {
        Err("cut_every/cut_first/cut_probability: need cut_after_time, cut_after_bytes or cut_after_request_bytes".into())
    } else {
        Ok(None)
    }
}

/// The trigger on request bytes, with the methods and targets it watches.
fn request_cut(s: &ProxySection) -> Result<Option<RequestCut>, String> {
    let Some(after) = s.cut_after_request_bytes else {
        if s.cut_request_methods.is_some() || s.cut_request_path_contains.is_some() {
            return Err(
                "cut_request_methods/cut_request_path_contains: need cut_after_request_bytes"
                    .into(),
            );
        }
        return Ok(None);
    };
    let mut methods = Vec::new();
    for m in s.cut_request_methods.iter().flatten() {
        let m = m.trim();
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "cut_request_methods: {m:?} is not an HTTP method (e.g. PATCH, PUT)"
            ));
        }
        methods.push(m.to_ascii_uppercase());
    }
    Ok(Some(RequestCut {
        after: after.0,
        methods,
        path_contains: s
            .cut_request_path_contains
            .clone()
            .filter(|p| !p.is_empty()),
    }))
}

/// The stall, when `stall_after_bytes` is given.
fn stall_fault(s: &ProxySection) -> Result<Option<StallFault>, String> {
    let select = select("stall", s.stall_every, s.stall_first, s.stall_probability)?;
    match s.stall_after_bytes {
        Some(after) => Ok(Some(StallFault {
            after_bytes: after.0,
            duration: s.stall_for.map(|d| d.0),
            select: select.unwrap_or(Select::Every(1)),
        })),
        None if select.is_some() || s.stall_for.is_some() => Err(
            "stall_for/stall_every/stall_first/stall_probability: need stall_after_bytes".into(),
        ),
        None => Ok(None),
    }
}

/// The connection cap, when `max_connections` is given.
fn conn_limit(s: &ProxySection) -> Result<Option<ConnLimit>, String> {
    match (s.max_connections, s.over_limit) {
        (Some(max), over) => Ok(Some(ConnLimit {
            max,
            over: over.unwrap_or_default(),
        })),
        (None, Some(_)) => Err("over_limit: needs max_connections".into()),
        (None, None) => Ok(None),
    }
}

/// The delays; jitter alone would delay nothing.
fn latency(s: &ProxySection) -> Result<Latency, String> {
    let latency = Latency {
        first_byte: s.latency.map_or(Duration::ZERO, |d| d.0),
        per_chunk: s.latency_per_chunk.map_or(Duration::ZERO, |d| d.0),
        jitter: s.latency_jitter.map_or(Duration::ZERO, |d| d.0),
    };
    if !latency.jitter.is_zero() && latency.first_byte.is_zero() && latency.per_chunk.is_zero() {
        return Err("latency_jitter: needs latency or latency_per_chunk".into());
    }
    Ok(latency)
}

/// The injected status, when `status` is given.
fn status_fault(s: &ProxySection) -> Result<Option<StatusFault>, String> {
    let select = select(
        "status",
        s.status_every,
        s.status_first,
        s.status_probability,
    )?;
    match s.status {
        Some(code) if !(200..=599).contains(&code) => Err(format!(
            "status: {code} is not an HTTP status from 200 to 599"
        )),
        Some(code) => Ok(Some(StatusFault {
            code,
            select: select.unwrap_or(Select::Every(1)),
            path_contains: s.status_path_contains.clone().filter(|p| !p.is_empty()),
        })),
        None if select.is_some() || s.status_path_contains.is_some() => Err(
            "status_every/status_first/status_probability/status_path_contains: need status".into(),
        ),
        None => Ok(None),
    }
}

/// At most one selection key per fault; `None` when none is given.
fn select(
    fault: &str,
    every: Option<u64>,
    first: Option<u64>,
    probability: Option<f64>,
) -> Result<Option<Select>, String> {
    let given = [every.is_some(), first.is_some(), probability.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(format!(
            "{fault}_every, {fault}_first, {fault}_probability: give at most one"
        ));
    }
    if let Some(n) = every {
        if n == 0 {
            return Err(format!("{fault}_every: must be 1 or more (1 = every one)"));
        }
        return Ok(Some(Select::Every(n)));
    }
    if let Some(k) = first {
        return Ok(Some(Select::First(k)));
    }
    if let Some(p) = probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("{fault}_probability: {p} is not between 0 and 1"));
        }
        return Ok(Some(Select::Probability(p)));
    }
    Ok(None)
}

/// `host:port`, `http://host:port` or `http://host:port/` -> `host:port`.
fn normalize_upstream(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.starts_with("https://") {
        return Err(format!(
            "`{t}`: give host:port; the proxy relays TCP, so TLS passes through untouched"
        ));
    }
    let t = t.strip_prefix("http://").unwrap_or(t);
    let t = t.strip_suffix('/').unwrap_or(t);
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(format!("`{text}` has no port (use host:port)"));
    };
    let host_ok = !host.is_empty() && !host.contains('/') && !host.chars().any(char::is_whitespace);
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("`{text}` is not host:port"));
    }
    Ok(t.to_string())
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Select::Every(1) => f.write_str("all"),
            Select::Every(n) => write!(f, "every {n}th"),
            Select::First(k) => write!(f, "first {k}"),
            Select::Probability(p) => write!(f, "p={p}"),
        }
    }
}

impl fmt::Display for ProxyConfig {
    /// One line naming every active fault, for the startup banner and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = &self.cut {
            let with = match c.with {
                CutWith::Fin => "fin",
                CutWith::Rst => "rst",
            };
            let mut at = Vec::new();
            if let Some(t) = c.after_time {
                at.push(format!("{}", Span(t)));
            }
            if let Some(b) = c.after_bytes {
                at.push(format!("{}", ByteSize(b)));
            }
            if let Some(r) = &c.after_request {
                let methods = match r.methods.is_empty() {
                    true => "request".to_string(),
                    false => r.methods.join("/"),
                };
                let path = r
                    .path_contains
                    .as_deref()
                    .map_or(String::new(), |p| format!(" to {p:?}"));
                at.push(format!("{} of a {methods} body{path}", ByteSize(r.after)));
            }
            parts.push(format!(
                "cut {with} after {} ({})",
                at.join(" or "),
                c.select
            ));
        }
        if let Some(s) = &self.stall {
            let how_long = s
                .duration
                .map_or("ever".to_string(), |d| Span(d).to_string());
            parts.push(format!(
                "stall after {} for {how_long} ({})",
                ByteSize(s.after_bytes),
                s.select
            ));
        }
        if self.strip_range {
            parts.push("strip Range".into());
        }
        if let Some(l) = self.limit {
            parts.push(format!("max {} connections, then {}", l.max, l.over.name()));
        }
        if let Some(b) = self.bandwidth {
            parts.push(format!("{}/connection", Rate(b)));
        }
        if let Some(b) = self.bandwidth_total {
            parts.push(format!("{} total", Rate(b)));
        }
        let l = self.latency;
        if !l.first_byte.is_zero() || !l.per_chunk.is_zero() {
            parts.push(format!(
                "latency {} + {}/chunk (jitter {})",
                Span(l.first_byte),
                Span(l.per_chunk),
                Span(l.jitter)
            ));
        }
        if let Some(s) = &self.status {
            let path = s
                .path_contains
                .as_deref()
                .map_or(String::new(), |p| format!(" on targets containing {p:?}"));
            parts.push(format!("status {}{path} ({})", s.code, s.select));
        }
        if parts.is_empty() {
            f.write_str("no faults")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<ProxyConfig, String> {
        let s: ProxySection = toml::from_str(text).map_err(|e| e.to_string())?;
        ProxyConfig::from_section(&s)
    }

    #[test]
    fn toml_with_units_and_defaults() {
        let c = from_toml(
            r#"
upstream = "http://127.0.0.1:5000/"
cut_after_time = "60s"
cut_with = "rst"
cut_first = 2
stall_after_bytes = "1MiB"
bandwidth = "10MB/s"
bandwidth_total = "1Gbit"
latency = "200ms"
latency_jitter = "50ms"
max_connections = 100
over_limit = "hang"
status = 503
status_path_contains = "/blobs/"
status_probability = 0.25
"#,
        )
        .unwrap();
        assert_eq!(c.upstream, "127.0.0.1:5000");
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        let cut = c.cut.unwrap();
        assert_eq!(cut.after_time, Some(Duration::from_secs(60)));
        assert_eq!((cut.with, cut.select), (CutWith::Rst, Select::First(2)));
        let stall = c.stall.unwrap();
        assert_eq!((stall.after_bytes, stall.duration), (1 << 20, None));
        assert_eq!(stall.select, Select::Every(1));
        assert_eq!(c.bandwidth, Some(10_000_000));
        assert_eq!(c.bandwidth_total, Some(125_000_000));
        assert_eq!(c.latency.first_byte, Duration::from_millis(200));
        assert_eq!(
            c.limit,
            Some(ConnLimit {
                max: 100,
                over: OverLimit::Hang
            })
        );
        let status = c.status.unwrap();
        assert_eq!(status.select, Select::Probability(0.25));
        assert_eq!(status.path_contains.as_deref(), Some("/blobs/"));
        assert_eq!(c.seed, 1);
    }

    #[test]
    fn defaults_are_a_plain_proxy() {
        let c = ProxyConfig::passthrough("localhost:8080").unwrap();
        assert_eq!(c.to_string(), "no faults");
        assert!(!c.http_aware());
        assert_eq!(c.cut, None);
        let max = from_toml("upstream = \"a:1\"\nmax_connections = 3").unwrap();
        assert_eq!(max.limit.unwrap().over, OverLimit::Refuse);
    }

    #[test]
    fn silent_no_ops_and_bad_values_are_refused() {
        let bad = [
            ("", "upstream"),
            ("upstream = \"nope\"", "upstream"),
            ("upstream = \"https://a:1\"", "upstream"),
            ("upstream = \"a:0\"", "upstream"),
            ("upstream = \"a:1/x\"", "upstream"),
            ("upstream = \"a:1\"\ncut_first = 1", "cut_"),
            (
                "upstream = \"a:1\"\ncut_after_bytes = 1\ncut_first = 1\ncut_every = 2",
                "at most one",
            ),
            (
                "upstream = \"a:1\"\ncut_after_bytes = 1\ncut_every = 0",
                "cut_every",
            ),
            (
                "upstream = \"a:1\"\ncut_after_bytes = 1\ncut_probability = 1.5",
                "cut_probability",
            ),
            (
                "upstream = \"a:1\"\nstall_for = \"1s\"",
                "stall_after_bytes",
            ),
            (
                "upstream = \"a:1\"\nover_limit = \"hang\"",
                "max_connections",
            ),
            ("upstream = \"a:1\"\nbandwidth = 0", "bandwidth"),
            (
                "upstream = \"a:1\"\nlatency_jitter = \"1s\"",
                "latency_jitter",
            ),
            ("upstream = \"a:1\"\nstatus = 99", "status"),
            ("upstream = \"a:1\"\nstatus_first = 1", "need status"),
            ("upstream = \"a:1\"\ncut_after = 1", "unknown field"),
            ("upstream = \"a:1\"\ncut_with = \"kill\"", "unknown variant"),
            ("upstream = \"a:1\"\nbandwidth = \"10MB\"", "not a rate"),
        ];
        for (text, want) in bad {
            let e = from_toml(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn display_names_each_fault() {
        let c = from_toml(
            "upstream = \"a:1\"\ncut_after_bytes = \"1MiB\"\ncut_with = \"rst\"\nstrip_range = true\nstatus = 429\nstatus_first = 1",
        )
        .unwrap();
        let text = c.to_string();
        for want in [
            "cut rst after 1MiB (all)",
            "strip Range",
            "status 429 (first 1)",
        ] {
            assert!(text.contains(want), "{text}");
        }
    }
}
