//! How `[thresholds]` is read and written. The fixed rules (`max_failed_pulls`,
//! `pull_p99`, ...) and the abort settings are keys of their own; any other
//! key is a path into result.json whose value is a comparison, or a list of
//! them: `"latency.pull.p99" = "< 8m"`, `"errors.connection_reset" =
//! ["<= 10", "rate < 0.01"]`. A path may also be spelled as nested tables
//! (`[thresholds.latency.pull] p99 = "< 8m"`, or `--set
//! thresholds.pulls.failed="== 0"`).
//!
//! A comparison's syntax is checked here, so its error points at its value;
//! whether the path exists is a semantic check (`validate`).

use super::model::Thresholds;
use crate::result::thresholds::expr::Comparison;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One path with its comparisons, as the scenario gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PathCheck {
    /// The keys as written under `[thresholds]`: `["latency.pull.p99"]`, or
    /// `["latency", "pull", "p99"]` for nested tables (to place errors).
    pub written: Vec<String>,
    /// The dotted path into result.json.
    pub path: String,
    pub comparisons: Vec<Comparison>,
}

/// The keys of `[thresholds]` that are not paths.
pub const FIXED_KEYS: [&str; 12] = [
    "max_failed_pulls",
    "max_failure_rate",
    "max_retries",
    "max_errors",
    "pull_p50",
    "pull_p99",
    "ttfb_p99",
    "min_throughput",
    "require_complete",
    "abort_on_fail",
    "window",
    "grace",
];

impl<'de> Deserialize<'de> for Thresholds {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(ThresholdsVisitor)
    }
}

struct ThresholdsVisitor;

impl<'de> Visitor<'de> for ThresholdsVisitor {
    type Value = Thresholds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of thresholds")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Thresholds, A::Error> {
        // `fill_defaults` decides `max_failed_pulls` once every key is known.
        let mut t = Thresholds {
            max_failed_pulls: None,
            ..Thresholds::default()
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "max_failed_pulls" => t.max_failed_pulls = Some(map.next_value()?),
                "max_failure_rate" => t.max_failure_rate = Some(map.next_value()?),
                "max_retries" => t.max_retries = Some(map.next_value()?),
                "max_errors" => t.max_errors = Some(map.next_value()?),
                "pull_p50" => t.pull_p50 = Some(map.next_value()?),
                "pull_p99" => t.pull_p99 = Some(map.next_value()?),
                "ttfb_p99" => t.ttfb_p99 = Some(map.next_value()?),
                "min_throughput" => t.min_throughput = Some(map.next_value()?),
                "require_complete" => t.require_complete = map.next_value()?,
                "abort_on_fail" => t.abort_on_fail = map.next_value()?,
                "window" => t.window = Some(map.next_value()?),
                "grace" => t.grace = Some(map.next_value()?),
                _ => {
                    let node: Node = map.next_value()?;
                    node.flatten(vec![key], &mut t.paths);
                }
            }
        }
        Ok(t)
    }
}

/// The value of a path key: comparisons, or a table of deeper keys.
enum Node {
    Comparisons(Vec<Comparison>),
    Table(Vec<(String, Node)>),
}

impl Node {
    fn flatten(self, written: Vec<String>, out: &mut Vec<PathCheck>) {
        match self {
            Node::Comparisons(comparisons) => out.push(PathCheck {
                path: written.join("."),
                written,
                comparisons,
            }),
            Node::Table(entries) => {
                for (key, node) in entries {
                    let mut deeper = written.clone();
                    deeper.push(key);
                    node.flatten(deeper, out);
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a comparison as a string such as \"< 8m\" or \"== 0\" (or a list of them), \
             or one of the keys max_failed_pulls, max_failure_rate, max_retries, max_errors, \
             pull_p50, pull_p99, ttfb_p99, min_throughput, require_complete, abort_on_fail, \
             window, grace",
        )
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Node, E> {
        Ok(Node::Comparisons(vec![
            Comparison::parse(text).map_err(E::custom)?
        ]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut comparisons = Vec::new();
        while let Some(one) = seq.next_element::<OneComparison>()? {
            comparisons.push(one.0);
        }
        if comparisons.is_empty() {
            return Err(de::Error::custom(
                "an empty list of comparisons (write e.g. [\"<= 10\", \"rate < 0.01\"])",
            ));
        }
        Ok(Node::Comparisons(comparisons))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<Node>()?));
        }
        Ok(Node::Table(entries))
    }
}

/// One element of a list of comparisons.
struct OneComparison(Comparison);

impl<'de> Deserialize<'de> for OneComparison {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OneComparison;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comparison as a string such as \"< 8m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<OneComparison, E> {
                Comparison::parse(text)
                    .map(OneComparison)
                    .map_err(E::custom)
            }
        }
        de.deserialize_any(V)
    }
}

impl Serialize for Thresholds {
    /// Every fixed key (null when unset, as before paths existed), then each
    /// path with its comparisons as written: the scenario as run reads back.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("max_failed_pulls", &self.max_failed_pulls)?;
        m.serialize_entry("max_failure_rate", &self.max_failure_rate)?;
        m.serialize_entry("max_retries", &self.max_retries)?;
        m.serialize_entry("max_errors", &self.max_errors)?;
        m.serialize_entry("pull_p50", &self.pull_p50)?;
        m.serialize_entry("pull_p99", &self.pull_p99)?;
        m.serialize_entry("ttfb_p99", &self.ttfb_p99)?;
        m.serialize_entry("min_throughput", &self.min_throughput)?;
        m.serialize_entry("require_complete", &self.require_complete)?;
        m.serialize_entry("abort_on_fail", &self.abort_on_fail)?;
        m.serialize_entry("window", &self.window)?;
        m.serialize_entry("grace", &self.grace)?;
        for check in &self.paths {
            let texts: Vec<&str> = check.comparisons.iter().map(|c| c.text.as_str()).collect();
            match texts.as_slice() {
                [one] => m.serialize_entry(&check.path, one)?,
                many => m.serialize_entry(&check.path, many)?,
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::{self, Thresholds};

    fn thresholds(toml: &str) -> Thresholds {
        scenario::parse(toml, "t.toml", &[])
            .unwrap_or_else(|e| panic!("{}", e.message))
            .thresholds
    }

    fn error(toml: &str) -> String {
        scenario::parse(toml, "t.toml", &[]).unwrap_err().message
    }

    #[test]
    fn paths_quoted_nested_and_listed() {
        let t = thresholds(
            "[thresholds]\nmax_retries = 5\n\"latency.pull.p99\" = \"< 8m\"\n\
             \"errors.connection_reset\" = [\"<= 10\", \"rate < 0.01\"]\n\
             [thresholds.bytes]\nwasted = \"< 1GiB\"\n",
        );
        assert_eq!(t.max_retries, Some(5));
        assert_eq!(t.max_failed_pulls, Some(0), "the default stays");
        let paths: Vec<(&str, usize)> = t
            .paths
            .iter()
            .map(|p| (p.path.as_str(), p.comparisons.len()))
            .collect();
        assert_eq!(
            paths,
            // In key order (TOML tables have no order of their own).
            [
                ("bytes.wasted", 1),
                ("errors.connection_reset", 2),
                ("latency.pull.p99", 1),
            ]
        );
        assert_eq!(t.paths[0].written, ["bytes", "wasted"]);
        // Written back as it was read: the resolved scenario parses again.
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["latency.pull.p99"], "< 8m");
        assert_eq!(
            json["errors.connection_reset"],
            serde_json::json!(["<= 10", "rate < 0.01"])
        );
        assert_eq!(json["max_failed_pulls"], 0);
    }

    #[test]
    fn a_set_spells_a_path_as_nested_keys() {
        let s = scenario::parse("", "t.toml", &["thresholds.pulls.failed=== 0".into()]).unwrap();
        assert_eq!(s.thresholds.paths[0].path, "pulls.failed");
        let e = scenario::parse("", "t.toml", &["thresholds.pulls.faild=== 0".into()])
            .unwrap_err()
            .message;
        assert!(
            e.starts_with("--set thresholds.pulls.faild=== 0: thresholds.pulls.faild:"),
            "{e}"
        );
    }

    #[test]
    fn bad_comparisons_name_line_and_key() {
        let e = error("[thresholds]\n\"latency.pull.p99\" = \"8m\"\n");
        assert!(
            e.starts_with("t.toml:2:22: thresholds.\"latency.pull.p99\": `8m` does not start with a comparison operator"),
            "{e}"
        );
        let e = error("[thresholds]\n\"pulls.failed\" = 0\n");
        assert!(
            e.starts_with("t.toml:2:18: thresholds.\"pulls.failed\":")
                && e.contains("a comparison as a string"),
            "{e}"
        );
        let e = error("[thresholds]\n\"pulls.failed\" = [\"== 0\", \"=< 1\"]\n");
        assert!(
            e.starts_with("t.toml:2:27: thresholds.\"pulls.failed\"[1]:")
                && e.contains("write `==`"),
            "{e}"
        );
        // The fixed keys keep their own types and messages.
        let e = error("[thresholds]\npull_p99 = \"soon\"\n");
        assert!(e.starts_with("t.toml:2:12: thresholds.pull_p99:"), "{e}");
    }
}
