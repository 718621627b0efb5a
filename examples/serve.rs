//! Runs the embedded registry as `pullstorm serve` would, until the CLI wires
//! the subcommand in: `cargo run --release --example serve -- --help`.
//! Logs go to stderr; `RUST_LOG=pullstorm=debug` shows every request.

use clap::Parser;
use pullstorm::registry::ServeArgs;

#[derive(Parser)]
#[command(name = "serve", about = "Run the embedded synthetic registry")]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let stop = match pullstorm::shutdown::listen() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("cannot watch SIGINT and SIGTERM: {e}");
            std::process::exit(pullstorm::exit::CANNOT_PROCEED);
        }
    };
    if let Err(failure) = pullstorm::registry::serve_main(cli.serve, stop).await {
        eprintln!("{failure}");
        std::process::exit(failure.code);
    }
}
