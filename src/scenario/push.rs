//! `[push]`: CI runners that push images while (or before) the fleet pulls —
//! a release, where CI pushes tag B as the clusters pull tag A. Each runner
//! pushes one synthetic image with dockerd's push rules (docs/clients.md,
//! "Pushes"): its uploads `max_concurrent_uploads` at a time, each blob tried
//! up to `max_attempts` times with a linear back-off, from byte 0 again
//! unless `resume` asks the upload URL where it stands.

use super::units::{ByteSize, Span};
use super::Scenario;
use serde::{Deserialize, Serialize};

/// Most runners one run pushes with.
pub const MAX_RUNNERS: u32 = 1000;

/// The pushers of a scenario; `runners = 0` (the default) pushes nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    /// CI runners pushing, each one image.
    #[serde(default)]
    pub runners: u32,
    /// Repository the runners push to.
    #[serde(default = "default_repository")]
    pub repository: String,
    /// Tag each runner pushes; `{runner}` is replaced by its number (0, 1, ...).
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Layer sizes of the pushed image; absent = `embedded.layers`.
    #[serde(default)]
    pub layers: Option<Vec<ByteSize>>,
    /// Content seed; absent = `embedded.seed` (the pulled synthetic image's blobs, so they
    /// exist already or can be mounted).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `per_runner` (runner n uses seed + n: every blob is new) or `shared` (one image
    /// for all: later runners find blobs present).
    #[serde(default)]
    pub content: PushContent,
    /// Blob uploads at once per runner (dockerd's `max-concurrent-uploads`, default 5).
    #[serde(default = "default_uploads")]
    pub max_concurrent_uploads: u32,
    /// Bytes per PATCH; absent = the whole blob in one PATCH, as dockerd sends it.
    #[serde(default)]
    pub chunk_size: Option<ByteSize>,
    /// Try a cross-repository mount from this repository before uploading each blob.
    #[serde(default)]
    pub mount_from: Option<String>,
    /// When the runners start, from the run's start.
    #[serde(default)]
    pub start_after: Span,
    /// `docker` (schema 2, what dockerd pushes) or `oci`.
    #[serde(default)]
    pub format: PushFormat,
    /// Attempts per blob, the first included (dockerd: 5).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Pause after failed attempt n is n x this (dockerd: 5 s, so 5, 10, 15, 20 s).
    #[serde(default = "default_backoff")]
    pub backoff: Span,
    /// After a failed PATCH, ask the upload URL (`GET`) where it stands and go on from
    /// there, as the distribution spec allows; dockerd does not (it starts the blob over).
    #[serde(default)]
    pub resume: bool,
}

impl Default for PushSection {
    fn default() -> Self {
        PushSection {
            runners: 0,
            repository: default_repository(),
            tag: default_tag(),
            layers: None,
            seed: None,
            content: PushContent::default(),
            max_concurrent_uploads: default_uploads(),
            chunk_size: None,
            mount_from: None,
            start_after: Span::default(),
            format: PushFormat::default(),
            max_attempts: default_attempts(),
            backoff: default_backoff(),
            resume: false,
        }
    }
}

fn default_repository() -> String {
    "ci/app".into()
}

fn default_tag() -> String {
    "build-{runner}".into()
}

fn default_uploads() -> u32 {
    5
}

fn default_attempts() -> u32 {
    5
}

fn default_backoff() -> Span {
    Span(std::time::Duration::from_secs(5))
}

/// Whether the runners push the same content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushContent {
    #[default]
    PerRunner,
    Shared,
}

/// The manifest format pushed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    #[default]
    Docker,
    Oci,
}

impl PushSection {
    /// No runners: nothing pushes.
    pub fn is_off(&self) -> bool {
        self.runners == 0
    }

    /// The tag runner `runner` pushes.
    pub fn tag_of(&self, runner: u32) -> String {
        self.tag.replace("{runner}", &runner.to_string())
    }

    /// Layer sizes pushed: the section's, else the embedded image's.
    pub fn layer_sizes(&self, s: &Scenario) -> Vec<u64> {
        self.layers
            .as_ref()
            .unwrap_or(&s.embedded.layers)
            .iter()
            .map(|b| b.0)
            .collect()
    }

    /// The content seed of runner `runner`.
    pub fn seed_of(&self, s: &Scenario, runner: u32) -> u64 {
        let base = self.seed.unwrap_or(s.embedded.seed);
        match self.content {
            PushContent::PerRunner => base.wrapping_add(u64::from(runner)),
            PushContent::Shared => base,
        }
    }
}

/// `[push]`'s problems as (key, message), for `validate::check`.
pub fn problems(s: &Scenario) -> Vec<(String, String)> {
    let p = &s.push;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, message: String| out.push((format!("push.{key}"), message));
    if p.runners > MAX_RUNNERS {
        add(
            "runners",
            format!(
                "{} runners, more than the {MAX_RUNNERS} one run pushes with",
                p.runners
            ),
        );
    }
    if !crate::oci::name::is_repository_name(&p.repository) {
        add(
            "repository",
            format!(
                "{:?} is not a repository name (lowercase path components like ci/app)",
                p.repository
            ),
        );
    }
    for runner in [0, p.runners.saturating_sub(1)] {
        let tag = p.tag_of(runner);
        if !crate::oci::name::is_tag(&tag) {
            add(
                "tag",
                format!("{tag:?} is not a tag (letters, digits, `_.-`, at most 128, `{{runner}}` for the runner's number)"),
            );
            break;
        }
    }
    if let Some(layers) = &p.layers {
        if layers.is_empty() {
            add("layers", "needs at least one layer size".into());
        }
        for (i, layer) in layers.iter().enumerate() {
            if layer.0 == 0 {
                add(
                    &format!("layers[{i}]"),
                    "a layer must be larger than 0 bytes".into(),
                );
            }
        }
    }
    if p.max_concurrent_uploads == 0 {
        add("max_concurrent_uploads", "must be at least 1".into());
    }
    if p.max_attempts == 0 {
        add(
            "max_attempts",
            "must be at least 1 (the first attempt counts)".into(),
        );
    }
    if p.chunk_size.is_some_and(|c| c.0 == 0) {
        add(
            "chunk_size",
            "must be more than 0 (leave it out for one PATCH per blob)".into(),
        );
    }
    if let Some(from) = &p.mount_from {
        if !crate::oci::name::is_repository_name(from) {
            add("mount_from", format!("{from:?} is not a repository name"));
        }
    }
    if p.runners > 0 && s.arrival.pattern == super::Pattern::Staircase {
        add(
            "runners",
            "pushers do not run in a staircase (arrival.pattern = \"staircase\")".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    /// The first error of a scenario text, as the user sees it.
    fn error(text: &str) -> String {
        let e = crate::scenario::parse(text, "s.toml", &[]).expect_err(text);
        assert_eq!(e.code, crate::exit::BAD_INPUT, "{}", e.message);
        e.message
    }

    /// A registry that takes pushes, after the `[push]` lines (their numbers stay).
    const TARGET: &str = "[target]\nurl = \"http://127.0.0.1:5000\"\nimage = \"a/b:c\"\n";

    #[test]
    fn push_problems_name_their_line_and_key() {
        let cases = [
            (
                "runners = 1001\n",
                "s.toml:2:11: push.runners: 1001 runners, more than the 1000",
            ),
            (
                "runners = 2\nrepository = \"CI/App\"\n",
                "s.toml:3:14: push.repository: \"CI/App\" is not a repository name",
            ),
            (
                "runners = 2\ntag = \"b/{runner}\"\n",
                "s.toml:3:7: push.tag: \"b/0\" is not a tag",
            ),
            ("runners = 2\nlayers = [\"1MiB\", \"0B\"]\n", "s.toml:3:"),
            (
                "runners = 1\nmax_concurrent_uploads = 0\n",
                "s.toml:3:26: push.max_concurrent_uploads: must be at least 1",
            ),
            (
                "runners = 1\nmax_attempts = 0\n",
                "s.toml:3:16: push.max_attempts: must be at least 1",
            ),
            (
                "runners = 1\nchunk_size = \"0B\"\n",
                "s.toml:3:14: push.chunk_size: must be more than 0",
            ),
            (
                "runners = 1\nmount_from = \"-x\"\n",
                "s.toml:3:14: push.mount_from: \"-x\" is not a repository name",
            ),
            ("runners = 1\nbogus = 1\n", "s.toml:3:1"),
        ];
        for (tail, want) in cases {
            let message = error(&format!("[push]\n{tail}{TARGET}"));
            assert!(
                message.starts_with(want),
                "{tail:?}\n  got:  {message}\n  want: {want}"
            );
        }
        assert!(error(&format!(
            "[push]\nrunners = 2\nlayers = [\"1MiB\", \"0B\"]\n{TARGET}"
        ))
        .contains("push.layers[1]: a layer must be larger than 0 bytes"));
    }

    #[test]
    fn tags_seeds_and_sizes_per_runner() {
        let s = crate::scenario::parse(
&format!("[embedded]\nlayers = [\"1MiB\"]\nseed = 7\n[push]\nrunners = 3\ntag = \"b{{runner}}\"\n{TARGET}"),
            "s.toml",
            &[],
        )
        .unwrap();
        let p = &s.push;
        assert_eq!(
            (p.tag_of(0), p.tag_of(2)),
            ("b0".to_string(), "b2".to_string())
        );
        assert_eq!(p.layer_sizes(&s), [1 << 20]);
        assert_eq!((p.seed_of(&s, 0), p.seed_of(&s, 2)), (7, 9));
        let mut shared = s.clone();
        shared.push.content = super::PushContent::Shared;
        assert_eq!(shared.push.seed_of(&shared, 2), 7);
        // Defaults: dockerd's numbers.
        let d = super::PushSection::default();
        assert_eq!(
            (d.runners, d.max_concurrent_uploads, d.max_attempts),
            (0, 5, 5)
        );
        assert_eq!(d.backoff.0, std::time::Duration::from_secs(5));
    }
}
