//! Push storms (`[push]`, docs/scenarios.md): CI runners pushing while the
//! fleet pulls (the embedded registry is read-only: pushes need a real one).
//! Against a real docker-registry the figures add up to
//! the byte; behind two fault proxies that cut uploads
//! mid-PATCH and mid-PUT (`cut_after_request_bytes`), every push still
//! completes with its retries counted, the images pass `pullstorm verify`, and
//! the registry's own log shows the uploads started again.

use crate::common::*;
use crate::instances::*;
use std::process::{Child, Stdio};
use std::time::Duration;

/// The blob bytes of a runner's image: layers and config.
fn image_bytes(seed: u64, sizes: &[u64]) -> u64 {
    let image = synthetic(seed, sizes);
    image.total_layer_bytes() + image.config.size()
}

#[test]
#[ignore = "needs the lab's docker-registry: scripts/lab.sh up installs it"]
fn push_storm_against_a_real_registry_counts_every_byte() {
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-push-bytes-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    let registry = Registry::start(&dir.join("lab"), None);
    seed(&registry.url(), "ci/base:a", "256KiB", 1);
    let scenario = "[fleet]\nnodes_per_cluster = 2\n\
        [push]\nrunners = 3\nlayers = [\"300KiB\", \"120KiB\"]\nseed = 100\nchunk_size = \"100KiB\"\n\
        max_concurrent_uploads = 2\n[run]\nduration = \"60s\"\n";
    let r = run(
        &dir.join("run"),
        scenario,
        &registry.url(),
        "ci/base:a",
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.result();
    let p = &v["pushes"];
    let sizes = [300 << 10, 120 << 10];
    let want: u64 = (0..3).map(|n| image_bytes(100 + n, &sizes)).sum();
    assert_eq!(p["runners"], 3, "{p}");
    assert_eq!(
        (p["started"].as_u64(), p["completed"].as_u64()),
        (Some(3), Some(3)),
        "{p}"
    );
    assert_eq!(
        (p["failed"].as_u64(), p["interrupted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(p["bytes_uploaded"].as_u64(), Some(want), "{p}");
    assert_eq!(p["blobs"]["uploaded"], 9, "{p}");
    assert_eq!(p["retries"], 0, "{p}");
    // 300 KiB in 100 KiB PATCHes, 120 KiB in 2, the config in 1: 6 per runner.
    assert_eq!(p["requests"]["patch"], 18, "{p}");
    assert_eq!(p["requests"]["put"], 9, "{p}");
    let requests: u64 = p["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(v["latency"]["upload"]["count"].as_u64(), Some(requests));
    assert_eq!(v["latency"]["push"]["count"], 3);
    // The pulls ran beside the pushes.
    assert_eq!(v["pulls"]["completed"], 2, "{}", v["pulls"]);
    assert!(
        r.stdout
            .contains("pushes: 3 of 3 completed, 0 failed, 0 interrupted;"),
        "{}",
        r.stdout
    );
    assert!(r
        .report()
        .contains("data-k=\"pushes.completed\" data-v=\"3\""));
}

/// `pullstorm proxy` on a free port in front of `upstream`; returns it and its port.
fn proxy(upstream: u16, args: &[&str]) -> (Child, u16) {
    let port = free_port();
    let child = bin()
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("127.0.0.1:{upstream}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("pullstorm proxy", Duration::from_secs(20), || {
        http_status(port, "/v2/") == Some(200)
    });
    (child, port)
}

/// Stops a proxy with SIGTERM and returns its final counters (its last JSON line).
fn stop_proxy(child: Child) -> serde_json::Value {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_else(|| panic!("no counters from the proxy:\n{stdout}"))
}

#[test]
#[ignore = "needs the lab's docker-registry: scripts/lab.sh up installs it"]
fn push_storm_with_uploads_cut_mid_patch_and_mid_put_completes_with_retries_counted() {
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-push-storm-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    let registry = Registry::start(&dir.join("lab"), None);
    // Tag A, the one the clusters pull while CI pushes tag B.
    seed(&registry.url(), "ci/base:a", "1MiB", 1);
    // Nearest the registry: the first 3 blob PUTs (`?digest=`) cut right after their head.
    let (put_cutter, put_port) = proxy(
        registry.port,
        &[
            "--cut-after-request-bytes",
            "0",
            "--cut-request-methods",
            "PUT",
            "--cut-request-path-contains",
            "/blobs/uploads/",
            "--cut-first",
            "3",
            "--cut-with",
            "rst",
        ],
    );
    // In front: the first 4 PATCHes cut after 1 MiB of their body.
    let (patch_cutter, patch_port) = proxy(
        put_port,
        &[
            "--cut-after-request-bytes",
            "1MiB",
            "--cut-request-methods",
            "PATCH",
            "--cut-first",
            "4",
            "--cut-with",
            "rst",
        ],
    );
    let target = format!("http://127.0.0.1:{patch_port}");
    let scenario = "[fleet]\nnodes_per_cluster = 2\n[kubelet]\npull_retries = 0\n\
        [push]\nrunners = 8\nrepository = \"ci/app\"\ntag = \"b-{runner}\"\n\
        layers = [\"3MiB\", \"2MiB\", \"2MiB\"]\nseed = 50\nbackoff = \"200ms\"\n[run]\nduration = \"90s\"\n";
    let r = run(&dir.join("run"), scenario, &target, "ci/base:a", &[]);
    let put_stats = stop_proxy(put_cutter);
    let patch_stats = stop_proxy(patch_cutter);
    let v = r.result();
    let p = &v["pushes"];
    eprintln!("pushes: {p}\nproxies: PATCH {patch_stats}, PUT {put_stats}");
    assert_eq!(
        r.code,
        0,
        "{}\n{}\n{}",
        r.stdout,
        r.stderr,
        error_summary(&v)
    );
    assert_eq!(
        (p["completed"].as_u64(), p["failed"].as_u64()),
        (Some(8), Some(0)),
        "{p}"
    );
    assert_eq!(v["pulls"]["completed"], 2, "{}", error_summary(&v));
    // Every cut the proxies made is a retry the pushers counted, and nothing else is.
    let cuts =
        patch_stats["request_cut"].as_u64().unwrap() + put_stats["request_cut"].as_u64().unwrap();
    assert_eq!(
        (
            patch_stats["request_cut"].as_u64(),
            put_stats["request_cut"].as_u64()
        ),
        (Some(4), Some(3))
    );
    let retries = p["retries"].as_u64().unwrap();
    assert_eq!(retries, cuts, "{p}");
    let by_code: u64 = p["retries_by_code"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_code, retries);
    assert!(
        r.stdout.contains(&format!("; {retries} retries (")),
        "the console shows the same retries:\n{}",
        r.stdout
    );
    // Each of the 32 blobs reached the registry once: uploaded, or found there after a
    // cut PUT that the registry had completed.
    let blobs = &p["blobs"];
    assert_eq!(
        blobs["uploaded"].as_u64().unwrap() + blobs["present"].as_u64().unwrap(),
        32,
        "{p}"
    );
    // The registry's access log: a POST for every upload started, the re-sent ones included.
    let log = registry.daemon.output();
    let posts = log
        .lines()
        .filter(|l| l.contains("\"POST /v2/ci/app/blobs/uploads/"))
        .count() as u64;
    assert_eq!(
        Some(posts),
        p["requests"]["post"].as_u64(),
        "registry log vs pushes.requests.post"
    );
    assert!(
        posts > 32,
        "{posts} POSTs: the cut uploads were started again"
    );
    // Every pushed image is whole.
    let images: Vec<String> = (0..8).map(|n| format!("ci/app:b-{n}")).collect();
    let out = bin()
        .args(["verify", "--registry", &registry.url(), "--image"])
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
