//! CI runners pushing during a run (`[push]`, docs/scenarios.md): each runner
//! is a task beside the pulling nodes (same deadline and shutdown: the storm
//! aborts them together), pushes one synthetic image with dockerd's rules
//! (`oci::push_rules`) and reports every request, failure, blob and push as
//! events. A release is a scenario with both: the clusters pull tag A while
//! CI pushes tag B.

use crate::fleet::FleetContext;
use crate::metrics::{Event, Sink};
use crate::net::{Fault, Timeouts};
use crate::oci::push::{self, Format, PushOptions};
use crate::oci::push_rules::PushRules;
use crate::oci::Session;
use crate::scenario::push::{PushContent, PushFormat};
use crate::scenario::Scenario;
use crate::synth::SyntheticImage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What every runner of a run shares.
struct Runners {
    fleet: Arc<FleetContext>,
    repository: String,
    tags: Vec<String>,
    sizes: Vec<u64>,
    seeds: Vec<u64>,
    /// The one image of `content = "shared"`, built by the first runner that needs it.
    shared: Option<OnceCell<Arc<SyntheticImage>>>,
    format: Format,
    options: PushOptions,
    rules: PushRules,
    start_after: Duration,
}

/// Starts the scenario's runners into `tasks` (nothing without `[push] runners`).
pub fn spawn(
    scenario: &Scenario,
    fleet: &Arc<FleetContext>,
    tasks: &mut JoinSet<()>,
    t0: Instant,
    sink: &Sink,
) {
    let p = &scenario.push;
    if p.runners == 0 {
        return;
    }
    let sizes = p.layer_sizes(scenario);
    let runners = Arc::new(Runners {
        fleet: fleet.clone(),
        repository: p.repository.clone(),
        tags: (0..p.runners).map(|r| p.tag_of(r)).collect(),
        seeds: (0..p.runners).map(|r| p.seed_of(scenario, r)).collect(),
        shared: (p.content == PushContent::Shared).then(OnceCell::new),
        format: match p.format {
            PushFormat::Docker => Format::Docker,
            PushFormat::Oci => Format::Oci,
        },
        options: PushOptions {
            // One PATCH per blob unless asked: what dockerd sends.
            chunk_size: p.chunk_size.map_or(u64::MAX, |c| c.0),
            jobs: p.max_concurrent_uploads as usize,
            mount_from: p.mount_from.clone(),
            attempts: p.max_attempts,
        },
        rules: PushRules {
            attempts: p.max_attempts,
            backoff: p.backoff.0,
            resume: p.resume,
        },
        sizes,
        start_after: p.start_after.0,
    });
    for runner in 0..p.runners {
        tasks.spawn(run_runner(runner, runners.clone(), t0, sink.clone()));
    }
}

/// One runner: waits for its start, builds its image, pushes it, reports the end.
async fn run_runner(runner: u32, runners: Arc<Runners>, t0: Instant, sink: Sink) {
    tokio::time::sleep_until(t0 + runners.start_after).await;
    let image = image_of(&runners, runner).await;
    let _ = sink.send(Event::PushStarted).await;
    let started = Instant::now();
    let ok = match push_one(&runners, runner, image, &sink).await {
        Ok(()) => true,
        Err(fault) => {
            tracing::debug!(runner, "push failed: {}", fault.detail);
            false
        }
    };
    let took = started.elapsed();
    let _ = sink.send(Event::PushDone { ok, took }).await;
}

/// The runner's image: hashed off the runtime (it reads every layer byte once).
async fn image_of(runners: &Runners, runner: u32) -> Arc<SyntheticImage> {
    let build = |seed: u64, sizes: Vec<u64>| async move {
        let built = tokio::task::spawn_blocking(move || SyntheticImage::build(seed, &sizes)).await;
        Arc::new(built.unwrap_or_else(|e| panic!("building the pushed image: {e}")))
    };
    match &runners.shared {
        Some(cell) => cell
            .get_or_init(|| build(runners.seeds[0], runners.sizes.clone()))
            .await
            .clone(),
        None => build(runners.seeds[runner as usize], runners.sizes.clone()).await,
    }
}

/// A session of its own (as `docker push` opens one), the ping, the push.
async fn push_one(
    runners: &Runners,
    runner: u32,
    image: Arc<SyntheticImage>,
    sink: &Sink,
) -> Result<(), Fault> {
    let fleet = &runners.fleet;
    // Uploads take long: the pull profile's response timeout would cut a large PATCH.
    let transport = fleet.transport.with_timeouts(Timeouts {
        connect: fleet.transport.timeouts.connect,
        response: Duration::from_secs(300),
        stall: Some(Duration::from_secs(120)),
    });
    let session = Session::new(
        fleet.base.clone(),
        runners.repository.clone(),
        fleet.credentials.clone(),
        transport,
        sink.clone(),
    )
    .for_push();
    if let Err(fault) = session.ping().await {
        push::report_fault(&session, &fault, false).await;
        return Err(fault);
    }
    let tag = &runners.tags[runner as usize];
    push::push_image_with(
        Arc::new(session),
        image,
        tag,
        runners.format,
        &runners.options,
        runners.rules,
    )
    .await
    .map(|_| ())
}
