//! Turning a scenario into a run: the plan (who starts when), the preflight
//! checks, and the run itself with its hard deadline and Ctrl-C handling.

pub mod plan;
pub mod run;
pub mod seed;

pub use plan::Plan;
pub use run::{execute, RunOptions};
