//! How `pullstorm run` ends when its surroundings misbehave, through the real
//! binary: a stdout closed early (`| head`), an output folder that cannot be
//! written or holds a previous run, one output file that cannot be written,
//! a `--target` without its scheme, `--ca-file`, and a registry whose error
//! text carries terminal control sequences.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;

/// A small run against the embedded registry: a second or so.
const SMALL: &str = "[embedded]\nlayers = [\"64KiB\"]\n[fleet]\nnodes_per_cluster = 2\n";

/// A port nothing listens on: bind one, note it, close it.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `scenario` with stdout a pipe whose reading end is closed at once,
/// as `pullstorm run ... | head -1` does once it has its line.
fn run_with_closed_stdout(dir: &Path, scenario: &str) -> (i32, String) {
    let file = dir.join("closed.toml");
    std::fs::write(&file, scenario).unwrap();
    let mut child = bin()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_closed_stdout_ends_the_output_quietly_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_with_closed_stdout(dir.path(), SMALL);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(dir.path().join("out/result.json").exists());

    // A failed gate keeps its 1 too.
    let dir = tempfile::tempdir().unwrap();
    let failing = format!("{SMALL}[thresholds]\nmin_throughput = \"1000GB/s\"\n");
    let (code, stderr) = run_with_closed_stdout(dir.path(), &failing);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unusable_output_folder_is_refused_before_the_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // The target is unreachable: a run that started would end with exit 3 at preflight.
    let target = format!("http://127.0.0.1:{}", closed_port());
    for out in [
        "/dev/null".to_string(),
        file.display().to_string(),
        "/proc/self/pullstorm".to_string(),
    ] {
        let scenario = dir.path().join("s.toml");
        std::fs::write(&scenario, "").unwrap();
        let run = bin()
            .arg("run")
            .arg(&scenario)
            .args([
                "--target", &target, "--image", "a/b:c", "--quiet", "--out", &out,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{out}: {stderr}");
        assert!(stderr.contains(&format!("--out {out}: ")), "{stderr}");
        assert!(!stderr.contains("unreachable"), "{stderr}");
    }
}

#[test]
fn a_previous_run_in_the_output_folder_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_scenario(dir.path(), "first", SMALL, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = std::fs::read(first.dir.join("result.json")).unwrap();
    let second = run_scenario(dir.path(), "second", SMALL, &[]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("previous run") && second.stderr.contains("--out "),
        "{}",
        second.stderr
    );
    assert_eq!(
        std::fs::read(first.dir.join("result.json")).unwrap(),
        before
    );
}

#[test]
fn an_output_file_that_cannot_be_written_does_not_lose_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where report.html should go: renaming the report onto it fails.
    let blocked = dir.path().join("out/report.html");
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), "x").unwrap();
    let r = run_scenario(dir.path(), "blocked", SMALL, &[]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("pullstorm: blocked - "), "{}", r.stdout);
    assert!(r.stdout.contains("2 completed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("report.html  NOT WRITTEN"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("cannot write") && r.stderr.contains("report.html"),
        "{}",
        r.stderr
    );
    assert_eq!(u(&r.result(), "pulls.completed"), 2);
    assert!(r.dir.join("latency.hlog").is_file());
    let leftovers: Vec<String> = std::fs::read_dir(&r.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_target_without_its_scheme_is_named_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(
        dir.path(),
        "noscheme",
        "",
        &["--target", "localhost:5000", "--image", "a/b:c"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--target: not a URL: missing http:// or https://"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--set"), "{}", r.stderr);
    assert!(!r.stderr.contains("scheme `localhost`"), "{}", r.stderr);
}

#[test]
fn run_takes_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let r = run_scenario(
        dir.path(),
        "ca",
        "",
        &[
            "--target",
            &format!("https://127.0.0.1:{}", closed_port()),
            "--image",
            "a/b:c",
            "--ca-file",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("missing-ca.pem: cannot read CA file"),
        "{}",
        r.stderr
    );
    // Against the embedded registry (plain http) the key is only recorded.
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "ca", SMALL, &["--ca-file", "lab/ca.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.result()["scenario"]["resolved"]["target"]["ca_file"],
        "lab/ca.pem"
    );
}

/// Answers every request with a 500 whose registry error message holds
/// terminal control sequences: clear the screen, set the title, ring the bell.
fn hostile_registry() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"\u001b[2J\u001b]0;pwned\u0007\rpullstorm: OK"}]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_registrys_control_sequences_are_shown_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let port = hostile_registry();
    let r = run_scenario(
        dir.path(),
        "hostile",
        "",
        &[
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--image",
            "a/b:c",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("UNKNOWN"), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}') && !r.stderr.contains('\r'),
        "{:?}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("\\x1b[2J\\x1b]0;pwned\\x07\\rpullstorm: OK"),
        "{}",
        r.stderr
    );
}
