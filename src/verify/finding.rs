//! What `pullstorm verify` found: one [`Finding`] per disagreement between what the
//! registry says it holds and what it serves, and the [`Report`] that gathers them.
//!
//! The kinds are named after what a client meets, so a finding reads like the
//! failed pull it predicts: `blob_unknown` is the `BLOB_UNKNOWN` a pull gets, `empty_body`
//! is the 200 with no bytes of goharbor/harbor#19695, `head_get_disagree` is a HEAD that
//! says a blob exists while its GET says it does not (the stale blob-descriptor cache of
//! distribution/distribution#4269: a push skips the blob, a pull fails).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What is wrong with one object.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A tag or a manifest digest answered 404 (the registry's `MANIFEST_UNKNOWN`).
    ManifestUnknown,
    /// A blob answered 404 to HEAD and GET (`BLOB_UNKNOWN`).
    BlobUnknown,
    /// HEAD and GET disagree on whether the blob exists (one 2xx, the other an error).
    HeadGetDisagree,
    /// A 2xx whose body had no bytes where the descriptor promised some.
    EmptyBody,
    /// A size other than the descriptor's: a `Content-Length`, or the bytes a body gave.
    SizeMismatch,
    /// Bytes that do not hash to the digest they were asked for by.
    DigestMismatch,
    /// A manifest that cannot be read as a manifest or an index.
    MalformedManifest,
    /// Any other error status (401, 403, 500, ...), with the registry's code when it sent one.
    HttpError,
    /// The exchange failed (reset, timeout, refused) after the registry had answered the ping.
    RequestFailed,
    /// The storage a blob redirect led to (object storage: a presigned URL) answered the
    /// GET with an error status; `code` is the storage's S3 error code (`AccessDenied`,
    /// `SignatureDoesNotMatch`, `NoSuchKey`, `InvalidObjectState`, ...), the detail names
    /// the storage host. The registry said the blob exists; a pull fails all the same.
    StorageError,
}

impl FindingKind {
    /// The name used on the console and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::ManifestUnknown => "manifest_unknown",
            FindingKind::BlobUnknown => "blob_unknown",
            FindingKind::HeadGetDisagree => "head_get_disagree",
            FindingKind::EmptyBody => "empty_body",
            FindingKind::SizeMismatch => "size_mismatch",
            FindingKind::DigestMismatch => "digest_mismatch",
            FindingKind::MalformedManifest => "malformed_manifest",
            FindingKind::HttpError => "http_error",
            FindingKind::RequestFailed => "request_failed",
            FindingKind::StorageError => "storage_error",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of object a finding is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A tag, before it resolved to a digest.
    Tag,
    /// A manifest by digest: the image's own, or an image a tag pointed at.
    Manifest,
    /// A manifest named by an index.
    IndexChild,
    /// An image's config blob.
    Config,
    /// An image's layer blob.
    Layer,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Tag => "tag",
            ObjectKind::Manifest => "manifest",
            ObjectKind::IndexChild => "index child",
            ObjectKind::Config => "config",
            ObjectKind::Layer => "layer",
        }
    }
}

/// One inconsistency, with everything needed to find the object again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    pub object: ObjectKind,
    pub repository: String,
    /// The digest asked for, or for a tag that did not resolve, the tag.
    pub reference: String,
    /// The request that showed it (`HEAD`, `GET`).
    pub method: String,
    /// The status of that request; `None` when no response came.
    pub status: Option<u16>,
    /// The registry's error code from the JSON error body (`BLOB_UNKNOWN`, ...).
    pub code: Option<String>,
    /// The size the descriptor (or the HEAD) promised, for size findings.
    pub expected_size: Option<u64>,
    /// The size found (header or bytes received), for size findings.
    pub got_size: Option<u64>,
    /// The digest the bytes hashed to, for `digest_mismatch`.
    pub got_digest: Option<String>,
    /// What else is known, in words (the other request's answer, the transport error).
    pub detail: String,
}

impl Finding {
    /// A finding about `reference` in `repository`, the rest filled in by the caller.
    pub fn new(kind: FindingKind, object: ObjectKind, repository: &str, reference: &str) -> Self {
        Finding {
            kind,
            object,
            repository: repository.to_string(),
            reference: reference.to_string(),
            method: "GET".to_string(),
            status: None,
            code: None,
            expected_size: None,
            got_size: None,
            got_digest: None,
            detail: String::new(),
        }
    }

    /// The console line: kind, object, where, and what the registry said.
    pub fn line(&self) -> String {
        let separator = if self.object == ObjectKind::Tag {
            ':'
        } else {
            '@'
        };
        let mut line = format!(
            "{} {} {}{separator}{}: {}",
            self.kind,
            self.object.name(),
            self.repository,
            self.reference,
            self.method
        );
        match self.status {
            Some(s) => line.push_str(&format!(" {s}")),
            None => line.push_str(" no response"),
        }
        if let Some(code) = &self.code {
            line.push_str(&format!(" {code}"));
        }
        if let (Some(e), Some(g)) = (self.expected_size, self.got_size) {
            line.push_str(&format!(", expected {e} bytes, got {g}"));
        }
        if let Some(d) = &self.got_digest {
            line.push_str(&format!(", bytes hash to {d}"));
        }
        if !self.detail.is_empty() {
            line.push_str(&format!(" ({})", self.detail));
        }
        crate::redact::text(&line)
    }
}

/// How much was checked, so "no findings" can be told from "nothing checked".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Checked {
    /// Tags resolved (references given by digest are not counted).
    pub tags: u64,
    /// Manifests and indexes fetched by digest.
    pub manifests: u64,
    /// Distinct blobs (per repository) checked with HEAD and GET.
    pub blobs: u64,
    /// Blob bytes read and hashed.
    pub blob_bytes: u64,
}

/// The whole answer of one `verify`: the JSON report's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// The registry's URL, any password masked.
    pub registry: String,
    /// The references checked, as given.
    pub images: Vec<String>,
    /// True when there is no finding.
    pub consistent: bool,
    pub checked: Checked,
    pub findings: Vec<Finding>,
    /// Seconds the check took.
    pub duration_s: f64,
}

impl Report {
    /// Findings in a stable order (by repository, reference, kind), so two runs compare.
    pub fn new(
        registry: &str,
        images: Vec<String>,
        checked: Checked,
        mut findings: Vec<Finding>,
        duration_s: f64,
    ) -> Report {
        findings.sort_by(|a, b| {
            (&a.repository, &a.reference, a.kind, &a.method).cmp(&(
                &b.repository,
                &b.reference,
                b.kind,
                &b.method,
            ))
        });
        findings.dedup();
        Report {
            registry: crate::redact::text(registry),
            images,
            consistent: findings.is_empty(),
            checked,
            findings,
            duration_s,
        }
    }

    /// The closing line: what was checked and how many findings of each kind.
    pub fn summary(&self) -> String {
        let c = &self.checked;
        let what = format!(
            "{} tag(s), {} manifest(s), {} blob(s) ({})",
            c.tags,
            c.manifests,
            c.blobs,
            crate::human::bytes(c.blob_bytes as f64)
        );
        if self.consistent {
            return format!("verify: consistent: {what} checked, no findings");
        }
        let mut counts: Vec<(FindingKind, usize)> = Vec::new();
        for f in &self.findings {
            match counts.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.kind, 1)),
            }
        }
        counts.sort();
        let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "verify: INCONSISTENT: {} finding(s) ({}); {what} checked",
            self.findings.len(),
            kinds.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_unknown() -> Finding {
        let mut f = Finding::new(
            FindingKind::BlobUnknown,
            ObjectKind::Layer,
            "lab/x",
            "sha256:aa",
        );
        f.status = Some(404);
        f.code = Some("BLOB_UNKNOWN".into());
        f
    }

    #[test]
    fn a_finding_line_names_kind_object_repository_digest_status_and_code() {
        assert_eq!(
            blob_unknown().line(),
            "blob_unknown layer lab/x@sha256:aa: GET 404 BLOB_UNKNOWN"
        );
        let mut size = Finding::new(
            FindingKind::SizeMismatch,
            ObjectKind::Config,
            "lab/x",
            "sha256:bb",
        );
        size.status = Some(200);
        size.expected_size = Some(10);
        size.got_size = Some(3);
        size.detail = "body ended early".into();
        assert_eq!(
            size.line(),
            "size_mismatch config lab/x@sha256:bb: GET 200, expected 10 bytes, got 3 (body ended early)"
        );
        let tag = Finding::new(FindingKind::RequestFailed, ObjectKind::Tag, "lab/x", "v1");
        assert_eq!(tag.line(), "request_failed tag lab/x:v1: GET no response");
    }

    #[test]
    fn a_report_sorts_and_counts_its_findings() {
        let mut other = blob_unknown();
        other.reference = "sha256:00".into();
        let r = Report::new(
            "http://u:secret@r:5000",
            vec!["lab/x:v1".into()],
            Checked {
                tags: 1,
                manifests: 1,
                blobs: 2,
                blob_bytes: 2048,
            },
            vec![blob_unknown(), other, blob_unknown()],
            0.5,
        );
        assert!(!r.consistent);
        assert_eq!(r.findings.len(), 2, "duplicates are dropped");
        assert_eq!(r.findings[0].reference, "sha256:00");
        assert_eq!(r.registry, "http://u:***@r:5000");
        assert!(
            r.summary()
                .starts_with("verify: INCONSISTENT: 2 finding(s) (2 blob_unknown);"),
            "{}",
            r.summary()
        );
        let ok = Report::new("http://r", vec![], Checked::default(), vec![], 0.0);
        assert!(ok.consistent);
        assert!(ok.summary().contains("no findings"));
    }

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in [
            FindingKind::ManifestUnknown,
            FindingKind::BlobUnknown,
            FindingKind::HeadGetDisagree,
            FindingKind::EmptyBody,
            FindingKind::SizeMismatch,
            FindingKind::DigestMismatch,
            FindingKind::MalformedManifest,
            FindingKind::HttpError,
            FindingKind::RequestFailed,
            FindingKind::StorageError,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.name().into())
            );
        }
    }
}
