//! Samplers for what a run does to the processes around it: once a second,
//! the harness itself (fds, RSS, CPU, sockets by TCP state), watched local
//! processes by pid or by name (fds against their nofile limit, RSS, threads,
//! exits and zombies), Prometheus endpoints (`process_open_fds`, goroutines...)
//! and nginx `stub_status`.
//!
//! Why: "the registry ran out of fds" or "an nginx worker died" is the answer
//! a capacity test is after, and it is only visible from outside the client.
//!
//! Cost and memory are bounded: a handful of small `/proc` reads per watched
//! process per second, one short GET per endpoint, at most [`MAX_WATCHED`]
//! processes and endpoints and at most [`MAX_POINTS`] points per series
//! (older points are merged in pairs when full, doubling `step_s`). [`spawn`]
//! runs the sampler on its own thread so a saturated fleet runtime cannot
//! delay or skip samples.
//!
//! The parts: [`WatchSpec`] (what to watch), [`Watcher`] (one sampling round
//! over everything watched), `process` and `endpoint` (reading one process or
//! one endpoint), [`label`] (a process's command line and ports, which tell
//! processes of one name apart), `series` (bounded series), [`procfs`],
//! [`tcp`] and [`scrape`] (reading `/proc`, socket tables and HTTP pages).

mod endpoint;
pub mod label;
mod process;
pub mod procfs;
pub mod scrape;
mod series;
mod spec;
pub mod tcp;
mod watched;
mod watcher;

pub use crate::result::watched::{WatchedKind, WatchedPoint, WatchedSummary};
pub use spec::WatchSpec;
pub use watcher::Watcher;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most processes and endpoints watched at once (name matches beyond this are ignored).
pub const MAX_WATCHED: usize = 64;
/// Most points kept per series.
pub const MAX_POINTS: usize = 3600;
/// Timeout of one endpoint scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The newest reading of one watched process or endpoint, for the live progress display.
#[derive(Debug, Clone, Default)]
pub struct WatchedStatus {
    pub name: String,
    pub fds: Option<u64>,
    pub fd_limit: Option<u64>,
    pub gone: bool,
}

/// Newest readings of everything watched, shared with the progress display.
pub type Latest = Arc<Mutex<Vec<WatchedStatus>>>;

/// What one watched process or endpoint gave in one [`Watcher::sample`].
#[derive(Debug, Clone)]
pub struct WatchedSample {
    pub name: String,
    /// `None` when the sample failed or the process is gone.
    pub point: Option<WatchedPoint>,
    pub error: Option<String>,
}

/// When a sampling round happens, in the forms the readings need.
#[derive(Debug, Clone, Copy)]
struct Moment {
    /// Whole seconds since the run's start: the `t` of points (as `timeline[].t`).
    t: u64,
    /// Seconds since the run's start, to the millisecond (exit and zombie times).
    at_s: f64,
    now: Instant,
}

impl Moment {
    fn since(started: Instant) -> Moment {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started).as_secs_f64();
        Moment {
            t: elapsed.round() as u64,
            at_s: (elapsed * 1000.0).round() / 1000.0,
            now,
        }
    }
}

/// A watcher running on its own thread, sampling once a second.
pub struct WatchHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::sync::oneshot::Receiver<Vec<WatchedSummary>>,
    latest: Latest,
}

impl WatchHandle {
    /// Newest readings of everything watched (for the progress display).
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
/// The sampler gets its own thread and a small current-thread runtime (for
/// the endpoint scrapes, each bounded by [`SCRAPE_TIMEOUT`]) so that a fleet
/// saturating the main runtime's workers cannot starve it.
pub fn spawn(watcher: Watcher) -> WatchHandle {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let latest = watcher.latest();
    let spawned = std::thread::Builder::new()
        .name("pullstorm-watch".into())
        .spawn(move || {
            let summaries = run_until_stopped(watcher, stop_rx);
            let _ = done_tx.send(summaries);
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

/// The sampler thread's body: a sample every [`INTERVAL`] until `stop`, then a last one.
fn run_until_stopped(
    mut watcher: Watcher,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<WatchedSummary> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("watch: cannot start a runtime: {e}");
            return Vec::new();
        }
    };
    runtime.block_on(async {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { watcher.sample().await; }
                _ = &mut stop => break,
            }
        }
        watcher.sample().await;
    });
    watcher.summaries()
}
