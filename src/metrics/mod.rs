//! Measurement: events from the nodes, gauges read once a second, and the
//! recorder that turns both into histograms, counters and a timeline; `fds`
//! counts open file descriptors (the harness's once a second, shared with the
//! watcher and the progress display); `harness` is the harness watching its
//! own CPU and timer lag (is it saturated?); `live` publishes each closed
//! second to whoever decides during the run; `watch` samples the harness and
//! the processes and endpoints around the run; `exporter` serves the run's
//! live figures to Prometheus (`--metrics-listen`).

pub mod events;
pub mod exporter;
pub mod fds;
pub mod harness;
pub mod live;
pub mod pushes;
pub mod recorder;
pub mod watch;

pub use events::{Event, ExchangeKind, Gauges, Sink};
pub use recorder::Recorder;
