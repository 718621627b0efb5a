//! `pullstorm seed`: push one deterministic synthetic image, with the same
//! connection, auth and TLS machinery the pulling nodes use.

use crate::exit::Failure;
use crate::net::{self, Timeouts, Transport};
use crate::oci::auth::Credentials;
use crate::oci::push::{self, Format, PushOptions, PushReport};
use crate::oci::{Reference, Session};
use crate::result::summary;
use crate::synth::SyntheticImage;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// Pushes the image and reports progress on stderr; the caller prints the digest.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    registry: &str,
    image: &str,
    sizes: &[u64],
    seed: u64,
    format: Format,
    options: &PushOptions,
    ca_file: Option<&Path>,
    insecure_tls: bool,
) -> Result<PushReport, Failure> {
    let base = Url::parse(registry)
        .map_err(|e| Failure::bad_input(format!("--registry {registry:?}: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(Failure::bad_input(format!(
            "--registry {registry:?}: expected http(s)://host[:port]"
        )));
    }
    let reference = Reference::parse(image)
        .map_err(|e| Failure::bad_input(format!("--image {image:?}: {e}")))?;
    let tag = reference
        .tag
        .clone()
        .filter(|_| reference.digest.is_none())
        .ok_or_else(|| {
            Failure::bad_input(format!("--image {image:?}: push needs a tag, not a digest"))
        })?;
    let tls = match base.scheme() {
        "https" => Some(net::tls::connector(ca_file, insecure_tls).map_err(Failure::bad_input)?),
        _ => None,
    };
    let transport = Transport {
        timeouts: Timeouts {
            connect: Duration::from_secs(30),
            response: Duration::from_secs(300),
            stall: Some(Duration::from_secs(120)),
        },
        gauge: Default::default(),
        tls,
        loopback_source: None,
        read_buffer: crate::net::FULL_SPEED_READ_BUFFER,
    };
    let host = match base.port() {
        Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
        None => base.host_str().unwrap_or_default().to_string(),
    };
    let credentials = Credentials::find(&host).map(Arc::new);

    let hashing = Instant::now();
    let synthetic = Arc::new(SyntheticImage::build(seed, sizes));
    let total: u64 = synthetic.total_layer_bytes();
    eprintln!(
        "pullstorm seed: {} layers, {} (digests computed in {:.1}s); pushing to {base} as {reference}",
        synthetic.layers.len(),
        summary::bytes(total as f64),
        hashing.elapsed().as_secs_f64()
    );

    // Events of a push are not measured: drain them.
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let session = Arc::new(
        Session::new(
            base.clone(),
            reference.name.clone(),
            credentials,
            transport,
            sink,
        )
        .for_push(),
    );
    session
        .ping()
        .await
        .map_err(|f| Failure::cannot_proceed(format!("registry {base} is unreachable: {f}")))?;
    let started = Instant::now();
    let report = push::push_image(session, synthetic, &tag, format, options)
        .await
        .map_err(|f| {
            Failure::cannot_proceed(format!("push of {reference} to {base} failed: {f}"))
        })?;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    eprintln!(
        "pullstorm seed: {} blobs uploaded ({}, {}/s), {} already present, {} mounted, {} resumed uploads in {:.1}s",
        report.blobs_uploaded,
        summary::bytes(report.bytes_uploaded as f64),
        summary::bytes(report.bytes_uploaded as f64 / secs),
        report.blobs_present,
        report.blobs_mounted,
        report.resumes,
        secs
    );
    Ok(report)
}
