//! The embedded registry over real TCP on 127.0.0.1, spoken to with a raw
//! HTTP/1.1 client so that short bodies, FIN and RST are seen exactly as a
//! pull client would see them (a library client would hide or retry them).

use super::request_log::End as LogEnd;
use super::*;
use crate::scenario::units::ByteSize;
use crate::scenario::{CutWith, EmbeddedAuth, FaultTarget, Faults};
use crate::synth::{self, fill_layer, sha256_digest};
use base64::Engine;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LAYERS: [u64; 2] = [300_000, 5000];

fn config() -> EmbeddedConfig {
    EmbeddedConfig {
        layer_sizes: LAYERS.to_vec(),
        seed: 3,
        index: false,
        auth: EmbeddedAuth::None,
        faults: Faults::default(),
        token_credentials: None,
        request_log: None,
    }
}

fn faults(f: impl FnOnce(&mut Faults)) -> EmbeddedConfig {
    let mut c = config();
    f(&mut c.faults);
    c
}

async fn registry(config: EmbeddedConfig) -> EmbeddedRegistry {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start(listener, config).await.expect("start")
}

#[derive(Debug, PartialEq)]
enum End {
    /// All of Content-Length arrived.
    Complete,
    /// Clean close before Content-Length.
    Eof,
    Error(io::ErrorKind),
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    end: End,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("content-length")
    }

    fn error_code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON error body");
        v["errors"][0]["code"]
            .as_str()
            .expect("errors[0].code")
            .to_string()
    }
}

struct Client {
    stream: TcpStream,
    addr: std::net::SocketAddr,
}

impl Client {
    async fn connect(reg: &EmbeddedRegistry) -> Client {
        let stream = TcpStream::connect(reg.addr()).await.expect("connect");
        Client {
            stream,
            addr: reg.addr(),
        }
    }

    /// Sends one request (`extra` = header lines) and reads its response.
    async fn send(&mut self, method: &str, path: &str, extra: &[&str]) -> Reply {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !extra
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("host:"))
        {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        self.stream
            .write_all(req.as_bytes())
            .await
            .expect("write request");
        self.read_reply(method == "HEAD").await
    }

    async fn read_reply(&mut self, head_only: bool) -> Reply {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).await.expect("read head");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: buf[head_end..].to_vec(),
            end: End::Complete,
        };
        let want = if head_only {
            0
        } else {
            reply.content_length() as usize
        };
        while reply.body.len() < want {
            match self.stream.read(&mut chunk).await {
                Ok(0) => {
                    reply.end = End::Eof;
                    break;
                }
                Ok(n) => reply.body.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    reply.end = End::Error(e.kind());
                    break;
                }
            }
        }
        reply
    }
}

fn layer_bytes(reg: &EmbeddedRegistry, i: usize) -> Vec<u8> {
    let image = reg.image();
    let mut v = vec![0u8; image.layers[i].size as usize];
    fill_layer(image.seed, i, image.layers[i].size, 0, &mut v);
    v
}

const ACCEPT_ALL: &str = "Accept: application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[tokio::test]
async fn base_endpoint() {
    let reg = registry(config()).await;
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", "/v2/", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let r = c.send("GET", "/v2", &[]).await;
    assert_eq!(r.status, 200);
    reg.shutdown().await;
}

#[tokio::test]
async fn manifests_by_tag_negotiate_accept() {
    let reg = registry(config()).await;
    let image = reg.image().clone();
    let mut c = Client::connect(&reg).await;
    let cases: [(&[&str], &synth::SynthDoc); 4] = [
        (&[], &image.manifest),
        (
            &["Accept: application/vnd.docker.distribution.manifest.v2+json"],
            &image.docker_manifest,
        ),
        (&[ACCEPT_ALL], &image.manifest),
        (
            &[
                "Accept: application/vnd.docker.distribution.manifest.v2+json;q=0.9",
                "Accept: */*",
            ],
            &image.docker_manifest,
        ),
    ];
    for (headers, doc) in cases {
        let r = c
            .send("GET", "/v2/synthetic/deep/app/manifests/v1", headers)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some(doc.media_type),
            "{headers:?}"
        );
        assert_eq!(r.header("docker-content-digest"), Some(doc.digest.as_str()));
        assert_eq!(r.body, doc.bytes);
        assert_eq!(sha256_digest(&r.body), doc.digest);
    }
    let r = c
        .send("HEAD", "/v2/a/manifests/latest", &[ACCEPT_ALL])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), image.manifest.size());
    assert!(r.body.is_empty());
    // The next request on the same keep-alive connection still parses.
    assert_eq!(c.send("GET", "/v2/", &[]).await.status, 200);
    reg.shutdown().await;
}

#[tokio::test]
async fn index_at_tags_and_every_document_by_digest() {
    let reg = registry(EmbeddedConfig {
        index: true,
        ..config()
    })
    .await;
    let image = reg.image().clone();
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", "/v2/a/manifests/v1", &[ACCEPT_ALL]).await;
    assert_eq!(r.header("content-type"), Some(synth::MEDIA_OCI_INDEX));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(image.index.digest.as_str())
    );
    // A client that cannot take an index gets the amd64 manifest.
    let r = c
        .send(
            "GET",
            "/v2/a/manifests/v1",
            &["Accept: application/vnd.docker.distribution.manifest.v2+json"],
        )
        .await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(image.docker_manifest.digest.as_str())
    );
    for doc in image.documents() {
        for method in ["GET", "HEAD"] {
            let r = c
                .send(
                    method,
                    &format!("/v2/other/name/manifests/{}", doc.digest),
                    &[],
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some(doc.media_type));
            assert_eq!(r.header("docker-content-digest"), Some(doc.digest.as_str()));
            assert_eq!(r.content_length(), doc.size());
            if method == "GET" {
                assert_eq!(r.body, doc.bytes);
            }
        }
    }
    let unknown = format!("sha256:{}", "0".repeat(64));
    let r = c
        .send("GET", &format!("/v2/a/manifests/{unknown}"), &[])
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    let r = c
        .send("HEAD", &format!("/v2/a/manifests/{unknown}"), &[])
        .await;
    assert_eq!(r.status, 404);
    reg.shutdown().await;
}

#[tokio::test]
async fn blobs_whole_ranged_and_unknown() {
    let reg = registry(config()).await;
    let image = reg.image().clone();
    let whole = layer_bytes(&reg, 0);
    let total = whole.len() as u64;
    let path = format!("/v2/synthetic/app/blobs/{}", image.layers[0].digest);
    let mut c = Client::connect(&reg).await;

    let r = c.send("GET", &path, &[]).await;
    assert_eq!((r.status, &r.end), (200, &End::Complete));
    assert_eq!(r.body, whole);
    assert_eq!(sha256_digest(&r.body), image.layers[0].digest);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(image.layers[0].digest.as_str())
    );

    let r = c.send("HEAD", &path, &[]).await;
    assert_eq!(
        (r.status, r.content_length(), r.body.len()),
        (200, total, 0)
    );

    let r = c.send("GET", &path, &["Range: bytes=100000-"]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100000-{}/{total}", total - 1).as_str())
    );
    assert_eq!(r.content_length(), total - 100_000);
    assert_eq!(r.body, whole[100_000..]);

    let r = c.send("GET", &path, &["Range: bytes=7-70006"]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 7-70006/{total}").as_str())
    );
    assert_eq!(r.body, whole[7..70_007]);

    for bad in [
        "Range: bytes=999999999-",
        "Range: bytes=9-3",
        "Range: pages=1-2",
        "Range: bytes=0-1,5-6",
    ] {
        let r = c.send("GET", &path, &[bad]).await;
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{total}").as_str())
        );
    }

    let r = c
        .send(
            "GET",
            &format!("/v2/a/blobs/{}", image.config.digest),
            &["Range: bytes=10-"],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, image.config.bytes[10..]);

    let r = c
        .send(
            "GET",
            &format!("/v2/a/blobs/sha256:{}", "1".repeat(64)),
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = c.send("GET", "/v2/a/blobs/sha256:xyz", &[]).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "DIGEST_INVALID"));
    reg.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_4xx() {
    let reg = registry(config()).await;
    let mut c = Client::connect(&reg).await;
    for (method, path, status) in [
        ("GET", "/", 404),
        ("GET", "/v2/a", 404),
        ("GET", "/v2/a/tags/list", 404),
        ("GET", "/v2/Upper/manifests/v1", 400),
        ("GET", "/v2/a//b/manifests/v1", 400),
        ("GET", "/v2/../etc/manifests/v1", 400),
        ("GET", "/v2/%61/manifests/v1", 400),
        ("GET", "/v2/a/manifests/-bad", 400),
        ("GET", "/v2/a/manifests/", 400),
        ("DELETE", "/v2/a/manifests/v1", 405),
        ("POST", "/v2/a/blobs/uploads/", 405),
        ("PUT", "/v2/a/blobs/uploads/123", 405),
        ("POST", "/token", 405),
    ] {
        let r = c.send(method, path, &[]).await;
        assert_eq!(r.status, status, "{method} {path}");
        r.error_code();
    }
    // Garbage that is not HTTP at all: hyper answers 400 and closes.
    let mut raw = TcpStream::connect(reg.addr()).await.unwrap();
    raw.write_all(b"\x00\xff garbage\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out).await;
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // The server is still fine.
    assert_eq!(c.send("GET", "/v2/", &[]).await.status, 200);
    reg.shutdown().await;
}

#[tokio::test]
async fn bearer_flow() {
    let reg = registry(EmbeddedConfig {
        auth: EmbeddedAuth::Bearer,
        ..config()
    })
    .await;
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", "/v2/", &[]).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    let challenge = r.header("www-authenticate").expect("challenge").to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"pullstorm-embedded\"",
            reg.addr()
        )
    );
    let path = "/v2/synthetic/app/manifests/v1";
    let r = c.send("GET", path, &["Host: registry.example:5000"]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"http://registry.example:5000/token\",service=\"pullstorm-embedded\",scope=\"repository:synthetic/app:pull\"")
    );

    let r = c
        .send(
            "GET",
            "/token?service=pullstorm-embedded&scope=repository:synthetic/app:pull",
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["access_token"].as_str(), Some(token.as_str()));
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().is_some_and(|s| s.ends_with('Z')));

    let auth = format!("Authorization: Bearer {token}");
    assert_eq!(c.send("GET", path, &[&auth]).await.status, 200);
    assert_eq!(c.send("GET", "/v2/", &[&auth]).await.status, 200);
    assert_eq!(
        c.send("GET", path, &["Authorization: Bearer ps1.1.00"])
            .await
            .status,
        401
    );
    reg.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_demands_basic_credentials_when_configured() {
    let creds = Credentials {
        user: "ci".into(),
        password: "pw".into(),
    };
    let reg = registry(EmbeddedConfig {
        auth: EmbeddedAuth::Bearer,
        token_credentials: Some(creds),
        ..config()
    })
    .await;
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", "/token?service=x", &[]).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    let bad = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ci:nope")
    );
    assert_eq!(c.send("GET", "/token", &[&bad]).await.status, 401);
    let good = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ci:pw")
    );
    let r = c.send("GET", "/token", &[&good]).await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let auth = format!("Authorization: Bearer {}", v["token"].as_str().unwrap());
    assert_eq!(
        c.send("GET", "/v2/a/manifests/v1", &[&auth]).await.status,
        200
    );
    reg.shutdown().await;
}

#[tokio::test]
async fn cut_with_fin_gives_a_short_body_then_eof() {
    let reg = registry(faults(|f| f.cut_after = Some(ByteSize(100_000)))).await;
    let whole = layer_bytes(&reg, 0);
    let path = format!("/v2/a/blobs/{}", reg.image().layers[0].digest);
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", &path, &[]).await;
    assert_eq!((r.status, r.content_length()), (200, whole.len() as u64));
    assert_eq!(r.end, End::Eof);
    assert_eq!(r.body, whole[..100_000], "exactly the bytes before the cut");
    // Every response is cut (no cut_times); a ranged one too, counted from its start.
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", &path, &["Range: bytes=50000-"]).await;
    assert_eq!((r.status, &r.end), (206, &End::Eof));
    assert_eq!(r.body, whole[50_000..150_000]);
    // A blob no longer than the cut is served whole.
    let mut c = Client::connect(&reg).await;
    let r = c
        .send(
            "GET",
            &format!("/v2/a/blobs/{}", reg.image().layers[1].digest),
            &[],
        )
        .await;
    assert_eq!(r.end, End::Complete);
    reg.shutdown().await;
}

#[tokio::test]
async fn cut_with_rst_resets_the_connection() {
    let reg = registry(faults(|f| {
        f.cut_after = Some(ByteSize(100_000));
        f.cut_with = CutWith::Rst;
    }))
    .await;
    let path = format!("/v2/a/blobs/{}", reg.image().layers[0].digest);
    let mut c = Client::connect(&reg).await;
    let r = c.send("GET", &path, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.end, End::Error(io::ErrorKind::ConnectionReset));
    assert!(r.body.len() <= 100_000);
    reg.shutdown().await;
}

#[tokio::test]
async fn cut_times_then_whole() {
    let reg = registry(faults(|f| {
        f.cut_after = Some(ByteSize(1000));
        f.cut_times = Some(1);
    }))
    .await;
    let image = reg.image().clone();
    let whole = layer_bytes(&reg, 0);
    let path = format!("/v2/a/blobs/{}", image.layers[0].digest);
    let r = Client::connect(&reg).await.send("GET", &path, &[]).await;
    assert_eq!((r.end, r.body.len()), (End::Eof, 1000));
    let r = Client::connect(&reg).await.send("GET", &path, &[]).await;
    assert_eq!(r.end, End::Complete);
    assert_eq!(r.body, whole);
    // Counted per blob: the other layer still gets its one cut.
    let r = Client::connect(&reg)
        .await
        .send(
            "GET",
            &format!("/v2/a/blobs/{}", image.layers[1].digest),
            &[],
        )
        .await;
    assert_eq!(r.end, End::Eof);
    reg.shutdown().await;
}

#[tokio::test]
async fn ignore_range_answers_200_whole() {
    let reg = registry(faults(|f| f.ignore_range = true)).await;
    let whole = layer_bytes(&reg, 0);
    let path = format!("/v2/a/blobs/{}", reg.image().layers[0].digest);
    let r = Client::connect(&reg)
        .await
        .send("GET", &path, &["Range: bytes=1000-"])
        .await;
    assert_eq!((r.status, r.header("content-range")), (200, None));
    assert_eq!(r.body, whole);
    reg.shutdown().await;
}

#[tokio::test]
async fn corrupt_flips_one_byte() {
    let reg = registry(faults(|f| f.corrupt = true)).await;
    let image = reg.image().clone();
    let whole = layer_bytes(&reg, 0);
    let mut c = Client::connect(&reg).await;
    let r = c
        .send(
            "GET",
            &format!("/v2/a/blobs/{}", image.layers[0].digest),
            &[],
        )
        .await;
    assert_eq!((r.status, r.body.len()), (200, whole.len()));
    assert_ne!(sha256_digest(&r.body), image.layers[0].digest);
    assert_eq!(r.body.iter().zip(&whole).filter(|(a, b)| a != b).count(), 1);
    // Configs are left intact (the fault is about layer bodies).
    let r = c
        .send("GET", &format!("/v2/a/blobs/{}", image.config.digest), &[])
        .await;
    assert_eq!(sha256_digest(&r.body), image.config.digest);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_keep_alive_connections() {
    const CONNS: usize = 3000;
    let reg = registry(config()).await;
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        clients.push(Client::connect(&reg).await);
    }
    // All open at once, then each makes two requests on its connection.
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let a = c.send("GET", "/v2/", &[]).await.status;
                let b = c.send("HEAD", "/v2/x/manifests/v1", &[]).await.status;
                (a, b, c)
            })
        })
        .collect();
    let mut open = Vec::new();
    for t in tasks {
        let (a, b, c) = t.await.expect("client task");
        assert_eq!((a, b), (200, 200));
        open.push(c);
    }
    drop(open);
    reg.shutdown().await;
}

#[tokio::test]
async fn from_section_and_shutdown_frees_the_port() {
    let section = crate::scenario::EmbeddedSection {
        layers: vec![ByteSize(4096)],
        seed: 11,
        index: true,
        ..Default::default()
    };
    let config = EmbeddedConfig::from_section(&section);
    assert_eq!(
        (config.layer_sizes.as_slice(), config.seed, config.index),
        (&[4096u64][..], 11, true)
    );
    let reg = registry(config).await;
    let addr = reg.addr();
    assert_eq!(reg.image().layers[0].size, 4096);
    reg.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn layers_over_the_size_limits_are_named() {
    assert_eq!(oversized_layers(&[MAX_LAYER_BYTES, 1 << 20]), []);
    // The case: 16777215 TiB, which would hash for ever.
    let huge = 16_777_215u64 << 40;
    let problems = oversized_layers(&[1 << 20, huge]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].layer, Some(1));
    assert!(problems[0].message.contains("64.00 GiB"), "{problems:?}");
    // Each layer within its limit, the sum over the image's (and no overflow).
    let problems = oversized_layers(&[MAX_LAYER_BYTES; 5]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].layer, None);
    assert!(problems[0].message.contains("256.00 GiB"), "{problems:?}");
    assert_eq!(oversized_layers(&[u64::MAX; 3]).len(), 3);
}

#[test]
fn dropping_an_image_build_cancels_it() {
    use std::time::{Duration, Instant};
    let mut c = config();
    // Far more than a test could wait for: only a cancelled build ends.
    c.layer_sizes = vec![MAX_LAYER_BYTES, MAX_LAYER_BYTES];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let raced = tokio::time::timeout(Duration::from_millis(200), c.build_image_async()).await;
        assert!(raced.is_err(), "a 128 GiB image cannot be built in 200 ms");
    });
    // The timeout dropped the build; shutting down waits for the blocking
    // threads, so it returns early only if the hashing thread stopped.
    let limit = Duration::from_secs(20);
    let shutting = Instant::now();
    runtime.shutdown_timeout(limit);
    assert!(
        shutting.elapsed() < limit,
        "the hashing thread was still running {limit:?} after its build was dropped"
    );
}

/// The registry's log, once `n` entries are complete (bounded wait: the log entry of a
/// response is completed when hyper drops its body, just after the client has read it).
async fn log_of(reg: &EmbeddedRegistry, n: usize) -> Vec<LoggedRequest> {
    for _ in 0..250 {
        let log = reg.request_log().expect("an in-memory log");
        if log.len() >= n && log.iter().all(|e| e.end != LogEnd::InFlight) {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the log never had {n} complete entries: {:?}",
        reg.request_log()
    );
}

fn logged(f: impl FnOnce(&mut Faults)) -> EmbeddedConfig {
    let mut c = faults(f);
    c.request_log = Some(RequestLog::memory());
    c
}

#[tokio::test]
async fn status_fault_answers_its_kind_with_a_registry_body_then_serves() {
    let reg = registry(logged(|f| {
        f.status = Some(429);
        f.status_on = Some(FaultTarget::Layer);
        f.status_times = Some(2);
    }))
    .await;
    let image = reg.image().clone();
    let layer = format!("/v2/a/blobs/{}", image.layers[0].digest);
    let config = format!("/v2/a/blobs/{}", image.config.digest);
    let mut c = Client::connect(&reg).await;
    assert_eq!(c.send("GET", &config, &[]).await.status, 200);
    let r = c.send("HEAD", &layer, &[]).await;
    assert_eq!((r.status, r.body.len()), (429, 0));
    let r = c.send("GET", &layer, &[]).await;
    assert_eq!((r.status, r.error_code()), (429, "TOOMANYREQUESTS".into()));
    // status_times = 2: the third is served.
    let r = c.send("GET", &layer, &[]).await;
    assert_eq!((r.status, r.end), (200, End::Complete));
    let log = log_of(&reg, 4).await;
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.method.as_str(), e.kind, e.status, e.injected))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", RequestKind::Config, 200, false),
            ("HEAD", RequestKind::Layer, 429, true),
            ("GET", RequestKind::Layer, 429, true),
            ("GET", RequestKind::Layer, 200, false),
        ]
    );
    assert_eq!(log[3].bytes, image.layers[0].size);
    assert_eq!(log[3].layer, Some(0));
    assert!(log.iter().all(|e| e.conn == 1), "one keep-alive connection");
    reg.shutdown().await;
}

#[tokio::test]
async fn status_fault_bodies_401_challenge_and_lb_pages() {
    let reg = registry(faults(|f| {
        f.status = Some(401);
        f.status_on = Some(FaultTarget::Manifest);
    }))
    .await;
    let mut c = Client::connect(&reg).await;
    let r = c.send("HEAD", "/v2/lib/app/manifests/v1", &[]).await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
    let realm = format!("Bearer realm=\"http://{}/token\"", reg.addr());
    assert!(challenge.starts_with(&realm), "{challenge}");
    assert!(challenge.ends_with(",scope=\"repository:lib/app:pull\""));
    // Its own token endpoint answers, and the ping is untouched.
    assert_eq!(c.send("GET", "/token", &[]).await.status, 200);
    assert_eq!(c.send("GET", "/v2/", &[]).await.status, 200);
    // A token does not help: the fault is the registry's answer whatever the client sends.
    let r = c
        .send(
            "GET",
            "/v2/lib/app/manifests/v1",
            &["Authorization: Bearer x"],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (401, "UNAUTHORIZED".into()));
    reg.shutdown().await;

    let reg = registry(faults(|f| {
        f.status = Some(502);
        f.status_on = Some(FaultTarget::Blob);
    }))
    .await;
    let path = format!("/v2/a/blobs/{}", reg.image().config.digest);
    let r = Client::connect(&reg).await.send("GET", &path, &[]).await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (502, Some("text/html"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("<center><h1>502 Bad Gateway</h1></center>"));
    reg.shutdown().await;

    let reg = registry(faults(|f| {
        f.status = Some(503);
        f.status_on = Some(FaultTarget::Ping);
    }))
    .await;
    let r = Client::connect(&reg).await.send("GET", "/v2/", &[]).await;
    assert_eq!((r.status, r.error_code()), (503, "UNAVAILABLE".into()));
    reg.shutdown().await;
}

#[tokio::test]
async fn stall_holds_the_body_and_the_log_says_so() {
    let reg = registry(logged(|f| f.stall_after = Some(ByteSize(100_000)))).await;
    let whole = layer_bytes(&reg, 0);
    let path = format!("/v2/a/blobs/{}", reg.image().layers[0].digest);
    let mut c = Client::connect(&reg).await;
    c.stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Everything up to the stall arrives, then nothing: the read waits until we give up.
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let head_and_body = loop {
        let n = c.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the registry closed a stalled body");
        got.extend_from_slice(&chunk[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() - (i + 4) >= 100_000 {
                break i + 4;
            }
        }
    };
    assert_eq!(got[head_and_body..], whole[10..100_010]);
    let more = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        c.stream.read(&mut chunk),
    )
    .await;
    assert!(more.is_err(), "a stalled body sent more: {more:?}");
    let log = reg.request_log().unwrap();
    assert_eq!(log[0].end, LogEnd::InFlight, "{log:?}");
    assert_eq!(log[0].range.as_deref(), Some("bytes=10-"));
    // The registry closes it (the client would wait for ever): the entry is completed as
    // stalled, with what was sent, and the client sees the end of the connection.
    reg.close_connections();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), c.stream.read(&mut chunk))
        .await
        .expect("the connection ends");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let log = log_of(&reg, 1).await;
    assert_eq!(
        (log[0].status, log[0].end, log[0].bytes),
        (206, LogEnd::Stalled, 100_000)
    );
    // The config blob is shorter than the stall: served whole.
    let config = format!("/v2/a/blobs/{}", reg.image().config.digest);
    let r = Client::connect(&reg).await.send("GET", &config, &[]).await;
    assert_eq!(r.end, End::Complete);
    reg.shutdown().await;
}

#[tokio::test]
async fn the_log_tells_cuts_client_gone_and_connections_that_are_not_http() {
    // A layer larger than the socket buffers, so that a client leaving early is seen.
    let mut big = logged(|f| {
        f.cut_after = Some(ByteSize(100_000));
        f.cut_times = Some(1);
    });
    big.layer_sizes = vec![32 << 20];
    let reg = registry(big).await;
    let image = reg.image().clone();
    let path = format!("/v2/a/blobs/{}", image.layers[0].digest);
    let r = Client::connect(&reg).await.send("GET", &path, &[]).await;
    assert_eq!(r.end, End::Eof);
    // A client that reads the head and leaves.
    let mut c = Client::connect(&reg).await;
    c.stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let _ = c.stream.read(&mut head).await.unwrap();
    drop(c);
    // A TLS ClientHello (what dockerd sends first to a registry it may reach insecurely).
    let mut tls = TcpStream::connect(reg.addr()).await.unwrap();
    tls.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ])
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    let r = Client::connect(&reg)
        .await
        .send("GET", "/v2/a/manifests/v1", &[])
        .await;
    assert_eq!(r.status, 200);
    let log = log_of(&reg, 4).await;
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.conn, e.kind, e.status, e.end))
        .collect();
    assert_eq!(
        seen,
        [
            (1, RequestKind::Layer, 200, LogEnd::Cut),
            (2, RequestKind::Layer, 200, LogEnd::ClientGone),
            (3, RequestKind::NotHttp, 400, LogEnd::Complete),
            (4, RequestKind::ManifestByTag, 200, LogEnd::Complete),
        ]
    );
    assert_eq!(log[0].bytes, 100_000);
    assert!(log[1].bytes < image.layers[0].size, "{:?}", log[1]);
    assert!(log.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    // Without a log there is nothing to read (not an empty log).
    let plain = registry(config()).await;
    assert!(plain.request_log().is_none());
    plain.shutdown().await;
    reg.shutdown().await;
}
