//! The comparisons of path thresholds (`"latency.pull.p99" = "< 8m"`): parsed
//! once when the scenario loads, without knowing the path they apply to;
//! [`Comparison::fit`] then checks the units against the path's kind.
//!
//! Grammar: `[rate] OP RIGHT` where OP is `<`, `<=`, `>`, `>=`, `==` or `!=`
//! and RIGHT is a literal (`0`, `8m`, `1GiB`, `100MB/s`, `1%`), a path into
//! result.json (`pulls.planned`), or a factor times a path (`0.05 * pulls.started`).

use super::paths::Kind;
use crate::scenario::units::{ByteSize, Rate, Span};
use std::fmt;

/// How the actual figure is compared with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// Whether `actual OP limit` holds. Equality allows for the rounding of
    /// figures computed as floats (a mean, a rate).
    pub fn holds(self, actual: f64, limit: f64) -> bool {
        let equal = (actual - limit).abs() <= 1e-9 * actual.abs().max(limit.abs()).max(1.0);
        match self {
            Op::Lt => actual < limit && !equal,
            Op::Le => actual <= limit || equal,
            Op::Gt => actual > limit && !equal,
            Op::Ge => actual >= limit || equal,
            Op::Eq => equal,
            Op::Ne => !equal,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A number as written, with the unit it was written in, converted to the
/// unit result.json uses for that kind (ms, bytes, bytes per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// A bare number: in the path's own unit.
    Plain(f64),
    /// A duration, in ms.
    Millis(f64),
    /// A size, in bytes.
    Bytes(f64),
    /// A transfer rate, in bytes per second.
    BytesPerSec(f64),
    /// `N%`: N.
    Percent(f64),
}

/// What the figure is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Right {
    Literal(Literal),
    /// `factor * path`; a path alone has factor 1.
    Scaled {
        factor: f64,
        path: String,
    },
}

/// One parsed comparison, e.g. `rate < 0.01` or `< 0.05 * pulls.started`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// As written (trimmed): the check's `limit` in result.json.
    pub text: String,
    /// `rate ...`: the figure divided by the pulls (see [`super::RATE_DENOMINATOR`]).
    pub rate: bool,
    pub op: Op,
    pub right: Right,
}

impl Comparison {
    /// Parses `[rate] OP RIGHT`; the error says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Comparison, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "empty comparison: write an operator and a limit, e.g. \"< 8m\" or \"== 0\"".into(),
            );
        }
        let (rate, rest) = match text.strip_prefix("rate") {
            Some(rest) if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') => {
                (true, rest.trim_start())
            }
            _ => (false, text),
        };
        let (op, rest) = split_op(rest).ok_or_else(|| {
            if rest.starts_with('=') {
                format!("`{text}`: write `==` to compare for equality")
            } else {
                format!(
                    "`{text}` does not start with a comparison operator \
                     (<, <=, >, >=, == or !=), e.g. \"< {rest}\""
                )
            }
        })?;
        let right = rest.trim();
        if right.is_empty() {
            return Err(format!("`{text}` has no limit after `{op}`"));
        }
        let right = parse_right(right).map_err(|e| format!("`{text}`: {e}"))?;
        if rate
            && !matches!(
                right,
                Right::Literal(Literal::Plain(_) | Literal::Percent(_))
            )
        {
            return Err(format!(
                "`{text}`: a rate is compared with a number or a percentage (e.g. \"rate < 0.01\" or \"rate < 1%\")"
            ));
        }
        Ok(Comparison {
            text: text.to_string(),
            rate,
            op,
            right,
        })
    }

    /// Checks the comparison against the kind of the figure it judges (and the
    /// kind of a path on its right); returns the limit literal in the figure's
    /// own unit, or `None` for a path on the right.
    pub fn fit(&self, left: Kind, right_kind: Option<Kind>) -> Result<Option<f64>, String> {
        if self.rate && left != Kind::Count {
            return Err(format!(
                "`{}`: a rate divides a count by the pulls, and this figure is {}",
                self.text,
                left.describe()
            ));
        }
        match &self.right {
            Right::Scaled { path, .. } => {
                let right = right_kind.unwrap_or(Kind::Count);
                if right != left {
                    return Err(format!(
                        "`{}`: {path} is {}, the figure is {}: they do not compare",
                        self.text,
                        right.describe(),
                        left.describe()
                    ));
                }
                Ok(None)
            }
            Right::Literal(lit) => {
                let value = match (*lit, left) {
                    (Literal::Plain(v), _) => v,
                    (Literal::Percent(v), _) if self.rate => v / 100.0,
                    (Literal::Percent(v), Kind::Percent) => v,
                    (Literal::Millis(v), Kind::Millis) => v,
                    (Literal::Bytes(v), Kind::Bytes) => v,
                    (Literal::BytesPerSec(v), Kind::BytesPerSec) => v,
                    (lit, kind) => {
                        return Err(format!(
                            "`{}`: the limit is {}, the figure is {}{}",
                            self.text,
                            lit.describe(),
                            kind.describe(),
                            kind.hint()
                        ))
                    }
                };
                Ok(Some(value))
            }
        }
    }
}

impl Literal {
    fn describe(self) -> &'static str {
        match self {
            Literal::Plain(_) => "a number",
            Literal::Millis(_) => "a duration",
            Literal::Bytes(_) => "a size",
            Literal::BytesPerSec(_) => "a rate",
            Literal::Percent(_) => "a percentage",
        }
    }
}

/// The operator at the start of `text`, and what follows it.
fn split_op(text: &str) -> Option<(Op, &str)> {
    // Two-character operators first: `<=` is not `<` followed by `=...`.
    for (sym, op) in [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if let Some(rest) = text.strip_prefix(sym) {
            return Some((op, rest));
        }
    }
    None
}

/// A literal, a path, or `factor * path`.
fn parse_right(text: &str) -> Result<Right, String> {
    if let Some((factor, path)) = text.split_once('*') {
        let factor = factor.trim();
        let factor: f64 = factor
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite() && *f >= 0.0)
            .ok_or_else(|| {
                format!("`{factor}` before `*` is not a number (write e.g. 0.05 * pulls.started)")
            })?;
        return Ok(Right::Scaled {
            factor,
            path: parse_path(path.trim())?,
        });
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return parse_literal(text).map(Right::Literal);
    }
    Ok(Right::Scaled {
        factor: 1.0,
        path: parse_path(text)?,
    })
}

/// A dotted path: names of letters, digits, `_` and `-`.
fn parse_path(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is neither a number with a unit nor a path into result.json (e.g. pulls.started)"
        ))
    }
}

/// `0`, `0.5`, `8m`, `500ms`, `1GiB`, `100MB/s`, `1Gbit`, `5%`.
fn parse_literal(text: &str) -> Result<Literal, String> {
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Ok(v) = plain.parse::<f64>() {
        if v.is_finite() {
            return Ok(Literal::Plain(v));
        }
    }
    if let Some(number) = text.strip_suffix('%') {
        return number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Literal::Percent)
            .ok_or_else(|| format!("`{text}` is not a percentage (e.g. 5%)"));
    }
    if let Ok(span) = Span::parse(text) {
        return Ok(Literal::Millis(span.0.as_secs_f64() * 1000.0));
    }
    if let Ok(size) = ByteSize::parse(text) {
        return Ok(Literal::Bytes(size.0 as f64));
    }
    match Rate::parse(text) {
        Ok(rate) => Ok(Literal::BytesPerSec(rate.0 as f64)),
        Err(_) => Err(format!(
            "`{text}` is not a number, a duration (500ms, 8m), a size (1GiB), \
             a rate (100MB/s, 1Gbit) or a percentage (5%)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Comparison {
        Comparison::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_operator() {
        for (text, op) in [
            ("< 1", Op::Lt),
            ("<= 1", Op::Le),
            ("> 1", Op::Gt),
            (">= 1", Op::Ge),
            ("== 1", Op::Eq),
            ("!= 1", Op::Ne),
            ("<=1", Op::Le),
        ] {
            let c = parsed(text);
            assert_eq!(c.op, op, "{text}");
            assert_eq!(c.right, Right::Literal(Literal::Plain(1.0)));
            assert!(!c.rate);
        }
        assert!(Op::Lt.holds(0.0, 1.0) && !Op::Lt.holds(1.0, 1.0));
        assert!(Op::Le.holds(1.0, 1.0) && !Op::Le.holds(1.5, 1.0));
        assert!(Op::Gt.holds(2.0, 1.0) && !Op::Gt.holds(1.0, 1.0));
        assert!(Op::Ge.holds(1.0, 1.0) && !Op::Ge.holds(0.5, 1.0));
        assert!(Op::Eq.holds(0.1 + 0.2, 0.3) && !Op::Eq.holds(1.0, 0.0));
        assert!(Op::Ne.holds(1.0, 0.0) && !Op::Ne.holds(0.0, 0.0));
    }

    #[test]
    fn units_become_the_figures_own() {
        let lit = |text: &str| match parsed(text).right {
            Right::Literal(l) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!(lit("< 8m"), Literal::Millis(480_000.0));
        assert_eq!(lit("< 500ms"), Literal::Millis(500.0));
        assert_eq!(lit("< 1m30s"), Literal::Millis(90_000.0));
        assert_eq!(lit("< 1GiB"), Literal::Bytes(1073741824.0));
        assert_eq!(lit("< 16M"), Literal::Bytes(16e6));
        assert_eq!(lit("> 100MB/s"), Literal::BytesPerSec(1e8));
        assert_eq!(lit("> 1Gbit"), Literal::BytesPerSec(1.25e8));
        assert_eq!(lit("< 90%"), Literal::Percent(90.0));
        assert_eq!(lit("< 1_000"), Literal::Plain(1000.0));
        assert_eq!(lit("< 0.5"), Literal::Plain(0.5));

        let fit = |text: &str, kind: Kind| parsed(text).fit(kind, None);
        assert_eq!(fit("< 8m", Kind::Millis), Ok(Some(480_000.0)));
        // A bare number is in the figure's own unit: ms for a latency.
        assert_eq!(fit("< 250", Kind::Millis), Ok(Some(250.0)));
        assert_eq!(fit("< 1GiB", Kind::Bytes), Ok(Some(1073741824.0)));
        assert_eq!(fit("< 90%", Kind::Percent), Ok(Some(90.0)));
        let e = fit("< 8m", Kind::Bytes).unwrap_err();
        assert!(
            e.contains("a duration") && e.contains("a size in bytes"),
            "{e}"
        );
        let e = fit("< 1GiB", Kind::Millis).unwrap_err();
        assert!(e.contains("write a duration"), "{e}");
        assert!(fit("< 5%", Kind::Count).is_err());
    }

    #[test]
    fn a_path_on_the_right_with_a_factor() {
        let c = parsed("< 0.05 * pulls.started");
        assert_eq!(
            c.right,
            Right::Scaled {
                factor: 0.05,
                path: "pulls.started".into()
            }
        );
        assert_eq!(c.fit(Kind::Count, Some(Kind::Count)), Ok(None));
        let c = parsed(">= pulls.planned");
        assert_eq!(
            c.right,
            Right::Scaled {
                factor: 1.0,
                path: "pulls.planned".into()
            }
        );
        let e = parsed("< 2 * latency.pull.p50")
            .fit(Kind::Bytes, Some(Kind::Millis))
            .unwrap_err();
        assert!(e.contains("do not compare"), "{e}");
    }

    #[test]
    fn the_rate_form() {
        let c = parsed("rate < 0.01");
        assert!(c.rate);
        assert_eq!(c.fit(Kind::Count, None), Ok(Some(0.01)));
        assert_eq!(parsed("rate <= 1%").fit(Kind::Count, None), Ok(Some(0.01)));
        assert!(parsed("rate < 1").fit(Kind::Millis, None).is_err());
        assert!(Comparison::parse("rate < 8m").is_err());
        assert!(Comparison::parse("rate < 0.1 * pulls.started").is_err());
        // `rated` is not the rate keyword (and not an operator either).
        assert!(Comparison::parse("rated < 1").is_err());
    }

    #[test]
    fn bad_input_says_what_to_write() {
        for (text, says) in [
            ("", "empty comparison"),
            ("  ", "empty comparison"),
            ("8m", "does not start with a comparison operator"),
            ("= 0", "write `==`"),
            ("=< 0", "write `==`"),
            ("<", "no limit after `<`"),
            ("< 8 parsecs", "is not a number, a duration"),
            ("< abc * pulls.started", "is not a number"),
            ("< 0.05 *", "neither a number"),
            ("< pulls..started", "neither a number"),
        ] {
            let e = Comparison::parse(text).expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
