//! A watched process's or endpoint's points over the run, in bounded memory:
//! at most [`MAX_POINTS`] points, older ones merged in pairs when full (each
//! field keeps its peak), doubling the seconds per point.

use super::{WatchedPoint, MAX_POINTS};

/// A series that never holds more than [`MAX_POINTS`] points.
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// Seconds per point (samples folded into each).
    pub(super) step: u64,
    points: Vec<WatchedPoint>,
    /// The point being filled, and how many samples it holds so far.
    open: Option<(WatchedPoint, u64)>,
}

impl Series {
    pub(super) fn new() -> Self {
        Series {
            step: 1,
            points: Vec::new(),
            open: None,
        }
    }

    pub(super) fn push(&mut self, p: WatchedPoint) {
        let (acc, n) = match self.open.take() {
            None => (p, 1),
            Some((mut acc, n)) => {
                acc.merge_max(&p);
                (acc, n + 1)
            }
        };
        if n >= self.step {
            self.points.push(acc);
        } else {
            self.open = Some((acc, n));
        }
        if self.points.len() >= MAX_POINTS {
            self.halve_resolution();
        }
    }

    /// Merges neighbours, keeping each field's peak.
    fn halve_resolution(&mut self) {
        let old = std::mem::take(&mut self.points);
        for pair in old.chunks(2) {
            let mut a = pair[0].clone();
            if let Some(b) = pair.get(1) {
                a.merge_max(b);
            }
            self.points.push(a);
        }
        self.step *= 2;
    }

    /// The newest point, complete or still filling.
    pub(super) fn last(&self) -> Option<&WatchedPoint> {
        self.open.as_ref().map(|(p, _)| p).or(self.points.last())
    }

    /// Every point, the one still filling included.
    pub(super) fn snapshot(&self) -> Vec<WatchedPoint> {
        let mut v = self.points.clone();
        if let Some((p, _)) = &self.open {
            v.push(p.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, fds: u64) -> WatchedPoint {
        WatchedPoint {
            t,
            fds: Some(fds),
            ..Default::default()
        }
    }

    #[test]
    fn series_stays_bounded_and_keeps_peaks() {
        let mut s = Series::new();
        for t in 0..(MAX_POINTS as u64 * 5) {
            s.push(point(t, if t == 7777 { 999 } else { t % 10 }));
        }
        let snap = s.snapshot();
        assert!(snap.len() <= MAX_POINTS, "{}", snap.len());
        assert_eq!(s.step, 8);
        assert_eq!(snap.iter().filter_map(|p| p.fds).max(), Some(999));
        assert!(snap.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn merge_keeps_each_peak() {
        let mut a = WatchedPoint {
            t: 1,
            fds: Some(5),
            rss: None,
            threads: Some(3),
            cpu_pct: Some(10.0),
            values: [("x".to_string(), 1.0)].into(),
        };
        a.merge_max(&WatchedPoint {
            t: 2,
            fds: Some(4),
            rss: Some(100),
            threads: Some(9),
            cpu_pct: None,
            values: [("x".to_string(), 7.0), ("y".to_string(), 2.0)].into(),
        });
        assert_eq!(
            (a.t, a.fds, a.rss, a.threads),
            (1, Some(5), Some(100), Some(9))
        );
        assert_eq!(a.cpu_pct, Some(10.0));
        assert_eq!(a.values["x"], 7.0);
        assert_eq!(a.values["y"], 2.0);
    }
}
