//! The comparison as JUnit XML, which CI systems read: one testsuite, one
//! testcase per metric, a `<failure>` for each regression and `<skipped>`
//! for each metric without data. Text is escaped for XML, and characters XML
//! 1.0 cannot hold are dropped.

use super::format;
use super::verdict::{Row, Verdict};
use std::fmt::Write;

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            // Not allowed in XML 1.0, even escaped.
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document; `suite` names the testsuite (the scenario).
pub fn render(suite: &str, rows: &[Row]) -> String {
    let failures = rows.iter().filter(|r| r.is_regression()).count();
    let skipped = rows.iter().filter(|r| r.verdict == Verdict::NoData).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"pullstorm compare\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        rows.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"pullstorm compare: {}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        esc(suite),
        rows.len()
    );
    for r in rows {
        let _ = write!(
            s,
            "    <testcase classname=\"pullstorm.compare\" name=\"{}\">",
            esc(&r.def.key)
        );
        let detail = format!(
            "{}: baseline {}, candidate {}, change {}, 95% interval {}, tolerance {}{}",
            r.def.what,
            format::value(r.def.unit, r.baseline),
            format::value(r.def.unit, r.candidate),
            format::row_change(r),
            format::row_interval(r),
            format::tolerance(r),
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            }
        );
        match r.verdict {
            Verdict::Worse => {
                let _ = write!(
                    s,
                    "\n      <failure message=\"{} is worse: {}\" type=\"regression\">{}</failure>\n    ",
                    esc(&r.def.key),
                    esc(&format::row_change(r)),
                    esc(&detail)
                );
            }
            Verdict::NoData => {
                let _ = write!(s, "\n      <skipped message=\"{}\"/>\n    ", esc(&detail));
            }
            _ => {
                let _ = write!(s, "\n      <system-out>{}</system-out>\n    ", esc(&detail));
            }
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_the_xml_well_formed() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(esc("bell\u{7}"), "bell");
    }
}
