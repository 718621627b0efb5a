//! The simulated fleet: clusters x nodes, each node a task that pulls the
//! image like its client profile says, and reports what happened as events.

pub mod download;
pub mod kubelet;
pub mod profile;
pub mod store;

pub use profile::Profile;

use crate::metrics::events::ActivePull;
use crate::metrics::{Event, ExchangeKind, Gauges, Sink};
use crate::net::{Bandwidth, Fault};
use crate::oci::auth::Credentials;
use crate::oci::{Reference, Session};
use crate::scenario::KubeletSection;
use kubelet::Kubelet;
use profile::SlotScope;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use store::ContentStore;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

/// What every node of the run shares.
pub struct FleetContext {
    pub base: Url,
    pub reference: Reference,
    pub platform: String,
    pub profile: Profile,
    /// The profile's timeouts, the connection gauge and TLS.
    pub transport: crate::net::Transport,
    pub credentials: Option<Arc<Credentials>>,
    pub gauges: Arc<Gauges>,
    /// Pulls per node; 0 (`run::plan::UNTIL_STOPPED`): pull in a closed loop
    /// until the task is stopped (a staircase).
    pub pulls_per_node: u32,
    pub pull_interval: Duration,
    /// A soak's cycle (`run::plan::Plan::pull_every`): a node's next pull is
    /// due this long after its previous one was; instead of `pull_interval`.
    pub pull_every: Option<Duration>,
    /// Bytes per second per node, when capped.
    pub node_bandwidth: Option<u64>,
    /// The kubelet's re-pulls after a failure (ImagePullBackOff).
    pub kubelet: KubeletSection,
    /// `run.seed`: the kubelet's jitter is drawn per node from it.
    pub seed: u64,
    /// Loopback source addresses to spread the nodes over (`fleet.loopback_sources`).
    pub loopback_sources: u32,
}

/// One node of the plan: its cluster and when it starts, relative to the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodePlan {
    pub cluster: u32,
    pub node: u32,
    pub start: Duration,
}

/// Runs one node: its pulls one after the other, each from a cold cache, each
/// pulled again by the kubelet after a failure, as far as the kubelet goes on.
pub async fn run_node(plan: NodePlan, ctx: Arc<FleetContext>, t0: Instant, events: Sink) {
    run_node_until(plan, ctx, t0, events, None).await
}

/// [`run_node`], stopping early when `stop` turns true (a staircase's herd
/// shrinking or ending): it is checked before each pull and wakes the node
/// from its waits; a pull under way finishes, so none is cut short.
pub async fn run_node_until(
    plan: NodePlan,
    ctx: Arc<FleetContext>,
    t0: Instant,
    events: Sink,
    mut stop: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let bandwidth = ctx.node_bandwidth.map(|b| Arc::new(Bandwidth::new(b)));
    let slots_per_pool = ctx.profile.max_concurrent_downloads as usize;
    // Download slots shared by all the node's pulls (dockerd, containerd 2.1+).
    let node_slots = Arc::new(Semaphore::new(slots_per_pool));
    let transport = crate::net::Transport {
        loopback_source: crate::net::loopback_source(plan.node, ctx.loopback_sources),
        ..ctx.transport.clone()
    };
    let mut kubelet = Kubelet::new(&ctx.kubelet, ctx.profile.client, ctx.seed, plan.node);
    let mut scheduled = t0 + plan.start;
    let mut due = scheduled;
    let pulls = match ctx.pulls_per_node {
        0 => u32::MAX,
        n => n,
    };
    for _ in 0..pulls {
        // What the node holds of the image between the kubelet's re-pulls (containerd).
        let store = ctx
            .profile
            .keeps_partial_blobs
            .then(|| Arc::new(ContentStore::default()));
        let mut failed_at: Option<Instant> = None;
        let mut repulls = 0;
        loop {
            if !wait_until(scheduled, &mut stop).await {
                return;
            }
            let slots = match ctx.profile.slot_scope {
                SlotScope::Node => node_slots.clone(),
                SlotScope::Pull => Arc::new(Semaphore::new(slots_per_pool)),
            };
            let node = Node {
                transport: &transport,
                cluster: plan.cluster,
                slots,
                bandwidth: bandwidth.clone(),
                store: store.clone(),
            };
            let ok = pull(&ctx, &node, scheduled, &events, repulls > 0).await;
            if ok {
                if let Some(failed) = failed_at {
                    // The kubelet's recovery: from the first failure to this completion.
                    let took = Instant::now().saturating_duration_since(failed);
                    let _ = events.send(Event::PullRecovered { took }).await;
                }
                break;
            }
            failed_at.get_or_insert_with(Instant::now);
            let Some(wait) = kubelet.next_wait(repulls) else {
                break;
            };
            repulls += 1;
            scheduled = Instant::now() + wait;
        }
        scheduled = match ctx.pull_every {
            Some(every) => {
                due = next_due(due, every, Instant::now());
                due
            }
            None => Instant::now() + ctx.pull_interval,
        };
    }
}

/// A soak node's next pull: one cycle after the last one was due, or, when
/// that pull ran past it, the first due time still ahead (a late node skips a
/// turn rather than pulling twice in a row, so the waves keep their shape).
fn next_due(due: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = due + every;
    if next < now && !every.is_zero() {
        let behind = now.duration_since(next).as_nanos() / every.as_nanos();
        next += every * (behind as u32 + 1);
    }
    next
}

/// Sleeps until `at`; false when `stop` turned (or was) true first. A stop
/// whose sender is gone never comes.
async fn wait_until(at: Instant, stop: &mut Option<tokio::sync::watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep_until(at).await;
        return true;
    };
    if *stop.borrow() {
        return false;
    }
    let stopped = tokio::select! {
        _ = tokio::time::sleep_until(at) => None,
        stopped = stop.wait_for(|s| *s) => Some(stopped.is_ok()),
    };
    match stopped {
        None => !*stop.borrow(),
        Some(true) => false,
        // The sender is gone: no stop can come.
        Some(false) => {
            tokio::time::sleep_until(at).await;
            true
        }
    }
}

/// What one pull of a node works with.
struct Node<'a> {
    transport: &'a crate::net::Transport,
    cluster: u32,
    slots: Arc<Semaphore>,
    bandwidth: Option<Arc<Bandwidth>>,
    /// The node's content store, for a client that keeps partial blobs.
    store: Option<Arc<ContentStore>>,
}

/// What a pull cost, failed or not.
#[derive(Default)]
struct Tally {
    bytes: u64,
    retry_cost: Option<Duration>,
}

impl Tally {
    fn add(&mut self, o: &download::Outcome) {
        self.bytes += o.bytes;
        self.retry_cost = self.retry_cost.max(o.retry_latency);
    }
}

/// One pull: ping, resolve, then config and layers through the download slots.
/// Returns whether it completed.
async fn pull(
    ctx: &Arc<FleetContext>,
    node: &Node<'_>,
    scheduled: Instant,
    events: &Sink,
    kubelet_retry: bool,
) -> bool {
    let cluster = node.cluster;
    let started = Instant::now();
    let _active = ActivePull::new(&ctx.gauges);
    let _ = events.send(Event::PullStarted { cluster }).await;
    // The pull's own connections (pulls share none), reported to the recorder when it ends.
    let transport = &node.transport.for_pull();
    let _connections = crate::metrics::events::PullConnections::new(transport, events);
    // A fresh session per pull, as dockerd opens one per pull: ping and token again.
    let session = Arc::new(
        Session::new(
            ctx.base.clone(),
            ctx.reference.name.clone(),
            ctx.credentials.clone(),
            transport.clone(),
            events.clone(),
        )
        .with_rules(ctx.profile.session)
        .in_cluster(cluster),
    );
    let mut tally = Tally::default();
    let outcome = fetch_image(ctx, &session, node, events, &mut tally).await;
    let ok = match outcome {
        Ok(()) => true,
        Err(failure) => {
            if let Some((fault, kind)) = failure {
                let _ = events
                    .send(Event::Fault {
                        fault,
                        kind,
                        cluster,
                        at: Instant::now(),
                    })
                    .await;
            }
            false
        }
    };
    let now = Instant::now();
    let _ = events
        .send(Event::PullDone {
            cluster,
            ok,
            from_scheduled: now.saturating_duration_since(scheduled),
            from_start: now.saturating_duration_since(started),
            bytes: tally.bytes,
            retry_cost: tally.retry_cost,
            kubelet_retry,
        })
        .await;
    ok
}

/// A failed pull: the fault still to report and the request it came from
/// (None when a download already reported its own).
type PullFailure = Option<(Fault, ExchangeKind)>;

/// The image's manifest as the node resolves it: the tag's HEAD always, the manifest
/// GETs only when its content store does not hold that manifest already.
async fn resolve(
    ctx: &FleetContext,
    session: &Session,
    store: Option<&ContentStore>,
) -> Result<crate::oci::session::Resolved, Fault> {
    let digest = session.resolve_digest(ctx.reference.manifest_ref()).await?;
    if let Some(held) = store.and_then(|s| s.resolved(&digest)) {
        return Ok(held);
    }
    let resolved = session.fetch_resolved(&digest, &ctx.platform).await?;
    if let Some(store) = store {
        store.keep_resolved(&digest, &resolved);
    }
    Ok(resolved)
}

async fn fetch_image(
    ctx: &Arc<FleetContext>,
    session: &Arc<Session>,
    node: &Node<'_>,
    events: &Sink,
    tally: &mut Tally,
) -> Result<(), PullFailure> {
    let profile = &ctx.profile;
    if profile.ping {
        session
            .ping()
            .await
            .map_err(|f| Some((f, ExchangeKind::Ping)))?;
    }
    let resolved = resolve(ctx, session, node.store.as_deref())
        .await
        .map_err(|f| Some((f, ExchangeKind::Manifest)))?;

    // The config is fetched alongside the layers; identical blobs are fetched once, and
    // blobs the node's store holds whole not at all.
    let mut seen = HashSet::new();
    let blobs: Vec<_> = std::iter::once((resolved.config, true))
        .chain(resolved.layers.into_iter().map(|l| (l, false)))
        .filter(|(b, _)| seen.insert(b.digest.clone()))
        .filter(|(b, _)| !node.store.as_ref().is_some_and(|s| s.has(&b.digest)))
        .collect();
    let mut downloads = JoinSet::new();
    let cluster = node.cluster;
    for (blob, is_config) in blobs {
        let (ctx, session, slots, bandwidth, events, store) = (
            ctx.clone(),
            session.clone(),
            node.slots.clone(),
            node.bandwidth.clone(),
            events.clone(),
            node.store.clone(),
        );
        // dockerd fetches the config in a goroutine of its own, outside the slots.
        let outside_slots = is_config && profile.config_outside_slots;
        let rules = if is_config {
            profile.config_rules()
        } else {
            profile.layer_rules()
        };
        downloads.spawn(async move {
            let _slot = if outside_slots {
                None
            } else {
                match slots.acquire_owned().await {
                    Ok(slot) => Some(slot),
                    Err(_) => return download::Outcome::default(),
                }
            };
            let job = download::Job {
                blob: &blob,
                rules,
                store,
            };
            download::blob(&ctx, &session, job, bandwidth.as_deref(), &events, cluster).await
        });
    }
    let mut failed = false;
    while let Some(done) = downloads.join_next().await {
        let outcome = joined(done, events, cluster).await;
        tally.add(&outcome);
        if !outcome.ok && !failed {
            // One failed blob fails the pull; the client cancels the other transfers.
            failed = true;
            downloads.abort_all();
        }
    }
    if failed {
        Err(None)
    } else {
        Ok(())
    }
}

/// A download task's outcome; a task that panicked is a failed layer and an
/// `internal` fault with the panic's message (a task aborted by the pull, after
/// another layer failed, is only a failed layer).
async fn joined(
    done: Result<download::Outcome, tokio::task::JoinError>,
    events: &Sink,
    cluster: u32,
) -> download::Outcome {
    match done {
        Ok(outcome) => outcome,
        Err(e) => {
            if e.is_panic() {
                let fault = Fault::internal("download task", &e);
                report_internal(events, fault, ExchangeKind::Blob, cluster).await;
            }
            download::Outcome::default()
        }
    }
}

/// Reports an `internal` fault (a panicked task) to the recorder.
pub async fn report_internal(events: &Sink, fault: Fault, kind: ExchangeKind, cluster: u32) {
    let event = Event::Fault {
        fault,
        kind,
        cluster,
        at: Instant::now(),
    };
    let _ = events.send(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{FaultClass, Phase};

    /// A soak node keeps its place in the cycle; a late one skips a turn.
    #[test]
    fn a_soak_node_is_due_once_a_cycle() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_due(t0, s(30), t0 + s(5)), t0 + s(30));
        assert_eq!(next_due(t0, s(30), t0 + s(30)), t0 + s(30));
        // The pull took 41 s: due at 30 was missed, the next is 60.
        assert_eq!(next_due(t0, s(30), t0 + s(41)), t0 + s(60));
        assert_eq!(next_due(t0, s(30), t0 + s(95)), t0 + s(120));
    }

    /// A download task that panics fails its layer and is an `internal` fault with the
    /// panic's message (main turned it into a silent default outcome).
    #[tokio::test]
    async fn a_panicking_download_is_an_internal_fault() {
        let mut tasks = JoinSet::new();
        tasks.spawn(async { panic!("end + 1 overflowed") });
        let done = tasks.join_next().await.expect("one task");
        let (sink, mut events) = tokio::sync::mpsc::channel(8);
        let outcome = joined(done, &sink, 2).await;
        assert!(!outcome.ok);
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
                    fault.detail.contains("end + 1 overflowed"),
                    "{}",
                    fault.detail
                );
                assert_eq!((kind, cluster), (ExchangeKind::Blob, 2));
            }
            other => panic!("expected an internal fault, got {other:?}"),
        }
    }

    /// A download aborted because another layer failed is no fault of its own.
    #[tokio::test]
    async fn an_aborted_download_is_not_a_fault() {
        let mut tasks = JoinSet::new();
        tasks.spawn(std::future::pending::<download::Outcome>());
        tasks.abort_all();
        let done = tasks.join_next().await.expect("one task");
        let (sink, mut events) = tokio::sync::mpsc::channel(8);
        assert!(!joined(done, &sink, 0).await.ok);
        assert!(events.try_recv().is_err());
    }
}
