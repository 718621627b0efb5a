//! A soak against the embedded registry that watches two processes the test
//! starts: one that grows at a known rate (2 MiB of touched memory and one
//! open fd every second, on an absolute schedule so the rate is exact) and one
//! that churns memory around a steady level. The leaking one must be flagged
//! with its slope within a band of the known rate; the steady one must not.
//! The soak itself must end as a soak does: `finished`, complete, its nodes
//! having pulled more than once.

use crate::common::run_scenario;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const MIB: f64 = 1024.0 * 1024.0;
/// What the leaking child adds each second.
const LEAK_BYTES_PER_S: f64 = 2.0 * MIB;
const LEAK_FDS_PER_S: f64 = 1.0;

/// A python child that says "ready" and then runs `body` (its workload) until killed.
struct Child2(Child);

impl Drop for Child2 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(body: &str) -> Child2 {
    let script = format!(
        "import os, time\n\
         print('ready', flush=True)\n\
         t0 = time.monotonic()\n\
         {body}"
    );
    let mut c = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test-deps.sh)");
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Child2(c)
}

/// Grows by 2 MiB of written (resident) bytes and one fd at each whole second
/// after its start; the pause until the next second is its schedule, not a wait.
fn leaking() -> Child2 {
    python(
        "kept, files, k = [], [], 0\n\
         while True:\n\
         \x20   k += 1\n\
         \x20   kept.append(b'\\x01' * (2 * 1024 * 1024))\n\
         \x20   files.append(open('/dev/null'))\n\
         \x20   time.sleep(max(0.0, t0 + k - time.monotonic()))\n",
    )
}

/// Allocates and frees 8 MiB over and over around one steady level.
fn steady() -> Child2 {
    python(
        "base = b'\\x02' * (20 * 1024 * 1024)\n\
         k = 0\n\
         while True:\n\
         \x20   k += 1\n\
         \x20   churn = [b'\\x03' * (1024 * 1024) for _ in range(k % 8)]\n\
         \x20   del churn\n\
         \x20   time.sleep(max(0.0, t0 + k * 0.25 - time.monotonic()))\n",
    )
}

fn target(doc: &Value, pid: u32) -> &Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["pid"].as_u64() == Some(pid as u64) && t["kind"] == "process")
        .unwrap_or_else(|| panic!("no target with pid {pid}: {}", doc["targets"]))
}

fn within(what: &str, got: f64, want: f64, share: f64) {
    assert!(
        (got / want - 1.0).abs() <= share,
        "{what}: {got} is not within {:.0} % of {want}",
        share * 100.0
    );
}

#[test]
fn a_soak_flags_the_process_that_grows_and_not_the_steady_one() {
    let grows = leaking();
    let holds = steady();
    let (grows_pid, holds_pid) = (grows.0.id(), holds.0.id());
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "[embedded]\nlayers = [\"256KiB\", \"64KiB\"]\n\
         [fleet]\nnodes_per_cluster = 6\n\
         [arrival]\npattern = \"soak\"\nwave_size = 2\nwave_interval = \"3s\"\n\
         [watch]\nprocesses = [\"{grows_pid}\", \"{holds_pid}\"]\n\
         [run]\nduration = \"45s\"\n"
    );
    let r = run_scenario(dir.path(), "soak", &scenario, &[]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let doc = r.result();
    // The duration is a soak's end: finished and complete; pulls cut then are not failures.
    assert_eq!(doc["stop_reason"], "finished");
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["pulls"]["failed"], 0);
    assert!(doc["pulls"]["planned"].is_null());
    // Six nodes in three waves 3 s apart, each again every 9 s: five rounds in 45 s.
    let completed = doc["pulls"]["completed"].as_u64().unwrap();
    assert!(
        completed >= 6 * 4,
        "the waves did not recur: {completed} pulls"
    );
    assert!(doc["fleet"]["arrival"]
        .as_str()
        .unwrap()
        .starts_with("soak: waves of 2 every 3s"));

    let leak = target(&doc, grows_pid);
    assert_eq!(leak["leak_suspected"], true, "{}", leak["trend"]);
    let rss = &leak["trend"]["rss"];
    assert_eq!(rss["leak_suspected"], true);
    let per_hour = |v: &Value| v.as_f64().unwrap();
    within(
        "rss slope",
        per_hour(&rss["slope_per_hour"]),
        LEAK_BYTES_PER_S * 3600.0,
        0.15,
    );
    assert!(per_hour(&rss["low_per_hour"]) > 0.0);
    assert!(per_hour(&rss["low_per_hour"]) <= per_hour(&rss["slope_per_hour"]));
    assert!(per_hour(&rss["high_per_hour"]) >= per_hour(&rss["slope_per_hour"]));
    // The warm-up (the first fifth) is left out of the fit.
    assert!(rss["from_s"].as_u64().unwrap() >= 8, "{rss}");
    assert!(rss["points"].as_u64().unwrap() >= 20, "{rss}");
    let fds = &leak["trend"]["fds"];
    assert_eq!(fds["leak_suspected"], true);
    within(
        "fd slope",
        per_hour(&fds["slope_per_hour"]),
        LEAK_FDS_PER_S * 3600.0,
        0.15,
    );

    let steady = target(&doc, holds_pid);
    assert_eq!(steady["leak_suspected"], false, "{}", steady["trend"]);
    for metric in ["rss", "fds", "threads"] {
        assert_eq!(steady["trend"][metric]["leak_suspected"], false, "{metric}");
    }
    // The console names the leak, the report shows the trend.
    assert!(r.stdout.contains("LEAK?"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .filter(|l| l.contains("LEAK?"))
            .all(|l| !l.contains(&format!("[{holds_pid}]"))),
        "{}",
        r.stdout
    );
    assert!(r.report().contains("LEAK? rss +"));
}
