//! The data behind the hover box: every timeline chart's series per bucket,
//! as compact JSON in an inline `<script type="application/json">` that
//! `html::JS` reads. Optional by design: the page reads the same without it.

use crate::report::axis::Unit;
use crate::report::decimate::Grid;
use std::fmt::Write;

/// One series as the hover script reads it.
pub(super) struct HoverSeries {
    pub name: String,
    pub color: &'static str,
    pub unit: Unit,
    pub values: Vec<Option<f64>>,
    /// Each bucket's highest second, when buckets are wider than one.
    pub max: Option<Vec<Option<f64>>>,
}

/// `{"w":1,"n":91,"span":90,"charts":[[{"n":..,"c":..,"u":..,"v":[..],"x":[..]}]]}`,
/// numbers cut to four significant digits to keep the page small.
pub(super) fn json(grid: &Grid, charts: &[Vec<HoverSeries>]) -> String {
    let mut s = String::with_capacity(64 << 10);
    let _ = write!(
        s,
        "{{\"w\":{},\"n\":{},\"span\":{},\"charts\":[",
        grid.width,
        grid.buckets,
        short(grid.span)
    );
    for (ci, chart) in charts.iter().enumerate() {
        if ci > 0 {
            s.push(',');
        }
        s.push('[');
        for (si, se) in chart.iter().enumerate() {
            if si > 0 {
                s.push(',');
            }
            push_series(&mut s, se);
        }
        s.push(']');
    }
    s.push_str("]}");
    s
}

fn push_series(s: &mut String, se: &HoverSeries) {
    let _ = write!(
        s,
        "{{\"n\":{},\"c\":\"{}\",\"u\":\"{}\",\"v\":",
        serde_json::Value::String(se.name.clone()),
        se.color,
        se.unit.js()
    );
    push_values(s, &se.values);
    if let Some(x) = &se.max {
        s.push_str(",\"x\":");
        push_values(s, x);
    }
    s.push('}');
}

fn push_values(s: &mut String, values: &[Option<f64>]) {
    s.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match v {
            Some(v) if v.is_finite() => s.push_str(&short(*v)),
            _ => s.push_str("null"),
        }
    }
    s.push(']');
}

/// A number with at most four significant digits, integers without a fraction.
fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(3 - mag);
    let r = (v * scale).round() / scale;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.0}")
    } else {
        let decimals = (3 - mag).clamp(0, 6) as usize;
        let text = format!("{r:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1_888_157_607.0), "1888000000");
        assert_eq!(short(0.123456), "0.1235");
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(96.0), "96");
        assert_eq!(short(-3.25), "-3.25");
    }
}
