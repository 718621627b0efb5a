//! `pullstorm serve`, `pullstorm proxy` and `pullstorm run` stop cleanly on
//! SIGTERM and on SIGINT: the real binary is started, each wait is a bounded
//! poll for a condition (a line on its output, an exit status), never a sleep.
//! serve and proxy must exit with status 0 within a second of the signal; the
//! proxy still prints its final counters; the run still writes its result and
//! exits with the signal's own code (143 for SIGTERM, 130 for SIGINT).

use crate::common;

use rustix::process::{kill_process, Pid, Signal};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a server may take to stop after the signal.
const STOP_WITHIN: Duration = Duration::from_secs(1);

/// The lines of a child's stream, read on a thread so waits on them can be bounded.
fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line containing `needle`, within `within`.
fn wait_for_line(rx: &Receiver<String>, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {needle:?} within {within:?}: {e}"),
        }
    }
}

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

/// Starts `pullstorm <args>` and waits until it says it is listening and
/// accepts a connection; returns the child and its stdout lines.
fn start_server(args: &[&str]) -> (Running, Receiver<String>) {
    let mut child = common::bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pullstorm starts");
    let stdout = lines(child.stdout.take().unwrap());
    let child = Running(child);
    let line = wait_for_line(&stdout, "listening on ", Duration::from_secs(30));
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.trim_start_matches("http://").split([',', ' ']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("it accepts connections");
    (child, stdout)
}

/// Sends `signal` and polls for the exit until `within`; returns the status and how long it took.
fn signal_and_wait(
    Running(child): &mut Running,
    signal: Signal,
    within: Duration,
) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    kill_process(Pid::from_child(child), signal).unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        if sent.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {within:?} after {signal:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve_stops_on(signal: Signal) {
    let (mut child, _stdout) =
        start_server(&["serve", "--listen", "127.0.0.1:0", "--layers", "4KiB"]);
    let (status, took) = signal_and_wait(&mut child, signal, STOP_WITHIN);
    assert_eq!(status.code(), Some(0), "{signal:?}: {status}");
    assert!(took < STOP_WITHIN, "{signal:?}: stopped after {took:?}");
}

fn proxy_stops_on(signal: Signal) {
    // An upstream that completes connections (in its backlog) and sends nothing:
    // the test's connection is relayed, never refused or reset.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let (mut child, stdout) =
        start_server(&["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream]);
    let (status, took) = signal_and_wait(&mut child, signal, STOP_WITHIN);
    assert_eq!(status.code(), Some(0), "{signal:?}: {status}");
    assert!(took < STOP_WITHIN, "{signal:?}: stopped after {took:?}");
    // The reader thread ends at EOF, so this collects everything printed.
    let last = stdout.iter().last().expect("the final counters");
    let counters: serde_json::Value = serde_json::from_str(&last).expect("counters as JSON");
    assert!(counters["accepted"].is_u64(), "{last}");
}

#[test]
fn serve_stops_on_sigterm() {
    serve_stops_on(Signal::TERM);
}

#[test]
fn serve_stops_on_sigint() {
    serve_stops_on(Signal::INT);
}

#[test]
fn proxy_stops_on_sigterm_and_prints_its_counters() {
    proxy_stops_on(Signal::TERM);
}

#[test]
fn proxy_stops_on_sigint_and_prints_its_counters() {
    proxy_stops_on(Signal::INT);
}

/// SIGINT is covered by run_embedded's `ctrl_c_writes_a_partial_result`.
#[test]
fn run_stops_on_sigterm_and_writes_a_partial_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigterm.toml");
    std::fs::write(
        &file,
        "[embedded]\nlayers = [\"64MiB\"]\n[fleet]\nnode_bandwidth = \"4MB/s\"\n",
    )
    .unwrap();
    let child = common::bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let stderr = lines(child.0.stderr.take().unwrap());
    wait_for_line(&stderr, "nodes (", Duration::from_secs(30));
    let (status, _) = signal_and_wait(&mut child, Signal::TERM, Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(143),
        "SIGTERM's own code (128 + 15), not the 1 of a failed threshold"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/result.json")).unwrap())
            .unwrap();
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["complete"], false);
}
