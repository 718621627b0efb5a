//! Every integration test of pullstorm, in one test binary.
//!
//! Why one binary: each integration test file used to be a crate of its own, linked against
//! pullstorm and its dependencies in release mode; ten such links made a clean build plus
//! the tests take minutes on two cores. One crate links once (ripgrep does the same). `Cargo.toml` sets `autotests = false` and names this file as the only `[[test]]`.
//!
//! Adding tests: put `tests/integration/<area>.rs` beside the others and add one line,
//! `mod <area>;`, below. A test file dropped at `tests/<name>.rs` is NOT built (autotests
//! are off): `every_test_file_is_a_module_of_this_binary` fails until it is moved here.
//!
//! The helpers are shared by every module: `common` runs the `pullstorm` binary and reads
//! its result, and holds `wait_until`, the bounded wait that replaces fixed sleeps;
//! `instances` starts private instances of the lab's components (docker-registry, nginx,
//! haproxy, docker-proxy, containerd).
//!
//! Running a part: test names start with their module, so a filter selects it:
//! `cargo test --release --test integration -- proxy::` (see README.md, "Tests"). The tests
//! that need the real lab's packages or daemons (`lab::`, `faults::`, `trace::`, `seeds::`,
//! `seed_002::`, `connections::`, `compare::`, `capacity::`, `object_storage::`, `distributed::`, some of `verify::`)
//! are `#[ignore]`d; `scripts/test.sh` runs them with `--include-ignored --test-threads=1`.

mod common;
mod instances;

mod capacity;
mod client_rules;
mod compare;
mod conformance;
mod connections;
mod distributed;
mod exits;
mod faults;
mod figures;
mod gate;
mod harness;
mod hostile_input;
mod hostile_registry;
mod lab;
mod metrics_endpoint;
mod object_storage;
mod proxy;
mod push_storm;
mod report;
mod run_embedded;
mod scenario_files;
mod schema;
mod seed_002;
mod seeds;
mod serve_skopeo;
mod signals;
mod soak;
mod startup;
mod thresholds;
mod trace;
mod verify;
mod verify_after_run;
mod watch;

/// Autotests are off, so a test file this binary does not declare would silently never
/// run: every `.rs` file under `tests/` must be a module declared above.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let here = tests.join("integration");
    let main = std::fs::read_to_string(here.join("main.rs")).unwrap();
    let rust_files = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".rs"))
            .collect()
    };
    let stray = rust_files(&tests);
    assert!(
        stray.is_empty(),
        "tests/{stray:?} would not be built (autotests = false): move each to \
         tests/integration/ and declare it in tests/integration/main.rs"
    );
    for file in rust_files(&here) {
        let module = file.trim_end_matches(".rs");
        assert!(
            module == "main" || main.lines().any(|l| l == format!("mod {module};")),
            "tests/integration/{file} is not declared: add `mod {module};` to tests/integration/main.rs"
        );
    }
}
