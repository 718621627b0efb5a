//! `pullstorm seed`: push one deterministic synthetic image, with the same
//! connection, auth and TLS machinery the pulling nodes use. A push, not a
//! run: nothing is measured, the events of the push are drained.

use crate::exit::Failure;
use crate::human;
use crate::net::{self, Timeouts, Transport};
use crate::oci::auth::Credentials;
use crate::oci::push::{self, Format, PushOptions, PushReport};
use crate::oci::{Reference, Session};
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
    let base = registry_url(registry)?;
    let (reference, tag) = tagged_reference(image)?;
    let transport = transport(&base, ca_file, insecure_tls)?;
    let credentials = Credentials::for_registry(&base).map(Arc::new);
    let synthetic = generate(seed, sizes, &base, &reference);
    let session = connect(&base, &reference, credentials, transport).await?;
    let started = Instant::now();
    let report = push::push_image(session, synthetic, &tag, format, options)
        .await
        .map_err(|f| {
            Failure::cannot_proceed(format!("push of {reference} to {base} failed: {f}"))
        })?;
    eprintln!("{}", pushed(&report, started.elapsed()));
    Ok(report)
}

/// `--registry`: an http(s) URL with a host, checked by the same rules and
/// with the same help as `run --target`.
pub(crate) fn registry_url(registry: &str) -> Result<Url, Failure> {
    crate::scenario::validate::check_url(registry)
        .map_err(|e| Failure::bad_input(format!("--registry: {e}")))?;
    let base = Url::parse(registry).map_err(|e| Failure::bad_input(format!("--registry: {e}")))?;
    if base.host_str().is_none() {
        return Err(Failure::bad_input(
            "--registry: expected http(s)://host[:port]",
        ));
    }
    Ok(base)
}

/// `--image` and the tag to push to: a push needs a tag, not a digest.
fn tagged_reference(image: &str) -> Result<(Reference, String), Failure> {
    let reference = Reference::parse(image)
        .map_err(|e| Failure::bad_input(format!("--image {image:?}: {e}")))?;
    let tag = reference
        .tag
        .clone()
        .filter(|_| reference.digest.is_none())
        .ok_or_else(|| {
            Failure::bad_input(format!("--image {image:?}: push needs a tag, not a digest"))
        })?;
    Ok((reference, tag))
}

/// Patient timeouts (uploads of large chunks), TLS for https.
fn transport(base: &Url, ca_file: Option<&Path>, insecure_tls: bool) -> Result<Transport, Failure> {
    let timeouts = Timeouts {
        connect: Duration::from_secs(30),
        response: Duration::from_secs(300),
        stall: Some(Duration::from_secs(120)),
    };
    tool_transport(base, ca_file, insecure_tls, timeouts)
}

/// The nodes' transport for a one-off tool (`seed`, `verify`): the given timeouts,
/// TLS for https, a new connection per request, nothing measured.
pub(crate) fn tool_transport(
    base: &Url,
    ca_file: Option<&Path>,
    insecure_tls: bool,
    timeouts: Timeouts,
) -> Result<Transport, Failure> {
    let tls = match base.scheme() {
        "https" => Some(net::tls::connector(ca_file, insecure_tls).map_err(Failure::bad_input)?),
        _ => None,
    };
    Ok(Transport {
        timeouts,
        gauge: Default::default(),
        tls,
        loopback_source: None,
        read_buffer: net::FULL_SPEED_READ_BUFFER,
        connections: Default::default(),
        pool: None,
    })
}

/// Builds the image (hashing every layer to know its digest) and says what will be pushed.
fn generate(seed: u64, sizes: &[u64], base: &Url, reference: &Reference) -> Arc<SyntheticImage> {
    let hashing = Instant::now();
    let synthetic = Arc::new(SyntheticImage::build(seed, sizes));
    eprintln!(
        "pullstorm seed: {} layers, {} (digests computed in {:.1}s); pushing to {base} as {reference}",
        synthetic.layers.len(),
        human::bytes(synthetic.total_layer_bytes() as f64),
        hashing.elapsed().as_secs_f64()
    );
    synthetic
}

/// A push session whose events are drained (a push is not measured), after a
/// ping that proves the registry answers.
async fn connect(
    base: &Url,
    reference: &Reference,
    credentials: Option<Arc<Credentials>>,
    transport: Transport,
) -> Result<Arc<Session>, Failure> {
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let session = Session::new(
        base.clone(),
        reference.name.clone(),
        credentials,
        transport,
        sink,
    )
    .for_push();
    session
        .ping()
        .await
        .map_err(|f| Failure::cannot_proceed(format!("registry {base} is unreachable: {f}")))?;
    Ok(Arc::new(session))
}

/// The closing line: what was uploaded, how fast, and what was skipped.
fn pushed(report: &PushReport, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-3);
    format!(
        "pullstorm seed: {} blobs uploaded ({}, {}/s), {} already present, {} mounted, {} resumed uploads in {:.1}s",
        report.blobs_uploaded,
        human::bytes(report.bytes_uploaded as f64),
        human::bytes(report.bytes_uploaded as f64 / secs),
        report.blobs_present,
        report.blobs_mounted,
        report.resumes,
        secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_without_its_scheme_gets_the_same_help_as_a_target() {
        for bare in ["localhost:5000", "127.0.0.1:5000"] {
            let err = registry_url(bare).unwrap_err().message;
            assert!(
                err.starts_with("--registry: not a URL: missing http:// or https://"),
                "{bare}: {err}"
            );
        }
        assert!(registry_url("ftp://host/").is_err());
        assert!(registry_url("http://127.0.0.1:5000").is_ok());
    }
}
