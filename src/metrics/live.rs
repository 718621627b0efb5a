//! The run's seconds as they close, for whoever decides during the run (a
//! threshold's sliding-window abort, the staircase's stop conditions).
//!
//! The recorder publishes each closed second ([`LiveSecond`]) on a broadcast
//! channel; a consumer keeps the seconds it cares about in a [`Seconds`] (a
//! sliding window, or a staircase step) and asks it for [`Totals`]. The
//! recorder stays the only owner of the run's histograms: a live second
//! carries the raw latencies observed in it (a few per pull and per request,
//! only while someone listens), from which a window builds its own.

use super::recorder::{Metric, MAX_MICROS};
use crate::metrics::harness;
use crate::result::model::TimelineRow;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Seconds a slow consumer may fall behind before it misses some.
pub const CAPACITY: usize = 4096;

/// Where the recorder publishes; consumers call `subscribe()` before the storm.
pub type Feed = tokio::sync::broadcast::Sender<Arc<LiveSecond>>;

/// A new feed with no listeners yet.
pub fn feed() -> Feed {
    tokio::sync::broadcast::channel(CAPACITY).0
}

/// One closed second of the run.
#[derive(Debug, Clone, Default)]
pub struct LiveSecond {
    /// The second's timeline row, as result.json will have it.
    pub row: TimelineRow,
    /// Pulls that started in the second.
    pub pulls_started: u64,
    /// Pulls and layers that completed in the second (layers failed too).
    pub layers_completed: u64,
    pub layers_failed: u64,
    /// Bytes of blobs fetched again after a failure (wasted) in the second.
    pub bytes_wasted: u64,
    /// Latencies observed in the second, µs, by metric key (`pull`, `layer`, `ttfb`, ...).
    pub latencies: BTreeMap<&'static str, Vec<u64>>,
}

impl LiveSecond {
    /// Whether the harness was saturated in this second (unknown figures never are).
    pub fn harness_saturated(&self) -> bool {
        harness::Second {
            cpu_percent: self.row.harness_cpu_percent,
            cpu_wait_percent: self.row.harness_cpu_wait_percent,
            timer_lag_ms: self.row.timer_lag_ms,
        }
        .saturated()
    }

    pub(super) fn observe(&mut self, metric: Metric, micros: u64) {
        self.latencies.entry(metric.key()).or_default().push(micros);
    }
}

/// A run of consecutive seconds: the last `limit` of them (a sliding window),
/// or every one pushed (`limit` = `usize::MAX`, a staircase step).
#[derive(Debug, Clone)]
pub struct Seconds {
    limit: usize,
    seconds: VecDeque<Arc<LiveSecond>>,
}

impl Seconds {
    /// A sliding window of the last `limit` seconds (at least one).
    pub fn window(limit: usize) -> Seconds {
        Seconds {
            limit: limit.max(1),
            seconds: VecDeque::new(),
        }
    }

    /// Every second pushed, until `clear`.
    pub fn unbounded() -> Seconds {
        Seconds::window(usize::MAX)
    }

    pub fn push(&mut self, second: Arc<LiveSecond>) {
        if self.seconds.len() == self.limit {
            self.seconds.pop_front();
        }
        self.seconds.push_back(second);
    }

    pub fn clear(&mut self) {
        self.seconds.clear();
    }

    /// Seconds held.
    pub fn len(&self) -> usize {
        self.seconds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// Whether the window holds its full length of seconds.
    pub fn is_full(&self) -> bool {
        self.seconds.len() == self.limit
    }

    /// What happened in the seconds held.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.seconds {
            t.add(s);
        }
        t
    }
}

/// Sums over some seconds: counts add, levels take their highest, latencies
/// merge into histograms.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub seconds: u64,
    /// First and last second (`t` of the timeline rows) covered.
    pub first_t: Option<u64>,
    pub last_t: Option<u64>,
    pub pulls_started: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub layers_completed: u64,
    pub layers_failed: u64,
    pub retries: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    pub bytes: u64,
    pub bytes_wasted: u64,
    /// Highest per-second level seen.
    pub active_pulls_peak: i64,
    pub connections_peak: i64,
    pub fds_peak: u64,
    /// Sum of the seconds' active pulls (for the mean in-flight, Little's L).
    pub active_pulls_sum: i64,
    /// Seconds in which the harness was saturated.
    pub harness_saturated_seconds: u64,
    pub latencies: BTreeMap<&'static str, Histogram<u64>>,
}

impl Totals {
    pub fn add(&mut self, s: &LiveSecond) {
        let r = &s.row;
        self.seconds += 1;
        self.first_t = Some(self.first_t.map_or(r.t, |f| f.min(r.t)));
        self.last_t = Some(self.last_t.map_or(r.t, |l| l.max(r.t)));
        self.pulls_started += s.pulls_started;
        self.pulls_completed += r.pulls_completed;
        self.pulls_failed += r.pulls_failed;
        self.layers_completed += s.layers_completed;
        self.layers_failed += s.layers_failed;
        self.retries += r.retries;
        self.errors += r.errors;
        for (class, n) in &r.errors_by_class {
            *self.errors_by_class.entry(class.clone()).or_default() += n;
        }
        self.bytes += r.bytes;
        self.bytes_wasted += s.bytes_wasted;
        self.active_pulls_peak = self.active_pulls_peak.max(r.active_pulls);
        self.active_pulls_sum += r.active_pulls;
        self.connections_peak = self.connections_peak.max(r.connections);
        self.fds_peak = self.fds_peak.max(r.fds);
        self.harness_saturated_seconds += u64::from(s.harness_saturated());
        for (key, values) in &s.latencies {
            let h = self.latencies.entry(key).or_insert_with(new_histogram);
            for v in values {
                h.saturating_record((*v).clamp(1, MAX_MICROS));
            }
        }
    }

    /// A latency percentile in ms (`q` in 0..=100), `None` with no samples.
    pub fn percentile_ms(&self, metric: &str, q: f64) -> Option<f64> {
        let h = self.latencies.get(metric).filter(|h| !h.is_empty())?;
        Some(h.value_at_quantile(q / 100.0) as f64 / 1000.0)
    }

    /// Failed pulls over ended pulls; `None` when none ended.
    pub fn pull_failure_rate(&self) -> Option<f64> {
        let ended = self.pulls_completed + self.pulls_failed;
        (ended > 0).then(|| self.pulls_failed as f64 / ended as f64)
    }

    /// Bytes per second over the seconds held; `None` with none.
    pub fn bytes_per_sec(&self) -> Option<f64> {
        (self.seconds > 0).then(|| self.bytes as f64 / self.seconds as f64)
    }

    /// Mean pulls in flight per second; `None` with no seconds.
    pub fn active_pulls_mean(&self) -> Option<f64> {
        (self.seconds > 0).then(|| self.active_pulls_sum as f64 / self.seconds as f64)
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, completed: u64, failed: u64, pulls_ms: &[u64]) -> Arc<LiveSecond> {
        let mut s = LiveSecond {
            row: TimelineRow {
                t,
                pulls_completed: completed,
                pulls_failed: failed,
                active_pulls: 4,
                ..Default::default()
            },
            pulls_started: completed + failed,
            ..Default::default()
        };
        for ms in pulls_ms {
            s.observe(Metric::Pull, ms * 1000);
        }
        Arc::new(s)
    }

    #[test]
    fn a_window_keeps_its_last_seconds_only() {
        let mut w = Seconds::window(2);
        w.push(second(1, 10, 0, &[100]));
        assert!(!w.is_full());
        w.push(second(2, 5, 5, &[200]));
        w.push(second(3, 0, 10, &[]));
        assert!(w.is_full());
        let t = w.totals();
        assert_eq!((t.seconds, t.first_t, t.last_t), (2, Some(2), Some(3)));
        assert_eq!((t.pulls_completed, t.pulls_failed), (5, 15));
        assert_eq!(t.pull_failure_rate(), Some(0.75));
        assert_eq!(t.percentile_ms("pull", 99.0).map(f64::round), Some(200.0));
        assert_eq!(t.active_pulls_mean(), Some(4.0));
    }

    #[test]
    fn no_data_is_none_not_zero() {
        let t = Seconds::window(5).totals();
        assert_eq!(t.pull_failure_rate(), None);
        assert_eq!(t.percentile_ms("pull", 50.0), None);
        assert_eq!(t.bytes_per_sec(), None);
    }
}
