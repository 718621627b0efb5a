//! The "errors and retries" section: errors by class with when they
//! happened, where, and their first sample; retried classes without an
//! error row; and how many attempts each layer needed.

use super::truncate;
use crate::human;
use crate::report::colors::class_color;
use crate::report::html::{esc, fig, table};
use crate::result::model::{ErrorDetail, ResultDoc};
use std::fmt::Write;

/// Longest sample detail shown (the result keeps it whole).
const MAX_SAMPLE: usize = 400;

/// The section's HTML.
pub fn errors(doc: &ResultDoc) -> String {
    let mut s = by_class(doc);
    s.push_str(&orphan_retries(doc));
    s.push_str(&attempts(doc));
    s
}

/// Errors by class, the most frequent first: count, retries, first and last
/// time, where, and the first detail.
fn by_class(doc: &ResultDoc) -> String {
    if doc.error_details.is_empty() {
        return "<p>No errors.</p>".into();
    }
    let mut details: Vec<_> = doc.error_details.iter().collect();
    details.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
    let rows: Vec<Vec<String>> = details.iter().map(|e| class_row(doc, e)).collect();
    table(
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
    )
}

fn class_row(doc: &ResultDoc, e: &ErrorDetail) -> Vec<String> {
    let retries = doc.retries.by_class.get(&e.class).copied().unwrap_or(0);
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
            retries,
            &retries.to_string(),
        ),
        esc(&human::secs(e.first_s)),
        esc(&human::secs(e.last_s)),
        esc(&e.phase),
        esc(&e.request),
        esc(&truncate(&e.sample, MAX_SAMPLE)),
    ]
}

/// Classes with retries but no error row (should not happen; never hide them).
fn orphan_retries(doc: &ResultDoc) -> String {
    let rows: Vec<Vec<String>> = doc
        .retries
        .by_class
        .iter()
        .filter(|(c, _)| !doc.error_details.iter().any(|e| &e.class == *c))
        .map(|(c, n)| {
            vec![
                esc(c),
                fig(&format!("retries.by_class.{c}"), n, &n.to_string()),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    table("num", &["retried class", "retries"], &rows)
}

/// Layers by the attempts they needed, with the completed and failed totals.
fn attempts(doc: &ResultDoc) -> String {
    let mut attempts: Vec<(u64, u64)> = doc
        .layers
        .attempts
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
        .collect();
    if attempts.is_empty() {
        return String::new();
    }
    attempts.sort();
    let mut s = String::new();
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
    s
}
