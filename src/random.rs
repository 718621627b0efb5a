//! Seeded, stateless draws (splitmix64) shared by everything that must repeat from run to
//! run without carrying an RNG: synthetic layer bytes, node start jitter, the proxy's
//! probabilistic faults and latency jitter, the kubelet's re-sync jitter.

/// The golden-ratio increment of splitmix64.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finalizer: a good 64-bit mix of `z`.
pub fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One splitmix64 step from `x`: `mix(x + GOLDEN)`.
pub fn splitmix64(x: u64) -> u64 {
    mix(x.wrapping_add(GOLDEN))
}

/// A float in `[0, 1)` from the top 53 bits of `bits`.
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference values of splitmix64 seeded with 0 (Vigna's sequence).
    #[test]
    fn splitmix64_gives_the_reference_sequence() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(GOLDEN), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn unit_stays_in_zero_to_one() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
