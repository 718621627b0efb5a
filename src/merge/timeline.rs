//! The shards' timelines on one clock. A shard's row `t` covers its seconds
//! `[t-1, t)` after its own `started_at`; shifted by the shard's offset from
//! the earliest `started_at` it lands in the merged second whose end is
//! nearest (shards given one `--start-at` are milliseconds apart, so a row
//! moves by at most half a second). Each column is combined as
//! docs/merge.md says: counts and levels summed, the harness's own
//! percentages and timer lag the highest of any shard.

use crate::result::model::TimelineRow;
use std::collections::BTreeMap;

/// One shard's timeline and how far its start is after the earliest, ms.
pub struct Shifted<'a> {
    pub offset_ms: u64,
    pub rows: &'a [TimelineRow],
}

/// The merged second a shard's row `t` falls in.
pub fn merged_second(offset_ms: u64, t: u64) -> u64 {
    (offset_ms + t * 1000 + 500) / 1000
}

/// The merged timeline: one row per second any shard has a row for, in order.
pub fn align(parts: &[Shifted<'_>]) -> Vec<TimelineRow> {
    let mut out: BTreeMap<u64, TimelineRow> = BTreeMap::new();
    for part in parts {
        for r in part.rows {
            let t = merged_second(part.offset_ms, r.t);
            let m = out.entry(t).or_insert_with(|| TimelineRow {
                t,
                ..TimelineRow::default()
            });
            add_row(m, r);
        }
    }
    out.into_values().collect()
}

/// Adds one shard's row into the merged row of its second.
fn add_row(m: &mut TimelineRow, r: &TimelineRow) {
    // Levels (pulls in flight, connections, fds) of processes on different
    // machines add up: the fleet held that many at once, to the second.
    m.active_pulls += r.active_pulls;
    m.connections += r.connections;
    m.fds += r.fds;
    m.bytes += r.bytes;
    m.pulls_completed += r.pulls_completed;
    m.pulls_failed += r.pulls_failed;
    m.retries += r.retries;
    m.errors += r.errors;
    for (class, n) in &r.errors_by_class {
        *m.errors_by_class.entry(class.clone()).or_default() += n;
    }
    // Percentages of each shard's own cores: summing them means nothing; the
    // busiest shard is the one that may have distorted the figures.
    m.harness_cpu_percent = highest(m.harness_cpu_percent, r.harness_cpu_percent);
    m.harness_cpu_wait_percent = highest(m.harness_cpu_wait_percent, r.harness_cpu_wait_percent);
    m.timer_lag_ms = highest(m.timer_lag_ms, r.timer_lag_ms);
}

fn highest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: u64, bytes: u64, fds: u64, cpu: Option<f64>) -> TimelineRow {
        TimelineRow {
            t,
            bytes,
            fds,
            connections: fds as i64,
            active_pulls: 1,
            pulls_completed: 1,
            errors_by_class: [("http_503".to_string(), 1)].into(),
            harness_cpu_percent: cpu,
            ..TimelineRow::default()
        }
    }

    #[test]
    fn rows_align_on_wall_clock_and_sum_per_second() {
        let a = [row(1, 10, 5, Some(40.0)), row(2, 20, 6, Some(90.0))];
        // Started 0.3 s later: its rows land in the same seconds.
        let b = [row(1, 1, 2, Some(70.0)), row(2, 2, 3, None)];
        // Started 2.2 s later: its second 1 is the merged second 3.
        let c = [row(1, 100, 7, None)];
        let m = align(&[
            Shifted {
                offset_ms: 0,
                rows: &a,
            },
            Shifted {
                offset_ms: 300,
                rows: &b,
            },
            Shifted {
                offset_ms: 2200,
                rows: &c,
            },
        ]);
        let t: Vec<u64> = m.iter().map(|r| r.t).collect();
        assert_eq!(t, [1, 2, 3]);
        assert_eq!(m[0].bytes, 11);
        assert_eq!(m[1].bytes, 22);
        assert_eq!(m[2].bytes, 100);
        assert_eq!((m[0].fds, m[0].connections, m[0].active_pulls), (7, 7, 2));
        assert_eq!(m[1].errors_by_class["http_503"], 2);
        assert_eq!(m[0].harness_cpu_percent, Some(70.0));
        assert_eq!(m[1].harness_cpu_percent, Some(90.0));
        assert_eq!(m[2].harness_cpu_percent, None, "no data stays no data");
        // Nothing lost or made up.
        let sum = |rows: &[TimelineRow]| rows.iter().map(|r| r.bytes).sum::<u64>();
        assert_eq!(sum(&m), sum(&a) + sum(&b) + sum(&c));
        assert_eq!(merged_second(499, 1), 1);
        assert_eq!(merged_second(500, 1), 2);
    }
}
