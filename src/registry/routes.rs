//! Request to response: the read-only part of the OCI distribution API.
//!
//! Every repository name and every tag resolve to the one synthetic image, so
//! a scenario can name whatever image reference it likes. Handling is
//! synchronous and allocation-light (blob bytes are produced later, by the
//! body), and nothing a client sends can panic it: malformed names, references
//! and ranges get the 4xx and error code the distribution registry would give.
//! Names, tags and digests are checked with the client's own grammar
//! ([`crate::oci::name`]), so the two sides agree on what is valid.

use super::auth::{TokenAuth, SERVICE};
use super::blob_body::{BlobBody, Cut, ResponseBody, Source};
use super::faults::{error_body, ErrorBody, StatusFault};
use super::range::{self, RangeRequest};
use super::request_log::{classify, End, LoggedBody, LoggedRequest, RequestKind, RequestLog};
use super::server::ConnCtl;
use super::EmbeddedConfig;
use crate::oci::name::{is_digest, is_repository_name, is_tag};
use crate::scenario::{EmbeddedAuth, Faults};
use crate::synth::{
    BlobRef, SynthDoc, SyntheticImage, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

type Resp = Response<ResponseBody>;

/// The shared state of a running embedded registry.
pub struct Registry {
    image: Arc<SyntheticImage>,
    index: bool,
    /// Whether `/v2/...` demands a bearer token.
    bearer: bool,
    tokens: TokenAuth,
    faults: Faults,
    /// The `status` fault, if any, with its own count.
    status_fault: Option<StatusFault>,
    /// Where every request is logged, when asked for.
    log: Option<Arc<RequestLog>>,
    /// Responses cut so far, per blob: layers first, then the amd64 and arm64 configs.
    cut_counts: Vec<AtomicU32>,
    /// Used in the auth realm when the request names no usable Host.
    local_addr: SocketAddr,
}

impl Registry {
    pub fn new(
        config: &EmbeddedConfig,
        image: Arc<SyntheticImage>,
        local_addr: SocketAddr,
    ) -> Registry {
        let cut_counts = (0..image.layers.len() + 2)
            .map(|_| AtomicU32::new(0))
            .collect();
        Registry {
            index: config.index,
            bearer: config.auth == EmbeddedAuth::Bearer,
            tokens: TokenAuth::new(config.token_credentials.as_ref()),
            faults: config.faults.clone(),
            status_fault: StatusFault::from_faults(&config.faults),
            log: config.request_log.clone(),
            cut_counts,
            local_addr,
            image,
        }
    }

    /// Answers one request (the body, if any, is ignored: every route is a read), and
    /// logs it when the request log is on.
    pub fn handle<B>(&self, req: &Request<B>, conn: &Arc<ConnCtl>) -> Response<LoggedBody> {
        let at = Instant::now();
        // Only faults and the log need to know what the request is for.
        let kind = (self.status_fault.is_some() || self.log.is_some())
            .then(|| classify(req.uri().path(), &self.image));
        let injected = match (&self.status_fault, kind) {
            (Some(fault), Some((kind, _))) => fault.take(kind).map(|s| (s, kind)),
            _ => None,
        };
        let mut resp = match injected {
            Some((status, kind)) => self.injected(req, status, kind),
            None => self.route(req, conn),
        };
        resp.headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        tracing::debug!(
            method = %req.method(),
            path = req.uri().path(),
            range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()),
            status = resp.status().as_u16(),
            "embedded registry request"
        );
        if req.method() == Method::HEAD {
            // Same headers (Content-Length included) as the GET, no body.
            *resp.body_mut() = ResponseBody::Empty;
        }
        let pending = match (&self.log, kind) {
            (Some(log), Some((kind, layer))) => {
                let header = |name| {
                    req.headers()
                        .get(name)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                };
                let entry = LoggedRequest {
                    t_ms: 0,
                    dur_ms: None,
                    conn: conn.id(),
                    method: req.method().to_string(),
                    path: req.uri().path().to_string(),
                    kind,
                    layer,
                    range: header(header::RANGE),
                    status: resp.status().as_u16(),
                    injected: injected.is_some(),
                    bytes: 0,
                    end: End::InFlight,
                    user_agent: header(header::USER_AGENT),
                };
                Some(log.begin(entry, at))
            }
            _ => None,
        };
        resp.map(|body| LoggedBody::new(body, pending))
    }

    /// The response of the `status` fault: the body a registry (or, for 502/504, its
    /// load balancer) sends with that status; a 401 carries the Bearer challenge.
    fn injected<B>(&self, req: &Request<B>, status: StatusCode, kind: RequestKind) -> Resp {
        let mut resp = match error_body(status, kind) {
            ErrorBody::Json { code, message } => error(status, code, message),
            ErrorBody::Html(page) => {
                let len = page.len() as u64;
                let mut resp = Response::new(ResponseBody::full(page));
                *resp.status_mut() = status;
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                resp
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if kind == RequestKind::Token {
                format!("Basic realm=\"{SERVICE}\"")
            } else {
                self.challenge(req, repository_of(req.uri().path()))
            };
            put(resp.headers_mut(), header::WWW_AUTHENTICATE, &challenge);
        }
        resp
    }

    fn route<B>(&self, req: &Request<B>, conn: &Arc<ConnCtl>) -> Resp {
        let path = req.uri().path();
        if path == "/token" {
            return self.token(req);
        }
        let rest = match path.strip_prefix("/v2") {
            Some(rest) => rest,
            None => return not_found(),
        };
        if rest.is_empty() || rest == "/" {
            if let Some(denied) = self.authorize(req, None) {
                return denied;
            }
            if !is_read(req.method()) {
                return method_not_allowed();
            }
            return json(StatusCode::OK, "{}");
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return not_found();
        };
        // `<name>/<kind>/<reference>`: a reference never holds '/', the name may.
        let mut parts = rest.rsplitn(3, '/');
        let (Some(reference), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return not_found();
        };
        let upload = kind == "uploads" && name.ends_with("/blobs");
        let name = if upload {
            &name[..name.len() - "/blobs".len()]
        } else {
            name
        };
        if !(upload || kind == "manifests" || kind == "blobs") {
            return not_found();
        }
        if !is_repository_name(name) {
            return error(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
            );
        }
        if let Some(denied) = self.authorize(req, Some(name)) {
            return denied;
        }
        if upload {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "the embedded registry is read-only: push to a real registry",
            );
        }
        if !is_read(req.method()) {
            return method_not_allowed();
        }
        if kind == "manifests" {
            self.manifest(req.headers(), reference)
        } else {
            self.blob(req, reference, conn)
        }
    }

    fn manifest(&self, headers: &HeaderMap, reference: &str) -> Resp {
        let doc = if reference.contains(':') {
            if !is_digest(reference) {
                return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
            }
            match self.image.manifest_by_digest(reference) {
                Some(doc) => doc,
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        "manifest unknown",
                    )
                }
            }
        } else {
            if !is_tag(reference) {
                return error(StatusCode::BAD_REQUEST, "TAG_INVALID", "invalid tag");
            }
            self.for_tag(headers)
        };
        let mut resp = Response::new(ResponseBody::full(doc.bytes.clone()));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(doc.media_type),
        );
        put(h, CONTENT_DIGEST, &doc.digest);
        put(h, header::ETAG, &format!("\"{}\"", doc.digest));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(doc.size()));
        resp
    }

    /// The document a tag resolves to, by the request's `Accept` list.
    fn for_tag(&self, headers: &HeaderMap) -> &SynthDoc {
        let accepts = |wanted: &str| {
            headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|item| {
                    item.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case(wanted)
                })
        };
        // A client that lists types but not the index type cannot parse an index:
        // hand it the amd64 manifest, as the distribution registry does.
        let takes_index =
            !headers.contains_key(header::ACCEPT) || accepts(MEDIA_OCI_INDEX) || accepts("*/*");
        if self.index && takes_index {
            &self.image.index
        } else if accepts(MEDIA_DOCKER_MANIFEST) && !accepts(MEDIA_OCI_MANIFEST) {
            &self.image.docker_manifest
        } else {
            &self.image.manifest
        }
    }

    fn blob<B>(&self, req: &Request<B>, digest: &str, conn: &Arc<ConnCtl>) -> Resp {
        if !is_digest(digest) {
            return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
        }
        let Some((slot, source, total)) = self.blob_source(digest) else {
            return error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
            );
        };
        let wanted = if self.faults.ignore_range {
            RangeRequest::Whole
        } else {
            range::parse(req.headers().get_all(header::RANGE).iter(), total)
        };
        let (status, start, end) = match wanted {
            RangeRequest::Whole => (StatusCode::OK, 0, total),
            RangeRequest::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
            RangeRequest::Unsatisfiable => {
                let mut resp = Response::new(ResponseBody::Empty);
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                put(
                    resp.headers_mut(),
                    header::CONTENT_RANGE,
                    &format!("bytes */{total}"),
                );
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                return resp;
            }
        };
        let body = if req.method() == Method::HEAD {
            // No body: no cut to count.
            ResponseBody::Empty
        } else {
            let cut = self.cut_for(slot, end - start, conn);
            let corrupt = self.faults.corrupt && matches!(source, Source::Layer { .. });
            let mut body = BlobBody::new(source, start, end, cut, corrupt);
            if let Some(after) = self.faults.stall_after {
                body = body.stalled_after(after.0);
            }
            ResponseBody::Blob(Box::new(body))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        put(h, CONTENT_DIGEST, digest);
        put(h, header::ETAG, &format!("\"{digest}\""));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        if status == StatusCode::PARTIAL_CONTENT {
            put(
                h,
                header::CONTENT_RANGE,
                &format!("bytes {start}-{}/{total}", end - 1),
            );
        }
        resp
    }

    /// Where the blob's bytes come from: its cut-counter slot, its source and its size.
    fn blob_source(&self, digest: &str) -> Option<(usize, Source, u64)> {
        let image = &self.image;
        match image.blob(digest)? {
            BlobRef::Layer(i) => {
                let size = image.layers[i].size;
                let source = Source::Layer {
                    seed: image.seed,
                    index: i,
                    size,
                };
                Some((i, source, size))
            }
            BlobRef::Config(doc) => {
                let slot = image.layers.len() + usize::from(doc.digest != image.config.digest);
                Some((slot, Source::Memory(doc.bytes.clone()), doc.size()))
            }
        }
    }

    /// The cut this response gets, if any, counting it against `cut_times`.
    fn cut_for(&self, slot: usize, body_len: u64, conn: &Arc<ConnCtl>) -> Option<Cut> {
        let after = self.faults.cut_after?.0;
        if body_len <= after {
            return None;
        }
        if let Some(times) = self.faults.cut_times {
            let counter = self.cut_counts.get(slot)?;
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < times).then_some(n + 1)
                })
                .ok()?;
        }
        Some(Cut {
            after,
            with: self.faults.cut_with,
            conn: conn.clone(),
        })
    }

    /// `None` when the request may go on; otherwise the 401 to send.
    fn authorize<B>(&self, req: &Request<B>, repository: Option<&str>) -> Option<Resp> {
        if !self.bearer || self.tokens.bearer_ok(req.headers()) {
            return None;
        }
        let challenge = self.challenge(req, repository);
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        put(resp.headers_mut(), header::WWW_AUTHENTICATE, &challenge);
        Some(resp)
    }

    /// The Bearer challenge naming this registry's own token endpoint.
    fn challenge<B>(&self, req: &Request<B>, repository: Option<&str>) -> String {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_host(h))
            .map_or_else(|| self.local_addr.to_string(), str::to_string);
        let mut challenge = format!("Bearer realm=\"http://{host}/token\",service=\"{SERVICE}\"");
        if let Some(name) = repository.filter(|n| is_repository_name(n)) {
            challenge.push_str(&format!(",scope=\"repository:{name}:pull\""));
        }
        challenge
    }

    /// `GET /token?service=..&scope=..`: a token for anyone, or for the configured Basic user.
    fn token<B>(&self, req: &Request<B>) -> Resp {
        if req.method() != Method::GET {
            return method_not_allowed();
        }
        if !self.tokens.basic_ok(req.headers()) {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "invalid credentials",
            );
            let challenge = format!("Basic realm=\"{SERVICE}\"");
            put(resp.headers_mut(), header::WWW_AUTHENTICATE, &challenge);
            return resp;
        }
        match serde_json::to_vec(&self.tokens.issue()) {
            Ok(body) => json(StatusCode::OK, body),
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "cannot encode token",
            ),
        }
    }
}

/// The repository name of a `/v2/<name>/<kind>/<reference>` path.
fn repository_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    let mut parts = rest.rsplitn(3, '/');
    let (_, _, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some(name.strip_suffix("/blobs").unwrap_or(name))
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    // Values are built from validated parts; one that is not a valid header is left out.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn json(status: StatusCode, body: impl Into<bytes::Bytes>) -> Resp {
    let body: bytes::Bytes = body.into();
    let len = body.len() as u64;
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A registry error body: `{"errors":[{"code":..,"message":..}]}`.
fn error(status: StatusCode, code: &str, message: &str) -> Resp {
    #[derive(serde::Serialize)]
    struct Errors<'a> {
        errors: [Entry<'a>; 1],
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        code: &'a str,
        message: &'a str,
    }
    let body = serde_json::to_vec(&Errors {
        errors: [Entry { code, message }],
    })
    .unwrap_or_default();
    json(status, body)
}

fn not_found() -> Resp {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint in the registry API",
    )
}

fn method_not_allowed() -> Resp {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "only GET and HEAD are supported",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

/// A Host header fit to echo into the auth realm (no quotes, spaces or controls).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}
