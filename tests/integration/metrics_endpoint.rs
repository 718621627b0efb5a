//! `pullstorm run --metrics-listen`: the real binary against its embedded
//! registry (with cut blobs, so errors and retries happen), scraped over HTTP
//! while it runs and during `--metrics-linger` after the result is written.
//! Every scrape must parse strictly as the Prometheus text format; counters
//! never go down; the final counters equal result.json's. A bad address is
//! exit 2 and a port in use exit 3, both before the run starts.

use crate::common::*;
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Four nodes a second apart, each pulling 2 x 256 KiB at 4 Mbit/s, every
/// blob's first response cut after 64 KiB: a few seconds of run with
/// `unexpected_eof` faults and retries.
const SCENARIO: &str = r#"
[embedded]
layers = ["256KiB", "256KiB"]
[embedded.faults]
cut_after = "64KiB"
cut_times = 1
[fleet]
clusters = 1
nodes_per_cluster = 4
client = "dockerd"
node_bandwidth = "4Mbit"
[arrival]
pattern = "waves"
wave_size = 1
wave_interval = "1s"
[run]
duration = "60s"
pulls_per_node = 1
"#;

/// A child killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One scrape, parsed: `name{labels}` -> value.
type Scrape = BTreeMap<String, f64>;

/// Parses the text exposition format (0.0.4) strictly: `# HELP name text`,
/// `# TYPE name counter|gauge|...` once per family and before its samples,
/// samples `name{label="value",...} value`; names and label names by the
/// format's grammar, label values with their escapes. Panics on anything else.
fn parse_exposition(text: &str) -> Scrape {
    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    assert!(text.ends_with('\n'), "the text must end with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut sampled = BTreeSet::new();
    let mut samples = Scrape::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, tail) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("comment without a name: {line}"));
            assert!(is_name(name, true), "bad metric name in {line}");
            match keyword {
                Some("HELP") => {
                    assert!(helps.insert(name.to_string()), "HELP twice: {line}");
                    assert!(tail.is_some_and(|t| !t.is_empty()), "empty HELP: {line}");
                }
                Some("TYPE") => {
                    let kind = tail.unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad TYPE: {line}"
                    );
                    assert!(!sampled.contains(name), "TYPE after samples: {line}");
                    assert!(
                        types.insert(name.into(), kind.into()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "bad line: {line:?}"
        );
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("sample without a value: {line}"),
        };
        assert!(is_name(name, true), "bad metric name in {line}");
        let mut labels = Vec::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                let start = chars.peek().map(|(i, _)| *i).expect("unclosed labels");
                if body[start..].starts_with('}') {
                    break start + 1;
                }
                let eq = body[start..].find('=').expect("label without =") + start;
                let label = &body[start..eq];
                assert!(is_name(label, false), "bad label name in {line}");
                assert!(body[eq + 1..].starts_with('"'), "unquoted label in {line}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => panic!("unterminated label value in {line}"),
                    }
                }
                labels.push(format!("{label}=\"{value}\""));
                match chars.next().map(|(_, c)| c) {
                    Some(',') => {}
                    Some('}') => break chars.peek().map_or(body.len(), |(i, _)| *i),
                    other => panic!("expected , or }} not {other:?} in {line}"),
                }
            };
            &body[end..]
        } else {
            rest
        };
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line}"));
        let mut fields = value.split(' ');
        let number = fields.next().unwrap();
        let v: f64 = match number {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            n => n.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line}"));
        }
        assert!(fields.next().is_none(), "trailing text: {line}");
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        sampled.insert(name.to_string());
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        assert!(samples.insert(key, v).is_none(), "series twice: {line}");
    }
    // pullstorm's own rules: prefix, counters end in _total, every family has HELP.
    for (name, kind) in &types {
        assert!(name.starts_with("pullstorm_"), "{name}");
        assert!(helps.contains(name), "no HELP for {name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
    samples
}

/// GET /metrics over a fresh HTTP/1.0 connection: status line, content type, body.
fn scrape(addr: SocketAddr) -> Option<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: pullstorm\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_string(), body.to_string()))
}

fn sum_with_prefix(s: &Scrape, prefix: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn scraped_figures_rise_during_the_run_and_end_equal_to_result_json() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("metrics.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.path().join("out");
    let mut child = Running(
        bin()
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .args(["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "5m"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pullstorm runs"),
    );
    // stderr read on a thread: the bound address is on its first line.
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let stderr = stderr.clone();
        let pipe = child.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = stderr.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let mut addr: Option<SocketAddr> = None;
    wait_until(
        "the metrics address on stderr",
        Duration::from_secs(30),
        || {
            let text = stderr.lock().unwrap().clone();
            addr = text
                .lines()
                .find_map(|l| l.strip_prefix("pullstorm: metrics at http://"))
                .and_then(|l| l.strip_suffix("/metrics"))
                .and_then(|a| a.parse().ok());
            addr.is_some()
        },
    );
    let addr = addr.unwrap();
    assert_ne!(addr.port(), 0, "the bound port, not the asked 0");

    // Scrape until the result is written (pullstorm_run_finished 1); every
    // scrape strictly parsed, and no counter ever lower than before.
    let mut scrapes: Vec<Scrape> = Vec::new();
    wait_until("a scrape after the result", Duration::from_secs(60), || {
        let Some((head, body)) = scrape(addr) else {
            return false;
        };
        assert!(head.starts_with("HTTP/1."), "{head}");
        assert!(head.contains(" 200 "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let s = parse_exposition(&body);
        if let Some(before) = scrapes.last() {
            for (series, v) in before {
                if series.contains("_total") {
                    assert!(
                        s.get(series).is_some_and(|now| now >= v),
                        "{series} went from {v} to {:?}",
                        s.get(series)
                    );
                }
            }
        }
        let finished = s["pullstorm_run_finished"] == 1.0;
        scrapes.push(s);
        finished
    });
    let during: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s["pullstorm_run_finished"] == 0.0)
        .collect();
    assert!(
        during
            .iter()
            .any(|s| s.contains_key("pullstorm_pulls_in_flight")
                && s["pullstorm_pulls_started_total"] > 0.0
                && s["pullstorm_pulls_completed_total"] < 4.0),
        "no scrape saw the run under way ({} scrapes before the end)",
        during.len()
    );
    // The result is written before the counters are marked final.
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let last = scrapes.last().unwrap();
    // And a second scrape in the linger serves the same final figures.
    let (_, again) = scrape(addr).expect("the endpoint lingers");
    let again = parse_exposition(&again);
    for (series, v) in last {
        if series.contains("_total") {
            assert_eq!(again.get(series), Some(v), "{series} changed after the end");
        }
    }

    let figure = |name: &str| last[name] as u64;
    assert_eq!(
        figure("pullstorm_pulls_started_total"),
        u(&result, "pulls.started")
    );
    assert_eq!(
        figure("pullstorm_pulls_completed_total"),
        u(&result, "pulls.completed")
    );
    assert_eq!(
        figure("pullstorm_pulls_failed_total"),
        u(&result, "pulls.failed")
    );
    assert_eq!(
        figure("pullstorm_layers_completed_total"),
        u(&result, "layers.completed")
    );
    assert_eq!(
        figure("pullstorm_layers_failed_total"),
        u(&result, "layers.failed")
    );
    assert_eq!(
        figure("pullstorm_downloaded_bytes_total"),
        u(&result, "bytes.downloaded")
    );
    assert_eq!(
        figure("pullstorm_wasted_bytes_total"),
        u(&result, "bytes.wasted")
    );
    assert_eq!(
        figure("pullstorm_retries_total"),
        u(&result, "retries.total")
    );
    let errors = result["errors"].as_object().unwrap();
    for (class, n) in errors {
        let series = format!("pullstorm_errors_total{{class=\"{class}\"}}");
        assert_eq!(last.get(&series).map(|v| *v as u64), n.as_u64(), "{series}");
    }
    assert_eq!(
        sum_with_prefix(last, "pullstorm_errors_total{") as u64,
        errors.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        "no class beyond result.json's"
    );
    // The run did what the test is about: pulls, and cut blobs retried (dockerd
    // resumes them with Range, so nothing is wasted).
    assert_eq!(
        u(&result, "pulls.completed"),
        4,
        "{}",
        stderr.lock().unwrap()
    );
    assert!(u(&result, "retries.total") > 0);
    assert!(u(&result, "errors.unexpected_eof") > 0);
    let cpu = last["pullstorm_harness_cpu_seconds_total"];
    let result_cpu = result["harness"]["cpu_seconds"]
        .as_f64()
        .or_else(|| result["environment"]["harness_cpu_seconds"].as_f64());
    if let Some(result_cpu) = result_cpu {
        assert!(
            (cpu - result_cpu).abs() < 0.001,
            "cpu {cpu} vs {result_cpu}"
        );
    }

    // SIGINT ends the linger (5 minutes asked) and the exit code stays the run's.
    kill_process(Pid::from_child(&child.0), Signal::INT).unwrap();
    let mut code = None;
    wait_until(
        "the linger to end on SIGINT",
        Duration::from_secs(30),
        || {
            code = child.0.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        },
    );
    assert_eq!(code.unwrap(), Some(0), "{}", stderr.lock().unwrap());
}

#[test]
fn a_bad_metrics_address_is_bad_input_and_a_port_in_use_cannot_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[embedded]\nlayers = [\"64KiB\"]\n[fleet]\nnodes_per_cluster = 1\n";
    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:99999", "localhost:9464"] {
        let run = run_scenario(dir.path(), "bad", scenario, &["--metrics-listen", bad]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("--metrics-listen"), "{}", run.stderr);
        assert!(!run.dir.join("result.json").exists(), "the run started");
    }
    let run = run_scenario(dir.path(), "bad", scenario, &["--metrics-linger", "soon"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--metrics-linger"), "{}", run.stderr);

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = run_scenario(dir.path(), "taken", scenario, &["--metrics-listen", &addr]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        run.stderr
    );
    assert!(!run.dir.join("result.json").exists(), "the run started");
}
