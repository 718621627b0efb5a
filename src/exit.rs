//! The errors that end a command, each tied to the exit code the contract gives it.
//!
//! Faults in the target are data (they land in the result); only bad input
//! and a run that cannot start end the process early.

use std::fmt;

/// Exit code: the run finished and every threshold held.
pub const OK: i32 = 0;
/// Exit code: thresholds failed, or `compare` found a regression.
pub const THRESHOLDS_FAILED: i32 = 1;
/// Exit code: bad input (CLI or scenario).
pub const BAD_INPUT: i32 = 2;
/// Exit code: the run itself could not proceed (target unreachable at start, ...).
pub const CANNOT_PROCEED: i32 = 3;
/// Exit code: SIGINT (Ctrl-C) stopped the run; its result was still written.
/// 128 + 2, as a shell reports a process that SIGINT ended.
pub const INTERRUPTED: i32 = 130;
/// Exit code: SIGTERM stopped the run; its result was still written. 128 + 15.
pub const TERMINATED: i32 = 143;

/// An error that ends the command with a given exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// Bad input: the message must name the file, line and key when there is one.
    /// A password in any URL the message quotes is masked (as in every `Failure`).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure {
            code: BAD_INPUT,
            message: crate::redact::text(&message.into()),
        }
    }

    /// The run could not start or go on (not the target's fault under load: that is data).
    pub fn cannot_proceed(message: impl Into<String>) -> Self {
        Failure {
            code: CANNOT_PROCEED,
            message: crate::redact::text(&message.into()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
