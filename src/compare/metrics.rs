//! What `compare` compares: the metrics (each with the direction that is
//! better, how a change is measured and its unit), the default tolerances,
//! and their overrides from `--tolerance METRIC=VALUE` and `--tolerances FILE`.
//!
//! A change is measured as a ratio (latency, throughput, peaks: "+12 %") or as
//! a difference (rates that can be 0 on both sides: failures, retries and
//! errors per started pull, wasted bytes per pull: "+1.5 pp").

use crate::scenario::units::ByteSize;
use std::collections::BTreeMap;
use std::path::Path;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

/// How a change is measured, and so what its tolerance means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// candidate / baseline; the tolerance is a fraction (0.10 = 10 %).
    Ratio,
    /// candidate - baseline; the tolerance is in the metric's own unit.
    Difference,
}

/// What a value is, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    BytesPerSec,
    /// A share of the started pulls (0..=1), shown in %, changes in percentage points.
    Share,
    /// Events per started pull (retries, errors of a class).
    PerPull,
    /// Bytes per started pull.
    BytesPerPull,
    Count,
}

/// Where a run's value of a metric comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A percentile (0..1) of a latency histogram (`histograms.<metric>`), ms.
    Latency { metric: String, quantile: f64 },
    /// `throughput.mean_bytes_per_sec`.
    Throughput,
    /// `pulls.failed / pulls.started`.
    FailureRate,
    /// `retries.total / pulls.started`.
    RetryRate,
    /// `errors.<class> / pulls.started`.
    ErrorRate(String),
    /// `bytes.wasted / pulls.started`.
    WastedPerPull,
    /// `fd.client_peak`.
    FdPeak,
    /// `connections.peak`.
    ConnectionsPeak,
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    /// The name in tables and in `--tolerance` (`pull_p99`, `errors.connection_reset`).
    pub key: String,
    /// What it is, in words (the HTML and Markdown tables, JUnit messages).
    pub what: String,
    pub source: Source,
    pub direction: Direction,
    pub scale: Scale,
    pub unit: Unit,
    /// The change a regression must exceed: a fraction for [`Scale::Ratio`],
    /// the metric's unit for [`Scale::Difference`].
    pub tolerance: f64,
}

impl MetricDef {
    /// A latency metric (its no-data rule differs: no data on the candidate is a regression).
    pub fn is_latency(&self) -> bool {
        matches!(self.source, Source::Latency { .. })
    }
}

/// Default tolerances, by key (error classes share `errors`).
pub const DEFAULTS: [(&str, &str); 12] = [
    ("pull_p50", "10%"),
    ("pull_p99", "10%"),
    ("layer_p50", "10%"),
    ("layer_p99", "10%"),
    ("ttfb_p99", "50%"),
    ("throughput", "10%"),
    ("failure_rate", "1pp"),
    ("retry_rate", "0.05"),
    ("errors", "0.01"),
    ("wasted_per_pull", "1MiB"),
    ("fd_peak", "10%"),
    ("connections_peak", "10%"),
];

/// The latency metrics compared: (key, histogram, quantile, what).
const LATENCY: [(&str, &str, f64, &str); 5] = [
    ("pull_p50", "pull", 0.50, "pull time p50"),
    ("pull_p99", "pull", 0.99, "pull time p99"),
    ("layer_p50", "layer", 0.50, "layer download p50"),
    ("layer_p99", "layer", 0.99, "layer download p99"),
    ("ttfb_p99", "ttfb", 0.99, "time to first byte p99"),
];

/// The metrics to compare, with tolerances: the fixed list, then one
/// `errors.<class>` per class in `error_classes` (the classes seen on either
/// side), then `ttfb_p99` only when `with_ttfb` (a side has the histogram).
pub fn list(error_classes: &[String], with_ttfb: bool, tol: &Tolerances) -> Vec<MetricDef> {
    let mut out = Vec::new();
    for (key, metric, quantile, what) in LATENCY {
        if key == "ttfb_p99" && !with_ttfb {
            continue;
        }
        out.push(def(
            key,
            what,
            Source::Latency {
                metric: metric.into(),
                quantile,
            },
            Direction::LowerIsBetter,
            Scale::Ratio,
            Unit::Millis,
        ));
    }
    out.push(def(
        "throughput",
        "mean download throughput",
        Source::Throughput,
        Direction::HigherIsBetter,
        Scale::Ratio,
        Unit::BytesPerSec,
    ));
    out.push(def(
        "failure_rate",
        "failed pulls / started pulls",
        Source::FailureRate,
        Direction::LowerIsBetter,
        Scale::Difference,
        Unit::Share,
    ));
    out.push(def(
        "retry_rate",
        "retries per started pull",
        Source::RetryRate,
        Direction::LowerIsBetter,
        Scale::Difference,
        Unit::PerPull,
    ));
    for class in error_classes {
        out.push(def(
            &format!("errors.{class}"),
            &format!("{class} errors per started pull"),
            Source::ErrorRate(class.clone()),
            Direction::LowerIsBetter,
            Scale::Difference,
            Unit::PerPull,
        ));
    }
    out.push(def(
        "wasted_per_pull",
        "bytes received and thrown away, per started pull",
        Source::WastedPerPull,
        Direction::LowerIsBetter,
        Scale::Difference,
        Unit::BytesPerPull,
    ));
    out.push(def(
        "fd_peak",
        "most fds the harness held",
        Source::FdPeak,
        Direction::LowerIsBetter,
        Scale::Ratio,
        Unit::Count,
    ));
    out.push(def(
        "connections_peak",
        "most client connections open at once",
        Source::ConnectionsPeak,
        Direction::LowerIsBetter,
        Scale::Ratio,
        Unit::Count,
    ));
    for m in &mut out {
        m.tolerance = tol.get(&m.key);
    }
    out
}

fn def(
    key: &str,
    what: &str,
    source: Source,
    direction: Direction,
    scale: Scale,
    unit: Unit,
) -> MetricDef {
    MetricDef {
        key: key.into(),
        what: what.into(),
        source,
        direction,
        scale,
        unit,
        tolerance: 0.0,
    }
}

/// The unit of a tolerance key's value, for parsing.
fn unit_of(key: &str) -> Option<Unit> {
    Some(match key {
        "pull_p50" | "pull_p99" | "layer_p50" | "layer_p99" | "ttfb_p99" => Unit::Millis,
        "throughput" => Unit::BytesPerSec,
        "fd_peak" | "connections_peak" => Unit::Count,
        "failure_rate" => Unit::Share,
        "retry_rate" | "errors" => Unit::PerPull,
        "wasted_per_pull" => Unit::BytesPerPull,
        k if k.starts_with("errors.") && k.len() > 7 => Unit::PerPull,
        _ => return None,
    })
}

/// Tolerances by key: the defaults, then the file, then the flags.
#[derive(Debug, Clone)]
pub struct Tolerances {
    values: BTreeMap<String, f64>,
}

impl Default for Tolerances {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for (k, v) in DEFAULTS {
            // The defaults are written to parse; a failure would be a bug caught by the tests.
            if let Ok(x) = parse_value(k, v) {
                values.insert(k.to_string(), x);
            }
        }
        Tolerances { values }
    }
}

impl Tolerances {
    /// The tolerance of `key`; an `errors.<class>` without its own takes `errors`'.
    pub fn get(&self, key: &str) -> f64 {
        self.values
            .get(key)
            .or_else(|| {
                key.starts_with("errors.")
                    .then(|| self.values.get("errors"))
                    .flatten()
            })
            .copied()
            .unwrap_or(0.0)
    }

    /// Sets one tolerance from `METRIC=VALUE`; the error says what is wrong.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("`{assignment}`: expected METRIC=VALUE"))?;
        self.set_value(key.trim(), value.trim())
    }

    fn set_value(&mut self, key: &str, value: &str) -> Result<(), String> {
        let x = parse_value(key, value)?;
        self.values.insert(key.to_string(), x);
        Ok(())
    }

    /// Reads a TOML file of `METRIC = VALUE` lines (optionally under `[tolerance]`).
    /// Errors name the file, the line and the key.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1);
            format!("{}:{line}: not TOML: {}", path.display(), e.message())
        })?;
        let table = match doc.get("tolerance") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => doc,
        };
        for (key, value) in &table {
            let line = line_of(&text, key);
            let text_value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(format!(
                        "{}:{line}: key `{key}`: expected a number or a string, found {}",
                        path.display(),
                        other.type_str()
                    ))
                }
            };
            self.set_value(key, &text_value)
                .map_err(|e| format!("{}:{line}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// The first line (1-based) that starts with `key` (quoted or not), for error messages.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) || l.starts_with(&format!("\"{key}\""))
        })
        .map_or(1, |i| i + 1)
}

/// Parses a tolerance for `key`: `10%` or `10` for ratios (a fraction),
/// `1pp` / `1%` / `1` for the failure rate (percentage points), a plain
/// number per pull for retries and errors, a size for wasted bytes.
pub fn parse_value(key: &str, value: &str) -> Result<f64, String> {
    let unit = unit_of(key).ok_or_else(|| {
        format!(
            "unknown metric `{key}` (one of: {}, or errors.<class>)",
            DEFAULTS.map(|d| d.0).join(", ")
        )
    })?;
    let bad = |why: &str| format!("key `{key}`: `{value}` {why}");
    let number = |s: &str| -> Result<f64, String> {
        let x: f64 = s.trim().parse().map_err(|_| bad("is not a number"))?;
        if !x.is_finite() || x < 0.0 {
            return Err(bad("must be a number of 0 or more"));
        }
        Ok(x)
    };
    match unit {
        Unit::Millis | Unit::BytesPerSec | Unit::Count => {
            Ok(number(value.strip_suffix('%').unwrap_or(value))? / 100.0)
        }
        Unit::Share => {
            let v = value
                .strip_suffix("pp")
                .or_else(|| value.strip_suffix('%'))
                .unwrap_or(value);
            Ok(number(v)? / 100.0)
        }
        Unit::PerPull => number(value),
        Unit::BytesPerPull => ByteSize::parse(value)
            .map(|b| b.0 as f64)
            .map_err(|e| bad(&format!("is not a size: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_errors_share_one_tolerance() {
        let t = Tolerances::default();
        assert!((t.get("pull_p99") - 0.10).abs() < 1e-12);
        assert!((t.get("failure_rate") - 0.01).abs() < 1e-12);
        assert!((t.get("errors.connection_reset") - 0.01).abs() < 1e-12);
        assert_eq!(t.get("wasted_per_pull"), 1024.0 * 1024.0);
    }

    #[test]
    fn flags_override_and_bad_ones_say_why() {
        let mut t = Tolerances::default();
        t.set("pull_p99=25%").unwrap();
        t.set("errors.connection_reset=0.5").unwrap();
        t.set("failure_rate=2pp").unwrap();
        assert!((t.get("pull_p99") - 0.25).abs() < 1e-12);
        assert!((t.get("errors.connection_reset") - 0.5).abs() < 1e-12);
        assert!((t.get("errors.unexpected_eof") - 0.01).abs() < 1e-12);
        assert!((t.get("failure_rate") - 0.02).abs() < 1e-12);
        assert!(t.set("pull_p99").unwrap_err().contains("METRIC=VALUE"));
        assert!(t
            .set("nonsense=1")
            .unwrap_err()
            .contains("unknown metric `nonsense`"));
        assert!(t.set("pull_p99=-3").unwrap_err().contains("0 or more"));
        assert!(t.set("pull_p99=fast").unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_file_sets_tolerances_and_its_errors_name_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tol.toml");
        std::fs::write(&f, "[tolerance]\npull_p99 = \"20%\"\nretry_rate = 0.5\n").unwrap();
        let mut t = Tolerances::default();
        t.load_file(&f).unwrap();
        assert!((t.get("pull_p99") - 0.20).abs() < 1e-12);
        assert!((t.get("retry_rate") - 0.5).abs() < 1e-12);
        std::fs::write(&f, "pull_p50 = \"5%\"\nlayer_p99 = true\n").unwrap();
        let e = t.load_file(&f).unwrap_err();
        assert!(e.contains("tol.toml:2: key `layer_p99`"), "{e}");
        std::fs::write(&f, "pull_p50 = \n").unwrap();
        assert!(t.load_file(&f).unwrap_err().contains("not TOML"));
    }

    #[test]
    fn the_list_has_a_row_per_error_class_and_ttfb_only_when_measured() {
        let t = Tolerances::default();
        let keys = |l: Vec<MetricDef>| l.into_iter().map(|m| m.key).collect::<Vec<_>>();
        let without = keys(list(&[], false, &t));
        assert!(!without.contains(&"ttfb_p99".to_string()));
        let with = keys(list(&["connection_reset".into()], true, &t));
        assert!(with.contains(&"ttfb_p99".to_string()));
        assert!(with.contains(&"errors.connection_reset".to_string()));
    }
}
