//! The "clusters" section: pulls, bytes, errors and the slowest pull per
//! cluster, so one bad cluster (a slow node pool, a far zone) stands out.

use crate::human;
use crate::report::html::{esc, table};
use crate::result::model::ResultDoc;
use crate::result::summary::NO_DATA;

/// Clusters listed in full up to this many; beyond, the worst ones.
const MAX_CLUSTERS: usize = 100;

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
                esc(&human::bytes(c.bytes as f64)),
                c.errors.to_string(),
                if c.pulls_completed == 0 {
                    NO_DATA.to_string()
                } else {
                    esc(&human::millis(c.pull_max_ms))
                },
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
