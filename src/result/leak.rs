//! Is a watched process leaking? A robust trend of its RSS, fds and threads
//! over the run, and the rule that calls a leak (docs/soak.md).
//!
//! The trend is the Theil-Sen slope (the median of the slopes between every
//! pair of points), which a spike, a restart of a cache or a GC sawtooth
//! moves far less than a least-squares line, with Sen's 95 % confidence
//! interval (the ranks of the pairwise slopes from the variance of Kendall's
//! S, normal approximation, ties corrected). Pure, so it is tested on
//! synthetic series with a known rate.
//!
//! What is fitted: the points after a warm-up (the first [`WARMUP_SHARE`] of
//! the series' time span: pools, caches and the allocator fill then), at their
//! own times. A series merged when full keeps each point's first second and
//! its peak; all its points then span the same number of seconds, so the
//! peak's lead over the mean is the same in every point and the slope is not
//! biased. Over [`MAX_FIT_POINTS`] points, every k-th one is kept (the same
//! points every time) so the pairs stay few.
//!
//! A leak is suspected when the interval lies above zero **and** the fitted
//! growth over the judged span is material: at least a per-metric floor
//! ([`Metric::floor`]: 1 MiB, 2 fds, 2 threads) and more than the spread of the
//! points around the line (their 5th to 95th percentile). The second part keeps
//! a steady process with noise, or with a sawtooth of allocations and frees,
//! from being called a leak: its line's small tilt stays inside its own swing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::watched::{WatchedKind, WatchedPoint, WatchedSummary};

/// The first share of a series' time span left out of the fit.
pub const WARMUP_SHARE: f64 = 0.2;
/// Fewest points after the warm-up for a verdict; fewer give none ("no data").
pub const MIN_POINTS: usize = 10;
/// Most points fitted (pairs grow with the square).
pub const MAX_FIT_POINTS: usize = 600;
/// z of a two-sided 95 % interval.
const Z95: f64 = 1.959964;

/// One metric's trend over the judged part of a run (`targets[].trend.<metric>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trend {
    /// Theil-Sen slope, units (bytes, fds, threads) per hour.
    pub slope_per_hour: f64,
    /// Lower bound of its 95 % interval, per hour.
    pub low_per_hour: f64,
    /// Upper bound of its 95 % interval, per hour.
    pub high_per_hour: f64,
    /// Points fitted.
    pub points: u64,
    /// Seconds into the run of the first point fitted (the warm-up ends there).
    pub from_s: u64,
    /// Seconds into the run of the last point fitted.
    #[serde(default)]
    pub to_s: u64,
    /// The interval lies above zero and the growth over `from_s`..`to_s` is material.
    pub leak_suspected: bool,
}

impl Trend {
    /// `+12.30 MiB/h (95 %: 10.10 .. 14.20)` in the metric's unit, for the console and the report.
    pub fn describe(&self, metric: Metric) -> String {
        let v = |x: f64| match metric {
            Metric::Rss if x < 0.0 => format!("-{}", crate::human::bytes(-x)),
            Metric::Rss => crate::human::bytes(x),
            Metric::Fds | Metric::Threads => crate::human::num(x),
        };
        let sign = if self.slope_per_hour > 0.0 { "+" } else { "" };
        format!(
            "{sign}{}/h (95 %: {} .. {})",
            v(self.slope_per_hour),
            v(self.low_per_hour),
            v(self.high_per_hour)
        )
    }
}

/// The trends of a watched process (`targets[].trend`); a metric without
/// enough points is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trends {
    /// Resident memory, bytes per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss: Option<Trend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<Trend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<Trend>,
}

impl Trends {
    /// `None` when no metric had enough points; else whether any is suspected.
    pub fn leak_suspected(&self) -> Option<bool> {
        let judged = [&self.rss, &self.fds, &self.threads];
        let judged: Vec<&Trend> = judged.into_iter().flatten().collect();
        (!judged.is_empty()).then(|| judged.iter().any(|t| t.leak_suspected))
    }

    /// The suspected metrics with their trend, by name.
    pub fn suspected(&self) -> Vec<(Metric, &Trend)> {
        Metric::ALL
            .iter()
            .filter_map(|&m| self.get(m).filter(|t| t.leak_suspected).map(|t| (m, t)))
            .collect()
    }

    pub fn get(&self, m: Metric) -> Option<&Trend> {
        match m {
            Metric::Rss => self.rss.as_ref(),
            Metric::Fds => self.fds.as_ref(),
            Metric::Threads => self.threads.as_ref(),
        }
    }
}

/// A metric a leak is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Rss,
    Fds,
    Threads,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Rss, Metric::Fds, Metric::Threads];

    /// Its key in result.json.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Rss => "rss",
            Metric::Fds => "fds",
            Metric::Threads => "threads",
        }
    }

    /// Least growth over the judged span that counts as a leak: below it a
    /// trend is too small to act on, however sure.
    pub fn floor(self) -> f64 {
        match self {
            Metric::Rss => 1024.0 * 1024.0,
            Metric::Fds | Metric::Threads => 2.0,
        }
    }

    fn of(self, p: &WatchedPoint) -> Option<u64> {
        match self {
            Metric::Rss => p.rss,
            Metric::Fds => p.fds,
            Metric::Threads => p.threads,
        }
    }
}

/// Fills `trend` and `leak_suspected` of every watched process and of the
/// harness (endpoints have no RSS of their own to judge).
pub fn judge_all(watched: &mut [WatchedSummary]) {
    for w in watched
        .iter_mut()
        .filter(|w| matches!(w.kind, WatchedKind::Process | WatchedKind::Harness))
    {
        let trends = Trends {
            rss: fit_metric(&w.series, Metric::Rss),
            fds: fit_metric(&w.series, Metric::Fds),
            threads: fit_metric(&w.series, Metric::Threads),
        };
        w.leak_suspected = trends.leak_suspected();
        w.trend = w.leak_suspected.is_some().then_some(trends);
    }
}

/// One metric's trend over a series, or `None` with too few points after the warm-up.
pub fn fit_metric(series: &[WatchedPoint], metric: Metric) -> Option<Trend> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|p| Some((p.t as f64, metric.of(p)? as f64)))
        .collect();
    fit(&points, metric.floor())
}

/// The trend of `(seconds, value)` points in time order; `floor` as in [`Metric::floor`].
pub fn fit(points: &[(f64, f64)], floor: f64) -> Option<Trend> {
    let (first, last) = (points.first()?.0, points.last()?.0);
    let warm_until = first + (last - first) * WARMUP_SHARE;
    let judged: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(t, _)| t >= warm_until)
        .collect();
    let judged = thin(judged, MAX_FIT_POINTS);
    if judged.len() < MIN_POINTS {
        return None;
    }
    let (slope, low, high) = theil_sen(&judged)?;
    let from = judged.first()?.0;
    let to = judged.last()?.0;
    let growth = slope * (to - from);
    let material = growth >= floor && growth > residual_spread(&judged, slope);
    Some(Trend {
        slope_per_hour: per_hour(slope),
        low_per_hour: per_hour(low),
        high_per_hour: per_hour(high),
        points: judged.len() as u64,
        from_s: from as u64,
        to_s: to as u64,
        leak_suspected: low > 0.0 && material,
    })
}

/// Per second to per hour, rounded to a thousandth (the JSON stays readable).
fn per_hour(per_second: f64) -> f64 {
    (per_second * 3600.0 * 1000.0).round() / 1000.0
}

/// Every k-th point so at most `most` remain, always the same ones.
fn thin(points: Vec<(f64, f64)>, most: usize) -> Vec<(f64, f64)> {
    if points.len() <= most {
        return points;
    }
    let every = points.len().div_ceil(most);
    points.into_iter().step_by(every).collect()
}

/// Theil-Sen slope with Sen's 95 % interval: `(slope, low, high)` per second;
/// `None` when no two points differ in time.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let big_n = slopes.len();
    let slope = median_sorted(&slopes);
    // Sen (1968): the interval's ends are the slopes of rank (N -+ C) / 2,
    // C = z * sqrt(Var(S)), Var(S) Kendall's with ties in the values.
    let c = Z95 * kendall_s_variance(points).sqrt();
    let lower_rank = ((big_n as f64 - c) / 2.0).floor();
    let upper_rank = ((big_n as f64 + c) / 2.0).ceil();
    let at = |rank: f64| slopes[(rank.max(1.0) as usize).min(big_n) - 1];
    Some((slope, at(lower_rank), at(upper_rank + 1.0)))
}

/// Var(S) of Kendall's S under no trend, corrected for tied values.
fn kendall_s_variance(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    values.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    for group in values.chunk_by(|a, b| a == b) {
        let t = group.len() as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
    }
    (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How far the points swing around the line: the 5th to 95th percentile of
/// their residuals (the line's intercept does not matter for a spread).
fn residual_spread(points: &[(f64, f64)], slope: f64) -> f64 {
    let mut r: Vec<f64> = points.iter().map(|&(t, y)| y - slope * t).collect();
    r.sort_by(f64::total_cmp);
    let at = |q: f64| r[((r.len() - 1) as f64 * q).round() as usize];
    at(0.95) - at(0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    /// Deterministic noise in [-1, 1).
    fn noise(i: u64) -> f64 {
        crate::random::unit(crate::random::splitmix64(i)) * 2.0 - 1.0
    }

    fn series(n: u64, f: impl Fn(u64) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|t| (t as f64, f(t))).collect()
    }

    #[test]
    fn linear_growth_with_noise_is_flagged_at_its_rate() {
        // 2 MiB/s on 60 MiB, +-3 MiB of noise, 10 minutes.
        let rate = 2.0 * MIB;
        let s = series(600, |t| 60.0 * MIB + rate * t as f64 + 3.0 * MIB * noise(t));
        let trend = fit(&s, Metric::Rss.floor()).expect("enough points");
        let true_per_hour = rate * 3600.0;
        assert!(trend.leak_suspected, "{trend:?}");
        assert!(
            (trend.slope_per_hour / true_per_hour - 1.0).abs() < 0.02,
            "{trend:?}"
        );
        assert!(trend.low_per_hour <= true_per_hour && true_per_hour <= trend.high_per_hour);
        assert!(trend.low_per_hour > 0.0);
        assert_eq!((trend.from_s, trend.to_s, trend.points), (120, 599, 480));
    }

    #[test]
    fn one_fd_a_minute_is_flagged_and_a_steady_count_is_not() {
        let leak = series(900, |t| (20 + t / 60) as f64);
        let trend = fit(&leak, Metric::Fds.floor()).unwrap();
        assert!(trend.leak_suspected, "{trend:?}");
        assert!((trend.slope_per_hour - 60.0).abs() < 3.0, "{trend:?}");
        // Connections come and go around a steady level.
        let steady = series(900, |t| (20 + (t * 7919) % 5) as f64);
        let trend = fit(&steady, Metric::Fds.floor()).unwrap();
        assert!(!trend.leak_suspected, "{trend:?}");
        // An unchanging count: every slope 0, the interval [0, 0].
        let flat = series(900, |_| 12.0);
        let trend = fit(&flat, Metric::Threads.floor()).unwrap();
        assert_eq!((trend.slope_per_hour, trend.low_per_hour), (0.0, 0.0));
        assert!(!trend.leak_suspected);
    }

    #[test]
    fn flat_with_noise_is_not_flagged() {
        for seed in 0..20u64 {
            let s = series(600, |t| 200.0 * MIB + 4.0 * MIB * noise(t + seed * 1000));
            let trend = fit(&s, Metric::Rss.floor()).unwrap();
            assert!(!trend.leak_suspected, "seed {seed}: {trend:?}");
            assert!(trend.low_per_hour <= 0.0 || trend.slope_per_hour.abs() < 10.0 * MIB);
        }
    }

    #[test]
    fn a_gc_sawtooth_is_not_flagged() {
        // The heap climbs 40 MiB over 45 s, is collected, climbs again, for 15 minutes.
        let s = series(900, |t| 100.0 * MIB + 40.0 * MIB * (t % 45) as f64 / 45.0);
        let trend = fit(&s, Metric::Rss.floor()).unwrap();
        assert!(!trend.leak_suspected, "{trend:?}");
        // The same sawtooth on a floor rising 20 MiB a minute is a leak.
        let s = series(900, |t| {
            100.0 * MIB + 40.0 * MIB * (t % 45) as f64 / 45.0 + 20.0 * MIB * t as f64 / 60.0
        });
        let trend = fit(&s, Metric::Rss.floor()).unwrap();
        assert!(trend.leak_suspected, "{trend:?}");
        let true_per_hour = 20.0 * MIB * 60.0;
        assert!(
            trend.low_per_hour <= true_per_hour * 1.1 && trend.high_per_hour >= true_per_hour * 0.9
        );
    }

    #[test]
    fn growth_below_the_floor_is_not_a_leak() {
        // A sure but tiny climb: 100 KiB over the run.
        let s = series(600, |t| 50.0 * MIB + 100.0 * 1024.0 * t as f64 / 600.0);
        let trend = fit(&s, Metric::Rss.floor()).unwrap();
        assert!(trend.low_per_hour > 0.0);
        assert!(!trend.leak_suspected, "{trend:?}");
    }

    #[test]
    fn a_trend_reads_in_its_unit() {
        let t = Trend {
            slope_per_hour: 7200.0 * MIB,
            low_per_hour: 7000.0 * MIB,
            high_per_hour: 7400.0 * MIB,
            points: 40,
            from_s: 10,
            to_s: 50,
            leak_suspected: true,
        };
        assert_eq!(
            t.describe(Metric::Rss),
            "+7.03 GiB/h (95 %: 6.84 GiB .. 7.23 GiB)"
        );
        let t = Trend {
            slope_per_hour: -3.0,
            low_per_hour: -5.5,
            high_per_hour: 0.0,
            ..t
        };
        assert_eq!(t.describe(Metric::Fds), "-3/h (95 %: -5.50 .. 0)");
    }

    #[test]
    fn too_few_points_give_no_verdict() {
        let s = series(9, |t| t as f64 * MIB);
        assert_eq!(fit(&s, Metric::Rss.floor()), None);
        assert_eq!(fit(&[], 1.0), None);
        let mut w = WatchedSummary::empty("x[1]".into(), WatchedKind::Process, Some(1), None);
        w.series = (0..5)
            .map(|t| WatchedPoint {
                t,
                rss: Some(t * 1000),
                ..Default::default()
            })
            .collect();
        judge_all(std::slice::from_mut(&mut w));
        assert_eq!((w.leak_suspected, w.trend), (None, None));
    }

    #[test]
    fn merged_points_keep_the_rate() {
        // 1 fd every 10 s over two hours, sampled per second then merged to
        // 8-second points keeping each one's first second and its peak.
        let per_second: Vec<(f64, f64)> = series(7200, |t| (100 + t / 10) as f64);
        let merged: Vec<(f64, f64)> = per_second
            .chunks(8)
            .map(|c| (c[0].0, c.iter().map(|p| p.1).fold(f64::MIN, f64::max)))
            .collect();
        let trend = fit(&merged, Metric::Fds.floor()).unwrap();
        assert!((trend.slope_per_hour - 360.0).abs() < 5.0, "{trend:?}");
        assert!(trend.points <= MAX_FIT_POINTS as u64);
        assert!(trend.leak_suspected);
    }

    #[test]
    fn a_target_is_judged_on_its_worst_metric_and_endpoints_not_at_all() {
        let mut proc = WatchedSummary::empty("d[7]".into(), WatchedKind::Process, Some(7), None);
        proc.series = (0..120)
            .map(|t| WatchedPoint {
                t,
                rss: Some(80 << 20),
                fds: Some(10 + t / 5),
                threads: Some(9),
                ..Default::default()
            })
            .collect();
        let mut endpoint = WatchedSummary::empty("m".into(), WatchedKind::Prometheus, None, None);
        endpoint.series = proc.series.clone();
        let mut all = vec![proc, endpoint];
        judge_all(&mut all);
        let trend = all[0].trend.as_ref().unwrap();
        assert_eq!(all[0].leak_suspected, Some(true));
        assert!(!trend.rss.as_ref().unwrap().leak_suspected);
        assert!(trend.fds.as_ref().unwrap().leak_suspected);
        assert_eq!(trend.suspected().len(), 1);
        assert_eq!((all[1].leak_suspected, &all[1].trend), (None, &None));
    }
}
