//! What a connection over `max_connections` gets: an fd-starved LB, as in
//! seed 000 (Harbor's docker-proxy at its 1024 nofile limit).
//!
//! A real process out of fds stops accepting and the kernel backlog fills
//! (connects then hang or time out); `hang` shows the client the same thing
//! (a connection that never answers) while the proxy keeps counting. `refuse`
//! and `reset` are what an LB that accepts and then fails to get an upstream
//! socket (or has `reset_timedout_connection`) does.

use super::config::OverLimit;
use super::http::MAX_HEAD;
use super::relay::{reset, Shared};
use super::stats::{add, ActiveGuard};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Longest wait for the request head before an over-limit `reset`.
const HEAD_WAIT: Duration = Duration::from_secs(30);

/// Most over-limit connections held open at once by `hang`; past it they are
/// reset instead, so a runaway client cannot take every fd of the proxy.
pub const MAX_HUNG: u64 = 10_000;

/// Deals with one connection over the cap. `refuse` is done at once; the
/// others return a future the caller spawns (it may take a while).
pub fn over_limit(
    stream: TcpStream,
    how: OverLimit,
    shared: &Arc<Shared>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let how = match how {
        OverLimit::Hang if shared.hanging.load(Ordering::Relaxed) >= MAX_HUNG => {
            tracing::debug!("proxy: {MAX_HUNG} connections already hung, refusing instead");
            OverLimit::Refuse
        }
        how => how,
    };
    tracing::debug!("proxy: connection over the limit: {}", how.name());
    match how {
        OverLimit::Refuse => {
            add(&shared.stats.refused, 1);
            reset(stream);
            None
        }
        OverLimit::Reset => {
            add(&shared.stats.reset, 1);
            Some(Work::Reset(stream).run())
        }
        OverLimit::Hang => {
            add(&shared.stats.hung, 1);
            // Counted here, before the caller spawns, so the cap check above cannot race.
            shared.hanging.fetch_add(1, Ordering::Relaxed);
            Some(Work::Hang(stream, shared.clone()).run())
        }
    }
}

/// The slow part of `reset` and `hang`, as one future type.
enum Work {
    Reset(TcpStream),
    Hang(TcpStream, Arc<Shared>),
}

impl Work {
    async fn run(self) {
        match self {
            Work::Reset(mut stream) => {
                let _ = tokio::time::timeout(HEAD_WAIT, read_head(&mut stream)).await;
                reset(stream);
            }
            Work::Hang(mut stream, shared) => {
                let _held = ActiveGuard::adopt(&shared.hanging);
                // Read and discard, never answer: the client waits for a response
                // that does not come. Ends when the client gives up (or at shutdown).
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
    }
}

/// Reads until a blank line ends a head, the client closes, or [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < MAX_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.windows(2).any(|w| w == b"\n\n") {
            return;
        }
    }
}
