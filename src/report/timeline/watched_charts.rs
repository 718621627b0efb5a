//! Charts of the watched processes and endpoints: the harness's sockets by
//! TCP state, memory and CPU of everything that reports them, one chart of
//! values per endpoint; and the exits and zombies that every chart marks.

use super::charts::Charts;
use crate::human;
use crate::report::axis::Unit;
use crate::report::colors::PALETTE;
use crate::report::decimate::Agg;
use crate::report::svg::{Marker, TimeChart};
use crate::result::model::{ResultDoc, WatchedKind, WatchedPoint, WatchedSummary};

/// TCP states drawn even when zero, in legend order.
const MAIN_STATES: [&str; 4] = [
    "tcp_established",
    "tcp_time_wait",
    "tcp_close_wait",
    "tcp_syn_sent",
];

/// Adds the watched charts in page order.
pub(super) fn add(b: &mut Charts) {
    harness_sockets(b);
    memory_and_cpu(b);
    endpoint_values(b);
}

/// Exits and zombies of watched processes, as vertical markers.
pub(super) fn markers(watched: &[WatchedSummary]) -> Vec<Marker> {
    let mut m = Vec::new();
    for t in watched {
        if let Some(at) = t.zombie_at_s {
            m.push(Marker {
                t: at,
                label: format!("{} zombie", t.label()),
            });
        }
        if let Some(at) = t.exited_at_s {
            m.push(Marker {
                t: at,
                label: format!("{} exited", t.label()),
            });
        }
    }
    m
}

/// A chart with one line per `values` key of `w`, in palette order, each
/// line named by its key less `prefix`.
fn values_chart(
    b: &Charts,
    w: &WatchedSummary,
    title: &str,
    keys: &[String],
    prefix: &str,
) -> (TimeChart, Vec<Agg>) {
    let mut c = b.chart(title, Unit::Count);
    let mut aggs = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let a = Agg::new(
            &b.grid,
            w.series
                .iter()
                .filter_map(|p| Some((p.t, *p.values.get(k)?))),
        );
        let name = k.strip_prefix(prefix).unwrap_or(k);
        c.lines.push(b.line(name, PALETTE[i % PALETTE.len()], &a));
        aggs.push(a);
    }
    c.min_top = 4.0;
    (c, aggs)
}

/// The harness's own sockets by TCP state.
fn harness_sockets(b: &mut Charts) {
    let Some(h) = b
        .doc
        .watched
        .iter()
        .find(|t| t.kind == WatchedKind::Harness)
    else {
        return;
    };
    let keys = tcp_state_keys(h);
    if keys.is_empty() {
        return;
    }
    let (c, aggs) = values_chart(b, h, "Harness sockets by TCP state", &keys, "tcp_");
    b.push_lines(
        c,
        &aggs,
        "This process's sockets (the embedded registry's too, when it runs in-process); TIME_WAIT counts the whole network namespace on the target's port.",
    );
}

/// Memory and CPU of every process and endpoint that reports them.
fn memory_and_cpu(b: &mut Charts) {
    type Pick = fn(&WatchedPoint) -> Option<f64>;
    let charts: [(&str, Unit, &str, Pick); 2] = [
        ("Resident memory (RSS)", Unit::Bytes, "", |p| {
            p.rss.map(|v| v as f64)
        }),
        (
            "CPU, percent of one core",
            Unit::Percent,
            "100% is one core fully busy; the machine's total is 100% x cores.",
            |p| p.cpu_pct,
        ),
    ];
    let doc = b.doc;
    for (title, unit, note, pick) in charts {
        let mut c = b.chart(title, unit);
        let mut aggs = Vec::new();
        for (i, w) in doc.watched.iter().enumerate() {
            let a = Agg::new(
                &b.grid,
                w.series.iter().filter_map(|p| Some((p.t, pick(p)?))),
            );
            if a.peak().is_none() {
                continue;
            }
            c.lines.push(b.line(&w.label(), watched_color(doc, i), &a));
            aggs.push(a);
        }
        if !c.lines.is_empty() {
            b.push_lines(c, &aggs, note);
        }
    }
}

/// One chart per endpoint with values (stub_status fields, goroutines, extra metrics).
fn endpoint_values(b: &mut Charts) {
    let doc = b.doc;
    for w in doc.watched.iter().filter(|t| {
        matches!(t.kind, WatchedKind::StubStatus | WatchedKind::Prometheus) && !t.peaks.is_empty()
    }) {
        let stub = w.kind == WatchedKind::StubStatus;
        let keys: Vec<String> = if stub {
            ["active", "reading", "writing", "waiting"]
                .iter()
                .map(|s| s.to_string())
                .filter(|k| w.peaks.contains_key(k))
                .collect()
        } else {
            w.peaks.keys().cloned().collect()
        };
        if keys.is_empty() {
            continue;
        }
        let title = if stub {
            format!("nginx connections ({} stub_status)", w.name)
        } else {
            format!("{} values", w.name)
        };
        let (c, aggs) = values_chart(b, w, &title, &keys, "");
        let note = if stub {
            let dropped = w.peaks.get("dropped").copied().unwrap_or(0.0);
            format!(
                "Connections nginx accepted but dropped (accepts - handled, since nginx started): {}.",
                human::num(dropped)
            )
        } else {
            String::new()
        };
        b.push_lines(c, &aggs, &note);
    }
}

/// The harness's `tcp_*` values worth a line (seen above zero, or one of
/// [`MAIN_STATES`]), main states first in their order, then by name.
fn tcp_state_keys(t: &WatchedSummary) -> Vec<String> {
    let mut keys: Vec<String> = t
        .peaks
        .iter()
        .filter(|(k, v)| k.starts_with("tcp_") && (**v > 0.0 || MAIN_STATES.contains(&k.as_str())))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort_by_key(|k| {
        (
            MAIN_STATES
                .iter()
                .position(|m| m == k)
                .unwrap_or(MAIN_STATES.len()),
            k.clone(),
        )
    });
    keys
}

/// The colour of watched entry `i`: the harness keeps the first colour
/// everywhere, the others follow in order (as in the fd chart).
fn watched_color(doc: &ResultDoc, i: usize) -> &'static str {
    if doc.watched[i].kind == WatchedKind::Harness {
        return PALETTE[0];
    }
    let nth = doc.watched[..i]
        .iter()
        .filter(|t| t.kind != WatchedKind::Harness)
        .count();
    PALETTE[(nth + 1) % PALETTE.len()]
}
