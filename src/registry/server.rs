//! Accepting connections and owning their lifetime: keep-alive HTTP/1.1 via
//! hyper, graceful shutdown, and the socket end of a cut fault.
//!
//! A cut must deliver exactly the bytes before it and then end the TCP
//! connection the way the fault says (FIN or RST). Hyper buffers writes, so
//! the body alone cannot know when its last byte reached the socket. Instead
//! the body *arms* the connection's [`ConnCtl`]; hyper calls the IO's
//! `poll_flush` only once its own buffer is empty, and [`ConnIo`] cuts there:
//! for RST it sets `SO_LINGER` to zero first, then fails the flush so hyper
//! drops the connection and the socket is closed.
//!
//! Per connection the server keeps only hyper's own state, one small `Arc`
//! and a shutdown receiver, so 10,000+ idle keep-alive connections are cheap.

use super::request_log::{LoggedRequest, RequestLog};
use super::routes::Registry;
use super::EmbeddedConfig;
use crate::scenario::CutWith;
use crate::synth::SyntheticImage;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown waits for in-flight responses before dropping connections.
const GRACE: Duration = Duration::from_secs(5);

/// A running embedded registry. Dropping it stops it too (without waiting).
pub struct EmbeddedRegistry {
    addr: SocketAddr,
    image: Arc<SyntheticImage>,
    log: Option<Arc<RequestLog>>,
    stop: watch::Sender<bool>,
    /// Bumped to close every open connection at once (the listener stays open).
    close_now: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl EmbeddedRegistry {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The image it serves.
    pub fn image(&self) -> &Arc<SyntheticImage> {
        &self.image
    }

    /// Every request so far, in arrival order, when the config asked for an in-memory
    /// request log ([`RequestLog::in_memory`]); `None` without one.
    pub fn request_log(&self) -> Option<Vec<LoggedRequest>> {
        self.log
            .as_ref()
            .filter(|log| log.in_memory())
            .map(|log| log.entries())
    }

    /// Closes every connection open now, idle or mid-response (a stalled body too), as a
    /// load balancer that restarts would; new connections are accepted as before.
    pub fn close_connections(&self) {
        self.close_now.send_modify(|n| *n += 1);
    }

    /// Stops accepting, lets in-flight responses finish (at most 5 s), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        // Every connection task holds a receiver: `closed` resolves when the last ends.
        let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), self.stop.closed()).await;
    }
}

/// Builds the image (off the async threads: hashing takes ~0.6 s per GiB;
/// dropping this future cancels the build) and starts serving it on `listener`.
pub async fn start(listener: TcpListener, config: EmbeddedConfig) -> io::Result<EmbeddedRegistry> {
    let image = config.build_image_async().await?;
    start_with_image(listener, config, Arc::new(image)).await
}

/// Starts serving an already built image (`config`'s seed and layer sizes are
/// not used), e.g. to share one image between several registries.
pub async fn start_with_image(
    listener: TcpListener,
    config: EmbeddedConfig,
    image: Arc<SyntheticImage>,
) -> io::Result<EmbeddedRegistry> {
    let addr = listener.local_addr()?;
    let registry = Arc::new(Registry::new(&config, image.clone(), addr));
    let log = config.request_log.clone();
    if let Some(log) = &log {
        log.start_clock();
    }
    let (stop, stop_rx) = watch::channel(false);
    let (close_now, close_rx) = watch::channel(0);
    let signals = Signals {
        stop: stop_rx,
        close_now: close_rx,
    };
    let accept = tokio::spawn(accept_loop(listener, registry, log.clone(), signals));
    Ok(EmbeddedRegistry {
        addr,
        image,
        log,
        stop,
        close_now,
        accept,
    })
}

/// What a connection listens to besides its client.
#[derive(Clone)]
struct Signals {
    /// Graceful shutdown.
    stop: watch::Receiver<bool>,
    /// Close now ([`EmbeddedRegistry::close_connections`]).
    close_now: watch::Receiver<u64>,
}

async fn accept_loop(
    listener: TcpListener,
    registry: Arc<Registry>,
    log: Option<Arc<RequestLog>>,
    signals: Signals,
) {
    let mut stop = signals.stop.clone();
    let mut last_warning: Option<Instant> = None;
    let mut connections: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections += 1;
                    let ctl = Arc::new(ConnCtl::new(connections));
                    tokio::spawn(serve_connection(stream, registry.clone(), ctl, log.clone(), signals.clone()));
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    // The backlog keeps the waiting clients; retry once fds free up.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!("embedded registry cannot accept: {e} (open file limit reached)");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => tracing::debug!("accept failed: {e}"),
            },
            _ = stop.changed() => break,
        }
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23), also ENOBUFS/ENOMEM under memory pressure.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

async fn serve_connection(
    stream: TcpStream,
    registry: Arc<Registry>,
    ctl: Arc<ConnCtl>,
    log: Option<Arc<RequestLog>>,
    signals: Signals,
) {
    let Signals {
        mut stop,
        mut close_now,
    } = signals;
    // A close asked for before this connection was accepted is not for it: the receiver
    // is cloned from the accept loop's, which never marks a close as seen.
    close_now.borrow_and_update();
    // Small manifests and headers should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let conn_id = ctl.id();
    let io = TokioIo::new(ConnIo {
        stream,
        ctl: ctl.clone(),
    });
    let service = service_fn(move |req| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            registry.handle(&req, &ctl),
        ))
    });
    let conn = http1::Builder::new()
        // Hyper takes body chunks until this much is queued; keeping it at two
        // chunks bounds memory per transfer and lets the body recycle buffers.
        .max_buf_size(super::blob_body::HYPER_BUF)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
                // Hyper answers bytes that are no HTTP request (a TLS ClientHello) with 400.
                if e.is_parse() {
                    if let Some(log) = &log {
                        log.not_http(conn_id, 400, Instant::now());
                    }
                }
            }
        }
        // Dropping the connection closes its socket, whatever it was doing.
        Ok(()) = close_now.changed() => {}
        // A send or a dropped sender both mean stop.
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(GRACE, conn.as_mut()).await.is_err() {
                tracing::debug!("connection dropped at shutdown with a response in flight");
            }
        }
    }
}

const LIVE: u8 = 0;
const ARMED_FIN: u8 = 1;
const ARMED_RST: u8 = 2;
const CUT: u8 = 3;

/// Per-connection switch a body flips to have the connection cut, and the connection's
/// number (for the request log).
pub struct ConnCtl {
    state: AtomicU8,
    id: u64,
}

impl ConnCtl {
    pub fn new(id: u64) -> ConnCtl {
        ConnCtl {
            state: AtomicU8::new(LIVE),
            id,
        }
    }

    /// The connection's number, from 1 in accept order.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Cut the connection at the next flush of an empty write buffer.
    pub fn arm(&self, with: CutWith) {
        let armed = match with {
            CutWith::Fin => ARMED_FIN,
            CutWith::Rst => ARMED_RST,
        };
        let _ = self
            .state
            .compare_exchange(LIVE, armed, Ordering::AcqRel, Ordering::Acquire);
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by fault injection",
    )
}

/// The accepted socket, plus the cut described in the module doc.
struct ConnIo {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.state() == CUT {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.state() == CUT {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.ctl.state() {
            LIVE => Pin::new(&mut self.stream).poll_flush(cx),
            state => {
                if state == ARMED_RST {
                    // Linger 0: close() then sends RST and drops unsent bytes.
                    if let Err(e) = self.stream.set_zero_linger() {
                        tracing::debug!("cannot set SO_LINGER for a reset: {e}");
                    }
                }
                self.ctl.state.store(CUT, Ordering::Release);
                Poll::Ready(Err(cut_error()))
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Once armed, no orderly shutdown: a FIN before an intended RST would change the fault.
        if self.ctl.state() != LIVE {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
