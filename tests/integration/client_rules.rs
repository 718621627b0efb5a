//! The client profiles' rules, one by one, through the real binary: the embedded
//! registry serves the image, and a scripted front of the test's own (tokio,
//! 127.0.0.1:0) sits before it. The front logs every request (method, path, Range,
//! Accept-Encoding, what it answered) and answers some itself (a 503 for ever on the
//! layer, a 429 on the manifest HEAD, a held config), forwarding the rest. Each test
//! checks the sequence of requests a profile makes, as the registry would see it,
//! against the rule in docs/clients.md.
//!
//! Timings are never asserted: the backoffs are shortened with `[client]` overrides,
//! and the rules' real delays are unit-tested in src/fleet/profile/.

use crate::common::{self, bin, u};
use pullstorm::registry::{EmbeddedConfig, EmbeddedRegistry};
use pullstorm::scenario::units::ByteSize;
use pullstorm::scenario::{CutWith, EmbeddedAuth, EmbeddedSection, Faults};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const MIB: u64 = 1 << 20;
const IMAGE: &str = "synthetic/app:v1";

/// The kind of path a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ping,
    Token,
    Manifest,
    Config,
    Layer,
    Other,
}

/// One request as the front saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    kind: Kind,
    path: String,
    range: Option<String>,
    accept_encoding: Option<String>,
    /// The status the front answered itself; `None` when it forwarded the request.
    answered: Option<u16>,
    /// When it arrived, and when a held request was let through.
    at: Instant,
    released: Option<Instant>,
}

/// What the front does with a request.
enum Act {
    Forward,
    /// Answers with this status and a registry-style JSON error with this code.
    Json(u16, &'static str),
    /// Answers with this status and an HTML page (as an LB does).
    Html(u16),
    /// Forwards once `Duration` has passed (a slow upstream).
    Hold(Duration),
    /// Forwards, and resets the client's connection (RST) once this many bytes of the
    /// answer went to it.
    ResetAfter(u64),
}

/// One case of a status table: the client, the front's answer to the layer, its status,
/// and the layer GETs the client makes.
type Case = (&'static str, fn() -> Act, u16, usize);

/// Decides for a request, given how many requests of the same method and path came before.
type Script = Arc<dyn Fn(&Seen, usize) -> Act + Send + Sync>;

/// The scripted front.
struct Front {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Front {
    async fn start(
        registry: &EmbeddedRegistry,
        script: impl Fn(&Seen, usize) -> Act + Send + Sync + 'static,
    ) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let upstream = registry.addr();
        let image = registry.image();
        let config = image.config.digest.clone();
        let layers: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
        let kinds = Arc::new(move |path: &str| -> Kind {
            if path == "/v2/" {
                Kind::Ping
            } else if path.starts_with("/token") {
                Kind::Token
            } else if path.contains("/manifests/") {
                Kind::Manifest
            } else if path.ends_with(&config) {
                Kind::Config
            } else if layers.iter().any(|l| path.ends_with(l.as_str())) {
                Kind::Layer
            } else {
                Kind::Other
            }
        });
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (log, script, kinds) = (shared.clone(), script.clone(), kinds.clone());
                tokio::spawn(async move {
                    serve(socket, upstream, log, script, move |p| kinds(p)).await;
                });
            }
        });
        Front { addr, log }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// The requests of one kind, in order.
    fn of(&self, kind: Kind) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.kind == kind).collect()
    }

    /// The requests after the run's preflight, whose last request is the GET of the
    /// manifest by digest: the nodes' own.
    fn after_preflight(&self) -> Vec<Seen> {
        let log = self.log();
        let end = log
            .iter()
            .position(|s| s.method == "GET" && s.kind == Kind::Manifest)
            .expect("the preflight fetched the manifest");
        log[end + 1..].to_vec()
    }
}

/// One request: read its head (and body), log it, answer or forward it.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
    script: Script,
    kind: impl Fn(&str) -> Kind,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut seen = Seen {
        method: method.clone(),
        kind: kind(path.split('?').next().unwrap_or("")),
        path: path.clone(),
        range: header("range"),
        accept_encoding: header("accept-encoding"),
        answered: None,
        at: Instant::now(),
        released: None,
    };
    let (act, index) = {
        let mut log = log.lock().unwrap();
        let before = log
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count();
        let act = script(&seen, before);
        seen.answered = match &act {
            Act::Json(status, _) | Act::Html(status) => Some(*status),
            _ => None,
        };
        log.push(seen);
        (act, log.len() - 1)
    };
    let reply = |status: u16, content_type: &str, body: String| {
        let mut out = format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        out
    };
    let answer = match &act {
        Act::Json(status, code) => Some(reply(
            *status,
            "application/json",
            format!(r#"{{"errors":[{{"code":"{code}","message":"scripted"}}]}}"#),
        )),
        Act::Html(status) => Some(reply(
            *status,
            "text/html",
            "<html><body>scripted</body></html>".into(),
        )),
        Act::Hold(d) => {
            tokio::time::sleep(*d).await;
            log.lock().unwrap()[index].released = Some(Instant::now());
            None
        }
        Act::Forward | Act::ResetAfter(_) => None,
    };
    if let Some(answer) = answer {
        let _ = client.write_all(&answer).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return;
    };
    if up.write_all(&buf).await.is_err() {
        return;
    }
    let Act::ResetAfter(limit) = act else {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        return;
    };
    let mut sent = 0u64;
    while sent < limit {
        let want = chunk.len().min((limit - sent) as usize);
        match up.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                sent += n as u64;
            }
        }
    }
    // SO_LINGER 0: the close is a reset, as an LB's or a dying registry's.
    let _ = client.set_zero_linger();
}

/// The embedded registry with one layer of `layer` bytes and `faults`.
async fn registry(layer: u64, faults: Faults, auth: EmbeddedAuth) -> EmbeddedRegistry {
    let section = EmbeddedSection {
        layers: vec![ByteSize(layer)],
        faults,
        auth,
        ..EmbeddedSection::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    pullstorm::registry::start(listener, EmbeddedConfig::from_section(&section))
        .await
        .unwrap()
}

async fn plain_registry() -> EmbeddedRegistry {
    registry(MIB, Faults::default(), EmbeddedAuth::None).await
}

/// A scenario of one node of `client`, failures allowed, with `extra` TOML lines.
fn scenario(client: &str, extra: &str) -> String {
    // The front reads one request per connection, so every profile opens one per request
    // here (how each release reuses connections is `connections::`'s subject).
    let close = "[client]\nconnections = \"close\"\nhttps_probe = false\n";
    let extra = match extra.find("[client]\n") {
        Some(_) => extra.replacen("[client]\n", close, 1),
        None => format!("{close}{extra}"),
    };
    format!(
        "[fleet]\nclient = \"{client}\"\n[run]\nduration = \"60s\"\n\
         [thresholds]\nmax_failure_rate = 1.0\n{extra}"
    )
}

/// Fast backoffs, so that a test sees every attempt in well under a second.
const FAST: &str = "[client]\nbackoff = \"20ms\"\nconfig_backoff = \"10ms\"\n";
/// The kubelet off: one pull, whatever happens.
const NO_KUBELET: &str = "[kubelet]\npull_retries = 0\n";

/// A finished run and the folder that holds it (removed when this is dropped).
struct Ran {
    run: common::Run,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Ran {
    type Target = common::Run;
    fn deref(&self) -> &common::Run {
        &self.run
    }
}

/// Runs `pullstorm run` (off the runtime) against `target`; returns the run.
async fn run(target: String, scenario: String, env: &[(&str, &str)]) -> Ran {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.toml");
        std::fs::write(&file, scenario).unwrap();
        let out_dir = dir.path().join("out");
        let out = bin()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out_dir)
            .args(["--target", &target, "--image", IMAGE])
            .env_remove("PULLSTORM_USERNAME")
            .env_remove("PULLSTORM_PASSWORD")
            .envs(env)
            .output()
            .expect("pullstorm runs");
        let run = common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: out_dir,
        };
        assert!(
            run.code == 0 || run.code == 1,
            "{}{}",
            run.stdout,
            run.stderr
        );
        Ran { run, _dir: dir }
    })
    .await
    .unwrap()
}

// ---- dockerd ---------------------------------------------------------------------------

/// The issue's measurement: dockerd 20.10 against a layer that answers 503 for ever
/// makes 6 attempts of 2 GETs each (the first GET's error is swallowed), 12 GETs, then
/// fails the pull; dockerd 27 makes 5 attempts, 10 GETs. Main sent 1 GET and gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_sends_two_gets_per_attempt_to_a_layer_that_answers_503_for_ever() {
    let reg = plain_registry().await;
    for (client, attempts) in [("dockerd-20.10", 6u64), ("dockerd-27", 5)] {
        let front = Front::start(&reg, |s, _| match s.kind {
            Kind::Layer => Act::Json(503, "UNAVAILABLE"),
            _ => Act::Forward,
        })
        .await;
        let r = run(front.url(), scenario(client, FAST), &[]).await;
        let v = r.result();
        let layer = front.of(Kind::Layer);
        assert_eq!(layer.len() as u64, 2 * attempts, "{client}: {layer:?}");
        assert!(layer
            .iter()
            .all(|s| s.range.is_none() && s.answered == Some(503)));
        assert_eq!(u(&v, "errors.http_503"), 2 * attempts, "{client}");
        assert_eq!(u(&v, "retries.total"), 2 * attempts - 1, "{client}");
        assert_eq!(u(&v, &format!("layers.attempts.{attempts}")), 1, "{client}");
        assert_eq!(u(&v, "pulls.failed"), 1, "{client}");
        assert_eq!(v["fleet"]["client"], client);
        assert_eq!(v["fleet"]["profile"]["client"], client);
    }
}

/// Not retried by dockerd: 429 TOOMANYREQUESTS and 404 (2 GETs, the swallowed one
/// included). Retried: a 408 with an error code dockerd does not stop for. A 408 from an
/// LB (HTML): not retried by 20.10 (`UnexpectedHTTPResponseError`), retried by 27 (made
/// from the status: UNKNOWN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_retries_a_layer_by_status_body_and_release() {
    let reg = plain_registry().await;
    let cases: [Case; 6] = [
        ("dockerd-27", || Act::Json(429, "TOOMANYREQUESTS"), 429, 2),
        ("dockerd-27", || Act::Json(404, "BLOB_UNKNOWN"), 404, 2),
        ("dockerd-27", || Act::Json(408, "REQUEST_TIMEOUT"), 408, 10),
        (
            "dockerd-20.10",
            || Act::Json(408, "REQUEST_TIMEOUT"),
            408,
            12,
        ),
        ("dockerd-20.10", || Act::Html(408), 408, 2),
        ("dockerd-27", || Act::Html(408), 408, 10),
    ];
    for (client, act, status, want) in cases {
        let front = Front::start(&reg, move |s, _| match s.kind {
            Kind::Layer => act(),
            _ => Act::Forward,
        })
        .await;
        let r = run(front.url(), scenario(client, FAST), &[]).await;
        let v = r.result();
        let layer = front.of(Kind::Layer);
        assert_eq!(layer.len(), want, "{client} {status}: {layer:?}");
        assert_eq!(
            u(&v, &format!("errors.http_{status}")),
            want as u64,
            "{client} {status}"
        );
        assert_eq!(u(&v, "pulls.failed"), 1);
    }
}

/// An HTTP error on a resumed attempt throws the partial layer away and the next
/// attempt GETs from byte 0, whatever the status (pull_v2.go): a cut, then the Range
/// answered 503, then a GET without Range that completes. Main failed the layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_restarts_from_zero_after_an_error_on_a_resume() {
    let faults = Faults {
        cut_after: Some(ByteSize(MIB)),
        cut_times: Some(1),
        cut_with: CutWith::Fin,
        ..Faults::default()
    };
    let reg = registry(4 * MIB, faults, EmbeddedAuth::None).await;
    let front = Front::start(&reg, |s, _| match (s.kind, &s.range) {
        (Kind::Layer, Some(_)) => Act::Json(503, "UNAVAILABLE"),
        _ => Act::Forward,
    })
    .await;
    let r = run(front.url(), scenario("dockerd", FAST), &[]).await;
    let v = r.result();
    let layer = front.of(Kind::Layer);
    let ranges: Vec<bool> = layer.iter().map(|s| s.range.is_some()).collect();
    assert_eq!(ranges, [false, true, false], "{layer:?}");
    assert_eq!(u(&v, "pulls.completed"), 1, "{}", v["error_details"]);
    assert_eq!(u(&v, "errors.unexpected_eof"), 1);
    assert_eq!(u(&v, "errors.http_503"), 1);
    assert_eq!(u(&v, "layers.attempts.3"), 1, "{}", v["layers"]);
    // What the cut attempt held was thrown away.
    assert!(u(&v, "bytes.wasted") >= MIB, "{}", v["bytes"]);
}

/// dockerd fetches the config outside the 3 download slots, 5 attempts at 250 ms
/// doubling (here 10 ms), one GET each, no Range. With one slot and the config held
/// by a slow upstream, the layer's GET still goes out meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_fetches_the_config_outside_the_slots_with_its_own_attempts() {
    let reg = plain_registry().await;
    let front = Front::start(&reg, |s, _| match s.kind {
        Kind::Config => Act::Json(503, "UNAVAILABLE"),
        _ => Act::Forward,
    })
    .await;
    let r = run(front.url(), scenario("dockerd", FAST), &[]).await;
    let v = r.result();
    // The preflight does not fetch blobs: every config GET is the node's.
    let config = front.of(Kind::Config);
    assert_eq!(config.len(), 5, "{config:?}");
    assert!(config.iter().all(|s| s.range.is_none()));
    assert_eq!(u(&v, "pulls.failed"), 1);

    // One slot, and the upstream holds the config and the layer for a while: both GETs
    // arrive before either is let through. Had the config taken the one slot, the
    // layer's GET would have come only after the config's answer (or the reverse).
    let front = Front::start(&reg, |s, _| match s.kind {
        Kind::Config | Kind::Layer => Act::Hold(Duration::from_millis(500)),
        _ => Act::Forward,
    })
    .await;
    let slow = format!("{FAST}max_concurrent_downloads = 1\n");
    let r = run(front.url(), scenario("dockerd", &slow), &[]).await;
    assert_eq!(u(&r.result(), "pulls.completed"), 1);
    let (config, layer) = (&front.of(Kind::Config)[0], &front.of(Kind::Layer)[0]);
    assert!(
        config.at < layer.released.unwrap() && layer.at < config.released.unwrap(),
        "config {config:?}, layer {layer:?}"
    );
}

// ---- containerd ------------------------------------------------------------------------

/// No attempt loop per blob: a 503 on the layer is 1 GET and the pull fails in 1.6
/// (measured with containerd 1.6.20); 2.1+ sends a 500/503/504 once more (2 GETs),
/// a 502 never. A 429 goes again at once until the 6th response, in every release.
/// Main made 5 attempts of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_resends_a_request_not_a_blob() {
    let reg = plain_registry().await;
    let cases: [Case; 5] = [
        ("containerd-1.6", || Act::Json(503, "UNAVAILABLE"), 503, 1),
        ("containerd-1.7", || Act::Json(503, "UNAVAILABLE"), 503, 1),
        ("containerd-2.2", || Act::Json(503, "UNAVAILABLE"), 503, 2),
        ("containerd", || Act::Html(502), 502, 1),
        (
            "containerd-1.6",
            || Act::Json(429, "TOOMANYREQUESTS"),
            429,
            6,
        ),
    ];
    for (client, act, status, want) in cases {
        let front = Front::start(&reg, move |s, _| match s.kind {
            Kind::Layer => act(),
            _ => Act::Forward,
        })
        .await;
        let r = run(front.url(), scenario(client, NO_KUBELET), &[]).await;
        let v = r.result();
        let layer = front.of(Kind::Layer);
        assert_eq!(layer.len(), want, "{client} {status}: {layer:?}");
        assert_eq!(u(&v, &format!("errors.http_{status}")), want as u64);
        assert_eq!(u(&v, "retries.total"), want as u64 - 1, "{client} {status}");
        let attempts = v["layers"]["attempts"].as_object().unwrap();
        assert!(attempts.keys().all(|k| k == "1"), "{client}: {attempts:?}");
        assert_eq!(u(&v, "pulls.failed"), 1, "{client} {status}");
    }
}

/// containerd sends no `GET /v2/` and resolves with HEAD only: an error status ends
/// the resolve without a GET of the tag (a 429: 6 HEADs). dockerd pings first, and
/// after a failed HEAD GETs the tag. Main pinged with both and always GET after an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_resolves_with_head_only_and_never_pings() {
    let reg = plain_registry().await;
    // The preflight's HEAD goes through; the node's are refused.
    let refuse = |status: u16| {
        move |s: &Seen, n: usize| match (s.method.as_str(), s.kind, n) {
            ("HEAD", Kind::Manifest, 1..) => Act::Json(status, "TOOMANYREQUESTS"),
            _ => Act::Forward,
        }
    };
    for (status, heads) in [(429, 6), (503, 1)] {
        let front = Front::start(&reg, refuse(status)).await;
        let r = run(front.url(), scenario("containerd-1.6", NO_KUBELET), &[]).await;
        let v = r.result();
        let nodes = front.after_preflight();
        let kinds: Vec<(&str, Kind)> = nodes.iter().map(|s| (s.method.as_str(), s.kind)).collect();
        assert_eq!(kinds, vec![("HEAD", Kind::Manifest); heads], "{status}");
        assert_eq!(u(&v, &format!("errors.http_{status}")), heads as u64);
        assert_eq!(v["error_details"][0]["request"], "manifest");
        assert_eq!(u(&v, "pulls.failed"), 1);
    }
    let front = Front::start(&reg, refuse(503)).await;
    let r = run(front.url(), scenario("dockerd", NO_KUBELET), &[]).await;
    assert_eq!(u(&r.result(), "pulls.completed"), 1);
    let kinds: Vec<(String, Kind)> = front
        .after_preflight()
        .into_iter()
        .filter(|s| matches!(s.kind, Kind::Ping | Kind::Manifest))
        .map(|s| (s.method, s.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("GET".into(), Kind::Ping),
            ("HEAD".into(), Kind::Manifest),
            ("GET".into(), Kind::Manifest),
            ("GET".into(), Kind::Manifest),
        ],
        "ping, HEAD refused, GET of the tag, GET by digest"
    );
}

/// A reset mid-layer fails the blob and the pull in containerd (only a clean close is
/// reopened, and transport errors are not retried before 2.4). Main retried it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_fails_the_pull_on_a_reset() {
    let faults = Faults {
        cut_after: Some(ByteSize(MIB)),
        cut_times: Some(1),
        cut_with: CutWith::Rst,
        ..Faults::default()
    };
    for client in ["containerd-1.6", "containerd-2.2"] {
        let reg = registry(4 * MIB, faults.clone(), EmbeddedAuth::None).await;
        let r = run(
            format!("http://{}", reg.addr()),
            scenario(client, NO_KUBELET),
            &[],
        )
        .await;
        let v = r.result();
        assert_eq!(u(&v, "pulls.failed"), 1, "{client}: {}", v["error_details"]);
        assert_eq!(u(&v, "errors.connection_reset"), 1, "{client}");
        assert_eq!(u(&v, "retries.total"), 0, "{client}");
    }
}

/// With credentials containerd POSTs the password form to the token realm, and GETs
/// (with Basic) only when the realm refuses the POST, as the embedded registry's does
/// (405). dockerd GETs. containerd 2.2 asks for compressed blobs, 1.6 does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_posts_for_its_token_and_2_2_sends_accept_encoding() {
    let reg = registry(MIB, Faults::default(), EmbeddedAuth::Bearer).await;
    let creds = [
        ("PULLSTORM_USERNAME", "ci"),
        ("PULLSTORM_PASSWORD", "s3cret-pw"),
    ];
    for (client, methods, encoding) in [
        ("containerd-1.6", vec!["POST", "GET"], None),
        (
            "containerd-2.2",
            vec!["POST", "GET"],
            Some("zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"),
        ),
        ("dockerd", vec!["GET"], None),
    ] {
        let front = Front::start(&reg, |_, _| Act::Forward).await;
        let r = run(front.url(), scenario(client, NO_KUBELET), &creds).await;
        let v = r.result();
        assert_eq!(
            u(&v, "pulls.completed"),
            1,
            "{client}: {}",
            v["error_details"]
        );
        let tokens: Vec<String> = front
            .after_preflight()
            .into_iter()
            .filter(|s| s.kind == Kind::Token)
            .map(|s| s.method)
            .collect();
        assert_eq!(tokens, methods, "{client}");
        assert!(!r.stdout.contains("s3cret-pw") && !r.stderr.contains("s3cret-pw"));
        for blob in front.of(Kind::Layer).iter().chain(&front.of(Kind::Config)) {
            assert_eq!(blob.accept_encoding.as_deref(), encoding, "{client}");
        }
    }
}

// ---- preflight ------------------------------------------------------------------------

/// A storm against a struggling LB must start: a 503 on every `GET /v2/` is a warning,
/// and the nodes pull (dockerd accepts any answer to its ping). A resolve that fails
/// with a 503 is tried again. Main refused to start (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_on_the_ping_is_a_warning_and_the_storm_starts() {
    let reg = plain_registry().await;
    let front = Front::start(&reg, |s, n| match (s.method.as_str(), s.kind, n) {
        (_, Kind::Ping, _) => Act::Html(503),
        // The preflight's first resolve fails whole: the HEAD, then the GET of the tag.
        (_, Kind::Manifest, 0) if s.path.ends_with("/manifests/v1") => {
            Act::Json(503, "UNAVAILABLE")
        }
        _ => Act::Forward,
    })
    .await;
    let r = run(front.url(), scenario("dockerd", ""), &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: GET /v2/") && r.stderr.contains("503"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("trying again"), "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1, "{}", v["error_details"]);
    // The node's own ping got its 503 too, and went on.
    assert_eq!(front.after_preflight()[0].kind, Kind::Ping);
    common::only_errors(&v, &[]);
}

// ---- the kubelet ----------------------------------------------------------------------

/// A containerd-1.6 node whose first pull fails (its layer reset after 1 MiB) and whose
/// kubelet pulls again at once: the result, the requests after the preflight, and the
/// layer's GETs. `client` goes into `[client]` (the front's one-request connections
/// included by [`scenario`]).
async fn re_pull_after_a_reset(client: &str) -> (serde_json::Value, Vec<Seen>, Vec<Seen>) {
    let reg = registry(4 * MIB, Faults::default(), EmbeddedAuth::None).await;
    let front = Front::start(&reg, |s, n| match (s.kind, n) {
        (Kind::Layer, 0) => Act::ResetAfter(MIB),
        _ => Act::Forward,
    })
    .await;
    let keys = format!("[client]\n{client}[kubelet]\npull_backoff = \"50ms\"\nresync = \"0s\"\n");
    let r = run(front.url(), scenario("containerd-1.6", &keys), &[]).await;
    let v = r.result();
    assert_eq!(u(&v, "pulls.started"), 2, "{}", v["error_details"]);
    assert_eq!((u(&v, "pulls.failed"), u(&v, "pulls.completed")), (1, 1));
    assert_eq!(u(&v, "pulls.kubelet_retries"), 1);
    (v, front.after_preflight(), front.of(Kind::Layer))
}

/// Requests of `method` on `kind` in `seen`.
fn count(seen: &[Seen], method: &str, kind: Kind) -> usize {
    seen.iter()
        .filter(|s| s.method == method && s.kind == kind)
        .count()
}

/// A containerd node's kubelet pulls a failed image again after its back-off, and the
/// re-pull starts cold, as containerd 1.6.20 does here: the failed pull's lease is deleted
/// and its ingests with it, so the tag is resolved again, the manifest and config fetched
/// again and the layer that was reset fetched from byte 0 (what it had is wasted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_re_pulls_start_cold() {
    let (_, nodes, layer) = re_pull_after_a_reset("").await;
    assert_eq!(count(&nodes, "HEAD", Kind::Manifest), 2, "{nodes:?}");
    assert_eq!(count(&nodes, "GET", Kind::Manifest), 2, "{nodes:?}");
    assert_eq!(count(&nodes, "GET", Kind::Config), 2, "{nodes:?}");
    assert_eq!(layer.len(), 2, "{layer:?}");
    assert_eq!(
        (&layer[0].range, &layer[1].range),
        (&None, &None),
        "{layer:?}"
    );
}

/// With `[client] keep_partial_blobs` (a pull whose lease survived, as a cancelled one does
/// from 1.7) the kubelet's re-pull resumes from what the content store kept: the tag is
/// resolved again (HEAD), the manifest is not fetched again, the finished config not
/// either, and the layer that was reset goes on with Range from where it stopped. Nothing
/// is thrown away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_partial_blobs_are_resumed_and_the_manifest_skipped() {
    let (v, nodes, layer) = re_pull_after_a_reset("keep_partial_blobs = true\n").await;
    assert_eq!(u(&v, "errors.connection_reset"), 1);
    assert_eq!(u(&v, "latency.pull_retry.count"), 1, "{}", v["latency"]);
    assert_eq!(u(&v, "bytes.wasted"), 0);
    assert_eq!(u(&v, "bytes.downloaded"), u(&v, "target.image_bytes"));
    assert_eq!(
        v["scenario"]["resolved"]["kubelet"]["pull_retries"],
        "unlimited"
    );
    assert_eq!(count(&nodes, "HEAD", Kind::Manifest), 2, "{nodes:?}");
    assert_eq!(
        count(&nodes, "GET", Kind::Manifest),
        1,
        "the re-pull fetches no manifest"
    );
    assert_eq!(count(&nodes, "GET", Kind::Config), 1, "{nodes:?}");
    assert_eq!(
        count(&nodes, "GET", Kind::Ping),
        0,
        "containerd never pings"
    );
    assert_eq!(layer.len(), 2, "{layer:?}");
    assert_eq!(layer[0].range, None);
    let from: u64 = layer[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the re-pull resumes with Range: {layer:?}"));
    assert!(from > 0 && from < MIB, "{from}");
}

/// The kubelet is on by default for Kubernetes nodes: a containerd pull that keeps
/// failing is pulled again until the run's deadline. Not for dockerd, whose pulls no
/// kubelet drives unless the scenario says so. Main had no kubelet by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_is_on_by_default_for_containerd_only() {
    let corrupt = Faults {
        corrupt: true,
        ..Faults::default()
    };
    let reg = registry(MIB, corrupt, EmbeddedAuth::None).await;
    let target = format!("http://{}", reg.addr());
    let quick = "[kubelet]\npull_backoff = \"50ms\"\nresync = \"0s\"\n[run]\nduration = \"2s\"\n";
    let body = |client: &str| {
        format!("[fleet]\nclient = \"{client}\"\n[thresholds]\nmax_failure_rate = 1.0\nrequire_complete = false\n{quick}")
    };
    let r = run(target.clone(), body("containerd"), &[]).await;
    let v = r.result();
    assert_eq!(v["stop_reason"], "deadline");
    assert!(u(&v, "pulls.kubelet_retries") >= 2, "{}", v["pulls"]);
    assert_eq!(u(&v, "latency.pull_retry.count"), 0, "never recovered");
    assert_eq!(
        v["scenario"]["resolved"]["kubelet"]["pull_retries"],
        "unlimited"
    );

    let r = run(target, body("dockerd"), &[]).await;
    let v = r.result();
    assert_eq!(v["stop_reason"], "finished");
    assert_eq!(u(&v, "pulls.kubelet_retries"), 0);
    assert_eq!(u(&v, "pulls.failed"), 1);
    assert_eq!(v["scenario"]["resolved"]["kubelet"]["pull_retries"], 0);
}

/// A request a client sends again counts as a retry and starts the blob's retry latency,
/// even when the blob then comes through within its first attempt: dockerd's second GET
/// after a 503 on the first, containerd's resend after a 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_again_is_a_retry_of_its_blob() {
    let reg = plain_registry().await;
    for (client, act, status) in [
        (
            "dockerd",
            (|| Act::Json(503, "UNAVAILABLE")) as fn() -> Act,
            503,
        ),
        ("containerd-1.6", || Act::Json(429, "TOOMANYREQUESTS"), 429),
    ] {
        let front = Front::start(&reg, move |s, n| match (s.kind, n) {
            (Kind::Layer, 0) => act(),
            _ => Act::Forward,
        })
        .await;
        let r = run(front.url(), scenario(client, NO_KUBELET), &[]).await;
        let v = r.result();
        assert_eq!(
            u(&v, "pulls.completed"),
            1,
            "{client}: {}",
            v["error_details"]
        );
        assert_eq!(front.of(Kind::Layer).len(), 2, "{client}");
        assert_eq!(u(&v, &format!("errors.http_{status}")), 1, "{client}");
        assert_eq!(u(&v, "retries.total"), 1, "{client}");
        assert_eq!(u(&v, "layers.attempts.1"), 2, "{client}: {}", v["layers"]);
        assert_eq!(
            u(&v, "latency.retry.count"),
            1,
            "{client}: {}",
            v["latency"]
        );
    }
}
