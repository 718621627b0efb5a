//! The staircase's controller (`arrival.pattern = "staircase"`): starts the
//! herd step by step, collects each step's seconds from the recorder's live
//! feed, has `capacity` judge them and choose the next herd, shrinks the herd
//! for bisection, and ends the storm when the search is over, the deadline
//! passes or the shutdown future completes.
//!
//! Steps follow the recorder's seconds: a step starts when the row closing
//! the previous one arrives and owns the next `hold_s` rows; its first
//! `warmup_s` rows are left out of its judgement. A node leaving the herd
//! finishes the pull it has under way (so no pull is cut short and no
//! fault is invented); its tail falls in the next step's warm-up.

use super::prepare::Ready;
use super::storm::{node_ended, Fleet};
use crate::capacity::{judge, Phase, Search, Searched, Staircase, StepFigures, StepRecord};
use crate::fleet;
use crate::metrics::live::{LiveSecond, Seconds, Totals};
use crate::metrics::Sink;
use crate::result::build::StopReason;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The nodes pulling now, in the order they joined, each with its stop switch.
struct Herd {
    fleet: Fleet,
    running: Vec<watch::Sender<bool>>,
}

impl Herd {
    fn new() -> Herd {
        Herd {
            fleet: Fleet {
                nodes: JoinSet::new(),
                clusters: HashMap::new(),
            },
            running: Vec::new(),
        }
    }

    /// Grows the herd to `n` nodes (the plan's next ones, starting now, each
    /// after its jitter) or shrinks it (the latest to join stop after their pull).
    fn resize(&mut self, n: usize, ready: &Ready, t0: Instant, sink: &Sink) {
        while self.running.len() > n {
            if let Some(stop) = self.running.pop() {
                let _ = stop.send(true);
            }
        }
        let now = Instant::now().saturating_duration_since(t0);
        while self.running.len() < n.min(ready.plan.nodes.len()) {
            let mut node = ready.plan.nodes[self.running.len()];
            node.start += now;
            let (stop, stopped) = watch::channel(false);
            let task = self.fleet.nodes.spawn(fleet::run_node_until(
                node,
                ready.ctx.clone(),
                t0,
                sink.clone(),
                Some(stopped),
            ));
            self.fleet.clusters.insert(task.id(), node.cluster);
            self.running.push(stop);
        }
    }
}

/// Runs the staircase until the search ends, the deadline passes or
/// `shutdown` completes; returns why the storm stopped and the search.
/// `seconds` must be subscribed to the recorder's feed before the storm starts.
/// `abort` completes when a threshold's window breaks (`abort_on_fail`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    ready: &Ready,
    staircase: Staircase,
    t0: Instant,
    sink: &Sink,
    seconds: broadcast::Receiver<Arc<LiveSecond>>,
    deadline: Instant,
    shutdown: impl Future,
    abort: impl Future,
) -> (StopReason, Searched) {
    let mut search = Search::new(staircase);
    let mut herd = Herd::new();
    let grace = std::time::Duration::from_secs(search.staircase.hold_s);
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline, shutdown, abort);
    let stop = tokio::select! {
        _ = climb(ready, &mut search, &mut herd, t0, sink, seconds) => StopReason::Finished,
        _ = &mut deadline => StopReason::Deadline,
        _ = &mut shutdown => StopReason::Interrupted,
        _ = &mut abort => StopReason::ThresholdAbort,
    };
    // The search is over: every node finishes its pull (for a step's length at
    // most, and never past the deadline or a signal), then the rest are aborted.
    herd.resize(0, ready, t0, sink);
    if stop == StopReason::Finished {
        let drained = tokio::time::sleep(grace);
        tokio::pin!(drained);
        loop {
            tokio::select! {
                done = herd.fleet.nodes.join_next() => match done {
                    None => break,
                    Some(done) => node_ended(done, &herd.fleet.clusters, sink).await,
                },
                _ = &mut drained => break,
                _ = &mut deadline => break,
                _ = &mut shutdown => break,
            }
        }
    }
    herd.fleet.nodes.abort_all();
    while let Some(done) = herd.fleet.nodes.join_next().await {
        node_ended(done, &herd.fleet.clusters, sink).await;
    }
    let ended_by = search
        .ended_by()
        .unwrap_or(match stop {
            StopReason::Interrupted => "interrupted",
            StopReason::ThresholdAbort => "threshold_abort",
            _ => "deadline",
        })
        .to_string();
    // A node downloads at most its slots' worth of layers at once, and no more than the image has.
    let layers = ready.target.blobs.len().saturating_sub(1).max(1) as u32;
    let searched = Searched {
        search,
        ended_by,
        downloads_per_node: ready.profile.max_concurrent_downloads.min(layers),
    };
    (stop, searched)
}

/// The steps, one after the other, until the search chooses no next herd.
async fn climb(
    ready: &Ready,
    search: &mut Search,
    herd: &mut Herd,
    t0: Instant,
    sink: &Sink,
    mut seconds: broadcast::Receiver<Arc<LiveSecond>>,
) {
    let (hold, warmup) = (search.staircase.hold_s, search.staircase.warmup_s);
    let mut nodes = search.first_herd();
    let mut step_start = 0u64;
    let mut first: Option<StepFigures> = None;
    loop {
        herd.resize(nodes as usize, ready, t0, sink);
        let end = step_start + hold;
        let mut judged = Seconds::unbounded();
        // Rows after `step_start` up to `end` are the step's; those after the warm-up are judged.
        loop {
            tokio::select! {
                second = seconds.recv() => match second {
                    Ok(s) => {
                        let t = s.row.t;
                        if t > step_start + warmup && t <= end {
                            judged.push(s);
                        }
                        if t >= end {
                            break;
                        }
                    }
                    // Seconds missed by a slow controller are left out of the step.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(done) = herd.fleet.nodes.join_next(), if !herd.fleet.nodes.is_empty() => {
                    node_ended(done, &herd.fleet.clusters, sink).await;
                }
            }
        }
        let figures = figures(&judged.totals(), nodes, ready.limits.soft);
        let verdict = judge(&figures, &search.staircase.stops, first.as_ref());
        let phase = search.phase();
        if first.is_none() {
            first = Some(figures.clone());
        }
        let record = StepRecord {
            phase,
            start_t: step_start + 1,
            end_t: end,
            warmup_s: warmup,
            figures,
            verdict,
        };
        tracing::info!(
            "staircase step: {} nodes ({}) -> {:?}",
            nodes,
            phase.key(),
            record.verdict
        );
        if phase == Phase::Climb && !record.verdict.held() {
            tracing::info!("staircase: the climb broke at {nodes} nodes");
        }
        match search.next(record) {
            Some(next) => {
                nodes = next;
                step_start = end;
            }
            None => return,
        }
    }
}

/// A step's figures from its judged seconds.
fn figures(t: &Totals, nodes: u32, fd_limit: u64) -> StepFigures {
    StepFigures {
        nodes,
        seconds: t.seconds,
        offered: t.pulls_started,
        completed: t.pulls_completed,
        failed: t.pulls_failed,
        retries: t.retries,
        errors_by_class: t.errors_by_class.clone(),
        bytes: t.bytes,
        in_flight_mean: t.active_pulls_mean(),
        pull_mean_ms: t
            .latencies
            .get("pull_actual")
            .filter(|h| !h.is_empty())
            .map(|h| h.mean() / 1000.0),
        pull_p50_ms: t.percentile_ms("pull", 50.0),
        pull_p99_ms: t.percentile_ms("pull", 99.0),
        fds_peak: t.fds_peak,
        fd_limit,
        connections_peak: t.connections_peak,
        harness_saturated_seconds: t.harness_saturated_seconds,
    }
}
