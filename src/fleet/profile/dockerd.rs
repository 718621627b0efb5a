//! The Docker daemon's pull, release by release: moby's `distribution/` package
//! (`distribution/xfer/download.go` for attempts, `distribution/pull_v2.go` for one
//! layer's requests, `distribution/errors.go` for what is retried) over the registry
//! client it vendors (`vendor/github.com/docker/distribution/registry/client/`).
//! Rules and line numbers: docs/clients.md.

use super::{Profile, RangeIgnored, SlotScope, StatusRetry};
use crate::net::Timeouts;
use crate::oci::request::Resends;
use crate::oci::session::{ErrorAnswer, ErrorBody, SessionRules};
use crate::scenario::{BackoffShape, ClientKind};
use std::time::Duration;

/// Docker 20.10 (the daemon on this project's machines, measured against it).
pub fn v20_10() -> Profile {
    Profile {
        client: ClientKind::Dockerd20_10,
        // xfer/download.go `maxDownloadAttempts = 5`, but the loop gives up only once
        // `retries > 5`: 6 attempts, waiting `retries x 5 s` (5, 10, 15, 20, 25 s).
        max_attempts: 6,
        status_retry: StatusRetry::Moby20_10,
        ..v27()
    }
}

/// Docker 27 (moby 24 to 28 pull alike); what `dockerd` means.
pub fn v27() -> Profile {
    Profile {
        client: ClientKind::Dockerd27,
        // daemon config `max-concurrent-downloads` = 3, per daemon.
        max_concurrent_downloads: 3,
        slot_scope: SlotScope::Node,
        // xfer/download.go: `attempt >= maxDownloadAttempts` (5), waiting `attempt x 5 s`.
        max_attempts: 5,
        backoff: Duration::from_secs(5),
        backoff_shape: BackoffShape::Linear,
        // pull_v2.go `Download`: `Seek(0, io.SeekEnd)` GETs for the size and its error
        // is swallowed ("perhaps because there was no Content-Length"); `io.Copy`
        // then GETs again and that error is the attempt's.
        gets_per_failed_attempt: 2,
        // pull_v2.go `pullSchema2Config`: `retry(ctx, 5, 250ms)`, doubling, each a
        // fresh `blobs.Get` from byte 0, in its own goroutine beside the layers.
        config_attempts: 5,
        config_backoff: Duration::from_millis(250),
        config_outside_slots: true,
        status_retry: StatusRetry::Moby27,
        // pull_v2.go: an error of the resumed `Seek(offset)` truncates the file and is
        // returned without `retryOnError`, so it is retried whatever the status.
        resume_failure_restarts: true,
        // transport/http_reader.go: a non-206 answer to a Range is
        // `ErrWrongCodeForByteRange`; pull_v2.go truncates and uses the attempt up.
        range_ignored: RangeIgnored::RestartAttempt,
        eof_reopens: 0,
        // pull_v2.go: a verification failure is retried only `if offset != 0`.
        digest_retry_only_after_resume: true,
        verify_digest: true,
        // registry/auth.go `PingV2Registry`: any status is accepted.
        ping: true,
        // A failed pull's temp files are removed (xfer/download.go).
        keeps_partial_blobs: false,
        // No resend of a request; HEAD then GET on the tag; token by GET with Basic.
        // auth/session.go: only the ping's 401 is recorded, and a token is fetched
        // again only when it expires: a 401 on any other request is the answer.
        session: SessionRules {
            resends: Resends::NONE,
            head_only_resolve: false,
            token_post: false,
            accept_encoding: None,
            reauth_on_401: false,
        },
        // distribution/registry.go: `DisableKeepAlives: true` (20.10 to 28.x), and
        // registry/service_v2.go: an insecure registry is tried over https first.
        connections: crate::net::ConnectionPolicy {
            model: crate::net::ConnectionModel::Close { header: true },
            https_probe: crate::net::HttpsProbe::PerPull,
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(30),
            // dockerd has no response-header timeout; a generous bound keeps runs finite.
            response: Duration::from_secs(300),
            // No timeout on a blob body.
            stall: None,
        },
    }
}

/// The moby releases whose error rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moby {
    V20_10,
    V27,
}

/// Error codes `retryOnError` wraps in `DoNotRetry` (distribution/errors.go).
const NOT_RETRIED: [&str; 5] = [
    "UNAUTHORIZED",
    "UNSUPPORTED",
    "DENIED",
    "TOOMANYREQUESTS",
    "NAME_UNKNOWN",
];

/// The error moby's registry client makes of an error response.
#[derive(Debug, PartialEq, Eq)]
enum ClientError {
    /// An `errcode.Error` with this code (an unknown code reads as `UNKNOWN`).
    Code(String),
    /// `UnexpectedHTTPResponseError`: a 4xx body without an error code; not retried.
    UnexpectedResponse,
}

/// Whether a layer whose GET was answered with this error is tried again:
/// `retryOnError` (distribution/errors.go) over the error `HandleErrorResponse`
/// (registry/client/errors.go) makes of the response.
pub fn retries_status(release: Moby, a: &ErrorAnswer) -> bool {
    match a.status {
        // registry/client/repository.go `blobs.Open`: a 404 is `ErrBlobUnknown`, not retried.
        404 => false,
        400..=499 => {
            // An OAuth `error` in a Bearer challenge comes first: invalid_token is
            // UNAUTHORIZED, insufficient_scope DENIED, neither retried.
            if matches!(
                a.bearer_error.as_deref(),
                Some("invalid_token" | "insufficient_scope")
            ) {
                return false;
            }
            // Measured on the machine's daemon (Debian's 20.10.24+dfsg1, which builds against
            // Debian's own docker/distribution): a blob GET answered 401, 408 or 429 with a
            // JSON error body (UNAUTHORIZED, UNKNOWN, TOOMANYREQUESTS) is retried like a 5xx:
            // 12 GETs over 75 s for a layer, 5 for the config (tests/integration/
            // conformance.rs). The upstream source would stop on UNAUTHORIZED and
            // TOOMANYREQUESTS; the profile follows the daemon that runs (docs/clients.md).
            if release == Moby::V20_10 && matches!(a.body, ErrorBody::Codes(_)) {
                return true;
            }
            match client_error(release, a) {
                ClientError::Code(code) => !NOT_RETRIED.contains(&code.as_str()),
                ClientError::UnexpectedResponse => false,
            }
        }
        // `UnexpectedHTTPStatusError`: every 5xx, retried.
        _ => true,
    }
}

/// What `parseHTTPErrorResponse` (registry/client/errors.go) makes of a 4xx.
fn client_error(release: Moby, a: &ErrorAnswer) -> ClientError {
    if release == Moby::V27 {
        // 27 reads the body as JSON only when the Content-Type says so; otherwise the
        // error is made from the status alone (`makeError`).
        let json = matches!(
            a.content_type.as_deref(),
            Some("application/json" | "application/vnd.api+json")
        );
        if !json {
            return code_of_status(release, a.status);
        }
    }
    match &a.body {
        // `{"details": ...}`: the error is made from the status.
        ErrorBody::Details => code_of_status(release, a.status),
        ErrorBody::Codes(codes) => ClientError::Code(codes[0].clone()),
        // A 401 without an error code is still UNAUTHORIZED (`HandleErrorResponse`).
        ErrorBody::Unparsed if a.status == 401 => ClientError::Code("UNAUTHORIZED".into()),
        ErrorBody::Unparsed => ClientError::UnexpectedResponse,
    }
}

/// `makeError`: 401 UNAUTHORIZED, 403 DENIED (27 only), 429 TOOMANYREQUESTS, else UNKNOWN.
fn code_of_status(release: Moby, status: u16) -> ClientError {
    let code = match (status, release) {
        (401, _) => "UNAUTHORIZED",
        (403, Moby::V27) => "DENIED",
        (429, _) => "TOOMANYREQUESTS",
        _ => "UNKNOWN",
    };
    ClientError::Code(code.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ClientOverrides;

    fn answer(status: u16, content_type: Option<&str>, body: ErrorBody) -> ErrorAnswer {
        ErrorAnswer {
            status,
            content_type: content_type.map(str::to_string),
            bearer_error: None,
            body,
        }
    }

    fn json(status: u16, code: &str) -> ErrorAnswer {
        answer(
            status,
            Some("application/json"),
            ErrorBody::Codes(vec![code.into()]),
        )
    }

    fn html(status: u16) -> ErrorAnswer {
        answer(status, Some("text/html"), ErrorBody::Unparsed)
    }

    const BOTH: [Moby; 2] = [Moby::V20_10, Moby::V27];

    #[test]
    fn every_5xx_is_retried_whatever_its_body() {
        for release in BOTH {
            for status in [500, 501, 502, 503, 504, 599] {
                assert!(retries_status(release, &json(status, "UNAVAILABLE")));
                assert!(retries_status(release, &html(status)), "{status}");
                assert!(retries_status(
                    release,
                    &answer(status, None, ErrorBody::Unparsed)
                ));
            }
        }
    }

    /// As the machine's daemon does (conformance matrix): a coded 401 or 429 on a blob
    /// is retried by 20.10 like a 5xx; 27 stops on them, as its source says.
    #[test]
    fn dockerd_20_10_retries_a_coded_401_and_429_and_27_does_not() {
        for code in [
            (401, "UNAUTHORIZED"),
            (429, "TOOMANYREQUESTS"),
            (403, "DENIED"),
        ] {
            assert!(retries_status(Moby::V20_10, &json(code.0, code.1)));
            assert!(!retries_status(Moby::V27, &json(code.0, code.1)));
        }
        assert!(!retries_status(Moby::V20_10, &json(404, "BLOB_UNKNOWN")));
    }

    #[test]
    fn auth_rate_limits_and_unknown_names_are_not_retried() {
        assert!(!retries_status(Moby::V27, &json(401, "UNAUTHORIZED")));
        assert!(!retries_status(Moby::V27, &json(403, "DENIED")));
        assert!(!retries_status(Moby::V27, &json(429, "TOOMANYREQUESTS")));
        assert!(!retries_status(Moby::V27, &json(400, "UNSUPPORTED")));
        assert!(!retries_status(Moby::V27, &json(400, "NAME_UNKNOWN")));
        for release in BOTH {
            assert!(!retries_status(release, &json(404, "BLOB_UNKNOWN")));
            assert!(!retries_status(release, &json(404, "NAME_UNKNOWN")));
            assert!(
                !retries_status(release, &html(404)),
                "any 404 is ErrBlobUnknown"
            );
            // A 401 without a code is UNAUTHORIZED.
            assert!(!retries_status(release, &html(401)));
            let mut scoped = json(403, "SOMETHING");
            scoped.bearer_error = Some("insufficient_scope".into());
            assert!(!retries_status(release, &scoped));
        }
    }

    #[test]
    fn a_4xx_with_an_error_code_it_does_not_stop_for_is_retried() {
        for release in BOTH {
            assert!(retries_status(release, &json(408, "REQUEST_TIMEOUT")));
            assert!(retries_status(release, &json(400, "DIGEST_INVALID")));
            // A 429 whose code is not TOOMANYREQUESTS: the code decides.
            assert!(retries_status(release, &json(429, "UNKNOWN")));
            // `{"details": ...}` on a 408 is UNKNOWN.
            let details = answer(408, Some("application/json"), ErrorBody::Details);
            assert!(retries_status(release, &details));
            // ... but on a 429 TOOMANYREQUESTS.
            let details = answer(429, Some("application/json"), ErrorBody::Details);
            assert!(!retries_status(release, &details));
        }
    }

    /// 20.10 parses any body; one without an error code is `UnexpectedHTTPResponseError`,
    /// never retried. 27 decides from the Content-Type: not JSON is made from the status
    /// (UNKNOWN, retried, except 401/403/429).
    #[test]
    fn a_4xx_without_json_differs_between_releases() {
        for status in [400, 408, 409, 418] {
            assert!(!retries_status(Moby::V20_10, &html(status)), "{status}");
            assert!(retries_status(Moby::V27, &html(status)), "{status}");
            let bare = answer(status, None, ErrorBody::Unparsed);
            assert!(!retries_status(Moby::V20_10, &bare));
            assert!(retries_status(Moby::V27, &bare));
        }
        for status in [403, 429] {
            assert!(!retries_status(Moby::V20_10, &html(status)));
            assert!(!retries_status(Moby::V27, &html(status)));
        }
        // JSON declared, without errors: unexpected in both.
        let empty = answer(408, Some("application/json"), ErrorBody::Unparsed);
        assert!(!retries_status(Moby::V20_10, &empty));
        assert!(!retries_status(Moby::V27, &empty));
        // 20.10 reads a JSON body whatever its Content-Type; 27 does not.
        let mislabelled = answer(408, Some("text/plain"), ErrorBody::Codes(vec!["X".into()]));
        assert!(retries_status(Moby::V20_10, &mislabelled));
        let mislabelled = answer(
            401,
            Some("text/plain"),
            ErrorBody::Codes(vec!["UNKNOWN".into()]),
        );
        assert!(retries_status(Moby::V20_10, &mislabelled));
        assert!(!retries_status(Moby::V27, &mislabelled));
    }

    #[test]
    fn dockerd_20_10_makes_6_attempts_and_27_makes_5() {
        let old = v20_10();
        let new = v27();
        assert_eq!((old.max_attempts, new.max_attempts), (6, 5));
        let waits = |p: &Profile| -> Vec<u64> {
            (1..p.max_attempts)
                .map(|n| p.delay_after(n).as_secs())
                .collect()
        };
        assert_eq!(waits(&old), [5, 10, 15, 20, 25]);
        assert_eq!(waits(&new), [5, 10, 15, 20]);
        // A 503 for ever on 20.10: 2 GETs per attempt at 0, 5, 15, 30, 50, 75 s.
        let mut at = 0;
        let mut starts = vec![0];
        for n in 1..old.max_attempts {
            at += old.delay_after(n).as_secs();
            starts.push(at);
        }
        assert_eq!(starts, [0, 5, 15, 30, 50, 75]);
        assert_eq!(old.gets_per_failed_attempt * old.max_attempts, 12);
    }

    #[test]
    fn dockerd_requests_and_slots() {
        for p in [v20_10(), v27()] {
            assert_eq!(
                (p.max_concurrent_downloads, p.slot_scope),
                (3, SlotScope::Node)
            );
            assert!(p.config_outside_slots);
            let config = p.config_rules();
            assert_eq!((config.max, config.resume), (5, false));
            let waits: Vec<u128> = (1..5).map(|n| config.delay_after(n).as_millis()).collect();
            assert_eq!(waits, [250, 500, 1000, 2000]);
            assert!(p.resume_failure_restarts && p.digest_retry_only_after_resume);
            assert_eq!(p.range_ignored, RangeIgnored::RestartAttempt);
            assert!(p.ping && !p.keeps_partial_blobs);
            assert_eq!(p.session.resends, Resends::NONE);
            assert!(!p.session.head_only_resolve && !p.session.token_post);
            assert_eq!(p.session.accept_encoding, None);
            assert_eq!(p.timeouts.stall, None);
            assert_eq!(p.eof_reopens, 0);
        }
        let p = Profile::new(ClientKind::Dockerd20_10, &ClientOverrides::default());
        assert!(p.retries_status(&json(503, "UNAVAILABLE")));
        assert!(!p.retries_status(&html(408)));
        let p = Profile::new(ClientKind::Dockerd27, &ClientOverrides::default());
        assert!(p.retries_status(&html(408)));
    }
}
