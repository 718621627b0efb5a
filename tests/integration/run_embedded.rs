//! `pullstorm run` against the embedded registry, end to end through the
//! real binary: fleets, arrival patterns, auth, indexes, resume after cuts,
//! digest checks, deadlines and bad input.

use crate::common::*;

const FAST_RETRY: &str = "[client]\nbackoff = \"50ms\"\n";

#[test]
fn herd_of_many_nodes_completes_every_pull() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "herd",
        r#"
[embedded]
layers = ["2MiB", "1MiB", "512KiB"]
[fleet]
clusters = 8
nodes_per_cluster = 25
[run]
duration = "60s"
pulls_per_node = 2
[thresholds]
max_failed_pulls = 0
"#,
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["schema"], "pullstorm/result/v1");
    assert_eq!(u(&v, "pulls.planned"), 400);
    assert_eq!(u(&v, "pulls.started"), 400);
    assert_eq!(u(&v, "pulls.completed"), 400);
    assert_eq!(u(&v, "pulls.failed"), 0);
    assert_eq!(v["complete"], true);
    only_errors(&v, &[]);
    let image = u(&v, "target.image_bytes");
    assert_eq!(u(&v, "bytes.downloaded"), 400 * image);
    assert_eq!(u(&v, "bytes.wasted"), 0);
    assert_eq!(u(&v, "retries.total"), 0);
    assert_eq!(u(&v, "latency.pull.count"), 400);
    for metric in ["pull", "layer", "ttfb", "connect"] {
        assert!(
            v["latency"][metric]["p99"].as_f64().unwrap() > 0.0,
            "{metric}"
        );
        assert!(
            v["histograms"][metric].as_str().unwrap().len() > 10,
            "{metric}"
        );
    }
    assert!(u(&v, "fd.client_peak") > 0);
    assert!(u(&v, "fd.client_limit") >= u(&v, "fd.client_peak"));
    assert!(!v["timeline"].as_array().unwrap().is_empty());
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 8);
    assert!(clusters.iter().all(|c| c["pulls_completed"] == 50));
    assert!(r.stdout.contains("400 completed"), "{}", r.stdout);
    assert!(r.report().contains("<svg"));
}

#[test]
fn waves_start_on_schedule_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "waves",
        r#"
[embedded]
layers = ["1MiB"]
[fleet]
clusters = 3
nodes_per_cluster = 4
[arrival]
pattern = "waves"
wave_size = 4
wave_interval = "1s"
"#,
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 12);
    // Three waves one second apart: the last starts 2 s in, so the run cannot be shorter.
    assert!(u(&v, "duration_ms") >= 2000);
    assert!(v["fleet"]["arrival"]
        .as_str()
        .unwrap()
        .starts_with("waves of 4"));
    only_errors(&v, &[]);
}

#[test]
fn bearer_auth_with_credentials_that_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-Pa55-never-printed";
    let file = dir.path().join("auth.toml");
    std::fs::write(
        &file,
        "[embedded]\nlayers = [\"1MiB\"]\nauth = \"bearer\"\n[fleet]\nnodes_per_cluster = 4\n",
    )
    .unwrap();
    let out = bin()
        .args(["run"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("PULLSTORM_USERNAME", "alice")
        .env("PULLSTORM_PASSWORD", secret)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let result = std::fs::read_to_string(dir.path().join("out/result.json")).unwrap();
    let report = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(u(&v, "pulls.completed"), 4);
    // Basic credentials are base64 on the wire: check both forms.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{secret}"));
    for (name, text) in [
        ("stdout", &*stdout),
        ("stderr", &*stderr),
        ("result.json", &*result),
        ("report.html", &*report),
    ] {
        assert!(!text.contains(secret), "password leaked into {name}");
        assert!(
            !text.contains(&basic),
            "basic credentials leaked into {name}"
        );
        assert!(
            !text.contains("Bearer "),
            "a bearer token leaked into {name}"
        );
    }
}

#[test]
fn index_resolves_to_the_amd64_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "index", "[embedded]\nlayers = [\"1MiB\", \"64KiB\"]\nindex = true\n[fleet]\nnodes_per_cluster = 3\n", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 3);
    // The run reports the platform manifest it pulled, not the index.
    let image = pullstorm::synth::SyntheticImage::build(1, &[1 << 20, 64 << 10]);
    assert_eq!(
        v["target"]["manifest_digest"],
        image.manifest.digest.as_str()
    );
    assert_eq!(v["target"]["blobs"].as_array().unwrap().len(), 3);
}

#[test]
fn cut_response_is_resumed_with_range() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "resume",
        &format!("[embedded]\nlayers = [\"4MiB\", \"3MiB\"]\n[embedded.faults]\ncut_after = \"1MiB\"\ncut_times = 1\n[fleet]\nnodes_per_cluster = 1\n{FAST_RETRY}"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    // Both layers were cut once (the small config blob too, if bigger than the cut: it is not).
    assert_eq!(u(&v, "errors.unexpected_eof"), 2, "{}", v["error_details"]);
    only_errors(&v, &["unexpected_eof"]);
    assert_eq!(u(&v, "retries.total"), 2);
    // Resumed at the byte reached: nothing downloaded twice.
    assert_eq!(u(&v, "bytes.wasted"), 0);
    assert_eq!(u(&v, "bytes.downloaded"), u(&v, "target.image_bytes"));
    assert_eq!(u(&v, "layers.attempts.2"), 2);
    assert_eq!(u(&v, "latency.retry.count"), 2);
}

#[test]
fn reset_is_classified_apart_from_short_body() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "reset",
        &format!("[embedded]\nlayers = [\"4MiB\"]\n[embedded.faults]\ncut_after = \"1MiB\"\ncut_times = 1\ncut_with = \"rst\"\n{FAST_RETRY}"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    assert_eq!(
        u(&v, "errors.connection_reset"),
        1,
        "{}",
        v["error_details"]
    );
    only_errors(&v, &["connection_reset"]);
}

#[test]
fn ignored_range_restarts_from_zero_like_dockerd() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "norange",
        &format!("[embedded]\nlayers = [\"4MiB\"]\n[embedded.faults]\ncut_after = \"1MiB\"\ncut_times = 1\nignore_range = true\n{FAST_RETRY}"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    // Attempt 1 cut at 1 MiB; attempt 2 asks for a range, gets 200, and is used up; attempt 3 from zero.
    assert_eq!(u(&v, "errors.unexpected_eof"), 1, "{}", v["error_details"]);
    assert_eq!(u(&v, "errors.range_not_honoured"), 1);
    only_errors(&v, &["unexpected_eof", "range_not_honoured"]);
    assert_eq!(u(&v, "bytes.wasted"), 1 << 20);
    assert_eq!(u(&v, "layers.attempts.3"), 1);
}

#[test]
fn containerd_discards_the_prefix_when_range_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "ctrd",
        "[embedded]\nlayers = [\"4MiB\"]\n[embedded.faults]\ncut_after = \"1MiB\"\ncut_times = 1\nignore_range = true\n[fleet]\nclient = \"containerd\"\n",
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    assert_eq!(
        u(&v, "errors.range_not_honoured"),
        1,
        "{}",
        v["error_details"]
    );
    // The short body is reopened at the offset inside the first attempt; the 200 that
    // answers the Range is read on, its first 1 MiB thrown away.
    assert_eq!(u(&v, "layers.attempts.1"), 2, "config and layer");
    assert_eq!(u(&v, "bytes.wasted"), 1 << 20);
}

#[test]
fn corrupt_blob_is_a_digest_mismatch_and_fails_the_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "corrupt",
        &format!("[embedded]\nlayers = [\"1MiB\"]\n[embedded.faults]\ncorrupt = true\n[fleet]\nnodes_per_cluster = 2\n[thresholds]\nmax_failed_pulls = 0\n{FAST_RETRY}"),
        &[],
    );
    assert_eq!(r.code, 1, "thresholds must fail: {}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.failed"), 2);
    // dockerd does not retry a bad digest on an attempt that did not resume.
    assert_eq!(u(&v, "errors.digest_mismatch"), 2, "{}", v["error_details"]);
    assert_eq!(u(&v, "retries.total"), 0);
    assert_eq!(v["thresholds"]["passed"], false);
    assert!(
        r.stdout.contains("threshold max_failed_pulls failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn deadline_stops_the_run_and_still_writes_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "deadline",
        "[embedded]\nlayers = [\"64MiB\"]\n[fleet]\nnodes_per_cluster = 2\nnode_bandwidth = \"8MB/s\"\n[run]\nduration = \"2s\"\n",
        &[],
    );
    assert_eq!(
        r.code, 1,
        "an incomplete run fails require_complete: {}",
        r.stderr
    );
    let v = r.result();
    assert_eq!(v["complete"], false);
    assert_eq!(v["stop_reason"], "deadline");
    assert_eq!(u(&v, "pulls.interrupted"), 2);
    assert!(u(&v, "bytes.downloaded") > 0);
    assert!(r.dir.join("report.html").exists());
}

#[test]
fn ctrl_c_writes_a_partial_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigint.toml");
    std::fs::write(
        &file,
        "[embedded]\nlayers = [\"64MiB\"]\n[fleet]\nnode_bandwidth = \"4MB/s\"\n",
    )
    .unwrap();
    let mut child = bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run announces its fleet (signals are handled from then on) and its node
    // is pulling (the embedded registry, in the same process, has sent a first MiB of the
    // layer), then interrupt mid-pull.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0
        && !line.contains("nodes (")
    {
        line.clear();
    }
    assert!(line.contains("nodes ("), "the run never started");
    let pid = child.id();
    wait_until(
        "the node's pull",
        std::time::Duration::from_secs(30),
        || bytes_written(pid) >= 1 << 20,
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "SIGINT's own code (128 + 2), not the 1 of a failed threshold"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/result.json")).unwrap())
            .unwrap();
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["complete"], false);
}

#[test]
fn unreachable_target_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run_scenario(
        dir.path(),
        "down",
        "",
        &[
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--image",
            "a/b:c",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("unreachable") && r.stderr.contains("connect_refused"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_scenario_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "bad",
        "[fleet]\nclusters = 4\nnodes_per_cluster = \"many\"\n",
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.toml:3"), "{}", r.stderr);
    assert!(r.stderr.contains("fleet.nodes_per_cluster"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
    let r = run_scenario(dir.path(), "unknown", "[fleet]\nclusterz = 4\n", &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown.toml:2") && r.stderr.contains("clusterz"),
        "{}",
        r.stderr
    );
    let r = run_scenario(dir.path(), "ok", "", &["--set", "fleet.clusters=abc"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--set fleet.clusters=abc"),
        "{}",
        r.stderr
    );
}

#[test]
fn more_nodes_than_fds_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "huge",
        "[fleet]\nclusters = 1000\nnodes_per_cluster = 1000\n",
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("file descriptors"), "{}", r.stderr);
    assert!(!r.dir.join("result.json").exists());
}

#[test]
fn report_subcommand_rebuilds_the_html() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "rep", "[embedded]\nlayers = [\"64KiB\"]\n", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = dir.path().join("again.html");
    let out = bin()
        .arg("report")
        .arg(r.dir.join("result.json"))
        .arg("--out")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&html).unwrap(), r.report());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema\": 1}").unwrap();
    let out = bin().arg("report").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn containerd_reopens_at_the_offset_without_using_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "reopen",
        "[embedded]\nlayers = [\"4MiB\"]\n[embedded.faults]\ncut_after = \"1MiB\"\ncut_times = 2\n[fleet]\nclient = \"containerd\"\n",
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 1);
    // Two short bodies, each reopened at the byte reached, inside the first attempt.
    assert_eq!(u(&v, "errors.unexpected_eof"), 2, "{}", v["error_details"]);
    assert_eq!(u(&v, "retries.total"), 2);
    assert_eq!(
        u(&v, "layers.attempts.1"),
        2,
        "config and layer, one attempt each"
    );
    assert_eq!(u(&v, "bytes.wasted"), 0);
}

#[test]
fn retries_are_bucketed_by_how_far_the_blob_had_come() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "progress",
        &format!("[embedded]\nlayers = [\"4MiB\"]\n[embedded.faults]\ncut_after = \"3MiB\"\ncut_times = 1\n{FAST_RETRY}"),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    // The layer (4 MiB + tar framing) was cut at 3 MiB: about 75 %.
    assert_eq!(u(&v, "retries.at_progress.70-80"), 1, "{}", v["retries"]);
    assert_eq!(u(&v, "retries.total"), 1);
    assert_eq!(u(&v, "latency.retry_per_pull.count"), 1);
}

#[test]
fn kubelet_pulls_a_failed_image_again_after_its_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "kubelet",
        "[embedded]\nlayers = [\"256KiB\"]\n[embedded.faults]\ncorrupt = true\n[fleet]\nnodes_per_cluster = 2\n[kubelet]\npull_retries = 2\npull_backoff = \"100ms\"\nresync = \"0s\"\n[thresholds]\nmax_failed_pulls = 6\n",
        &[],
    );
    assert_eq!(r.code, 0, "the 6 failed pulls are allowed: {}", r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.planned"), 2);
    assert_eq!(u(&v, "pulls.started"), 6);
    assert_eq!(u(&v, "pulls.failed"), 6);
    assert_eq!(u(&v, "pulls.kubelet_retries"), 4);
    assert_eq!(u(&v, "errors.digest_mismatch"), 6);
}

#[test]
fn interval_log_adds_up_to_the_run_totals() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "hlog",
        "[embedded]\nlayers = [\"1MiB\"]\n[fleet]\nnodes_per_cluster = 6\n[arrival]\npattern = \"waves\"\nwave_size = 2\nwave_interval = \"3s\"\n",
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.result();
    let log = std::fs::read(r.dir.join("latency.hlog")).expect("latency.hlog written");
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let mut intervals = std::collections::BTreeSet::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(h) = entry.expect("a valid interval log") {
            let tag = h.tag().expect("every line is tagged").as_str().to_string();
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .unwrap();
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .unwrap();
            *counts.entry(tag).or_default() += hist.len();
            intervals.insert(h.start_timestamp().as_secs());
        }
    }
    // Waves 3 s apart span more than one 5 s interval.
    assert!(intervals.len() >= 2, "{intervals:?}");
    for metric in ["pull", "layer", "ttfb", "connect"] {
        assert_eq!(
            counts.get(metric).copied(),
            Some(u(&v, &format!("latency.{metric}.count"))),
            "{metric}"
        );
    }
}
