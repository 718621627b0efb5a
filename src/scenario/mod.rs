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
pub mod push;
mod thresholds;
pub mod units;
pub mod validate;

pub use crate::oci::reference::check_reference;
pub use model::*;
pub use thresholds::{PathCheck, FIXED_KEYS as FIXED_THRESHOLD_KEYS};
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

/// One override from the command line: a `--set KEY=VALUE`, or an option that
/// stands for one (`--target URL` is `target.url=URL`). Errors blamed on it
/// name what the user typed: `--set fleet.clusters=abc`, or `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// `KEY=VALUE`, the value in TOML syntax or a bare word.
    pub assignment: String,
    /// The option that gave it (`--target`), or `None` for a `--set`.
    pub option: Option<&'static str>,
}

impl Set {
    /// A `--set KEY=VALUE` as typed.
    pub fn typed(assignment: impl Into<String>) -> Set {
        Set {
            assignment: assignment.into(),
            option: None,
        }
    }

    /// `option VALUE` standing for `key = "VALUE"` (quoted as a TOML string).
    pub fn from_option(option: &'static str, key: &str, value: &str) -> Set {
        let mut quoted = String::new();
        for c in value.chars() {
            match c {
                '\\' => quoted.push_str("\\\\"),
                '"' => quoted.push_str("\\\""),
                c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
                c => quoted.push(c),
            }
        }
        Set {
            assignment: format!("{key}=\"{quoted}\""),
            option: Some(option),
        }
    }
}

/// Reads, overrides (`--set dotted.key=value`, applied in order) and validates a scenario.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, Failure> {
    let sets: Vec<Set> = sets.iter().map(Set::typed).collect();
    load_with(path, &sets)
}

/// [`load`] with overrides that may come from options such as `--target`.
pub fn load_with(path: &Path, sets: &[Set]) -> Result<Loaded, Failure> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{origin}: cannot read scenario: {e}")))?;
    let scenario = parse_with(&text, &origin, sets)?;
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
    let sets: Vec<Set> = sets.iter().map(Set::typed).collect();
    parse_with(text, origin, &sets)
}

/// [`parse`] with overrides that may come from options such as `--target`.
pub fn parse_with(text: &str, origin: &str, sets: &[Set]) -> Result<Scenario, Failure> {
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
    let mut scenario = file.typed()?;
    if sets.is_empty() {
        file.soak_has_duration(&scenario)?;
        file.push_has_target(&scenario)?;
        scenario.fill_defaults();
        return Ok(scenario);
    }

    let overrides = sets
        .iter()
        .map(Override::parse)
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
    let blame = Blame {
        origin,
        file: &doc,
        text: &text,
        doc: &edited,
        sets: &overrides,
    };
    let mut scenario = blame.typed()?;
    blame.soak_has_duration(&scenario)?;
    blame.push_has_target(&scenario)?;
    scenario.fill_defaults();
    Ok(scenario)
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

    /// A soak ends when its duration does, so the duration must be chosen, not
    /// the default: written in the file or given with `--set` (checked on the
    /// final text, after the overrides).
    fn soak_has_duration(&self, s: &Scenario) -> Result<(), Failure> {
        let key = KeyPath::parse("run.duration");
        let given = find(self.doc, &key).is_some() || self.sets.iter().any(|o| o.key == key);
        if s.arrival.pattern != Pattern::Soak || given {
            return Ok(());
        }
        let also = [KeyPath::parse("arrival.pattern")];
        let message =
            "must be set when arrival.pattern = \"soak\": a soak runs until its duration ends";
        Err(Failure::bad_input(self.line(&key, &also, None, message)))
    }

    /// Pushers need a registry that accepts pushes: the embedded one serves its
    /// synthetic image only. Checked on the final text, so `--target` counts.
    fn push_has_target(&self, s: &Scenario) -> Result<(), Failure> {
        if s.push.runners == 0 || s.target.url.is_some() {
            return Ok(());
        }
        let key = KeyPath::parse("push.runners");
        let also = [KeyPath::parse("target.url")];
        let message = "needs target.url (or --target): the embedded registry serves its \
                       synthetic image and accepts no pushes";
        Err(Failure::bad_input(self.line(&key, &also, None, message)))
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
            // `--target: <what>`: the option is the key, no need to name target.url.
            if set.option.is_some() && *key == set.key {
                return format!("{}: {message}", set.blame());
            }
            return format!("{}: {keyed}", set.blame());
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

/// One `--set KEY=VALUE`, or an option standing for one.
#[derive(Debug)]
struct Override {
    /// As the user wrote it, with the value hidden if the key looks like a secret.
    shown: String,
    /// The option that gave it (`--target`), when it was not a `--set`.
    option: Option<&'static str>,
    key: KeyPath,
    keys: Vec<String>,
    value: toml_edit::Value,
}

impl Override {
    /// How errors name it: `--set KEY=VALUE` or the option (`--target`).
    fn blame(&self) -> String {
        match self.option {
            Some(option) => option.to_string(),
            None => format!("--set {}", self.shown),
        }
    }

    fn parse(set: &Set) -> Result<Override, Failure> {
        let raw = set.assignment.as_str();
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
            option: set.option,
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
                        "{}: {path}: holds a value, not a table",
                        self.blame()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(sets: &[Set]) -> String {
        parse_with("", "x.toml", sets).unwrap_err().message
    }

    #[test]
    fn errors_about_an_option_name_the_option_not_a_set() {
        let target = Set::from_option("--target", "target.url", "localhost:5000");
        let image = Set::from_option("--image", "target.image", "lab/big:v1");
        let message = error(&[target.clone(), image.clone()]);
        assert!(
            message.starts_with("--target: not a URL: missing http:// or https://"),
            "{message}"
        );
        assert!(!message.contains("--set"), "{message}");
        // A --set of the same key is named as typed.
        let message = error(&[Set::typed("target.url=localhost:5000"), image.clone()]);
        assert!(
            message.starts_with("--set target.url=localhost:5000: target.url: not a URL"),
            "{message}"
        );
        let image = Set::from_option("--image", "target.image", "Lab/Big");
        let target = Set::from_option("--target", "target.url", "http://127.0.0.1:5000");
        assert!(error(&[target, image]).starts_with("--image: `Lab` is not a valid"));
    }

    /// The embedded registry accepts no pushes: pushers without a target are refused
    /// at their key, and `--target` given on the command line is enough.
    #[test]
    fn pushers_need_a_target_that_accepts_pushes() {
        let text = "[push]\nrunners = 2\n";
        let message = parse(text, "x.toml", &[]).unwrap_err().message;
        assert!(
            message.starts_with("x.toml:2:11: push.runners: needs target.url"),
            "{message}"
        );
        let target = Set::from_option("--target", "target.url", "http://127.0.0.1:5000");
        let image = Set::from_option("--image", "target.image", "lab/app:v1");
        let s = parse_with(text, "x.toml", &[target, image]).unwrap();
        assert_eq!(s.push.runners, 2);
    }

    /// Without thresholds a failed pull fails a run, but not a staircase: breaking the
    /// target is what it is for; a gate on its knee is a path threshold.
    #[test]
    fn a_staircase_has_no_default_limit_on_failed_pulls() {
        let parsed = |text: &str| parse(text, "x.toml", &[]).unwrap().thresholds;
        assert_eq!(parsed("").max_failed_pulls, Some(0));
        let staircase = "[fleet]\nclusters = 1\nnodes_per_cluster = 8\n\
                         [arrival]\npattern = \"staircase\"\nstart_nodes = 2\nstep_nodes = 2\n\
                         step_hold = \"10s\"\n[run]\nduration = \"1m\"\n";
        assert_eq!(parsed(staircase).max_failed_pulls, None);
        let gated = format!("{staircase}[thresholds]\n\"capacity.knee_nodes\" = \">= 4\"\n");
        assert_eq!(parsed(&gated).max_failed_pulls, None);
    }

    /// Client releases and their aliases; the kubelet's default follows the client and is
    /// written into the scenario as run; its keys' errors name file, line and key.
    #[test]
    fn client_releases_and_kubelet_defaults() {
        let parsed = |text: &str| parse(text, "x.toml", &[]).unwrap();
        let s = parsed("");
        assert_eq!(s.fleet.client, ClientKind::Dockerd27);
        assert_eq!(s.kubelet.pull_retries, Some(PullRetries::Count(0)));
        let s = parsed("[fleet]\nclient = \"containerd\"\n");
        assert_eq!(s.fleet.client, ClientKind::Containerd2_2);
        assert_eq!(s.kubelet.pull_retries, Some(PullRetries::Unlimited));
        let s = parsed("[fleet]\nclient = \"containerd-1.6\"\n[kubelet]\npull_retries = 0\n");
        assert_eq!(s.kubelet.pull_retries, Some(PullRetries::Count(0)));
        let s = parsed("[kubelet]\npull_retries = \"unlimited\"\n");
        assert_eq!(s.kubelet.pull_retries, Some(PullRetries::Unlimited));
        let resolved = serde_json::to_value(&s).unwrap();
        assert_eq!(resolved["kubelet"]["pull_retries"], "unlimited");
        assert_eq!(resolved["fleet"]["client"], "dockerd-27");

        let error = |text: &str| parse(text, "x.toml", &[]).unwrap_err().message;
        let e = error("[kubelet]\npull_retries = \"forever\"\n");
        assert!(
            e.starts_with("x.toml:2:16: kubelet.pull_retries:") && e.contains("\"unlimited\""),
            "{e}"
        );
        let e = error("[kubelet]\npull_retries = -1\n");
        assert!(
            e.contains("kubelet.pull_retries") && e.contains("not a count"),
            "{e}"
        );
        let e = error("[kubelet]\njitter = 1.5\n");
        assert!(
            e.starts_with("x.toml:2:10: kubelet.jitter: 1.5 is not a share"),
            "{e}"
        );
        let e = error("[fleet]\nclient = \"containerd\"\n[kubelet]\npull_backoff = 0\n");
        assert!(
            e.contains("kubelet.pull_backoff: must be more than 0"),
            "{e}"
        );
        // A count of re-pulls may go at once.
        parsed("[fleet]\nclient = \"containerd\"\n[kubelet]\npull_backoff = 0\npull_retries = 3\n");
        let e = error("[client]\nconfig_attempts = 0\ngets_per_failed_attempt = 0\n");
        assert!(
            e.contains("client.config_attempts: must be at least 1"),
            "{e}"
        );
        assert!(
            e.contains("client.gets_per_failed_attempt: must be at least 1"),
            "{e}"
        );
        let e = error("[client]\nbackoff_shape = \"cubic\"\n");
        assert!(e.contains("expected one of linear, doubling"), "{e}");
    }

    #[test]
    fn option_values_are_quoted_whatever_they_hold() {
        let ca = Set::from_option("--ca-file", "target.ca_file", "C:\\ca \"x\".pem");
        let s = parse_with("", "x.toml", &[ca]).unwrap();
        assert_eq!(
            s.target.ca_file.as_deref(),
            Some(Path::new("C:\\ca \"x\".pem"))
        );
        let odd = Set::from_option("--target", "target.url", "http://h\n/\u{1b}[2J");
        let message = error(&[odd]);
        assert!(message.starts_with("--target: "), "{message}");
    }
}
