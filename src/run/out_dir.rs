//! The output folder of a run, claimed before the first node starts: a run
//! that cannot write its result must say so at once (exit 2), not after
//! minutes of storm.
//!
//! Claiming creates the folder if needed and writes (then removes) a probe
//! file in it, so a read-only folder, a path that is a file (`/dev/null`), or
//! one under `/proc` is refused before anything runs. A folder that already
//! holds a `result.json` is refused too: a second run would overwrite one
//! file and leave the other's beside it, a mix of two runs. (JMeter refuses
//! a non-empty `-o` folder the same way; other files than a previous result
//! are left alone, so `--out .` still works.) The default folder,
//! `reports/<name>-<UTC timestamp>/`, takes a `-2`, `-3`, ... suffix instead
//! when two runs start in the same second.

use crate::exit::Failure;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file whose presence marks a folder as holding a previous run.
const PREVIOUS_RUN: &str = "result.json";

/// A claimed output folder.
#[derive(Debug)]
pub(super) struct OutDir {
    pub path: PathBuf,
    /// Folders the claim created, deepest first: removed again by
    /// [`OutDir::release`] when the run ends before writing anything.
    created: Vec<PathBuf>,
}

impl OutDir {
    /// `--out DIR` when given (refused when unusable or holding a previous
    /// run), else the default folder for `name` at `now`.
    pub fn claim(out: Option<&Path>, name: &str, now: SystemTime) -> Result<OutDir, Failure> {
        match out {
            Some(path) => claim_at(path, "--out "),
            None => {
                let base = default_out_dir(name, now);
                let mut path = base.clone();
                for n in 2.. {
                    if !path.join(PREVIOUS_RUN).exists() {
                        break;
                    }
                    path = PathBuf::from(format!("{}-{n}", base.display()));
                }
                claim_at(&path, "the output folder ")
            }
        }
    }

    /// Removes the folders the claim created, when they are still empty:
    /// a run refused by preflight leaves no empty folder behind.
    pub fn release(&self) {
        for dir in &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates `path` (and its missing parents) and checks a file can be written
/// in it. `named` prefixes errors (`--out `).
fn claim_at(path: &Path, named: &str) -> Result<OutDir, Failure> {
    let shown = crate::terminal::escape(&path.display().to_string()).into_owned();
    let refuse = |what: String| Failure::bad_input(format!("{named}{shown}: {what}"));
    if path.exists() && !path.is_dir() {
        return Err(refuse(
            "exists and is not a folder; give --out a folder to write result.json and report.html into".into(),
        ));
    }
    if path.join(PREVIOUS_RUN).exists() {
        return Err(refuse(format!(
            "holds the {PREVIOUS_RUN} of a previous run; choose another --out (or remove that run's files) so two runs are not mixed"
        )));
    }
    let created = missing_ancestors(path);
    std::fs::create_dir_all(path)
        .map_err(|e| refuse(format!("cannot create the output folder: {e}")))?;
    let claimed = OutDir {
        path: path.to_path_buf(),
        created,
    };
    if let Err(e) = probe(path) {
        claimed.release();
        return Err(refuse(format!("cannot write in the output folder: {e}")));
    }
    Ok(claimed)
}

/// `path` and those of its parents that do not exist yet, deepest first.
fn missing_ancestors(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Writes and removes a small file in `dir`, as the outputs will be written.
fn probe(dir: &Path) -> std::io::Result<()> {
    let file = dir.join(format!(".pullstorm-probe.{}.tmp", std::process::id()));
    let written = std::fs::write(&file, b"pullstorm");
    let _ = std::fs::remove_file(&file);
    written
}

/// `reports/<name>-<UTC timestamp>/`.
fn default_out_dir(name: &str, at: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(path: &Path) -> Result<OutDir, Failure> {
        OutDir::claim(Some(path), "unit", SystemTime::now())
    }

    #[test]
    fn unusable_paths_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let below_a_file = file.join("below-a-file");
        for path in [
            Path::new("/dev/null"),
            file.as_path(),
            below_a_file.as_path(),
            Path::new("/proc/self/pullstorm-out"),
        ] {
            let f = claim(path).expect_err(&path.display().to_string());
            assert_eq!(f.code, crate::exit::BAD_INPUT);
            assert!(
                f.message
                    .starts_with(&format!("--out {}: ", path.display())),
                "{}",
                f.message
            );
        }
    }

    #[test]
    fn a_previous_result_is_not_mixed_with_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("result.json"), "{}").unwrap();
        let f = claim(dir.path()).unwrap_err();
        assert_eq!(f.code, crate::exit::BAD_INPUT);
        assert!(f.message.contains("previous run"), "{}", f.message);
        // Other files do not make it a previous run's folder.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("notes.txt"), "x").unwrap();
        claim(other.path()).unwrap();
    }

    #[test]
    fn a_claim_creates_the_folder_and_a_release_removes_it_if_empty() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let out = claim(&deep).unwrap();
        assert!(deep.is_dir());
        let left: Vec<_> = std::fs::read_dir(&deep).unwrap().collect();
        assert!(left.is_empty(), "the probe was removed: {left:?}");
        out.release();
        assert!(!dir.path().join("a").exists());
        // A folder that existed before is never removed.
        let out = claim(dir.path()).unwrap();
        out.release();
        assert!(dir.path().is_dir());
    }

    #[test]
    fn the_default_folder_is_named_after_the_run_and_the_time() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            default_out_dir("quickstart", at),
            PathBuf::from("reports/quickstart-20231114T221320Z")
        );
    }
}
