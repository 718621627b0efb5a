//! `pullstorm serve`: the embedded registry on its own, for trying clients
//! (docker, containerd, skopeo, curl) against the synthetic image and its faults.
//!
//! The CLI flattens [`ServeArgs`] into its `serve` subcommand and calls
//! [`serve_main`]. The token password comes from the environment only, so it
//! never shows in `ps` or shell history.

use super::{start_with_image, Credentials, EmbeddedConfig, RequestLog};
use crate::exit::Failure;
use crate::scenario::units::ByteSize;
use crate::scenario::{CutWith, EmbeddedAuth, FaultTarget, Faults};
use crate::synth::SyntheticImage;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
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

    /// Fault: answer the requests named by --status-on with this HTTP error status (400-599)
    /// and the body a registry sends with it (JSON error codes; nginx's page for 502/504).
    #[arg(long, value_name = "CODE", requires = "status_on")]
    pub status: Option<u16>,

    /// Fault: which requests get --status.
    #[arg(long, value_enum, value_name = "KIND", requires = "status")]
    pub status_on: Option<StatusOn>,

    /// Fault: only the first N requests named by --status-on get --status, later ones are served.
    #[arg(long, value_name = "N", requires = "status")]
    pub status_times: Option<u32>,

    /// Fault: serve the first N requests named by --status-on before --status begins.
    #[arg(long, value_name = "N", requires = "status")]
    pub status_after: Option<u32>,

    /// Fault: stop every blob body after this many bytes and hold the connection open.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "cut_after")]
    pub stall_after: Option<ByteSize>,

    /// Write every request (time, method, kind of path, Range, status, bytes, how it ended)
    /// to FILE, one JSON object a line, each line flushed as its response ends.
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
}

/// `--status-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusOn {
    /// `GET /v2/`
    Ping,
    /// The token endpoint, /token
    Token,
    /// Manifests, by tag or digest
    Manifest,
    /// Image config blobs
    Config,
    /// Layer blobs
    Layer,
    /// Every blob
    Blob,
}

impl From<StatusOn> for FaultTarget {
    fn from(on: StatusOn) -> FaultTarget {
        match on {
            StatusOn::Ping => FaultTarget::Ping,
            StatusOn::Token => FaultTarget::Token,
            StatusOn::Manifest => FaultTarget::Manifest,
            StatusOn::Config => FaultTarget::Config,
            StatusOn::Layer => FaultTarget::Layer,
            StatusOn::Blob => FaultTarget::Blob,
        }
    }
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
                status: self.status,
                status_on: self.status_on.map(FaultTarget::from),
                status_times: self.status_times,
                status_after: self.status_after,
                stall_after: self.stall_after,
            },
            token_credentials,
            request_log: None,
        })
        .and_then(
            |config| match super::faults::problems(&config.faults).first() {
                Some((key, message)) => Err(Failure::bad_input(format!(
                    "--{}: {message}",
                    key.replace('_', "-")
                ))),
                None => Ok(config),
            },
        )
    }
}

/// Runs `pullstorm serve` until `shutdown` completes (the CLI passes
/// [`crate::shutdown::listen`]: SIGINT or SIGTERM), then stops gracefully.
pub async fn serve_main(args: ServeArgs, shutdown: impl Future) -> Result<(), Failure> {
    let mut config = args.to_config(std::env::var(PASSWORD_ENV).ok())?;
    if let Some(path) = &args.request_log {
        let log = RequestLog::to_file(path).map_err(|e| {
            Failure::bad_input(format!(
                "--request-log {}: cannot create it: {e}",
                path.display()
            ))
        })?;
        config.request_log = Some(log);
    }
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
        let a = parse(&[
            "--status",
            "429",
            "--status-on",
            "manifest",
            "--status-times",
            "6",
            "--stall-after",
            "2MiB",
            "--request-log",
            "/tmp/log.jsonl",
        ])
        .unwrap();
        let c = a.to_config(None).unwrap();
        assert_eq!(c.faults.status, Some(429));
        assert_eq!(c.faults.status_on, Some(FaultTarget::Manifest));
        assert_eq!(c.faults.status_times, Some(6));
        assert_eq!(c.faults.stall_after, Some(ByteSize(2 << 20)));
        assert_eq!(a.request_log, Some(PathBuf::from("/tmp/log.jsonl")));
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
        assert!(parse(&["--status", "503"]).is_err());
        assert!(parse(&["--status-on", "layer"]).is_err());
        assert!(parse(&["--status", "503", "--status-on", "lair"]).is_err());
        assert!(parse(&["--cut-after", "1MiB", "--stall-after", "1MiB"]).is_err());
        let b = parse(&["--status", "200", "--status-on", "layer"]).unwrap();
        let e = b.to_config(None).unwrap_err();
        assert_eq!(e.code, crate::exit::BAD_INPUT);
        assert!(e.to_string().contains("--status: 200"), "{e}");
        assert!(!format!("{:?}", a.to_config(Some("pw".into())).unwrap()).contains("pw\""));
    }
}
