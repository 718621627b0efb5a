//! Chart axes: what a value axis measures ([`Unit`]) and round ticks for
//! value and time axes, so every chart of the report scales the same way.
//! The numbers themselves are formatted by [`crate::human`].

use crate::human::BYTE_UNITS;

/// What an axis measures, which decides its ticks and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes per second, in binary units.
    BytesPerSec,
    Bytes,
    Count,
    /// Milliseconds (latency).
    Millis,
    Percent,
}

impl Unit {
    /// The name of the inline script's formatter for values on this axis:
    /// the hover box is drawn by `html::JS`, which has its own small copies
    /// of the formatters (close to, not always equal to, [`crate::human`]).
    pub fn js(self) -> &'static str {
        match self {
            Unit::BytesPerSec => "rate",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::Millis => "ms",
            Unit::Percent => "pct",
        }
    }
}

/// Ticks of a value axis from 0 to at least `max`: (axis top, tick values, labels).
/// Byte axes tick in round binary multiples (0.5 GiB steps, not 0.537 GB).
pub fn value_ticks(max: f64, unit: Unit) -> (f64, Vec<(f64, String)>) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let (scale, suffix) = match unit {
        Unit::Bytes | Unit::BytesPerSec => {
            let names = BYTE_UNITS;
            let mut i = 0;
            while max >= 1024f64.powi(i as i32 + 1) && i + 1 < names.len() {
                i += 1;
            }
            let per = if unit == Unit::BytesPerSec { "/s" } else { "" };
            (1024f64.powi(i as i32), format!(" {}{per}", names[i]))
        }
        Unit::Millis => {
            if max >= 120_000.0 {
                (60_000.0, " min".to_string())
            } else if max >= 2_000.0 {
                (1000.0, " s".to_string())
            } else {
                (1.0, " ms".to_string())
            }
        }
        Unit::Percent => (1.0, "%".to_string()),
        Unit::Count => (1.0, String::new()),
    };
    let scaled = max / scale;
    let step = nice_step(scaled / 4.0, unit == Unit::Count);
    let top = (scaled / step).ceil().max(1.0) * step;
    let mut ticks = Vec::new();
    let mut v = 0.0;
    while v <= top + step * 1e-9 {
        let label = if step >= 1.0 || v == 0.0 {
            format!("{v:.0}{suffix}")
        } else if step >= 0.1 {
            format!("{v:.1}{suffix}")
        } else {
            format!("{v:.2}{suffix}")
        };
        ticks.push((v * scale, label));
        v += step;
    }
    (top * scale, ticks)
}

/// 1, 2 or 5 times a power of ten, at least `raw`; whole numbers for counts.
fn nice_step(raw: f64, whole: bool) -> f64 {
    let raw = if raw > 0.0 { raw } else { 1.0 };
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let step = if f <= 1.0 {
        mag
    } else if f <= 2.0 {
        2.0 * mag
    } else if f <= 5.0 {
        5.0 * mag
    } else {
        10.0 * mag
    };
    if whole {
        step.max(1.0)
    } else {
        step
    }
}

/// Ticks of the time axis (seconds) over `0..=span`.
pub fn time_ticks(span: f64) -> Vec<(f64, String)> {
    const STEPS: [f64; 17] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 21600.0, 43200.0,
    ];
    let span = span.max(1.0);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 10.0)
        .unwrap_or(86400.0);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let label = if step < 60.0 {
            format!("{t:.0} s")
        } else if step < 3600.0 {
            format!("{:.0} min", t / 60.0)
        } else {
            format!("{:.0} h", t / 3600.0)
        };
        out.push((t, label));
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let (top, t) = value_ticks(1.9 * 1024.0 * 1024.0 * 1024.0, Unit::BytesPerSec);
        assert_eq!(top, 2.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(t[1].1, "0.5 GiB/s");
        assert_eq!(t.last().unwrap().1, "2.0 GiB/s");
        let (top, t) = value_ticks(7.0, Unit::Count);
        assert_eq!(top, 8.0);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|(v, _)| v.fract() == 0.0));
        let (top, _) = value_ticks(0.0, Unit::Count);
        assert_eq!(top, 1.0);
        let (_, t) = value_ticks(1800.0, Unit::Millis);
        assert_eq!(t[1].1, "500 ms");
        let (_, t) = value_ticks(9000.0, Unit::Millis);
        assert_eq!(t[1].1, "5 s");
    }

    #[test]
    fn time_ticks_scale_with_the_span() {
        assert_eq!(time_ticks(2.0).len(), 3);
        let hour = time_ticks(3600.0);
        assert_eq!(hour[1].1, "10 min");
        assert!(hour.len() <= 11);
        assert_eq!(time_ticks(90.0)[1].1, "10 s");
    }
}
