//! The staircase of a capacity search (result.json `capacity`): the answer
//! in one sentence, the herd per step over time with the completed rate and
//! the p99 pull time of each step, the knee and the first broken step
//! marked, and a table of the steps. Nothing for other arrival patterns.

use super::axis::Unit;
use super::colors::PALETTE;
use super::decimate::Grid;
use super::html::{esc, fig, table};
use super::svg::{Line, Marker, TimeChart};
use crate::human;
use crate::result::model::{Capacity, CapacityStep, ResultDoc};
use crate::result::summary::capacity_sentence;
use std::fmt::Write;

/// The section's HTML; empty without a capacity search.
pub fn section(doc: &ResultDoc) -> String {
    let Some(c) = &doc.capacity else {
        return String::new();
    };
    let grid = Grid::new(super::timeline::span(doc));
    let mut h = String::from("<section id=\"capacity\"><h2>Capacity</h2>");
    let _ = write!(
        h,
        "<p>{}</p><p class=\"note\">A staircase from {} nodes, +{} every {} s (the first {} s of each step are warm-up, not judged), up to {} nodes; each node pulls in a closed loop. How to read it: docs/capacity.md.</p>",
        fig("capacity.knee_nodes", opt(c.knee_nodes), &capacity_sentence(c)),
        c.start_nodes,
        c.step_nodes,
        c.step_hold_s,
        c.warmup_s,
        c.max_nodes
    );
    let markers = markers(c);
    let per_step = |f: &dyn Fn(&CapacityStep) -> Option<f64>| -> Vec<Option<f64>> {
        (0..grid.buckets)
            .map(|i| step_at(c, grid.centre(i)).and_then(f))
            .collect()
    };
    let mut herd = TimeChart::new(0, "Herd and completed pulls per step", Unit::Count);
    herd.lines.push(line(
        "nodes pulling",
        PALETTE[0],
        per_step(&|s| Some(f64::from(s.nodes))),
        true,
    ));
    herd.lines.push(line(
        "completed pulls/s (judged seconds)",
        PALETTE[2],
        per_step(&|s| s.completed_per_sec),
        false,
    ));
    herd.markers = markers.clone();
    let mut p99 = TimeChart::new(0, "p99 pull time per step", Unit::Millis);
    p99.lines.push(line(
        "p99 pull",
        PALETTE[1],
        per_step(&|s| s.pull_p99_ms),
        false,
    ));
    p99.lines.push(line(
        "p50 pull",
        PALETTE[4],
        per_step(&|s| s.pull_p50_ms),
        false,
    ));
    p99.markers = markers;
    for chart in [herd, p99] {
        // Not a timeline chart of the hover script (it has no hover data).
        h.push_str(
            &chart
                .render(&grid)
                .replacen("class=\"tl\"", "class=\"cap\"", 1),
        );
    }
    h.push_str(&steps_table(c));
    h.push_str("</section>");
    h
}

fn opt(v: Option<u32>) -> String {
    v.map_or("null".to_string(), |n| n.to_string())
}

fn line(name: &str, color: &'static str, values: Vec<Option<f64>>, fill: bool) -> Line {
    Line {
        name: name.to_string(),
        color,
        values,
        band: None,
        dashed: false,
        fill,
    }
}

/// The step a second belongs to (steps do not overlap).
fn step_at(c: &Capacity, t: f64) -> Option<&CapacityStep> {
    c.steps
        .iter()
        .find(|s| t >= s.start_s as f64 - 1.0 && t <= s.end_s as f64)
}

/// The knee's step and the first broken step, at their starts.
fn markers(c: &Capacity) -> Vec<Marker> {
    let knee = c.refined_knee_nodes.or(c.knee_nodes);
    let mut out = Vec::new();
    if let Some(s) = knee.and_then(|n| {
        c.steps
            .iter()
            .rev()
            .find(|s| s.nodes == n && s.verdict == "held")
    }) {
        out.push(Marker {
            t: s.start_s.saturating_sub(1) as f64,
            label: format!("knee: {} nodes", s.nodes),
        });
    }
    if let Some(s) = c.steps.iter().find(|s| s.verdict == "broke") {
        out.push(Marker {
            t: s.start_s.saturating_sub(1) as f64,
            label: format!(
                "broke: {} nodes ({})",
                s.nodes,
                s.broken_by.as_deref().unwrap_or("?")
            ),
        });
    }
    out
}

fn steps_table(c: &Capacity) -> String {
    let dash = || "&ndash;".to_string();
    let ms = |v: Option<f64>| v.map_or_else(dash, |v| esc(&human::millis(v)));
    let num = |v: Option<f64>| v.map_or_else(dash, |v| esc(&human::num(v)));
    let pct = |v: Option<f64>| v.map_or_else(dash, |v| format!("{:.1} %", v * 100.0));
    let rows: Vec<Vec<String>> = c
        .steps
        .iter()
        .map(|s| {
            vec![
                esc(&s.phase),
                s.nodes.to_string(),
                format!("{}&ndash;{} s", s.start_s, s.end_s),
                format!("{} / {}", s.completed, s.offered),
                num(s.completed_per_sec),
                format!("{} / {}", num(s.in_flight_mean), num(s.littles_l)),
                ms(s.pull_p50_ms),
                ms(s.pull_p99_ms),
                pct(s.error_rate),
                s.bytes_per_sec.map_or_else(dash, |b| esc(&human::rate(b))),
                format!("{} / {}", s.fds_peak, s.connections_peak),
                s.harness_saturated_s.to_string(),
                match (&s.broken_by, &s.why) {
                    (Some(by), Some(why)) => {
                        format!("<b>broke</b>: {} &ndash; {}", esc(by), esc(why))
                    }
                    _ => "held".to_string(),
                },
            ]
        })
        .collect();
    table(
        "num",
        &[
            "phase",
            "nodes",
            "seconds",
            "completed / offered",
            "pulls/s (X)",
            "in flight L / X·R",
            "p50",
            "p99",
            "failed",
            "throughput",
            "fds / conns peak",
            "harness saturated s",
            "verdict",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(nodes: u32, start: u64, verdict: &str) -> CapacityStep {
        CapacityStep {
            phase: "climb".into(),
            nodes,
            start_s: start,
            end_s: start + 9,
            completed_per_sec: Some(f64::from(nodes)),
            verdict: verdict.into(),
            broken_by: (verdict == "broke").then(|| "http_503".to_string()),
            why: (verdict == "broke").then(|| "5.0 % of pulls failed".to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn draws_the_steps_and_marks_the_knee() {
        let c = Capacity {
            knee_nodes: Some(4),
            broken_nodes: Some(6),
            broken_by: Some("http_503".into()),
            ended_by: "broke".into(),
            steps: vec![
                step(2, 1, "held"),
                step(4, 11, "held"),
                step(6, 21, "broke"),
            ],
            ..Default::default()
        };
        let m = markers(&c);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].t, m[0].label.as_str()), (10.0, "knee: 4 nodes"));
        assert!(m[1].label.contains("http_503"));
        assert_eq!(step_at(&c, 15.0).map(|s| s.nodes), Some(4));
        assert_eq!(step_at(&c, 45.0).map(|s| s.nodes), None);
        let t = steps_table(&c);
        assert!(t.contains("<b>broke</b>: http_503"), "{t}");
    }

    #[test]
    fn the_sentence_says_what_held_and_what_broke() {
        let mut broke = step(6, 21, "broke");
        broke.error_rate = Some(0.04);
        let mut c = Capacity {
            knee_nodes: Some(4),
            broken_nodes: Some(6),
            broken_by: Some("http_503".into()),
            knee_downloads: Some(12),
            knee_bytes_per_sec: Some(2048.0),
            ended_by: "broke".into(),
            steps: vec![step(4, 11, "held"), broke],
            ..Default::default()
        };
        assert_eq!(
            capacity_sentence(&c),
            "holds 4 nodes (12 concurrent downloads, 2.00 KiB/s); at 6 nodes http_503 4.0 %"
        );
        // A saturated harness: the knee is a lower bound, the target is not blamed.
        c.steps[1].broken_by = Some("harness_saturated".into());
        c.steps[1].why = Some("the harness was saturated 3 of 20 s".into());
        let s = capacity_sentence(&c);
        assert!(s.starts_with("holds at least 4 nodes"), "{s}");
        assert!(
            s.ends_with("the harness, not the target, ran short (harness_saturated)"),
            "{s}"
        );
        // Nothing broke up to the limit.
        c.broken_nodes = None;
        c.ended_by = "max_nodes".into();
        assert!(capacity_sentence(&c).ends_with(", the most tried (max_nodes)"));
    }
}
