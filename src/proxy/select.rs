//! Deciding which connections a fault hits, and seeded jitter.
//!
//! A fault draws only when a connection *reaches* its trigger (N bytes sent,
//! the cut time, a matching request), not at accept: the registry ping and the
//! manifest GET of a pull are short connections that never reach a 1 MiB cut,
//! so `cut_first = 1` means "the first transfer that gets that far", which is
//! what a scenario author counts. Draw n of a fault is a pure function of the
//! seed, the fault and n, so a run repeats its choices in the same order.

use super::config::Select;
use crate::random::{splitmix64, unit, GOLDEN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One fault's selection state, shared by all connections.
#[derive(Debug)]
pub struct Selector {
    select: Select,
    /// Mixed into the seed so that two faults with the same seed draw differently.
    salt: u64,
    drawn: AtomicU64,
}

impl Selector {
    pub fn new(select: Select, seed: u64, fault: &str) -> Selector {
        let salt = fault
            .bytes()
            .fold(seed, |h, b| splitmix64(h ^ u64::from(b)));
        Selector {
            select,
            salt,
            drawn: AtomicU64::new(0),
        }
    }

    /// Takes the next draw: does the fault hit this one?
    pub fn draw(&self) -> bool {
        let n = self.drawn.fetch_add(1, Ordering::Relaxed);
        match self.select {
            Select::Every(every) => (n + 1).is_multiple_of(every.max(1)),
            Select::First(k) => n < k,
            Select::Probability(p) => unit(splitmix64(self.salt.wrapping_add(n))) < p,
        }
    }
}

/// A tiny per-connection PRNG (splitmix64) for latency jitter.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
    max: Duration,
}

impl Jitter {
    /// Jitter of connection number `conn`, up to `max`.
    pub fn new(seed: u64, conn: u64, max: Duration) -> Jitter {
        Jitter {
            state: splitmix64(seed ^ splitmix64(conn)),
            max,
        }
    }

    /// `base` plus a uniform draw in `0..=max`.
    pub fn add_to(&mut self, base: Duration) -> Duration {
        if self.max.is_zero() {
            return base;
        }
        self.state = self.state.wrapping_add(GOLDEN);
        let extra = self.max.mul_f64(unit(splitmix64(self.state)));
        base.saturating_add(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(s: &Selector, n: usize) -> Vec<bool> {
        (0..n).map(|_| s.draw()).collect()
    }

    #[test]
    fn every_and_first() {
        let s = Selector::new(Select::Every(1), 1, "cut");
        assert!(draws(&s, 5).iter().all(|d| *d));
        let s = Selector::new(Select::Every(3), 1, "cut");
        assert_eq!(draws(&s, 6), [false, false, true, false, false, true]);
        let s = Selector::new(Select::First(2), 1, "cut");
        assert_eq!(draws(&s, 4), [true, true, false, false]);
        let s = Selector::new(Select::First(0), 1, "cut");
        assert_eq!(draws(&s, 2), [false, false]);
    }

    #[test]
    fn probability_is_seeded_and_about_right() {
        let a = draws(&Selector::new(Select::Probability(0.1), 7, "cut"), 10_000);
        let b = draws(&Selector::new(Select::Probability(0.1), 7, "cut"), 10_000);
        let c = draws(&Selector::new(Select::Probability(0.1), 8, "cut"), 10_000);
        let other = draws(&Selector::new(Select::Probability(0.1), 7, "stall"), 10_000);
        assert_eq!(a, b, "same seed, same draws");
        assert_ne!(a, c, "another seed, other draws");
        assert_ne!(a, other, "faults draw independently");
        let hits = a.iter().filter(|d| **d).count();
        assert!((850..1150).contains(&hits), "{hits}");
        assert!(
            draws(&Selector::new(Select::Probability(0.0), 1, "x"), 1000)
                .iter()
                .all(|d| !*d)
        );
        assert!(
            draws(&Selector::new(Select::Probability(1.0), 1, "x"), 1000)
                .iter()
                .all(|d| *d)
        );
    }

    #[test]
    fn jitter_stays_in_bounds_and_repeats() {
        let max = Duration::from_millis(50);
        let base = Duration::from_millis(100);
        let mut a = Jitter::new(1, 3, max);
        let mut b = Jitter::new(1, 3, max);
        let xs: Vec<_> = (0..1000).map(|_| a.add_to(base)).collect();
        let ys: Vec<_> = (0..1000).map(|_| b.add_to(base)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|d| *d >= base && *d <= base + max));
        assert!(xs.iter().any(|d| *d > base + max / 2));
        let mut none = Jitter::new(1, 3, Duration::ZERO);
        assert_eq!(none.add_to(base), base);
    }
}
