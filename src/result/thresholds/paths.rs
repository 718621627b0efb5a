//! Paths into result.json (`latency.pull.p99`, `errors.connection_reset`):
//! which ones can exist, what kind of figure each holds, and its value in a
//! finished result (or a window of the run, see `run::abort`).
//!
//! Which paths can exist is read from the JSON Schema the result types
//! generate (`schemars`), so a new figure is a valid path without a list to
//! keep. Maps whose keys are known (fault classes, latency metrics) accept
//! only those keys, so a typo is an error at load time, not a check that can
//! never fail.

use crate::metrics::recorder::Metric;
use crate::net::FaultClass;
use serde_json::Value;
use std::sync::OnceLock;

/// The unit a figure is written in, in result.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count or a plain ratio.
    Count,
    /// A time, in ms.
    Millis,
    Bytes,
    BytesPerSec,
    /// A percentage (0-100 and more).
    Percent,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Count => "a plain number",
            Kind::Millis => "a time in ms",
            Kind::Bytes => "a size in bytes",
            Kind::BytesPerSec => "a rate in bytes per second",
            Kind::Percent => "a percentage",
        }
    }

    /// How to write a limit for this kind, after an error.
    pub fn hint(self) -> &'static str {
        match self {
            Kind::Count => " (write a plain number)",
            Kind::Millis => " (write a duration such as 500ms or 8m, or a number of ms)",
            Kind::Bytes => " (write a size such as 1GiB, or a number of bytes)",
            Kind::BytesPerSec => {
                " (write a rate such as 100MB/s or 1Gbit, or a number of bytes per second)"
            }
            Kind::Percent => " (write a percentage such as 90% or a plain number)",
        }
    }

    /// The figure as text in the scenario's unit syntax (`412.5ms`, `1024B`).
    pub fn show(self, value: f64) -> String {
        let number = number(value);
        match self {
            Kind::Count => number,
            Kind::Millis => format!("{number}ms"),
            Kind::Bytes => format!("{number}B"),
            Kind::BytesPerSec => format!("{number}B/s"),
            Kind::Percent => format!("{number}%"),
        }
    }
}

/// A number without float noise: integers whole, others to 4 decimals.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The kind of figure at a (known) path, from its name.
pub fn kind(path: &str) -> Kind {
    let last = path.rsplit('.').next().unwrap_or(path);
    if path.starts_with("latency.") {
        return if last == "count" {
            Kind::Count
        } else {
            Kind::Millis
        };
    }
    if last.ends_with("_ms") {
        Kind::Millis
    } else if last.ends_with("bytes_per_sec") {
        Kind::BytesPerSec
    } else if last.ends_with("_percent") {
        Kind::Percent
    } else if path.starts_with("bytes.") || last.ends_with("_bytes") || last == "bytes" {
        Kind::Bytes
    } else {
        Kind::Count
    }
}

/// Maps of counts: a key absent from them is a count of 0 (result.json lists
/// an `http_<code>` class only once it was seen, for example).
const COUNT_MAPS: [&str; 4] = [
    "errors",
    "retries.by_class",
    "retries.at_progress",
    "layers.attempts",
];

/// Whether `path` can exist in a result.json; the error says why not and
/// what is there instead.
pub fn check(path: &str) -> Result<Kind, String> {
    let schema = schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut node = schema;
    let mut walked = String::new();
    for seg in path.split('.') {
        let object = resolve(node, &defs);
        let here = if walked.is_empty() {
            "result.json"
        } else {
            walked.as_str()
        };
        if let Some(child) = object.get("properties").and_then(|p| p.get(seg)) {
            node = child;
        } else if let Some(child) = object.get("additionalProperties").filter(|a| a.is_object()) {
            map_key(&walked, seg)
                .map_err(|e| format!("`{path}` is not a figure of result.json: {e}"))?;
            node = child;
        } else if let Some(props) = object.get("properties").and_then(Value::as_object) {
            let names: Vec<&str> = props.keys().map(String::as_str).collect();
            return Err(format!(
                "`{path}` is not a figure of result.json: {here} has no `{seg}` (it has {})",
                names.join(", ")
            ));
        } else {
            return Err(format!(
                "`{path}` is not a figure of result.json: {here} is {}, not a table of figures",
                what(object)
            ));
        }
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(seg);
    }
    let leaf = resolve(node, &defs);
    if !numeric(leaf) {
        return Err(format!(
            "`{path}` is {} in result.json, not a number a threshold can compare",
            what(leaf)
        ));
    }
    Ok(kind(path))
}

/// Keys allowed in the maps whose keys are known.
fn map_key(map: &str, key: &str) -> Result<(), String> {
    let allowed: Vec<String> = match map {
        "errors" | "retries.by_class" => {
            let http = ["http_", "storage_"].iter().any(|prefix| {
                key.strip_prefix(prefix)
                    .is_some_and(|code| code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()))
            });
            if http {
                return Ok(());
            }
            let mut keys: Vec<String> = FaultClass::FIXED.iter().map(|c| c.key()).collect();
            keys.push("http_<status>".into());
            keys.push("storage_<status>".into());
            keys
        }
        "latency" => Metric::ALL.iter().map(|m| m.key().to_string()).collect(),
        "retries.at_progress" => (0..10)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 10))
            .collect(),
        "layers.attempts" => {
            if key.parse::<u32>().is_ok() {
                return Ok(());
            }
            vec!["1".into(), "2".into(), "...".into()]
        }
        _ => return Ok(()),
    };
    if allowed.iter().any(|k| k == key) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a key of {map} (one of {})",
            allowed.join(", ")
        ))
    }
}

/// A figure at `path` of a result (or of a window shaped like one).
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    Value(f64),
    /// The run (or window) has no value for it; the reason, for `actual`.
    NoData(String),
}

/// The figure at `path` in `doc`: a count absent from a count map is 0; a
/// latency figure of a metric with no samples, a null, or an absent figure
/// is no data.
pub fn value(doc: &Value, path: &str) -> Figure {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.first() == Some(&"latency") && segs.len() == 3 && segs[2] != "count" {
        let count = doc
            .pointer(&format!("/latency/{}/count", segs[1]))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if count == 0.0 {
            return Figure::NoData(format!("no data (no {} samples)", segs[1]));
        }
    }
    let pointer: String = segs.iter().map(|s| format!("/{s}")).collect();
    match doc.pointer(&pointer) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) => Figure::Value(v),
            None => Figure::NoData("no data".into()),
        },
        Some(Value::Null) => Figure::NoData(format!("no data ({path} is null)")),
        None if counted(&segs) => Figure::Value(0.0),
        _ => Figure::NoData(format!("no data ({path} not measured)")),
    }
}

/// Whether an absent `path` is a count of nothing.
fn counted(segs: &[&str]) -> bool {
    let parent = segs[..segs.len().saturating_sub(1)].join(".");
    COUNT_MAPS.contains(&parent.as_str())
        || (segs.len() == 3 && segs[0] == "latency" && segs[2] == "count")
}

/// The generated schema of result.json, built once.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(super::super::model::ResultDoc))
            .unwrap_or(Value::Null)
    })
}

/// Follows `$ref` and picks the non-null side of an `Option` (`anyOf: [T, null]`).
fn resolve<'a>(mut node: &'a Value, defs: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(name) = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            match defs.get(name) {
                Some(def) => node = def,
                None => return node,
            }
        } else if let Some(side) = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Value::as_array)
            .and_then(|sides| {
                sides
                    .iter()
                    .find(|s| s.get("type") != Some(&Value::from("null")))
            })
        {
            node = side;
        } else {
            break;
        }
    }
    node
}

/// The JSON types a schema node allows.
fn types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn numeric(node: &Value) -> bool {
    types(node)
        .iter()
        .any(|t| *t == "integer" || *t == "number")
}

/// What a non-figure is, for errors.
fn what(node: &Value) -> String {
    let types = types(node);
    if types.contains(&"array") {
        "a list".into()
    } else if types.contains(&"object") {
        "a table".into()
    } else if types.contains(&"string") {
        "text".into()
    } else if types.contains(&"boolean") {
        "true or false".into()
    } else if types.is_empty() {
        "free-form data".into()
    } else {
        types.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_that_can_exist() {
        for (path, kind) in [
            ("pulls.failed", Kind::Count),
            ("latency.pull.p99", Kind::Millis),
            ("latency.ttfb.mean", Kind::Millis),
            ("latency.pull.count", Kind::Count),
            ("errors.connection_reset", Kind::Count),
            ("errors.http_503", Kind::Count),
            ("retries.by_class.unexpected_eof", Kind::Count),
            ("retries.total", Kind::Count),
            ("bytes.wasted", Kind::Bytes),
            ("throughput.mean_bytes_per_sec", Kind::BytesPerSec),
            ("connections.peak", Kind::Count),
            ("connections.requests_per_connection", Kind::Count),
            ("fd.client_peak", Kind::Count),
            ("harness.cpu_peak_percent", Kind::Percent),
            ("harness.timer_lag_max_ms", Kind::Millis),
            ("duration_ms", Kind::Millis),
            ("target.image_bytes", Kind::Bytes),
            ("layers.attempts.2", Kind::Count),
        ] {
            assert_eq!(check(path), Ok(kind), "{path}");
        }
    }

    #[test]
    fn figures_that_cannot_say_why() {
        for (path, says) in [
            ("pulls.faild", "pulls has no `faild` (it has "),
            (
                "latency.pul.p99",
                "`pul` is not a key of latency (one of pull, ",
            ),
            ("latency.pull.p95", "latency.pull has no `p95`"),
            ("errors.conection_reset", "one of connect_refused"),
            ("errors.http_5xx", "not a key of errors"),
            ("nothing", "result.json has no `nothing`"),
            ("pulls", "is a table in result.json"),
            ("stop_reason", "is text in result.json"),
            ("complete", "true or false"),
            ("clusters.0.bytes", "clusters is a list"),
            ("pulls.failed.x", "pulls.failed is integer"),
        ] {
            let e = check(path).expect_err(path);
            assert!(e.contains(says), "{path}: {e}");
        }
    }

    #[test]
    fn values_and_no_data() {
        let doc = serde_json::json!({
            "pulls": {"failed": 3, "started": 10},
            "errors": {"connection_reset": 2},
            "latency": {"pull": {"count": 0, "p99": 0.0}, "ttfb": {"count": 4, "p99": 12.5}},
            "harness": null,
            "connections": {"opened": null},
        });
        assert_eq!(value(&doc, "pulls.failed"), Figure::Value(3.0));
        assert_eq!(value(&doc, "errors.connection_reset"), Figure::Value(2.0));
        // A class never seen is 0, not missing.
        assert_eq!(value(&doc, "errors.http_503"), Figure::Value(0.0));
        assert_eq!(value(&doc, "latency.ttfb.p99"), Figure::Value(12.5));
        assert_eq!(value(&doc, "latency.manifest.count"), Figure::Value(0.0));
        // A latency without samples is not 0 ms.
        for path in [
            "latency.pull.p99",
            "latency.manifest.p50",
            "harness.cpu_peak_percent",
            "connections.opened",
        ] {
            assert!(matches!(value(&doc, path), Figure::NoData(_)), "{path}");
        }
    }

    #[test]
    fn figures_read_back_in_their_unit() {
        assert_eq!(Kind::Millis.show(412.5), "412.5ms");
        assert_eq!(Kind::Count.show(3.0), "3");
        assert_eq!(Kind::Count.show(0.012345), "0.0123");
        assert_eq!(Kind::BytesPerSec.show(1e8), "100000000B/s");
    }
}
