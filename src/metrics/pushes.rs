//! What the pushers did, counted by the recorder from their events: pushes,
//! blobs by how they reached the registry, bytes uploaded, requests per step,
//! retries and failures by registry error code. Latencies go to the
//! recorder's histograms (`push`, `upload`, `push_retry`).

use super::events::{BlobPush, UploadStep};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The pushers' counters.
#[derive(Debug, Clone, Default)]
pub struct PushTally {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub blobs_uploaded: u64,
    pub blobs_present: u64,
    pub blobs_mounted: u64,
    /// Bytes of blobs whose upload completed (`PUT ?digest=` 201).
    pub bytes_uploaded: u64,
    /// Requests that got a response, per step (`patch`, `put`, ...).
    pub requests: BTreeMap<&'static str, u64>,
    /// Failed steps the pusher tried again, by registry code or fault class.
    pub retries: BTreeMap<String, u64>,
    /// Failed steps, tried again or not, by registry code or fault class.
    pub faults: BTreeMap<String, u64>,
    /// From the first push's start to the last push's end.
    pub first_start: Option<Instant>,
    pub last_end: Option<Instant>,
}

impl PushTally {
    pub fn on_started(&mut self, now: Instant) {
        self.started += 1;
        self.first_start.get_or_insert(now);
    }

    pub fn on_done(&mut self, ok: bool, now: Instant) {
        if ok {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        self.last_end = Some(self.last_end.map_or(now, |t| t.max(now)));
    }

    pub fn on_request(&mut self, step: UploadStep) {
        *self.requests.entry(step.key()).or_default() += 1;
    }

    pub fn on_fault(&mut self, code: String, retried: bool) {
        if retried {
            *self.retries.entry(code.clone()).or_default() += 1;
        }
        *self.faults.entry(code).or_default() += 1;
    }

    pub fn on_blob(&mut self, how: BlobPush, bytes: u64) {
        match how {
            BlobPush::Uploaded => {
                self.blobs_uploaded += 1;
                self.bytes_uploaded += bytes;
            }
            BlobPush::Present => self.blobs_present += 1,
            BlobPush::Mounted => self.blobs_mounted += 1,
        }
    }

    /// Retries in all.
    pub fn retries_total(&self) -> u64 {
        self.retries.values().sum()
    }

    /// The time the pushers were at work; `None` before a push ended.
    pub fn active(&self) -> Option<Duration> {
        Some(self.last_end?.saturating_duration_since(self.first_start?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_step_code_and_blob() {
        let t0 = Instant::now();
        let mut t = PushTally::default();
        t.on_started(t0);
        t.on_started(t0 + Duration::from_secs(1));
        for step in [UploadStep::Patch, UploadStep::Patch, UploadStep::Put] {
            t.on_request(step);
        }
        t.on_fault("connection_reset".into(), true);
        t.on_fault("BLOB_UPLOAD_UNKNOWN".into(), true);
        t.on_fault("DENIED".into(), false);
        t.on_blob(BlobPush::Uploaded, 100);
        t.on_blob(BlobPush::Present, 0);
        t.on_blob(BlobPush::Mounted, 0);
        t.on_done(true, t0 + Duration::from_secs(5));
        t.on_done(false, t0 + Duration::from_secs(3));
        assert_eq!((t.started, t.completed, t.failed), (2, 1, 1));
        assert_eq!((t.requests["patch"], t.requests["put"]), (2, 1));
        assert_eq!(t.retries_total(), 2);
        assert_eq!(t.faults.len(), 3);
        assert_eq!(
            (t.blobs_uploaded, t.blobs_present, t.blobs_mounted),
            (1, 1, 1)
        );
        assert_eq!(t.bytes_uploaded, 100);
        assert_eq!(t.active(), Some(Duration::from_secs(5)));
        assert_eq!(PushTally::default().active(), None);
    }
}
