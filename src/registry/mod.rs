//! The embedded synthetic registry: a read-only OCI distribution endpoint that
//! serves one [`SyntheticImage`] under every repository name and tag.
//!
//! It exists so a run needs no registry at all (the default scenario), and so
//! faults can be injected exactly where a test wants them: cut bodies (clean
//! FIN or RST), ignored Range requests, corrupted bytes, bearer auth. Blobs
//! are generated as they are sent, so multi-GB images cost no memory or disk.
//!
//! Layout: [`server`] accepts connections and owns their lifetime (shutdown,
//! the socket-level cut), [`routes`] turns a request into a response,
//! [`blob_body`] streams blob bytes, [`range`] parses `Range`, [`auth`] issues
//! and checks bearer tokens, and [`serve`] is the `pullstorm serve` command.

pub mod auth;
pub mod blob_body;
pub mod range;
pub mod routes;
pub mod serve;
pub mod server;

/// The Basic credentials the token endpoint demands: the client's own type.
pub use crate::oci::auth::Credentials;
pub use serve::{serve_main, ServeArgs};
pub use server::{start, start_with_image, EmbeddedRegistry};

use crate::scenario::{EmbeddedAuth, EmbeddedSection, Faults};
use crate::synth::SyntheticImage;

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
        }
    }

    /// Builds the image this config serves (hashes every layer once).
    pub fn build_image(&self) -> SyntheticImage {
        SyntheticImage::build(self.seed, &self.layer_sizes)
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig::from_section(&EmbeddedSection::default())
    }
}

#[cfg(test)]
mod tests;
