//! One blob download with the profile's retry rules: attempts, backoff,
//! Range resume, what to do when Range is ignored, and digest verification.
//!
//! The per-chunk path is the digest update, one atomic add and (when the
//! node's bandwidth is capped) the link booking; nothing else.

use super::profile::{Profile, RangeIgnored};
use super::FleetContext;
use crate::metrics::{Event, ExchangeKind, Sink};
use crate::net::{self, Bandwidth, Fault, FaultClass, Phase};
use crate::oci::manifest::Descriptor;
use crate::oci::session::{header_str, http_fault};
use crate::oci::Session;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::time::Instant;

/// How a layer ended and what it cost.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: bool,
    /// Body bytes received, all attempts.
    pub bytes: u64,
    /// First failure to completion, when the layer failed at least once.
    pub retry_latency: Option<std::time::Duration>,
}

/// Progress of one layer across its attempts.
struct Progress {
    /// Bytes of the blob held (and hashed) so far: where a resume starts.
    offset: u64,
    hasher: Sha256,
    /// Bytes received in all attempts.
    received: u64,
    wasted: u64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            offset: 0,
            hasher: Sha256::new(),
            received: 0,
            wasted: 0,
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

/// Downloads one blob, retrying as the profile says; reports faults, retries and the layer's end.
pub async fn layer(
    ctx: &FleetContext,
    session: &Session,
    blob: &Descriptor,
    bandwidth: Option<&Bandwidth>,
    events: &Sink,
    cluster: u32,
) -> Outcome {
    let profile = &ctx.profile;
    let started = Instant::now();
    let mut first_failure: Option<Instant> = None;
    let mut p = Progress::new();
    let mut attempts = 0;
    let mut ok = false;
    let mut reopens = Reopens::default();
    while attempts < profile.max_attempts {
        if !reopens.pending() {
            attempts += 1;
        }
        let resumed = p.offset > 0;
        let result = match attempt(ctx, session, blob, bandwidth, &mut p, events, cluster).await {
            Ok(()) => verify(ctx, blob, &mut p),
            Err(f) => Err(f),
        };
        let fault = match result {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(f) => f,
        };
        first_failure.get_or_insert_with(Instant::now);
        let progress = p.fraction(blob.size);
        if fault.class == FaultClass::UnexpectedEof && reopens.allow(p.offset, profile.eof_reopens)
        {
            blob_fault(events, fault, cluster).await;
            let _ = events
                .send(Event::Retry {
                    class: FaultClass::UnexpectedEof,
                    progress,
                })
                .await;
            continue;
        }
        reopens = Reopens::default();
        let retry = retries(profile, fault.class, resumed);
        let class = fault.class;
        blob_fault(events, fault, cluster).await;
        if !retry || attempts >= profile.max_attempts {
            break;
        }
        let _ = events.send(Event::Retry { class, progress }).await;
        tokio::time::sleep(profile.delay_after(attempts)).await;
    }
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

/// Whether a layer whose attempt failed with `class` is tried again.
fn retries(profile: &Profile, class: FaultClass, resumed: bool) -> bool {
    match class {
        // dockerd retries a bad digest only when the attempt had resumed (the resume may
        // have stitched two different bodies); the retry starts from zero.
        FaultClass::DigestMismatch => profile.digest_retry_only_after_resume && resumed,
        class => profile.retries(class),
    }
}

/// One GET of the blob from `p.offset`, read to its end into the hasher.
async fn attempt(
    ctx: &FleetContext,
    session: &Session,
    blob: &Descriptor,
    bandwidth: Option<&Bandwidth>,
    p: &mut Progress,
    events: &Sink,
    cluster: u32,
) -> Result<(), Fault> {
    let ex = session
        .open_blob(&blob.digest, &blob.media_type, p.offset)
        .await?;
    let skip = check_response(ctx, blob, ex.status, &ex.headers, p, events, cluster).await;
    let skip = match skip {
        Ok(skip) => skip,
        Err(Refused::Fault(fault)) => return Err(fault),
        Err(Refused::Status(status)) => {
            let body = net::read_small(ex.body, 64 << 10, ctx.profile.timeouts.stall)
                .await
                .unwrap_or_default();
            return Err(http_fault(
                status,
                &body,
                Phase::Request,
                &format!("GET blob {}", blob.digest),
            ));
        }
    };
    // Where the body starts in the blob: 0 for a 200, the offset for a 206.
    let starts_at = p.offset - skip;
    if let Some(length) = content_length(&ex.headers) {
        if length != blob.size.saturating_sub(starts_at) {
            // The registry serves another size than the descriptor's: no resume can help.
            drop(ex.body);
            return Err(size_mismatch(blob, starts_at.saturating_add(length), p));
        }
    }
    let framed = content_length(&ex.headers).is_some() || is_chunked(&ex.headers);
    read_body(ctx, blob, ex.body, skip, bandwidth, p).await?;
    if p.offset < blob.size {
        if framed {
            // The body came in full (its framing said where it ends): a shorter blob.
            return Err(size_mismatch(blob, p.offset, p));
        }
        // A body delimited by the connection's close that ended early: maybe a cut.
        return Err(Fault::new(
            FaultClass::UnexpectedEof,
            Phase::Body,
            format!("body ended at byte {} of {}", p.offset, blob.size),
        ));
    }
    Ok(())
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
            p.restart();
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
