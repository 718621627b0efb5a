//! Content digests as the registry API writes them: `sha256:<64 lowercase hex>`.
//! One place for the formatting, used by the puller, the pusher and the embedded registry.

use sha2::{Digest, Sha256};

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// `sha256:<hex>` of a finished hash.
pub fn format_sha256(hash: &[u8]) -> String {
    format!("sha256:{}", hex(hash))
}

/// `sha256:<hex>` of a byte string.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format_sha256(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            super::sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
