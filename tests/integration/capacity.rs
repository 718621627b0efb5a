//! The capacity search against a real load balancer with a connection limit.
//!
//! haproxy in front of a private docker-registry lets `LIMIT` requests reach the
//! registry at once (`maxconn` on the server) and queues the rest for at most a
//! second (`timeout queue 1s`), then answers 503, as an LB sized too small does.
//! Each node's link is capped (`fleet.node_bandwidth`) so a layer download holds
//! its connection for seconds and the herd's downloads overlap; haproxy's
//! socket buffers are kept small and the layer large (16 MiB), so the registry's side
//! of a download stays open while the node reads it, rather than the whole layer
//! waiting in kernel buffers while the registry's connection is already free. A
//! staircase then finds a knee, named by the 503s, and a higher limit moves it up.

use crate::common::{self, wait_until};
use crate::instances::*;
use std::path::Path;
use std::time::Duration;

const IMAGE: &str = "cap/app:v1";

fn haproxy_config(registry_port: u16, limit: u32) -> String {
    format!(
        "global\n    maxconn 4096\n    tune.sndbuf.client 65536\n    tune.rcvbuf.server 65536\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 1h\n    \
         timeout server 1h\n    timeout queue 1s\n\
         frontend fe\n    bind 127.0.0.1:@@PORT@@\n    default_backend registry\n\
         backend registry\n    server r 127.0.0.1:{registry_port} maxconn {limit}\n"
    )
}

/// A staircase of 2, 4, 6, ... nodes, each downloading a 16 MiB layer at 32 Mbit/s (about
/// 4 s a pull): twelve nodes stay under what the registry and haproxy move on two cores
/// (about 60 MB/s here), so the connection limit, not the machine, is what breaks.
const SCENARIO: &str = r#"
[fleet]
clusters = 1
nodes_per_cluster = 12
node_bandwidth = "32Mbit"

[arrival]
pattern = "staircase"
start_nodes = 2
step_nodes = 2
step_hold = "10s"
warmup = "3s"
bisect_rounds = 1

[run]
duration = "150s"

[thresholds]
max_failure_rate = 1.0
"#;

/// The search's `capacity` object after a staircase against haproxy limited to `limit`,
/// and the console's capacity line. Both are also written to
/// `$CARGO_TARGET_TMPDIR/capacity/limit-<limit>.{txt,json}`.
fn search(dir: &Path, registry_port: u16, limit: u32) -> (serde_json::Value, String) {
    let haproxy = Haproxy::with_config(&dir.join("haproxy"), &haproxy_config(registry_port, limit));
    wait_until(
        "haproxy passes to the registry",
        Duration::from_secs(20),
        || http_status(haproxy.port, "/v2/") == Some(200),
    );
    let run = run(&dir.join("run"), SCENARIO, &haproxy.url(), IMAGE, &[]);
    let result = run.result();
    assert!(
        [0, 1].contains(&run.code),
        "exit {}: {}\n{}",
        run.code,
        run.stderr,
        error_summary(&result)
    );
    // Nodes pull until the search ends: no pull count was planned, and none is shown as 0.
    assert!(result["pulls"]["planned"].is_null(), "{}", result["pulls"]);
    let capacity = result["capacity"].clone();
    // Kept for docs/capacity.md: the console summary and the `capacity` object of each run.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capacity");
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::write(keep.join(format!("limit-{limit}.txt")), &run.stdout);
    let _ = std::fs::write(
        keep.join(format!("limit-{limit}.json")),
        serde_json::to_string_pretty(&capacity).unwrap_or_default(),
    );
    assert!(
        capacity.is_object(),
        "no capacity in the result: {}",
        run.stderr
    );
    let summary = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("capacity"))
        .unwrap_or_default()
        .to_string();
    (capacity, summary)
}

/// A staircase larger than its fleet is bad input: exit 2, the line and key named, no run.
#[test]
fn a_staircase_beyond_the_fleet_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run_scenario(
        dir.path(),
        "cap",
        "[fleet]\nnodes_per_cluster = 4\n[arrival]\npattern = \"staircase\"\nmax_nodes = 8\n",
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cap.toml:5:13: arrival.max_nodes: 8 is more than the fleet's 4 nodes"),
        "{}",
        run.stderr
    );
    assert!(!run.dir.join("result.json").exists());
}

#[test]
#[ignore = "needs haproxy and docker-registry: scripts/test.sh runs it"]
fn a_staircase_finds_the_knee_of_a_connection_limit_and_it_moves_with_the_limit() {
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-capacity-")
        .tempdir()
        .unwrap();
    let registry = Registry::with_image(&dir.path().join("registry"), IMAGE, "16MiB", 71);
    let mut knees = Vec::new();
    for limit in [2, 5] {
        let (c, summary) = search(
            &dir.path().join(format!("limit-{limit}")),
            registry.port,
            limit,
        );
        let steps = c["steps"].as_array().cloned().unwrap_or_default();
        let context = format!("limit {limit}: {summary}\n{c:#}");
        let knee = c["knee_nodes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no knee: {context}"));
        let broken = c["broken_nodes"]
            .as_u64()
            .unwrap_or_else(|| panic!("nothing broke: {context}"));
        assert!(knee < broken, "{context}");
        // What broke it is the LB's answer to a full queue, not a guess.
        assert_eq!(c["broken_by"], "http_503", "{context}");
        let broken_step = steps
            .iter()
            .find(|s| s["phase"] == "climb" && s["verdict"] == "broke")
            .unwrap_or_else(|| panic!("no broken climb step: {context}"));
        assert!(
            common::u(broken_step, "errors_by_class.http_503") > 0,
            "{context}"
        );
        // Every held step completed pulls, and obeyed Little's law roughly.
        for s in steps.iter().filter(|s| s["verdict"] == "held") {
            assert!(common::u(s, "completed") > 0, "{context}");
        }
        assert!(
            summary.contains(&format!(
                "holds {}",
                c["refined_knee_nodes"].as_u64().unwrap_or(knee)
            )),
            "{context}"
        );
        // Shown with --nocapture: the figures docs/capacity.md quotes.
        eprintln!("limit {limit}: {summary}");
        knees.push(knee);
    }
    assert!(
        knees[1] > knees[0],
        "the knee did not move up with the limit: {knees:?}"
    );
}
