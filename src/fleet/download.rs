//! One blob download with the profile's retry rules: attempts, backoff,
//! Range resume, what to do when Range is ignored, and digest verification.
//!
//! An attempt may send more than one GET: dockerd's first GET of an attempt from
//! byte 0 has its error swallowed and the read GETs again; containerd reopens a short
//! body at its offset, and resends some answers inside one request (in the session).
//! Every failed request is a fault, every request sent again a retry.
//!
//! The per-chunk path is the digest update, one atomic add and (when the
//! node's bandwidth is capped) the link booking; nothing else.

use super::profile::{Attempts, RangeIgnored};
use super::store::ContentStore;
use super::FleetContext;
use crate::metrics::{Event, ExchangeKind, Sink};
use crate::net::{self, Bandwidth, Exchange, Fault, FaultClass, Phase};
use crate::oci::manifest::Descriptor;
use crate::oci::session::{header_str, http_fault, ErrorAnswer, OpenedBlob, ERROR_BODY_LIMIT};
use crate::oci::Session;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a blob download ended and what it cost.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: bool,
    /// Body bytes received, all attempts.
    pub bytes: u64,
    /// First failure to completion, when the blob was retried (a request sent again).
    pub retry_latency: Option<std::time::Duration>,
}

/// Bytes of a blob held from an earlier pull and their running digest: where the next
/// pull's download resumes (containerd's content store keeps a failed pull's ingests,
/// [`ContentStore`]).
#[derive(Clone)]
pub struct Held {
    offset: u64,
    hasher: Sha256,
}

impl Held {
    /// Bytes held.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} bytes)", self.offset)
    }
}

/// One blob to download: which, by which attempt rules, and the node's content store
/// when its client keeps partial blobs between pulls (containerd).
pub struct Job<'a> {
    pub blob: &'a Descriptor,
    pub rules: Attempts,
    pub store: Option<Arc<ContentStore>>,
}

/// Progress of one blob across its attempts.
struct Progress {
    /// Bytes of the blob held (and hashed) so far: where a resume starts.
    offset: u64,
    hasher: Sha256,
    /// Bytes received in all attempts.
    received: u64,
    wasted: u64,
    /// Where what is held goes when the download ends, completed or not (also when its
    /// pull aborts it: dropping the download keeps its ingest, at no cost per chunk).
    ingest: Option<(Arc<ContentStore>, String)>,
    committed: bool,
}

impl Progress {
    /// Starts from what `store` holds of `digest`, if anything.
    fn new(store: Option<Arc<ContentStore>>, digest: &str) -> Progress {
        let held = store.as_ref().and_then(|s| s.take_partial(digest));
        let (offset, hasher) = match held {
            Some(h) => (h.offset, h.hasher),
            None => (0, Sha256::new()),
        };
        Progress {
            offset,
            hasher,
            received: 0,
            wasted: 0,
            ingest: store.map(|s| (s, digest.to_string())),
            committed: false,
        }
    }

    /// Throws away what was held, as a client truncating its partial file.
    fn restart(&mut self) {
        self.wasted += self.offset;
        self.offset = 0;
        self.hasher = Sha256::new();
    }

    /// Share of the blob held, 0 to 1 (0 for an empty blob).
    fn fraction(&self, size: u64) -> f64 {
        if size == 0 {
            0.0
        } else {
            self.offset as f64 / size as f64
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let Some((store, digest)) = &self.ingest else {
            return;
        };
        if self.committed {
            store.commit(digest);
        } else if self.offset > 0 {
            let hasher = std::mem::replace(&mut self.hasher, Sha256::new());
            store.keep_partial(
                digest,
                Held {
                    offset: self.offset,
                    hasher,
                },
            );
        }
    }
}

/// containerd reopens at the offset after a short body without using up an
/// attempt, as long as each reopen makes progress (at most `eof_reopens` in a
/// row without). This tracks the reopens in a row.
#[derive(Default)]
struct Reopens {
    /// Reopens since the last one that made progress.
    without_progress: u32,
    /// The offset of the last reopen, while the next GET is one.
    at: Option<u64>,
}

impl Reopens {
    /// Whether the next GET reopens (and so costs no attempt).
    fn pending(&self) -> bool {
        self.at.is_some()
    }

    /// Whether a short body that stopped at `offset` may be reopened, counting it if so.
    fn allow(&mut self, offset: u64, limit: u32) -> bool {
        if self.at.is_some_and(|at| offset > at) {
            self.without_progress = 0;
        }
        if self.without_progress < limit {
            self.without_progress += 1;
            self.at = Some(offset);
            true
        } else {
            false
        }
    }
}

/// A failed attempt: its fault, and whether the client tries the blob again for it.
struct Failed {
    fault: Fault,
    retry: bool,
}

impl Failed {
    /// A transport fault (refused, reset, cut, timeout, a redirect gone wrong): retried
    /// by an attempt loop (moby's `retryOnError` lets them through).
    fn transport(fault: Fault) -> Failed {
        Failed { fault, retry: true }
    }
}

/// Downloads one blob, retrying as `job.rules` and the profile say; reports faults,
/// retries and the blob's end.
pub async fn blob(
    ctx: &FleetContext,
    session: &Session,
    job: Job<'_>,
    bandwidth: Option<&Bandwidth>,
    events: &Sink,
    cluster: u32,
) -> Outcome {
    let (blob, rules) = (job.blob, job.rules);
    let profile = &ctx.profile;
    let started = Instant::now();
    let mut first_failure: Option<Instant> = None;
    let mut p = Progress::new(job.store, &blob.digest);
    let mut attempts = 0;
    let mut ok = false;
    let mut reopens = Reopens::default();
    loop {
        // A reopen is part of the attempt it continues; every way out of an attempt
        // that does not reopen checks the attempts left.
        if !reopens.pending() {
            attempts += 1;
            if !rules.resume && p.offset > 0 {
                // dockerd's config: each attempt a fresh read from byte 0.
                p.restart();
            }
        }
        let resumed = p.offset > 0;
        let sent = Sent {
            events,
            cluster,
            first_failure: &mut first_failure,
        };
        let result = match attempt(ctx, session, blob, &rules, bandwidth, &mut p, sent).await {
            Ok(()) => verify(ctx, blob, &mut p).map_err(|fault| Failed {
                fault,
                retry: profile.digest_retry_only_after_resume && resumed,
            }),
            Err(f) => Err(f),
        };
        let failed = match result {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(f) => f,
        };
        // The retry latency starts at the first failure that is retried: a blob that
        // fails without one cost no retry.
        let failed_at = Instant::now();
        let progress = p.fraction(blob.size);
        let class = failed.fault.class;
        if class == FaultClass::UnexpectedEof && reopens.allow(p.offset, profile.eof_reopens) {
            first_failure.get_or_insert(failed_at);
            blob_fault(events, failed.fault, cluster).await;
            let _ = events.send(Event::Retry { class, progress }).await;
            continue;
        }
        reopens = Reopens::default();
        blob_fault(events, failed.fault, cluster).await;
        if !failed.retry || attempts >= rules.max {
            break;
        }
        first_failure.get_or_insert(failed_at);
        let _ = events.send(Event::Retry { class, progress }).await;
        tokio::time::sleep(rules.delay_after(attempts)).await;
    }
    p.committed = ok;
    let now = Instant::now();
    let retry_latency = first_failure.map(|f| now - f);
    let _ = events
        .send(Event::LayerDone {
            ok,
            took: now - started,
            attempts,
            retry_latency,
            wasted: p.wasted,
        })
        .await;
    Outcome {
        ok,
        bytes: p.received,
        retry_latency,
    }
}

/// Where an attempt reports the requests it sends again, and the blob's first failure.
struct Sent<'a> {
    events: &'a Sink,
    cluster: u32,
    first_failure: &'a mut Option<Instant>,
}

/// One attempt: the GET (twice for dockerd when the first fails from byte 0), then the
/// body read to its end into the hasher.
async fn attempt(
    ctx: &FleetContext,
    session: &Session,
    blob: &Descriptor,
    rules: &Attempts,
    bandwidth: Option<&Bandwidth>,
    p: &mut Progress,
    mut sent: Sent<'_>,
) -> Result<(), Failed> {
    let (events, cluster) = (sent.events, sent.cluster);
    if p.offset == blob.size && p.ingest.is_some() {
        // An ingest already whole is committed without a request (remotes/handlers.go).
        return Ok(());
    }
    let gets = if p.offset == 0 {
        rules.gets_per_failure.max(1)
    } else {
        1
    };
    let mut tries = 0;
    let (ex, skip) = loop {
        tries += 1;
        match open(ctx, session, blob, p, &mut sent).await {
            Ok(opened) => break opened,
            Err(failed) if tries < gets => {
                // dockerd swallows this one (pull_v2.go, the size `Seek`) and GETs again at once.
                sent.first_failure.get_or_insert_with(Instant::now);
                let class = failed.fault.class;
                blob_fault(events, failed.fault, cluster).await;
                let progress = p.fraction(blob.size);
                let _ = events.send(Event::Retry { class, progress }).await;
            }
            Err(failed) => return Err(failed),
        }
    };
    // Where the body starts in the blob: 0 for a 200, the offset for a 206.
    let starts_at = p.offset - skip;
    let digest_retry = ctx.profile.digest_retry_only_after_resume && p.offset > 0;
    let size_failure = |fault| Failed {
        fault,
        retry: digest_retry,
    };
    if let Some(length) = content_length(&ex.headers) {
        if length != blob.size.saturating_sub(starts_at) {
            // The registry serves another size than the descriptor's: no resume can help.
            drop(ex.body);
            return Err(size_failure(size_mismatch(
                blob,
                starts_at.saturating_add(length),
                p,
            )));
        }
    }
    let framed = content_length(&ex.headers).is_some() || is_chunked(&ex.headers);
    read_body(ctx, blob, ex.body, skip, bandwidth, p)
        .await
        .map_err(|fault| {
            if fault.class == FaultClass::DigestMismatch {
                size_failure(fault)
            } else {
                Failed::transport(fault)
            }
        })?;
    if p.offset < blob.size {
        if framed {
            // The body came in full (its framing said where it ends): a shorter blob.
            return Err(size_failure(size_mismatch(blob, p.offset, p)));
        }
        // A body delimited by the connection's close that ended early: maybe a cut.
        return Err(Failed::transport(Fault::new(
            FaultClass::UnexpectedEof,
            Phase::Body,
            format!("body ended at byte {} of {}", p.offset, blob.size),
        )));
    }
    Ok(())
}

/// One GET of the blob from `p.offset`, up to a response whose body can be read (and
/// how many of its leading bytes to skip). A request that fails after a resume makes
/// dockerd throw the partial blob away and try again whatever the failure.
async fn open(
    ctx: &FleetContext,
    session: &Session,
    blob: &Descriptor,
    p: &mut Progress,
    sent: &mut Sent<'_>,
) -> Result<(Exchange, u64), Failed> {
    let (events, cluster) = (sent.events, sent.cluster);
    let restarts = p.offset > 0 && ctx.profile.resume_failure_restarts;
    let restart = |p: &mut Progress, fault: Fault| {
        p.restart();
        Failed { fault, retry: true }
    };
    let (ex, storage) = match session
        .open_blob(&blob.digest, &blob.media_type, p.offset, blob.size)
        .await
    {
        Ok(OpenedBlob {
            exchange,
            first_resend,
            storage,
        }) => {
            // The request went more than once (containerd's resends): the blob's first failure.
            if let Some(at) = first_resend {
                sent.first_failure.get_or_insert(at);
            }
            (exchange, storage)
        }
        Err(fault) if restarts => return Err(restart(p, fault)),
        Err(fault) => return Err(Failed::transport(fault)),
    };
    match check_response(ctx, blob, ex.status, &ex.headers, p, events, cluster).await {
        Ok(skip) => Ok((ex, skip)),
        // A Range not honoured: dockerd has restarted and tries again; containerd fails.
        Err(Refused::Fault(fault)) => Err(Failed {
            fault,
            retry: ctx.profile.range_ignored == RangeIgnored::RestartAttempt,
        }),
        Err(Refused::Status(status)) => {
            let body = net::read_small(ex.body, ERROR_BODY_LIMIT, ctx.profile.timeouts.stall)
                .await
                .unwrap_or_default();
            let what = format!("GET blob {}", blob.digest);
            // The storage a redirect led to answered: its fault, its error code. Whether
            // it is retried stays the profile's rule for the status, as the clients decide.
            let fault = match &storage {
                Some(host) => crate::oci::storage::error_fault(status, &body, host, &what),
                None => http_fault(status, &body, Phase::Request, &what),
            };
            if restarts {
                return Err(restart(p, fault));
            }
            let answer = ErrorAnswer::read(status, &ex.headers, &body);
            Err(Failed {
                fault,
                retry: ctx.profile.retries_status(&answer),
            })
        }
    }
}

/// The response's `Content-Length`, when it has a valid one.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|v| v.trim().parse().ok())
}

/// Whether the body is chunked (its end is marked, so a short one is complete).
fn is_chunked(headers: &http::HeaderMap) -> bool {
    header_str(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// The blob served has `served` bytes, not the descriptor's size: a
/// `digest_mismatch` (the contract's class for sizes), and what was held is dropped.
fn size_mismatch(blob: &Descriptor, served: u64, p: &mut Progress) -> Fault {
    p.restart();
    Fault::new(
        FaultClass::DigestMismatch,
        Phase::Verify,
        format!(
            "{}: size {} expected (descriptor), {served} served",
            blob.digest, blob.size
        ),
    )
}

/// Why a blob response is not read.
enum Refused {
    /// An error status: its body tells why.
    Status(StatusCode),
    /// A response the profile will not use (a Range not honoured).
    Fault(Fault),
}

/// Checks the response to a GET from `p.offset`; returns how many leading body
/// bytes to discard (a 200 to a Range request, when the profile reads past them).
async fn check_response(
    ctx: &FleetContext,
    blob: &Descriptor,
    status: StatusCode,
    headers: &http::HeaderMap,
    p: &mut Progress,
    events: &Sink,
    cluster: u32,
) -> Result<u64, Refused> {
    let asked_from = p.offset;
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = header_str(headers, "content-range");
            if content_range_starts_at(range.as_deref(), asked_from, blob.size) {
                return Ok(0);
            }
            // dockerd truncates; containerd's ingest keeps what it held.
            if ctx.profile.range_ignored == RangeIgnored::RestartAttempt {
                p.restart();
            }
            Err(Refused::Fault(Fault::new(
                FaultClass::RangeNotHonoured,
                Phase::Request,
                format!("asked bytes={asked_from}-, got Content-Range {range:?}"),
            )))
        }
        StatusCode::OK if asked_from > 0 => match ctx.profile.range_ignored {
            RangeIgnored::RestartAttempt => {
                p.restart();
                Err(Refused::Fault(Fault::new(
                    FaultClass::RangeNotHonoured,
                    Phase::Request,
                    format!(
                        "expected HTTP 206 from byte range request bytes={asked_from}-, got 200"
                    ),
                )))
            }
            RangeIgnored::DiscardPrefix => {
                // The body restarts at byte 0: read past what is already held.
                let fault = Fault::new(
                    FaultClass::RangeNotHonoured,
                    Phase::Request,
                    format!(
                        "range bytes={asked_from}- answered with 200; discarding {asked_from} bytes"
                    ),
                );
                blob_fault(events, fault, cluster).await;
                Ok(asked_from)
            }
        },
        StatusCode::OK => Ok(0),
        status => Err(Refused::Status(status)),
    }
}

/// Reads `body` to its end: the first `skip` bytes are counted as wasted, the
/// rest hashed and held; a capped node waits for its link after each chunk.
async fn read_body(
    ctx: &FleetContext,
    blob: &Descriptor,
    mut body: net::Body,
    mut skip: u64,
    bandwidth: Option<&Bandwidth>,
    p: &mut Progress,
) -> Result<(), Fault> {
    let verify = ctx.profile.verify_digest;
    while let Some(data) = next_chunk(&mut body, ctx.profile.timeouts.stall, blob, p).await? {
        let len = data.len();
        ctx.gauges.add_bytes(len);
        p.received += len as u64;
        let mut chunk = &data[..];
        if skip > 0 {
            let n = skip.min(len as u64) as usize;
            skip -= n as u64;
            p.wasted += n as u64;
            chunk = &chunk[n..];
        }
        if verify {
            p.hasher.update(chunk);
        }
        p.offset += chunk.len() as u64;
        if p.offset > blob.size {
            // More than the descriptor's size (a body without Content-Length): stop reading.
            return Err(size_mismatch(blob, p.offset, p));
        }
        // Free the chunk before waiting for the link, so a throttled download holds no data.
        drop(data);
        if let Some(link) = bandwidth {
            link.take(len).await;
        }
    }
    Ok(())
}

/// The next data chunk of `body` (`None` at its end), waiting at most `stall`
/// for it; frames without data (trailers) are skipped.
async fn next_chunk(
    body: &mut net::Body,
    stall: Option<Duration>,
    blob: &Descriptor,
    p: &Progress,
) -> Result<Option<Bytes>, Fault> {
    loop {
        let frame = match stall {
            None => body.frame().await,
            Some(limit) => match tokio::time::timeout(limit, body.frame()).await {
                Ok(f) => f,
                Err(_) => {
                    return Err(Fault::new(
                        FaultClass::ReadTimeout,
                        Phase::Body,
                        format!("no body byte for {limit:?} at offset {}", p.offset),
                    ))
                }
            },
        };
        match frame {
            None => return Ok(None),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
            Some(Err(e)) => {
                let mut fault = net::classify::from_error(&e, Phase::Body);
                fault.detail = format!("at byte {} of {}: {}", p.offset, blob.size, fault.detail);
                return Err(fault);
            }
        }
    }
}

/// Checks the held bytes against the descriptor's size and digest.
fn verify(ctx: &FleetContext, blob: &Descriptor, p: &mut Progress) -> Result<(), Fault> {
    if p.offset != blob.size {
        let held = p.offset;
        p.restart();
        return Err(Fault::new(
            FaultClass::DigestMismatch,
            Phase::Verify,
            format!(
                "{}: got {held} bytes, descriptor says {}",
                blob.digest, blob.size
            ),
        ));
    }
    if !ctx.profile.verify_digest {
        return Ok(());
    }
    let hasher = std::mem::replace(&mut p.hasher, Sha256::new());
    let actual = crate::digest::format_sha256(&hasher.finalize());
    if actual == blob.digest {
        Ok(())
    } else {
        p.restart();
        Err(Fault::new(
            FaultClass::DigestMismatch,
            Phase::Verify,
            format!("expected {}, got {actual}", blob.digest),
        ))
    }
}

/// Reports a fault of a blob request to the recorder.
async fn blob_fault(events: &Sink, fault: Fault, cluster: u32) {
    let event = Event::Fault {
        fault,
        kind: ExchangeKind::Blob,
        cluster,
        at: Instant::now(),
    };
    let _ = events.send(event).await;
}

/// `bytes <start>-<end>/<total>` with `start == offset` (and total == size when known).
fn content_range_starts_at(header: Option<&str>, offset: u64, size: u64) -> bool {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((range, total)) = spec.split_once('/') else {
        return false;
    };
    let Some((start, end)) = range.split_once('-') else {
        return false;
    };
    let (Ok(start), Ok(end)) = (start.trim().parse::<u64>(), end.trim().parse::<u64>()) else {
        return false;
    };
    let total_ok = total.trim() == "*"
        || total
            .trim()
            .parse::<u64>()
            .map(|t| t == size)
            .unwrap_or(false);
    start == offset && end >= start && total_ok
}

#[cfg(test)]
mod tests {
    use super::content_range_starts_at;

    #[test]
    fn content_range_must_start_at_the_offset() {
        assert!(content_range_starts_at(
            Some("bytes 100-999/1000"),
            100,
            1000
        ));
        assert!(!content_range_starts_at(
            Some("bytes 0-999/1000"),
            100,
            1000
        ));
        assert!(!content_range_starts_at(
            Some("bytes 100-999/2000"),
            100,
            1000
        ));
        assert!(!content_range_starts_at(None, 100, 1000));
        assert!(!content_range_starts_at(Some("garbage"), 100, 1000));
    }
}
