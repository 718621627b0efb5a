//! Startup (building the embedded image, then preflight: ping, token, manifest) obeys
//! `run.duration`, SIGINT and SIGTERM like the rest of the run, and embedded images are
//! capped in size. Through the real binary: a registry that accepts the manifest request
//! and never answers it (the hostile registry's `ManifestHangs`), and an embedded layer
//! too big to hash in any test's time. Each wait is a bounded poll, never a sleep; the
//! bounds are far above the expected seconds and far below what a stuck startup takes
//! (the profile's 300 s response timeout, minutes of hashing).

use crate::common;
use crate::hostile_registry::{Hostile, Variant};
use rustix::process::{kill_process, Pid, Signal};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Far more than a stopped startup needs; far less than what it was stuck in.
const STOPS_WITHIN: Duration = Duration::from_secs(30);

/// A child process killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `pullstorm run <scenario> --out <dir>/out` (stderr piped, not quiet).
fn start_run(dir: &Path, scenario: &str) -> Running {
    let file = dir.join("startup.toml");
    std::fs::write(&file, scenario).unwrap();
    let child = common::bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pullstorm starts");
    Running(child)
}

/// Polls for the child's exit for at most `within`; its exit code and how long it took.
fn wait_exit(child: &mut Running, within: Duration) -> (i32, Duration) {
    let from = Instant::now();
    let mut status = None;
    common::wait_until("pullstorm to exit", within, || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    (status.unwrap().code().unwrap_or(-1), from.elapsed())
}

fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/result.json")).expect("result.json written");
    serde_json::from_str(&text).unwrap()
}

/// An interrupted run exits with its own code: 128 + the signal, as shells report it.
fn interrupted_code(code: i32, signal: Signal) -> bool {
    code == 128 + signal.as_raw()
}

fn hanging_target_scenario(url: &str, duration: &str) -> String {
    format!(
        "[target]\nurl = \"{url}\"\nimage = \"hostile/app:v1\"\n\
         [fleet]\nnodes_per_cluster = 1\n[run]\nduration = \"{duration}\"\n"
    )
}

#[test]
fn the_deadline_ends_a_run_whose_manifest_never_comes() {
    let hostile = Hostile::start(Variant::ManifestHangs);
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_run(dir.path(), &hanging_target_scenario(&hostile.url(), "2s"));
    let (code, _) = wait_exit(&mut child, STOPS_WITHIN);
    assert_eq!(code, 1, "an incomplete run fails require_complete");
    assert!(hostile.state.manifest_requests.load(Ordering::SeqCst) >= 1);
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "deadline");
    assert_eq!(v["complete"], false);
    assert_eq!(v["pulls"]["started"], 0);
}

fn a_signal_ends_a_run_whose_manifest_never_comes(signal: Signal) {
    let hostile = Hostile::start(Variant::ManifestHangs);
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_run(dir.path(), &hanging_target_scenario(&hostile.url(), "10m"));
    common::wait_until("the manifest request", STOPS_WITHIN, || {
        hostile.state.manifest_requests.load(Ordering::SeqCst) >= 1
    });
    kill_process(Pid::from_child(&child.0), signal).unwrap();
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert!(interrupted_code(code, signal), "{signal:?}: exit {code}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["pulls"]["started"], 0);
}

#[test]
fn sigterm_ends_a_run_whose_manifest_never_comes() {
    a_signal_ends_a_run_whose_manifest_never_comes(Signal::TERM);
}

#[test]
fn sigint_ends_a_run_whose_manifest_never_comes() {
    a_signal_ends_a_run_whose_manifest_never_comes(Signal::INT);
}

/// A 64 GiB layer (the limit) hashes for a minute or more; Ctrl-C during the build
/// ends the run within seconds, with its result.
#[test]
fn ctrl_c_during_a_big_embedded_build_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_run(
        dir.path(),
        "[embedded]\nlayers = [\"64GiB\"]\n[run]\nduration = \"10m\"\n",
    );
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut building = false;
    common::wait_until("the build to start", STOPS_WITHIN, || {
        building |= rx
            .try_iter()
            .any(|l| l.contains("building the embedded image"));
        building
    });
    kill_process(Pid::from_child(&child.0), Signal::INT).unwrap();
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert!(interrupted_code(code, Signal::INT), "exit {code}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let v = result(dir.path());
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["target"]["embedded"], true);
    assert_eq!(v["pulls"]["started"], 0);
}

/// Over the embedded size limits: exit 2 at once, naming file, line, column and key.
#[test]
fn embedded_layers_over_the_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[embedded]\nlayers = [\"16777215TiB\"]\n",
            "x.toml:2:11: embedded.layers[0]: 16777215.00 TiB is more than the 64.00 GiB",
        ),
        (
            "[embedded]\nlayers = [\"1MiB\", \"65GiB\"]\n",
            "x.toml:2:19: embedded.layers[1]: 65.00 GiB is more than the 64.00 GiB",
        ),
        (
            "[embedded]\nlayers = [\"64GiB\", \"64GiB\", \"64GiB\", \"64GiB\", \"1GiB\"]\n",
            "x.toml:2:10: embedded.layers: the layers add up to 257.00 GiB, more than the 256.00 GiB",
        ),
    ];
    for (scenario, want) in cases {
        let file = dir.path().join("x.toml");
        std::fs::write(&file, scenario).unwrap();
        let out = common::bin()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{scenario}: {stderr}");
        assert!(
            stderr.contains(want),
            "{scenario}\n  got:  {stderr}\n  want: {want}"
        );
        // Exit 2 with the message means validation refused it before any hashing.
        assert!(!dir.path().join("out/result.json").exists());
    }
    let out = common::bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--layers",
            "16777215TiB",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--layers layer 0: "), "{stderr}");
}
