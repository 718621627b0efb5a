//! Image references inside one registry: `name[:tag][@sha256:<hex>]`.
//!
//! The registry host comes from `target.url`, so a reference here is only the
//! repository path and what to pull from it.

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
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                if !is_digest(d) {
                    return Err(format!("`{d}` is not a digest (expected sha256:<64 lowercase hex>)"));
                }
                (r, Some(d.to_string()))
            }
            None => (text, None),
        };
        // A colon after the last slash starts the tag (a colon before it would be a port).
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err("empty repository name".into());
        }
        if name.len() > 255 {
            return Err("repository name longer than 255 characters".into());
        }
        for component in name.split('/') {
            if !is_component(component) {
                return Err(format!(
                    "`{component}` in `{name}` is not a valid repository path component (lowercase letters, digits, and . _ __ - between them)"
                ));
            }
        }
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(format!("`{tag}` is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"));
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { name: name.to_string(), tag, digest })
    }

    /// What to put after `/manifests/`: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
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

fn is_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators: `.`, `_`, `__`, or one or more `-`, always between alphanumerics.
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `sha256:<64 lowercase hex>` (the only algorithm pullstorm verifies).
pub fn is_digest(d: &str) -> bool {
    match d.strip_prefix("sha256:") {
        Some(hex) => hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["", "UPPER/case", "a//b", "a/b:", "a/-b", "a/b@sha256:xyz", "a/b:t@md5:00", "a/b:bad tag"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
