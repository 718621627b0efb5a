//! `Range` request header parsing for blob GETs (RFC 9110 §14), single range only.
//!
//! Pull clients send `bytes=N-` to resume; some send `bytes=N-M`. Anything the
//! registry cannot honour (syntax errors, other units, several ranges, a start
//! past the end) is answered 416, as the distribution registry (Go's
//! `http.ServeContent`) does, rather than silently served whole.

use http::HeaderValue;

/// What to send for a blob of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No `Range` header: 200 with the whole blob.
    Whole,
    /// 206 with bytes `start..=end` (inclusive, clamped to the blob).
    Part { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

/// Parses the request's `Range` headers (all of them: two headers is an error).
pub fn parse<'a>(mut values: impl Iterator<Item = &'a HeaderValue>, total: u64) -> RangeRequest {
    let Some(value) = values.next() else {
        return RangeRequest::Whole;
    };
    if values.next().is_some() {
        return RangeRequest::Unsatisfiable;
    }
    value
        .to_str()
        .ok()
        .and_then(|text| parse_text(text, total))
        .unwrap_or(RangeRequest::Unsatisfiable)
}

fn parse_text(text: &str, total: u64) -> Option<RangeRequest> {
    let text = text.trim();
    let (unit, spec) = text.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let n = number(last)?;
        if n == 0 || total == 0 {
            return None;
        }
        return Some(RangeRequest::Part {
            start: total.saturating_sub(n),
            end: total - 1,
        });
    }
    let start = number(first)?;
    if start >= total {
        return None;
    }
    let end = if last.is_empty() {
        total - 1
    } else {
        number(last)?.min(total - 1)
    };
    if end < start {
        return None;
    }
    Some(RangeRequest::Part { start, end })
}

/// A non-empty run of ASCII digits (no sign, no spaces) that fits in a u64.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    fn p(text: &str, total: u64) -> RangeRequest {
        let value = HeaderValue::from_str(text).unwrap();
        parse(std::iter::once(&value), total)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse(std::iter::empty(), 10), Whole);
        assert_eq!(p("bytes=0-", 10), Part { start: 0, end: 9 });
        assert_eq!(p("bytes=3-", 10), Part { start: 3, end: 9 });
        assert_eq!(p("bytes=3-5", 10), Part { start: 3, end: 5 });
        assert_eq!(p("bytes=3-500", 10), Part { start: 3, end: 9 });
        assert_eq!(p("bytes=9-9", 10), Part { start: 9, end: 9 });
        assert_eq!(p("bytes=-4", 10), Part { start: 6, end: 9 });
        assert_eq!(p("bytes=-400", 10), Part { start: 0, end: 9 });
        assert_eq!(p(" BYTES = 2 - 3 ", 10), Part { start: 2, end: 3 });
    }

    #[test]
    fn unsatisfiable_or_malformed() {
        for text in [
            "bytes=10-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=-",
            "bytes=",
            "bytes=a-",
            "bytes=+1-",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
            "",
        ] {
            assert_eq!(p(text, 10), Unsatisfiable, "{text:?}");
        }
        let (a, b) = (
            HeaderValue::from_static("bytes=0-"),
            HeaderValue::from_static("bytes=1-"),
        );
        assert_eq!(parse([&a, &b].into_iter(), 10), Unsatisfiable);
        let opaque = HeaderValue::from_bytes(b"bytes=\xff-").unwrap();
        assert_eq!(parse(std::iter::once(&opaque), 10), Unsatisfiable);
    }
}
