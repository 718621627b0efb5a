//! Measuring the harness at the edges: the process CPU clock, its threads'
//! run-queue wait, the timer-lag probe on the fleet's runtime, the
//! per-second [`SecondProbe`] the recorder's sampler runs, and the gauge
//! through which the watcher's harness row reads the same figures.

use super::{cpu_percent, one_core_percent, round1, Cores, Second, PROBE_PERIOD};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    use super::super::{usable_cores, TIMER_LAG_SATURATED_MS};
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
