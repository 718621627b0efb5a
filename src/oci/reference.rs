//! Image references inside one registry: `name[:tag][@sha256:<hex>]`, with the
//! OCI distribution spec's grammar.
//!
//! The grammar itself lives in [`super::name`], shared with the embedded
//! registry; this module splits a reference and explains what is wrong. The
//! registry host belongs in `target.url`, so a `host:port/` prefix is refused
//! with a hint; scenario validation uses the same check so a typo fails before
//! the fleet starts.

use super::name::{is_path_component, is_sha256_digest, is_tag, NAME_MAX, TAG_MAX};
use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Repository path, e.g. `library/ubuntu`.
    pub name: String,
    /// Tag, when given (`latest` when neither tag nor digest is).
    pub tag: Option<String>,
    /// Digest, when given; it wins over the tag.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `name[:tag][@digest]` per the distribution spec's grammar.
    pub fn parse(text: &str) -> Result<Reference, String> {
        check_reference(text)?;
        let (name, tag, digest) = split(text);
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            name: name.to_string(),
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// What to put after `/manifests/`: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `name[:tag][@digest]` into its three parts, unchecked.
fn split(text: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    // A ':' after the last '/' starts the tag; one before it would be a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].find(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// Checks `text` against `name[:tag][@sha256:<64 lowercase hex>]`, with the
/// grammar of [`super::name`]; only sha256 digests are accepted, as only they
/// can be verified.
pub fn check_reference(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty image reference".into());
    }
    let (name, tag, digest) = split(text);
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    check_name(name)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "the repository name has {} characters, more than {NAME_MAX}",
            name.len()
        ));
    }
    for (i, component) in name.split('/').enumerate() {
        if i == 0 && component.contains(':') {
            return Err(format!(
                "`{component}` looks like a host: put the registry in target.url and only the repository in target.image"
            ));
        }
        if !is_path_component(component) {
            return Err(format!(
                "`{component}` is not a valid repository path component (lowercase letters and digits, \
                 separated by `.`, `_`, `__` or `-`)"
            ));
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    if is_tag(tag) {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most {TAG_MAX}; not starting with `.` or `-`)"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    if !digest.starts_with("sha256:") {
        return Err(format!(
            "`{digest}` is not a supported digest (expected sha256:<64 hex digits>)"
        ));
    }
    if is_sha256_digest(digest) {
        Ok(())
    } else {
        Err(format!(
            "`{digest}` is not a valid digest (expected sha256: and 64 lowercase hex digits)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_valid_references() {
        for ok in [
            "busybox",
            "lab/big:v1",
            "library/nginx:1.27-alpine",
            "a/b/c/d",
            "my_repo/sub__name/x-y--z.w:Tag_1.0",
            "docker.io/library/nginx",
            "lab/big:_underscore",
        ] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_reference(&format!("lab/big@{DIGEST}")), Ok(()));
        assert_eq!(check_reference(&format!("lab/big:v1@{DIGEST}")), Ok(()));
    }

    #[test]
    fn rejects_invalid_references() {
        for bad in [
            "",
            "Lab/big",
            "lab//big",
            "/lab",
            "lab/",
            "lab/big:",
            "lab/big:-x",
            "lab/big:.x",
            "lab/big:v 1",
            "lab/big@sha256:abc",
            "lab/big@md5:0123",
            "lab/big@",
            "lab/-big",
            "lab/big_",
            "lab/a___b",
            "lab/a..b",
            "lab/big:v1:v2",
        ] {
            assert!(check_reference(bad).is_err(), "{bad:?} should be rejected");
        }
        let upper_hex = DIGEST.to_uppercase().replace("SHA256", "sha256");
        assert!(check_reference(&format!("lab/big@{upper_hex}")).is_err());
        assert!(check_reference(&format!("{}:v1", "a".repeat(256))).is_err());
        assert!(check_reference(&format!("lab:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn a_host_gets_a_hint() {
        let err = check_reference("127.0.0.1:8080/lab/big:v1").unwrap_err();
        assert!(err.contains("target.url"), "{err}");
    }

    #[test]
    fn parses_names_tags_and_digests() {
        let r = Reference::parse("lab/big:v1").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_deref()), ("lab/big", Some("v1")));
        let r = Reference::parse("library/ubuntu").unwrap();
        assert_eq!(r.manifest_ref(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("a/b@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.tag, None);
        assert!(Reference::parse("a/b_c/d-e.f:1.0").is_ok());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "a/b:",
            "a/-b",
            "a/b@sha256:xyz",
            "a/b:t@md5:00",
            "a/b:bad tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
