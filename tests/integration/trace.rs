//! Trace fidelity: what pullstorm's dockerd and containerd profiles send, request by
//! request, next to what the real clients send (the machine's dockerd via `docker pull`, and
//! containerd via `ctr content fetch`, the resolver and fetcher the CRI plugin uses), on a
//! clean pull and on a pull whose layer is cut half-way.
//!
//! The chain: client -> haproxy (records every request: method, path, every Accept line,
//! Range, status, bytes, timing) -> nginx (the lab's Harbor-like config; cuts a stalled
//! upstream after 2 s; rate-limits the cut image's blobs so the cut lands mid-layer) ->
//! a docker-registry of the test's own (frozen with SIGSTOP to make the cut). nginx 1.22
//! keeps only the first of several Accept lines, hence haproxy in front.
//!
//! The test asserts every point the profiles model and lists the differences they do not
//! (docs/clients.md shows the traces side by side; the test writes them to
//! `$CARGO_TARGET_TMPDIR/trace-fidelity.md`).

use crate::common::{self, wait_until};
use crate::instances::*;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const FOUR: [&str; 4] = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];

/// Occurrences of Accept recorded per request.
const ACCEPT_SLOTS: usize = 8;

fn haproxy_config(nginx_port: u16) -> String {
    let mut captures = String::from("    http-request capture req.fhdr_cnt(accept) len 4\n");
    for n in 1..=ACCEPT_SLOTS {
        writeln!(
            captures,
            "    http-request capture req.fhdr(accept,{n}) len 300"
        )
        .unwrap();
    }
    captures.push_str("    http-request capture req.fhdr(range) len 64\n");
    captures.push_str("    http-request capture req.fhdr(user-agent) len 160\n");
    format!(
        "global\n    log stdout format raw local0 info\n\
         defaults\n    mode http\n    log global\n    timeout connect 5s\n    \
         timeout client 1h\n    timeout server 1h\n\
         frontend trace\n    bind 127.0.0.1:@@PORT@@\n{captures}    \
         log-format \"TRACE %Ts.%ms %Th %Ti %Ta %HM %HU %ST %B %hr\"\n    default_backend lb\n\
         backend lb\n    server lb 127.0.0.1:{nginx_port}\n"
    )
}

/// One request as haproxy saw it.
#[derive(Debug, Clone)]
struct Req {
    /// When the request began, ms since the epoch, and how long until its response was sent.
    at_ms: u64,
    active_ms: u64,
    method: String,
    path: String,
    status: u16,
    bytes: u64,
    accept: Vec<String>,
    range: Option<String>,
    agent: String,
}

impl Req {
    fn parse(line: &str) -> Option<Req> {
        let rest = line.split("TRACE ").nth(1)?;
        let (head, captures) = rest.split_once(" {")?;
        let f: Vec<&str> = head.split_whitespace().collect();
        let (secs, ms) = f.first()?.split_once('.')?;
        let caps: Vec<&str> = captures
            .trim_end()
            .trim_end_matches('}')
            .split('|')
            .collect();
        let count: usize = caps.first()?.parse().unwrap_or(0);
        let accept = caps[1..=ACCEPT_SLOTS.min(caps.len() - 1)]
            .iter()
            .take(count)
            .map(|s| s.to_string())
            .collect();
        let range = caps.get(ACCEPT_SLOTS + 1).filter(|s| !s.is_empty());
        let agent = caps.get(ACCEPT_SLOTS + 2).map(|s| s.to_string());
        // The connection's accept time plus its handshake and idle time: when this request
        // began (a kept-alive connection carries several).
        let accepted = secs.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?;
        let waited: u64 =
            f.get(1)?.parse::<u64>().unwrap_or(0) + f.get(2)?.parse::<u64>().unwrap_or(0);
        Some(Req {
            at_ms: accepted + waited,
            active_ms: f.get(3)?.parse().unwrap_or(0),
            method: f.get(4)?.to_string(),
            path: f.get(5)?.to_string(),
            status: f.get(6)?.parse().ok()?,
            bytes: f.get(7)?.parse().ok()?,
            accept,
            range: range.map(|s| s.to_string()),
            agent: agent.unwrap_or_default(),
        })
    }
}

/// What a request is, in the terms the profiles model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Not HTTP (dockerd tries TLS first on a registry it may reach insecurely).
    BadRequest,
    Ping,
    ManifestByTag,
    ManifestByDigest,
    Config,
    Layer(usize),
    Other(String),
}

#[derive(Clone)]
struct Image {
    name: String,
    config: String,
    layers: Vec<(String, u64)>,
}

impl Image {
    fn kind(&self, r: &Req) -> Kind {
        if r.method.starts_with('<') {
            return Kind::BadRequest;
        }
        let path = r.path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Kind::Ping;
        }
        let repo = format!("/v2/{}/", self.name);
        match path.strip_prefix(&repo) {
            Some(m) if m.starts_with("manifests/sha256:") => Kind::ManifestByDigest,
            Some(m) if m.starts_with("manifests/") => Kind::ManifestByTag,
            Some(b) if b == format!("blobs/{}", self.config) => Kind::Config,
            Some(b) => match self
                .layers
                .iter()
                .position(|(d, _)| b == format!("blobs/{d}"))
            {
                Some(i) => Kind::Layer(i),
                None => Kind::Other(path.to_string()),
            },
            None => Kind::Other(path.to_string()),
        }
    }

    /// Whether `reqs` hold the config's GET and, for every layer, the GET that delivered its
    /// end: a whole 200, or the 206 of a resume.
    fn every_blob_logged(&self, reqs: &[Req]) -> bool {
        let config = reqs
            .iter()
            .any(|r| self.kind(r) == Kind::Config && r.status == 200);
        config
            && self.layers.iter().enumerate().all(|(i, (_, size))| {
                reqs.iter().any(|r| {
                    self.kind(r) == Kind::Layer(i)
                        && (r.status == 206 || (r.status == 200 && r.bytes >= *size))
                })
            })
    }
}

/// The capture: images, the chain, and the haproxy log read so far.
struct Bench {
    registry: Registry,
    nginx: Nginx,
    haproxy: Haproxy,
    dir: std::path::PathBuf,
    clean: Image,
    cut: Image,
    cut_size: u64,
    report: String,
}

const CUT_SIZE: u64 = 48 << 20;

impl Bench {
    fn start(dir: &Path) -> Bench {
        let registry = Registry::start(&dir.join("registry"), None);
        // Digests unique to this run: no client can have the blobs cached from a former run.
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (clean_sizes, cut_sizes) = ([4u64 << 20, 1 << 20], [CUT_SIZE]);
        seed(&registry.url(), "lab/trace:v1", "4MiB,1MiB", salt);
        seed(&registry.url(), "lab/trace-cut:v1", "48MiB", salt + 1);
        let image = |name: &str, seed: u64, sizes: &[u64]| {
            let s = synthetic(seed, sizes);
            Image {
                name: name.into(),
                config: s.config.digest.clone(),
                layers: s
                    .layers
                    .iter()
                    .map(|l| (l.digest.clone(), l.size))
                    .collect(),
            }
        };
        let nginx = Nginx::start(
            &dir.join("nginx"),
            registry.port,
            NginxConf {
                server: "proxy_read_timeout 2s;\n\
                         location ~ ^/v2/lab/trace-cut/blobs/ {\n    \
                             proxy_buffering on;\n    proxy_max_temp_file_size 0;\n    \
                             limit_rate 8m;\n    proxy_pass http://registry;\n}\n"
                    .into(),
                ..Default::default()
            },
        );
        let haproxy = Haproxy::with_config(&dir.join("haproxy"), &haproxy_config(nginx.port));
        Bench {
            registry,
            nginx,
            haproxy,
            dir: dir.to_path_buf(),
            clean: image("lab/trace", salt, &clean_sizes),
            cut: image("lab/trace-cut", salt + 1, &cut_sizes),
            cut_size: CUT_SIZE,
            report: String::new(),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.haproxy.port)
    }

    fn log_lines(&self) -> Vec<Req> {
        self.haproxy
            .daemon
            .output()
            .lines()
            .filter_map(Req::parse)
            .collect()
    }

    /// Runs `pull` (which starts a client and returns something to wait on) and returns the
    /// requests it made. With `cut`, the registry is frozen once the client has its manifest
    /// and the layer's body is flowing, until nginx has cut the layer (proxy_read_timeout),
    /// then thawed.
    fn capture(&mut self, what: &str, cut: bool, pull: impl FnOnce(&Bench) -> Waiter) -> Vec<Req> {
        let before = self.log_lines().len();
        let cuts_before = self.nginx.error_log().matches("upstream timed out").count();
        let waiter = pull(self);
        if cut {
            let name = format!("/v2/{}/manifests/sha256:", self.cut.name);
            wait_until(
                &format!("{what}: its manifest"),
                Duration::from_secs(60),
                || {
                    self.log_lines()[before..]
                        .iter()
                        .any(|r| r.path.starts_with(&name))
                },
            );
            self.registry
                .wait_mid_blob(&format!("{what}: the layer"), 1);
            self.registry.daemon.freeze();
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_until(
                    &format!("{what}: nginx's cut"),
                    Duration::from_secs(30),
                    || self.nginx.error_log().matches("upstream timed out").count() > cuts_before,
                )
            }));
            self.registry.daemon.thaw();
            if let Err(e) = waited {
                std::panic::resume_unwind(e);
            }
        }
        waiter.wait(what);
        // haproxy logs a request when it ends, maybe just after the client has exited.
        let image = if cut { &self.cut } else { &self.clean };
        wait_until(
            &format!("{what}: haproxy's lines for every blob"),
            Duration::from_secs(10),
            || image.every_blob_logged(&self.log_lines()[before..]),
        );
        let mut reqs = self.log_lines()[before..].to_vec();
        reqs.sort_by_key(|r| r.at_ms);
        let preflight = preflight_len(image, &reqs);
        let agent = reqs
            .get(preflight)
            .map(|r| r.agent.clone())
            .unwrap_or_default();
        writeln!(self.report, "\n### {what}\n\nUser-Agent: `{agent}`\n\n```").unwrap();
        let t0 = reqs.get(preflight).map(|r| r.at_ms).unwrap_or(0);
        for (i, r) in reqs.iter().enumerate() {
            let line = describe(image, r, t0);
            if i < preflight {
                writeln!(self.report, "{line}   (preflight, once per run)").unwrap();
            } else {
                writeln!(self.report, "{line}").unwrap();
            }
        }
        writeln!(self.report, "```").unwrap();
        reqs
    }
}

/// A client run to wait for.
enum Waiter {
    Child(std::process::Child, String),
    Pullstorm(std::process::Child, std::path::PathBuf),
}

impl Waiter {
    fn wait(self, what: &str) {
        match self {
            Waiter::Child(child, cleanup) => {
                let out = wait_child(child, Duration::from_secs(120));
                assert!(
                    out.status.success(),
                    "{what}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if !cleanup.is_empty() {
                    let _ = Command::new("docker")
                        .args(["rmi", "-f", &cleanup])
                        .output();
                }
            }
            Waiter::Pullstorm(child, dir) => {
                let r = finish_run(child, &dir);
                assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
                let v = r.result();
                assert_eq!(
                    common::u(&v, "pulls.completed"),
                    1,
                    "{what}: {}",
                    error_summary(&v)
                );
            }
        }
    }
}

fn wait_child(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("client did not finish within {limit:?}");
        }
    }
}

/// One line of the side-by-side traces.
fn describe(image: &Image, r: &Req, t0: u64) -> String {
    let kind = match image.kind(r) {
        Kind::BadRequest => "(not HTTP: TLS ClientHello)".to_string(),
        Kind::Ping => "GET  /v2/".to_string(),
        Kind::ManifestByTag => format!("{:<4} manifests/<tag>", r.method),
        Kind::ManifestByDigest => format!("{:<4} manifests/<digest>", r.method),
        Kind::Config => format!("{:<4} blobs/<config>", r.method),
        Kind::Layer(i) => format!("{:<4} blobs/<layer {}>", r.method, i + 1),
        Kind::Other(p) => format!("{:<4} {p}", r.method),
    };
    let accept = match r.accept.len() {
        0 => "-".to_string(),
        _ => r
            .accept
            .iter()
            .map(|a| short(a))
            .collect::<Vec<_>>()
            .join(" | "),
    };
    format!(
        "{:>7.3}s {:<28} {:>3} {:>9}B  range={:<16} accept[{}]={}",
        (r.at_ms as i64 - t0 as i64) as f64 / 1000.0,
        kind,
        r.status,
        r.bytes,
        r.range.as_deref().unwrap_or("-"),
        r.accept.len(),
        accept
    )
}

/// Media types in short: docker.manifest.v2, oci.index.v1, ...
fn short(accept: &str) -> String {
    accept
        .split(',')
        .map(|t| {
            t.trim()
                .replace("application/vnd.docker.distribution.", "docker.")
                .replace(
                    "application/vnd.docker.container.image.",
                    "docker.container.",
                )
                .replace("application/vnd.docker.image.rootfs.", "docker.rootfs.")
                .replace("application/vnd.oci.image.", "oci.")
                .replace("+json", "")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Accept media types of a request, one per comma-separated item of every line.
fn accept_types(r: &Req) -> Vec<String> {
    r.accept
        .iter()
        .flat_map(|a| a.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// pullstorm's preflight, once per run before any node starts: `GET /v2/` (server
/// headers), the session's ping, HEAD by tag, GET by digest, then the node's first
/// request (a ping for dockerd, the HEAD for containerd). Real clients have none.
fn preflight_len(image: &Image, reqs: &[Req]) -> usize {
    let kinds: Vec<Kind> = reqs.iter().map(|r| image.kind(r)).collect();
    let preflight = [
        Kind::Ping,
        Kind::Ping,
        Kind::ManifestByTag,
        Kind::ManifestByDigest,
    ];
    if kinds.len() > 4
        && kinds[..4] == preflight
        && matches!(kinds[4], Kind::Ping | Kind::ManifestByTag)
    {
        4
    } else {
        0
    }
}

/// The requests of one pull: without pullstorm's preflight, nor what no profile models
/// (dockerd's TLS probe of an insecure registry, when it makes one).
fn http_only(image: &Image, reqs: &[Req]) -> Vec<Req> {
    reqs[preflight_len(image, reqs)..]
        .iter()
        .filter(|r| image.kind(r) != Kind::BadRequest)
        .cloned()
        .collect()
}

/// Every point of a pull the profiles model, checked on one trace.
fn check_common(what: &str, image: &Image, reqs: &[Req], pings: bool) {
    let reqs = http_only(image, reqs);
    let kinds: Vec<Kind> = reqs.iter().map(|r| image.kind(r)).collect();
    let pos = |k: &Kind| kinds.iter().position(|x| x == k);
    // One ping when the client pings (dockerd), first; none for containerd. Then the tag resolved by
    // HEAD, then the manifest by digest.
    assert_eq!(
        kinds.iter().filter(|k| **k == Kind::Ping).count(),
        usize::from(pings),
        "{what}: {kinds:?}"
    );
    let head = pos(&Kind::ManifestByTag).unwrap_or_else(|| panic!("{what}: no HEAD: {kinds:?}"));
    if pings {
        assert_eq!(kinds.first(), Some(&Kind::Ping), "{what}: {kinds:?}");
    }
    let by_tag = &reqs[head];
    assert_eq!(by_tag.method, "HEAD", "{what}");
    let types = accept_types(by_tag);
    for t in FOUR {
        assert!(
            types.iter().any(|x| x == t),
            "{what}: HEAD lacks Accept {t}: {types:?}"
        );
    }
    let by_digest = pos(&Kind::ManifestByDigest).unwrap_or_else(|| panic!("{what}: {kinds:?}"));
    assert!(by_digest > head, "{what}: {kinds:?}");
    assert_eq!(reqs[by_digest].method, "GET");
    // Config and layers, by GET, after the manifest; nothing else.
    let blobs: Vec<&Req> = reqs
        .iter()
        .filter(|r| matches!(image.kind(r), Kind::Config | Kind::Layer(_)))
        .collect();
    assert!(
        blobs
            .iter()
            .all(|r| r.method == "GET" && r.at_ms >= reqs[by_digest].at_ms),
        "{what}: {kinds:?}"
    );
    assert_eq!(
        blobs
            .iter()
            .filter(|r| image.kind(r) == Kind::Config)
            .count(),
        1,
        "{what}: {kinds:?}"
    );
    assert!(
        kinds.iter().all(|k| !matches!(k, Kind::Other(_))),
        "{what}: {kinds:?}"
    );
}

/// The layer's GETs of a clean pull: one each, 200, whole.
fn check_clean(what: &str, image: &Image, reqs: &[Req]) {
    for (i, (_, size)) in image.layers.iter().enumerate() {
        let gets: Vec<&Req> = reqs
            .iter()
            .filter(|r| image.kind(r) == Kind::Layer(i))
            .collect();
        assert_eq!(gets.len(), 1, "{what}: layer {i}: {gets:?}");
        assert!(
            gets[0].range.is_none() && gets[0].status == 200,
            "{what}: {gets:?}"
        );
        assert!(gets[0].bytes >= *size, "{what}: {gets:?}");
    }
}

/// The cut layer: a first GET cut short, then one GET with `Range: bytes=N-` answered 206;
/// returns the pause between the cut and the resume, in ms.
fn check_resume(what: &str, image: &Image, reqs: &[Req], size: u64) -> u64 {
    let gets: Vec<&Req> = reqs
        .iter()
        .filter(|r| image.kind(r) == Kind::Layer(0))
        .collect();
    assert_eq!(gets.len(), 2, "{what}: {gets:?}");
    let (first, second) = (gets[0], gets[1]);
    assert!(
        first.range.is_none() && first.bytes < size,
        "{what}: {first:?}"
    );
    let start: u64 = second
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: the retry has no Range: {second:?}"));
    assert!(start > 0 && start <= first.bytes, "{what}: {gets:?}");
    assert_eq!(second.status, 206, "{what}: {second:?}");
    second.at_ms.saturating_sub(first.at_ms + first.active_ms)
}

fn pullstorm(b: &Bench, image: &Image, client: &str, dir: &str) -> Waiter {
    let run_dir = b.dir.join(dir);
    let scenario = format!(
        "[fleet]\nclient = \"{client}\"\n[run]\nduration = \"90s\"\n[thresholds]\nmax_failed_pulls = 0\n"
    );
    let child = spawn_run(
        &run_dir,
        &scenario,
        &format!("http://{}", b.host()),
        &format!("{}:v1", image.name),
        &[],
    );
    Waiter::Pullstorm(child, run_dir)
}

fn docker_pull(b: &Bench, image: &Image) -> Waiter {
    let name = format!("{}/{}:v1", b.host(), image.name);
    let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
    let child = Command::new("docker")
        .args(["pull", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker CLI");
    Waiter::Child(child, name)
}

fn ctr_fetch(c: &Containerd, b: &Bench, image: &Image) -> Waiter {
    let child = c.ctr_spawn(&[
        "content",
        "fetch",
        "--plain-http",
        &format!("{}/{}:v1", b.host(), image.name),
    ]);
    Waiter::Child(child, String::new())
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn profiles_send_what_dockerd_and_containerd_send() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-trace-")
        .tempdir()
        .unwrap();
    let mut b = Bench::start(dir.path());
    let (clean, cut) = (b.clean.clone(), b.cut.clone());
    let size = b.cut_size;

    // dockerd: the real daemon and the profile.
    let docker = b.capture("docker pull (dockerd), clean", false, |b| {
        docker_pull(b, &clean)
    });
    let docker_cut = b.capture("docker pull (dockerd), layer cut", true, |b| {
        docker_pull(b, &cut)
    });
    let ps = b.capture("pullstorm, dockerd profile, clean", false, |b| {
        pullstorm(b, &clean, "dockerd-20.10", "ps-dockerd")
    });
    let ps_cut = b.capture("pullstorm, dockerd profile, layer cut", true, |b| {
        pullstorm(b, &cut, "dockerd-20.10", "ps-dockerd-cut")
    });
    for (image, reqs) in [(&clean, &ps), (&cut, &ps_cut)] {
        assert_eq!(preflight_len(image, reqs), 4, "pullstorm's preflight");
    }
    for (what, reqs) in [("docker", &docker), ("pullstorm dockerd", &ps)] {
        check_common(what, &clean, reqs, true);
        check_clean(what, &clean, reqs);
    }
    let mut pauses = Vec::new();
    for (what, reqs) in [
        ("docker, cut", &docker_cut),
        ("pullstorm dockerd, cut", &ps_cut),
    ] {
        check_common(what, &cut, reqs, true);
        pauses.push(check_resume(what, &cut, reqs, size));
    }
    // dockerd waits attempt x 5 s before retrying: 5 s after the first failure.
    for p in &pauses {
        assert!(
            (4000..9000).contains(p),
            "dockerd resume pauses {pauses:?} ms"
        );
    }
    // The blob GETs of the real daemon carry no Accept; the profile's do (not modelled).

    // containerd: ctr content fetch (a fresh containerd each time) and the profile.
    let c = Containerd::start(&dir.path().join("ctr-clean"));
    let ctr = b.capture("ctr content fetch (containerd), clean", false, |b| {
        ctr_fetch(&c, b, &clean)
    });
    drop(c);
    let c = Containerd::start(&dir.path().join("ctr-cut"));
    let ctr_cut = b.capture("ctr content fetch (containerd), layer cut", true, |b| {
        ctr_fetch(&c, b, &cut)
    });
    drop(c);
    let psc = b.capture("pullstorm, containerd profile, clean", false, |b| {
        pullstorm(b, &clean, "containerd-1.6", "ps-containerd")
    });
    let psc_cut = b.capture("pullstorm, containerd profile, layer cut", true, |b| {
        pullstorm(b, &cut, "containerd-1.6", "ps-containerd-cut")
    });
    // containerd resolves without pinging /v2/ first, and so does its profile.
    for (what, reqs) in [("ctr", &ctr), ("pullstorm containerd", &psc)] {
        check_common(what, &clean, reqs, false);
        check_clean(what, &clean, reqs);
    }
    let mut pauses = Vec::new();
    for (what, reqs) in [
        ("ctr, cut", &ctr_cut),
        ("pullstorm containerd, cut", &psc_cut),
    ] {
        check_common(what, &cut, reqs, false);
        pauses.push(check_resume(what, &cut, reqs, size));
    }
    // containerd reopens at the offset at once.
    for p in &pauses {
        assert!(*p < 1500, "containerd resume pauses {pauses:?} ms");
    }
    // Both send "Accept: <media type>, */*" on blob GETs.
    for (what, reqs, image) in [
        ("ctr", &ctr, &clean),
        ("pullstorm containerd", &psc, &clean),
    ] {
        for r in reqs
            .iter()
            .filter(|r| matches!(image.kind(r), Kind::Layer(_) | Kind::Config))
        {
            let t = accept_types(r);
            assert_eq!(t.len(), 2, "{what}: {r:?}");
            assert_eq!(t[1], "*/*", "{what}: {r:?}");
            assert!(t[0].starts_with("application/vnd."), "{what}: {r:?}");
        }
    }

    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace-fidelity.md");
    std::fs::write(&out, &b.report).unwrap();
    eprintln!(
        "{}\ntraces written to {} in {:.0?}",
        b.report,
        out.display(),
        started.elapsed()
    );
}
