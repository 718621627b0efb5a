//! The run's own charts, from the recorder's per-second timeline rows:
//! throughput, active pulls and connections, file descriptors (the harness
//! and every watched process against their limits), errors by class,
//! retries, and the harness's own CPU and timer lag against the limits that
//! make a second saturated.

use super::charts::Charts;
use crate::metrics::harness::{CPU_SATURATED_PERCENT, TIMER_LAG_SATURATED_MS};
use crate::report::axis::Unit;
use crate::report::colors::{class_color, PALETTE};
use crate::report::decimate::{Agg, Grid};
use crate::report::svg::{Limit, Stack};
use crate::result::model::{TimelineRow, WatchedKind};
use std::collections::BTreeMap;

/// Adds the run's charts in page order.
pub(super) fn add(b: &mut Charts) {
    throughput(b);
    pulls_and_connections(b);
    file_descriptors(b);
    errors_by_class(b);
    retries(b);
    harness(b);
}

/// A series of the timeline rows on the section's grid.
fn agg(b: &Charts, value: impl Fn(&TimelineRow) -> f64) -> Agg {
    Agg::new(&b.grid, b.doc.timeline.iter().map(|r| (r.t, value(r))))
}

/// What a point of a wide bucket stands for; nothing when buckets are seconds.
fn bucket_note(grid: &Grid) -> String {
    if grid.width > 1 {
        format!(
            "Each point is {} s: the line is the mean, the band the lowest and highest second.",
            grid.width
        )
    } else {
        String::new()
    }
}

/// What a bar of a wide bucket stands for; nothing when buckets are seconds.
fn bar_note(grid: &Grid) -> String {
    if grid.width > 1 {
        format!("Mean per second over each {} s bar.", grid.width)
    } else {
        String::new()
    }
}

fn throughput(b: &mut Charts) {
    let thr = agg(b, |r| r.bytes as f64);
    let mut c = b.chart(
        "Throughput (all nodes, body bytes received)",
        Unit::BytesPerSec,
    );
    let mut received = b.line("received", PALETTE[0], &thr);
    received.fill = true;
    c.lines.push(received);
    let note = bucket_note(&b.grid);
    b.push_lines(c, &[thr], &note);
}

fn pulls_and_connections(b: &mut Charts) {
    let act = agg(b, |r| r.active_pulls as f64);
    let con = agg(b, |r| r.connections as f64);
    let mut c = b.chart("Active pulls and open connections", Unit::Count);
    c.lines.push(b.line("active pulls", PALETTE[0], &act));
    c.lines.push(b.line("connections", PALETTE[1], &con));
    c.min_top = 4.0;
    b.push_lines(c, &[act, con], "Highest value of each second.");
}

/// The harness's fds from the timeline, then each watched process's from
/// its samples, each with its limit.
fn file_descriptors(b: &mut Charts) {
    let fds = agg(b, |r| r.fds as f64);
    let mut c = b.chart("Open file descriptors against their limits", Unit::Count);
    c.lines.push(b.line("harness", PALETTE[0], &fds));
    c.limits.push(Limit {
        name: "harness limit".into(),
        color: PALETTE[0],
        value: b.doc.fd.client_limit as f64,
    });
    let mut aggs = vec![fds];
    let doc = b.doc;
    for (i, t) in doc
        .watched
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
        .enumerate()
    {
        let color = PALETTE[(i + 1) % PALETTE.len()];
        let a = Agg::new(
            &b.grid,
            t.series.iter().filter_map(|p| Some((p.t, p.fds? as f64))),
        );
        if a.peak().is_none() {
            continue;
        }
        c.lines.push(b.line(&t.label(), color, &a));
        if let Some(limit) = t.fd_limit {
            c.limits.push(Limit {
                name: format!("{} limit", t.label()),
                color,
                value: limit as f64,
            });
        }
        aggs.push(a);
    }
    c.min_top = 4.0;
    b.push_lines(
        c,
        &aggs,
        "Dashed: each process's soft nofile limit (process_max_fds for an endpoint).",
    );
}

/// Errors per second, stacked by class, the most frequent class at the bottom.
fn errors_by_class(b: &mut Charts) {
    const TITLE: &str = "Errors per second, by class";
    let doc = b.doc;
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &doc.timeline {
        for (k, v) in &r.errors_by_class {
            *classes.entry(k.as_str()).or_default() += v;
        }
    }
    if classes.is_empty() {
        b.push_empty(TITLE, "No errors during the run.");
        return;
    }
    let mut c = b.chart(TITLE, Unit::Count);
    let mut ordered: Vec<(&str, u64)> = classes.into_iter().collect();
    ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (class, _) in &ordered {
        let a = agg(b, |r| {
            r.errors_by_class.get(*class).copied().unwrap_or(0) as f64
        });
        c.stacks.push(Stack {
            name: class.to_string(),
            color: class_color(class),
            values: a.rate(&b.grid),
        });
    }
    c.min_top = 1.0;
    c.height = 180.0;
    let note = bar_note(&b.grid);
    b.push_stacks(c, &note);
}

fn retries(b: &mut Charts) {
    const TITLE: &str = "Retries per second";
    let total: u64 = b.doc.timeline.iter().map(|r| r.retries).sum();
    if total == 0 {
        b.push_empty(TITLE, "No retries during the run.");
        return;
    }
    let a = agg(b, |r| r.retries as f64);
    let mut c = b.chart(TITLE, Unit::Count);
    c.stacks.push(Stack {
        name: "retries".into(),
        color: PALETTE[3],
        values: a.rate(&b.grid),
    });
    c.min_top = 1.0;
    c.height = 180.0;
    let note = bar_note(&b.grid);
    b.push_stacks(c, &note);
}

/// The harness's CPU (percent of its usable cores) and timer lag per
/// second, each with the limit from which a second counts as saturated.
/// Seconds without a figure are gaps, never zeros.
fn harness(b: &mut Charts) {
    let doc = b.doc;
    let Some(h) = doc.harness.as_ref() else {
        b.push_empty(
            "Harness CPU and timer lag",
            "No harness figures in this result (written before pullstorm measured them).",
        );
        return;
    };
    let rows = &doc.timeline;
    let cpu = Agg::new(
        &b.grid,
        rows.iter()
            .filter_map(|r| Some((r.t, r.harness_cpu_percent?))),
    );
    let wait = Agg::new(
        &b.grid,
        rows.iter()
            .filter_map(|r| Some((r.t, r.harness_cpu_wait_percent?))),
    );
    let lag = Agg::new(
        &b.grid,
        rows.iter().filter_map(|r| Some((r.t, r.timer_lag_ms?))),
    );
    let mut c = b.chart(
        &format!(
            "Harness CPU, percent of the {} it may use",
            crate::result::summary::cores(h.usable_cores)
        ),
        Unit::Percent,
    );
    c.lines.push(b.line("used", PALETTE[0], &cpu));
    c.lines.push(b.line("waiting for a CPU", PALETTE[1], &wait));
    c.limits.push(Limit {
        name: "saturated from".into(),
        color: PALETTE[3],
        value: CPU_SATURATED_PERCENT,
    });
    c.min_top = 100.0;
    let note = format!(
        "All of pullstorm's threads, user + system{}; waiting: ready to run while other processes had the cores (threads waiting together add up). Dashed: {CPU_SATURATED_PERCENT}%, from which used, or used + waiting, makes a second saturated. {}",
        if h.embedded_registry {
            ", the embedded registry's included"
        } else {
            ""
        },
        bucket_note(&b.grid)
    );
    b.push_lines(c, &[cpu, wait], note.trim_end());
    let mut c = b.chart("Harness timer lag (fleet runtime)", Unit::Millis);
    c.lines.push(b.line("timer lag", PALETTE[0], &lag));
    c.limits.push(Limit {
        name: "saturated above".into(),
        color: PALETTE[3],
        value: TIMER_LAG_SATURATED_MS,
    });
    c.min_top = 10.0;
    let note = format!(
        "How late a timer on the runtime that runs the nodes woke, at worst in each second: what node tasks wait beyond their own I/O. Dashed: {TIMER_LAG_SATURATED_MS} ms, above which a second counts as saturated."
    );
    b.push_lines(c, &[lag], &note);
}
