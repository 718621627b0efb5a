//! `pullstorm run`: one run from scenario to result, as a pipeline of steps,
//! each in its own file:
//!
//! 0. claim the output folder ([`out_dir`]): created and writable, not a
//!    previous run's, or the run does not start;
//! 1. [`prepare`]: check the plan fits the fd limit, start the embedded
//!    registry when the scenario names no target, set up the transport and
//!    credentials, then preflight (does the target answer, does the image
//!    resolve?) before any node starts;
//! 2. [`storm`]: run the fleet under the hard deadline (`run.duration`) and
//!    the shutdown signal, while the recorder, the watchers and the progress
//!    display measure it;
//! 3. [`finish`]: build the result, check the thresholds, write result.json,
//!    latency.hlog and report.html (each whole or not at all), print the
//!    summary and choose the exit code (a signal's own, 130 or 143, when one
//!    stopped the run).
//!
//! A stopped run still writes its result, marked incomplete. The shutdown
//! signal comes in as a future (see [`crate::shutdown`]), so the stop paths
//! are tested in-process.

pub mod abort;
mod after_run;
mod finish;
mod out_dir;
pub mod plan;
mod preflight;
mod prepare;
mod staircase;
mod start_at;
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
use crate::shutdown::Caught;
use out_dir::OutDir;
use prepare::Prepared;
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
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
    /// Where `--metrics-listen` reads the run's figures from.
    pub metrics: Option<std::sync::Arc<crate::metrics::exporter::Exported>>,
    /// `--shard` and `--start-at`: this process's part of a sharded storm, and when it begins.
    pub sharding: crate::shard::Sharding,
}

/// Runs the scenario and writes its result; returns the exit code. The run
/// stops early, still writing its result, when `shutdown` completes or
/// `run.duration` runs out, during startup as well as during the storm; the
/// signal `shutdown` reports becomes the exit code (130 for SIGINT, 143 for
/// SIGTERM). The output folder is claimed first: a run that could not write
/// its result does not start.
pub async fn execute(
    opts: RunOptions,
    shutdown: impl Future<Output = Caught>,
) -> Result<i32, Failure> {
    let out = OutDir::claim(
        opts.out_dir.as_deref(),
        &opts.loaded.name,
        SystemTime::now(),
    )?;
    let started = SystemTime::now();
    let caught = OnceLock::new();
    let shutdown = async {
        let signal = shutdown.await;
        let _ = caught.set(signal);
        signal
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let stormed = async {
        match prepare::prepare(&opts, shutdown.as_mut()).await? {
            Prepared::Ready(ready) => {
                if !start_at::wait(&opts, shutdown.as_mut()).await? {
                    let stop = StopReason::Interrupted;
                    return Ok((ready, nothing_stormed(&opts, stop, started), None));
                }
                let stormed = storm::storm(&opts, &ready, shutdown.as_mut()).await?;
                let verified =
                    after_run::verify(&opts, &ready, stormed.stop, shutdown.as_mut()).await;
                Ok::<_, Failure>((ready, stormed, verified))
            }
            Prepared::Stopped(ready, stop) => {
                Ok((ready, nothing_stormed(&opts, stop, started), None))
            }
        }
    }
    .await;
    match stormed {
        Ok((ready, stormed, verified)) => {
            finish::finish(&opts, &out, ready, stormed, verified, caught.get().copied())
        }
        Err(failure) => {
            out.release();
            Err(failure)
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
        breach: None,
        capacity: None,
    }
}
