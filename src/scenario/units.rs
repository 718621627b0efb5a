//! Human units in scenario files: sizes (`3GiB`), durations (`90s`, `10m`) and
//! rates (`1Gbit`, `100MB/s`), each parsed once into plain integers.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// A size in bytes. Accepts an integer or a string with a unit
/// (`B`, `KB`/`MB`/`GB`/`TB` = powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` = powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

/// A span of time. Accepts `ms`, `s`, `m`, `h` suffixes (and combinations like `1m30s`);
/// a bare integer is seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

/// A transfer rate in bytes per second. Accepts bits (`100Mbit`, `1Gbit`, `10kbit`)
/// or bytes per second (`100MB/s`, `50MiB/s`); a bare integer is bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Rate(pub u64);

/// Longest span accepted: about 31 years, far past any run, and far inside `Duration`.
const MAX_SPAN_SECS: f64 = 1e9;

/// Splits `12.5GiB` into `(12.5, "GiB")`. Underscores between digits are allowed
/// (`1_000`); a sign is not (no unit here can be negative).
fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(end);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    if !num.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{text}` does not start with a number"));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    Ok((value, unit.trim()))
}

fn whole(value: f64, what: &str, text: &str) -> Result<u64, String> {
    // `u64::MAX as f64` rounds up to 2^64, hence `>=`.
    if !value.is_finite() || value < 0.0 || value >= u64::MAX as f64 {
        return Err(format!("`{text}` is out of range for a {what}"));
    }
    Ok(value.round() as u64)
}

impl ByteSize {
    /// `512`, `3GiB`, `1.5GB`, `16 MiB`; decimal units are powers of 1000, binary
    /// ones (`KiB`...) powers of 1024. Unit names are case-insensitive except the
    /// one-letter forms (`K`, `M`, `G`, `T` = powers of 1000, as in Kubernetes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (value, unit) = split_number(text)?;
        const KI: f64 = 1024.0;
        let scale: f64 = match unit {
            "K" | "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "Ki" => KI,
            "Mi" => KI * KI,
            "Gi" => KI * KI * KI,
            "Ti" => KI * KI * KI * KI,
            _ => match unit.to_ascii_lowercase().as_str() {
                "" | "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "tb" => 1e12,
                "kib" => KI,
                "mib" => KI * KI,
                "gib" => KI * KI * KI,
                "tib" => KI * KI * KI * KI,
                _ => {
                    return Err(format!(
                        "unknown size unit `{unit}` in `{}` (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                        text.trim()
                    ))
                }
            },
        };
        Ok(ByteSize(whole(value * scale, "size", text.trim())?))
    }
}

impl Span {
    /// `500ms`, `90s`, `10m`, `1h`, `1m30s`, `1.5h`; a bare number is seconds.
    /// Also `us` and `ns`, so that every `Display` output reads back.
    pub fn parse(text: &str) -> Result<Self, String> {
        let original = text.trim();
        let mut rest = original;
        if rest.is_empty() {
            return Err("empty duration (use e.g. 500ms, 90s, 10m, 1h, 1m30s)".into());
        }
        let mut total = 0f64;
        let mut first = true;
        while !rest.is_empty() {
            let (value, after) = split_number(rest).map_err(|_| {
                format!("`{original}` is not a duration (use e.g. 500ms, 90s, 10m, 1h, 1m30s)")
            })?;
            let unit_end = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, tail) = after.split_at(unit_end);
            let seconds = match unit.trim() {
                "" if first && tail.is_empty() => 1.0,
                "" => {
                    return Err(format!(
                        "`{original}` has a number without a unit (use ms, s, m, h)"
                    ))
                }
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                other => {
                    return Err(format!(
                        "unknown duration unit `{other}` in `{original}` (use ms, s, m, h)"
                    ))
                }
            };
            total += value * seconds;
            rest = tail.trim();
            first = false;
        }
        Span::from_secs(total, original)
    }

    fn from_secs(seconds: f64, text: &str) -> Result<Self, String> {
        if !seconds.is_finite() || !(0.0..=MAX_SPAN_SECS).contains(&seconds) {
            return Err(format!(
                "`{text}` is out of range for a duration (at most {MAX_SPAN_SECS} seconds)"
            ));
        }
        Ok(Span(Duration::from_secs_f64(seconds)))
    }
}

impl Rate {
    /// Bits per second (`1Gbit` = 125,000,000 B/s, `100Mbit/s`, `10kbit`) or bytes
    /// per second (`100MB/s`, `50MiB/s`); a bare number is bytes per second.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (value, unit) = split_number(text)?;
        const KI: f64 = 1024.0;
        let bytes_per_sec: f64 = match unit {
            "" | "B/s" => 1.0,
            "bit" | "bit/s" | "bps" => 1.0 / 8.0,
            "kbit" | "Kbit" | "kbit/s" | "Kbit/s" | "kbps" | "Kbps" => 1e3 / 8.0,
            "Mbit" | "mbit" | "Mbit/s" | "Mbps" => 1e6 / 8.0,
            "Gbit" | "gbit" | "Gbit/s" | "Gbps" => 1e9 / 8.0,
            "KB/s" | "kB/s" => 1e3,
            "MB/s" => 1e6,
            "GB/s" => 1e9,
            "KiB/s" => KI,
            "MiB/s" => KI * KI,
            "GiB/s" => KI * KI * KI,
            // `100MB` alone is a size, not a rate.
            _ if unit.ends_with('B') => {
                return Err(format!(
                    "`{}` is a size, not a rate: add `/s`",
                    text.trim()
                ))
            }
            _ => {
                return Err(format!(
                    "unknown rate unit `{unit}` in `{}` (use bit, kbit, Mbit, Gbit, B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s)",
                    text.trim()
                ))
            }
        };
        Ok(Rate(whole(value * bytes_per_sec, "rate", text.trim())?))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, scale) in UNITS {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{}", self.0 / scale, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Display for Span {
    /// The largest unit that keeps the value exact, so that `parse` reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        const UNITS: [(&str, u128); 5] = [
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ];
        if ns == 0 {
            return f.write_str("0s");
        }
        for (name, scale) in UNITS {
            if ns.is_multiple_of(scale) {
                return write!(f, "{}{}", ns / scale, name);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B/s", self.0)
    }
}

/// How a unit type reads a TOML number or string; shared by the serde impls below.
trait Unit: Sized {
    /// Completes "invalid type: ..., expected ...".
    const EXPECTING: &'static str;
    /// A bare integer (bytes, seconds, bytes per second).
    fn from_u64(n: u64) -> Result<Self, String>;
    /// A bare float, already checked to be finite and not negative.
    fn from_f64(n: f64) -> Result<Self, String>;
    fn from_text(text: &str) -> Result<Self, String>;
}

impl Unit for ByteSize {
    const EXPECTING: &'static str = "a size such as \"512MiB\" or a number of bytes";
    fn from_u64(n: u64) -> Result<Self, String> {
        Ok(ByteSize(n))
    }
    fn from_f64(n: f64) -> Result<Self, String> {
        Ok(ByteSize(whole(n, "size", &show(n))?))
    }
    fn from_text(text: &str) -> Result<Self, String> {
        ByteSize::parse(text)
    }
}

impl Unit for Span {
    const EXPECTING: &'static str = "a duration such as \"90s\" or a number of seconds";
    fn from_u64(n: u64) -> Result<Self, String> {
        Span::from_secs(n as f64, &n.to_string())
    }
    fn from_f64(n: f64) -> Result<Self, String> {
        Span::from_secs(n, &show(n))
    }
    fn from_text(text: &str) -> Result<Self, String> {
        Span::parse(text)
    }
}

impl Unit for Rate {
    const EXPECTING: &'static str =
        "a rate such as \"1Gbit\" or \"100MB/s\", or a number of bytes per second";
    fn from_u64(n: u64) -> Result<Self, String> {
        Ok(Rate(n))
    }
    fn from_f64(n: f64) -> Result<Self, String> {
        Ok(Rate(whole(n, "rate", &show(n))?))
    }
    fn from_text(text: &str) -> Result<Self, String> {
        Rate::parse(text)
    }
}

/// A float as the user would have written it, short even when huge (`1e300`).
fn show(n: f64) -> String {
    if n.abs() < 1e15 {
        n.to_string()
    } else {
        format!("{n:e}")
    }
}

struct UnitVisitor<T>(PhantomData<T>);

impl<T: Unit> Visitor<'_> for UnitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        T::from_u64(n).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!("{n} is negative"))),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        if n.is_nan() || n < 0.0 {
            Err(E::custom(format!("{n} is not a positive number")))
        } else {
            T::from_f64(n).map_err(E::custom)
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::from_text(text).map_err(E::custom)
    }
}

macro_rules! unit_serde {
    ($ty:ident) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                de.deserialize_any(UnitVisitor::<$ty>(PhantomData))
            }
        }
        // Written as text that `parse` reads back (e.g. into result.json).
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.collect_str(self)
            }
        }
    };
}

unit_serde!(ByteSize);
unit_serde!(Span);
unit_serde!(Rate);

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn size(text: &str) -> u64 {
        ByteSize::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .0
    }

    fn span(text: &str) -> Duration {
        Span::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .0
    }

    fn rate(text: &str) -> u64 {
        Rate::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .0
    }

    #[test]
    fn sizes() {
        assert_eq!(size("3GiB"), 3 * GIB);
        assert_eq!(size("1.5GB"), 1_500_000_000);
        assert_eq!(size("512"), 512);
        assert_eq!(size("16MiB"), 16 * MIB);
        assert_eq!(size("16 MiB"), 16 * MIB);
        assert_eq!(size("16mib"), 16 * MIB);
        assert_eq!(size("0.5KiB"), 512);
        assert_eq!(size("10KB"), 10_000);
        assert_eq!(size("2Gi"), 2 * GIB);
        assert_eq!(size("1G"), 1_000_000_000);
        assert_eq!(size("1_000B"), 1000);
        assert_eq!(size("0"), 0);
        assert_eq!(size(" 1TiB "), 1 << 40);
    }

    #[test]
    fn size_errors() {
        for bad in [
            "3XB",
            "-1",
            "-1GiB",
            "fast",
            "",
            "   ",
            "GiB",
            "1.2.3MB",
            "1e3",
            "1g",
            "99999999999TiB",
        ] {
            assert!(ByteSize::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ByteSize::parse("3XB")
            .unwrap_err()
            .contains("unknown size unit `XB`"));
    }

    #[test]
    fn durations() {
        assert_eq!(span("90s"), Duration::from_secs(90));
        assert_eq!(span("10m"), Duration::from_secs(600));
        assert_eq!(span("1h"), Duration::from_secs(3600));
        assert_eq!(span("1m30s"), Duration::from_secs(90));
        assert_eq!(span("1m 30s"), Duration::from_secs(90));
        assert_eq!(span("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(span("500ms"), Duration::from_millis(500));
        assert_eq!(span("0"), Duration::ZERO);
        assert_eq!(span("0s"), Duration::ZERO);
        assert_eq!(span("45"), Duration::from_secs(45));
        assert_eq!(span("1.5h"), Duration::from_secs(5400));
        assert_eq!(span("0.1s"), Duration::from_millis(100));
        assert_eq!(span("1s500ms"), Duration::from_millis(1500));
        assert_eq!(span("250us"), Duration::from_micros(250));
    }

    #[test]
    fn duration_errors() {
        for bad in [
            "-1s",
            "fast",
            "",
            " ",
            "10x",
            "1m30",
            "s",
            "1e3s",
            "5 minutes",
            "99999999999h",
            "1..5s",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Span::parse("1m30").unwrap_err().contains("without a unit"));
    }

    #[test]
    fn rates() {
        assert_eq!(rate("1Gbit"), 125_000_000);
        assert_eq!(rate("1Gbit/s"), 125_000_000);
        assert_eq!(rate("100Mbit"), 12_500_000);
        assert_eq!(rate("10kbit"), 1_250);
        assert_eq!(rate("100MB/s"), 100_000_000);
        assert_eq!(rate("50MiB/s"), 50 * MIB);
        assert_eq!(rate("1000"), 1000);
        assert_eq!(rate("1000B/s"), 1000);
    }

    #[test]
    fn rate_errors() {
        for bad in ["fast", "", "-1Gbit", "1Tbit", "10parsecs", "100MB", "1GiB"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Rate::parse("100MB").unwrap_err().contains("not a rate"));
    }

    #[test]
    fn display_reads_back() {
        for text in ["3GiB", "1500000000B", "512B", "0B", "16MiB"] {
            let v = ByteSize::parse(text).unwrap();
            assert_eq!(v.to_string(), text);
            assert_eq!(ByteSize::parse(&v.to_string()), Ok(v));
        }
        for text in ["90s", "10m", "1h", "500ms", "0s", "250us", "3ns"] {
            let v = Span::parse(text).unwrap();
            assert_eq!(v.to_string(), text);
            assert_eq!(Span::parse(&v.to_string()), Ok(v));
        }
        assert_eq!(Span::parse("1m30s").unwrap().to_string(), "90s");
        let r = Rate::parse("1Gbit").unwrap();
        assert_eq!(r.to_string(), "125000000B/s");
        assert_eq!(Rate::parse(&r.to_string()), Ok(r));
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        size: Option<ByteSize>,
        span: Option<Span>,
        rate: Option<Rate>,
    }

    fn doc(text: &str) -> Result<Doc, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn deserialize_numbers_and_strings() {
        let d = doc("size = 1024\nspan = 90\nrate = 1000").unwrap();
        assert_eq!(d.size, Some(ByteSize(1024)));
        assert_eq!(d.span, Some(Span(Duration::from_secs(90))));
        assert_eq!(d.rate, Some(Rate(1000)));
        let d = doc("size = \"3GiB\"\nspan = 1.5\nrate = \"1Gbit\"").unwrap();
        assert_eq!(d.size, Some(ByteSize(3 * GIB)));
        assert_eq!(d.span, Some(Span(Duration::from_millis(1500))));
        assert_eq!(d.rate, Some(Rate(125_000_000)));
    }

    #[test]
    fn deserialize_rejects_without_panicking() {
        for (text, want) in [
            ("span = -1", "negative"),
            ("span = inf", "out of range"),
            ("span = nan", "not a positive number"),
            ("span = 1e300", "out of range"),
            ("span = 9223372036854775807", "out of range"),
            ("span = true", "expected a duration"),
            ("span = \"fast\"", "not a duration"),
            ("size = -5", "negative"),
            ("size = 1e30", "out of range"),
            ("size = [1]", "expected a size"),
            ("rate = -inf", "not a positive number"),
            ("rate = \"100MB\"", "not a rate"),
        ] {
            let err = doc(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
