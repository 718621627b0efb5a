//! What nodes tell the recorder: one event per request, layer or pull (never
//! per chunk), plus shared gauges that the hot path bumps with one atomic add.

use crate::net::{ConnectionGauge, ConnectionTally, Fault, FaultClass, Pool, Transport};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The kind of request an exchange made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    Ping,
    Token,
    Manifest,
    Blob,
    /// Push requests (`pullstorm seed`).
    Upload,
    /// No request: a task of the harness itself (its `internal` faults).
    Task,
    /// A blob GET sent where a registry's redirect led, on another host or port than the
    /// registry's (object storage: a presigned URL), without the registry's Authorization.
    Storage,
}

/// One thing that happened on a node.
#[derive(Debug)]
pub enum Event {
    /// A response head arrived; `connect` when it came on a connection opened for it.
    Exchange {
        kind: ExchangeKind,
        connect: Option<Duration>,
        ttfb: Duration,
    },
    /// What one pull's connections did, sent once when the pull ends (or is stopped).
    Connections(ConnectionTally),
    /// An exchange failed; `at` is when, for the timeline and the error table.
    Fault {
        fault: Fault,
        kind: ExchangeKind,
        cluster: u32,
        at: Instant,
    },
    /// A layer will be tried again after a fault of this class, which struck when
    /// `progress` (0.0-1.0) of the blob was held.
    Retry { class: FaultClass, progress: f64 },
    /// A layer finished, well or not.
    LayerDone {
        ok: bool,
        took: Duration,
        attempts: u32,
        /// First failure of the layer to its completion, when it was retried.
        retry_latency: Option<Duration>,
        /// Bytes downloaded and then thrown away (restart from zero, bad digest, skipped prefix).
        wasted: u64,
    },
    /// A blob request was redirected and the client followed the Location; `to_storage`
    /// when it led to another host or port than the registry's.
    Redirect { to_storage: bool },
    /// A pull began its first request.
    PullStarted { cluster: u32 },
    /// A pull ended.
    PullDone {
        cluster: u32,
        ok: bool,
        from_scheduled: Duration,
        from_start: Duration,
        bytes: u64,
        /// The longest retry latency among its blobs: on the critical path, about what
        /// retries added to the pull.
        retry_cost: Option<Duration>,
        /// A re-pull by the kubelet after an earlier failure of the same planned pull.
        kubelet_retry: bool,
    },
    /// A planned pull that failed completed on a kubelet's re-pull, `took` after its
    /// first failure ended.
    PullRecovered { took: Duration },
    /// A push request got its response head, `took` after it was sent (a PATCH's body included).
    UploadRequest { step: UploadStep, took: Duration },
    /// A push step failed; `code` is the registry's error code (`BLOB_UPLOAD_UNKNOWN`)
    /// or the fault class; `retried` when the pusher tries the blob again.
    PushFault { code: String, retried: bool },
    /// A blob of a push is on the registry: uploaded (`bytes` of it), present or mounted,
    /// after `attempts`; `retry_latency` from its first failure when it was retried.
    BlobPushed {
        how: BlobPush,
        bytes: u64,
        attempts: u32,
        retry_latency: Option<Duration>,
    },
    /// A pusher (CI runner) began its push.
    PushStarted,
    /// A push ended: tagged (`ok`) or given up, `took` from its start.
    PushDone { ok: bool, took: Duration },
}

/// The requests of a push, by what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UploadStep {
    /// `HEAD` the blob: does the registry have it?
    Head,
    /// `POST` an upload (with `?mount=` when mounting).
    Post,
    /// `PATCH` a chunk.
    Patch,
    /// `PUT ?digest=`: the upload's end.
    Put,
    /// `GET` the upload URL: where a cut upload stands.
    Status,
    /// `PUT` a manifest or the tag.
    Manifest,
}

impl UploadStep {
    pub fn key(self) -> &'static str {
        match self {
            UploadStep::Head => "head",
            UploadStep::Post => "post",
            UploadStep::Patch => "patch",
            UploadStep::Put => "put",
            UploadStep::Status => "status",
            UploadStep::Manifest => "manifest",
        }
    }
}

/// How a blob of a push reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    Uploaded,
    /// The registry had it (`HEAD` 200).
    Present,
    /// A cross-repository mount (`POST ?mount=` 201).
    Mounted,
}

/// The sending side of the event channel, one clone per node.
pub type Sink = mpsc::Sender<Event>;

/// Gauges shared by every node and read by the recorder's sampler.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Body bytes received, all blobs, including wasted ones.
    pub bytes: AtomicU64,
    pub active_pulls: AtomicI64,
    pub connections: Arc<ConnectionGauge>,
    /// The harness's open fds, set once a second by the recorder's sampler.
    pub fds: Arc<super::fds::FdGauge>,
    /// The harness's CPU, set once a second by the recorder's sampler.
    pub harness: Arc<super::harness::HarnessGauge>,
    /// Pulls completed, pulls failed for good, and faults, for the live
    /// progress display: bumped by the recorder through [`Gauges::tally`],
    /// never on the hot path.
    pub pulls_done: AtomicU64,
    pub pulls_failed: AtomicU64,
    pub errors: AtomicU64,
    /// Faults by class (locked once per fault, and once per progress tick).
    pub errors_by_class: Mutex<BTreeMap<FaultClass, u64>>,
}

impl Gauges {
    #[inline]
    pub fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts what the live progress display shows; the recorder calls it
    /// for every event it receives (faults and finished pulls are per
    /// request or per pull, so this is cheap).
    pub fn tally(&self, event: &Event) {
        match event {
            Event::PullDone { ok: true, .. } => {
                self.pulls_done.fetch_add(1, Ordering::Relaxed);
            }
            Event::PullDone { ok: false, .. } => {
                self.pulls_failed.fetch_add(1, Ordering::Relaxed);
            }
            Event::Fault { fault, .. } => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = self.errors_by_class.lock() {
                    *m.entry(fault.class).or_default() += 1;
                }
            }
            _ => {}
        }
    }
}

/// Reports a pull's connections to the recorder when dropped: at the pull's end, or when
/// the deadline or a signal aborts it, so an interrupted pull's connections count too.
pub struct PullConnections {
    pool: Option<Arc<Pool>>,
    sink: Sink,
}

impl PullConnections {
    /// For the pull whose transport is `transport` (made by [`Transport::for_pull`]).
    pub fn new(transport: &Transport, sink: &Sink) -> Self {
        PullConnections {
            pool: transport.pool.clone(),
            sink: sink.clone(),
        }
    }
}

impl Drop for PullConnections {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let event = Event::Connections(pool.take_tally());
        // The channel is deep (the recorder keeps up); when it is full all the same, a
        // task waits for room rather than the figure being lost.
        if let Err(mpsc::error::TrySendError::Full(event)) = self.sink.try_send(event) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let sink = self.sink.clone();
                runtime.spawn(async move {
                    let _ = sink.send(event).await;
                });
            }
        }
    }
}

/// Keeps `active_pulls` true even when a pull is aborted by the deadline.
pub struct ActivePull(Arc<Gauges>);

impl ActivePull {
    pub fn new(g: &Arc<Gauges>) -> Self {
        g.active_pulls.fetch_add(1, Ordering::Relaxed);
        ActivePull(g.clone())
    }
}

impl Drop for ActivePull {
    fn drop(&mut self) {
        self.0.active_pulls.fetch_sub(1, Ordering::Relaxed);
    }
}
