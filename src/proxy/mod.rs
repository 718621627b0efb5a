//! The fault-injecting TCP proxy (`pullstorm proxy`, or in-process via
//! [`start`]): put it between the fleet and a registry or LB to reproduce
//! what the seeds' load balancers did, which the kernel here cannot (no tc
//! netem): cuts with FIN or RST after a time or a byte count, stalls, a
//! stripped `Range`, a connection cap (refuse, reset, hang), bandwidth caps,
//! added latency with seeded jitter, and injected HTTP statuses.
//!
//! One upstream connection per client connection, bytes relayed as they come.
//! It is HTTP-aware on the request side only, and only when `strip_range` or
//! `status` needs it (see [`http`]); everything else works at the TCP level,
//! so it relays TLS too (minus those two faults).
//!
//! Layout: [`config`] (the TOML-friendly section and its validation),
//! [`select`] (which connections a fault hits, seeded), [`relay`] (one
//! connection: pumps, triggers, the socket end of a cut), [`limit`] (over
//! `max_connections`), [`http`] (request heads, injected responses),
//! [`stats`] (counters), [`cli`] (`pullstorm proxy`).

pub mod cli;
pub mod config;
pub mod http;
pub mod limit;
pub mod relay;
pub mod select;
pub mod stats;

pub use cli::{proxy_main, ProxyArgs};
pub use config::{OverLimit, ProxyConfig, ProxySection, Select};
pub use stats::ProxyStats;

use relay::Shared;
use stats::{add, ActiveGuard};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`ProxyHandle::shutdown`] waits for connection tasks to notice.
const GRACE: Duration = Duration::from_secs(2);

/// A running proxy. Dropping it stops it too (without waiting).
pub struct ProxyHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl ProxyHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        self.shared.stats.snapshot()
    }

    /// Stops accepting, closes every connection (in flight or held), and
    /// returns the final counters.
    pub async fn shutdown(self) -> ProxyStats {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        // Every connection task holds a receiver: `closed` resolves when the last ends.
        let _ = tokio::time::timeout(GRACE, self.stop.closed()).await;
        self.shared.stats.snapshot()
    }
}

/// Starts proxying connections accepted on `listener` as `config` says.
pub async fn start(listener: TcpListener, config: ProxyConfig) -> io::Result<ProxyHandle> {
    let addr = listener.local_addr()?;
    tracing::debug!(%addr, upstream = %config.upstream, faults = %config, "proxy: starting");
    let shared = Arc::new(Shared::new(config));
    let (stop, stop_rx) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
    Ok(ProxyHandle {
        addr,
        shared,
        stop,
        accept,
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut last_warning: Option<Instant> = None;
    let mut conn = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conn += 1;
                    tracing::debug!(conn, %peer, "proxy: accepted");
                    admit(stream, &shared, conn, &stop);
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    // Like a real LB out of fds: the backlog holds the clients; retry shortly.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!("proxy cannot accept: {e} (open file limit reached)");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => tracing::debug!("proxy: accept failed: {e}"),
            },
            _ = stop.changed() => break,
        }
    }
}

/// Counts a new connection and either relays it or applies `over_limit`.
fn admit(stream: TcpStream, shared: &Arc<Shared>, conn: u64, stop: &watch::Receiver<bool>) {
    let stats = &shared.stats;
    add(&stats.accepted, 1);
    if let Some(limit) = shared.config.limit {
        // Only this loop increments `active`, so the check and the count cannot race.
        if stats.active.load(Ordering::Relaxed) >= u64::from(limit.max) {
            if let Some(work) = limit::over_limit(stream, limit.over, shared) {
                spawn_until_stop(work, stop.clone());
            }
            return;
        }
    }
    add(&stats.active, 1);
    let shared = shared.clone();
    spawn_until_stop(
        async move {
            let _active = ActiveGuard::adopt(&shared.stats.active);
            relay::serve(stream, &shared, conn).await;
        },
        stop.clone(),
    );
}

/// Runs `work` in its own task until it ends or the proxy stops (dropping it closes its sockets).
fn spawn_until_stop<F>(work: F, mut stop: watch::Receiver<bool>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tokio::select! {
            _ = work => {}
            // A send or a dropped sender both mean stop.
            _ = stop.changed() => {}
        }
    });
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23), also ENOBUFS/ENOMEM under memory pressure.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
