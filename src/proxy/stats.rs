//! The proxy's counters: what it accepted, refused, cut and relayed.
//!
//! Plain relaxed atomics, one add per event or per forwarded chunk; readers
//! take a [`ProxyStats`] snapshot (the values are read one by one, so a
//! snapshot taken under load is close to, not exactly, one instant).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Every accepted client connection, over the limit or not.
    pub accepted: u64,
    /// Over `max_connections`, reset at once (`over_limit = "refuse"`).
    pub refused: u64,
    /// Over `max_connections`, reset after the request head (`over_limit = "reset"`).
    pub reset: u64,
    /// Over `max_connections`, held without an answer (`over_limit = "hang"`).
    pub hung: u64,
    /// Connections cut by `cut_*` (FIN or RST).
    pub cut: u64,
    /// Of `cut`, those cut mid-request by `cut_after_request_bytes`.
    pub request_cut: u64,
    /// Connections stalled by `stall_*`.
    pub stalled: u64,
    /// `Range` headers removed.
    pub range_stripped: u64,
    /// Requests answered by the proxy with `status`.
    pub status_injected: u64,
    /// Upstream connects that failed or timed out.
    pub upstream_failed: u64,
    /// Client connections being relayed now (the ones `max_connections` counts).
    pub active: u64,
    /// Bytes written to clients.
    pub bytes_to_client: u64,
    /// Bytes written to the upstream.
    pub bytes_to_upstream: u64,
}

/// The live counters behind [`ProxyStats`].
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub reset: AtomicU64,
    pub hung: AtomicU64,
    pub cut: AtomicU64,
    pub request_cut: AtomicU64,
    pub stalled: AtomicU64,
    pub range_stripped: AtomicU64,
    pub status_injected: AtomicU64,
    pub upstream_failed: AtomicU64,
    pub active: AtomicU64,
    pub bytes_to_client: AtomicU64,
    pub bytes_to_upstream: AtomicU64,
}

/// `counter += n`, relaxed: counters order nothing.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub fn snapshot(&self) -> ProxyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            reset: get(&self.reset),
            hung: get(&self.hung),
            cut: get(&self.cut),
            request_cut: get(&self.request_cut),
            stalled: get(&self.stalled),
            range_stripped: get(&self.range_stripped),
            status_injected: get(&self.status_injected),
            upstream_failed: get(&self.upstream_failed),
            active: get(&self.active),
            bytes_to_client: get(&self.bytes_to_client),
            bytes_to_upstream: get(&self.bytes_to_upstream),
        }
    }
}

/// Counts one relayed connection in `active` for as long as it lives.
pub struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    /// Call only after the accept loop has incremented `active` (it must, to
    /// check the cap and count in one place without a race).
    pub fn adopt(active: &'a AtomicU64) -> Self {
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
