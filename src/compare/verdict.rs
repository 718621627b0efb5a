//! One verdict per metric: each side's value (pooled over its runs), the
//! change, its 95 % interval, and better / worse / no change / no data.
//!
//! A change is called only when the interval excludes "no change" (ratio 1,
//! difference 0) AND the change exceeds the metric's tolerance; a metric with
//! no interval (one run with too short a time series, or none) is not judged
//! (no change, and the note says why). No data is never a 0: a latency with
//! samples on the baseline and none on the candidate (every pull failed) is a
//! regression.

use super::load::{Run, Side};
use super::metrics::{Direction, MetricDef, Scale, Source};
use super::stats::{self, Compare, Series};
use crate::result::model::decode_histogram;
use hdrhistogram::Histogram;

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Worse beyond the noise and the tolerance: a regression.
    Worse,
    Better,
    NoChange,
    NoData,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Worse => "WORSE",
            Verdict::Better => "better",
            Verdict::NoChange => "no change",
            Verdict::NoData => "no data",
        }
    }
}

/// Fewest seconds or latency intervals (with samples) a side's time series
/// must have for a block bootstrap.
pub const MIN_UNITS: usize = 4;

/// How the interval was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Bootstrap over runs (several on each side).
    Runs,
    /// Block bootstrap over time (one run on a side).
    Blocks,
    /// No interval could be made.
    None,
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    pub def: MetricDef,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `candidate / baseline - 1` for a ratio, `candidate - baseline` for a difference.
    pub change: Option<f64>,
    /// The 95 % interval of the change, in the same terms.
    pub interval: Option<(f64, f64)>,
    pub method: Method,
    pub verdict: Verdict,
    /// Why, when the numbers alone do not say it.
    pub note: String,
}

impl Row {
    pub fn is_regression(&self) -> bool {
        self.verdict == Verdict::Worse
    }
}

fn how(def: &MetricDef) -> Compare {
    match def.scale {
        Scale::Ratio => Compare::Ratio,
        Scale::Difference => Compare::Difference,
    }
}

/// Compares every metric; rows in their list order.
pub fn compare_all(defs: &[MetricDef], baseline: &Side, candidate: &Side) -> Vec<Row> {
    defs.iter().map(|d| judge(d, baseline, candidate)).collect()
}

/// The rows ordered for reading: regressions first, then improvements, then
/// no change, then no data (list order within each).
pub fn ordered(rows: &[Row]) -> Vec<&Row> {
    let mut v: Vec<&Row> = rows.iter().collect();
    v.sort_by_key(|r| r.verdict);
    v
}

/// One metric, both sides.
pub fn judge(def: &MetricDef, baseline: &Side, candidate: &Side) -> Row {
    let b = pooled(&def.source, &baseline.runs);
    let c = pooled(&def.source, &candidate.runs);
    let compare = how(def);
    let (interval, method) = match (b, c) {
        (Some(pb), Some(pc)) => interval(def, baseline, candidate, pb, pc, compare),
        _ => (None, Method::None),
    };
    let (verdict, change, note) = decide(def, b, c, interval);
    Row {
        def: def.clone(),
        baseline: b,
        candidate: c,
        change,
        interval: interval.map(|(lo, hi)| match def.scale {
            Scale::Ratio => (lo - 1.0, hi - 1.0),
            Scale::Difference => (lo, hi),
        }),
        method,
        verdict,
        note,
    }
}

/// The 95 % interval of `compare(candidate, baseline)` (ratio or difference)
/// and how it was found: over runs when both sides have several, else over
/// time; centred on the pooled values.
fn interval(
    def: &MetricDef,
    baseline: &Side,
    candidate: &Side,
    pb: f64,
    pc: f64,
    compare: Compare,
) -> (Option<(f64, f64)>, Method) {
    let point = compare.apply(pb, pc);
    let seed = stats::seed_for(&def.key);
    if baseline.runs.len() >= 2 && candidate.runs.len() >= 2 {
        let vb: Vec<f64> = baseline
            .runs
            .iter()
            .filter_map(|r| run_value(&def.source, r))
            .collect();
        let vc: Vec<f64> = candidate
            .runs
            .iter()
            .filter_map(|r| run_value(&def.source, r))
            .collect();
        let found = stats::runs_interval(&vb, &vc, compare, seed);
        let centre = stats::runs_centre(&vb, &vc, compare);
        return match (found, centre, point) {
            (Some(i), Some(centre), Some(point)) => {
                let (lo, hi) = compare.recentre(i, centre, point);
                // A bootstrap over a handful of runs sees too few distinct resamples
                // and draws its interval too narrow (measured: an A/A of 3 + 3 runs
                // flagged a connection peak of 10, 10, 10 against 10, 12, 13). So a
                // change over runs also needs the sides apart: every candidate run
                // beyond every baseline run. For 3 + 3 runs that is the exact
                // Mann-Whitney test at p = 0.05; with overlapping runs, "no change"
                // stays inside the interval.
                let interval = if separated(&vb, &vc) {
                    (lo, hi)
                } else {
                    let neutral = compare.neutral();
                    (lo.min(neutral), hi.max(neutral))
                };
                (Some(interval), Method::Runs)
            }
            _ => (None, Method::None),
        };
    }
    let (Some((nb, fb)), Some((nc, fc))) = (
        series(&def.source, &baseline.runs),
        series(&def.source, &candidate.runs),
    ) else {
        return (None, Method::None);
    };
    // Fewer units than this and the resamples barely differ: the interval would
    // be the point itself and call every difference significant.
    if nb < MIN_UNITS || nc < MIN_UNITS {
        return (None, Method::None);
    }
    let (sb, sc) = (
        Series {
            units: nb,
            statistic: &*fb,
        },
        Series {
            units: nc,
            statistic: &*fc,
        },
    );
    let found = stats::blocks_interval(&sb, &sc, compare, seed);
    let centre = match (sb.whole(), sc.whole()) {
        (Some(b), Some(c)) => compare.apply(b, c),
        _ => None,
    };
    match (found, centre, point) {
        (Some(i), Some(centre), Some(point)) => {
            (Some(compare.recentre(i, centre, point)), Method::Blocks)
        }
        _ => (None, Method::None),
    }
}

/// Whether every run of one side lies beyond every run of the other.
fn separated(baseline: &[f64], candidate: &[f64]) -> bool {
    let range = |v: &[f64]| {
        v.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(*x), hi.max(*x))
            })
    };
    let ((b_lo, b_hi), (c_lo, c_hi)) = (range(baseline), range(candidate));
    !baseline.is_empty() && !candidate.is_empty() && (c_lo > b_hi || c_hi < b_lo)
}

/// The verdict, the change and a note, from the pooled values and the
/// interval of the comparison (ratio or difference, not yet made a change).
pub fn decide(
    def: &MetricDef,
    baseline: Option<f64>,
    candidate: Option<f64>,
    interval: Option<(f64, f64)>,
) -> (Verdict, Option<f64>, String) {
    let (b, c) = match (baseline, candidate) {
        (None, None) => return (Verdict::NoData, None, "no data on either side".into()),
        (Some(_), None) if def.is_latency() => {
            return (
                Verdict::Worse,
                None,
                "no data on the candidate: no pull completed there".into(),
            )
        }
        (None, Some(_)) if def.is_latency() => {
            return (
                Verdict::Better,
                None,
                "no data on the baseline: no pull completed there".into(),
            )
        }
        (Some(_), None) => return (Verdict::NoData, None, "no data on the candidate".into()),
        (None, Some(_)) => return (Verdict::NoData, None, "no data on the baseline".into()),
        (Some(b), Some(c)) => (b, c),
    };
    let compare = how(def);
    let change = match def.scale {
        Scale::Ratio if b == 0.0 && c == 0.0 => {
            return (Verdict::NoChange, Some(0.0), "0 on both sides".into())
        }
        Scale::Ratio if b <= 0.0 => {
            return (
                Verdict::NoChange,
                None,
                "the baseline is 0: no ratio".into(),
            )
        }
        Scale::Ratio => c / b - 1.0,
        Scale::Difference if b == 0.0 && c == 0.0 => {
            return (Verdict::NoChange, Some(0.0), "0 on both sides".into())
        }
        Scale::Difference => c - b,
    };
    // Positive: the candidate is worse by that much.
    let worse_by = match def.direction {
        Direction::LowerIsBetter => change,
        Direction::HigherIsBetter => -change,
    };
    let neutral = compare.neutral();
    let beyond_noise = |worse: bool| match interval {
        None => false,
        Some((lo, hi)) => {
            let above = lo > neutral;
            let below = hi < neutral;
            match (def.direction, worse) {
                (Direction::LowerIsBetter, true) | (Direction::HigherIsBetter, false) => above,
                _ => below,
            }
        }
    };
    let mut note = String::new();
    if interval.is_none() {
        note = "not judged: no interval".into();
    }
    let verdict = if worse_by > def.tolerance && beyond_noise(true) {
        Verdict::Worse
    } else if -worse_by > def.tolerance && beyond_noise(false) {
        Verdict::Better
    } else {
        if note.is_empty() && worse_by.abs() > def.tolerance {
            note = "within the noise".into();
        }
        Verdict::NoChange
    };
    (verdict, Some(change), note)
}

/// A latency histogram of a run (`None` when absent or empty).
fn histogram(run: &Run, metric: &str) -> Option<Histogram<u64>> {
    let h = decode_histogram(run.doc.histograms.get(metric)?).ok()?;
    (!h.is_empty()).then_some(h)
}

/// Divides by the pulls started; `None` when none started.
fn per_pull(n: f64, started: u64) -> Option<f64> {
    (started > 0).then(|| n / started as f64)
}

/// One run's value of a metric; `None` is no data.
pub fn run_value(source: &Source, run: &Run) -> Option<f64> {
    let d = &run.doc;
    let started = d.pulls.started;
    match source {
        Source::Latency { metric, quantile } => {
            let h = histogram(run, metric)?;
            Some(h.value_at_quantile(*quantile) as f64 / 1000.0)
        }
        Source::Throughput => Some(d.throughput.mean_bytes_per_sec),
        Source::FailureRate => per_pull(d.pulls.failed as f64, started),
        Source::RetryRate => per_pull(d.retries.total as f64, started),
        Source::ErrorRate(class) => {
            per_pull(d.errors.get(class).copied().unwrap_or(0) as f64, started)
        }
        Source::WastedPerPull => per_pull(d.bytes.wasted as f64, started),
        Source::FdPeak => Some(d.fd.client_peak as f64),
        Source::ConnectionsPeak => Some(d.connections.peak as f64),
    }
}

/// A side's value: percentiles of the merged histograms, rates of the summed
/// counts, the mean of the runs for throughput and peaks.
pub fn pooled(source: &Source, runs: &[Run]) -> Option<f64> {
    let started: u64 = runs.iter().map(|r| r.doc.pulls.started).sum();
    let sum = |f: &dyn Fn(&Run) -> u64| runs.iter().map(f).sum::<u64>() as f64;
    match source {
        Source::Latency { metric, quantile } => {
            let mut merged: Option<Histogram<u64>> = None;
            for h in runs.iter().filter_map(|r| histogram(r, metric)) {
                match &mut merged {
                    None => merged = Some(h),
                    Some(m) => m.add(&h).ok()?,
                }
            }
            let m = merged?;
            Some(m.value_at_quantile(*quantile) as f64 / 1000.0)
        }
        Source::FailureRate => per_pull(sum(&|r| r.doc.pulls.failed), started),
        Source::RetryRate => per_pull(sum(&|r| r.doc.retries.total), started),
        Source::ErrorRate(class) => per_pull(
            sum(&|r| r.doc.errors.get(class).copied().unwrap_or(0)),
            started,
        ),
        Source::WastedPerPull => per_pull(sum(&|r| r.doc.bytes.wasted), started),
        Source::Throughput | Source::FdPeak | Source::ConnectionsPeak => {
            let v: Vec<f64> = runs.iter().filter_map(|r| run_value(source, r)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        }
    }
}

/// A statistic over chosen units (block indices).
type Statistic = Box<dyn Fn(&[usize]) -> Option<f64>>;

/// A side as a time series for the block bootstrap: latency from the
/// latency.hlog intervals, everything else from the per-second timeline
/// rows (a side's runs one after the other). Counts per pull divide by the
/// side's pulls started (the rows do not say when a pull started). `None`
/// when there is no series (no latency.hlog; wasted bytes have no row).
fn series(source: &Source, runs: &[Run]) -> Option<(usize, Statistic)> {
    let started: u64 = runs.iter().map(|r| r.doc.pulls.started).sum();
    if let Source::Latency { metric, quantile } = source {
        let mut samples = Vec::new();
        for r in runs {
            let intervals = r.intervals.as_ref()?;
            samples.extend(
                intervals
                    .get(metric)
                    .into_iter()
                    .flatten()
                    .map(|i| i.sample.clone()),
            );
        }
        let q = *quantile;
        let n = samples.len();
        let f: Statistic = Box::new(move |idx: &[usize]| {
            stats::weighted_quantile(&samples, idx, q).map(|v| v as f64 / 1000.0)
        });
        return (n > 0).then_some((n, f));
    }
    let rows: Vec<&crate::result::model::TimelineRow> =
        runs.iter().flat_map(|r| r.doc.timeline.iter()).collect();
    let column: Vec<f64> = match source {
        Source::Throughput => rows.iter().map(|r| r.bytes as f64).collect(),
        Source::FailureRate => rows.iter().map(|r| r.pulls_failed as f64).collect(),
        Source::RetryRate => rows.iter().map(|r| r.retries as f64).collect(),
        Source::ErrorRate(class) => rows
            .iter()
            .map(|r| r.errors_by_class.get(class).copied().unwrap_or(0) as f64)
            .collect(),
        Source::FdPeak => rows.iter().map(|r| r.fds as f64).collect(),
        Source::ConnectionsPeak => rows.iter().map(|r| r.connections as f64).collect(),
        Source::WastedPerPull | Source::Latency { .. } => return None,
    };
    let n = column.len();
    if n == 0 {
        return None;
    }
    let f: Statistic = match source {
        Source::Throughput => Box::new(move |idx: &[usize]| {
            (!idx.is_empty())
                .then(|| idx.iter().map(|i| column[*i]).sum::<f64>() / idx.len() as f64)
        }),
        Source::FdPeak | Source::ConnectionsPeak => {
            Box::new(move |idx: &[usize]| idx.iter().map(|i| column[*i]).reduce(f64::max))
        }
        _ => Box::new(move |idx: &[usize]| {
            per_pull(idx.iter().map(|i| column[*i]).sum::<f64>(), started)
        }),
    };
    Some((n, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::metrics::{list, Tolerances};

    fn metric(key: &str) -> MetricDef {
        list(&["connection_reset".into()], true, &Tolerances::default())
            .into_iter()
            .find(|m| m.key == key)
            .unwrap()
    }

    #[test]
    fn worse_needs_both_the_interval_and_the_tolerance() {
        let p99 = metric("pull_p99");
        // +30 %, interval [1.2, 1.4]: worse.
        let (v, ch, _) = decide(&p99, Some(100.0), Some(130.0), Some((1.2, 1.4)));
        assert_eq!(v, Verdict::Worse);
        assert!((ch.unwrap() - 0.3).abs() < 1e-9);
        // +30 % but the interval holds 1: within the noise.
        let (v, _, note) = decide(&p99, Some(100.0), Some(130.0), Some((0.9, 1.7)));
        assert_eq!((v, note.as_str()), (Verdict::NoChange, "within the noise"));
        // +5 %, interval excludes 1: below the tolerance.
        let (v, _, _) = decide(&p99, Some(100.0), Some(105.0), Some((1.03, 1.07)));
        assert_eq!(v, Verdict::NoChange);
        // -30 %: better.
        let (v, _, _) = decide(&p99, Some(100.0), Some(70.0), Some((0.6, 0.8)));
        assert_eq!(v, Verdict::Better);
    }

    /// Runs that overlap are never a change, however narrow a bootstrap over a
    /// few of them draws the interval (the A/A that once failed CI).
    #[test]
    fn overlapping_runs_are_no_change_and_separated_ones_can_be() {
        assert!(!separated(&[10.0, 10.0, 10.0], &[10.0, 12.0, 13.0]));
        assert!(separated(&[0.0, 0.0, 0.0], &[3.0, 3.0, 1.25]));
        assert!(separated(&[5.0, 6.0], &[1.0, 2.0]));
        assert!(!separated(&[], &[1.0]));
    }

    #[test]
    fn higher_is_better_for_throughput() {
        let t = metric("throughput");
        assert_eq!(
            decide(&t, Some(100.0), Some(50.0), Some((0.4, 0.6))).0,
            Verdict::Worse
        );
        assert_eq!(
            decide(&t, Some(100.0), Some(150.0), Some((1.4, 1.6))).0,
            Verdict::Better
        );
    }

    #[test]
    fn rates_compare_differences_and_zero_on_both_sides_is_no_change() {
        let f = metric("failure_rate");
        let (v, ch, _) = decide(&f, Some(0.0), Some(0.0), Some((0.0, 0.0)));
        assert_eq!((v, ch), (Verdict::NoChange, Some(0.0)));
        let (v, ch, _) = decide(&f, Some(0.0), Some(0.5), Some((0.3, 0.7)));
        assert_eq!((v, ch), (Verdict::Worse, Some(0.5)));
        let e = metric("errors.connection_reset");
        assert_eq!(
            decide(&e, Some(0.0), Some(0.005), Some((0.001, 0.01))).0,
            Verdict::NoChange
        );
        assert_eq!(
            decide(&e, Some(0.0), Some(2.0), Some((-0.5, 4.0))).0,
            Verdict::NoChange
        );
    }

    #[test]
    fn no_data_is_never_zero_and_a_latency_lost_on_the_candidate_is_a_regression() {
        let p50 = metric("pull_p50");
        assert_eq!(decide(&p50, Some(100.0), None, None).0, Verdict::Worse);
        assert_eq!(decide(&p50, None, Some(100.0), None).0, Verdict::Better);
        assert_eq!(decide(&p50, None, None, None).0, Verdict::NoData);
        let f = metric("failure_rate");
        assert_eq!(decide(&f, Some(0.1), None, None).0, Verdict::NoData);
    }

    #[test]
    fn without_an_interval_nothing_is_called_and_the_note_says_so() {
        let p = metric("fd_peak");
        let (v, _, note) = decide(&p, Some(100.0), Some(150.0), None);
        assert_eq!(v, Verdict::NoChange);
        assert!(note.contains("not judged"), "{note}");
    }
}
