//! Client profiles: the numbers and rules that make a simulated node pull like one
//! release of dockerd or containerd (docs/clients.md lists them with their sources),
//! with a scenario's `[client]` overrides applied.
//!
//! One constructor per release, in [`dockerd`] and [`containerd`]; each rule there
//! names the upstream file it comes from. This module holds what the rules are made of
//! and the decisions the download code asks for.

pub mod containerd;
pub mod dockerd;

use crate::net::Timeouts;
use crate::oci::session::{ErrorAnswer, SessionRules};
use crate::scenario::{BackoffShape, ClientKind, ClientOverrides};
use std::time::Duration;

/// Who shares the download slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotScope {
    /// One pool per node, shared by all its pulls (dockerd's daemon-wide limit,
    /// containerd 2.1+'s transfer service).
    Node,
    /// One pool per pull (containerd 1.6-2.0's per-image limit).
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

/// Which HTTP error statuses a failed blob attempt tries again for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusRetry {
    /// moby 20.10's `retryOnError` over its registry client's errors.
    Moby20_10,
    /// moby 24 and later: the same, the error decided by the Content-Type first.
    Moby27,
    /// None: containerd has no per-blob attempt loop (its per-request resends are in
    /// [`SessionRules`]).
    Never,
}

/// The attempts of one kind of blob: how many, the pause between them, whether the
/// next one resumes with Range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// The first included.
    pub max: u32,
    pub backoff: Duration,
    pub shape: BackoffShape,
    /// The next attempt asks for the rest (`Range`); otherwise it starts from byte 0.
    pub resume: bool,
    /// GETs an attempt from byte 0 sends when its request fails before any body byte.
    pub gets_per_failure: u32,
}

impl Attempts {
    /// Wait before the attempt that follows failed attempt number `failed` (1-based).
    pub fn delay_after(&self, failed: u32) -> Duration {
        match self.shape {
            BackoffShape::Linear => self.backoff.saturating_mul(failed),
            BackoffShape::Doubling => {
                let doublings = failed.saturating_sub(1).min(31);
                self.backoff.saturating_mul(1 << doublings)
            }
        }
    }
}

/// A complete client profile, serialized into result.json as `fleet.profile`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    /// The release imitated (`dockerd-27`, `containerd-1.6`, ...).
    pub client: ClientKind,
    pub max_concurrent_downloads: u32,
    pub slot_scope: SlotScope,
    /// Attempts per layer, the first included.
    pub max_attempts: u32,
    /// The backoff unit between a layer's attempts.
    #[serde(with = "millis")]
    pub backoff: Duration,
    pub backoff_shape: BackoffShape,
    /// GETs an attempt from byte 0 sends when its request fails before any body byte:
    /// dockerd's first GET (for the size) has its error swallowed, then the read GETs again.
    pub gets_per_failed_attempt: u32,
    /// Attempts for the image config blob, the first included; for dockerd outside the
    /// download slots, each from byte 0, pauses doubling from `config_backoff`.
    pub config_attempts: u32,
    #[serde(with = "millis")]
    pub config_backoff: Duration,
    /// The config blob bypasses the download slots (dockerd).
    pub config_outside_slots: bool,
    pub status_retry: StatusRetry,
    /// Any failure of a resumed request (an error status, a refused connection, a 200
    /// or a bad `Content-Range`) throws the partial layer away and is tried again from
    /// byte 0, whatever the status (dockerd, pull_v2.go).
    pub resume_failure_restarts: bool,
    pub range_ignored: RangeIgnored,
    /// Reopens at the offset after a short body, without progress in between, before the
    /// attempt counts as failed (containerd's `httpReadSeeker`).
    pub eof_reopens: u32,
    /// Retry a digest mismatch only when the failed attempt had resumed (dockerd).
    pub digest_retry_only_after_resume: bool,
    pub verify_digest: bool,
    /// `GET /v2/` before each pull (dockerd); containerd authenticates on the HEAD's 401.
    pub ping: bool,
    /// A failed pull leaves its partial blobs, finished blobs and manifest behind, and
    /// the kubelet's next pull resumes from them (containerd's content store).
    pub keeps_partial_blobs: bool,
    /// A pull's requests: resends, resolve, token, Accept-Encoding.
    pub session: SessionRules,
    /// How the release opens connections (docs/clients.md, "Connections"); `[client]
    /// connections` and `https_probe` override it.
    #[serde(skip)]
    pub connections: crate::net::ConnectionPolicy,
    #[serde(skip)]
    pub timeouts: Timeouts,
}

impl Profile {
    /// The profile of `client` with the scenario's overrides applied.
    pub fn new(client: ClientKind, o: &ClientOverrides) -> Profile {
        let mut p = match client {
            ClientKind::Dockerd20_10 => dockerd::v20_10(),
            ClientKind::Dockerd27 => dockerd::v27(),
            ClientKind::Containerd1_6 => containerd::v1_6(),
            ClientKind::Containerd1_7 => containerd::v1_7(),
            ClientKind::Containerd2_2 => containerd::v2_2(),
        };
        p.apply(o);
        p
    }

    fn apply(&mut self, o: &ClientOverrides) {
        if let Some(v) = o.max_concurrent_downloads {
            self.max_concurrent_downloads = v.max(1);
        }
        if let Some(v) = o.max_attempts {
            self.max_attempts = v.max(1);
        }
        if let Some(v) = o.backoff {
            self.backoff = v.0;
        }
        if let Some(v) = o.backoff_shape {
            self.backoff_shape = v;
        }
        if let Some(v) = o.gets_per_failed_attempt {
            self.gets_per_failed_attempt = v.max(1);
        }
        if let Some(v) = o.config_attempts {
            self.config_attempts = v.max(1);
        }
        if let Some(v) = o.config_backoff {
            self.config_backoff = v.0;
        }
        if let Some(v) = o.request_retries {
            self.session.resends.max_responses = v.saturating_add(1);
        }
        if let Some(v) = o.verify_digest {
            self.verify_digest = v;
        }
        if let Some(v) = o.keep_partial_blobs {
            self.keeps_partial_blobs = v;
        }
        if let Some(v) = o.connect_timeout {
            self.timeouts.connect = v.0;
        }
        if let Some(v) = o.response_timeout {
            self.timeouts.response = v.0;
        }
        if let Some(v) = o.eof_reopens {
            self.eof_reopens = v;
        }
        if let Some(v) = o.stall_timeout {
            self.timeouts.stall = Some(v.0).filter(|d| !d.is_zero());
        }
    }

    /// A layer's attempts.
    pub fn layer_rules(&self) -> Attempts {
        Attempts {
            max: self.max_attempts,
            backoff: self.backoff,
            shape: self.backoff_shape,
            resume: true,
            gets_per_failure: self.gets_per_failed_attempt,
        }
    }

    /// The image config's attempts: dockerd's own (outside the slots, no resume, pauses
    /// doubling); containerd fetches it as a layer.
    pub fn config_rules(&self) -> Attempts {
        if self.config_outside_slots {
            Attempts {
                max: self.config_attempts,
                backoff: self.config_backoff,
                shape: BackoffShape::Doubling,
                resume: false,
                // `blobs.Get` reads with one GET.
                gets_per_failure: 1,
            }
        } else {
            Attempts {
                max: self.config_attempts,
                ..self.layer_rules()
            }
        }
    }

    /// Whether a blob attempt that failed with this HTTP error is tried again.
    pub fn retries_status(&self, answer: &ErrorAnswer) -> bool {
        match self.status_retry {
            StatusRetry::Moby20_10 => dockerd::retries_status(dockerd::Moby::V20_10, answer),
            StatusRetry::Moby27 => dockerd::retries_status(dockerd::Moby::V27, answer),
            StatusRetry::Never => false,
        }
    }

    /// Wait before the layer attempt that follows failed attempt number `failed` (1-based).
    pub fn delay_after(&self, failed: u32) -> Duration {
        self.layer_rules().delay_after(failed)
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
    fn backoff_shapes() {
        let linear = Attempts {
            max: 6,
            backoff: Duration::from_secs(5),
            shape: BackoffShape::Linear,
            resume: true,
            gets_per_failure: 2,
        };
        let waits: Vec<u64> = (1..6).map(|n| linear.delay_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 15, 20, 25]);
        let doubling = Attempts {
            backoff: Duration::from_millis(250),
            shape: BackoffShape::Doubling,
            ..linear
        };
        let waits: Vec<u128> = (1..5)
            .map(|n| doubling.delay_after(n).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000]);
        // No overflow however many attempts a scenario asks for.
        assert!(doubling.delay_after(u32::MAX) > Duration::from_secs(1));
        assert!(linear.delay_after(u32::MAX) > Duration::from_secs(1));
    }

    #[test]
    fn every_number_can_be_overridden() {
        let o = ClientOverrides {
            max_concurrent_downloads: Some(7),
            max_attempts: Some(2),
            backoff: Some(Span(Duration::from_millis(100))),
            backoff_shape: Some(BackoffShape::Doubling),
            gets_per_failed_attempt: Some(1),
            config_attempts: Some(3),
            config_backoff: Some(Span(Duration::from_millis(10))),
            request_retries: Some(2),
            keep_partial_blobs: None,
            connections: None,
            https_probe: None,
            verify_digest: Some(false),
            connect_timeout: Some(Span(Duration::from_secs(3))),
            response_timeout: Some(Span(Duration::from_secs(4))),
            stall_timeout: Some(Span(Duration::ZERO)),
            eof_reopens: Some(9),
        };
        for client in ClientKind::ALL {
            let p = Profile::new(client, &o);
            assert_eq!(
                (p.max_concurrent_downloads, p.max_attempts, p.backoff),
                (7, 2, Duration::from_millis(100)),
                "{client}"
            );
            assert_eq!(p.backoff_shape, BackoffShape::Doubling);
            assert_eq!((p.gets_per_failed_attempt, p.config_attempts), (1, 3));
            assert_eq!(p.config_rules().max, 3, "{client}");
            assert_eq!(p.session.resends.max_responses, 3, "{client}");
            assert!(!p.verify_digest);
            assert_eq!(p.timeouts.connect, Duration::from_secs(3));
            assert_eq!(p.timeouts.response, Duration::from_secs(4));
            assert_eq!((p.timeouts.stall, p.eof_reopens), (None, 9));
        }
    }

    /// The bare names are the newest releases modelled, and the profile says which.
    #[test]
    fn bare_names_resolve_to_a_release() {
        #[derive(serde::Deserialize)]
        struct Fleet {
            client: ClientKind,
        }
        let parse =
            |name: &str| toml::from_str::<Fleet>(&format!("client = \"{name}\"")).map(|f| f.client);
        assert_eq!(parse("dockerd").unwrap(), ClientKind::Dockerd27);
        assert_eq!(parse("containerd").unwrap(), ClientKind::Containerd2_2);
        for client in ClientKind::ALL {
            assert_eq!(parse(client.name()).unwrap(), client);
            let json =
                serde_json::to_value(Profile::new(client, &ClientOverrides::default())).unwrap();
            assert_eq!(json["client"], client.name());
        }
        assert!(parse("containerd-1.5").is_err());
    }
}
