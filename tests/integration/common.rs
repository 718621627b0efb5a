//! Helpers shared by the integration tests: run the real `pullstorm` binary on a scenario
//! written to a temp folder and read back its result; wait, bounded, for a condition
//! instead of sleeping; read what a process has done from `/proc`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Run {
    pub fn result(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("result.json"))
            .unwrap_or_else(|e| panic!("no result.json ({e}); stderr:\n{}", self.stderr));
        serde_json::from_str(&text).expect("result.json is JSON")
    }

    pub fn report(&self) -> String {
        std::fs::read_to_string(self.dir.join("report.html")).expect("report.html written")
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pullstorm"))
}

fn finish(out: Output, dir: PathBuf) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// Writes `scenario` as `<dir>/<name>.toml` and runs it with `--out <dir>/out` and extra args.
pub fn run_scenario(dir: &Path, name: &str, scenario: &str, extra: &[&str]) -> Run {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let out_dir = dir.join("out");
    let out = bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .arg("--quiet")
        .args(extra)
        .output()
        .expect("pullstorm runs");
    finish(out, out_dir)
}

pub fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not an unsigned number: {cur}"))
}

/// Every `errors` counter except the listed ones must be zero.
pub fn only_errors(v: &Value, allowed: &[&str]) {
    for (class, count) in v["errors"].as_object().expect("errors object") {
        if !allowed.contains(&class.as_str()) {
            assert_eq!(
                count.as_u64(),
                Some(0),
                "unexpected errors.{class} = {count}: {}",
                v["error_details"]
            );
        }
    }
}

/// How often [`wait_until`] looks at its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Waits until `cond` holds, looking every [`POLL`], for at most `limit`; panics naming
/// `what` when time is up. Tests wait with this, never with a fixed sleep: a sleep is either
/// too short on a loaded machine or longer than needed everywhere else.
pub fn wait_until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(limit, cond),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Looks at `cond` every [`POLL`] until it holds (true) or `limit` has passed (false): for
/// a wait whose end is not a failure (a client watched for a window, a best-effort drain).
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for async tests: the wait yields to the runtime instead of blocking it.
pub async fn wait_until_async(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Bytes process `pid` has handed to `write(2)` and its kin so far (`wchar` of
/// `/proc/<pid>/io`): for a server, what it has sent on its sockets, give or take its logs.
/// 0 when the process is gone.
pub fn bytes_written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How many sockets process `pid` holds open (its fds that are `socket:[...]`).
pub fn open_sockets(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The threshold check `name` of a result (`thresholds.checks[]`); panics naming it when absent.
pub fn threshold_check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["thresholds"]["checks"]
        .as_array()
        .expect("checks[]")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {}", v["thresholds"]))
}
