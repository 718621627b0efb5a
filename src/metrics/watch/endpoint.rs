//! Reading one HTTP status endpoint: a Prometheus text page (fds against
//! `process_max_fds`, RSS, CPU, goroutines and any named metric) or an nginx
//! `stub_status` page (connections, accepted minus handled). The page is
//! fetched by [`super::scrape::get`]; this turns its text into a point.

use super::{scrape, Moment, WatchedKind, WatchedPoint, WatchedSummary};
use std::collections::BTreeMap;
use std::time::Instant;
use url::Url;

/// Prometheus metrics read from every endpoint, besides the spec's `metric_names`.
const PROM_STANDARD: [&str; 6] = [
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "go_goroutines",
    "go_threads",
];

/// The sampler state of one watched endpoint.
#[derive(Debug)]
pub(super) struct EndpointSampler {
    /// The URL, or why it could not be parsed (reported at every sample).
    url: Result<Url, String>,
    stub: bool,
    first_cpu: Option<f64>,
    last_cpu: Option<(f64, Instant)>,
}

impl EndpointSampler {
    /// The sampler of `raw` and its display name. A user or password in the
    /// URL is never kept: names, the result and error messages only ever see
    /// host, port and path.
    pub(super) fn new(raw: &str, stub: bool) -> (String, Self) {
        let url = Url::parse(raw).map_err(|e| format!("bad URL: {e}"));
        let name = match &url {
            Ok(url) => endpoint_name(url),
            Err(_) => raw.rsplit('@').next().unwrap_or_default().to_string(),
        };
        let sampler = EndpointSampler {
            url,
            stub,
            first_cpu: None,
            last_cpu: None,
        };
        (name, sampler)
    }

    pub(super) fn kind(&self) -> WatchedKind {
        if self.stub {
            WatchedKind::StubStatus
        } else {
            WatchedKind::Prometheus
        }
    }

    /// The URL to fetch, if it parsed.
    pub(super) fn url(&self) -> Option<&Url> {
        self.url.as_ref().ok()
    }

    /// The URL as shown in the result, without credentials.
    pub(super) fn shown_url(&self) -> Option<String> {
        self.url().map(without_credentials)
    }

    /// Turns what the scrape gave (`None`: the scrape task itself failed)
    /// into a point.
    pub(super) fn sample(
        &mut self,
        summary: &mut WatchedSummary,
        scraped: Option<Result<String, String>>,
        metric_names: &[String],
        at: &Moment,
    ) -> Result<Option<WatchedPoint>, String> {
        if let Err(e) = &self.url {
            return Err(e.clone());
        }
        let body = scraped.unwrap_or_else(|| Err("scrape task failed".into()))?;
        let point = if self.stub {
            read_stub_status(&body, at.t)?
        } else {
            self.read_prometheus(summary, &body, metric_names, at)?
        };
        Ok(Some(point))
    }

    fn read_prometheus(
        &mut self,
        summary: &mut WatchedSummary,
        body: &str,
        metric_names: &[String],
        at: &Moment,
    ) -> Result<WatchedPoint, String> {
        let wanted: Vec<&str> = PROM_STANDARD
            .iter()
            .copied()
            .chain(metric_names.iter().map(String::as_str))
            .collect();
        let mut m = scrape::parse_prometheus(body, &wanted);
        if m.is_empty() {
            return Err("none of the watched metrics on the page".into());
        }
        if let Some(limit) = as_count(m.remove("process_max_fds")) {
            summary.fd_limit = Some(limit);
        }
        let cpu_pct = self.cpu(summary, m.remove("process_cpu_seconds_total"), at.now);
        Ok(WatchedPoint {
            t: at.t,
            fds: as_count(m.remove("process_open_fds")),
            rss: as_count(m.remove("process_resident_memory_bytes")),
            threads: as_count(m.remove("go_threads")),
            cpu_pct,
            values: m,
        })
    }

    /// CPU use since the last page, in percent of one core, from
    /// `process_cpu_seconds_total`; keeps the seconds used since the first
    /// page in `summary`.
    fn cpu(&mut self, summary: &mut WatchedSummary, cpu: Option<f64>, now: Instant) -> Option<f64> {
        let pct = match (cpu, self.last_cpu) {
            (Some(c), Some((prev, when))) => {
                let secs = now.saturating_duration_since(when).as_secs_f64().max(1e-3);
                Some(((c - prev).max(0.0) / secs * 1000.0).round() / 10.0)
            }
            _ => None,
        };
        if let Some(c) = cpu {
            self.last_cpu = Some((c, now));
            let first = *self.first_cpu.get_or_insert(c);
            summary.cpu_seconds = Some(((c - first) * 1000.0).round() / 1000.0);
        }
        pct
    }
}

fn read_stub_status(body: &str, t: u64) -> Result<WatchedPoint, String> {
    let values: BTreeMap<String, f64> =
        scrape::parse_stub_status(body).ok_or("not a stub_status page")?;
    Ok(WatchedPoint {
        t,
        values,
        ..Default::default()
    })
}

/// A gauge read as a count: finite and not negative, or nothing.
fn as_count(v: Option<f64>) -> Option<u64> {
    v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64)
}

/// The URL with any user and password removed.
fn without_credentials(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `host:port/path` of an endpoint: short, and unambiguous within one run.
fn endpoint_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}{}", url.path()),
        None => format!("{host}{}", url.path()),
    }
}
