//! The scenario as typed data: what `pullstorm run` reads from a TOML file.
//!
//! Every section and key is optional and has a default, so the smallest valid
//! scenario is an empty file (a herd of one node against the embedded
//! registry). `docs/scenarios.md` documents each key; keep the two in step.

use super::thresholds::PathCheck;
use super::units::{ByteSize, Rate, Span};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A whole scenario file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in the default output folder and the report; defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target: TargetSection,
    #[serde(default)]
    pub embedded: EmbeddedSection,
    #[serde(default)]
    pub fleet: FleetSection,
    #[serde(default)]
    pub client: ClientOverrides,
    #[serde(default)]
    pub kubelet: KubeletSection,
    #[serde(default)]
    pub watch: WatchSection,
    #[serde(default)]
    pub arrival: ArrivalSection,
    #[serde(default)]
    pub run: RunSection,
    /// CI runners pushing during the run (`scenario::push`); none by default, and then
    /// left out of the resolved scenario, so runs without pushers resolve as before.
    #[serde(default, skip_serializing_if = "super::push::PushSection::is_off")]
    pub push: super::push::PushSection,
    /// Without a section, `fill_defaults` decides `max_failed_pulls` as with one.
    #[serde(default = "Thresholds::unset")]
    pub thresholds: Thresholds,
    /// A consistency check of the registry after the storm (`pullstorm verify`'s).
    #[serde(default)]
    pub verify: VerifySection,
}

impl Scenario {
    /// Fills the defaults that depend on other keys (see [`Thresholds::fill_defaults`];
    /// the kubelet's re-pulls depend on the client), so the scenario as run says them.
    /// A staircase is meant to break the target: its failed pulls are the
    /// finding, so `max_failed_pulls` gets no default of 0 there.
    pub fn fill_defaults(&mut self) {
        if self.arrival.pattern != Pattern::Staircase {
            self.thresholds.fill_defaults();
        }
        let fleet_nodes = u64::from(self.fleet.clusters) * u64::from(self.fleet.nodes_per_cluster);
        self.arrival.fill_staircase_defaults(fleet_nodes);
        self.kubelet.pull_retries = Some(self.kubelet.retries_for(self.fleet.client));
    }
}

/// `[verify]`: after the storm, check that the registry still serves every tag,
/// manifest and blob of some images whole (docs/verify.md). A storm that broke the
/// registry's storage or cache (seed 002) fails the run even when every pull passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    /// Run the check when the storm ends (also after a deadline; not after Ctrl-C).
    #[serde(default)]
    pub after_run: bool,
    /// Images to check (`repo:tag` or `repo@sha256:...`); default: the image the run pulled.
    #[serde(default)]
    pub images: Vec<String>,
    /// Blobs checked at once.
    #[serde(default = "default_verify_jobs")]
    pub jobs: u32,
    /// Longest wait for a connection, a response head, and between two body bytes.
    #[serde(default = "default_verify_timeout")]
    pub timeout: Span,
}

impl Default for VerifySection {
    fn default() -> Self {
        VerifySection {
            after_run: false,
            images: Vec::new(),
            jobs: default_verify_jobs(),
            timeout: default_verify_timeout(),
        }
    }
}

fn default_verify_jobs() -> u32 {
    4
}

fn default_verify_timeout() -> Span {
    Span(Duration::from_secs(30))
}

/// Which registry to pull from. Without `url` the run starts the embedded registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// Base URL of the registry or its load balancer, e.g. `http://127.0.0.1:8080`.
    #[serde(default)]
    pub url: Option<String>,
    /// Image reference inside that registry: `repo/name:tag` or `repo/name@sha256:...`.
    /// Required with `url`; without it the embedded registry serves any name.
    #[serde(default)]
    pub image: Option<String>,
    /// Platform picked from an image index.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Accept any TLS certificate (like `--tls-verify=false`).
    #[serde(default)]
    pub insecure_tls: bool,
    /// Extra PEM CA bundle to trust for TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for TargetSection {
    fn default() -> Self {
        TargetSection {
            url: None,
            image: None,
            platform: default_platform(),
            insecure_tls: false,
            ca_file: None,
        }
    }
}

fn default_platform() -> String {
    "linux/amd64".into()
}

/// The synthetic image the embedded registry serves when the scenario has no target URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSection {
    /// Layer sizes, in order.
    #[serde(default = "default_layers")]
    pub layers: Vec<ByteSize>,
    /// PRNG seed for the layer content: same seed and sizes give the same digests.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Serve an image index (linux/amd64 + linux/arm64) at the tag instead of a single manifest.
    #[serde(default)]
    pub index: bool,
    /// Authentication the embedded registry demands.
    #[serde(default)]
    pub auth: EmbeddedAuth,
    /// Faults the embedded registry injects into blob responses.
    #[serde(default)]
    pub faults: Faults,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        EmbeddedSection {
            layers: default_layers(),
            seed: default_seed(),
            index: false,
            auth: EmbeddedAuth::None,
            faults: Faults::default(),
        }
    }
}

fn default_layers() -> Vec<ByteSize> {
    vec![ByteSize(32 << 20), ByteSize(16 << 20), ByteSize(4 << 20)]
}

fn default_seed() -> u64 {
    1
}

/// Authentication modes of the embedded registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddedAuth {
    #[default]
    None,
    /// `401` + `WWW-Authenticate: Bearer realm=...` and a token endpoint of its own.
    Bearer,
}

/// Faults injected by the embedded registry (also `pullstorm serve --cut-after ...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Cut each blob response after this many body bytes.
    #[serde(default)]
    pub cut_after: Option<ByteSize>,
    /// How many responses per blob are cut (the rest are served whole); absent = all.
    #[serde(default)]
    pub cut_times: Option<u32>,
    /// How the connection is cut: `fin` (clean close, a short body) or `rst` (reset).
    #[serde(default)]
    pub cut_with: CutWith,
    /// Answer Range requests with `200` and the whole blob.
    #[serde(default)]
    pub ignore_range: bool,
    /// Serve blob bodies with one byte flipped (digest mismatch at the client).
    #[serde(default)]
    pub corrupt: bool,
    /// Answer requests for `status_on` with this HTTP error status (400-599) and the body
    /// a registry sends with it.
    #[serde(default)]
    pub status: Option<u16>,
    /// Which requests get `status`.
    #[serde(default)]
    pub status_on: Option<FaultTarget>,
    /// How many requests get `status` (the rest are served); absent = all.
    #[serde(default)]
    pub status_times: Option<u32>,
    /// Serve this many requests of `status_on` before `status` begins (a registry that
    /// fails mid-storm); absent = from the first.
    #[serde(default)]
    pub status_after: Option<u32>,
    /// Stop sending each blob body after this many bytes and hold the connection open.
    #[serde(default)]
    pub stall_after: Option<ByteSize>,
}

/// The requests a `status` fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `GET /v2/`.
    Ping,
    /// The token endpoint (`/token`).
    Token,
    /// `/v2/<name>/manifests/<tag or digest>`.
    Manifest,
    /// Image config blobs.
    Config,
    /// Layer blobs.
    Layer,
    /// Every blob (configs and layers).
    Blob,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutWith {
    /// A clean close before the body is complete (`unexpected_eof` at the client).
    #[default]
    Fin,
    /// A TCP reset (`connection_reset` at the client).
    Rst,
}

/// The simulated fleet: clusters x nodes, each node one container runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// At least 1.
    #[serde(default = "one")]
    pub clusters: u32,
    /// At least 1; `clusters x nodes_per_cluster` at most `scenario::MAX_NODES`.
    #[serde(default = "one")]
    pub nodes_per_cluster: u32,
    /// Which client each node imitates.
    #[serde(default)]
    pub client: ClientKind,
    /// Download bandwidth cap per node (shared by its connections); absent = no cap.
    #[serde(default)]
    pub node_bandwidth: Option<Rate>,
    /// Spread the nodes' connections over this many loopback source addresses
    /// (127.0.0.1, 127.0.0.2, ...) when the target is on loopback, so that one
    /// address's ephemeral ports are not the limit; 1 = let the kernel choose.
    #[serde(default = "one")]
    pub loopback_sources: u32,
}

impl Default for FleetSection {
    fn default() -> Self {
        FleetSection {
            clusters: 1,
            nodes_per_cluster: 1,
            client: ClientKind::Dockerd27,
            node_bandwidth: None,
            loopback_sources: 1,
        }
    }
}

fn one() -> u32 {
    1
}

/// Which client a node imitates, release by release (docs/clients.md has each one's
/// rules and their sources). The bare names are aliases of the newest release modelled,
/// and a result always names the release that ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientKind {
    /// Docker 20.10 (Debian's docker.io, the daemon on this project's machines).
    #[serde(rename = "dockerd-20.10")]
    Dockerd20_10,
    /// Docker 27 (moby 24 to 28 pull alike); `dockerd` means this one.
    #[default]
    #[serde(rename = "dockerd-27", alias = "dockerd")]
    Dockerd27,
    /// containerd 1.6's CRI pull path (the containerd on this project's machines).
    #[serde(rename = "containerd-1.6")]
    Containerd1_6,
    /// containerd 1.7: 1.6 plus the 5 min `image_pull_progress_timeout`.
    #[serde(rename = "containerd-1.7")]
    Containerd1_7,
    /// containerd 2.2 (transfer service); `containerd` means this one.
    #[serde(rename = "containerd-2.2", alias = "containerd")]
    Containerd2_2,
}

impl ClientKind {
    /// Every release modelled, oldest first per client.
    pub const ALL: [ClientKind; 5] = [
        ClientKind::Dockerd20_10,
        ClientKind::Dockerd27,
        ClientKind::Containerd1_6,
        ClientKind::Containerd1_7,
        ClientKind::Containerd2_2,
    ];

    /// The name a scenario and a result use: `dockerd-27`, `containerd-1.6`, ...
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Dockerd20_10 => "dockerd-20.10",
            ClientKind::Dockerd27 => "dockerd-27",
            ClientKind::Containerd1_6 => "containerd-1.6",
            ClientKind::Containerd1_7 => "containerd-1.7",
            ClientKind::Containerd2_2 => "containerd-2.2",
        }
    }

    /// containerd (a Kubernetes node's runtime) rather than the Docker daemon.
    pub fn is_containerd(self) -> bool {
        matches!(
            self,
            ClientKind::Containerd1_6 | ClientKind::Containerd1_7 | ClientKind::Containerd2_2
        )
    }
}

impl std::fmt::Display for ClientKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the pause between a layer's attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffShape {
    /// After failed attempt n: n x the unit (dockerd: 5, 10, 15, 20 s).
    Linear,
    /// After failed attempt n: 2^(n-1) x the unit (10 s, 20 s, 40 s ...).
    Doubling,
}

/// Overrides of the client profile's numbers; absent keys keep the profile's value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientOverrides {
    /// Concurrent layer downloads (dockerd and containerd 2.1+: per node; containerd 1.6-2.0: per image).
    #[serde(default)]
    pub max_concurrent_downloads: Option<u32>,
    /// Attempts per layer, the first included (dockerd 20.10: 6, 27: 5; containerd: 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Backoff unit between a layer's attempts (dockerd: 5 s, containerd: 0), 0 = none.
    #[serde(default)]
    pub backoff: Option<Span>,
    /// How the backoff grows from one attempt to the next (dockerd: linear).
    #[serde(default)]
    pub backoff_shape: Option<BackoffShape>,
    /// GETs an attempt from byte 0 sends before it counts as failed when its request
    /// fails (dockerd: 2, its first GET's error is swallowed; containerd: 1).
    #[serde(default)]
    pub gets_per_failed_attempt: Option<u32>,
    /// Attempts for the image config blob, the first included (dockerd: 5, outside the
    /// download slots; containerd: as a layer).
    #[serde(default)]
    pub config_attempts: Option<u32>,
    /// First pause between the config blob's attempts, doubling after each (dockerd: 250 ms).
    #[serde(default)]
    pub config_backoff: Option<Span>,
    /// Times one request is sent again at once after a 408 or 429 (or, containerd 2.1+,
    /// a 500/503/504 not seen just before), a 401 re-authentication included
    /// (containerd: 5, so 6 responses in all; dockerd: 0).
    #[serde(default)]
    pub request_retries: Option<u32>,
    /// A failed pull leaves its blobs behind and the kubelet's re-pull resumes them
    /// (a containerd pull whose lease survived, as a cancelled one does). Off for every
    /// release: containerd deletes a failed pull's lease and its ingests.
    #[serde(default)]
    pub keep_partial_blobs: Option<bool>,
    /// Verify each blob's sha256 while streaming.
    #[serde(default)]
    pub verify_digest: Option<bool>,
    /// TCP connect timeout.
    #[serde(default)]
    pub connect_timeout: Option<Span>,
    /// Time to wait for response headers.
    #[serde(default)]
    pub response_timeout: Option<Span>,
    /// Abort a body that delivers no byte for this long (a stall); absent = profile default,
    /// 0 = no stall timeout.
    #[serde(default)]
    pub stall_timeout: Option<Span>,
    /// Reopens at the offset after a short body before an attempt is used up, without
    /// progress in between (containerd: 3; dockerd: 0).
    #[serde(default)]
    pub eof_reopens: Option<u32>,
    /// How a pull's connections are opened: `close` (a new one per request, with
    /// `Connection: close`: dockerd up to 28.x) or `keep-alive` (a per-pull pool:
    /// containerd); absent = a new one per request without the header.
    #[serde(default)]
    pub connections: Option<Connections>,
    /// dockerd's HTTPS attempt before each pull from a plain-HTTP target (a TLS
    /// ClientHello the registry answers with 400); absent = none.
    #[serde(default)]
    pub https_probe: Option<bool>,
}

/// `[client] connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connections {
    Close,
    KeepAlive,
}

/// Processes and endpoints sampled once a second besides the harness (the
/// registry, the LB, a node daemon); `--watch*` flags add to these.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    /// Local processes by command name (every matching pid) or pid, e.g. `["docker-registry", "nginx"]`.
    #[serde(default)]
    pub processes: Vec<String>,
    /// Prometheus text endpoints, e.g. the registry's `http://127.0.0.1:5001/metrics`.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// nginx `stub_status` pages.
    #[serde(default)]
    pub stub_status: Vec<String>,
    /// More metric names to record from every Prometheus endpoint.
    #[serde(default)]
    pub metric_names: Vec<String>,
}

/// The kubelet on top of the runtime: a failed image pull is pulled again after a
/// back-off that doubles up to a cap (ImagePullBackOff), at the pod worker's first
/// re-sync (every `resync`, jittered by `wait.Jitter(d, jitter)`) after it ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletSection {
    /// Re-pulls after a failed pull, per planned pull: a count (0 = no kubelet) or
    /// `"unlimited"` (until `run.duration`). Absent: by client, unlimited for containerd
    /// (a Kubernetes node's runtime), 0 for dockerd; [`Scenario::fill_defaults`] fills it.
    #[serde(default)]
    pub pull_retries: Option<PullRetries>,
    /// First back-off after a failed pull; doubles after each further failure.
    #[serde(default = "default_pull_backoff")]
    pub pull_backoff: Span,
    /// Cap of the doubling back-off.
    #[serde(default = "default_max_pull_backoff")]
    pub max_pull_backoff: Span,
    /// The pod worker's re-sync after a failed sync (`workerBackOffPeriod`); a re-pull
    /// waits for the first re-sync at or after the back-off's end. `0` = re-pull exactly
    /// when the back-off ends.
    #[serde(default = "default_kubelet_resync")]
    pub resync: Span,
    /// Each re-sync is lengthened by a random share of itself up to this (0.5: 10 to
    /// 15 s), drawn per node from `run.seed`; 0 = none.
    #[serde(default = "default_kubelet_jitter")]
    pub jitter: f64,
}

impl Default for KubeletSection {
    fn default() -> Self {
        KubeletSection {
            pull_retries: None,
            pull_backoff: default_pull_backoff(),
            max_pull_backoff: default_max_pull_backoff(),
            resync: default_kubelet_resync(),
            jitter: default_kubelet_jitter(),
        }
    }
}

impl KubeletSection {
    /// The re-pulls allowed: as set, else the client's default (unlimited for
    /// containerd, none for dockerd, which no kubelet drives unless told).
    pub fn retries_for(&self, client: ClientKind) -> PullRetries {
        self.pull_retries.unwrap_or(if client.is_containerd() {
            PullRetries::Unlimited
        } else {
            PullRetries::Count(0)
        })
    }
}

/// How many times the kubelet pulls a failed image again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRetries {
    Count(u32),
    /// Until the run's deadline, as a kubelet does.
    Unlimited,
}

impl PullRetries {
    /// Whether one more re-pull follows `done` re-pulls.
    pub fn allows(self, done: u32) -> bool {
        match self {
            PullRetries::Count(n) => done < n,
            PullRetries::Unlimited => true,
        }
    }
}

impl Serialize for PullRetries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PullRetries::Count(n) => s.serialize_u32(*n),
            PullRetries::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for PullRetries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PullRetries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a count of re-pulls or \"unlimited\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PullRetries, E> {
                u32::try_from(v).map(PullRetries::Count).map_err(|_| {
                    E::custom(format!(
                        "{v} is not a count of re-pulls (0 to 4294967295, or \"unlimited\")"
                    ))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PullRetries, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PullRetries, E> {
                if v == "unlimited" {
                    Ok(PullRetries::Unlimited)
                } else {
                    Err(E::custom(format!(
                        "{v:?} is not a count of re-pulls (a number, or \"unlimited\")"
                    )))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn default_pull_backoff() -> Span {
    Span(Duration::from_secs(10))
}

fn default_max_pull_backoff() -> Span {
    Span(Duration::from_secs(300))
}

fn default_kubelet_resync() -> Span {
    Span(Duration::from_secs(10))
}

fn default_kubelet_jitter() -> f64 {
    0.5
}

/// When nodes start their pulls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalSection {
    #[serde(default)]
    pub pattern: Pattern,
    /// Nodes per wave (`waves`).
    #[serde(default = "default_wave_size")]
    pub wave_size: u32,
    /// Time between wave starts (`waves`).
    #[serde(default = "default_wave_interval")]
    pub wave_interval: Span,
    /// Each node's start is delayed by a random amount up to this (deterministic per node).
    #[serde(default)]
    pub jitter: Span,
    /// Nodes pulling in the first step (`staircase`; default 10, at most `max_nodes`).
    #[serde(default)]
    pub start_nodes: Option<u32>,
    /// Nodes added at each step (`staircase`; default 10).
    #[serde(default)]
    pub step_nodes: Option<u32>,
    /// How long each step holds its herd (`staircase`; default 30s).
    #[serde(default)]
    pub step_hold: Option<Span>,
    /// The largest herd (`staircase`; default and most: the fleet, clusters x nodes_per_cluster).
    #[serde(default)]
    pub max_nodes: Option<u32>,
    /// Most steps of the climb (`staircase`; default: as many as reach `max_nodes`).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// The first part of each step left out of its judgement (`staircase`; default a third of `step_hold`).
    #[serde(default)]
    pub warmup: Option<Span>,
    /// A step breaks when more than this share of its ended pulls failed (`staircase`; default 0.01).
    #[serde(default)]
    pub stop_error_rate: Option<f64>,
    /// A step breaks when completed / offered pulls fall below this (`staircase`; default 0.95).
    #[serde(default)]
    pub stop_completion: Option<f64>,
    /// A step breaks when its p99 pull time exceeds this (`staircase`; default none).
    #[serde(default)]
    pub stop_pull_p99: Option<Span>,
    /// A step breaks when the harness's fd peak exceeds this share of its nofile limit
    /// (`staircase`; default 0.9).
    #[serde(default)]
    pub stop_fd_ratio: Option<f64>,
    /// A step breaks when its completed pulls per second per node fall below this share
    /// of the first step's (`staircase`; default none).
    #[serde(default)]
    pub stop_efficiency: Option<f64>,
    /// Bisection rounds between the last herd that held and the first that broke
    /// (`staircase`; default 3, 0 for none).
    #[serde(default)]
    pub bisect_rounds: Option<u32>,
}

impl ArrivalSection {
    /// The staircase keys that are set, by name: they mean nothing under another pattern.
    pub fn staircase_keys_set(&self) -> Vec<&'static str> {
        let set = [
            ("start_nodes", self.start_nodes.is_some()),
            ("step_nodes", self.step_nodes.is_some()),
            ("step_hold", self.step_hold.is_some()),
            ("max_nodes", self.max_nodes.is_some()),
            ("max_steps", self.max_steps.is_some()),
            ("warmup", self.warmup.is_some()),
            ("stop_error_rate", self.stop_error_rate.is_some()),
            ("stop_completion", self.stop_completion.is_some()),
            ("stop_pull_p99", self.stop_pull_p99.is_some()),
            ("stop_fd_ratio", self.stop_fd_ratio.is_some()),
            ("stop_efficiency", self.stop_efficiency.is_some()),
            ("bisect_rounds", self.bisect_rounds.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }

    /// Fills the staircase's defaults (only for a staircase, so other patterns
    /// keep their scenario as run free of keys they do not use); `fleet_nodes`
    /// is clusters x nodes_per_cluster, the default and the most of `max_nodes`.
    pub fn fill_staircase_defaults(&mut self, fleet_nodes: u64) {
        if self.pattern != Pattern::Staircase {
            return;
        }
        let max = self
            .max_nodes
            .get_or_insert(fleet_nodes.min(u64::from(u32::MAX)) as u32);
        let max = *max;
        self.start_nodes.get_or_insert(10.min(max.max(1)));
        self.step_nodes.get_or_insert(10);
        let hold = *self.step_hold.get_or_insert(Span(DEFAULT_STEP_HOLD));
        self.warmup.get_or_insert(Span(default_warmup(hold.0)));
        self.stop_error_rate.get_or_insert(0.01);
        self.stop_completion.get_or_insert(0.95);
        self.stop_fd_ratio.get_or_insert(0.9);
        self.bisect_rounds.get_or_insert(3);
    }
}

/// `arrival.step_hold` when not given.
pub const DEFAULT_STEP_HOLD: Duration = Duration::from_secs(30);

/// A third of the hold, in whole seconds, at least one: long enough for the
/// new nodes' first pulls to be under way, short enough to leave most of the step.
pub fn default_warmup(hold: Duration) -> Duration {
    Duration::from_secs((hold.as_secs() / 3).max(1))
}

impl Default for ArrivalSection {
    fn default() -> Self {
        ArrivalSection {
            pattern: Pattern::Herd,
            wave_size: default_wave_size(),
            wave_interval: default_wave_interval(),
            jitter: Span::default(),
            start_nodes: None,
            step_nodes: None,
            step_hold: None,
            max_nodes: None,
            max_steps: None,
            warmup: None,
            stop_error_rate: None,
            stop_completion: None,
            stop_pull_p99: None,
            stop_fd_ratio: None,
            stop_efficiency: None,
            bisect_rounds: None,
        }
    }
}

fn default_wave_size() -> u32 {
    10
}

fn default_wave_interval() -> Span {
    Span(Duration::from_secs(5))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Every node starts at once.
    #[default]
    Herd,
    /// `wave_size` nodes start every `wave_interval`.
    Waves,
    /// A capacity search: `start_nodes` pull in a closed loop, `step_nodes` more
    /// every `step_hold`, until a step breaks (docs/capacity.md).
    Staircase,
    /// Waves as `waves`, repeated: after the last wave the first pulls again,
    /// until `run.duration` ends, which is a soak's normal end (docs/soak.md).
    Soak,
}

/// Bounds of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Hard deadline: the run stops here whatever is in flight (result marked incomplete).
    #[serde(default = "default_duration")]
    pub duration: Span,
    /// Pulls each node makes, one after the other.
    #[serde(default = "one")]
    pub pulls_per_node: u32,
    /// Pause between a node's consecutive pulls.
    #[serde(default)]
    pub pull_interval: Span,
    /// Seed of the run's own random choices (the kubelet's back-off jitter, drawn per
    /// node): the same seed gives the same waits.
    #[serde(default)]
    pub seed: u64,
    /// When the herd begins, RFC 3339 (`2026-11-27T22:30:00Z`): the shards of a
    /// sharded storm wait for it (`--start-at` wins over it; docs/merge.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            duration: default_duration(),
            pulls_per_node: 1,
            pull_interval: Span::default(),
            seed: 0,
            start_at: None,
        }
    }
}

fn default_duration() -> Span {
    Span(Duration::from_secs(600))
}

/// Pass/fail rules checked at the end; any failure gives exit code 1.
/// Read and written by hand (`scenario::thresholds`): any key that is not one
/// of the fixed rules below is a path into result.json with a comparison.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Most failed pulls allowed. Defaults to 0 unless `max_failure_rate` is
    /// set (see [`Thresholds::fill_defaults`]): a run where pulls fail never
    /// passes by omission.
    pub max_failed_pulls: Option<u64>,
    /// Most failed pulls allowed as a fraction of started pulls (0.0 - 1.0).
    pub max_failure_rate: Option<f64>,
    /// Most retries allowed in total.
    pub max_retries: Option<u64>,
    /// Most errors of any class allowed in total.
    pub max_errors: Option<u64>,
    /// Highest p50 pull time (from the scheduled start).
    pub pull_p50: Option<Span>,
    /// Highest p99 pull time (from the scheduled start).
    pub pull_p99: Option<Span>,
    /// Highest p99 time to first byte of a blob.
    pub ttfb_p99: Option<Span>,
    /// Lowest aggregate throughput over the run.
    pub min_throughput: Option<Rate>,
    /// The run must finish (no deadline, no Ctrl-C) to pass.
    pub require_complete: bool,
    /// Limits on figures of result.json by path (`"latency.pull.p99" = "< 8m"`), in key order.
    pub paths: Vec<PathCheck>,
    /// Stop the run when a path check fails over the last `window` (see `run::abort`).
    pub abort_on_fail: bool,
    /// The sliding window of `abort_on_fail`; 30 s when not given.
    pub window: Option<Span>,
    /// No abort before this much of the run has passed; the window's length when not given.
    pub grace: Option<Span>,
}

impl Thresholds {
    /// Fills the defaults that depend on other keys: `max_failed_pulls` is 0
    /// when neither it nor `max_failure_rate` is given, so that without a
    /// `[thresholds]` section any failed pull fails the run. A scenario that
    /// expects failures says how many (or what share) it allows.
    pub fn fill_defaults(&mut self) {
        if self.max_failed_pulls.is_none() && self.max_failure_rate.is_none() {
            self.max_failed_pulls = Some(0);
        }
    }

    /// The sliding window of `abort_on_fail`.
    pub fn window(&self) -> Span {
        self.window.unwrap_or(Span(Duration::from_secs(30)))
    }

    /// How long into the run before the window may abort it.
    pub fn grace(&self) -> Span {
        self.grace.unwrap_or(self.window())
    }
}

impl Thresholds {
    /// A `[thresholds]` section left out, before [`Thresholds::fill_defaults`].
    fn unset() -> Self {
        Thresholds {
            max_failed_pulls: None,
            ..Thresholds::default()
        }
    }
}

impl Default for Thresholds {
    /// The thresholds of a scenario without a `[thresholds]` section.
    fn default() -> Self {
        Thresholds {
            max_failed_pulls: Some(0),
            max_failure_rate: None,
            max_retries: None,
            max_errors: None,
            pull_p50: None,
            pull_p99: None,
            ttfb_p99: None,
            min_throughput: None,
            require_complete: true,
            paths: Vec::new(),
            abort_on_fail: false,
            window: None,
            grace: None,
        }
    }
}
