//! Per-node bandwidth cap shared by the node's connections (`fleet.node_bandwidth`).
//!
//! A virtual clock (GCRA): each chunk books `len / rate` seconds on the node's
//! link, and the reader sleeps until its booking starts. Reading slower makes
//! the kernel's receive window do the rest, so the server sees a slow client,
//! as it would with a real node on a slow link.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A shared link of fixed capacity.
#[derive(Debug)]
pub struct Bandwidth {
    bytes_per_sec: f64,
    /// The instant at which the link is free again.
    free_at: Mutex<Instant>,
}

/// Bursts up to this much time's worth of bytes pass without waiting.
const BURST: Duration = Duration::from_millis(50);

impl Bandwidth {
    pub fn new(bytes_per_sec: u64) -> Self {
        Bandwidth {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Books `len` bytes on the link and waits until they may be taken.
    pub async fn take(&self, len: usize) {
        let cost = Duration::from_secs_f64(len as f64 / self.bytes_per_sec);
        let now = Instant::now();
        let start = {
            let mut free_at = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
            // An idle link does not bank credit beyond the burst.
            let start = (*free_at).max(now.checked_sub(BURST).unwrap_or(now));
            *free_at = start + cost;
            start
        };
        let wait_until = start + cost;
        if wait_until > now + BURST {
            tokio::time::sleep_until(wait_until - BURST).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shared_link_holds_its_rate() {
        let link = std::sync::Arc::new(Bandwidth::new(1_000_000));
        let started = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let link = link.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    link.take(10_000).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 4 x 50 x 10 kB = 2 MB at 1 MB/s: about 2 s, less the burst allowance.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
