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

# --- k8s manifests (tests/k8s/validate.sh): kubernetes-validate from PyPI,
# which ships the Kubernetes schemas, in a venv of its own (Debian's python3
# is externally managed). Needs python3-venv; when it is missing the venv is
# made after apt-get, at the end of this script.
k8s_venv=${XDG_CACHE_HOME:-$HOME/.cache}/pullstorm/k8s-venv
k8s_validate_install() {
    if ! "$k8s_venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
        /usr/bin/python3 -m venv "$k8s_venv"
        "$k8s_venv/bin/pip" install --quiet 'kubernetes-validate==1.37.0'
        echo "test-deps: kubernetes-validate installed in $k8s_venv"
    fi
}
if /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    k8s_validate_install
elif ! "$k8s_venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi
# --- end k8s
# --- object storage (docs/lab.md "Object storage"): moto's S3 server from PyPI, for the
# python3 first in PATH (lab/s3/storage.py runs under it). Pinned: its request recorder
# and error answers are what the object_storage:: test reads.
if ! python3 -c 'import moto.moto_server.threaded_moto_server, flask, boto3' >/dev/null 2>&1; then
    echo "test-deps: installing moto[server] 5.2.1 (pip, for $(command -v python3))"
    python3 -m pip install --quiet 'moto[server]==5.2.1' ||
        python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
fi
# --- end object storage

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
# --- k8s (continued): the venv, once apt-get has installed python3-venv.
k8s_validate_install
