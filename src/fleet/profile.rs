//! Client profiles: the numbers and rules that make a simulated node behave
//! like dockerd or containerd (see docs/clients.md), with scenario overrides.

use crate::net::{FaultClass, Timeouts};
use crate::scenario::{ClientKind, ClientOverrides};
use std::time::Duration;

/// Who shares the download slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotScope {
    /// One pool per node, shared by all its pulls (dockerd's daemon-wide limit).
    Node,
    /// One pool per pull (containerd's per-image limit).
    Pull,
}

/// What to do when a Range request is answered with 200 and the whole blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeIgnored {
    /// Fail the attempt ("expected HTTP 206 from byte range request") and restart from byte 0.
    RestartAttempt,
    /// Read on, discarding the first `offset` bytes (containerd).
    DiscardPrefix,
}

/// A complete client profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub client: ClientKind,
    pub max_concurrent_downloads: u32,
    pub slot_scope: SlotScope,
    /// Attempts per layer, the first included.
    pub max_attempts: u32,
    /// Wait before attempt n+1 is `n x backoff` (dockerd), zero for none (containerd).
    #[serde(with = "millis")]
    pub backoff: Duration,
    pub range_ignored: RangeIgnored,
    /// Reopens at the offset after a short body, without progress in between, before the
    /// attempt counts as failed (containerd's `httpReadSeeker`).
    pub eof_reopens: u32,
    /// Retry a digest mismatch only when the failed attempt had resumed (dockerd).
    pub digest_retry_only_after_resume: bool,
    pub verify_digest: bool,
    #[serde(skip)]
    pub timeouts: Timeouts,
}

impl Profile {
    /// The profile of `client` with the scenario's overrides applied.
    pub fn new(client: ClientKind, o: &ClientOverrides) -> Profile {
        let mut p = match client {
            ClientKind::Dockerd => Profile {
                client,
                max_concurrent_downloads: 3,
                slot_scope: SlotScope::Node,
                max_attempts: 5,
                backoff: Duration::from_secs(5),
                range_ignored: RangeIgnored::RestartAttempt,
                eof_reopens: 0,
                digest_retry_only_after_resume: true,
                verify_digest: true,
                timeouts: Timeouts {
                    connect: Duration::from_secs(30),
                    // dockerd has no response-header timeout; a generous bound keeps runs finite.
                    response: Duration::from_secs(300),
                    stall: None,
                },
            },
            ClientKind::Containerd => Profile {
                client,
                max_concurrent_downloads: 3,
                slot_scope: SlotScope::Pull,
                max_attempts: 5,
                backoff: Duration::ZERO,
                range_ignored: RangeIgnored::DiscardPrefix,
                eof_reopens: 3,
                digest_retry_only_after_resume: false,
                verify_digest: true,
                timeouts: Timeouts {
                    connect: Duration::from_secs(30),
                    response: Duration::from_secs(30),
                    // image_pull_progress_timeout: 5 min without a byte.
                    stall: Some(Duration::from_secs(300)),
                },
            },
        };
        if let Some(v) = o.max_concurrent_downloads {
            p.max_concurrent_downloads = v.max(1);
        }
        if let Some(v) = o.max_attempts {
            p.max_attempts = v.max(1);
        }
        if let Some(v) = o.backoff {
            p.backoff = v.0;
        }
        if let Some(v) = o.verify_digest {
            p.verify_digest = v;
        }
        if let Some(v) = o.connect_timeout {
            p.timeouts.connect = v.0;
        }
        if let Some(v) = o.response_timeout {
            p.timeouts.response = v.0;
        }
        if let Some(v) = o.eof_reopens {
            p.eof_reopens = v;
        }
        if let Some(v) = o.stall_timeout {
            p.timeouts.stall = Some(v.0).filter(|d| !d.is_zero());
        }
        p
    }

    /// Whether a layer that failed with `class` is tried again (docs/clients.md, "The rules").
    pub fn retries(&self, class: FaultClass) -> bool {
        match self.client {
            // dockerd: 401/403, 429, 404 (BLOB_UNKNOWN, NAME_UNKNOWN) and every other unexpected
            // HTTP status end the layer at once; transport errors (resets, EOF, timeouts) retry.
            ClientKind::Dockerd => !matches!(class, FaultClass::Http(_)),
            // containerd: retried on 408, 429, 500, 502, 503, 504 and transport errors.
            ClientKind::Containerd => match class {
                FaultClass::Http(code) => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
                _ => true,
            },
        }
    }

    /// Wait before the attempt that follows failed attempt number `failed` (1-based).
    pub fn delay_after(&self, failed: u32) -> Duration {
        self.backoff * failed
    }
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::Span;

    #[test]
    fn dockerd_defaults_match_moby() {
        let p = Profile::new(ClientKind::Dockerd, &ClientOverrides::default());
        assert_eq!(
            (p.max_concurrent_downloads, p.max_attempts, p.slot_scope),
            (3, 5, SlotScope::Node)
        );
        let delays: Vec<u64> = (1..5).map(|n| p.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 15, 20]);
        assert!(!p.retries(FaultClass::Http(404)));
        assert!(!p.retries(FaultClass::Http(401)));
        assert!(!p.retries(FaultClass::Http(429)));
        assert!(!p.retries(FaultClass::Http(503)));
        assert!(p.retries(FaultClass::UnexpectedEof));
        assert!(p.retries(FaultClass::ConnectionReset));
        assert_eq!(p.range_ignored, RangeIgnored::RestartAttempt);
        assert_eq!(p.timeouts.stall, None);
    }

    #[test]
    fn containerd_defaults_and_overrides() {
        let p = Profile::new(ClientKind::Containerd, &ClientOverrides::default());
        assert_eq!((p.backoff, p.slot_scope), (Duration::ZERO, SlotScope::Pull));
        assert_eq!(p.eof_reopens, 3);
        assert!(p.retries(FaultClass::Http(429)));
        assert!(!p.retries(FaultClass::Http(404)));
        let o = ClientOverrides {
            max_attempts: Some(2),
            backoff: Some(Span(Duration::from_millis(100))),
            stall_timeout: Some(Span(Duration::ZERO)),
            ..Default::default()
        };
        let p = Profile::new(ClientKind::Containerd, &o);
        assert_eq!(
            (p.max_attempts, p.backoff, p.timeouts.stall),
            (2, Duration::from_millis(100), None)
        );
    }
}
