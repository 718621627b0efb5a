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
//!
//! This file holds the rule; `cores` finds the usable cores, `probe` measures.

mod cores;
mod probe;

pub use cores::{usable_cores, Cores};
pub use probe::{HarnessGauge, HarnessSecond, SecondProbe, TimerLag};

use std::time::Duration;

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

/// `v` to one decimal, as every harness figure is written.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
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
}
