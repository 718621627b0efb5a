//! The registry's consistency after the storm (result.json `verify`, from
//! `[verify] after_run`): the outcome in one sentence and one row per finding,
//! naming the repository, the object and the digest. Nothing when not asked for.

use super::html::{esc, table};
use crate::result::model::ResultDoc;
use std::fmt::Write;

/// The section's HTML; empty when the scenario did not ask for the check.
pub fn section(doc: &ResultDoc) -> String {
    let Some(v) = &doc.verify else {
        return String::new();
    };
    let mut h = String::from("<section id=\"verify\"><h2>Registry after the run</h2>");
    let Some(report) = &v.report else {
        let reason = v.reason.as_deref().unwrap_or("no reason given");
        let _ = write!(
            h,
            "<p class=\"fail\">Not checked: {}. The run's <code>verify.after_run</code> check fails: nothing was judged.</p></section>",
            esc(reason)
        );
        return h;
    };
    let _ = write!(
        h,
        "<p class=\"{}\">{}</p><p class=\"note\">Every tag resolved, every manifest fetched by digest, every blob asked with HEAD and read whole with GET, its size and digest checked (docs/verify.md).</p>",
        if report.consistent { "pass" } else { "fail" },
        esc(&report.summary())
    );
    if !report.findings.is_empty() {
        let rows: Vec<Vec<String>> = report
            .findings
            .iter()
            .map(|f| {
                vec![
                    esc(f.kind.name()),
                    esc(f.object.name()),
                    esc(&f.repository),
                    format!("<code>{}</code>", esc(&f.reference)),
                    esc(&f.method),
                    f.status
                        .map_or_else(|| "no response".into(), |s| s.to_string()),
                    esc(f.code.as_deref().unwrap_or("")),
                    esc(&f.detail),
                ]
            })
            .collect();
        h.push_str(&table(
            "verify",
            &[
                "finding",
                "object",
                "repository",
                "digest or tag",
                "request",
                "status",
                "registry code",
                "detail",
            ],
            &rows,
        ));
    }
    h.push_str("</section>");
    h
}
