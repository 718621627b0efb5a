//! One watched process or endpoint: its summary (peaks, failures, exit), its
//! bounded series and its sampler, and how each reading is folded into them.

use super::endpoint::EndpointSampler;
use super::process::ProcessSampler;
use super::series::Series;
use super::{WatchedKind, WatchedPoint, WatchedSample, WatchedStatus, WatchedSummary};

/// How a watched thing is read.
#[derive(Debug)]
pub(super) enum Sampler {
    Process(ProcessSampler),
    Endpoint(EndpointSampler),
}

#[derive(Debug)]
pub(super) struct Watched {
    pub(super) summary: WatchedSummary,
    series: Series,
    pub(super) sampler: Sampler,
}

impl Watched {
    pub(super) fn process(name: String, kind: WatchedKind, sampler: ProcessSampler) -> Self {
        let summary = WatchedSummary::empty(name, kind, Some(sampler.pid), None);
        Watched::with(summary, Sampler::Process(sampler))
    }

    pub(super) fn endpoint(name: String, sampler: EndpointSampler) -> Self {
        let summary = WatchedSummary::empty(name, sampler.kind(), None, sampler.shown_url());
        Watched::with(summary, Sampler::Endpoint(sampler))
    }

    fn with(summary: WatchedSummary, sampler: Sampler) -> Self {
        Watched {
            summary,
            series: Series::new(),
            sampler,
        }
    }

    /// The pid of a watched process still alive.
    pub(super) fn pid_alive(&self) -> Option<u32> {
        match &self.sampler {
            Sampler::Process(p) if !p.done => Some(p.pid),
            _ => None,
        }
    }

    /// Folds one reading in: a point into the peaks and the series, an error
    /// into the failures. `None` when there was nothing to read (gone).
    pub(super) fn fold(
        &mut self,
        reading: Result<Option<WatchedPoint>, String>,
    ) -> Option<WatchedSample> {
        let (point, error) = match reading {
            Ok(Some(p)) => {
                self.record(p.clone());
                (Some(p), None)
            }
            Ok(None) => return None,
            Err(e) => {
                self.fail(e.clone());
                (None, Some(e))
            }
        };
        Some(WatchedSample {
            name: self.summary.name.clone(),
            point,
            error,
        })
    }

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

    /// The newest reading, for the progress display.
    pub(super) fn status(&self) -> WatchedStatus {
        WatchedStatus {
            name: self.summary.name.clone(),
            fds: self.series.last().and_then(|p| p.fds),
            fd_limit: self.summary.fd_limit,
            gone: self.summary.exited_at_s.is_some(),
        }
    }

    /// The summary with its series, for result.json `targets[]`.
    pub(super) fn summary(&self) -> WatchedSummary {
        let mut s = self.summary.clone();
        s.step_s = self.series.step;
        s.series = self.series.snapshot();
        s
    }
}
