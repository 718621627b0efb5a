//! The recorder: the only owner of histograms and counters. Nodes send it
//! events; once a second it reads the gauges and writes one timeline row.
//! Memory is fixed except for the timeline (one row per second) and the
//! error table (one row per fault class).
//!
//! Levels in a row are the second's maxima: connections from the connection
//! high-water gauge (kept by every open, so no peak between two looks is
//! missed), fds as [`fds::second_fds`] computes them, active pulls the highest
//! of four peeks. The run's `fd_peak` and `connections_peak` are the highest
//! rows, so the timeline, the result and the report agree by construction.
//!
//! The sampler also measures the harness itself each second (its CPU against
//! the cores it may use, and how late a timer on the fleet's runtime woke:
//! see [`harness`]), so a saturated harness is seen in its own timeline.

use super::events::{Event, ExchangeKind, Gauges};
use super::fds;
use super::harness::{self, Cores, HarnessSecond, SecondProbe, TimerLag};
use super::live;
use crate::net::{ConnectionWindow, Fault, FaultClass};
use crate::result::model::{ClusterStat, TimelineRow};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the level gauges (fds, connections, active pulls) are read.
const PEEK: Duration = Duration::from_millis(250);
/// Peeks per timeline row (one row per second).
const PEEKS_PER_ROW: u64 = 4;

/// Length of one interval of the `.hlog` export, in seconds.
const HLOG_INTERVAL_S: u64 = 5;

/// Highest latency a histogram holds (larger values are clamped): one day in µs.
pub(crate) const MAX_MICROS: u64 = 86_400_000_000;

/// The latency metrics, each an HdrHistogram in microseconds with 3 significant figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Pull time from the node's scheduled start (queueing included).
    Pull,
    /// Pull time from the pull's first request.
    PullActual,
    Layer,
    Connect,
    /// Blob request sent to response head received.
    Ttfb,
    /// First failure of a layer to that layer's completion.
    Retry,
    /// Manifest and tag-resolve requests, head received.
    Manifest,
    /// Per pull whose blobs retried: the longest retry latency among them.
    RetryPerPull,
    /// Per planned pull the kubelet recovered: its first failure's end to the end of
    /// the re-pull that completed it.
    PullRetry,
    /// A completed TLS handshake (after the TCP connect).
    TlsHandshake,
    /// A blob GET to where a redirect led on another host (object storage), sent to
    /// response head received. The registry's own answer (the 307) is under `Ttfb`.
    StorageTtfb,
    /// TCP connect of connections opened for those storage GETs (also under `Connect`).
    StorageConnect,
    /// A push (`[push]`): its first request to its tag's `PUT`.
    Push,
    /// A push request, sent to response head (a PATCH's body included).
    Upload,
    /// Per blob of a push that was retried: its first failure to its completion.
    PushRetry,
}

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::Pull,
        Metric::PullActual,
        Metric::Layer,
        Metric::Connect,
        Metric::Ttfb,
        Metric::Retry,
        Metric::Manifest,
        Metric::RetryPerPull,
        Metric::PullRetry,
        Metric::TlsHandshake,
        Metric::StorageTtfb,
        Metric::StorageConnect,
        Metric::Push,
        Metric::Upload,
        Metric::PushRetry,
    ];

    pub fn key(&self) -> &'static str {
        match self {
            Metric::Pull => "pull",
            Metric::PullActual => "pull_actual",
            Metric::Layer => "layer",
            Metric::Connect => "connect",
            Metric::Ttfb => "ttfb",
            Metric::Retry => "retry",
            Metric::Manifest => "manifest",
            Metric::RetryPerPull => "retry_per_pull",
            Metric::PullRetry => "pull_retry",
            Metric::TlsHandshake => "tls_handshake",
            Metric::StorageTtfb => "storage_ttfb",
            Metric::StorageConnect => "storage_connect",
            Metric::Push => "push",
            Metric::Upload => "upload",
            Metric::PushRetry => "push_retry",
        }
    }
}

/// The run's connections, from the pulls' tallies (the preflight's are not in them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionTotals {
    /// Connections opened, HTTPS probes included.
    pub opened: u64,
    /// Requests sent on them.
    pub requests: u64,
    /// Most requests sent on one connection.
    pub most_requests: u64,
    /// dockerd's HTTPS probes of a plain-HTTP target.
    pub https_probes: u64,
}

/// Counts and timing of one fault class, for the error table.
#[derive(Debug, Clone)]
pub struct ErrorStat {
    pub count: u64,
    pub first_s: f64,
    pub last_s: f64,
    /// The first detail seen (status, registry error code, phase).
    pub sample: String,
    pub phase: crate::net::Phase,
    pub request: ExchangeKind,
}

/// Everything measured during a run.
pub struct Recorder {
    pub started: Instant,
    pub histograms: BTreeMap<Metric, Histogram<u64>>,
    pub pulls_started: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub layers_completed: u64,
    pub layers_failed: u64,
    pub retries: u64,
    pub retries_by_class: BTreeMap<String, u64>,
    /// Retries by how far the blob had come when its attempt failed: [0-10 %, ..., 90-100 %].
    pub retries_at_progress: [u64; 10],
    /// Pulls that were re-pulls by the kubelet.
    pub kubelet_retries: u64,
    /// Blob redirects followed, and of them those to another host or port (storage).
    pub redirects: u64,
    pub redirects_to_storage: u64,
    /// attempts -> layers that needed that many.
    pub attempts_per_layer: BTreeMap<u32, u64>,
    pub bytes_wasted: u64,
    pub bytes_pulled_ok: u64,
    pub errors: BTreeMap<FaultClass, ErrorStat>,
    pub clusters: Vec<ClusterStat>,
    pub timeline: Vec<TimelineRow>,
    /// The harness's fd high-water: the highest `fds` of the timeline.
    pub fd_peak: u64,
    /// Most client connections open at once: the highest `connections` of the timeline.
    pub connections_peak: i64,
    /// What the pulls' connections did, summed over the pulls that reported.
    pub connections: ConnectionTotals,
    /// From the start to the last sample: the time the timeline covers (its
    /// last row may be a partial second, from `sampled_for - 1 s` rounded
    /// down to the second, to `sampled_for`).
    pub sampled_for: Duration,
    /// The cores the harness could use (`None` until the sampler starts).
    pub cores: Option<Cores>,
    /// CPU seconds the harness used from the sampler's start to its last sample.
    pub harness_cpu_seconds: f64,
    /// What the pushers (`[push]`) did.
    pub pushes: super::pushes::PushTally,
    pending: TimelineRow,
    /// Histograms of the current interval of the `.hlog` export.
    interval: BTreeMap<Metric, Histogram<u64>>,
    interval_start_s: u64,
    /// Interval log lines so far: a few hundred bytes per metric per interval.
    hlog: Vec<u8>,
    last_bytes: u64,
    /// Where closed seconds are published, and the second being gathered
    /// (only when someone decides during the run: see [`super::live`]).
    live: Option<(live::Feed, live::LiveSecond)>,
    /// Where the counts go once a second for `--metrics-listen`.
    exported: Option<Arc<super::exporter::Exported>>,
}

impl Recorder {
    pub fn new(clusters: u32, started: Instant) -> Self {
        let histograms = Metric::ALL
            .iter()
            .map(|m| {
                (
                    *m,
                    Histogram::new_with_bounds(1, MAX_MICROS, 3)
                        .expect("static histogram bounds are valid"),
                )
            })
            .collect();
        Recorder {
            started,
            histograms,
            pulls_started: 0,
            pulls_completed: 0,
            pulls_failed: 0,
            layers_completed: 0,
            layers_failed: 0,
            retries: 0,
            retries_by_class: BTreeMap::new(),
            retries_at_progress: [0; 10],
            kubelet_retries: 0,
            redirects: 0,
            redirects_to_storage: 0,
            attempts_per_layer: BTreeMap::new(),
            bytes_wasted: 0,
            bytes_pulled_ok: 0,
            errors: BTreeMap::new(),
            clusters: (0..clusters)
                .map(|c| ClusterStat {
                    cluster: c,
                    ..Default::default()
                })
                .collect(),
            timeline: Vec::new(),
            fd_peak: 0,
            connections_peak: 0,
            connections: ConnectionTotals::default(),
            sampled_for: Duration::ZERO,
            cores: None,
            harness_cpu_seconds: 0.0,
            pushes: Default::default(),
            pending: TimelineRow::default(),
            interval: Metric::ALL
                .iter()
                .map(|m| {
                    (
                        *m,
                        Histogram::new_with_bounds(1, MAX_MICROS, 3)
                            .expect("static histogram bounds are valid"),
                    )
                })
                .collect(),
            interval_start_s: 0,
            hlog: Vec::new(),
            last_bytes: 0,
            live: None,
            exported: None,
        }
    }

    /// Publishes every closed second on `feed`, with the latencies observed in it.
    pub fn with_live(mut self, feed: live::Feed) -> Self {
        self.live = Some((feed, live::LiveSecond::default()));
        self
    }

    /// Publishes the counts to `--metrics-listen` as each second closes.
    pub fn with_exporter(mut self, exported: Arc<super::exporter::Exported>) -> Self {
        self.exported = Some(exported);
        self
    }

    fn observe(&mut self, metric: Metric, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        if let Some(h) = self.histograms.get_mut(&metric) {
            h.saturating_record(micros);
        }
        if let Some(h) = self.interval.get_mut(&metric) {
            h.saturating_record(micros);
        }
        if let Some((_, second)) = &mut self.live {
            second.observe(metric, micros);
        }
    }

    /// Appends the interval histograms since the last flush to the interval log (one tagged
    /// line per metric that saw values) and starts new intervals.
    fn flush_interval(&mut self, until_s: u64) {
        let start = Duration::from_secs(self.interval_start_s);
        let length = Duration::from_secs(until_s.saturating_sub(self.interval_start_s).max(1));
        let mut lines = Vec::new();
        let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
        if let Ok(mut log) =
            hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut lines, &mut serializer)
        {
            for (metric, h) in self.interval.iter_mut() {
                if !h.is_empty() {
                    let tag = hdrhistogram::serialization::interval_log::Tag::new(metric.key());
                    let _ = log.write_histogram(h, start, length, tag);
                    h.reset();
                }
            }
        }
        // The writer repeats its divisor comment each time; the file's header has it once.
        for line in lines
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| !l.starts_with(b"#"))
        {
            self.hlog.extend_from_slice(line);
        }
        self.interval_start_s = until_s;
    }

    /// The interval log body (no header): `Tag=<metric>,start,length,max_ms,histogram` lines.
    pub fn interval_log(&self) -> &[u8] {
        &self.hlog
    }

    fn cluster(&mut self, c: u32) -> Option<&mut ClusterStat> {
        self.clusters.get_mut(c as usize)
    }

    /// Folds one event into the counters and histograms.
    pub fn record(&mut self, event: Event) {
        match event {
            Event::Exchange {
                kind,
                connect,
                ttfb,
            } => self.on_exchange(kind, connect, ttfb),
            Event::Fault {
                fault,
                kind,
                cluster,
                at,
            } => self.on_fault(fault, kind, cluster, at),
            Event::Retry { class, progress } => self.on_retry(class, progress),
            Event::Connections(tally) => self.on_connections(tally),
            Event::LayerDone {
                ok,
                took,
                attempts,
                retry_latency,
                wasted,
            } => self.on_layer_done(ok, took, attempts, retry_latency, wasted),
            Event::Redirect { to_storage } => {
                self.redirects += 1;
                self.redirects_to_storage += u64::from(to_storage);
            }
            Event::PullStarted { cluster } => self.on_pull_started(cluster),
            Event::PullDone {
                cluster,
                ok,
                from_scheduled,
                from_start,
                bytes,
                retry_cost,
                kubelet_retry,
            } => {
                self.on_pull_retried(retry_cost, kubelet_retry);
                self.on_pull_done(cluster, ok, from_scheduled, from_start, bytes);
            }
            Event::PullRecovered { took } => self.observe(Metric::PullRetry, took),
            Event::UploadRequest { step, took } => {
                self.pushes.on_request(step);
                self.observe(Metric::Upload, took);
            }
            Event::PushFault { code, retried } => self.pushes.on_fault(code, retried),
            Event::BlobPushed {
                how,
                bytes,
                retry_latency,
                ..
            } => {
                self.pushes.on_blob(how, bytes);
                if let Some(r) = retry_latency {
                    self.observe(Metric::PushRetry, r);
                }
            }
            Event::PushStarted => self.pushes.on_started(Instant::now()),
            Event::PushDone { ok, took } => {
                self.pushes.on_done(ok, Instant::now());
                if ok {
                    self.observe(Metric::Push, took);
                }
            }
        }
    }

    /// A response head arrived: its connect time (when it opened a connection), and its
    /// time to first byte under the metric of its kind (pings, tokens and uploads have none).
    fn on_exchange(&mut self, kind: ExchangeKind, connect: Option<Duration>, ttfb: Duration) {
        if let Some(connect) = connect {
            self.observe(Metric::Connect, connect);
            if kind == ExchangeKind::Storage {
                self.observe(Metric::StorageConnect, connect);
            }
        }
        match kind {
            ExchangeKind::Blob => self.observe(Metric::Ttfb, ttfb),
            ExchangeKind::Storage => self.observe(Metric::StorageTtfb, ttfb),
            ExchangeKind::Manifest => self.observe(Metric::Manifest, ttfb),
            ExchangeKind::Ping
            | ExchangeKind::Token
            | ExchangeKind::Upload
            | ExchangeKind::Task => {}
        }
    }

    /// An exchange failed: the error table (the first fault of a class keeps its
    /// detail), this second's error counts, and its cluster's.
    fn on_fault(&mut self, fault: Fault, kind: ExchangeKind, cluster: u32, at: Instant) {
        let t = at.saturating_duration_since(self.started).as_secs_f64();
        let stat = self.errors.entry(fault.class).or_insert_with(|| ErrorStat {
            count: 0,
            first_s: t,
            last_s: t,
            sample: fault.detail.clone(),
            phase: fault.phase,
            request: kind,
        });
        stat.count += 1;
        stat.last_s = stat.last_s.max(t);
        self.pending.errors += 1;
        *self
            .pending
            .errors_by_class
            .entry(fault.class.key())
            .or_default() += 1;
        if let Some(c) = self.cluster(cluster) {
            c.errors += 1;
        }
    }

    /// A pull's connections: added to the run's, each TLS handshake into its histogram.
    fn on_connections(&mut self, tally: crate::net::ConnectionTally) {
        let c = &mut self.connections;
        c.opened += tally.opened;
        c.requests += tally.requests;
        c.most_requests = c.most_requests.max(tally.most_requests);
        c.https_probes += tally.https_probes;
        for d in tally.tls_handshakes {
            self.observe(Metric::TlsHandshake, d);
        }
    }

    /// A blob will be tried again: by class, and by how far it had come.
    fn on_retry(&mut self, class: FaultClass, progress: f64) {
        // Ten buckets of the blob's length: the seed's "restarts at 70-80 %" shows here.
        let bucket = ((progress.clamp(0.0, 1.0) * 10.0) as usize).min(9);
        self.retries_at_progress[bucket] += 1;
        self.retries += 1;
        self.pending.retries += 1;
        *self.retries_by_class.entry(class.key()).or_default() += 1;
    }

    /// A blob finished, well or not: its time, attempts, what retrying cost and
    /// the bytes it threw away.
    fn on_layer_done(
        &mut self,
        ok: bool,
        took: Duration,
        attempts: u32,
        retry_latency: Option<Duration>,
        wasted: u64,
    ) {
        if ok {
            self.layers_completed += 1;
            self.observe(Metric::Layer, took);
        } else {
            self.layers_failed += 1;
        }
        // Failed layers too: what retrying cost before giving up (seed 001's signature).
        if let Some(r) = retry_latency {
            self.observe(Metric::Retry, r);
        }
        *self.attempts_per_layer.entry(attempts).or_default() += 1;
        self.bytes_wasted += wasted;
        if let Some((_, second)) = &mut self.live {
            second.layers_completed += u64::from(ok);
            second.layers_failed += u64::from(!ok);
            second.bytes_wasted += wasted;
        }
    }

    fn on_pull_started(&mut self, cluster: u32) {
        self.pulls_started += 1;
        if let Some((_, second)) = &mut self.live {
            second.pulls_started += 1;
        }
        if let Some(c) = self.cluster(cluster) {
            c.pulls_started += 1;
        }
    }

    /// What retrying meant for a pull that ended: its retry cost, and whether it
    /// was a kubelet's re-pull.
    fn on_pull_retried(&mut self, retry_cost: Option<Duration>, kubelet_retry: bool) {
        if let Some(cost) = retry_cost {
            self.observe(Metric::RetryPerPull, cost);
        }
        if kubelet_retry {
            self.kubelet_retries += 1;
        }
    }

    /// A pull ended: totals, this second's counts, its latencies when it completed,
    /// and its cluster's row (bytes of failed pulls count there too).
    fn on_pull_done(
        &mut self,
        cluster: u32,
        ok: bool,
        from_scheduled: Duration,
        from_start: Duration,
        bytes: u64,
    ) {
        if ok {
            self.pulls_completed += 1;
            self.pending.pulls_completed += 1;
            self.bytes_pulled_ok += bytes;
            self.observe(Metric::Pull, from_scheduled);
            self.observe(Metric::PullActual, from_start);
        } else {
            self.pulls_failed += 1;
            self.pending.pulls_failed += 1;
        }
        if let Some(c) = self.cluster(cluster) {
            if ok {
                c.pulls_completed += 1;
                c.pull_max_ms = c.pull_max_ms.max(from_scheduled.as_secs_f64() * 1000.0);
            } else {
                c.pulls_failed += 1;
            }
            c.bytes += bytes;
        }
    }

    /// Closes one second into a timeline row: the sampler's levels and bytes, and the
    /// event counts the recorder gathered meanwhile.
    fn close_row(&mut self, sample: Sample) {
        let mut row = std::mem::take(&mut self.pending);
        row.t = sample.second;
        row.active_pulls = sample.active_pulls;
        row.connections = sample.connections;
        row.fds = sample.fds;
        row.harness_cpu_percent = sample.harness.figures.cpu_percent;
        row.harness_cpu_wait_percent = sample.harness.figures.cpu_wait_percent;
        row.timer_lag_ms = sample.harness.figures.timer_lag_ms;
        self.harness_cpu_seconds = self.harness_cpu_seconds.max(sample.harness.cpu_seconds);
        row.bytes = sample.bytes.saturating_sub(self.last_bytes);
        self.last_bytes = self.last_bytes.max(sample.bytes);
        self.fd_peak = self.fd_peak.max(sample.fds);
        self.connections_peak = self.connections_peak.max(sample.connections);
        self.sampled_for = self.sampled_for.max(sample.at);
        if row.t.is_multiple_of(HLOG_INTERVAL_S) {
            self.flush_interval(row.t);
        }
        if let Some((feed, second)) = &mut self.live {
            let mut closed = std::mem::take(second);
            closed.row = row.clone();
            // No listener left is not an error: the run goes on without them.
            let _ = feed.send(std::sync::Arc::new(closed));
        }
        self.timeline.push(row);
        if let Some(exported) = &self.exported {
            exported.publish(super::exporter::Totals::of(self));
        }
    }

    /// Total body bytes received (including wasted ones) as of the last sample.
    pub fn bytes_downloaded(&self) -> u64 {
        self.last_bytes
    }
}

/// One second of levels, as the sampler thread closes it.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    second: u64,
    /// When the second closed, since the start (the last one may close early).
    at: Duration,
    /// The highest of the second's peeks.
    active_pulls: i64,
    /// Most connections open at once in the second (the gauge's window).
    connections: i64,
    /// The harness's fds of the second ([`fds::second_fds`]).
    fds: u64,
    /// Body bytes received since the start, at the end of the second.
    bytes: u64,
    /// The harness's CPU and timer lag in the second.
    harness: HarnessSecond,
}

/// What the peeks of one second saw.
#[derive(Debug, Default)]
struct Peeks {
    active_pulls: i64,
    /// Most fds counted in `/proc/self/fd`.
    counted_fds: u64,
    /// Fewest fds that were not client connections.
    others: Option<u64>,
    bytes: u64,
}

impl Peeks {
    fn peek(&mut self, gauges: &Gauges) {
        let before = gauges.connections.current();
        let fds = fds::open_fds();
        // Connections read on both sides of the listing: the larger count keeps a
        // burst during the listing from passing for other fds.
        let connections = u64::try_from(before.max(gauges.connections.current())).unwrap_or(0);
        self.counted_fds = self.counted_fds.max(fds);
        let others = fds.saturating_sub(connections);
        self.others = Some(self.others.map_or(others, |o| o.min(others)));
        self.active_pulls = self
            .active_pulls
            .max(gauges.active_pulls.load(Ordering::Relaxed));
        self.bytes = gauges.bytes.load(Ordering::Relaxed);
    }

    /// The second's sample, with the connection gauge's window of that second
    /// (the harness's figures are added by the sampler).
    fn close(self, second: u64, at: Duration, window: ConnectionWindow) -> Sample {
        Sample {
            second,
            at,
            active_pulls: self.active_pulls,
            connections: window.connections,
            fds: fds::second_fds(
                self.counted_fds,
                window.fds_at_open,
                self.others.unwrap_or(0),
                window.connections,
            ),
            bytes: self.bytes,
            harness: HarnessSecond::default(),
        }
    }
}

/// Reads the gauges four times a second on its own OS thread and sends one sample per
/// second. A thread rather than a task: with thousands of busy download tasks the
/// runtime may run a timer late, and the timeline must stay one row per second.
fn spawn_sampler(
    gauges: Arc<Gauges>,
    started: Instant,
    mut probe: SecondProbe,
    samples: mpsc::UnboundedSender<Sample>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let started = started.into_std();
    std::thread::spawn(move || {
        // The first window runs from the gauge's creation: the preflight's few
        // connections are in it, and no open of the first nodes can be missed.
        let mut current = Peeks::default();
        let mut peeks = 0u64;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            current.peek(&gauges);
            peeks += 1;
            if peeks.is_multiple_of(PEEKS_PER_ROW) || stopping {
                let mut sample = std::mem::take(&mut current).close(
                    peeks.div_ceil(PEEKS_PER_ROW),
                    started.elapsed(),
                    gauges.connections.take_window(),
                );
                sample.harness = probe.close();
                gauges.fds.set(sample.fds);
                if samples.send(sample).is_err() || stopping {
                    return;
                }
            }
            // Sleep to the next quarter on the run's clock, so the rows do not drift.
            let next = started + PEEK * (peeks as u32 + 1);
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
    })
}

/// Runs the recorder until every sender is gone or `stop` fires, then closes the last row.
pub async fn run(
    mut recorder: Recorder,
    mut events: mpsc::Receiver<Event>,
    gauges: Arc<Gauges>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Recorder {
    let (sample_tx, mut samples) = mpsc::unbounded_channel();
    let stop_sampler = Arc::new(AtomicBool::new(false));
    // The timer-lag probe runs on this runtime, the fleet's: its lag is what node tasks suffer.
    let lag = TimerLag::new();
    let lag_probe = tokio::spawn(lag.clone().probe());
    let cores = harness::usable_cores();
    recorder.cores = Some(cores);
    let sampler = spawn_sampler(
        gauges.clone(),
        recorder.started,
        SecondProbe::start(cores, lag, gauges.harness.clone()),
        sample_tx,
        stop_sampler.clone(),
    );
    loop {
        tokio::select! {
            // Samples first: one a second, so they cannot starve events.
            biased;
            Some(sample) = samples.recv() => recorder.close_row(sample),
            event = events.recv() => match event {
                Some(e) => {
                    gauges.tally(&e);
                    recorder.record(e);
                }
                None => break,
            },
            _ = &mut stop => {
                // Drain what the nodes already sent before they were stopped.
                while let Ok(e) = events.try_recv() {
                    gauges.tally(&e);
                    recorder.record(e);
                }
                break;
            }
        }
    }
    // The sampler's last sample closes the partial last second.
    stop_sampler.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || sampler.join()).await;
    lag_probe.abort();
    while let Ok(sample) = samples.try_recv() {
        recorder.close_row(sample);
    }
    let last = recorder.timeline.last().map(|r| r.t).unwrap_or(0);
    if last > recorder.interval_start_s {
        recorder.flush_interval(last);
    }
    recorder
}

#[cfg(test)]
mod tests {
    //! `record` fed with synthetic events built as the fleet and the session build
    //! them, and `close_row` fed with samples as the sampler sends them.

    use super::*;
    use crate::net::{Fault, FaultClass, Phase};

    fn recorder(clusters: u32) -> Recorder {
        Recorder::new(clusters, Instant::now())
    }

    fn count(rec: &Recorder, metric: Metric) -> u64 {
        rec.histograms[&metric].len()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The fields of an `Event::PullDone`, so a test sets only those it is about.
    struct PullEnd {
        cluster: u32,
        ok: bool,
        from_scheduled: Duration,
        from_start: Duration,
        bytes: u64,
        retry_cost: Option<Duration>,
        kubelet_retry: bool,
    }

    impl PullEnd {
        fn event(self) -> Event {
            Event::PullDone {
                cluster: self.cluster,
                ok: self.ok,
                from_scheduled: self.from_scheduled,
                from_start: self.from_start,
                bytes: self.bytes,
                retry_cost: self.retry_cost,
                kubelet_retry: self.kubelet_retry,
            }
        }
    }

    /// A first pull (not a kubelet's re-pull) that did not retry, 1.5 s after its first
    /// request and 2 s after its scheduled start.
    fn pull_end(cluster: u32, ok: bool, bytes: u64) -> PullEnd {
        PullEnd {
            cluster,
            ok,
            from_scheduled: ms(2_000),
            from_start: ms(1_500),
            bytes,
            retry_cost: None,
            kubelet_retry: false,
        }
    }

    fn pull_done(cluster: u32, ok: bool, bytes: u64) -> Event {
        pull_end(cluster, ok, bytes).event()
    }

    fn layer_done(ok: bool, attempts: u32, retry: Option<u64>, wasted: u64) -> Event {
        Event::LayerDone {
            ok,
            took: ms(300),
            attempts,
            retry_latency: retry.map(ms),
            wasted,
        }
    }

    fn fault(rec: &Recorder, class: FaultClass, detail: &str, cluster: u32, at_ms: u64) -> Event {
        Event::Fault {
            fault: Fault::new(class, Phase::Body, detail),
            kind: ExchangeKind::Blob,
            cluster,
            at: rec.started + ms(at_ms),
        }
    }

    fn sample(second: u64, bytes: u64) -> Sample {
        Sample {
            second,
            at: Duration::from_secs(second),
            active_pulls: 3,
            connections: 5,
            fds: 40,
            bytes,
            harness: HarnessSecond::default(),
        }
    }

    #[test]
    fn pulls_count_started_completed_and_failed_overall_and_per_cluster() {
        let mut rec = recorder(2);
        rec.record(Event::PullStarted { cluster: 0 });
        rec.record(Event::PullStarted { cluster: 1 });
        rec.record(Event::PullStarted { cluster: 1 });
        rec.record(pull_done(0, true, 100));
        rec.record(pull_done(1, false, 10));
        assert_eq!(
            (rec.pulls_started, rec.pulls_completed, rec.pulls_failed),
            (3, 1, 1)
        );
        assert_eq!(rec.bytes_pulled_ok, 100);
        let (c0, c1) = (&rec.clusters[0], &rec.clusters[1]);
        assert_eq!(
            (c0.pulls_started, c0.pulls_completed, c0.pulls_failed),
            (1, 1, 0)
        );
        assert_eq!(
            (c1.pulls_started, c1.pulls_completed, c1.pulls_failed),
            (2, 0, 1)
        );
        // A cluster's bytes include its failed pulls'; only completed pulls set its slowest.
        assert_eq!((c0.bytes, c1.bytes), (100, 10));
        assert_eq!((c0.pull_max_ms, c1.pull_max_ms), (2_000.0, 0.0));
        // Only completed pulls have pull latencies.
        assert_eq!(count(&rec, Metric::Pull), 1);
        assert_eq!(count(&rec, Metric::PullActual), 1);
        let pull = &rec.histograms[&Metric::Pull];
        assert!(pull.equivalent(pull.max(), 2_000_000), "{}", pull.max());
        let actual = &rec.histograms[&Metric::PullActual];
        assert!(
            actual.equivalent(actual.max(), 1_500_000),
            "{}",
            actual.max()
        );
        assert_eq!(
            (rec.pending.pulls_completed, rec.pending.pulls_failed),
            (1, 1)
        );
    }

    #[test]
    fn a_cluster_outside_the_plan_counts_in_the_totals_only() {
        let mut rec = recorder(1);
        rec.record(Event::PullStarted { cluster: 5 });
        rec.record(pull_done(5, true, 7));
        rec.record(fault(&rec, FaultClass::Dns, "no such host", 5, 0));
        assert_eq!((rec.pulls_started, rec.pulls_completed), (1, 1));
        assert_eq!(rec.errors[&FaultClass::Dns].count, 1);
        assert_eq!(rec.clusters.len(), 1);
        assert_eq!(rec.clusters[0].pulls_started, 0);
        assert_eq!(rec.clusters[0].errors, 0);
    }

    #[test]
    fn the_slowest_pull_of_a_cluster_is_kept() {
        let mut rec = recorder(1);
        for secs in [3, 9, 4] {
            rec.record(
                PullEnd {
                    from_scheduled: Duration::from_secs(secs),
                    ..pull_end(0, true, 1)
                }
                .event(),
            );
        }
        assert_eq!(rec.clusters[0].pull_max_ms, 9_000.0);
        assert_eq!(rec.clusters[0].pulls_completed, 3);
    }

    #[test]
    fn kubelet_retries_and_retry_cost_count_for_failed_pulls_too() {
        let mut rec = recorder(1);
        rec.record(
            PullEnd {
                retry_cost: Some(ms(800)),
                ..pull_end(0, false, 0)
            }
            .event(),
        );
        rec.record(
            PullEnd {
                kubelet_retry: true,
                ..pull_end(0, false, 0)
            }
            .event(),
        );
        rec.record(
            PullEnd {
                kubelet_retry: true,
                retry_cost: Some(ms(50)),
                ..pull_end(0, true, 0)
            }
            .event(),
        );
        assert_eq!(rec.kubelet_retries, 2);
        assert_eq!(count(&rec, Metric::RetryPerPull), 2);
        // Only a recovery is a kubelet's pull retry latency.
        assert_eq!(count(&rec, Metric::PullRetry), 0);
        rec.record(Event::PullRecovered { took: ms(25_000) });
        assert_eq!(count(&rec, Metric::PullRetry), 1);
        // 3 significant figures: within 0.1 % of 25 s.
        let max_ms = rec.histograms[&Metric::PullRetry].max() / 1000;
        assert!((24_975..=25_025).contains(&max_ms), "{max_ms}");
        assert_eq!(count(&rec, Metric::Pull), 1);
        assert_eq!((rec.pulls_completed, rec.pulls_failed), (1, 2));
    }

    #[test]
    fn layers_count_attempts_retry_latency_and_wasted_bytes() {
        let mut rec = recorder(1);
        rec.record(layer_done(true, 1, None, 0));
        rec.record(layer_done(true, 1, None, 0));
        rec.record(layer_done(true, 3, Some(1_200), 500));
        // A layer that gave up: no layer latency, but what retrying cost before it did.
        rec.record(layer_done(false, 5, Some(9_000), 200));
        assert_eq!((rec.layers_completed, rec.layers_failed), (3, 1));
        assert_eq!(
            rec.attempts_per_layer,
            BTreeMap::from([(1, 2), (3, 1), (5, 1)])
        );
        assert_eq!(rec.bytes_wasted, 700);
        assert_eq!(count(&rec, Metric::Layer), 3);
        assert_eq!(count(&rec, Metric::Retry), 2);
        let retry = &rec.histograms[&Metric::Retry];
        assert!(retry.equivalent(retry.max(), 9_000_000), "{}", retry.max());
    }

    #[test]
    fn retries_count_by_class_and_by_progress_bucket() {
        let mut rec = recorder(1);
        for (class, progress) in [
            (FaultClass::ConnectionReset, 0.0),
            (FaultClass::UnexpectedEof, 0.75),
            (FaultClass::UnexpectedEof, 0.7999),
            (FaultClass::Http(503), 0.1),
            // The ends: a whole blob lands in the last bucket, nonsense is clamped.
            (FaultClass::DigestMismatch, 1.0),
            (FaultClass::ReadTimeout, 1.5),
            (FaultClass::ReadTimeout, -0.2),
        ] {
            rec.record(Event::Retry { class, progress });
        }
        assert_eq!(rec.retries, 7);
        assert_eq!(rec.pending.retries, 7);
        assert_eq!(rec.retries_at_progress, [2, 1, 0, 0, 0, 0, 0, 2, 0, 2]);
        let by_class: Vec<(&str, u64)> = rec
            .retries_by_class
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            by_class,
            [
                ("connection_reset", 1),
                ("digest_mismatch", 1),
                ("http_503", 1),
                ("read_timeout", 2),
                ("unexpected_eof", 2),
            ]
        );
    }

    #[test]
    fn faults_keep_first_and_last_time_and_the_first_sample() {
        let mut rec = recorder(2);
        rec.record(fault(
            &rec,
            FaultClass::UnexpectedEof,
            "at byte 10",
            0,
            1_500,
        ));
        rec.record(fault(
            &rec,
            FaultClass::UnexpectedEof,
            "at byte 99",
            1,
            4_250,
        ));
        // Events from different nodes may arrive out of order: last_s never goes back.
        rec.record(fault(
            &rec,
            FaultClass::UnexpectedEof,
            "at byte 5",
            1,
            2_000,
        ));
        rec.record(Event::Fault {
            fault: Fault::new(FaultClass::Http(404), Phase::Request, "MANIFEST_UNKNOWN"),
            kind: ExchangeKind::Manifest,
            cluster: 0,
            at: rec.started + ms(3_000),
        });
        let eof = &rec.errors[&FaultClass::UnexpectedEof];
        assert_eq!(eof.count, 3);
        assert_eq!((eof.first_s, eof.last_s), (1.5, 4.25));
        assert_eq!(eof.sample, "at byte 10");
        assert_eq!(eof.phase, Phase::Body);
        assert_eq!(eof.request, ExchangeKind::Blob);
        let not_found = &rec.errors[&FaultClass::Http(404)];
        assert_eq!(
            (not_found.count, not_found.first_s, not_found.last_s),
            (1, 3.0, 3.0)
        );
        assert_eq!(not_found.sample, "MANIFEST_UNKNOWN");
        assert_eq!(not_found.phase, Phase::Request);
        assert_eq!(not_found.request, ExchangeKind::Manifest);
        assert_eq!(rec.pending.errors, 4);
        assert_eq!(
            rec.pending.errors_by_class,
            BTreeMap::from([
                ("http_404".to_string(), 1),
                ("unexpected_eof".to_string(), 3)
            ])
        );
        assert_eq!((rec.clusters[0].errors, rec.clusters[1].errors), (2, 2));
    }

    #[test]
    fn a_fault_stamped_before_the_start_counts_at_zero() {
        let started = Instant::now() + Duration::from_secs(60);
        let mut rec = Recorder::new(1, started);
        rec.record(Event::Fault {
            fault: Fault::new(FaultClass::ConnectRefused, Phase::Connect, "refused"),
            kind: ExchangeKind::Ping,
            cluster: 0,
            at: Instant::now(),
        });
        let stat = &rec.errors[&FaultClass::ConnectRefused];
        assert_eq!((stat.first_s, stat.last_s), (0.0, 0.0));
    }

    #[test]
    fn storage_hops_are_timed_apart_from_the_registrys_answers_and_redirects_counted() {
        let mut rec = recorder(1);
        // The registry's 307, then the storage's answer on a new connection.
        rec.record(Event::Exchange {
            kind: ExchangeKind::Blob,
            connect: Some(ms(1)),
            ttfb: ms(5),
        });
        rec.record(Event::Redirect { to_storage: true });
        rec.record(Event::Exchange {
            kind: ExchangeKind::Storage,
            connect: Some(ms(2)),
            ttfb: ms(40),
        });
        // A redirect within the registry's own host.
        rec.record(Event::Redirect { to_storage: false });
        assert_eq!(count(&rec, Metric::Ttfb), 1);
        assert_eq!(count(&rec, Metric::StorageTtfb), 1);
        assert_eq!(count(&rec, Metric::StorageConnect), 1);
        // Every connection opened is still under `connect`.
        assert_eq!(count(&rec, Metric::Connect), 2);
        assert!(rec.histograms[&Metric::StorageTtfb].max() >= 40_000);
        assert_eq!((rec.redirects, rec.redirects_to_storage), (2, 1));
    }

    #[test]
    fn exchanges_feed_connect_and_the_ttfb_metric_of_their_kind() {
        let mut rec = recorder(1);
        for kind in [
            ExchangeKind::Blob,
            ExchangeKind::Blob,
            ExchangeKind::Manifest,
            ExchangeKind::Ping,
            ExchangeKind::Token,
            ExchangeKind::Upload,
        ] {
            rec.record(Event::Exchange {
                kind,
                connect: Some(Duration::ZERO),
                ttfb: ms(20),
            });
        }
        assert_eq!(count(&rec, Metric::Connect), 6);
        assert_eq!(count(&rec, Metric::Ttfb), 2);
        assert_eq!(count(&rec, Metric::Manifest), 1);
        // A reused or instant connection still counts, at the histogram's floor.
        assert_eq!(rec.histograms[&Metric::Connect].max(), 1);
        for metric in [
            Metric::Pull,
            Metric::Layer,
            Metric::Retry,
            Metric::RetryPerPull,
            Metric::PullRetry,
        ] {
            assert_eq!(count(&rec, metric), 0, "{metric:?}");
        }
    }

    #[test]
    fn pulls_connection_tallies_add_up_and_tls_handshakes_are_timed() {
        let mut rec = recorder(1);
        rec.record(Event::Connections(crate::net::ConnectionTally {
            opened: 8,
            requests: 7,
            most_requests: 1,
            https_probes: 1,
            tls_handshakes: vec![],
        }));
        rec.record(Event::Connections(crate::net::ConnectionTally {
            opened: 4,
            requests: 6,
            most_requests: 3,
            https_probes: 0,
            tls_handshakes: vec![ms(3), ms(5)],
        }));
        assert_eq!(
            rec.connections,
            ConnectionTotals {
                opened: 12,
                requests: 13,
                most_requests: 3,
                https_probes: 1,
            }
        );
        assert_eq!(count(&rec, Metric::TlsHandshake), 2);
        // A request on a kept-alive connection has no connect time to record.
        rec.record(Event::Exchange {
            kind: ExchangeKind::Blob,
            connect: None,
            ttfb: ms(20),
        });
        assert_eq!(count(&rec, Metric::Connect), 0);
        assert_eq!(count(&rec, Metric::Ttfb), 1);
    }

    /// With a live feed, each closed second is published with its row, the pulls
    /// that started in it and the latencies observed in it, and no more.
    #[test]
    fn closed_seconds_are_published_live_with_their_own_latencies() {
        let feed = live::feed();
        let mut listener = feed.subscribe();
        let mut rec = recorder(1).with_live(feed);
        rec.record(Event::PullStarted { cluster: 0 });
        rec.record(pull_done(0, true, 10));
        rec.record(layer_done(false, 2, Some(5), 7));
        rec.close_row(sample(1, 1_000));
        rec.close_row(sample(2, 1_000));
        let first = listener.try_recv().expect("the first second is published");
        assert_eq!(first.row.t, 1);
        assert_eq!(first.row.pulls_completed, 1);
        assert_eq!(
            (first.pulls_started, first.layers_failed, first.bytes_wasted),
            (1, 1, 7)
        );
        assert_eq!(first.latencies.get("pull").map(Vec::len), Some(1));
        let second = listener.try_recv().expect("the second second is published");
        assert_eq!((second.row.t, second.pulls_started), (2, 0));
        assert!(second.latencies.is_empty());
        assert!(listener.try_recv().is_err());
    }

    #[test]
    fn a_closed_second_takes_the_events_since_the_last_and_the_samples_levels() {
        let mut rec = recorder(1);
        rec.record(pull_done(0, true, 10));
        rec.record(Event::Retry {
            class: FaultClass::ConnectionReset,
            progress: 0.5,
        });
        rec.record(fault(&rec, FaultClass::ConnectionReset, "reset", 0, 200));
        rec.close_row(sample(1, 1_000));
        rec.record(pull_done(0, false, 0));
        rec.close_row(Sample {
            fds: 90,
            connections: 12,
            ..sample(2, 1_500)
        });
        rec.close_row(Sample {
            fds: 10,
            connections: 2,
            at: ms(2_400),
            ..sample(3, 1_500)
        });

        let rows = &rec.timeline;
        assert_eq!(rows.iter().map(|r| r.t).collect::<Vec<_>>(), [1, 2, 3]);
        // Bytes are per second, from the sampler's running total.
        assert_eq!(
            rows.iter().map(|r| r.bytes).collect::<Vec<_>>(),
            [1_000, 500, 0]
        );
        assert_eq!(rec.bytes_downloaded(), 1_500);
        let first = &rows[0];
        assert_eq!(
            (first.active_pulls, first.connections, first.fds),
            (3, 5, 40)
        );
        assert_eq!((first.pulls_completed, first.pulls_failed), (1, 0));
        assert_eq!((first.retries, first.errors), (1, 1));
        assert_eq!(
            first.errors_by_class,
            BTreeMap::from([("connection_reset".to_string(), 1)])
        );
        // The next row starts from nothing: only what happened in its own second.
        let second = &rows[1];
        assert_eq!((second.pulls_completed, second.pulls_failed), (0, 1));
        assert_eq!((second.retries, second.errors), (0, 0));
        assert!(second.errors_by_class.is_empty());
        assert_eq!((rows[2].pulls_completed, rows[2].pulls_failed), (0, 0));
        // Peaks over the whole run: the highest rows.
        assert_eq!(rec.fd_peak, 90);
        assert_eq!(rec.connections_peak, 12);
        assert_eq!(rows.iter().map(|r| r.connections).max(), Some(12));
        assert_eq!(rec.sampled_for, ms(2_400));
        // The totals are not reset by closing rows.
        assert_eq!(
            (rec.pulls_completed, rec.pulls_failed, rec.retries),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_closed_second_carries_the_harness_figures_and_unknown_stays_unknown() {
        let mut rec = recorder(1);
        let busy = HarnessSecond {
            figures: harness::Second {
                cpu_percent: Some(97.5),
                cpu_wait_percent: Some(4.0),
                timer_lag_ms: Some(130.0),
            },
            cpu_seconds: 2.5,
        };
        rec.close_row(Sample {
            harness: busy,
            ..sample(1, 0)
        });
        rec.close_row(sample(2, 0));
        let rows = &rec.timeline;
        assert_eq!(
            (
                rows[0].harness_cpu_percent,
                rows[0].harness_cpu_wait_percent,
                rows[0].timer_lag_ms
            ),
            (Some(97.5), Some(4.0), Some(130.0))
        );
        assert_eq!(
            (
                rows[1].harness_cpu_percent,
                rows[1].harness_cpu_wait_percent,
                rows[1].timer_lag_ms
            ),
            (None, None, None)
        );
        // The CPU total is the latest sample's, never lowered by a second without one.
        assert_eq!(rec.harness_cpu_seconds, 2.5);
    }

    #[test]
    fn a_burst_of_connections_between_two_peeks_is_in_its_row_and_the_peaks() {
        let gauges = Gauges::default();
        let _ = gauges.connections.take_window();
        let mut peeks = Peeks::default();
        peeks.peek(&gauges);
        // 200 connections open and close between two looks: no peek sees them.
        for fd in 0..200 {
            gauges.connections.opened(Some(fd));
        }
        for _ in 0..200 {
            gauges.connections.closed();
        }
        peeks.peek(&gauges);
        let first = peeks.close(1, ms(1_000), gauges.connections.take_window());
        assert_eq!(first.connections, 200);
        assert!(first.fds >= 200, "{first:?}");

        // The next second opens nothing: its window starts at the level, 0.
        let mut peeks = Peeks::default();
        peeks.peek(&gauges);
        let second = peeks.close(2, ms(2_000), gauges.connections.take_window());
        assert_eq!(second.connections, 0);

        let mut rec = recorder(1);
        rec.close_row(first);
        rec.close_row(second);
        assert_eq!(rec.connections_peak, 200);
        assert_eq!(rec.fd_peak, first.fds);
        let rows = &rec.timeline;
        assert_eq!(rows.iter().map(|r| r.connections).max(), Some(200));
        assert_eq!(rows.iter().map(|r| r.fds).max(), Some(rec.fd_peak));
        assert!(rec.fd_peak >= rec.connections_peak as u64);
    }

    #[test]
    fn connections_held_across_seconds_count_in_each() {
        let gauges = Gauges::default();
        for _ in 0..5 {
            gauges.connections.opened(None);
        }
        let mut rec = recorder(1);
        for second in 1..=3 {
            let mut peeks = Peeks::default();
            peeks.peek(&gauges);
            rec.close_row(peeks.close(second, ms(second * 1000), gauges.connections.take_window()));
        }
        assert!(rec.timeline.iter().all(|r| r.connections == 5));
        assert!(rec.timeline.iter().all(|r| r.fds >= 5));
    }

    #[test]
    fn every_fifth_second_flushes_an_interval_of_the_metrics_that_saw_values() {
        let mut rec = recorder(1);
        rec.record(pull_done(0, true, 10));
        for second in 1..=4 {
            rec.close_row(sample(second, 0));
        }
        assert!(rec.interval_log().is_empty());
        rec.close_row(sample(5, 0));
        let log = String::from_utf8(rec.interval_log().to_vec()).unwrap();
        let tags: Vec<&str> = log
            .lines()
            .map(|l| l.split(',').next().unwrap_or(""))
            .collect();
        assert_eq!(tags, ["Tag=pull", "Tag=pull_actual"], "{log}");
        // The interval histograms start again; the run's histograms keep everything.
        assert!(rec.interval.values().all(|h| h.is_empty()));
        assert_eq!(count(&rec, Metric::Pull), 1);
    }
}
