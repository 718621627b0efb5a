//! The per-object checks of `pullstorm verify`: what one tag, manifest or blob
//! answers ([`TagAnswer`], [`ManifestAnswer`], [`HeadAnswer`], [`GetAnswer`], gathered
//! over a node's [`Session`]), and the pure judgements that turn answers into findings
//! (`judge_*`, unit-tested with synthetic answers).
//!
//! A blob is asked twice, HEAD then GET, because the two take different paths in a
//! registry: a HEAD is answered from the blob-descriptor cache when it has an entry,
//! a GET must read the data. A pusher trusts the HEAD, a puller needs the GET; a
//! registry whose two answers differ accepts pushes it cannot serve.

use super::finding::{Finding, FindingKind, ObjectKind};
use crate::digest::{format_sha256, sha256_digest};
use crate::metrics::ExchangeKind;
use crate::net::{self, classify, Fault, FaultClass, Phase};
use crate::oci::manifest::{Descriptor, Document};
use crate::oci::request;
use crate::oci::session::{ErrorBody, Session, ERROR_BODY_LIMIT};
use crate::oci::storage::StorageError;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Largest manifest read (distribution refuses manifests above 4 MiB as well).
const MANIFEST_LIMIT: usize = 4 << 20;

/// What a GET of a manifest (by tag or digest) answered.
#[derive(Debug, Clone, Default)]
pub struct ManifestAnswer {
    /// `None`: no response (the transport error is in `error`).
    pub status: Option<u16>,
    /// The registry's error codes, comma separated, for an error status.
    pub code: Option<String>,
    pub content_type: Option<String>,
    /// `Docker-Content-Digest`, as sent.
    pub content_digest: Option<String>,
    /// The body of a 2xx.
    pub body: Bytes,
    /// A transport error, before or during the body.
    pub error: Option<String>,
    /// The token endpoint refused the credentials (or their absence): nothing about
    /// this object is known.
    pub auth_refused: bool,
}

/// What a HEAD of a blob answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadAnswer {
    pub status: Option<u16>,
    pub content_length: Option<u64>,
    pub error: Option<String>,
    /// `host:port` of the storage a redirect led to, when it answered.
    pub storage: Option<String>,
}

/// What a GET of a blob answered, its body streamed through sha256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetAnswer {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub content_length: Option<u64>,
    /// Body bytes received (of a 2xx).
    pub received: u64,
    /// sha256 of the body, when it was read to its end.
    pub digest: Option<String>,
    /// Why the body (or the request) ended badly.
    pub error: Option<String>,
    /// `host:port` of the storage a redirect led to, when it answered (object storage):
    /// `code` is then the storage's S3 error code.
    pub storage: Option<String>,
}

fn success(status: Option<u16>) -> bool {
    status.is_some_and(|s| (200..300).contains(&s))
}

fn status_text(status: Option<u16>) -> String {
    status.map_or_else(|| "no response".to_string(), |s| s.to_string())
}

/// A finding about a manifest answer with an error status (404: `manifest_unknown`) or none.
fn manifest_failed(
    object: ObjectKind,
    repository: &str,
    reference: &str,
    a: &ManifestAnswer,
) -> Finding {
    let kind = match a.status {
        None => FindingKind::RequestFailed,
        Some(404) => FindingKind::ManifestUnknown,
        Some(_) => FindingKind::HttpError,
    };
    let mut f = Finding::new(kind, object, repository, reference);
    f.status = a.status;
    f.code = a.code.clone();
    f.detail = a.error.clone().unwrap_or_default();
    f
}

/// The digest a tag points at, or why it does not resolve. The registry's
/// `Docker-Content-Digest` is what a client pins; bytes that hash to something else
/// are a `digest_mismatch` (and the header's digest is still checked by digest).
pub fn judge_tag(
    repository: &str,
    tag: &str,
    a: &ManifestAnswer,
) -> (Option<String>, Vec<Finding>) {
    if !success(a.status) {
        let f = manifest_failed(ObjectKind::Tag, repository, tag, a);
        return (None, vec![f]);
    }
    if let Some(e) = &a.error {
        let mut f = Finding::new(FindingKind::RequestFailed, ObjectKind::Tag, repository, tag);
        f.status = a.status;
        f.detail = e.clone();
        return (None, vec![f]);
    }
    let actual = sha256_digest(&a.body);
    match a
        .content_digest
        .as_deref()
        .filter(|d| crate::oci::name::is_sha256_digest(d))
    {
        Some(said) if said != actual => {
            let mut f = Finding::new(
                FindingKind::DigestMismatch,
                ObjectKind::Tag,
                repository,
                tag,
            );
            f.status = a.status;
            f.got_digest = Some(actual);
            f.detail = format!("Docker-Content-Digest says {said}");
            (Some(said.to_string()), vec![f])
        }
        Some(said) => (Some(said.to_string()), vec![]),
        None => (Some(actual), vec![]),
    }
}

/// A manifest fetched by `digest`: the document, when there is one to follow, and the
/// findings. `expected_size` is the size an index gave its child.
pub fn judge_manifest(
    repository: &str,
    object: ObjectKind,
    digest: &str,
    expected_size: Option<u64>,
    a: &ManifestAnswer,
) -> (Option<Document>, Vec<Finding>) {
    let finding = |kind| {
        let mut f = Finding::new(kind, object, repository, digest);
        f.status = a.status;
        f
    };
    if !success(a.status) {
        let f = manifest_failed(object, repository, digest, a);
        return (None, vec![f]);
    }
    if let Some(e) = &a.error {
        let mut f = finding(FindingKind::RequestFailed);
        f.detail = e.clone();
        return (None, vec![f]);
    }
    let mut findings = Vec::new();
    let actual = sha256_digest(&a.body);
    if digest.starts_with("sha256:") && actual != digest {
        let mut f = finding(FindingKind::DigestMismatch);
        f.got_digest = Some(actual);
        findings.push(f);
    }
    if let Some(size) = expected_size.filter(|s| *s != a.body.len() as u64) {
        let mut f = finding(FindingKind::SizeMismatch);
        f.expected_size = Some(size);
        f.got_size = Some(a.body.len() as u64);
        f.detail = "the index gives another size".into();
        findings.push(f);
    }
    match Document::parse(&a.body, a.content_type.as_deref()) {
        Ok(doc) => (Some(doc), findings),
        Err(e) => {
            let mut f = finding(FindingKind::MalformedManifest);
            f.detail = e;
            findings.push(f);
            (None, findings)
        }
    }
}

/// A blob's HEAD and GET against its descriptor.
pub fn judge_blob(
    repository: &str,
    object: ObjectKind,
    expected: &Descriptor,
    head: &HeadAnswer,
    get: &GetAnswer,
) -> Vec<Finding> {
    let digest = expected.digest.as_str();
    let finding = |kind, method: &str, status| {
        let mut f = Finding::new(kind, object, repository, digest);
        f.method = method.to_string();
        f.status = status;
        f
    };
    let mut findings = Vec::new();
    match (success(head.status), success(get.status)) {
        // The storage a redirect led to refused the GET: its code, its host.
        (_, false) if get.storage.is_some() && get.status.is_some() => {
            let mut f = finding(FindingKind::StorageError, "GET", get.status);
            f.code = get.code.clone();
            let host = get.storage.as_deref().unwrap_or_default();
            f.detail = match &get.error {
                Some(message) => format!(
                    "storage {host}: {message}; HEAD {}",
                    status_text(head.status)
                ),
                None => format!("storage {host}; HEAD {}", status_text(head.status)),
            };
            return vec![f];
        }
        (false, false) => {
            let both_unknown = head.status == Some(404) && get.status == Some(404);
            let kind = if both_unknown || get.status == Some(404) {
                FindingKind::BlobUnknown
            } else if get.status.is_none() {
                FindingKind::RequestFailed
            } else {
                FindingKind::HttpError
            };
            let mut f = finding(kind, "GET", get.status);
            f.code = get.code.clone();
            f.detail = match &get.error {
                Some(e) => format!("HEAD {}; {e}", status_text(head.status)),
                None => format!("HEAD {}", status_text(head.status)),
            };
            return vec![f];
        }
        (true, false) => {
            let kind = if get.status.is_none() {
                FindingKind::RequestFailed
            } else {
                FindingKind::HeadGetDisagree
            };
            let mut f = finding(kind, "GET", get.status);
            f.code = get.code.clone();
            let length = head
                .content_length
                .map(|n| format!(", {n} bytes"))
                .unwrap_or_default();
            f.detail = format!("HEAD said {}{length}", status_text(head.status));
            if let Some(e) = &get.error {
                f.detail.push_str(&format!("; {e}"));
            }
            return vec![f];
        }
        (false, true) => {
            let kind = if head.status.is_none() {
                FindingKind::RequestFailed
            } else {
                FindingKind::HeadGetDisagree
            };
            let mut f = finding(kind, "HEAD", head.status);
            f.detail = format!("GET said {}", status_text(get.status));
            if let Some(e) = &head.error {
                f.detail.push_str(&format!("; {e}"));
            }
            findings.push(f);
        }
        (true, true) => {
            if let Some(n) = head.content_length.filter(|n| *n != expected.size) {
                let mut f = finding(FindingKind::SizeMismatch, "HEAD", head.status);
                f.expected_size = Some(expected.size);
                f.got_size = Some(n);
                f.detail = "Content-Length".into();
                findings.push(f);
            }
        }
    }
    // The GET answered 2xx: its body against the descriptor.
    let detail = get.error.clone().unwrap_or_default();
    if get.received == 0 && expected.size > 0 {
        let mut f = finding(FindingKind::EmptyBody, "GET", get.status);
        f.expected_size = Some(expected.size);
        f.got_size = Some(0);
        f.detail = match get.content_length {
            Some(n) if detail.is_empty() => format!("Content-Length {n}"),
            Some(n) => format!("Content-Length {n}; {detail}"),
            None => detail,
        };
        findings.push(f);
    } else if get.received != expected.size {
        let mut f = finding(FindingKind::SizeMismatch, "GET", get.status);
        f.expected_size = Some(expected.size);
        f.got_size = Some(get.received);
        f.detail = detail;
        findings.push(f);
    } else if let Some(e) = &get.error {
        let mut f = finding(FindingKind::RequestFailed, "GET", get.status);
        f.detail = e.clone();
        findings.push(f);
    } else if let Some(actual) = get
        .digest
        .as_ref()
        .filter(|d| digest.starts_with("sha256:") && d.as_str() != digest)
    {
        let mut f = finding(FindingKind::DigestMismatch, "GET", get.status);
        f.got_digest = Some(actual.clone());
        findings.push(f);
    }
    findings
}

/// The registry's error codes in an error body, comma separated.
fn error_code(body: &[u8]) -> Option<String> {
    match ErrorBody::parse(body) {
        ErrorBody::Codes(codes) => Some(codes.join(",")),
        _ => None,
    }
}

fn header_u64(headers: &HeaderMap, name: http::header::HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

/// GET `/v2/<repo>/manifests/<reference>` with a puller's Accept types.
pub async fn get_manifest(session: &Session, reference: &str) -> ManifestAnswer {
    let stall = session.timeouts().stall;
    let url = match session.url(&request::manifest_path(session.repo(), reference)) {
        Ok(u) => u,
        Err(f) => return ManifestAnswer::failed(f),
    };
    let ex = match session
        .authorized(
            ExchangeKind::Manifest,
            Method::GET,
            &url,
            request::manifest_accept_headers(),
        )
        .await
    {
        Ok(ex) => ex,
        Err(f) => return ManifestAnswer::failed(f),
    };
    let status = ex.status;
    let mut answer = ManifestAnswer {
        status: Some(status.as_u16()),
        content_type: header_string(&ex.headers, "content-type"),
        content_digest: header_string(&ex.headers, "docker-content-digest"),
        ..Default::default()
    };
    let limit = if status.is_success() {
        MANIFEST_LIMIT
    } else {
        ERROR_BODY_LIMIT
    };
    match net::read_small(ex.body, limit, stall).await {
        Ok(body) if status.is_success() => answer.body = body,
        Ok(body) => answer.code = error_code(&body),
        Err(f) => answer.error = Some(f.detail),
    }
    answer
}

impl ManifestAnswer {
    /// No answer to the request itself. An HTTP class here is the token request's
    /// (a response to the request itself comes back with its status).
    fn failed(f: Fault) -> ManifestAnswer {
        ManifestAnswer {
            error: Some(format!("{}: {}", f.class, f.detail)),
            auth_refused: matches!(f.class, FaultClass::Http(401 | 403)),
            ..Default::default()
        }
    }
}

/// HEAD `/v2/<repo>/blobs/<digest>`: what a pusher asks before it uploads.
pub async fn head_blob(session: &Session, digest: &str) -> HeadAnswer {
    match session.head_blob(digest).await {
        Ok(opened) => HeadAnswer {
            status: Some(opened.exchange.status.as_u16()),
            content_length: header_u64(&opened.exchange.headers, http::header::CONTENT_LENGTH),
            error: None,
            storage: opened.storage,
        },
        Err(f) => head_failed(f),
    }
}

fn head_failed(f: Fault) -> HeadAnswer {
    HeadAnswer {
        error: Some(format!("{}: {}", f.class, f.detail)),
        ..Default::default()
    }
}

/// GET the blob (redirects followed) and stream its body through sha256: memory stays
/// one chunk whatever the blob's size; each chunk must come within the stall timeout.
pub async fn get_blob(session: &Session, expected: &Descriptor) -> GetAnswer {
    let stall = session.timeouts().stall.unwrap_or(Duration::from_secs(60));
    let opened = match session
        .open_blob(&expected.digest, &expected.media_type, 0, expected.size)
        .await
    {
        Ok(o) => o,
        Err(f) => {
            return GetAnswer {
                error: Some(format!("{}: {}", f.class, f.detail)),
                ..Default::default()
            }
        }
    };
    let ex = opened.exchange;
    let mut answer = GetAnswer {
        status: Some(ex.status.as_u16()),
        content_length: header_u64(&ex.headers, http::header::CONTENT_LENGTH),
        storage: opened.storage,
        ..Default::default()
    };
    if !ex.status.is_success() {
        match net::read_small(ex.body, ERROR_BODY_LIMIT, Some(stall)).await {
            Ok(body) if answer.storage.is_some() => {
                let error = StorageError::parse(&body);
                answer.code = error.as_ref().map(|e| e.code.clone());
                answer.error = error.and_then(|e| e.message);
            }
            Ok(body) => answer.code = error_code(&body),
            Err(f) => answer.error = Some(f.detail),
        }
        return answer;
    }
    let mut body = ex.body;
    let mut hash = Sha256::new();
    loop {
        match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                answer.error = Some(format!(
                    "read_timeout: no body byte for {stall:?} after {} bytes",
                    answer.received
                ));
                return answer;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let f = classify::from_error(&e, Phase::Body);
                answer.error = Some(format!(
                    "{}: {} after {} bytes",
                    f.class, f.detail, answer.received
                ));
                return answer;
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    hash.update(data);
                    answer.received += data.len() as u64;
                }
            }
        }
    }
    answer.digest = Some(format_sha256(&hash.finalize()));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn layer(size: u64) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: "sha256:aa".into(),
            size,
            platform: None,
        }
    }

    fn head(status: u16, length: u64) -> HeadAnswer {
        HeadAnswer {
            status: Some(status),
            content_length: Some(length),
            error: None,
            storage: None,
        }
    }

    fn get_ok(received: u64, digest: &str) -> GetAnswer {
        GetAnswer {
            status: Some(200),
            content_length: Some(received),
            received,
            digest: Some(digest.into()),
            ..Default::default()
        }
    }

    fn not_found(code: &str) -> GetAnswer {
        GetAnswer {
            status: Some(404),
            code: Some(code.into()),
            ..Default::default()
        }
    }

    fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
        findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_sound_blob_has_no_finding() {
        let f = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(200, 10),
            &get_ok(10, "sha256:aa"),
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_blob_gone_from_both_is_blob_unknown_with_the_registry_code() {
        let f = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(404, 0),
            &not_found("BLOB_UNKNOWN"),
        );
        assert_eq!(kinds(&f), [FindingKind::BlobUnknown]);
        assert_eq!(f[0].code.as_deref(), Some("BLOB_UNKNOWN"));
        assert_eq!(f[0].status, Some(404));
        assert_eq!(f[0].reference, "sha256:aa");
    }

    #[test]
    fn a_head_that_says_yes_and_a_get_that_says_no_disagree() {
        let f = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(200, 10),
            &not_found("BLOB_UNKNOWN"),
        );
        assert_eq!(kinds(&f), [FindingKind::HeadGetDisagree]);
        assert_eq!(f[0].code.as_deref(), Some("BLOB_UNKNOWN"));
        assert!(
            f[0].detail.contains("HEAD said 200, 10 bytes"),
            "{}",
            f[0].detail
        );
        let reverse = judge_blob(
            "r",
            ObjectKind::Config,
            &layer(10),
            &head(404, 0),
            &get_ok(10, "sha256:aa"),
        );
        assert_eq!(kinds(&reverse), [FindingKind::HeadGetDisagree]);
        assert_eq!(reverse[0].method, "HEAD");
    }

    #[test]
    fn a_200_without_bytes_is_an_empty_body() {
        let get = GetAnswer {
            status: Some(200),
            content_length: Some(10),
            received: 0,
            error: Some("unexpected_eof: early end after 0 bytes".into()),
            ..Default::default()
        };
        let f = judge_blob("r", ObjectKind::Layer, &layer(10), &head(200, 10), &get);
        assert_eq!(kinds(&f), [FindingKind::EmptyBody]);
        assert_eq!((f[0].expected_size, f[0].got_size), (Some(10), Some(0)));
        assert!(
            f[0].detail.starts_with("Content-Length 10; unexpected_eof"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn short_and_long_bodies_and_wrong_lengths_are_size_mismatches() {
        let short = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(200, 10),
            &get_ok(4, "sha256:x"),
        );
        assert_eq!(kinds(&short), [FindingKind::SizeMismatch]);
        assert_eq!(
            (short[0].expected_size, short[0].got_size),
            (Some(10), Some(4))
        );
        let head_lies = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(200, 7),
            &get_ok(10, "sha256:aa"),
        );
        assert_eq!(kinds(&head_lies), [FindingKind::SizeMismatch]);
        assert_eq!(head_lies[0].method, "HEAD");
    }

    #[test]
    fn bytes_of_the_right_length_that_hash_elsewhere_are_a_digest_mismatch() {
        let f = judge_blob(
            "r",
            ObjectKind::Layer,
            &layer(10),
            &head(200, 10),
            &get_ok(10, "sha256:bb"),
        );
        assert_eq!(kinds(&f), [FindingKind::DigestMismatch]);
        assert_eq!(f[0].got_digest.as_deref(), Some("sha256:bb"));
    }

    #[test]
    fn other_statuses_and_dead_requests_are_named_apart() {
        let denied = GetAnswer {
            status: Some(403),
            code: Some("DENIED".into()),
            ..Default::default()
        };
        assert_eq!(
            kinds(&judge_blob(
                "r",
                ObjectKind::Layer,
                &layer(1),
                &head(403, 0),
                &denied
            )),
            [FindingKind::HttpError]
        );
        let dead = GetAnswer {
            error: Some("connection_reset".into()),
            ..Default::default()
        };
        assert_eq!(
            kinds(&judge_blob(
                "r",
                ObjectKind::Layer,
                &layer(1),
                &head(200, 1),
                &dead
            )),
            [FindingKind::RequestFailed]
        );
    }

    #[test]
    fn a_refusal_by_the_storage_a_redirect_led_to_is_a_storage_error_with_its_code() {
        let refused = GetAnswer {
            status: Some(403),
            code: Some("InvalidObjectState".into()),
            error: Some("The operation is not valid for the object's storage class".into()),
            storage: Some("127.0.0.1:9000".into()),
            ..Default::default()
        };
        // The registry's HEAD (redirected to the storage's HEAD) said the blob is there.
        let f = judge_blob("r", ObjectKind::Layer, &layer(1), &head(200, 1), &refused);
        assert_eq!(kinds(&f), [FindingKind::StorageError]);
        assert_eq!(f[0].code.as_deref(), Some("InvalidObjectState"));
        assert_eq!(f[0].status, Some(403));
        assert_eq!(
            f[0].detail,
            "storage 127.0.0.1:9000: The operation is not valid for the object's storage class; HEAD 200"
        );
        // A transport failure on the way to the storage is a failed request, as elsewhere.
        let dead = GetAnswer {
            error: Some("connect_refused: storage 127.0.0.1:9000: connection refused".into()),
            ..Default::default()
        };
        let f = judge_blob("r", ObjectKind::Layer, &layer(1), &head(200, 1), &dead);
        assert_eq!(kinds(&f), [FindingKind::RequestFailed]);
    }

    fn manifest(status: u16, body: &'static [u8]) -> ManifestAnswer {
        ManifestAnswer {
            status: Some(status),
            body: Bytes::from_static(body),
            ..Default::default()
        }
    }

    #[test]
    fn a_tag_resolves_to_its_header_digest_and_a_missing_tag_is_manifest_unknown() {
        let mut a = manifest(200, b"");
        a.content_digest = Some(DIGEST.into());
        assert_eq!(judge_tag("r", "v1", &a), (Some(DIGEST.to_string()), vec![]));
        a.body = Bytes::from_static(b"{}");
        let (digest, f) = judge_tag("r", "v1", &a);
        assert_eq!(digest.as_deref(), Some(DIGEST));
        assert_eq!(kinds(&f), [FindingKind::DigestMismatch]);
        let mut missing = manifest(404, b"");
        missing.code = Some("MANIFEST_UNKNOWN".into());
        let (digest, f) = judge_tag("r", "v1", &missing);
        assert_eq!(digest, None);
        assert_eq!(kinds(&f), [FindingKind::ManifestUnknown]);
        assert_eq!(
            f[0].line(),
            "manifest_unknown tag r:v1: GET 404 MANIFEST_UNKNOWN"
        );
    }

    #[test]
    fn a_manifest_is_checked_against_its_digest_its_size_and_its_shape() {
        let body: &'static [u8] = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:cc","size":3},"layers":[]}"#;
        let digest = sha256_digest(body);
        let (doc, f) = judge_manifest(
            "r",
            ObjectKind::Manifest,
            &digest,
            Some(body.len() as u64),
            &manifest(200, body),
        );
        assert!(doc.is_some() && f.is_empty(), "{f:?}");
        let (_, f) = judge_manifest(
            "r",
            ObjectKind::IndexChild,
            DIGEST,
            Some(1),
            &manifest(200, body),
        );
        assert_eq!(
            kinds(&f),
            [FindingKind::DigestMismatch, FindingKind::SizeMismatch]
        );
        let (doc, f) = judge_manifest("r", ObjectKind::Manifest, DIGEST, None, &manifest(200, b""));
        assert!(doc.is_none());
        assert_eq!(kinds(&f), [FindingKind::MalformedManifest]);
        let (doc, f) = judge_manifest("r", ObjectKind::Manifest, DIGEST, None, &manifest(404, b""));
        assert!(doc.is_none());
        assert_eq!(kinds(&f), [FindingKind::ManifestUnknown]);
    }
}
