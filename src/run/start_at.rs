//! Between startup and the storm: wait for the agreed start time (`--start-at`
//! or `run.start_at`), so the shards of a sharded storm, each in its own pod,
//! begin the herd at one wall-clock instant without talking to each other.
//! The wait obeys the shutdown signal; a start time already past begins at
//! once (the lateness goes into result.json's `shard.started_late_ms`, and
//! the storm still ends at `start_at + run.duration`).

use super::RunOptions;
use crate::exit::Failure;
use crate::shard::{lateness, START_TOLERANCE};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// A start time further ahead than this is taken for a mistake (a wrong date), not waited for.
const MOST_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Longest single sleep: the wall clock is read again after it, so a clock
/// stepped by NTP during the wait still starts the herd on time.
const STEP: Duration = Duration::from_millis(500);

/// Waits until the start time, if any. `Ok(true)`: start the storm;
/// `Ok(false)`: the shutdown future completed first.
pub(super) async fn wait<S: Future>(
    opts: &RunOptions,
    mut shutdown: Pin<&mut S>,
) -> Result<bool, Failure> {
    let Some(at) = opts.sharding.start_at(&opts.loaded.scenario) else {
        return Ok(true);
    };
    let shown = humantime::format_rfc3339_millis(at);
    let now = SystemTime::now();
    if let Ok(ahead) = at.duration_since(now) {
        if ahead > MOST_AHEAD {
            return Err(Failure::bad_input(format!(
                "start time {shown} is {} ahead (more than 24 h): check --start-at / run.start_at",
                humantime::format_duration(Duration::from_secs(ahead.as_secs()))
            )));
        }
        if !opts.quiet {
            eprintln!(
                "waiting until {shown} to start the herd ({:.1} s)",
                ahead.as_secs_f64()
            );
        }
    }
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if left.is_zero() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(STEP)) => {}
            _ = shutdown.as_mut() => return Ok(false),
        }
    }
    let late = lateness(at, SystemTime::now());
    if late > START_TOLERANCE && !opts.quiet {
        eprintln!(
            "starting {:.1} s after the start time {shown}: this shard is late (shard.started_late_ms in result.json)",
            late.as_secs_f64()
        );
    }
    Ok(true)
}
