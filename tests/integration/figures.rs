//! Figures you can bet on, through the real binary: peaks that come from the
//! events (so the card, the timeline, the tables and the watched harness row
//! agree), a throughput peak never below its mean, a report header that
//! describes the run as resolved (not the scenario file's prose), and "no data"
//! where nothing was measured, never a zero.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Quickstart's shape (an embedded herd of dockerd nodes in four clusters)
/// with small layers: connections open and close within a fraction of a
/// second, between the sampler's looks, and the run is shorter than a second
/// or two, so its last second is partial.
const BURSTY_HERD: &str = r#"
description = "a quickstart-like herd with small layers"
[embedded]
layers = ["256KiB", "128KiB", "64KiB"]
[fleet]
clusters = 4
nodes_per_cluster = 32
client = "dockerd"
[arrival]
pattern = "herd"
[run]
duration = "60s"
pulls_per_node = 1
[thresholds]
max_failed_pulls = 0
"#;

/// Every tagged figure of a report: `data-k` -> the raw `data-v` of each occurrence.
fn tagged(html: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in html.split("<span data-k=\"").skip(1) {
        let (key, rest) = chunk
            .split_once("\" data-v=\"")
            .expect("data-v follows data-k");
        let raw = rest.split('"').next().unwrap();
        out.entry(key.to_string())
            .or_default()
            .push(raw.to_string());
    }
    out
}

fn timeline_max(v: &Value, field: &str) -> u64 {
    v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|r| r[field].as_u64().expect("a count"))
        .max()
        .expect("at least one row")
}

#[test]
fn peaks_agree_in_result_timeline_harness_row_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "bursty", BURSTY_HERD, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 128);

    let connections = u(&v, "connections.peak");
    let fds = u(&v, "fd.client_peak");
    assert!(connections > 0, "{}", v["connections"]);
    // Each client connection is one fd of the harness.
    assert!(
        fds >= connections,
        "fd.client_peak {fds} < connections.peak {connections}"
    );
    // The timeline carries each second's maximum; the run's peak is the highest second.
    assert_eq!(
        timeline_max(&v, "connections"),
        connections,
        "{}",
        v["timeline"]
    );
    assert_eq!(timeline_max(&v, "fds"), fds, "{}", v["timeline"]);
    // The watched harness row is fed by the same gauge.
    let harness = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "harness")
        .expect("the harness is always watched");
    assert_eq!(harness["fd_peak"].as_u64(), Some(fds), "{harness}");

    // A peak is never below the mean.
    let mean = v["throughput"]["mean_bytes_per_sec"].as_f64().unwrap();
    let peak = u(&v, "throughput.peak_bytes_per_sec") as f64;
    assert!(peak >= mean, "peak {peak} < mean {mean}: {}", v["timeline"]);

    // The report's cards show the result's figures, and the watched table the same fds.
    let html = r.report();
    let figs = tagged(&html);
    assert_eq!(figs["fd.client_peak"], [fds.to_string()]);
    assert_eq!(figs["connections.peak"], [connections.to_string()]);
    assert!(
        html.contains(&format!("<td>{fds} / ")),
        "the harness row of the watched table shows {fds}"
    );
    assert!(
        r.stdout.contains(&format!("fds peak {fds} of")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("connections peak {connections}")),
        "{}",
        r.stdout
    );
    // What the pulls' connections did: one figure in the result, the report and the console.
    let (opened, requests) = (u(&v, "connections.opened"), u(&v, "connections.requests"));
    assert!(
        opened >= connections && requests > 0,
        "{}",
        v["connections"]
    );
    assert_eq!(figs["connections.opened"], [opened.to_string()]);
    assert_eq!(figs["connections.requests"], [requests.to_string()]);
    assert!(
        r.stdout.contains(&format!(
            "conns     {opened} opened for {requests} requests"
        )),
        "{}",
        r.stdout
    );
}

#[test]
fn report_header_is_the_run_as_resolved() {
    const DESCRIPTION: &str = "AUTHOR TEXT four clusters pull synthetic app";
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "description = \"{DESCRIPTION}\"\n[embedded]\nlayers = [\"64KiB\"]\n[fleet]\nclusters = 4\nnodes_per_cluster = 1\n"
    );
    let r = run_scenario(
        dir.path(),
        "header",
        &scenario,
        &["--set", "fleet.clusters=2", "--image", "demo/other:v3"],
    );
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "fleet.clusters"), 2);
    assert_eq!(v["target"]["image"], "demo/other:v3");

    let html = r.report();
    let header = html
        .split_once("<header>")
        .and_then(|(_, rest)| rest.split_once("</header>"))
        .map(|(h, _)| h)
        .expect("a header");
    assert!(
        header.contains("2 clusters x 1 node = 2 dockerd-27 nodes"),
        "{header}"
    );
    assert!(header.contains("demo/other:v3"), "{header}");
    assert!(
        header.contains("the embedded registry (http://127.0.0.1:"),
        "{header}"
    );
    // The author's description only where it is labelled as such (and as the
    // `description` key of the scenario-as-run TOML).
    let labelled = "Scenario description, as written in ";
    let mut seen_label = false;
    for (i, _) in html.match_indices(DESCRIPTION) {
        let before = &html[..i];
        let in_header = before
            .rfind(labelled)
            .is_some_and(|l| !before[l..].contains("</div>"));
        let as_toml_key = before.ends_with("description = &quot;");
        assert!(
            in_header || as_toml_key,
            "unlabelled description: {}",
            &html[i.saturating_sub(120)..i]
        );
        seen_label |= in_header;
    }
    assert!(seen_label, "the description is shown, labelled: {header}");
    let run_line = header.split(labelled).next().unwrap();
    assert!(!run_line.contains(DESCRIPTION), "{header}");
}

#[test]
fn nothing_completed_reads_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "corrupt",
        "[embedded]\nlayers = [\"256KiB\"]\n[embedded.faults]\ncorrupt = true\n[fleet]\nnodes_per_cluster = 2\n[client]\nbackoff = \"50ms\"\n[thresholds]\nmax_failed_pulls = 0\n",
        &[],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 0);
    assert_eq!(u(&v, "latency.pull.count"), 0);

    let pull_line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("pull "))
        .unwrap_or_else(|| panic!("a pull line in the summary: {}", r.stdout));
    assert!(pull_line.contains("no data"), "{pull_line}");
    assert!(!pull_line.contains("0.0ms"), "{pull_line}");

    let html = r.report();
    let card = html
        .split_once("Pull time p50 / p99")
        .map(|(_, rest)| rest.split("</div></div>").next().unwrap())
        .expect("the pull time card");
    assert!(card.contains("no data"), "{card}");
    assert!(!card.contains("0.0ms"), "{card}");
    // The percentile table: the pull row says no data.
    let row = html
        .split("<tr><td>pull</td>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the pull row of the percentile table");
    assert!(row.contains("no data") && !row.contains("0.0ms"), "{row}");
}
