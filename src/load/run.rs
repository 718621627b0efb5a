//! One run from start to result: start the embedded registry when there is no
//! target, check the target answers, lay out the plan, run the fleet under a
//! hard deadline (Ctrl-C and SIGTERM stop it too), then build, check and
//! write the result. A stopped run still writes its result, marked incomplete.

use super::plan::Plan;
use crate::exit::{self, Failure};
use crate::fleet::{self, FleetContext, Profile};
use crate::metrics::{fds, recorder, Gauges, Recorder};
use crate::net::{self, FaultClass};
use crate::oci::auth::Credentials;
use crate::oci::{Reference, Session};
use crate::result::model::*;
use crate::result::{self, summary, thresholds};
use crate::scenario::{self, Pattern};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

/// Image served by the embedded registry when the scenario names none.
pub const EMBEDDED_IMAGE: &str = "synthetic/app:v1";

/// What `pullstorm run` was asked.
pub struct RunOptions {
    pub loaded: scenario::Loaded,
    pub overrides: Vec<String>,
    pub out_dir: Option<PathBuf>,
    pub quiet: bool,
    /// Processes and endpoints to sample besides the harness (`--watch*` flags).
    pub watch: crate::metrics::watch::WatchSpec,
}

/// Why the fleet stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Finished,
    Deadline,
    Interrupted,
}

/// Runs the scenario and writes its result; returns the exit code.
pub async fn execute(opts: RunOptions) -> Result<i32, Failure> {
    let s = &opts.loaded.scenario;
    let mut shutdown = Shutdown::listen();
    let limits = fds::raise_nofile();
    let profile = Profile::new(s.fleet.client, &s.client);
    let plan = Plan::new(s);
    let embedded = s.target.url.is_none();

    // Fds already open (inherited ones, the runtime's) count against the same limit.
    let already_open = fds::open_fds();
    let needed = plan.fds_needed(&profile, embedded) + already_open;
    if needed > limits.soft {
        return Err(Failure::bad_input(format!(
            "{}: the plan needs up to {needed} file descriptors ({} nodes x {} download slots{}, + {} spare, + {already_open} already open) but this process may open {} (hard limit {}); lower fleet.clusters, fleet.nodes_per_cluster or client.max_concurrent_downloads, or raise the limit (ulimit -n)",
            opts.loaded.path.display(),
            plan.nodes.len(),
            profile.max_concurrent_downloads,
            if embedded { ", x 2 for the embedded registry in this process" } else { "" },
            super::plan::FD_MARGIN,
            limits.soft,
            limits.hard
        )));
    }

    // The embedded registry lives as long as this function.
    let mut _registry = None;
    let base = match &s.target.url {
        Some(u) => {
            Url::parse(u).map_err(|e| Failure::bad_input(format!("target.url {u:?}: {e}")))?
        }
        None => {
            let listener =
                net::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|e| {
                    Failure::cannot_proceed(format!("cannot start the embedded registry: {e}"))
                })?;
            let registry = crate::registry::start(
                listener,
                crate::registry::EmbeddedConfig::from_section(&s.embedded),
            )
            .await
            .map_err(|e| {
                Failure::cannot_proceed(format!("cannot start the embedded registry: {e}"))
            })?;
            let url = Url::parse(&format!("http://{}", registry.addr()))
                .map_err(|e| Failure::cannot_proceed(format!("embedded registry address: {e}")))?;
            _registry = Some(registry);
            url
        }
    };
    let image = s
        .target
        .image
        .clone()
        .unwrap_or_else(|| EMBEDDED_IMAGE.to_string());
    let reference = Reference::parse(&image)
        .map_err(|e| Failure::bad_input(format!("target.image {image:?}: {e}")))?;
    let host = match base.port() {
        Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
        None => base.host_str().unwrap_or_default().to_string(),
    };
    let credentials = Credentials::find(&host).map(Arc::new);

    let gauges = Arc::new(Gauges::default());
    let tls = match base.scheme() {
        "https" => Some(
            net::tls::connector(s.target.ca_file.as_deref(), s.target.insecure_tls)
                .map_err(Failure::bad_input)?,
        ),
        _ => None,
    };
    let transport = net::Transport {
        timeouts: profile.timeouts,
        gauge: gauges.connections.clone(),
        tls,
        loopback_source: None,
        read_buffer: match s.fleet.node_bandwidth {
            Some(_) => net::THROTTLED_READ_BUFFER,
            None => net::FULL_SPEED_READ_BUFFER,
        },
    };
    let target = preflight(
        &base,
        &reference,
        &s.target.platform,
        &transport,
        credentials.clone(),
        embedded,
    )
    .await?;
    if !opts.quiet {
        eprintln!(
            "pullstorm: {} nodes ({} clusters x {}), {} pull(s) each of {} ({}) from {}{}",
            plan.nodes.len(),
            s.fleet.clusters,
            s.fleet.nodes_per_cluster,
            plan.pulls_per_node,
            image,
            crate::human::bytes(target.image_bytes as f64),
            base,
            if embedded { " (embedded registry)" } else { "" }
        );
    }

    let ctx = Arc::new(FleetContext {
        base: base.clone(),
        reference,
        platform: s.target.platform.clone(),
        profile: profile.clone(),
        transport,
        credentials,
        gauges: gauges.clone(),
        pulls_per_node: plan.pulls_per_node,
        pull_interval: s.run.pull_interval.0,
        node_bandwidth: s.fleet.node_bandwidth.map(|r| r.0),
        kubelet: s.kubelet.clone(),
        loopback_sources: s.fleet.loopback_sources,
    });

    let started_wall = SystemTime::now();
    let t0 = Instant::now();
    let (sink, events) = tokio::sync::mpsc::channel(64 * 1024);
    let (stop_recorder, stop_rx) = tokio::sync::oneshot::channel();
    let recorder_task = tokio::spawn(recorder::run(
        Recorder::new(s.fleet.clusters, t0),
        events,
        gauges.clone(),
        stop_rx,
    ));
    let watch = {
        let mut spec = opts.watch.clone();
        for p in &s.watch.processes {
            spec.add_process(p);
        }
        spec.metrics_urls.extend(s.watch.metrics.iter().cloned());
        spec.stub_status_urls
            .extend(s.watch.stub_status.iter().cloned());
        spec.metric_names
            .extend(s.watch.metric_names.iter().cloned());
        spec.harness = true;
        spec.harness_fds = Some(gauges.fds.clone());
        spec.target_ports = base.port_or_known_default().into_iter().collect();
        crate::metrics::watch::spawn(crate::metrics::watch::Watcher::new(spec, t0.into_std()))
    };
    let progress = crate::progress::start_with(
        gauges.clone(),
        crate::progress::Options {
            total_pulls: plan.planned_pulls(),
            fd_limit: limits.soft,
            mode: crate::progress::Mode::detect(opts.quiet),
            watched: Some(watch.latest()),
        },
    );

    let mut nodes = JoinSet::new();
    for node in &plan.nodes {
        nodes.spawn(fleet::run_node(*node, ctx.clone(), t0, sink.clone()));
    }
    drop(sink);

    let deadline = tokio::time::sleep_until(t0 + s.run.duration.0);
    tokio::pin!(deadline);
    let stop = loop {
        tokio::select! {
            done = nodes.join_next() => if done.is_none() { break Stop::Finished },
            _ = &mut deadline => break Stop::Deadline,
            _ = shutdown.requested() => break Stop::Interrupted,
        }
    };
    if stop != Stop::Finished {
        nodes.abort_all();
        while nodes.join_next().await.is_some() {}
    }
    let _ = stop_recorder.send(());
    let recorder = recorder_task
        .await
        .map_err(|e| Failure::cannot_proceed(format!("the recorder stopped unexpectedly: {e}")))?;
    progress.finish();
    let watched = watch.finish().await;
    let ended_wall = SystemTime::now();

    let mut doc = build_result(
        &opts,
        &plan,
        &profile,
        target,
        &recorder,
        limits,
        stop,
        started_wall,
        ended_wall,
    );
    doc.watched = watched;
    doc.thresholds = thresholds::evaluate(&s.thresholds, &doc);

    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| default_out_dir(&opts.loaded.name, started_wall));
    let json = serde_json::to_vec_pretty(&doc)
        .map_err(|e| Failure::cannot_proceed(format!("cannot encode the result: {e}")))?;
    let result_path = out_dir.join("result.json");
    result::write_atomic(&result_path, &json).map_err(|e| {
        Failure::cannot_proceed(format!("cannot write {}: {e}", result_path.display()))
    })?;
    let hlog_path = out_dir.join("latency.hlog");
    result::write_atomic(&hlog_path, &interval_log(&recorder, started_wall)).map_err(|e| {
        Failure::cannot_proceed(format!("cannot write {}: {e}", hlog_path.display()))
    })?;
    let report_path = out_dir.join("report.html");
    crate::report::write(&doc, &report_path).map_err(|e| {
        Failure::cannot_proceed(format!("cannot write {}: {e}", report_path.display()))
    })?;

    print!("{}", summary::render(&doc));
    println!("  result    {}", result_path.display());
    println!("  report    {}", report_path.display());
    Ok(if doc.thresholds.passed {
        exit::OK
    } else {
        exit::THRESHOLDS_FAILED
    })
}

/// Checks that the target answers and the image resolves before any node starts.
async fn preflight(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
    embedded: bool,
) -> Result<TargetInfo, Failure> {
    let ping_url = base
        .join("/v2/")
        .map_err(|e| Failure::bad_input(format!("target.url: {e}")))?;
    let timeouts = net::Timeouts {
        connect: Duration::from_secs(10),
        response: Duration::from_secs(15),
        stall: Some(Duration::from_secs(15)),
    };
    let ex = net::send(
        http::Method::GET,
        &ping_url,
        http::HeaderMap::new(),
        &transport.with_timeouts(timeouts),
    )
    .await
    .map_err(|f| Failure::cannot_proceed(format!("target {base} is unreachable: {f}")))?;
    let server = ex
        .headers
        .get("server")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let api_version = ex
        .headers
        .get("docker-distribution-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    drop(ex);

    // Resolve once with a throwaway event channel: the nodes' pulls are what is measured.
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    let drainer = tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let session = Session::new(
        base.clone(),
        reference.name.clone(),
        credentials.clone(),
        transport.clone(),
        sink,
    );
    let resolved = async {
        session.ping().await?;
        session.resolve(reference.manifest_ref(), platform).await
    }
    .await;
    drop(session);
    let _ = drainer.await;
    let resolved = resolved.map_err(|f| {
        let hint = match f.class {
            FaultClass::Http(401) | FaultClass::Http(403) if credentials.is_none() => {
                " (the registry wants credentials: set PULLSTORM_USERNAME and PULLSTORM_PASSWORD, or log in with docker so config.json has them)"
            }
            _ => "",
        };
        Failure::cannot_proceed(format!("cannot resolve {reference} at {base}: {f}{hint}"))
    })?;
    let blobs: Vec<BlobInfo> = std::iter::once(&resolved.config)
        .chain(resolved.layers.iter())
        .map(|d| BlobInfo {
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
        })
        .collect();
    let image_bytes = blobs.iter().map(|b| b.size).sum();
    Ok(TargetInfo {
        url: base.to_string(),
        image: reference.to_string(),
        embedded,
        manifest_digest: Some(resolved.digest),
        blobs,
        image_bytes,
        server,
        api_version,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_result(
    opts: &RunOptions,
    plan: &Plan,
    profile: &Profile,
    target: TargetInfo,
    rec: &Recorder,
    limits: fds::FdLimits,
    stop: Stop,
    started: SystemTime,
    ended: SystemTime,
) -> ResultDoc {
    let s = &opts.loaded.scenario;
    let duration = ended.duration_since(started).unwrap_or_default();
    let secs = duration.as_secs_f64().max(1e-3);
    let mut errors: BTreeMap<String, u64> =
        FaultClass::FIXED.iter().map(|c| (c.key(), 0)).collect();
    for (class, stat) in &rec.errors {
        errors.insert(class.key(), stat.count);
    }
    let error_details = rec
        .errors
        .iter()
        .map(|(class, e)| ErrorDetail {
            class: class.key(),
            count: e.count,
            first_s: (e.first_s * 1000.0).round() / 1000.0,
            last_s: (e.last_s * 1000.0).round() / 1000.0,
            phase: format!("{:?}", e.phase).to_lowercase(),
            request: format!("{:?}", e.request).to_lowercase(),
            sample: e.sample.clone(),
        })
        .collect();
    let (latency, histograms) = result::model::measured(rec);
    let interrupted = rec
        .pulls_started
        .saturating_sub(rec.pulls_completed + rec.pulls_failed);
    let complete = stop == Stop::Finished && interrupted == 0;
    ResultDoc {
        schema: SCHEMA.to_string(),
        pullstorm_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: ScenarioInfo {
            name: opts.loaded.name.clone(),
            file: opts.loaded.path.display().to_string(),
            overrides: opts.overrides.clone(),
            resolved: serde_json::to_value(s).unwrap_or_default(),
        },
        target,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: humantime::format_rfc3339_millis(ended).to_string(),
        duration_ms: duration.as_millis() as u64,
        complete,
        stop_reason: match stop {
            Stop::Finished => "finished",
            Stop::Deadline => "deadline",
            Stop::Interrupted => "interrupted",
        }
        .to_string(),
        fleet: FleetInfo {
            clusters: s.fleet.clusters,
            nodes_per_cluster: s.fleet.nodes_per_cluster,
            nodes: plan.nodes.len() as u64,
            client: format!("{:?}", s.fleet.client).to_lowercase(),
            profile: serde_json::to_value(profile).unwrap_or_default(),
            arrival: match s.arrival.pattern {
                Pattern::Herd => "herd".to_string(),
                Pattern::Waves => format!(
                    "waves of {} every {}",
                    s.arrival.wave_size, s.arrival.wave_interval
                ),
            },
            node_bandwidth_bytes_per_sec: s.fleet.node_bandwidth.map(|r| r.0),
        },
        pulls: Pulls {
            planned: plan.planned_pulls(),
            started: rec.pulls_started,
            completed: rec.pulls_completed,
            failed: rec.pulls_failed,
            interrupted,
            kubelet_retries: rec.kubelet_retries,
        },
        layers: Layers {
            completed: rec.layers_completed,
            failed: rec.layers_failed,
            attempts: rec
                .attempts_per_layer
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        },
        bytes: Bytes {
            downloaded: rec.bytes_downloaded(),
            wasted: rec.bytes_wasted,
            completed_pulls: rec.bytes_pulled_ok,
        },
        throughput: Throughput {
            mean_bytes_per_sec: (rec.bytes_downloaded() as f64 / secs).round(),
            peak_bytes_per_sec: rec.timeline.iter().map(|r| r.bytes).max().unwrap_or(0),
        },
        retries: Retries {
            total: rec.retries,
            by_class: rec.retries_by_class.clone(),
            at_progress: rec
                .retries_at_progress
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{}-{}", i * 10, i * 10 + 10), *n))
                .collect(),
        },
        errors,
        error_details,
        latency,
        histograms,
        fd: FdInfo {
            client_peak: rec.fd_peak,
            client_limit: limits.soft,
            client_hard_limit: limits.hard,
            client_limit_at_start: limits.soft_at_start,
        },
        connections: ConnectionInfo {
            peak: rec.connections_peak,
        },
        clusters: rec.clusters.clone(),
        timeline: rec.timeline.clone(),
        thresholds: ThresholdReport::default(),
        watched: Vec::new(),
    }
}

/// The `.hlog` file: the standard HdrHistogram interval-log header, then the recorder's
/// tagged lines (one per metric per 5 s interval), readable by HistogramLogProcessor
/// and the hdrhistogram libraries.
fn interval_log(recorder: &Recorder, started: SystemTime) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    let _ = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
        .add_comment(concat!("pullstorm ", env!("CARGO_PKG_VERSION"), " latency intervals"))
        .add_comment("values in microseconds; Interval_Max in milliseconds; Tag = result.json latency metric")
        .with_start_time(started)
        .with_base_time(started)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer);
    out.extend_from_slice(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    out.extend_from_slice(recorder.interval_log());
    out
}

/// `reports/<name>-<UTC timestamp>/`.
fn default_out_dir(name: &str, at: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to from before the fleet starts so an
/// early signal is never lost to the default action (death without a result).
struct Shutdown {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Shutdown {
    fn listen() -> Shutdown {
        Shutdown {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn requested(&mut self) {
        async fn on(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = on(&mut self.interrupt) => {}
            _ = on(&mut self.terminate) => {}
        }
    }
}
