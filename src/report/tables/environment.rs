//! The "environment" section: what ran, against what, when, with which
//! limits, the image's blobs, and the command that runs it again.

use crate::human;
use crate::report::html::{esc, table};
use crate::result::model::{ResultDoc, WatchedKind};
use std::fmt::Write;

/// A row of the key-value table: label (text), value (HTML).
type Row = (&'static str, String);

/// What ran, against what, when, with which limits: enough to run it again.
pub fn environment(doc: &ResultDoc) -> String {
    let mut rows = run_rows(doc);
    rows.extend(target_rows(doc));
    rows.extend(fleet_rows(doc));
    rows.push((
        "run it again",
        format!("<code>{}</code>", esc(&rerun_command(doc))),
    ));
    let mut s = String::from("<table class=\"kv\"><tbody>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    }
    s.push_str("</tbody></table>");
    s.push_str(&blobs(doc));
    s
}

/// Version, schema, when, how it ended, and from which scenario.
fn run_rows(doc: &ResultDoc) -> Vec<Row> {
    vec![
        ("pullstorm", esc(&doc.pullstorm_version)),
        ("result schema", esc(&doc.schema)),
        (
            "started / ended (UTC)",
            esc(&format!("{} / {}", doc.started_at, doc.ended_at)),
        ),
        (
            "duration, stop reason",
            format!(
                "{}, {}{}",
                esc(&human::secs(doc.duration_ms as f64 / 1000.0)),
                esc(&doc.stop_reason),
                if doc.complete { "" } else { " (incomplete)" }
            ),
        ),
        ("scenario file", esc(&doc.scenario.file)),
        (
            "overrides",
            if doc.scenario.overrides.is_empty() {
                "none".into()
            } else {
                esc(&doc.scenario.overrides.join("  "))
            },
        ),
    ]
}

/// The registry under test and the image pulled from it.
fn target_rows(doc: &ResultDoc) -> Vec<Row> {
    let t = &doc.target;
    vec![
        (
            "target",
            format!(
                "{}{}",
                esc(&super::redact(&t.url)),
                if t.embedded {
                    " (embedded synthetic registry)"
                } else {
                    ""
                }
            ),
        ),
        ("image", esc(&t.image)),
        (
            "manifest digest",
            esc(t.manifest_digest.as_deref().unwrap_or("\u{2013}")),
        ),
        (
            "image size",
            format!(
                "{} in {} blobs (config + layers)",
                esc(&human::bytes(t.image_bytes as f64)),
                t.blobs.len()
            ),
        ),
        (
            "server / API version",
            esc(&format!(
                "{} / {}",
                t.server.as_deref().unwrap_or("not sent"),
                t.api_version.as_deref().unwrap_or("not sent")
            )),
        ),
    ]
}

/// The fleet, its client profile, and the file limits of the harness and
/// of every watched process.
fn fleet_rows(doc: &ResultDoc) -> Vec<Row> {
    let f = &doc.fleet;
    let mut rows = vec![
        (
            "fleet",
            esc(&format!(
                "{} clusters x {} nodes = {} nodes, {} client, {}{}",
                f.clusters,
                f.nodes_per_cluster,
                f.nodes,
                f.client,
                f.arrival,
                f.node_bandwidth_bytes_per_sec
                    .map(|b| format!(", {} per node", human::rate(b as f64)))
                    .unwrap_or_default()
            )),
        ),
        (
            "client profile",
            format!(
                "<code>{}</code>",
                esc(&serde_json::to_string(&f.profile).unwrap_or_default())
            ),
        ),
        (
            "harness nofile limit",
            esc(&format!(
                "soft {} (was {} at start), hard {}",
                doc.fd.client_limit, doc.fd.client_limit_at_start, doc.fd.client_hard_limit
            )),
        ),
    ];
    for w in doc
        .watched
        .iter()
        .filter(|w| w.kind != WatchedKind::Harness)
    {
        if let Some(l) = w.fd_limit {
            rows.push(("watched nofile limit", esc(&format!("{}: {l}", w.name))));
        }
    }
    rows
}

/// The image's blobs (digest, size, media type), folded away.
fn blobs(doc: &ResultDoc) -> String {
    let blobs = &doc.target.blobs;
    if blobs.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = blobs
        .iter()
        .map(|b| {
            vec![
                format!("<code>{}</code>", esc(&b.digest)),
                esc(&human::bytes(b.size as f64)),
                esc(&b.media_type),
            ]
        })
        .collect();
    format!(
        "<details><summary>Blobs of the image ({})</summary>{}</details>",
        blobs.len(),
        table("", &["digest", "size", "media type"], &rows)
    )
}

/// `pullstorm run FILE --set ...` with the run's overrides, shell-quoted.
fn rerun_command(doc: &ResultDoc) -> String {
    let mut cmd = format!("pullstorm run {}", shell_quote(&doc.scenario.file));
    for o in &doc.scenario.overrides {
        let _ = write!(cmd, " --set {}", shell_quote(o));
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("fleet.clusters=32"), "fleet.clusters=32");
        assert_eq!(
            shell_quote("target.url=\"http://x\""),
            "'target.url=\"http://x\"'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
