//! Console output that survives what it prints and where it prints it.
//!
//! Text that comes from the target (a registry's error bodies and headers, a
//! URL it redirected to) can hold terminal control sequences: `ESC[2J` clears
//! the screen, `\r` rewrites the line it sits on, `ESC]0;...BEL` sets the
//! window title. [`escape`] shows every control character as a visible
//! escape (`\x1b`, `\r`, `\u{9b}`) before such text reaches a console line.
//!
//! stdout may be a pipe closed early (`pullstorm run ... | head -3`): [`print`]
//! treats that as the reader's choice, a quiet end of the output, not an
//! error (Rust ignores SIGPIPE, so `println!` would panic on EPIPE instead).

use std::borrow::Cow;
use std::io::{ErrorKind, Write};

/// True for the characters a terminal may act on: C0 controls (below 0x20,
/// newline and tab included), DEL (0x7f) and the C1 controls (0x80-0x9f).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `text` with every control character shown as an escape: `\n`, `\r`,
/// `\t` by name, the others as `\xNN` (C0, DEL) or `\u{NN}` (C1). Borrowed
/// when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && is_control(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for a message of several lines built by pullstorm itself (one
/// scenario error per line): the line breaks are kept, every other control
/// character in each line is escaped.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Writes `text` to stdout. A reader that went away (EPIPE) ends the output
/// quietly: `Ok`, and nothing more is written by the caller's later calls
/// either (each fails the same way). Other errors are returned.
#[cfg(not(test))]
pub fn print(text: &str) -> std::io::Result<()> {
    write_quietly(&mut std::io::stdout().lock(), text)
}

/// In the library's own tests, through `print!` so the test harness captures
/// the summaries of in-process runs instead of mixing them into its report.
#[cfg(test)]
pub fn print(text: &str) -> std::io::Result<()> {
    print!("{text}");
    Ok(())
}

/// [`print`] to any writer: `text`, then a flush; a broken pipe is `Ok`.
pub fn write_quietly(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sequences_are_shown_not_obeyed() {
        assert_eq!(escape("\u{1b}[2J cleared"), "\\x1b[2J cleared");
        assert_eq!(escape("ok\rforged line"), "ok\\rforged line");
        assert_eq!(escape("bell\u{7}"), "bell\\x07");
        assert_eq!(escape("\u{1b}]0;title\u{7}"), "\\x1b]0;title\\x07");
        assert_eq!(escape("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape("del\u{7f}"), "del\\x7f");
        // C1 controls: CSI (0x9b) acts like ESC [ on many terminals.
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("\u{80}\u{9f}"), "\\u{80}\\u{9f}");
    }

    #[test]
    fn printable_text_is_unchanged_and_borrowed() {
        for text in [
            "",
            "digest sha256:ab, 503 Service Unavailable",
            "é ü 中 \u{a0}",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let shown = escape(&c.to_string()).into_owned();
            assert!(!shown.chars().any(is_control), "{c:?} -> {shown:?}");
        }
    }

    #[test]
    fn escape_lines_keeps_only_the_line_breaks() {
        assert_eq!(
            escape_lines("x.toml:1: a\nx.toml:2: b\u{1b}[1A\r"),
            "x.toml:1: a\nx.toml:2: b\\x1b[1A\\r"
        );
    }

    /// A writer whose reader is gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_a_quiet_end() {
        assert!(write_quietly(&mut ClosedPipe, "summary\n").is_ok());
        let mut buffer = Vec::new();
        write_quietly(&mut buffer, "summary\n").unwrap();
        assert_eq!(buffer, b"summary\n");
    }
}
