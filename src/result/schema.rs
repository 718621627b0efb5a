//! The JSON Schema of result.json, derived from the types in `result/` so it
//! cannot say something the code does not write. It is committed as
//! `docs/result.schema.json` for tools that read results; a unit test keeps the
//! file equal to what the types generate.
//!
//! The schema describes what a v1 reader accepts (schemars' deserialize contract):
//! a field marked `#[serde(default)]` is optional, because results written before
//! it was added lack it and are still v1.

use super::model::ResultDoc;

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_FILE: &str = "docs/result.schema.json";

/// The schema of [`ResultDoc`] as pretty-printed JSON, ending with a newline.
pub fn result_schema_json() -> String {
    let schema = schemars::schema_for!(ResultDoc);
    let mut text =
        serde_json::to_string_pretty(&schema).expect("a generated schema serializes to JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Set to write the committed schema instead of comparing with it.
    const BLESS: &str = "PULLSTORM_BLESS";

    #[test]
    fn result_schema_file_matches_the_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
        let generated = result_schema_json();
        if std::env::var_os(BLESS).is_some() {
            std::fs::write(&path, &generated).expect("the schema file is writable");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{SCHEMA_FILE} differs from the schema the result types generate; \
             if the type change is intended, regenerate it with \
             `{BLESS}=1 cargo test --lib result_schema` and commit the file"
        );
    }

    #[test]
    fn result_schema_honours_serde_attributes() {
        let schema: serde_json::Value = serde_json::from_str(&result_schema_json()).unwrap();
        let required = |def: &str| -> Vec<String> {
            let node = if def.is_empty() {
                &schema
            } else {
                &schema["$defs"][def]
            };
            node["required"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let properties = &schema["properties"];
        // `watched` is written as `targets`, and results from before it may lack it.
        assert!(properties.get("targets").is_some());
        assert!(properties.get("watched").is_none());
        assert!(!required("").contains(&"targets".to_string()));
        assert!(required("").contains(&"pulls".to_string()));
        // `#[serde(default)]` fields are optional; the others are required.
        let pulls = required("Pulls");
        assert!(pulls.contains(&"completed".to_string()), "{pulls:?}");
        assert!(!pulls.contains(&"kubelet_retries".to_string()), "{pulls:?}");
        // `skip_serializing_if` fields may be absent.
        assert!(!required("TimelineRow").contains(&"errors_by_class".to_string()));
        assert!(!required("WatchedSummary").contains(&"pid".to_string()));
        assert!(required("WatchedSummary").contains(&"series".to_string()));
        // `rename_all = "snake_case"` on the kind of a watched thing.
        let kinds = schema["$defs"]["WatchedKind"].to_string();
        assert!(kinds.contains("\"stub_status\""), "{kinds}");
    }
}
