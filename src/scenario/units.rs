//! Human units in scenario files: sizes (`3GiB`), durations (`90s`, `10m`) and
//! rates (`1Gbit`, `100MB/s`), each parsed once into plain integers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
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

fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(end);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    if num.is_empty() {
        return Err(format!("`{text}` does not start with a number"));
    }
    let value: f64 = num.parse().map_err(|_| format!("`{text}` is not a number"))?;
    Ok((value, unit.trim()))
}

fn whole(value: f64, what: &str, text: &str) -> Result<u64, String> {
    if !value.is_finite() || value < 0.0 || value > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range for a {what}"));
    }
    Ok(value.round() as u64)
}

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (value, unit) = split_number(text)?;
        let scale: f64 = match unit {
            "" | "B" | "b" => 1.0,
            "KB" | "kB" | "K" | "k" => 1e3,
            "MB" | "M" => 1e6,
            "GB" | "G" => 1e9,
            "TB" | "T" => 1e12,
            "KiB" | "Ki" => 1024.0,
            "MiB" | "Mi" => 1024.0 * 1024.0,
            "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
            "TiB" | "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}` (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ))
            }
        };
        Ok(ByteSize(whole(value * scale, "size", text)?))
    }
}

impl Span {
    pub fn parse(text: &str) -> Result<Self, String> {
        let original = text;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("empty duration".into());
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let (value, after) = split_number(rest).map_err(|_| {
                format!("`{original}` is not a duration (use e.g. 500ms, 90s, 10m, 1h, 1m30s)")
            })?;
            let unit_end = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
            let (unit, tail) = after.split_at(unit_end);
            let seconds = match unit.trim() {
                "" if tail.is_empty() && total == 0.0 => 1.0,
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
        }
        if !total.is_finite() || total > 1e9 {
            return Err(format!("`{original}` is out of range for a duration"));
        }
        Ok(Span(Duration::from_secs_f64(total)))
    }
}

impl Rate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (value, unit) = split_number(text)?;
        let bytes_per_sec: f64 = match unit {
            "" | "B/s" => 1.0,
            "bit" | "bps" => 1.0 / 8.0,
            "kbit" | "Kbit" | "kbps" => 1e3 / 8.0,
            "Mbit" | "mbit" | "Mbps" => 1e6 / 8.0,
            "Gbit" | "gbit" | "Gbps" => 1e9 / 8.0,
            "KB/s" | "kB/s" => 1e3,
            "MB/s" => 1e6,
            "GB/s" => 1e9,
            "KiB/s" => 1024.0,
            "MiB/s" => 1024.0 * 1024.0,
            "GiB/s" => 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown rate unit `{other}` in `{text}` (use bit, kbit, Mbit, Gbit, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s)"
                ))
            }
        };
        Ok(Rate(whole(value * bytes_per_sec, "rate", text)?))
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
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{}{}", self.0 / scale, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{ms}ms")
        } else if ms % 3_600_000 == 0 && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B/s", self.0)
    }
}

/// Either an integer or a string in TOML, handed to a unit parser.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

macro_rules! unit_serde {
    ($ty:ident, $int:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                let raw = NumberOrText::deserialize(de).map_err(|_| {
                    serde::de::Error::custom(concat!("expected a ", stringify!($ty), " as a number or a string with a unit"))
                })?;
                match raw {
                    NumberOrText::Int(n) => Ok($int(n as f64)),
                    NumberOrText::Float(n) if n >= 0.0 => Ok($int(n)),
                    NumberOrText::Float(n) => Err(serde::de::Error::custom(format!("{n} is negative"))),
                    NumberOrText::Text(s) => $ty::parse(&s).map_err(serde::de::Error::custom),
                }
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.collect_str(self)
            }
        }
    };
}

unit_serde!(ByteSize, |n: f64| ByteSize(n as u64));
unit_serde!(Span, |n: f64| Span(Duration::from_secs_f64(n)));
unit_serde!(Rate, |n: f64| Rate(n as u64));
