//! The `status` fault of the embedded registry: answer one kind of request (ping, token,
//! manifest, config, layer, any blob) with an HTTP error status and the body a registry,
//! or the load balancer in front of it, sends with that status; and the checks every
//! fault setting must pass, shared by scenario files and `pullstorm serve` flags.
//!
//! The bodies (see [`error_body`]) are what decides some clients' next move: dockerd
//! retries a 4xx whose JSON error code it does not know but not one with a body that is
//! not JSON, and gives up at once on `TOOMANYREQUESTS`, `BLOB_UNKNOWN` or `UNAUTHORIZED`.

use super::request_log::RequestKind;
use crate::scenario::{FaultTarget, Faults};
use http::StatusCode;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every problem in a fault setting: (key, message), the key as in `[embedded.faults]`.
pub fn problems(f: &Faults) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(status) = f.status {
        if !(400..=599).contains(&status) {
            out.push((
                "status",
                format!("{status} is not an HTTP error status (400-599)"),
            ));
        }
        if f.status_on.is_none() {
            out.push((
                "status_on",
                "is needed with `status`: ping, token, manifest, config, layer or blob".into(),
            ));
        }
    } else {
        if f.status_on.is_some() {
            out.push(("status_on", "needs `status` (e.g. status = 503)".into()));
        }
        if f.status_times.is_some() {
            out.push(("status_times", "needs `status` (e.g. status = 503)".into()));
        }
        if f.status_after.is_some() {
            out.push(("status_after", "needs `status` (e.g. status = 503)".into()));
        }
    }
    if f.cut_after.is_some() && f.stall_after.is_some() {
        out.push((
            "stall_after",
            "cannot be combined with `cut_after`: a body either stalls or is cut".into(),
        ));
    }
    if f.cut_times.is_some() && f.cut_after.is_none() {
        out.push(("cut_times", "needs `cut_after`".into()));
    }
    out
}

/// Whether a `status` fault on `target` applies to a request of `kind`.
pub fn applies(target: FaultTarget, kind: RequestKind) -> bool {
    use RequestKind as K;
    match target {
        FaultTarget::Ping => kind == K::Ping,
        FaultTarget::Token => kind == K::Token,
        FaultTarget::Manifest => matches!(kind, K::ManifestByTag | K::ManifestByDigest),
        FaultTarget::Config => kind == K::Config,
        FaultTarget::Layer => kind == K::Layer,
        FaultTarget::Blob => matches!(kind, K::Config | K::Layer),
    }
}

/// A configured `status` fault and how many more requests get it.
pub struct StatusFault {
    status: StatusCode,
    on: FaultTarget,
    /// Requests of its kind still to serve before the fault begins.
    spared: AtomicU32,
    /// `None` = every request; otherwise the requests still to answer with `status`.
    left: Option<AtomicU32>,
}

impl StatusFault {
    /// The fault `faults` describe, if any (`problems` has already refused bad values).
    pub fn from_faults(faults: &Faults) -> Option<StatusFault> {
        let status = StatusCode::from_u16(faults.status?).ok()?;
        Some(StatusFault {
            status,
            on: faults.status_on?,
            spared: AtomicU32::new(faults.status_after.unwrap_or(0)),
            left: faults.status_times.map(AtomicU32::new),
        })
    }

    /// The status to inject into this request, counting it against `status_times`.
    pub fn take(&self, kind: RequestKind) -> Option<StatusCode> {
        if !applies(self.on, kind) {
            return None;
        }
        let spare = |n: u32| n.checked_sub(1);
        if self
            .spared
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, spare)
            .is_ok()
        {
            return None;
        }
        if let Some(left) = &self.left {
            left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .ok()?;
        }
        Some(self.status)
    }
}

/// The body sent with an injected status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBody {
    /// The distribution registry's `{"errors":[{"code":..,"message":..}]}`.
    Json {
        code: &'static str,
        message: &'static str,
    },
    /// nginx's own error page (the LB in front of Harbor or a registry).
    Html(String),
}

/// What a registry sends with `status` on a request of `kind`:
///
/// - the distribution registry's JSON error codes where it has one for the status: 401
///   `UNAUTHORIZED` (with a Bearer challenge, added by the caller), 403 `DENIED`, 404
///   `MANIFEST_UNKNOWN` / `BLOB_UNKNOWN` / `NOT_FOUND`, 429 `TOOMANYREQUESTS`, 500
///   `UNKNOWN`, 503 `UNAVAILABLE`;
/// - 502 and 504 come from the load balancer, not the registry: nginx's HTML page, as
///   Harbor's nginx sends;
/// - any other status (408 included: no registry code exists for it) a JSON body with
///   code `UNKNOWN` and the reason phrase, as a registry's error handler sends.
pub fn error_body(status: StatusCode, kind: RequestKind) -> ErrorBody {
    use RequestKind as K;
    let json = |code, message| ErrorBody::Json { code, message };
    match status.as_u16() {
        401 => json("UNAUTHORIZED", "authentication required"),
        403 => json("DENIED", "requested access to the resource is denied"),
        404 => match kind {
            K::ManifestByTag | K::ManifestByDigest => json("MANIFEST_UNKNOWN", "manifest unknown"),
            K::Config | K::Layer => json("BLOB_UNKNOWN", "blob unknown to registry"),
            _ => json("NOT_FOUND", "not found"),
        },
        429 => json("TOOMANYREQUESTS", "too many requests"),
        500 => json("UNKNOWN", "unknown error"),
        503 => json("UNAVAILABLE", "service unavailable"),
        502 | 504 => ErrorBody::Html(nginx_page(status)),
        _ => json("UNKNOWN", status.canonical_reason().unwrap_or("error")),
    }
}

/// nginx's error page for `status`, byte for byte as nginx 1.22 sends it.
fn nginx_page(status: StatusCode) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
         <center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::units::ByteSize;

    fn faults(f: impl FnOnce(&mut Faults)) -> Faults {
        let mut x = Faults::default();
        f(&mut x);
        x
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        let keys = |f: Faults| problems(&f).into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert!(keys(Faults::default()).is_empty());
        assert!(keys(faults(|f| {
            f.status = Some(503);
            f.status_on = Some(FaultTarget::Layer);
            f.status_times = Some(2);
        }))
        .is_empty());
        assert_eq!(
            keys(faults(|f| f.status = Some(200))),
            ["status", "status_on"]
        );
        assert_eq!(
            keys(faults(|f| f.status = Some(600))),
            ["status", "status_on"]
        );
        assert_eq!(
            keys(faults(|f| f.status_on = Some(FaultTarget::Ping))),
            ["status_on"]
        );
        assert_eq!(keys(faults(|f| f.status_times = Some(1))), ["status_times"]);
        assert_eq!(keys(faults(|f| f.status_after = Some(1))), ["status_after"]);
        assert_eq!(
            keys(faults(|f| {
                f.cut_after = Some(ByteSize(10));
                f.stall_after = Some(ByteSize(10));
            })),
            ["stall_after"]
        );
        assert_eq!(keys(faults(|f| f.cut_times = Some(1))), ["cut_times"]);
    }

    #[test]
    fn a_status_fault_hits_its_kind_only_and_counts_down() {
        let fault = StatusFault::from_faults(&faults(|f| {
            f.status = Some(429);
            f.status_on = Some(FaultTarget::Blob);
            f.status_times = Some(2);
        }))
        .unwrap();
        assert_eq!(fault.take(RequestKind::ManifestByTag), None);
        assert_eq!(fault.take(RequestKind::BlobUnknown), None);
        assert_eq!(
            fault.take(RequestKind::Config),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(
            fault.take(RequestKind::Layer),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(fault.take(RequestKind::Layer), None);
        let for_ever = StatusFault::from_faults(&faults(|f| {
            f.status = Some(503);
            f.status_on = Some(FaultTarget::Manifest);
        }))
        .unwrap();
        for _ in 0..100 {
            assert!(for_ever.take(RequestKind::ManifestByDigest).is_some());
        }
        assert!(for_ever.take(RequestKind::Ping).is_none());
        let later = StatusFault::from_faults(&faults(|f| {
            f.status = Some(500);
            f.status_on = Some(FaultTarget::Ping);
            f.status_after = Some(2);
            f.status_times = Some(1);
        }))
        .unwrap();
        let seen: Vec<bool> = (0..5)
            .map(|_| later.take(RequestKind::Ping).is_some())
            .collect();
        assert_eq!(seen, [false, false, true, false, false]);
    }

    #[test]
    fn bodies_are_what_a_registry_or_its_lb_sends() {
        let code = |status: u16, kind| match error_body(StatusCode::from_u16(status).unwrap(), kind)
        {
            ErrorBody::Json { code, .. } => code.to_string(),
            ErrorBody::Html(page) => page,
        };
        assert_eq!(code(404, RequestKind::Layer), "BLOB_UNKNOWN");
        assert_eq!(code(404, RequestKind::ManifestByTag), "MANIFEST_UNKNOWN");
        assert_eq!(code(429, RequestKind::Layer), "TOOMANYREQUESTS");
        assert_eq!(code(503, RequestKind::Layer), "UNAVAILABLE");
        assert_eq!(code(408, RequestKind::Config), "UNKNOWN");
        assert_eq!(code(401, RequestKind::Ping), "UNAUTHORIZED");
        assert!(code(502, RequestKind::Layer).contains("<title>502 Bad Gateway</title>"));
        assert!(code(504, RequestKind::Layer).contains("504 Gateway Timeout"));
    }
}
