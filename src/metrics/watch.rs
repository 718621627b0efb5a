//! Samplers for what a run does to the processes around it: once a second,
//! the harness itself (fds, RSS, CPU, sockets by TCP state), watched local
//! processes by pid or by name (fds against their nofile limit, RSS, threads,
//! exits and zombies), Prometheus endpoints (`process_open_fds`, goroutines...)
//! and nginx `stub_status`.
//!
//! Why: "the registry ran out of fds" or "an nginx worker died" is the answer
//! a capacity test is after, and it is only visible from outside the client.
//!
//! Cost and memory are bounded: a handful of small `/proc` reads per target
//! per second, one short GET per endpoint, at most [`MAX_TARGETS`] targets and
//! at most [`MAX_POINTS`] points per target series (older points are merged
//! in pairs when full, doubling `step_s`). [`spawn`] runs the sampler on its
//! own thread so a saturated fleet runtime cannot delay or skip samples.

pub mod procfs;
pub mod scrape;
pub mod tcp;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

pub use crate::result::watched::{WatchedKind, WatchedPoint, WatchedSummary};

/// Most targets watched at once (name matches beyond this are ignored).
pub const MAX_TARGETS: usize = 64;
/// Most points kept per target series.
pub const MAX_POINTS: usize = 3600;
/// Timeout of one endpoint scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Prometheus metrics read from every endpoint, besides [`WatchSpec::metric_names`].
const PROM_STANDARD: [&str; 6] = [
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "go_goroutines",
    "go_threads",
];

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// Sample this process (the harness): fds, RSS, CPU, sockets by TCP state.
    pub harness: bool,
    /// Remote ports of the target. TIME_WAIT sockets have no fd left to tie them
    /// to this process, so they are counted for the whole network namespace when
    /// their local or remote port is one of these (all TIME_WAIT when empty).
    pub target_ports: Vec<u16>,
    /// Processes by pid, each with a display name.
    pub pids: Vec<(String, u32)>,
    /// Processes by command name (`/proc/PID/comm`, e.g. `nginx`,
    /// `docker-registry`): every matching pid is its own target `name[pid]`, and
    /// names are looked up again each second so respawned workers are seen.
    pub names: Vec<String>,
    /// Prometheus text endpoints (`http://127.0.0.1:5001/metrics`).
    pub metrics_urls: Vec<String>,
    /// nginx `stub_status` pages (`http://127.0.0.1:8080/nginx_status`).
    pub stub_status_urls: Vec<String>,
    /// More Prometheus metric names to record from every endpoint, summed
    /// over label sets (e.g. `registry_http_in_flight_requests`).
    pub metric_names: Vec<String>,
}

impl WatchSpec {
    /// Adds a process by pid (all digits) or by name: the form of `--watch`.
    pub fn add_process(&mut self, arg: &str) {
        match arg.parse::<u32>() {
            Ok(pid) => {
                let name = procfs::comm(pid)
                    .map(|c| format!("{c}[{pid}]"))
                    .unwrap_or_else(|_| format!("pid {pid}"));
                self.pids.push((name, pid));
            }
            Err(_) => self.names.push(arg.to_string()),
        }
    }
}

/// The newest reading of one target, for the live progress display.
#[derive(Debug, Clone, Default)]
pub struct WatchedStatus {
    pub name: String,
    pub fds: Option<u64>,
    pub fd_limit: Option<u64>,
    pub gone: bool,
}

/// Newest readings of every target, shared with the progress display.
pub type Latest = Arc<Mutex<Vec<WatchedStatus>>>;

/// What one target gave in one [`Watcher::sample`].
#[derive(Debug, Clone)]
pub struct WatchedSample {
    pub name: String,
    /// `None` when the sample failed or the process is gone.
    pub point: Option<WatchedPoint>,
    pub error: Option<String>,
}

/// A series that never holds more than [`MAX_POINTS`] points.
#[derive(Debug, Clone)]
struct Series {
    step: u64,
    points: Vec<WatchedPoint>,
    open: Option<(WatchedPoint, u64)>,
}

impl Series {
    fn new() -> Self {
        Series {
            step: 1,
            points: Vec::new(),
            open: None,
        }
    }

    fn push(&mut self, p: WatchedPoint) {
        let (acc, n) = match self.open.take() {
            None => (p, 1),
            Some((mut acc, n)) => {
                acc.merge_max(&p);
                (acc, n + 1)
            }
        };
        if n >= self.step {
            self.points.push(acc);
        } else {
            self.open = Some((acc, n));
        }
        if self.points.len() >= MAX_POINTS {
            // Halve the resolution: merge neighbours, keeping each field's peak.
            let old = std::mem::take(&mut self.points);
            for pair in old.chunks(2) {
                let mut a = pair[0].clone();
                if let Some(b) = pair.get(1) {
                    a.merge_max(b);
                }
                self.points.push(a);
            }
            self.step *= 2;
        }
    }

    fn snapshot(&self) -> Vec<WatchedPoint> {
        let mut v = self.points.clone();
        if let Some((p, _)) = &self.open {
            v.push(p.clone());
        }
        v
    }
}

#[derive(Debug)]
enum Source {
    Proc {
        pid: u32,
        /// Tells a reused pid from the process first seen.
        start_ticks: Option<u64>,
        first_cpu: Option<u64>,
        last_cpu: Option<(u64, Instant)>,
        done: bool,
        harness: bool,
    },
    Endpoint {
        url: Result<Url, String>,
        stub: bool,
        first_cpu: Option<f64>,
        last_cpu: Option<(f64, Instant)>,
    },
}

#[derive(Debug)]
struct Target {
    summary: WatchedSummary,
    series: Series,
    source: Source,
}

impl Target {
    fn new(name: String, kind: WatchedKind, source: Source) -> Self {
        let (pid, url) = match &source {
            Source::Proc { pid, .. } => (Some(*pid), None),
            Source::Endpoint { url, .. } => (None, url.as_ref().ok().map(without_credentials)),
        };
        Target {
            summary: WatchedSummary::empty(name, kind, pid, url),
            series: Series::new(),
            source,
        }
    }

    fn pid_alive(&self) -> Option<u32> {
        match self.source {
            Source::Proc {
                pid, done: false, ..
            } => Some(pid),
            _ => None,
        }
    }

    /// Folds a successful reading into the peaks and the series.
    fn record(&mut self, p: WatchedPoint) {
        let s = &mut self.summary;
        s.samples += 1;
        let peak = |a: &mut Option<u64>, b: Option<u64>| {
            if let Some(b) = b {
                *a = Some(a.map_or(b, |a| a.max(b)));
            }
        };
        peak(&mut s.fd_peak, p.fds);
        peak(&mut s.rss_peak_bytes, p.rss);
        peak(&mut s.threads_peak, p.threads);
        if let Some(c) = p.cpu_pct {
            s.cpu_peak_pct = Some(s.cpu_peak_pct.map_or(c, |a| a.max(c)));
        }
        for (k, v) in &p.values {
            let e = s.peaks.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
        self.series.push(p);
    }

    fn fail(&mut self, error: String) {
        self.summary.samples += 1;
        self.summary.failures += 1;
        self.summary.last_error = Some(error);
    }

    fn status(&self) -> WatchedStatus {
        let last = self
            .series
            .open
            .as_ref()
            .map(|(p, _)| p)
            .or(self.series.points.last());
        WatchedStatus {
            name: self.summary.name.clone(),
            fds: last.and_then(|p| p.fds),
            fd_limit: self.summary.fd_limit,
            gone: self.summary.exited_at_s.is_some(),
        }
    }
}

/// The samplers of one run.
pub struct Watcher {
    spec: WatchSpec,
    started: Instant,
    targets: Vec<Target>,
    ticks: u64,
    page: u64,
    latest: Latest,
    /// Names never matched so far (reported as such if they never are).
    unmatched: Vec<String>,
    /// Reading every socket table costs more as sockets grow: when one read
    /// took long, the next ones are spaced out (`tcp_skip` samples skipped).
    tcp_skip: u32,
    tcp_every: u32,
    last_tcp: BTreeMap<String, f64>,
}

impl Watcher {
    /// `started` is the run's start, so sample times match `timeline[].t`.
    pub fn new(spec: WatchSpec, started: Instant) -> Self {
        let mut targets = Vec::new();
        if spec.harness {
            targets.push(Target::new(
                "harness".into(),
                WatchedKind::Harness,
                proc_source(std::process::id(), true),
            ));
        }
        for (name, pid) in &spec.pids {
            targets.push(Target::new(
                name.clone(),
                WatchedKind::Process,
                proc_source(*pid, false),
            ));
        }
        for (urls, stub) in [(&spec.metrics_urls, false), (&spec.stub_status_urls, true)] {
            for u in urls {
                // A user or password in the URL is never kept: names, the result
                // and error messages only ever see host, port and path.
                let url = Url::parse(u).map_err(|e| format!("bad URL: {e}"));
                let name = match &url {
                    Ok(url) => endpoint_name(url),
                    Err(_) => u.rsplit('@').next().unwrap_or_default().to_string(),
                };
                let kind = if stub {
                    WatchedKind::StubStatus
                } else {
                    WatchedKind::Prometheus
                };
                targets.push(Target::new(
                    name,
                    kind,
                    Source::Endpoint {
                        url,
                        stub,
                        first_cpu: None,
                        last_cpu: None,
                    },
                ));
            }
        }
        targets.truncate(MAX_TARGETS);
        Watcher {
            unmatched: spec.names.clone(),
            spec,
            started,
            targets,
            ticks: procfs::ticks_per_second(),
            page: procfs::page_size(),
            latest: Arc::new(Mutex::new(Vec::new())),
            tcp_skip: 0,
            tcp_every: 1,
            last_tcp: BTreeMap::new(),
        }
    }

    /// Newest readings, updated after each sample (for the progress display).
    pub fn latest(&self) -> Latest {
        self.latest.clone()
    }

    /// Takes one reading of every target.
    pub async fn sample(&mut self) -> Vec<WatchedSample> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let t = elapsed.round() as u64;
        let at_s = (elapsed * 1000.0).round() / 1000.0;
        self.find_named();

        // Endpoints first, all at once: their GETs overlap each other.
        let mut scrapes = tokio::task::JoinSet::new();
        for (i, target) in self.targets.iter().enumerate() {
            if let Source::Endpoint { url: Ok(url), .. } = &target.source {
                let url = url.clone();
                scrapes.spawn(async move { (i, scrape::get(&url, SCRAPE_TIMEOUT).await) });
            }
        }
        let mut bodies: BTreeMap<usize, Result<String, String>> = BTreeMap::new();
        while let Some(done) = scrapes.join_next().await {
            if let Ok((i, body)) = done {
                bodies.insert(i, body);
            }
        }

        let mut out = Vec::with_capacity(self.targets.len());
        for i in 0..self.targets.len() {
            let result = match &self.targets[i].source {
                Source::Proc { .. } => self.sample_proc(i, t, at_s, now),
                Source::Endpoint { url: Err(e), .. } => Err(e.clone()),
                Source::Endpoint { .. } => {
                    let body = bodies
                        .remove(&i)
                        .unwrap_or_else(|| Err("scrape task failed".into()));
                    body.and_then(|b| self.read_endpoint(i, &b, t, now))
                }
            };
            let target = &mut self.targets[i];
            let sample = match result {
                Ok(Some(p)) => {
                    target.record(p.clone());
                    WatchedSample {
                        name: target.summary.name.clone(),
                        point: Some(p),
                        error: None,
                    }
                }
                Ok(None) => continue,
                Err(e) => {
                    target.fail(e.clone());
                    WatchedSample {
                        name: target.summary.name.clone(),
                        point: None,
                        error: Some(e),
                    }
                }
            };
            out.push(sample);
        }
        if let Ok(mut latest) = self.latest.lock() {
            *latest = self.targets.iter().map(Target::status).collect();
        }
        out
    }

    /// Summaries with their series, for result.json `targets[]`.
    pub fn summaries(&self) -> Vec<WatchedSummary> {
        let mut v: Vec<WatchedSummary> = self
            .targets
            .iter()
            .map(|t| {
                let mut s = t.summary.clone();
                s.step_s = t.series.step;
                s.series = t.series.snapshot();
                s
            })
            .collect();
        for name in &self.unmatched {
            v.push(WatchedSummary {
                last_error: Some(format!("no process named {name:?} was found")),
                ..WatchedSummary::empty(name.clone(), WatchedKind::Process, None, None)
            });
        }
        v
    }

    /// Adds a target for every new pid whose name is watched.
    fn find_named(&mut self) {
        if self.spec.names.is_empty() {
            return;
        }
        let me = std::process::id();
        for name in &self.spec.names {
            for pid in procfs::pids_named(name) {
                if pid == me {
                    continue;
                }
                self.unmatched.retain(|n| n != name);
                // Already watched (by pid, or since an earlier look-up).
                if self.targets.iter().any(|t| t.pid_alive() == Some(pid)) {
                    continue;
                }
                if self.targets.len() >= MAX_TARGETS {
                    return;
                }
                self.targets.push(Target::new(
                    format!("{name}[{pid}]"),
                    WatchedKind::Process,
                    proc_source(pid, false),
                ));
            }
        }
    }

    fn sample_proc(
        &mut self,
        i: usize,
        t: u64,
        at_s: f64,
        now: Instant,
    ) -> Result<Option<WatchedPoint>, String> {
        let (ticks, page) = (self.ticks, self.page);
        let tcp = self.harness_tcp(i);
        let target = &mut self.targets[i];
        let Source::Proc {
            pid,
            start_ticks,
            first_cpu,
            last_cpu,
            done,
            ..
        } = &mut target.source
        else {
            return Ok(None);
        };
        if *done {
            return Ok(None);
        }
        let pid = *pid;
        let stat = match procfs::stat(pid) {
            Ok(s) if start_ticks.map_or(true, |st| st == s.start_ticks) && s.state != 'X' => s,
            Ok(_) => {
                // Dead, or the pid now belongs to another process.
                *done = true;
                mark_exit(&mut target.summary, at_s);
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
                *done = true;
                mark_exit(&mut target.summary, at_s);
                return Ok(None);
            }
            Err(e) => return Err(format!("/proc/{pid}/stat: {e}")),
        };
        *start_ticks = Some(stat.start_ticks);
        if stat.state == 'Z' && target.summary.zombie_at_s.is_none() {
            target.summary.zombie_at_s = Some(at_s);
            tracing::warn!(target = %target.summary.name, at_s, "watched process is a zombie");
        }
        let cpu_pct = last_cpu.map(|(prev, when)| {
            let secs = now.saturating_duration_since(when).as_secs_f64().max(1e-3);
            let used = stat.cpu_ticks.saturating_sub(prev) as f64 / ticks as f64;
            (used / secs * 1000.0).round() / 10.0
        });
        *last_cpu = Some((stat.cpu_ticks, now));
        let first = *first_cpu.get_or_insert(stat.cpu_ticks);
        target.summary.cpu_seconds =
            Some(stat.cpu_ticks.saturating_sub(first) as f64 / ticks as f64);
        let mut errors = Vec::new();
        let fds = match procfs::open_fds(pid) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(format!("/proc/{pid}/fd: {e}"));
                None
            }
        };
        match procfs::nofile_limit(pid) {
            Ok(l) => target.summary.fd_limit = l,
            Err(e) => errors.push(format!("/proc/{pid}/limits: {e}")),
        }
        if let Some(e) = errors.pop() {
            // A zombie has no fds left to list: not a failure.
            if stat.state != 'Z' {
                target.summary.last_error = Some(e);
            }
        }
        Ok(Some(WatchedPoint {
            t,
            fds,
            rss: Some(stat.rss_pages * page),
            threads: Some(stat.threads),
            cpu_pct,
            values: tcp,
        }))
    }

    /// Socket counts by TCP state for the harness target, spaced out when slow.
    fn harness_tcp(&mut self, i: usize) -> BTreeMap<String, f64> {
        if !matches!(self.targets[i].source, Source::Proc { harness: true, .. }) {
            return BTreeMap::new();
        }
        if self.tcp_skip > 0 {
            self.tcp_skip -= 1;
            return self.last_tcp.clone();
        }
        let began = Instant::now();
        let counts = tcp::sample(&self.spec.target_ports);
        let took = began.elapsed();
        // Keep the socket scan under ~5% of one core.
        self.tcp_every = (took.as_millis() as u32 / 50).clamp(1, 30);
        self.tcp_skip = self.tcp_every - 1;
        self.last_tcp = counts
            .into_iter()
            .map(|(k, v)| (format!("tcp_{k}"), v as f64))
            .collect();
        self.last_tcp.clone()
    }

    fn read_endpoint(
        &mut self,
        i: usize,
        body: &str,
        t: u64,
        now: Instant,
    ) -> Result<Option<WatchedPoint>, String> {
        let names = self.spec.metric_names.clone();
        let target = &mut self.targets[i];
        let Source::Endpoint {
            stub,
            first_cpu,
            last_cpu,
            ..
        } = &mut target.source
        else {
            return Ok(None);
        };
        if *stub {
            let values = scrape::parse_stub_status(body).ok_or("not a stub_status page")?;
            return Ok(Some(WatchedPoint {
                t,
                values,
                ..Default::default()
            }));
        }
        let wanted: Vec<&str> = PROM_STANDARD
            .iter()
            .copied()
            .chain(names.iter().map(String::as_str))
            .collect();
        let mut m = scrape::parse_prometheus(body, &wanted);
        if m.is_empty() {
            return Err("none of the watched metrics on the page".into());
        }
        let as_u = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64);
        if let Some(limit) = as_u(m.remove("process_max_fds")) {
            target.summary.fd_limit = Some(limit);
        }
        let cpu = m.remove("process_cpu_seconds_total");
        let cpu_pct = match (cpu, *last_cpu) {
            (Some(c), Some((prev, when))) => {
                let secs = now.saturating_duration_since(when).as_secs_f64().max(1e-3);
                Some(((c - prev).max(0.0) / secs * 1000.0).round() / 10.0)
            }
            _ => None,
        };
        if let Some(c) = cpu {
            *last_cpu = Some((c, now));
            let first = *first_cpu.get_or_insert(c);
            target.summary.cpu_seconds = Some(((c - first) * 1000.0).round() / 1000.0);
        }
        Ok(Some(WatchedPoint {
            t,
            fds: as_u(m.remove("process_open_fds")),
            rss: as_u(m.remove("process_resident_memory_bytes")),
            threads: as_u(m.remove("go_threads")),
            cpu_pct,
            values: m,
        }))
    }
}

fn proc_source(pid: u32, harness: bool) -> Source {
    Source::Proc {
        pid,
        start_ticks: None,
        first_cpu: None,
        last_cpu: None,
        done: false,
        harness,
    }
}

fn mark_exit(s: &mut WatchedSummary, at_s: f64) {
    if s.exited_at_s.is_none() {
        s.exited_at_s = Some(at_s);
        tracing::warn!(target = %s.name, at_s, "watched process exited");
    }
}

/// The URL with any user and password removed.
fn without_credentials(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `host:port/path` of an endpoint: short, and unambiguous within one run.
fn endpoint_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}{}", url.path()),
        None => format!("{host}{}", url.path()),
    }
}

/// A watcher running on its own thread, sampling once a second.
pub struct WatchHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::sync::oneshot::Receiver<Vec<WatchedSummary>>,
    latest: Latest,
}

impl WatchHandle {
    /// Newest readings of every target (for the progress display).
    pub fn latest(&self) -> Latest {
        self.latest.clone()
    }

    /// Takes a last sample and returns the summaries.
    pub async fn finish(mut self) -> Vec<WatchedSummary> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.await.unwrap_or_default()
    }
}

/// Starts sampling: once at once (the baseline at t = 0), then every second.
/// The sampler gets its own thread and single-threaded runtime so that a
/// fleet saturating the main runtime's workers cannot starve it.
pub fn spawn(mut watcher: Watcher) -> WatchHandle {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let latest = watcher.latest();
    let spawned = std::thread::Builder::new()
        .name("pullstorm-watch".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("watch: cannot start a runtime: {e}");
                    let _ = done_tx.send(Vec::new());
                    return;
                }
            };
            runtime.block_on(async {
                let mut tick = tokio::time::interval(INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => { watcher.sample().await; }
                        _ = &mut stop_rx => break,
                    }
                }
                watcher.sample().await;
            });
            let _ = done_tx.send(watcher.summaries());
        });
    if let Err(e) = spawned {
        tracing::warn!("watch: cannot start the sampler thread: {e}");
    }
    WatchHandle {
        stop: Some(stop_tx),
        done: done_rx,
        latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, fds: u64) -> WatchedPoint {
        WatchedPoint {
            t,
            fds: Some(fds),
            ..Default::default()
        }
    }

    #[test]
    fn series_stays_bounded_and_keeps_peaks() {
        let mut s = Series::new();
        for t in 0..(MAX_POINTS as u64 * 5) {
            s.push(point(t, if t == 7777 { 999 } else { t % 10 }));
        }
        let snap = s.snapshot();
        assert!(snap.len() <= MAX_POINTS, "{}", snap.len());
        assert_eq!(s.step, 8);
        assert_eq!(snap.iter().filter_map(|p| p.fds).max(), Some(999));
        assert!(snap.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn endpoint_credentials_are_dropped() {
        let w = Watcher::new(
            WatchSpec {
                metrics_urls: vec![
                    "http://user:secret@127.0.0.1:9/metrics".into(),
                    "http://user:secret@bad host/".into(),
                ],
                ..Default::default()
            },
            Instant::now(),
        );
        let text = format!("{:?}", w.summaries());
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("127.0.0.1:9/metrics"));
    }

    #[test]
    fn merge_keeps_each_peak() {
        let mut a = WatchedPoint {
            t: 1,
            fds: Some(5),
            rss: None,
            threads: Some(3),
            cpu_pct: Some(10.0),
            values: [("x".to_string(), 1.0)].into(),
        };
        a.merge_max(&WatchedPoint {
            t: 2,
            fds: Some(4),
            rss: Some(100),
            threads: Some(9),
            cpu_pct: None,
            values: [("x".to_string(), 7.0), ("y".to_string(), 2.0)].into(),
        });
        assert_eq!(
            (a.t, a.fds, a.rss, a.threads),
            (1, Some(5), Some(100), Some(9))
        );
        assert_eq!(a.cpu_pct, Some(10.0));
        assert_eq!(a.values["x"], 7.0);
        assert_eq!(a.values["y"], 2.0);
    }
}
