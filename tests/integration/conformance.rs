//! The conformance matrix: the machine's real clients (dockerd via `docker pull`, a private
//! containerd 1.6 via `ctr content fetch`, the resolver and fetcher its CRI plugin uses)
//! and pullstorm's matching profiles each pull a one-layer image from a fault-injecting
//! embedded registry of their own, with the same fault; the registry logs every request,
//! and the two sequences must agree: the same requests (method, kind of path, Range from 0
//! / mid-blob / none, status), in each stream (ping, token, manifest, config, layer), with
//! the gaps between them within 1 s or 20 %.
//!
//! The matrix is written into `docs/clients.md` (between the `conformance` markers) so the
//! docs show what the real clients do and cannot drift from it; the test fails listing
//! every case that does not match.
//!
//! Streams, not one sequence: a client fetches the config and the layer at once, so their
//! order within a few ms is chance. pullstorm's preflight (once per run, before any node:
//! `GET /v2/` twice, the manifest HEAD and GET) is left out of the comparison, and the
//! simulated registry spares it (`status_after`), so that a fault on the manifest or the
//! ping meets the node as it meets the real client.
//!
//! Scheduling: dockerd has 3 download slots for the whole daemon and holds a slot through
//! its retry waits, so its cases run on 3 workers (one layer each: a slot never queues),
//! longest first; its manifest cases download nothing and run beside them. containerd
//! cases, each with its own digests, share one private containerd.

use crate::common;
use crate::instances::*;
use pullstorm::registry::{EmbeddedConfig, LoggedRequest, RequestKind, RequestLog};
use pullstorm::scenario::units::ByteSize;
use pullstorm::scenario::{CutWith, FaultTarget, Faults};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pullstorm profile compared with the machine's dockerd (20.10). Until `fleet.client`
/// accepts versioned names this is the unversioned profile; then `dockerd-20.10`.
const DOCKERD_PROFILE: &str = "dockerd-20.10";
/// The profile compared with containerd 1.6 (then `containerd-1.6`).
const CONTAINERD_PROFILE: &str = "containerd-1.6";

/// The image: one layer, large enough that a cut or a stall lands mid-layer.
const LAYER: u64 = 4 << 20;
/// Where a cut or a stall happens.
const CUT_AT: u64 = 1 << 20;
/// How long a client may take before it is stopped and what it did so far is compared:
/// dockerd's retries of one layer take 75 s.
const BOUND: Duration = Duration::from_secs(100);
/// How long a stalled body is watched.
const STALL_WINDOW: Duration = Duration::from_secs(15);

const STATUSES: [u16; 7] = [500, 502, 503, 429, 408, 404, 401];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Dockerd,
    Containerd,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Dockerd => "dockerd",
            Client::Containerd => "containerd",
        }
    }
    fn profile(self) -> &'static str {
        match self {
            Client::Dockerd => DOCKERD_PROFILE,
            Client::Containerd => CONTAINERD_PROFILE,
        }
    }
}

#[derive(Clone)]
struct Case {
    name: String,
    /// What the docs show in the fault column.
    fault: String,
    faults: Faults,
    /// How long the client is watched at most.
    window: Duration,
}

fn status_case(on: FaultTarget, status: u16) -> Case {
    let what = match on {
        FaultTarget::Manifest => "manifest",
        FaultTarget::Config => "config",
        _ => "layer",
    };
    Case {
        name: format!("{what}-{status}"),
        fault: format!("{status} on the {what}, for ever"),
        faults: Faults {
            status: Some(status),
            status_on: Some(on),
            ..Faults::default()
        },
        window: BOUND,
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for on in [
        FaultTarget::Manifest,
        FaultTarget::Config,
        FaultTarget::Layer,
    ] {
        for status in STATUSES {
            out.push(status_case(on, status));
        }
    }
    let cut = |with| Faults {
        cut_after: Some(ByteSize(CUT_AT)),
        cut_times: Some(1),
        cut_with: with,
        ..Faults::default()
    };
    out.push(Case {
        name: "layer-reset".into(),
        fault: "layer reset (RST) after 1 MiB, once".into(),
        faults: cut(CutWith::Rst),
        window: BOUND,
    });
    out.push(Case {
        name: "layer-close".into(),
        fault: "layer closed (FIN) after 1 MiB, once".into(),
        faults: cut(CutWith::Fin),
        window: BOUND,
    });
    out.push(Case {
        name: "range-200".into(),
        fault: "layer closed after 1 MiB once, then Range answered 200 whole".into(),
        faults: Faults {
            ignore_range: true,
            ..cut(CutWith::Fin)
        },
        window: BOUND,
    });
    // dockerd waits on a stalled body for ever, even after `docker pull` is stopped: at the
    // window's end the registry closes the connection, and the 404 its retry meets ends the
    // pull in the daemon (after the window: not compared).
    out.push(Case {
        name: "layer-stall".into(),
        fault: format!(
            "layer stalls after 1 MiB (watched {} s; later layer GETs 404)",
            STALL_WINDOW.as_secs()
        ),
        faults: Faults {
            stall_after: Some(ByteSize(CUT_AT)),
            status: Some(404),
            status_on: Some(FaultTarget::Layer),
            status_after: Some(1),
            ..Faults::default()
        },
        window: STALL_WINDOW,
    });
    out
}

/// How a pull ended, as the matrix tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Pulled,
    Failed,
    /// Still going when its window closed (stopped by the test).
    Stopped,
    /// pullstorm refused to start (exit code and the first line of its message).
    Refused(String),
}

impl Outcome {
    fn text(&self) -> String {
        match self {
            Outcome::Pulled => "pulled".into(),
            Outcome::Failed => "failed".into(),
            Outcome::Stopped => "still waiting, stopped".into(),
            Outcome::Refused(why) => format!("run refused: {why}"),
        }
    }
}

/// What one side of one case did.
#[derive(Clone, Debug)]
struct Side {
    /// The registry's log, in arrival order (pullstorm's preflight removed).
    log: Vec<LoggedRequest>,
    /// Connections that were not HTTP (dockerd's TLS probe).
    probes: usize,
    outcome: Outcome,
    /// What the client said when it failed (for the assertion message).
    said: String,
}

/// A request reduced to what is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    method: String,
    kind: RequestKind,
    /// `-`, `0-` (a Range from byte 0) or `mid-`.
    range: &'static str,
    status: u16,
    /// Cut or stalled (the registry's doing, so stable); otherwise empty.
    end: &'static str,
    /// ms since the side's first request.
    at: u64,
}

impl Step {
    fn token(&self) -> String {
        let what = match self.kind {
            RequestKind::Ping => "ping",
            RequestKind::Token => "token",
            RequestKind::ManifestByTag => "manifest/tag",
            RequestKind::ManifestByDigest => "manifest/digest",
            RequestKind::Config => "config",
            RequestKind::Layer => "layer",
            RequestKind::BlobUnknown => "blob?",
            RequestKind::Upload => "upload",
            RequestKind::Other => "other",
            RequestKind::NotHttp => "not-http",
        };
        let range = match self.range {
            "-" => String::new(),
            r => format!(" Range {r}"),
        };
        let end = match self.end {
            "" => String::new(),
            e => format!(" {e}"),
        };
        format!("{} {what}{range} {}{end}", self.method, self.status)
    }

    fn stream(&self) -> &'static str {
        match self.kind {
            RequestKind::ManifestByTag | RequestKind::ManifestByDigest => "manifest",
            RequestKind::Ping => "ping",
            RequestKind::Token => "token",
            RequestKind::Config => "config",
            RequestKind::Layer => "layer",
            _ => "other",
        }
    }

    fn same(&self, other: &Step) -> bool {
        (&self.method, self.kind, self.range, self.status, self.end)
            == (
                &other.method,
                other.kind,
                other.range,
                other.status,
                other.end,
            )
    }
}

fn steps(log: &[LoggedRequest]) -> Vec<Step> {
    let t0 = log.first().map_or(0, |e| e.t_ms);
    log.iter()
        .map(|e| Step {
            method: e.method.clone(),
            kind: e.kind,
            range: match e.range.as_deref() {
                None => "-",
                Some("bytes=0-") => "0-",
                Some(_) => "mid-",
            },
            status: e.status,
            end: match e.end {
                pullstorm::registry::End::Cut => "cut",
                pullstorm::registry::End::Stalled => "stalled",
                _ => "",
            },
            at: e.t_ms - t0,
        })
        .collect()
}

/// The streams of a pull, in the order the matrix shows them.
const STREAMS: [&str; 6] = ["ping", "manifest", "config", "layer", "token", "other"];

/// The stable text of one side: stream by stream (config and layer go at once, so their
/// order is chance), runs of equal steps folded into `×n` with their times in whole
/// seconds from the pull's first request.
fn summary(side: &Side, spare: Option<&str>) -> String {
    let all = steps(&side.log);
    let mut parts: Vec<String> = Vec::new();
    for stream in STREAMS {
        if spare == Some(stream) && side.outcome == Outcome::Failed {
            continue;
        }
        let s: Vec<&Step> = all.iter().filter(|x| x.stream() == stream).collect();
        let mut i = 0;
        while i < s.len() {
            let mut j = i + 1;
            while j < s.len() && s[j].same(s[i]) {
                j += 1;
            }
            let secs: Vec<u64> = s[i..j].iter().map(|x| (x.at + 500) / 1000).collect();
            let mut part = s[i].token();
            if j - i > 1 {
                part.push_str(&format!(" ×{}", j - i));
            }
            if secs.iter().any(|&t| t > 0) {
                let list: Vec<String> = secs.iter().map(|t| t.to_string()).collect();
                part.push_str(&format!(" @{}s", list.join(",")));
            }
            parts.push(part);
            i = j;
        }
    }
    let probe = match side.probes {
        0 => String::new(),
        n => format!("(TLS probe ×{n}) "),
    };
    format!("{probe}{} → {}", parts.join(" · "), side.outcome.text())
}

/// Steps with runs of equal ones folded: `GET layer 503 ×12, GET config 200`.
fn fold(steps: &[Step]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let mut j = i + 1;
        while j < steps.len() && steps[j].same(&steps[i]) {
            j += 1;
        }
        parts.push(match j - i {
            1 => steps[i].token(),
            n => format!("{} ×{n}", steps[i].token()),
        });
        i = j;
    }
    parts.join(", ")
}

/// Within 1 s or 20 %.
fn close(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= 1000.max(a.max(b) / 5)
}

/// Why the two sides differ, or `None` when they agree. `spare` is a blob stream the
/// fault does not touch: when the pull fails on the other blob, the client cancels it, and
/// whether its GET went out first is a race of a few ms, so it is left out then.
fn compare(real: &Side, sim: &Side, spare: Option<&str>) -> Option<String> {
    if real.outcome != sim.outcome {
        return Some(format!(
            "outcome: {} vs {}",
            real.outcome.text(),
            sim.outcome.text()
        ));
    }
    let by_stream = |side: &Side| {
        let mut m: BTreeMap<&'static str, Vec<Step>> = BTreeMap::new();
        for s in steps(&side.log) {
            m.entry(s.stream()).or_default().push(s);
        }
        m
    };
    let (a, b) = (by_stream(real), by_stream(sim));
    let names: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (x, y) = (
            a.get(name).cloned().unwrap_or_default(),
            b.get(name).cloned().unwrap_or_default(),
        );
        let tokens = |v: &[Step]| v.iter().map(Step::token).collect::<Vec<_>>();
        if spare == Some(*name) && real.outcome == Outcome::Failed {
            continue;
        }
        if tokens(&x) != tokens(&y) {
            return Some(format!("{name}: [{}] vs [{}]", fold(&x), fold(&y)));
        }
        for k in 0..x.len() {
            let (ga, gb) = if k == 0 {
                (x[0].at, y[0].at)
            } else {
                (x[k].at - x[k - 1].at, y[k].at - y[k - 1].at)
            };
            if !close(ga, gb) {
                return Some(format!(
                    "{name}: request {} comes {:.1} s vs {:.1} s after the one before",
                    k + 1,
                    ga as f64 / 1000.0,
                    gb as f64 / 1000.0
                ));
            }
        }
    }
    None
}

/// A tokio runtime for the registries, shared by every case.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Seeds are per case and client, so no client finds a blob it already has.
/// The blob stream a case's fault leaves alone, if the fault is on the other blob
/// and fails the pull: whether that blob's GET went out before the failure
/// cancelled it is a race of a few ms, in the real client as in pullstorm.
/// A cut is on the layer only (the config is smaller than `CUT_AT`).
fn spare_stream(case: &Case, real: &Side) -> Option<&'static str> {
    match case.faults.status_on {
        Some(FaultTarget::Config) => Some("layer"),
        Some(FaultTarget::Layer) if case.faults.status_after.is_none() => Some("config"),
        None if case.faults.cut_after.is_some() && matches!(real.outcome, Outcome::Failed) => {
            Some("config")
        }
        _ => None,
    }
}

fn seed_of(case: &str, client: Client) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in case.bytes().chain(client.name().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    // Different on every run too: a layer of a former run cannot be in a client's cache.
    h ^ std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Served {
    registry: pullstorm::registry::EmbeddedRegistry,
}

fn serve(rt: &tokio::runtime::Runtime, faults: Faults, seed: u64) -> Served {
    let config = EmbeddedConfig {
        layer_sizes: vec![LAYER],
        seed,
        faults,
        request_log: Some(RequestLog::memory()),
        ..EmbeddedConfig::default()
    };
    let registry = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pullstorm::registry::start(listener, config).await.unwrap()
    });
    Served { registry }
}

impl Served {
    fn port(&self) -> u16 {
        self.registry.addr().port()
    }
    fn log(&self) -> Vec<LoggedRequest> {
        self.registry.request_log().unwrap_or_default()
    }
    /// The log once every response in it has ended (bounded: a client that has exited has
    /// closed its connections; the registry completes the entries as hyper drops them).
    fn settled_log(&self) -> Vec<LoggedRequest> {
        let done = |log: &[LoggedRequest]| {
            log.iter()
                .all(|e| e.end != pullstorm::registry::End::InFlight)
        };
        common::poll_until(Duration::from_secs(10), || done(&self.log()));
        self.log()
    }
    fn stop(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(self.registry.shutdown());
    }
}

/// Waits for `child` until `window` has passed; kills it then. `Some(success)` if it
/// exited by itself, with its output.
fn watch(mut child: Child, window: Duration) -> (Option<bool>, String) {
    let mut status = None;
    if !common::poll_until(window, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        return (None, String::new());
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (status.map(|s| s.success()), text)
}

fn real_side(
    rt: &tokio::runtime::Runtime,
    case: &Case,
    client: Client,
    containerd: &Containerd,
) -> Side {
    let served = serve(rt, case.faults.clone(), seed_of(&case.name, client));
    let image = format!("127.0.0.1:{}/conf/{}:v1", served.port(), case.name);
    let child = match client {
        Client::Dockerd => Command::new("docker")
            .args(["pull", &image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI"),
        Client::Containerd => containerd.ctr_spawn(&["content", "fetch", "--plain-http", &image]),
    };
    let (exit, said) = watch(child, case.window);
    let seen = served.log().len();
    if exit.is_none() {
        // Stopped at the window's end: what it waits on is closed, so every entry ends.
        served.registry.close_connections();
    }
    let mut log = served.settled_log();
    log.truncate(seen);
    if exit.is_none() && client == Client::Dockerd {
        // The daemon goes on after its CLI is gone: it retries, meets the 404 of the stall
        // case, and gives up. Keep the registry up until then (bounded), so that it does not
        // spend a download slot on retrying a closed port.
        let ended = || {
            served.log()[seen..]
                .iter()
                .filter(|e| e.kind == RequestKind::Layer && e.status == 404)
                .count()
                >= 2
        };
        common::poll_until(Duration::from_secs(30), ended);
    }
    if client == Client::Dockerd {
        // Only there when the pull worked.
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    }
    served.stop(rt);
    let probes = log
        .iter()
        .filter(|e| e.kind == RequestKind::NotHttp)
        .count();
    Side {
        log: log
            .into_iter()
            .filter(|e| e.kind != RequestKind::NotHttp)
            .collect(),
        probes,
        outcome: match exit {
            Some(true) => Outcome::Pulled,
            Some(false) => Outcome::Failed,
            None => Outcome::Stopped,
        },
        said,
    }
}

/// How many of the first requests are pullstorm's preflight: it starts with `GET /v2/`
/// (the server's headers) and ends with the manifest's GET by digest, before any node
/// starts (today `GET /v2/`, the session's ping, the HEAD by tag and the GET by digest).
fn preflight_len(kinds: impl Iterator<Item = RequestKind>) -> usize {
    let kinds: Vec<RequestKind> = kinds.take(8).collect();
    match kinds.first() {
        Some(RequestKind::Ping) => kinds
            .iter()
            .position(|k| *k == RequestKind::ManifestByDigest)
            .map_or(0, |i| i + 1),
        _ => 0,
    }
}

fn simulated_side(rt: &tokio::runtime::Runtime, case: &Case, client: Client, dir: &Path) -> Side {
    let mut faults = case.faults.clone();
    // Spare the preflight's requests of the faulted kind (see the module doc).
    let preflight = match faults.status_on {
        Some(FaultTarget::Manifest | FaultTarget::Ping) => 2,
        _ => 0,
    };
    if preflight > 0 {
        faults.status_after = Some(faults.status_after.unwrap_or(0) + preflight);
    }
    let served = serve(rt, faults, seed_of(&case.name, client));
    let run_dir = dir.join(format!("{}-{}", client.name(), case.name));
    let scenario = format!(
        "[fleet]\nclient = \"{}\"\n[kubelet]\npull_retries = 0\n\
         [run]\nduration = \"{}ms\"\n[thresholds]\nmax_failed_pulls = 1\n",
        client.profile(),
        case.window.as_millis()
    );
    let child = spawn_run(
        &run_dir,
        &scenario,
        &format!("http://127.0.0.1:{}", served.port()),
        &format!("conf/{}:v1", case.name),
        &[],
    );
    let run = finish_run(child, &run_dir);
    let log = served.settled_log();
    served.stop(rt);
    let outcome = if run.code == 3 || run.code == 2 {
        Outcome::Refused(format!(
            "exit {}, {}",
            run.code,
            run.stderr.lines().next().unwrap_or("").trim()
        ))
    } else {
        let v = run.result();
        if common::u(&v, "pulls.completed") == 1 {
            Outcome::Pulled
        } else if common::u(&v, "pulls.failed") == 1 {
            Outcome::Failed
        } else {
            Outcome::Stopped
        }
    };
    // The profile's HTTPS probe, like dockerd's, is recorded, not compared.
    let (probes, log): (Vec<LoggedRequest>, Vec<LoggedRequest>) = log
        .into_iter()
        .partition(|e| e.kind == RequestKind::NotHttp);
    let skip = preflight_len(log.iter().map(|e| e.kind));
    Side {
        log: log.into_iter().skip(skip).collect(),
        probes: probes.len(),
        said: run.stderr.clone(),
        outcome,
    }
}

/// A simulated pull to run, and what it gives.
type SimJob = Box<dyn FnOnce() -> (Client, Case, Side) + Send>;

/// One row of the matrix.
struct Row {
    client: Client,
    case: Case,
    real: Side,
    sim: Side,
}

/// Runs `jobs` on `workers` threads, in order; returns their results.
fn pool<T: Send + 'static>(
    workers: usize,
    jobs: Vec<Box<dyn FnOnce() -> T + Send>>,
) -> std::thread::JoinHandle<Vec<T>> {
    std::thread::spawn(move || {
        let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>()));
        queue.lock().unwrap().reverse();
        let results = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let (queue, results) = (queue.clone(), results.clone());
                std::thread::spawn(move || loop {
                    let Some((i, job)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let out = job();
                    results.lock().unwrap().push((i, out));
                })
            })
            .collect();
        for t in threads {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
        let mut results = std::mem::take(&mut *results.lock().unwrap());
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    })
}

/// Cases dockerd 20.10 retries for 75 s (measured): they go first, so the 3 workers run
/// them in parallel and the short ones fill in after.
fn dockerd_long(case: &Case) -> bool {
    case.faults.status_on == Some(FaultTarget::Layer)
        && matches!(case.faults.status, Some(500 | 502 | 503 | 408 | 429))
}

fn version(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

const BEGIN: &str = "<!-- conformance:begin -->";
const END: &str = "<!-- conformance:end -->";

fn matrix_text(rows: &[Row], dockerd: &str, containerd: &str) -> String {
    let mut t = String::new();
    writeln!(
        t,
        "{BEGIN}\n\nGenerated by `cargo test --release --test integration -- --include-ignored \
         conformance::matrix` (`tests/integration/conformance.rs`): dockerd {dockerd} (`docker \
         pull`) and containerd {containerd} (`ctr content fetch --plain-http`) against pullstorm's \
         `{DOCKERD_PROFILE}` and `{CONTAINERD_PROFILE}` profiles (`[kubelet] pull_retries = 0`), \
         each pulling a one-layer image (4 MiB) from an embedded registry of its own with the \
         fault. What the registry saw, per request: method, kind of path, `Range` (from `0-` or \
         `mid-` blob), status, `cut` / `stalled`; `×n` = n such requests in a row, `@` = their \
         times in whole seconds from the pull's first request. pullstorm's preflight (once per \
         run) is left out, and so is, when a blob's fault fails the pull, the other blob (its \
         GET goes out or not before the failure cancels it: a race of a few ms). A case matches when every stream (ping, manifest, config, layer) has \
         the same requests with gaps within 1 s or 20 %, and the pull ends the same way.\n"
    )
    .unwrap();
    for client in [Client::Dockerd, Client::Containerd] {
        let real_name = match client {
            Client::Dockerd => format!("dockerd {dockerd}"),
            Client::Containerd => format!("containerd {containerd}"),
        };
        writeln!(
            t,
            "\n### {real_name} vs `{}`\n\n| case | fault | {real_name} | pullstorm `{}` | match |\n|---|---|---|---|---|",
            client.profile(),
            client.profile()
        )
        .unwrap();
        for r in rows.iter().filter(|r| r.client == client) {
            let verdict = match compare(&r.real, &r.sim, spare_stream(&r.case, &r.real)) {
                None => "yes".to_string(),
                Some(why) => format!("**no**: {why}"),
            };
            writeln!(
                t,
                "| `{}` | {} | {} | {} | {} |",
                r.case.name,
                r.case.fault,
                summary(&r.real, spare_stream(&r.case, &r.real)),
                summary(&r.sim, spare_stream(&r.case, &r.real)),
                verdict.replace('|', "/")
            )
            .unwrap();
        }
    }
    writeln!(t, "\n{END}").unwrap();
    t
}

/// Replaces the section between the markers in docs/clients.md (appending the section,
/// with its heading, when the markers are not there yet).
fn write_matrix(text: &str) {
    let path = repo().join("docs/clients.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let new = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{}{}", &doc[..b], text.trim_end(), &doc[e + END.len()..])
        }
        _ => format!(
            "{}\n## Conformance matrix\n\n{}\n",
            doc.trim_end_matches('\n').to_string() + "\n",
            text.trim_end()
        ),
    };
    std::fs::write(&path, new).unwrap();
}

#[test]
#[ignore = "needs the machine's dockerd and containerd: scripts/test.sh runs it"]
fn matrix() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-conformance-")
        .tempdir()
        .unwrap();
    let rt = Arc::new(runtime());
    let containerd = Arc::new(Containerd::start(&dir.path().join("containerd")));
    let all = cases();

    // dockerd: 3 workers for the cases that download the layer (long ones first), one for
    // those that never get past the manifest.
    let mut with_layer: Vec<Case> = all
        .iter()
        .filter(|c| c.faults.status_on != Some(FaultTarget::Manifest))
        .cloned()
        .collect();
    with_layer.sort_by_key(|c| !dockerd_long(c));
    let manifest_only: Vec<Case> = all
        .iter()
        .filter(|c| c.faults.status_on == Some(FaultTarget::Manifest))
        .cloned()
        .collect();
    type Job = Box<dyn FnOnce() -> (Case, Side) + Send>;
    let real_jobs = |cases: Vec<Case>, client: Client| -> Vec<Job> {
        cases
            .into_iter()
            .map(|case| {
                let (rt, containerd) = (rt.clone(), containerd.clone());
                Box::new(move || {
                    let side = real_side(&rt, &case, client, &containerd);
                    (case, side)
                }) as Job
            })
            .collect()
    };
    let docker_slots = pool(3, real_jobs(with_layer, Client::Dockerd));
    let docker_manifest = pool(1, real_jobs(manifest_only, Client::Dockerd));
    let ctr = pool(4, real_jobs(all.clone(), Client::Containerd));
    let sim_jobs: Vec<SimJob> = [Client::Dockerd, Client::Containerd]
        .into_iter()
        .flat_map(|client| all.iter().cloned().map(move |case| (client, case)))
        .map(|(client, case)| {
            let (rt, dir) = (rt.clone(), dir.path().to_path_buf());
            Box::new(move || {
                let side = simulated_side(&rt, &case, client, &dir);
                (client, case, side)
            }) as SimJob
        })
        .collect();
    let sim = pool(4, sim_jobs);

    let join = |h: std::thread::JoinHandle<Vec<(Case, Side)>>| {
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    };
    let mut real: Vec<(Client, Case, Side)> = Vec::new();
    for (client, handle) in [
        (Client::Dockerd, docker_slots),
        (Client::Dockerd, docker_manifest),
        (Client::Containerd, ctr),
    ] {
        real.extend(join(handle).into_iter().map(|(c, s)| (client, c, s)));
    }
    let sim = sim.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    drop(containerd);

    let mut rows = Vec::new();
    for client in [Client::Dockerd, Client::Containerd] {
        for case in &all {
            let pick = |v: &[(Client, Case, Side)]| {
                v.iter()
                    .find(|(c, k, _)| *c == client && k.name == case.name)
                    .map(|(_, _, s)| s.clone())
                    .unwrap()
            };
            rows.push(Row {
                client,
                case: case.clone(),
                real: pick(&real),
                sim: pick(&sim),
            });
        }
    }
    let dockerd_version = version("docker", &["version", "--format", "{{.Server.Version}}"]);
    let containerd_version = version("containerd", &["--version"])
        .split_whitespace()
        .nth(2)
        .unwrap_or("1.6")
        .to_string();
    let text = matrix_text(&rows, &dockerd_version, &containerd_version);
    write_matrix(&text);
    eprintln!("{text}\nconformance matrix in {:.0?}", started.elapsed());

    // The facts the issue names, on the real clients themselves.
    let row = |client, name: &str| {
        rows.iter()
            .find(|r| r.client == client && r.case.name == name)
            .unwrap()
    };
    let docker_503 = row(Client::Dockerd, "layer-503");
    let gets: Vec<&LoggedRequest> = docker_503
        .real
        .log
        .iter()
        .filter(|e| e.kind == RequestKind::Layer)
        .collect();
    assert_eq!(
        gets.len(),
        12,
        "dockerd, 503 on the layer: {}",
        summary(&docker_503.real, None)
    );
    let span = gets[11].t_ms - gets[0].t_ms;
    assert!(
        (70_000..=80_000).contains(&span),
        "dockerd's 12 GETs span {span} ms"
    );
    let ctr_503 = row(Client::Containerd, "layer-503");
    let gets = ctr_503
        .real
        .log
        .iter()
        .filter(|e| e.kind == RequestKind::Layer)
        .count();
    assert_eq!(
        (gets, &ctr_503.real.outcome),
        (1, &Outcome::Failed),
        "containerd, 503 on the layer: {}",
        summary(&ctr_503.real, None)
    );

    let mismatches: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            compare(&r.real, &r.sim, spare_stream(&r.case, &r.real)).map(|why| {
                format!(
                    "{} {}: {why}\n    real: {}\n    pullstorm: {}{}",
                    r.client.name(),
                    r.case.name,
                    summary(&r.real, spare_stream(&r.case, &r.real)),
                    summary(&r.sim, spare_stream(&r.case, &r.real)),
                    match &r.sim.outcome {
                        Outcome::Refused(_) => format!("\n    {}", r.sim.said.trim()),
                        _ => String::new(),
                    }
                )
            })
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from the real clients (docs/clients.md has the matrix):\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
}

/// `pullstorm serve --request-log FILE`: one JSON line per request, written as each
/// response ends, the injected status and a connection that was not HTTP included; a
/// fault setting that cannot work is refused with exit code 2, naming its flag.
#[test]
fn serve_writes_every_request_to_its_log() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("requests.jsonl");
    let mut child = common::bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--layers", "64KiB"])
        .args([
            "--status",
            "503",
            "--status-on",
            "layer",
            "--status-times",
            "1",
        ])
        .arg("--request-log")
        .arg(&log_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut banner).unwrap();
    let port: u16 = banner
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let mut layer_line = String::new();
    out.read_line(&mut layer_line).unwrap();
    let layer = layer_line.split_whitespace().nth(2).unwrap().to_string();
    let blob = format!("/v2/conf/x/blobs/{layer}");
    assert_eq!(http_status(port, "/v2/"), Some(200));
    assert_eq!(http_status(port, &blob), Some(503));
    assert_eq!(http_status(port, &blob), Some(200));
    let mut tls = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tls.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03])
        .unwrap();
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    crate::common::wait_until(
        "4 lines in the request log",
        Duration::from_secs(10),
        || lines().len() >= 4,
    );
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let seen: Vec<(String, u64, bool, String)> = lines()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or("").to_string(),
                v["status"].as_u64().unwrap_or(0),
                v["injected"].as_bool().unwrap_or(false),
                v["end"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let s = |k: &str, st, inj, e: &str| (k.to_string(), st, inj, e.to_string());
    assert_eq!(
        seen,
        [
            s("ping", 200, false, "complete"),
            s("layer", 503, true, "complete"),
            s("layer", 200, false, "complete"),
            s("not_http", 400, false, "complete"),
        ]
    );
    assert_eq!(lines()[2]["bytes"].as_u64(), Some(64 << 10));

    let refused = common::bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--layers", "64KiB"])
        .args(["--status", "200", "--status-on", "layer"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--status: 200"));
}

/// How many real clients and simulated nodes the scale comparison runs.
const SCALE_NODES: usize = 20;
/// The scale image's one layer, its cut point, and how many of its responses are cut and
/// how many layer requests are answered 429 (fewer than containerd's 6 in a row, so no
/// pull fails on them: the totals do not depend on which client got which).
const SCALE_LAYER: u64 = 8 << 20;
const SCALE_CUT_AT: u64 = 2 << 20;
const SCALE_CUTS: u32 = 5;
const SCALE_429S: u32 = 5;

/// Registry-side totals of one side, from nginx's access log: requests by (method, kind,
/// status), and bytes sent.
#[derive(Default, Debug)]
struct Totals {
    requests: BTreeMap<(String, String, u16), u64>,
    bytes: u64,
}

fn kind_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Ping => "ping",
        RequestKind::Token => "token",
        RequestKind::ManifestByTag => "manifest/tag",
        RequestKind::ManifestByDigest => "manifest/digest",
        RequestKind::Config => "config",
        RequestKind::Layer => "layer",
        RequestKind::BlobUnknown => "blob?",
        RequestKind::Upload => "upload",
        RequestKind::Other => "other",
        RequestKind::NotHttp => "not-http",
    }
}

fn totals(lines: &[AccessLine], image: &pullstorm::synth::SyntheticImage) -> Totals {
    let mut t = Totals::default();
    for l in lines {
        let path = l.path.split('?').next().unwrap_or("");
        let (kind, _) = pullstorm::registry::request_log::classify(path, image);
        let key = if is_http(l) {
            (l.method.clone(), kind_name(kind).to_string(), l.status)
        } else {
            ("-".to_string(), "not-http".to_string(), l.status)
        };
        *t.requests.entry(key).or_default() += 1;
        t.bytes += l.bytes;
    }
    t
}

/// One stack: an embedded registry with the scale fault behind an nginx of the lab's
/// Harbor-like configuration.
struct Stack {
    served: Served,
    nginx: Nginx,
}

fn scale_stack(rt: &tokio::runtime::Runtime, dir: &Path, seed: u64) -> Stack {
    let faults = Faults {
        cut_after: Some(ByteSize(SCALE_CUT_AT)),
        cut_times: Some(SCALE_CUTS),
        status: Some(429),
        status_on: Some(FaultTarget::Layer),
        status_times: Some(SCALE_429S),
        ..Faults::default()
    };
    let config = EmbeddedConfig {
        layer_sizes: vec![SCALE_LAYER],
        seed,
        faults,
        request_log: Some(RequestLog::memory()),
        ..EmbeddedConfig::default()
    };
    let registry = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pullstorm::registry::start(listener, config).await.unwrap()
    });
    let served = Served { registry };
    let nginx = Nginx::start(dir, served.port(), NginxConf::default());
    Stack { served, nginx }
}

/// Whether nginx logged an HTTP request: a TLS ClientHello (an HTTPS probe) is none, nginx
/// logs it as a 400 with no method.
fn is_http(l: &AccessLine) -> bool {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&l.method.as_str())
}

fn access_lines(nginx: &Nginx) -> Vec<AccessLine> {
    nginx
        .access_log()
        .lines()
        .filter_map(AccessLine::parse)
        .collect()
}

#[test]
#[ignore = "needs containerd and nginx: scripts/test.sh runs it"]
fn scale_twenty_containerds_and_twenty_simulated_nodes_load_the_registry_alike() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-conformance-scale-")
        .tempdir()
        .unwrap();
    let rt = runtime();
    let seed = seed_of("scale", Client::Containerd);

    // Twenty containerd 1.6, each with its own root, state and socket, fetch at once.
    let real = scale_stack(&rt, &dir.path().join("real"), seed);
    let containerds: Vec<Containerd> = std::thread::scope(|s| {
        let started: Vec<_> = (0..SCALE_NODES)
            .map(|i| {
                let d = dir.path().join(format!("containerd-{i}"));
                s.spawn(move || Containerd::start(&d))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let image = format!("127.0.0.1:{}/conf/scale:v1", real.nginx.port);
    let fetches: Vec<Child> = containerds
        .iter()
        .map(|c| c.ctr_spawn(&["content", "fetch", "--plain-http", &image]))
        .collect();
    let failed = fetches
        .into_iter()
        .map(|child| watch(child, Duration::from_secs(120)))
        .filter(|(exit, _)| *exit != Some(true))
        .count();
    drop(containerds);
    // nginx writes a line when a response ends: every client has exited by now.
    let real_lines = access_lines(&real.nginx);
    let real_image = real.served.registry.image().clone();
    real.served.stop(&rt);
    drop(real.nginx);

    // Twenty simulated containerd nodes, one run, the kubelet off.
    let sim = scale_stack(&rt, &dir.path().join("sim"), seed);
    let run_dir = dir.path().join("run");
    let scenario = format!(
        "[fleet]\nclient = \"{CONTAINERD_PROFILE}\"\nnodes_per_cluster = {SCALE_NODES}\n\
         [kubelet]\npull_retries = 0\n[run]\nduration = \"100s\"\n\
         [thresholds]\nmax_failed_pulls = {SCALE_NODES}\n"
    );
    let child = spawn_run(&run_dir, &scenario, &sim.nginx.url(), "conf/scale:v1", &[]);
    let run = finish_run(child, &run_dir);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v = run.result();
    let sim_failed = common::u(&v, "pulls.failed");
    let mut sim_lines = access_lines(&sim.nginx);
    sim.served.stop(&rt);
    // The preflight, once per run, ends before the first node starts: nginx's first lines
    // (HTTPS probes aside).
    let preflight = preflight_len(
        sim_lines
            .iter()
            .filter(|l| is_http(l))
            .map(|l| pullstorm::registry::request_log::classify(&l.path, &real_image).0),
    );
    assert!(preflight > 0, "pullstorm's preflight first in nginx's log");
    let mut dropped = 0;
    sim_lines.retain(|l| {
        let preflight_line = dropped < preflight && is_http(l);
        dropped += usize::from(preflight_line);
        !preflight_line
    });

    let (a, b) = (
        totals(&real_lines, &real_image),
        totals(&sim_lines, &real_image),
    );
    let within = |x: u64, y: u64| x.abs_diff(y) as f64 <= 0.1 * x.max(y) as f64;
    let keys: std::collections::BTreeSet<_> = a.requests.keys().chain(b.requests.keys()).collect();
    let mut table = format!(
        "| requests at nginx | {SCALE_NODES} x containerd 1.6 (`ctr content fetch`) | pullstorm, {SCALE_NODES} `{CONTAINERD_PROFILE}` nodes | within 10 % |\n|---|---|---|---|\n"
    );
    let mut differ = Vec::new();
    for key in keys {
        let (x, y) = (
            a.requests.get(key).copied().unwrap_or(0),
            b.requests.get(key).copied().unwrap_or(0),
        );
        // HTTPS probes are recorded, not compared (as in the matrix).
        let ok = key.1 == "not-http" || within(x, y);
        if !ok {
            differ.push(format!("{} {} {}: {x} vs {y}", key.0, key.1, key.2));
        }
        writeln!(
            table,
            "| {} {} {} | {x} | {y} | {} |",
            key.0,
            key.1,
            key.2,
            if ok { "yes" } else { "**no**" }
        )
        .unwrap();
    }
    let bytes_ok = within(a.bytes, b.bytes);
    if !bytes_ok {
        differ.push(format!("bytes sent: {} vs {}", a.bytes, b.bytes));
    }
    writeln!(
        table,
        "| bytes sent (headers included) | {} | {} | {} |\n| pulls failed | {failed} | {sim_failed} | |",
        a.bytes,
        b.bytes,
        if bytes_ok { "yes" } else { "**no**" }
    )
    .unwrap();
    write_scale(&table);
    eprintln!("{table}\nscale comparison in {:.0?}", started.elapsed());
    assert!(
        differ.is_empty(),
        "registry-side totals differ by more than 10 %:\n{}",
        differ.join("\n")
    );
}

const SCALE_BEGIN: &str = "<!-- conformance-scale:begin -->";
const SCALE_END: &str = "<!-- conformance-scale:end -->";

/// Writes the scale figures after the matrix in docs/clients.md, between their markers.
fn write_scale(table: &str) {
    let path = repo().join("docs/clients.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let text = format!(
        "{SCALE_BEGIN}\n\nAt scale (`conformance::scale_...`): {SCALE_NODES} containerd 1.6 instances \
         (private roots and sockets) fetch one image ({} MiB layer) at once through the lab's \
         nginx, in front of an embedded registry that answers the first {SCALE_429S} layer \
         requests 429 and closes the first {SCALE_CUTS} layer bodies after {} MiB; then one \
         pullstorm run of {SCALE_NODES} `{CONTAINERD_PROFILE}` nodes (kubelet off) does the \
         same against a stack of its own. Totals from nginx's access log (pullstorm's preflight \
         left out); they must agree within 10 %.\n\n{}\n{SCALE_END}",
        SCALE_LAYER >> 20,
        SCALE_CUT_AT >> 20,
        table.trim_end()
    );
    let new = match (doc.find(SCALE_BEGIN), doc.find(SCALE_END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{}{}", &doc[..b], text, &doc[e + SCALE_END.len()..])
        }
        _ => format!("{}\n\n{}\n", doc.trim_end_matches('\n'), text),
    };
    std::fs::write(&path, new).unwrap();
}
