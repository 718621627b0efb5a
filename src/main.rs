//! The `pullstorm` command line: parse, dispatch, map errors to exit codes.
//! Everything else lives in the library.

use clap::{Args, Parser, Subcommand};
use pullstorm::exit::{self, Failure};
use pullstorm::scenario::Set;
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pullstorm",
    version,
    about = "Load-test container registries with fleets of simulated nodes pulling multi-GB images",
    long_about = "pullstorm simulates clusters x nodes, each behaving like dockerd or containerd, pulling an image \
through a registry and its load balancer at once. It records resets, short bodies, timeouts, retries, fd pressure \
and latency into HdrHistograms and writes result.json and report.html.\n\n\
Exit codes: 0 success, 1 thresholds failed, 2 bad input, 3 the run could not proceed (or its \
result could not be written), 130 / 143 the run was stopped by SIGINT (Ctrl-C) / SIGTERM (its result \
is still written).",
    after_help = "Start with: pullstorm run scenarios/quickstart.toml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write DIR/result.json and DIR/report.html.
    #[command(
        long_about = "Run a scenario: lay out the fleet, start every node on its schedule, pull the image \
like the chosen client does, and stop at the end of the pulls or at run.duration, whichever comes first. \
Without target.url (or --target) the run starts the embedded synthetic registry in this process.\n\n\
Ctrl-C or SIGTERM stops the run and still writes the result (marked \"complete\": false); the exit \
code is then 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process the signal ended.\n\n\
The output folder is checked before the first node starts: it must be creatable and writable, and \
must not hold a previous run's result.json (exit code 2 otherwise).\n\n\
Credentials come from PULLSTORM_USERNAME / PULLSTORM_PASSWORD or docker's config.json (DOCKER_CONFIG), \
never from the scenario."
    )]
    Run(RunArgs),
    /// Run the embedded synthetic registry on its own.
    #[command(
        long_about = "Serve deterministic synthetic images (any repository name, any tag) over the registry \
API: manifests (OCI, docker schema2, an index), blobs with Range, optional Bearer auth, and injected faults \
for tests. Same seed and layer sizes give the same digests as `pullstorm seed`."
    )]
    Serve(pullstorm::registry::ServeArgs),
    /// Push a deterministic synthetic image to a registry and print its digest.
    #[command(
        long_about = "Push a deterministic synthetic image with a real OCI push: HEAD each blob, \
POST an upload (or a cross-repo mount), chunked PATCHes with Content-Range following each returned Location \
(a cut upload resumes where the registry says it stands), PUT ?digest=, then the manifest(s) and the tag. \
Content is generated while it streams. Same --seed and --layers give the same digests as `pullstorm serve`, \
so a run can compare either. Prints the digest the tag points at on stdout."
    )]
    Seed(SeedArgs),
    /// Relay TCP to a registry or LB and inject faults: cuts, stalls, Range stripping, caps, latency.
    #[command(
        long_about = "Relay connections to a registry or load balancer (one upstream connection per client \
connection) and inject what the seeds' LBs did: cuts after a time or a byte count (FIN or RST), stalls, \
a stripped Range header, a connection cap (refuse, reset, hang), bandwidth caps, latency with seeded jitter \
and injected HTTP statuses. Prints the counters as JSON at Ctrl-C or SIGTERM. See docs/proxy.md."
    )]
    Proxy(Box<pullstorm::proxy::ProxyArgs>),
    /// Rebuild report.html from a result.json.
    Report(ReportArgs),
    /// Check that a registry serves every manifest and blob of some images (size and digest).
    #[command(
        long_about = "Check a registry's consistency for some images: every tag resolves, every manifest \
and index child comes back by digest with bytes that hash to it, and every config and layer answers HEAD and \
GET with its size and digest (blobs are streamed through sha256, never held in memory). Findings: \
manifest_unknown, blob_unknown, head_get_disagree, empty_body, size_mismatch, digest_mismatch, \
malformed_manifest, http_error, request_failed; one line each on stdout, then a summary. See docs/verify.md.\n\n\
Exit codes: 0 consistent, 1 inconsistent, 2 bad input, 3 the registry cannot be reached, refuses the \
credentials, or the report cannot be written. Credentials come from PULLSTORM_USERNAME / PULLSTORM_PASSWORD or docker's config.json."
    )]
    Verify(pullstorm::verify::VerifyArgs),
    /// Merge the results of a sharded storm's shards into one result and report.
    #[command(
        long_about = "Merge the result.json files of a sharded storm (`pullstorm run --shard I/N`): counters \
summed, HdrHistograms added (lossless) and percentiles recomputed from them, timelines aligned on wall-clock \
time and summed per second, thresholds checked on the merged result. Inputs: result.json files, run folders, \
or folders of run folders. Refuses (exit 2) different scenarios, a shard given twice, mixed shard counts and \
missing shards (unless --allow-partial). See docs/merge.md.\n\n\
Exit codes: 0 thresholds passed, 1 thresholds failed, 2 bad input, 3 an output could not be written."
    )]
    Merge(pullstorm::merge::MergeArgs),
    /// Compare a baseline with a candidate (one run or a folder of runs each): the regression gate.
    #[command(
        long_about = "Compare two runs of one scenario, or two folders of repeated runs, metric by metric: \
pull and layer latency (p50, p99), throughput, failure, retry and error rates, wasted bytes, fd and \
connection peaks. A metric is worse only when its 95 % bootstrap interval excludes no change and the \
change exceeds its tolerance. See docs/upgrade-gate.md.\n\n\
Exit codes: 0 no regression, 1 a regression, 2 bad input (a file that is not a result, different \
scenarios, a bad tolerance), 3 an output file could not be written."
    )]
    Compare(pullstorm::compare::CompareArgs),
}

#[derive(Args)]
struct SeedArgs {
    /// Registry base URL, e.g. http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    registry: String,
    /// Repository and tag to push to, e.g. lab/big:v1.
    #[arg(long, value_name = "REF")]
    image: String,
    /// Layer sizes, comma separated (rounded up to 512 bytes, at least 2 KiB: layers are tar files).
    #[arg(long, value_name = "SIZES", default_value = "64MiB,16MiB")]
    layers: String,
    /// PRNG seed of the layer content.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What the tag points at.
    #[arg(long, value_enum, default_value = "oci")]
    format: pullstorm::oci::push::Format,
    /// Bytes per PATCH request.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    chunk_size: String,
    /// Blobs uploaded at once.
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Try a cross-repository mount from this repository first.
    #[arg(long, value_name = "REPO")]
    mount_from: Option<String>,
    /// Accept any TLS certificate.
    #[arg(long)]
    insecure_tls: bool,
    /// Extra PEM CA bundle to trust.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Scenario file (TOML); see docs/scenarios.md.
    scenario: PathBuf,
    /// Output folder [default: reports/<scenario>-<timestamp>/]; must not hold a previous run's result.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Registry or load balancer URL; overrides target.url.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// Image reference inside the target (name[:tag][@digest]); overrides target.image.
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// Extra PEM CA bundle to trust for an https target; overrides target.ca_file.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Override any scenario key by its dotted path, e.g. --set fleet.clusters=32 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print only the final summary.
    #[arg(long, short)]
    quiet: bool,
    /// Watch a local process by pid or by command name (all its pids), e.g. --watch nginx (repeatable).
    #[arg(long, value_name = "PID|NAME")]
    watch: Vec<String>,
    /// Scrape a Prometheus endpoint each second, e.g. http://127.0.0.1:5001/metrics (repeatable).
    #[arg(long, value_name = "URL")]
    watch_metrics: Vec<String>,
    /// Scrape an nginx stub_status page each second (repeatable).
    #[arg(long, value_name = "URL")]
    watch_stub_status: Vec<String>,
    /// Serve the run's live figures for Prometheus at http://ADDR/metrics, e.g. 0.0.0.0:9464 (port 0: a free port, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Keep --metrics-listen serving this long after the result is written, for the final scrape (Ctrl-C ends it).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    metrics_linger: String,
    /// Run shard I of N (0-based) of the fleet; default from PULLSTORM_SHARD=I/N, or
    /// JOB_COMPLETION_INDEX with PULLSTORM_SHARDS=N (a Kubernetes Indexed Job). See docs/merge.md.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Begin the herd at this instant (RFC 3339, e.g. 2026-11-27T22:30:00Z); overrides run.start_at.
    #[arg(long, value_name = "TIME")]
    start_at: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    /// A result.json written by `pullstorm run`.
    result: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    out: PathBuf,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(f) => {
            // Messages may quote what a target sent: shown, never obeyed by the terminal.
            let message = pullstorm::terminal::escape_lines(&f.message);
            let _ = writeln!(std::io::stderr(), "pullstorm: error: {message}");
            f.code
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::cannot_proceed(format!("cannot start the async runtime: {e}")))?;
    match cli.command {
        Command::Run(args) => {
            let sets = run_sets(&args);
            let loaded = pullstorm::scenario::load_with(&args.scenario, &sets)?;
            let sharding = sharding(&args)?;
            let options = pullstorm::run::RunOptions {
                loaded,
                overrides: sets.into_iter().map(|s| s.assignment).collect(),
                out_dir: args.out,
                quiet: args.quiet,
                watch: {
                    let mut w = pullstorm::metrics::watch::WatchSpec {
                        metrics_urls: args.watch_metrics.clone(),
                        stub_status_urls: args.watch_stub_status.clone(),
                        ..Default::default()
                    };
                    for p in &args.watch {
                        w.add_process(p);
                    }
                    w
                },
                metrics: None,
                sharding,
            };
            runtime.block_on(run_with_metrics(
                options,
                args.metrics_listen.as_deref(),
                &args.metrics_linger,
            ))
        }
        Command::Seed(args) => runtime.block_on(seed(args)),
        Command::Proxy(args) => runtime
            .block_on(async { pullstorm::proxy::proxy_main(*args, stop_signal()?).await })
            .map(|_| exit::OK),
        Command::Serve(args) => runtime
            .block_on(async { pullstorm::registry::serve_main(args, stop_signal()?).await })
            .map(|_| exit::OK),
        Command::Verify(args) => runtime.block_on(pullstorm::verify::main(args)),
        Command::Compare(args) => pullstorm::compare::compare_main(args),
        Command::Merge(args) => pullstorm::merge::merge_main(args),
        Command::Report(args) => {
            let text = std::fs::read_to_string(&args.result)
                .map_err(|e| Failure::bad_input(format!("{}: {e}", args.result.display())))?;
            let doc: pullstorm::result::ResultDoc = serde_json::from_str(&text).map_err(|e| {
                Failure::bad_input(format!(
                    "{}:{}:{}: not a pullstorm result: {e}",
                    args.result.display(),
                    e.line(),
                    e.column()
                ))
            })?;
            pullstorm::report::write(&doc, &args.out).map_err(|e| {
                Failure::cannot_proceed(format!("cannot write {}: {e}", args.out.display()))
            })?;
            print_line(&args.out.display().to_string());
            Ok(exit::OK)
        }
    }
}

/// `pullstorm run`, with its `--metrics-listen` endpoint bound before the run
/// starts (exit 2 or 3 if it cannot be) and kept for `--metrics-linger` after.
async fn run_with_metrics(
    mut options: pullstorm::run::RunOptions,
    metrics_listen: Option<&str>,
    metrics_linger: &str,
) -> Result<i32, Failure> {
    let stop = stop_signal()?;
    let linger = pullstorm::scenario::units::Span::parse(metrics_linger)
        .map_err(|e| Failure::bad_input(format!("--metrics-linger: {e}")))?
        .0;
    let Some(listen) = metrics_listen else {
        return pullstorm::run::execute(options, stop).await;
    };
    // Listening from now on too: a signal during the run also ends the linger.
    let stop_linger = stop_signal()?;
    let server = pullstorm::metrics::exporter::bind(listen).await?;
    let _ = writeln!(
        std::io::stderr(),
        "pullstorm: metrics at http://{}/metrics",
        server.addr
    );
    options.metrics = Some(server.exported.clone());
    let code = pullstorm::run::execute(options, stop).await?;
    server.linger(linger, stop_linger).await;
    Ok(code)
}

async fn seed(args: SeedArgs) -> Result<i32, Failure> {
    use pullstorm::scenario::units::ByteSize;
    let sizes = args
        .layers
        .split(',')
        .map(|l| {
            ByteSize::parse(l)
                .map(|b| b.0)
                .map_err(|e| Failure::bad_input(format!("--layers: {e}")))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    if sizes.is_empty() || sizes.contains(&0) {
        return Err(Failure::bad_input(
            "--layers: give one or more sizes above 0",
        ));
    }
    let chunk = ByteSize::parse(&args.chunk_size)
        .map_err(|e| Failure::bad_input(format!("--chunk-size: {e}")))?
        .0;
    let options = pullstorm::oci::push::PushOptions {
        chunk_size: chunk.max(1),
        jobs: args.jobs,
        mount_from: args.mount_from.clone(),
        attempts: 5,
    };
    let report = pullstorm::seed::run(
        &args.registry,
        &args.image,
        &sizes,
        args.seed,
        args.format,
        &options,
        args.ca_file.as_deref(),
        args.insecure_tls,
    )
    .await?;
    print_line(&report.digest);
    Ok(exit::OK)
}

/// SIGINT or SIGTERM, listened to from now on: `run`, `serve` and `proxy` call
/// this first thing, so a signal sent while they start is not lost. Other
/// commands keep the default action (the signal ends them at once).
fn stop_signal() -> Result<impl std::future::Future<Output = pullstorm::shutdown::Caught>, Failure>
{
    pullstorm::shutdown::listen()
        .map_err(|e| Failure::cannot_proceed(format!("cannot watch SIGINT and SIGTERM: {e}")))
}

/// The overrides of `run`, in order: every `--set`, then `--target`, `--image`
/// and `--ca-file` as the keys they stand for (errors about those name the option).
fn run_sets(args: &RunArgs) -> Vec<Set> {
    let mut sets: Vec<Set> = args.sets.iter().map(Set::typed).collect();
    if let Some(t) = &args.target {
        sets.push(Set::from_option("--target", "target.url", t));
    }
    if let Some(i) = &args.image {
        sets.push(Set::from_option("--image", "target.image", i));
    }
    if let Some(ca) = &args.ca_file {
        sets.push(Set::from_option(
            "--ca-file",
            "target.ca_file",
            &ca.to_string_lossy(),
        ));
    }
    sets
}

/// `--shard` (or the Job's environment) and `--start-at`; bad values are bad input.
fn sharding(args: &RunArgs) -> Result<pullstorm::shard::Sharding, Failure> {
    let shard = pullstorm::shard::Shard::resolve(args.shard.as_deref(), |k| std::env::var(k).ok())
        .map_err(Failure::bad_input)?;
    let start_at = args
        .start_at
        .as_deref()
        .map(pullstorm::shard::parse_start_at)
        .transpose()
        .map_err(|e| Failure::bad_input(format!("--start-at: {e}")))?;
    Ok(pullstorm::shard::Sharding { shard, start_at })
}

/// One line on stdout; a reader gone (`| head`) ends the output quietly.
fn print_line(line: &str) {
    if let Err(e) = pullstorm::terminal::print(&format!("{line}\n")) {
        tracing::warn!("cannot write to stdout: {e}");
    }
}
