#!/usr/bin/env bash
# The whole test suite, set-up included: installs what the tests need from
# Debian's packages when missing, then runs every test in release mode
# (digest checks of multi-MB blobs are slow without optimisation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo test --release --all-targets "$@"
