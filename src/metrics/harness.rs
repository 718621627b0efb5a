//! The harness watching itself. A load generator short of CPU measures
//! itself, not the target: its requests queue inside it and its timers fire
//! late, so latencies grow that the registry never caused.
//!
//! Each second the recorder's sampler notes the share of the usable cores
//! this process used, the share its threads spent waiting for a CPU (ready to
//! run while other processes had the cores), and how late a timer on the
//! fleet's runtime woke. Here:
//! - the rule (pure, unit-tested): a second is saturated when the harness
//!   used, or used and waited for, [`CPU_SATURATED_PERCENT`] of its usable
//!   cores or more, or a timer woke more than [`TIMER_LAG_SATURATED_MS`] late;
//!   the run is saturated when its saturated seconds are more than
//!   [`SATURATED_RUN_PERCENT`] of the seconds measured ([`verdict`]). The wait
//!   counts because on a shared machine a harness that gets only part of its
//!   cores is as much the bottleneck as one that uses them all;
//! - at the edges, the measurements: the process CPU clock (every thread,
//!   user + system), the run-queue wait of every thread (`schedstat`), the
//!   usable cores (CPU affinity and cgroup quota), the timer-lag probe (a task
//!   on the fleet's runtime that sleeps [`PROBE_PERIOD`] and notes how late it
//!   woke: what node tasks suffer), and [`SecondProbe`], which turns them into
//!   one second's figures.
//!
//! The figures are published in [`HarnessGauge`] so the watcher's harness row
//! shows the recorder's figure (as it does for fds), not one of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A second in which the harness used (or used and waited for) this share of
/// its usable cores or more is saturated.
pub const CPU_SATURATED_PERCENT: f64 = 90.0;
/// A second in which a timer woke more than this late is saturated.
pub const TIMER_LAG_SATURATED_MS: f64 = 100.0;
/// A run whose saturated seconds are more than this share of it is saturated.
pub const SATURATED_RUN_PERCENT: f64 = 5.0;
/// How long the timer-lag probe sleeps each time.
pub const PROBE_PERIOD: Duration = Duration::from_millis(50);

/// One second of the harness.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    /// CPU used, percent of the usable cores.
    pub cpu_percent: Option<f64>,
    /// Time its threads were ready to run but waited for a CPU, percent of
    /// the usable cores (threads waiting together add up).
    pub cpu_wait_percent: Option<f64>,
    /// How late a timer on the fleet's runtime woke, at worst, ms.
    pub timer_lag_ms: Option<f64>,
}

impl Second {
    /// Whether the second was saturated; an unknown figure never makes it so.
    pub fn saturated(&self) -> bool {
        let demand = match (self.cpu_percent, self.cpu_wait_percent) {
            (None, None) => None,
            (used, waited) => Some(used.unwrap_or(0.0) + waited.unwrap_or(0.0)),
        };
        demand.is_some_and(|d| d >= CPU_SATURATED_PERCENT)
            || self
                .timer_lag_ms
                .is_some_and(|l| l > TIMER_LAG_SATURATED_MS)
    }

    fn measured(&self) -> bool {
        self.cpu_percent.is_some() || self.cpu_wait_percent.is_some() || self.timer_lag_ms.is_some()
    }
}

/// The run's verdict over its seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Seconds with at least one figure.
    pub measured_seconds: u64,
    pub saturated_seconds: u64,
    /// Saturated seconds are more than [`SATURATED_RUN_PERCENT`] of the measured ones.
    pub saturated: bool,
    /// The busiest second, percent of the usable cores.
    pub cpu_peak_percent: Option<f64>,
    /// The second with the most waiting for a CPU, percent of the usable cores.
    pub cpu_wait_peak_percent: Option<f64>,
    pub timer_lag_max_ms: Option<f64>,
}

/// The verdict over the run's seconds.
pub fn verdict(seconds: impl IntoIterator<Item = Second>) -> Verdict {
    let mut v = Verdict {
        measured_seconds: 0,
        saturated_seconds: 0,
        saturated: false,
        cpu_peak_percent: None,
        cpu_wait_peak_percent: None,
        timer_lag_max_ms: None,
    };
    let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    for second in seconds.into_iter().filter(Second::measured) {
        v.measured_seconds += 1;
        v.saturated_seconds += u64::from(second.saturated());
        v.cpu_peak_percent = max(v.cpu_peak_percent, second.cpu_percent);
        v.cpu_wait_peak_percent = max(v.cpu_wait_peak_percent, second.cpu_wait_percent);
        v.timer_lag_max_ms = max(v.timer_lag_max_ms, second.timer_lag_ms);
    }
    v.saturated = v.saturated_seconds as f64 * 100.0
        > SATURATED_RUN_PERCENT * v.measured_seconds as f64
        && v.saturated_seconds > 0;
    v
}

/// CPU time `used` over `wall` time, in percent of `usable` cores, to 0.1;
/// `None` when there is no time to divide by.
pub fn cpu_percent(used: Duration, wall: Duration, usable: f64) -> Option<f64> {
    let wall = wall.as_secs_f64();
    if wall < 1e-3 || usable <= 0.0 {
        return None;
    }
    Some(round1(used.as_secs_f64() / wall / usable * 100.0))
}

/// A share of `usable` cores as percent of one core (the unit of the
/// watched processes' `cpu_pct`), to 0.1.
pub fn one_core_percent(percent_of_usable: f64, usable: f64) -> f64 {
    round1(percent_of_usable * usable)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The cores this process may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cores {
    /// The fewer of `affinity` and `quota`.
    pub usable: f64,
    /// CPUs in the process's affinity mask (`taskset`, cpuset).
    pub affinity: u32,
    /// The cgroup CPU quota in cores (`cpu.max`, or `cpu.cfs_quota_us` /
    /// `cpu.cfs_period_us`), the lowest on the path to the root; `None` when unlimited.
    pub quota: Option<f64>,
}

impl Cores {
    pub fn new(affinity: u32, quota: Option<f64>) -> Cores {
        let affinity = affinity.max(1);
        let usable = quota.map_or(affinity as f64, |q| q.min(affinity as f64));
        Cores {
            usable,
            affinity,
            quota,
        }
    }
}

/// Cores of a cgroup v2 `cpu.max` (`"150000 100000"` is 1.5; `"max 100000"` is none).
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut f = text.split_whitespace();
    let quota: f64 = f.next()?.parse().ok()?;
    let period: f64 = f.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Cores of a cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (`-1` is none).
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Where a CPU quota may be set for this process, from `/proc/self/cgroup`
/// (`0::/path` for v2, `N:cpu,cpuacct:/path` for v1): the process's cgroup
/// folder under each mount point and every folder above it, since a parent's
/// quota limits its children too. In a container the path is often `/`.
pub fn quota_dirs(proc_self_cgroup: &str, root: &Path) -> Vec<(PathBuf, bool)> {
    let mut dirs = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mounts: Vec<(PathBuf, bool)> = if controllers.is_empty() {
            vec![(root.to_path_buf(), true), (root.join("unified"), true)]
        } else if controllers.split(',').any(|c| c == "cpu") {
            ["cpu", "cpu,cpuacct", "cpuacct,cpu"]
                .iter()
                .map(|m| (root.join(m), false))
                .collect()
        } else {
            continue;
        };
        for (mount, v2) in mounts {
            let mut dir = mount.join(path.trim_start_matches('/'));
            loop {
                dirs.push((dir.clone(), v2));
                if dir == mount || !dir.pop() {
                    break;
                }
            }
        }
    }
    dirs
}

/// The cores this process may use now: its affinity mask, and the lowest
/// cgroup quota found on its path.
pub fn usable_cores() -> Cores {
    let affinity = rustix::thread::sched_getaffinity(None)
        .map(|set| set.count())
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let quota = quota_dirs(&cgroup, Path::new("/sys/fs/cgroup"))
        .iter()
        .filter_map(|(dir, v2)| {
            if *v2 {
                parse_cpu_max(&read(dir, "cpu.max")?)
            } else {
                parse_cfs(
                    &read(dir, "cpu.cfs_quota_us")?,
                    &read(dir, "cpu.cfs_period_us")?,
                )
            }
        })
        .reduce(f64::min);
    Cores::new(affinity, quota)
}

/// CPU time this process has used, every thread, user and system.
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The run-queue wait of a thread, ns: the second field of
/// `/proc/self/task/TID/schedstat` (time on a CPU, time waiting for one,
/// time slices).
pub fn parse_schedstat_wait(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The threads' run-queue wait since the last look, summed: per thread the
/// growth of its counter; a thread not seen before counts whole (it started
/// since); a thread gone takes its last stretch with it (at most a second).
#[derive(Debug, Default)]
pub struct RunQueueWait {
    last: HashMap<u32, u64>,
}

impl RunQueueWait {
    /// Folds in the counters read now, `(thread id, wait ns)`; returns the
    /// wait since the last call.
    pub fn advance(&mut self, now: &[(u32, u64)]) -> Duration {
        let mut sum = 0u64;
        for (tid, wait) in now {
            let before = self.last.get(tid).copied().unwrap_or(0);
            sum = sum.saturating_add(wait.saturating_sub(before));
        }
        self.last = now.iter().copied().collect();
        Duration::from_nanos(sum)
    }

    /// Every thread's counter now; `None` where the kernel keeps none
    /// (no `/proc`, or no `schedstat`).
    pub fn read() -> Option<Vec<(u32, u64)>> {
        let counters: Vec<(u32, u64)> = std::fs::read_dir("/proc/self/task")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let tid: u32 = e.file_name().to_str()?.parse().ok()?;
                let text = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
                Some((tid, parse_schedstat_wait(&text)?))
            })
            .collect();
        (!counters.is_empty()).then_some(counters)
    }
}

/// What "not waiting" is in [`TimerLag`]'s `due`.
const NOT_WAITING: u64 = u64::MAX;

/// How late the probe's timers woke: the worst lag since the last look, and
/// the wake-up it is waiting for (so a timer that has not fired at all by
/// the end of a second counts too). Microseconds since `base`.
#[derive(Debug)]
pub struct TimerLag {
    base: Instant,
    worst_us: AtomicU64,
    due_us: AtomicU64,
}

impl TimerLag {
    /// Expects the probe's first wake-up [`PROBE_PERIOD`] from now: spawn
    /// [`TimerLag::probe`] at once, so a runtime too busy to start it at all
    /// shows as lag too.
    pub fn new() -> Arc<TimerLag> {
        Arc::new(TimerLag {
            base: Instant::now(),
            worst_us: AtomicU64::new(0),
            due_us: AtomicU64::new(PROBE_PERIOD.as_micros() as u64),
        })
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// The probe: sleeps [`PROBE_PERIOD`] on the runtime it is spawned on, for
    /// ever, noting how late each sleep ended. Spawn it on the fleet's runtime.
    pub async fn probe(self: Arc<Self>) {
        loop {
            let due = Instant::now() + PROBE_PERIOD;
            self.due_us.store(self.micros(due), Ordering::Relaxed);
            tokio::time::sleep_until(due.into()).await;
            let lag = Instant::now().saturating_duration_since(due);
            self.worst_us
                .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// The worst lag since the last call, in ms (to 0.1): the latest wake-up,
    /// or the one still awaited when it is overdue at `now`.
    pub fn take(&self, now: Instant) -> f64 {
        let woke = self.worst_us.swap(0, Ordering::Relaxed);
        let due = self.due_us.load(Ordering::Relaxed);
        let overdue = if due == NOT_WAITING {
            0
        } else {
            self.micros(now).saturating_sub(due)
        };
        round1(woke.max(overdue) as f64 / 1000.0)
    }
}

/// One second of the harness, as [`SecondProbe::close`] measures it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HarnessSecond {
    pub figures: Second,
    /// CPU seconds used since the probe started.
    pub cpu_seconds: f64,
}

/// The per-second measurement, run by the recorder's sampler thread.
#[derive(Debug)]
pub struct SecondProbe {
    pub cores: Cores,
    lag: Arc<TimerLag>,
    gauge: Arc<HarnessGauge>,
    wait: RunQueueWait,
    first_cpu: Duration,
    last: (Duration, Instant),
}

impl SecondProbe {
    /// Starts counting CPU from now.
    pub fn start(cores: Cores, lag: Arc<TimerLag>, gauge: Arc<HarnessGauge>) -> SecondProbe {
        let cpu = process_cpu_time();
        let mut wait = RunQueueWait::default();
        if let Some(counters) = RunQueueWait::read() {
            wait.advance(&counters);
        }
        SecondProbe {
            cores,
            lag,
            gauge,
            wait,
            first_cpu: cpu,
            last: (cpu, Instant::now()),
        }
    }

    /// Closes the second that ends now, and publishes it in the gauge.
    pub fn close(&mut self) -> HarnessSecond {
        let (cpu, now) = (process_cpu_time(), Instant::now());
        let (last_cpu, last_at) = std::mem::replace(&mut self.last, (cpu, now));
        let wall = now.saturating_duration_since(last_at);
        let waited = RunQueueWait::read().map(|counters| self.wait.advance(&counters));
        let second = HarnessSecond {
            figures: Second {
                cpu_percent: cpu_percent(cpu.saturating_sub(last_cpu), wall, self.cores.usable),
                cpu_wait_percent: waited.and_then(|w| cpu_percent(w, wall, self.cores.usable)),
                timer_lag_ms: Some(self.lag.take(now)),
            },
            cpu_seconds: cpu.saturating_sub(self.first_cpu).as_secs_f64(),
        };
        self.gauge.set(&second, self.cores.usable);
        second
    }
}

/// The last closed second's CPU (percent of one core, as the watcher shows
/// processes) and the CPU seconds so far, for the watcher's harness row.
#[derive(Debug)]
pub struct HarnessGauge {
    /// Tenths of a percent of one core; [`NOT_WAITING`] before the first second.
    last_tenths: AtomicU64,
    cpu_us: AtomicU64,
}

impl Default for HarnessGauge {
    fn default() -> Self {
        HarnessGauge {
            last_tenths: AtomicU64::new(NOT_WAITING),
            cpu_us: AtomicU64::new(NOT_WAITING),
        }
    }
}

impl HarnessGauge {
    fn set(&self, s: &HarnessSecond, usable: f64) {
        if let Some(c) = s.figures.cpu_percent {
            let tenths = (one_core_percent(c, usable) * 10.0).round() as u64;
            self.last_tenths.store(tenths, Ordering::Relaxed);
        }
        let us = (s.cpu_seconds * 1e6).round() as u64;
        self.cpu_us
            .store(us.min(NOT_WAITING - 1), Ordering::Relaxed);
    }

    /// The last closed second's CPU, percent of one core.
    pub fn cpu_pct(&self) -> Option<f64> {
        let t = self.last_tenths.load(Ordering::Relaxed);
        (t != NOT_WAITING).then(|| t as f64 / 10.0)
    }

    /// CPU seconds used since the recorder started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let us = self.cpu_us.load(Ordering::Relaxed);
        (us != NOT_WAITING).then(|| us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn second(cpu: Option<f64>, wait: Option<f64>, lag: Option<f64>) -> Second {
        Second {
            cpu_percent: cpu,
            cpu_wait_percent: wait,
            timer_lag_ms: lag,
        }
    }

    fn saturated(cpu: Option<f64>, wait: Option<f64>, lag: Option<f64>) -> bool {
        second(cpu, wait, lag).saturated()
    }

    #[test]
    fn a_second_is_saturated_by_cpu_from_90_percent_or_by_lag_over_100_ms() {
        assert!(!saturated(Some(89.9), Some(0.0), Some(100.0)));
        assert!(saturated(Some(90.0), Some(0.0), Some(0.0)));
        assert!(saturated(Some(12.0), Some(1.0), Some(100.1)));
        assert!(saturated(None, None, Some(250.0)));
        assert!(saturated(Some(95.0), None, None));
        // CPU used and CPU waited for (other processes had the cores) add up.
        assert!(saturated(Some(60.0), Some(30.0), Some(40.0)));
        assert!(!saturated(Some(60.0), Some(29.9), Some(40.0)));
        assert!(saturated(None, Some(120.0), None));
        // Unknown is not saturated (and not 0 either: it is simply not counted).
        assert!(!saturated(None, None, None));
    }

    #[test]
    fn the_run_is_saturated_when_more_than_5_percent_of_its_seconds_are() {
        let calm = second(Some(40.0), Some(1.0), Some(2.0));
        let busy = second(Some(97.0), Some(0.5), Some(3.0));
        let late = second(Some(30.0), Some(4.0), Some(180.0));
        // 1 of 20 seconds is exactly 5 %: not more than 5 %.
        let mut seconds = vec![calm; 19];
        seconds.push(busy);
        let v = verdict(seconds.clone());
        assert_eq!((v.measured_seconds, v.saturated_seconds), (20, 1));
        assert!(!v.saturated);
        assert_eq!(v.cpu_peak_percent, Some(97.0));
        assert_eq!(v.cpu_wait_peak_percent, Some(1.0));
        assert_eq!(v.timer_lag_max_ms, Some(3.0));
        // 2 of 21: 9.5 %.
        seconds.push(late);
        let v = verdict(seconds);
        assert_eq!((v.measured_seconds, v.saturated_seconds), (21, 2));
        assert!(v.saturated);
        assert_eq!(v.timer_lag_max_ms, Some(180.0));
        // A run of one saturated second is saturated.
        assert!(verdict([busy]).saturated);
    }

    #[test]
    fn seconds_without_figures_are_not_measured_and_no_data_is_no_verdict() {
        let v = verdict([
            second(None, None, None),
            second(Some(10.0), None, None),
            second(None, None, Some(1.0)),
        ]);
        assert_eq!((v.measured_seconds, v.saturated_seconds), (2, 0));
        assert_eq!(v.cpu_peak_percent, Some(10.0));
        let none = verdict(std::iter::empty());
        assert_eq!(none.measured_seconds, 0);
        assert!(!none.saturated);
        assert_eq!((none.cpu_peak_percent, none.timer_lag_max_ms), (None, None));
        assert_eq!(none.cpu_wait_peak_percent, None);
    }

    #[test]
    fn cpu_is_a_share_of_the_usable_cores() {
        // 1.5 s of CPU in one second on 2 cores: 75 %; on a 1.5-core quota: 100 %.
        assert_eq!(cpu_percent(ms(1_500), ms(1_000), 2.0), Some(75.0));
        assert_eq!(cpu_percent(ms(1_500), ms(1_000), 1.5), Some(100.0));
        // A partial last second is divided by its own length.
        assert_eq!(cpu_percent(ms(200), ms(250), 1.0), Some(80.0));
        assert_eq!(cpu_percent(ms(10), Duration::ZERO, 2.0), None);
        assert_eq!(one_core_percent(75.0, 2.0), 150.0);
    }

    #[test]
    fn run_queue_wait_is_the_growth_of_each_threads_counter() {
        assert_eq!(parse_schedstat_wait("123 4567 89\n"), Some(4567));
        assert_eq!(parse_schedstat_wait("123"), None);
        let mut w = RunQueueWait::default();
        w.advance(&[(1, 1_000), (2, 5_000)]);
        // Thread 1 waited 2 µs more, thread 2 is gone, thread 3 is new and waited 700 ns.
        assert_eq!(
            w.advance(&[(1, 3_000), (3, 700)]),
            Duration::from_nanos(2_700)
        );
        // A counter never goes back; a reused id starting lower counts as nothing.
        assert_eq!(w.advance(&[(1, 2_000), (3, 700)]), Duration::ZERO);
        // This kernel keeps the counters (CONFIG_SCHED_INFO, on in the usual distributions).
        let now = RunQueueWait::read().expect("schedstat of this process's threads");
        assert!(now.iter().any(|(tid, _)| *tid == std::process::id()));
    }

    #[test]
    fn usable_cores_are_the_fewer_of_affinity_and_quota() {
        assert_eq!(Cores::new(8, Some(1.5)).usable, 1.5);
        assert_eq!(Cores::new(2, Some(4.0)).usable, 2.0);
        assert_eq!(Cores::new(2, None).usable, 2.0);
        assert_eq!(Cores::new(0, None).usable, 1.0);
    }

    #[test]
    fn cgroup_quotas_parse() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs("200000\n", "100000\n"), Some(2.0));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("x", "100000"), None);
    }

    #[test]
    fn quota_folders_are_the_cgroup_and_its_parents() {
        let root = Path::new("/sys/fs/cgroup");
        let v2 = quota_dirs("0::/user.slice/run-1.scope\n", root);
        let paths: Vec<&str> = v2.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(
            &paths[..3],
            [
                "/sys/fs/cgroup/user.slice/run-1.scope",
                "/sys/fs/cgroup/user.slice",
                "/sys/fs/cgroup"
            ]
        );
        assert!(v2.iter().all(|(_, v2)| *v2));
        // v1: only the cpu controller's line, under its possible mount points.
        let v1 = quota_dirs("4:memory:/x\n2:cpuacct:/\n1:cpu:/docker/abc\n", root);
        assert_eq!(v1[0].0, Path::new("/sys/fs/cgroup/cpu/docker/abc"));
        assert!(v1.contains(&(PathBuf::from("/sys/fs/cgroup/cpu"), false)));
        assert!(!v1.iter().any(|(p, _)| p.ends_with("x")));
        assert!(quota_dirs("garbage", root).is_empty());
    }

    #[test]
    fn this_process_has_cores_and_a_cpu_clock() {
        let cores = usable_cores();
        assert!(cores.usable > 0.0 && cores.affinity >= 1, "{cores:?}");
        let before = process_cpu_time();
        // Burn a little CPU: the clock moves forward.
        let mut x = 0u64;
        while process_cpu_time() == before {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time() > before);
    }

    /// A runtime whose only thread is blocked cannot run the probe: the
    /// wake-up it awaits is overdue, and the lag shows before it fires.
    #[test]
    fn a_blocked_runtime_shows_as_timer_lag() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // A probe that never got to run: its first wake-up is overdue all the same.
        let never = TimerLag::new();
        let later = Instant::now() + PROBE_PERIOD * 5;
        assert!(never.take(later) >= 4.0 * PROBE_PERIOD.as_millis() as f64);

        let lag = TimerLag::new();
        runtime.block_on(async {
            tokio::spawn(lag.clone().probe());
            // Let the probe run a few times on a free runtime.
            for _ in 0..3 {
                tokio::time::sleep(PROBE_PERIOD).await;
            }
            lag.take(Instant::now());
            // Now block the runtime's thread (the sleep is the load, not a wait):
            // the probe is due and cannot wake.
            std::thread::sleep(PROBE_PERIOD * 2 + ms(TIMER_LAG_SATURATED_MS as u64));
            let overdue = lag.take(Instant::now());
            assert!(overdue > TIMER_LAG_SATURATED_MS, "{overdue}");
        });
    }

    #[test]
    fn the_gauge_is_empty_until_a_second_closes() {
        let g = HarnessGauge::default();
        assert_eq!((g.cpu_pct(), g.cpu_seconds()), (None, None));
        g.set(
            &HarnessSecond {
                figures: second(Some(45.5), Some(3.0), Some(1.0)),
                cpu_seconds: 3.25,
            },
            2.0,
        );
        assert_eq!((g.cpu_pct(), g.cpu_seconds()), (Some(91.0), Some(3.25)));
    }
}
