//! Where things are in a scenario file: dotted key paths, byte spans and
//! `line:column` positions.
//!
//! `toml` reports deserialization errors with a byte span but no key, and
//! semantic checks know the key but not the span. A spanned `toml_edit`
//! document of the same text answers both questions: which key covers a span,
//! and where a key is.

use std::fmt;
use std::ops::Range;
use toml_edit::{Document, Item, TableLike};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `fleet.clusters` or `embedded.layers[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// Parses `a.b[2].c` (the form `Display` writes). Quoted keys are not needed
    /// by the model, so they are not supported.
    pub fn parse(text: &str) -> KeyPath {
        let mut segs = Vec::new();
        for part in text.split('.') {
            let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
            segs.push(Seg::Key(name.to_string()));
            for index in indexes.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        KeyPath(segs)
    }

    /// The key names only (array indexes dropped).
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
    }

    /// True when one path is a prefix of the other, comparing key names only:
    /// `fleet` and `fleet.clusters` are related, `embedded.layers` and
    /// `embedded.layers[0]` too, `fleet.clusters` and `fleet.client` are not.
    pub fn related(&self, other: &KeyPath) -> bool {
        self.keys().zip(other.keys()).all(|(a, b)| a == b)
    }

    /// The last key name, if any.
    pub fn last_key(&self) -> Option<&str> {
        self.keys().last()
    }

    /// This path without its last step.
    pub fn parent(&self) -> Option<KeyPath> {
        let mut segs = self.0.clone();
        segs.pop()?;
        Some(KeyPath(segs))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset. Offsets past the
/// end or inside a character are clamped, never a panic.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn contains(span: Option<Range<usize>>, pos: usize) -> bool {
    span.is_some_and(|s| s.start <= pos && (pos < s.end || s.is_empty() && pos == s.start))
}

/// The deepest key path whose key or value covers byte offset `pos`.
///
/// Header tables (`[fleet]`) do not span their contents, so every table is
/// searched rather than only those whose span covers `pos`.
pub fn key_at<S>(doc: &Document<S>, pos: usize) -> KeyPath {
    let mut path = Vec::new();
    search(doc.as_item(), pos, &mut path);
    KeyPath(path)
}

fn search(item: &Item, pos: usize, path: &mut Vec<Seg>) -> bool {
    if let Some(table) = item.as_table_like() {
        return search_table(table, pos, path);
    }
    if let Some(array) = item.as_array() {
        for (i, value) in array.iter().enumerate() {
            if contains(value.span(), pos) {
                path.push(Seg::Index(i));
                if let toml_edit::Value::InlineTable(t) = value {
                    search_table(t, pos, path);
                }
                return true;
            }
        }
    }
    if let Some(tables) = item.as_array_of_tables() {
        for (i, table) in tables.iter().enumerate() {
            path.push(Seg::Index(i));
            if search_table(table, pos, path) || contains(table.span(), pos) {
                return true;
            }
            path.pop();
        }
    }
    false
}

fn search_table(table: &dyn TableLike, pos: usize, path: &mut Vec<Seg>) -> bool {
    for (name, child) in table.iter() {
        path.push(Seg::Key(name.to_string()));
        let key_span = table.key(name).and_then(|k| k.span());
        let here = contains(key_span, pos) || contains(child.span(), pos);
        if search(child, pos, path) || here {
            return true;
        }
        path.pop();
    }
    false
}

/// Byte offset where `path` is written in the document: the start of its value,
/// or of its key for a table. `None` when the file does not spell it out.
pub fn find<S>(doc: &Document<S>, path: &KeyPath) -> Option<usize> {
    let mut item = doc.as_item();
    let mut at = None;
    for seg in &path.0 {
        match seg {
            Seg::Key(name) => {
                let table = item.as_table_like()?;
                let (key, child) = table.get_key_value(name)?;
                // A value is pointed at itself (as type errors are), a table at its key.
                let span = if child.is_value() {
                    child.span().or_else(|| key.span())
                } else {
                    key.span().or_else(|| child.span())
                };
                at = span.map(|s| s.start);
                item = child;
            }
            Seg::Index(i) => {
                if let Some(array) = item.as_array() {
                    let value = array.get(*i)?;
                    at = value.span().map(|s| s.start);
                    // An element is a value, not an item: nothing deeper is needed.
                    return at;
                }
                // Arrays of tables do not occur in the model: their start is close enough.
                let table = item.as_array_of_tables()?.get(*i)?;
                return table.span().map(|s| s.start).or(at);
            }
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 3)); // after "bé"
        assert_eq!(line_col(text, 8), (2, 2)); // inside "é": clamped back
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn key_paths_round_trip_and_relate() {
        let p = KeyPath::parse("embedded.layers[2]");
        assert_eq!(p.to_string(), "embedded.layers[2]");
        assert!(p.related(&KeyPath::parse("embedded.layers")));
        assert!(KeyPath::parse("fleet").related(&KeyPath::parse("fleet.clusters")));
        assert!(!KeyPath::parse("fleet.client").related(&KeyPath::parse("fleet.clusters")));
    }

    #[test]
    fn finds_keys_in_headers_dotted_and_inline_tables() {
        let text = "name = \"x\"\n[fleet]\nclusters = 3\n[run]\nlimits = { a = 1 }\n\
                    arrival.pattern = \"herd\"\n[embedded]\nlayers = [\"1MiB\", 5]\n";
        let doc = Document::parse(text).unwrap();
        let at = |p: &str| find(&doc, &KeyPath::parse(p)).map(|o| line_col(text, o));
        assert_eq!(at("fleet.clusters"), Some((3, 12)));
        assert_eq!(at("fleet"), Some((2, 2)));
        assert_eq!(at("run.limits"), Some((5, 10)));
        assert_eq!(at("run.limits.a"), Some((5, 16)));
        assert_eq!(at("run.arrival.pattern"), Some((6, 19)));
        assert_eq!(at("embedded.layers[1]"), Some((8, 19)));
        assert_eq!(at("fleet.nodes"), None);

        let key = |line: usize, col: usize| {
            let offset: usize = text
                .lines()
                .take(line - 1)
                .map(|l| l.len() + 1)
                .sum::<usize>()
                + col
                - 1;
            key_at(&doc, offset).to_string()
        };
        assert_eq!(key(3, 12), "fleet.clusters");
        assert_eq!(key(5, 16), "run.limits.a");
        assert_eq!(key(8, 19), "embedded.layers[1]");
        assert_eq!(key(1, 1), "name");
    }
}
