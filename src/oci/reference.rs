//! Image references inside one registry: `name[:tag][@sha256:<hex>]`, with the
//! OCI distribution spec's grammar.
//!
//! The registry host belongs in `target.url`, so a `host:port/` prefix is refused
//! with a hint; scenario validation uses the same check so a typo fails before
//! the fleet starts.

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
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (text, None),
        };
        // A colon after the last slash starts the tag (a colon before it would be a port).
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            name: name.to_string(),
            tag,
            digest,
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

/// Checks `text` against `name[:tag][@sha256:<64 lowercase hex>]`, where `name`
/// is `/`-separated lowercase components (`[a-z0-9]+` joined by `.`, `_`, `__`
/// or runs of `-`) of at most 255 characters in all, and `tag` is
/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_reference(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty image reference".into());
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A ':' after the last '/' starts the tag; one before it would be a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
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
    if name.len() > 255 {
        return Err(format!(
            "the repository name has {} characters, more than 255",
            name.len()
        ));
    }
    for (i, component) in name.split('/').enumerate() {
        if i == 0 && component.contains(':') {
            return Err(format!(
                "`{component}` looks like a host: put the registry in target.url and only the repository in target.image"
            ));
        }
        if !path_component(component) {
            return Err(format!(
                "`{component}` is not a valid repository path component (lowercase letters and digits, \
                 separated by `.`, `_`, `__` or `-`)"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One alphanumeric run.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // One separator, then another run must follow.
        match bytes[i] {
            b'.' => i += 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_first && ok_rest && tag.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        format!("`{digest}` is not a supported digest (expected sha256:<64 hex digits>)")
    })?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "`{digest}` is not a valid digest (expected sha256: and 64 lowercase hex digits)"
        ))
    }
}

/// `sha256:<64 lowercase hex>` (the only algorithm pullstorm verifies).
pub fn is_digest(d: &str) -> bool {
    match d.strip_prefix("sha256:") {
        Some(hex) => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
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
