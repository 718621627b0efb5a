//! Per-second series cut into at most [`MAX_BUCKETS`] time buckets, each
//! keeping min, max, sum and count, so an hour-long run draws (and weighs)
//! the same as a one-minute run while no peak is lost.

/// Most buckets (points) per chart.
pub const MAX_BUCKETS: usize = 600;

/// Longest time axis drawn, seconds (about 31 years): a result claiming a row at
/// `t = 2^64-1` s is drawn to here with that row in the last bucket, so no grid
/// arithmetic can overflow.
pub const MAX_SPAN: f64 = 1e9;

/// The time grid shared by every timeline chart of a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Seconds per bucket.
    pub width: u64,
    pub buckets: usize,
    /// The time axis spans `0..=span` seconds.
    pub span: f64,
}

impl Grid {
    /// A grid over `0..=span` seconds with at most [`MAX_BUCKETS`] buckets.
    pub fn new(span: f64) -> Grid {
        Grid::with_max(span, MAX_BUCKETS)
    }

    /// A grid over `0..=span` seconds (at most [`MAX_SPAN`]) with at most `max` buckets.
    pub fn with_max(span: f64, max: usize) -> Grid {
        // NaN (a crafted result) counts as the shortest span.
        let span = if span.is_nan() {
            1.0
        } else {
            span.clamp(1.0, MAX_SPAN)
        };
        let secs = span.ceil() as u64 + 1;
        let width = secs.div_ceil(max.max(1) as u64).max(1);
        Grid {
            width,
            buckets: secs.div_ceil(width) as usize,
            span,
        }
    }

    /// The bucket of second `t`; a `t` past the span falls in the last bucket.
    pub fn bucket(&self, t: u64) -> usize {
        usize::try_from(t / self.width)
            .unwrap_or(usize::MAX)
            .min(self.buckets.saturating_sub(1))
    }

    /// Centre of a bucket, seconds (a one-second bucket is its own second).
    pub fn centre(&self, i: usize) -> f64 {
        if self.width == 1 {
            i as f64
        } else {
            ((i as u64 * self.width) as f64 + (self.width as f64 - 1.0) / 2.0).min(self.span)
        }
    }
}

/// One series on a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub sum: Vec<f64>,
    pub n: Vec<u32>,
}

impl Agg {
    /// Buckets `(t, value)` pairs.
    pub fn new(grid: &Grid, points: impl IntoIterator<Item = (u64, f64)>) -> Agg {
        let b = grid.buckets;
        let mut a = Agg {
            min: vec![f64::INFINITY; b],
            max: vec![f64::NEG_INFINITY; b],
            sum: vec![0.0; b],
            n: vec![0; b],
        };
        for (t, v) in points {
            if !v.is_finite() {
                continue;
            }
            let i = grid.bucket(t);
            a.min[i] = a.min[i].min(v);
            a.max[i] = a.max[i].max(v);
            a.sum[i] += v;
            a.n[i] += 1;
        }
        a
    }

    /// Mean of each bucket; `None` where it has no sample.
    pub fn mean(&self) -> Vec<Option<f64>> {
        (0..self.n.len())
            .map(|i| (self.n[i] > 0).then(|| self.sum[i] / self.n[i] as f64))
            .collect()
    }

    pub fn max_opt(&self) -> Vec<Option<f64>> {
        (0..self.n.len())
            .map(|i| (self.n[i] > 0).then_some(self.max[i]))
            .collect()
    }

    pub fn min_opt(&self) -> Vec<Option<f64>> {
        (0..self.n.len())
            .map(|i| (self.n[i] > 0).then_some(self.min[i]))
            .collect()
    }

    /// Per-second rate of a per-second count: bucket sum over bucket width
    /// (seconds without a row count as 0).
    pub fn rate(&self, grid: &Grid) -> Vec<Option<f64>> {
        (0..self.n.len())
            .map(|i| (self.n[i] > 0).then(|| self.sum[i] / grid.width as f64))
            .collect()
    }

    /// Highest value of any bucket.
    pub fn peak(&self) -> Option<f64> {
        self.max
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_keep_every_second() {
        let g = Grid::new(90.0);
        assert_eq!((g.width, g.buckets), (1, 91));
        assert_eq!(g.bucket(90), 90);
        assert_eq!(g.centre(5), 5.0);
    }

    #[test]
    fn an_hour_is_cut_to_600_buckets_and_keeps_its_peak() {
        let g = Grid::new(3600.0);
        assert!(g.buckets <= MAX_BUCKETS);
        assert_eq!(g.width, 7);
        let a = Agg::new(
            &g,
            (1..=3600u64).map(|t| (t, if t == 1234 { 1e9 } else { 1.0 })),
        );
        assert_eq!(a.peak(), Some(1e9));
        let mean = a.mean();
        assert_eq!(mean[0], Some(1.0));
        let r = a.rate(&g);
        assert!((r[1].unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(a.min_opt()[g.bucket(1234)], Some(1.0));
    }

    /// A crafted row at `t = u64::MAX` (span 1.8e19 s) overflowed `secs + 1` on main.
    #[test]
    fn a_row_at_the_end_of_time_lands_in_the_last_bucket() {
        for max in [MAX_BUCKETS, 60, 1] {
            let g = Grid::with_max(u64::MAX as f64, max);
            assert!(g.buckets >= 1 && g.buckets <= max, "{g:?}");
            assert_eq!(g.span, MAX_SPAN);
            assert_eq!(g.bucket(u64::MAX), g.buckets - 1);
            let a = Agg::new(&g, [(0, 1.0), (u64::MAX, 2.0)]);
            assert_eq!(a.peak(), Some(2.0));
            assert!(g.centre(g.buckets - 1) <= MAX_SPAN);
        }
        let g = Grid::new(f64::NAN);
        assert_eq!((g.width, g.buckets), (1, 2));
    }

    #[test]
    fn empty_buckets_are_gaps() {
        let g = Grid::new(10.0);
        let a = Agg::new(&g, [(2, 5.0), (2, 7.0), (9, f64::NAN)]);
        assert_eq!(a.mean()[2], Some(6.0));
        assert_eq!(a.mean()[3], None);
        assert_eq!(a.mean()[9], None);
        assert_eq!(a.peak(), Some(7.0));
    }
}
