//! docs/result.schema.json against what the binary really writes and what
//! docs/result-schema.md says: a fresh quickstart result must validate (and a
//! broken one must not), and every field the schema knows must be documented.
//! The unit test `result_schema` keeps the schema file equal to the types.

use crate::common::*;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn committed_schema() -> Value {
    serde_json::from_str(&repo_file("docs/result.schema.json")).expect("the schema is JSON")
}

/// Debian's python3-jsonschema (installed by scripts/test-deps.sh) checks each
/// instance: a full Draft 2020-12 validator, without a Rust one's ~45 crates in every
/// clean build of the test binary.
const VALIDATOR: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for line in sys.stdin:
    errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.absolute_path))
    print(json.dumps(["/" + "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors]))
"#;

/// Every way each instance breaks the committed schema, one list per instance
/// (empty when it is valid).
fn violations(instances: &[&Value]) -> Vec<Vec<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/result.schema.json");
    let mut child = Command::new("/usr/bin/python3")
        .args(["-W", "ignore", "-c", VALIDATOR])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs (scripts/test-deps.sh installs it)");
    let mut input = String::new();
    for i in instances {
        input.push_str(&serde_json::to_string(i).unwrap());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the validator failed (python3-jsonschema missing? scripts/test-deps.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON list per instance"))
        .collect()
}

#[test]
fn a_fresh_quickstart_result_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let out = bin()
        .arg("run")
        .arg(&scenario)
        .arg("--quiet")
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("pullstorm runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join("result.json")).expect("result.json");
    let result: Value = serde_json::from_str(&text).expect("result.json is JSON");

    // The schema must be able to say no: a wrong type, a missing required key and an
    // unknown enum value each break it.
    let mut wrong_type = result.clone();
    wrong_type["pulls"]["completed"] = Value::from("32");
    let mut missing = result.clone();
    missing["pulls"].as_object_mut().unwrap().remove("failed");
    let mut no_timeline = result.clone();
    no_timeline.as_object_mut().unwrap().remove("timeline");
    let targets = result["targets"].as_array().expect("targets is an array");
    assert!(!targets.is_empty(), "the harness is always watched");
    let mut bad_kind = result.clone();
    bad_kind["targets"][0]["kind"] = Value::from("robot");

    let found = violations(&[&result, &wrong_type, &missing, &no_timeline, &bad_kind]);
    assert_eq!(found.len(), 5, "one verdict per instance: {found:?}");
    assert!(
        found[0].is_empty(),
        "result.json breaks the schema:\n{}",
        found[0].join("\n")
    );
    for (verdict, what) in found[1..].iter().zip([
        "pulls.completed as a string",
        "pulls without failed",
        "a result without timeline",
        "targets[0].kind = robot",
    ]) {
        assert!(!verdict.is_empty(), "{what} validated");
    }
}

/// Collects every property of `node` (following `$ref`s, arrays and maps) as
/// name -> the first path it was seen at, e.g. `kubelet_retries` -> `pulls.kubelet_retries`.
fn properties(
    node: &Value,
    path: &str,
    schema: &Value,
    seen: &mut BTreeMap<String, String>,
    followed: &mut BTreeSet<String>,
) {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        // Each definition once: its properties are the same wherever it is used.
        if followed.insert(name.to_string()) {
            properties(&schema["$defs"][name], path, schema, seen, followed);
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            let child_path = format!("{path}{key}");
            seen.entry(key.clone())
                .or_insert_with(|| child_path.clone());
            properties(child, &format!("{child_path}."), schema, seen, followed);
        }
    }
    if let Some(items) = node.get("items") {
        let array_path = format!("{}[].", path.trim_end_matches('.'));
        properties(items, &array_path, schema, seen, followed);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        properties(values, &format!("{path}<key>."), schema, seen, followed);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for alternative in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            properties(alternative, path, schema, seen, followed);
        }
    }
}

/// The names the tables of the markdown quote: every word inside a backtick span of a
/// table row, so `` `fleet.{clusters,nodes}` `` documents `clusters` and `nodes`.
fn documented_names(markdown: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for row in markdown.lines().filter(|l| l.starts_with('|')) {
        for span in row.split('`').skip(1).step_by(2) {
            names.extend(
                span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .map(String::from),
            );
        }
    }
    names
}

#[test]
fn the_docs_describe_every_field() {
    let schema = committed_schema();
    let mut seen = BTreeMap::new();
    let mut followed = BTreeSet::new();
    properties(&schema, "", &schema, &mut seen, &mut followed);
    // Definitions the root does not reach still describe result fields.
    for (name, definition) in schema["$defs"].as_object().expect("$defs") {
        if !followed.contains(name) {
            properties(
                definition,
                &format!("{name}."),
                &schema,
                &mut seen,
                &mut followed,
            );
        }
    }
    assert!(
        seen.contains_key("kubelet_retries"),
        "the walk reaches nested definitions"
    );
    assert!(seen.contains_key("cpu_pct"), "the walk reaches array items");
    assert!(seen.contains_key("p999"), "the walk reaches map values");

    let documented = documented_names(&repo_file("docs/result-schema.md"));
    let missing: Vec<&String> = seen
        .iter()
        .filter(|(name, _)| !documented.contains(*name))
        .map(|(_, path)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "docs/result-schema.md does not document: {missing:?}"
    );
}
