//! The OCI distribution spec's naming grammar: repository names, tags and
//! digests, as plain yes/no checks.
//!
//! Both sides of the protocol use it: the client (image references in a
//! scenario, digests a registry sends back) and the embedded registry (the
//! names and references in a request path), so the two can never disagree on
//! what a valid name is. Error messages stay with the callers, which know what
//! to tell their user.

/// Most bytes in a repository name.
pub const NAME_MAX: usize = 255;
/// Most bytes in a tag.
pub const TAG_MAX: usize = 128;

/// A repository name: `/`-separated [path components](is_path_component),
/// at most [`NAME_MAX`] bytes in all.
pub fn is_repository_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= NAME_MAX && name.split('/').all(is_path_component)
}

/// One component of a repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_path_component(component: &str) -> bool {
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

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    !bytes.is_empty()
        && bytes.len() <= TAG_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// A digest by the OCI grammar, `algorithm:encoded`: algorithm components
/// `[a-z0-9]+` joined by `+`, `.`, `_` or `-`, encoded `[A-Za-z0-9=_-]+`.
/// A `sha256` digest must moreover be [64 lowercase hex digits](is_sha256_digest).
pub fn is_digest(digest: &str) -> bool {
    is_digest_shaped(digest) && (!digest.starts_with("sha256:") || is_sha256_digest(digest))
}

/// The grammar of [`is_digest`] without the per-algorithm rules: what may safely
/// stand in a request path (no `/`, `.`, `?` or `%` in the encoded part). A
/// client takes a digest of this shape from a manifest and lets the content
/// check judge the rest.
pub fn is_digest_shaped(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

/// `sha256:<64 lowercase hex>`: the only algorithm pullstorm computes and verifies.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "synthetic/app",
            "a/b/c",
            "a.b_c__d--e",
            "x0/y-1",
            "library/ubuntu",
        ] {
            assert!(is_repository_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a.", "a..b", "a___b", "a b", "%61", "a/../b",
        ] {
            assert!(!is_repository_name(bad), "{bad}");
        }
        assert!(!is_repository_name(&"a".repeat(256)));
        assert!(is_repository_name(&"a".repeat(255)));
    }

    #[test]
    fn path_components() {
        for ok in ["a", "a1", "a.b", "a_b", "a__b", "a-b", "a---b", "a.b-c_d"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["", "a_", "_a", "a___b", "a..b", "a._b", "aä", "a:b", "A"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags_and_digests() {
        assert!(is_tag("v1") && is_tag("latest") && is_tag("_x.y-z") && is_tag(&"a".repeat(128)));
        assert!(!is_tag("") && !is_tag(".x") && !is_tag("-x") && !is_tag(&"a".repeat(129)));
        assert!(!is_tag("a/b") && !is_tag("ä"));
        let hex = "a".repeat(64);
        assert!(is_digest(&format!("sha256:{hex}")));
        assert!(is_digest("sha512:abc"));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest("sha256:"));
        assert!(!is_digest(":abc"));
        assert!(!is_digest("SHA256:abc"));
        assert!(!is_digest("sha256"));
    }

    #[test]
    fn only_sha256_is_verifiable() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_sha256_digest(&format!("sha256:{hex}")));
        assert!(!is_sha256_digest(&format!("sha512:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_sha256_digest(&format!("sha256:{}", &hex[1..])));
    }
}
