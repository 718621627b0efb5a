#!/bin/sh
# Installs the programs pullstorm's tests run (skopeo, curl, tar) from Debian
# packages, only those missing. Idempotent: a second run installs nothing and
# does not touch the network. Needs root (or sudo) when something is missing.
set -eu

missing=""
for tool in skopeo curl tar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing="$missing $tool"
    fi
done

if [ -z "$missing" ]; then
    echo "test-deps: all present (skopeo, curl, tar)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "test-deps: need root to install:$missing" >&2
    exit 1
fi

echo "test-deps: installing:$missing"
$sudo apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
echo "test-deps: done"
