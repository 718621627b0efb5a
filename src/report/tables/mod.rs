//! The report's tables, one module per section: errors by class with their
//! first sample, retries and attempts per layer (`errors`); the per-cluster
//! breakdown (`clusters`); the watched processes and endpoints (`watched`);
//! the environment, what is needed to reproduce the run (`environment`); and
//! the scenario as run (`scenario`).

mod clusters;
mod environment;
mod errors;
mod scenario;
mod watched;

pub use clusters::clusters;
pub use environment::environment;
pub use errors::errors;
pub use scenario::{scenario, scenario_toml};
pub use watched::watched;

/// A URL without any user or password (the result never has them; belt and braces).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => url.split('@').next_back().unwrap_or_default().to_string(),
    }
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}\u{2026}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(redact("https://u:p@h.example/v2/"), "https://h.example/v2/");
        assert_eq!(redact("http://127.0.0.1:5000/"), "http://127.0.0.1:5000/");
        assert_eq!(redact("not a url u:p@host"), "host");
    }
}
