//! Figures of a comparison as text, the same in the console table, the
//! Markdown, the JUnit messages and the HTML: values in the metric's unit
//! (through [`crate::human`]), changes as `+12.3%` (ratios) or in the unit
//! (`+1.5pp`, `+0.25/pull`), intervals as `[+3.1%, +20.5%]`.

use super::metrics::{Direction, Scale, Unit};
use super::verdict::{Method, Row};
use crate::human;
use crate::result::summary::NO_DATA;

/// A value in its unit; `no data` for none.
pub fn value(unit: Unit, v: Option<f64>) -> String {
    let Some(v) = v else {
        return NO_DATA.to_string();
    };
    match unit {
        Unit::Millis => human::millis(v),
        Unit::BytesPerSec => human::rate(v),
        Unit::Share => share(v),
        Unit::PerPull => format!("{}/pull", human::num(v)),
        Unit::BytesPerPull => format!("{}/pull", human::bytes(v)),
        Unit::Count => human::num(v),
    }
}

/// A share (0..1) in percent.
fn share(v: f64) -> String {
    let p = v * 100.0;
    if p == 0.0 {
        "0%".into()
    } else {
        format!("{}%", human::num(p))
    }
}

/// A change with its sign: relative for ratios, in the unit for differences.
pub fn change(scale: Scale, unit: Unit, c: f64) -> String {
    let sign = if c < 0.0 { "-" } else { "+" };
    let a = c.abs();
    match (scale, unit) {
        (Scale::Ratio, _) => format!("{sign}{}%", human::num(a * 100.0)),
        (Scale::Difference, Unit::Share) => format!("{sign}{}pp", human::num(a * 100.0)),
        (Scale::Difference, Unit::BytesPerPull) => format!("{sign}{}/pull", human::bytes(a)),
        (Scale::Difference, Unit::PerPull) => format!("{sign}{}/pull", human::num(a)),
        (Scale::Difference, Unit::Millis) => format!("{sign}{}", human::millis(a)),
        (Scale::Difference, Unit::BytesPerSec) => format!("{sign}{}", human::rate(a)),
        (Scale::Difference, Unit::Count) => format!("{sign}{}", human::num(a)),
    }
}

/// A row's change, or `-` when there is none.
pub fn row_change(r: &Row) -> String {
    r.change
        .map(|c| change(r.def.scale, r.def.unit, c))
        .unwrap_or_else(|| "-".into())
}

/// A row's 95 % interval, or what stood in for it.
pub fn row_interval(r: &Row) -> String {
    match (r.interval, r.method) {
        (Some((lo, hi)), _) => format!(
            "[{}, {}]",
            change(r.def.scale, r.def.unit, lo),
            change(r.def.scale, r.def.unit, hi)
        ),
        _ => "-".into(),
    }
}

/// A tolerance as `--tolerance` takes it.
pub fn tolerance(r: &Row) -> String {
    let worse = match r.def.direction {
        Direction::LowerIsBetter => r.def.tolerance,
        Direction::HigherIsBetter => -r.def.tolerance,
    };
    change(r.def.scale, r.def.unit, worse)
}

/// How the interval was made, in words.
pub fn method(m: Method) -> &'static str {
    match m {
        Method::Runs => "bootstrap over runs",
        Method::Blocks => "block bootstrap over time",
        Method::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_in_their_unit() {
        assert_eq!(value(Unit::Millis, Some(1234.0)), "1.23s");
        assert_eq!(value(Unit::Share, Some(0.125)), "12.5%");
        assert_eq!(value(Unit::Share, Some(0.0)), "0%");
        assert_eq!(value(Unit::PerPull, None), "no data");
        assert_eq!(change(Scale::Ratio, Unit::Millis, 0.123), "+12.3%");
        assert_eq!(change(Scale::Ratio, Unit::Millis, -0.5), "-50%");
        assert_eq!(change(Scale::Difference, Unit::Share, 0.015), "+1.50pp");
        assert_eq!(change(Scale::Difference, Unit::PerPull, 2.0), "+2/pull");
    }
}
