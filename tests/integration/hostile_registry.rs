//! A hostile registry of the project's own: a small HTTP/1.1 server written on raw
//! tokio sockets (so it can send what no well-behaved server library would: garbled
//! headers, conflicting lengths, bodies shorter than announced, resets), serving one
//! small valid image that each [`Variant`] spoils in one way.
//!
//! Every variant runs the real binary against its own instance and asserts the exit
//! code, that a result was written (with the fault class in `errors`) or, when the fault
//! is in what preflight checks (ping, token, manifest), the documented exit 3 with the
//! class in the message and no result. Runs are kept short: one node, one pull,
//! `client.max_attempts = 2` without backoff, short timeouts, and a threshold of no
//! failed pulls so a failed pull exits 1 whatever the default thresholds are.
//!
//! Variants exposing a bug that another issue-10 item fixes are `#[ignore]`d naming
//! the item; the lead un-ignores them when the branches meet.

use crate::common::{self, Run};
use pullstorm::synth::sha256_digest;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPO: &str = "hostile/app";
const TAG: &str = "v1";
const TOKEN: &str = "good-token";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One way the registry misbehaves; `Honest` is the control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Honest,
    // Manifests (checked by preflight).
    ManifestNotJson,
    ManifestUnknownMediaType,
    ManifestClaimsToBeAnIndex,
    ManifestWithoutLayers,
    ManifestNegativeSize,
    ManifestSizesOverflow,
    ManifestBadLayerDigest,
    ManifestDigestMismatch,
    ManifestDigestHeaderGarbage,
    ManifestTooBig,
    ManifestUnknown,
    /// Good for preflight, not JSON for the node that pulls after it.
    ManifestTurnsBadAfterPreflight,
    // Blob bodies and sizes.
    BlobDigestMismatch,
    BlobOneByteShort,
    BlobLongerThanDescriptor,
    // Redirects (blob GETs follow them).
    RedirectLoop,
    RedirectToGopher,
    RedirectToClosedPort,
    RedirectWithoutLocation,
    // Headers.
    ContentLengthGarbage,
    ContentLengthsConflict,
    ContentLengthLongerThanBody,
    ContentRangeGarbage,
    PartialContentFromElsewhere,
    StatusLineGarbage,
    BlobServerError,
    // Auth challenges and token responses.
    ChallengeGarbled,
    RealmUnreachable,
    RealmGopher,
    TokenNotJson,
    TokenMissing,
    TokenExpiresInHuge,
    // Hanging, trickling, cut responses.
    PingHangs,
    TokenHangs,
    ManifestHangs,
    BlobHangs,
    BlobStallsMidway,
    BlobTrickles,
    BlobResetMidway,
}

use Variant::*;

impl Variant {
    fn uses_auth(self) -> bool {
        matches!(
            self,
            ChallengeGarbled
                | RealmUnreachable
                | RealmGopher
                | TokenNotJson
                | TokenMissing
                | TokenExpiresInHuge
                | TokenHangs
        )
    }
}

/// The small image every instance serves: a config and one 64 KiB layer.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Image {
    fn new() -> Image {
        Image {
            config:
                br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                    .to_vec(),
            layer: (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect(),
        }
    }

    fn config_digest(&self) -> String {
        sha256_digest(&self.config)
    }

    fn layer_digest(&self) -> String {
        sha256_digest(&self.layer)
    }

    /// An OCI manifest naming the config and `layers` (digest, size).
    fn manifest_with(&self, media_type: &str, layers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.config_digest(),
                "size": self.config.len(),
            },
            "layers": layers,
        }))
        .unwrap()
    }

    fn layer_descriptor(&self, digest: &str, size: serde_json::Value) -> serde_json::Value {
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
    }

    /// The manifest as `variant` serves it.
    fn manifest(&self, variant: Variant) -> Vec<u8> {
        let digest = self.layer_digest();
        let good = |size: u64| json!([self.layer_descriptor(&digest, json!(size))]);
        let len = self.layer.len() as u64;
        match variant {
            ManifestNotJson => b"<html>this is not a manifest</html>".to_vec(),
            ManifestUnknownMediaType => {
                self.manifest_with("application/vnd.example.unknown+json", good(len))
            }
            ManifestClaimsToBeAnIndex => self.manifest_with(OCI_INDEX, good(len)),
            ManifestWithoutLayers => serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": self.config_digest(), "size": self.config.len()},
            }))
            .unwrap(),
            ManifestNegativeSize => self.manifest_with(
                OCI_MANIFEST,
                json!([self.layer_descriptor(&digest, json!(-1))]),
            ),
            // Two layers of 2^63 bytes: their sum wraps to the config's size.
            ManifestSizesOverflow => self.manifest_with(
                OCI_MANIFEST,
                json!([
                    self.layer_descriptor(&digest, json!(1u64 << 63)),
                    self.layer_descriptor(&digest, json!(1u64 << 63)),
                ]),
            ),
            ManifestBadLayerDigest => self.manifest_with(
                OCI_MANIFEST,
                json!([self.layer_descriptor("sha256:not-hex/../../x", json!(len))]),
            ),
            ManifestTooBig => {
                let mut m = self.manifest_with(OCI_MANIFEST, good(len));
                m.truncate(m.len() - 1);
                m.extend_from_slice(br#","annotations":{"pad":""#);
                m.extend(std::iter::repeat_n(b'x', 5 << 20));
                m.extend_from_slice(br#""}}"#);
                m
            }
            BlobOneByteShort => self.manifest_with(OCI_MANIFEST, good(len + 1)),
            _ => self.manifest_with(OCI_MANIFEST, good(len)),
        }
    }
}

/// What an instance knows and counts.
pub(crate) struct State {
    variant: Variant,
    image: Image,
    addr: SocketAddr,
    /// A port nothing listens on.
    closed_port: u16,
    /// A listener that counts the connections a `gopher://` URL would open.
    gopher_addr: SocketAddr,
    gopher_accepts: AtomicUsize,
    /// Every manifest request, HEAD or GET, answered or left hanging.
    pub(crate) manifest_requests: AtomicUsize,
    layer_gets: AtomicUsize,
}

/// A running hostile registry; dropping it stops it.
pub(crate) struct Hostile {
    pub(crate) state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    pub(crate) fn start(variant: Variant) -> Hostile {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (listener, gopher, closed_port) = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let gopher = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let closed_port = closed.local_addr().unwrap().port();
            (listener, gopher, closed_port)
        });
        let state = Arc::new(State {
            variant,
            image: Image::new(),
            addr: listener.local_addr().unwrap(),
            closed_port,
            gopher_addr: gopher.local_addr().unwrap(),
            gopher_accepts: AtomicUsize::new(0),
            manifest_requests: AtomicUsize::new(0),
            layer_gets: AtomicUsize::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (serving, counting) = (state.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = accept_loop(listener, serving) => {}
                    _ = count_gopher(gopher, counting) => {}
                    _ = stopped => {}
                }
            })
        });
        Hostile {
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(serve(conn, state.clone()));
    }
}

async fn count_gopher(listener: TcpListener, state: Arc<State>) {
    while let Ok((conn, _)) = listener.accept().await {
        state.gopher_accepts.fetch_add(1, Ordering::SeqCst);
        drop(conn);
    }
}

/// A request's line and headers (names lowercased).
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

async fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Request {
        method,
        path,
        headers,
    })
}

/// How to answer one request.
enum Reply {
    /// These bytes, then a clean close.
    Bytes(Vec<u8>),
    /// These bytes, then a reset (SO_LINGER 0).
    BytesThenReset(Vec<u8>),
    /// These bytes, then nothing more while the client waits (the connection held open).
    BytesThenHang(Vec<u8>),
    /// The head, then the body one byte at a time, `every` apart.
    Trickle(Vec<u8>, Vec<u8>, Duration),
}

/// A response with a status line, headers and body (Content-Length added unless given).
fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn serve(mut conn: TcpStream, state: Arc<State>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    match route(&state, &req) {
        Reply::Bytes(bytes) => {
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
        }
        Reply::BytesThenReset(bytes) => {
            let _ = conn.write_all(&bytes).await;
            let _ = conn.flush().await;
            let _ = conn.set_zero_linger();
            drop(conn);
        }
        Reply::BytesThenHang(bytes) => {
            let _ = conn.write_all(&bytes).await;
            // Hold the connection until the client gives up (or the instance stops).
            let mut sink = [0u8; 1024];
            while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Reply::Trickle(head, body, every) => {
            if conn.write_all(&head).await.is_err() {
                return;
            }
            for byte in body {
                if conn.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
    }
}

fn route(state: &State, req: &Request) -> Reply {
    let v = state.variant;
    let path = req.path.as_str();
    if path == "/v2/" {
        return ping(state);
    }
    if path.starts_with("/token") {
        return token(state);
    }
    if v.uses_auth()
        && req.headers.get("authorization").map(String::as_str)
            != Some(format!("Bearer {TOKEN}").as_str())
    {
        return Reply::Bytes(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge(state))],
            br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        ));
    }
    let manifests = format!("/v2/{REPO}/manifests/");
    let blobs = format!("/v2/{REPO}/blobs/");
    if let Some(reference) = path.strip_prefix(&manifests) {
        return manifest(state, req, reference);
    }
    if let Some(digest) = path.strip_prefix(&blobs) {
        return blob(state, req, digest);
    }
    Reply::Bytes(response("404 Not Found", &[], b"{}"))
}

fn ping(state: &State) -> Reply {
    match state.variant {
        PingHangs => Reply::BytesThenHang(Vec::new()),
        v if v.uses_auth() => Reply::Bytes(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge(state))],
            b"{}",
        )),
        _ => Reply::Bytes(response(
            "200 OK",
            &[(
                "Docker-Distribution-API-Version",
                "registry/2.0".to_string(),
            )],
            b"{}",
        )),
    }
}

fn challenge(state: &State) -> String {
    let realm = match state.variant {
        ChallengeGarbled => return "Bearer realm,,,==\"\" service=".to_string(),
        RealmUnreachable => format!("http://127.0.0.1:{}/token", state.closed_port),
        RealmGopher => format!("gopher://{}/token", state.gopher_addr),
        _ => format!("http://{}/token", state.addr),
    };
    format!("Bearer realm=\"{realm}\",service=\"hostile\"")
}

fn token(state: &State) -> Reply {
    let body = match state.variant {
        TokenHangs => return Reply::BytesThenHang(Vec::new()),
        TokenNotJson => b"<html>login page</html>".to_vec(),
        TokenMissing => br#"{"expires_in":300}"#.to_vec(),
        TokenExpiresInHuge => {
            format!(r#"{{"token":"{TOKEN}","expires_in":18446744073709551615}}"#).into_bytes()
        }
        _ => format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).into_bytes(),
    };
    Reply::Bytes(response(
        "200 OK",
        &[("Content-Type", "application/json".to_string())],
        &body,
    ))
}

fn manifest(state: &State, req: &Request, reference: &str) -> Reply {
    let v = state.variant;
    let nth = state.manifest_requests.fetch_add(1, Ordering::SeqCst) + 1;
    if v == ManifestHangs {
        return Reply::BytesThenHang(Vec::new());
    }
    if v == ManifestUnknown {
        return Reply::Bytes(response(
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such tag"}]}"#,
        ));
    }
    // Preflight sends two manifest requests (HEAD of the tag, GET by digest); the
    // node's pull comes after.
    let body = if v == ManifestTurnsBadAfterPreflight && nth > 2 {
        b"not json any more".to_vec()
    } else {
        state.image.manifest(v)
    };
    let digest_header = match v {
        ManifestDigestHeaderGarbage => "sha256:zzz".to_string(),
        _ => sha256_digest(&body),
    };
    // The HEAD of the tag announces a digest; the GET by that digest serves other bytes.
    let body = if v == ManifestDigestMismatch && reference != TAG {
        let mut other = body;
        other.push(b' ');
        other
    } else {
        body
    };
    let content_type = match v {
        ManifestUnknownMediaType => "application/vnd.example.unknown+json",
        ManifestClaimsToBeAnIndex => OCI_INDEX,
        ManifestNotJson => "text/html",
        _ => OCI_MANIFEST,
    };
    let headers = [
        ("Content-Type", content_type.to_string()),
        ("Docker-Content-Digest", digest_header),
    ];
    let mut bytes = response("200 OK", &headers, &body);
    if req.method == "HEAD" {
        // The same head, no body.
        bytes.truncate(bytes.len() - body.len());
    }
    Reply::Bytes(bytes)
}

fn blob(state: &State, req: &Request, digest: &str) -> Reply {
    let v = state.variant;
    let image = &state.image;
    let is_layer = digest == image.layer_digest();
    let body: Vec<u8> = if digest == image.config_digest() {
        image.config.clone()
    } else if is_layer {
        image.layer.clone()
    } else {
        return Reply::Bytes(response(
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
        ));
    };
    if !is_layer {
        return Reply::Bytes(response("200 OK", &[], &body));
    }
    // Which GET of the layer this is (1 = the first).
    let nth = state.layer_gets.fetch_add(1, Ordering::SeqCst) + 1;
    let len = body.len();
    let here = format!("http://{}{}", state.addr, req.path);
    match v {
        BlobDigestMismatch => {
            let mut bad = body;
            bad[len / 2] ^= 0xff;
            Reply::Bytes(response("200 OK", &[], &bad))
        }
        BlobLongerThanDescriptor => {
            let mut long = body;
            long.extend_from_slice(&[0u8; 100]);
            Reply::Bytes(response("200 OK", &[], &long))
        }
        RedirectLoop => Reply::Bytes(response(
            "307 Temporary Redirect",
            &[("Location", here)],
            b"",
        )),
        RedirectToGopher => Reply::Bytes(response(
            "307 Temporary Redirect",
            &[("Location", format!("gopher://{}/blob", state.gopher_addr))],
            b"",
        )),
        RedirectToClosedPort => Reply::Bytes(response(
            "307 Temporary Redirect",
            &[(
                "Location",
                format!("http://127.0.0.1:{}/blob", state.closed_port),
            )],
            b"",
        )),
        RedirectWithoutLocation => Reply::Bytes(response("302 Found", &[], b"")),
        ContentLengthGarbage => Reply::Bytes(response(
            "200 OK",
            &[("Content-Length", "sixty-four kilobytes".into())],
            &body,
        )),
        ContentLengthsConflict => Reply::Bytes(response(
            "200 OK",
            &[
                ("Content-Length", len.to_string()),
                ("Content-Length", (len + 7).to_string()),
            ],
            &body,
        )),
        ContentLengthLongerThanBody => Reply::Bytes(response(
            "200 OK",
            &[("Content-Length", (len + 1000).to_string())],
            &body,
        )),
        ContentRangeGarbage if req.headers.contains_key("range") => Reply::Bytes(response(
            "206 Partial Content",
            &[("Content-Range", "bytes banana".into())],
            &body[len / 2..],
        )),
        // The first GET is cut halfway (a clean close): the retry asks for a Range.
        ContentRangeGarbage if nth == 1 => {
            let mut bytes = response("200 OK", &[("Content-Length", len.to_string())], b"");
            bytes.extend_from_slice(&body[..len / 2]);
            Reply::Bytes(bytes)
        }
        PartialContentFromElsewhere => Reply::Bytes(response(
            "206 Partial Content",
            &[("Content-Range", format!("bytes 5-{}/{len}", len - 1))],
            &body[5..],
        )),
        StatusLineGarbage => {
            let mut bytes = b"HTTP/1.1 2OO Fine\r\n".to_vec();
            bytes.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
            bytes.extend_from_slice(&body);
            Reply::Bytes(bytes)
        }
        BlobServerError => Reply::Bytes(response(
            "500 Internal Server Error",
            &[],
            br#"{"errors":[{"code":"UNKNOWN","message":"storage backend down"}]}"#,
        )),
        BlobHangs => Reply::BytesThenHang(Vec::new()),
        BlobStallsMidway => {
            let mut bytes = response("200 OK", &[("Content-Length", len.to_string())], b"");
            bytes.extend_from_slice(&body[..len / 2]);
            Reply::BytesThenHang(bytes)
        }
        BlobTrickles => Reply::Trickle(
            response("200 OK", &[("Content-Length", len.to_string())], b""),
            body,
            Duration::from_millis(200),
        ),
        BlobResetMidway => {
            let mut bytes = response("200 OK", &[("Content-Length", len.to_string())], b"");
            bytes.extend_from_slice(&body[..len / 2]);
            Reply::BytesThenReset(bytes)
        }
        _ => Reply::Bytes(response("200 OK", &[], &body)),
    }
}

/// One node, one pull, two attempts without backoff, a gate that fails on any
/// failed pull, and (with `timeouts`) 2 s connect, response and stall timeouts.
fn scenario(url: &str, duration: &str, timeouts: bool) -> String {
    let timeouts = if timeouts {
        "response_timeout = \"2s\"\nstall_timeout = \"2s\"\nconnect_timeout = \"2s\"\n"
    } else {
        ""
    };
    format!(
        "[target]\nurl = \"{url}\"\nimage = \"{REPO}:{TAG}\"\n\
         [fleet]\nclusters = 1\nnodes_per_cluster = 1\nclient = \"dockerd\"\n\
         [client]\nmax_attempts = 2\nbackoff = \"0s\"\nhttps_probe = false\n{timeouts}\
         [run]\nduration = \"{duration}\"\npulls_per_node = 1\n\
         [thresholds]\nmax_failed_pulls = 0\n"
    )
}

/// A finished run against its instance (kept for its counters) and its folder.
struct Outcome {
    hostile: Hostile,
    run: Run,
    _dir: tempfile::TempDir,
}

/// Runs the binary against a fresh instance of `variant` with the usual
/// scenario (20 s deadline, short timeouts).
fn run(variant: Variant) -> Outcome {
    run_with(variant, "20s", true)
}

fn run_with(variant: Variant, duration: &str, timeouts: bool) -> Outcome {
    let hostile = Hostile::start(variant);
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_scenario(
        dir.path(),
        "hostile",
        &scenario(&hostile.url(), duration, timeouts),
        &[],
    );
    Outcome {
        hostile,
        run,
        _dir: dir,
    }
}

fn has_result(run: &Run) -> bool {
    run.dir.join("result.json").exists()
}

/// The run wrote a result, exited `code`, and counted at least one `class` fault.
fn assert_counted(run: &Run, code: i32, class: &str) -> serde_json::Value {
    assert_ne!(run.code, 101, "panicked:\n{}", run.stderr);
    assert!(has_result(run), "no result.json; stderr:\n{}", run.stderr);
    let v = run.result();
    assert_eq!(
        run.code, code,
        "errors {}; stderr:\n{}",
        v["errors"], run.stderr
    );
    let count = v["errors"][class].as_u64().unwrap_or(0);
    assert!(
        count >= 1,
        "errors.{class} = {count}; errors {}; details {}",
        v["errors"],
        v["error_details"]
    );
    v
}

/// Preflight refused the target: exit 3, no result, the class in the message.
fn assert_refused_at_preflight(run: &Run, class: &str) {
    assert_ne!(run.code, 101, "panicked:\n{}", run.stderr);
    assert_eq!(
        run.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        !has_result(run),
        "a run refused at preflight writes no result"
    );
    assert!(
        run.stderr.contains(class),
        "no `{class}` in the message:\n{}",
        run.stderr
    );
}

/// The run passed: a complete result without errors.
fn assert_pulled(run: &Run) -> serde_json::Value {
    assert_ne!(run.code, 101, "panicked:\n{}", run.stderr);
    assert!(has_result(run), "no result.json; stderr:\n{}", run.stderr);
    let v = run.result();
    assert_eq!(
        run.code, 0,
        "errors {}; stderr:\n{}",
        v["errors"], run.stderr
    );
    assert_eq!(v["complete"], true);
    assert_eq!(v["pulls"]["completed"], 1, "{}", v["pulls"]);
    common::only_errors(&v, &[]);
    v
}

/// Stopped by `run.duration` (exit 1: the run is incomplete), result written.
fn assert_deadline(run: &Run) -> serde_json::Value {
    assert_ne!(run.code, 101, "panicked:\n{}", run.stderr);
    assert!(has_result(run), "no result.json; stderr:\n{}", run.stderr);
    let v = run.result();
    assert_eq!(run.code, 1, "stderr:\n{}", run.stderr);
    assert_eq!(v["stop_reason"], "deadline");
    assert_eq!(v["complete"], false);
    v
}

// The control: the fixture itself serves a pullable image.

#[test]
fn honest_registry_is_pulled() {
    let outcome = run(Honest);
    let run = &outcome.run;
    let v = assert_pulled(run);
    assert_eq!(v["target"]["blobs"].as_array().map(Vec::len), Some(2));
}

// Malformed manifests: preflight refuses them before any node starts.

#[test]
fn manifest_not_json() {
    let outcome = run(ManifestNotJson);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
}

/// An unknown media type with an image's shape (config and layers) is pulled, as a
/// lenient client does; the point is no panic and no misreading.
#[test]
fn manifest_unknown_media_type_with_an_image_shape() {
    let outcome = run(ManifestUnknownMediaType);
    let run = &outcome.run;
    assert_pulled(run);
}

#[test]
fn manifest_claims_to_be_an_index() {
    let outcome = run(ManifestClaimsToBeAnIndex);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
    assert!(run.stderr.contains("index without"), "{}", run.stderr);
}

#[test]
fn manifest_without_layers() {
    let outcome = run(ManifestWithoutLayers);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
}

#[test]
fn manifest_negative_size() {
    let outcome = run(ManifestNegativeSize);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
}

/// Either refused at preflight or pulled with the sizes summed without wrapping:
/// today `target.image_bytes` wraps to the config's size.
#[test]
fn manifest_sizes_that_overflow_a_sum() {
    let outcome = run(ManifestSizesOverflow);
    let run = &outcome.run;
    assert_ne!(run.code, 101, "panicked:\n{}", run.stderr);
    if run.code == 3 {
        assert!(!has_result(run));
        return;
    }
    let v = assert_counted(run, 1, "digest_mismatch");
    let bytes = v["target"]["image_bytes"].as_u64().unwrap();
    assert!(bytes >= 1 << 63, "image_bytes wrapped: {bytes}");
}

/// A layer digest that is not a digest (`sha256:not-hex/../../x`) would be
/// requested as a path (normalised to `/v2/hostile/app/x`): the manifest is
/// refused at preflight instead, before any node follows it.
#[test]
fn manifest_bad_layer_digest() {
    let outcome = run(ManifestBadLayerDigest);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
    assert!(run.stderr.contains("malformed digest"), "{}", run.stderr);
}

#[test]
fn manifest_bytes_do_not_match_their_digest() {
    let outcome = run(ManifestDigestMismatch);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "digest_mismatch");
}

/// A garbled Docker-Content-Digest on HEAD: the client GETs the tag instead.
#[test]
fn manifest_digest_header_garbage_falls_back_to_get() {
    let outcome = run(ManifestDigestHeaderGarbage);
    let run = &outcome.run;
    assert_pulled(run);
}

#[test]
fn manifest_too_big_is_not_read_whole() {
    let outcome = run(ManifestTooBig);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
}

#[test]
fn manifest_unknown_keeps_the_registry_code() {
    let outcome = run(ManifestUnknown);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "http_404");
    assert!(run.stderr.contains("MANIFEST_UNKNOWN"), "{}", run.stderr);
}

/// Preflight saw a good manifest; the node's pull gets garbage: counted in the result.
#[test]
fn manifest_turns_bad_after_preflight() {
    let outcome = run(ManifestTurnsBadAfterPreflight);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "other");
    assert_eq!(v["pulls"]["failed"], 1, "{}", v["pulls"]);
}

// Blob bodies and sizes.

#[test]
fn blob_digest_mismatch() {
    let outcome = run(BlobDigestMismatch);
    let run = &outcome.run;
    assert_counted(run, 1, "digest_mismatch");
}

/// The descriptor says one byte more than the blob (served with a correct
/// Content-Length): a size disagreement, `digest_mismatch`; today
/// `unexpected_eof` and `range_not_honoured`.
#[test]
fn blob_one_byte_shorter_than_its_descriptor() {
    let outcome = run(BlobOneByteShort);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "digest_mismatch");
    common::only_errors(&v, &["digest_mismatch"]);
}

#[test]
fn blob_longer_than_its_descriptor() {
    let outcome = run(BlobLongerThanDescriptor);
    let run = &outcome.run;
    assert_counted(run, 1, "digest_mismatch");
}

// Redirects.

#[test]
fn redirect_loop_ends() {
    let outcome = run(RedirectLoop);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "other");
    assert!(
        v["error_details"].to_string().contains("redirects"),
        "{}",
        v["error_details"]
    );
}

/// A redirect to `gopher://` is refused before any connection is opened; today the
/// client connects first and only then finds the scheme unsupported.
#[test]
fn redirect_to_gopher_opens_no_connection() {
    let outcome = run(RedirectToGopher);
    assert_counted(&outcome.run, 1, "other");
    let opened = outcome.hostile.state.gopher_accepts.load(Ordering::SeqCst);
    assert_eq!(opened, 0, "connections opened to the gopher:// address");
}

/// Today's behaviour of the same redirect, without the connection count: a
/// clean `other` fault, no panic, a result.
#[test]
fn redirect_to_gopher_is_a_fault() {
    let outcome = run(RedirectToGopher);
    let run = &outcome.run;
    assert_counted(run, 1, "other");
}

#[test]
fn redirect_to_a_closed_port() {
    let outcome = run(RedirectToClosedPort);
    let run = &outcome.run;
    assert_counted(run, 1, "connect_refused");
}

#[test]
fn redirect_without_location() {
    let outcome = run(RedirectWithoutLocation);
    let run = &outcome.run;
    assert_counted(run, 1, "http_302");
}

// Headers.

#[test]
fn content_length_garbage() {
    let outcome = run(ContentLengthGarbage);
    let run = &outcome.run;
    assert_counted(run, 1, "other");
}

#[test]
fn content_lengths_that_conflict() {
    let outcome = run(ContentLengthsConflict);
    let run = &outcome.run;
    assert_counted(run, 1, "other");
}

#[test]
fn content_length_longer_than_the_body() {
    // A Content-Length that disagrees with the descriptor's size is a size
    // disagreement (the contract files those under digest_mismatch), caught before
    // the short body would end in unexpected_eof.
    let outcome = run(ContentLengthLongerThanBody);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "digest_mismatch");
    assert_eq!(v["errors"]["unexpected_eof"], 0, "{}", v["errors"]);
}

#[test]
fn content_range_garbage_on_a_resume() {
    let outcome = run(ContentRangeGarbage);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "range_not_honoured");
    assert!(
        v["errors"]["unexpected_eof"].as_u64() >= Some(1),
        "{}",
        v["errors"]
    );
}

#[test]
fn partial_content_that_starts_elsewhere() {
    let outcome = run(PartialContentFromElsewhere);
    let run = &outcome.run;
    assert_counted(run, 1, "range_not_honoured");
}

#[test]
fn status_line_garbage() {
    let outcome = run(StatusLineGarbage);
    let run = &outcome.run;
    assert_counted(run, 1, "other");
}

#[test]
fn blob_server_error_keeps_the_registry_message() {
    let outcome = run(BlobServerError);
    let run = &outcome.run;
    let v = assert_counted(run, 1, "http_500");
    assert!(
        v["error_details"]
            .to_string()
            .contains("storage backend down"),
        "{}",
        v["error_details"]
    );
}

// Auth challenges and token responses.

#[test]
fn challenge_garbled() {
    let outcome = run(ChallengeGarbled);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "http_401");
}

#[test]
fn token_realm_unreachable() {
    let outcome = run(RealmUnreachable);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "connect_refused");
}

#[test]
fn token_realm_gopher() {
    let outcome = run(RealmGopher);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
}

#[test]
fn token_response_not_json() {
    let outcome = run(TokenNotJson);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);
}

#[test]
fn token_response_without_a_token() {
    let outcome = run(TokenMissing);
    let run = &outcome.run;
    assert_refused_at_preflight(run, "other");
}

/// `expires_in: u64::MAX` must not overflow `Instant + Duration` (a panic today).
#[test]
fn token_expires_in_huge() {
    let outcome = run(TokenExpiresInHuge);
    let run = &outcome.run;
    assert_pulled(run);
}

// Hanging, trickling and cut responses. Startup hangs end at `run.duration` (the
// transport's own timeouts are left at the profile's minutes-long defaults).

#[test]
fn ping_hangs_until_the_deadline() {
    let outcome = run_with(PingHangs, "2s", false);
    let run = &outcome.run;
    let v = assert_deadline(run);
    assert_eq!(v["pulls"]["started"], 0);
}

#[test]
fn token_hangs_until_the_deadline() {
    let outcome = run_with(TokenHangs, "2s", false);
    let run = &outcome.run;
    let v = assert_deadline(run);
    assert_eq!(v["pulls"]["started"], 0);
}

#[test]
fn manifest_hangs_until_the_deadline() {
    let outcome = run_with(ManifestHangs, "2s", false);
    let run = &outcome.run;
    let v = assert_deadline(run);
    assert_eq!(v["pulls"]["started"], 0);
}

#[test]
fn blob_hangs_is_a_read_timeout() {
    let outcome = run(BlobHangs);
    let run = &outcome.run;
    assert_counted(run, 1, "read_timeout");
}

#[test]
fn blob_stalls_midway_is_a_read_timeout() {
    let outcome = run(BlobStallsMidway);
    let run = &outcome.run;
    assert_counted(run, 1, "read_timeout");
}

/// A byte every 200 ms never trips the 2 s stall timeout; the deadline ends the
/// pull, which is counted as interrupted.
#[test]
fn blob_trickles_until_the_deadline() {
    let outcome = run_with(BlobTrickles, "3s", true);
    let run = &outcome.run;
    let v = assert_deadline(run);
    assert_eq!(v["pulls"]["interrupted"], 1, "{}", v["pulls"]);
    assert!(
        v["bytes"]["downloaded"].as_u64() >= Some(1),
        "{}",
        v["bytes"]
    );
}

#[test]
fn blob_reset_midway() {
    let outcome = run(BlobResetMidway);
    let run = &outcome.run;
    assert_counted(run, 1, "connection_reset");
}
