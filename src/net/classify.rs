//! Fault classes: every failed exchange gets exactly one, never folded into `other`
//! when a better one applies. These names are the `errors` keys of result.json.

use rustix::io::Errno;
use serde::Serialize;
use std::error::Error as StdError;
use std::fmt;
use std::io;

/// What went wrong, one class per failed exchange (the `errors` keys listed in
/// docs/result-schema.md; docs/clients.md says which ones each client retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultClass {
    ConnectRefused,
    ConnectTimeout,
    Dns,
    Tls,
    /// RST from the peer (ECONNRESET, EPIPE).
    ConnectionReset,
    /// Clean close before Content-Length was reached.
    UnexpectedEof,
    /// No byte for longer than the profile allows (head or body).
    ReadTimeout,
    /// An HTTP status the client does not accept.
    Http(u16),
    /// An HTTP error status from the storage host a blob redirect led to (object storage:
    /// a presigned URL refused, expired or naming a missing object), not from the registry.
    Storage(u16),
    /// A Range request answered with 200 or a wrong Content-Range.
    RangeNotHonoured,
    DigestMismatch,
    /// EMFILE/ENFILE on the harness side: not the target's fault.
    ClientFdExhausted,
    /// EADDRNOTAVAIL: the harness ran out of source ports.
    EphemeralPortsExhausted,
    /// A task of the harness panicked: a bug of ours, counted and shown, never swallowed.
    Internal,
    Other,
}

impl FaultClass {
    /// The fixed classes, in report order (`http_<code>` classes are open-ended).
    pub const FIXED: [FaultClass; 13] = [
        FaultClass::ConnectRefused,
        FaultClass::ConnectTimeout,
        FaultClass::Dns,
        FaultClass::Tls,
        FaultClass::ConnectionReset,
        FaultClass::UnexpectedEof,
        FaultClass::ReadTimeout,
        FaultClass::RangeNotHonoured,
        FaultClass::DigestMismatch,
        FaultClass::ClientFdExhausted,
        FaultClass::EphemeralPortsExhausted,
        FaultClass::Internal,
        FaultClass::Other,
    ];

    /// The key used in result.json.
    pub fn key(&self) -> String {
        match self {
            FaultClass::Http(code) => format!("http_{code}"),
            FaultClass::Storage(code) => format!("storage_{code}"),
            other => other.fixed_key().to_string(),
        }
    }

    fn fixed_key(&self) -> &'static str {
        match self {
            FaultClass::ConnectRefused => "connect_refused",
            FaultClass::ConnectTimeout => "connect_timeout",
            FaultClass::Dns => "dns",
            FaultClass::Tls => "tls",
            FaultClass::ConnectionReset => "connection_reset",
            FaultClass::UnexpectedEof => "unexpected_eof",
            FaultClass::ReadTimeout => "read_timeout",
            FaultClass::Http(_) => "http",
            FaultClass::Storage(_) => "storage",
            FaultClass::RangeNotHonoured => "range_not_honoured",
            FaultClass::DigestMismatch => "digest_mismatch",
            FaultClass::ClientFdExhausted => "client_fd_exhausted",
            FaultClass::EphemeralPortsExhausted => "ephemeral_ports_exhausted",
            FaultClass::Internal => "internal",
            FaultClass::Other => "other",
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for FaultClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where in the exchange the fault happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Connect,
    Request,
    Body,
    Verify,
    /// Inside the harness (a panicked task), not in an exchange.
    Internal,
}

/// One failed exchange: its class, where it happened and a human detail
/// (for HTTP errors, the registry error code such as `MANIFEST_UNKNOWN`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub class: FaultClass,
    pub phase: Phase,
    pub detail: String,
}

impl Fault {
    /// A fault; a password in any URL the detail quotes is masked.
    pub fn new(class: FaultClass, phase: Phase, detail: impl Into<String>) -> Self {
        Fault {
            class,
            phase,
            detail: crate::redact::text(&detail.into()),
        }
    }

    /// A task of the harness that panicked (or ended without its result), as an
    /// `internal` fault; the detail carries the panic's message (tokio's text:
    /// `task 12 panicked with message "..."`).
    pub fn internal(what: &str, e: &tokio::task::JoinError) -> Self {
        Fault::new(
            FaultClass::Internal,
            Phase::Internal,
            format!("{what}: {e}"),
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} during {:?}: {}", self.class, self.phase, self.detail)
    }
}

/// Classifies an `io::Error` by its OS error number first, then its kind.
pub fn from_io(e: &io::Error, phase: Phase, context: &str) -> Fault {
    let class = io_class(e, phase).unwrap_or(FaultClass::Other);
    Fault::new(class, phase, format!("{context}: {e}"))
}

fn io_class(e: &io::Error, phase: Phase) -> Option<FaultClass> {
    // rustix names the errno values of the platform it was built for, so no
    // number here is tied to one architecture.
    if let Some(errno) = Errno::from_io_error(e) {
        let class = match errno {
            Errno::MFILE | Errno::NFILE => FaultClass::ClientFdExhausted,
            Errno::ADDRNOTAVAIL => FaultClass::EphemeralPortsExhausted,
            Errno::CONNREFUSED => FaultClass::ConnectRefused,
            Errno::CONNRESET | Errno::PIPE | Errno::CONNABORTED => FaultClass::ConnectionReset,
            Errno::TIMEDOUT if phase == Phase::Connect => FaultClass::ConnectTimeout,
            Errno::TIMEDOUT => FaultClass::ReadTimeout,
            Errno::NETUNREACH | Errno::HOSTUNREACH => FaultClass::ConnectTimeout,
            _ => return None,
        };
        return Some(class);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Some(FaultClass::UnexpectedEof),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Some(FaultClass::ConnectionReset),
        io::ErrorKind::ConnectionRefused => Some(FaultClass::ConnectRefused),
        io::ErrorKind::TimedOut => Some(FaultClass::ReadTimeout),
        _ => None,
    }
}

/// Classifies a hyper (or any) error by walking its `source()` chain.
pub fn from_error(e: &hyper::Error, phase: Phase) -> Fault {
    let mut fault = from_dyn(e, phase);
    if fault.class == FaultClass::Other && e.is_incomplete_message() {
        fault.class = FaultClass::UnexpectedEof;
    }
    fault
}

/// Walks the chain to the deepest `io::Error` that has a class; the text keeps the whole chain.
pub fn from_dyn(e: &(dyn StdError + 'static), phase: Phase) -> Fault {
    let mut class = None;
    let mut detail = e.to_string();
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    let mut first = true;
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(c) = io_class(io, phase) {
                class = Some(c);
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if class.is_none() && h.is_incomplete_message() {
                class = Some(FaultClass::UnexpectedEof);
            }
        }
        if !first {
            detail.push_str(": ");
            detail.push_str(&err.to_string());
        }
        first = false;
        current = err.source();
    }
    Fault::new(class.unwrap_or(FaultClass::Other), phase, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_their_classes() {
        let cases = [
            (24, FaultClass::ClientFdExhausted),
            (23, FaultClass::ClientFdExhausted),
            (99, FaultClass::EphemeralPortsExhausted),
            (111, FaultClass::ConnectRefused),
            (104, FaultClass::ConnectionReset),
        ];
        for (code, class) in cases {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(
                from_io(&e, Phase::Connect, "x").class,
                class,
                "errno {code}"
            );
        }
    }

    #[test]
    fn chain_is_walked_to_the_io_error() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(io::Error::new(io::ErrorKind::UnexpectedEof, "short"));
        let f = from_dyn(&e, Phase::Body);
        assert_eq!(f.class, FaultClass::UnexpectedEof);
        assert!(f.detail.contains("outer") && f.detail.contains("short"));
    }

    #[test]
    fn http_keys_carry_the_code() {
        assert_eq!(FaultClass::Http(503).key(), "http_503");
        assert_eq!(FaultClass::Storage(403).key(), "storage_403");
        assert_eq!(FaultClass::ClientFdExhausted.key(), "client_fd_exhausted");
    }
}
