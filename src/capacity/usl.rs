//! The Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted
//! by least squares to the steps that held: λ the throughput of one node, σ
//! contention (serialised work), κ coherency (crosstalk, which makes X fall
//! past a peak). The fit explains the curve and interpolates between the
//! herds measured; nothing is said past the largest one.
//!
//! Not the `usl` crate: it needs six measurements and panics when its solver
//! fails, and a staircase often has three or four steps below the knee. With
//! σ and κ fixed the best λ has a closed form, so a grid over (σ, κ) refined
//! by a shrinking pattern search is enough, and cannot fail.

/// Fewest distinct herds fitted (three coefficients).
pub const MIN_POINTS: usize = 3;

/// A fitted model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// Coefficient of determination over the points fitted; `None` when they are all equal.
    pub r2: Option<f64>,
    pub points: usize,
    /// Smallest and largest herd fitted: the model says nothing outside.
    pub n_min: f64,
    pub n_max: f64,
}

impl Fit {
    /// The modelled throughput at `n` nodes; `None` outside the herds fitted.
    pub fn throughput(&self, n: f64) -> Option<f64> {
        (self.n_min..=self.n_max)
            .contains(&n)
            .then(|| model(self.lambda, self.sigma, self.kappa, n))
    }

    /// The herd at which the modelled throughput peaks, √((1−σ)/κ), when κ > 0
    /// and it lies within the herds fitted; else `None` (no extrapolation).
    pub fn peak_nodes(&self) -> Option<f64> {
        if self.kappa <= 0.0 || self.sigma >= 1.0 {
            return None;
        }
        let n = ((1.0 - self.sigma) / self.kappa).sqrt();
        (self.n_min..=self.n_max).contains(&n).then_some(n)
    }
}

fn model(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// λ minimising the squared error for fixed σ, κ, and that error.
fn best_lambda(points: &[(f64, f64)], sigma: f64, kappa: f64) -> (f64, f64) {
    let g = |n: f64| model(1.0, sigma, kappa, n);
    let num: f64 = points.iter().map(|(n, x)| x * g(*n)).sum();
    let den: f64 = points.iter().map(|(n, _)| g(*n) * g(*n)).sum();
    let lambda = if den > 0.0 { (num / den).max(0.0) } else { 0.0 };
    let sse = points
        .iter()
        .map(|(n, x)| (x - lambda * g(*n)).powi(2))
        .sum();
    (lambda, sse)
}

/// Fits (nodes, completed pulls per second) points; `None` with fewer than
/// [`MIN_POINTS`] distinct herds or no positive throughput.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| n.is_finite() && x.is_finite() && *n >= 1.0 && *x >= 0.0)
        .collect();
    let mut herds: Vec<f64> = points.iter().map(|p| p.0).collect();
    herds.sort_by(f64::total_cmp);
    herds.dedup();
    if herds.len() < MIN_POINTS || points.iter().all(|p| p.1 == 0.0) {
        return None;
    }
    // Coarse grid: σ linear in [0, 1], κ 0 or log-spaced from 1e-7 to 1.
    let kappas: Vec<f64> = std::iter::once(0.0)
        .chain((0..=70).map(|i| 10f64.powf(-7.0 + i as f64 / 10.0)))
        .collect();
    let mut best = (0.0, 0.0, f64::INFINITY);
    for i in 0..=100 {
        let sigma = i as f64 / 100.0;
        for &kappa in &kappas {
            let (_, sse) = best_lambda(&points, sigma, kappa);
            if sse < best.2 {
                best = (sigma, kappa, sse);
            }
        }
    }
    // Pattern search around the best cell, steps shrinking, within the bounds.
    let (mut sigma, mut kappa, mut sse) = best;
    let mut ds = 0.01;
    let mut dk = (kappa * 0.25).max(1e-8);
    for _ in 0..200 {
        let mut moved = false;
        for (s, k) in [
            (sigma + ds, kappa),
            (sigma - ds, kappa),
            (sigma, kappa + dk),
            (sigma, kappa - dk),
        ] {
            if !(0.0..=1.0).contains(&s) || k < 0.0 {
                continue;
            }
            let (_, e) = best_lambda(&points, s, k);
            if e < sse {
                (sigma, kappa, sse) = (s, k, e);
                moved = true;
            }
        }
        if !moved {
            ds /= 2.0;
            dk /= 2.0;
        }
    }
    let (lambda, sse) = best_lambda(&points, sigma, kappa);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let sst: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    Some(Fit {
        lambda,
        sigma,
        kappa,
        r2: (sst > 0.0).then(|| 1.0 - sse / sst),
        points: points.len(),
        n_min: herds[0],
        n_max: herds[herds.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(lambda: f64, sigma: f64, kappa: f64, herds: &[f64]) -> Vec<(f64, f64)> {
        herds
            .iter()
            .map(|&n| (n, model(lambda, sigma, kappa, n)))
            .collect()
    }

    #[test]
    fn recovers_known_coefficients() {
        let points = curve(2.0, 0.05, 0.002, &[1.0, 4.0, 8.0, 16.0, 24.0, 32.0]);
        let f = fit(&points).unwrap();
        assert!((f.lambda - 2.0).abs() < 0.02, "{f:?}");
        assert!((f.sigma - 0.05).abs() < 0.01, "{f:?}");
        assert!((f.kappa - 0.002).abs() < 0.0005, "{f:?}");
        assert!(f.r2.unwrap() > 0.999);
        // √((1−0.05)/0.002) ≈ 21.8, inside the herds fitted.
        assert!((f.peak_nodes().unwrap() - 21.8).abs() < 1.5, "{f:?}");
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let points = curve(1.5, 0.0, 0.0, &[2.0, 4.0, 6.0, 8.0]);
        let f = fit(&points).unwrap();
        assert!((f.lambda - 1.5).abs() < 0.01, "{f:?}");
        assert!(f.sigma < 0.01 && f.kappa < 1e-5, "{f:?}");
        assert_eq!(f.peak_nodes(), None);
    }

    #[test]
    fn never_extrapolates() {
        // The true peak (~31) lies past the largest herd measured (16).
        let points = curve(1.0, 0.0, 0.001, &[4.0, 8.0, 12.0, 16.0]);
        let f = fit(&points).unwrap();
        assert_eq!(f.peak_nodes(), None);
        assert_eq!(f.throughput(40.0), None);
        assert!(f.throughput(10.0).is_some());
    }

    #[test]
    fn too_few_herds_are_not_fitted() {
        assert_eq!(fit(&[]), None);
        assert_eq!(fit(&[(4.0, 3.0), (4.0, 3.1), (8.0, 6.0)]), None);
        assert_eq!(fit(&[(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]), None);
    }
}
