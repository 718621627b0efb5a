//! A sharded storm against a real registry, as four pods on four nodes would
//! run it: each shard of `pullstorm run --shard I/4 --start-at T` in its own
//! container with its own address on a private Docker network, against a real
//! docker-registry in another container, seeded by `pullstorm seed`; then
//! `pullstorm merge` of their results, checked against the same scenario run
//! by one process: the same pulls and bytes (the plan is deterministic), the
//! merged histograms those of every shard's pulls, one report, and merges of
//! overlapping, foreign or incomplete sets refused. Containers and the
//! network go whatever happens (a Drop guard).
//!
//! Needs a Docker engine and the image `pullstorm:local`, built here by
//! `scripts/pullstorm-image.sh` from the lab's debootstrapped base (no image
//! registry). `#[ignore]`d; `scripts/test.sh` runs it.

use crate::common::{bin, u, wait_until};
use pullstorm::result::model::decode_histogram;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

const IMAGE: &str = "pullstorm:local";
const SHARDS: u32 = 4;

/// What the test started: removed on drop, whatever happened.
struct Docker {
    network: String,
    containers: Vec<String>,
}

impl Drop for Docker {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn merge(inputs: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("merge")
        .args(inputs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("pullstorm merge runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
#[ignore = "needs a Docker engine and the lab image (scripts/test.sh runs it)"]
fn four_shards_in_containers_merge_into_the_storm_of_one_process() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let image = Command::new(root.join("scripts/pullstorm-image.sh"))
        .env("PULLSTORM_BIN", env!("CARGO_BIN_EXE_pullstorm"))
        .env("PULLSTORM_IMAGE", IMAGE)
        .output()
        .expect("scripts/pullstorm-image.sh runs");
    ok(&image, "scripts/pullstorm-image.sh");

    let tag = format!("pullstorm-dist-{}", std::process::id());
    let mut env = Docker {
        network: tag.clone(),
        containers: Vec::new(),
    };
    ok(
        &docker(&["network", "create", &tag]),
        "docker network create",
    );
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let mount = format!("{}:/work", work.display());

    // The registry under test: the lab image's docker-registry, its own container, without
    // the Debian package's htpasswd auth.
    std::fs::write(
        work.join("registry.yml"),
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n\
         http:\n  addr: :5000\n",
    )
    .unwrap();
    let registry = format!("{tag}-registry");
    env.containers.push(registry.clone());
    ok(
        &docker(&[
            "run",
            "-d",
            "--name",
            &registry,
            "--network",
            &tag,
            "--entrypoint",
            "docker-registry",
            "-v",
            &mount,
            IMAGE,
            "serve",
            "/work/registry.yml",
        ]),
        "docker run registry",
    );
    wait_until("the registry answers /v2/", Duration::from_secs(60), || {
        docker(&[
            "exec",
            &registry,
            "curl",
            "-sf",
            "http://127.0.0.1:5000/v2/",
        ])
        .status
        .success()
    });
    // Seeded over the network, as a pod would.
    let url = format!("http://{registry}:5000");
    let seeded = docker(&[
        "run",
        "--rm",
        "--network",
        &tag,
        IMAGE,
        "seed",
        "--registry",
        &url,
        "--image",
        "dist/app:v1",
        "--layers",
        "16MiB,4MiB,1MiB",
    ]);
    ok(&seeded, "pullstorm seed");

    std::fs::write(
        work.join("storm.toml"),
        format!(
            "name = \"distributed\"\n\
             [target]\nurl = \"{url}\"\nimage = \"dist/app:v1\"\n\
             [fleet]\nclusters = 8\nnodes_per_cluster = 2\n\
             [arrival]\npattern = \"herd\"\n\
             [run]\nduration = \"120s\"\n"
        ),
    )
    .unwrap();
    let run_in = |name: &str, detach: bool, args: &[&str]| {
        let mut all = vec!["run"];
        if detach {
            all.push("-d");
        }
        all.extend([
            "--name",
            name,
            "--network",
            &tag,
            "-v",
            &mount,
            IMAGE,
            "run",
            "/work/storm.toml",
            "--quiet",
        ]);
        all.extend(args);
        docker(&all)
    };

    // The same storm by one process.
    let single = format!("{tag}-single");
    env.containers.push(single.clone());
    ok(
        &run_in(&single, false, &["--out", "/work/single"]),
        "the one-process run",
    );

    // Four shards, one container (one address) each, one start time a few seconds ahead.
    let start = SystemTime::now() + Duration::from_secs(8);
    let start_at = humantime::format_rfc3339_millis(start).to_string();
    let mut shard_dirs = Vec::new();
    let mut addresses = Vec::new();
    for i in 0..SHARDS {
        let name = format!("{tag}-shard-{i}");
        env.containers.push(name.clone());
        let shard = format!("{i}/{SHARDS}");
        let out = format!("/work/shard-{i}");
        ok(
            &run_in(
                &name,
                true,
                &["--shard", &shard, "--start-at", &start_at, "--out", &out],
            ),
            "docker run shard",
        );
        shard_dirs.push(work.join(format!("shard-{i}")));
        // Its address while it waits for the start time (an exited container has none).
        addresses.push(ok(
            &docker(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &name,
            ]),
            "inspect",
        ));
    }
    for i in 0..SHARDS {
        let name = format!("{tag}-shard-{i}");
        wait_until(
            &format!("shard {i} to exit"),
            Duration::from_secs(150),
            || {
                ok(
                    &docker(&["inspect", "-f", "{{.State.Status}}", &name]),
                    "inspect",
                ) == "exited"
            },
        );
        let exit = ok(
            &docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]),
            "inspect",
        );
        let logs = docker(&["logs", &name]);
        assert_eq!(
            exit,
            "0",
            "shard {i}: {}",
            String::from_utf8_lossy(&logs.stderr)
        );
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        SHARDS as usize,
        "one address per shard: {addresses:?}"
    );

    let one = read(&work.join("single/result.json"));
    let shards: Vec<Value> = shard_dirs
        .iter()
        .map(|d| read(&d.join("result.json")))
        .collect();
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(u(s, "shard.index"), i as u64);
        assert_eq!(u(s, "shard.nodes"), 4, "8 clusters x 2 nodes over 4 shards");
        assert_eq!(s["shard"]["whole_clusters"], true);
        assert_eq!(s["shard"]["start_at"], Value::String(start_at.clone()));
        assert!(s["shard"]["started_late_ms"].is_u64(), "{}", s["shard"]);
    }

    let merged_dir = work.join("merged");
    let merged_run = merge(&shard_dirs, &merged_dir, &["--quiet"]);
    assert_eq!(
        code(&merged_run),
        0,
        "{}",
        String::from_utf8_lossy(&merged_run.stderr)
    );
    let m = read(&merged_dir.join("result.json"));

    // Counts exactly as one process: same plan, same pulls, same bytes.
    for key in [
        "pulls.planned",
        "pulls.started",
        "pulls.completed",
        "pulls.failed",
        "fleet.nodes",
        "bytes.completed_pulls",
        "bytes.downloaded",
        "layers.completed",
    ] {
        assert_eq!(u(&m, key), u(&one, key), "{key}");
    }
    assert_eq!(u(&m, "pulls.completed"), 16);
    assert_eq!(m["complete"], true);
    assert!(m.get("shard").is_none());
    assert_eq!(m["merged_from"].as_array().unwrap().len(), SHARDS as usize);
    assert_eq!(m["clusters"].as_array().unwrap().len(), 8);

    // Latency: the merged histogram is every shard's pulls, bucket for bucket.
    for metric in ["pull", "ttfb", "layer"] {
        let Some(text) = m["histograms"][metric].as_str() else {
            continue;
        };
        let merged = decode_histogram(text).unwrap();
        let mut union =
            decode_histogram(shards[0]["histograms"][metric].as_str().unwrap()).unwrap();
        for s in &shards[1..] {
            union
                .add(decode_histogram(s["histograms"][metric].as_str().unwrap()).unwrap())
                .unwrap();
        }
        assert_eq!(merged.len(), union.len(), "{metric}");
        for q in [0.5, 0.9, 0.99, 1.0] {
            assert!(
                merged.equivalent(merged.value_at_quantile(q), union.value_at_quantile(q)),
                "{metric} q{q}"
            );
        }
        let p50 = m["latency"][metric]["p50"].as_f64().unwrap();
        assert!(
            merged.equivalent((p50 * 1000.0) as u64, union.value_at_quantile(0.5)),
            "{metric}: the percentiles are read from the merged histogram"
        );
    }
    // Against the single run only loosely: the timing of 4 processes is not that of one.
    let (p50, p50_one) = (
        m["latency"]["pull"]["p50"].as_f64().unwrap(),
        one["latency"]["pull"]["p50"].as_f64().unwrap(),
    );
    assert!(
        p50 < p50_one * 20.0 && p50_one < p50 * 20.0,
        "p50 {p50} vs {p50_one} ms"
    );
    let report = std::fs::read_to_string(merged_dir.join("report.html")).unwrap();
    assert!(report.contains("<svg") && report.contains("distributed"));
    assert!(merged_dir.join("latency.hlog").is_file());

    // It loads in compare like any result.
    let compared = bin()
        .arg("compare")
        .arg(work.join("single"))
        .arg(&merged_dir)
        .output()
        .unwrap();
    assert!(
        [0, 1].contains(&code(&compared)),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );

    // Refused with exit 2, the files named.
    let twice = [
        shard_dirs[0].clone(),
        shard_dirs[0].clone(),
        shard_dirs[1].clone(),
    ];
    let e = merge(&twice, &work.join("m-twice"), &[]);
    assert_eq!(code(&e), 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("given twice"));
    let foreign = [shard_dirs[0].clone(), work.join("single")];
    let e = merge(&foreign, &work.join("m-foreign"), &[]);
    assert_eq!(code(&e), 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not a shard's result"));
    let e = merge(&shard_dirs[..3], &work.join("m-partial"), &[]);
    assert_eq!(code(&e), 2);
    assert!(String::from_utf8_lossy(&e.stderr).contains("shard 3 of 4 missing"));
    let partial = merge(
        &shard_dirs[..3],
        &work.join("m-partial"),
        &["--quiet", "--allow-partial"],
    );
    let p = read(&work.join("m-partial/result.json"));
    assert_eq!(
        p["complete"],
        false,
        "{}",
        String::from_utf8_lossy(&partial.stderr)
    );
    assert_eq!(p["missing_shards"], serde_json::json!([3]));
    assert_eq!(u(&p, "pulls.completed"), 12);
    drop(env);
}

/// The same without containers: two shards and one process against the embedded registry on
/// loopback, one start time, merged; counts equal, a start time in the past is lateness.
#[test]
fn two_shards_against_the_embedded_registry_merge_into_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let scenario = work.join("pair.toml");
    std::fs::write(
        &scenario,
        "name = \"pair\"\n[embedded]\nlayers = [\"1MiB\", \"256KiB\"]\n\
         [fleet]\nclusters = 3\nnodes_per_cluster = 2\n[run]\nduration = \"60s\"\n",
    )
    .unwrap();
    let run = |out: &str, extra: &[&str]| {
        let o = bin()
            .arg("run")
            .arg(&scenario)
            .arg("--quiet")
            .arg("--out")
            .arg(work.join(out))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{out}: {}", String::from_utf8_lossy(&o.stderr));
        read(&work.join(out).join("result.json"))
    };
    let one = run("single", &[]);
    // Already past: each shard starts at once and says how late.
    let start_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let a = run("a", &["--shard", "0/2", "--start-at", &start_at]);
    let b = run("b", &["--shard", "1/2", "--start-at", &start_at]);
    // 3 clusters over 2 shards: whole clusters, 2 and 1.
    assert_eq!(a["shard"]["clusters"], serde_json::json!([0, 1]));
    assert_eq!(b["shard"]["clusters"], serde_json::json!([2]));
    assert!(u(&b, "shard.started_late_ms") >= u(&a, "shard.started_late_ms"));
    let out = merge(
        &[work.join("b"), work.join("a")],
        &work.join("m"),
        &["--quiet"],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let m = read(&work.join("m/result.json"));
    for key in [
        "pulls.planned",
        "pulls.completed",
        "bytes.completed_pulls",
        "bytes.downloaded",
        "fleet.nodes",
    ] {
        assert_eq!(u(&m, key), u(&one, key), "{key}");
    }
    assert_eq!(u(&m, "latency.pull.count"), 6);
    assert_eq!(m["merged_from"][0]["index"], 0, "in shard order");
}
