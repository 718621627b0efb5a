//! Scenario files: the TOML model, its units, `--set` overrides and
//! validation whose errors name the file, line and key.
//!
//! Loading goes in three steps, each of which can only fail with exit code 2:
//! 1. the file alone: TOML syntax, then types (`toml` + serde), then semantic
//!    checks, every error placed at `file:line:col` with its dotted key;
//! 2. the `--set KEY=VALUE` overrides, applied in order to an editable copy
//!    of the document (missing tables are created);
//! 3. types and semantic checks again on the result, an error now blamed on
//!    the `--set` that last touched the offending key.
//!
//! Error format: `<where>: <dotted.key>: <what>` where `<where>` is
//! `file:line:col` or `--set KEY=VALUE`, for example
//! `scenarios/x.toml:7:12: fleet.clusters: invalid type: string "many", expected u32`.

mod locate;
pub mod model;
pub mod units;
mod validate;

pub use crate::oci::reference::check_reference;
pub use model::*;
pub use validate::{check_name, CREDENTIALS_HINT, MAX_NODES};

use crate::exit::Failure;
use locate::{find, key_at, line_col, KeyPath};
use std::path::{Path, PathBuf};
use toml_edit::{Document, DocumentMut, Item, Table, TableLike};

/// A scenario read from disk with its overrides applied and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scenario: Scenario,
    /// The file it came from.
    pub path: PathBuf,
    /// `scenario.name`, or the file stem when the file gives none.
    pub name: String,
}

/// Reads, overrides (`--set dotted.key=value`, applied in order) and validates a scenario.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, Failure> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{origin}: cannot read scenario: {e}")))?;
    let scenario = parse(&text, &origin, sets)?;
    let name = match &scenario.name {
        Some(name) => name.clone(),
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_name(&stem).map_err(|e| {
                Failure::bad_input(format!(
                    "{origin}: name: the run is named after the file, but {e}; set name = \"...\" in the file"
                ))
            })?;
            stem
        }
    };
    Ok(Loaded {
        scenario,
        path: path.to_path_buf(),
        name,
    })
}

/// Parses scenario text; `origin` names it in errors (usually the file path).
pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Scenario, Failure> {
    let doc = Document::parse(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let (line, col) = line_col(text, at);
        Failure::bad_input(format!(
            "{origin}:{line}:{col}: TOML syntax: {}",
            one_line(e.message())
        ))
    })?;
    let file = Blame {
        origin,
        file: &doc,
        text,
        doc: &doc,
        sets: &[],
    };
    let scenario = file.typed()?;
    if sets.is_empty() {
        return Ok(scenario);
    }

    let overrides = sets
        .iter()
        .map(|raw| Override::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut edited: DocumentMut = doc.clone().into_mut();
    for o in &overrides {
        o.apply(&mut edited)?;
    }
    // Re-parse the edited text so that errors can be mapped back to keys.
    let text = edited.to_string();
    let edited = Document::parse(text.as_str()).map_err(|e| {
        Failure::bad_input(format!(
            "--set: the overrides give invalid TOML: {}",
            one_line(e.message())
        ))
    })?;
    Blame {
        origin,
        file: &doc,
        text: &text,
        doc: &edited,
        sets: &overrides,
    }
    .typed()
}

/// One text to check and who answers for each key in it: a `--set` that touched
/// the key, else the file.
struct Blame<'a> {
    origin: &'a str,
    /// The file as written, to place keys when no `--set` touched them.
    file: &'a Document<&'a str>,
    /// The text being checked: the file, or the file with the overrides applied.
    text: &'a str,
    /// Spanned parse of `text`, for error spans -> keys.
    doc: &'a Document<&'a str>,
    sets: &'a [Override],
}

impl Blame<'_> {
    /// Deserializes and checks the text, or the first type error / every semantic error.
    fn typed(&self) -> Result<Scenario, Failure> {
        let scenario: Scenario = toml::from_str(self.text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let key = at.map(|at| key_at(self.doc, at)).unwrap_or_default();
            let message = tidy_serde_message(e.message(), &key);
            Failure::bad_input(self.line(&key, &[], at, &message))
        })?;
        let issues = validate::check(&scenario);
        if issues.is_empty() {
            return Ok(scenario);
        }
        let lines: Vec<String> = issues
            .iter()
            .map(|i| self.line(&i.key, &i.also, None, &i.message))
            .collect();
        Err(Failure::bad_input(lines.join("\n")))
    }

    /// `<where>: <key>: <message>`. `at` is the error's own offset when known;
    /// otherwise the key (or a related key, or its section) is looked up.
    fn line(&self, key: &KeyPath, also: &[KeyPath], at: Option<usize>, message: &str) -> String {
        let keyed = if key.0.is_empty() {
            message.to_string()
        } else {
            format!("{key}: {message}")
        };
        let suspects = || std::iter::once(key).chain(also);
        if let Some(set) = self
            .sets
            .iter()
            .rev()
            .find(|o| suspects().any(|k| k.related(&o.key)))
        {
            return format!("--set {}: {keyed}", set.shown);
        }
        // An offset only means something in the file itself, not in the edited text.
        let at = at.filter(|_| self.sets.is_empty());
        let text = self.file.raw();
        let at = at
            .or_else(|| suspects().find_map(|k| find(self.file, k)))
            .or_else(|| {
                // Not written in the file: point at its section, if that is.
                std::iter::successors(key.parent(), KeyPath::parent)
                    .find_map(|p| find(self.file, &p))
            });
        match at {
            Some(at) => {
                let (line, col) = line_col(text, at);
                format!("{}:{line}:{col}: {keyed}", self.origin)
            }
            None => format!("{}: {keyed}", self.origin),
        }
    }
}

/// One `--set KEY=VALUE`.
#[derive(Debug)]
struct Override {
    /// As the user wrote it, with the value hidden if the key looks like a secret.
    shown: String,
    key: KeyPath,
    keys: Vec<String>,
    value: toml_edit::Value,
}

impl Override {
    fn parse(raw: &str) -> Result<Override, Failure> {
        let Some((key, value)) = raw.split_once('=') else {
            return Err(Failure::bad_input(format!(
                "--set {raw}: expected KEY=VALUE, e.g. --set fleet.clusters=32"
            )));
        };
        let key = key.trim();
        let keys: Vec<String> = key.split('.').map(str::to_string).collect();
        let shown = if keys.last().is_some_and(|k| validate::is_credential_key(k)) {
            format!("{key}=<hidden>")
        } else {
            raw.to_string()
        };
        let bare = |k: &String| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !keys.iter().all(bare) {
            return Err(Failure::bad_input(format!(
                "--set {shown}: `{key}` is not a dotted key (names of letters, digits, `_` or `-` joined by `.`)"
            )));
        }
        // A TOML value if it is one (32, true, ["1GiB"], "5m"), else the text itself
        // (so `run.duration=5m` and `fleet.client=containerd` need no quotes).
        let value = value.trim();
        let value = value
            .parse::<toml_edit::Value>()
            .unwrap_or_else(|_| toml_edit::Value::from(value));
        Ok(Override {
            shown,
            key: KeyPath(keys.iter().cloned().map(locate::Seg::Key).collect()),
            keys,
            value,
        })
    }

    fn apply(&self, doc: &mut DocumentMut) -> Result<(), Failure> {
        let Some((last, parents)) = self.keys.split_last() else {
            return Ok(()); // `parse` never yields an empty key
        };
        let mut table: &mut dyn TableLike = doc.as_table_mut();
        for (depth, name) in parents.iter().enumerate() {
            if !table.contains_key(name) {
                let mut new = Table::new();
                new.set_implicit(true);
                table.insert(name, Item::Table(new));
            }
            table = match table.get_mut(name).and_then(Item::as_table_like_mut) {
                Some(t) => t,
                None => {
                    let path = parents[..=depth].join(".");
                    return Err(Failure::bad_input(format!(
                        "--set {}: {path}: holds a value, not a table",
                        self.shown
                    )));
                }
            };
        }
        table.insert(last, Item::Value(self.value.clone()));
        Ok(())
    }
}

/// Rewords serde's messages in the scenario's terms: keys rather than fields,
/// the accepted names without backticks, tables rather than Rust structs.
fn tidy_serde_message(message: &str, key: &KeyPath) -> String {
    let message = one_line(message);
    let quoted = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = quoted(rest);
        let mut out = if rest.contains("there are no fields") {
            "unknown key (this table takes no keys)".to_string()
        } else {
            format!(
                "unknown key (expected one of {})",
                names[1.min(names.len())..].join(", ")
            )
        };
        if key.last_key().is_some_and(validate::is_credential_key) {
            out.push_str("; ");
            out.push_str(CREDENTIALS_HINT);
        }
        return out;
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        if let Some((value, expected)) = quoted(rest).split_first() {
            return format!(
                "unknown value {value:?} (expected one of {})",
                expected.join(", ")
            );
        }
    }
    // toml's words for a non-string where a name (`dockerd`, `herd`...) belongs.
    if message == "wanted string or table" {
        return "invalid type, expected a string".into();
    }
    match message.split_once(", expected struct ") {
        Some((head, _)) => format!("{head}, expected a table"),
        None => message,
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
