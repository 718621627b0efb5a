//! Connections as the real clients open them, next to pullstorm's connection models.
//!
//! The chain: client -> nginx (the lab's config; its access log has each request's
//! connection serial number and its number on that connection, `$connection` and
//! `$connection_requests`; blob bodies sent at 4 MB/s per connection, so downloads overlap)
//! -> `pullstorm serve` (the embedded registry, a 3-layer image whose digests are new at
//! every run, so no client has its blobs cached).
//!
//! One pull each, in the same run: the machine's dockerd (`docker pull`, then `docker
//! rmi`) and pullstorm's `dockerd-20.10` (a connection per request with `Connection:
//! close`, and the HTTPS probe); `ctr content fetch` against a private containerd
//! (containerd 1.6's resolver and fetcher) and pullstorm's `containerd-1.6` (a kept-alive
//! pool per pull). The profiles run as they are, without `[client]` keys. Per pull, read from nginx's
//! log: the connections, the requests, the most requests on one connection, and whether
//! the tag's HEAD had a connection of its own. The figures are written to
//! `$CARGO_TARGET_TMPDIR/connections.md`.

use crate::common::{self, wait_until};
use crate::instances::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO: &str = "conn/test";
const LAYERS: &str = "8MiB,4MiB,2MiB";
const LAYER_SIZES: [u64; 3] = [8 << 20, 4 << 20, 2 << 20];

/// nginx sends blob bodies at 4 MB/s per connection, so a pull's layer downloads overlap
/// as they do on a real network: at full loopback speed ctr's fetches (each preceded by
/// calls to containerd) sometimes never overlap, and one connection carries them all.
const BLOB_RATE: &str = "location ~ /blobs/ {\n    proxy_buffering on;\n    \
                         proxy_max_temp_file_size 0;\n    limit_rate 4m;\n    \
                         proxy_pass http://registry;\n}\n";

/// The registry (pullstorm serve) and nginx in front of it.
struct Bench {
    _registry: Daemon,
    nginx: Nginx,
    dir: std::path::PathBuf,
    /// The config and layer digests: every one must be in the log before a pull is read.
    blobs: Vec<String>,
}

impl Bench {
    fn start(dir: &Path) -> Bench {
        // Digests unique to this run: no client can hold the blobs from a former run.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let port = free_port();
        let mut serve = common::bin();
        serve
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--layers", LAYERS, "--seed", &seed.to_string()]);
        let registry = Daemon::spawn("serve", serve, &dir.join("registry"));
        wait_until("pullstorm serve", Duration::from_secs(30), || {
            http_status(port, "/v2/") == Some(200)
        });
        let nginx = Nginx::start(
            &dir.join("nginx"),
            port,
            NginxConf {
                server: BLOB_RATE.into(),
                ..Default::default()
            },
        );
        let image = synthetic(seed, &LAYER_SIZES);
        let blobs = std::iter::once(image.config.digest.clone())
            .chain(image.layers.iter().map(|l| l.digest.clone()))
            .collect();
        Bench {
            _registry: registry,
            nginx,
            dir: dir.to_path_buf(),
            blobs,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.nginx.port)
    }

    fn lines(&self) -> Vec<AccessLine> {
        self.nginx
            .access_log()
            .lines()
            .filter_map(AccessLine::parse)
            .collect()
    }

    /// Runs `pull` to its end and returns nginx's lines of it, once every blob's GET is in.
    fn capture(&self, what: &str, pull: impl FnOnce(&Bench)) -> Vec<AccessLine> {
        let before = self.lines().len();
        pull(self);
        wait_until(
            &format!("{what}: nginx's line for every blob"),
            Duration::from_secs(10),
            || {
                let lines = self.lines();
                self.blobs.iter().all(|d| {
                    lines[before..]
                        .iter()
                        .any(|l| l.status == 200 && l.path.ends_with(&format!("/blobs/{d}")))
                })
            },
        );
        self.lines()[before..].to_vec()
    }
}

/// One pull as nginx saw it.
#[derive(Debug)]
struct Seen {
    /// Connections (a connection that carried only the TLS probe included).
    connections: usize,
    /// HTTP requests (the probe's 400 not included).
    requests: usize,
    most_on_one: usize,
    /// Lines answered 400 without a method (`-`): a TLS ClientHello on the plain-HTTP port.
    probes: usize,
    /// The tag's HEAD was the only request on its connection.
    head_alone: bool,
}

impl Seen {
    fn of(lines: &[AccessLine]) -> Seen {
        let mut per_conn: BTreeMap<u64, Vec<&AccessLine>> = BTreeMap::new();
        for l in lines {
            per_conn.entry(l.conn).or_default().push(l);
        }
        let probe = |l: &AccessLine| l.status == 400 && l.method == "-";
        let head = lines
            .iter()
            .find(|l| l.method == "HEAD" && l.path.contains("/manifests/"))
            .expect("a HEAD of the tag");
        Seen {
            connections: per_conn.len(),
            requests: lines.iter().filter(|l| !probe(l)).count(),
            most_on_one: per_conn
                .values()
                .map(|v| v.iter().filter(|l| !probe(l)).count())
                .max()
                .unwrap_or(0),
            probes: lines.iter().filter(|l| probe(l)).count(),
            head_alone: per_conn[&head.conn].len() == 1,
        }
    }
}

/// `pullstorm run` of one pull through nginx with these `[client]` keys; its lines
/// without the preflight's (4 requests on 4 connections, before any node starts), and
/// its result.
fn pullstorm(
    b: &Bench,
    name: &str,
    client: &str,
    keys: &str,
) -> (Vec<AccessLine>, serde_json::Value) {
    let dir = b.dir.join(name);
    let scenario = format!(
        "[fleet]\nclient = \"{client}\"\n[client]\n{keys}\n[run]\nduration = \"90s\"\n[thresholds]\nmax_failed_pulls = 0\n"
    );
    let mut result = None;
    let lines = b.capture(name, |b| {
        let r = run(
            &dir,
            &scenario,
            &format!("http://{}", b.host()),
            &format!("{REPO}:v1"),
            &[],
        );
        assert_eq!(r.code, 0, "{name}: {}{}", r.stdout, r.stderr);
        result = Some(r.result());
    });
    // The preflight's connections were accepted before any of the pull's, so they have the
    // lowest serial numbers (nginx may log its first request after the others).
    let mut serials: Vec<u64> = lines.iter().map(|l| l.conn).collect();
    serials.sort_unstable();
    serials.dedup();
    let first_of_pull = serials.get(4).copied().unwrap_or(u64::MAX);
    let (preflight, pull): (Vec<AccessLine>, Vec<AccessLine>) =
        lines.iter().cloned().partition(|l| l.conn < first_of_pull);
    let mut kinds: Vec<(&str, bool)> = preflight
        .iter()
        .map(|l| (l.method.as_str(), l.path.contains("/manifests/")))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            ("GET", false),
            ("GET", false),
            ("GET", true),
            ("HEAD", true)
        ],
        "{name}: the preflight's 4 connections: {lines:#?}"
    );
    (pull, result.expect("the run ended"))
}

fn docker_pull(b: &Bench) {
    let name = format!("{}/{REPO}:v1", b.host());
    let out = Command::new("docker")
        .args(["pull", &name])
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI");
    let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
    assert!(
        out.status.success(),
        "docker pull: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ctr_fetch(b: &Bench) {
    let containerd = Containerd::start(&b.dir.join("containerd"));
    let out = containerd.ctr(&[
        "content",
        "fetch",
        "--plain-http",
        &format!("{}/{REPO}:v1", b.host()),
    ]);
    assert!(
        out.status.success(),
        "ctr content fetch: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A path with its digests cut short.
fn short_path(path: &str) -> String {
    match path.split_once("sha256:") {
        Some((head, digest)) => format!("{head}sha256:{}", &digest[..digest.len().min(8)]),
        None => path.to_string(),
    }
}

fn row(report: &mut String, who: &str, s: &Seen) {
    writeln!(
        report,
        "| {who} | {} | {} | {} | {} | {} |",
        s.connections,
        s.requests,
        s.most_on_one,
        s.probes,
        if s.head_alone { "yes" } else { "no" }
    )
    .unwrap();
}

#[test]
#[ignore = "needs nginx, dockerd and containerd: scripts/test.sh runs it"]
fn connections_per_pull_match_dockerd_and_containerd() {
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-connections-")
        .tempdir()
        .unwrap();
    let b = Bench::start(dir.path());

    let docker_lines = b.capture("docker pull", docker_pull);
    let docker = Seen::of(&docker_lines);
    // The profiles as they are, no `[client]` keys: each release's own connection model.
    let (close_lines, close_result) = pullstorm(&b, "ps-close", "dockerd-20.10", "");
    let close = Seen::of(&close_lines);
    let ctr_lines = b.capture("ctr content fetch", ctr_fetch);
    let ctr = Seen::of(&ctr_lines);
    let (kept_lines, kept_result) = pullstorm(&b, "ps-keep-alive", "containerd-1.6", "");
    let kept = Seen::of(&kept_lines);

    let mut report = String::from(
        "| pull (3 layers) | connections | requests | most on one | TLS probes | HEAD alone |\n|---|---|---|---|---|---|\n",
    );
    row(&mut report, "docker pull (dockerd 20.10)", &docker);
    row(
        &mut report,
        "pullstorm `dockerd-20.10` (close + HTTPS probe)",
        &close,
    );
    row(&mut report, "ctr content fetch (containerd 1.6)", &ctr);
    row(
        &mut report,
        "pullstorm `containerd-1.6` (keep-alive)",
        &kept,
    );
    for (who, l) in [
        ("docker pull", &docker_lines),
        ("pullstorm close", &close_lines),
        ("ctr content fetch", &ctr_lines),
        ("pullstorm keep-alive", &kept_lines),
    ] {
        writeln!(
            report,
            "\n{who}: nginx's log (connection, request on it, request, status)\n```"
        )
        .unwrap();
        for x in l {
            writeln!(
                report,
                "conn={:<4} req={} {} {} {}",
                x.conn,
                x.conn_request,
                x.method,
                short_path(&x.path),
                x.status
            )
            .unwrap();
        }
        report.push_str("```\n");
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("connections.md");
    std::fs::write(&out, &report).unwrap();
    eprintln!("{report}\nwritten to {}", out.display());
    let lines = |l: &[AccessLine]| format!("{l:#?}");

    // dockerd: one connection per request, plus the HTTPS probe nginx answers with 400.
    for (who, s) in [("docker", &docker), ("pullstorm close", &close)] {
        assert_eq!(s.most_on_one, 1, "{who}: {s:?}");
        assert_eq!(s.probes, 1, "{who}: {s:?}");
        assert_eq!(s.connections, s.requests + 1, "{who}: {s:?}");
    }
    assert_eq!(
        close.connections, docker.connections,
        "pullstorm's close model against dockerd: {close:?} {docker:?}"
    );
    // The probe is a connection of the pull, never a request or a fault.
    assert_eq!(
        common::u(&close_result, "connections.opened"),
        close.connections as u64,
        "{}",
        close_result["connections"]
    );
    assert_eq!(common::u(&close_result, "connections.https_probes"), 1);
    assert_eq!(
        common::u(&close_result, "connections.requests"),
        close.requests as u64
    );
    assert!(close_result["error_details"].as_array().unwrap().is_empty());

    // containerd: several requests on one connection, fewer connections than requests,
    // the tag's HEAD on a connection of its own.
    for (who, s) in [("ctr", &ctr), ("pullstorm keep-alive", &kept)] {
        assert!(s.most_on_one >= 2, "{who}: {s:?}");
        assert!(s.connections < s.requests, "{who}: {s:?}");
        assert!(s.head_alone, "{who}: {s:?}");
        assert_eq!(s.probes, 0, "{who}: {s:?}");
    }
    // The same requests (containerd sends no ping), and connections within one: how many
    // a pull needs depends on how its downloads overlap in time.
    assert_eq!(kept.requests, ctr.requests, "{kept:?} {ctr:?}");
    assert!(
        kept.connections.abs_diff(ctr.connections) <= 1,
        "pullstorm's keep-alive model against containerd: {kept:?} {ctr:?}\n{}",
        lines(&kept_lines)
    );
    assert_eq!(
        common::u(&kept_result, "connections.opened"),
        kept.connections as u64,
        "{}",
        kept_result["connections"]
    );
    assert_eq!(
        common::u(&kept_result, "connections.max_requests_per_connection"),
        kept.most_on_one as u64
    );
}
