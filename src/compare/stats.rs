//! The statistics of `compare`, pure and seeded so a verdict repeats:
//!
//! - several runs per side: a bootstrap over runs (the run is the unit: the
//!   requests of one run are correlated, a per-request test would call tiny
//!   shifts significant) of candidate vs baseline, comparing the mean of the
//!   per-run values of each side;
//! - one run per side: a circular block bootstrap over time (blocks of
//!   consecutive seconds or 5 s latency intervals, `sqrt(n)` long, so the
//!   correlation between neighbouring seconds is kept inside a block).
//!
//! Both give the 2.5 % and 97.5 % quantiles of the resampled comparison
//! (`candidate / baseline` or `candidate - baseline`): a 95 % interval.

use crate::random::{mix, GOLDEN};

/// Resamples per interval: enough for steady 2.5 % / 97.5 % quantiles.
pub const RESAMPLES: usize = 2000;
/// Share of resamples that must give a value (both sides defined) for an interval.
const MIN_DEFINED: f64 = 0.5;

/// How two sides are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// candidate / baseline (undefined when the baseline is 0 or less).
    Ratio,
    /// candidate - baseline.
    Difference,
}

impl Compare {
    pub fn apply(self, baseline: f64, candidate: f64) -> Option<f64> {
        match self {
            Compare::Ratio => (baseline > 0.0).then(|| candidate / baseline),
            Compare::Difference => Some(candidate - baseline),
        }
    }

    /// The value meaning "no change".
    pub fn neutral(self) -> f64 {
        match self {
            Compare::Ratio => 1.0,
            Compare::Difference => 0.0,
        }
    }

    /// Moves an interval computed around `centre` so it sits around `point`
    /// (the same spread; scaled for a ratio, shifted for a difference).
    pub fn recentre(self, (lo, hi): (f64, f64), centre: f64, point: f64) -> (f64, f64) {
        match self {
            Compare::Ratio if centre > 0.0 => (lo * point / centre, hi * point / centre),
            Compare::Ratio => (lo, hi),
            Compare::Difference => (lo + point - centre, hi + point - centre),
        }
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same draws.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 11) as u128 * n as u128) >> 53) as usize
    }
}

/// A seed per metric, so each metric has its own draws and they repeat.
pub fn seed_for(key: &str) -> u64 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `q` quantile of sorted values (linear between neighbours).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    Some(sorted[i] + (next - sorted[i]) * frac)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The 95 % interval of resampled comparisons, or None when too few were defined.
fn interval(mut values: Vec<f64>, attempts: usize) -> Option<(f64, f64)> {
    if values.is_empty() || (values.len() as f64) < attempts as f64 * MIN_DEFINED {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((
        quantile_sorted(&values, 0.025)?,
        quantile_sorted(&values, 0.975)?,
    ))
}

/// Bootstrap over runs: each resample draws as many runs as each side has
/// (with replacement) and compares the means. `None` with fewer than 2 runs
/// on a side.
pub fn runs_interval(
    baseline: &[f64],
    candidate: &[f64],
    how: Compare,
    seed: u64,
) -> Option<(f64, f64)> {
    if baseline.len() < 2 || candidate.len() < 2 {
        return None;
    }
    let mut rng = Rng::new(seed);
    let draw = |v: &[f64], rng: &mut Rng| -> f64 {
        (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64
    };
    let out: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let b = draw(baseline, &mut rng);
            let c = draw(candidate, &mut rng);
            how.apply(b, c)
        })
        .collect();
    interval(out, RESAMPLES)
}

/// The comparison of the side means, the centre [`runs_interval`] spreads around.
pub fn runs_centre(baseline: &[f64], candidate: &[f64], how: Compare) -> Option<f64> {
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    how.apply(mean(baseline), mean(candidate))
}

/// The block length for `n` units: `sqrt(n)` rounded, at least 1.
pub fn block_length(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).max(1)
}

/// One circular block resample of `0..n`: blocks of [`block_length`] consecutive
/// indices (wrapping at the end, so every unit is drawn as often), `n` in all.
pub fn block_resample(n: usize, rng: &mut Rng, out: &mut Vec<usize>) {
    out.clear();
    if n == 0 {
        return;
    }
    let len = block_length(n);
    while out.len() < n {
        let start = rng.below(n);
        for k in 0..len {
            if out.len() == n {
                break;
            }
            out.push((start + k) % n);
        }
    }
}

/// A side of a block bootstrap: its number of units (seconds, intervals) and
/// its statistic over a multiset of unit indices (`None`: undefined, e.g. no
/// latency sample in the drawn intervals).
pub struct Series<'a> {
    pub units: usize,
    pub statistic: &'a dyn Fn(&[usize]) -> Option<f64>,
}

impl Series<'_> {
    /// The statistic over every unit once.
    pub fn whole(&self) -> Option<f64> {
        let all: Vec<usize> = (0..self.units).collect();
        (self.statistic)(&all)
    }
}

/// Block bootstrap over time: each resample draws blocks of each side and
/// compares the statistics.
pub fn blocks_interval(
    baseline: &Series<'_>,
    candidate: &Series<'_>,
    how: Compare,
    seed: u64,
) -> Option<(f64, f64)> {
    if baseline.units == 0 || candidate.units == 0 {
        return None;
    }
    let mut rng = Rng::new(seed);
    let (mut ib, mut ic) = (Vec::new(), Vec::new());
    let out: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            block_resample(baseline.units, &mut rng, &mut ib);
            block_resample(candidate.units, &mut rng, &mut ic);
            let b = (baseline.statistic)(&ib)?;
            let c = (candidate.statistic)(&ic)?;
            how.apply(b, c)
        })
        .collect();
    interval(out, RESAMPLES)
}

/// Latency values of one unit (an interval histogram): (value, count) pairs.
pub type Sample = Vec<(u64, u64)>;

/// The `q` quantile of the values of the chosen units, as HdrHistogram
/// defines it: the smallest value with at least `ceil(q * total)` values at
/// or below it. `None` when they hold no value.
pub fn weighted_quantile(units: &[Sample], chosen: &[usize], q: f64) -> Option<u64> {
    let mut all: Vec<(u64, u64)> = chosen
        .iter()
        .filter_map(|i| units.get(*i))
        .flat_map(|s| s.iter().copied())
        .collect();
    let total: u64 = all.iter().map(|p| p.1).sum();
    if total == 0 {
        return None;
    }
    all.sort_unstable_by_key(|p| p.0);
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (v, c) in all {
        seen += c;
        if seen >= rank {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values around `centre` with a spread, drawn from a seed.
    fn draws(seed: u64, n: usize, centre: f64, spread: f64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| centre + spread * (r.below(1000) as f64 / 1000.0 - 0.5))
            .collect()
    }

    #[test]
    fn below_is_uniform_enough_and_in_range() {
        let mut r = Rng::new(7);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            counts[r.below(4)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn a_a_runs_from_one_distribution_include_no_change() {
        for seed in 0..20 {
            let b = draws(seed, 5, 100.0, 10.0);
            let c = draws(seed + 100, 5, 100.0, 10.0);
            let (lo, hi) = runs_interval(&b, &c, Compare::Ratio, 42).unwrap();
            assert!(lo <= 1.0 && hi >= 1.0, "seed {seed}: [{lo}, {hi}]");
        }
    }

    #[test]
    fn a_clear_shift_across_runs_excludes_no_change() {
        let b = draws(1, 5, 100.0, 10.0);
        let c = draws(2, 5, 130.0, 10.0);
        let (lo, hi) = runs_interval(&b, &c, Compare::Ratio, 42).unwrap();
        assert!(lo > 1.15 && hi < 1.45, "[{lo}, {hi}]");
        let d = runs_interval(&[0.0, 0.0, 0.0], &[0.5, 0.5, 0.6], Compare::Difference, 1).unwrap();
        assert!(d.0 > 0.4, "{d:?}");
    }

    #[test]
    fn the_seed_makes_the_interval_repeat() {
        let b = draws(1, 4, 100.0, 30.0);
        let c = draws(2, 4, 110.0, 30.0);
        let one = runs_interval(&b, &c, Compare::Ratio, 9);
        assert_eq!(one, runs_interval(&b, &c, Compare::Ratio, 9));
        assert_ne!(one, runs_interval(&b, &c, Compare::Ratio, 10));
        assert_eq!(runs_interval(&b[..1], &c, Compare::Ratio, 9), None);
    }

    #[test]
    fn block_resamples_wrap_and_have_n_units() {
        let mut r = Rng::new(3);
        let mut out = Vec::new();
        block_resample(10, &mut r, &mut out);
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|i| *i < 10));
        assert_eq!(block_length(10), 3);
        assert_eq!(block_length(1), 1);
        // Consecutive within a block.
        assert_eq!(out[1], (out[0] + 1) % 10);
    }

    /// A per-second series: a level with noise and some correlation.
    fn series(seed: u64, n: usize, level: f64) -> Vec<f64> {
        let noise = draws(seed, n + 1, 0.0, level * 0.3);
        (0..n)
            .map(|i| level + (noise[i] + noise[i + 1]) / 2.0)
            .collect()
    }

    #[test]
    fn one_run_block_bootstrap_a_a_and_shift() {
        let mean_of = |v: Vec<f64>| {
            move |idx: &[usize]| Some(idx.iter().map(|i| v[*i]).sum::<f64>() / idx.len() as f64)
        };
        // A 95 % interval misses "no change" in about 1 A/A pair of 20 by design (the
        // tolerance is what keeps those from being called); never by more than noise.
        let mut missed = 0;
        for seed in 0..20 {
            let b = mean_of(series(seed, 60, 100.0));
            let c = mean_of(series(seed + 50, 60, 100.0));
            let (lo, hi) = blocks_interval(
                &Series {
                    units: 60,
                    statistic: &b,
                },
                &Series {
                    units: 60,
                    statistic: &c,
                },
                Compare::Ratio,
                5,
            )
            .unwrap();
            assert!(lo > 0.9 && hi < 1.1, "A/A seed {seed}: [{lo}, {hi}]");
            if lo > 1.0 || hi < 1.0 {
                missed += 1;
            }
        }
        assert!(missed <= 3, "{missed} of 20 A/A pairs excluded no change");
        let b = mean_of(series(1, 60, 100.0));
        let c = mean_of(series(2, 60, 80.0));
        let (lo, hi) = blocks_interval(
            &Series {
                units: 60,
                statistic: &b,
            },
            &Series {
                units: 60,
                statistic: &c,
            },
            Compare::Ratio,
            5,
        )
        .unwrap();
        assert!(hi < 0.9 && lo > 0.7, "[{lo}, {hi}]");
    }

    #[test]
    fn block_bootstrap_of_latency_intervals() {
        // 12 intervals of 20 values each: baseline around 100, candidate around 200.
        let unit = |base: u64, i: u64| -> Sample {
            (0..20).map(|k| (base + (i * 7 + k * 13) % 40, 1)).collect()
        };
        let b: Vec<Sample> = (0..12).map(|i| unit(80, i)).collect();
        let c: Vec<Sample> = (0..12).map(|i| unit(180, i)).collect();
        let p99 = |s: &Vec<Sample>| {
            let s = s.clone();
            move |idx: &[usize]| weighted_quantile(&s, idx, 0.99).map(|v| v as f64)
        };
        let (fb, fc) = (p99(&b), p99(&c));
        let (sb, sc) = (
            Series {
                units: 12,
                statistic: &fb,
            },
            Series {
                units: 12,
                statistic: &fc,
            },
        );
        let (lo, hi) = blocks_interval(&sb, &sc, Compare::Ratio, 1).unwrap();
        assert!(lo > 1.5 && hi < 3.0, "[{lo}, {hi}]");
        let fb2 = p99(&b);
        let sb2 = Series {
            units: 12,
            statistic: &fb2,
        };
        let (lo, hi) = blocks_interval(&sb, &sb2, Compare::Ratio, 1).unwrap();
        assert!(lo <= 1.0 && hi >= 1.0, "[{lo}, {hi}]");
    }

    #[test]
    fn weighted_quantiles_follow_hdrhistogram() {
        let s = vec![vec![(10, 98), (20, 1)], vec![(500, 1)]];
        assert_eq!(weighted_quantile(&s, &[0, 1], 0.5), Some(10));
        assert_eq!(weighted_quantile(&s, &[0, 1], 0.99), Some(20));
        assert_eq!(weighted_quantile(&s, &[0, 1], 1.0), Some(500));
        assert_eq!(weighted_quantile(&s, &[1, 1], 0.5), Some(500));
        assert_eq!(weighted_quantile(&s, &[], 0.5), None);
    }

    #[test]
    fn recentring_keeps_the_spread() {
        assert_eq!(Compare::Ratio.recentre((0.9, 1.1), 1.0, 2.0), (1.8, 2.2));
        let (lo, hi) = Compare::Difference.recentre((-0.1, 0.1), 0.0, 0.5);
        assert!((lo - 0.4).abs() < 1e-12 && (hi - 0.6).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        assert_eq!(quantile_sorted(&[1.0, 3.0], 0.25), Some(1.5));
    }
}
