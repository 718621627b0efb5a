//! Helpers shared by the integration tests: run the real `pullstorm` binary
//! on a scenario written to a temp folder, and read back its result.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Run {
    pub fn result(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join("result.json"))
            .unwrap_or_else(|e| panic!("no result.json ({e}); stderr:\n{}", self.stderr));
        serde_json::from_str(&text).expect("result.json is JSON")
    }

    pub fn report(&self) -> String {
        std::fs::read_to_string(self.dir.join("report.html")).expect("report.html written")
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pullstorm"))
}

fn finish(out: Output, dir: PathBuf) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

/// Writes `scenario` as `<dir>/<name>.toml` and runs it with `--out <dir>/out` and extra args.
pub fn run_scenario(dir: &Path, name: &str, scenario: &str, extra: &[&str]) -> Run {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, scenario).unwrap();
    let out_dir = dir.join("out");
    let out = bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .arg("--quiet")
        .args(extra)
        .output()
        .expect("pullstorm runs");
    finish(out, out_dir)
}

pub fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not an unsigned number: {cur}"))
}

/// Every `errors` counter except the listed ones must be zero.
pub fn only_errors(v: &Value, allowed: &[&str]) {
    for (class, count) in v["errors"].as_object().expect("errors object") {
        if !allowed.contains(&class.as_str()) {
            assert_eq!(
                count.as_u64(),
                Some(0),
                "unexpected errors.{class} = {count}: {}",
                v["error_details"]
            );
        }
    }
}
