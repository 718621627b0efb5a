//! `pullstorm run`: one run from scenario to result, as a pipeline of steps,
//! each in its own file:
//!
//! 1. [`prepare`]: check the plan fits the fd limit, start the embedded
//!    registry when the scenario names no target, set up the transport and
//!    credentials, then preflight (does the target answer, does the image
//!    resolve?) before any node starts;
//! 2. [`storm`]: run the fleet under the hard deadline (`run.duration`) and
//!    the shutdown signal, while the recorder, the watchers and the progress
//!    display measure it;
//! 3. [`finish`]: build the result, check the thresholds, write result.json,
//!    latency.hlog and report.html (each whole or not at all), print the
//!    summary and choose the exit code.
//!
//! A stopped run still writes its result, marked incomplete. The shutdown
//! signal comes in as a future (see [`crate::shutdown`]), so the stop paths
//! are tested in-process.

mod finish;
pub mod plan;
mod preflight;
mod prepare;
#[cfg(test)]
mod startup_tests;
mod storm;
#[cfg(test)]
mod tests;

pub use plan::Plan;
pub use prepare::EMBEDDED_IMAGE;

use crate::exit::Failure;
use crate::metrics::watch::WatchSpec;
use crate::metrics::Recorder;
use crate::result::build::StopReason;
use crate::scenario;
use prepare::Prepared;
use std::future::Future;
use std::path::PathBuf;
use std::time::SystemTime;
use storm::Stormed;

/// What `pullstorm run` was asked.
pub struct RunOptions {
    pub loaded: scenario::Loaded,
    pub overrides: Vec<String>,
    pub out_dir: Option<PathBuf>,
    pub quiet: bool,
    /// Processes and endpoints to sample besides the harness (`--watch*` flags).
    pub watch: WatchSpec,
}

/// Runs the scenario and writes its result; returns the exit code. The run
/// stops early, still writing its result, when `shutdown` completes or
/// `run.duration` runs out, during startup as well as during the storm.
pub async fn execute(opts: RunOptions, shutdown: impl Future) -> Result<i32, Failure> {
    let started = SystemTime::now();
    let mut shutdown = std::pin::pin!(shutdown);
    match prepare::prepare(&opts, shutdown.as_mut()).await? {
        Prepared::Ready(ready) => {
            let stormed = storm::storm(&opts, &ready, shutdown).await?;
            finish::finish(&opts, ready, stormed)
        }
        Prepared::Stopped(ready, stop) => {
            let stormed = nothing_stormed(&opts, stop, started);
            finish::finish(&opts, ready, stormed)
        }
    }
}

/// What a run stopped during startup measured: nothing, no node having started.
fn nothing_stormed(opts: &RunOptions, stop: StopReason, started: SystemTime) -> Stormed {
    Stormed {
        recorder: Recorder::new(
            opts.loaded.scenario.fleet.clusters,
            tokio::time::Instant::now(),
        ),
        watched: Vec::new(),
        stop,
        started,
        ended: SystemTime::now(),
    }
}
