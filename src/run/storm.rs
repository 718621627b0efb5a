//! Step 2 of a run: the storm. Every node of the plan starts on its schedule
//! while the recorder, the watchers and the progress display measure; the
//! fleet is supervised until it finishes, the deadline (`run.duration`)
//! passes, or the shutdown future completes, whichever comes first. Nodes
//! still pulling then are aborted, and what they sent before is kept.

use super::abort::Abort;
use super::prepare::Ready;
use super::RunOptions;
use crate::exit::Failure;
use crate::fleet;
use crate::metrics::watch::{self, WatchHandle, WatchSpec};
use crate::metrics::{live, recorder, Recorder, Sink};
use crate::progress::{self, ProgressHandle};
use crate::result::build::StopReason;
use crate::result::model::WatchedSummary;
use crate::result::thresholds::WindowBreach;
use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What the storm measured, and how and when it ended.
pub(super) struct Stormed {
    pub recorder: Recorder,
    pub watched: Vec<WatchedSummary>,
    pub stop: StopReason,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The check that aborted the run (`StopReason::ThresholdAbort`).
    pub breach: Option<WindowBreach>,
    /// The capacity search, for a staircase.
    pub capacity: Option<crate::capacity::Searched>,
}

/// Runs the fleet until it finishes, the deadline passes or `shutdown` completes.
pub(super) async fn storm(
    opts: &RunOptions,
    ready: &Ready,
    shutdown: impl Future,
) -> Result<Stormed, Failure> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    // With a start time every shard stops at start_at + run.duration: a late one runs shorter.
    let late = opts.sharding.late_by(&opts.loaded.scenario, started);
    let deadline = t0 + opts.loaded.scenario.run.duration.0.saturating_sub(late);
    // Published seconds for the deciders during the run: the window abort and
    // the staircase's controller each subscribe before the recorder starts.
    let (mut abort, live) = Abort::start(&opts.loaded.scenario.thresholds);
    let staircase = crate::capacity::Staircase::from_scenario(&opts.loaded.scenario);
    let live = match (&staircase, live) {
        (Some(_), None) => Some(live::feed()),
        (_, live) => live,
    };
    let seconds = staircase
        .as_ref()
        .and(live.as_ref())
        .map(|feed| feed.subscribe());
    let (measuring, sink) = Measuring::start(opts, ready, t0, live);
    let (stop, capacity) = match (staircase, seconds) {
        (Some(st), Some(seconds)) => {
            let (stop, searched) = super::staircase::run(
                ready,
                st,
                t0,
                &sink,
                seconds,
                deadline,
                shutdown,
                abort.breached(),
            )
            .await;
            (stop, Some(searched))
        }
        _ => {
            let mut fleet = spawn_fleet(ready, t0, sink.clone());
            // CI runners (`[push]`) beside the nodes, under the same deadline and shutdown;
            // in a sharded storm only shard 0 runs them, so the storm pushes once.
            let scenario = &opts.loaded.scenario;
            if opts.sharding.runs_pushers() {
                crate::pusher::spawn(scenario, &ready.ctx, &mut fleet.nodes, t0, &sink);
            }
            let stop = supervise(&mut fleet, deadline, shutdown, abort.breached(), &sink).await;
            (soak_end(&opts.loaded.scenario, stop), None)
        }
    };
    drop(sink);
    let (recorder, watched) = measuring.stop().await?;
    Ok(Stormed {
        recorder,
        watched,
        stop,
        started,
        ended: SystemTime::now(),
        breach: abort.breach(),
        capacity,
    })
}

/// A soak runs until its duration ends: that is its finish, not a deadline
/// missed (the pulls then under way are stopped and counted `interrupted`).
fn soak_end(s: &crate::scenario::Scenario, stop: StopReason) -> StopReason {
    match (s.arrival.pattern, stop) {
        (crate::scenario::Pattern::Soak, StopReason::Deadline) => StopReason::Finished,
        _ => stop,
    }
}

/// The node tasks, and each one's cluster (to file a panicked node's fault under it).
pub(super) struct Fleet {
    pub nodes: JoinSet<()>,
    pub clusters: HashMap<tokio::task::Id, u32>,
}

/// Starts every node of the plan; each sends its events through a clone of `sink`.
fn spawn_fleet(ready: &Ready, t0: Instant, sink: Sink) -> Fleet {
    let mut fleet = Fleet {
        nodes: JoinSet::new(),
        clusters: HashMap::new(),
    };
    for node in &ready.plan.nodes {
        let task = fleet
            .nodes
            .spawn(fleet::run_node(*node, ready.ctx.clone(), t0, sink.clone()));
        fleet.clusters.insert(task.id(), node.cluster);
    }
    fleet
}

/// Waits for the first of: every node done, the deadline, the shutdown
/// future, a threshold's window abort. Nodes still running are aborted (and awaited) before returning.
/// A node that panicked is reported to `sink` as an `internal` fault.
async fn supervise(
    fleet: &mut Fleet,
    deadline: Instant,
    shutdown: impl Future,
    abort: impl Future,
    sink: &Sink,
) -> StopReason {
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline, shutdown, abort);
    let stop = loop {
        tokio::select! {
            done = fleet.nodes.join_next() => match done {
                None => break StopReason::Finished,
                Some(done) => node_ended(done, &fleet.clusters, sink).await,
            },
            _ = &mut deadline => break StopReason::Deadline,
            _ = &mut shutdown => break StopReason::Interrupted,
            _ = &mut abort => break StopReason::ThresholdAbort,
        }
    };
    if stop != StopReason::Finished {
        fleet.nodes.abort_all();
        while let Some(done) = fleet.nodes.join_next().await {
            node_ended(done, &fleet.clusters, sink).await;
        }
    }
    stop
}

/// A node's end: a panic is never swallowed (an aborted node is not one).
pub(super) async fn node_ended(
    done: Result<(), tokio::task::JoinError>,
    clusters: &HashMap<tokio::task::Id, u32>,
    sink: &Sink,
) {
    if let Err(e) = done {
        if e.is_panic() {
            let cluster = clusters.get(&e.id()).copied().unwrap_or(0);
            let fault = crate::net::Fault::internal("node task", &e);
            fleet::report_internal(sink, fault, crate::metrics::ExchangeKind::Task, cluster).await;
        }
    }
}

/// What measures the storm: the recorder (fed by the nodes' events), the
/// watchers (the harness and whatever `--watch` and `[watch]` name) and the
/// live progress display.
struct Measuring {
    recorder: JoinHandle<Recorder>,
    stop_recorder: oneshot::Sender<()>,
    watch: WatchHandle,
    progress: ProgressHandle,
}

impl Measuring {
    /// Starts measuring from `t0`; returns the sink the nodes send their events to.
    /// With `live`, the recorder publishes each closed second on it.
    fn start(
        opts: &RunOptions,
        ready: &Ready,
        t0: Instant,
        live: Option<live::Feed>,
    ) -> (Measuring, Sink) {
        let gauges = &ready.ctx.gauges;
        let (sink, events) = tokio::sync::mpsc::channel(64 * 1024);
        let (stop_recorder, stop_rx) = oneshot::channel();
        let mut rec = Recorder::new(opts.loaded.scenario.fleet.clusters, t0);
        if let Some(feed) = live {
            rec = rec.with_live(feed);
        }
        if let Some(exported) = &opts.metrics {
            exported.attach(gauges.clone());
            rec = rec.with_exporter(exported.clone());
        }
        let recorder = tokio::spawn(recorder::run(rec, events, gauges.clone(), stop_rx));
        let watch = watch::spawn(watch::Watcher::new(watch_spec(opts, ready), t0.into_std()));
        let progress = progress::start_with(
            gauges.clone(),
            progress::Options {
                total_pulls: ready.plan.planned_pulls().unwrap_or(0),
                fd_limit: ready.limits.soft,
                mode: progress::Mode::detect(opts.quiet),
                watched: Some(watch.latest()),
            },
        );
        let measuring = Measuring {
            recorder,
            stop_recorder,
            watch,
            progress,
        };
        (measuring, sink)
    }

    /// Stops the recorder (after it drained what the nodes sent), the display and
    /// the watchers; returns what the recorder and the watchers gathered.
    async fn stop(self) -> Result<(Recorder, Vec<WatchedSummary>), Failure> {
        let _ = self.stop_recorder.send(());
        let recorder = self.recorder.await.map_err(|e| {
            Failure::cannot_proceed(format!("the recorder stopped unexpectedly: {e}"))
        })?;
        self.progress.finish();
        let watched = self.watch.finish().await;
        Ok((recorder, watched))
    }
}

/// The `--watch*` flags plus the scenario's `[watch]` section, the harness
/// itself, and the target's port (to count the harness's sockets to it).
fn watch_spec(opts: &RunOptions, ready: &Ready) -> WatchSpec {
    let section = &opts.loaded.scenario.watch;
    let mut spec = opts.watch.clone();
    for p in &section.processes {
        spec.add_process(p);
    }
    spec.metrics_urls.extend(section.metrics.iter().cloned());
    spec.stub_status_urls
        .extend(section.stub_status.iter().cloned());
    spec.metric_names
        .extend(section.metric_names.iter().cloned());
    spec.harness = true;
    spec.harness_fds = Some(ready.ctx.gauges.fds.clone());
    spec.harness_cpu = Some(ready.ctx.gauges.harness.clone());
    spec.target_ports = ready.ctx.base.port_or_known_default().into_iter().collect();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Event, ExchangeKind};
    use crate::net::{FaultClass, Phase};
    use std::time::Duration;

    /// A node that panics is an `internal` fault under its cluster, with the panic's
    /// message; the run goes on and finishes (main dropped the JoinError).
    #[tokio::test]
    async fn a_panicking_node_is_an_internal_fault() {
        let mut fleet = Fleet {
            nodes: JoinSet::new(),
            clusters: HashMap::new(),
        };
        let task = fleet.nodes.spawn(async { panic!("token cache overflow") });
        fleet.clusters.insert(task.id(), 3);
        fleet.nodes.spawn(async {});
        let (sink, mut events) = tokio::sync::mpsc::channel(8);
        let deadline = Instant::now() + Duration::from_secs(60);
        let never = || std::future::pending::<()>();
        let stop = supervise(&mut fleet, deadline, never(), never(), &sink).await;
        assert_eq!(stop, StopReason::Finished);
        match events.try_recv() {
            Ok(Event::Fault {
                fault,
                kind,
                cluster,
                ..
            }) => {
                assert_eq!(
                    (fault.class, fault.phase),
                    (FaultClass::Internal, Phase::Internal)
                );
                assert!(
                    fault.detail.contains("token cache overflow"),
                    "{}",
                    fault.detail
                );
                assert_eq!((kind, cluster), (ExchangeKind::Task, 3));
            }
            other => panic!("expected an internal fault, got {other:?}"),
        }
        assert!(events.try_recv().is_err(), "one fault only");
    }

    /// Nodes aborted at the deadline are not faults.
    #[tokio::test]
    async fn aborted_nodes_are_not_faults() {
        let mut fleet = Fleet {
            nodes: JoinSet::new(),
            clusters: HashMap::new(),
        };
        fleet.nodes.spawn(std::future::pending::<()>());
        let (sink, mut events) = tokio::sync::mpsc::channel(8);
        let stop = supervise(
            &mut fleet,
            Instant::now(),
            std::future::pending::<()>(),
            std::future::pending::<()>(),
            &sink,
        )
        .await;
        assert_eq!(stop, StopReason::Deadline);
        assert!(events.try_recv().is_err());
    }
}
