//! The pass/fail gate through the real binary: a run in which every pull
//! failed never passes. The embedded registry serves corrupt blobs, so 0 of
//! the pulls complete; a latency threshold then has no pull time to hold
//! (it used to read 0 ms and pass), and a scenario without `[thresholds]`
//! fails on the default `max_failed_pulls = 0`.

use crate::common::*;

/// Two dockerd nodes pulling a corrupt 1 MiB layer: both pulls fail with a digest mismatch.
const ALL_FAIL: &str = "[embedded]\nlayers = [\"1MiB\"]\n[embedded.faults]\ncorrupt = true\n\
                        [fleet]\nnodes_per_cluster = 2\n[client]\nbackoff = \"50ms\"\n";

#[test]
fn a_latency_gate_fails_when_no_pull_completed() {
    let dir = tempfile::tempdir().unwrap();
    // The failures are allowed: only the latency limit can fail the run.
    let scenario = format!("{ALL_FAIL}[thresholds]\nmax_failed_pulls = 2\npull_p99 = \"1ms\"\n");
    let r = run_scenario(dir.path(), "allfail", &scenario, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 0);
    assert_eq!(u(&v, "pulls.failed"), 2);
    assert_eq!(v["thresholds"]["passed"], false);
    let p99 = threshold_check(&v, "pull_p99");
    assert_eq!(p99["passed"], false, "{p99}");
    assert_eq!(p99["actual"], "no completed pulls to measure");
    assert_eq!(threshold_check(&v, "max_failed_pulls")["passed"], true);
    assert!(
        r.stdout
            .contains("threshold pull_p99 failed: limit 1ms, actual no completed pulls to measure"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("FAILED thresholds"), "{}", r.stdout);
}

#[test]
fn without_thresholds_a_failed_pull_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "nogate", ALL_FAIL, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.failed"), 2);
    let failed = threshold_check(&v, "max_failed_pulls");
    assert_eq!(failed["limit"], "0");
    assert_eq!(failed["actual"], "2");
    assert_eq!(
        v["scenario"]["resolved"]["thresholds"]["max_failed_pulls"],
        0
    );
    assert!(
        r.stdout
            .contains("threshold max_failed_pulls failed: limit 0, actual 2"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_scenario_that_expects_failures_says_so_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!("{ALL_FAIL}[thresholds]\nmax_failure_rate = 1.0\n");
    let r = run_scenario(dir.path(), "expected", &scenario, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(u(&r.result(), "pulls.failed"), 2);
}
