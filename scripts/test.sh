#!/usr/bin/env bash
# The whole test suite, set-up included (the README's second command; CI runs it):
#   1. installs what the tests need from Debian's packages when missing;
#   2. unit tests and integration tests against the embedded registry;
#   3. the native lab's own test (it starts and stops the lab), then the compose lab's;
#   4. the Rust tests against the real lab (docker-registry, nginx, haproxy, mirror,
#      auth variants, TLS; skopeo, containerd and dockerd cross-checks: the `lab::` tests),
#      with the lab started here and stopped on exit whatever happens; then the fault
#      matrix, the trace-fidelity comparison with dockerd and containerd, and the seed
#      scenarios (`faults::`, `trace::`, `seeds::`: each starts its own instances of the
#      lab's components, docs/seeds.md); then connections per pull against dockerd and
#      containerd through nginx (`connections::`, its own nginx and registry); then the
#      capacity search against haproxy with a connection limit (`capacity::`); then the
#      conformance matrix (`conformance::`: the machine's dockerd and a private containerd
#      against the client profiles, fault by fault, on free ports; it rewrites the matrix
#      in docs/clients.md).
# The Rust integration tests are one binary, `integration` (tests/integration/main.rs); a
# test-name filter picks a module. The real-lab ones are #[ignore]d in a plain `cargo test`
# and run here one at a time (they bind ports and start daemons).
# Tests run in release mode: digest checks of multi-MB blobs are slow without optimisation.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh
cargo build --release --all-targets

echo "== unit and embedded-registry tests"
cargo test --release --all-targets "$@"

bash tests/k8s/validate.sh  # deploy/k8s/ against the Kubernetes 1.30 schemas (no cluster)

echo "== native lab"
scripts/lab.sh down >/dev/null 2>&1 || true
bash tests/lab/native.sh

echo "== compose lab"
bash tests/lab/compose.sh

echo "== pullstorm against the real lab"
trap 'scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
scripts/lab.sh up >/dev/null
cargo test --release --test integration -- --include-ignored --test-threads=1 lab::
cargo test --release --test integration -- --include-ignored --test-threads=1 faults:: trace:: seeds::
cargo test --release --test integration -- --include-ignored --test-threads=1 connections::
cargo test --release --test integration -- --include-ignored --test-threads=1 verify:: seed_002::
cargo test --release --test integration -- --include-ignored --test-threads=1 capacity::
cargo test --release --test integration -- --include-ignored --test-threads=1 compare::
cargo test --release --test integration -- --include-ignored --test-threads=1 conformance::
cargo test --release --test integration -- --include-ignored --test-threads=1 object_storage::
cargo test --release --test integration -- --include-ignored --test-threads=1 distributed::
cargo test --release --test integration -- --include-ignored --test-threads=1 push_storm::
