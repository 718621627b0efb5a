//! How a pusher retries, after dockerd (moby's `distribution/xfer/upload.go`
//! and `distribution/errors.go`, docs/clients.md "Pushes"): each blob up to
//! `attempts` times, `n x backoff` after failed attempt n, never after a
//! refusal the registry means (401, 429, `DENIED`, `UNSUPPORTED`,
//! `NAME_UNKNOWN`, a 4xx without a registry error body); and the registry
//! error code a failure is filed under.

use crate::net::{Fault, FaultClass};
use std::time::Duration;

/// A pusher's retry rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRules {
    /// Attempts per blob, the first included.
    pub attempts: u32,
    /// The pause after failed attempt n is n x this.
    pub backoff: Duration,
    /// After a failed PATCH, `GET` the upload URL and go on where it stands
    /// (the spec's resume) instead of starting the blob over.
    pub resume: bool,
}

impl PushRules {
    /// dockerd: 5 attempts, 5 s, 10 s, 15 s, 20 s apart, each from byte 0.
    pub const DOCKERD: PushRules = PushRules {
        attempts: 5,
        backoff: Duration::from_secs(5),
        resume: false,
    };

    /// `pullstorm seed`: resumes a cut upload at once, `attempts` tries in all.
    pub fn seed(attempts: u32) -> PushRules {
        PushRules {
            attempts,
            backoff: Duration::ZERO,
            resume: true,
        }
    }

    /// The pause after failed attempt `failed` (1 = the first).
    pub fn backoff_after(&self, failed: u32) -> Duration {
        self.backoff.saturating_mul(failed)
    }
}

/// Registry error codes dockerd never retries (`retryOnError`).
const FINAL_CODES: [&str; 5] = [
    "UNAUTHORIZED",
    "UNSUPPORTED",
    "DENIED",
    "TOOMANYREQUESTS",
    "NAME_UNKNOWN",
];

/// Whether a failed push step is tried again: transport faults and 5xx are;
/// a 4xx only with a registry error code that is not a refusal.
pub fn retryable(fault: &Fault) -> bool {
    match fault.class {
        // dockerd's client reads no error body for a 5xx: always retried.
        FaultClass::Http(500..=599) => true,
        FaultClass::Http(401 | 429) => false,
        FaultClass::Http(_) => match registry_code(fault) {
            Some(code) => !FINAL_CODES.contains(&code),
            // An unparsable 4xx body is `UnexpectedHTTPResponseError`: not retried.
            None => false,
        },
        FaultClass::ClientFdExhausted | FaultClass::Internal => false,
        _ => true,
    }
}

/// The first registry error code in a fault's detail (`... HTTP 404 BLOB_UPLOAD_UNKNOWN (...)`,
/// as `session::http_fault` writes it).
pub fn registry_code(fault: &Fault) -> Option<&str> {
    if !matches!(fault.class, FaultClass::Http(_)) {
        return None;
    }
    let (_, after) = fault.detail.rsplit_once(": HTTP ")?;
    let rest = after.split_once(' ')?.1;
    let end = rest
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    let code = &rest[..end];
    (!code.is_empty()).then_some(code)
}

/// What a push failure is filed under: the registry's code, else the fault class
/// (`http_502`, `connection_reset`, ...).
pub fn fault_code(fault: &Fault) -> String {
    registry_code(fault).map_or_else(|| fault.class.key(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Phase;
    use crate::oci::session::http_fault;
    use http::StatusCode;

    fn http(status: u16, body: &str) -> Fault {
        http_fault(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            Phase::Request,
            "PATCH /v2/a/blobs/uploads/x",
        )
    }

    fn errors(code: &str) -> String {
        format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#)
    }

    #[test]
    fn codes_come_from_the_registry_body() {
        let f = http(404, &errors("BLOB_UPLOAD_UNKNOWN"));
        assert_eq!(registry_code(&f), Some("BLOB_UPLOAD_UNKNOWN"));
        assert_eq!(fault_code(&f), "BLOB_UPLOAD_UNKNOWN");
        assert_eq!(
            fault_code(&http(502, "<html>bad gateway</html>")),
            "http_502"
        );
        let reset = Fault::new(FaultClass::ConnectionReset, Phase::Body, "PATCH: HTTP 1 X");
        assert_eq!(fault_code(&reset), "connection_reset");
    }

    #[test]
    fn retries_follow_dockerd() {
        for (fault, retried) in [
            (http(404, &errors("BLOB_UPLOAD_UNKNOWN")), true),
            (http(400, &errors("BLOB_UPLOAD_INVALID")), true),
            (http(400, &errors("DIGEST_INVALID")), true),
            (http(400, &errors("MANIFEST_INVALID")), true),
            (http(403, &errors("DENIED")), false),
            (http(404, &errors("NAME_UNKNOWN")), false),
            (http(405, &errors("UNSUPPORTED")), false),
            (http(429, &errors("TOOMANYREQUESTS")), false),
            (http(401, &errors("UNAUTHORIZED")), false),
            (http(400, "not json"), false),
            (http(500, &errors("UNKNOWN")), true),
            (http(503, ""), true),
            (
                Fault::new(FaultClass::UnexpectedEof, Phase::Body, "cut"),
                true,
            ),
            (
                Fault::new(FaultClass::ConnectionReset, Phase::Body, "cut"),
                true,
            ),
            (
                Fault::new(FaultClass::ClientFdExhausted, Phase::Connect, "emfile"),
                false,
            ),
        ] {
            assert_eq!(retryable(&fault), retried, "{}", fault.detail);
        }
    }

    #[test]
    fn dockerd_backs_off_linearly() {
        let d = PushRules::DOCKERD;
        let pauses: Vec<u64> = (1..5).map(|n| d.backoff_after(n).as_secs()).collect();
        assert_eq!(pauses, [5, 10, 15, 20]);
        assert_eq!(PushRules::seed(3).backoff_after(2), Duration::ZERO);
    }
}
