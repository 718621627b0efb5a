//! The HTML report, end to end: a real run with injected faults whose
//! report must show the same figures as its result.json and fetch nothing;
//! an hour-long synthetic result that must stay under 2 MB; escaping of
//! hostile strings; and headless Chromium rendering it with the network cut
//! off (scripts/test-deps.sh installs chromium).

use crate::common::*;
use pullstorm::result::model::{ResultDoc, WatchedKind, WatchedPoint, WatchedSummary};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const MAX_REPORT: usize = 2 << 20;

/// Resets after 1 MiB of the first response of each blob, a fast backoff:
/// errors and retries, all pulls still complete.
const FAULTY: &str = r#"
description = "report test: cut after 1 MiB"
[embedded]
layers = ["4MiB", "2MiB"]
[embedded.faults]
cut_after = "1MiB"
cut_times = 1
cut_with = "rst"
[client]
backoff = "50ms"
[fleet]
clusters = 2
nodes_per_cluster = 3
[run]
duration = "60s"
pulls_per_node = 2
"#;

/// One faulty run shared by the tests of this file.
fn faulty_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-faulty");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let r = run_scenario(&dir, "faulty", FAULTY, &[]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r
    })
}

/// Every tagged figure: `data-k` -> (data-v, text) for each occurrence.
fn figures(html: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for chunk in html.split("<span data-k=\"").skip(1) {
        let (key, rest) = chunk
            .split_once("\" data-v=\"")
            .expect("data-v follows data-k");
        let (raw, rest) = rest.split_once("\">").unwrap();
        let text = rest.split('<').next().unwrap();
        out.entry(key.to_string())
            .or_default()
            .push((raw.to_string(), text.to_string()));
    }
    out
}

/// The raw value of a figure, the same in every place it appears.
fn raw(figs: &BTreeMap<String, Vec<(String, String)>>, key: &str) -> String {
    let all = figs
        .get(key)
        .unwrap_or_else(|| panic!("no figure {key} in the report"));
    assert!(all.iter().all(|(v, _)| v == &all[0].0), "{key}: {all:?}");
    all[0].0.clone()
}

fn assert_self_contained(html: &str, target_url: &str) {
    assert!(html.len() < MAX_REPORT, "{} bytes", html.len());
    for bad in [
        "<script src",
        "<link",
        "<img",
        "<iframe",
        " src=",
        "url(",
        "@import",
    ] {
        assert!(!html.contains(bad), "the report contains {bad:?}");
    }
    for scheme in ["http://", "https://"] {
        for (i, _) in html.match_indices(scheme) {
            assert!(
                html[i..].starts_with(target_url),
                "a reference other than the target: {}",
                &html[i..(i + 60).min(html.len())]
            );
        }
    }
}

#[test]
fn report_figures_match_the_result() {
    let r = faulty_run();
    let v = r.result();
    let html = r.report();
    let figs = figures(&html);

    for key in [
        "pulls.completed",
        "pulls.failed",
        "pulls.planned",
        "pulls.interrupted",
    ] {
        assert_eq!(raw(&figs, key), u(&v, key).to_string(), "{key}");
    }
    assert!(u(&v, "retries.total") > 0, "the fault must cause retries");
    assert_eq!(
        raw(&figs, "retries.total"),
        u(&v, "retries.total").to_string()
    );
    assert_eq!(
        raw(&figs, "bytes.downloaded"),
        u(&v, "bytes.downloaded").to_string()
    );
    assert_eq!(
        raw(&figs, "bytes.wasted"),
        u(&v, "bytes.wasted").to_string()
    );
    assert_eq!(
        raw(&figs, "fd.client_peak"),
        u(&v, "fd.client_peak").to_string()
    );
    assert_eq!(
        raw(&figs, "fd.client_limit"),
        u(&v, "fd.client_limit").to_string()
    );
    let mut total = 0;
    for (class, count) in v["errors"].as_object().unwrap() {
        let count = count.as_u64().unwrap();
        total += count;
        if count > 0 {
            assert_eq!(
                raw(&figs, &format!("errors.{class}")),
                count.to_string(),
                "{class}"
            );
        } else {
            assert!(
                !figs.contains_key(&format!("errors.{class}")),
                "{class} has no row"
            );
        }
    }
    assert!(total > 0, "the fault must cause errors");
    assert_eq!(raw(&figs, "errors.total"), total.to_string());
    for (class, n) in v["retries"]["by_class"].as_object().unwrap() {
        assert_eq!(
            raw(&figs, &format!("retries.by_class.{class}")),
            n.to_string()
        );
    }
    for metric in ["pull", "layer", "ttfb", "connect", "retry"] {
        for p in ["p50", "p99", "max"] {
            let want = v["latency"][metric][p].as_f64().unwrap();
            let key = format!("latency.{metric}.{p}");
            let got: f64 = raw(&figs, &key).parse().unwrap();
            assert_eq!(got, want, "{key}");
            let text = &figs[&key][0].1;
            assert_eq!(text, &pullstorm::human::millis(want), "{key}");
        }
    }
    // Charts: timeline (throughput, pulls, fds, errors, retries, ...) and percentiles.
    assert!(
        html.matches("<svg class=\"tl\"").count() >= 5,
        "timeline charts"
    );
    assert!(
        html.matches("<svg class=\"pc\"").count() >= 4,
        "percentile charts"
    );
    assert!(html.contains("connection_reset"));
    assert!(html.contains("id=\"tl-data\""));
    assert!(
        html.contains("[embedded.faults]"),
        "the scenario as run, as TOML"
    );
    assert_self_contained(&html, v["target"]["url"].as_str().unwrap());
    eprintln!("faulty run report: {} bytes", html.len());
}

#[test]
fn rebuilding_from_result_json_gives_the_same_report() {
    let r = faulty_run();
    let out = r.dir.join("again.html");
    let status = bin()
        .arg("report")
        .arg(r.dir.join("result.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(std::fs::read_to_string(out).unwrap(), r.report());
}

/// The faulty run stretched to an hour: 3600 timeline rows (errors spread
/// over it), watched targets with 3600-point series, 300 clusters.
fn hour_long(doc: &ResultDoc) -> ResultDoc {
    let mut d = doc.clone();
    let base = doc.timeline.clone();
    d.timeline = (1..=3600u64)
        .map(|t| {
            let mut row = base[(t as usize) % base.len()].clone();
            row.t = t;
            row.bytes = row.bytes.max(1) * (1 + t % 7);
            if t % 11 == 0 {
                row.errors_by_class.insert("http_503".into(), 1 + t % 3);
                row.errors_by_class.insert("read_timeout".into(), 1);
            }
            row
        })
        .collect();
    d.duration_ms = 3_600_000;
    let series = |f: &dyn Fn(u64) -> WatchedPoint| (0..=3600u64).map(f).collect::<Vec<_>>();
    let target = |name: &str, kind: WatchedKind, series: Vec<WatchedPoint>| WatchedSummary {
        name: name.into(),
        kind,
        pid: Some(4242),
        url: None,
        command: None,
        listen_ports: Vec::new(),
        fd_peak: Some(1000),
        fd_limit: Some(1024),
        rss_peak_bytes: Some(1 << 30),
        threads_peak: Some(40),
        cpu_seconds: Some(1234.5),
        cpu_peak_pct: Some(180.0),
        exited_at_s: None,
        zombie_at_s: None,
        samples: 3601,
        failures: 0,
        last_error: None,
        peaks: [("tcp_established".to_string(), 900.0)].into(),
        step_s: 1,
        series,
        trend: None,
        leak_suspected: None,
    };
    let mut harness = target(
        "harness",
        WatchedKind::Harness,
        series(&|t| WatchedPoint {
            t,
            fds: Some(100 + t % 50),
            rss: Some((100 + t % 9) << 20),
            threads: Some(3),
            cpu_pct: Some((t % 100) as f64),
            values: [
                ("tcp_established".to_string(), (t % 900) as f64),
                ("tcp_time_wait".to_string(), (t % 300) as f64),
                ("tcp_close_wait".to_string(), 0.0),
                ("tcp_syn_sent".to_string(), (t % 5) as f64),
            ]
            .into(),
        }),
    );
    harness.fd_limit = Some(20000);
    let mut workers: Vec<WatchedSummary> = (0..4)
        .map(|i| {
            target(
                &format!("nginx[{}]", 100 + i),
                WatchedKind::Process,
                series(&|t| WatchedPoint {
                    t,
                    fds: Some(200 + (t * (i + 1)) % 800),
                    rss: Some(50 << 20),
                    threads: Some(1),
                    cpu_pct: Some(((t + i) % 60) as f64),
                    values: BTreeMap::new(),
                }),
            )
        })
        .collect();
    workers[2].exited_at_s = Some(1800.5);
    workers[2].series.truncate(1800);
    d.watched = std::iter::once(harness).chain(workers).collect();
    d.clusters = (0..300)
        .map(|c| {
            let mut s = doc.clusters[0].clone();
            s.cluster = c;
            s
        })
        .collect();
    d
}

#[test]
fn an_hour_long_run_renders_under_2_mb() {
    let r = faulty_run();
    let doc: ResultDoc =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("result.json")).unwrap()).unwrap();
    let big = hour_long(&doc);
    let json = r.dir.join("hour.json");
    std::fs::write(&json, serde_json::to_vec(&big).unwrap()).unwrap();
    let out = r.dir.join("hour.html");
    let status = bin()
        .arg("report")
        .arg(&json)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    eprintln!(
        "hour-long report: {} bytes from a {} byte result",
        html.len(),
        std::fs::metadata(&json).unwrap().len()
    );
    assert_self_contained(&html, &big.target.url);
    // Every chart is decimated: no path has more than ~600 points per line.
    for path in html.split(" d=\"").skip(1) {
        let d = path.split('"').next().unwrap();
        assert!(
            d.matches('L').count() <= 1300,
            "a path with {} points",
            d.matches('L').count()
        );
    }
    assert!(html.contains("nginx[102] exited"), "exit marker");
    assert!(html.contains("The 100 worst of 300 clusters"));
    assert!(html.contains("Harness sockets by TCP state"));
    assert!(html.contains("http_503"));
}

#[test]
fn hostile_strings_are_escaped() {
    let r = faulty_run();
    let mut doc: ResultDoc =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("result.json")).unwrap()).unwrap();
    let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    doc.scenario.name = evil.into();
    doc.target.server = Some(evil.into());
    doc.target.url = "http://user:secret@127.0.0.1:1/".into();
    doc.error_details[0].sample = evil.into();
    doc.timeline[0]
        .errors_by_class
        .insert(format!("http_{evil}"), 1);
    doc.watched.push(WatchedSummary {
        name: evil.into(),
        kind: WatchedKind::Prometheus,
        pid: None,
        url: Some(evil.into()),
        command: Some(evil.into()),
        listen_ports: Vec::new(),
        fd_peak: Some(1),
        fd_limit: None,
        rss_peak_bytes: None,
        threads_peak: None,
        cpu_seconds: None,
        cpu_peak_pct: None,
        exited_at_s: Some(0.5),
        zombie_at_s: None,
        samples: 1,
        failures: 1,
        last_error: Some(evil.into()),
        peaks: [(evil.to_string(), 1.0)].into(),
        step_s: 1,
        series: vec![WatchedPoint {
            t: 0,
            fds: Some(1),
            values: [(evil.to_string(), 1.0)].into(),
            ..Default::default()
        }],
        trend: None,
        leak_suspected: None,
    });
    let html = pullstorm::report::render(&doc);
    assert!(!html.contains("<script>alert"), "unescaped script");
    assert!(!html.contains("<img"), "unescaped tag");
    assert!(!html.contains("secret"), "credentials in the page");
    assert_eq!(
        html.matches("<script").count(),
        2,
        "the data block and the hover script only"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

/// A local web server that records every path requested.
fn serve_dir(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (dir, seen) = (dir.to_path_buf(), log.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut line = String::new();
            // Chromium may open a speculative connection and close it unused: not a fetch.
            if BufReader::new(&s).read_line(&mut line).is_err() || line.trim().is_empty() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push(path.clone());
            let file = dir.join(path.trim_start_matches('/'));
            let resp = match std::fs::read(&file) {
                Ok(body) if path == "/report.html" => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = s.write_all(&resp);
        }
    });
    (port, log)
}

/// Runs chromium headless with the network cut off (except loopback), killing it after 90 s.
fn chromium(args: &[String], profile: &Path) -> (String, String) {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "chromium is missing: run scripts/test-deps.sh (installs Debian's chromium)"
    );
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out_t.join().unwrap(), err_t.join().unwrap())
}

/// Share of pixels that are not (near) white, and how many distinct colours.
fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let (mut inked, mut colours) = (0usize, std::collections::HashSet::new());
    let n = pixels.len() / px;
    for p in pixels.chunks(px) {
        if p[..3].iter().any(|c| *c < 235) {
            inked += 1;
        }
        colours.insert((p[0] >> 3, p[1] >> 3, p[2] >> 3));
    }
    (inked as f64 / n as f64, colours.len())
}

#[test]
fn chromium_renders_it_offline() {
    let r = faulty_run();
    let site = r.dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::copy(r.dir.join("report.html"), site.join("report.html")).unwrap();
    let (port, requests) = serve_dir(&site);
    let url = format!("http://127.0.0.1:{port}/report.html");

    let shot = r.dir.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, log) = chromium(
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".into(),
            url.clone(),
        ],
        &r.dir.join("profile-shot"),
    );
    let size = std::fs::metadata(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}); chromium said:\n{log}"))
        .len();
    assert!(size > 30_000, "a {size} byte screenshot is blank");
    let (inked, colours) = ink(&shot);
    assert!(
        inked > 0.03,
        "only {:.1}% of the pixels have ink",
        inked * 100.0
    );
    assert!(colours > 20, "only {colours} colours");

    let (dom, log) = chromium(&["--dump-dom".into(), url], &r.dir.join("profile-dom"));
    assert!(
        dom.matches("<svg class=\"tl\"").count() >= 5,
        "{}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.matches("<svg class=\"pc\"").count() >= 4);
    assert!(dom.contains("id=\"tip\""));
    assert!(!log.contains("Uncaught"), "a script error:\n{log}");

    let seen = requests.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p == "/report.html"), "{seen:?}");
    // Chromium asks for /favicon.ico on its own; the page itself asks for nothing.
    let others: Vec<&String> = seen
        .iter()
        .filter(|p| *p != "/report.html" && *p != "/favicon.ico")
        .collect();
    assert!(others.is_empty(), "the page fetched {others:?}");
    // Nothing left the machine either: the proxy and resolver would have logged failures.
    assert!(!log.contains("ERR_PROXY_CONNECTION_FAILED"), "{log}");
}
