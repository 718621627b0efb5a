//! `pullstorm run --metrics-listen ADDR`: the run's live figures at
//! `http://ADDR/metrics` in the Prometheus text exposition format (0.0.4), for
//! a Prometheus (or a k6-style dashboard) watching a storm, one shard per pod.
//!
//! The figures are result.json's, from the same source: the recorder hands
//! its cumulative counts to [`Exported::publish`] once per closed second (the
//! same counts `result::build` reads at the end), and the levels (pulls in
//! flight, connections open, fds) are read from the run's atomic [`Gauges`]
//! at scrape time. Nothing is added per chunk or per event: one small copy
//! per second, one lock per scrape. After the last second closes, the
//! counters equal result.json's `pulls`, `layers`, `bytes`, `errors` and
//! `retries.total`; `--metrics-linger` keeps the endpoint up for the final
//! scrape, with `pullstorm_run_finished 1`.
//!
//! [`render`] is pure (unit-tested on its text and name rules); [`bind`]
//! opens the socket before the run starts, so a bad address is exit 2 and a
//! port in use exit 3 before any node pulls.

use super::events::Gauges;
use super::recorder::Recorder;
use crate::exit::Failure;
use crate::net::FaultClass;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The recorder's cumulative counts as of its last closed second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Seconds closed so far (0: nothing measured yet).
    pub seconds: u64,
    pub pulls_started: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub layers_completed: u64,
    pub layers_failed: u64,
    /// Body bytes received, wasted ones included (result.json `bytes.downloaded`).
    pub downloaded_bytes: u64,
    pub wasted_bytes: u64,
    pub retries: u64,
    /// Every fixed class (zero when not seen) plus each `http_<code>` seen,
    /// as result.json's `errors`.
    pub errors_by_class: BTreeMap<String, u64>,
    pub harness_cpu_seconds: f64,
}

impl Totals {
    /// What the recorder has counted so far.
    pub fn of(rec: &Recorder) -> Totals {
        let mut errors_by_class: BTreeMap<String, u64> =
            FaultClass::FIXED.iter().map(|c| (c.key(), 0)).collect();
        for (class, stat) in &rec.errors {
            errors_by_class.insert(class.key(), stat.count);
        }
        Totals {
            seconds: rec.timeline.len() as u64,
            pulls_started: rec.pulls_started,
            pulls_completed: rec.pulls_completed,
            pulls_failed: rec.pulls_failed,
            layers_completed: rec.layers_completed,
            layers_failed: rec.layers_failed,
            downloaded_bytes: rec.bytes_downloaded(),
            wasted_bytes: rec.bytes_wasted,
            retries: rec.retries,
            errors_by_class,
            harness_cpu_seconds: rec.harness_cpu_seconds,
        }
    }
}

/// Levels read at scrape time from the run's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Levels {
    pub pulls_in_flight: i64,
    pub connections_open: i64,
    /// The last closed second's fds (`None` before the first second).
    pub fds_open: Option<u64>,
}

impl Levels {
    fn read(g: &Gauges) -> Levels {
        Levels {
            pulls_in_flight: g.active_pulls.load(Ordering::Relaxed),
            connections_open: g.connections.current(),
            fds_open: g.fds.get(),
        }
    }
}

/// What the endpoint serves, shared by the recorder (which publishes), the
/// storm (which attaches the gauges) and the HTTP task (which reads).
#[derive(Debug, Default)]
pub struct Exported {
    totals: Mutex<Totals>,
    gauges: OnceLock<Arc<Gauges>>,
    finished: AtomicBool,
}

impl Exported {
    /// The recorder's counts after a closed second.
    pub fn publish(&self, totals: Totals) {
        if let Ok(mut t) = self.totals.lock() {
            *t = totals;
        }
    }

    /// The run's gauges, once the storm starts (levels are absent before).
    pub fn attach(&self, gauges: Arc<Gauges>) {
        let _ = self.gauges.set(gauges);
    }

    /// The result is written: the counters are final.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// The exposition text as of now.
    pub fn text(&self) -> String {
        let totals = self.totals.lock().map(|t| t.clone()).unwrap_or_default();
        let levels = self.gauges.get().map(|g| Levels::read(g));
        render(&totals, levels, self.finished.load(Ordering::Relaxed))
    }
}

/// One metric family of the exposition.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
}

impl Family<'_> {
    fn head(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
    }

    fn sample(&self, out: &mut String, value: impl std::fmt::Display) {
        self.head(out);
        let _ = writeln!(out, "{} {}", self.name, value);
    }
}

const fn counter<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        kind: "counter",
        help,
    }
}

const fn gauge<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        kind: "gauge",
        help,
    }
}

/// The exposition text: counters from `totals`, levels when the storm has
/// started (`levels`), figures not measured yet left out rather than shown as 0.
pub fn render(totals: &Totals, levels: Option<Levels>, finished: bool) -> String {
    let mut out = String::with_capacity(4096);
    let t = totals;
    for (family, value) in [
        (
            counter("pullstorm_pulls_started_total", "Pulls that sent their first request."),
            t.pulls_started,
        ),
        (
            counter("pullstorm_pulls_completed_total", "Pulls that completed."),
            t.pulls_completed,
        ),
        (
            counter("pullstorm_pulls_failed_total", "Pulls that failed for good."),
            t.pulls_failed,
        ),
        (
            counter("pullstorm_layers_completed_total", "Layer blobs downloaded and verified."),
            t.layers_completed,
        ),
        (
            counter("pullstorm_layers_failed_total", "Layer blobs given up on."),
            t.layers_failed,
        ),
        (
            counter(
                "pullstorm_downloaded_bytes_total",
                "Body bytes received, wasted ones included.",
            ),
            t.downloaded_bytes,
        ),
        (
            counter(
                "pullstorm_wasted_bytes_total",
                "Bytes downloaded and then thrown away (restart from zero, bad digest, skipped prefix).",
            ),
            t.wasted_bytes,
        ),
        (
            counter("pullstorm_retries_total", "Blob attempts tried again after a fault."),
            t.retries,
        ),
    ] {
        family.sample(&mut out, value);
    }
    let errors = counter(
        "pullstorm_errors_total",
        "Faults of exchanges, by class (as result.json errors).",
    );
    errors.head(&mut out);
    for (class, n) in &t.errors_by_class {
        let _ = writeln!(
            out,
            "{}{{class=\"{}\"}} {}",
            errors.name,
            escape_label(class),
            n
        );
    }
    if t.seconds > 0 {
        counter(
            "pullstorm_harness_cpu_seconds_total",
            "CPU time the harness process used.",
        )
        .sample(&mut out, t.harness_cpu_seconds);
        gauge(
            "pullstorm_run_measured_seconds",
            "Seconds of the run measured so far (closed timeline rows).",
        )
        .sample(&mut out, t.seconds);
    }
    if let Some(l) = levels {
        gauge("pullstorm_pulls_in_flight", "Pulls in progress now.")
            .sample(&mut out, l.pulls_in_flight);
        gauge("pullstorm_connections_open", "Client connections open now.")
            .sample(&mut out, l.connections_open);
        if let Some(fds) = l.fds_open {
            gauge(
                "pullstorm_fds_open",
                "File descriptors the harness held in the last closed second.",
            )
            .sample(&mut out, fds);
        }
    }
    gauge(
        "pullstorm_run_finished",
        "Whether result.json is written (then 1: the counters are final).",
    )
    .sample(&mut out, u8::from(finished));
    out
}

/// A label value as the exposition format wants it: `\`, `"` and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `IP:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces) for `--metrics-listen`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, Failure> {
    let t = text.trim();
    let full = match t.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => t.to_string(),
    };
    full.parse().map_err(|_| {
        Failure::bad_input(format!(
            "--metrics-listen: `{text}` is not an address to listen on (use IP:PORT, e.g. 0.0.0.0:9464, [::]:9464 or 127.0.0.1:0)"
        ))
    })
}

/// The metrics endpoint, serving on its own task until dropped or lingered out.
pub struct MetricsServer {
    pub addr: SocketAddr,
    pub exported: Arc<Exported>,
    task: JoinHandle<()>,
}

/// Opens `--metrics-listen` now (exit 2 for an address that is none, 3 when
/// it cannot be bound) and serves `/metrics` from then on.
pub async fn bind(text: &str) -> Result<MetricsServer, Failure> {
    let wanted = parse_addr(text)?;
    let listener = TcpListener::bind(wanted).await.map_err(|e| {
        Failure::cannot_proceed(format!("--metrics-listen: cannot listen on {wanted}: {e}"))
    })?;
    let addr = listener.local_addr().map_err(|e| {
        Failure::cannot_proceed(format!(
            "--metrics-listen: cannot read the bound address: {e}"
        ))
    })?;
    let exported = Arc::new(Exported::default());
    let task = tokio::spawn(accept(listener, exported.clone()));
    Ok(MetricsServer {
        addr,
        exported,
        task,
    })
}

async fn accept(listener: TcpListener, exported: Arc<Exported>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let exported = exported.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        std::future::ready(Ok::<_, std::convert::Infallible>(answer(
                            &req, &exported,
                        )))
                    });
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!("metrics connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of fds under a storm: the scrape waits, the run goes on.
                tracing::debug!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn answer<B>(req: &Request<B>, exported: &Exported) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, exported.text()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "pullstorm serves /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

impl MetricsServer {
    /// The result is written: marks the counters final, then keeps serving for
    /// `linger` or until `shutdown` completes, whichever comes first.
    pub async fn linger(self, linger: Duration, shutdown: impl Future) {
        self.exported.finish();
        if !linger.is_zero() {
            eprintln!(
                "pullstorm: metrics stay at http://{}/metrics for {} (--metrics-linger; Ctrl-C ends it)",
                self.addr,
                crate::human::secs(linger.as_secs_f64())
            );
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = shutdown => {}
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals() -> Totals {
        let mut errors_by_class: BTreeMap<String, u64> =
            FaultClass::FIXED.iter().map(|c| (c.key(), 0)).collect();
        errors_by_class.insert("unexpected_eof".into(), 3);
        errors_by_class.insert("http_503".into(), 2);
        Totals {
            seconds: 12,
            pulls_started: 10,
            pulls_completed: 8,
            pulls_failed: 1,
            layers_completed: 30,
            layers_failed: 2,
            downloaded_bytes: 1_234_567,
            wasted_bytes: 4096,
            retries: 5,
            errors_by_class,
            harness_cpu_seconds: 1.25,
        }
    }

    /// Every line is a comment (`# HELP`/`# TYPE name kind`) or a sample
    /// `name{labels} value`; names follow the Prometheus rules; every sample's
    /// family has HELP and TYPE before it; counters end in `_total`.
    fn check_grammar(text: &str) -> BTreeMap<String, String> {
        let mut types = BTreeMap::new();
        let mut helped = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has text");
                assert!(!help.is_empty());
                assert!(helped.insert(name.to_string()), "HELP twice: {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE before HELP: {line}");
                assert!(types.insert(name.to_string(), kind.to_string()).is_none());
            } else {
                let (series, value) = line.rsplit_once(' ').expect("sample has a value");
                let name = series.split('{').next().unwrap();
                assert!(types.contains_key(name), "sample of no family: {line}");
                assert!(value.parse::<f64>().is_ok(), "{line}");
                if let Some(labels) = series.strip_prefix(name) {
                    if !labels.is_empty() {
                        assert!(labels.starts_with("{class=\"") && labels.ends_with("\"}"));
                    }
                }
            }
        }
        for (name, kind) in &types {
            assert!(name.starts_with("pullstorm_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
        }
        types
    }

    #[test]
    fn the_exposition_text_is_as_prometheus_reads_it() {
        let text = render(
            &totals(),
            Some(Levels {
                pulls_in_flight: 4,
                connections_open: 7,
                fds_open: Some(42),
            }),
            false,
        );
        let expected_start = "\
# HELP pullstorm_pulls_started_total Pulls that sent their first request.
# TYPE pullstorm_pulls_started_total counter
pullstorm_pulls_started_total 10
# HELP pullstorm_pulls_completed_total Pulls that completed.
# TYPE pullstorm_pulls_completed_total counter
pullstorm_pulls_completed_total 8
";
        assert!(text.starts_with(expected_start), "{text}");
        for line in [
            "pullstorm_downloaded_bytes_total 1234567",
            "pullstorm_wasted_bytes_total 4096",
            "pullstorm_retries_total 5",
            "pullstorm_errors_total{class=\"unexpected_eof\"} 3",
            "pullstorm_errors_total{class=\"http_503\"} 2",
            "pullstorm_errors_total{class=\"connection_reset\"} 0",
            "pullstorm_harness_cpu_seconds_total 1.25",
            "pullstorm_pulls_in_flight 4",
            "pullstorm_connections_open 7",
            "pullstorm_fds_open 42",
            "pullstorm_run_measured_seconds 12",
            "pullstorm_run_finished 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let types = check_grammar(&text);
        assert_eq!(types["pullstorm_errors_total"], "counter");
        assert_eq!(types["pullstorm_fds_open"], "gauge");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn figures_not_measured_yet_are_left_out_not_zero() {
        let text = render(&Totals::default(), None, false);
        check_grammar(&text);
        for absent in [
            "pullstorm_fds_open",
            "pullstorm_pulls_in_flight",
            "pullstorm_harness_cpu_seconds_total",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        let no_fds = render(
            &totals(),
            Some(Levels {
                fds_open: None,
                ..Default::default()
            }),
            true,
        );
        assert!(!no_fds.contains("pullstorm_fds_open"));
        assert!(no_fds.contains("\npullstorm_run_finished 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_addr(":9464").unwrap(),
            "0.0.0.0:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[::]:9464").unwrap(),
            "[::]:9464".parse().unwrap()
        );
        for bad in ["", "9464", "localhost:9464", "0.0.0.0:99999", "1.2.3.4"] {
            let e = parse_addr(bad).unwrap_err();
            assert_eq!(e.code, crate::exit::BAD_INPUT, "{bad}");
            assert!(e.message.contains("--metrics-listen"), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn a_port_in_use_cannot_proceed() {
        let first = bind("127.0.0.1:0").await.unwrap();
        let e = match bind(&first.addr.to_string()).await {
            Err(e) => e,
            Ok(_) => panic!("bound {} twice", first.addr),
        };
        assert_eq!(e.code, crate::exit::CANNOT_PROCEED);
        assert!(e.message.contains(&first.addr.to_string()), "{}", e.message);
    }
}
