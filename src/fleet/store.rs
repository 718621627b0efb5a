//! A containerd node's content store, as far as a re-pull sees it: a failed pull
//! leaves behind the manifest it fetched, the blobs it finished and the ingests of
//! the blobs it was writing (bytes held and their running digest). The kubelet's next
//! pull of the same image resolves the tag again (HEAD) but fetches no manifest it
//! holds, skips finished blobs and resumes each ingest with `Range` from its offset
//! (remotes/handlers.go `fetch`, content/helpers.go `Copy`).
//!
//! One store per planned pull and node: a node's next planned pull starts cold, as
//! every pull in pullstorm does.

use super::download::Held;
use crate::oci::session::Resolved;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What a node holds of one image between its pulls.
#[derive(Debug, Default)]
pub struct ContentStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The manifest (and its blobs) a tag resolved to, by the digest the HEAD gave.
    resolved: Option<(String, Resolved)>,
    complete: HashSet<String>,
    partial: HashMap<String, Held>,
}

impl ContentStore {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image held for the manifest digest `digest`, if a pull fetched it.
    pub fn resolved(&self, digest: &str) -> Option<Resolved> {
        let inner = self.inner();
        inner
            .resolved
            .as_ref()
            .filter(|(d, _)| d == digest)
            .map(|(_, r)| r.clone())
    }

    /// Keeps the image `digest` resolved to.
    pub fn keep_resolved(&self, digest: &str, resolved: &Resolved) {
        self.inner().resolved = Some((digest.to_string(), resolved.clone()));
    }

    /// Whether the blob is held whole (committed).
    pub fn has(&self, digest: &str) -> bool {
        self.inner().complete.contains(digest)
    }

    /// Takes the ingest of `digest` to resume it (it comes back when the download ends).
    pub fn take_partial(&self, digest: &str) -> Option<Held> {
        self.inner().partial.remove(digest)
    }

    /// A blob was written whole.
    pub fn commit(&self, digest: &str) {
        let mut inner = self.inner();
        inner.partial.remove(digest);
        inner.complete.insert(digest.to_string());
    }

    /// A download stopped (failed, or aborted with its pull) holding `held`.
    pub fn keep_partial(&self, digest: &str, held: Held) {
        self.inner().partial.insert(digest.to_string(), held);
    }
}
