//! Preflight: before any node starts, check that the target answers and that
//! the image resolves, so a typo in the URL or the reference ends the run at
//! once (exit code 3) instead of as a storm of identical failures.
//!
//! What a struggling target does is no reason to refuse: a storm against an LB
//! that answers 503 must start. So any answer to `GET /v2/` will do (a status
//! other than 2xx or 401 is a warning), and a resolve that meets a transient
//! failure (408, 429, 5xx, a reset or a timeout) is tried again, up to
//! [`RESOLVE_TRIES`] times a second apart. What cannot work is refused: no
//! connection at all to the target (nothing listens there: a wrong URL, a
//! stopped LB), or an image that is not there or not ours to pull (401, 403,
//! 404): the nodes need its manifest and blob list before they start.

use crate::exit::Failure;
use crate::net::{self, FaultClass};
use crate::oci::auth::Credentials;
use crate::oci::{Reference, Session};
use crate::result::model::{BlobInfo, TargetInfo};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Most tries of the image's resolve when it meets a transient failure.
pub const RESOLVE_TRIES: u32 = 3;
/// The pause between two tries of the resolve.
const RESOLVE_PAUSE: Duration = Duration::from_secs(1);

/// What preflight found: the target, and what the console should warn about.
pub(super) struct Checked {
    pub target: TargetInfo,
    /// One line each, for stderr (a ping answered 503, a resolve tried again).
    pub warnings: Vec<String>,
}

/// Pings the target, resolves the image for `platform`, and describes both.
pub(super) async fn preflight(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
    embedded: bool,
) -> Result<Checked, Failure> {
    let mut warnings = Vec::new();
    let pinged = ping(base, transport).await?;
    if let Some(w) = ping_warning(base, pinged.status) {
        warnings.push(w);
    }
    let resolved = resolve(
        base,
        reference,
        platform,
        transport,
        credentials,
        &mut warnings,
    )
    .await?;
    let blobs: Vec<BlobInfo> = std::iter::once(&resolved.config)
        .chain(resolved.layers.iter())
        .map(|d| BlobInfo {
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
        })
        .collect();
    let image_bytes = image_bytes(&blobs)
        .ok_or_else(|| Failure::cannot_proceed(format!("image size overflows: {reference} at {base} lists blobs whose sizes add up to more than 2^64-1 bytes")))?;
    let target = TargetInfo {
        url: crate::redact::text(base.as_str()),
        image: reference.to_string(),
        embedded,
        manifest_digest: Some(resolved.digest),
        blobs,
        image_bytes,
        server: pinged.server,
        api_version: pinged.api_version,
    };
    Ok(Checked { target, warnings })
}

/// The warning for a ping answered with anything but 2xx or 401 (the run goes on:
/// dockerd accepts any answer to its ping, containerd sends none).
fn ping_warning(base: &Url, status: http::StatusCode) -> Option<String> {
    if status.is_success() || status == http::StatusCode::UNAUTHORIZED {
        return None;
    }
    Some(format!(
        "pullstorm: warning: GET /v2/ at {} answered {status}; starting anyway (the image resolved, and the clients go on whatever their ping gets)",
        crate::redact::text(base.as_str())
    ))
}

/// The image's size, the sum of its blobs' sizes; `None` when a manifest's
/// sizes (each up to 2^64-1) add up past what a u64 holds.
fn image_bytes(blobs: &[BlobInfo]) -> Option<u64> {
    blobs
        .iter()
        .try_fold(0u64, |sum, b| sum.checked_add(b.size))
}

/// What the target's `GET /v2/` said.
struct Pinged {
    status: http::StatusCode,
    server: Option<String>,
    api_version: Option<String>,
}

/// `GET /v2/` with generous timeouts; returns its status and the `Server` and
/// `Docker-Distribution-API-Version` headers. Any answer will do; only a failed
/// exchange (refused, timed out, TLS) ends the run.
async fn ping(base: &Url, transport: &net::Transport) -> Result<Pinged, Failure> {
    let ping_url = base
        .join("/v2/")
        .map_err(|e| Failure::bad_input(format!("target.url: {e}")))?;
    let timeouts = net::Timeouts {
        connect: Duration::from_secs(10),
        response: Duration::from_secs(15),
        stall: Some(Duration::from_secs(15)),
    };
    let ex = net::send(
        http::Method::GET,
        &ping_url,
        http::HeaderMap::new(),
        &transport.with_timeouts(timeouts),
    )
    .await
    .map_err(|f| Failure::cannot_proceed(format!("target {base} is unreachable: {f}")))?;
    let header = |name: &str| {
        ex.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(Pinged {
        status: ex.status,
        server: header("server"),
        api_version: header("docker-distribution-api-version"),
    })
}

/// Whether a failed resolve may succeed if tried again: an overloaded target's
/// answers (408, 429, 5xx) and broken exchanges, not a missing image or refused access.
fn transient(class: FaultClass) -> bool {
    match class {
        FaultClass::Http(code) => code == 408 || code == 429 || code >= 500,
        FaultClass::ConnectionReset
        | FaultClass::UnexpectedEof
        | FaultClass::ReadTimeout
        | FaultClass::ConnectTimeout => true,
        _ => false,
    }
}

/// Resolves the image as a node would (ping, token, manifest or index), with a
/// throwaway event channel: only the nodes' pulls are measured. A transient failure
/// is tried again, each retry a warning.
async fn resolve(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
    warnings: &mut Vec<String>,
) -> Result<crate::oci::session::Resolved, Failure> {
    let mut tries = 0;
    let failed = loop {
        tries += 1;
        match resolve_once(base, reference, platform, transport, credentials.clone()).await {
            Ok(resolved) => return Ok(resolved),
            Err(f) if tries < RESOLVE_TRIES && transient(f.class) => {
                warnings.push(format!(
                    "pullstorm: warning: resolving {reference} failed ({f}); trying again in {}s ({}/{RESOLVE_TRIES})",
                    RESOLVE_PAUSE.as_secs(),
                    tries + 1
                ));
                tokio::time::sleep(RESOLVE_PAUSE).await;
            }
            Err(f) => break f,
        }
    };
    let hint = match failed.class {
        FaultClass::Http(401) | FaultClass::Http(403) if credentials.is_none() => {
            " (the registry wants credentials: set PULLSTORM_USERNAME and PULLSTORM_PASSWORD, or log in with docker so config.json has them)"
        }
        _ => "",
    };
    Err(Failure::cannot_proceed(format!(
        "cannot resolve {reference} at {base}: {failed}{hint}"
    )))
}

/// One resolve: ping (any answer), token, manifest or index.
async fn resolve_once(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
) -> Result<crate::oci::session::Resolved, crate::net::Fault> {
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    let drainer = tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let session = Session::new(
        base.clone(),
        reference.name.clone(),
        credentials,
        transport.clone(),
        sink,
    );
    let resolved = async {
        session.ping().await?;
        session.resolve(reference.manifest_ref(), platform).await
    }
    .await;
    drop(session);
    let _ = drainer.await;
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: u64) -> BlobInfo {
        BlobInfo {
            digest: String::new(),
            size,
            media_type: String::new(),
        }
    }

    #[test]
    fn a_struggling_target_is_a_warning_not_a_refusal() {
        let base = Url::parse("http://lb.example:8080").unwrap();
        assert_eq!(ping_warning(&base, http::StatusCode::OK), None);
        assert_eq!(ping_warning(&base, http::StatusCode::UNAUTHORIZED), None);
        let w = ping_warning(&base, http::StatusCode::SERVICE_UNAVAILABLE).unwrap();
        assert!(w.contains("503") && w.contains("starting anyway"), "{w}");
        for class in [
            FaultClass::Http(503),
            FaultClass::Http(502),
            FaultClass::Http(429),
            FaultClass::Http(408),
            FaultClass::ConnectionReset,
            FaultClass::ReadTimeout,
        ] {
            assert!(transient(class), "{class:?}");
        }
        for class in [
            FaultClass::Http(401),
            FaultClass::Http(403),
            FaultClass::Http(404),
            FaultClass::ConnectRefused,
            FaultClass::Dns,
            FaultClass::DigestMismatch,
        ] {
            assert!(!transient(class), "{class:?}");
        }
    }

    /// Two 2^63-byte layers summed to 0 on main (`target.image_bytes: 78` with the config).
    #[test]
    fn image_size_is_summed_without_wrapping() {
        assert_eq!(
            image_bytes(&[blob(78), blob(1 << 20)]),
            Some(78 + (1 << 20))
        );
        assert_eq!(image_bytes(&[blob(78), blob(1 << 63), blob(1 << 63)]), None);
        assert_eq!(image_bytes(&[blob(u64::MAX), blob(0)]), Some(u64::MAX));
        assert_eq!(image_bytes(&[]), Some(0));
    }
}
