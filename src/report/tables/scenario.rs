//! The "scenario as run" section: the resolved scenario, every default
//! filled in and the overrides applied, as a file `pullstorm run` accepts.

use crate::report::html::esc;
use crate::result::model::ResultDoc;

/// The scenario as run, as TOML when it converts (else JSON).
pub fn scenario(doc: &ResultDoc) -> String {
    let text = scenario_toml(&doc.scenario.resolved).unwrap_or_else(|| {
        serde_json::to_string_pretty(&doc.scenario.resolved).unwrap_or_default()
    });
    format!(
        "<p class=\"note\">Every key with its default filled in and the overrides applied.</p><pre>{}</pre>",
        esc(&text)
    )
}

/// JSON -> TOML, dropping nulls (TOML has none: an absent key is the default).
pub fn scenario_toml(v: &serde_json::Value) -> Option<String> {
    fn strip(v: &serde_json::Value) -> Option<serde_json::Value> {
        match v {
            serde_json::Value::Null => None,
            serde_json::Value::Object(m) => Some(serde_json::Value::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), strip(v)?)))
                    .collect(),
            )),
            serde_json::Value::Array(a) => Some(serde_json::Value::Array(
                a.iter().filter_map(strip).collect(),
            )),
            other => Some(other.clone()),
        }
    }
    let stripped = strip(v)?;
    if !stripped.is_object() {
        return None;
    }
    toml::to_string_pretty(&stripped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_round_trips_to_toml_without_nulls() {
        let v = serde_json::json!({
            "name": null,
            "fleet": {"clusters": 2, "client": "dockerd"},
            "embedded": {"layers": ["1MiB"], "faults": {"cut_after": null}},
            "run": {"duration": "60s"}
        });
        let t = scenario_toml(&v).unwrap();
        assert!(t.contains("[fleet]") && t.contains("clusters = 2"), "{t}");
        assert!(!t.contains("null") && !t.contains("name"), "{t}");
    }
}
