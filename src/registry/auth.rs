//! Bearer-token auth of the embedded registry, shaped like Docker Hub's and
//! Harbor's: `401` + `WWW-Authenticate: Bearer realm=...` on `/v2/...`, and a
//! token endpoint of its own at `/token`.
//!
//! Tokens are stateless so 10,000 nodes fetching tokens cost no memory:
//! `ps1.<expiry unix seconds>.<mac>`, where the mac is the first 16 bytes of
//! `sha256(server secret || expiry)`. The secret is random per process, so a
//! token is only good on the server that issued it, for [`TOKEN_LIFETIME`].
//! Tokens grant pull on every repository (the scope is not checked).

use crate::digest::hex;
use crate::oci::auth::Credentials;
use base64::Engine;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `service` of the challenge.
pub const SERVICE: &str = "pullstorm-embedded";
/// How long a token is good for (reported as `expires_in`).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const PREFIX: &str = "ps1.";
const MAC_LEN: usize = 16;

/// Issues and checks tokens; holds the optional Basic credentials the token endpoint demands.
pub struct TokenAuth {
    secret: [u8; 32],
    required: Option<[u8; 32]>,
}

/// A freshly issued token, ready for the token endpoint's JSON.
#[derive(Debug, serde::Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

impl TokenAuth {
    pub fn new(required: Option<&Credentials>) -> TokenAuth {
        TokenAuth {
            secret: random_secret(),
            required: required.map(|c| hash_pair(&c.user, &c.password)),
        }
    }

    /// Whether the token endpoint may issue a token to a request with these headers.
    pub fn basic_ok(&self, headers: &HeaderMap) -> bool {
        let Some(required) = &self.required else {
            return true;
        };
        let Some(encoded) = credentials_of(headers, "Basic") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = std::str::from_utf8(&decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        // Compare hashes: no early exit leaks how much of the password matched.
        constant_time_eq(&hash_pair(user, password), required)
    }

    pub fn issue(&self) -> IssuedToken {
        let now = SystemTime::now();
        let expiry = unix_secs(now + TOKEN_LIFETIME);
        let token = format!("{PREFIX}{expiry}.{}", hex(&self.mac(expiry)));
        IssuedToken {
            access_token: token.clone(),
            token,
            expires_in: TOKEN_LIFETIME.as_secs(),
            issued_at: humantime::format_rfc3339_seconds(now).to_string(),
        }
    }

    /// Whether the request carries a valid, unexpired bearer token.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        credentials_of(headers, "Bearer").is_some_and(|t| self.token_ok(t.trim()))
    }

    fn token_ok(&self, token: &str) -> bool {
        let Some(rest) = token.strip_prefix(PREFIX) else {
            return false;
        };
        let Some((expiry, mac)) = rest.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let expected = hex(&self.mac(expiry));
        constant_time_eq(mac.as_bytes(), expected.as_bytes())
            && unix_secs(SystemTime::now()) < expiry
    }

    fn mac(&self, expiry: u64) -> [u8; MAC_LEN] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(expiry.to_be_bytes());
        let full = h.finalize();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&full[..MAC_LEN]);
        mac
    }
}

/// The credentials after `<scheme> ` in the Authorization header, if that is its scheme.
fn credentials_of<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn hash_pair(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 32 random bytes from the kernel; if that fails, from std's per-process
/// random hasher keys mixed with the time (a test registry, not a vault).
fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    let from_kernel =
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut secret));
    if from_kernel.is_err() {
        use std::hash::{BuildHasher, Hasher};
        let mut h = Sha256::new();
        for _ in 0..4 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            h.update(hasher.finish().to_le_bytes());
        }
        h.update(format!("{:?}", SystemTime::now()).as_bytes());
        secret = h.finalize().into();
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn issued_tokens_validate_and_forged_ones_do_not() {
        let auth = TokenAuth::new(None);
        let issued = auth.issue();
        assert_eq!(issued.token, issued.access_token);
        assert!(auth.bearer_ok(&with_auth(&format!("Bearer {}", issued.token))));
        assert!(auth.bearer_ok(&with_auth(&format!("bearer  {}", issued.token))));
        assert!(!TokenAuth::new(None).bearer_ok(&with_auth(&format!("Bearer {}", issued.token))));
        assert!(!auth.bearer_ok(&with_auth("Bearer ps1.99999999999.00")));
        assert!(!auth.bearer_ok(&with_auth("Bearer garbage")));
        assert!(!auth.bearer_ok(&HeaderMap::new()));
        let expired = format!("{PREFIX}1.{}", hex(&auth.mac(1)));
        assert!(!auth.bearer_ok(&with_auth(&format!("Bearer {expired}"))));
    }

    #[test]
    fn basic_credentials() {
        let creds = Credentials {
            user: "ci".into(),
            password: "s3cret".into(),
        };
        let auth = TokenAuth::new(Some(&creds));
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(auth.basic_ok(&with_auth(&format!("Basic {}", b64("ci:s3cret")))));
        assert!(!auth.basic_ok(&with_auth(&format!("Basic {}", b64("ci:wrong")))));
        assert!(!auth.basic_ok(&with_auth("Basic !!!")));
        assert!(!auth.basic_ok(&HeaderMap::new()));
        assert!(TokenAuth::new(None).basic_ok(&HeaderMap::new()));
    }
}
