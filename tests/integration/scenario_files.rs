//! Scenario files as users meet them: the shipped examples load, mistakes are
//! reported as `file:line:col: key: what` (exit code 2), `--set` overrides
//! apply in order and are blamed for their own errors, and no input panics.

use pullstorm::exit::BAD_INPUT;
use pullstorm::scenario::{load, parse, ClientKind, Pattern, Scenario};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sets(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Parses `text` as `x.toml` with `--set`s and returns the error message,
/// checking that it is bad input (exit code 2).
fn error(text: &str, overrides: &[&str]) -> String {
    match parse(text, "x.toml", &sets(overrides)) {
        Ok(s) => panic!("expected an error for {text:?} {overrides:?}, got {s:?}"),
        Err(f) => {
            assert_eq!(f.code, BAD_INPUT, "{}", f.message);
            f.message
        }
    }
}

fn ok(text: &str, overrides: &[&str]) -> Scenario {
    parse(text, "x.toml", &sets(overrides)).unwrap_or_else(|f| panic!("{}", f.message))
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("scenarios/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "examples missing: {files:?}");
    files
}

#[test]
fn every_example_loads_and_is_named_after_its_file() {
    for path in example_files() {
        let loaded = load(&path, &[]).unwrap_or_else(|f| panic!("{}", f.message));
        let stem = path.file_stem().unwrap().to_string_lossy();
        assert_eq!(loaded.name, stem);
        assert_eq!(loaded.path, path);
        assert!(
            loaded.scenario.description.is_some(),
            "{stem} needs a description"
        );
    }
}

#[test]
fn quickstart_is_a_small_embedded_herd() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let s = load(&path, &[]).unwrap().scenario;
    assert!(s.target.url.is_none());
    assert_eq!(s.fleet.clusters * s.fleet.nodes_per_cluster, 32);
    assert_eq!(s.fleet.client, ClientKind::Dockerd27);
    assert_eq!(s.arrival.pattern, Pattern::Herd);
    assert_eq!(s.run.duration.0, Duration::from_secs(60));
    assert_eq!(s.thresholds.max_failed_pulls, Some(0));
    let image: u64 = s.embedded.layers.iter().map(|l| l.0).sum();
    assert_eq!(image, 104 << 20);
}

#[test]
fn an_empty_file_is_a_valid_scenario_with_defaults() {
    let s = ok("", &[]);
    assert_eq!(s.fleet.clusters, 1);
    assert_eq!(s.run.duration.0, Duration::from_secs(600));
    assert_eq!(s.target.platform, "linux/amd64");
    assert!(s.thresholds.require_complete);
}

#[test]
fn type_errors_name_file_line_column_and_key() {
    let text = "# a comment\nname = \"t\"\n\n[fleet]\nclusters = \"many\"\n";
    assert_eq!(
        error(text, &[]),
        "x.toml:5:12: fleet.clusters: invalid type: string \"many\", expected u32"
    );
    assert!(error("[run]\nduration = \"fast\"\n", &[])
        .starts_with("x.toml:2:12: run.duration: `fast` is not a duration"));
    assert!(error("[fleet]\nclient = \"podman\"\n", &[]).contains(
        "x.toml:2:10: fleet.client: unknown value \"podman\" (expected one of dockerd-20.10, dockerd, dockerd-27, containerd-1.6, containerd-1.7, containerd, containerd-2.2)"
    ));
    assert!(error("[embedded]\nlayers = [\"1MiB\", \"3XB\"]\n", &[])
        .starts_with("x.toml:2:19: embedded.layers[1]: unknown size unit `XB`"));
    assert!(error("fleet = 5\n", &[])
        .starts_with("x.toml:1:9: fleet: invalid type: integer `5`, expected a table"));
    // Dotted keys and inline tables are located as well as [section] keys.
    assert!(error("fleet.clusters = -1\n", &[]).starts_with("x.toml:1:18: fleet.clusters:"));
    assert!(error("run = { duration = true }\n", &[]).starts_with("x.toml:1:20: run.duration:"));
}

#[test]
fn unknown_keys_list_the_known_ones() {
    let text = "[fleet]\nclusters = 2\n\nnodes = 3\n";
    assert_eq!(
        error(text, &[]),
        "x.toml:4:1: fleet.nodes: unknown key (expected one of clusters, nodes_per_cluster, client, node_bandwidth, loopback_sources)"
    );
    assert!(error("[fleets]\n", &[])
        .starts_with("x.toml:1:2: fleets: unknown key (expected one of name,"));
    assert!(error("[embedded.faults]\ncut = 1\n", &[])
        .starts_with("x.toml:2:1: embedded.faults.cut: unknown key"));
}

#[test]
fn credentials_in_the_file_get_a_hint() {
    for key in ["username", "password", "token"] {
        let message = error(&format!("[target]\n{key} = \"hunter2\"\n"), &[]);
        assert!(
            message.starts_with(&format!("x.toml:2:1: target.{key}: unknown key")),
            "{message}"
        );
        assert!(
            message.contains("PULLSTORM_USERNAME/PULLSTORM_PASSWORD"),
            "{message}"
        );
        assert!(message.contains("DOCKER_CONFIG"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
    let message = error(
        "[target]\nurl = \"https://me:hunter2@harbor.example\"\nimage = \"a/b\"\n",
        &[],
    );
    assert!(
        message.starts_with("x.toml:2:7: target.url: the URL holds credentials"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let message = error("[fleet]\nclusters = 3\nclusters = 4\n", &[]);
    assert!(
        message.starts_with("x.toml:3:1: TOML syntax: "),
        "{message}"
    );
    let message = error("[fleet\n", &[]);
    assert!(
        message.starts_with("x.toml:1:7: TOML syntax: "),
        "{message}"
    );
    let message = error("name = \"open\n", &[]);
    assert!(
        message.starts_with("x.toml:1:13: TOML syntax: "),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn semantic_errors_point_at_the_value() {
    let cases: &[(&str, &str)] = &[
        ("[fleet]\nclusters = 0\n", "x.toml:2:12: fleet.clusters: must be at least 1"),
        ("[fleet]\nnodes_per_cluster = 0\n", "x.toml:2:21: fleet.nodes_per_cluster: must be at least 1"),
        (
            "[fleet]\nclusters = 2000\nnodes_per_cluster = 1000\n",
            "x.toml:1:2: fleet: clusters x nodes_per_cluster = 2,000,000 nodes, more than the 1,000,000",
        ),
        ("[fleet]\nnode_bandwidth = 0\n", "x.toml:2:18: fleet.node_bandwidth: must be more than 0"),
        ("[run]\npulls_per_node = 0\n", "x.toml:2:18: run.pulls_per_node: must be at least 1"),
        ("[run]\nduration = \"0s\"\n", "x.toml:2:12: run.duration: must be more than 0"),
        ("[embedded]\nlayers = []\n", "x.toml:2:10: embedded.layers: needs at least one layer size"),
        ("[embedded]\nlayers = [\"1MiB\", 0]\n", "x.toml:2:19: embedded.layers[1]: a layer must be larger than 0 bytes"),
        (
            "[arrival]\npattern = \"waves\"\nwave_size = 0\n",
            "x.toml:3:13: arrival.wave_size: must be at least 1 when arrival.pattern = \"waves\"",
        ),
        (
            "[arrival]\npattern = \"waves\"\nwave_interval = \"0s\"\n",
            "x.toml:3:17: arrival.wave_interval: must be more than 0",
        ),
        ("[client]\nmax_attempts = 0\n", "x.toml:2:16: client.max_attempts: must be at least 1"),
        ("[client]\nmax_concurrent_downloads = 0\n", "x.toml:2:28: client.max_concurrent_downloads: must be at least 1"),
        ("[thresholds]\nmax_failure_rate = 1.5\n", "x.toml:2:20: thresholds.max_failure_rate: 1.5 is not a fraction"),
        ("[target]\nurl = \"ftp://h\"\nimage = \"a\"\n", "x.toml:2:7: target.url: scheme `ftp` is not supported"),
        ("[target]\nurl = \"not a url\"\nimage = \"a\"\n", "x.toml:2:7: target.url: not a URL"),
        ("[target]\nimage = \"Lab/Big:v1\"\n", "x.toml:2:9: target.image: `Lab` is not a valid repository path component"),
        ("[target]\nimage = \"lab/big@sha256:abc\"\n", "x.toml:2:9: target.image: `sha256:abc` is not a valid digest"),
        ("[target]\nimage = \"127.0.0.1:8080/lab/big\"\n", "x.toml:2:9: target.image: `127.0.0.1:8080` looks like a host"),
        ("[target]\nurl = \"http://127.0.0.1:8080\"\n", "x.toml:1:2: target: target.url is set but target.image is not"),
        ("name = \"my run\"\n", "x.toml:1:8: name: \"my run\" is not usable in a folder name"),
    ];
    for (text, want) in cases {
        let message = error(text, &[]);
        assert!(
            message.starts_with(want),
            "{text:?}\n  got:  {message}\n  want: {want}"
        );
    }
    // Waves checks only apply to waves.
    ok("[arrival]\npattern = \"herd\"\nwave_size = 0\n", &[]);
    // An image without a URL is pulled from the embedded registry.
    ok("[target]\nimage = \"lab/big:v1\"\n", &[]);
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let message = error("[fleet]\nclusters = 0\n[run]\npulls_per_node = 0\n", &[]);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(lines[0].starts_with("x.toml:2:12: fleet.clusters:"));
    assert!(lines[1].starts_with("x.toml:4:18: run.pulls_per_node:"));
}

#[test]
fn sets_override_in_order_and_create_tables() {
    let s = ok(
        "[fleet]\nclusters = 2\n",
        &[
            "fleet.clusters=32",
            "run.duration=5m",
            "fleet.client=containerd",
            "embedded.layers=[\"1GiB\",\"16MiB\"]",
            "thresholds.pull_p99=\"90s\"",
            "arrival.pattern=waves",
            "target.insecure_tls=true",
            "fleet.node_bandwidth=1Gbit",
            "fleet.nodes_per_cluster=3",
            "fleet.nodes_per_cluster = 4",
        ],
    );
    assert_eq!(s.fleet.clusters, 32);
    assert_eq!(s.fleet.nodes_per_cluster, 4, "the last --set wins");
    assert_eq!(s.run.duration.0, Duration::from_secs(300));
    assert_eq!(s.fleet.client, ClientKind::Containerd2_2);
    assert_eq!(s.embedded.layers.len(), 2);
    assert_eq!(s.embedded.layers[0].0, 1 << 30);
    assert_eq!(s.thresholds.pull_p99.unwrap().0, Duration::from_secs(90));
    assert_eq!(s.arrival.pattern, Pattern::Waves);
    assert!(s.target.insecure_tls);
    assert_eq!(s.fleet.node_bandwidth.unwrap().0, 125_000_000);
    // Into an inline table, and a nested table that does not exist yet.
    let s = ok(
        "fleet = { clusters = 2 }\n",
        &["fleet.nodes_per_cluster=5", "embedded.faults.cut_with=rst"],
    );
    assert_eq!((s.fleet.clusters, s.fleet.nodes_per_cluster), (2, 5));
    // Into an implicit table ([embedded] only exists through [embedded.faults]).
    let s = ok(
        "[embedded.faults]\ncut_with = \"fin\"\n",
        &["embedded.layers=[1024, \"2KiB\"]"],
    );
    assert_eq!(
        s.embedded.layers.iter().map(|l| l.0).collect::<Vec<_>>(),
        [1024, 2048]
    );
    // A bare word that is not TOML is a string; so is an empty value.
    assert_eq!(
        ok("", &["name=nightly-1.2"]).name.as_deref(),
        Some("nightly-1.2")
    );
    assert_eq!(
        ok(
            "",
            &[
                "target.url=http://127.0.0.1:8080",
                "target.image=lab/big:v1"
            ]
        )
        .target
        .url
        .as_deref(),
        Some("http://127.0.0.1:8080")
    );
}

#[test]
fn set_errors_name_the_set() {
    assert_eq!(
        error("", &["fleet.clusters=abc"]),
        "--set fleet.clusters=abc: fleet.clusters: invalid type: string \"abc\", expected u32"
    );
    assert!(error("", &["fleet.nodes=3"])
        .starts_with("--set fleet.nodes=3: fleet.nodes: unknown key (expected one of clusters,"));
    assert!(error(
        "[fleet]\nclusters = 2\n",
        &["run.duration=1h", "fleet.clusters=0"]
    )
    .starts_with("--set fleet.clusters=0: fleet.clusters: must be at least 1"));
    assert!(
        error("", &["fleet.clusters=2000", "fleet.nodes_per_cluster=1000"])
            .starts_with("--set fleet.nodes_per_cluster=1000: fleet: clusters x nodes_per_cluster")
    );
    // The combination is blamed on the --set that made it, the key shown is the file's.
    assert!(
        error("[arrival]\nwave_size = 0\n", &["arrival.pattern=waves"])
            .starts_with("--set arrival.pattern=waves: arrival.wave_size: must be at least 1")
    );
    assert!(error("", &["run.duration"]).starts_with("--set run.duration: expected KEY=VALUE"));
    assert!(error("", &["fleet..clusters=1"]).contains("is not a dotted key"));
    assert!(error("", &["=1"]).contains("is not a dotted key"));
    assert!(error("", &["name=x", "name.sub=1"])
        .starts_with("--set name.sub=1: name: holds a value, not a table"));
    assert!(error("", &["run.duration=-1s"])
        .starts_with("--set run.duration=-1s: run.duration: `-1s` is not a duration"));
}

#[test]
fn a_secret_in_a_set_is_not_echoed() {
    let message = error("", &["target.password=hunter2"]);
    assert!(
        message.starts_with("--set target.password=<hidden>: target.password: unknown key"),
        "{message}"
    );
    assert!(message.contains("PULLSTORM_PASSWORD"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn file_errors_come_before_sets() {
    // The file is checked alone first, so its errors point into it even if a --set would fix them.
    let message = error("[fleet]\nclusters = 0\n", &["fleet.clusters=3"]);
    assert!(
        message.starts_with("x.toml:2:12: fleet.clusters:"),
        "{message}"
    );
}

#[test]
fn load_names_the_file_and_checks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[fleet]\nclusters = \"many\"\n").unwrap();
    let f = load(&path, &[]).unwrap_err();
    assert_eq!(f.code, BAD_INPUT);
    assert!(
        f.message
            .starts_with(&format!("{}:2:12: fleet.clusters:", path.display())),
        "{}",
        f.message
    );

    let path = dir.path().join("my scenario.toml");
    std::fs::write(&path, "").unwrap();
    let f = load(&path, &[]).unwrap_err();
    assert_eq!(f.code, BAD_INPUT);
    assert!(f.message.contains("set name = \"...\""), "{}", f.message);
    // ... and a name in the file (or a --set) makes it fine.
    assert_eq!(load(&path, &sets(&["name=mine"])).unwrap().name, "mine");

    let f = load(&dir.path().join("missing.toml"), &[]).unwrap_err();
    assert_eq!(f.code, BAD_INPUT);
    assert!(
        f.message.contains("missing.toml: cannot read scenario"),
        "{}",
        f.message
    );
}

/// A tiny deterministic PRNG (xorshift64*) for the garbling test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Whatever the input, the answer is a scenario or an exit-code-2 failure.
fn no_panic(text: &str, overrides: &[String]) {
    if let Err(f) = parse(text, "fuzz.toml", overrides) {
        assert_eq!(f.code, BAD_INPUT);
        assert!(
            f.message.starts_with("fuzz.toml") || f.message.starts_with("--set"),
            "{}",
            f.message
        );
    }
}

#[test]
fn truncated_and_garbled_examples_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    const NOISE: &[u8] = b"[]{}=\"'.,#\n 0123456789-_:abcxyzGiBs\\\t\x01";
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for cut in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
            no_panic(&text[..cut], &[]);
        }
        for _ in 0..300 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % bytes.len();
                match rng.next() % 3 {
                    0 => bytes[at] = NOISE[(rng.next() as usize) % NOISE.len()],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, NOISE[(rng.next() as usize) % NOISE.len()]),
                }
            }
            no_panic(&String::from_utf8_lossy(&bytes), &[]);
        }
    }
}

#[test]
fn odd_inputs_and_sets_never_panic() {
    let deep_array = format!("x = {}{}", "[".repeat(200_000), "]".repeat(200_000));
    let deep_table = format!("x = {}{}", "{a=".repeat(100_000), "}".repeat(100_000));
    for text in [
        "\u{feff}",
        "\0",
        "[[fleet]]\n",
        "[[a]]\nb=1\n[[a]]\n",
        "=",
        "fleet.=1",
        &deep_array,
        &deep_table,
        "\"\u{1F600}\" = 1",
    ] {
        no_panic(text, &[]);
    }
    for set in [
        "=",
        "==",
        "a=",
        "fleet=",
        "fleet.clusters=",
        "fleet.clusters=[",
        "fleet.clusters={",
        "run.duration=\"",
        "embedded.layers=[1,[2]]",
        "target.url=http://[::1]:x",
        "fleet.clusters=1e999",
        "é=1",
        "fleet.clusters=\u{0}",
        "fleet={clusters=2}",
        "fleet.clusters.x=1",
        "thresholds.max_failure_rate=nan",
    ] {
        no_panic("[fleet]\nclusters = 1\n", &sets(&[set]));
        no_panic(
            "fleet = { clusters = 1 }\n",
            &sets(&[set, "fleet.client=containerd"]),
        );
    }
}

fn docs() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios.md"))
        .expect("docs/scenarios.md exists")
}

#[test]
fn the_annotated_example_in_the_docs_is_valid() {
    let docs = docs();
    let section = docs
        .split("## A complete, annotated example")
        .nth(1)
        .expect("the docs have an annotated example");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block");
    let s = parse(example, "docs/scenarios.md", &[]).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(s.fleet.clusters * s.fleet.nodes_per_cluster, 960);
    // With its comments removed the commented keys must be valid too.
    let uncommented = example
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let s =
        parse(&uncommented, "docs/scenarios.md", &[]).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(s.client.max_attempts, Some(5));
    assert!(s.target.ca_file.is_some());
}

#[test]
fn the_docs_describe_every_key() {
    // Serializing a scenario with every optional key set lists every key of the model.
    let full = "[target]\nurl = \"http://h\"\nimage = \"a\"\nca_file = \"c\"\n\
                [embedded.faults]\ncut_after = 1\ncut_times = 1\nstatus = 503\nstatus_on = \"layer\"\nstatus_times = 1\nstatus_after = 1\n\
                [fleet]\nnode_bandwidth = 1\n\
                [client]\nmax_concurrent_downloads = 1\nmax_attempts = 1\nbackoff = 1\nverify_digest = true\n\
                connect_timeout = 1\nresponse_timeout = 1\nstall_timeout = 1\neof_reopens = 1\n\
                backoff_shape = \"doubling\"\ngets_per_failed_attempt = 1\nconfig_attempts = 1\n\
                config_backoff = 1\nrequest_retries = 1\n\
                [kubelet]\npull_retries = \"unlimited\"\n\
                [thresholds]\nmax_failed_pulls = 1\nmax_failure_rate = 1\nmax_retries = 1\nmax_errors = 1\n\
                pull_p50 = 1\npull_p99 = 1\nttfb_p99 = 1\nmin_throughput = 1\n";
    let mut s = ok(full, &[]);
    s.name = Some("n".into());
    s.description = Some("d".into());
    // Excluded by cut_after in a valid file, documented all the same.
    s.embedded.faults.stall_after = Some(pullstorm::scenario::units::ByteSize(1));
    let value = toml::Value::try_from(&s).expect("a scenario serializes");
    let docs = docs();
    let mut missing = Vec::new();
    fn walk(prefix: &str, value: &toml::Value, docs: &str, missing: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, child) in table {
                let documented = if child.is_table() {
                    docs.contains(&format!("`[{prefix}{key}]`"))
                } else {
                    docs.contains(&format!("| `{key}` |"))
                };
                if !documented {
                    missing.push(format!("{prefix}{key}"));
                }
                walk(&format!("{prefix}{key}."), child, docs, missing);
            }
        }
    }
    walk("", &value, &docs, &mut missing);
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}
