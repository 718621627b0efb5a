//! The recorder: the only owner of histograms and counters. Nodes send it
//! events; once a second it reads the gauges and writes one timeline row.
//! Memory is fixed except for the timeline (one row per second) and the
//! error table (one row per fault class).

use super::events::{Event, ExchangeKind, Gauges};
use super::fds;
use crate::net::FaultClass;
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
const MAX_MICROS: u64 = 86_400_000_000;

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
    /// Per pull that retried: the longest retry latency among its blobs.
    PullRetry,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Pull,
        Metric::PullActual,
        Metric::Layer,
        Metric::Connect,
        Metric::Ttfb,
        Metric::Retry,
        Metric::Manifest,
        Metric::PullRetry,
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
            Metric::PullRetry => "pull_retry",
        }
    }
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
    /// attempts -> layers that needed that many.
    pub attempts_per_layer: BTreeMap<u32, u64>,
    pub bytes_wasted: u64,
    pub bytes_pulled_ok: u64,
    pub errors: BTreeMap<FaultClass, ErrorStat>,
    pub clusters: Vec<ClusterStat>,
    pub timeline: Vec<TimelineRow>,
    pub fd_peak: u64,
    pub connections_peak: i64,
    pending: TimelineRow,
    /// Histograms of the current interval of the `.hlog` export.
    interval: BTreeMap<Metric, Histogram<u64>>,
    interval_start_s: u64,
    /// Interval log lines so far: a few hundred bytes per metric per interval.
    hlog: Vec<u8>,
    last_bytes: u64,
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
        }
    }

    fn observe(&mut self, metric: Metric, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        if let Some(h) = self.histograms.get_mut(&metric) {
            h.saturating_record(micros);
        }
        if let Some(h) = self.interval.get_mut(&metric) {
            h.saturating_record(micros);
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
            } => {
                self.observe(Metric::Connect, connect);
                match kind {
                    ExchangeKind::Blob => self.observe(Metric::Ttfb, ttfb),
                    ExchangeKind::Manifest => self.observe(Metric::Manifest, ttfb),
                    ExchangeKind::Ping | ExchangeKind::Token | ExchangeKind::Upload => {}
                }
            }
            Event::Fault {
                fault,
                kind,
                cluster,
                at,
            } => {
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
            Event::Retry { class, progress } => {
                // Ten buckets of the blob's length: the seed's "restarts at 70-80 %" shows here.
                let bucket = ((progress.clamp(0.0, 1.0) * 10.0) as usize).min(9);
                self.retries_at_progress[bucket] += 1;
                self.retries += 1;
                self.pending.retries += 1;
                *self.retries_by_class.entry(class.key()).or_default() += 1;
            }
            Event::LayerDone {
                ok,
                took,
                attempts,
                retry_latency,
                wasted,
            } => {
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
            }
            Event::PullStarted { cluster } => {
                self.pulls_started += 1;
                if let Some(c) = self.cluster(cluster) {
                    c.pulls_started += 1;
                }
            }
            Event::PullDone {
                cluster,
                ok,
                from_scheduled,
                from_start,
                bytes,
                retry_cost,
                kubelet_retry,
            } => {
                if let Some(cost) = retry_cost {
                    self.observe(Metric::PullRetry, cost);
                }
                if kubelet_retry {
                    self.kubelet_retries += 1;
                }
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
        row.bytes = sample.bytes.saturating_sub(self.last_bytes);
        self.last_bytes = self.last_bytes.max(sample.bytes);
        self.fd_peak = self.fd_peak.max(sample.fds);
        self.connections_peak = self.connections_peak.max(sample.connections_peak);
        if row.t % HLOG_INTERVAL_S == 0 {
            self.flush_interval(row.t);
        }
        self.timeline.push(row);
    }

    /// Total body bytes received (including wasted ones) as of the last sample.
    pub fn bytes_downloaded(&self) -> u64 {
        self.last_bytes
    }
}

/// One second of levels, read by the sampler thread: the highest of its four peeks.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    second: u64,
    active_pulls: i64,
    connections: i64,
    connections_peak: i64,
    fds: u64,
    /// Body bytes received since the start, at the end of the second.
    bytes: u64,
}

/// Reads the gauges four times a second on its own OS thread and sends one sample per
/// second. A thread rather than a task: with thousands of busy download tasks the
/// runtime may run a timer late, and the timeline must stay one row per second.
fn spawn_sampler(
    gauges: Arc<Gauges>,
    started: Instant,
    samples: mpsc::UnboundedSender<Sample>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let started = started.into_std();
    std::thread::spawn(move || {
        let mut current = Sample::default();
        let mut peeks = 0u64;
        let peek = |s: &mut Sample| {
            s.fds = s.fds.max(fds::open_fds());
            s.active_pulls = s
                .active_pulls
                .max(gauges.active_pulls.load(Ordering::Relaxed));
            s.connections = s.connections.max(gauges.connections.current());
            s.connections_peak = gauges.connections.peak();
            s.bytes = gauges.bytes.load(Ordering::Relaxed);
        };
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            peek(&mut current);
            peeks += 1;
            if peeks % PEEKS_PER_ROW == 0 || stopping {
                current.second = peeks.div_ceil(PEEKS_PER_ROW);
                gauges.fds.set(current.fds);
                if samples.send(current).is_err() || stopping {
                    return;
                }
                current = Sample::default();
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
    let sampler = spawn_sampler(
        gauges.clone(),
        recorder.started,
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
    while let Ok(sample) = samples.try_recv() {
        recorder.close_row(sample);
    }
    let last = recorder.timeline.last().map(|r| r.t).unwrap_or(0);
    if last > recorder.interval_start_s {
        recorder.flush_interval(last);
    }
    recorder
}
