//! Registry authentication as dockerd does it: learn the challenge from
//! `GET /v2/`, fetch a Bearer token from the realm lazily (cached until it
//! expires, lifetime floored at 60 s), or send Basic credentials.
//!
//! Credentials come from `PULLSTORM_USERNAME`/`PULLSTORM_PASSWORD` or docker's
//! `config.json`, never from the scenario; their `Debug` output is redacted so
//! they cannot leak into logs by accident.

use base64::Engine;
use std::fmt;
use std::path::PathBuf;

/// A user name and password (or registry token). The client sends them to the
/// registry under test; the embedded registry demands them at its token
/// endpoint. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// `Authorization: Basic ...` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Credentials for the registry at `base` (its `host[:port]`, as docker's
    /// config.json keys it), from the environment or docker's config.
    pub fn for_registry(base: &url::Url) -> Option<Credentials> {
        let host = base.host_str().unwrap_or_default();
        match base.port() {
            Some(p) => Credentials::find(&format!("{host}:{p}")),
            None => Credentials::find(host),
        }
    }

    /// Looks for credentials for `host` (`host[:port]`): environment first, then docker's config.
    pub fn find(host: &str) -> Option<Credentials> {
        let user = std::env::var("PULLSTORM_USERNAME")
            .ok()
            .filter(|u| !u.is_empty());
        let pass = std::env::var("PULLSTORM_PASSWORD").ok();
        if let (Some(user), Some(password)) = (user, pass) {
            return Some(Credentials { user, password });
        }
        let path = docker_config_path()?;
        let text = std::fs::read_to_string(path).ok()?;
        from_docker_config(&text, host)
    }

    /// Where the credentials were found, for the run's environment record (never the values).
    pub fn source_name() -> &'static str {
        if std::env::var("PULLSTORM_USERNAME").is_ok() {
            "environment"
        } else {
            "docker config.json"
        }
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Reads `auths` of a docker `config.json`; keys may be `host`, `https://host` or `https://host/v1/`.
pub fn from_docker_config(text: &str, host: &str) -> Option<Credentials> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, value)| {
        let bare = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let bare = bare.split('/').next().unwrap_or(bare);
        (bare == host).then_some(value)
    })?;
    if let Some(encoded) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
    }
    let user = entry.get("username")?.as_str()?.to_string();
    let password = entry.get("password")?.as_str()?.to_string();
    Some(Credentials { user, password })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// The `error` parameter of a Bearer challenge (`invalid_token`, `insufficient_scope`,
/// RFC 6750 section 3.1), which moby reads before the body of a 4xx.
pub fn bearer_error(header: &str) -> Option<String> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parse_params(params)
        .into_iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("error"))
        .map(|(_, v)| v)
}

/// `key=value` or `key="quoted, value"` pairs separated by commas.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut escaped = false;
            let mut end = quoted.len();
            for (i, c) in quoted.char_indices() {
                if escaped {
                    value.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = i + 1;
                    break;
                } else {
                    value.push(c);
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token endpoint's answer (`token` or `access_token`).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn bearer(&self) -> Option<&str> {
        self.token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())
    }

    /// Lifetime in seconds, floored at 60 as dockerd does.
    pub fn lifetime_secs(&self) -> u64 {
        self.expires_in.unwrap_or(60).max(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_errors() {
        let h = r#"Bearer realm="https://a/token",error="insufficient_scope",scope="x""#;
        assert_eq!(bearer_error(h).as_deref(), Some("insufficient_scope"));
        assert_eq!(bearer_error(r#"Bearer realm="https://a/token""#), None);
        assert_eq!(bearer_error(r#"Basic error="invalid_token""#), None);
    }

    #[test]
    fn parses_harbor_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://harbor.example/service/token",service="harbor-registry",scope="repository:lib/app:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://harbor.example/service/token".into(),
                service: Some("harbor-registry".into()),
                scope: Some("repository:lib/app:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let cfg = r#"{"auths":{"https://127.0.0.1:5000":{"auth":"YWxpY2U6czNjcjN0"},"other:1":{"username":"bob","password":"pw"}}}"#;
        let c = from_docker_config(cfg, "127.0.0.1:5000").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cr3t"));
        assert_eq!(from_docker_config(cfg, "other:1").unwrap().user, "bob");
        assert!(from_docker_config(cfg, "nowhere").is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn token_lifetime_is_floored() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":5}"#).unwrap();
        assert_eq!((t.bearer(), t.lifetime_secs()), (Some("x"), 60));
    }
}
