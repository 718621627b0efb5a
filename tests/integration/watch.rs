//! The samplers against live things: a child process watched by pid and by
//! name (fds, nofile limit, RSS, exit, zombie), the harness's own sockets,
//! and small HTTP servers speaking Prometheus text and nginx stub_status.
//! (The parsers' edge cases are unit tests beside them in src/metrics/watch/.)

use crate::common::{wait_until_async, POLL};
use pullstorm::metrics::watch::{
    self, procfs, scrape, tcp, WatchSpec, WatchedKind, WatchedSummary, Watcher,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPEN_FILES: usize = 40;
const NOFILE_SOFT: u64 = 777;

/// A python child that names itself `name` (prctl PR_SET_NAME), lowers its
/// soft nofile limit to 777, opens 40 files, says "ready" and sleeps: the
/// watched process, alive until the test kills it (the sleep is its workload,
/// not a wait).
fn child(name: &str) -> Child {
    let script = format!(
        "import ctypes, resource, sys, time\n\
         soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE_SOFT}, hard))\n\
         files = [open('/dev/null') for _ in range({OPEN_FILES})]\n\
         ctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0)\n\
         print('ready', flush=True)\n\
         time.sleep(120)\n"
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
    c
}

fn by_name<'a>(s: &'a [WatchedSummary], name: &str) -> &'a WatchedSummary {
    s.iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name} in {s:#?}"))
}

#[tokio::test]
async fn child_by_pid_and_by_name_then_its_exit() {
    let name = format!("psw{}", std::process::id() % 100_000_000);
    let mut c = child(&name);
    let pid = c.id();
    // One watcher by pid, one by name (a pid watched both ways is one target).
    let mut by_pid = Watcher::new(
        WatchSpec {
            pids: vec![("child".into(), pid)],
            ..Default::default()
        },
        Instant::now(),
    );
    let mut by_comm = Watcher::new(
        WatchSpec {
            names: vec![name.clone(), "no-such-process-xyz".into()],
            ..Default::default()
        },
        Instant::now(),
    );
    assert_eq!(by_pid.sample().await.len(), 1);
    assert_eq!(by_comm.sample().await.len(), 1);
    let named = format!("{name}[{pid}]");
    let s: Vec<WatchedSummary> = by_pid
        .summaries()
        .into_iter()
        .chain(by_comm.summaries())
        .collect();
    for t in [by_name(&s, "child"), by_name(&s, &named)] {
        assert_eq!(t.kind, WatchedKind::Process);
        assert_eq!(t.pid, Some(pid));
        assert!(t.fd_peak.unwrap() >= OPEN_FILES as u64, "{t:?}");
        assert_eq!(t.fd_limit, Some(NOFILE_SOFT), "{t:?}");
        assert!(t.rss_peak_bytes.unwrap() > 1 << 20, "{t:?}");
        assert!(t.threads_peak.unwrap() >= 1);
        assert_eq!(t.exited_at_s, None);
        assert_eq!(t.series.len(), 1);
    }
    let missing = by_name(&s, "no-such-process-xyz");
    assert!(missing
        .last_error
        .as_deref()
        .unwrap()
        .contains("no process named"));

    c.kill().unwrap();
    c.wait().unwrap();
    by_pid.sample().await;
    by_comm.sample().await;
    let s: Vec<WatchedSummary> = by_pid
        .summaries()
        .into_iter()
        .chain(by_comm.summaries())
        .collect();
    for t in [by_name(&s, "child"), by_name(&s, &named)] {
        let at = t.exited_at_s.expect("exit recorded");
        assert!((0.0..10.0).contains(&at), "{at}");
        assert_eq!(t.series.len(), 1, "no point after the exit");
    }
    // A later sample keeps the first exit time and adds no target.
    by_comm.sample().await;
    let again = by_comm.summaries();
    assert_eq!(again.len(), 2);
    assert_eq!(
        by_name(&again, &named).exited_at_s,
        by_name(&s, &named).exited_at_s
    );
}

#[tokio::test]
async fn an_unreaped_child_is_a_zombie_first() {
    let mut c = child("pswzombie");
    let mut w = Watcher::new(
        WatchSpec {
            pids: vec![("z".into(), c.id())],
            ..Default::default()
        },
        Instant::now(),
    );
    w.sample().await;
    // Killed but not waited for: the kernel keeps it as a zombie.
    c.kill().unwrap();
    let pid = c.id();
    wait_until_async("the child to turn zombie", Duration::from_secs(5), || {
        procfs::stat(pid).map(|s| s.state).ok() == Some('Z')
    })
    .await;
    w.sample().await;
    let t = w.summaries().remove(0);
    assert!(t.zombie_at_s.is_some(), "{t:?}");
    assert_eq!(t.exited_at_s, None);
    c.wait().unwrap();
    w.sample().await;
    let t = w.summaries().remove(0);
    assert!(t.exited_at_s.unwrap() >= t.zombie_at_s.unwrap());
}

/// Samples until the harness's socket counts by state (`tcp_<state>` of its point) satisfy
/// `ok`, for at most 10 s; returns them. (The watcher may reuse its last socket scan for a
/// few samples when scans are slow, hence more than one sample.)
async fn harness_sockets_until(
    w: &mut Watcher,
    what: &str,
    ok: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = w.sample().await;
        let harness = samples
            .iter()
            .find(|s| s.name == "harness")
            .expect("harness");
        let values = harness
            .point
            .as_ref()
            .expect("a harness point")
            .values
            .clone();
        if ok(&values) {
            return values;
        }
        assert!(Instant::now() < deadline, "{what}: {values:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Sockets of the harness in `state` (0 when not listed).
fn in_state(values: &BTreeMap<String, f64>, state: &str) -> f64 {
    values.get(&format!("tcp_{state}")).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn harness_sockets_by_state_rss_and_cpu() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let mut w = Watcher::new(
        WatchSpec {
            harness: true,
            target_ports: vec![port],
            ..Default::default()
        },
        Instant::now(),
    );
    w.sample().await;
    // Burn a little CPU so the second sample has something to show.
    let spin = Instant::now();
    let mut x = 0u64;
    while spin.elapsed() < Duration::from_millis(300) {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    std::hint::black_box(x);
    w.sample().await;
    let h = by_name(&w.summaries(), "harness").clone();
    assert_eq!(h.kind, WatchedKind::Harness);
    assert_eq!(h.pid, Some(std::process::id()));
    assert!(h.fd_peak.unwrap() >= 3);
    assert!(h.fd_limit.unwrap() >= h.fd_peak.unwrap());
    assert!(h.rss_peak_bytes.unwrap() > 0);
    assert!(h.cpu_seconds.unwrap() > 0.0, "{h:?}");
    let last = h.series.last().unwrap();
    assert!(last.cpu_pct.unwrap() > 0.0, "{last:?}");
    // Both ends of the connection are ours, plus the listener.
    assert!(last.values["tcp_established"] >= 2.0, "{last:?}");
    assert!(last.values["tcp_listen"] >= 1.0, "{last:?}");
    assert!(h.peaks["tcp_established"] >= 2.0);
    // The states every point lists, zero or not, so that chart lines do not come and go.
    for state in tcp::ALWAYS {
        assert!(
            last.values.contains_key(&format!("tcp_{state}")),
            "{last:?}"
        );
    }

    // The client closes its side: it waits in FIN_WAIT2, the server holds the FIN unread
    // in CLOSE_WAIT; both sockets are still ours.
    client.shutdown().await.unwrap();
    harness_sockets_until(&mut w, "fin_wait2 and close_wait", |v| {
        in_state(v, "fin_wait2") >= 1.0 && in_state(v, "close_wait") >= 1.0
    })
    .await;
    // The server closes too: the client's end, which closed first, goes to TIME_WAIT. No
    // process owns a TIME_WAIT socket; it is counted because its port is the target's.
    drop(server);
    harness_sockets_until(&mut w, "time_wait on the target's port", |v| {
        in_state(v, "time_wait") >= 1.0
    })
    .await;
    drop(client);
    let h = by_name(&w.summaries(), "harness").clone();
    for state in ["fin_wait2", "close_wait", "time_wait"] {
        assert!(
            h.peaks[&format!("tcp_{state}")] >= 1.0,
            "{state}: {:?}",
            h.peaks
        );
    }
}

/// Serves `body` once per connection with chunked encoding (as Go's promhttp does).
async fn serve(body: &'static str, status: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let (a, b) = body.split_at(body.len() / 2);
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                    a.len(),
                    b.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

const METRICS: &str = "# HELP process_open_fds Number of open file descriptors.\n\
# TYPE process_open_fds gauge\n\
process_open_fds 517\n\
process_max_fds 1024\n\
process_resident_memory_bytes 5.0331648e+07\n\
process_cpu_seconds_total 12.5\n\
go_goroutines 321\n\
go_threads 9\n\
registry_http_in_flight_requests{handler=\"blob\"} 40\n\
registry_http_in_flight_requests{handler=\"manifest\"} 2\n";

const STUB: &str = "Active connections: 291 \nserver accepts handled requests\n 100 97 300 \nReading: 6 Writing: 179 Waiting: 106 \n";

#[tokio::test]
async fn prometheus_and_stub_status_endpoints_and_failures() {
    let prom = serve(METRICS, "200 OK").await;
    let stub = serve(STUB, "200 OK").await;
    let not_found = serve("nope", "404 Not Found").await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut w = Watcher::new(
        WatchSpec {
            metrics_urls: vec![
                format!("http://127.0.0.1:{prom}/metrics"),
                format!("http://127.0.0.1:{closed}/metrics"),
                format!("http://127.0.0.1:{not_found}/metrics"),
                "not a url".into(),
            ],
            stub_status_urls: vec![format!("http://127.0.0.1:{stub}/nginx_status")],
            metric_names: vec!["registry_http_in_flight_requests".into()],
            ..Default::default()
        },
        Instant::now(),
    );
    w.sample().await;
    w.sample().await;
    let s = w.summaries();
    let p = by_name(&s, &format!("127.0.0.1:{prom}/metrics"));
    assert_eq!(p.kind, WatchedKind::Prometheus);
    assert_eq!(p.fd_peak, Some(517));
    assert_eq!(p.fd_limit, Some(1024));
    assert_eq!(p.rss_peak_bytes, Some(50_331_648));
    assert_eq!(p.threads_peak, Some(9));
    assert_eq!(p.peaks["go_goroutines"], 321.0);
    assert_eq!(p.peaks["registry_http_in_flight_requests"], 42.0);
    assert_eq!((p.samples, p.failures), (2, 0));
    assert_eq!(p.series.len(), 2);
    assert_eq!(p.series[1].cpu_pct, Some(0.0));

    let n = by_name(&s, &format!("127.0.0.1:{stub}/nginx_status"));
    assert_eq!(n.kind, WatchedKind::StubStatus);
    assert_eq!(n.peaks["active"], 291.0);
    assert_eq!(n.peaks["writing"], 179.0);
    assert_eq!(n.peaks["dropped"], 3.0);

    for (name, why) in [
        (format!("127.0.0.1:{closed}/metrics"), "connect"),
        (format!("127.0.0.1:{not_found}/metrics"), "HTTP 404"),
        ("not a url".to_string(), "bad URL"),
    ] {
        let t = by_name(&s, &name);
        assert_eq!((t.samples, t.failures), (2, 2), "{t:?}");
        assert!(t.last_error.as_deref().unwrap().contains(why), "{t:?}");
        assert!(t.series.is_empty());
    }
}

#[tokio::test]
async fn a_silent_endpoint_times_out_in_a_second() {
    // Accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    let began = Instant::now();
    let r = scrape::get(&url, watch::SCRAPE_TIMEOUT).await;
    assert!(r.unwrap_err().contains("no answer"));
    assert!(began.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn spawned_watcher_samples_each_second_and_finishes() {
    let mut w = Watcher::new(
        WatchSpec {
            harness: true,
            ..Default::default()
        },
        Instant::now(),
    );
    w.sample().await;
    // Each sample replaces the readings it shares with the progress display: emptied here,
    // they come back with the next sample. Three samples: at spawn, t = 1 s and t = 2 s.
    let shared = w.latest();
    shared.lock().unwrap().clear();
    let handle = watch::spawn(w);
    for (n, when) in ["at spawn", "at t = 1 s", "at t = 2 s"].iter().enumerate() {
        let last = n == 2;
        let what = format!("the spawned watcher's sample {when}");
        wait_until_async(&what, Duration::from_secs(5), || {
            let mut readings = shared.lock().unwrap();
            let sampled = !readings.is_empty();
            if sampled && !last {
                readings.clear();
            }
            sampled
        })
        .await;
    }
    let latest = handle.latest();
    assert_eq!(latest.lock().unwrap()[0].name, "harness");
    assert!(latest.lock().unwrap()[0].fds.unwrap() > 0);
    let s = handle.finish().await;
    let h = by_name(&s, "harness");
    // t = 0 twice (before and at spawn), 1, 2, and the last sample.
    assert!(h.series.len() >= 4, "{:?}", h.series);
    assert!(h.series.iter().any(|p| p.t >= 2));
    let json = serde_json::to_string(&s).unwrap();
    let back: Vec<WatchedSummary> = serde_json::from_str(&json).unwrap();
    assert_eq!(back[0].series, h.series);
}

#[test]
fn live_proc_files_parse() {
    let me = std::process::id();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    assert_eq!(procfs::parse_nofile_limit(&limits), soft);
    let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    assert!(procfs::parse_stat(&stat).unwrap().threads >= 1);
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    // Every line but the header parses.
    let lines = table.lines().skip(1).count();
    assert_eq!(table.lines().filter_map(tcp::parse_line).count(), lines);
}

/// A python child that names itself `name`, optionally listens on a free
/// loopback port (`--listen` among `args`), prints that port (0 when it does
/// not listen) and sleeps until killed (the sleep is its workload, not a wait).
/// Killed when dropped, so a failing test leaves no process behind.
struct Named(Child, u16);

impl Named {
    fn start(script: &std::path::Path, name: &str, args: &[&str]) -> Named {
        let mut c = Command::new("python3")
            .arg(script)
            .args(args)
            .arg(name)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/test-deps.sh)");
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the child prints its port");
        Named(c, port)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const NAMED_CHILD: &str = "import ctypes, socket, sys, time\n\
    ctypes.CDLL(None).prctl(15, sys.argv[-1].encode(), 0, 0, 0)\n\
    port = 0\n\
    if '--listen' in sys.argv:\n\
    \x20   s = socket.socket()\n\
    \x20   s.bind(('127.0.0.1', 0))\n\
    \x20   s.listen()\n\
    \x20   port = s.getsockname()[1]\n\
    print(port, flush=True)\n\
    time.sleep(120)\n";

/// `--watch NAME` matching two processes of one name: each is told apart by
/// its listening port and its command line (its password masked), in
/// result.json, the report's cards and its watched table.
#[test]
fn processes_of_one_name_are_told_apart_by_port_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("c.py");
    std::fs::write(&script, NAMED_CHILD).unwrap();
    let name = format!("psl{}", std::process::id() % 100_000_000);
    let a = Named::start(
        &script,
        &name,
        &["--listen", "--config", "a.yml", "--password", "hunter2"],
    );
    let b = Named::start(&script, &name, &["--config", "b.yml"]);
    assert!(a.1 > 0 && b.1 == 0);

    let scenario =
        "[embedded]\nlayers = [\"64KiB\"]\n[fleet]\nclusters = 1\nnodes_per_cluster = 1\n";
    let r = crate::common::run_scenario(dir.path(), "tiny", scenario, &["--watch", &name]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    let target = |pid: u32| {
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["pid"] == pid)
            .unwrap_or_else(|| panic!("no target with pid {pid}: {}", v["targets"]))
            .clone()
    };
    let (ta, tb) = (target(a.0.id()), target(b.0.id()));
    let command = |t: &serde_json::Value| t["command"].as_str().expect("a command").to_string();
    assert_eq!(
        command(&ta),
        format!(
            "python3 {} --listen --config a.yml --password *** {name}",
            script.display()
        )
    );
    assert!(
        command(&tb).ends_with(&format!("--config b.yml {name}")),
        "{tb}"
    );
    assert_eq!(ta["listen_ports"], serde_json::json!([a.1]));
    assert!(tb.get("listen_ports").is_none(), "{tb}");

    let html = r.report();
    assert!(!html.contains("hunter2") && !r.stdout.contains("hunter2"));
    let (pa, pb) = (a.0.id(), b.0.id());
    // The cards: one by its port, the other by its command line.
    assert!(
        html.contains(&format!("{name}[{pa}] :{} fds peak / limit", a.1)),
        "no card labelled by port"
    );
    assert!(
        html.contains(&format!("{name}[{pb}] (python3 ")),
        "no card labelled by command"
    );
    // The watched table: pid, port and the whole command line.
    assert!(
        html.contains(&format!(
            "pid {pa}, listening on :{}: python3 {}",
            a.1,
            script.display()
        )),
        "watched table lacks port and command"
    );
}
