//! Semantic checks on a deserialized scenario: what serde's types cannot say
//! (ranges, combinations, URL and reference grammar).
//!
//! Each problem names the key to blame; the caller turns that key into a
//! `file:line:col` or the `--set` that introduced it.

use super::locate::{KeyPath, Seg};
use super::model::{
    ArrivalSection, ClientOverrides, EmbeddedSection, FleetSection, Pattern, PullRetries,
    RunSection, Scenario, TargetSection, Thresholds, VerifySection,
};
use crate::oci::reference::check_reference;
use crate::result::thresholds;

/// Most nodes one run may simulate (each is a task with its own connections).
pub const MAX_NODES: u64 = 1_000_000;

/// Told to anyone who tries to put credentials in a scenario.
pub const CREDENTIALS_HINT: &str = "credentials come from PULLSTORM_USERNAME/PULLSTORM_PASSWORD \
     or docker's config.json (DOCKER_CONFIG), never the scenario file";

/// True for key names that suggest a secret, which a scenario must never hold.
pub fn is_credential_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["user", "username", "auth", "login"].contains(&key.as_str())
        || ["password", "passwd", "token", "secret", "credential"]
            .iter()
            .any(|word| key.contains(word))
}

/// One semantic problem.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The key shown in the message (a section for a missing combination).
    pub key: KeyPath,
    /// Keys whose value may have caused it, beyond `key`: used to blame a `--set`
    /// and, when `key` is not written in the file, to point at one that is.
    pub also: Vec<KeyPath>,
    pub message: String,
}

struct Issues(Vec<Issue>);

impl Issues {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.add_with(key, &[], message);
    }

    fn add_with(&mut self, key: &str, also: &[&str], message: impl Into<String>) {
        self.0.push(Issue {
            key: KeyPath::parse(key),
            also: also.iter().map(|k| KeyPath::parse(k)).collect(),
            message: message.into(),
        });
    }
}

/// Every semantic problem in `s`, in file order of sections.
pub fn check(s: &Scenario) -> Vec<Issue> {
    let mut out = Issues(Vec::new());
    if let Some(name) = &s.name {
        if let Err(e) = check_name(name) {
            out.add("name", e);
        }
    }
    check_target(&s.target, &mut out);
    check_embedded(&s.embedded, &mut out);
    check_fleet(&s.fleet, &mut out);
    check_client(&s.client, &mut out);
    check_kubelet(s, &mut out);
    check_arrival(s, &mut out);
    check_run(&s.run, &mut out);
    for (key, message) in super::push::problems(s) {
        out.add(&key, message);
    }
    check_thresholds(&s.thresholds, &mut out);
    check_verify(&s.verify, &mut out);
    out.0
}

/// `[verify]`: references that parse, at least one job, a timeout; keys that mean
/// nothing without `after_run` are said to be idle rather than silently ignored.
fn check_verify(v: &VerifySection, out: &mut Issues) {
    for (i, image) in v.images.iter().enumerate() {
        if let Err(e) = check_reference(image) {
            out.add(&format!("verify.images[{i}]"), e);
        }
    }
    if v.jobs == 0 {
        out.add("verify.jobs", "must be at least 1");
    }
    if v.timeout.0.is_zero() {
        out.add("verify.timeout", "must be more than 0");
    }
    if !v.after_run && !v.images.is_empty() {
        out.add_with(
            "verify.images",
            &["verify.after_run"],
            "applies only when verify.after_run = true",
        );
    }
}

/// `[thresholds]`: the failure rate is a fraction; every path can exist in
/// result.json and its comparisons fit its unit; the abort has a check it can judge.
fn check_thresholds(t: &Thresholds, out: &mut Issues) {
    if let Some(rate) = t.max_failure_rate {
        if !(0.0..=1.0).contains(&rate) {
            out.add(
                "thresholds.max_failure_rate",
                format!("{rate} is not a fraction between 0 and 1 (0.01 = 1%)"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for check in &t.paths {
        let key = KeyPath(
            std::iter::once("thresholds")
                .chain(check.written.iter().map(String::as_str))
                .map(|k| Seg::Key(k.to_string()))
                .collect(),
        );
        let mut issue = |message: String| {
            out.0.push(Issue {
                key: key.clone(),
                also: Vec::new(),
                message,
            })
        };
        if !seen.insert(check.path.as_str()) {
            issue(format!(
                "`{}` is given twice; list its comparisons in one array, e.g. [\"<= 10\", \"rate < 0.01\"]",
                check.path
            ));
            continue;
        }
        if let Err(e) = thresholds::fit(check) {
            issue(e);
        }
    }
    if t.abort_on_fail && !t.paths.iter().any(crate::run::abort::judged_in_window) {
        out.add(
            "thresholds.abort_on_fail",
            "no path threshold can be judged during the run (abort_on_fail watches pulls.*, \
             errors.*, retries.total, bytes.*, latency.*, connections.peak, fd.client_peak, \
             throughput.mean_bytes_per_sec and rate forms; the fixed keys are judged at the end only)",
        );
    }
    if !t.abort_on_fail {
        for key in ["window", "grace"] {
            let given = if key == "window" { t.window } else { t.grace };
            if given.is_some() {
                out.add_with(
                    &format!("thresholds.{key}"),
                    &["thresholds.abort_on_fail"],
                    "only applies with abort_on_fail = true",
                );
            }
        }
    }
    if t.window
        .is_some_and(|w| w.0 < std::time::Duration::from_secs(1))
    {
        out.add(
            "thresholds.window",
            "must be at least 1s (the run is judged by the second)",
        );
    }
}

/// `[target]`: the URL, the image reference and the platform.
fn check_target(t: &TargetSection, out: &mut Issues) {
    if let Some(url) = &t.url {
        if let Err(e) = check_url(url) {
            out.add("target.url", e);
        }
        if t.image.is_none() {
            out.add_with(
                "target",
                &["target.url", "target.image"],
                "target.url is set but target.image is not: name the image to pull (e.g. image = \"lab/big:v1\")",
            );
        }
    }
    if let Some(image) = &t.image {
        if let Err(e) = check_reference(image) {
            out.add("target.image", e);
        }
    }
    if !valid_platform(&t.platform) {
        out.add(
            "target.platform",
            format!(
                "`{}` is not a platform (expected os/arch or os/arch/variant, e.g. linux/amd64)",
                t.platform
            ),
        );
    }
}

/// `[embedded]`: at least one layer, none empty, none (nor their sum) over
/// the embedded registry's size limits.
fn check_embedded(e: &EmbeddedSection, out: &mut Issues) {
    if e.layers.is_empty() {
        out.add("embedded.layers", "needs at least one layer size");
    }
    for (i, layer) in e.layers.iter().enumerate() {
        if layer.0 == 0 {
            out.add(
                &format!("embedded.layers[{i}]"),
                "a layer must be larger than 0 bytes",
            );
        }
    }
    let sizes: Vec<u64> = e.layers.iter().map(|l| l.0).collect();
    for problem in crate::registry::oversized_layers(&sizes) {
        match problem.layer {
            Some(i) => out.add(&format!("embedded.layers[{i}]"), problem.message),
            None => out.add("embedded.layers", problem.message),
        }
    }
    for (key, message) in crate::registry::faults::problems(&e.faults) {
        out.add(&format!("embedded.faults.{key}"), message);
    }
}

/// `[fleet]`: sizes, the node cap of one run, and the bandwidth.
fn check_fleet(f: &FleetSection, out: &mut Issues) {
    if f.clusters < 1 {
        out.add("fleet.clusters", "must be at least 1");
    }
    if f.nodes_per_cluster < 1 {
        out.add("fleet.nodes_per_cluster", "must be at least 1");
    }
    let nodes = u64::from(f.clusters) * u64::from(f.nodes_per_cluster);
    if nodes > MAX_NODES {
        out.add_with(
            "fleet",
            &["fleet.clusters", "fleet.nodes_per_cluster"],
            format!(
                "clusters x nodes_per_cluster = {} nodes, more than the {} one run supports \
                 (split the fleet into shards and merge their results)",
                thousands(nodes),
                thousands(MAX_NODES)
            ),
        );
    }
    if f.node_bandwidth.is_some_and(|r| r.0 == 0) {
        out.add(
            "fleet.node_bandwidth",
            "must be more than 0 (leave it out for no cap)",
        );
    }
}

/// `[client]`: overrides that would stop a pull before it starts.
fn check_client(c: &ClientOverrides, out: &mut Issues) {
    if c.max_concurrent_downloads == Some(0) {
        out.add("client.max_concurrent_downloads", "must be at least 1");
    }
    if c.max_attempts == Some(0) {
        out.add(
            "client.max_attempts",
            "must be at least 1 (the first attempt counts)",
        );
    }
    if c.config_attempts == Some(0) {
        out.add(
            "client.config_attempts",
            "must be at least 1 (the first attempt counts)",
        );
    }
    if c.gets_per_failed_attempt == Some(0) {
        out.add("client.gets_per_failed_attempt", "must be at least 1");
    }
    if c.connect_timeout.is_some_and(|d| d.0.is_zero()) {
        out.add("client.connect_timeout", "must be more than 0");
    }
    if c.response_timeout.is_some_and(|d| d.0.is_zero()) {
        out.add("client.response_timeout", "must be more than 0");
    }
}

/// `[kubelet]`: a jitter share, and a back-off that keeps endless re-pulls apart.
fn check_kubelet(s: &Scenario, out: &mut Issues) {
    let k = &s.kubelet;
    if !(0.0..=1.0).contains(&k.jitter) {
        out.add(
            "kubelet.jitter",
            format!(
                "{} is not a share between 0 and 1 (0.5 = up to +50 %)",
                k.jitter
            ),
        );
    }
    let endless = k.retries_for(s.fleet.client) == PullRetries::Unlimited;
    if endless && k.pull_backoff.0.is_zero() {
        out.add_with(
            "kubelet.pull_backoff",
            &["kubelet.pull_retries", "fleet.client"],
            "must be more than 0 when the kubelet pulls again without limit (containerd's default; set kubelet.pull_retries to a count to allow 0)",
        );
    }
}

/// `[arrival]`: waves need a size and an interval; a staircase needs steps
/// that fit the fleet; each pattern's keys only with that pattern.
fn check_arrival(s: &Scenario, out: &mut Issues) {
    let a = &s.arrival;
    if a.pattern != Pattern::Staircase {
        for key in a.staircase_keys_set() {
            out.add_with(
                &format!("arrival.{key}"),
                &["arrival.pattern"],
                "applies only when arrival.pattern = \"staircase\"",
            );
        }
    }
    match a.pattern {
        Pattern::Herd => {}
        Pattern::Waves => check_waves(a, "waves", out),
        Pattern::Staircase => check_staircase(s, out),
        Pattern::Soak => check_soak(s, out),
    }
}

fn check_waves(a: &ArrivalSection, pattern: &str, out: &mut Issues) {
    if a.wave_size < 1 {
        out.add_with(
            "arrival.wave_size",
            &["arrival.pattern"],
            format!("must be at least 1 when arrival.pattern = \"{pattern}\""),
        );
    }
    if a.wave_interval.0.is_zero() {
        out.add_with(
            "arrival.wave_interval",
            &["arrival.pattern"],
            format!("must be more than 0 when arrival.pattern = \"{pattern}\""),
        );
    }
}

/// A soak: waves as `waves`; each node pulls once a cycle until the
/// duration ends, so a count of pulls or a pause between them means nothing.
/// (That `run.duration` is written at all is checked where the file is: `scenario::Blame`.)
fn check_soak(s: &Scenario, out: &mut Issues) {
    check_waves(&s.arrival, "soak", out);
    if s.run.pulls_per_node != 1 {
        out.add_with(
            "run.pulls_per_node",
            &["arrival.pattern"],
            "does not apply when arrival.pattern = \"soak\": each node pulls once every cycle of waves until run.duration ends (leave it out)",
        );
    }
    if !s.run.pull_interval.0.is_zero() {
        out.add_with(
            "run.pull_interval",
            &["arrival.pattern"],
            "does not apply when arrival.pattern = \"soak\": a node pulls again one cycle (waves x arrival.wave_interval) after its last pull was due (leave it out)",
        );
    }
}

/// A staircase: counts of at least one, a herd no larger than the fleet, a
/// hold longer than its warm-up, shares between 0 and 1, and none of the
/// keys of waves or of a fixed number of pulls (it pulls until each step ends).
fn check_staircase(s: &Scenario, out: &mut Issues) {
    let a = &s.arrival;
    let defaults = ArrivalSection::default();
    if a.wave_size != defaults.wave_size {
        out.add_with(
            "arrival.wave_size",
            &["arrival.pattern"],
            "applies only when arrival.pattern = \"waves\" or \"soak\" (a staircase grows by arrival.step_nodes)",
        );
    }
    if a.wave_interval != defaults.wave_interval {
        out.add_with(
            "arrival.wave_interval",
            &["arrival.pattern"],
            "applies only when arrival.pattern = \"waves\" or \"soak\" (a staircase holds each step for arrival.step_hold)",
        );
    }
    if s.run.pulls_per_node != 1 {
        out.add_with(
            "run.pulls_per_node",
            &["arrival.pattern"],
            "does not apply when arrival.pattern = \"staircase\": each node pulls until its step ends (leave it out)",
        );
    }
    for (key, value) in [
        ("start_nodes", a.start_nodes),
        ("step_nodes", a.step_nodes),
        ("max_nodes", a.max_nodes),
        ("max_steps", a.max_steps),
    ] {
        if value == Some(0) {
            out.add(&format!("arrival.{key}"), "must be at least 1");
        }
    }
    let fleet = u64::from(s.fleet.clusters) * u64::from(s.fleet.nodes_per_cluster);
    let max = a.max_nodes.map_or(fleet, u64::from);
    if a.max_nodes.is_some_and(|m| u64::from(m) > fleet) {
        out.add_with(
            "arrival.max_nodes",
            &["fleet.clusters", "fleet.nodes_per_cluster"],
            format!(
                "{max} is more than the fleet's {fleet} nodes (clusters x nodes_per_cluster): \
                 raise the fleet or lower max_nodes"
            ),
        );
    }
    if let Some(start) = a.start_nodes.filter(|&n| n > 0 && u64::from(n) > max) {
        out.add_with(
            "arrival.start_nodes",
            &[
                "arrival.max_nodes",
                "fleet.clusters",
                "fleet.nodes_per_cluster",
            ],
            format!("{start} is more than the largest herd, {max} nodes"),
        );
    }
    let hold = a.step_hold.map(|h| h.0);
    if hold.is_some_and(|h| h < std::time::Duration::from_secs(2)) {
        out.add(
            "arrival.step_hold",
            "must be at least 2s (a warm-up second and a judged one)",
        );
    }
    let hold = hold.unwrap_or(super::model::DEFAULT_STEP_HOLD);
    if let Some(warmup) = a.warmup {
        if warmup.0 >= hold {
            out.add_with(
                "arrival.warmup",
                &["arrival.step_hold"],
                "must be shorter than arrival.step_hold (the rest of the step is judged)",
            );
        }
    }
    if a.stop_pull_p99.is_some_and(|p| p.0.is_zero()) {
        out.add("arrival.stop_pull_p99", "must be more than 0");
    }
    for (key, value) in [
        ("stop_error_rate", a.stop_error_rate),
        ("stop_completion", a.stop_completion),
        ("stop_fd_ratio", a.stop_fd_ratio),
        ("stop_efficiency", a.stop_efficiency),
    ] {
        if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            out.add(
                &format!("arrival.{key}"),
                format!("{v} is not a share between 0 and 1 (0.01 = 1 %)"),
            );
        }
    }
}

/// `[run]`: a duration and at least one pull.
fn check_run(r: &RunSection, out: &mut Issues) {
    if r.duration.0.is_zero() {
        out.add("run.duration", "must be more than 0");
    }
    if r.pulls_per_node < 1 {
        out.add("run.pulls_per_node", "must be at least 1");
    }
    if let Some(Err(e)) = r.start_at.as_deref().map(crate::shard::parse_start_at) {
        out.add("run.start_at", e);
    }
}

/// `1000000` -> `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A run name ends up in a folder name: keep it to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), String> {
    let safe = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name == "." || name == ".." || !safe || name.len() > 100 {
        Err(format!(
            "{name:?} is not usable in a folder name (use 1 to 100 letters, digits, `-`, `_` or `.`)"
        ))
    } else {
        Ok(())
    }
}

/// A target or registry URL: http(s), a host, no credentials. The URL itself is
/// never echoed: it might carry a password.
pub fn check_url(text: &str) -> Result<(), String> {
    // `localhost:5000` parses as the scheme `localhost`, `127.0.0.1:5000` not at all:
    // both are a host and port without the scheme in front.
    if !text.contains("://") {
        return Err(
            "not a URL: missing http:// or https:// before the host (e.g. http://127.0.0.1:5000)"
                .into(),
        );
    }
    let url = url::Url::parse(text).map_err(|e| {
        format!("not a URL ({e}); expected e.g. http://127.0.0.1:8080 or https://harbor.example")
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "scheme `{}` is not supported (use http or https)",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("the URL holds credentials: {CREDENTIALS_HINT}"));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err("the URL has no host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".into());
    }
    Ok(())
}

fn valid_platform(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://harbor.example",
            "http://[::1]:5000",
            "https://harbor.example/registry-prefix",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "harbor.example",
            "127.0.0.1:8080",
            "ftp://h",
            "unix:///run/registry.sock",
            "http://",
            "http://h/?x=1",
            "http://h/#f",
            "https://me@h",
            "https://me:secret@h",
        ] {
            let err = check_url(bad).expect_err(bad);
            assert!(!err.contains("secret"), "{err}");
        }
        for bare in ["localhost:5000", "127.0.0.1:8080", "harbor.example"] {
            let err = check_url(bare).expect_err(bare);
            assert!(err.contains("missing http:// or https://"), "{bare}: {err}");
        }
        assert!(check_url("ftp://h").unwrap_err().contains("scheme `ftp`"));
    }

    #[test]
    fn names_and_credential_keys() {
        for ok in ["quickstart", "lab-nginx", "v1.2_rc", "a"] {
            assert_eq!(check_name(ok), Ok(()));
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for key in [
            "username",
            "password",
            "token",
            "auth",
            "registry_password",
            "api_token",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in ["clusters", "url", "image", "author"] {
            assert!(!is_credential_key(key), "{key}");
        }
    }

    /// The first error of a scenario text, as the user sees it (file:line:col: key: message).
    fn staircase_error(text: &str) -> String {
        let e = crate::scenario::parse(text, "s.toml", &[]).expect_err(text);
        assert_eq!(e.code, crate::exit::BAD_INPUT, "{}", e.message);
        e.message
    }

    #[test]
    fn soak_problems_name_their_line_and_key() {
        let head = "[arrival]\npattern = \"soak\"\n";
        let cases = [
            (
                "",
                "s.toml:2:11: run.duration: must be set when arrival.pattern = \"soak\"",
            ),
            (
                "wave_size = 0\n[run]\nduration = \"5m\"\n",
                "s.toml:3:13: arrival.wave_size: must be at least 1 when arrival.pattern = \"soak\"",
            ),
            (
                "[run]\nduration = \"5m\"\npulls_per_node = 3\n",
                "s.toml:5:18: run.pulls_per_node: does not apply when arrival.pattern = \"soak\"",
            ),
            (
                "[run]\nduration = \"5m\"\npull_interval = \"3s\"\n",
                "s.toml:5:17: run.pull_interval: does not apply when arrival.pattern = \"soak\"",
            ),
            (
                "step_nodes = 2\n[run]\nduration = \"5m\"\n",
                "s.toml:3:14: arrival.step_nodes: applies only when arrival.pattern = \"staircase\"",
            ),
        ];
        for (tail, want) in cases {
            let message = staircase_error(&format!("{head}{tail}"));
            assert!(
                message.starts_with(want),
                "{tail:?}\n  got:  {message}\n  want: {want}"
            );
        }
        let ok = "[arrival]\npattern = \"soak\"\nwave_size = 2\n[run]\nduration = \"10m\"\n";
        crate::scenario::parse(ok, "s.toml", &[]).expect("a soak with a duration");
        // A duration given with --set counts.
        let set = ["run.duration=90s".to_string()];
        crate::scenario::parse(head, "s.toml", &set).expect("a soak with --set run.duration");
    }

    #[test]
    fn staircase_problems_name_their_line_and_key() {
        let head = "[fleet]\nnodes_per_cluster = 20\n[arrival]\npattern = \"staircase\"\n";
        let cases = [
            ("start_nodes = 0\n", "s.toml:5:15: arrival.start_nodes: must be at least 1"),
            ("step_nodes = 0\n", "s.toml:5:14: arrival.step_nodes: must be at least 1"),
            (
                "max_nodes = 21\n",
                "s.toml:5:13: arrival.max_nodes: 21 is more than the fleet's 20 nodes",
            ),
            (
                "start_nodes = 12\nmax_nodes = 8\n",
                "s.toml:5:15: arrival.start_nodes: 12 is more than the largest herd, 8 nodes",
            ),
            ("step_hold = \"1s\"\n", "s.toml:5:13: arrival.step_hold: must be at least 2s"),
            (
                "step_hold = \"10s\"\nwarmup = \"10s\"\n",
                "s.toml:6:10: arrival.warmup: must be shorter than arrival.step_hold",
            ),
            ("stop_error_rate = 2.0\n", "s.toml:5:19: arrival.stop_error_rate: 2 is not a share"),
            (
                "wave_size = 5\n",
                "s.toml:5:13: arrival.wave_size: applies only when arrival.pattern = \"waves\"",
            ),
            (
                "[run]\npulls_per_node = 3\n",
                "s.toml:6:18: run.pulls_per_node: does not apply when arrival.pattern = \"staircase\"",
            ),
        ];
        for (tail, want) in cases {
            let message = staircase_error(&format!("{head}{tail}"));
            assert!(
                message.starts_with(want),
                "{tail:?}\n  got:  {message}\n  want: {want}"
            );
        }
        // Staircase keys under another pattern are named, not ignored.
        let message = staircase_error("[arrival]\npattern = \"waves\"\nstep_nodes = 4\n");
        assert!(
            message.starts_with("s.toml:3:14: arrival.step_nodes: applies only when arrival.pattern = \"staircase\""),
            "{message}"
        );
        // A staircase within its fleet is fine.
        crate::scenario::parse(
            &format!("{head}start_nodes = 4\nstep_nodes = 4\nmax_nodes = 20\n"),
            "s.toml",
            &[],
        )
        .unwrap();
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }
}
