//! The request log of the embedded registry: every request it answered, what it was
//! (ping, token, manifest by tag or digest, config or layer blob), the Range asked for, the
//! status, the body bytes sent and how the response ended (complete, cut, stalled, client
//! gone), plus connections that did not speak HTTP (dockerd's TLS probe of a plain-HTTP
//! registry).
//!
//! It exists to see exactly what a client did against a fault (`pullstorm serve
//! --request-log FILE`, one JSON object a line) and to compare clients request by request
//! (the conformance tests read it in-process, [`super::EmbeddedRegistry::request_log`]).
//! It is off unless asked for: a run of a million nodes must not keep a line per request.
//!
//! Cost: one entry is written when a response starts (in memory) and completed when its
//! body is dropped; nothing is done per body chunk.

use super::blob_body::ResponseBody;
use crate::synth::{BlobRef, SyntheticImage};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;
use std::convert::Infallible;
use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// What a request asked for, in the terms a pull is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `/v2/`
    Ping,
    /// The token endpoint, `/token`.
    Token,
    ManifestByTag,
    ManifestByDigest,
    /// A config blob of the image (amd64 or arm64).
    Config,
    /// A layer blob (`layer` says which).
    Layer,
    /// A blob digest the image does not have.
    BlobUnknown,
    /// `/v2/<name>/blobs/uploads/...` (refused: the registry is read-only).
    Upload,
    /// Any other path.
    Other,
    /// A connection whose first bytes were not an HTTP request (a TLS ClientHello).
    NotHttp,
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// Every body byte was handed to the connection.
    Complete,
    /// Cut by the `cut_after` fault (FIN or RST).
    Cut,
    /// Held by the `stall_after` fault until the client left (or the registry stopped).
    Stalled,
    /// The client closed the connection before the body was sent.
    ClientGone,
    /// Still being sent (only seen in the in-memory log while a response is going on).
    InFlight,
}

/// One request as the registry saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Milliseconds from the registry's start to the request's head.
    pub t_ms: u64,
    /// Milliseconds from the request's head to the response's end (`None` while in flight).
    pub dur_ms: Option<u64>,
    /// Connection number, from 1 in accept order.
    pub conn: u64,
    pub method: String,
    pub path: String,
    pub kind: RequestKind,
    /// Which layer, for `kind = layer` (0 = the first of the manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// The `Range` header as sent.
    pub range: Option<String>,
    pub status: u16,
    /// Whether `status` came from the `status` fault.
    pub injected: bool,
    /// Body bytes handed to the connection.
    pub bytes: u64,
    pub end: End,
    pub user_agent: Option<String>,
}

/// Where the log goes: kept in memory, written to a file as JSON lines, or both.
pub struct RequestLog {
    started: OnceLock<Instant>,
    memory: Option<Mutex<Vec<LoggedRequest>>>,
    file: Option<Mutex<LineWriter<File>>>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("memory", &self.memory.is_some())
            .field("file", &self.file.is_some())
            .finish()
    }
}

impl RequestLog {
    /// A log kept in memory, read with [`RequestLog::entries`].
    pub fn memory() -> Arc<RequestLog> {
        Arc::new(RequestLog {
            started: OnceLock::new(),
            memory: Some(Mutex::new(Vec::new())),
            file: None,
        })
    }

    /// A log written to `path` (created or truncated), one JSON object per finished
    /// request, each line flushed as it is written.
    pub fn to_file(path: &Path) -> std::io::Result<Arc<RequestLog>> {
        let file = File::create(path)?;
        Ok(Arc::new(RequestLog {
            started: OnceLock::new(),
            memory: None,
            file: Some(Mutex::new(LineWriter::new(file))),
        }))
    }

    /// Whether entries are kept in memory (readable with [`RequestLog::entries`]).
    pub fn in_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Sets time zero (the registry calls it when it starts serving).
    pub fn start_clock(&self) {
        let _ = self.started.set(Instant::now());
    }

    fn millis(&self, at: Instant) -> u64 {
        let zero = *self.started.get_or_init(Instant::now);
        at.saturating_duration_since(zero).as_millis() as u64
    }

    /// Everything logged so far, in the order requests arrived (in-flight ones included);
    /// empty for a log that only goes to a file.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.memory
            .as_ref()
            .map(|m| lock(m).clone())
            .unwrap_or_default()
    }

    /// Records the start of a response; the returned handle completes it.
    pub fn begin(self: &Arc<Self>, mut entry: LoggedRequest, at: Instant) -> Pending {
        entry.t_ms = self.millis(at);
        entry.end = End::InFlight;
        let slot = self.memory.as_ref().map(|m| {
            let mut entries = lock(m);
            entries.push(entry.clone());
            entries.len() - 1
        });
        Pending {
            log: self.clone(),
            slot,
            at,
            entry,
        }
    }

    /// Records a connection that was not HTTP (one line, complete at once).
    pub fn not_http(&self, conn: u64, status: u16, at: Instant) {
        let entry = LoggedRequest {
            t_ms: self.millis(at),
            dur_ms: Some(0),
            conn,
            method: String::new(),
            path: String::new(),
            kind: RequestKind::NotHttp,
            layer: None,
            range: None,
            status,
            injected: false,
            bytes: 0,
            end: End::Complete,
            user_agent: None,
        };
        if let Some(m) = &self.memory {
            lock(m).push(entry.clone());
        }
        self.write(&entry);
    }

    fn finish(&self, slot: Option<usize>, entry: &LoggedRequest) {
        if let (Some(m), Some(slot)) = (&self.memory, slot) {
            if let Some(e) = lock(m).get_mut(slot) {
                *e = entry.clone();
            }
        }
        self.write(entry);
    }

    fn write(&self, entry: &LoggedRequest) {
        let Some(file) = &self.file else { return };
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        if let Err(e) = lock(file).write_all(&line) {
            tracing::warn!("cannot write the request log: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data usable: entries are plain values.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A response whose log entry is not complete yet.
pub struct Pending {
    log: Arc<RequestLog>,
    slot: Option<usize>,
    at: Instant,
    entry: LoggedRequest,
}

/// A response body that completes its log entry when hyper drops it: then its bytes and
/// its end are known.
pub struct LoggedBody {
    body: ResponseBody,
    /// The length of a full (in-memory) body, known before hyper takes it.
    full_len: u64,
    pending: Option<Box<Pending>>,
}

impl LoggedBody {
    pub fn new(body: ResponseBody, pending: Option<Pending>) -> LoggedBody {
        let full_len = match &body {
            ResponseBody::Full(Some(bytes)) => bytes.len() as u64,
            _ => 0,
        };
        LoggedBody {
            body,
            full_len,
            pending: pending.map(Box::new),
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let (bytes, end) = self.body.outcome_with(self.full_len);
        p.entry.bytes = bytes;
        p.entry.end = end;
        p.entry.dur_ms = Some(p.at.elapsed().as_millis() as u64);
        p.log.finish(p.slot, &p.entry);
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What `path` asks for, and which layer when it is one.
pub fn classify(path: &str, image: &SyntheticImage) -> (RequestKind, Option<usize>) {
    if path == "/token" {
        return (RequestKind::Token, None);
    }
    let Some(rest) = path.strip_prefix("/v2") else {
        return (RequestKind::Other, None);
    };
    if rest.is_empty() || rest == "/" {
        return (RequestKind::Ping, None);
    }
    let mut parts = rest.trim_start_matches('/').rsplitn(3, '/');
    let (Some(reference), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
    else {
        return (RequestKind::Other, None);
    };
    match kind {
        "manifests" if reference.contains(':') => (RequestKind::ManifestByDigest, None),
        "manifests" => (RequestKind::ManifestByTag, None),
        "uploads" if name.ends_with("/blobs") => (RequestKind::Upload, None),
        "blobs" => match image.blob(reference) {
            Some(BlobRef::Layer(i)) => (RequestKind::Layer, Some(i)),
            Some(BlobRef::Config(_)) => (RequestKind::Config, None),
            None => (RequestKind::BlobUnknown, None),
        },
        _ => (RequestKind::Other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_as_a_pull_sees_them() {
        let image = SyntheticImage::build(5, &[4096, 2048]);
        let layer1 = format!("/v2/a/b/blobs/{}", image.layers[1].digest);
        let config = format!("/v2/a/blobs/{}", image.config.digest);
        let cases = [
            ("/v2/", RequestKind::Ping, None),
            ("/v2", RequestKind::Ping, None),
            ("/token", RequestKind::Token, None),
            ("/v2/a/b/manifests/v1", RequestKind::ManifestByTag, None),
            (
                "/v2/a/manifests/sha256:00",
                RequestKind::ManifestByDigest,
                None,
            ),
            (layer1.as_str(), RequestKind::Layer, Some(1)),
            (config.as_str(), RequestKind::Config, None),
            ("/v2/a/blobs/sha256:00", RequestKind::BlobUnknown, None),
            ("/v2/a/blobs/uploads/x", RequestKind::Upload, None),
            ("/v2/a/tags/list", RequestKind::Other, None),
            ("/v2/x", RequestKind::Other, None),
            ("/", RequestKind::Other, None),
        ];
        for (path, kind, layer) in cases {
            assert_eq!(classify(path, &image), (kind, layer), "{path}");
        }
    }

    #[test]
    fn memory_log_sees_a_response_in_flight_then_its_end() {
        let log = RequestLog::memory();
        log.start_clock();
        let entry = LoggedRequest {
            t_ms: 0,
            dur_ms: None,
            conn: 1,
            method: "GET".into(),
            path: "/v2/".into(),
            kind: RequestKind::Ping,
            layer: None,
            range: None,
            status: 200,
            injected: false,
            bytes: 0,
            end: End::Complete,
            user_agent: None,
        };
        let body = LoggedBody::new(
            ResponseBody::full(&b"{}"[..]),
            Some(log.begin(entry, Instant::now())),
        );
        assert_eq!(log.entries()[0].end, End::InFlight);
        assert_eq!(log.entries()[0].dur_ms, None);
        drop(body);
        // The body was never polled: the client left before it was sent.
        let e = &log.entries()[0];
        assert_eq!((e.end, e.bytes), (End::ClientGone, 0));
        log.not_http(2, 400, Instant::now());
        assert_eq!(log.entries()[1].kind, RequestKind::NotHttp);
    }
}
