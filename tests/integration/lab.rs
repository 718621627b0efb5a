//! Tests against the real lab: docker-registry behind nginx and haproxy, the
//! pull-through mirror, Basic and Bearer auth, TLS, the Redis cache, and the
//! real clients (skopeo, containerd's ctr, the machine's dockerd).
//!
//! They need `scripts/lab.sh up`, so they are `#[ignore]`d in a plain
//! `cargo test`; `scripts/test.sh` (the README's test command) starts the lab
//! and runs them with `--include-ignored`, then stops it.

use crate::common::*;
use crate::instances::{http_status, Containerd};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

const NGINX: &str = "http://127.0.0.1:8080";
const HAPROXY: &str = "http://127.0.0.1:8090";
const MIRROR: &str = "http://127.0.0.1:5005";
const BASIC: &str = "http://127.0.0.1:8082";
const TOKEN: &str = "http://127.0.0.1:8083";
const REDIS: &str = "http://127.0.0.1:8084";
const TLS: &str = "https://127.0.0.1:8443";
const USER: &str = "pullstorm";
const PASSWORD: &str = "pullstorm-lab";
/// The multi-hundred-MB image the fleet tests pull.
const BIG: &str = "lab/big:v1";
const BIG_LAYERS: &str = "200MiB,100MiB,16MiB";

fn lab_dir() -> String {
    std::env::var("PULLSTORM_LAB_DIR").unwrap_or_else(|_| "/tmp/pullstorm-lab".into())
}

/// Checks the lab answers and seeds the big image once (into the shared storage and the Redis registry).
fn lab() {
    static SEEDED: OnceLock<()> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let up = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", &format!("{NGINX}/v2/")])
            .status();
        assert!(
            matches!(up, Ok(s) if s.success()),
            "the lab is not up: run scripts/lab.sh up (scripts/test.sh does)"
        );
        for registry in [NGINX, REDIS] {
            seed(registry, BIG, BIG_LAYERS, "oci");
        }
    });
}

fn seed(registry: &str, image: &str, layers: &str, format: &str) -> String {
    let out = bin()
        .args([
            "seed",
            "--registry",
            registry,
            "--image",
            image,
            "--layers",
            layers,
            "--format",
            format,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fleet run against `target`, with lab credentials in the environment.
fn fleet(
    target: &str,
    image: &str,
    clusters: u32,
    nodes: u32,
    extra: &[&str],
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.toml");
    std::fs::write(
        &file,
        format!("[fleet]\nclusters = {clusters}\nnodes_per_cluster = {nodes}\n[run]\nduration = \"5m\"\n[thresholds]\nmax_failed_pulls = 0\n"),
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .args(["--target", target, "--image", image, "--quiet", "--out"])
        .arg(dir.path().join("out"))
        .args(extra)
        .env("PULLSTORM_USERNAME", USER)
        .env("PULLSTORM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "run against {target} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(PASSWORD));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/result.json")).unwrap())
            .unwrap();
    let pulls = (clusters * nodes) as u64;
    assert_eq!(
        u(&v, "pulls.completed"),
        pulls,
        "{target}: {}",
        v["error_details"]
    );
    only_errors(&v, &[]);
    assert_eq!(
        u(&v, "bytes.downloaded"),
        pulls * u(&v, "target.image_bytes"),
        "{target}"
    );
    assert_eq!(u(&v, "bytes.wasted"), 0);
    v
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn dozens_of_nodes_pull_through_nginx_haproxy_and_the_mirror() {
    lab();
    for target in [NGINX, HAPROXY, MIRROR] {
        let v = fleet(target, BIG, 4, 6, &[]);
        assert!(u(&v, "target.image_bytes") > 300 << 20);
    }
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn every_auth_variant_tls_and_the_redis_cache() {
    lab();
    let ca = format!("target.ca_file=\"{}/secrets/ca.crt\"", lab_dir());
    for target in [BASIC, TOKEN, REDIS] {
        fleet(target, BIG, 2, 6, &[]);
    }
    fleet(TLS, BIG, 2, 6, &["--set", &ca]);
    // Without credentials the token registry refuses at start: exit 3, with a hint.
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "/dev/null",
            "--target",
            TOKEN,
            "--image",
            BIG,
            "--quiet",
            "--out",
        ])
        .arg(dir.path())
        .env_remove("PULLSTORM_USERNAME")
        .env_remove("PULLSTORM_PASSWORD")
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PULLSTORM_USERNAME"));
}

/// sha256 of a file, as `sha256:<hex>`.
fn file_digest(path: &Path) -> String {
    pullstorm::digest::sha256_digest(&std::fs::read(path).unwrap())
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn what_seed_pushed_is_pulled_by_skopeo_containerd_and_dockerd() {
    lab();
    let digest = seed(NGINX, "lab/xcheck:v1", "3MiB,1MiB", "oci");
    // Same seed and sizes as the embedded registry serves.
    let image = pullstorm::synth::SyntheticImage::build(1, &[3 << 20, 1 << 20]);
    assert_eq!(digest, image.manifest.digest);

    // skopeo: every file it wrote hashes to its name, and the manifest to the digest.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sk");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "docker://127.0.0.1:8080/lab/xcheck:v1",
            &format!("dir:{}", dest.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(file_digest(&dest.join("manifest.json")), digest);
    for layer in &image.layers {
        let hex = layer.digest.trim_start_matches("sha256:");
        assert_eq!(file_digest(&dest.join(hex)), layer.digest);
    }

    // containerd: a private daemon of our own, `ctr content fetch`, then its content store.
    let ctr = Containerd::start(dir.path());
    let out = ctr.ctr(&[
        "content",
        "fetch",
        "--plain-http",
        "127.0.0.1:8080/lab/xcheck:v1",
    ]);
    assert!(
        out.status.success(),
        "ctr fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&ctr.ctr(&["content", "ls", "-q"]).stdout).into_owned();
    for d in std::iter::once(&digest).chain(image.layers.iter().map(|l| &l.digest)) {
        assert!(
            listed.contains(d.as_str()),
            "containerd lacks {d}:\n{listed}"
        );
    }
    drop(ctr);

    // dockerd: pulls, unpacks the tar layers, and records the same manifest digest.
    let name = "127.0.0.1:8080/lab/xcheck:v1";
    let out = Command::new("docker")
        .args(["pull", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            name,
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", name]).output();
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains(&digest),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn what_skopeo_pushed_is_pulled_by_pullstorm() {
    lab();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let out = Command::new("lab/oci-sample.sh")
        .arg(&layout)
        .args(["--size", "4096"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oci-sample: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let push = |src: &str, dest: &str, extra: &[&str]| {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                "--src-tls-verify=false",
            ])
            .args(extra)
            .args([src, &format!("docker://127.0.0.1:8080/{dest}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let src = format!("oci:{}:v1", layout.display());
    // Docker schema 2 with gzip layers, and the OCI manifest as it was made.
    push(&src, "lab/sk-docker:v1", &["--format", "v2s2"]);
    push(
        &src,
        "lab/sk-oci:v1",
        &["--format", "oci", "--preserve-digests"],
    );
    // A multi-platform index: copied whole (--all) from pullstorm's own registry.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut serve = bin()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--layers",
            "2MiB,64KiB",
            "--index",
        ])
        .spawn()
        .unwrap();
    wait_until(
        "pullstorm serve to answer",
        std::time::Duration::from_secs(10),
        || http_status(port, "/v2/") == Some(200),
    );
    push(
        &format!("docker://127.0.0.1:{port}/synthetic/app:v1"),
        "lab/sk-index:v1",
        &["--all", "--preserve-digests"],
    );
    let _ = serve.kill();
    let _ = serve.wait();

    for image in ["lab/sk-docker:v1", "lab/sk-oci:v1"] {
        fleet(NGINX, image, 2, 4, &[]);
    }
    let v = fleet(NGINX, "lab/sk-index:v1", 2, 4, &[]);
    let synthetic = pullstorm::synth::SyntheticImage::build(1, &[2 << 20, 64 << 10]);
    assert_eq!(
        v["target"]["manifest_digest"],
        synthetic.manifest.digest.as_str(),
        "the amd64 manifest of the index"
    );
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn a_single_pull_agrees_with_curl_through_the_same_lb() {
    lab();
    let v = fleet(NGINX, BIG, 1, 1, &[]);
    let blobs = v["target"]["blobs"].as_array().unwrap();
    let biggest = blobs.iter().max_by_key(|b| b["size"].as_u64()).unwrap();
    let digest = biggest["digest"].as_str().unwrap();
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
        ])
        .arg(format!("{NGINX}/v2/lab/big/blobs/{digest}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let curl_bytes: u64 = parts.next().unwrap().parse().unwrap();
    let curl_secs: f64 = parts.next().unwrap().parse().unwrap();
    assert_eq!(curl_bytes, biggest["size"].as_u64().unwrap());
    assert_eq!(
        u(&v, "bytes.downloaded"),
        blobs
            .iter()
            .map(|b| b["size"].as_u64().unwrap())
            .sum::<u64>()
    );
    // The pull's slowest blob is the biggest; its time and curl's are the same transfer.
    // A loose band: both clocks measure the same work, so a unit or timing bug shows as x10.
    let pull_secs = v["latency"]["layer"]["max"].as_f64().unwrap() / 1000.0;
    let ratio = pull_secs / curl_secs;
    assert!(
        (0.33..3.0).contains(&ratio),
        "pullstorm {pull_secs:.3}s vs curl {curl_secs:.3}s"
    );
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn the_registry_and_nginx_are_watched_in_the_result_and_the_report() {
    lab();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watch.toml");
    std::fs::write(
        &file,
        "[fleet]\nclusters = 2\nnodes_per_cluster = 4\n[watch]\nprocesses = [\"docker-registry\"]\n\
         metrics = [\"http://127.0.0.1:5001/metrics\"]\nstub_status = [\"http://127.0.0.1:8081/\"]\n",
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .args([
            "--target", NGINX, "--image", BIG, "--watch", "nginx", "--quiet", "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/result.json")).unwrap())
            .unwrap();
    let targets = v["targets"].as_array().expect("targets[]");
    let named = |prefix: &str| -> Vec<&serde_json::Value> {
        targets
            .iter()
            .filter(|t| t["name"].as_str().unwrap_or("").starts_with(prefix))
            .collect()
    };
    for process in ["docker-registry", "nginx"] {
        let found = named(process);
        assert!(!found.is_empty(), "{process} not watched: {targets:?}");
        for t in found {
            assert!(t["fd_peak"].as_u64().unwrap_or(0) > 0, "{t}");
            assert!(t["fd_limit"].as_u64().unwrap_or(0) > 0, "{t}");
            assert!(t["rss_peak_bytes"].as_u64().unwrap_or(0) > 0, "{t}");
        }
    }
    // The registry's own Prometheus view of its fds agrees that it has some.
    let scraped = targets
        .iter()
        .find(|t| t["url"].as_str() == Some("http://127.0.0.1:5001/metrics"))
        .expect("metrics target");
    assert!(scraped["fd_peak"].as_u64().unwrap_or(0) > 0, "{scraped}");
    let report = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert!(
        report.contains("docker-registry") && report.contains("nginx"),
        "watched targets missing from the report"
    );
}
