//! Step 1 of a run: everything that must hold before the first node starts.
//! The plan must fit the fd limit, the target must exist (the embedded
//! registry is started here when the scenario names none), the image
//! reference must parse, and preflight must find the image at the target.
//! The slow steps obey the shutdown future as the storm does, and preflight
//! (the target's part) `run.duration` too: either one stops the run here,
//! before any node starts, and it still gets its (empty, incomplete) result.
//! Building the embedded image is the harness's own setup, bounded by the
//! embedded size limits: the deadline starts after it, as the storm's does.

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
use crate::result::build::StopReason;
use crate::result::model::TargetInfo;
use crate::scenario::{ClientOverrides, Connections, Loaded, Scenario};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
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

/// How startup ended.
pub(super) enum Prepared {
    /// Every check passed: the storm may start.
    Ready(Ready),
    /// `run.duration` ran out or the shutdown future completed before any node
    /// started; the target is described as far as startup got (no blobs when
    /// preflight did not finish).
    Stopped(Ready, StopReason),
}

/// Checks, starts and resolves everything the storm needs; prints the
/// one-line announcement unless quiet. The embedded image build races the
/// shutdown future; preflight (ping, token, manifest) races it and a deadline
/// of `run.duration`, so a target that never answers cannot hold the run.
pub(super) async fn prepare<S: Future>(
    opts: &RunOptions,
    shutdown: Pin<&mut S>,
) -> Result<Prepared, Failure> {
    let s = &opts.loaded.scenario;
    let stops = Stops {
        duration: s.run.duration.0,
        shutdown,
    };
    let limits = fds::raise_nofile();
    let profile = Profile::new(s.fleet.client, &s.client);
    let plan = crate::shard::plan(s, opts.sharding.shard).map_err(Failure::bad_input)?;
    check_fds(&opts.loaded, &plan, &profile, &limits)?;
    let image = s
        .target
        .image
        .clone()
        .unwrap_or_else(|| EMBEDDED_IMAGE.to_string());
    let reference = Reference::parse(&image)
        .map_err(|e| Failure::bad_input(format!("target.image {image:?}: {e}")))?;
    let (base, pending) = locate_target(s)?;
    let credentials = Credentials::for_registry(&base).map(Arc::new);
    let gauges = Arc::new(Gauges::default());
    let transport = transport(s, &base, &profile, &gauges)?;
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
        pull_every: plan.pull_every,
        node_bandwidth: s.fleet.node_bandwidth.map(|r| r.0),
        kubelet: s.kubelet.clone(),
        seed: s.run.seed,
        loopback_sources: s.fleet.loopback_sources,
    });
    let ready = Ready {
        plan,
        profile,
        limits,
        target: unresolved(&ctx.base, &ctx.reference, pending.is_some()),
        ctx,
        _registry: None,
    };
    let prepared = start_and_check(opts, ready, pending, stops).await?;
    if let (Prepared::Ready(ready), false) = (&prepared, opts.quiet) {
        eprintln!("{}", announcement(s, &ready.plan, &image, &ready.target));
    }
    Ok(prepared)
}

/// The slow part of startup, each step raced with `stops`: build the embedded
/// image and start serving it (when there is no target), then preflight.
async fn start_and_check<S: Future>(
    opts: &RunOptions,
    mut ready: Ready,
    pending: Option<PendingRegistry>,
    mut stops: Stops<'_, S>,
) -> Result<Prepared, Failure> {
    if let Some(pending) = pending {
        if let (Some(note), false) = (pending.slow_build_note(), opts.quiet) {
            eprintln!("{note}");
        }
        match stops.race(pending.start(), None).await {
            Ok(started) => ready._registry = Some(started?),
            Err(stop) => return Ok(stopped(opts, ready, stop, "building the embedded image")),
        }
    }
    let c = ready.ctx.clone();
    let checked = preflight::preflight(
        &c.base,
        &c.reference,
        &c.platform,
        &c.transport,
        c.credentials.clone(),
        ready._registry.is_some(),
    );
    let deadline = Instant::now() + stops.duration;
    match stops.race(checked, Some(deadline)).await {
        Ok(checked) => {
            let checked = checked?;
            if !opts.quiet {
                for warning in &checked.warnings {
                    eprintln!("{}", crate::terminal::escape(warning));
                }
            }
            ready.target = checked.target;
        }
        Err(stop) => {
            return Ok(stopped(
                opts,
                ready,
                stop,
                "checking the target (preflight)",
            ))
        }
    }
    Ok(Prepared::Ready(ready))
}

/// What may end startup before the storm: the shutdown future, and for the
/// target's checks a deadline `duration` (`run.duration`) after they start.
struct Stops<'a, S> {
    duration: Duration,
    shutdown: Pin<&'a mut S>,
}

impl<S: Future> Stops<'_, S> {
    /// Awaits `step`, unless the shutdown future or the `deadline` comes first
    /// (then `step` is dropped, which cancels it). Never polls a completed
    /// shutdown future again: the caller stops at the first `Err`.
    async fn race<T>(
        &mut self,
        step: impl Future<Output = T>,
        deadline: Option<Instant>,
    ) -> Result<T, StopReason> {
        let deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.shutdown.as_mut() => Err(StopReason::Interrupted),
            _ = deadline => Err(StopReason::Deadline),
            done = step => Ok(done),
        }
    }
}

/// A run stopped during startup, saying so on stderr unless quiet.
fn stopped(opts: &RunOptions, ready: Ready, stop: StopReason, doing: &str) -> Prepared {
    if !opts.quiet {
        let why = match stop {
            StopReason::Deadline => format!(
                "run.duration ({}) ran out",
                human::millis(opts.loaded.scenario.run.duration.0.as_millis() as f64)
            ),
            _ => "stopped by a signal".to_string(),
        };
        eprintln!("pullstorm: {why} while {doing}; no node started");
    }
    Prepared::Stopped(ready, stop)
}

/// The target before preflight has resolved anything.
fn unresolved(base: &Url, reference: &Reference, embedded: bool) -> TargetInfo {
    TargetInfo {
        url: base.to_string(),
        image: reference.to_string(),
        embedded,
        manifest_digest: None,
        blobs: Vec::new(),
        image_bytes: 0,
        server: None,
        api_version: None,
    }
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
        "{}: the plan needs up to {needed} file descriptors ({} nodes x {} download slots{}{}, + {} spare, + {already_open} already open) but this process may open {} (hard limit {}); lower fleet.clusters, fleet.nodes_per_cluster or client.max_concurrent_downloads, or raise the limit (ulimit -n)",
        loaded.path.display(),
        plan.nodes.len(),
        profile.max_concurrent_downloads,
        if profile.config_outside_slots { " + 1 config fetch" } else { "" },
        if embedded { ", x 2 for the embedded registry in this process" } else { "" },
        FD_MARGIN,
        limits.soft,
        limits.hard
    )))
}

/// The target's base URL: `target.url`, or the address of the embedded
/// registry, whose listener is bound here; it starts serving (after building
/// its image) with [`PendingRegistry::start`].
fn locate_target(s: &Scenario) -> Result<(Url, Option<PendingRegistry>), Failure> {
    if let Some(u) = &s.target.url {
        let base =
            Url::parse(u).map_err(|e| Failure::bad_input(format!("target.url {u:?}: {e}")))?;
        return Ok((base, None));
    }
    let listener =
        net::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).map_err(cannot_start)?;
    let addr = listener.local_addr().map_err(cannot_start)?;
    let base = Url::parse(&format!("http://{addr}"))
        .map_err(|e| Failure::cannot_proceed(format!("embedded registry address: {e}")))?;
    let config = EmbeddedConfig::from_section(&s.embedded);
    Ok((base, Some(PendingRegistry { listener, config })))
}

/// The embedded registry before its image is built: a bound listener and its config.
struct PendingRegistry {
    listener: tokio::net::TcpListener,
    config: EmbeddedConfig,
}

impl PendingRegistry {
    /// Said before a build that takes seconds (1 GiB or more), so the wait is explained.
    fn slow_build_note(&self) -> Option<String> {
        let total = self
            .config
            .layer_sizes
            .iter()
            .fold(0u64, |sum, &s| sum.saturating_add(s));
        (total >= 1 << 30).then(|| {
            format!(
                "pullstorm: building the embedded image ({}; every layer is hashed once)",
                human::bytes(total as f64)
            )
        })
    }

    /// Builds the image and starts serving; dropping this future cancels the build.
    async fn start(self) -> Result<EmbeddedRegistry, Failure> {
        crate::registry::start(self.listener, self.config)
            .await
            .map_err(cannot_start)
    }
}

fn cannot_start(e: std::io::Error) -> Failure {
    Failure::cannot_proceed(format!("cannot start the embedded registry: {e}"))
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
        connections: connection_policy(profile, &s.client, base),
        pool: None,
    })
}

/// How the nodes' pulls open connections: the release's model (dockerd: a connection
/// per request and an HTTPS probe of a plain-HTTP target; containerd: a kept-alive pool
/// per pull), then `[client] connections` and `https_probe`.
fn connection_policy(profile: &Profile, c: &ClientOverrides, base: &Url) -> net::ConnectionPolicy {
    let mut policy = profile.connections;
    match c.connections {
        Some(Connections::Close) => policy.model = net::ConnectionModel::Close { header: true },
        Some(Connections::KeepAlive) => {
            policy.model = net::ConnectionModel::KeepAlive(net::KeepAlive::GO)
        }
        None => {}
    }
    match c.https_probe {
        Some(false) => policy.https_probe = net::HttpsProbe::Off,
        // Asked for on a release without one: dockerd's, once per pull.
        Some(true) if policy.https_probe == net::HttpsProbe::Off => {
            policy.https_probe = net::HttpsProbe::PerPull
        }
        _ => {}
    }
    // containerd 2.x tries https first only on a localhost registry with a port other
    // than 80 and 443 (config/hosts.go); dockerd on any registry it reaches over http.
    if policy.https_probe == net::HttpsProbe::PerPool && c.https_probe.is_none() {
        let local = matches!(base.host_str(), Some("localhost"))
            || base
                .host_str()
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback());
        if !local || matches!(base.port_or_known_default(), Some(80 | 443)) {
            policy.https_probe = net::HttpsProbe::Off;
        }
    }
    policy
}

/// `pullstorm: 4 nodes (1 clusters x 4), 1 pull(s) each of ... from ...`.
fn announcement(s: &Scenario, plan: &Plan, image: &str, target: &TargetInfo) -> String {
    format!(
        "pullstorm: {} nodes ({} clusters x {}), {} of {} ({}) from {}{}",
        plan.nodes.len(),
        s.fleet.clusters,
        s.fleet.nodes_per_cluster,
        match plan.pulls_per_node {
            super::plan::UNTIL_STOPPED => "a staircase of pulls in a closed loop".to_string(),
            n => format!("{n} pull(s) each"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    fn policy_of(toml: &str, target: &str) -> net::ConnectionPolicy {
        let s = parse(toml, "c.toml", &[]).unwrap();
        let profile = Profile::new(s.fleet.client, &s.client);
        connection_policy(&profile, &s.client, &Url::parse(target).unwrap())
    }

    fn policy(client: &str) -> net::ConnectionPolicy {
        policy_of(
            &format!("[fleet]\nclient = \"containerd-1.6\"\n[client]\n{client}\n"),
            "http://127.0.0.1:5000",
        )
    }

    /// Each release opens connections as its client does (docs/clients.md).
    #[test]
    fn each_release_has_its_connection_model() {
        use net::ConnectionModel::{Close, KeepAlive};
        use net::HttpsProbe::{Off, PerPool, PerPull};
        let of = |client: &str, target: &str| {
            let p = policy_of(&format!("[fleet]\nclient = \"{client}\"\n"), target);
            (p.model, p.https_probe)
        };
        let local = "http://127.0.0.1:5000";
        let keep = KeepAlive(net::KeepAlive::GO);
        assert_eq!(
            of("dockerd-20.10", local),
            (Close { header: true }, PerPull)
        );
        assert_eq!(of("dockerd-27", local), (Close { header: true }, PerPull));
        assert_eq!(of("containerd-1.6", local), (keep, Off));
        assert_eq!(of("containerd-1.7", local), (keep, Off));
        assert_eq!(of("containerd-2.2", local), (keep, PerPool));
        // containerd 2.x probes only a localhost registry on another port than 80/443.
        assert_eq!(
            of("containerd-2.2", "http://registry.lan:5000"),
            (keep, Off)
        );
        assert_eq!(of("containerd-2.2", "http://127.0.0.1"), (keep, Off));
    }

    #[test]
    fn client_keys_pick_the_connection_model() {
        use net::ConnectionModel::{Close, KeepAlive};
        assert_eq!(policy("").model, KeepAlive(net::KeepAlive::GO));
        assert_eq!(
            policy("connections = \"close\"").model,
            Close { header: true }
        );
        assert_eq!(
            policy("connections = \"keep-alive\"").model,
            KeepAlive(net::KeepAlive::GO)
        );
        assert_eq!(
            policy("https_probe = true").https_probe,
            net::HttpsProbe::PerPull
        );
        assert_eq!(
            policy("connections = \"close\"").https_probe,
            net::HttpsProbe::Off
        );
        assert_eq!(
            policy_of(
                "[fleet]\nclient = \"dockerd-20.10\"\n[client]\nhttps_probe = false\n",
                "http://127.0.0.1:5000"
            )
            .https_probe,
            net::HttpsProbe::Off
        );
    }

    #[test]
    fn a_connection_model_that_does_not_exist_names_file_line_and_key() {
        let e = match parse("[client]\nconnections = \"keepalive\"\n", "c.toml", &[]) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert_eq!(e.code, crate::exit::BAD_INPUT, "{}", e.message);
        assert!(e.message.starts_with("c.toml:2:"), "{}", e.message);
        assert!(e.message.contains("client.connections"), "{}", e.message);
    }
}
