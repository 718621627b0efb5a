//! The report's tables: errors by class with their first sample, retries,
//! attempts per layer, the per-cluster breakdown, watched targets, the
//! environment (what is needed to reproduce the run) and the scenario as run.

use super::fmt;
use super::html::{esc, fig, table};
use super::timeline::class_color;
use crate::result::model::{ResultDoc, WatchedKind};
use std::fmt::Write;

/// Clusters listed in full up to this many; beyond, the worst ones.
const MAX_CLUSTERS: usize = 100;
/// Longest sample detail shown (the result keeps it whole).
const MAX_SAMPLE: usize = 400;

/// Errors by class: count, first and last time, where, and the first detail.
pub fn errors(doc: &ResultDoc) -> String {
    let mut s = String::new();
    if doc.error_details.is_empty() {
        s.push_str("<p>No errors.</p>");
    } else {
        let mut details: Vec<_> = doc.error_details.iter().collect();
        details.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
        let rows: Vec<Vec<String>> = details
            .iter()
            .map(|e| {
                vec![
                    format!(
                        "<span style=\"color:{}\">&#9632;</span> {}",
                        class_color(&e.class),
                        esc(&e.class)
                    ),
                    fig(
                        &format!("errors.{}", e.class),
                        e.count,
                        &e.count.to_string(),
                    ),
                    fig(
                        &format!("retries.by_class.{}", e.class),
                        doc.retries.by_class.get(&e.class).copied().unwrap_or(0),
                        &doc.retries
                            .by_class
                            .get(&e.class)
                            .copied()
                            .unwrap_or(0)
                            .to_string(),
                    ),
                    esc(&fmt::secs(e.first_s)),
                    esc(&fmt::secs(e.last_s)),
                    esc(&e.phase),
                    esc(&e.request),
                    esc(&truncate(&e.sample, MAX_SAMPLE)),
                ]
            })
            .collect();
        s.push_str(&table(
            "errs",
            &[
                "class",
                "count",
                "retries after it",
                "first",
                "last",
                "phase",
                "request",
                "first sample (status, registry error code, offset)",
            ],
            &rows,
        ));
    }
    // Classes with retries but no error row (should not happen; never hide them).
    let orphan: Vec<_> = doc
        .retries
        .by_class
        .iter()
        .filter(|(c, _)| !doc.error_details.iter().any(|e| &e.class == *c))
        .collect();
    if !orphan.is_empty() {
        let rows: Vec<Vec<String>> = orphan
            .iter()
            .map(|(c, n)| {
                vec![
                    esc(c),
                    fig(&format!("retries.by_class.{c}"), n, &n.to_string()),
                ]
            })
            .collect();
        s.push_str(&table("num", &["retried class", "retries"], &rows));
    }
    let mut attempts: Vec<(u64, u64)> = doc
        .layers
        .attempts
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
        .collect();
    attempts.sort();
    if !attempts.is_empty() {
        let _ = write!(
            s,
            "<h3>Layers by attempts needed</h3><p class=\"note\">{} layers completed, {} failed for good.</p>",
            fig(
                "layers.completed",
                doc.layers.completed,
                &doc.layers.completed.to_string()
            ),
            fig("layers.failed", doc.layers.failed, &doc.layers.failed.to_string())
        );
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|(a, n)| {
                vec![
                    a.to_string(),
                    fig(&format!("layers.attempts.{a}"), n, &n.to_string()),
                ]
            })
            .collect();
        s.push_str(&table("num", &["attempts", "layers"], &rows));
    }
    s
}

/// Per-cluster counts; the worst [`MAX_CLUSTERS`] when there are more.
pub fn clusters(doc: &ResultDoc) -> String {
    let mut list: Vec<_> = doc.clusters.iter().collect();
    let mut note = String::new();
    if list.len() > MAX_CLUSTERS {
        list.sort_by(|a, b| {
            (b.pulls_failed, b.errors)
                .cmp(&(a.pulls_failed, a.errors))
                .then(b.pull_max_ms.total_cmp(&a.pull_max_ms))
        });
        list.truncate(MAX_CLUSTERS);
        list.sort_by_key(|c| c.cluster);
        note = format!(
            "<p class=\"note\">The {MAX_CLUSTERS} worst of {} clusters (most failed pulls, errors, slowest pull); result.json has them all.</p>",
            doc.clusters.len()
        );
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.cluster.to_string(),
                c.pulls_started.to_string(),
                c.pulls_completed.to_string(),
                if c.pulls_failed > 0 {
                    format!("<span class=\"fail\">{}</span>", c.pulls_failed)
                } else {
                    "0".into()
                },
                esc(&fmt::bytes(c.bytes as f64)),
                c.errors.to_string(),
                esc(&fmt::millis(c.pull_max_ms)),
            ]
        })
        .collect();
    format!(
        "{note}{}",
        table(
            "num",
            &[
                "cluster",
                "started",
                "completed",
                "failed",
                "bytes",
                "errors",
                "slowest pull"
            ],
            &rows
        )
    )
}

/// Every watched target with its peaks, limits and events.
pub fn targets(doc: &ResultDoc) -> String {
    if doc.watched.is_empty() {
        return "<p>Nothing was watched besides the harness's own counters (see the timeline).</p>"
            .into();
    }
    let rows: Vec<Vec<String>> = doc
        .watched
        .iter()
        .map(|t| {
            let what = match (t.kind, t.pid, &t.url) {
                (_, Some(pid), _) => format!("pid {pid}"),
                (_, None, Some(u)) => redact(u),
                _ => String::new(),
            };
            let fds = match (t.fd_peak, t.fd_limit) {
                (Some(p), Some(l)) => format!("{p} / {l} ({})", fmt::pct(p as f64, l as f64)),
                (Some(p), None) => p.to_string(),
                (None, Some(l)) => format!("\u{2013} / {l}"),
                _ => String::new(),
            };
            let mut events = Vec::new();
            if let Some(at) = t.zombie_at_s {
                events.push(format!("zombie at {}", fmt::secs(at)));
            }
            if let Some(at) = t.exited_at_s {
                events.push(format!("exited at {}", fmt::secs(at)));
            }
            let peaks: Vec<String> = t
                .peaks
                .iter()
                .filter(|(k, v)| !k.starts_with("tcp_") || **v > 0.0)
                .map(|(k, v)| format!("{k} {}", fmt::num(*v)))
                .collect();
            let ev = events.join(", ");
            vec![
                format!("{}<br><small>{}</small>", esc(&t.name), esc(&what)),
                esc(match t.kind {
                    WatchedKind::Harness => "harness",
                    WatchedKind::Process => "process",
                    WatchedKind::Prometheus => "prometheus",
                    WatchedKind::StubStatus => "stub_status",
                }),
                esc(&fds),
                esc(&t
                    .rss_peak_bytes
                    .map(|r| fmt::bytes(r as f64))
                    .unwrap_or_default()),
                t.threads_peak.map(|n| n.to_string()).unwrap_or_default(),
                esc(&t
                    .cpu_seconds
                    .map(|c| {
                        format!(
                            "{c:.1} s, peak {}%",
                            fmt::num(t.cpu_peak_pct.unwrap_or(0.0))
                        )
                    })
                    .unwrap_or_default()),
                if ev.is_empty() {
                    String::new()
                } else {
                    format!("<span class=\"fail\">{}</span>", esc(&ev))
                },
                format!("{} / {}", t.samples, t.failures,),
                format!(
                    "<span style=\"white-space:normal\">{}{}</span>",
                    esc(&peaks.join(", ")),
                    t.last_error
                        .as_ref()
                        .map(|e| format!(
                            "<br><span class=\"fail\">last error: {}</span>",
                            esc(&truncate(e, 200))
                        ))
                        .unwrap_or_default()
                ),
            ]
        })
        .collect();
    table(
        "tg",
        &[
            "target",
            "kind",
            "fds peak / limit",
            "RSS peak",
            "threads",
            "CPU used",
            "events",
            "samples / failed",
            "other peaks",
        ],
        &rows,
    )
}

/// What ran, against what, when, with which limits: enough to run it again.
pub fn environment(doc: &ResultDoc) -> String {
    let t = &doc.target;
    let f = &doc.fleet;
    let mut rows: Vec<(&str, String)> = vec![
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
                esc(&fmt::secs(doc.duration_ms as f64 / 1000.0)),
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
        (
            "target",
            format!(
                "{}{}",
                esc(&redact(&t.url)),
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
                esc(&fmt::bytes(t.image_bytes as f64)),
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
                    .map(|b| format!(", {} per node", fmt::rate(b as f64)))
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
    for target in doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
    {
        if let Some(l) = target.fd_limit {
            rows.push((
                "watched nofile limit",
                esc(&format!("{}: {l}", target.name)),
            ));
        }
    }
    rows.push((
        "run it again",
        format!("<code>{}</code>", esc(&rerun_command(doc))),
    ));
    let mut s = String::from("<table class=\"kv\"><tbody>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    }
    s.push_str("</tbody></table>");
    if !t.blobs.is_empty() {
        let rows: Vec<Vec<String>> = t
            .blobs
            .iter()
            .map(|b| {
                vec![
                    format!("<code>{}</code>", esc(&b.digest)),
                    esc(&fmt::bytes(b.size as f64)),
                    esc(&b.media_type),
                ]
            })
            .collect();
        let _ = write!(
            s,
            "<details><summary>Blobs of the image ({})</summary>{}</details>",
            t.blobs.len(),
            table("", &["digest", "size", "media type"], &rows)
        );
    }
    s
}

/// The scenario as run, as TOML when it converts (else JSON): a file that
/// `pullstorm run` accepts as is.
pub fn scenario(doc: &ResultDoc) -> String {
    let text = scenario_toml(&doc.scenario.resolved).unwrap_or_else(|| {
        serde_json::to_string_pretty(&doc.scenario.resolved).unwrap_or_default()
    });
    format!(
        "<p class=\"note\">Every key with its default filled in and the overrides applied.</p><pre>{}</pre>",
        esc(&text)
    )
}

/// JSON -> TOML, dropping nulls (TOML has none: an absent key is the default).
pub fn scenario_toml(v: &serde_json::Value) -> Option<String> {
    fn strip(v: &serde_json::Value) -> Option<serde_json::Value> {
        match v {
            serde_json::Value::Null => None,
            serde_json::Value::Object(m) => Some(serde_json::Value::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), strip(v)?)))
                    .collect(),
            )),
            serde_json::Value::Array(a) => Some(serde_json::Value::Array(
                a.iter().filter_map(strip).collect(),
            )),
            other => Some(other.clone()),
        }
    }
    let stripped = strip(v)?;
    if !stripped.is_object() {
        return None;
    }
    toml::to_string_pretty(&stripped).ok()
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

/// A URL without any user or password (the result never has them; belt and braces).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => url.split('@').next_back().unwrap_or_default().to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}\u{2026}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(redact("https://u:p@h.example/v2/"), "https://h.example/v2/");
        assert_eq!(redact("http://127.0.0.1:5000/"), "http://127.0.0.1:5000/");
        assert_eq!(redact("not a url u:p@host"), "host");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("fleet.clusters=32"), "fleet.clusters=32");
        assert_eq!(
            shell_quote("target.url=\"http://x\""),
            "'target.url=\"http://x\"'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn scenario_round_trips_to_toml_without_nulls() {
        let v = serde_json::json!({
            "name": null,
            "fleet": {"clusters": 2, "client": "dockerd"},
            "embedded": {"layers": ["1MiB"], "faults": {"cut_after": null}},
            "run": {"duration": "60s"}
        });
        let t = scenario_toml(&v).unwrap();
        assert!(t.contains("[fleet]") && t.contains("clusters = 2"), "{t}");
        assert!(!t.contains("null") && !t.contains("name"), "{t}");
    }
}
