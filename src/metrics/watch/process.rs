//! Sampling one local process through `/proc`: liveness (exit, zombie, a
//! reused pid), CPU, RSS, threads, open fds against the nofile limit, what
//! tells it apart from others of its name (command line, listening ports),
//! and for the harness its sockets by TCP state.

use super::{label, procfs, tcp, Moment, WatchedPoint, WatchedSummary};
use crate::metrics::fds::{self, FdGauge};
use crate::metrics::harness::HarnessGauge;
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Samples in which a process's listening ports are looked for, until found.
const PORT_LOOKS: u32 = 10;

/// The sampler state of one watched process.
#[derive(Debug)]
pub(super) struct ProcessSampler {
    pub(super) pid: u32,
    /// Tells a reused pid from the process first seen.
    start_ticks: Option<u64>,
    first_cpu: Option<u64>,
    last_cpu: Option<(u64, Instant)>,
    /// Exited (or its pid reused): never sampled again.
    pub(super) done: bool,
    /// Looks for listening ports so far (a process may bind after it is first seen).
    port_looks: u32,
    /// Set when this process is the harness.
    harness: Option<Harness>,
    ticks_per_second: u64,
    page_size: u64,
}

/// What only the harness's row has.
#[derive(Debug)]
struct Harness {
    tcp: tcp::Paced,
    target_ports: Vec<u16>,
    /// The recorder's per-second fd count and its high-water, read instead of counting again.
    shared_fds: Option<Arc<FdGauge>>,
    /// The recorder's per-second CPU figure, read instead of measuring again.
    shared_cpu: Option<Arc<HarnessGauge>>,
}

impl ProcessSampler {
    pub(super) fn new(pid: u32) -> Self {
        ProcessSampler {
            pid,
            start_ticks: None,
            first_cpu: None,
            last_cpu: None,
            done: false,
            port_looks: 0,
            harness: None,
            ticks_per_second: procfs::ticks_per_second(),
            page_size: procfs::page_size(),
        }
    }

    /// This process, with its sockets counted, and its fds and CPU read from
    /// `shared_fds` and `shared_cpu` when a recorder measures them.
    pub(super) fn harness(
        target_ports: Vec<u16>,
        shared_fds: Option<Arc<FdGauge>>,
        shared_cpu: Option<Arc<HarnessGauge>>,
    ) -> Self {
        ProcessSampler {
            harness: Some(Harness {
                tcp: tcp::Paced::default(),
                target_ports,
                shared_fds,
                shared_cpu,
            }),
            ..ProcessSampler::new(std::process::id())
        }
    }

    /// One reading; `None` once the process is gone (its exit is then marked
    /// in `summary`, once).
    pub(super) fn sample(
        &mut self,
        summary: &mut WatchedSummary,
        at: &Moment,
    ) -> Result<Option<WatchedPoint>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(stat) = self.live_stat(summary, at.at_s)? else {
            return Ok(None);
        };
        if stat.state == 'Z' && summary.zombie_at_s.is_none() {
            summary.zombie_at_s = Some(at.at_s);
            tracing::warn!(watched = %summary.name, at_s = at.at_s, "watched process is a zombie");
        }
        let shared_cpu = self.harness.as_ref().and_then(|h| h.shared_cpu.as_ref());
        let cpu_pct = match shared_cpu {
            // The recorder's last closed second: the figure of `timeline[]` and `harness`.
            Some(gauge) => {
                summary.cpu_seconds = gauge.cpu_seconds().or(summary.cpu_seconds);
                gauge.cpu_pct()
            }
            None => self.cpu(summary, stat.cpu_ticks, at.now),
        };
        let fds = self.fds_and_limit(summary, stat.state);
        if self.harness.is_none() {
            self.identify(summary);
        }
        let values = match &mut self.harness {
            Some(h) => h.tcp.sample(&h.target_ports),
            None => BTreeMap::new(),
        };
        Ok(Some(WatchedPoint {
            t: at.t,
            fds,
            rss: Some(stat.rss_pages * self.page_size),
            threads: Some(stat.threads),
            cpu_pct,
            values,
        }))
    }

    /// Its command line (once) and listening ports (in the first
    /// [`PORT_LOOKS`] samples, until some are found), for the reader to tell
    /// processes of one name apart.
    fn identify(&mut self, summary: &mut WatchedSummary) {
        if summary.command.is_none() {
            summary.command = procfs::cmdline(self.pid)
                .ok()
                .and_then(|args| label::command_label(&args));
        }
        if summary.listen_ports.is_empty() && self.port_looks < PORT_LOOKS {
            self.port_looks += 1;
            summary.listen_ports = tcp::listening_ports_of(self.pid);
        }
    }

    /// `/proc/PID/stat` while the process first seen lives; `None` (and the
    /// exit marked) once it is dead or its pid belongs to another process.
    fn live_stat(
        &mut self,
        summary: &mut WatchedSummary,
        at_s: f64,
    ) -> Result<Option<procfs::Stat>, String> {
        let pid = self.pid;
        match procfs::stat(pid) {
            Ok(s) if self.start_ticks.is_none_or(|st| st == s.start_ticks) && s.state != 'X' => {
                self.start_ticks = Some(s.start_ticks);
                return Ok(Some(s));
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || Errno::from_io_error(&e) == Some(Errno::SRCH) => {}
            Err(e) => return Err(format!("/proc/{pid}/stat: {e}")),
        }
        self.done = true;
        mark_exit(summary, at_s);
        Ok(None)
    }

    /// CPU use since the last reading, in percent of one core; keeps the
    /// seconds used since the first reading in `summary`.
    fn cpu(&mut self, summary: &mut WatchedSummary, cpu_ticks: u64, now: Instant) -> Option<f64> {
        let ticks = self.ticks_per_second as f64;
        let pct = self.last_cpu.map(|(prev, when)| {
            let secs = now.saturating_duration_since(when).as_secs_f64().max(1e-3);
            let used = cpu_ticks.saturating_sub(prev) as f64 / ticks;
            (used / secs * 1000.0).round() / 10.0
        });
        self.last_cpu = Some((cpu_ticks, now));
        let first = *self.first_cpu.get_or_insert(cpu_ticks);
        summary.cpu_seconds = Some(cpu_ticks.saturating_sub(first) as f64 / ticks);
        pct
    }

    /// Open fds now, and the nofile limit kept in `summary`.
    fn fds_and_limit(&self, summary: &mut WatchedSummary, state: char) -> Option<u64> {
        let pid = self.pid;
        let mut errors = Vec::new();
        let shared = self.harness.as_ref().and_then(|h| h.shared_fds.as_ref());
        let fds = match shared {
            Some(gauge) => {
                // The harness's peak is the gauge's high-water, not the highest
                // second this watcher happened to read (fd.client_peak is the same).
                if let Some(peak) = gauge.peak() {
                    summary.fd_peak = Some(summary.fd_peak.unwrap_or(0).max(peak));
                }
                gauge.get()
            }
            None => match fds::count_open(pid) {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(format!("/proc/{pid}/fd: {e}"));
                    None
                }
            },
        };
        match procfs::nofile_limit(pid) {
            Ok(l) => summary.fd_limit = l,
            Err(e) => errors.push(format!("/proc/{pid}/limits: {e}")),
        }
        if let Some(e) = errors.pop() {
            // A zombie has no fds left to list: not a failure.
            if state != 'Z' {
                summary.last_error = Some(e);
            }
        }
        fds
    }
}

fn mark_exit(s: &mut WatchedSummary, at_s: f64) {
    if s.exited_at_s.is_none() {
        s.exited_at_s = Some(at_s);
        tracing::warn!(watched = %s.name, at_s, "watched process exited");
    }
}
