//! `pullstorm compare` against the real lab: one scenario through a private docker-registry
//! and the lab's two-hop nginx of seed 001 (a buffering LB in front of a Harbor-like hop,
//! `lab/nginx/sites/faults.conf`), run several times; pairs of those runs and the 3-vs-3
//! folder form compare clean (exit 0, no false regression), and a candidate whose LB has a
//! shortened timeout (the same two-hop nginx with the hop's `send_timeout` cut from nginx's
//! default 60 s to 1 s) is flagged (exit 1) by the metrics that moved, in the console, the
//! JUnit XML and the Markdown. Bad input exits 2.
//!
//! The instances come from tests/integration/instances.rs (free ports, stopped by pid); the
//! lab's packages must be installed (`scripts/lab.sh up` does it). Small image, two pulls per
//! node, bandwidth-limited nodes: each run takes seconds.

use crate::common::*;
use crate::instances::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const IMAGE: &str = "lab/compare:v1";
/// One blob well above the LB's temp file plus the socket buffers on the way (together
/// 5 to 10 MB on loopback), so the LB stops reading the hop part-way through it.
const LAYERS: &str = "16MiB,256KiB";
/// The LB's `proxy_max_temp_file_size`: at 4 MB/s a node needs over a second to drain it
/// (and the buffers), longer than the candidate's `send_timeout`.
const TEMP_FILE: &str = "4m";
const SEED: u64 = 61;

/// 4 dockerd nodes at 4 MB/s (slower than the registry: the LB buffers), two pulls each;
/// dockerd's back-off shortened (the profile's 5 s x attempt would only make the cut
/// candidate slower).
const SCENARIO: &str = "[fleet]\nclusters = 1\nnodes_per_cluster = 4\nclient = \"dockerd\"\n\
node_bandwidth = \"4MB/s\"\n[client]\nbackoff = \"100ms\"\n[kubelet]\npull_retries = 0\n\
[run]\nduration = \"60s\"\npulls_per_node = 2\n";

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pullstorm-compare-")
        .tempdir()
        .unwrap()
}

/// `count` runs of the scenario through `lb`, as `<dir>/<name><i>/` run folders.
fn runs(dir: &Path, name: &str, lb: &str, count: usize) -> Vec<PathBuf> {
    (1..=count)
        .map(|i| {
            let d = dir.join(format!("{name}{i}"));
            let r = run(&d, SCENARIO, lb, IMAGE, &[]);
            assert!(
                r.code == 0 || r.code == 1,
                "run {name}{i}: exit {}\n{}",
                r.code,
                r.stderr
            );
            r.dir
        })
        .collect()
}

fn compare(args: &[&PathBuf], extra: &[&str]) -> Output {
    bin()
        .arg("compare")
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copies run folders into one folder of runs (`<to>/<i>/result.json` + latency.hlog).
fn folder_of(to: &Path, runs: &[&PathBuf]) -> PathBuf {
    for (i, r) in runs.iter().enumerate() {
        let d = to.join(format!("run{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in ["result.json", "latency.hlog"] {
            std::fs::copy(r.join(f), d.join(f)).unwrap();
        }
    }
    to.to_path_buf()
}

/// The verdict column of a metric's console line.
fn verdict_of(out: &str, metric: &str) -> Option<String> {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{metric} ")))
        .map(|l| l.to_string())
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn repeated_runs_compare_clean_and_a_shortened_lb_timeout_is_a_regression() {
    let dir = tmp();
    let d = dir.path();
    let registry = Registry::with_image(&d.join("registry"), IMAGE, LAYERS, SEED);
    // The current LB config: the seed-001 two-hop nginx with nginx's default send_timeout.
    let good = TwoHopLb::start(&d.join("lb-good"), registry.port, "60s", Some(TEMP_FILE));
    // The candidate: the same two hops, the hop's send_timeout shortened to 1 s. While a
    // node drains the LB's temp file the LB does not read the hop; the hop, unable to write
    // for 1 s, resets, and the LB ends the node's blob short (seed 001, scaled down). The
    // LB drops Range, so a resume gets 200 and the layer restarts from byte 0.
    let cutting = TwoHopLb::start(&d.join("lb-cut"), registry.port, "1s", Some(TEMP_FILE));
    let a = runs(d, "a", &good.url(), 6);
    for r in &a {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("result.json")).unwrap()).unwrap();
        assert_eq!(u(&v, "pulls.failed"), 0, "{}", error_summary(&v));
        // With 60 s the hop never gives up: nothing is cut.
        assert_eq!(u(&v, "retries.total"), 0, "{}", error_summary(&v));
    }

    // Three pairs of runs of one configuration: no false regression.
    for pair in a.chunks(2) {
        let o = compare(&[&pair[0], &pair[1]], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("OK: no regression"), "{}", text(&o));
    }
    // The 3-vs-3 folder form: runs over runs.
    let base = folder_of(&d.join("base"), &[&a[0], &a[2], &a[4]]);
    let same = folder_of(&d.join("same"), &[&a[1], &a[3], &a[5]]);
    let o = compare(&[&base, &same], &[]);
    println!("{}", text(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("3 baseline runs, 3 candidate runs"),
        "{}",
        text(&o)
    );

    // The shortened timeout: flagged, by the metrics that moved.
    let b = runs(d, "cut", &cutting.url(), 3);
    // The cuts are the hop's send_timeout, as in seed 001: the LB saw the hop reset.
    let log = cutting.nginx.error_log();
    assert!(
        log.contains("(104: Connection reset by peer) while reading upstream"),
        "{log}"
    );
    drop(cutting);
    for r in &b {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("result.json")).unwrap()).unwrap();
        eprintln!("candidate {}: {}", r.display(), error_summary(&v));
        assert!(u(&v, "retries.total") > 0, "{}", error_summary(&v));
    }
    let cand = folder_of(&d.join("cand"), &[&b[0], &b[1], &b[2]]);
    let junit = d.join("out/compare.xml");
    let markdown = d.join("out/compare.md");
    let html = d.join("out/compare.html");
    let o = compare(
        &[&base, &cand],
        &[
            "--junit",
            junit.to_str().unwrap(),
            "--markdown",
            markdown.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let out = text(&o);
    println!("{out}");
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("REGRESSION: "), "{out}");
    let line = verdict_of(&out, "retry_rate").unwrap_or_else(|| panic!("no retry_rate:\n{out}"));
    assert!(line.contains("WORSE"), "{line}\n{out}");
    // The class of the cuts (a short body: unexpected_eof) moved too.
    let class = out
        .lines()
        .find(|l| l.trim_start().starts_with("errors.") && l.contains("WORSE"))
        .unwrap_or_else(|| panic!("no error class flagged:\n{out}"));
    let class = class.split_whitespace().next().unwrap().to_string();
    // Regressions are listed first.
    let first = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("metric "))
        .nth(1)
        .unwrap();
    assert!(first.contains("WORSE"), "{out}");

    // The JUnit file is XML with a failure per regression, named by metric.
    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as E\n\
             r = E.parse(sys.argv[1]).getroot()\n\
             s = r.find('testsuite')\n\
             print(s.get('tests'), s.get('failures'))\n\
             for c in s.findall('testcase'):\n\
             \x20   if c.find('failure') is not None: print('FAILED', c.get('name'))\n",
        )
        .arg(&junit)
        .output()
        .unwrap();
    let parsed = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(parsed.contains("FAILED retry_rate"), "{parsed}");
    assert!(parsed.contains(&format!("FAILED {class}")), "{parsed}");
    let worse = out.lines().filter(|l| l.contains("WORSE")).count();
    assert_eq!(parsed.matches("FAILED ").count(), worse, "{parsed}\n{out}");

    // The Markdown has a table, regressions first.
    let md = std::fs::read_to_string(&markdown).unwrap();
    println!("{md}");
    assert!(md.contains("| | metric | baseline | candidate |"), "{md}");
    let first_row = md
        .lines()
        .find(|l| l.starts_with("| \u{274c}"))
        .unwrap_or("");
    assert!(!first_row.is_empty(), "{md}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("REGRESSION") && html.contains("<svg"), "html");

    // One run against one: the block bootstrap over time flags it too.
    let o = compare(&[&a[0], &b[0]], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
#[ignore = "needs the lab: scripts/test.sh starts it"]
fn different_scenarios_and_broken_files_are_refused_with_exit_2() {
    let dir = tmp();
    let d = dir.path();
    let registry = Registry::with_image(&d.join("registry"), IMAGE, LAYERS, SEED);
    let a = run(&d.join("a"), SCENARIO, &registry.url(), IMAGE, &[]);
    let other = SCENARIO.replace("pulls_per_node = 2", "pulls_per_node = 1");
    let b = run(&d.join("b"), &other, &registry.url(), IMAGE, &[]);
    let o = compare(&[&a.dir, &b.dir], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("run.pulls_per_node"), "{}", text(&o));
    let o = compare(&[&a.dir, &b.dir], &["--allow-different-scenarios"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
    assert!(
        text(&o).contains("different scenarios compared"),
        "{}",
        text(&o)
    );

    let bad = d.join("bad.json");
    std::fs::write(&bad, "{\"schema\": \"pullstorm/result/v1\"").unwrap();
    let o = compare(&[&a.dir, &bad], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.json:1:"), "{}", text(&o));
    let o = compare(&[&a.dir, &a.dir], &["--tolerance", "pull_p99=fast"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("pull_p99"), "{}", text(&o));
}
