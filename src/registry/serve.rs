//! `pullstorm serve`: the embedded registry on its own, for trying clients
//! (docker, containerd, skopeo, curl) against the synthetic image and its faults.
//!
//! The CLI flattens [`ServeArgs`] into its `serve` subcommand and calls
//! [`serve_main`]. The token password comes from the environment only, so it
//! never shows in `ps` or shell history.

use super::{start_with_image, Credentials, EmbeddedConfig};
use crate::exit::Failure;
use crate::scenario::units::ByteSize;
use crate::scenario::{CutWith, EmbeddedAuth, Faults};
use crate::synth::SyntheticImage;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Environment variable holding the password of `--token-user`.
pub const PASSWORD_ENV: &str = "PULLSTORM_SERVE_PASSWORD";

/// Options of `pullstorm serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Layer sizes of the synthetic image, in order (each rounded up to a multiple of 512,
    /// at least 2048 bytes).
    #[arg(
        long,
        value_name = "SIZES",
        value_delimiter = ',',
        default_value = "32MiB,16MiB,4MiB",
        value_parser = parse_size
    )]
    pub layers: Vec<ByteSize>,

    /// PRNG seed of the layer content: the same seed and sizes always give the same digests.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Serve an OCI image index (linux/amd64 + linux/arm64) at every tag instead of the
    /// amd64 manifest.
    #[arg(long)]
    pub index: bool,

    /// Authentication: `none`, or `bearer` (401 + a token endpoint at /token).
    #[arg(long, value_enum, value_name = "MODE", default_value = "none")]
    pub auth: AuthMode,

    /// With `--auth bearer`: the token endpoint demands Basic credentials for this user.
    /// The password is read from the PULLSTORM_SERVE_PASSWORD environment variable.
    #[arg(long, value_name = "NAME")]
    pub token_user: Option<String>,

    /// Fault: cut every blob response after this many body bytes (e.g. 10MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cut_after: Option<ByteSize>,

    /// Fault: cut only the first N responses of each blob, then serve it whole.
    #[arg(long, value_name = "N", requires = "cut_after")]
    pub cut_times: Option<u32>,

    /// Fault: how a cut ends the connection: `fin` (clean close: a short body) or `rst` (reset).
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        default_value = "fin",
        requires = "cut_after"
    )]
    pub cut_with: CutMode,

    /// Fault: answer Range requests with 200 and the whole blob.
    #[arg(long)]
    pub ignore_range: bool,

    /// Fault: flip one byte in the middle of every layer body (clients see a digest mismatch).
    #[arg(long)]
    pub corrupt: bool,
}

/// `--auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    None,
    Bearer,
}

/// `--cut-with` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CutMode {
    Fin,
    Rst,
}

fn parse_size(text: &str) -> Result<ByteSize, String> {
    ByteSize::parse(text)
}

impl ServeArgs {
    /// The registry configuration these options describe; `password` is the
    /// value of [`PASSWORD_ENV`], passed in so this stays testable.
    pub fn to_config(&self, password: Option<String>) -> Result<EmbeddedConfig, Failure> {
        if self.layers.is_empty() {
            return Err(Failure::bad_input("--layers: give at least one layer size"));
        }
        let sizes: Vec<u64> = self.layers.iter().map(|s| s.0).collect();
        if let Some(problem) = super::oversized_layers(&sizes).first() {
            let which = problem
                .layer
                .map(|i| format!(" layer {i}"))
                .unwrap_or_default();
            return Err(Failure::bad_input(format!(
                "--layers{which}: {}",
                problem.message
            )));
        }
        let token_credentials = match (&self.token_user, password) {
            (None, _) => None,
            (Some(_), _) if self.auth != AuthMode::Bearer => {
                return Err(Failure::bad_input("--token-user needs --auth bearer"));
            }
            (Some(_), None) => {
                return Err(Failure::bad_input(format!(
                    "--token-user needs the password in the {PASSWORD_ENV} environment variable"
                )));
            }
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                password,
            }),
        };
        Ok(EmbeddedConfig {
            layer_sizes: self.layers.iter().map(|s| s.0).collect(),
            seed: self.seed,
            index: self.index,
            auth: match self.auth {
                AuthMode::None => EmbeddedAuth::None,
                AuthMode::Bearer => EmbeddedAuth::Bearer,
            },
            faults: Faults {
                cut_after: self.cut_after,
                cut_times: self.cut_times,
                cut_with: match self.cut_with {
                    CutMode::Fin => CutWith::Fin,
                    CutMode::Rst => CutWith::Rst,
                },
                ignore_range: self.ignore_range,
                corrupt: self.corrupt,
            },
            token_credentials,
        })
    }
}

/// Runs `pullstorm serve` until `shutdown` completes (the CLI passes
/// [`crate::shutdown::listen`]: SIGINT or SIGTERM), then stops gracefully.
pub async fn serve_main(args: ServeArgs, shutdown: impl Future) -> Result<(), Failure> {
    let config = args.to_config(std::env::var(PASSWORD_ENV).ok())?;
    let listener = crate::net::listen(args.listen).map_err(|e| {
        Failure::cannot_proceed(format!(
            "pullstorm serve: cannot listen on {}: {e}",
            args.listen
        ))
    })?;
    tokio::pin!(shutdown);
    // A signal during a multi-GB build stops the build too (dropping it cancels it).
    let image = tokio::select! {
        biased;
        _ = &mut shutdown => return Ok(()),
        built = config.build_image_async() => built.map_err(|e| {
            Failure::cannot_proceed(format!("pullstorm serve: building the image failed: {e}"))
        })?,
    };
    let registry = start_with_image(listener, config, Arc::new(image))
        .await
        .map_err(|e| Failure::cannot_proceed(format!("pullstorm serve: cannot start: {e}")))?;
    println!("{}", banner(registry.addr(), registry.image()));
    shutdown.await;
    registry.shutdown().await;
    Ok(())
}

/// The startup line plus one line per layer.
pub fn banner(addr: SocketAddr, image: &SyntheticImage) -> String {
    let mut text = format!(
        "pullstorm serve: listening on http://{addr}, image digests: index {}, manifest {}",
        image.index.digest, image.manifest.digest
    );
    for (i, layer) in image.layers.iter().enumerate() {
        text.push_str(&format!(
            "\n  layer {i}: {} {} bytes",
            layer.digest, layer.size
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn defaults_and_lists() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(
            a.layers,
            [ByteSize(32 << 20), ByteSize(16 << 20), ByteSize(4 << 20)]
        );
        let a = parse(&[
            "--layers",
            "64MiB,16MiB",
            "--cut-after",
            "1MiB",
            "--cut-with",
            "rst",
            "--cut-times",
            "2",
        ])
        .unwrap();
        assert_eq!(a.layers, [ByteSize(64 << 20), ByteSize(16 << 20)]);
        let c = a.to_config(None).unwrap();
        assert_eq!(c.faults.cut_after, Some(ByteSize(1 << 20)));
        assert_eq!(c.faults.cut_with, CutWith::Rst);
        assert_eq!(c.faults.cut_times, Some(2));
    }

    #[test]
    fn bad_input() {
        assert!(parse(&["--layers", "12XB"]).is_err());
        assert!(parse(&["--auth", "basic"]).is_err());
        assert!(parse(&["--cut-times", "1"]).is_err());
        let a = parse(&["--token-user", "ci"]).unwrap();
        assert_eq!(
            a.to_config(Some("pw".into())).unwrap_err().code,
            crate::exit::BAD_INPUT
        );
        let a = parse(&["--auth", "bearer", "--token-user", "ci"]).unwrap();
        assert_eq!(a.to_config(None).unwrap_err().code, crate::exit::BAD_INPUT);
        let c = a.to_config(Some("pw".into())).unwrap();
        assert_eq!(c.token_credentials.map(|c| c.user), Some("ci".to_string()));
        assert!(!format!("{:?}", a.to_config(Some("pw".into())).unwrap()).contains("pw\""));
    }
}
