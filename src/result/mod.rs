//! The run's result: `result.json` (schema `pullstorm/result/v1`, documented in
//! docs/result-schema.md, its JSON Schema generated into docs/result.schema.json),
//! its thresholds, the console summary, and the atomic file writes every output
//! goes through.

pub mod build;
pub mod leak;
pub mod model;
pub mod pushes;
pub mod schema;
pub mod summary;
pub mod thresholds;
pub mod watched;

pub use model::{ResultDoc, SCHEMA};

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` whole or not at all: a temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
