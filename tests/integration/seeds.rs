//! The seed incidents reproduced with the shipped scenario files against real components
//! (docs/seeds.md): each test runs `scenarios/seed-*.toml` with `--target` pointed at LB
//! instances of its own, built from the same lab templates as the lab's `faults` variant,
//! shows the failure, then shows the fix passing.
//!
//! Each test starts its own registry (holding the seed's image) and LBs from the lab's
//! templates (tests/integration/instances.rs); they need the lab's packages, which `scripts/lab.sh up`
//! installs (scripts/test.sh runs them after it).

use crate::common::*;
use crate::instances::*;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pullstorm-seeds-")
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Seed 000: herd vs a proxy with nofile 1024

const SEED000: &str = "scenarios/seed-herd-fd-exhaustion.toml";
const SEED000_IMAGE: &str = "lab/seed000:v1";

/// docker-proxy (nofile `nofile`) -> nginx (Harbor's template; `fixed` = the seed's tuning)
/// -> `registry`.
fn herd_chain(
    dir: &std::path::Path,
    registry: &Registry,
    nofile: u64,
    fixed: bool,
) -> (Nginx, DockerProxy) {
    let conf = if fixed {
        NginxConf {
            worker_connections: Some(4096),
            main: format!("worker_rlimit_nofile {};\n", 65535.min(nofile_hard_limit())),
            ..Default::default()
        }
    } else {
        NginxConf::default()
    };
    let nginx = Nginx::start(&dir.join("nginx"), registry.port, conf);
    let proxy = DockerProxy::start(&dir.join("proxy"), nginx.port, nofile as u32);
    (nginx, proxy)
}

fn seed000_run(dir: &std::path::Path, target: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--target", target, "--set", "client.backoff=100ms"];
    args.extend_from_slice(extra);
    let r = run_file(dir, &repo().join(SEED000), &args);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    r.result()
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn seed_000_a_herd_kills_a_docker_proxy_with_nofile_1024_and_passes_with_the_fix() {
    let dir = tmp();
    let registry = Registry::with_image(
        &dir.path().join("registry"),
        SEED000_IMAGE,
        "512KiB,512KiB,512KiB",
        1,
    );

    // The full herd: 320 nodes x 3 slots = 960 connections. docker-proxy spends 6 fds on
    // each (its two sockets and a pipe pair for splice(2) per direction: Go's io.Copy between
    // two TCP connections), so 1024 fds hold about 165 connections.
    let (_nginx, mut proxy) = herd_chain(&dir.path().join("broken"), &registry, 1024, false);
    let v = seed000_run(&dir.path().join("herd"), &proxy.url(), &[]);
    eprintln!(
        "seed 000, herd of 320 through docker-proxy at nofile 1024: {}",
        error_summary(&v)
    );
    assert_eq!(u(&v, "pulls.planned"), 320);
    assert!(u(&v, "pulls.failed") > 0, "{}", error_summary(&v));
    assert_eq!(errors(&v, "other"), 0, "{}", error_summary(&v));
    only_errors(
        &v,
        &["connection_reset", "unexpected_eof", "connect_refused"],
    );
    // The proxy gave up: "Stopping proxy ... too many open files" and exited.
    assert!(proxy.daemon.exited().is_some(), "docker-proxy still runs");
    let log = proxy.daemon.output();
    assert!(log.contains("too many open files"), "{log}");
    assert!(log.contains("Stopping proxy"), "{log}");
    // It dies within the first 0.1 s, under the herd's pings and manifest requests: every
    // pull fails there (a failed ping or manifest is not retried); a pull that got as far
    // as its blobs would find nobody listening (connect_refused).
    drop(proxy);

    // A small batch (4 clusters: 120 connections, ~730 fds) fits under the same limit.
    let (_nginx, proxy) = herd_chain(&dir.path().join("broken-small"), &registry, 1024, false);
    let v = seed000_run(
        &dir.path().join("small"),
        &proxy.url(),
        &["--set", "fleet.clusters=4"],
    );
    assert_eq!(u(&v, "pulls.completed"), 40, "{}", error_summary(&v));
    only_errors(&v, &[]);
    drop(proxy);

    // The fix: nofile raised (65535 in the seed; the hard limit here), nginx tuned.
    let (_nginx, proxy) = herd_chain(
        &dir.path().join("fixed"),
        &registry,
        nofile_hard_limit(),
        true,
    );
    let fds = FdPeak::watch(proxy.daemon.pid());
    let v = seed000_run(&dir.path().join("fixed-herd"), &proxy.url(), &[]);
    let peak_fds = fds.stop();
    eprintln!(
        "seed 000, the same herd with the fix: {}; docker-proxy peaked at {peak_fds} fds, pullstorm at {} connections",
        error_summary(&v),
        v["connections"]["peak"]
    );
    // What the broken proxy could not have: far more than 1024 fds at the peak.
    assert!(peak_fds > 1024, "{peak_fds}");
    assert_eq!(u(&v, "pulls.completed"), 320, "{}", error_summary(&v));
    only_errors(&v, &[]);
    assert!(v["thresholds"]["passed"].as_bool().unwrap());
    assert!(u(&v, "connections.peak") > 512, "{}", v["connections"]);
}

/// The most fds a process held, sampled every 20 ms until stopped.
struct FdPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl FdPeak {
    fn watch(pid: u32) -> FdPeak {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                    peak = peak.max(d.count());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        });
        FdPeak { stop, thread }
    }

    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Seed 001: big layer vs an LB timeout

const SEED001: &str = "scenarios/seed-big-layer-lb-timeout.toml";
const SEED001_IMAGE: &str = "lab/seed001:v1";
const SEED001_LAYER: u64 = 100 << 20;

/// A registry with the seed's image and the lab's `faults` nginx site on ports of its own:
/// the seed-001 LB and the Harbor-like hop behind it.
struct Seed001 {
    nginx: Nginx,
    lb: u16,
    hop: u16,
    _registry: Registry,
}

impl Seed001 {
    fn start(dir: &std::path::Path, send_timeout: &str) -> Seed001 {
        let registry = Registry::with_image(&dir.join("registry"), SEED001_IMAGE, "100MiB,4MiB", 1);
        let TwoHopLb { nginx, lb, hop } =
            TwoHopLb::start(&dir.join("nginx"), registry.port, send_timeout, None);
        Seed001 {
            nginx,
            lb,
            hop,
            _registry: registry,
        }
    }

    fn run(&self, dir: &std::path::Path, port: u16) -> serde_json::Value {
        let target = format!("http://127.0.0.1:{port}");
        let r = run_file(
            dir,
            &repo().join(SEED001),
            // The profile's 5 s x attempt backoff would only make the test slower.
            &["--target", &target, "--set", "client.backoff=500ms"],
        );
        assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
        r.result()
    }
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn seed_001_a_big_layer_is_cut_at_three_quarters_refused_a_resume_and_fails_after_5_attempts() {
    let dir = tmp();
    let s = Seed001::start(dir.path(), "1s");
    let v = s.run(&dir.path().join("run"), s.lb);
    eprintln!("seed 001 through the LB: {}", error_summary(&v));
    // Attempts 1, 3, 5 from byte 0: cut (unexpected EOF). Attempts 2, 4 resume with Range:
    // answered 200, "expected HTTP 206", the partial layer is thrown away.
    assert_eq!(errors(&v, "unexpected_eof"), 3, "{}", error_summary(&v));
    assert_eq!(errors(&v, "range_not_honoured"), 2, "{}", error_summary(&v));
    assert_eq!(errors(&v, "other"), 0);
    only_errors(&v, &["unexpected_eof", "range_not_honoured"]);
    assert_eq!(u(&v, "retries.total"), 4);
    assert_eq!(v["retries"]["by_class"]["unexpected_eof"], 2);
    assert_eq!(v["retries"]["by_class"]["range_not_honoured"], 2);
    assert_eq!(u(&v, "pulls.failed"), 1);
    // The small layer (and the config) came through; the big one used its 5 attempts.
    assert_eq!(u(&v, "layers.failed"), 1);
    assert_eq!(u(&v, "layers.completed"), 2);
    assert_eq!(v["layers"]["attempts"]["5"], 1, "{}", v["layers"]);
    assert!(!v["thresholds"]["passed"].as_bool().unwrap());
    // Where the cuts landed: the LB's lines for the layer answered 200 without Range.
    let cuts: Vec<u64> = s
        .nginx
        .blob_requests()
        .into_iter()
        .filter(|l| l.port == s.lb && l.range.is_none() && l.bytes > 8 << 20)
        .map(|l| l.bytes)
        .collect();
    assert_eq!(cuts.len(), 3, "{cuts:?}");
    let shares: Vec<f64> = cuts
        .iter()
        .map(|b| *b as f64 / SEED001_LAYER as f64)
        .collect();
    eprintln!("seed 001 cuts at {shares:.3?} of the layer");
    assert!(shares.iter().all(|s| (0.6..0.95).contains(s)), "{shares:?}");
    // The two restarts threw away what attempts 1 and 3 had received.
    let wasted = u(&v, "bytes.wasted");
    assert!(
        wasted > SEED001_LAYER && wasted < 2 * SEED001_LAYER,
        "{wasted}"
    );
    assert_eq!(u(&v, "latency.retry.count"), 1, "{}", v["latency"]["retry"]);
    // What the seed's LB logged.
    assert!(
        s.nginx
            .error_log()
            .contains("(104: Connection reset by peer) while reading upstream"),
        "{}",
        s.nginx.error_log()
    );
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn seed_001_passes_when_the_lb_is_bypassed() {
    let dir = tmp();
    let s = Seed001::start(dir.path(), "1s");
    // Straight to the Harbor-like hop (same send_timeout): a steady reader is never cut.
    let v = s.run(&dir.path().join("run"), s.hop);
    assert_eq!(u(&v, "pulls.completed"), 1, "{}", error_summary(&v));
    only_errors(&v, &[]);
    assert!(v["thresholds"]["passed"].as_bool().unwrap());
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn seed_001_passes_when_the_timeout_is_raised() {
    let dir = tmp();
    // The seed's fix: timeouts of 600 s. The LB still stops reading while its temp file
    // drains, but the hop now waits longer than that.
    let s = Seed001::start(dir.path(), "600s");
    let v = s.run(&dir.path().join("run"), s.lb);
    assert_eq!(u(&v, "pulls.completed"), 1, "{}", error_summary(&v));
    only_errors(&v, &[]);
    assert!(v["thresholds"]["passed"].as_bool().unwrap());
}
