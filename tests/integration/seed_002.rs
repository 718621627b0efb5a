//! Seed 002 reproduced with real components (docs/seeds.md): a docker-registry whose blob
//! descriptors are cached in Redis (the lab's `registry-redis` and `redis` templates, on
//! free ports of the test's own), an image whose data the storage loses while Redis keeps
//! saying it exists (the manifest deleted, then the real `registry garbage-collect`:
//! distribution/distribution#4269), a re-push that "succeeds" without uploading anything,
//! pulls that fail, `pullstorm verify` naming the exact manifest and blobs, and the fix
//! (`redis-cli FLUSHALL`, push again) after which verify passes and a pull completes.

use crate::common::*;
use crate::instances::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REPO: &str = "lab/seed002";
const LAYERS: &str = "1MiB,512KiB";
const SIZES: [u64; 2] = [1 << 20, 512 << 10];
const SEED: u64 = 2;

/// One dockerd node, one pull, no kubelet re-pulls.
const PULL: &str = "[fleet]\nclusters = 1\nnodes_per_cluster = 1\nclient = \"dockerd\"\n\
    [client]\nbackoff = \"100ms\"\n[kubelet]\npull_retries = 0\n[run]\nduration = \"60s\"\n";

/// redis-server and a docker-registry whose blob-descriptor cache is in it.
struct CachedRegistry {
    _redis: Daemon,
    registry: Daemon,
    port: u16,
    redis_port: u16,
}

impl CachedRegistry {
    fn start(dir: &Path) -> CachedRegistry {
        let p = free_ports(3);
        let (port, debug_port, redis_port) = (p[0], p[1], p[2]);
        let redis_env = [("LAB_PORT_REDIS", redis_port.to_string())];
        let redis_dir = dir.join("redis");
        let redis = Daemon::spawn(
            "redis",
            component("redis", &redis_dir, &redis_env),
            &redis_dir,
        );
        let started = CachedRegistry {
            _redis: redis,
            registry: Daemon::spawn(
                "registry-redis",
                component(
                    "registry-redis",
                    &dir.join("registry"),
                    &[
                        ("LAB_PORT_REDIS", redis_port.to_string()),
                        ("LAB_PORT_REGISTRY_REDIS", port.to_string()),
                        ("LAB_PORT_REGISTRY_REDIS_DEBUG", debug_port.to_string()),
                    ],
                ),
                &dir.join("registry"),
            ),
            port,
            redis_port,
        };
        wait_until("redis-server", Duration::from_secs(20), || {
            started.redis(&["PING"]) == "PONG"
        });
        wait_until("registry-redis", Duration::from_secs(20), || {
            http_status(port, "/v2/") == Some(200)
        });
        started
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn storage(&self) -> PathBuf {
        self.registry
            .dir
            .join("data/registry-redis/docker/registry/v2")
    }

    fn config(&self) -> PathBuf {
        self.registry.dir.join("conf/registry-redis.yml")
    }

    /// `redis-cli` against the test's redis, its answer trimmed.
    fn redis(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.redis_port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools, with redis-server)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether the cache holds the registry-wide descriptor of `digest`.
    fn cached(&self, digest: &str) -> bool {
        self.redis(&["EXISTS", &format!("blobs::{digest}")]) == "1"
    }

    /// `DELETE /v2/<repo>/manifests/<digest>`: the status.
    fn delete_manifest(&self, digest: &str) -> Option<u16> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "DELETE /v2/{REPO}/manifests/{digest} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    }

    /// The real `registry garbage-collect` on this registry's storage.
    fn garbage_collect(&self) -> String {
        let out = Command::new("docker-registry")
            .arg("garbage-collect")
            .arg(self.config())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "garbage-collect: {text}");
        text
    }
}

/// `pullstorm seed` of the test's image as `tag` in `format`: (exit code, stdout, stderr).
fn push(registry: &str, tag: &str, format: &str) -> (i32, String, String) {
    let out = bin()
        .args(["seed", "--registry", registry])
        .args(["--image", &format!("{REPO}:{tag}"), "--layers", LAYERS])
        .args(["--seed", &SEED.to_string(), "--format", format])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `pullstorm verify` of `images` (JSON report in `dir`): exit code, stdout, the report.
fn verify(dir: &Path, registry: &str, images: &[&str]) -> (i32, String, serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    let json = dir.join(format!("verify-{}.json", free_port()));
    let out = bin()
        .args(["verify", "--registry", registry, "--json"])
        .arg(&json)
        .arg("--image")
        .args(images)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("pullstorm verify {images:?}:\n{stdout}");
    let report = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_else(|e| {
            panic!(
                "no report ({e}): {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code().unwrap_or(-1), stdout, report)
}

/// The findings of a report about `reference`: (kind, object) pairs.
fn about(report: &serde_json::Value, reference: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["reference"] == reference)
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pull(dir: &Path, registry: &str, tag: &str) -> serde_json::Value {
    let r = run(dir, PULL, registry, &format!("{REPO}:{tag}"), &[]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    r.result()
}

#[test]
#[ignore = "needs the lab's docker-registry and redis-server: scripts/lab.sh up installs them"]
fn seed_002_a_stale_redis_cache_makes_a_re_push_succeed_and_every_pull_fail_until_it_is_flushed() {
    let dir = tempfile::Builder::new()
        .prefix("pullstorm-seed002-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    let r = CachedRegistry::start(&dir.join("lab"));
    let url = r.url();
    let image = synthetic(SEED, &SIZES);
    let layer = image.layers[0].digest.clone();
    let v1 = format!("{REPO}:v1");

    // 1. Pushed, pulled once, sound; Redis holds the blobs' descriptors.
    let (code, digest, err) = push(&url, "v1", "oci");
    assert_eq!(code, 0, "{err}");
    assert_eq!(digest, image.manifest.digest);
    let v = pull(&dir.join("pull-1"), &url, "v1");
    assert_eq!(u(&v, "pulls.completed"), 1, "{}", error_summary(&v));
    let (code, _, _) = verify(&dir.join("verify"), &url, &[&v1]);
    assert_eq!(code, 0);
    assert!(r.cached(&layer), "Redis caches the layer's descriptor");

    // 2. The manifest deleted and the real garbage collector run: the data is gone from
    // the storage, the descriptors stay in Redis (the collector never touches the cache).
    assert_eq!(r.delete_manifest(&digest), Some(202));
    let gc = r.garbage_collect();
    eprintln!("garbage-collect:\n{gc}");
    assert!(
        gc.contains(&format!("blob eligible for deletion: {layer}")),
        "{gc}"
    );
    let hex = layer.strip_prefix("sha256:").unwrap();
    let data = r
        .storage()
        .join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    assert!(
        !data.exists(),
        "{} deleted by the collector",
        data.display()
    );
    assert!(r.cached(&layer), "Redis still says the layer exists");

    // 3. The re-push "succeeds": every HEAD says the blob exists, nothing is uploaded,
    // and the manifest's own bytes are not written again either.
    let (code, again, err) = push(&url, "v1", "oci");
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, digest);
    assert!(err.contains(" 0 blobs uploaded"), "{err}");
    assert!(err.contains("3 already present"), "{err}");

    // 4. The tag answers MANIFEST_UNKNOWN, as in the seed; verify names it, and the
    // manifest by its digest.
    let pinned = format!("{REPO}@{digest}");
    let (code, out, report) = verify(&dir.join("verify"), &url, &[&v1, &pinned]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        about(&report, "v1"),
        [("manifest_unknown".into(), "tag".into())]
    );
    assert_eq!(
        about(&report, &digest),
        [("manifest_unknown".into(), "manifest".into())]
    );
    assert!(
        out.contains(&format!(
            "manifest_unknown tag {v1}: GET 404 MANIFEST_UNKNOWN"
        )),
        "{out}"
    );
    // A run's preflight resolves the tag as a puller does, and stops there (exit 3).
    let refused = run(&dir.join("pull-2"), PULL, &url, &v1, &[]);
    eprintln!(
        "pull of v1: exit {}: {}",
        refused.code,
        refused.stderr.trim()
    );
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("HTTP 404 MANIFEST_UNKNOWN"),
        "{}",
        refused.stderr
    );

    // 5. The same layers under a new manifest (docker schema 2, tag v2): that push
    // "succeeds" too, its manifest is served, and every blob is a 200 without bytes
    // (goharbor/harbor#19695). verify names each one by digest; the pull fails.
    let (code, v2_digest, err) = push(&url, "v2", "docker");
    assert_eq!(code, 0, "{err}");
    assert_eq!(v2_digest, image.docker_manifest.digest);
    assert!(err.contains(" 0 blobs uploaded"), "{err}");
    let v2 = format!("{REPO}:v2");
    let (code, out, report) = verify(&dir.join("verify"), &url, &[&v2]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 3, "{out}");
    for (i, l) in image.layers.iter().enumerate() {
        assert_eq!(
            about(&report, &l.digest),
            [("empty_body".into(), "layer".into())],
            "layer {i}: {out}"
        );
    }
    assert_eq!(
        about(&report, &image.config.digest),
        [("empty_body".into(), "config".into())]
    );
    let line = format!(
        "empty_body layer {REPO}@{layer}: GET 200, expected {} bytes, got 0",
        image.layers[0].size
    );
    assert!(out.contains(&line), "{line} in\n{out}");
    let v = pull(&dir.join("pull-3"), &url, "v2");
    eprintln!("pull of v2: {}", error_summary(&v));
    assert_eq!(u(&v, "pulls.failed"), 1, "{}", error_summary(&v));
    assert!(errors(&v, "unexpected_eof") >= 1, "{}", error_summary(&v));

    // 6. The fix: flush the cache, push again. The blobs are uploaded this time, verify
    // passes for both tags, and pulls complete.
    assert_eq!(r.redis(&["FLUSHALL"]), "OK");
    let (code, _, err) = push(&url, "v1", "oci");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(" 3 blobs uploaded"), "{err}");
    let (code, _, err) = push(&url, "v2", "docker");
    assert_eq!(code, 0, "{err}");
    let (code, out, report) = verify(&dir.join("verify"), &url, &[&v1, &v2]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["checked"]["blobs"], 3);
    for tag in ["v1", "v2"] {
        let v = pull(&dir.join(format!("pull-fixed-{tag}")), &url, tag);
        assert_eq!(u(&v, "pulls.completed"), 1, "{tag}: {}", error_summary(&v));
    }
}
