//! Stopping on SIGINT (Ctrl-C) or SIGTERM, the same way for `run`, `serve`
//! and `proxy`.
//!
//! [`listen`] installs both handlers at once and hands back a future that
//! completes with the first of the two signals. The commands take that future
//! as a parameter (as tokio-rs/mini-redis's `server::run` takes `shutdown`),
//! so tests can pass any future instead of sending a signal to a process.
//!
//! Call [`listen`] before the work starts: from then on a signal is kept until
//! the future is polled, so one that arrives early is never lost, nor does it
//! kill the process with the default action (which would leave a run without
//! its result, or a proxy without its final counters).

use std::fmt;
use std::future::Future;
use tokio::signal::unix::{signal, SignalKind};

/// The signal that asked the command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caught {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: `kill`, systemd, docker stop, a CI timeout.
    Terminate,
}

impl Caught {
    /// The exit code of a run this signal stopped: 130 for SIGINT, 143 for
    /// SIGTERM, the codes a shell gives a process the signal ended, so CI
    /// tells an abort from a failed threshold (1).
    pub fn exit_code(self) -> i32 {
        match self {
            Caught::Interrupt => crate::exit::INTERRUPTED,
            Caught::Terminate => crate::exit::TERMINATED,
        }
    }
}

impl fmt::Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Caught::Interrupt => "SIGINT",
            Caught::Terminate => "SIGTERM",
        })
    }
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that
/// completes on the first of them. Must be called inside a tokio runtime.
pub fn listen() -> std::io::Result<impl Future<Output = Caught>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let caught = tokio::select! {
            _ = interrupt.recv() => Caught::Interrupt,
            _ = terminate.recv() => Caught::Terminate,
        };
        tracing::info!("stopping on {caught}");
        caught
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{getpid, kill_process, Signal};
    use std::time::Duration;

    // One test sends both signals in turn: the handlers are process-wide, and two
    // tests sending signals at once could each see the other's.
    #[tokio::test]
    async fn tells_which_signal_came_even_when_it_came_early() {
        for (signal, expected, name) in [
            (Signal::TERM, Caught::Terminate, "SIGTERM"),
            (Signal::INT, Caught::Interrupt, "SIGINT"),
        ] {
            let stop = listen().unwrap();
            // Sent before the future is first polled: it must still be seen.
            kill_process(getpid(), signal).unwrap();
            let caught = tokio::time::timeout(Duration::from_secs(5), stop)
                .await
                .expect("the signal was seen");
            assert_eq!(caught, expected);
            assert_eq!(caught.to_string(), name);
            // 128 + the signal's number, as a shell reports it.
            assert_eq!(caught.exit_code(), 128 + signal.as_raw());
        }
    }
}
