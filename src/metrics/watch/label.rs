//! What tells watched processes of one name apart: `--watch docker-registry`
//! may match several registries, and `docker-registry[812]` and
//! `docker-registry[907]` say nothing to a reader. Each process is shown with
//! its command line, shortened and with secrets masked (a password in a URL,
//! the value of a `--password`-like flag or a `SECRET=...` assignment), and
//! with the ports it listens on (see `tcp::listening_ports_of`).

use crate::redact::{self, MASK};

/// Longest command line kept, in characters (longer ones end in `…`).
pub const MAX_COMMAND: usize = 80;

/// Parts of a flag or variable name that mark its value as a secret.
const SECRET_WORDS: [&str; 6] = ["pass", "secret", "token", "key", "credential", "auth"];

fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The command line as shown: the program's file name (not its folder),
/// then its arguments, secrets masked, control characters replaced, cut to
/// [`MAX_COMMAND`] characters. `None` when there is no command line (a
/// kernel thread, a zombie).
pub fn command_label(args: &[String]) -> Option<String> {
    let (program, rest) = args.split_first()?;
    let program = program.rsplit('/').next().unwrap_or(program);
    let mut shown = vec![program.to_string()];
    let mut secret_follows = false;
    for arg in rest {
        let masked = if secret_follows && !arg.starts_with('-') {
            MASK.to_string()
        } else {
            mask_assignment(&redact::text(arg))
        };
        // `--password value`: the next argument is the secret.
        secret_follows = arg.starts_with('-') && !arg.contains('=') && names_a_secret(arg);
        shown.push(masked);
    }
    let line: String = shown
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Some(shorten(&line, MAX_COMMAND))
}

/// `--password=x` and `REGISTRY_AUTH_TOKEN=x` with their values masked.
fn mask_assignment(arg: &str) -> String {
    match arg.split_once('=') {
        Some((name, value)) if !value.is_empty() && names_a_secret(name) => {
            format!("{name}={MASK}")
        }
        _ => arg.to_string(),
    }
}

/// `text` cut to `max` characters, the last one an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `:5000` or `:5000,5001`; empty when the process listens on nothing known.
pub fn ports_label(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    if ports.is_empty() {
        String::new()
    } else {
        format!(":{}", ports.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    #[test]
    fn two_registries_of_one_name_read_apart() {
        let a = command_label(&args(
            "/usr/bin/docker-registry serve /etc/docker/registry/a.yml",
        ));
        let b = command_label(&args(
            "/usr/bin/docker-registry serve /etc/docker/registry/b.yml",
        ));
        assert_eq!(
            a.as_deref(),
            Some("docker-registry serve /etc/docker/registry/a.yml")
        );
        assert_ne!(a, b);
        assert_eq!(ports_label(&[5000]), ":5000");
        assert_eq!(ports_label(&[5000, 5001]), ":5000,5001");
        assert_eq!(ports_label(&[]), "");
    }

    #[test]
    fn secrets_are_masked_in_every_form() {
        let line = command_label(&args(
            "/opt/app --password hunter2 --token=abc123 -u admin \
             --upstream=https://bob:s3cret@mirror.test",
        ))
        .unwrap();
        let env = command_label(&args(
            "env REGISTRY_AUTH_SECRET=xyz app --verbose --api-key k99 next",
        ))
        .unwrap();
        for secret in ["hunter2", "abc123", "s3cret", "xyz", "k99"] {
            assert!(
                !line.contains(secret) && !env.contains(secret),
                "{secret}: {line} / {env}"
            );
        }
        assert_eq!(
            line,
            "app --password *** --token=*** -u admin --upstream=https://bob:***@mirror.test"
        );
        // Only the value right after a secret flag; a flag is never taken for one.
        assert_eq!(
            env,
            "env REGISTRY_AUTH_SECRET=*** app --verbose --api-key *** next"
        );
        let flags = command_label(&args("x --password --verbose")).unwrap();
        assert_eq!(flags, "x --password --verbose");
    }

    #[test]
    fn long_lines_are_cut_and_control_characters_replaced() {
        let long = format!("/bin/sleep {}", "9".repeat(200));
        let label = command_label(&args(&long)).unwrap();
        assert_eq!(label.chars().count(), MAX_COMMAND);
        assert!(label.ends_with('…'), "{label}");
        let odd = command_label(&["evil\u{1b}[2J".to_string(), "a\nb".to_string()]).unwrap();
        assert_eq!(odd, "evil?[2J a?b");
        assert_eq!(command_label(&[]), None);
    }
}
