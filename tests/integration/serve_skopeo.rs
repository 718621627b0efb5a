//! Cross-check with a real client: skopeo pulls the synthetic image from the
//! embedded registry (in-process) into a `dir:` layout, and every file it
//! wrote must hash to the digest the synthetic image announced. This proves
//! the manifests, configs, tar layers, content negotiation and the bearer
//! token flow are what a containers/image client accepts.
//!
//! skopeo is required: run `scripts/test-deps.sh` (as root) to install it.

use pullstorm::registry::{start, Credentials, EmbeddedConfig};
use pullstorm::scenario::EmbeddedAuth;
use pullstorm::synth::{sha256_digest, SynthDoc, SyntheticImage};
use std::path::Path;
use std::process::Command;

fn config(
    index: bool,
    auth: EmbeddedAuth,
    token_credentials: Option<Credentials>,
) -> EmbeddedConfig {
    EmbeddedConfig {
        layer_sizes: vec![3 << 20, 100_000, 3000],
        seed: 2024,
        index,
        auth,
        token_credentials,
        ..EmbeddedConfig::default()
    }
}

fn skopeo_copy(port: u16, dest: &Path, extra: &[&str]) {
    let found = Command::new("skopeo")
        .arg("--version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "skopeo is not installed: run scripts/test-deps.sh (as root) to install the test dependencies"
    );
    let out = Command::new("skopeo")
        .args([
            "--override-arch",
            "amd64",
            "--override-os",
            "linux",
            "copy",
            "--src-tls-verify=false",
        ])
        .args(extra)
        .arg(format!("docker://127.0.0.1:{port}/synthetic/app:v1"))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn file_digest(path: &Path) -> String {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("skopeo did not write {}: {e}", path.display()));
    sha256_digest(&bytes)
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("sha256 digest")
}

/// The layers and `config` are in `dir`, named by digest hex, with the right content.
fn assert_blobs(dir: &Path, image: &SyntheticImage, config: &SynthDoc) {
    for layer in &image.layers {
        let path = dir.join(hex(&layer.digest));
        assert_eq!(
            std::fs::metadata(&path).map(|m| m.len()).ok(),
            Some(layer.size),
            "{}",
            path.display()
        );
        assert_eq!(file_digest(&path), layer.digest);
    }
    assert_eq!(file_digest(&dir.join(hex(&config.digest))), config.digest);
}

async fn pull(
    config: EmbeddedConfig,
    extra: &[&str],
) -> (tempfile::TempDir, std::sync::Arc<SyntheticImage>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let registry = start(listener, config).await.expect("start registry");
    let port = registry.addr().port();
    let dest = tempfile::tempdir().expect("tempdir");
    let path = dest.path().join("out");
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        skopeo_copy(port, &path, &extra)
    })
    .await
    .expect("skopeo task");
    let image = registry.image().clone();
    registry.shutdown().await;
    (dest, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_the_single_manifest_image() {
    let (dest, image) = pull(config(false, EmbeddedAuth::None, None), &[]).await;
    let dir = dest.path().join("out");
    assert_eq!(
        file_digest(&dir.join("manifest.json")),
        image.manifest.digest
    );
    assert_blobs(&dir, &image, &image.config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_picks_amd64_from_the_index() {
    let (dest, image) = pull(config(true, EmbeddedAuth::None, None), &[]).await;
    let dir = dest.path().join("out");
    assert_eq!(
        file_digest(&dir.join("manifest.json")),
        image.manifest.digest
    );
    assert_blobs(&dir, &image, &image.config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_the_whole_index() {
    let (dest, image) = pull(config(true, EmbeddedAuth::None, None), &["--all"]).await;
    let dir = dest.path().join("out");
    assert_eq!(file_digest(&dir.join("manifest.json")), image.index.digest);
    for doc in [&image.manifest, &image.arm64_manifest] {
        let path = dir.join(format!("{}.manifest.json", hex(&doc.digest)));
        assert_eq!(file_digest(&path), doc.digest);
    }
    assert_blobs(&dir, &image, &image.config);
    assert_blobs(&dir, &image, &image.arm64_config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_follows_the_bearer_flow_with_credentials() {
    let creds = Credentials {
        user: "puller".into(),
        password: "hunter2".into(),
    };
    let (dest, image) = pull(
        config(false, EmbeddedAuth::Bearer, Some(creds)),
        &["--src-creds", "puller:hunter2"],
    )
    .await;
    let dir = dest.path().join("out");
    assert_eq!(
        file_digest(&dir.join("manifest.json")),
        image.manifest.digest
    );
    assert_blobs(&dir, &image, &image.config);
}
