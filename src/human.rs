//! Numbers for people: bytes, byte rates, durations, counts and shares as the
//! console summary, the progress line and the HTML report print them. One
//! module, so a figure reads the same wherever it appears (sizes always in
//! binary units, KiB/MiB/GiB) and a change of style is made once.
//!
//! Not here: axis ticks (`report::axis`, which picks round steps for a whole
//! axis), the hover data's compact JSON numbers, and the `actual` strings of
//! threshold checks, which result.json writes in the scenario's own unit
//! syntax (`179ms`, `150694087B/s`) rather than for reading.

/// Binary size units, smallest first (chart axes tick in the same units).
pub const BYTE_UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// Bytes in binary units: whole bytes below 1 KiB (`1023 B`), two decimals
/// above (`1.00 KiB`, `3.25 GiB`); TiB is the largest unit.
pub fn bytes(n: f64) -> String {
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < BYTE_UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", BYTE_UNITS[i])
    } else {
        format!("{v:.2} {}", BYTE_UNITS[i])
    }
}

/// Bytes per second: [`bytes`] followed by `/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", bytes(bytes_per_sec))
}

/// Milliseconds as a short duration without a space: `12.3ms`, `1.23s`, `1.5m`.
pub fn millis(ms: f64) -> String {
    if ms >= 60_000.0 {
        format!("{:.1}m", ms / 60_000.0)
    } else if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// Seconds as the report shows a moment or a span: one decimal below a
/// minute (`12.3 s`), `m:ss` below an hour, `h:mm:ss` above.
pub fn secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        if whole >= 3600 {
            format!("{}:{:02}:{:02}", whole / 3600, whole / 60 % 60, whole % 60)
        } else {
            format!("{}:{:02}", whole / 60, whole % 60)
        }
    }
}

/// Seconds as a bare figure with `decimals` places and no space: `15.0s`.
/// The console keeps this form (the summary with one decimal, the progress
/// line with none) because its columns and CI logs grep for it.
pub fn secs_short(s: f64, decimals: usize) -> String {
    format!("{s:.decimals$}s")
}

/// `part` as a percentage of `whole` (`<0.1%`, `9.5%`, `93%`), or an empty
/// string when `whole` is 0, so a missing limit prints nothing.
pub fn pct(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        String::new()
    } else {
        let p = part / whole * 100.0;
        if p > 0.0 && p < 0.1 {
            "<0.1%".to_string()
        } else if p < 10.0 {
            format!("{p:.1}%")
        } else {
            format!("{p:.0}%")
        }
    }
}

/// A count; from six digits on, thin spaces between thousands (`1 234 567`)
/// so big sample counts read at a glance.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    if s.len() <= 5 {
        return s;
    }
    let mut out = String::with_capacity(s.len() + s.len() / 3 * 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A measured value without trailing noise: whole numbers and anything from
/// 100 up without decimals, one decimal from 10, two below.
pub fn num(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_step_up_at_1024() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1.0), "1 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1024.0), "1.00 KiB");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(1_048_576.0), "1.00 MiB");
        assert_eq!(bytes(3.25 * (1u64 << 30) as f64), "3.25 GiB");
        assert_eq!(bytes((1u64 << 40) as f64), "1.00 TiB");
    }

    #[test]
    fn bytes_edges_are_rounded_not_promoted() {
        // Just below a unit step the figure rounds up but keeps the smaller unit.
        assert_eq!(bytes(1023.5), "1024 B");
        assert_eq!(bytes(1_048_575.0), "1024.00 KiB");
    }

    #[test]
    fn huge_and_odd_bytes_stay_in_tib() {
        assert_eq!(bytes(1e15), "909.49 TiB");
        assert_eq!(bytes(1e20), "90949470.18 TiB");
        assert_eq!(bytes(u64::MAX as f64), "16777216.00 TiB");
        assert_eq!(bytes(f64::INFINITY), "inf TiB");
        assert_eq!(bytes(f64::NAN), "NaN B");
        assert_eq!(bytes(-1.0), "-1 B");
    }

    #[test]
    fn rates_are_bytes_per_second() {
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(1023.0), "1023 B/s");
        assert_eq!(rate(1024.0), "1.00 KiB/s");
        assert_eq!(rate(2.0 * (1u64 << 30) as f64), "2.00 GiB/s");
    }

    #[test]
    fn millis_switch_units_at_a_second_and_a_minute() {
        assert_eq!(millis(0.0), "0.0ms");
        assert_eq!(millis(12.34), "12.3ms");
        assert_eq!(millis(999.9), "999.9ms");
        // Rounds up within the smaller unit rather than switching.
        assert_eq!(millis(999.96), "1000.0ms");
        assert_eq!(millis(1000.0), "1.00s");
        assert_eq!(millis(59_999.0), "60.00s");
        assert_eq!(millis(60_000.0), "1.0m");
        assert_eq!(millis(86_400_000.0), "1440.0m");
        assert_eq!(millis(f64::NAN), "NaNms");
        assert_eq!(millis(f64::INFINITY), "infm");
    }

    #[test]
    fn secs_read_as_a_clock_from_a_minute() {
        assert_eq!(secs(0.0), "0.0 s");
        assert_eq!(secs(59.94), "59.9 s");
        assert_eq!(secs(60.0), "1:00");
        assert_eq!(secs(75.0), "1:15");
        assert_eq!(secs(3599.4), "59:59");
        assert_eq!(secs(3600.0), "1:00:00");
        assert_eq!(secs(3725.0), "1:02:05");
        assert_eq!(secs(90_000.0), "25:00:00");
        // NaN is not below a minute and casts to 0 s.
        assert_eq!(secs(f64::NAN), "0:00");
    }

    #[test]
    fn short_secs_keep_the_console_form() {
        assert_eq!(secs_short(15.04, 1), "15.0s");
        assert_eq!(secs_short(0.0, 1), "0.0s");
        assert_eq!(secs_short(12.6, 0), "13s");
        assert_eq!(secs_short(4000.123, 1), "4000.1s");
    }

    #[test]
    fn percentages() {
        assert_eq!(pct(0.0, 1000.0), "0.0%");
        assert_eq!(pct(1.0, 2000.0), "<0.1%");
        assert_eq!(pct(95.0, 1000.0), "9.5%");
        assert_eq!(pct(950.0, 1024.0), "93%");
        assert_eq!(pct(2048.0, 1024.0), "200%");
        assert_eq!(pct(5.0, 0.0), "");
        assert_eq!(pct(5.0, -1.0), "");
        assert_eq!(pct(f64::NAN, 10.0), "NaN%");
    }

    #[test]
    fn counts_group_thousands_from_six_digits() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1023), "1023");
        assert_eq!(count(1234), "1234");
        assert_eq!(count(99_999), "99999");
        assert_eq!(count(100_000), "100\u{2009}000");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(
            count(u64::MAX),
            "18\u{2009}446\u{2009}744\u{2009}073\u{2009}709\u{2009}551\u{2009}615"
        );
    }

    #[test]
    fn nums_drop_noise() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1024.0), "1024");
        assert_eq!(num(9.99), "9.99");
        assert_eq!(num(0.004), "0.00");
        assert_eq!(num(59.96), "60.0");
        assert_eq!(num(99.5), "99.5");
        assert_eq!(num(123.456), "123");
        assert_eq!(num(-1.0), "-1");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::INFINITY), "inf");
    }
}
