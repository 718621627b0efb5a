//! The comparison as GitHub Markdown, for a pull-request comment: the
//! verdict, then a table (regressions first) and how it was judged.

use super::console::{headline, plural};
use super::format;
use super::load::Side;
use super::verdict::{ordered, Row, Verdict};
use std::fmt::Write;

/// Escapes text for a Markdown table cell: pipes, and anything that would
/// start markup or HTML.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if crate::terminal::is_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A metric name as code, or escaped when it holds a backtick.
fn code(s: &str) -> String {
    if s.contains('`') || s.chars().any(crate::terminal::is_control) || s.contains('|') {
        cell(s)
    } else {
        format!("`{s}`")
    }
}

/// The whole Markdown document.
pub fn render(baseline: &Side, candidate: &Side, rows: &[Row], notes: &[String]) -> String {
    let mut s = String::new();
    let regressed = rows.iter().any(|r| r.is_regression());
    let _ = writeln!(
        s,
        "### pullstorm compare: {} {}\n",
        cell(baseline.name()),
        if regressed {
            "\u{274c} regression"
        } else {
            "\u{2705} no regression"
        }
    );
    let _ = writeln!(s, "**{}**\n", cell(&headline(rows)));
    let _ = writeln!(
        s,
        "Baseline: {} run{} (`{}`); candidate: {} run{} (`{}`).\n",
        baseline.runs.len(),
        plural(baseline.runs.len()),
        baseline.label.replace('`', "'"),
        candidate.runs.len(),
        plural(candidate.runs.len()),
        candidate.label.replace('`', "'")
    );
    for n in notes {
        let _ = writeln!(s, "> {}\n", cell(n));
    }
    s.push_str(
        "| | metric | baseline | candidate | change | 95% interval | tolerance | verdict |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|---|\n");
    for r in ordered(rows) {
        let mark = match r.verdict {
            Verdict::Worse => "\u{274c}",
            Verdict::Better => "\u{2b06}\u{fe0f}",
            Verdict::NoChange => "",
            Verdict::NoData => "\u{2205}",
        };
        let verdict = if r.note.is_empty() {
            r.verdict.label().to_string()
        } else {
            format!("{} ({})", r.verdict.label(), r.note)
        };
        let _ = writeln!(
            s,
            "| {mark} | {} | {} | {} | {} | {} | {} | {} |",
            code(&r.def.key),
            cell(&format::value(r.def.unit, r.baseline)),
            cell(&format::value(r.def.unit, r.candidate)),
            cell(&format::row_change(r)),
            cell(&format::row_interval(r)),
            cell(&format::tolerance(r)),
            cell(&verdict)
        );
    }
    let method = rows
        .iter()
        .find(|r| r.interval.is_some())
        .map(|r| format::method(r.method))
        .unwrap_or("none");
    let _ = writeln!(
        s,
        "\nIntervals: 95 %, {method} (2000 resamples, fixed seed). A metric is worse only when its \
         interval excludes no change and the change exceeds its tolerance."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(cell("<script>"), "\\<script\\>");
        assert_eq!(cell("x\ny"), "x y");
    }
}
