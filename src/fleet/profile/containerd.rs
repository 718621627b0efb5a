//! containerd's CRI pull path, release by release: the resolver and fetcher of
//! `remotes/docker` (1.x; `core/remotes/docker` in 2.x: `resolver.go` for the resolve
//! and the per-request resends, `fetcher.go` for a blob GET, `httpreadseeker.go` for
//! reopening a short body, `authorizer.go` and `auth/fetch.go` for the token), the
//! content store's ingests (`content/helpers.go`, `remotes/handlers.go`) and the CRI
//! plugin's limits. Rules and line numbers: docs/clients.md.

use super::{Profile, RangeIgnored, SlotScope, StatusRetry};
use crate::net::Timeouts;
use crate::oci::request::{Resends, CONTAINERD_ACCEPT_ENCODING};
use crate::oci::session::SessionRules;
use crate::scenario::{BackoffShape, ClientKind};
use std::time::Duration;

/// containerd 1.6 (the containerd on this project's machines, measured against it).
pub fn v1_6() -> Profile {
    Profile {
        client: ClientKind::Containerd1_6,
        // CRI `max_concurrent_downloads` = 3, one limiter per image pull (1.6 to 2.0).
        max_concurrent_downloads: 3,
        slot_scope: SlotScope::Pull,
        // No per-blob attempt loop: a failed blob fails the pull (remotes/handlers.go
        // `fetch`); the kubelet pulls again later.
        max_attempts: 1,
        backoff: Duration::ZERO,
        backoff_shape: BackoffShape::Linear,
        gets_per_failed_attempt: 1,
        // The config goes through the same handler and limiter as the layers.
        config_attempts: 1,
        config_backoff: Duration::ZERO,
        config_outside_slots: false,
        // Statuses are handled per request (`doWithRetries`), not per blob.
        status_retry: StatusRetry::Never,
        resume_failure_restarts: false,
        // fetcher.go `open`: a 2xx without Content-Range to a Range request has its
        // first `offset` bytes discarded.
        range_ignored: RangeIgnored::DiscardPrefix,
        // httpreadseeker.go: an `io.ErrUnexpectedEOF` reopens at the offset, at most
        // `maxRetry` = 3 times without progress; any other read error ends the blob.
        eof_reopens: 3,
        digest_retry_only_after_resume: false,
        verify_digest: true,
        // The resolver sends no `GET /v2/`; it authenticates on the HEAD's 401.
        ping: false,
        // pull.go / lease.go: a pull runs under a lease deleted when it returns, failed
        // or not, and the collector then removes its ingests: the kubelet's re-pull starts
        // cold (measured with containerd 1.6.20: manifest, config and layer from byte 0).
        keeps_partial_blobs: false,
        session: SessionRules {
            // resolver.go `retryRequest`: 408/429 again while `len(responses) <= 5`,
            // no 5xx ("TODO: Handle 50x errors").
            resends: Resends {
                max_responses: 6,
                server_errors: false,
            },
            // resolver.go `Resolve`: a HEAD whose status is > 299 ends the resolve
            // (only 405 becomes a GET, in `retryRequest`).
            head_only_resolve: true,
            // authorizer.go: with credentials, `FetchTokenWithOAuth` (a POST form).
            token_post: true,
            accept_encoding: None,
            // authorizer.go `AddResponses`: a 401 fetches a token; a 401 again is
            // resent with it, within the 6 responses.
            reauth_on_401: true,
        },
        // remotes/docker/config/hosts.go: Go's keep-alive transport, one per call of
        // the hosts function (the resolve apart), 2 idle per host, 30 s.
        connections: crate::net::ConnectionPolicy {
            model: crate::net::ConnectionModel::KeepAlive(crate::net::KeepAlive::GO),
            https_probe: crate::net::HttpsProbe::Off,
        },
        timeouts: Timeouts {
            // remotes/docker/config/hosts.go: dial 30 s.
            connect: Duration::from_secs(30),
            // No response-header timeout before 2.3; a generous bound keeps runs finite.
            response: Duration::from_secs(300),
            // No `image_pull_progress_timeout` in 1.6.
            stall: None,
        },
    }
}

/// containerd 1.7: 1.6 plus CRI's `image_pull_progress_timeout`.
pub fn v1_7() -> Profile {
    let mut p = v1_6();
    p.client = ClientKind::Containerd1_7;
    // pkg/cri/config: `image_pull_progress_timeout` = 5 min without a byte.
    p.timeouts.stall = Some(Duration::from_secs(300));
    p
}

/// containerd 2.2; what `containerd` means.
pub fn v2_2() -> Profile {
    let mut p = v1_7();
    p.client = ClientKind::Containerd2_2;
    // 2.1+: CRI pulls through the transfer service, one limit of 3 downloads per node.
    p.slot_scope = SlotScope::Node;
    // resolver.go `retryRequest` from 2.1: 500/503/504 again when the response before
    // had another status (once in a row), on the last host; 502 never.
    p.session.resends.server_errors = true;
    // fetcher.go `open` from 2.0.
    p.session.accept_encoding = Some(CONTAINERD_ACCEPT_ENCODING);
    // config/hosts.go `ConfigureHosts` (2.x default): a localhost registry on a port
    // other than 80/443 is tried over https first, once per transport (per pool).
    p.connections.https_probe = crate::net::HttpsProbe::PerPool;
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::session::{ErrorAnswer, ErrorBody};

    #[test]
    fn containerd_has_no_blob_attempts_and_resends_requests() {
        for p in [v1_6(), v1_7(), v2_2()] {
            assert_eq!((p.max_attempts, p.config_rules().max), (1, 1));
            assert_eq!(p.backoff, Duration::ZERO);
            assert!(!p.config_outside_slots && !p.resume_failure_restarts);
            assert_eq!(p.gets_per_failed_attempt, 1);
            assert_eq!(p.session.resends.max_responses, 6);
            assert!(p.session.head_only_resolve && p.session.token_post);
            assert!(!p.ping && !p.keeps_partial_blobs);
            assert_eq!(p.range_ignored, RangeIgnored::DiscardPrefix);
            assert_eq!(p.eof_reopens, 3);
            // Whatever the status, a blob attempt is not tried again.
            let answer = ErrorAnswer {
                status: 503,
                content_type: None,
                bearer_error: None,
                body: ErrorBody::Unparsed,
            };
            assert!(!p.retries_status(&answer));
            assert_eq!(p.timeouts.connect, Duration::from_secs(30));
        }
    }

    #[test]
    fn releases_differ_in_timeouts_slots_5xx_and_encoding() {
        let (a, b, c) = (v1_6(), v1_7(), v2_2());
        assert_eq!(a.timeouts.stall, None);
        assert_eq!(b.timeouts.stall, Some(Duration::from_secs(300)));
        assert_eq!(c.timeouts.stall, Some(Duration::from_secs(300)));
        assert_eq!(
            (a.slot_scope, b.slot_scope, c.slot_scope),
            (SlotScope::Pull, SlotScope::Pull, SlotScope::Node)
        );
        assert!(!a.session.resends.server_errors && !b.session.resends.server_errors);
        assert!(c.session.resends.server_errors);
        assert_eq!(a.session.accept_encoding, None);
        assert_eq!(b.session.accept_encoding, None);
        assert_eq!(c.session.accept_encoding, Some(CONTAINERD_ACCEPT_ENCODING));
        // No response-header timeout before 2.3: the bound is the generous one.
        for p in [&a, &b, &c] {
            assert_eq!(p.timeouts.response, Duration::from_secs(300));
        }
    }
}
