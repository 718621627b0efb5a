//! `pullstorm verify` (docs/verify.md): the fast cases against the embedded registry
//! (`pullstorm serve` with its faults: a sound image, a corrupt layer, a cut body, a
//! missing manifest), the exit codes of bad input and of a registry that does not answer,
//! and, `#[ignore]`d like the fault matrix, a real docker-registry whose blob data is
//! deleted on disk.

use crate::common::*;
use crate::instances::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const IMAGE: &str = "lab/verify:v1";
const LAYERS: &str = "256KiB,64KiB";
const SIZES: [u64; 2] = [256 << 10, 64 << 10];
const SEED: u64 = 7;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pullstorm-verify-")
        .tempdir()
        .unwrap()
}

/// `pullstorm serve` with the test's image and `faults`, on a free port.
fn serve(dir: &Path, faults: &[&str]) -> (Daemon, String) {
    serve_with(dir, faults, &[])
}

/// [`serve`] with environment variables (the token endpoint's password).
fn serve_with(dir: &Path, faults: &[&str], env: &[(&str, &str)]) -> (Daemon, String) {
    let port = free_port();
    let mut cmd = bin();
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--layers", LAYERS, "--seed", &SEED.to_string()])
        .args(faults);
    let daemon = Daemon::spawn("serve", cmd, &dir.join("serve"));
    // 200, or 401 with --auth bearer: it answers.
    wait_until("pullstorm serve", Duration::from_secs(30), || {
        http_status(port, "/v2/").is_some()
    });
    (daemon, format!("http://127.0.0.1:{port}"))
}

/// What one `pullstorm verify` did: exit code, stdout, stderr, and its JSON report.
struct Verified {
    code: i32,
    stdout: String,
    stderr: String,
    report: Option<Value>,
}

impl Verified {
    fn findings(&self) -> Vec<Value> {
        self.report.as_ref().expect("a JSON report")["findings"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The findings about `digest` (or tag), as `kind` names.
    fn kinds_of(&self, reference: &str) -> Vec<String> {
        self.findings()
            .iter()
            .filter(|f| f["reference"] == reference)
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    }
}

fn verify(dir: &Path, registry: &str, images: &[&str], extra: &[&str]) -> Verified {
    verify_with(dir, registry, images, extra, &[])
}

/// [`verify`] with environment variables (credentials).
fn verify_with(
    dir: &Path,
    registry: &str,
    images: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Verified {
    std::fs::create_dir_all(dir).unwrap();
    let json = dir.join(format!("verify-{}.json", free_port()));
    let out = bin()
        .env_remove("PULLSTORM_USERNAME")
        .env_remove("PULLSTORM_PASSWORD")
        .envs(env.iter().copied())
        .args([
            "verify",
            "--registry",
            registry,
            "--timeout",
            "20s",
            "--json",
        ])
        .arg(&json)
        .arg("--image")
        .args(images)
        .args(extra)
        .output()
        .unwrap();
    Verified {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: std::fs::read_to_string(&json)
            .ok()
            .map(|t| serde_json::from_str(&t).expect("the report is JSON")),
    }
}

#[test]
fn a_sound_image_is_consistent_and_the_report_says_what_was_checked() {
    let dir = tmp();
    let (_serve, url) = serve(dir.path(), &[]);
    let v = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("verify: consistent"), "{}", v.stdout);
    let report = v.report.as_ref().unwrap();
    assert_eq!(report["consistent"], true);
    assert_eq!(report["checked"]["tags"], 1);
    assert_eq!(report["checked"]["manifests"], 1);
    assert_eq!(report["checked"]["blobs"], 3, "config and two layers");
    let image = synthetic(SEED, &SIZES);
    let bytes = image.total_layer_bytes() + image.config.bytes.len() as u64;
    assert_eq!(report["checked"]["blob_bytes"], bytes);
}

#[test]
fn a_corrupt_layer_is_a_digest_mismatch_naming_the_blob() {
    let dir = tmp();
    let (_serve, url) = serve(dir.path(), &["--corrupt"]);
    let v = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let image = synthetic(SEED, &SIZES);
    for layer in &image.layers {
        assert_eq!(v.kinds_of(&layer.digest), ["digest_mismatch"]);
        let line = format!("digest_mismatch layer lab/verify@{}: GET 200", layer.digest);
        assert!(v.stdout.contains(&line), "{line} in\n{}", v.stdout);
    }
    assert!(
        v.kinds_of(&image.config.digest).is_empty(),
        "the config is sound"
    );
    assert_eq!(v.findings().len(), 2);
    assert!(v
        .stdout
        .contains("INCONSISTENT: 2 finding(s) (2 digest_mismatch)"));
}

#[test]
fn a_cut_body_is_a_size_mismatch_with_what_came() {
    let dir = tmp();
    let (_serve, url) = serve(dir.path(), &["--cut-after", "100KiB"]);
    let v = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let image = synthetic(SEED, &SIZES);
    let first = v
        .findings()
        .into_iter()
        .find(|f| f["reference"] == image.layers[0].digest.as_str())
        .expect("a finding on the 256 KiB layer");
    assert_eq!(first["kind"], "size_mismatch");
    assert_eq!(first["expected_size"], 256 << 10);
    assert_eq!(first["got_size"], 100 << 10);
    assert!(
        v.kinds_of(&image.config.digest).is_empty(),
        "513 bytes are not cut"
    );
}

#[test]
fn a_missing_tag_and_a_missing_index_child_are_manifest_unknown() {
    let dir = tmp();
    let (_tag, url) = serve(
        &dir.path().join("tag"),
        &["--status", "404", "--status-on", "manifest"],
    );
    let v = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert_eq!(v.kinds_of("v1"), ["manifest_unknown"]);
    assert!(
        v.stdout
            .contains("manifest_unknown tag lab/verify:v1: GET 404 MANIFEST_UNKNOWN"),
        "{}",
        v.stdout
    );
    assert_eq!(v.findings()[0]["code"], "MANIFEST_UNKNOWN");

    // An index whose amd64 child is gone: the tag and the index answer, the child does
    // not; the arm64 child and its blobs are still checked.
    let faults = [
        "--index",
        "--status",
        "404",
        "--status-on",
        "manifest",
        "--status-after",
        "2",
        "--status-times",
        "1",
    ];
    let (_index, url) = serve(&dir.path().join("index"), &faults);
    let v = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let image = synthetic(SEED, &SIZES);
    assert_eq!(v.kinds_of(&image.manifest.digest), ["manifest_unknown"]);
    assert_eq!(v.findings().len(), 1, "{}", v.stdout);
    assert_eq!(v.findings()[0]["object"], "index_child");
    let report = v.report.unwrap();
    assert_eq!(report["checked"]["manifests"], 3, "index and both children");
    assert_eq!(
        report["checked"]["blobs"], 3,
        "the arm64 config and the layers"
    );
}

#[test]
fn bad_input_exits_2_and_a_registry_that_does_not_answer_exits_3() {
    let dir = tmp();
    let bare = verify(dir.path(), "127.0.0.1:5000", &[IMAGE], &[]);
    assert_eq!(bare.code, 2, "{}", bare.stderr);
    assert!(bare.stderr.contains("--registry:"), "{}", bare.stderr);
    let bad_ref = verify(dir.path(), "http://127.0.0.1:1", &["Not/A:Ref:x"], &[]);
    assert_eq!(bad_ref.code, 2, "{}", bad_ref.stderr);
    assert!(
        bad_ref.stderr.contains("--image \"Not/A:Ref:x\""),
        "{}",
        bad_ref.stderr
    );
    let jobs = verify(dir.path(), "http://127.0.0.1:1", &[IMAGE], &["--jobs", "0"]);
    assert_eq!(jobs.code, 2, "{}", jobs.stderr);
    // A port nobody listens on: nothing to verify, and no report claiming otherwise.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let gone = verify(dir.path(), &nobody, &[IMAGE], &[]);
    assert_eq!(gone.code, 3, "{}", gone.stderr);
    assert!(gone.stderr.contains("cannot be reached"), "{}", gone.stderr);
    assert!(gone.report.is_none());
}

/// Credentials from the environment go through the nodes' auth (a Bearer challenge, a
/// token fetched with Basic credentials); the password is never printed nor written, and a
/// URL carrying one is refused with the password masked.
#[test]
fn credentials_reach_a_token_registry_and_are_never_printed_or_written() {
    let dir = tmp();
    let password = "hunter2-not-printed";
    let (_serve, url) = serve_with(
        dir.path(),
        &["--corrupt", "--auth", "bearer", "--token-user", "someone"],
        &[("PULLSTORM_SERVE_PASSWORD", password)],
    );
    let creds = [
        ("PULLSTORM_USERNAME", "someone"),
        ("PULLSTORM_PASSWORD", password),
    ];
    let v = verify_with(dir.path(), &url, &[IMAGE], &[], &creds);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    let findings = v.findings();
    assert_eq!(
        findings.len(),
        2,
        "the two corrupt layers, nothing refused: {}",
        v.stdout
    );
    assert!(findings.iter().all(|f| f["kind"] == "digest_mismatch"));
    let report = serde_json::to_string(v.report.as_ref().unwrap()).unwrap();
    for text in [&v.stdout, &v.stderr, &report] {
        assert!(!text.contains(password), "{text}");
    }

    // Without credentials the token endpoint refuses: nothing can be said about the
    // registry (exit 3, no report), never "consistent".
    let anonymous = verify(dir.path(), &url, &[IMAGE], &[]);
    assert_eq!(anonymous.code, 3, "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("refused the credentials"),
        "{}",
        anonymous.stderr
    );
    assert!(anonymous.report.is_none());

    let in_url = url.replace("http://", &format!("http://someone:{password}@"));
    let refused = verify(dir.path(), &in_url, &[IMAGE], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(!refused.stderr.contains(password), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the URL holds credentials"),
        "{}",
        refused.stderr
    );
}

// ---------------------------------------------------------------------------------------
// A real docker-registry

/// The data file of `digest` in a registry's filesystem storage.
pub fn blob_data(storage: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    storage
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[test]
#[ignore = "needs the lab's docker-registry: scripts/lab.sh up installs it"]
fn a_layer_whose_data_is_deleted_on_disk_is_named_by_its_digest() {
    let dir = tmp();
    let registry = Registry::with_image(&dir.path().join("registry"), IMAGE, LAYERS, SEED);
    let v = verify(dir.path(), &registry.url(), &[IMAGE], &[]);
    assert_eq!(
        v.code, 0,
        "a freshly pushed image: {}{}",
        v.stdout, v.stderr
    );

    let image = synthetic(SEED, &SIZES);
    let layer = &image.layers[0].digest;
    let data = blob_data(&registry.storage(), layer);
    std::fs::remove_file(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));

    // The registry's in-memory descriptor cache still knows the blob: the HEAD says it
    // exists and the GET sends a 200 without the bytes (or a 404, if the cache missed).
    let cached = verify(dir.path(), &registry.url(), &[IMAGE], &[]);
    eprintln!("data deleted, cache warm:\n{}", cached.stdout);
    assert_eq!(cached.code, 1, "{}{}", cached.stdout, cached.stderr);
    let kinds = cached.kinds_of(layer);
    assert_eq!(kinds.len(), 1, "{}", cached.stdout);
    assert!(
        ["empty_body", "head_get_disagree", "blob_unknown"].contains(&kinds[0].as_str()),
        "{}",
        cached.stdout
    );
    assert_eq!(
        cached.findings().len(),
        1,
        "only that layer: {}",
        cached.stdout
    );

    // A fresh process, no cache: the storage answers, and the blob is unknown to both.
    let registry = registry.restart();
    let cold = verify(dir.path(), &registry.url(), &[IMAGE], &[]);
    eprintln!("data deleted, cache cold:\n{}", cold.stdout);
    assert_eq!(cold.code, 1, "{}{}", cold.stdout, cold.stderr);
    assert_eq!(cold.kinds_of(layer), ["blob_unknown"]);
    let finding = &cold.findings()[0];
    assert_eq!(finding["status"], 404);
    assert_eq!(finding["code"], "BLOB_UNKNOWN");
    assert_eq!(finding["repository"], "lab/verify");
    let line = format!("blob_unknown layer lab/verify@{layer}: GET 404 BLOB_UNKNOWN (HEAD 404)");
    assert!(cold.stdout.contains(&line), "{line} in\n{}", cold.stdout);
}
