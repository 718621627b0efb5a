//! Keeps passwords out of everything pullstorm prints or writes: a URL's
//! userinfo password becomes `***`, whatever the URL's source (`--target`,
//! `--set`, a scenario file, `[watch]`, a registry's redirect) and wherever it
//! appears (error messages, result.json, the report).
//!
//! [`text`] finds URLs inside free text (an error message quoting a `--set`, a
//! TOML fragment), so callers need not know where a URL might hide.

/// What a password is replaced with.
pub const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@host` in it
/// replaced by [`MASK`]; text without such a URL comes back unchanged.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let authority_len = rest
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends_url(c))
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        out.push_str(&mask_userinfo(authority));
        rest = &rest[authority_len..];
    }
    out.push_str(rest);
    out
}

/// Whether `c` ends a URL quoted in free text (whitespace, quotes, brackets, `,`).
fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | ','
        )
}

/// `user:password@host` -> `user:***@host`; an authority without a password is kept.
fn mask_userinfo(authority: &str) -> String {
    let Some(at) = authority.rfind('@') else {
        return authority.to_string();
    };
    let (userinfo, host) = authority.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:{MASK}{host}"),
        None => authority.to_string(),
    }
}

/// A watched target's name, which may be a URL without its scheme
/// (`user:pw@127.0.0.1:9/metrics`): its leading authority is masked too.
pub fn name(name: &str) -> String {
    if name.contains("://") {
        return text(name);
    }
    let end = name.find('/').unwrap_or(name.len());
    format!("{}{}", mask_userinfo(&name[..end]), &name[end..])
}

/// Every string inside a JSON value, redacted with [`text`] (keys included).
pub fn json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if s.contains("://") {
                *s = text(s);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                json(&mut v);
                map.insert(text(&key), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The whole result document: the scenario (overrides and resolved), the
/// target, the watched targets' names and URLs, and the error samples.
pub fn result_doc(doc: &mut crate::result::model::ResultDoc) {
    let s = &mut doc.scenario;
    s.overrides.iter_mut().for_each(|o| *o = text(o));
    s.file = text(&s.file);
    json(&mut s.resolved);
    doc.target.url = text(&doc.target.url);
    for w in &mut doc.watched {
        w.name = name(&w.name);
        if let Some(url) = &mut w.url {
            *url = text(url);
        }
    }
    for e in &mut doc.error_details {
        e.sample = text(&e.sample);
    }
    if let Some(v) = &mut doc.verify {
        after_run_verify(v);
    }
}

/// The after-run consistency check: its reason, registry and findings' details.
pub fn after_run_verify(v: &mut crate::result::model::AfterRunVerify) {
    if let Some(reason) = &mut v.reason {
        *reason = text(reason);
    }
    if let Some(report) = &mut v.report {
        report.registry = text(&report.registry);
        for f in &mut report.findings {
            f.detail = text(&f.detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(text("http://u:pw@h:5000/v2/"), "http://u:***@h:5000/v2/");
        assert_eq!(text("https://u:p%40ss@h"), "https://u:***@h");
        assert_eq!(
            text(r#"--set target.url="http://alice:s3cret@reg:5000": the URL holds credentials"#),
            r#"--set target.url="http://alice:***@reg:5000": the URL holds credentials"#
        );
        assert_eq!(
            text("a http://a:1@x, b [https://b:2@y/m] c 'http://c:3@z?q'"),
            "a http://a:***@x, b [https://b:***@y/m] c 'http://c:***@z?q'"
        );
    }

    #[test]
    fn text_without_a_password_is_unchanged() {
        for t in [
            "",
            "plain text",
            "http://h:5000/v2/",
            "http://user@h/",
            "://",
            "x://",
            "see http://h/a@b",
            "emails a@b.c stay",
        ] {
            assert_eq!(text(t), t, "{t}");
        }
    }

    #[test]
    fn names_without_a_scheme_are_masked() {
        assert_eq!(
            name("u:pw@127.0.0.1:9/metrics"),
            "u:***@127.0.0.1:9/metrics"
        );
        assert_eq!(name("nginx[12]"), "nginx[12]");
        assert_eq!(name("http://u:pw@h/m"), "http://u:***@h/m");
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let mut v = serde_json::json!({
            "watch": {"metrics": ["http://m:topsecret@127.0.0.1:9/metrics"]},
            "http://k:keysecret@h": 1,
            "n": 3
        });
        json(&mut v);
        let s = v.to_string();
        assert!(!s.contains("topsecret") && !s.contains("keysecret"), "{s}");
        assert!(s.contains("http://m:***@127.0.0.1:9/metrics"), "{s}");
    }
}
