//! Just enough HTTP/1.x on the request side: find each request head, drop
//! `Range` when asked, and skip request bodies by `Content-Length` so the next
//! keep-alive head is found; plus the responses the proxy answers itself.
//!
//! The rewriter is a push parser: bytes from the client go in, bytes for the
//! upstream come out, split across reads however TCP likes. Whatever it does
//! not fully understand (a chunked or `Transfer-Encoding` body, `CONNECT`, an
//! `Upgrade`, a head over 64 KiB, something that is not HTTP such as a TLS
//! hello) switches it to raw pass-through for the rest of the connection: it
//! may then miss a `Range` on a later keep-alive request, but it never
//! corrupts a stream. Memory is bounded by [`MAX_HEAD`] per connection.

use std::mem;

/// Longest request head held while looking for its end.
pub const MAX_HEAD: usize = 64 << 10;

/// Longest request target kept for logs and `status_path_contains`.
const MAX_TARGET: usize = 4096;

/// The request line of a head, as far as the proxy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub method: String,
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a head in `buf`.
    Head,
    /// This many body bytes still to pass before the next head.
    Body(u64),
    /// Not parsing any more: everything passes untouched.
    Raw,
}

/// A cut fired by bytes *from* the client: once `after` body bytes of an
/// eligible request have been passed on (0 = right after its head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCut {
    pub after: u64,
    /// Eligible methods (upper case); empty = any.
    pub methods: Vec<String>,
    /// Only targets containing this text are eligible.
    pub path_contains: Option<String>,
}

impl RequestCut {
    fn eligible(&self, request: &RequestInfo) -> bool {
        (self.methods.is_empty() || self.methods.contains(&request.method))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|p| request.target.contains(p.as_str()))
    }
}

/// Per-connection request parser and rewriter.
#[derive(Debug)]
pub struct RequestRewriter {
    strip_range: bool,
    cut: Option<RequestCut>,
    /// Body bytes of the current request passed on, while it is eligible for `cut`.
    cut_counting: Option<u64>,
    /// The current request reached `cut`: [`RequestRewriter::feed`] stops until
    /// [`RequestRewriter::spare`] (or the connection is cut).
    pub cut_due: bool,
    state: State,
    /// Head bytes not yet forwarded (and, after a head, bytes that followed it).
    buf: Vec<u8>,
    /// `buf[..searched]` holds no head end.
    searched: usize,
    /// Complete heads seen so far.
    pub heads: u64,
    /// `Range` headers removed so far.
    pub stripped: u64,
    /// The request line of the last complete head.
    pub last: Option<RequestInfo>,
}

impl RequestRewriter {
    pub fn new(strip_range: bool) -> Self {
        RequestRewriter {
            strip_range,
            cut: None,
            cut_counting: None,
            cut_due: false,
            state: State::Head,
            buf: Vec::new(),
            searched: 0,
            heads: 0,
            stripped: 0,
            last: None,
        }
    }

    /// Also watches for a request reaching `cut` (see [`RequestRewriter::cut_due`]).
    pub fn with_cut(mut self, cut: Option<RequestCut>) -> Self {
        self.cut = cut;
        self
    }

    /// The due cut was not drawn: go on passing the request.
    pub fn spare(&mut self) {
        self.cut_due = false;
    }

    /// True once the rewriter gave up parsing and passes bytes through.
    pub fn is_raw(&self) -> bool {
        self.state == State::Raw
    }

    /// Takes bytes from the client; appends what the upstream must get to `out`.
    /// Returns how many bytes of `input` it took: all of them, unless a request
    /// reached the cut (`cut_due`), which stops it exactly at the cut's byte;
    /// feed the rest after [`RequestRewriter::spare`].
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let total = input.len();
        let mut input = input;
        loop {
            if self.cut_due {
                return total - input.len();
            }
            match self.state {
                State::Raw => {
                    out.append(&mut self.buf);
                    out.extend_from_slice(input);
                    return total;
                }
                State::Body(left) => {
                    // Leftovers after a head come first, then the new input.
                    let from_buf = !self.buf.is_empty();
                    let avail = if from_buf {
                        self.buf.len()
                    } else {
                        input.len()
                    };
                    if avail == 0 {
                        return total - input.len();
                    }
                    let mut n = usize::try_from(left).unwrap_or(usize::MAX).min(avail);
                    if let (Some(passed), Some(cut)) = (self.cut_counting, &self.cut) {
                        let room = cut.after.saturating_sub(passed);
                        n = n.min(usize::try_from(room).unwrap_or(usize::MAX));
                        self.cut_counting = Some(passed + n as u64);
                        if passed + n as u64 >= cut.after {
                            self.cut_due = true;
                            self.cut_counting = None;
                        }
                    }
                    if from_buf {
                        out.extend(self.buf.drain(..n));
                    } else {
                        out.extend_from_slice(&input[..n]);
                        input = &input[n..];
                    }
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Head => {
                    self.buf.extend_from_slice(input);
                    input = &[];
                    if self.buf.is_empty() {
                        return total;
                    }
                    if !looks_like_http(&self.buf) {
                        self.give_up("not an HTTP/1 request");
                        continue;
                    }
                    match find_head_end(&self.buf, self.searched.saturating_sub(3)) {
                        Some(end) => {
                            let rest = self.buf.split_off(end);
                            let head = mem::replace(&mut self.buf, rest);
                            self.searched = 0;
                            self.state = self.process(&head, out);
                        }
                        None if self.buf.len() > MAX_HEAD => {
                            self.give_up("request head over 64 KiB");
                        }
                        None => {
                            self.searched = self.buf.len();
                            return total;
                        }
                    }
                }
            }
        }
    }

    fn give_up(&mut self, why: &str) {
        tracing::debug!("proxy: passing the rest of a connection through untouched: {why}");
        self.state = State::Raw;
    }

    /// Writes one complete head (rewritten) to `out` and says what follows it.
    fn process(&mut self, head: &[u8], out: &mut Vec<u8>) -> State {
        let mut lines = head.split_inclusive(|b| *b == b'\n');
        // Empty lines before a request line are allowed (RFC 9112 2.2): keep them.
        let mut request_line = None;
        for line in lines.by_ref() {
            out.extend_from_slice(line);
            if !trim_eol(line).is_empty() {
                request_line = Some(trim_eol(line));
                break;
            }
        }
        let Some(info) = request_line.and_then(parse_request_line) else {
            // Unreachable with `looks_like_http`, but never trust that: pass it on.
            for line in lines {
                out.extend_from_slice(line);
            }
            self.give_up("malformed request line");
            return State::Raw;
        };
        self.heads += 1;
        let mut next = State::Body(0);
        let mut content_length: Option<u64> = None;
        let mut dropping = false;
        for line in lines {
            let text = trim_eol(line);
            if text.is_empty() {
                out.extend_from_slice(line);
                continue;
            }
            // An obs-fold continuation belongs to the header before it.
            if text[0] == b' ' || text[0] == b'\t' {
                if !dropping {
                    out.extend_from_slice(line);
                }
                continue;
            }
            let (name, value) = match text.iter().position(|b| *b == b':') {
                Some(i) => (trim(&text[..i]), trim(&text[i + 1..])),
                None => (text, &[][..]),
            };
            dropping = self.strip_range && name.eq_ignore_ascii_case(b"range");
            if dropping {
                self.stripped += 1;
                continue;
            }
            out.extend_from_slice(line);
            if name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"upgrade")
            {
                next = State::Raw;
            } else if name.eq_ignore_ascii_case(b"content-length") {
                match std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    Some(n) if content_length.is_none_or(|c| c == n) => content_length = Some(n),
                    // Unparsable or conflicting: the upstream will reject it; we cannot frame it.
                    _ => next = State::Raw,
                }
            }
        }
        if info.method.eq_ignore_ascii_case("CONNECT") {
            next = State::Raw;
        }
        tracing::debug!(method = %info.method, target = %info.target, "proxy: request");
        self.cut_counting = self
            .cut
            .as_ref()
            .filter(|cut| next != State::Raw && cut.eligible(&info))
            .map(|_| 0);
        self.last = Some(info);
        let next = match next {
            State::Raw => {
                self.give_up("request body not framed by Content-Length");
                State::Raw
            }
            _ => match content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            },
        };
        // A cut at 0 bytes fires once the head is passed on, body or not.
        if self.cut_counting.is_some() && self.cut.as_ref().is_some_and(|c| c.after == 0) {
            self.cut_due = true;
            self.cut_counting = None;
        }
        next
    }
}

/// Whether `buf` can be the start of an HTTP/1 request (empty lines, then a method token).
fn looks_like_http(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    let Some(first) = rest.first() else {
        return true;
    };
    if !first.is_ascii_uppercase() {
        return false;
    }
    match rest.iter().position(|b| *b == b'\n') {
        Some(end) => parse_request_line(trim_eol(&rest[..=end])).is_some(),
        None => rest.len() <= MAX_HEAD,
    }
}

/// `METHOD SP target SP HTTP/1.x`.
fn parse_request_line(line: &[u8]) -> Option<RequestInfo> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || target.is_empty()
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
    {
        return None;
    }
    let mut target = target.to_string();
    if target.len() > MAX_TARGET {
        let mut cut = MAX_TARGET;
        while !target.is_char_boundary(cut) {
            cut -= 1;
        }
        target.truncate(cut);
    }
    Some(RequestInfo {
        method: method.to_string(),
        target,
    })
}

/// Index just past the blank line ending a head (`\r\n\r\n`, or a lenient `\n\n`).
/// Blank lines before the request line are skipped, not taken for an empty head.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let mut i = from.max(start);
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// A complete response the proxy sends itself, in the registry's error format.
/// `Connection: close`: the proxy ends the connection after it.
pub fn status_response(code: u16, head_only: bool) -> Vec<u8> {
    let (reason, error_code, message) = match code {
        429 => ("Too Many Requests", "TOOMANYREQUESTS", "too many requests"),
        502 => ("Bad Gateway", "UNAVAILABLE", "upstream unavailable"),
        503 => ("Service Unavailable", "UNAVAILABLE", "service unavailable"),
        504 => ("Gateway Timeout", "UNAVAILABLE", "upstream timed out"),
        401 => ("Unauthorized", "UNAUTHORIZED", "authentication required"),
        403 => (
            "Forbidden",
            "DENIED",
            "requested access to the resource is denied",
        ),
        404 => (
            "Not Found",
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ),
        500 => ("Internal Server Error", "UNKNOWN", "unknown error"),
        200..=299 => ("OK", "", ""),
        400..=499 => ("Client Error", "UNSUPPORTED", "injected by pullstorm proxy"),
        _ => ("Server Error", "UNKNOWN", "injected by pullstorm proxy"),
    };
    let body = if error_code.is_empty() {
        "{}".to_string()
    } else {
        format!(
            r#"{{"errors":[{{"code":"{error_code}","message":"{message}","detail":"injected by pullstorm proxy"}}]}}"#
        )
    };
    let mut text = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        text.push_str(&body);
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns the output.
    fn run(rw: &mut RequestRewriter, input: &[u8], step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            rw.feed(piece, &mut out);
        }
        out
    }

    const GET_RANGE: &[u8] =
        b"GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\nrAnGe: bytes=10-\r\nAccept: */*\r\n\r\n";
    const GET_PLAIN: &[u8] = b"GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";

    #[test]
    fn strips_range_case_insensitively_at_any_split() {
        for step in [1, 2, 3, 5, 7, 64, 4096] {
            let mut rw = RequestRewriter::new(true);
            assert_eq!(run(&mut rw, GET_RANGE, step), GET_PLAIN, "step {step}");
            assert_eq!((rw.heads, rw.stripped), (1, 1));
            assert_eq!(rw.last.as_ref().unwrap().method, "GET");
            assert_eq!(rw.last.as_ref().unwrap().target, "/v2/a/blobs/sha256:1");
        }
    }

    #[test]
    fn keeps_range_when_not_asked_and_passes_bodies_by_length() {
        let mut rw = RequestRewriter::new(false);
        assert_eq!(run(&mut rw, GET_RANGE, 3), GET_RANGE);
        // A body that contains something looking like a head must pass untouched.
        let body = b"GET / HTTP/1.1\r\nRange: bytes=0-\r\n\r\n";
        let mut input = format!(
            "PUT /v2/a/blobs/uploads/1 HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(GET_RANGE);
        for step in [1, 4, 1000] {
            let mut rw = RequestRewriter::new(true);
            let out = run(&mut rw, &input, step);
            let mut want = input[..input.len() - GET_RANGE.len()].to_vec();
            want.extend_from_slice(GET_PLAIN);
            assert_eq!(out, want, "step {step}");
            assert_eq!((rw.heads, rw.stripped), (2, 1));
        }
    }

    #[test]
    fn pipelined_heads_in_one_read() {
        let mut input = Vec::new();
        for _ in 0..100 {
            input.extend_from_slice(GET_RANGE);
        }
        let mut rw = RequestRewriter::new(true);
        let out = run(&mut rw, &input, 65536);
        assert_eq!(out, GET_PLAIN.repeat(100));
        assert_eq!(rw.stripped, 100);
    }

    #[test]
    fn bare_lf_folds_and_leading_blank_lines() {
        let mut rw = RequestRewriter::new(true);
        let out = run(
            &mut rw,
            b"\r\nGET / HTTP/1.0\nRange: bytes=1-\n  2-3\nX: y\n\n",
            2,
        );
        assert_eq!(out, b"\r\nGET / HTTP/1.0\nX: y\n\n");
        assert_eq!(rw.heads, 1);
    }

    #[test]
    fn several_blank_lines_before_a_request() {
        let mut rw = RequestRewriter::new(true);
        let out = run(
            &mut rw,
            b"\r\n\r\n\nGET / HTTP/1.1\r\nRange: bytes=1-\r\n\r\n",
            1,
        );
        assert_eq!(out, b"\r\n\r\n\nGET / HTTP/1.1\r\n\r\n");
        assert!(!rw.is_raw());
        assert_eq!((rw.heads, rw.stripped), (1, 1));
    }

    #[test]
    fn mutated_requests_never_panic() {
        // Valid keep-alive traffic with random bytes flipped, dropped or repeated.
        let mut clean = Vec::new();
        clean.extend_from_slice(GET_RANGE);
        clean.extend_from_slice(b"PUT /u HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        clean.extend_from_slice(GET_PLAIN);
        let mut x = 99u64;
        let mut next = |n: usize| {
            x = crate::random::splitmix64(x);
            (x % n as u64) as usize
        };
        for round in 0..3000 {
            let mut input = clean.clone();
            for _ in 0..(round % 5) + 1 {
                let at = next(input.len());
                match next(3) {
                    0 => input[at] = b"\r\n: 0aG"[next(6)],
                    1 => {
                        input.remove(at);
                    }
                    _ => input.insert(at, input[at]),
                }
            }
            let mut keep = RequestRewriter::new(false);
            let mut whole = run(&mut keep, &input, next(40) + 1);
            whole.extend_from_slice(&keep.buf);
            assert!(whole == input, "round {round}: {input:?}");
            let mut strip = RequestRewriter::new(true);
            let out = run(&mut strip, &input, next(40) + 1);
            assert!(out.len() + strip.buf.len() <= input.len());
        }
    }

    #[test]
    fn gives_up_on_what_it_cannot_frame() {
        // Chunked body: passes untouched from then on, later heads included.
        let input = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nRange: bytes=0-\r\n\r\n";
        let mut rw = RequestRewriter::new(true);
        assert_eq!(run(&mut rw, input, 3), input);
        assert!(rw.is_raw());
        // TLS client hello, binary junk, lowercase methods, a bad version.
        for junk in [
            &b"\x16\x03\x01\x02\x00\x01\x00"[..],
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\nRange: x\r\n\r\n",
        ] {
            let mut rw = RequestRewriter::new(true);
            assert_eq!(run(&mut rw, junk, 1), junk);
            assert!(rw.is_raw(), "{junk:?}");
        }
        // Conflicting lengths.
        let input = b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        let mut rw = RequestRewriter::new(true);
        assert_eq!(run(&mut rw, input, 1), input);
        assert!(rw.is_raw());
    }

    #[test]
    fn oversized_heads_pass_through_and_memory_stays_bounded() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        // Well past the cap: a head that ends within the read that crosses it is still parsed.
        while input.len() < 2 * MAX_HEAD {
            input.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        input.extend_from_slice(b"Range: bytes=0-\r\n\r\n");
        let mut rw = RequestRewriter::new(true);
        assert!(run(&mut rw, &input, 1000) == input);
        assert!(rw.is_raw());
        assert!(rw.buf.capacity() <= 2 * MAX_HEAD + 2000);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_always_come_out() {
        // A cheap fuzz: every output is the input minus whole Range lines.
        let mut x = 0x1234_5678_u64;
        for round in 0..2000 {
            let len = (round % 300) + 1;
            let mut input = Vec::with_capacity(len);
            for _ in 0..len {
                x = crate::random::splitmix64(x);
                let alphabet = b"GET /HTTP1.\r\n:RangeContent-Length 0123456789";
                input.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let mut rw = RequestRewriter::new(false);
            let out = run(&mut rw, &input, (round % 7) + 1);
            let mut flush = Vec::new();
            rw.feed(&[], &mut flush);
            // Without stripping, bytes pass unchanged except an incomplete head still held.
            let mut whole = out;
            whole.extend_from_slice(&rw.buf);
            assert!(whole == input, "round {round}: {input:?}");
        }
    }

    fn cut(after: u64, methods: &[&str]) -> Option<RequestCut> {
        Some(RequestCut {
            after,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path_contains: Some("/uploads/".into()),
        })
    }

    /// Feeds like the relay: stops where a cut is due, records where, spares, goes on.
    fn run_cut(rw: &mut RequestRewriter, input: &[u8], step: usize) -> (Vec<u8>, Vec<usize>) {
        let (mut out, mut due_at) = (Vec::new(), Vec::new());
        for piece in input.chunks(step.max(1)) {
            let mut piece = piece;
            loop {
                let taken = rw.feed(piece, &mut out);
                piece = &piece[taken..];
                if !rw.cut_due {
                    assert!(piece.is_empty());
                    break;
                }
                due_at.push(out.len());
                rw.spare();
            }
        }
        (out, due_at)
    }

    #[test]
    fn a_request_cut_stops_at_its_body_byte_for_eligible_requests_only() {
        let patch =
            b"PATCH /v2/a/blobs/uploads/u1 HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
        let get = b"GET /v2/a/blobs/uploads/u1 HTTP/1.1\r\n\r\n";
        let put = b"PUT /v2/a/blobs/uploads/u1?digest=x HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        let other = b"PATCH /v2/a/other HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let mut input = Vec::new();
        for part in [&patch[..], get, put, other, patch] {
            input.extend_from_slice(part);
        }
        let head_len = patch.len() - 10;
        for step in [1, 3, 7, 64, 4096] {
            // 4 body bytes into each PATCH to an upload; the PUT has no 4th byte.
            let mut rw = RequestRewriter::new(false).with_cut(cut(4, &["PATCH", "PUT"]));
            let (out, due) = run_cut(&mut rw, &input, step);
            assert_eq!(out, input, "step {step}: every byte passes once spared");
            let second = input.len() - patch.len();
            assert_eq!(due, [head_len + 4, second + head_len + 4], "step {step}");
            // 0 bytes: right after each eligible head, bodiless PUT included.
            let mut rw = RequestRewriter::new(false).with_cut(cut(0, &["PUT"]));
            let (out, due) = run_cut(&mut rw, &input, step);
            assert_eq!(out, input);
            let put_end = patch.len() + get.len() + put.len();
            assert_eq!(due, [put_end], "step {step}");
            // The whole body: due after its last byte, before the next head.
            let mut rw = RequestRewriter::new(false).with_cut(cut(10, &[]));
            let (_, due) = run_cut(&mut rw, &input, step);
            assert_eq!(due, [patch.len(), input.len()], "step {step}");
        }
    }

    #[test]
    fn a_request_cut_never_fires_on_what_it_cannot_frame() {
        let chunked = b"PATCH /v2/a/blobs/uploads/u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let mut rw = RequestRewriter::new(false).with_cut(cut(1, &[]));
        let (out, due) = run_cut(&mut rw, chunked, 5);
        assert_eq!((out.as_slice(), due.len()), (&chunked[..], 0));
    }

    #[test]
    fn responses_have_registry_bodies() {
        let r = String::from_utf8(status_response(503, false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.ends_with(r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","detail":"injected by pullstorm proxy"}]}"#));
        let body_len = r.split("\r\n\r\n").nth(1).unwrap().len();
        assert!(r.contains(&format!("Content-Length: {body_len}\r\n")));
        let r = String::from_utf8(status_response(429, true)).unwrap();
        assert!(r.contains("429 Too Many Requests") && r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(status_response(418, false)).unwrap();
        assert!(r.contains("UNSUPPORTED"));
    }
}
