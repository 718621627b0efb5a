//! The embedded synthetic registry: a read-only OCI distribution endpoint that
//! serves one [`SyntheticImage`] under every repository name and tag.
//!
//! It exists so a run needs no registry at all (the default scenario), and so
//! faults can be injected exactly where a test wants them: cut bodies (clean
//! FIN or RST), stalled bodies, ignored Range requests, corrupted bytes, error
//! statuses on one kind of request, bearer auth. Blobs are generated as they
//! are sent, so multi-GB images cost no memory or disk.
//!
//! Layout: [`server`] accepts connections and owns their lifetime (shutdown,
//! the socket-level cut), [`routes`] turns a request into a response,
//! [`blob_body`] streams blob bytes, [`range`] parses `Range`, [`auth`] issues
//! and checks bearer tokens, [`faults`] holds the status fault and the checks
//! of every fault setting, [`request_log`] records what each request got, and
//! [`serve`] is the `pullstorm serve` command.

pub mod auth;
pub mod blob_body;
pub mod faults;
pub mod range;
pub mod request_log;
pub mod routes;
pub mod serve;
pub mod server;

/// The Basic credentials the token endpoint demands: the client's own type.
pub use crate::oci::auth::Credentials;
pub use request_log::{End, LoggedRequest, RequestKind, RequestLog};
pub use serve::{serve_main, ServeArgs};
pub use server::{start, start_with_image, EmbeddedRegistry};

use crate::scenario::{EmbeddedAuth, EmbeddedSection, Faults};
use crate::synth::SyntheticImage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Largest layer the embedded registry serves (64 GiB). Its digest is computed
/// before the first request, at about 0.6 s per GiB and core, so a bigger one
/// would hold a run for minutes before any node starts.
pub const MAX_LAYER_BYTES: u64 = 64 << 30;
/// Largest synthetic image, all layers together (256 GiB).
pub const MAX_IMAGE_BYTES: u64 = 256 << 30;

/// One layer size (or the sum of them) over the limits above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeProblem {
    /// The layer to blame; `None` when it is the total.
    pub layer: Option<usize>,
    pub message: String,
}

/// Every layer over [`MAX_LAYER_BYTES`], and the total when it is over
/// [`MAX_IMAGE_BYTES`]. Sizes are as asked (before rounding up to 512).
pub fn oversized_layers(sizes: &[u64]) -> Vec<SizeProblem> {
    let mut problems: Vec<SizeProblem> = sizes
        .iter()
        .enumerate()
        .filter(|(_, &size)| size > MAX_LAYER_BYTES)
        .map(|(i, &size)| SizeProblem {
            layer: Some(i),
            message: format!(
                "{} is more than the {} an embedded layer may have (its digest is computed before the run starts)",
                crate::human::bytes(size as f64),
                crate::human::bytes(MAX_LAYER_BYTES as f64)
            ),
        })
        .collect();
    let total = sizes.iter().fold(0u64, |sum, &s| sum.saturating_add(s));
    if problems.is_empty() && total > MAX_IMAGE_BYTES {
        problems.push(SizeProblem {
            layer: None,
            message: format!(
                "the layers add up to {}, more than the {} an embedded image may have",
                crate::human::bytes(total as f64),
                crate::human::bytes(MAX_IMAGE_BYTES as f64)
            ),
        });
    }
    problems
}

/// Everything the embedded registry needs to start.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Requested layer sizes (each rounded as [`crate::synth::layer_size`] says).
    pub layer_sizes: Vec<u64>,
    /// PRNG seed of the layer content.
    pub seed: u64,
    /// Serve the OCI index (amd64 + arm64) at every tag instead of the amd64 manifest.
    pub index: bool,
    /// Authentication demanded on `/v2/...`.
    pub auth: EmbeddedAuth,
    /// Faults injected into blob responses.
    pub faults: Faults,
    /// Basic credentials the token endpoint demands (bearer mode only); `None` = anyone gets a token.
    pub token_credentials: Option<Credentials>,
    /// Where every request is logged; `None` = no log.
    pub request_log: Option<Arc<RequestLog>>,
}

impl EmbeddedConfig {
    /// The registry a scenario's `[embedded]` section describes. Credentials are
    /// never in a scenario file, so `token_credentials` starts empty.
    pub fn from_section(section: &EmbeddedSection) -> EmbeddedConfig {
        EmbeddedConfig {
            layer_sizes: section.layers.iter().map(|s| s.0).collect(),
            seed: section.seed,
            index: section.index,
            auth: section.auth,
            faults: section.faults.clone(),
            token_credentials: None,
            request_log: None,
        }
    }

    /// Builds the image this config serves (hashes every layer once).
    pub fn build_image(&self) -> SyntheticImage {
        SyntheticImage::build(self.seed, &self.layer_sizes)
    }

    /// Builds the image on a blocking thread, off the async threads (hashing
    /// takes ~0.6 s per GiB). Dropping the returned future cancels the build:
    /// the thread stops within about 1 MiB of hashing, so racing this with a
    /// shutdown future makes a Ctrl-C during a multi-GB build prompt.
    pub async fn build_image_async(&self) -> std::io::Result<SyntheticImage> {
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = cancel.0.clone();
        let (seed, sizes) = (self.seed, self.layer_sizes.clone());
        let built = tokio::task::spawn_blocking(move || {
            SyntheticImage::build_cancellable(seed, &sizes, &flag)
        })
        .await
        .map_err(std::io::Error::other)?;
        built.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the image build was cancelled",
            )
        })
    }
}

/// Sets its flag when dropped: the build it belongs to was abandoned.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig::from_section(&EmbeddedSection::default())
    }
}

#[cfg(test)]
mod tests;
