//! `pullstorm proxy`: the proxy as a command, for labs where the fleet runs
//! elsewhere (or a real dockerd/containerd/skopeo is the client).
//!
//! Every flag is a [`ProxySection`] key with dashes (`--cut-after-bytes` is
//! `cut_after_bytes`); `--config FILE` reads the same keys from TOML and the
//! flags given override it. Prints one line when listening, then (with
//! `--stats-interval`) a JSON line of counters now and then, and the final
//! counters as JSON at Ctrl-C or SIGTERM.

use super::config::{OverLimit, ProxyConfig, ProxySection};
use crate::exit::Failure;
use crate::scenario::units::{ByteSize, Rate, Span};
use crate::scenario::CutWith;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `pullstorm proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Registry or LB to relay to: host:port (or http://host:port).
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// TOML file with the options below as keys (cut_after_bytes = "1MiB", ...); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the counters as a JSON line this often.
    #[arg(long, value_name = "SPAN", value_parser = Span::parse)]
    pub stats_interval: Option<Span>,

    /// Upstream connect timeout [default: 10s].
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Upstream")]
    pub connect_timeout: Option<Span>,

    /// Cut a connection this long after accepting it (an LB timeout).
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Cuts")]
    pub cut_after_time: Option<Span>,
    /// Cut a connection after this many bytes to the client (response head included).
    #[arg(long, value_name = "SIZE", value_parser = ByteSize::parse, help_heading = "Cuts")]
    pub cut_after_bytes: Option<ByteSize>,
    /// Cut a connection once this many body bytes of one request came from the client (0 = after its head).
    #[arg(long, value_name = "SIZE", value_parser = ByteSize::parse, help_heading = "Cuts")]
    pub cut_after_request_bytes: Option<ByteSize>,
    /// Only these request methods reach --cut-after-request-bytes (comma-separated, e.g. PATCH,PUT).
    #[arg(
        long,
        value_name = "METHODS",
        value_delimiter = ',',
        help_heading = "Cuts"
    )]
    pub cut_request_methods: Option<Vec<String>>,
    /// Only request targets containing this text reach --cut-after-request-bytes (e.g. /blobs/uploads/).
    #[arg(long, value_name = "TEXT", help_heading = "Cuts")]
    pub cut_request_path_contains: Option<String>,
    /// How a cut ends: fin (short body, unexpected EOF) or rst (connection reset) [default: fin].
    #[arg(long, value_name = "HOW", value_parser = parse_cut_with, help_heading = "Cuts")]
    pub cut_with: Option<CutWith>,
    /// Cut every Nth connection that reaches a cut trigger (1 = all, the default).
    #[arg(long, value_name = "N", help_heading = "Cuts")]
    pub cut_every: Option<u64>,
    /// Cut only the first K connections that reach a cut trigger.
    #[arg(long, value_name = "K", help_heading = "Cuts")]
    pub cut_first: Option<u64>,
    /// Cut each connection that reaches a cut trigger with this probability (seeded).
    #[arg(long, value_name = "P", help_heading = "Cuts")]
    pub cut_probability: Option<f64>,

    /// Stop forwarding after this many bytes to the client.
    #[arg(long, value_name = "SIZE", value_parser = ByteSize::parse, help_heading = "Stalls")]
    pub stall_after_bytes: Option<ByteSize>,
    /// How long a stall lasts [default: until the client leaves].
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Stalls")]
    pub stall_for: Option<Span>,
    /// Stall every Nth connection that reaches the stall point.
    #[arg(long, value_name = "N", help_heading = "Stalls")]
    pub stall_every: Option<u64>,
    /// Stall only the first K connections that reach the stall point.
    #[arg(long, value_name = "K", help_heading = "Stalls")]
    pub stall_first: Option<u64>,
    /// Stall each connection that reaches the stall point with this probability.
    #[arg(long, value_name = "P", help_heading = "Stalls")]
    pub stall_probability: Option<f64>,

    /// Remove Range from requests: the registry answers 200 with the whole blob.
    #[arg(long, help_heading = "HTTP")]
    pub strip_range: bool,
    /// Answer requests with this HTTP status (e.g. 503, 429) without forwarding them.
    #[arg(long, value_name = "CODE", help_heading = "HTTP")]
    pub status: Option<u16>,
    /// Answer every Nth eligible request.
    #[arg(long, value_name = "N", help_heading = "HTTP")]
    pub status_every: Option<u64>,
    /// Answer only the first K eligible requests.
    #[arg(long, value_name = "K", help_heading = "HTTP")]
    pub status_first: Option<u64>,
    /// Answer each eligible request with this probability.
    #[arg(long, value_name = "P", help_heading = "HTTP")]
    pub status_probability: Option<f64>,
    /// Only requests whose target contains this text are eligible (e.g. /blobs/).
    #[arg(long, value_name = "TEXT", help_heading = "HTTP")]
    pub status_path_contains: Option<String>,

    /// Most client connections relayed at once.
    #[arg(long, value_name = "N", help_heading = "Connection cap")]
    pub max_connections: Option<u32>,
    /// Over the cap: refuse (reset at once), reset (after the request head) or hang [default: refuse].
    #[arg(long, value_name = "HOW", value_parser = parse_over_limit, help_heading = "Connection cap")]
    pub over_limit: Option<OverLimit>,

    /// Bandwidth toward each client connection (e.g. 10MB/s, 100Mbit).
    #[arg(long, value_name = "RATE", value_parser = Rate::parse, help_heading = "Shaping")]
    pub bandwidth: Option<Rate>,
    /// Bandwidth toward all clients together.
    #[arg(long, value_name = "RATE", value_parser = Rate::parse, help_heading = "Shaping")]
    pub bandwidth_total: Option<Rate>,
    /// Delay before the first byte of each response.
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Shaping")]
    pub latency: Option<Span>,
    /// Delay before each chunk sent to the client.
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Shaping")]
    pub latency_per_chunk: Option<Span>,
    /// Add a uniform random 0..SPAN to each delay.
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, help_heading = "Shaping")]
    pub latency_jitter: Option<Span>,

    /// Seed of every random choice (probabilities, jitter) [default: 1].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

fn parse_cut_with(text: &str) -> Result<CutWith, String> {
    match text {
        "fin" => Ok(CutWith::Fin),
        "rst" => Ok(CutWith::Rst),
        _ => Err(format!("`{text}`: use fin or rst")),
    }
}

fn parse_over_limit(text: &str) -> Result<OverLimit, String> {
    match text {
        "refuse" => Ok(OverLimit::Refuse),
        "reset" => Ok(OverLimit::Reset),
        "hang" => Ok(OverLimit::Hang),
        _ => Err(format!("`{text}`: use refuse, reset or hang")),
    }
}

impl ProxyArgs {
    /// The section these options describe: `--config`'s file, then each flag given.
    pub fn to_section(&self) -> Result<ProxySection, Failure> {
        let mut s = match &self.config {
            None => ProxySection::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::bad_input(format!("{}: cannot read: {e}", path.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?
            }
        };
        macro_rules! flag {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field {
                    s.$field = Some(v.clone());
                }
            )*};
        }
        flag!(
            upstream,
            cut_after_time,
            cut_after_bytes,
            cut_after_request_bytes,
            cut_request_methods,
            cut_request_path_contains,
            cut_every,
            cut_first,
            cut_probability,
            stall_after_bytes,
            stall_for,
            stall_every,
            stall_first,
            stall_probability,
            status,
            status_every,
            status_first,
            status_probability,
            status_path_contains,
            max_connections,
            over_limit,
            bandwidth,
            bandwidth_total,
            latency,
            latency_per_chunk,
            latency_jitter
        );
        if let Some(v) = self.connect_timeout {
            s.connect_timeout = v;
        }
        if let Some(v) = self.cut_with {
            s.cut_with = v;
        }
        if let Some(v) = self.seed {
            s.seed = v;
        }
        s.strip_range |= self.strip_range;
        Ok(s)
    }

    /// The validated configuration; errors name the key (flags use the same name with dashes).
    pub fn to_config(&self) -> Result<ProxyConfig, Failure> {
        ProxyConfig::from_section(&self.to_section()?)
            .map_err(|e| Failure::bad_input(format!("pullstorm proxy: {e}")))
    }
}

/// Runs `pullstorm proxy` until `shutdown` completes (the CLI passes
/// [`crate::shutdown::listen`]: SIGINT or SIGTERM), then prints the final counters.
pub async fn proxy_main(args: ProxyArgs, shutdown: impl Future) -> Result<(), Failure> {
    let config = args.to_config()?;
    let listener = crate::net::listen(args.listen).map_err(|e| {
        Failure::cannot_proceed(format!(
            "pullstorm proxy: cannot listen on {}: {e}",
            args.listen
        ))
    })?;
    let banner = format!("-> {}; {config}", config.upstream);
    let proxy = super::start(listener, config)
        .await
        .map_err(|e| Failure::cannot_proceed(format!("pullstorm proxy: cannot start: {e}")))?;
    println!("pullstorm proxy: listening on {} {banner}", proxy.addr());
    let period = args.stats_interval.map(|s| s.0).filter(|d| !d.is_zero());
    let mut ticker = period.map(tokio::time::interval);
    tokio::pin!(shutdown);
    loop {
        let tick = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick => println!("{}", stats_line(&proxy.stats())),
        }
    }
    let stats = proxy.shutdown().await;
    println!("{}", stats_line(&stats));
    Ok(())
}

fn stats_line(stats: &super::ProxyStats) -> String {
    serde_json::to_string(stats).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    fn parse(args: &[&str]) -> Result<ProxyArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("proxy").chain(args.iter().copied())).map(|c| c.proxy)
    }

    #[test]
    fn flags_map_to_section_keys() {
        let a = parse(&[
            "--upstream",
            "127.0.0.1:5000",
            "--cut-after-bytes",
            "1MiB",
            "--cut-with",
            "rst",
            "--cut-first",
            "1",
            "--strip-range",
            "--max-connections",
            "10",
            "--over-limit",
            "hang",
            "--bandwidth",
            "1MB/s",
            "--latency",
            "50ms",
        ])
        .unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8080");
        let c = a.to_config().unwrap();
        let cut = c.cut.unwrap();
        assert_eq!((cut.after_bytes, cut.with), (Some(1 << 20), CutWith::Rst));
        assert!(c.strip_range);
        assert_eq!(c.limit.unwrap().over, OverLimit::Hang);
        assert_eq!(c.bandwidth, Some(1_000_000));
        assert_eq!(c.latency.first_byte, Duration::from_millis(50));
    }

    #[test]
    fn config_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "upstream = \"127.0.0.1:1\"\ncut_after_time = \"60s\"\ncut_with = \"rst\"\nseed = 9\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = parse(&["--config", path, "--cut-with", "fin"])
            .unwrap()
            .to_config()
            .unwrap();
        let cut = c.cut.unwrap();
        assert_eq!(cut.after_time, Some(Duration::from_secs(60)));
        assert_eq!(cut.with, CutWith::Fin);
        assert_eq!(c.seed, 9);
        std::fs::write(&file, "upstream = \"a:1\"\ncut_aftr_time = 1\n").unwrap();
        let e = parse(&["--config", path]).unwrap().to_config().unwrap_err();
        assert_eq!(e.code, crate::exit::BAD_INPUT);
        assert!(e.message.contains("cut_aftr_time"), "{}", e.message);
    }

    #[test]
    fn bad_flags() {
        assert!(parse(&["--cut-with", "kill"]).is_err());
        assert!(parse(&["--over-limit", "drop"]).is_err());
        assert!(parse(&["--bandwidth", "10MB"]).is_err());
        let e = parse(&[]).unwrap().to_config().unwrap_err();
        assert!(e.message.contains("upstream"), "{}", e.message);
        let e = parse(&["--upstream", "a:1", "--cut-first", "2"])
            .unwrap()
            .to_config()
            .unwrap_err();
        assert_eq!(e.code, crate::exit::BAD_INPUT);
    }
}
