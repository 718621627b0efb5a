//! Measurement: events from the nodes, gauges read once a second, and the
//! recorder that turns both into histograms, counters and a timeline.

pub mod events;
pub mod fds;
pub mod recorder;

pub use events::{Event, ExchangeKind, Gauges, Sink};
pub use recorder::Recorder;
