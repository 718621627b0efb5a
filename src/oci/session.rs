//! One node's conversation with the registry: ping, auth, tag resolve,
//! manifest GETs and blob GETs (with Range and redirects).
//!
//! Each node has its own session, so each node fetches its own token, as
//! each real daemon does: token-service load scales with the fleet. What each
//! request carries (paths, Accept, Range, Authorization, redirects) is decided
//! in [`super::request`]; this module sends it and keeps the auth state.

use super::auth::{Challenge, Credentials, TokenResponse};
use super::manifest::{self, Document};
use super::request::{self, AuthStep, Resends};
use crate::digest::sha256_digest;
use crate::metrics::{Event, ExchangeKind, Sink};
use crate::net::{self, Exchange, Fault, FaultClass, Phase, RequestBody, Timeouts, Transport};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::sync::Arc;
use tokio::time::Instant;
use url::Url;

/// Largest manifest, token or error body read into memory.
const SMALL_BODY_LIMIT: usize = 4 << 20;
/// Redirects followed per request, as dockerd allows.
const MAX_REDIRECTS: usize = 10;
/// Most of an error body read to learn the registry's error code.
pub const ERROR_BODY_LIMIT: usize = 64 << 10;

/// How a client talks to the registry apart from its blob attempts: what one request
/// does on an error status, how a tag is resolved, how a token is asked for.
/// `Default` is dockerd's (and `pullstorm seed`'s); containerd's are in its profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionRules {
    /// Requests sent again at once on some statuses (containerd's `doWithRetries`).
    pub resends: Resends,
    /// Resolve a tag with HEAD only: an error status ends the resolve without a GET
    /// (containerd; a 405 switches to GET). dockerd GETs the tag after any HEAD that
    /// gave no usable digest, which also reads the registry's error code.
    pub head_only_resolve: bool,
    /// With credentials, POST the token form (`grant_type=password`,
    /// `client_id=containerd-client`) and GET only if the realm refuses it (containerd).
    pub token_post: bool,
    /// `Accept-Encoding` sent on blob GETs (containerd 2.0 and later).
    pub accept_encoding: Option<&'static str>,
    /// A 401 on a request fetches a token and sends the request again (containerd,
    /// pushes); dockerd records only its ping's challenge and takes a 401 as the answer.
    pub reauth_on_401: bool,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            resends: Resends::NONE,
            head_only_resolve: false,
            token_post: false,
            accept_encoding: None,
            reauth_on_401: true,
        }
    }
}

/// A blob GET whose response head is in, and when the client first sent it again
/// (a 429 resent by containerd), if it did: where the blob's first failure was.
pub struct OpenedBlob {
    pub exchange: Exchange,
    pub first_resend: Option<Instant>,
    /// `host:port` of the storage that answered, when a redirect led away from the
    /// registry's host (object storage): its error answers are the storage's.
    pub storage: Option<String>,
}

/// How far a request's blob had come, and when the request was first sent again.
#[derive(Default)]
struct Resending {
    progress: f64,
    first: Option<Instant>,
}

/// What a pull resolved: the manifest digest and the blobs to fetch.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub digest: String,
    pub config: manifest::Descriptor,
    pub layers: Vec<manifest::Descriptor>,
}

/// A per-node registry client.
pub struct Session {
    base: Url,
    repo: String,
    credentials: Option<Arc<Credentials>>,
    transport: Transport,
    events: Sink,
    /// Token scope actions: `pull`, or `pull,push` for a pusher.
    actions: &'static str,
    rules: SessionRules,
    /// The node's cluster, for the faults of requests sent again.
    cluster: u32,
    challenge: std::sync::Mutex<Option<Challenge>>,
    /// Held across a token fetch so concurrent downloads share one token.
    token: tokio::sync::Mutex<Option<(HeaderValue, Instant)>>,
}

impl Session {
    pub fn new(
        base: Url,
        repo: String,
        credentials: Option<Arc<Credentials>>,
        transport: Transport,
        events: Sink,
    ) -> Self {
        Session {
            base,
            repo,
            credentials,
            transport,
            events,
            actions: "pull",
            rules: SessionRules::default(),
            cluster: 0,
            challenge: std::sync::Mutex::new(None),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks tokens for `pull,push` (for `pullstorm seed`).
    pub fn for_push(mut self) -> Self {
        self.actions = "pull,push";
        self
    }

    /// Talks as `rules` say (a client profile's).
    pub fn with_rules(mut self, rules: SessionRules) -> Self {
        self.rules = rules;
        self
    }

    /// Files the faults of requests sent again under `cluster`.
    pub fn in_cluster(mut self, cluster: u32) -> Self {
        self.cluster = cluster;
        self
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.transport.timeouts
    }

    /// `GET /v2/`: learns the auth challenge. Any status will do, as dockerd's ping
    /// accepts any (registry/auth.go): a 503 from a struggling LB does not end the pull
    /// here, and a 401 still gives the challenge. Only a failed exchange is an error.
    pub async fn ping(&self) -> Result<StatusCode, Fault> {
        let url = self.url("/v2/")?;
        let ex = self
            .send(ExchangeKind::Ping, Method::GET, &url, HeaderMap::new())
            .await?;
        let status = ex.status;
        if status == StatusCode::UNAUTHORIZED {
            let challenge = ex
                .headers
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            self.set_challenge(challenge);
        }
        net::read_small(ex.body, SMALL_BODY_LIMIT, self.transport.timeouts.stall).await?;
        Ok(status)
    }

    /// Resolves `reference` (tag or digest) to an image manifest, through an index if need be.
    pub async fn resolve(&self, reference: &str, platform: &str) -> Result<Resolved, Fault> {
        let digest = self.resolve_digest(reference).await?;
        self.fetch_resolved(&digest, platform).await
    }

    /// The manifest digest `reference` names: itself for a digest, else the tag's HEAD.
    pub async fn resolve_digest(&self, reference: &str) -> Result<String, Fault> {
        if super::name::is_sha256_digest(reference) {
            Ok(reference.to_string())
        } else {
            // containerd resolves on a transport of its own: its connections are kept apart.
            net::pool::resolving(self.head_manifest(reference)).await
        }
    }

    /// The manifest `digest` (for an index, its `platform` entry's) and its blobs.
    pub async fn fetch_resolved(&self, digest: &str, platform: &str) -> Result<Resolved, Fault> {
        let digest = digest.to_string();
        let (doc, _) = self.get_manifest(&digest).await?;
        match doc {
            Document::Image { config, layers } => Ok(Resolved {
                digest,
                config,
                layers,
            }),
            Document::Index { manifests } => {
                let entry = manifest::pick_platform(&manifests, platform).ok_or_else(|| {
                    Fault::new(
                        FaultClass::Other,
                        Phase::Verify,
                        format!("index {digest} has no {platform} manifest"),
                    )
                })?;
                let chosen = entry.digest.clone();
                match self.get_manifest(&chosen).await?.0 {
                    Document::Image { config, layers } => Ok(Resolved {
                        digest: chosen,
                        config,
                        layers,
                    }),
                    Document::Index { .. } => Err(Fault::new(
                        FaultClass::Other,
                        Phase::Verify,
                        format!("index entry {chosen} is itself an index"),
                    )),
                }
            }
        }
    }

    /// HEAD the tag with the four Accept types. Without a usable `Docker-Content-Digest`
    /// (and, for containerd, a `Content-Length`) the tag is fetched with GET. An error
    /// status: dockerd GETs the tag (which reads the registry's error code); containerd
    /// stops there, only a 405 switches it to GET (remotes/docker/resolver.go).
    async fn head_manifest(&self, tag: &str) -> Result<String, Fault> {
        let url = self.url(&request::manifest_path(&self.repo, tag))?;
        let ex = self
            .authorized(
                ExchangeKind::Manifest,
                Method::HEAD,
                &url,
                request::manifest_accept_headers(),
            )
            .await?;
        let status = ex.status;
        let digest = header_str(&ex.headers, "docker-content-digest");
        let sized = header_str(&ex.headers, "content-length").is_some();
        drop(ex.body);
        let head_only = self.rules.head_only_resolve;
        match digest {
            Some(d)
                if status.is_success()
                    && super::name::is_sha256_digest(&d)
                    && (sized || !head_only) =>
            {
                Ok(d)
            }
            _ if head_only && !status.is_success() && status != StatusCode::METHOD_NOT_ALLOWED => {
                Err(http_fault(
                    status,
                    &[],
                    Phase::Request,
                    &format!("HEAD manifest {tag}"),
                ))
            }
            // No usable digest, or an error a HEAD cannot explain (no body): GET the tag.
            _ => Ok(sha256_digest(&self.fetch_manifest(tag).await?.0)),
        }
    }

    /// GET a manifest by tag or digest: its bytes and Content-Type, or the registry's error.
    async fn fetch_manifest(
        &self,
        reference: &str,
    ) -> Result<(bytes::Bytes, Option<String>), Fault> {
        let url = self.url(&request::manifest_path(&self.repo, reference))?;
        let ex = self
            .authorized(
                ExchangeKind::Manifest,
                Method::GET,
                &url,
                request::manifest_accept_headers(),
            )
            .await?;
        let status = ex.status;
        let content_type = header_str(&ex.headers, "content-type");
        let body =
            net::read_small(ex.body, SMALL_BODY_LIMIT, self.transport.timeouts.stall).await?;
        if !status.is_success() {
            return Err(http_fault(
                status,
                &body,
                Phase::Request,
                &format!("GET manifest {reference}"),
            ));
        }
        Ok((body, content_type))
    }

    /// GET a manifest by digest and check its bytes against the digest.
    async fn get_manifest(&self, digest: &str) -> Result<(Document, usize), Fault> {
        let (body, content_type) = self.fetch_manifest(digest).await?;
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(Fault::new(
                FaultClass::DigestMismatch,
                Phase::Verify,
                format!("manifest {digest} has digest {actual}"),
            ));
        }
        let doc = Document::parse(&body, content_type.as_deref())
            .map_err(|e| Fault::new(FaultClass::Other, Phase::Verify, e))?;
        Ok((doc, body.len()))
    }

    /// Opens a blob GET, from `offset` with `Range: bytes=<offset>-` when it is not 0;
    /// `size` is the blob's, to say how far it had come when a request goes again.
    /// Redirects are followed; the Authorization header never goes to another host.
    pub async fn open_blob(
        &self,
        digest: &str,
        media_type: &str,
        offset: u64,
        size: u64,
    ) -> Result<OpenedBlob, Fault> {
        let headers = request::blob_headers(media_type, offset, self.rules.accept_encoding);
        let progress = if size == 0 {
            0.0
        } else {
            offset as f64 / size as f64
        };
        self.blob_request(Method::GET, digest, headers, progress)
            .await
    }

    /// HEAD a blob, redirects followed as for a GET (distribution on object storage
    /// answers a blob HEAD with a 307 to a presigned HEAD URL too).
    pub async fn head_blob(&self, digest: &str) -> Result<OpenedBlob, Fault> {
        self.blob_request(Method::HEAD, digest, HeaderMap::new(), 0.0)
            .await
    }

    /// A blob request and the redirects it leads to. Each redirect followed is reported;
    /// once a redirect has led to another host or port (object storage), no request
    /// carries the registry's Authorization any more, even when the storage redirects
    /// within itself, and its exchanges are timed as `Storage`.
    async fn blob_request(
        &self,
        method: Method,
        digest: &str,
        headers: HeaderMap,
        progress: f64,
    ) -> Result<OpenedBlob, Fault> {
        let mut url = self.url(&request::blob_path(&self.repo, digest))?;
        let mut resending = Resending {
            progress,
            first: None,
        };
        let mut ex = self
            .request(
                ExchangeKind::Blob,
                method.clone(),
                &url,
                &headers,
                &mut resending,
            )
            .await?;
        let mut storage: Option<String> = None;
        for _ in 0..MAX_REDIRECTS {
            let done = !ex.status.is_redirection();
            let location = header_str(&ex.headers, "location");
            let (false, Some(location)) = (done, location) else {
                return Ok(OpenedBlob {
                    exchange: ex,
                    first_resend: resending.first,
                    storage,
                });
            };
            drop(ex.body);
            let next = request::redirect(&url, &location)?;
            url = next.url;
            // From the first hop to another host on, the host answering is the storage's
            // (the registry's Authorization stays behind); faults name the one that answered.
            if storage.is_some() || !next.keep_authorization {
                storage = Some(super::storage::host_of(&url));
            }
            let _ = self
                .events
                .send(Event::Redirect {
                    to_storage: storage.is_some(),
                })
                .await;
            ex = match &storage {
                None => {
                    self.request(
                        ExchangeKind::Blob,
                        method.clone(),
                        &url,
                        &headers,
                        &mut resending,
                    )
                    .await?
                }
                Some(host) => self
                    .send(ExchangeKind::Storage, method.clone(), &url, headers.clone())
                    .await
                    .map_err(|f| super::storage::hop_fault(f, host))?,
            };
        }
        Err(Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!("more than {MAX_REDIRECTS} redirects for {digest}"),
        ))
    }

    /// Sends with the credentials the challenge asks for; on a 401, re-authenticates once;
    /// sends again at once as the session's [`Resends`] say.
    pub(crate) async fn authorized(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<Exchange, Fault> {
        self.request(kind, method, url, &headers, &mut Resending::default())
            .await
    }

    /// [`Self::authorized`], noting in `resending` when the request was first sent again.
    async fn request(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        resending: &mut Resending,
    ) -> Result<Exchange, Fault> {
        self.exchange(kind, method, url, headers, net::empty_body, resending)
            .await
    }

    /// [`Self::authorized`] with a request body; `body` is called again for each resend.
    pub(crate) async fn authorized_with(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: impl Fn() -> RequestBody,
    ) -> Result<Exchange, Fault> {
        self.exchange(kind, method, url, &headers, body, &mut Resending::default())
            .await
    }

    /// One request as the client makes it: with credentials; a 401 re-authenticates once
    /// (the token expired or the challenge changed); an answer the [`Resends`] send again
    /// goes again at once, reported as a fault (and, for a blob, a retry) first, since
    /// the registry did answer it with an error.
    async fn exchange(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: impl Fn() -> RequestBody,
        resending: &mut Resending,
    ) -> Result<Exchange, Fault> {
        let mut refresh = false;
        let mut reauthenticated = false;
        let mut previous: Option<u16> = None;
        let mut responses = 0u32;
        loop {
            let mut with_auth = headers.clone();
            if let Some(v) = self.authorization(refresh).await? {
                with_auth.insert(http::header::AUTHORIZATION, v);
            }
            refresh = false;
            let ex = self
                .send_body(kind, method.clone(), url, with_auth, body())
                .await?;
            responses += 1;
            let status = ex.status.as_u16();
            if ex.status == StatusCode::UNAUTHORIZED && self.rules.reauth_on_401 && !reauthenticated
            {
                if let Some(c) = ex
                    .headers
                    .get(http::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                {
                    self.set_challenge(Challenge::parse(c));
                }
                drop(ex.body);
                reauthenticated = true;
                refresh = true;
                previous = Some(status);
                continue;
            }
            if !self.rules.resends.again(status, previous, responses) {
                return Ok(ex);
            }
            let text = net::read_small(ex.body, ERROR_BODY_LIMIT, self.transport.timeouts.stall)
                .await
                .unwrap_or_default();
            let what = format!("{method} {}", url.path());
            resending.first.get_or_insert_with(Instant::now);
            self.resent(
                kind,
                http_fault(ex.status, &text, Phase::Request, &what),
                resending.progress,
            )
            .await;
            previous = Some(status);
        }
    }

    /// Reports a request that is sent again: its fault, and for a blob a retry.
    async fn resent(&self, kind: ExchangeKind, fault: Fault, progress: f64) {
        let class = fault.class;
        let _ = self
            .events
            .send(Event::Fault {
                fault,
                kind,
                cluster: self.cluster,
                at: Instant::now(),
            })
            .await;
        if kind == ExchangeKind::Blob {
            let _ = self.events.send(Event::Retry { class, progress }).await;
        }
    }

    /// The Authorization value for the current challenge, fetching a token if needed.
    async fn authorization(&self, refresh: bool) -> Result<Option<HeaderValue>, Fault> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match request::auth_step(challenge.as_ref(), self.credentials.as_deref()) {
            AuthStep::Nothing => Ok(None),
            AuthStep::Send(value) => Ok(Some(value)),
            AuthStep::Token { realm, service } => {
                let mut cached = self.token.lock().await;
                if let Some(token) = request::fresh_token(cached.as_ref(), refresh, Instant::now())
                {
                    return Ok(Some(token));
                }
                let (token, expires) = self.fetch_token(realm, service).await?;
                *cached = Some((token.clone(), expires));
                Ok(Some(token))
            }
        }
    }

    fn set_challenge(&self, c: Option<Challenge>) {
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(HeaderValue, Instant), Fault> {
        if let (true, Some(credentials)) = (self.rules.token_post, self.credentials.as_deref()) {
            if let Some(token) = self.post_token(realm, service, credentials).await? {
                return Ok(token);
            }
        }
        let url = request::token_url(&self.base, realm, service, &self.repo, self.actions)?;
        let mut headers = HeaderMap::new();
        if let Some(v) = self
            .credentials
            .as_deref()
            .and_then(request::basic_authorization)
        {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let ex = self
            .send(ExchangeKind::Token, Method::GET, &url, headers)
            .await?;
        self.token_answer(ex).await
    }

    /// containerd's token request with credentials: the password form POSTed to the
    /// realm. `None` when the realm refuses the POST in a way that sends containerd to
    /// the GET (400, 401, 404, 405).
    async fn post_token(
        &self,
        realm: &str,
        service: Option<&str>,
        credentials: &Credentials,
    ) -> Result<Option<(HeaderValue, Instant)>, Fault> {
        let url = request::token_realm(&self.base, realm)?;
        let form = bytes::Bytes::from(request::token_form(
            service,
            &self.repo,
            self.actions,
            credentials,
        ));
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(form.len()));
        let body = {
            use http_body_util::BodyExt;
            http_body_util::Full::new(form)
                .map_err(|never| match never {})
                .boxed()
        };
        let ex = self
            .send_body(ExchangeKind::Token, Method::POST, &url, headers, body)
            .await?;
        if request::token_post_refused(ex.status.as_u16()) {
            drop(ex.body);
            return Ok(None);
        }
        self.token_answer(ex).await.map(Some)
    }

    /// The token in a token endpoint's answer (GET or POST), and when to renew it.
    async fn token_answer(&self, ex: Exchange) -> Result<(HeaderValue, Instant), Fault> {
        let status = ex.status;
        let body =
            net::read_small(ex.body, SMALL_BODY_LIMIT, self.transport.timeouts.stall).await?;
        if !status.is_success() {
            return Err(http_fault(status, &body, Phase::Request, "token request"));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Fault::new(
                FaultClass::Other,
                Phase::Body,
                format!("token response is not JSON: {e}"),
            )
        })?;
        let token = parsed.bearer().ok_or_else(|| {
            Fault::new(
                FaultClass::Other,
                Phase::Body,
                "token response without a token",
            )
        })?;
        let value = request::bearer_authorization(token)?;
        Ok((
            value,
            request::token_expiry(Instant::now(), parsed.lifetime_secs()),
        ))
    }

    async fn send(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<Exchange, Fault> {
        self.send_body(kind, method, url, headers, net::empty_body())
            .await
    }

    async fn send_body(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: RequestBody,
    ) -> Result<Exchange, Fault> {
        let ex = net::send_with_body(method, url, headers, body, &self.transport).await?;
        let _ = self
            .events
            .send(Event::Exchange {
                kind,
                connect: ex.connect,
                ttfb: ex.ttfb,
            })
            .await;
        Ok(ex)
    }

    /// Where this session's events go (a push reports its steps there too).
    pub(crate) fn events(&self) -> &Sink {
        &self.events
    }

    pub(crate) fn repo(&self) -> &str {
        &self.repo
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url, Fault> {
        request::endpoint(&self.base, path)
    }
}

pub(crate) fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An HTTP error status as a fault, keeping the registry's error code (e.g. MANIFEST_UNKNOWN).
pub fn http_fault(status: StatusCode, body: &[u8], phase: Phase, what: &str) -> Fault {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<RegistryError>,
    }
    #[derive(serde::Deserialize)]
    struct RegistryError {
        code: String,
        #[serde(default)]
        message: Option<String>,
    }
    let codes = serde_json::from_slice::<Errors>(body)
        .ok()
        .map(|e| {
            e.errors
                .iter()
                .map(|r| match &r.message {
                    Some(m) => format!("{} ({m})", r.code),
                    None => r.code.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty());
    let detail = match codes {
        Some(c) => format!("{what}: HTTP {} {c}", status.as_u16()),
        None => format!("{what}: HTTP {}", status.as_u16()),
    };
    Fault::new(FaultClass::Http(status.as_u16()), phase, detail)
}

/// An error response as the clients' retry rules read it: moby decides from the status,
/// the declared media type (27 and later), a Bearer challenge's `error` and the body's
/// first error code (registry/client/errors.go in the registry client moby vendors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    /// The `Content-Type`'s media type, lowercased, without parameters; `None` when absent or empty.
    pub content_type: Option<String>,
    /// The `error` of a Bearer `WWW-Authenticate` (`invalid_token`, `insufficient_scope`).
    pub bearer_error: Option<String>,
    pub body: ErrorBody,
}

/// What an error response's body held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBody {
    /// `{"errors": [...]}` with at least one error: their codes, in order (an error
    /// without a code reads as `UNKNOWN`).
    Codes(Vec<String>),
    /// `{"details": "..."}`, the older error format.
    Details,
    /// No error code: not JSON (an LB's HTML page, an empty body), or JSON without errors.
    Unparsed,
}

impl ErrorAnswer {
    /// Reads the answer from a response's status, headers and (the first part of its) body.
    pub fn read(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ErrorAnswer {
        let content_type = header_str(headers, "content-type")
            .and_then(|v| v.split(';').next().map(|t| t.trim().to_ascii_lowercase()))
            .filter(|t| !t.is_empty());
        let bearer_error = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(super::auth::bearer_error);
        ErrorAnswer {
            status: status.as_u16(),
            content_type,
            bearer_error,
            body: ErrorBody::parse(body),
        }
    }
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice(body) else {
            return ErrorBody::Unparsed;
        };
        if doc
            .get("details")
            .and_then(|d| d.as_str())
            .is_some_and(|d| !d.is_empty())
        {
            return ErrorBody::Details;
        }
        let codes: Vec<String> = doc
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        e.get("code")
                            .and_then(|c| c.as_str())
                            .unwrap_or("UNKNOWN")
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if codes.is_empty() {
            ErrorBody::Unparsed
        } else {
            ErrorBody::Codes(codes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> ErrorAnswer {
        let mut h = HeaderMap::new();
        for (name, value) in headers {
            h.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        ErrorAnswer::read(StatusCode::from_u16(status).unwrap(), &h, body.as_bytes())
    }

    #[test]
    fn error_answers_keep_what_the_retry_rules_read() {
        let a = answer(
            503,
            &[("Content-Type", "application/json; charset=utf-8")],
            r#"{"errors":[{"code":"UNAVAILABLE","message":"x"},{"code":"UNKNOWN"}]}"#,
        );
        assert_eq!(a.status, 503);
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            a.body,
            ErrorBody::Codes(vec!["UNAVAILABLE".into(), "UNKNOWN".into()])
        );
        let html = answer(
            429,
            &[("Content-Type", "text/html")],
            "<html>slow down</html>",
        );
        assert_eq!(html.body, ErrorBody::Unparsed);
        assert_eq!(html.content_type.as_deref(), Some("text/html"));
        assert_eq!(answer(408, &[], "").content_type, None);
        assert_eq!(
            answer(400, &[], r#"{"details":"bad"}"#).body,
            ErrorBody::Details
        );
        assert_eq!(
            answer(400, &[], r#"{"errors":[]}"#).body,
            ErrorBody::Unparsed
        );
        assert_eq!(answer(400, &[], "[1]").body, ErrorBody::Unparsed);
        assert_eq!(
            answer(400, &[], r#"{"errors":[{"message":"no code"}]}"#).body,
            ErrorBody::Codes(vec!["UNKNOWN".into()])
        );
        let scoped = answer(
            401,
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="http://r/token",error="invalid_token""#,
            )],
            "",
        );
        assert_eq!(scoped.bearer_error.as_deref(), Some("invalid_token"));
    }
}
