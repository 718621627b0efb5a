//! pullstorm: a load-testing harness for container registries.
//!
//! Data flows one way: scenario -> plan -> nodes -> exchanges -> events ->
//! recorder -> result -> report. Each module below owns one step; see
//! ARCHITECTURE.md for the map.

pub mod capacity;
pub mod compare;
pub mod digest;
pub mod exit;
pub mod fleet;
pub mod human;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod oci;
pub mod progress;
pub mod proxy;
pub mod pusher;
pub mod random;
pub mod redact;
pub mod registry;
pub mod report;
pub mod result;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod shard;
pub mod shutdown;
pub mod synth;
pub mod terminal;
pub mod verify;
