//! Pushing a synthetic image the way the OCI distribution spec describes it:
//! `HEAD` the blob, cross-repo mount when asked, `POST` an upload, chunked
//! `PATCH`es with `Content-Range` always following the newest `Location`,
//! resume after a cut by asking the upload URL where it stands, `PUT ?digest=`,
//! then the manifests (and the index) by digest and tag.
//!
//! Content is generated while it streams, so a 2 GiB push needs no 2 GiB of
//! memory or disk, and the same seed and sizes give the same digests as the
//! embedded registry serves.

use super::push_rules::{self, PushRules};
use super::request;
use super::session::{header_str, http_fault};
use super::Session;
use crate::metrics::events::{BlobPush, UploadStep};
use crate::metrics::{Event, ExchangeKind};
use crate::net::{self, Fault, FaultClass, Phase, RequestBody};
use crate::synth::{SynthDoc, SyntheticImage};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::task::JoinSet;
use url::Url;

/// Which manifest the tag points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OCI image manifest.
    Oci,
    /// Docker schema 2 manifest.
    Docker,
    /// OCI index with linux/amd64 and linux/arm64 manifests.
    Index,
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Bytes per PATCH request.
    pub chunk_size: u64,
    /// Blobs uploaded at once.
    pub jobs: usize,
    /// Try a cross-repository mount from this repository first.
    pub mount_from: Option<String>,
    /// Attempts per blob (a cut PATCH resumes where the registry says the upload stands).
    pub attempts: u32,
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// The digest the tag points at.
    pub digest: String,
    pub blobs_uploaded: u64,
    pub blobs_present: u64,
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
    /// Uploads that were cut and resumed.
    pub resumes: u64,
}

/// One blob to push: a layer generated on the fly or a small document in memory.
#[derive(Clone)]
enum Source {
    Layer(usize),
    Doc(Bytes),
}

/// Pushes every blob, then the manifests and the tag, resuming a cut upload
/// at once (`pullstorm seed`'s rules: [`PushRules::seed`]).
pub async fn push_image(
    session: Arc<Session>,
    image: Arc<SyntheticImage>,
    tag: &str,
    format: Format,
    opts: &PushOptions,
) -> Result<PushReport, Fault> {
    push_image_with(
        session,
        image,
        tag,
        format,
        opts,
        PushRules::seed(opts.attempts),
    )
    .await
}

/// [`push_image`] with a client's retry rules. Every request, failure and blob
/// is reported on the session's event sink (`Event::UploadRequest`, `PushFault`,
/// `BlobPushed`, and `Fault` for the error table).
pub async fn push_image_with(
    session: Arc<Session>,
    image: Arc<SyntheticImage>,
    tag: &str,
    format: Format,
    opts: &PushOptions,
    rules: PushRules,
) -> Result<PushReport, Fault> {
    let mut blobs: Vec<(String, u64, Source)> = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.digest.clone(), l.size, Source::Layer(i)))
        .collect();
    blobs.push((
        image.config.digest.clone(),
        image.config.size(),
        Source::Doc(image.config.bytes.clone()),
    ));
    if format == Format::Index {
        let c = &image.arm64_config;
        blobs.push((c.digest.clone(), c.size(), Source::Doc(c.bytes.clone())));
    }

    let mut report = PushReport::default();
    let mut tasks = JoinSet::new();
    let mut pending = blobs.into_iter();
    let jobs = opts.jobs.max(1);
    loop {
        while tasks.len() < jobs {
            let Some((digest, size, source)) = pending.next() else {
                break;
            };
            let (session, image, opts) = (session.clone(), image.clone(), opts.clone());
            tasks.spawn(async move {
                push_blob(&session, &image, &digest, size, source, &opts, rules).await
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let outcome = done.map_err(|e| {
            Fault::new(
                FaultClass::Other,
                Phase::Request,
                format!("upload task: {e}"),
            )
        })??;
        match outcome {
            BlobOutcome::Present => report.blobs_present += 1,
            BlobOutcome::Mounted => report.blobs_mounted += 1,
            BlobOutcome::Uploaded { bytes, resumes } => {
                report.blobs_uploaded += 1;
                report.bytes_uploaded += bytes;
                report.resumes += resumes;
            }
        }
    }

    report.digest = match manifests(&session, &image, tag, format).await {
        Ok(digest) => digest,
        Err(fault) => {
            // dockerd does not try a manifest PUT again: the push fails.
            report_fault(&session, &fault, false).await;
            return Err(fault);
        }
    };
    Ok(report)
}

/// The manifests and the tag, in the order a registry accepts them.
async fn manifests(
    session: &Session,
    image: &SyntheticImage,
    tag: &str,
    format: Format,
) -> Result<String, Fault> {
    Ok(match format {
        Format::Oci => put_manifest(session, tag, &image.manifest).await?,
        Format::Docker => put_manifest(session, tag, &image.docker_manifest).await?,
        Format::Index => {
            put_manifest(session, &image.manifest.digest, &image.manifest).await?;
            put_manifest(session, &image.arm64_manifest.digest, &image.arm64_manifest).await?;
            put_manifest(session, tag, &image.index).await?
        }
    })
}

/// A failed step: in the error table (`Event::Fault`) and under its registry code.
pub(crate) async fn report_fault(session: &Session, fault: &Fault, retried: bool) {
    let events = session.events();
    let code = push_rules::fault_code(fault);
    let _ = events
        .send(Event::Fault {
            fault: fault.clone(),
            kind: ExchangeKind::Upload,
            cluster: 0,
            at: tokio::time::Instant::now(),
        })
        .await;
    let _ = events.send(Event::PushFault { code, retried }).await;
}

/// Sends `request`, timing it to its response head as one `step` of a push.
async fn timed<F>(session: &Session, step: UploadStep, request: F) -> Result<net::Exchange, Fault>
where
    F: std::future::Future<Output = Result<net::Exchange, Fault>>,
{
    let sent = Instant::now();
    let ex = request.await?;
    let took = sent.elapsed();
    let _ = session
        .events()
        .send(Event::UploadRequest { step, took })
        .await;
    Ok(ex)
}

/// A blob's tries so far (shared by restarts and resumes).
struct Tries {
    attempt: u32,
    first_failure: Option<Instant>,
    /// The registry answered something no upload can be in (a status past the
    /// blob's end): starting over would meet the same broken state, so the blob fails.
    broken: bool,
}

impl Tries {
    /// After `fault`: reports it and says whether to try again (after the back-off).
    async fn failed(&mut self, session: &Session, fault: &Fault, rules: PushRules) -> bool {
        let again = self.attempt < rules.attempts && push_rules::retryable(fault);
        report_fault(session, fault, again).await;
        if again {
            self.first_failure.get_or_insert_with(Instant::now);
            tokio::time::sleep(rules.backoff_after(self.attempt)).await;
            self.attempt += 1;
        }
        again
    }
}

enum BlobOutcome {
    Present,
    Mounted,
    Uploaded { bytes: u64, resumes: u64 },
}

/// One blob, tried as `rules` say: each attempt from the `HEAD` on, as
/// dockerd's upload manager calls its descriptor's `Upload` again.
async fn push_blob(
    session: &Session,
    image: &Arc<SyntheticImage>,
    digest: &str,
    size: u64,
    source: Source,
    opts: &PushOptions,
    rules: PushRules,
) -> Result<BlobOutcome, Fault> {
    let mut tries = Tries {
        attempt: 1,
        first_failure: None,
        broken: false,
    };
    loop {
        match push_blob_once(
            session, image, digest, size, &source, opts, rules, &mut tries,
        )
        .await
        {
            Ok(outcome) => {
                let (how, bytes) = match outcome {
                    BlobOutcome::Present => (BlobPush::Present, 0),
                    BlobOutcome::Mounted => (BlobPush::Mounted, 0),
                    BlobOutcome::Uploaded { bytes, .. } => (BlobPush::Uploaded, bytes),
                };
                let event = Event::BlobPushed {
                    how,
                    bytes,
                    attempts: tries.attempt,
                    retry_latency: tries.first_failure.map(|t| t.elapsed()),
                };
                let _ = session.events().send(event).await;
                return Ok(outcome);
            }
            Err(fault) => {
                if tries.broken {
                    report_fault(session, &fault, false).await;
                    return Err(fault);
                }
                if !tries.failed(session, &fault, rules).await {
                    return Err(fault);
                }
            }
        }
    }
}

/// One attempt at a blob: nothing if the registry has it, a mount if asked
/// and granted, else an upload in chunks.
#[allow(clippy::too_many_arguments)]
async fn push_blob_once(
    session: &Session,
    image: &Arc<SyntheticImage>,
    digest: &str,
    size: u64,
    source: &Source,
    opts: &PushOptions,
    rules: PushRules,
    tries: &mut Tries,
) -> Result<BlobOutcome, Fault> {
    if blob_present(session, digest).await? {
        return Ok(BlobOutcome::Present);
    }
    let location = match start_upload(session, digest, opts.mount_from.as_deref()).await? {
        Started::Mounted => return Ok(BlobOutcome::Mounted),
        Started::Upload(location) => location,
    };
    let (location, resumes) =
        upload_chunks(session, image, source, size, location, opts, rules, tries).await?;
    finish_upload(session, &location, digest).await?;
    Ok(BlobOutcome::Uploaded {
        bytes: size,
        resumes,
    })
}

/// `HEAD` the blob: 200 means the registry already holds it.
async fn blob_present(session: &Session, digest: &str) -> Result<bool, Fault> {
    let blob_url = session.url(&request::blob_path(session.repo(), digest))?;
    let request = session.authorized(
        ExchangeKind::Upload,
        Method::HEAD,
        &blob_url,
        HeaderMap::new(),
    );
    let ex = timed(session, UploadStep::Head, request).await?;
    Ok(ex.status == StatusCode::OK)
}

/// How a `POST` to the upload endpoint went.
enum Started {
    /// The cross-repository mount worked: nothing to upload.
    Mounted,
    /// An upload session, at this Location.
    Upload(Url),
}

/// `POST /v2/<repo>/blobs/uploads/`, with `?mount=&from=` when a mount is asked.
async fn start_upload(
    session: &Session,
    digest: &str,
    mount_from: Option<&str>,
) -> Result<Started, Fault> {
    let mut start = request::upload_path(session.repo());
    if let Some(from) = mount_from {
        start.push_str(&format!("?mount={digest}&from={from}"));
    }
    let start_url = session.url(&start)?;
    let request = session.authorized(
        ExchangeKind::Upload,
        Method::POST,
        &start_url,
        empty_content(),
    );
    let ex = timed(session, UploadStep::Post, request).await?;
    let (status, location) = (ex.status, header_str(&ex.headers, "location"));
    let body = net::read_small(ex.body, 64 << 10, session.timeouts().stall).await?;
    if status == StatusCode::CREATED && mount_from.is_some() {
        return Ok(Started::Mounted);
    }
    if status != StatusCode::ACCEPTED {
        return Err(http_fault(
            status,
            &body,
            Phase::Request,
            &format!("POST upload for {digest}"),
        ));
    }
    Ok(Started::Upload(resolve_location(&start_url, location)?))
}

/// `PATCH`es `[0, size)` in chunks, each to the newest Location; after a cut,
/// when the rules resume, asks the registry where the upload stands and goes
/// on from there. Returns the last Location and the number of resumes.
#[allow(clippy::too_many_arguments)]
async fn upload_chunks(
    session: &Session,
    image: &Arc<SyntheticImage>,
    source: &Source,
    size: u64,
    mut location: Url,
    opts: &PushOptions,
    rules: PushRules,
    tries: &mut Tries,
) -> Result<(Url, u64), Fault> {
    let mut offset = 0u64;
    let mut resumes = 0u64;
    while offset < size {
        let end = offset.saturating_add(opts.chunk_size.max(1)).min(size);
        match patch(session, &location, image, source, offset, end).await {
            Ok(next) => {
                location = next;
                offset = end;
            }
            // The cut may have landed part of the chunk: ask the registry where the upload stands.
            Err(fault) if rules.resume => {
                if !tries.failed(session, &fault, rules).await {
                    return Err(fault);
                }
                resumes += 1;
                let (next, stands_at) = match upload_status(session, &location, size).await {
                    Ok(at) => at,
                    Err(UploadStatus::Impossible(fault)) => {
                        tries.broken = true;
                        return Err(fault);
                    }
                    Err(UploadStatus::Failed(fault)) => return Err(fault),
                };
                location = next;
                offset = stands_at;
            }
            Err(fault) => return Err(fault),
        }
    }
    Ok((location, resumes))
}

/// `PUT <location>?digest=`: closes the upload; the registry checks the digest.
async fn finish_upload(session: &Session, location: &Url, digest: &str) -> Result<(), Fault> {
    let mut put_url = location.clone();
    put_url.query_pairs_mut().append_pair("digest", digest);
    let request = session.authorized(ExchangeKind::Upload, Method::PUT, &put_url, empty_content());
    let ex = timed(session, UploadStep::Put, request).await?;
    let status = ex.status;
    let body = net::read_small(ex.body, 64 << 10, session.timeouts().stall).await?;
    if status != StatusCode::CREATED {
        return Err(http_fault(
            status,
            &body,
            Phase::Request,
            &format!("PUT upload for {digest}"),
        ));
    }
    Ok(())
}

/// `Content-Length: 0`, for the bodiless POST and PUT of an upload.
fn empty_content() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers
}

/// One PATCH of `[start, end)`; returns the Location to use next.
async fn patch(
    session: &Session,
    location: &Url,
    image: &Arc<SyntheticImage>,
    source: &Source,
    start: u64,
    end: u64,
) -> Result<Url, Fault> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(end - start));
    // The spec's Content-Range for uploads: inclusive, no `bytes ` prefix.
    if let Ok(v) = HeaderValue::from_str(&format!("{}-{}", start, end - 1)) {
        headers.insert(http::header::CONTENT_RANGE, v);
    }
    let body = || -> RequestBody {
        match source {
            Source::Layer(i) => LayerChunks {
                image: image.clone(),
                layer: *i,
                pos: start,
                end,
            }
            .boxed(),
            Source::Doc(bytes) => {
                http_body_util::Full::new(bytes.slice(start as usize..end as usize))
                    .map_err(|never| match never {})
                    .boxed()
            }
        }
    };
    let request =
        session.authorized_with(ExchangeKind::Upload, Method::PATCH, location, headers, body);
    let ex = timed(session, UploadStep::Patch, request).await?;
    let (status, next) = (ex.status, header_str(&ex.headers, "location"));
    let reply = net::read_small(ex.body, 64 << 10, session.timeouts().stall).await?;
    if status != StatusCode::ACCEPTED {
        return Err(http_fault(
            status,
            &reply,
            Phase::Request,
            &format!("PATCH {start}-{}", end - 1),
        ));
    }
    resolve_location(location, next.or_else(|| Some(location.to_string())))
}

/// `GET <location>`: 204 with `Range: 0-<end>` says the next byte is end+1.
/// Why an upload status gave no offset: the request failed (tried again as any
/// failure), or the registry named an offset no upload of this blob can have.
enum UploadStatus {
    Failed(Fault),
    Impossible(Fault),
}

impl From<Fault> for UploadStatus {
    fn from(fault: Fault) -> Self {
        UploadStatus::Failed(fault)
    }
}

async fn upload_status(
    session: &Session,
    location: &Url,
    size: u64,
) -> Result<(Url, u64), UploadStatus> {
    let request = session.authorized(
        ExchangeKind::Upload,
        Method::GET,
        location,
        HeaderMap::new(),
    );
    let ex = timed(session, UploadStep::Status, request).await?;
    let (status, range, next) = (
        ex.status,
        header_str(&ex.headers, "range"),
        header_str(&ex.headers, "location"),
    );
    let body = net::read_small(ex.body, 64 << 10, session.timeouts().stall).await?;
    if status != StatusCode::NO_CONTENT {
        return Err(http_fault(status, &body, Phase::Request, "GET upload status").into());
    }
    let stands_at = upload_offset(range.as_deref(), size).map_err(UploadStatus::Impossible)?;
    Ok((
        resolve_location(location, next.or_else(|| Some(location.to_string())))?,
        stands_at,
    ))
}

/// Where an upload of a `size`-byte blob stands, from the upload status's
/// `Range: 0-<end>` (the next byte is end+1; no header or no number: 0). An end
/// at or past the blob's last byte (`0-18446744073709551615`) is the registry's
/// error, never an overflow.
fn upload_offset(range: Option<&str>, size: u64) -> Result<u64, Fault> {
    let Some(end) = range
        .and_then(|r| r.trim().trim_start_matches("bytes=").split_once('-'))
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
    else {
        return Ok(0);
    };
    match end.checked_add(1) {
        Some(next) if next <= size => Ok(next),
        _ => Err(Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!(
                "GET upload status: Range {:?} ends past the blob's {size} bytes",
                range.unwrap_or_default()
            ),
        )),
    }
}

async fn put_manifest(session: &Session, reference: &str, doc: &SynthDoc) -> Result<String, Fault> {
    let url = session.url(&request::manifest_path(session.repo(), reference))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(doc.media_type),
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(doc.bytes.len()),
    );
    let bytes = doc.bytes.clone();
    let body = move || -> RequestBody {
        http_body_util::Full::new(bytes.clone())
            .map_err(|never| match never {})
            .boxed()
    };
    let request = session.authorized_with(ExchangeKind::Upload, Method::PUT, &url, headers, body);
    let ex = timed(session, UploadStep::Manifest, request).await?;
    let status = ex.status;
    let reply = net::read_small(ex.body, 64 << 10, session.timeouts().stall).await?;
    if status != StatusCode::CREATED {
        return Err(http_fault(
            status,
            &reply,
            Phase::Request,
            &format!("PUT manifest {reference}"),
        ));
    }
    Ok(doc.digest.clone())
}

/// A `Location` may be relative to the request that returned it.
fn resolve_location(base: &Url, location: Option<String>) -> Result<Url, Fault> {
    let location = location.ok_or_else(|| {
        Fault::new(
            FaultClass::Other,
            Phase::Request,
            "upload response without a Location",
        )
    })?;
    base.join(&location).map_err(|e| {
        Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!("bad Location {location:?}: {e}"),
        )
    })
}

/// Streams `[pos, end)` of a synthetic layer in 1 MiB frames, generated as they are sent.
struct LayerChunks {
    image: Arc<SyntheticImage>,
    layer: usize,
    pos: u64,
    end: u64,
}

const FRAME: u64 = 1 << 20;

impl Body for LayerChunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pos >= self.end {
            return Poll::Ready(None);
        }
        let n = (self.end - self.pos).min(FRAME) as usize;
        let mut buf = vec![0u8; n];
        self.image.fill_layer(self.layer, self.pos, &mut buf);
        self.pos += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::upload_offset;
    use crate::net::FaultClass;

    #[test]
    fn upload_status_range_gives_the_next_byte() {
        assert_eq!(upload_offset(Some("0-1023"), 4096).unwrap(), 1024);
        assert_eq!(upload_offset(Some("bytes=0-4095"), 4096).unwrap(), 4096);
        assert_eq!(upload_offset(None, 4096).unwrap(), 0);
        assert_eq!(upload_offset(Some("garbage"), 4096).unwrap(), 0);
    }

    /// `end + 1` overflowed on main (a panic in debug builds, offset 0 in release).
    #[test]
    fn a_range_past_the_blob_is_an_error_not_an_overflow() {
        for range in ["0-18446744073709551615", "0-4096", "bytes=0-99999"] {
            let f = upload_offset(Some(range), 4096).expect_err(range);
            assert_eq!(f.class, FaultClass::Other);
            assert!(f.detail.contains("ends past the blob"), "{}", f.detail);
        }
    }
}
