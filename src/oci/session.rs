//! One node's conversation with the registry: ping, auth, tag resolve,
//! manifest GETs and blob GETs (with Range and redirects).
//!
//! Each node has its own session, so each node fetches its own token, as
//! each real daemon does: token-service load scales with the fleet. What each
//! request carries (paths, Accept, Range, Authorization, redirects) is decided
//! in [`super::request`]; this module sends it and keeps the auth state.

use super::auth::{Challenge, Credentials, TokenResponse};
use super::manifest::{self, Document};
use super::request::{self, AuthStep};
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
            challenge: std::sync::Mutex::new(None),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks tokens for `pull,push` (for `pullstorm seed`).
    pub fn for_push(mut self) -> Self {
        self.actions = "pull,push";
        self
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.transport.timeouts
    }

    /// `GET /v2/`: learns the auth challenge. 200 and 401 are both fine answers.
    pub async fn ping(&self) -> Result<(), Fault> {
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
        let body =
            net::read_small(ex.body, SMALL_BODY_LIMIT, self.transport.timeouts.stall).await?;
        if status.is_success() || status == StatusCode::UNAUTHORIZED {
            Ok(())
        } else {
            Err(http_fault(status, &body, Phase::Request, "GET /v2/"))
        }
    }

    /// Resolves `reference` (tag or digest) to an image manifest, through an index if need be.
    pub async fn resolve(&self, reference: &str, platform: &str) -> Result<Resolved, Fault> {
        let digest = if super::name::is_sha256_digest(reference) {
            reference.to_string()
        } else {
            // containerd resolves on a transport of its own: its connections are kept apart.
            net::pool::resolving(self.head_manifest(reference)).await?
        };
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

    /// HEAD the tag with the four Accept types; falls back to GET without Docker-Content-Digest.
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
        drop(ex.body);
        match digest {
            Some(d) if status.is_success() && super::name::is_sha256_digest(&d) => Ok(d),
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

    /// Opens a blob GET, from `offset` with `Range: bytes=<offset>-` when it is not 0.
    /// Redirects are followed; the Authorization header never goes to another host.
    pub async fn open_blob(
        &self,
        digest: &str,
        media_type: &str,
        offset: u64,
    ) -> Result<Exchange, Fault> {
        let mut url = self.url(&request::blob_path(&self.repo, digest))?;
        let headers = request::blob_headers(media_type, offset);
        let mut ex = self
            .authorized(ExchangeKind::Blob, Method::GET, &url, headers.clone())
            .await?;
        for _ in 0..MAX_REDIRECTS {
            if !ex.status.is_redirection() {
                return Ok(ex);
            }
            let Some(location) = header_str(&ex.headers, "location") else {
                return Ok(ex);
            };
            drop(ex.body);
            let next = request::redirect(&url, &location)?;
            url = next.url;
            ex = if next.keep_authorization {
                self.authorized(ExchangeKind::Blob, Method::GET, &url, headers.clone())
                    .await?
            } else {
                self.send(ExchangeKind::Blob, Method::GET, &url, headers.clone())
                    .await?
            };
        }
        Err(Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!("more than {MAX_REDIRECTS} redirects for {digest}"),
        ))
    }

    /// Sends with the credentials the challenge asks for; on a 401, re-authenticates once.
    pub(crate) async fn authorized(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<Exchange, Fault> {
        self.authorized_with(kind, method, url, headers, net::empty_body)
            .await
    }

    /// [`Self::authorized`] with a request body; `body` is called again for the retry after a 401.
    pub(crate) async fn authorized_with(
        &self,
        kind: ExchangeKind,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: impl Fn() -> RequestBody,
    ) -> Result<Exchange, Fault> {
        let mut with_auth = headers.clone();
        if let Some(v) = self.authorization(false).await? {
            with_auth.insert(http::header::AUTHORIZATION, v);
        }
        let ex = self
            .send_body(kind, method.clone(), url, with_auth, body())
            .await?;
        if ex.status != StatusCode::UNAUTHORIZED {
            return Ok(ex);
        }
        // The token expired or the challenge changed: learn it and try once more.
        if let Some(c) = ex
            .headers
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        {
            self.set_challenge(Challenge::parse(c));
        }
        drop(ex.body);
        let mut retry = headers;
        if let Some(v) = self.authorization(true).await? {
            retry.insert(http::header::AUTHORIZATION, v);
        }
        self.send_body(kind, method, url, retry, body()).await
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
