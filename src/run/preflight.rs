//! Preflight: before any node starts, check that the target answers and that
//! the image resolves, so a typo in the URL or the reference ends the run at
//! once (exit code 3) instead of as a storm of identical failures.

use crate::exit::Failure;
use crate::net::{self, FaultClass};
use crate::oci::auth::Credentials;
use crate::oci::{Reference, Session};
use crate::result::model::{BlobInfo, TargetInfo};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Pings the target, resolves the image for `platform`, and describes both.
pub(super) async fn preflight(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
    embedded: bool,
) -> Result<TargetInfo, Failure> {
    let (server, api_version) = ping(base, transport).await?;
    let resolved = resolve(base, reference, platform, transport, credentials).await?;
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
    Ok(TargetInfo {
        url: crate::redact::text(base.as_str()),
        image: reference.to_string(),
        embedded,
        manifest_digest: Some(resolved.digest),
        blobs,
        image_bytes,
        server,
        api_version,
    })
}

/// The image's size, the sum of its blobs' sizes; `None` when a manifest's
/// sizes (each up to 2^64-1) add up past what a u64 holds.
fn image_bytes(blobs: &[BlobInfo]) -> Option<u64> {
    blobs
        .iter()
        .try_fold(0u64, |sum, b| sum.checked_add(b.size))
}

/// `GET /v2/` with generous timeouts; returns the `Server` and
/// `Docker-Distribution-API-Version` headers. Any answer will do (401 too).
async fn ping(
    base: &Url,
    transport: &net::Transport,
) -> Result<(Option<String>, Option<String>), Failure> {
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
    Ok((header("server"), header("docker-distribution-api-version")))
}

/// Resolves the image as a node would (ping, token, manifest or index), with a
/// throwaway event channel: only the nodes' pulls are measured.
async fn resolve(
    base: &Url,
    reference: &Reference,
    platform: &str,
    transport: &net::Transport,
    credentials: Option<Arc<Credentials>>,
) -> Result<crate::oci::session::Resolved, Failure> {
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    let drainer = tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let session = Session::new(
        base.clone(),
        reference.name.clone(),
        credentials.clone(),
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
    resolved.map_err(|f| {
        let hint = match f.class {
            FaultClass::Http(401) | FaultClass::Http(403) if credentials.is_none() => {
                " (the registry wants credentials: set PULLSTORM_USERNAME and PULLSTORM_PASSWORD, or log in with docker so config.json has them)"
            }
            _ => "",
        };
        Failure::cannot_proceed(format!("cannot resolve {reference} at {base}: {f}{hint}"))
    })
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
