//! One client connection: optional first request head (status injection),
//! the upstream connect, then two pumps in one task until one side ends or a
//! fault fires, and finally the socket-level end of that fault.
//!
//! Both pumps run inside the connection's own task (joined with `select!`),
//! not as two tasks: a cut or the cut timer can then stop both at once and get
//! the client socket back to set `SO_LINGER` or send the FIN, with no channel
//! or lock between them. What the two pumps share is a few atomics in
//! [`Flags`].
//!
//! Toward the client the response pump forwards at most one buffer per read,
//! split exactly at the byte counts where a cut or stall fires, so
//! `cut_after_bytes = N` writes exactly N bytes to the client socket before
//! the cut (with `rst`, bytes still in the kernel's send buffer are dropped by
//! the reset, as with any RST: the client sees at most N).

use super::config::ProxyConfig;
use super::http::{status_response, RequestRewriter, MAX_HEAD};
use super::select::{Jitter, Selector};
use super::stats::{add, Stats};
use crate::net::Bandwidth;
use crate::scenario::CutWith;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a closing connection keeps reading (and discarding) what the client
/// still sends, so that closing with unread bytes does not turn a FIN into a RST.
const DRAIN: Duration = Duration::from_secs(2);

/// Read buffer toward the client when no bandwidth cap makes it smaller.
const CHUNK: usize = 64 << 10;

/// Read buffer from the client (requests are small; uploads just take more reads).
const REQUEST_CHUNK: usize = 16 << 10;

/// Everything the connections of one proxy share.
pub struct Shared {
    pub config: ProxyConfig,
    pub stats: Stats,
    pub cut: Option<Selector>,
    pub stall: Option<Selector>,
    pub status: Option<Selector>,
    pub total_bandwidth: Option<Bandwidth>,
    /// Over-limit connections held by `over_limit = "hang"` right now.
    pub hanging: AtomicU64,
}

impl Shared {
    pub fn new(config: ProxyConfig) -> Shared {
        let seed = config.seed;
        Shared {
            cut: config
                .cut
                .as_ref()
                .map(|c| Selector::new(c.select, seed, "cut")),
            stall: config
                .stall
                .as_ref()
                .map(|s| Selector::new(s.select, seed, "stall")),
            status: config
                .status
                .as_ref()
                .map(|s| Selector::new(s.select, seed, "status")),
            total_bandwidth: config.bandwidth_total.map(Bandwidth::new),
            stats: Stats::default(),
            hanging: AtomicU64::new(0),
            config,
        }
    }
}

/// How the relay of one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The upstream closed; the client got its FIN after the last byte.
    Done,
    /// The client closed or failed: nothing to tell it.
    ClientGone,
    /// The upstream reset or failed mid-stream: the client gets a reset too.
    UpstreamFailed,
    /// A cut fault fired.
    Cut(CutWith),
}

/// `Flags::cut` values (0, the default, is "not drawn yet").
const CUT: u8 = 1;
const SPARED: u8 = 2;

/// State the two pumps and the cut timer share (atomics keep the task `Send`).
#[derive(Default)]
struct Flags {
    /// The client sent bytes since the last response byte: the next one starts a response.
    request_sent: AtomicBool,
    /// The response pump is in a stall.
    stalled: AtomicBool,
    /// The connection's one cut draw, taken at whichever cut trigger it reaches first.
    cut: AtomicU8,
    /// A request reached `cut_after_request_bytes` and its draw hit.
    request_cut: AtomicBool,
}

impl Flags {
    fn decide_cut(&self, shared: &Shared) -> bool {
        match self.cut.load(Ordering::Relaxed) {
            CUT => true,
            SPARED => false,
            _ => {
                let hit = shared.cut.as_ref().is_some_and(Selector::draw);
                self.cut
                    .store(if hit { CUT } else { SPARED }, Ordering::Relaxed);
                hit
            }
        }
    }
}

/// Serves one accepted client connection to its end.
pub async fn serve(mut client: TcpStream, shared: &Shared, conn: u64) {
    let accepted = Instant::now();
    // Headers and small manifests should not wait for Nagle, in either direction.
    let _ = client.set_nodelay(true);
    let config = &shared.config;
    let mut rewriter = config.http_aware().then(|| {
        RequestRewriter::new(config.strip_range)
            .with_cut(config.cut.as_ref().and_then(|c| c.after_request.clone()))
    });
    let mut pending = Vec::new();
    let mut unfed = Vec::new();
    if let Some(rw) = rewriter.as_mut() {
        // Read the first head before connecting, so an injected status never reaches the upstream.
        if !first_head(&mut client, rw, &mut pending, &mut unfed, &shared.stats).await {
            return;
        }
        if let Some(code) = injected_status(shared, rw) {
            add(&shared.stats.status_injected, 1);
            tracing::debug!(conn, code, "proxy: answering with an injected status");
            let head_only = rw.last.as_ref().is_some_and(|r| r.method == "HEAD");
            reply_and_close(client, code, head_only).await;
            return;
        }
    }
    let upstream = tokio::time::timeout(
        config.connect_timeout,
        TcpStream::connect(config.upstream.as_str()),
    )
    .await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        failed => {
            add(&shared.stats.upstream_failed, 1);
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_string(),
            };
            tracing::debug!(conn, upstream = %config.upstream, "proxy: upstream connect failed: {why}");
            // An HTTP-aware proxy answers like an LB with a dead backend; a TCP one can only reset.
            match rewriter.as_ref().filter(|rw| rw.heads > 0) {
                Some(_) => reply_and_close(client, 502, false).await,
                None => reset(client),
            }
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let end = relay(
        &mut client,
        &mut upstream,
        shared,
        Requests {
            rewriter,
            pending,
            unfed,
        },
        conn,
        accepted,
    )
    .await;
    tracing::debug!(conn, ?end, "proxy: connection ended");
    // The upstream goes at once, so the registry sees the cut when the client does.
    drop(upstream);
    match end {
        End::Done => drain_and_close(client).await,
        End::ClientGone => {}
        End::UpstreamFailed => reset(client),
        End::Cut(with) => {
            add(&shared.stats.cut, 1);
            match with {
                CutWith::Rst => reset(client),
                CutWith::Fin => {
                    let _ = client.shutdown().await;
                    drain_and_close(client).await;
                }
            }
        }
    }
}

/// Reads until the first request head is complete (or the rewriter gives up on
/// the stream). False when the client left first. Bytes read after a due
/// request cut go to `unfed`: the relay decides on the cut once the upstream
/// has what came before them.
async fn first_head(
    client: &mut TcpStream,
    rw: &mut RequestRewriter,
    out: &mut Vec<u8>,
    unfed: &mut Vec<u8>,
    stats: &Stats,
) -> bool {
    let mut buf = vec![0u8; REQUEST_CHUNK];
    while rw.heads == 0 && !rw.is_raw() {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                let taken = rw.feed(&buf[..n], out);
                unfed.extend_from_slice(&buf[taken..n]);
            }
        }
    }
    add(&stats.range_stripped, rw.stripped);
    true
}

/// The status to answer the connection's first request with, if the fault picks it.
fn injected_status(shared: &Shared, rw: &RequestRewriter) -> Option<u16> {
    let fault = shared.config.status.as_ref()?;
    let request = rw.last.as_ref()?;
    if let Some(part) = &fault.path_contains {
        if !request.target.contains(part.as_str()) {
            return None;
        }
    }
    shared
        .status
        .as_ref()
        .is_some_and(Selector::draw)
        .then_some(fault.code)
}

/// The request side of a connection as the relay takes it over.
struct Requests {
    rewriter: Option<RequestRewriter>,
    /// Bytes for the upstream, not yet written.
    pending: Vec<u8>,
    /// Bytes from the client the rewriter has not taken yet (it stopped at a due cut).
    unfed: Vec<u8>,
}

/// Pumps both ways until one side ends or a fault fires.
async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    shared: &Shared,
    requests: Requests,
    conn: u64,
    accepted: Instant,
) -> End {
    let flags = Flags::default();
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let up = pump_requests(
        &mut client_read,
        &mut upstream_write,
        requests,
        shared,
        &flags,
    );
    let down = pump_responses(&mut upstream_read, &mut client_write, shared, &flags, conn);
    let deadline = shared
        .config
        .cut
        .as_ref()
        .and_then(|c| c.after_time)
        .map(|t| accepted + t);
    let timer = async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(up, down, timer);
    let mut up_done = false;
    let mut timer_live = deadline.is_some();
    loop {
        tokio::select! {
            end = &mut down => return end,
            client_ok = &mut up, if !up_done => {
                up_done = true;
                if flags.request_cut.load(Ordering::Relaxed) {
                    let with = shared.config.cut.as_ref().map_or(CutWith::Fin, |c| c.with);
                    return End::Cut(with);
                }
                // A stalled connection has nothing more to deliver: once its client
                // leaves, free it instead of holding it for the rest of the stall.
                if !client_ok || flags.stalled.load(Ordering::Relaxed) {
                    return End::ClientGone;
                }
            }
            _ = &mut timer, if timer_live => {
                timer_live = false;
                if flags.decide_cut(shared) {
                    let with = shared.config.cut.as_ref().map_or(CutWith::Fin, |c| c.with);
                    return End::Cut(with);
                }
            }
        }
    }
}

/// Client to upstream, rewriting heads when the config asks. Returns when the
/// client closed its side (true) or failed (false); a failed upstream write
/// ends it too (true), and the response side then sees the upstream's state.
/// A request that reaches `cut_after_request_bytes` draws once, after exactly
/// that many of its body bytes were written to the upstream; a hit sets
/// `flags.request_cut` and returns (true).
async fn pump_requests<R, W>(
    from: &mut R,
    to: &mut W,
    requests: Requests,
    shared: &Shared,
    flags: &Flags,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stats = &shared.stats;
    let Requests {
        mut rewriter,
        mut pending,
        mut unfed,
    } = requests;
    let mut buf = vec![0u8; REQUEST_CHUNK];
    let mut stripped = rewriter.as_ref().map_or(0, |rw| rw.stripped);
    loop {
        if !pending.is_empty() {
            // Set before the write: the response cannot start before the upstream has the request.
            flags.request_sent.store(true, Ordering::Relaxed);
            if to.write_all(&pending).await.is_err() {
                return true;
            }
            add(&stats.bytes_to_upstream, pending.len() as u64);
            pending.clear();
            if pending.capacity() > 2 * MAX_HEAD {
                pending.shrink_to(REQUEST_CHUNK);
            }
        }
        if let Some(rw) = rewriter.as_mut() {
            if rw.cut_due {
                if shared.cut.as_ref().is_some_and(Selector::draw) {
                    add(&stats.request_cut, 1);
                    tracing::debug!(request = ?rw.last, "proxy: cutting a request mid-body");
                    flags.request_cut.store(true, Ordering::Relaxed);
                    return true;
                }
                rw.spare();
            }
            if !unfed.is_empty() {
                let taken = rw.feed(&unfed, &mut pending);
                unfed.drain(..taken);
                continue;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                // Pass the half-close on, as a TCP proxy does.
                let _ = to.shutdown().await;
                return true;
            }
            Ok(n) => n,
            Err(_) => return false,
        };
        match rewriter.as_mut() {
            Some(rw) if !rw.is_raw() => {
                let taken = rw.feed(&buf[..n], &mut pending);
                unfed.extend_from_slice(&buf[taken..n]);
                add(&stats.range_stripped, rw.stripped - stripped);
                stripped = rw.stripped;
            }
            _ => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Byte counts toward the client at which a fault fires; each fires once.
struct Triggers {
    cut_at: Option<u64>,
    stall_at: Option<u64>,
}

impl Triggers {
    /// The nearest trigger not yet reached (`sent` is always below it).
    fn next(&self) -> Option<u64> {
        match (self.cut_at, self.stall_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires what `sent` reaches: returns the end for a cut; sleeps through a stall.
    async fn fire(&mut self, sent: u64, shared: &Shared, flags: &Flags) -> Option<End> {
        if self.cut_at == Some(sent) {
            self.cut_at = None;
            if flags.decide_cut(shared) {
                return Some(End::Cut(shared.config.cut.as_ref()?.with));
            }
        }
        if self.stall_at == Some(sent) {
            self.stall_at = None;
            let fault = shared.config.stall.as_ref()?;
            if shared.stall.as_ref().is_some_and(Selector::draw) {
                add(&shared.stats.stalled, 1);
                tracing::debug!(sent, "proxy: stalling a connection");
                flags.stalled.store(true, Ordering::Relaxed);
                match fault.duration {
                    Some(d) => tokio::time::sleep(d).await,
                    // Until the client leaves (see `relay`) or the proxy stops.
                    None => std::future::pending::<()>().await,
                }
                flags.stalled.store(false, Ordering::Relaxed);
            }
        }
        None
    }
}

/// Upstream to client, with latency, bandwidth caps, and byte-triggered cuts and stalls.
async fn pump_responses<R, W>(
    from: &mut R,
    to: &mut W,
    shared: &Shared,
    flags: &Flags,
    conn: u64,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let stats = &shared.stats;
    let latency = config.latency;
    let mut jitter = Jitter::new(config.seed, conn, latency.jitter);
    let per_connection = config.bandwidth.map(Bandwidth::new);
    let mut buf = vec![0u8; chunk_size(config)];
    let mut triggers = Triggers {
        cut_at: config.cut.as_ref().and_then(|c| c.after_bytes),
        stall_at: config.stall.as_ref().map(|s| s.after_bytes),
    };
    let mut sent = 0u64;
    // A trigger at 0 bytes fires before the first byte.
    if let Some(end) = triggers.fire(sent, shared, flags).await {
        return end;
    }
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Done;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(conn, "proxy: upstream read failed: {e}");
                return End::UpstreamFailed;
            }
        };
        let mut delay = Duration::ZERO;
        if flags.request_sent.swap(false, Ordering::Relaxed) && !latency.first_byte.is_zero() {
            delay += jitter.add_to(latency.first_byte);
        }
        if !latency.per_chunk.is_zero() {
            delay += jitter.add_to(latency.per_chunk);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut off = 0;
        while off < n {
            // Split the chunk exactly where the next trigger fires.
            // Triggers always lie ahead of `sent` (each is cleared as `sent` reaches it);
            // the fallback to `n` only guards the loop's progress.
            let end = match triggers.next() {
                Some(at) if at > sent => {
                    n.min(off.saturating_add(usize::try_from(at - sent).unwrap_or(usize::MAX)))
                }
                _ => n,
            };
            let piece = &buf[off..end];
            if let Some(link) = &per_connection {
                link.take(piece.len()).await;
            }
            if let Some(link) = &shared.total_bandwidth {
                link.take(piece.len()).await;
            }
            if to.write_all(piece).await.is_err() {
                return End::ClientGone;
            }
            sent += piece.len() as u64;
            add(&stats.bytes_to_client, piece.len() as u64);
            off = end;
            if let Some(end) = triggers.fire(sent, shared, flags).await {
                return end;
            }
        }
    }
}

/// About 50 ms of the tightest cap (the limiter's burst), so a capped stream
/// moves in small steps instead of one long sleep per 64 KiB.
fn chunk_size(config: &ProxyConfig) -> usize {
    let rate = match (config.bandwidth, config.bandwidth_total) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => match a.or(b) {
            Some(r) => r,
            None => return CHUNK,
        },
    };
    usize::try_from(rate / 20)
        .unwrap_or(CHUNK)
        .clamp(1024, CHUNK)
}

/// Linger 0 then close: the peer gets a RST (ECONNRESET), not a FIN.
pub fn reset(stream: TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!("proxy: cannot set SO_LINGER for a reset: {e}");
    }
    drop(stream);
}

/// Sends one response the proxy makes itself, then closes cleanly.
async fn reply_and_close(mut client: TcpStream, code: u16, head_only: bool) {
    if client
        .write_all(&status_response(code, head_only))
        .await
        .is_ok()
    {
        let _ = client.shutdown().await;
        drain_and_close(client).await;
    }
}

/// After our FIN: read and discard until the client closes too (at most [`DRAIN`]).
pub async fn drain_and_close(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::config::ProxySection;
    use crate::scenario::units::Rate;

    #[test]
    fn chunks_follow_the_tightest_cap() {
        let mut s = ProxySection {
            upstream: Some("a:1".into()),
            ..Default::default()
        };
        let c = |s: &ProxySection| chunk_size(&ProxyConfig::from_section(s).unwrap());
        assert_eq!(c(&s), CHUNK);
        s.bandwidth = Some(Rate(200_000));
        assert_eq!(c(&s), 10_000);
        s.bandwidth_total = Some(Rate(1000));
        assert_eq!(c(&s), 1024);
        s.bandwidth = Some(Rate(1 << 40));
        s.bandwidth_total = None;
        assert_eq!(c(&s), CHUNK);
    }
}
