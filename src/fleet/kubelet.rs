//! The kubelet's re-pulls of an image whose pull failed (ImagePullBackOff). The image
//! back-off is 10 s doubling to 300 s, counted from the end of the failed pull, and has
//! no jitter of its own (`flowcontrol.NewBackOff(10s, 300s)`, pkg/kubelet/kubelet.go).
//! What spreads the nodes is the pod worker: after a failed sync it tries again after
//! `wait.Jitter(10s, 0.5)` (10 to 15 s, pkg/kubelet/pod_workers.go), and a sync inside
//! the back-off fails at once (ErrImagePullBackOff), so the image is pulled again at the
//! first re-sync at or after the back-off's end: 10-15 s, then 20-30 s, 40-52 s, ...
//! (docs/clients.md, "kubelet"). The draws are seeded per node from `run.seed`: a run
//! repeats.

use crate::scenario::{ClientKind, KubeletSection, PullRetries};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Duration;

/// One node's kubelet: how many re-pulls are left and how long each waits.
pub struct Kubelet {
    retries: PullRetries,
    first: Duration,
    cap: Duration,
    /// The pod worker's re-sync after a failed sync, and its jitter factor.
    resync: Duration,
    jitter: f64,
    rng: Xoshiro256PlusPlus,
}

impl Kubelet {
    /// The kubelet of node `node` of a run seeded `seed`, pulling with `client`.
    pub fn new(section: &KubeletSection, client: ClientKind, seed: u64, node: u32) -> Kubelet {
        Kubelet {
            retries: section.retries_for(client),
            first: section.pull_backoff.0,
            cap: section.max_pull_backoff.0,
            resync: section.resync.0,
            jitter: section.jitter.max(0.0),
            rng: Xoshiro256PlusPlus::seed_from_u64(mix(seed, node)),
        }
    }

    /// The wait before re-pull number `done + 1` of one planned pull, after `done`
    /// re-pulls already failed; `None` when the kubelet pulls no more.
    pub fn next_wait(&mut self, done: u32) -> Option<Duration> {
        if !self.retries.allows(done) {
            return None;
        }
        let base = backoff(self.first, self.cap, done);
        if self.resync.is_zero() {
            return Some(base);
        }
        // Re-syncs, each jittered, until one lands at or after the back-off's end.
        let mut waited = Duration::ZERO;
        while waited < base {
            let share = self.jitter * crate::random::unit(self.rng.next_u64());
            waited = waited.saturating_add(self.resync.mul_f64(1.0 + share));
        }
        Some(waited)
    }
}

/// The back-off before re-pull `done + 1`: `first` doubled `done` times, at most `cap`.
pub fn backoff(first: Duration, cap: Duration, done: u32) -> Duration {
    let doubled = first.saturating_mul(1u32.checked_shl(done.min(31)).unwrap_or(u32::MAX));
    doubled.min(cap.max(first))
}

/// A node's seed: the run's, mixed with the node's index (splitmix64).
fn mix(seed: u64, node: u32) -> u64 {
    crate::random::mix(seed ^ u64::from(node).wrapping_mul(crate::random::GOLDEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::Span;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn back_off_doubles_from_10_s_to_300_s() {
        let waits: Vec<u64> = (0..8)
            .map(|n| backoff(secs(10), secs(300), n).as_secs())
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(secs(10), secs(300), u32::MAX), secs(300));
    }

    /// A re-pull lands at the first pod-worker re-sync (10-15 s apart) at or after the
    /// back-off's end: never before it, less than one re-sync after it.
    #[test]
    fn each_re_pull_waits_for_the_first_re_sync_after_the_back_off_and_repeats_with_the_seed() {
        let section = KubeletSection::default();
        let mut a = Kubelet::new(&section, ClientKind::Containerd1_6, 7, 3);
        let waits: Vec<Duration> = (0..40).map(|n| a.next_wait(n).unwrap()).collect();
        for (n, w) in waits.iter().enumerate() {
            let base = backoff(secs(10), secs(300), n as u32);
            assert!(*w >= base && *w < base + secs(15), "{n}: {w:?}");
        }
        // The first: one re-sync of 10 to 15 s; the second: two of them (20 to 30 s).
        assert!(
            waits[0] >= secs(10) && waits[0] < secs(15),
            "{:?}",
            waits[0]
        );
        assert!(
            waits[1] >= secs(20) && waits[1] < secs(30),
            "{:?}",
            waits[1]
        );
        // Spread, not lockstep: over 40 waits the overshoot covers most of a re-sync.
        let over: Vec<f64> = waits
            .iter()
            .enumerate()
            .map(|(n, w)| (*w - backoff(secs(10), secs(300), n as u32)).as_secs_f64())
            .collect();
        assert!(
            over.iter().any(|s| *s < 3.0) && over.iter().any(|s| *s > 8.0),
            "{over:?}"
        );
        // The same seed and node give the same waits; another node other ones.
        let mut again = Kubelet::new(&section, ClientKind::Containerd1_6, 7, 3);
        let repeated: Vec<Duration> = (0..40).map(|n| again.next_wait(n).unwrap()).collect();
        assert_eq!(waits, repeated);
        let mut other = Kubelet::new(&section, ClientKind::Containerd1_6, 7, 4);
        assert_ne!(other.next_wait(0), Some(waits[0]));
        let mut reseeded = Kubelet::new(&section, ClientKind::Containerd1_6, 8, 3);
        assert_ne!(reseeded.next_wait(0), Some(waits[0]));
    }

    /// On by default for containerd (unlimited), off for dockerd; a count or 0 when set.
    #[test]
    fn re_pulls_by_client_and_as_set() {
        let section = KubeletSection::default();
        let mut containerd = Kubelet::new(&section, ClientKind::Containerd2_2, 0, 0);
        assert!(containerd.next_wait(1_000_000).is_some());
        let mut dockerd = Kubelet::new(&section, ClientKind::Dockerd27, 0, 0);
        assert_eq!(dockerd.next_wait(0), None);
        let two = KubeletSection {
            pull_retries: Some(PullRetries::Count(2)),
            pull_backoff: Span(Duration::from_millis(100)),
            resync: Span(Duration::ZERO),
            ..KubeletSection::default()
        };
        for client in [ClientKind::Dockerd20_10, ClientKind::Containerd1_6] {
            let mut k = Kubelet::new(&two, client, 0, 0);
            let waits: Vec<Option<u128>> = (0..3)
                .map(|n| k.next_wait(n).map(|d| d.as_millis()))
                .collect();
            assert_eq!(waits, [Some(100), Some(200), None], "{client}");
        }
        let off = KubeletSection {
            pull_retries: Some(PullRetries::Count(0)),
            ..KubeletSection::default()
        };
        assert_eq!(
            Kubelet::new(&off, ClientKind::Containerd1_6, 0, 0).next_wait(0),
            None
        );
    }
}
