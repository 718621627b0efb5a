//! Thresholds on any figure of result.json by its path, and the sliding-window
//! abort, through the real binary against the embedded registry: a path check
//! fails the run (exit 1) and result.json shows it; `abort_on_fail` stops a run
//! whose error rate crosses the limit within window + grace of the crossing
//! (read from the result's timeline, not a wall clock) and leaves a run under
//! the limit alone; an unknown path is a scenario error (exit 2) naming its key.

use crate::common::*;
use serde_json::Value;

fn checks<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["thresholds"]["checks"]
        .as_array()
        .expect("checks[]")
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

/// Two dockerd nodes pulling a corrupt 1 MiB layer: both pulls fail with a digest mismatch.
const ALL_FAIL: &str = "[embedded]\nlayers = [\"1MiB\"]\n[embedded.faults]\ncorrupt = true\n\
                        [fleet]\nnodes_per_cluster = 2\n[client]\nbackoff = \"50ms\"\n";

#[test]
fn a_path_threshold_fails_the_run_and_result_json_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{ALL_FAIL}[thresholds]\nmax_failure_rate = 1.0\n\"errors.digest_mismatch\" = \"== 0\"\n\
         \"pulls.planned\" = \"== 2\"\n\"latency.pull.p99\" = \"< 1h\"\n"
    );
    let r = run_scenario(dir.path(), "paths", &scenario, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["thresholds"]["passed"], false);
    let digest = checks(&v, "errors.digest_mismatch");
    assert_eq!(digest.len(), 1);
    let digest = digest[0];
    assert_eq!(digest["limit"], "== 0");
    assert_eq!(digest["passed"], false);
    let mismatches = u(&v, "errors.digest_mismatch");
    assert!(mismatches > 0);
    assert_eq!(digest["actual"], mismatches.to_string());
    assert_eq!(checks(&v, "pulls.planned")[0]["passed"], true);
    // No pull completed: no pull time, and the gate does not pass on it.
    let p99 = checks(&v, "latency.pull.p99")[0];
    assert_eq!(p99["passed"], false);
    assert_eq!(p99["actual"], "no data (no pull samples)");
    assert!(
        r.stdout.contains(&format!(
            "threshold errors.digest_mismatch failed: limit == 0, actual {mismatches}"
        )),
        "{}",
        r.stdout
    );
    assert!(r.report().contains("errors.digest_mismatch"));
}

/// Four nodes pulling a small image every 200 ms for up to a minute.
const STEADY: &str = "[embedded]\nlayers = [\"64KiB\"]\n[fleet]\nnodes_per_cluster = 4\n\
                      [run]\nduration = \"60s\"\npull_interval = \"200ms\"\n";

const ABORT: &str = "[thresholds]\nmax_failure_rate = 1.0\nabort_on_fail = true\n\
                     window = \"3s\"\ngrace = \"2s\"\n\"errors.http_503\" = \"rate < 0.1\"\n";

#[test]
fn an_error_rate_over_the_window_aborts_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The registry serves 60 manifest requests, then answers 503: it fails mid-storm.
    let scenario = format!(
        "{STEADY}pulls_per_node = 1000\n[embedded.faults]\nstatus = 503\nstatus_on = \"manifest\"\n\
         status_after = 60\n{ABORT}"
    );
    let r = run_scenario(dir.path(), "aborted", &scenario, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["stop_reason"], "threshold_abort", "{}", r.stdout);
    assert_eq!(v["complete"], false);
    assert_eq!(v["thresholds"]["passed"], false);
    let broke = checks(&v, "errors.http_503")
        .into_iter()
        .find(|c| !c["window"].is_null())
        .unwrap_or_else(|| panic!("no window check: {}", v["thresholds"]));
    assert_eq!(broke["passed"], false);
    assert_eq!(broke["limit"], "rate < 0.1 over a 3s window");
    assert_eq!(u(broke, "window.seconds"), 3);
    let aborted_at = u(broke, "window.to_s");

    // The crossing: the first second with a 503 (each failing pull answers at least one).
    let timeline = v["timeline"].as_array().expect("timeline");
    let crossing = timeline
        .iter()
        .find(|row| row["errors_by_class"]["http_503"].as_u64().unwrap_or(0) > 0)
        .map(|row| u(row, "t"))
        .expect("a second with 503s");
    // Decided within window + grace (+ one second's margin) of the crossing...
    assert!(
        aborted_at <= crossing + 3 + 2 + 1,
        "crossed at {crossing}s, aborted at {aborted_at}s"
    );
    // ...and neither inside the grace nor before the crossing (`t` ends its second).
    assert!(aborted_at >= crossing && aborted_at >= 2, "{aborted_at}");
    // The run stopped then: its last second follows the decision closely.
    let last = u(timeline.last().unwrap(), "t");
    assert!(
        last <= aborted_at + 2,
        "last second {last}, aborted at {aborted_at}"
    );
    assert!(
        u(&v, "pulls.started") < 4 * 1000,
        "the fleet did not finish"
    );
    assert!(
        r.stdout
            .contains("threshold errors.http_503 failed: limit rate < 0.1 over a 3s window")
            && r.stdout.contains(&format!(
                "the run was aborted as second {aborted_at} closed"
            )),
        "{}",
        r.stdout
    );
    assert!(r.report().contains("threshold_abort"));
}

#[test]
fn a_run_under_the_limit_is_not_aborted() {
    let dir = tempfile::tempdir().unwrap();
    // About four seconds of pulls, past the grace, without a fault.
    let scenario = format!("{STEADY}pulls_per_node = 20\n{ABORT}");
    let r = run_scenario(dir.path(), "steady", &scenario, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["stop_reason"], "finished");
    assert!(
        v["timeline"].as_array().unwrap().len() >= 3,
        "the window was judged"
    );
    let check = checks(&v, "errors.http_503");
    assert_eq!(check.len(), 1, "no window check: {}", v["thresholds"]);
    assert_eq!(check[0]["passed"], true);
    assert_eq!(check[0]["actual"], "0 (0 of 80 pulls)");
}

#[test]
fn an_unknown_path_is_a_scenario_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[thresholds]\nmax_retries = 1\n\"latency.pull.p95\" = \"< 1s\"\n";
    let r = run_scenario(dir.path(), "unknown", scenario, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "unknown.toml:3:22: thresholds.\"latency.pull.p95\": `latency.pull.p95` is not a figure of result.json"
        ),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("out").join("result.json").exists());
}
