//! The storage hop of a blob redirect: a registry on object storage (Harbor on S3 or OBS,
//! distribution with `storage.redirect` on) answers a blob GET or HEAD with a 307 to a
//! presigned URL of the storage host, which the client fetches without the registry's
//! Authorization. What goes wrong there is the storage's, not the registry's: its faults
//! name the storage host (never the presigned URL: its signature is a credential for as
//! long as it lives) and its error answers keep the storage's own error code, read from
//! S3's XML error body (`<Error><Code>AccessDenied</Code><Message>...`).

use crate::net::{Fault, FaultClass, Phase};
use http::StatusCode;
use url::Url;

/// Most characters of the storage's `<Message>` kept in a fault's detail.
const MESSAGE_LIMIT: usize = 200;

/// `host:port` of a URL (the port the scheme implies when it has none): how a storage
/// host is named in faults and findings.
pub fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// An S3-style error answer: `<Code>` and, when present, `<Message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    pub code: String,
    pub message: Option<String>,
}

impl StorageError {
    /// Reads S3's XML error body (AWS S3, OBS, MinIO, moto, Ceph RGW all send it). `None`
    /// for any other body: an LB's HTML page, an empty 403 (`HEAD` answers have no body).
    pub fn parse(body: &[u8]) -> Option<StorageError> {
        let text = std::str::from_utf8(body).ok()?;
        let error = element(text, "Error")?;
        let code = element(error, "Code")?.trim();
        if code.is_empty() {
            return None;
        }
        let message = element(error, "Message")
            .map(|m| m.trim().chars().take(MESSAGE_LIMIT).collect::<String>())
            .filter(|m| !m.is_empty());
        Some(StorageError {
            code: code.to_string(),
            message,
        })
    }

    /// `Code (Message)`, as a fault's detail quotes it.
    pub fn text(&self) -> String {
        match &self.message {
            Some(m) => format!("{} ({m})", self.code),
            None => self.code.clone(),
        }
    }
}

/// The text between `<name>` (or `<name attr...>`) and `</name>`. S3's error bodies are
/// flat and unescaped where it matters (codes are identifiers), so no XML parser is needed.
fn element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = text.find(&format!("<{name}"))?;
    let after = &text[open + 1 + name.len()..];
    // `<Error>` or `<Error xmlns=...>`, not `<ErrorCode>`.
    if !after.starts_with('>') && !after.starts_with(char::is_whitespace) {
        return None;
    }
    let start = after.find('>')? + 1;
    let end = after[start..].find(&format!("</{name}>"))? + start;
    Some(&after[start..end])
}

/// The fault of an error status the storage host answered: class `storage_<status>`, the
/// detail naming the host and the storage's error code.
pub fn error_fault(status: StatusCode, body: &[u8], host: &str, what: &str) -> Fault {
    let detail = match StorageError::parse(body) {
        Some(e) => format!(
            "{what} at storage {host}: HTTP {} {}",
            status.as_u16(),
            e.text()
        ),
        None => format!(
            "{what} at storage {host}: HTTP {} (no S3 error code)",
            status.as_u16()
        ),
    };
    Fault::new(FaultClass::Storage(status.as_u16()), Phase::Request, detail)
}

/// A transport fault (refused, reset, timeout) on the way to the storage host: its class
/// is kept, its detail says it was the storage host, not the registry.
pub fn hop_fault(fault: Fault, host: &str) -> Fault {
    Fault {
        detail: format!("storage {host}: {}", fault.detail),
        ..fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_bodies_give_their_code_and_message() {
        let moto = br#"<?xml version="1.0" encoding="utf-8"?>
<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class</Message><StorageClass>GLACIER</StorageClass><RequestId>x</RequestId></Error>"#;
        let e = StorageError::parse(moto).unwrap();
        assert_eq!(e.code, "InvalidObjectState");
        assert_eq!(
            e.text(),
            "InvalidObjectState (The operation is not valid for the object's storage class)"
        );
        let expired = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>1200</X-Amz-Expires></Error>";
        assert_eq!(
            StorageError::parse(expired).unwrap().text(),
            "AccessDenied (Request has expired)"
        );
        let no_message = b"<Error xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(
            StorageError::parse(no_message).unwrap(),
            StorageError {
                code: "SignatureDoesNotMatch".into(),
                message: None
            }
        );
    }

    #[test]
    fn bodies_without_an_s3_error_have_no_code() {
        for body in [
            &b""[..],
            b"<html><body>403 Forbidden</body></html>",
            b"{\"errors\":[{\"code\":\"DENIED\"}]}",
            b"<ErrorCode>x</ErrorCode>",
            b"<Error><Code></Code></Error>",
            b"<Error><Code>cut short",
            &[0xff, 0xfe, 0x00],
        ] {
            assert_eq!(StorageError::parse(body), None, "{body:?}");
        }
    }

    #[test]
    fn storage_faults_name_the_host_and_the_code_never_the_signed_url() {
        let f = error_fault(
            StatusCode::FORBIDDEN,
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            "bucket.s3.example:443",
            "GET blob sha256:ab",
        );
        assert_eq!(f.class.key(), "storage_403");
        assert_eq!(
            f.detail,
            "GET blob sha256:ab at storage bucket.s3.example:443: HTTP 403 AccessDenied (Request has expired)"
        );
        let bare = error_fault(StatusCode::FORBIDDEN, b"", "s3:9000", "HEAD blob sha256:ab");
        assert_eq!(
            bare.detail,
            "HEAD blob sha256:ab at storage s3:9000: HTTP 403 (no S3 error code)"
        );
        let url = Url::parse("https://b.s3.example/k?X-Amz-Signature=secret").unwrap();
        assert_eq!(host_of(&url), "b.s3.example:443");
        let refused = hop_fault(
            Fault::new(
                FaultClass::ConnectRefused,
                Phase::Connect,
                "connection refused",
            ),
            &host_of(&url),
        );
        assert_eq!(refused.class, FaultClass::ConnectRefused);
        assert_eq!(
            refused.detail,
            "storage b.s3.example:443: connection refused"
        );
    }
}
