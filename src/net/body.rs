//! A response body as callers read it: hyper's body, plus the pooled connection it came
//! on, which goes back to its pull's pool only if the body was read to its end.
//!
//! The only cost per chunk is one comparison (has the body just ended?).

use super::pool::Lease;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The body of an [`super::Exchange`]. Dropped before its end, it takes its connection
/// down with it (Go does the same: an unread response cannot be skipped on the wire).
pub struct Body {
    inner: Incoming,
    /// The body gave its last frame.
    ended: bool,
    /// The pooled connection, when the response came on one that may serve again.
    lease: Option<Lease>,
}

impl Body {
    pub(super) fn new(inner: Incoming, lease: Option<Lease>) -> Body {
        Body {
            inner,
            ended: false,
            lease,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            // A body with a length counts as ended once its last byte is in, even if the
            // reader never asked for the end (a HEAD's empty body, a manifest read whole).
            if self.is_end_stream() {
                lease.release();
            }
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("ended", &self.ended)
            .field("pooled", &self.lease.is_some())
            .finish()
    }
}
