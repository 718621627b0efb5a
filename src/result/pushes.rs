//! `pushes` of result.json: what the CI runners of `[push]` did, from the
//! recorder's push tally (latencies are under `latency.push`, `latency.upload`
//! and `latency.push_retry`).

use crate::metrics::pushes::PushTally;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The pushers' figures; absent from a run without `[push] runners`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pushes {
    /// CI runners of the scenario, each pushing one image.
    pub runners: u32,
    pub started: u64,
    /// Pushes whose tag was accepted.
    pub completed: u64,
    /// Pushes given up (a blob out of attempts, a refusal, a manifest rejected).
    pub failed: u64,
    /// Started but stopped by the deadline or a signal.
    pub interrupted: u64,
    /// Bytes of blobs whose upload completed (`PUT ?digest=` answered 201); blobs
    /// present or mounted add nothing.
    pub bytes_uploaded: u64,
    /// `bytes_uploaded` over the time pushes were at work (first start to last end);
    /// null before any push ended.
    pub upload_bytes_per_sec: Option<f64>,
    pub blobs: PushBlobs,
    /// Push requests that got a response, per step: `head`, `post`, `patch`, `put`
    /// (`?digest=`), `status` (`GET` of a cut upload), `manifest`.
    pub requests: BTreeMap<String, u64>,
    /// Failed steps tried again, in all.
    pub retries: u64,
    /// Retries by what failed: the registry's error code (`BLOB_UPLOAD_UNKNOWN`,
    /// `BLOB_UPLOAD_INVALID`, `DIGEST_INVALID`...) or the fault class (`connection_reset`, `http_502`).
    pub retries_by_code: BTreeMap<String, u64>,
    /// Every failed step, retried or not, by the same keys.
    pub faults_by_code: BTreeMap<String, u64>,
}

/// How each blob of the pushes reached the registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PushBlobs {
    pub uploaded: u64,
    /// The registry had it already (`HEAD` 200).
    pub present: u64,
    /// Cross-repository mounts (`push.mount_from`).
    pub mounted: u64,
}

/// `pushes` from the recorder's tally; `None` when the scenario had no runners.
pub fn build(tally: &PushTally, runners: u32) -> Option<Pushes> {
    if runners == 0 {
        return None;
    }
    let seconds = tally.active().map(|d| d.as_secs_f64());
    Some(Pushes {
        runners,
        started: tally.started,
        completed: tally.completed,
        failed: tally.failed,
        interrupted: tally.started.saturating_sub(tally.completed + tally.failed),
        bytes_uploaded: tally.bytes_uploaded,
        upload_bytes_per_sec: seconds
            .filter(|s| *s > 0.0)
            .map(|s| (tally.bytes_uploaded as f64 / s).round()),
        blobs: PushBlobs {
            uploaded: tally.blobs_uploaded,
            present: tally.blobs_present,
            mounted: tally.blobs_mounted,
        },
        requests: tally
            .requests
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        retries: tally.retries_total(),
        retries_by_code: tally.retries.clone(),
        faults_by_code: tally.faults.clone(),
    })
}

/// The console line of a run with pushers.
pub fn summary_line(p: &Pushes) -> String {
    let h = crate::human::bytes;
    let rate = p
        .upload_bytes_per_sec
        .map_or("no data".to_string(), |r| format!("{}/s", h(r)));
    let mut line = format!(
        "pushes: {} of {} completed, {} failed, {} interrupted; {} uploaded ({rate}); blobs {} uploaded, {} present, {} mounted; {} retries",
        p.completed,
        p.started,
        p.failed,
        p.interrupted,
        h(p.bytes_uploaded as f64),
        p.blobs.uploaded,
        p.blobs.present,
        p.blobs.mounted,
        p.retries,
    );
    if !p.retries_by_code.is_empty() {
        let codes: Vec<String> = p
            .retries_by_code
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        line.push_str(&format!(" ({})", codes.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::events::{BlobPush, UploadStep};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn none_without_runners_and_figures_with_them() {
        assert_eq!(build(&PushTally::default(), 0), None);
        let t0 = Instant::now();
        let mut t = PushTally::default();
        for _ in 0..3 {
            t.on_started(t0);
        }
        t.on_blob(BlobPush::Uploaded, 4 << 20);
        t.on_request(UploadStep::Patch);
        t.on_fault("connection_reset".into(), true);
        t.on_done(true, t0 + Duration::from_secs(2));
        t.on_done(false, t0 + Duration::from_secs(1));
        let p = build(&t, 3).unwrap();
        assert_eq!(
            (p.started, p.completed, p.failed, p.interrupted),
            (3, 1, 1, 1)
        );
        assert_eq!(p.upload_bytes_per_sec, Some(2.0 * 1024.0 * 1024.0));
        assert_eq!((p.retries, p.requests["patch"]), (1, 1));
        let line = summary_line(&p);
        assert!(line.contains("1 retries (connection_reset 1)"), "{line}");
        // No push ended: the rate is no data, never 0.
        let mut t = PushTally::default();
        t.on_started(t0);
        let p = build(&t, 1).unwrap();
        assert_eq!(p.upload_bytes_per_sec, None);
        assert!(summary_line(&p).contains("(no data)"));
    }
}
