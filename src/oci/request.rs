//! What the session's requests look like, apart from sending them: endpoint
//! URLs, the `Accept` set of a tag resolve, the `Range` of a resume, the
//! `Authorization` a challenge calls for, the token request, and where a
//! redirect leads (and whether the credentials may follow it).
//!
//! Kept free of I/O and of the session's state so each rule is unit-tested
//! with synthetic input, without a registry.

use super::auth::{Challenge, Credentials};
use super::manifest;
use crate::net::{Fault, FaultClass, Phase};
use http::{HeaderMap, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// `path` (absolute, `/v2/...`) on the registry at `base`.
pub fn endpoint(base: &Url, path: &str) -> Result<Url, Fault> {
    base.join(path).map_err(|e| {
        Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!("cannot build URL for {path}: {e}"),
        )
    })
}

/// `/v2/<repo>/manifests/<tag or digest>`.
pub fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

/// `/v2/<repo>/blobs/<digest>`.
pub fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// `/v2/<repo>/blobs/uploads/`: where an upload starts.
pub fn upload_path(repo: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/")
}

/// The `Accept` values of a manifest request, one header each, as dockerd sends
/// them: both manifest types and both index types, so the registry may answer
/// a tag with whatever it holds.
pub fn manifest_accept_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for t in manifest::ACCEPTED {
        h.append(http::header::ACCEPT, HeaderValue::from_static(t));
    }
    h
}

/// The `Accept-Encoding` containerd 2.0 and later send on a blob GET
/// (core/remotes/docker/fetcher.go). A registry that honoured it would compress the
/// body; registries serve blobs as stored, so pullstorm reads the body as it comes.
pub const CONTAINERD_ACCEPT_ENCODING: &str = "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5";

/// The headers of a blob GET: its media type (or anything), `accept_encoding` when
/// the client sends one, and, when resuming from `offset` > 0, `Range: bytes=<offset>-`.
pub fn blob_headers(media_type: &str, offset: u64, accept_encoding: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("{media_type}, */*")) {
        headers.insert(http::header::ACCEPT, v);
    }
    if let Some(v) = accept_encoding.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(http::header::ACCEPT_ENCODING, v);
    }
    if offset > 0 {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
            headers.insert(http::header::RANGE, v);
        }
    }
    headers
}

/// Which answers make a client send the same request again at once, and how many
/// times: containerd's `doWithRetries` (remotes/docker/resolver.go), for every request
/// of a pull (resolve HEAD, manifest and blob GETs). dockerd sends nothing again
/// ([`Resends::NONE`]). A 401 is re-authenticated once whatever these say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Resends {
    /// Most responses to one request, the first (and a 401's) included: containerd's
    /// `len(responses) > 5` check, so 6.
    pub max_responses: u32,
    /// 500, 503 and 504 go again, unless the response just before had the same status
    /// (containerd 2.1 and later; never in 1.6 to 2.0).
    pub server_errors: bool,
}

impl Resends {
    /// Nothing is sent again (dockerd).
    pub const NONE: Resends = Resends {
        max_responses: 1,
        server_errors: false,
    };

    /// Whether a request whose `responses`-th response (counting from 1) has `status`
    /// is sent again, `previous` being the status of the response before it.
    pub fn again(&self, status: u16, previous: Option<u16>, responses: u32) -> bool {
        if responses >= self.max_responses {
            return false;
        }
        match status {
            // A 401 after the re-authentication: sent again with the cached token.
            401 | 408 | 429 => true,
            500 | 503 | 504 => self.server_errors && previous != Some(status),
            _ => false,
        }
    }
}

/// The `client_id` containerd names in its token form (remotes/docker/authorizer.go).
pub const CONTAINERD_CLIENT_ID: &str = "containerd-client";

/// The form containerd POSTs to the token realm when it has credentials
/// (remotes/docker/auth/fetch.go, `FetchTokenWithOAuth`): `grant_type=password`, the
/// user and password, `client_id`, `service` and `scope`, keys sorted as Go encodes them.
pub fn token_form(
    service: Option<&str>,
    repo: &str,
    actions: &str,
    credentials: &Credentials,
) -> String {
    let scope = format!("repository:{repo}:{actions}");
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", CONTAINERD_CLIENT_ID)
        .append_pair("grant_type", "password")
        .append_pair("password", &credentials.password)
        .append_pair("scope", &scope)
        .append_pair("service", service.unwrap_or(""))
        .append_pair("username", &credentials.user)
        .finish()
}

/// Whether a token realm's answer to the POST form sends containerd to the GET instead:
/// registries without the OAuth endpoint answer 404 (GCR), 401 (Artifactory), 400 (ACR)
/// or 405 (remotes/docker/authorizer.go).
pub fn token_post_refused(status: u16) -> bool {
    matches!(status, 400 | 401 | 404 | 405)
}

/// What a request sends for the registry's current challenge.
#[derive(Debug, PartialEq)]
pub enum AuthStep<'a> {
    /// No challenge yet, or Basic without credentials: no `Authorization`.
    Nothing,
    /// Basic credentials, ready to send.
    Send(HeaderValue),
    /// A Bearer token from this realm (cached or fetched).
    Token {
        realm: &'a str,
        service: Option<&'a str>,
    },
}

/// The [`AuthStep`] for `challenge`: Basic sends the credentials on every
/// request, Bearer needs a token whether or not there are credentials (an
/// anonymous token is the common case for pulls).
pub fn auth_step<'a>(
    challenge: Option<&'a Challenge>,
    credentials: Option<&Credentials>,
) -> AuthStep<'a> {
    match challenge {
        None => AuthStep::Nothing,
        Some(Challenge::Basic) => credentials
            .and_then(basic_authorization)
            .map_or(AuthStep::Nothing, AuthStep::Send),
        Some(Challenge::Bearer { realm, service, .. }) => AuthStep::Token {
            realm,
            service: service.as_deref(),
        },
    }
}

/// `Basic <base64(user:password)>`, marked sensitive so it never shows in logs.
pub fn basic_authorization(credentials: &Credentials) -> Option<HeaderValue> {
    HeaderValue::from_str(&credentials.basic_header())
        .ok()
        .map(sensitive)
}

/// `Bearer <token>`, marked sensitive.
pub fn bearer_authorization(token: &str) -> Result<HeaderValue, Fault> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map(sensitive)
        .map_err(|_| {
            Fault::new(
                FaultClass::Other,
                Phase::Body,
                "token is not a valid header value",
            )
        })
}

/// The cached token, unless a refresh is asked for or it has expired by `now`.
pub fn fresh_token(
    cached: Option<&(HeaderValue, Instant)>,
    refresh: bool,
    now: Instant,
) -> Option<HeaderValue> {
    match cached {
        Some((token, expires)) if !refresh && now < *expires => Some(token.clone()),
        _ => None,
    }
}

/// Longest a token is kept, whatever the token server says (`expires_in` may be
/// anything up to 2^64-1 seconds, which no clock can add).
pub const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// When a token fetched at `now` for `lifetime_secs` is renewed: 5 s early, so it never
/// expires mid-request, and never later than [`MAX_TOKEN_LIFE`] from `now`.
pub fn token_expiry(now: Instant, lifetime_secs: u64) -> Instant {
    let life = Duration::from_secs(lifetime_secs)
        .min(MAX_TOKEN_LIFE)
        .saturating_sub(Duration::from_secs(5));
    now.checked_add(life).unwrap_or(now)
}

/// The token request: `realm` (absolute, or relative to the registry at `base`)
/// with `service` when the challenge named one and `scope=repository:<repo>:<actions>`.
pub fn token_url(
    base: &Url,
    realm: &str,
    service: Option<&str>,
    repo: &str,
    actions: &str,
) -> Result<Url, Fault> {
    let mut url = token_realm(base, realm)?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        q.append_pair("scope", &format!("repository:{repo}:{actions}"));
    }
    Ok(url)
}

/// The token realm as a URL (absolute, or relative to the registry at `base`), http(s) only.
pub fn token_realm(base: &Url, realm: &str) -> Result<Url, Fault> {
    let url = Url::parse(realm)
        .or_else(|_| base.join(realm))
        .map_err(|e| {
            Fault::new(
                FaultClass::Other,
                Phase::Request,
                format!("bad token realm {realm:?}: {e}"),
            )
        })?;
    require_http(&url, "token realm")?;
    Ok(url)
}

/// Where a redirect leads.
#[derive(Debug, PartialEq)]
pub struct Redirect {
    pub url: Url,
    /// Whether `Authorization` goes along: only to the same host and port, so a
    /// registry token never reaches a CDN or another server.
    pub keep_authorization: bool,
}

/// Follows `location` (absolute or relative) from the request to `from`.
pub fn redirect(from: &Url, location: &str) -> Result<Redirect, Fault> {
    let url = from.join(location).map_err(|e| {
        Fault::new(
            FaultClass::Other,
            Phase::Request,
            format!("bad redirect Location {location:?}: {e}"),
        )
    })?;
    require_http(&url, "redirect")?;
    let keep_authorization = url.host_str() == from.host_str()
        && url.port_or_known_default() == from.port_or_known_default();
    Ok(Redirect {
        url,
        keep_authorization,
    })
}

/// Refuses a URL the registry handed over (a redirect, a token realm) unless it is
/// http or https, before anything connects to it: `gopher://`, `file://` and the like
/// are a fault of class `other`.
pub fn require_http(url: &Url, what: &str) -> Result<(), Fault> {
    if matches!(url.scheme(), "http" | "https") {
        return Ok(());
    }
    Err(Fault::new(
        FaultClass::Other,
        Phase::Request,
        format!(
            "{what} to {url} refused: scheme {} is not http or https",
            url.scheme()
        ),
    ))
}

/// Marks a header value as a secret (hidden from `Debug`, kept out of HPACK tables).
pub fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn redirects_and_realms_only_to_http_or_https() {
        let from = url("http://127.0.0.1:5000/v2/a/blobs/x");
        for to in [
            "gopher://127.0.0.1:70/",
            "file:///etc/passwd",
            "ftp://h/x",
            "data:,x",
        ] {
            let f = redirect(&from, to).expect_err(to);
            assert_eq!(f.class, FaultClass::Other, "{to}");
            assert!(
                f.detail.contains("is not http or https"),
                "{to}: {}",
                f.detail
            );
        }
        assert!(redirect(&from, "https://cdn.example/b").is_ok());
        let realm = token_url(&from, "gopher://auth.example/token", None, "a", "pull");
        assert!(realm.is_err());
    }

    #[test]
    fn token_lifetimes_are_clamped() {
        let now = Instant::now();
        assert_eq!(
            token_expiry(now, u64::MAX),
            now + MAX_TOKEN_LIFE - Duration::from_secs(5)
        );
        assert_eq!(token_expiry(now, 60), now + Duration::from_secs(55));
        assert_eq!(token_expiry(now, 0), now);
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn creds() -> Credentials {
        Credentials {
            user: "alice".into(),
            password: "s3cr3t".into(),
        }
    }

    #[test]
    fn blob_and_manifest_urls() {
        let base = url("http://127.0.0.1:5000");
        let blob = endpoint(&base, &blob_path("lab/big", DIGEST)).unwrap();
        assert_eq!(
            blob.as_str(),
            format!("http://127.0.0.1:5000/v2/lab/big/blobs/{DIGEST}")
        );
        let tag = endpoint(&base, &manifest_path("lab/big", "v1")).unwrap();
        assert_eq!(
            tag.as_str(),
            "http://127.0.0.1:5000/v2/lab/big/manifests/v1"
        );
        let by_digest = endpoint(&base, &manifest_path("a/b/c", DIGEST)).unwrap();
        assert_eq!(by_digest.path(), format!("/v2/a/b/c/manifests/{DIGEST}"));
        let upload = endpoint(&url("https://harbor.example"), &upload_path("lib/app")).unwrap();
        assert_eq!(
            upload.as_str(),
            "https://harbor.example/v2/lib/app/blobs/uploads/"
        );
    }

    #[test]
    fn tag_resolve_accepts_manifests_and_indexes() {
        let h = manifest_accept_headers();
        let accepts: Vec<&str> = h
            .get_all(http::header::ACCEPT)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            accepts,
            [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
        );
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn a_resume_asks_for_the_rest() {
        let layer = "application/vnd.oci.image.layer.v1.tar+gzip";
        let first = blob_headers(layer, 0, None);
        assert_eq!(
            first.get(http::header::ACCEPT).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip, */*"
        );
        assert!(first.get(http::header::RANGE).is_none());
        let resume = blob_headers(layer, 1_048_576, None);
        assert_eq!(resume.get(http::header::RANGE).unwrap(), "bytes=1048576-");
        assert_eq!(
            resume.get(http::header::ACCEPT),
            first.get(http::header::ACCEPT)
        );
    }

    #[test]
    fn containerd_2_asks_for_compressed_blobs() {
        let layer = "application/vnd.oci.image.layer.v1.tar+gzip";
        let h = blob_headers(layer, 0, Some(CONTAINERD_ACCEPT_ENCODING));
        assert_eq!(
            h.get(http::header::ACCEPT_ENCODING).unwrap(),
            "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"
        );
        assert!(blob_headers(layer, 0, None)
            .get(http::header::ACCEPT_ENCODING)
            .is_none());
    }

    /// containerd's `doWithRetries`: 408/429 until the 6th response, no wait; 5xx
    /// never before 2.1, then 500/503/504 once (not after the same status), 502 never.
    #[test]
    fn resends_of_one_request() {
        let c16 = Resends {
            max_responses: 6,
            server_errors: false,
        };
        let c22 = Resends {
            server_errors: true,
            ..c16
        };
        // A 429 for ever: responses 1-5 go again, the 6th is the answer.
        let sent: Vec<bool> = (1..=6).map(|n| c16.again(429, Some(429), n)).collect();
        assert_eq!(sent, [true, true, true, true, true, false]);
        assert!(c16.again(408, None, 1));
        for status in [500, 502, 503, 504] {
            assert!(!c16.again(status, None, 1), "1.6: {status}");
        }
        assert!(c22.again(503, None, 1));
        assert!(!c22.again(503, Some(503), 2), "once in a row");
        assert!(c22.again(500, Some(503), 2), "another 5xx goes again");
        assert!(!c22.again(502, None, 1), "502 never");
        assert!(!c22.again(503, None, 6), "the 6th response is the last");
        for status in [400, 403, 404, 405, 501] {
            assert!(!c22.again(status, None, 1), "{status}");
        }
        for status in [408, 429, 500, 503] {
            assert!(!Resends::NONE.again(status, None, 1), "dockerd: {status}");
        }
    }

    #[test]
    fn containerd_posts_a_password_form_for_its_token() {
        let form = token_form(Some("harbor-registry"), "lib/app", "pull", &creds());
        assert_eq!(
            form,
            "client_id=containerd-client&grant_type=password&password=s3cr3t\
             &scope=repository%3Alib%2Fapp%3Apull&service=harbor-registry&username=alice"
        );
        for status in [400, 401, 404, 405] {
            assert!(token_post_refused(status), "{status}");
        }
        for status in [403, 429, 500, 503] {
            assert!(!token_post_refused(status), "{status}");
        }
    }

    #[test]
    fn basic_sends_credentials_bearer_asks_for_a_token() {
        let c = creds();
        assert_eq!(auth_step(None, Some(&c)), AuthStep::Nothing);
        assert_eq!(auth_step(Some(&Challenge::Basic), None), AuthStep::Nothing);
        let AuthStep::Send(basic) = auth_step(Some(&Challenge::Basic), Some(&c)) else {
            panic!("Basic with credentials sends them");
        };
        // base64("alice:s3cr3t")
        assert_eq!(basic, "Basic YWxpY2U6czNjcjN0");
        assert!(basic.is_sensitive());
        let bearer = Challenge::Bearer {
            realm: "https://auth.example/token".into(),
            service: Some("registry".into()),
            scope: Some("repository:lib/app:pull".into()),
        };
        let want = AuthStep::Token {
            realm: "https://auth.example/token",
            service: Some("registry"),
        };
        assert_eq!(auth_step(Some(&bearer), Some(&c)), want);
        assert_eq!(auth_step(Some(&bearer), None), want);
        let token = bearer_authorization("abc.def").unwrap();
        assert_eq!(token, "Bearer abc.def");
        assert!(token.is_sensitive());
        assert!(bearer_authorization("bad\ntoken").is_err());
    }

    #[test]
    fn a_cached_token_is_used_until_it_expires_or_is_refused() {
        let now = Instant::now();
        let token = HeaderValue::from_static("Bearer t");
        let live = (token.clone(), now + Duration::from_secs(30));
        assert_eq!(fresh_token(Some(&live), false, now), Some(token));
        assert_eq!(fresh_token(Some(&live), true, now), None);
        let expired = (HeaderValue::from_static("Bearer t"), now);
        assert_eq!(fresh_token(Some(&expired), false, now), None);
        assert_eq!(fresh_token(None, false, now), None);
    }

    #[test]
    fn token_requests_name_service_and_scope() {
        let base = url("http://127.0.0.1:5000");
        let t = token_url(
            &base,
            "https://auth.example/token?x=1",
            Some("my registry"),
            "lib/app",
            "pull",
        )
        .unwrap();
        assert_eq!(
            t.as_str(),
            "https://auth.example/token?x=1&service=my+registry&scope=repository%3Alib%2Fapp%3Apull"
        );
        let relative = token_url(&base, "/token", None, "lab/big", "pull,push").unwrap();
        assert_eq!(
            relative.as_str(),
            "http://127.0.0.1:5000/token?scope=repository%3Alab%2Fbig%3Apull%2Cpush"
        );
        assert!(token_url(&base, "http://[", None, "a", "pull").is_err());
    }

    #[test]
    fn authorization_follows_a_redirect_only_to_the_same_host_and_port() {
        let from = url(&format!("http://registry.example/v2/a/blobs/{DIGEST}"));
        let same = redirect(&from, "/storage/blob?sig=1").unwrap();
        assert_eq!(
            same.url.as_str(),
            "http://registry.example/storage/blob?sig=1"
        );
        assert!(same.keep_authorization);
        let explicit_port = redirect(&from, "http://registry.example:80/x").unwrap();
        assert!(explicit_port.keep_authorization);
        for elsewhere in [
            "https://cdn.example/blob",
            "http://registry.example:8080/x",
            "https://registry.example/x",
        ] {
            let r = redirect(&from, elsewhere).unwrap();
            assert_eq!(r.url.as_str(), url(elsewhere).as_str());
            assert!(!r.keep_authorization, "{elsewhere}");
        }
        assert!(redirect(&from, "http://[").is_err());
    }
}
