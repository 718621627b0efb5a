//! Step 1 of a run: everything that must hold before the first node starts.
//! The plan must fit the fd limit, the target must exist (the embedded
//! registry is started here when the scenario names none), the image
//! reference must parse, and preflight must find the image at the target.

use super::plan::{Plan, FD_MARGIN};
use super::{preflight, RunOptions};
use crate::exit::Failure;
use crate::fleet::{FleetContext, Profile};
use crate::human;
use crate::metrics::fds::{self, FdLimits};
use crate::metrics::Gauges;
use crate::net;
use crate::oci::auth::Credentials;
use crate::oci::Reference;
use crate::registry::{EmbeddedConfig, EmbeddedRegistry};
use crate::result::model::TargetInfo;
use crate::scenario::{Loaded, Scenario};
use std::sync::Arc;
use url::Url;

/// Image served by the embedded registry when the scenario names none.
pub const EMBEDDED_IMAGE: &str = "synthetic/app:v1";

/// A run ready to start: its plan, the target as preflight found it, and what
/// every node shares.
pub(super) struct Ready {
    pub plan: Plan,
    pub profile: Profile,
    pub limits: FdLimits,
    pub target: TargetInfo,
    pub ctx: Arc<FleetContext>,
    /// The embedded registry, when there is no target: it serves while this lives.
    _registry: Option<EmbeddedRegistry>,
}

/// Checks, starts and resolves everything the storm needs; prints the
/// one-line announcement unless quiet.
pub(super) async fn prepare(opts: &RunOptions) -> Result<Ready, Failure> {
    let s = &opts.loaded.scenario;
    let limits = fds::raise_nofile();
    let profile = Profile::new(s.fleet.client, &s.client);
    let plan = Plan::new(s);
    check_fds(&opts.loaded, &plan, &profile, &limits)?;
    let (base, registry) = locate_target(s).await?;
    let image = s
        .target
        .image
        .clone()
        .unwrap_or_else(|| EMBEDDED_IMAGE.to_string());
    let reference = Reference::parse(&image)
        .map_err(|e| Failure::bad_input(format!("target.image {image:?}: {e}")))?;
    let credentials = Credentials::for_registry(&base).map(Arc::new);
    let gauges = Arc::new(Gauges::default());
    let transport = transport(s, &base, &profile, &gauges)?;
    let target = preflight::preflight(
        &base,
        &reference,
        &s.target.platform,
        &transport,
        credentials.clone(),
        registry.is_some(),
    )
    .await?;
    if !opts.quiet {
        eprintln!("{}", announcement(s, &plan, &image, &target));
    }
    let ctx = Arc::new(FleetContext {
        base,
        reference,
        platform: s.target.platform.clone(),
        profile: profile.clone(),
        transport,
        credentials,
        gauges,
        pulls_per_node: plan.pulls_per_node,
        pull_interval: s.run.pull_interval.0,
        node_bandwidth: s.fleet.node_bandwidth.map(|r| r.0),
        kubelet: s.kubelet.clone(),
        loopback_sources: s.fleet.loopback_sources,
    });
    Ok(Ready {
        plan,
        profile,
        limits,
        target,
        ctx,
        _registry: registry,
    })
}

/// Fails with bad input when the plan may need more fds than the process may open.
fn check_fds(
    loaded: &Loaded,
    plan: &Plan,
    profile: &Profile,
    limits: &FdLimits,
) -> Result<(), Failure> {
    let embedded = loaded.scenario.target.url.is_none();
    // Fds already open (inherited ones, the runtime's) count against the same limit.
    let already_open = fds::open_fds();
    let needed = plan.fds_needed(profile, embedded) + already_open;
    if needed <= limits.soft {
        return Ok(());
    }
    Err(Failure::bad_input(format!(
        "{}: the plan needs up to {needed} file descriptors ({} nodes x {} download slots{}, + {} spare, + {already_open} already open) but this process may open {} (hard limit {}); lower fleet.clusters, fleet.nodes_per_cluster or client.max_concurrent_downloads, or raise the limit (ulimit -n)",
        loaded.path.display(),
        plan.nodes.len(),
        profile.max_concurrent_downloads,
        if embedded { ", x 2 for the embedded registry in this process" } else { "" },
        FD_MARGIN,
        limits.soft,
        limits.hard
    )))
}

/// The target's base URL: `target.url`, or the embedded registry started here
/// on a free loopback port (returned too: it serves while the caller holds it).
async fn locate_target(s: &Scenario) -> Result<(Url, Option<EmbeddedRegistry>), Failure> {
    if let Some(u) = &s.target.url {
        let base =
            Url::parse(u).map_err(|e| Failure::bad_input(format!("target.url {u:?}: {e}")))?;
        return Ok((base, None));
    }
    let cannot_start = |e: std::io::Error| {
        Failure::cannot_proceed(format!("cannot start the embedded registry: {e}"))
    };
    let listener =
        net::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).map_err(cannot_start)?;
    let registry = crate::registry::start(listener, EmbeddedConfig::from_section(&s.embedded))
        .await
        .map_err(cannot_start)?;
    let base = Url::parse(&format!("http://{}", registry.addr()))
        .map_err(|e| Failure::cannot_proceed(format!("embedded registry address: {e}")))?;
    Ok((base, Some(registry)))
}

/// The nodes' transport: the profile's timeouts, TLS for https, and a read
/// buffer sized for throttled or full-speed nodes.
fn transport(
    s: &Scenario,
    base: &Url,
    profile: &Profile,
    gauges: &Gauges,
) -> Result<net::Transport, Failure> {
    let tls = match base.scheme() {
        "https" => Some(
            net::tls::connector(s.target.ca_file.as_deref(), s.target.insecure_tls)
                .map_err(Failure::bad_input)?,
        ),
        _ => None,
    };
    Ok(net::Transport {
        timeouts: profile.timeouts,
        gauge: gauges.connections.clone(),
        tls,
        loopback_source: None,
        read_buffer: match s.fleet.node_bandwidth {
            Some(_) => net::THROTTLED_READ_BUFFER,
            None => net::FULL_SPEED_READ_BUFFER,
        },
    })
}

/// `pullstorm: 4 nodes (1 clusters x 4), 1 pull(s) each of ... from ...`.
fn announcement(s: &Scenario, plan: &Plan, image: &str, target: &TargetInfo) -> String {
    format!(
        "pullstorm: {} nodes ({} clusters x {}), {} pull(s) each of {} ({}) from {}{}",
        plan.nodes.len(),
        s.fleet.clusters,
        s.fleet.nodes_per_cluster,
        plan.pulls_per_node,
        image,
        human::bytes(target.image_bytes as f64),
        target.url,
        if target.embedded {
            " (embedded registry)"
        } else {
            ""
        }
    )
}
