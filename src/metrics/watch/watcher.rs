//! The samplers of one run: the list of watched processes and endpoints, one
//! sampling round over all of them (endpoints fetched concurrently), new
//! processes found by name each round, and the summaries at the end.

use super::endpoint::EndpointSampler;
use super::process::ProcessSampler;
use super::watched::{Sampler, Watched};
use super::{
    procfs, scrape, Latest, Moment, WatchSpec, WatchedKind, WatchedSample, WatchedSummary,
    MAX_WATCHED, SCRAPE_TIMEOUT,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The samplers of one run.
pub struct Watcher {
    spec: WatchSpec,
    started: Instant,
    watched: Vec<Watched>,
    latest: Latest,
    /// Names never matched so far (reported as such if they never are).
    unmatched: Vec<String>,
}

impl Watcher {
    /// `started` is the run's start, so sample times match `timeline[].t`.
    pub fn new(spec: WatchSpec, started: Instant) -> Self {
        let mut watched = Vec::new();
        if spec.harness {
            let sampler = ProcessSampler::harness(
                spec.target_ports.clone(),
                spec.harness_fds.clone(),
                spec.harness_cpu.clone(),
            );
            watched.push(Watched::process(
                "harness".into(),
                WatchedKind::Harness,
                sampler,
            ));
        }
        for (name, pid) in &spec.pids {
            let sampler = ProcessSampler::new(*pid);
            watched.push(Watched::process(
                name.clone(),
                WatchedKind::Process,
                sampler,
            ));
        }
        for (urls, stub) in [(&spec.metrics_urls, false), (&spec.stub_status_urls, true)] {
            for url in urls {
                let (name, sampler) = EndpointSampler::new(url, stub);
                watched.push(Watched::endpoint(name, sampler));
            }
        }
        watched.truncate(MAX_WATCHED);
        Watcher {
            unmatched: spec.names.clone(),
            spec,
            started,
            watched,
            latest: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Newest readings, updated after each sample (for the progress display).
    pub fn latest(&self) -> Latest {
        self.latest.clone()
    }

    /// Takes one reading of everything watched.
    pub async fn sample(&mut self) -> Vec<WatchedSample> {
        let at = Moment::since(self.started);
        self.find_named();
        let mut pages = self.scrape_endpoints().await;
        let mut out = Vec::with_capacity(self.watched.len());
        for (i, w) in self.watched.iter_mut().enumerate() {
            let reading = match &mut w.sampler {
                Sampler::Process(p) => p.sample(&mut w.summary, &at),
                Sampler::Endpoint(e) => e.sample(
                    &mut w.summary,
                    pages.remove(&i),
                    &self.spec.metric_names,
                    &at,
                ),
            };
            out.extend(w.fold(reading));
        }
        if let Ok(mut latest) = self.latest.lock() {
            *latest = self.watched.iter().map(Watched::status).collect();
        }
        out
    }

    /// Every endpoint's page, fetched all at once so their GETs overlap;
    /// keyed by the index in `watched`.
    async fn scrape_endpoints(&self) -> BTreeMap<usize, Result<String, String>> {
        let mut scrapes = tokio::task::JoinSet::new();
        for (i, w) in self.watched.iter().enumerate() {
            if let Sampler::Endpoint(e) = &w.sampler {
                if let Some(url) = e.url() {
                    let url = url.clone();
                    scrapes.spawn(async move { (i, scrape::get(&url, SCRAPE_TIMEOUT).await) });
                }
            }
        }
        let mut pages = BTreeMap::new();
        while let Some(done) = scrapes.join_next().await {
            if let Ok((i, page)) = done {
                pages.insert(i, page);
            }
        }
        pages
    }

    /// Summaries with their series, for result.json `targets[]`.
    pub fn summaries(&self) -> Vec<WatchedSummary> {
        let mut v: Vec<WatchedSummary> = self.watched.iter().map(Watched::summary).collect();
        for name in &self.unmatched {
            v.push(WatchedSummary {
                last_error: Some(format!("no process named {name:?} was found")),
                ..WatchedSummary::empty(name.clone(), WatchedKind::Process, None, None)
            });
        }
        v
    }

    /// Watches every new pid whose name is watched.
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
                if self.watched.iter().any(|w| w.pid_alive() == Some(pid)) {
                    continue;
                }
                if self.watched.len() >= MAX_WATCHED {
                    return;
                }
                self.watched.push(Watched::process(
                    format!("{name}[{pid}]"),
                    WatchedKind::Process,
                    ProcessSampler::new(pid),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
