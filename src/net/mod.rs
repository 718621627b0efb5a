//! HTTP/1.1 exchanges with honest timing, on connections opened the way the
//! client being imitated opens them ([`pool`]: a new one per request, or a
//! per-pull keep-alive pool).
//!
//! A download holds its connection alone while its body flows (one request at a
//! time per connection, as every Go client), so fd pressure, resets and short
//! bodies land on the exchange that caused them. Errors are turned into a
//! [`FaultClass`] here, once, by walking the error's `source()` chain down to
//! the `io::Error`.

pub mod body;
pub mod classify;
pub mod limiter;
pub mod pool;
pub mod tls;

pub use body::Body;
pub use classify::{Fault, FaultClass, Phase};
pub use limiter::Bandwidth;
pub use pool::{ConnectionModel, ConnectionPolicy, ConnectionTally, HttpsProbe, KeepAlive, Pool};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

/// Timeouts of one client profile, applied to every exchange.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From request sent to response head received.
    pub response: Duration,
    /// Longest gap without a body byte; `None` waits forever (dockerd).
    pub stall: Option<Duration>,
}

/// Most bytes a connection buffers from the socket when its reader is throttled (a
/// bandwidth-capped node). hyper's buffer grows whenever the reader is slower than the
/// socket, as every capped node is, so 10,000 of them would hold gigabytes at hyper's
/// default (about 400 KiB); 16 KiB keeps a download near 46 KB of RSS, and the kernel's
/// socket buffer keeps the pipe full.
pub const THROTTLED_READ_BUFFER: usize = 16 << 10;

/// The same for an unthrottled reader: big reads, few syscalls (0.16 instead of 0.35
/// CPU-s per GiB on one stream), and the buffer only fills when the socket is ahead.
pub const FULL_SPEED_READ_BUFFER: usize = 256 << 10;

/// How a run connects: the profile's timeouts, the open-connection gauge, TLS, and
/// how connections are opened and reused.
#[derive(Clone)]
pub struct Transport {
    pub timeouts: Timeouts,
    pub gauge: Arc<ConnectionGauge>,
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// Source address for loopback targets (one of 127.0.0.0/8), when spread.
    pub loopback_source: Option<std::net::Ipv4Addr>,
    /// Most bytes buffered per connection ([`THROTTLED_READ_BUFFER`] or [`FULL_SPEED_READ_BUFFER`]).
    pub read_buffer: usize,
    /// How a pull's connections are opened and reused; applies through [`Transport::for_pull`].
    pub connections: ConnectionPolicy,
    /// The pull's connections, once [`Transport::for_pull`] made them; without one, every
    /// request opens a connection of its own (no `Connection: close`, no probe).
    pub pool: Option<Arc<Pool>>,
}

impl Transport {
    /// The same transport with other timeouts (the preflight's, say).
    pub fn with_timeouts(&self, timeouts: Timeouts) -> Transport {
        Transport {
            timeouts,
            ..self.clone()
        }
    }

    /// The transport of one pull: the same settings with a pool of its own, since pulls
    /// share no connections (with dockerd and containerd alike).
    pub fn for_pull(&self) -> Transport {
        Transport {
            pool: Some(Arc::new(Pool::new(self.connections))),
            ..self.clone()
        }
    }
}

/// Live count of open client connections, shared with the sampler: a
/// high-water gauge kept by the events that open and close connections, so no
/// sampling interval can miss a peak.
///
/// Each open bumps the count and raises three maxima with `fetch_max`: the run's
/// (`peak`), the current window's (`window`, taken and reset by the recorder's
/// sampler once a second) and the window's highest "fds in use at an open" (the
/// socket's fd number + 1: the kernel hands out the lowest free number, so every
/// lower one was open at that instant). Four relaxed atomics per connection.
#[derive(Debug, Default)]
pub struct ConnectionGauge {
    open: AtomicI64,
    /// Most open at once since the gauge was made.
    peak: AtomicI64,
    /// Most open at once since the last [`ConnectionGauge::take_window`].
    window: AtomicI64,
    /// Highest fd number + 1 of a connection opened since the last take.
    window_fds: AtomicU64,
}

/// What a window of the gauge saw: most connections open at once, and the
/// most fds known to be open at a connection's open (0 when none opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionWindow {
    pub connections: i64,
    pub fds_at_open: u64,
}

impl ConnectionGauge {
    pub fn current(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Most connections open at once since the gauge was made (preflight included).
    pub fn peak(&self) -> i64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// A connection opened; `fd` is its socket's number, when known.
    pub fn opened(&self, fd: Option<u64>) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.window.fetch_max(now, Ordering::Relaxed);
        if let Some(fd) = fd {
            self.window_fds.fetch_max(fd + 1, Ordering::Relaxed);
        }
    }

    /// A connection closed.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The window's maxima, and a new window starting at the connections open now
    /// (so a level held across seconds counts in each of them).
    pub fn take_window(&self) -> ConnectionWindow {
        let level = self.current();
        let connections = self.window.swap(level, Ordering::Relaxed).max(level);
        // An open between the load and the swap may have raised the old window only.
        self.window.fetch_max(self.current(), Ordering::Relaxed);
        ConnectionWindow {
            connections,
            fds_at_open: self.window_fds.swap(0, Ordering::Relaxed),
        }
    }
}

/// A response whose head has arrived; the body is still on the wire.
pub struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
    /// TCP connect time (DNS included, TLS not) of the connection opened for this
    /// request; `None` when it went on a kept-alive one.
    pub connect: Option<Duration>,
    /// Request written to response head received.
    pub ttfb: Duration,
}

/// A request body: empty for pulls, streamed synthetic content for pushes.
pub type RequestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The body of a GET or HEAD.
pub fn empty_body() -> RequestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Sends one bodiless request; returns once the response head is in.
///
/// Without a pool (or with the close model) the request has a connection of its own,
/// which lives until the returned body is dropped or read to its end; with a
/// keep-alive pool it may then serve the pull's next request.
pub async fn send(
    method: Method,
    url: &Url,
    headers: HeaderMap,
    transport: &Transport,
) -> Result<Exchange, Fault> {
    send_with_body(method, url, headers, empty_body(), transport).await
}

/// Like [`send`], with a request body (streamed; its length must be in the headers).
pub async fn send_with_body(
    method: Method,
    url: &Url,
    headers: HeaderMap,
    body: RequestBody,
    transport: &Transport,
) -> Result<Exchange, Fault> {
    if let Some(pool) = &transport.pool {
        return pool.send(method, url, headers, body, transport).await;
    }
    let opened = open_http1(url, transport).await?;
    let mut sender = opened.sender;
    let request = build_request(method, url, headers, body)?;
    let asked = Instant::now();
    let response = await_head(&mut sender, request, transport.timeouts.response).await?;
    Ok(exchange(
        response,
        Some(opened.connect),
        asked.elapsed(),
        None,
    ))
}

/// The exchange of a response whose head is in; `lease` is its pooled connection.
fn exchange(
    response: Response<Incoming>,
    connect: Option<Duration>,
    ttfb: Duration,
    lease: Option<pool::Lease>,
) -> Exchange {
    let (parts, body) = response.into_parts();
    Exchange {
        status: parts.status,
        headers: parts.headers,
        body: Body::new(body, lease),
        connect,
        ttfb,
    }
}

/// A new HTTP/1.1 connection, and what opening it took.
struct Opened {
    sender: hyper::client::conn::http1::SendRequest<RequestBody>,
    /// DNS and TCP connect.
    connect: Duration,
    /// The TLS handshake, for `https`.
    tls_handshake: Option<Duration>,
}

/// Opens a connection to the URL's host and starts HTTP/1.1 on it.
async fn open_http1(url: &Url, transport: &Transport) -> Result<Opened, Fault> {
    let (io, connect, tls_handshake) = open(url, transport).await?;
    let sender = start_http1(io, transport.read_buffer).await?;
    Ok(Opened {
        sender,
        connect,
        tls_handshake,
    })
}

/// A connection to the URL's host, TLS-wrapped for `https`, with the time the
/// TCP connect and the TLS handshake took. The connect timeout bounds TCP and
/// TLS together.
async fn open(
    url: &Url,
    transport: &Transport,
) -> Result<(Box<dyn Io>, Duration, Option<Duration>), Fault> {
    let started = Instant::now();
    let timeouts = &transport.timeouts;
    let host = url.host_str().ok_or_else(|| {
        Fault::new(
            FaultClass::Other,
            Phase::Connect,
            format!("URL without host: {url}"),
        )
    })?;
    // Refused before any connect: a scheme this client does not speak never opens a socket.
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Fault::new(
            FaultClass::Other,
            Phase::Connect,
            format!("unsupported URL scheme {}", url.scheme()),
        ));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = Counted::new(
        connect(host, port, timeouts.connect, transport.loopback_source).await?,
        transport.gauge.clone(),
    );
    let connected = started.elapsed();
    match url.scheme() {
        "http" => Ok((Box::new(stream), connected, None)),
        "https" => {
            let connector = transport.tls.as_ref().ok_or_else(|| {
                Fault::new(
                    FaultClass::Tls,
                    Phase::Connect,
                    "https target but TLS is not configured",
                )
            })?;
            let left = timeouts.connect.saturating_sub(connected);
            let tls = tls::handshake(connector, host, port, stream, left, timeouts.connect).await?;
            Ok((
                Box::new(tls),
                connected,
                Some(started.elapsed() - connected),
            ))
        }
        other => Err(Fault::new(
            FaultClass::Other,
            Phase::Connect,
            format!("unsupported URL scheme {other}"),
        )),
    }
}

/// The HTTP/1.1 handshake on `io`, with the connection driven by its own task.
async fn start_http1(
    io: Box<dyn Io>,
    read_buffer: usize,
) -> Result<hyper::client::conn::http1::SendRequest<RequestBody>, Fault> {
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(read_buffer)
        .handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| classify::from_error(&e, Phase::Connect))?;
    // The connection future must be polled for the request and body to move;
    // it ends (dropping the socket) when the body is dropped or complete.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The request as sent: origin-form target, `Host` from the URL, and a
/// `User-Agent` unless the caller set one.
fn build_request(
    method: Method,
    url: &Url,
    headers: HeaderMap,
    body: RequestBody,
) -> Result<Request<RequestBody>, Fault> {
    let mut request = Request::builder()
        .method(method)
        .uri(request_target(url))
        .body(body)
        .map_err(|e| Fault::new(FaultClass::Other, Phase::Request, e.to_string()))?;
    *request.headers_mut() = headers;
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&host_header(url))
            .map_err(|e| Fault::new(FaultClass::Other, Phase::Request, e.to_string()))?,
    );
    request
        .headers_mut()
        .entry(http::header::USER_AGENT)
        .or_insert(http::HeaderValue::from_static(concat!(
            "pullstorm/",
            env!("CARGO_PKG_VERSION")
        )));
    Ok(request)
}

/// Sends `request` and waits at most `limit` for the response head.
async fn await_head(
    sender: &mut hyper::client::conn::http1::SendRequest<RequestBody>,
    request: Request<RequestBody>,
    limit: Duration,
) -> Result<Response<Incoming>, Fault> {
    match tokio::time::timeout(limit, sender.send_request(request)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(classify::from_error(&e, Phase::Request)),
        Err(_) => Err(Fault::new(
            FaultClass::ReadTimeout,
            Phase::Request,
            format!("no response head within {limit:?}"),
        )),
    }
}

/// Reads a small body (manifest, token, error document) whole, up to `limit` bytes.
pub async fn read_small(body: Body, limit: usize, stall: Option<Duration>) -> Result<Bytes, Fault> {
    let wait = stall.unwrap_or(Duration::from_secs(60));
    let collected = tokio::time::timeout(wait, http_body_util::Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            Fault::new(
                FaultClass::ReadTimeout,
                Phase::Body,
                format!("body stalled for {wait:?}"),
            )
        })?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(Fault::new(
                    FaultClass::Other,
                    Phase::Body,
                    format!("body larger than {limit} bytes"),
                ))
            } else {
                Err(classify::from_dyn(&*e, Phase::Body))
            }
        }
    }
}

async fn connect(
    host: &str,
    port: u16,
    limit: Duration,
    loopback_source: Option<std::net::Ipv4Addr>,
) -> Result<TcpStream, Fault> {
    let attempt = async {
        let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(Fault::new(
                    FaultClass::Dns,
                    Phase::Connect,
                    format!("{host}: {e}"),
                ))
            }
        };
        let mut last = None;
        for addr in addrs {
            let connected = match (addr, loopback_source) {
                (std::net::SocketAddr::V4(v4), Some(source)) if v4.ip().is_loopback() => {
                    bound_connect(addr, source).await
                }
                _ => TcpStream::connect(addr).await,
            };
            match connected {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => {
                    last = Some(classify::from_io(
                        &e,
                        Phase::Connect,
                        &format!("connect {addr}"),
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Fault::new(
                FaultClass::Dns,
                Phase::Connect,
                format!("{host}: no address"),
            )
        }))
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Fault::new(
            FaultClass::ConnectTimeout,
            Phase::Connect,
            format!("connect to {host}:{port} took longer than {limit:?}"),
        )),
    }
}

fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    }
}

fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Plain or TLS, boxed once per connection so the rest of the exchange is one code path.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A TCP stream that keeps the open-connection gauge true for its lifetime.
pub(crate) struct Counted {
    inner: TcpStream,
    gauge: Arc<ConnectionGauge>,
}

impl Counted {
    pub(crate) fn new(inner: TcpStream, gauge: Arc<ConnectionGauge>) -> Self {
        use std::os::fd::AsRawFd;
        gauge.opened(u64::try_from(inner.as_raw_fd()).ok());
        Counted { inner, gauge }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.gauge.closed();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects from a chosen loopback source address (port picked by the kernel).
async fn bound_connect(
    addr: std::net::SocketAddr,
    source: std::net::Ipv4Addr,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// The source address of node `node` when spreading over `count` loopback addresses.
pub fn loopback_source(node: u32, count: u32) -> Option<std::net::Ipv4Addr> {
    if count <= 1 {
        return None;
    }
    // 127.0.0.1 upwards, skipping .0 and .255 of each /24 would be cosmetic: all of
    // 127.0.0.0/8 is local, so any address but 127.0.0.0 itself works.
    let n = 1 + node % count.min((1 << 24) - 2);
    Some(std::net::Ipv4Addr::from(0x7f00_0000u32 | n))
}

/// A listening socket with a backlog deep enough for a herd: tokio's default of 1024
/// makes thousands of simultaneous connects wait for SYN retries (1 s, 3 s, 7 s, ...),
/// which a harness would then blame on the target. The kernel caps it at somaxconn.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Requested listen backlog (the kernel lowers it to net.core.somaxconn).
pub const LISTEN_BACKLOG: u32 = 16_384;

#[cfg(test)]
mod tests {
    use super::loopback_source;
    use std::net::Ipv4Addr;

    #[test]
    fn the_connection_gauge_keeps_every_peak_its_events_made() {
        let g = super::ConnectionGauge::default();
        for fd in [7, 9, 8] {
            g.opened(Some(fd));
        }
        g.closed();
        g.closed();
        assert_eq!((g.current(), g.peak()), (1, 3));
        let w = g.take_window();
        assert_eq!(w.connections, 3, "the window saw three at once");
        assert_eq!(w.fds_at_open, 10, "fd 9 open: fds 0-9 were in use");
        // A new window starts at the level still open, with no open seen.
        let w = g.take_window();
        assert_eq!((w.connections, w.fds_at_open), (1, 0));
        g.opened(None);
        g.closed();
        g.closed();
        assert_eq!(g.take_window().connections, 2);
        assert_eq!(g.take_window().connections, 0);
        assert_eq!(g.peak(), 3, "the run's peak is never reset");
    }

    #[test]
    fn nodes_spread_over_loopback_sources() {
        assert_eq!(loopback_source(5, 1), None);
        assert_eq!(loopback_source(0, 4), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(loopback_source(3, 4), Some(Ipv4Addr::new(127, 0, 0, 4)));
        assert_eq!(loopback_source(4, 4), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            loopback_source(300, 1000),
            Some(Ipv4Addr::new(127, 0, 1, 45))
        );
    }

    #[tokio::test]
    async fn a_spread_connection_comes_from_its_source() {
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap().1 });
        let _stream = super::bound_connect(addr, Ipv4Addr::new(127, 0, 0, 7))
            .await
            .unwrap();
        assert_eq!(accept.await.unwrap().ip(), Ipv4Addr::new(127, 0, 0, 7));
    }
}
