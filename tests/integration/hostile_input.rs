//! Hostile registries and inputs, through the real binary: a small HTTP server of
//! our own (tokio, 127.0.0.1:0) answers crafted responses (sizes that disagree with
//! the descriptor, endless token lifetimes, redirects to other schemes, upload
//! statuses past the blob), plus crafted files (`ca_file = "/dev/zero"`, a result
//! with a row at the end of time) and URLs with passwords. Each run must end with
//! the contract's exit code, its fault class and a result, never a panic.

use crate::common::*;
use pullstorm::digest::sha256_digest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Exit code of a panicking Rust program: never acceptable.
const PANIC: i32 = 101;
const REPO: &str = "hostile/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A request head as the test server saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// `http://127.0.0.1:<port>` of the server that got it.
    base: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Req) -> Vec<u8> + Send + Sync>;

/// A crafted HTTP/1.1 server: one response per connection, written raw, then closed.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(handler: impl Fn(&Req) -> Vec<u8> + Send + Sync + 'static) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let counted = connections.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(socket, handler.clone(), format!("http://{addr}")));
            }
        });
        Server {
            addr,
            connections,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head, and a body of its Content-Length), answers it, closes.
async fn serve(mut socket: tokio::net::TcpStream, handler: Handler, base: String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (
        first.next().unwrap_or("").to_string(),
        first.next().unwrap_or("").to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let req = Req {
        method,
        path,
        headers,
        base,
    };
    let body_len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < body_len {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    let mut reply = handler(&req);
    if req.method == "HEAD" {
        if let Some(at) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            reply.truncate(at + 4);
        }
    }
    let _ = socket.write_all(&reply).await;
    let _ = socket.shutdown().await;
}

/// A response with `Content-Length` set to the body's length (unless `headers` frame it).
fn reply(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !framed {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn not_found() -> Vec<u8> {
    reply(
        "404 Not Found",
        &[],
        br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
    )
}

/// A body in chunked encoding: `body` as one chunk, then the last chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

/// One image: a config and one layer whose descriptor may claim another size.
struct Image {
    manifest: Vec<u8>,
    digest: String,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

impl Image {
    /// `layer` bytes, described in the manifest as `declared` bytes (the true size when `None`),
    /// plus `extra` descriptors `(digest, size)`.
    fn new(layer: Vec<u8>, declared: Option<u64>, extra: &[(String, u64)]) -> Image {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let config_digest = sha256_digest(&config);
        let layer_digest = sha256_digest(&layer);
        let mut layers = vec![serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": declared.unwrap_or(layer.len() as u64),
        })];
        for (digest, size) in extra {
            layers.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
            }));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers,
        }))
        .unwrap();
        Image {
            digest: sha256_digest(&manifest),
            manifest,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    }

    fn sized(len: usize, declared: Option<u64>) -> Arc<Image> {
        let layer: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        Arc::new(Image::new(layer, declared, &[]))
    }
}

/// The registry routes for `image`; the layer's GET is answered by `layer`.
fn registry(
    image: Arc<Image>,
    layer: impl Fn(&Req, &Image) -> Vec<u8> + Send + Sync + 'static,
) -> impl Fn(&Req) -> Vec<u8> + Send + Sync + 'static {
    move |req: &Req| {
        let blobs = format!("/v2/{REPO}/blobs/");
        if req.path == "/v2/" {
            reply("200 OK", &[], b"{}")
        } else if req.path.starts_with(&format!("/v2/{REPO}/manifests/")) {
            let headers = [
                ("Content-Type", OCI_MANIFEST.to_string()),
                ("Docker-Content-Digest", image.digest.clone()),
            ];
            reply("200 OK", &headers, &image.manifest)
        } else if req.path == format!("{blobs}{}", image.config_digest) {
            reply("200 OK", &[], &image.config)
        } else if req.path == format!("{blobs}{}", image.layer_digest) {
            layer(req, &image)
        } else {
            not_found()
        }
    }
}

/// A 1-node pull of `hostile/app:v1` from `url`, failed pulls failing the run (exit 1).
fn scenario(url: &str, client: &str) -> String {
    format!(
        r#"
[target]
url = "{url}"
image = "{REPO}:v1"
[fleet]
nodes_per_cluster = 1
client = "{client}"
[client]
backoff = "50ms"
# The test's server reads HTTP only: dockerd's HTTPS probe would wait on it.
https_probe = false
# One pull: the kubelet (on for containerd by default) would pull again until the deadline.
[kubelet]
pull_retries = 0
[run]
duration = "60s"
[thresholds]
max_failed_pulls = 0
"#
    )
}

/// A finished run and the folder that holds its output (removed when dropped).
struct Pulled {
    run: Run,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Pulled {
    type Target = Run;
    fn deref(&self) -> &Run {
        &self.run
    }
}

fn pull(server: &Server, client: &str) -> Pulled {
    let dir = tempfile::tempdir().unwrap();
    let run = run_scenario(dir.path(), "hostile", &scenario(&server.url(), client), &[]);
    Pulled { run, _dir: dir }
}

fn count(v: &serde_json::Value, class: &str) -> u64 {
    u(v, &format!("errors.{class}"))
}

fn sample(v: &serde_json::Value, class: &str) -> String {
    v["error_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["class"] == class)
        .map(|d| d["sample"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {class} in {}", v["error_details"]))
}

/// Exit 1 (the failed pull fails the run), the run finished on its own (no retry until
/// the deadline), one failed pull and `class` among its errors.
fn assert_failed_with(r: &Run, class: &str) -> serde_json::Value {
    assert_ne!(r.code, PANIC, "{}", r.stderr);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["stop_reason"], "finished", "{}", v["error_details"]);
    assert_eq!(u(&v, "pulls.failed"), 1);
    assert!(count(&v, class) >= 1, "{}", v["error_details"]);
    v
}

// ---- item 6: sizes that disagree with the descriptor -------------------------------

/// The descriptor says one byte more than the blob, served whole with a correct
/// Content-Length: a size mismatch (`digest_mismatch`), not a cut retried for ever
/// (main: `unexpected_eof` + `range_not_honoured`, retried until the deadline).
#[test]
fn a_blob_shorter_than_its_descriptor_is_a_digest_mismatch() {
    for client in ["dockerd", "containerd"] {
        let image = Image::sized(4096, Some(4097));
        let server = Server::start(registry(image, |_, img| reply("200 OK", &[], &img.layer)));
        let r = pull(&server, client);
        let v = assert_failed_with(&r, "digest_mismatch");
        only_errors(&v, &["digest_mismatch"]);
        assert_eq!(u(&v, "retries.total"), 0, "{client}: {}", v["retries"]);
        let detail = sample(&v, "digest_mismatch");
        assert!(
            detail.contains("size 4097 expected") && detail.contains("4096 served"),
            "{detail}"
        );
    }
}

/// The same short blob in chunked encoding (no Content-Length, but a marked end).
#[test]
fn a_chunked_blob_shorter_than_its_descriptor_is_a_digest_mismatch() {
    let image = Image::sized(4096, Some(5000));
    let server = Server::start(registry(image, |_, img| chunked(&img.layer)));
    let v = assert_failed_with(&pull(&server, "containerd"), "digest_mismatch");
    only_errors(&v, &["digest_mismatch"]);
    assert!(sample(&v, "digest_mismatch").contains("4096 served"));
}

/// A blob longer than its descriptor: by Content-Length, and chunked (read no further
/// than the descriptor's size).
#[test]
fn a_blob_longer_than_its_descriptor_is_a_digest_mismatch() {
    let image = Image::sized(4096, Some(4095));
    let server = Server::start(registry(image, |_, img| reply("200 OK", &[], &img.layer)));
    let v = assert_failed_with(&pull(&server, "dockerd"), "digest_mismatch");
    only_errors(&v, &["digest_mismatch"]);
    assert!(sample(&v, "digest_mismatch").contains("size 4095 expected"));

    let image = Image::sized(1 << 20, Some(1000));
    let server = Server::start(registry(image, |_, img| chunked(&img.layer)));
    let v = assert_failed_with(&pull(&server, "dockerd"), "digest_mismatch");
    only_errors(&v, &["digest_mismatch"]);
}

/// A Content-Length that disagrees with the descriptor ends the layer at once.
#[test]
fn a_content_length_other_than_the_descriptor_is_a_digest_mismatch() {
    let image = Image::sized(4096, None);
    let server = Server::start(registry(image, |_, img| {
        let mut body = img.layer.clone();
        body.extend_from_slice(b"trailing garbage");
        reply("200 OK", &[], &body)
    }));
    let v = assert_failed_with(&pull(&server, "containerd"), "digest_mismatch");
    assert!(
        sample(&v, "digest_mismatch").contains("4112 served"),
        "{}",
        v["error_details"]
    );
}

/// A real cut (fewer bytes than the Content-Length, then close) stays `unexpected_eof`
/// and is resumed with Range: the size check must not swallow cuts.
#[test]
fn a_cut_body_is_still_an_unexpected_eof_and_resumes() {
    let image = Image::sized(8192, None);
    let server = Server::start(registry(image, |req, img| match req.header("range") {
        None => {
            let mut head = reply("200 OK", &[("Content-Length", "8192".into())], &[]);
            head.extend_from_slice(&img.layer[..3000]);
            head
        }
        Some(range) => {
            let from: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let headers = [("Content-Range", format!("bytes {from}-8191/8192"))];
            reply("206 Partial Content", &headers, &img.layer[from..])
        }
    }));
    let r = pull(&server, "dockerd");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    only_errors(&v, &["unexpected_eof"]);
    assert_eq!(count(&v, "unexpected_eof"), 1);
}

/// Two layers of 2^63 bytes: their sum wrapped (`image_bytes: 78`); now a clean
/// error before any node starts (exit 3, "image size overflows").
#[test]
fn layer_sizes_that_overflow_the_image_size_are_a_clean_error() {
    let layer: Vec<u8> = b"tiny".to_vec();
    let big = 1u64 << 63;
    let other = sha256_digest(b"other");
    let image = Arc::new(Image::new(layer, Some(big), &[(other, big)]));
    let server = Server::start(registry(image, |_, _| not_found()));
    let r = pull(&server, "dockerd");
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("image size overflows"), "{}", r.stderr);
}

// ---- item 9: token lifetimes no clock can add --------------------------------------

/// A registry behind a token server whose tokens say they live `expires_in` seconds.
fn token_registry(expires_in: &'static str) -> Server {
    let image = Image::sized(2048, None);
    let routes = registry(image, |_, img| reply("200 OK", &[], &img.layer));
    Server::start(move |req: &Req| {
        if req.path.starts_with("/token") {
            let body = format!(r#"{{"token":"t0k","expires_in":{expires_in}}}"#);
            return reply("200 OK", &[], body.as_bytes());
        }
        let authorized = req.header("authorization") == Some("Bearer t0k");
        if req.path == "/v2/" || authorized {
            return routes(req);
        }
        let challenge = format!(r#"Bearer realm="{}/token",service="hostile""#, req.base);
        reply(
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        )
    })
}

/// `expires_in: 2^64-1` (and 2^63) panicked the run (`Instant + Duration`, exit 101).
#[test]
fn endless_token_lifetimes_are_clamped() {
    for expires_in in ["18446744073709551615", "9223372036854775808", "0"] {
        let server = token_registry(expires_in);
        let r = pull(&server, "containerd");
        assert_eq!(
            r.code, 0,
            "expires_in {expires_in}: {}{}",
            r.stdout, r.stderr
        );
        let v = r.result();
        assert_eq!(u(&v, "pulls.completed"), 1, "{expires_in}");
        only_errors(&v, &[]);
    }
}

/// A lifetime that is no u64 at all is a clean error at start (exit 3), not a panic.
#[test]
fn a_token_lifetime_that_is_not_a_count_is_a_clean_error() {
    for expires_in in ["-1", "1e400", "\"forever\""] {
        let server = token_registry(expires_in);
        let r = pull(&server, "dockerd");
        assert_eq!(
            r.code, 3,
            "expires_in {expires_in}: {}{}",
            r.stdout, r.stderr
        );
        assert!(r.stderr.contains("token response"), "{}", r.stderr);
    }
}

// ---- item 12: redirects to other schemes, bad upload ranges, crafted files ---------

/// A blob redirect to `gopher://` (or `file:`, `ftp:`) connected before its scheme was
/// checked; now it is refused first: fault class `other`, no connection to the trap.
#[test]
fn redirects_to_other_schemes_are_refused_before_any_connect() {
    let trap = Server::start(|_| reply("200 OK", &[], b"gotcha"));
    let port = trap.addr.port();
    for location in [
        format!("gopher://127.0.0.1:{port}/1blob"),
        format!("ftp://127.0.0.1:{port}/blob"),
        "file:///etc/passwd".to_string(),
    ] {
        let image = Image::sized(1024, None);
        let to = location.clone();
        let server = Server::start(registry(image, move |_, _| {
            reply("307 Temporary Redirect", &[("Location", to.clone())], b"")
        }));
        let v = assert_failed_with(&pull(&server, "dockerd"), "other");
        only_errors(&v, &["other"]);
        let detail = sample(&v, "other");
        assert!(
            detail.contains("is not http or https"),
            "{location}: {detail}"
        );
    }
    assert_eq!(trap.connections(), 0, "the trap was connected to");
}

/// A token realm on `gopher://` is refused the same way (exit 3 at start, no connect).
#[test]
fn a_token_realm_on_another_scheme_is_refused() {
    let trap = Server::start(|_| reply("200 OK", &[], b"gotcha"));
    let realm = format!("gopher://127.0.0.1:{}/token", trap.addr.port());
    let server = Server::start(move |req: &Req| {
        if req.path == "/v2/" || req.header("authorization").is_none() {
            let challenge = format!(r#"Bearer realm="{realm}",service="hostile""#);
            return reply(
                "401 Unauthorized",
                &[("WWW-Authenticate", challenge)],
                b"{}",
            );
        }
        not_found()
    });
    let r = pull(&server, "dockerd");
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is not http or https"), "{}", r.stderr);
    assert_eq!(trap.connections(), 0);
}

/// A registry for `pullstorm seed` whose PATCHes fail and whose upload status
/// answers `Range: <range>`.
fn upload_registry(range: &'static str) -> Server {
    Server::start(move |req: &Req| {
        let uploads = format!("/v2/{REPO}/blobs/uploads/");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => reply("200 OK", &[], b"{}"),
            ("HEAD", _) => not_found(),
            ("POST", p) if p.starts_with(&uploads) => {
                reply("202 Accepted", &[("Location", format!("{uploads}u1"))], b"")
            }
            ("PATCH", _) => reply("500 Internal Server Error", &[], b""),
            ("GET", p) if p.starts_with(&uploads) => reply(
                "204 No Content",
                &[
                    ("Range", range.to_string()),
                    ("Location", format!("{uploads}u1")),
                ],
                b"",
            ),
            _ => not_found(),
        }
    })
}

/// `Range: 0-18446744073709551615` on an upload status overflowed `end + 1` (a
/// panic in debug builds, a silent restart from 0 in release): now a clean error.
#[test]
fn an_upload_status_past_the_blob_is_a_clean_error() {
    for range in ["0-18446744073709551615", "0-99999999"] {
        let server = upload_registry(range);
        let out = bin()
            .args([
                "seed",
                "--registry",
                &server.url(),
                "--image",
                &format!("{REPO}:v1"),
            ])
            .args(["--layers", "4KiB", "--jobs", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{range}: {stderr}");
        assert!(stderr.contains("ends past the blob"), "{range}: {stderr}");
    }
}

/// `ca_file = "/dev/zero"` aborted on allocation; now exit 2 naming the file, for
/// `run` and for `seed --ca-file`.
#[test]
fn an_endless_ca_file_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "ca",
        &scenario("https://127.0.0.1:9", "dockerd"),
        &["--set", "target.ca_file=\"/dev/zero\""],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("/dev/zero"), "{}", r.stderr);
    let out = bin()
        .args([
            "seed",
            "--registry",
            "https://127.0.0.1:9",
            "--image",
            "a/b:v1",
        ])
        .args(["--ca-file", "/dev/zero"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/zero"), "{stderr}");
}

/// A result with a timeline row at `t = 2^64-1` panicked `pullstorm report`
/// (`report/decimate.rs`); now the report is written, that row in the last bucket.
#[test]
fn a_timeline_row_at_the_end_of_time_still_gives_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "tiny",
        "[embedded]\nlayers = [\"64KiB\"]\n[run]\nduration = \"30s\"\n",
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut v = r.result();
    let timeline = v["timeline"].as_array_mut().unwrap();
    let mut last = timeline.last().cloned().expect("a timeline row");
    last["t"] = serde_json::json!(u64::MAX);
    timeline.push(last);
    let crafted = dir.path().join("crafted.json");
    std::fs::write(&crafted, serde_json::to_string(&v).unwrap()).unwrap();
    let html = dir.path().join("crafted.html");
    let out = bin()
        .arg("report")
        .arg(&crafted)
        .arg("--out")
        .arg(&html)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
}

// ---- item 14: passwords in URLs ----------------------------------------------------

/// `--target` and `--set target.url` with a password: refused (exit 2) without
/// echoing the password.
#[test]
fn a_password_in_the_target_url_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "[embedded]\nlayers = [\"64KiB\"]\n").unwrap();
    let secret = "Tg7-pass-never-shown";
    let url = format!("http://alice:{secret}@127.0.0.1:9");
    for args in [
        vec!["--target".to_string(), url.clone()],
        vec!["--set".to_string(), format!("target.url=\"{url}\"")],
        vec!["--set".to_string(), format!("target.url={url}")],
    ] {
        let out = bin()
            .arg("run")
            .arg(&file)
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?}: {stdout}{stderr}"
        );
    }
}

/// A `watch.metrics` URL with a password (from the file and from `--set`) reached
/// result.json (`scenario.overrides`, `scenario.resolved`) and report.html.
#[test]
fn a_password_in_a_watched_url_is_never_written() {
    let metrics = Server::start(|_| {
        reply(
            "200 OK",
            &[("Content-Type", "text/plain".into())],
            b"go_goroutines 7\n",
        )
    });
    let (file_secret, set_secret) = ("FileSecret-41x", "SetSecret-97q");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watched.toml");
    std::fs::write(
        &file,
        format!(
            "[embedded]\nlayers = [\"64KiB\"]\n[watch]\nmetrics = [\"http://m:{file_secret}@{}/metrics\"]\n",
            metrics.addr
        ),
    )
    .unwrap();
    let set = format!(
        "watch.stub_status=[\"http://s:{set_secret}@{}/status\"]",
        metrics.addr
    );
    let out_dir = dir.path().join("out");
    let out = bin()
        .arg("run")
        .arg(&file)
        .args(["--set", &set, "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_ne!(out.status.code(), Some(PANIC), "{stderr}");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{stdout}{stderr}"
    );
    let result = std::fs::read_to_string(out_dir.join("result.json")).expect("result written");
    let report = std::fs::read_to_string(out_dir.join("report.html")).expect("report written");
    for secret in [file_secret, set_secret] {
        for (what, text) in [
            ("stdout", &*stdout),
            ("stderr", &*stderr),
            ("result.json", &result),
            ("report.html", &report),
        ] {
            assert!(!text.contains(secret), "{secret} in {what}");
        }
    }
    assert!(result.contains("http://m:***@"), "the URL stays, masked");
}
