#!/bin/sh
# Installs the programs pullstorm's tests run (skopeo, curl, tar, python3,
# chromium with a font for the report's headless-browser test, and
# python3-jsonschema for the result schema test) from Debian packages, only
# those missing. Idempotent: a second run installs nothing and
# does not touch the network. Needs root (or sudo) when something is missing.
set -eu

missing=""
# "command package" pairs: the package is installed when the command is absent.
for pair in skopeo:skopeo curl:curl tar:tar python3:python3 chromium:chromium; do
    tool=${pair%%:*}
    package=${pair#*:}
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing="$missing $package"
    fi
done
# Headless chromium draws text with whatever fonts fontconfig knows; without
# any, report screenshots have no text.
# docs/result.schema.json is checked with Debian's JSON Schema validator.
if ! /usr/bin/python3 -c 'import jsonschema' >/dev/null 2>&1; then
    missing="$missing python3-jsonschema"
fi
if ! fc-list 2>/dev/null | grep -q .; then
    missing="$missing fonts-dejavu-core fontconfig"
fi

if [ -z "$missing" ]; then
    echo "test-deps: all present (skopeo, curl, tar, python3, chromium, fonts)"
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
