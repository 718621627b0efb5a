//! The harness watching itself, through the real binary: every run says in
//! result.json, on the console and in the report whether pullstorm was short
//! of CPU or lagging (one figure for one thing in each), and a run squeezed
//! onto one core with an unthrottled embedded herd is found saturated.
//! (The rule itself is unit-tested in src/metrics/harness.rs.)

use crate::common::*;
use serde_json::Value;
use std::process::Command;

/// A quickstart-like herd (embedded registry, dockerd nodes in clusters),
/// small enough to take a few seconds.
const SMALL_HERD: &str = r#"
description = "a small embedded herd"
[embedded]
layers = ["8MiB", "4MiB"]
[fleet]
clusters = 2
nodes_per_cluster = 4
client = "dockerd"
[arrival]
pattern = "herd"
[run]
duration = "60s"
pulls_per_node = 1
"#;

/// Enough work to keep one core busy for a few seconds: 16 nodes pull 64
/// MiB each from the embedded registry, in the same process, unthrottled
/// (every byte generated, sent, received and hashed by pullstorm).
const HEAVY_HERD: &str = r#"
description = "an unthrottled embedded herd"
[embedded]
layers = ["32MiB", "32MiB"]
[fleet]
clusters = 1
nodes_per_cluster = 16
client = "dockerd"
[arrival]
pattern = "herd"
[run]
duration = "30s"
pulls_per_node = 1
"#;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The console's harness line.
fn harness_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("  harness   "))
        .unwrap_or_else(|| panic!("no harness line in:\n{stdout}"))
}

/// `harness` agrees with the timeline it was computed from: its counts,
/// peaks and verdict are those of the per-second rows, by the documented
/// rule (a second in which CPU used, or used and waited for, is 90 % of the
/// usable cores or more, or with a timer lag over 100 ms; the run when more
/// than 5 % of its seconds are).
fn check_harness_against_timeline(v: &Value) -> &Value {
    let h = &v["harness"];
    assert!(h.is_object(), "no harness in result.json: {h}");
    assert!(f(&h["cpu_seconds"]) > 0.0, "{h}");
    assert!(f(&h["usable_cores"]) > 0.0, "{h}");
    assert!(u(h, "affinity_cores") >= 1, "{h}");
    let rows = v["timeline"].as_array().expect("timeline");
    assert!(!rows.is_empty());
    let mut saturated = 0;
    let (mut cpu_peak, mut wait_peak, mut lag_max) = (0.0f64, 0.0f64, 0.0f64);
    for r in rows {
        // A figure is a number, or absent when unknown (never a 0 standing for it);
        // the CPU of a last row shorter than a millisecond is unknown.
        let figure = |k: &str| r.get(k).map(f);
        let (cpu, wait, lag) = (
            figure("harness_cpu_percent"),
            figure("harness_cpu_wait_percent"),
            figure("timer_lag_ms"),
        );
        // Every row has its timer lag, so every second is measured.
        let lag = lag.expect("every row has its timer lag");
        let demand = cpu.unwrap_or(0.0) + wait.unwrap_or(0.0);
        saturated += u64::from(demand >= 90.0 || lag > 100.0);
        cpu_peak = cpu_peak.max(cpu.unwrap_or(0.0));
        wait_peak = wait_peak.max(wait.unwrap_or(0.0));
        lag_max = lag_max.max(lag);
    }
    assert_eq!(u(h, "measured_seconds"), rows.len() as u64, "{h}");
    assert_eq!(u(h, "saturated_seconds"), saturated, "{h}");
    assert_eq!(f(&h["cpu_peak_percent"]), cpu_peak, "{h}");
    assert_eq!(f(&h["cpu_wait_peak_percent"]), wait_peak, "{h}");
    assert_eq!(f(&h["timer_lag_max_ms"]), lag_max, "{h}");
    assert_eq!(
        h["saturated"].as_bool(),
        Some(saturated * 100 > 5 * rows.len() as u64),
        "{h}"
    );
    assert_eq!(h["embedded_registry"].as_bool(), Some(true), "{h}");
    // The watched harness row shows the same CPU seconds.
    let row = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "harness")
        .expect("a harness row");
    assert_eq!(row["cpu_seconds"], h["cpu_seconds"], "{row}");
    h
}

#[test]
fn every_run_says_whether_the_harness_was_saturated() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "small", SMALL_HERD, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    let h = check_harness_against_timeline(&v);

    // The console says it plainly, either way, with the result's figures.
    let line = harness_line(&r.stdout);
    let figures = format!(
        "peak {:.0}% of {} core",
        f(&h["cpu_peak_percent"]),
        f(&h["usable_cores"])
    );
    assert!(line.contains(&figures), "{line} lacks {figures}");
    if h["saturated"] == true {
        assert!(
            line.starts_with(&format!("SATURATED for {} s", u(h, "saturated_seconds"))),
            "{line}"
        );
        assert!(line.contains("figures may describe pullstorm, not the target"));
    } else {
        assert!(line.starts_with("not saturated ("), "{line}");
    }

    // The report has the card, its figures tagged with the result's values.
    let html = r.report();
    assert!(html.contains("Harness saturated"), "no harness card");
    assert!(
        html.contains(&format!(
            "data-k=\"harness.cpu_seconds\" data-v=\"{}\"",
            h["cpu_seconds"]
        )),
        "cpu_seconds not tagged with {}",
        h["cpu_seconds"]
    );
    assert!(html.contains("Harness CPU, percent of the"), "no CPU chart");
    assert!(html.contains("Harness timer lag"), "no timer-lag chart");
    assert_eq!(
        html.contains("id=\"harness-saturated\""),
        h["saturated"] == true
    );
}

/// The first CPU this test may run on (`taskset` needs one the process is allowed).
fn first_allowed_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status")
        .trim();
    list.split([',', '-']).next().unwrap().to_string()
}

/// One core and a herd whose every byte pullstorm itself generates, sends,
/// receives and hashes: the harness is the bottleneck (its one core is busy,
/// or, when other processes share the core, its threads wait for it), and
/// the run says so everywhere.
#[test]
fn a_harness_squeezed_onto_one_core_is_saturated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heavy.toml");
    std::fs::write(&file, HEAVY_HERD).unwrap();
    let out_dir = dir.path().join("out");
    // The run stops itself at its 30 s deadline; `timeout` bounds the test if it did not.
    let out = Command::new("timeout")
        .args(["120", "taskset", "-c", &first_allowed_cpu()])
        .arg(env!("CARGO_BIN_EXE_pullstorm"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .arg("--quiet")
        .output()
        .expect("timeout and taskset run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{:?}\n{stdout}{stderr}",
        out.status
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("result.json")).unwrap())
            .unwrap();
    let h = check_harness_against_timeline(&v);
    assert_eq!(u(h, "affinity_cores"), 1, "{h}");
    assert!(f(&h["usable_cores"]) <= 1.0, "{h}");
    assert_eq!(h["saturated"].as_bool(), Some(true), "{h}\n{stdout}");
    assert!(u(h, "saturated_seconds") >= 1, "{h}");

    let line = harness_line(&stdout);
    assert!(line.starts_with("SATURATED for "), "{line}");
    assert!(line.contains("of 1 core"), "{line}");
    assert!(line.ends_with("use fewer nodes or more cores, or a registry outside pullstorm"));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"harness-saturated\""),
        "no saturated verdict line"
    );
    assert!(html.contains(">SATURATED <span data-k=\"harness.saturated_seconds\""));
}
