//! What a run watches besides the registry under test: the harness itself,
//! processes by pid or by name, Prometheus endpoints and nginx `stub_status`
//! pages. Built from `--watch*` flags and the scenario's `[watch]` section.

use super::procfs;
use crate::metrics::fds::FdGauge;
use crate::metrics::harness::HarnessGauge;
use std::sync::Arc;

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// Sample this process (the harness): fds, RSS, CPU, sockets by TCP state.
    pub harness: bool,
    /// Where the harness's fd count comes from: the gauge the recorder's
    /// sampler sets once a second (see [`crate::metrics::fds`]). `None` when
    /// no recorder runs: the watcher then counts the harness's fds itself.
    pub harness_fds: Option<Arc<FdGauge>>,
    /// Where the harness's CPU comes from: the recorder's per-second figure
    /// (see [`crate::metrics::harness`]); `None`: the watcher reads `/proc`.
    pub harness_cpu: Option<Arc<HarnessGauge>>,
    /// Remote ports of the target. TIME_WAIT sockets have no fd left to tie them
    /// to this process, so they are counted for the whole network namespace when
    /// their local or remote port is one of these (all TIME_WAIT when empty).
    pub target_ports: Vec<u16>,
    /// Processes by pid, each with a display name.
    pub pids: Vec<(String, u32)>,
    /// Processes by command name (`/proc/PID/comm`, e.g. `nginx`,
    /// `docker-registry`): every matching pid is watched as `name[pid]`, and
    /// names are looked up again each second so respawned workers are seen.
    pub names: Vec<String>,
    /// Prometheus text endpoints (`http://127.0.0.1:5001/metrics`).
    pub metrics_urls: Vec<String>,
    /// nginx `stub_status` pages (`http://127.0.0.1:8080/nginx_status`).
    pub stub_status_urls: Vec<String>,
    /// More Prometheus metric names to record from every endpoint, summed
    /// over label sets (e.g. `registry_http_in_flight_requests`).
    pub metric_names: Vec<String>,
}

impl WatchSpec {
    /// Adds a process by pid (all digits) or by name: the form of `--watch`.
    pub fn add_process(&mut self, arg: &str) {
        match arg.parse::<u32>() {
            Ok(pid) => {
                let name = procfs::comm(pid)
                    .map(|c| format!("{c}[{pid}]"))
                    .unwrap_or_else(|_| format!("pid {pid}"));
                self.pids.push((name, pid));
            }
            Err(_) => self.names.push(arg.to_string()),
        }
    }
}
