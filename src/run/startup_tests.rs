//! Startup obeys the deadline and the shutdown future: a target that accepts
//! connections and never answers the manifest, and an embedded image too big
//! to hash in any test's time, each stop the run promptly with an empty,
//! incomplete result. Bounds are far above the expected time and far below
//! what the run would take without the fix (the transport's 300 s response
//! timeout, or hashing 64 GiB).

use super::*;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Far more than a stopped startup needs, far less than what it stopped.
const BOUND: Duration = Duration::from_secs(20);

fn options(toml: &str, dir: &Path) -> RunOptions {
    let path = dir.join("startup.toml");
    let origin = path.display().to_string();
    RunOptions {
        loaded: scenario::Loaded {
            scenario: scenario::parse(toml, &origin, &[]).expect("valid scenario"),
            path,
            name: "startup".into(),
        },
        overrides: Vec::new(),
        out_dir: Some(dir.join("out")),
        quiet: true,
        watch: WatchSpec::default(),
        metrics: None,
        sharding: Default::default(),
    }
}

/// A registry that answers `GET /v2/` and then never answers anything else
/// (the manifest request hangs). Returns its URL and a receiver told of
/// each request that was left hanging.
async fn hanging_registry() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (hung, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let hung = hung.clone();
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    if path == "/v2/" {
                        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        let _ = conn.write_all(ok.as_bytes()).await;
                        continue;
                    }
                    let _ = hung.send(path);
                    // Hold the connection open, answering nothing.
                    let _ = conn.read(&mut buf).await;
                    std::future::pending::<Caught>().await;
                }
            }));
        }
    });
    (url, rx)
}

fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/result.json")).expect("result.json written");
    serde_json::from_str(&text).expect("result.json is JSON")
}

fn assert_stopped_before_any_pull(v: &serde_json::Value, reason: &str) {
    assert_eq!(v["stop_reason"], reason);
    assert_eq!(v["complete"], false);
    for key in ["started", "completed", "failed"] {
        assert_eq!(v["pulls"][key], 0, "pulls.{key}: {}", v["pulls"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_a_manifest_that_never_comes() {
    let (url, _hung) = hanging_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let toml =
        format!("[target]\nurl = \"{url}\"\nimage = \"lab/app:v1\"\n[run]\nduration = \"1s\"\n");
    let code = tokio::time::timeout(
        BOUND,
        execute(options(&toml, dir.path()), std::future::pending::<Caught>()),
    )
    .await
    .expect("the run stops within the bound")
    .expect("a result, not an error");
    assert_ne!(code, crate::exit::OK, "an incomplete run does not pass");
    let v = result(dir.path());
    assert_stopped_before_any_pull(&v, "deadline");
    assert_eq!(v["target"]["url"], format!("{url}/"));
    assert_eq!(v["target"]["embedded"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_future_stops_a_manifest_that_never_comes() {
    let (url, mut hung) = hanging_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let toml =
        format!("[target]\nurl = \"{url}\"\nimage = \"lab/app:v1\"\n[run]\nduration = \"10m\"\n");
    // Ctrl-C once the manifest request is hanging.
    let shutdown = async move {
        hung.recv().await;
        Caught::Interrupt
    };
    let code = tokio::time::timeout(BOUND, execute(options(&toml, dir.path()), shutdown))
        .await
        .expect("the run stops within the bound")
        .expect("a result, not an error");
    assert_eq!(code, Caught::Interrupt.exit_code());
    assert_stopped_before_any_pull(&result(dir.path()), "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_future_stops_a_big_embedded_image_build() {
    let dir = tempfile::tempdir().unwrap();
    // 64 GiB hashes for minutes (far longer in a debug build).
    let toml = "[embedded]\nlayers = [\"64GiB\"]\n[run]\nduration = \"10m\"\n";
    // A Ctrl-C already waiting when the build starts: the build must notice it.
    let shutdown = std::future::ready(Caught::Interrupt);
    tokio::time::timeout(BOUND, execute(options(toml, dir.path()), shutdown))
        .await
        .expect("the run stops within the bound")
        .expect("a result, not an error");
    let v = result(dir.path());
    assert_stopped_before_any_pull(&v, "interrupted");
    assert_eq!(v["target"]["embedded"], true);
    assert_eq!(v["target"]["blobs"].as_array().map(Vec::len), Some(0));
}
