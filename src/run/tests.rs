//! The run's three endings, in-process against the embedded registry: stopped
//! by the shutdown future (with the signal's exit code), stopped by the
//! deadline, and finished. Pulls are
//! kept slow with `fleet.node_bandwidth` where a run must be caught mid-pull;
//! conditions are polled with a bounded wait, never slept for.

use super::*;
use crate::exit;
use crate::metrics::Gauges;
use crate::shutdown::Caught;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Two nodes pulling one 16 MiB layer at 2 MB/s each: about 8 s per pull,
/// far longer than any of these tests lets a pull run.
const SLOW: &str = "[embedded]\nlayers = [\"16MiB\"]\n[fleet]\nnodes_per_cluster = 2\nnode_bandwidth = \"2MB/s\"\n";

fn options(toml: &str, dir: &Path) -> RunOptions {
    let path = dir.join("unit.toml");
    let origin = path.display().to_string();
    RunOptions {
        loaded: scenario::Loaded {
            scenario: scenario::parse(toml, &origin, &[]).expect("valid scenario"),
            path,
            name: "unit".into(),
        },
        overrides: Vec::new(),
        out_dir: Some(dir.join("out")),
        quiet: true,
        watch: WatchSpec::default(),
        metrics: None,
        sharding: Default::default(),
    }
}

fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/result.json")).expect("result.json written");
    serde_json::from_str(&text).expect("result.json is JSON")
}

fn count(v: &serde_json::Value, section: &str, key: &str) -> u64 {
    v[section][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{section}.{key}: {v}"))
}

/// Completes once blob bytes have arrived: by then at least one pull has
/// started, and none can have finished. Fails the test after 30 s.
async fn once_bytes_arrive(gauges: Arc<Gauges>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauges.bytes.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "no blob byte arrived within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_pull_writes_an_interrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(SLOW, dir.path());
    // The steps of `execute`, to reach the gauges the shutdown future watches.
    let out = out_dir::OutDir::claim(
        opts.out_dir.as_deref(),
        "unit",
        std::time::SystemTime::now(),
    )
    .unwrap();
    let never = std::pin::pin!(std::future::pending::<()>());
    let prepare::Prepared::Ready(ready) = prepare::prepare(&opts, never).await.unwrap() else {
        panic!("stopped during startup");
    };
    let shutdown = once_bytes_arrive(ready.ctx.gauges.clone());
    let stormed = storm::storm(&opts, &ready, shutdown).await.unwrap();
    let code = finish::finish(&opts, &out, ready, stormed, None, Some(Caught::Interrupt)).unwrap();

    assert_eq!(
        code,
        exit::INTERRUPTED,
        "SIGINT's own code, not a failed threshold"
    );
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["complete"], false);
    assert_eq!(count(&v, "pulls", "completed"), 0);
    assert!(count(&v, "pulls", "interrupted") >= 1, "{}", v["pulls"]);
    assert_eq!(
        count(&v, "pulls", "interrupted"),
        count(&v, "pulls", "started") - count(&v, "pulls", "failed")
    );
    assert!(dir.path().join("out/report.html").exists());
    assert!(dir.path().join("out/latency.hlog").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&format!("{SLOW}[run]\nduration = \"1s\"\n"), dir.path());
    let code = execute(opts, std::future::pending::<Caught>())
        .await
        .unwrap();

    assert_eq!(
        code,
        exit::THRESHOLDS_FAILED,
        "incomplete fails require_complete"
    );
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "deadline");
    assert_eq!(v["complete"], false);
    assert_eq!(count(&v, "pulls", "interrupted"), 2);
    // Stopped pulls report the connections they had opened.
    assert!(
        count(&v, "connections", "opened") >= 2,
        "{}",
        v["connections"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finishes_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(
        "[embedded]\nlayers = [\"64KiB\", \"4KiB\"]\n[fleet]\nnodes_per_cluster = 2\n",
        dir.path(),
    );
    let code = execute(opts, std::future::pending::<Caught>())
        .await
        .unwrap();

    assert_eq!(code, exit::OK);
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "finished");
    assert_eq!(v["complete"], true);
    assert_eq!(count(&v, "pulls", "completed"), 2);
    assert_eq!(count(&v, "pulls", "interrupted"), 0);
    assert_eq!(v["target"]["embedded"], true);
    assert_eq!(v["target"]["image"], EMBEDDED_IMAGE);
    for file in ["result.json", "latency.hlog", "report.html"] {
        assert!(dir.path().join("out").join(file).exists(), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_run_with_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(SLOW, dir.path());
    // Already there when the storm starts: the run stops at once, still writing its result.
    let code = execute(opts, std::future::ready(Caught::Terminate))
        .await
        .unwrap();

    assert_eq!(code, exit::TERMINATED);
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["complete"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_refused_before_it_starts_leaves_no_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    // More nodes than fds: refused by prepare, after the output folder was claimed.
    let opts = options(
        "[fleet]\nclusters = 1000\nnodes_per_cluster = 1000\n",
        dir.path(),
    );
    let f = execute(opts, std::future::pending::<Caught>())
        .await
        .unwrap_err();
    assert_eq!(f.code, exit::BAD_INPUT, "{}", f.message);
    assert!(!dir.path().join("out").exists());
}

/// A 3-layer image pulled once by one node with `[client]` `extra`; the result.
async fn one_pull_of_three_layers(extra: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let toml =
        format!("[embedded]\nlayers = [\"64KiB\", \"32KiB\", \"16KiB\"]\n[client]\n{extra}\n");
    let code = execute(options(&toml, dir.path()), std::future::pending::<Caught>())
        .await
        .unwrap();
    assert_eq!(code, exit::OK);
    let v = result(dir.path());
    assert_eq!(count(&v, "pulls", "completed"), 1, "{v}");
    v
}

/// ping, HEAD by tag, GET by digest, config and 3 layers.
const REQUESTS_OF_ONE_PULL: u64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_pull_carries_several_requests_on_a_connection() {
    // dockerd's profile with a pool: the ping then counts, the HTTPS probe is turned off.
    let v = one_pull_of_three_layers("connections = \"keep-alive\"\nhttps_probe = false").await;
    let c = &v["connections"];
    assert_eq!(
        count(&v, "connections", "requests"),
        REQUESTS_OF_ONE_PULL,
        "{c}"
    );
    let opened = count(&v, "connections", "opened");
    // The resolve HEAD's own, the one the ping and the manifest share (then a blob's),
    // and one per other blob download slot at most.
    assert!((2..REQUESTS_OF_ONE_PULL).contains(&opened), "{c}");
    assert!(
        count(&v, "connections", "max_requests_per_connection") >= 2,
        "{c}"
    );
    assert_eq!(count(&v, "connections", "https_probes"), 0, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_pull_opens_one_connection_per_request_plus_the_https_probe() {
    let v = one_pull_of_three_layers("connections = \"close\"\nhttps_probe = true").await;
    let c = &v["connections"];
    assert_eq!(
        count(&v, "connections", "requests"),
        REQUESTS_OF_ONE_PULL,
        "{c}"
    );
    assert_eq!(
        count(&v, "connections", "opened"),
        REQUESTS_OF_ONE_PULL + 1,
        "{c}"
    );
    assert_eq!(
        count(&v, "connections", "max_requests_per_connection"),
        1,
        "{c}"
    );
    assert_eq!(count(&v, "connections", "https_probes"), 1, "{c}");
    // The probe is no fault.
    assert!(v["error_details"].as_array().unwrap().is_empty(), "{v}");
}

/// The default release (dockerd-27) opens connections as dockerd does: one per request
/// and the HTTPS probe of a plain-HTTP target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_dockerd_opens_a_connection_per_request_and_probes_https() {
    let v = one_pull_of_three_layers("").await;
    assert_eq!(count(&v, "connections", "opened"), REQUESTS_OF_ONE_PULL + 1);
    assert_eq!(count(&v, "connections", "https_probes"), 1);
    assert_eq!(count(&v, "connections", "max_requests_per_connection"), 1);
}
