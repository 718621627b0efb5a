//! `pullstorm verify`: does the registry serve what it says it holds? Every tag must
//! resolve, every manifest and index child must come back by digest with bytes that hash
//! to it, and every blob they name must answer HEAD and GET with its size and digest.
//!
//! Seed 002 is why (docs/seeds.md): a blob-descriptor cache (Redis) that outlives the
//! blob's data makes the HEAD a pusher asks say "exists" while the GET a puller needs
//! fails, so a re-push "succeeds" and every pull fails. Status codes alone do not show
//! it (a 200 may carry no bytes, goharbor/harbor#19695), so every blob is read whole,
//! streamed through sha256.
//!
//! This module orchestrates (arguments, sessions, the walk from tags to blobs, bounded
//! concurrency, console and JSON output); [`check`] asks and judges one object;
//! [`finding`] holds the types of the report. Requests go through the nodes' own
//! [`Session`] (auth challenges, tokens, redirects) and [`net`] transport (timeouts, TLS).

pub mod check;
pub mod finding;

pub use finding::{Checked, Finding, FindingKind, ObjectKind, Report};

use crate::exit::{self, Failure};
use crate::net::{Timeouts, Transport};
use crate::oci::auth::Credentials;
use crate::oci::manifest::{Descriptor, Document};
use crate::oci::{Reference, Session};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// Indexes nested deeper than this are not followed (a loop of indexes ends here).
const MAX_INDEX_DEPTH: usize = 4;

/// `pullstorm verify`'s options.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Registry base URL, e.g. http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    pub registry: String,
    /// Images to check: repo:tag or repo@sha256:... (repeatable, or several after one --image).
    #[arg(long = "image", value_name = "REF", required = true, num_args = 1..)]
    pub images: Vec<String>,
    /// Write the report as JSON to FILE (atomically).
    #[arg(long, visible_alias = "out", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Blobs checked at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Longest wait for a connection, a response head, and between two body bytes.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: String,
    /// Accept any TLS certificate.
    #[arg(long)]
    pub insecure_tls: bool,
    /// Extra PEM CA bundle to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Exit code when the registry holds something it cannot serve (the same 1 as a
/// failed threshold: "the target is not fine").
pub const INCONSISTENT: i32 = exit::THRESHOLDS_FAILED;

/// The command: check, print one line per finding and a summary, write the JSON report.
/// Exit 0 consistent, 1 inconsistent, 2 bad input, 3 the registry cannot be reached.
pub async fn main(args: VerifyArgs) -> Result<i32, Failure> {
    let options = Options::from_args(&args)?;
    // Checked before the first line is printed, so a URL holding a password is refused first.
    crate::seed::registry_url(&args.registry)?;
    eprintln!(
        "pullstorm verify: checking {} image(s) at {}",
        args.images.len(),
        crate::redact::text(&args.registry)
    );
    let report = verify(&args.registry, &args.images, &options).await?;
    for f in &report.findings {
        print_line(&f.line());
    }
    print_line(&report.summary());
    if let Some(path) = &args.json {
        let mut json = serde_json::to_vec_pretty(&report)
            .map_err(|e| Failure::cannot_proceed(format!("cannot encode the report: {e}")))?;
        json.push(b'\n');
        crate::result::write_atomic(path, &json).map_err(|e| {
            Failure::cannot_proceed(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(if report.consistent {
        exit::OK
    } else {
        INCONSISTENT
    })
}

/// One line on stdout, control characters from the registry's answers escaped.
fn print_line(line: &str) {
    let text = crate::terminal::escape_lines(line);
    if let Err(e) = crate::terminal::print(&format!("{text}\n")) {
        tracing::warn!("cannot write to stdout: {e}");
    }
}

/// How to check: concurrency, timeouts, TLS.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub insecure_tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: 4,
            timeout: Duration::from_secs(30),
            ca_file: None,
            insecure_tls: false,
        }
    }
}

impl Options {
    fn from_args(args: &VerifyArgs) -> Result<Options, Failure> {
        if args.jobs == 0 {
            return Err(Failure::bad_input("--jobs: give 1 or more"));
        }
        let timeout = crate::scenario::units::Span::parse(&args.timeout)
            .map_err(|e| Failure::bad_input(format!("--timeout: {e}")))?
            .0;
        if timeout.is_zero() {
            return Err(Failure::bad_input("--timeout: give a duration above 0"));
        }
        Ok(Options {
            jobs: args.jobs,
            timeout,
            ca_file: args.ca_file.clone(),
            insecure_tls: args.insecure_tls,
        })
    }
}

/// Checks `images` at `registry`. `Err` only for bad input (exit 2) and a registry that
/// does not answer at all (exit 3); every inconsistency is a finding in the report.
pub async fn verify(
    registry: &str,
    images: &[String],
    options: &Options,
) -> Result<Report, Failure> {
    let base = crate::seed::registry_url(registry)?;
    let references = parse_references(images)?;
    let transport = transport(&base, options)?;
    let credentials = Credentials::for_registry(&base).map(Arc::new);
    let mut report = verify_with(&base, &references, credentials, &transport, options.jobs).await?;
    // Said as the user wrote them, not as parsed.
    report.registry = crate::redact::text(registry);
    report.images = images.to_vec();
    Ok(report)
}

/// Checks `references` at `base` with a transport and credentials the caller already
/// has: a run's own after its storm (`[verify] after_run`), so the check sees the
/// registry exactly as the nodes did (TLS, CA, credentials).
pub async fn verify_with(
    base: &Url,
    references: &[Reference],
    credentials: Option<Arc<Credentials>>,
    transport: &Transport,
    jobs: usize,
) -> Result<Report, Failure> {
    let started = Instant::now();
    let sessions = connect(base, references, credentials, transport).await?;

    let mut walk = Walk::default();
    for reference in references {
        walk.image(&sessions[&reference.name], reference).await?;
    }
    let (blob_findings, blobs, bytes) = check_blobs(&sessions, walk.blobs, jobs.max(1)).await;
    walk.findings.extend(blob_findings);
    walk.checked.blobs = blobs;
    walk.checked.blob_bytes = bytes;
    Ok(Report::new(
        base.as_str(),
        references.iter().map(|r| r.to_string()).collect(),
        walk.checked,
        walk.findings,
        started.elapsed().as_secs_f64(),
    ))
}

/// Every `--image`, parsed; the first bad one is an error naming it.
fn parse_references(images: &[String]) -> Result<Vec<Reference>, Failure> {
    if images.is_empty() {
        return Err(Failure::bad_input("--image: give at least one image"));
    }
    images
        .iter()
        .map(|i| Reference::parse(i).map_err(|e| Failure::bad_input(format!("--image {i:?}: {e}"))))
        .collect()
}

/// The nodes' transport with one timeout for each phase, and TLS for https; a new
/// connection per request (verify is not measuring connection reuse).
fn transport(base: &Url, options: &Options) -> Result<Transport, Failure> {
    let timeouts = Timeouts {
        connect: options.timeout,
        response: options.timeout,
        stall: Some(options.timeout),
    };
    crate::seed::tool_transport(
        base,
        options.ca_file.as_deref(),
        options.insecure_tls,
        timeouts,
    )
}

/// One session per repository (tokens are scoped to one), each pinged to learn the
/// auth challenge. A ping that gets no answer at all means the registry cannot be reached.
async fn connect(
    base: &Url,
    references: &[Reference],
    credentials: Option<Arc<Credentials>>,
    transport: &Transport,
) -> Result<BTreeMap<String, Arc<Session>>, Failure> {
    // Nothing here is measured: the sessions' events are drained.
    let (sink, mut drain) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let mut sessions = BTreeMap::new();
    for reference in references {
        if sessions.contains_key(&reference.name) {
            continue;
        }
        let session = Session::new(
            base.clone(),
            reference.name.clone(),
            credentials.clone(),
            transport.clone(),
            sink.clone(),
        );
        session.ping().await.map_err(|f| {
            Failure::cannot_proceed(format!(
                "registry {base} cannot be reached: {}: {}",
                f.class, f.detail
            ))
        })?;
        sessions.insert(reference.name.clone(), Arc::new(session));
    }
    Ok(sessions)
}

/// A blob to check: its repository and digest (the key), and how it was named.
type BlobKey = (String, String);

/// The walk from references to blobs: tags resolved, manifests fetched (sequentially:
/// there are few), blobs gathered once per repository for the concurrent part.
#[derive(Default)]
struct Walk {
    checked: Checked,
    findings: Vec<Finding>,
    manifests_seen: BTreeSet<BlobKey>,
    blobs: BTreeMap<BlobKey, (ObjectKind, Descriptor)>,
}

impl Walk {
    /// Walks one reference; `Err` when the registry refuses the credentials (exit 3:
    /// nothing can be said about its consistency).
    async fn image(&mut self, session: &Session, reference: &Reference) -> Result<(), Failure> {
        let repo = reference.name.clone();
        let digest = match (&reference.digest, &reference.tag) {
            (Some(d), _) => d.clone(),
            (None, tag) => {
                let tag = tag.as_deref().unwrap_or("latest");
                self.checked.tags += 1;
                let answer = check::get_manifest(session, tag).await;
                refused(&answer)?;
                let (digest, findings) = check::judge_tag(&repo, tag, &answer);
                self.findings.extend(findings);
                match digest {
                    Some(d) => d,
                    None => return Ok(()),
                }
            }
        };
        let mut stack = vec![(digest, ObjectKind::Manifest, None, 0usize)];
        while let Some((digest, object, size, depth)) = stack.pop() {
            if !self.manifests_seen.insert((repo.clone(), digest.clone())) {
                continue;
            }
            self.checked.manifests += 1;
            let answer = check::get_manifest(session, &digest).await;
            refused(&answer)?;
            let (doc, findings) = check::judge_manifest(&repo, object, &digest, size, &answer);
            self.findings.extend(findings);
            match doc {
                Some(Document::Image { config, layers }) => {
                    self.blob(&repo, ObjectKind::Config, config);
                    for layer in layers {
                        self.blob(&repo, ObjectKind::Layer, layer);
                    }
                }
                Some(Document::Index { manifests }) if depth < MAX_INDEX_DEPTH => {
                    // Reversed onto the stack: children are checked in the index's order.
                    for child in manifests.into_iter().rev() {
                        stack.push((
                            child.digest,
                            ObjectKind::IndexChild,
                            Some(child.size),
                            depth + 1,
                        ));
                    }
                }
                Some(Document::Index { .. }) | None => {}
            }
        }
        Ok(())
    }

    fn blob(&mut self, repo: &str, object: ObjectKind, descriptor: Descriptor) {
        self.blobs
            .entry((repo.to_string(), descriptor.digest.clone()))
            .or_insert((object, descriptor));
    }
}

/// A token refused: the credentials are wrong or missing, which is not the registry's
/// inconsistency.
fn refused(answer: &check::ManifestAnswer) -> Result<(), Failure> {
    match (&answer.error, answer.auth_refused) {
        (Some(e), true) => Err(Failure::cannot_proceed(format!(
            "the registry refused the credentials (they come from PULLSTORM_USERNAME / \
             PULLSTORM_PASSWORD or docker's config.json): {e}"
        ))),
        _ => Ok(()),
    }
}

/// HEAD and GET every blob, `jobs` at a time: the findings, blobs checked, bytes read.
async fn check_blobs(
    sessions: &BTreeMap<String, Arc<Session>>,
    blobs: BTreeMap<BlobKey, (ObjectKind, Descriptor)>,
    jobs: usize,
) -> (Vec<Finding>, u64, u64) {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    let count = blobs.len() as u64;
    for ((repo, _), (object, descriptor)) in blobs {
        let session = sessions[&repo].clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            // HEAD first, as a pusher asks it: the answer a cache gives.
            let head = check::head_blob(&session, &descriptor.digest).await;
            let get = check::get_blob(&session, &descriptor).await;
            let findings = check::judge_blob(&repo, object, &descriptor, &head, &get);
            (findings, get.received)
        });
    }
    let mut findings = Vec::new();
    let mut bytes = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((f, received)) => {
                findings.extend(f);
                bytes += received;
            }
            // A panic is a bug of ours: said, never taken for a consistent registry.
            Err(e) => {
                let mut f = Finding::new(FindingKind::RequestFailed, ObjectKind::Layer, "", "");
                f.status = None;
                f.detail = format!("internal: {e}");
                findings.push(f);
            }
        }
    }
    (findings, count, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> VerifyArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            verify: VerifyArgs,
        }
        let mut argv = vec!["verify", "--registry", "http://127.0.0.1:1"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().verify
    }

    #[test]
    fn several_images_after_one_flag_or_repeated_flags() {
        assert_eq!(args(&["--image", "a:1", "b:2"]).images, ["a:1", "b:2"]);
        assert_eq!(
            args(&["--image", "a:1", "--image", "b@sha256:00"]).images,
            ["a:1", "b@sha256:00"]
        );
        assert_eq!(
            args(&["--image", "a", "--out", "r.json"]).json,
            Some(PathBuf::from("r.json"))
        );
    }

    #[test]
    fn bad_options_and_references_are_bad_input() {
        let bad = |extra: &[&str]| Options::from_args(&args(extra)).unwrap_err();
        assert_eq!(bad(&["--image", "a", "--jobs", "0"]).code, exit::BAD_INPUT);
        assert!(bad(&["--image", "a", "--timeout", "soon"])
            .message
            .starts_with("--timeout:"));
        let e = parse_references(&["Not A Ref".to_string()]).unwrap_err();
        assert_eq!(e.code, exit::BAD_INPUT);
        assert!(e.message.contains("\"Not A Ref\""), "{}", e.message);
    }

    #[tokio::test]
    async fn a_registry_that_does_not_answer_cannot_be_verified() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let options = Options {
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let e = verify(
            &format!("http://127.0.0.1:{port}"),
            &["a:1".into()],
            &options,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, exit::CANNOT_PROCEED, "{}", e.message);
        assert!(e.message.contains("cannot be reached"), "{}", e.message);
    }
}
