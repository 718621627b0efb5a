//! A registry on object storage, as Harbor on S3/OBS runs it (docs/lab.md "Object
//! storage"): the real docker-registry with its S3 driver against moto's S3 server on
//! loopback, Basic auth on, storage redirects on, so every blob GET is a 307 to a
//! presigned URL of the storage host. Pulls must follow the redirects without sending the
//! registry's Authorization to the storage, which the storage's own request log shows;
//! a blob the storage refuses behind its signed URL must be a fault and a `verify` finding
//! that carry the storage's error code (goharbor/harbor#23050).
//!
//! `#[ignore]`d: they need docker-registry (the lab's packages) and moto's server (PyPI,
//! scripts/test-deps.sh); scripts/test.sh runs them.

use crate::common::*;
use crate::instances::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

const IMAGE: &str = "lab/s3:v1";
const LAYERS: &str = "2MiB,512KiB";
const SIZES: [u64; 2] = [2 << 20, 512 << 10];
const SEED: u64 = 23;
/// Blobs one pull fetches: the config and the layers.
const BLOBS_PER_PULL: u64 = 1 + SIZES.len() as u64;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pullstorm-s3-")
        .tempdir()
        .unwrap()
}

/// The lab's test credentials, for every pullstorm command against the registry.
fn credentials() -> [(&'static str, &'static str); 2] {
    [
        ("PULLSTORM_USERNAME", LAB_USER),
        ("PULLSTORM_PASSWORD", LAB_PASSWORD),
    ]
}

/// `pullstorm seed` of the test's image through the registry (which stores it in the bucket).
fn seed_image(registry: &str) {
    let out = bin()
        .envs(credentials())
        .args(["seed", "--registry", registry, "--image", IMAGE])
        .args(["--layers", LAYERS, "--seed", &SEED.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pullstorm run` of `nodes` dockerd nodes, one pull each, with the lab's credentials.
fn pull(dir: &Path, registry: &str, nodes: u32) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("scenario.toml");
    std::fs::write(
        &file,
        format!(
            "[fleet]\nclusters = 1\nnodes_per_cluster = {nodes}\nclient = \"dockerd\"\n\
             [client]\nbackoff = \"100ms\"\n[kubelet]\npull_retries = 0\n[run]\nduration = \"60s\"\n"
        ),
    )
    .unwrap();
    let child = bin()
        .envs(credentials())
        .arg("run")
        .arg(&file)
        .args(["--target", registry, "--image", IMAGE, "--quiet", "--out"])
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_run(child, dir)
}

/// Presigned GETs the storage received: requests whose query carries a SigV4 signature.
fn presigned_gets(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| r["method"] == "GET")
        .filter(|r| r["url"].as_str().unwrap_or("").contains("X-Amz-Signature="))
        .collect()
}

/// The request's header `name` (any case), if it has one.
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"].as_object().and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    })
}

#[test]
#[ignore = "lab: docker-registry with the S3 driver and moto's S3 server (scripts/test.sh)"]
fn pulls_follow_storage_redirects_without_the_registrys_authorization() {
    let dir = tmp();
    let s3 = S3Registry::start(dir.path());
    seed_image(&s3.url());
    let before = presigned_gets(&s3.storage_requests()).len();

    let nodes = 3;
    let run = pull(&dir.path().join("run"), &s3.url(), nodes);
    let r = run.result();
    assert_eq!(
        run.code,
        0,
        "{}\n{}\nregistry log:\n{}",
        run.stderr,
        error_summary(&r),
        s3.registry_log()
    );
    assert_eq!(r["pulls"]["completed"], nodes, "{}", error_summary(&r));
    let blobs = r["layers"]["completed"].as_u64().unwrap();
    assert_eq!(blobs, u64::from(nodes) * BLOBS_PER_PULL);
    // Every blob came through a redirect to the storage host, and its GET there is timed
    // apart from the registry's 307.
    assert_eq!(r["redirects"]["followed"], blobs, "{}", r["redirects"]);
    assert_eq!(r["redirects"]["to_storage"], blobs, "{}", r["redirects"]);
    assert_eq!(r["latency"]["storage_ttfb"]["count"], blobs);
    assert_eq!(r["latency"]["ttfb"]["count"], blobs);
    assert!(r["latency"]["storage_connect"]["count"].as_u64().unwrap() >= 1);
    assert!(
        run.stdout
            .contains(&format!("redirects {blobs} followed, {blobs} to storage")),
        "{}",
        run.stdout
    );

    // The storage's own log: the pulls' presigned GETs arrived, none with an Authorization
    // (the registry's Basic credentials stayed with the registry).
    let requests = s3.storage_requests();
    let gets = presigned_gets(&requests);
    assert!(
        gets.len() - before >= blobs as usize,
        "{} presigned GETs at the storage for {blobs} blobs",
        gets.len() - before
    );
    for g in &gets {
        assert_eq!(
            header(g, "authorization"),
            None,
            "a presigned GET carried an Authorization: {g}"
        );
    }
    // Nothing at all reached the storage with the registry's credentials (the registry's
    // own S3 calls are signed with its S3 keys, AWS4-HMAC-SHA256).
    for r in &requests {
        let auth = header(r, "authorization").unwrap_or("");
        assert!(
            !auth.starts_with("Basic") && !auth.starts_with("Bearer"),
            "the registry's credentials reached the storage: {} {}",
            r["method"],
            r["url"]
        );
    }

    // verify walks the image through the same redirects (HEADs are redirected too).
    let report = dir.path().join("verify.json");
    let out = verify(&s3.url(), &report);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "lab: docker-registry with the S3 driver and moto's S3 server (scripts/test.sh)"]
fn a_blob_the_storage_refuses_is_a_storage_fault_and_finding_with_its_error_code() {
    let dir = tmp();
    let s3 = S3Registry::start(dir.path());
    seed_image(&s3.url());
    let layer = synthetic(SEED, &SIZES).layers[0].digest.clone();
    // Archived behind the registry's back: it still lists the blob and redirects to it;
    // the storage answers the presigned URL with 403 InvalidObjectState.
    s3.archive(&layer);
    let storage = format!("storage 127.0.0.1:{}", s3.storage_port);

    let run = pull(&dir.path().join("run"), &s3.url(), 1);
    let r = run.result();
    assert_ne!(run.code, 0, "the pull of an archived layer must fail");
    assert_eq!(r["pulls"]["failed"], 1, "{}", error_summary(&r));
    assert!(errors(&r, "storage_403") >= 1, "{}", error_summary(&r));
    assert_eq!(errors(&r, "http_403"), 0, "{}", error_summary(&r));
    let sample = detail(&r, "storage_403")["sample"].as_str().unwrap_or("");
    assert!(
        sample.contains(&format!(
            "GET blob {layer} at {storage}: HTTP 403 InvalidObjectState"
        )),
        "{sample}"
    );
    // No signed URL in the detail: its signature is a credential while it lives.
    assert!(!sample.contains("X-Amz-Signature"), "{sample}");

    let report = dir.path().join("verify.json");
    let out = verify(&s3.url(), &report);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f["kind"], "storage_error", "{f}");
    assert_eq!(f["reference"], layer.as_str());
    assert_eq!(f["status"], 403);
    assert_eq!(f["code"], "InvalidObjectState");
    assert!(f["detail"].as_str().unwrap().starts_with(&storage), "{f}");
}

/// `pullstorm verify` of the test image with the registry's credentials, its JSON report at `report`.
fn verify(registry: &str, report: &std::path::Path) -> std::process::Output {
    bin()
        .envs(credentials())
        .args([
            "verify",
            "--registry",
            registry,
            "--timeout",
            "20s",
            "--json",
        ])
        .arg(report)
        .args(["--image", IMAGE])
        .output()
        .unwrap()
}
