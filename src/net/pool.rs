//! How a simulated pull opens and reuses its connections, as the real clients do.
//!
//! - [`ConnectionModel::Close`]: a new connection per request, closed after its response.
//!   dockerd 20.10 through 28.x (`DisableKeepAlives: true`) sends `Connection: close` on
//!   each; pullstorm's own requests (preflight, scrapes, seed) go the same way without it.
//! - [`ConnectionModel::KeepAlive`]: a pool per pull (containerd, dockerd 29.4+): HTTP/1.1,
//!   one request at a time per connection; a connection goes back to the pool only once
//!   its response has been read to its end (a response dropped before its end closes the
//!   connection, as Go's transport does); the server's `Connection: close`, or a
//!   connection the server closed while idle, is never reused; at most
//!   `max_idle_per_host` idle connections per host are kept, each closed after
//!   `idle_timeout` of idleness, also after the pull has ended (Go's idle timer).
//!   containerd resolves the tag on a transport of its own: requests made inside
//!   [`resolving`] use the pull's resolve connections, kept apart from those that the
//!   manifest and blob GETs share.
//!
//! With an [`HttpsProbe`], the first request of the pull (dockerd: its ping) or of each of
//! its two pools (containerd 1.7+ with a localhost registry on a non-default port) is
//! preceded by an HTTPS attempt on the plain-HTTP registry: a TLS ClientHello on a new
//! connection, which the server answers with an HTTP 400, then the client falls back to
//! http. It counts as a connection, never as a request or a fault.
//!
//! Every pull counts what it did in a [`ConnectionTally`], sent to the recorder once when
//! the pull ends. Nothing here runs per body chunk.

use super::classify::{Fault, FaultClass};
use super::{Exchange, Opened, RequestBody, Transport};
use http::{HeaderMap, HeaderValue, Method};
use hyper::body::Body as _;
use hyper::client::conn::http1::SendRequest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// How a pull's requests get their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionModel {
    /// A new connection per request, closed after its response; with `header`, each
    /// request says `Connection: close` (dockerd up to 28.x).
    Close { header: bool },
    /// A per-pull pool of kept-alive HTTP/1.1 connections.
    KeepAlive(KeepAlive),
}

/// The limits of a keep-alive pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle connections kept per host and pool; a connection freed beyond this is closed.
    pub max_idle_per_host: usize,
    /// An idle connection is closed after this long unused.
    pub idle_timeout: Duration,
}

impl KeepAlive {
    /// Go's defaults as containerd 1.6 uses them: `MaxIdleConnsPerHost` unset (2) and
    /// `IdleConnTimeout: 30s` (remotes/docker/config/hosts.go:132-143).
    pub const GO: KeepAlive = KeepAlive {
        max_idle_per_host: 2,
        idle_timeout: Duration::from_secs(30),
    };
}

/// A run's connection behaviour: the model, and the HTTPS attempts that precede the
/// requests to a plain-HTTP target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    pub model: ConnectionModel,
    pub https_probe: HttpsProbe,
}

/// Where a client tries HTTPS first on a registry it reaches over plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsProbe {
    Off,
    /// Once per pull, before its first request (dockerd's ping of the https endpoint).
    PerPull,
    /// Once per pool, before each lane's first request (containerd's `NewHTTPFallback`,
    /// one per transport).
    PerPool,
}

impl Default for ConnectionPolicy {
    /// A new connection per request without `Connection: close`, no probe: what every
    /// node did before the models existed.
    fn default() -> Self {
        ConnectionPolicy {
            model: ConnectionModel::Close { header: false },
            https_probe: HttpsProbe::Off,
        }
    }
}

/// Which of a pull's two pools a request uses (containerd keeps the resolver's apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Resolving the tag (the HEAD, and what it needs).
    Resolve,
    /// Manifest and blob GETs.
    Fetch,
}

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::Resolve => 0,
            Lane::Fetch => 1,
        }
    }
}

tokio::task_local! {
    static LANE: Lane;
}

/// Runs `f` with its requests on the pull's resolve connections.
pub async fn resolving<F: std::future::Future>(f: F) -> F::Output {
    LANE.scope(Lane::Resolve, f).await
}

fn current_lane() -> Lane {
    LANE.try_with(|lane| *lane).unwrap_or(Lane::Fetch)
}

/// What one pull's connections did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionTally {
    /// Connections opened (TCP connects that succeeded), HTTPS probes included.
    pub opened: u64,
    /// Requests sent on them (a request replayed on a new connection, after a reused one
    /// turned out closed, counts once).
    pub requests: u64,
    /// Most requests sent on one connection.
    pub most_requests: u64,
    /// HTTPS attempts on the plain-HTTP target (each also one of `opened`).
    pub https_probes: u64,
    /// Each completed TLS handshake's duration.
    pub tls_handshakes: Vec<Duration>,
}

/// One pull's connections: the pools, the tally, the probe still to make.
pub struct Pool {
    policy: ConnectionPolicy,
    /// Shared with the idle timers, which may outlive the pull.
    idle: Arc<Mutex<IdleSet>>,
    tally: Mutex<ConnectionTally>,
    /// HTTPS attempts still to make: the pull's (`[0]`), or each lane's.
    probe_pending: [AtomicBool; 2],
}

/// A live HTTP/1.1 connection of a pool.
pub(super) struct Connection {
    sender: SendRequest<RequestBody>,
    /// Requests sent on it so far.
    requests: u64,
}

/// A connection lent to a response: it goes back to its pool when the response's body
/// ends (see [`super::Body`]), or closes with it.
pub(super) struct Lease {
    pool: Arc<Pool>,
    conn: Connection,
    lane: Lane,
    host: String,
    /// False when the server said `Connection: close`.
    reusable: bool,
}

impl Lease {
    /// The response was read to its end: the connection may serve another request.
    pub(super) fn release(self) {
        if self.reusable {
            self.pool.put_idle(self.lane, self.host, self.conn);
        }
    }
}

#[derive(Default)]
struct IdleSet {
    next_id: u64,
    /// Oldest first.
    entries: Vec<Idle>,
}

struct Idle {
    id: u64,
    lane: Lane,
    host: String,
    since: Instant,
    conn: Connection,
}

impl IdleSet {
    fn count(&self, lane: Lane, host: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.lane == lane && e.host == host)
            .count()
    }

    fn push(&mut self, lane: Lane, host: String, conn: Connection) -> u64 {
        self.next_id += 1;
        self.entries.push(Idle {
            id: self.next_id,
            lane,
            host,
            since: Instant::now(),
            conn,
        });
        self.next_id
    }

    /// The most recently freed connection for `lane` and `host` (Go takes the newest),
    /// closing on the way those idle for `timeout` or more.
    fn take_newest(&mut self, lane: Lane, host: &str, timeout: Duration) -> Option<Connection> {
        self.entries
            .retain(|e| !(e.lane == lane && e.host == host && e.since.elapsed() >= timeout));
        let i = self
            .entries
            .iter()
            .rposition(|e| e.lane == lane && e.host == host)?;
        Some(self.entries.remove(i).conn)
    }

    /// Closes connection `id` if it is still idle.
    fn expire(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `scheme://host:port`: Go keys its idle connections by it.
fn host_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Whether a response ends its connection (`Connection: close`, or HTTP/1.0 without keep-alive).
fn closes_connection(version: http::Version, headers: &HeaderMap) -> bool {
    let says = |token: &str| {
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == http::Version::HTTP_10 {
        !says("keep-alive")
    } else {
        says("close")
    }
}

impl Pool {
    pub fn new(policy: ConnectionPolicy) -> Pool {
        Pool {
            policy,
            idle: Arc::default(),
            tally: Mutex::default(),
            probe_pending: [(); 2].map(|_| AtomicBool::new(policy.https_probe != HttpsProbe::Off)),
        }
    }

    /// What the pull's connections did so far; the tally starts again from nothing.
    pub fn take_tally(&self) -> ConnectionTally {
        std::mem::take(&mut *lock(&self.tally))
    }

    /// Idle connections held now, resolve and fetch pools together.
    pub fn idle(&self) -> usize {
        lock(&self.idle).entries.len()
    }

    fn count_opened(&self, opened: &Opened) {
        let mut t = lock(&self.tally);
        t.opened += 1;
        if let Some(d) = opened.tls_handshake {
            t.tls_handshakes.push(d);
        }
    }

    /// A request sent as the `nth` on its connection.
    fn count_request(&self, nth: u64) {
        let mut t = lock(&self.tally);
        t.requests += 1;
        t.most_requests = t.most_requests.max(nth);
    }

    /// Whether a request of `lane` is to be preceded by the HTTPS attempt (once).
    fn probe_due(&self, lane: Lane) -> bool {
        let flag = match self.policy.https_probe {
            HttpsProbe::Off => return false,
            HttpsProbe::PerPull => &self.probe_pending[0],
            HttpsProbe::PerPool => &self.probe_pending[lane.index()],
        };
        flag.swap(false, Ordering::Relaxed)
    }

    /// Sends one request the pull's way (see the module's doc).
    pub(super) async fn send(
        self: &Arc<Self>,
        method: Method,
        url: &Url,
        mut headers: HeaderMap,
        body: RequestBody,
        transport: &Transport,
    ) -> Result<Exchange, Fault> {
        if url.scheme() == "http" && self.probe_due(current_lane()) {
            self.https_probe(url, transport).await;
        }
        match self.policy.model {
            ConnectionModel::Close { header } => {
                if header {
                    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                self.send_fresh(method, url, headers, body, transport, None)
                    .await
            }
            ConnectionModel::KeepAlive(limits) => {
                self.send_kept_alive(limits, method, url, headers, body, transport)
                    .await
            }
        }
    }

    async fn send_kept_alive(
        self: &Arc<Self>,
        limits: KeepAlive,
        method: Method,
        url: &Url,
        mut headers: HeaderMap,
        body: RequestBody,
        transport: &Transport,
    ) -> Result<Exchange, Fault> {
        let lane = current_lane();
        let host = host_key(url);
        let mut body = Some(body);
        if let Some(mut conn) = self.checkout(lane, &host, limits, transport).await {
            // Go sends an idempotent bodiless request again, once, on a new connection when
            // a reused one fails before the response (the server had closed it).
            let replayable = matches!(method, Method::GET | Method::HEAD)
                && body.as_ref().is_some_and(|b| b.is_end_stream());
            let first = if replayable {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
            let request = super::build_request(
                method.clone(),
                url,
                first,
                body.take().unwrap_or_else(super::empty_body),
            )?;
            conn.requests += 1;
            let asked = Instant::now();
            match super::await_head(&mut conn.sender, request, transport.timeouts.response).await {
                Ok(response) => {
                    self.count_request(conn.requests);
                    let lease = self.lease(conn, lane, host, &response);
                    return Ok(super::exchange(
                        response,
                        None,
                        asked.elapsed(),
                        Some(lease),
                    ));
                }
                Err(fault) if replayable && fault.class != FaultClass::ReadTimeout => {
                    tracing::debug!(
                        "reused connection failed ({}: {}); sending again on a new one",
                        fault.class,
                        fault.detail
                    );
                }
                Err(fault) => {
                    self.count_request(conn.requests);
                    return Err(fault);
                }
            }
        }
        let body = body.unwrap_or_else(super::empty_body);
        self.send_fresh(method, url, headers, body, transport, Some((lane, host)))
            .await
    }

    /// Sends on a new connection; with `pooled`, the connection may serve again afterwards.
    async fn send_fresh(
        self: &Arc<Self>,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: RequestBody,
        transport: &Transport,
        pooled: Option<(Lane, String)>,
    ) -> Result<Exchange, Fault> {
        let opened = super::open_http1(url, transport).await?;
        self.count_opened(&opened);
        let mut conn = Connection {
            sender: opened.sender,
            requests: 1,
        };
        let request = super::build_request(method, url, headers, body)?;
        let asked = Instant::now();
        let response =
            super::await_head(&mut conn.sender, request, transport.timeouts.response).await;
        self.count_request(1);
        let response = response?;
        let ttfb = asked.elapsed();
        let lease = pooled.map(|(lane, host)| self.lease(conn, lane, host, &response));
        Ok(super::exchange(response, Some(opened.connect), ttfb, lease))
    }

    fn lease(
        self: &Arc<Self>,
        conn: Connection,
        lane: Lane,
        host: String,
        response: &http::Response<hyper::body::Incoming>,
    ) -> Lease {
        Lease {
            pool: self.clone(),
            conn,
            lane,
            host,
            reusable: !closes_connection(response.version(), response.headers()),
        }
    }

    /// An idle connection of `lane` to `host` that can take a request now, if any.
    async fn checkout(
        &self,
        lane: Lane,
        host: &str,
        limits: KeepAlive,
        transport: &Transport,
    ) -> Option<Connection> {
        loop {
            let mut conn = lock(&self.idle).take_newest(lane, host, limits.idle_timeout)?;
            if conn.sender.is_closed() {
                continue;
            }
            // Ready at once when idle; an error when the server has closed it meanwhile.
            let ready = tokio::time::timeout(transport.timeouts.response, conn.sender.ready());
            if let Ok(Ok(())) = ready.await {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` idle for the next request of `lane` to `host`, unless the host already
    /// has `max_idle_per_host` idle (then it closes, as Go's `tryPutIdleConn` does).
    fn put_idle(&self, lane: Lane, host: String, conn: Connection) {
        let ConnectionModel::KeepAlive(limits) = self.policy.model else {
            return;
        };
        if conn.sender.is_closed() {
            return;
        }
        let id = {
            let mut idle = lock(&self.idle);
            if idle.count(lane, &host) >= limits.max_idle_per_host {
                return;
            }
            idle.push(lane, host, conn)
        };
        // Go's idle timer closes the connection after `idle_timeout`, also when the pull
        // (the transport) is long gone: the timer holds the idle set, not the pool.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let idle = self.idle.clone();
            runtime.spawn(async move {
                tokio::time::sleep(limits.idle_timeout).await;
                lock(&idle).expire(id);
            });
        }
    }

    /// The HTTPS attempt on a plain-HTTP registry: a TLS ClientHello on a new connection,
    /// answered (by nginx, the registry) with an HTTP 400, then closed.
    async fn https_probe(&self, url: &Url, transport: &Transport) {
        let Some(host) = url.host_str() else {
            return;
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let timeouts = &transport.timeouts;
        let started = std::time::Instant::now();
        let Ok(tcp) = super::connect(host, port, timeouts.connect, transport.loopback_source).await
        else {
            // Nothing answers: the pull's own first request will say so.
            return;
        };
        let stream = super::Counted::new(tcp, transport.gauge.clone());
        {
            let mut t = lock(&self.tally);
            t.opened += 1;
            t.https_probes += 1;
        }
        let Some(connector) = probe_connector() else {
            return;
        };
        // dockerd's `TLSHandshakeTimeout` (distribution/registry.go): a server that
        // never answers the ClientHello holds the pull 10 s, no longer.
        let handshake = timeouts.connect.min(PROBE_HANDSHAKE_TIMEOUT);
        let left = handshake.min(timeouts.connect.saturating_sub(started.elapsed()));
        let outcome = super::tls::handshake(connector, host, port, stream, left, handshake).await;
        match outcome {
            Ok(_) => tracing::debug!("HTTPS probe of {host}:{port}: TLS answered"),
            Err(f) => tracing::debug!("HTTPS probe of {host}:{port}: {}: {}", f.class, f.detail),
        }
    }
}

/// The longest a probe waits for the server to answer its ClientHello.
const PROBE_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The probe's TLS client: it never gets as far as a certificate, so it checks none.
fn probe_connector() -> Option<&'static tokio_rustls::TlsConnector> {
    static CONNECTOR: OnceLock<Option<tokio_rustls::TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| super::tls::connector(None, true).ok())
        .as_ref()
}

#[cfg(test)]
mod tests;
