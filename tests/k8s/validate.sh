#!/bin/sh
# Validates every Kubernetes manifest under deploy/k8s/ against the schemas of
# one Kubernetes release, strictly (unknown fields are errors), with
# kubernetes-validate (PyPI; it ships the schemas, no cluster or network
# needed; scripts/test-deps.sh installs it). Also validates what
# deploy/k8s/launch.sh generates, checks kustomization.yaml lists files that
# exist, and proves the check can fail: a copy of job.yaml with a misspelt
# field must be rejected.
#
#   tests/k8s/validate.sh            # Kubernetes 1.30
#   K8S_VERSION=1.33.0 tests/k8s/validate.sh
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/deploy/k8s"
version=${K8S_VERSION:-1.30.0}
venv=${XDG_CACHE_HOME:-$HOME/.cache}/pullstorm/k8s-venv

if command -v kubernetes-validate >/dev/null 2>&1; then
    kv=kubernetes-validate
elif [ -x "$venv/bin/kubernetes-validate" ]; then
    kv="$venv/bin/kubernetes-validate"
else
    echo "validate.sh: kubernetes-validate not found (scripts/test-deps.sh installs it into $venv)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every manifest (kustomization.yaml is kustomize's, not a Kubernetes object).
manifests=""
for f in "$dir"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests="$manifests $f"
done
[ -n "$manifests" ] || { echo "validate.sh: no manifests in $dir" >&2; exit 1; }
# shellcheck disable=SC2086 # the list is file names without spaces
"$kv" --kubernetes-version "$version" --strict --quiet $manifests
echo "validate.sh: deploy/k8s manifests valid for Kubernetes $version:$(for f in $manifests; do printf ' %s' "$(basename "$f")"; done)"

# kustomization.yaml names only files that exist, and all of the manifests.
listed=$(sed -n 's/^  - \([A-Za-z0-9._-]*\.yaml\)$/\1/p' "$dir/kustomization.yaml")
for f in $listed; do
    [ -f "$dir/$f" ] || { echo "validate.sh: kustomization.yaml lists $f, not in $dir" >&2; exit 1; }
done
for f in $manifests; do
    printf '%s\n' "$listed" | grep -qx "$(basename "$f")" \
        || { echo "validate.sh: kustomization.yaml does not list $(basename "$f")" >&2; exit 1; }
done

# What launch.sh generates for 7 shards and another image is valid too, and
# carries the 7 in all three places.
sed -n '/^  scenario.toml: |$/,$p' "$dir/configmap.yaml" | sed '1d;s/^    //' >"$tmp/scenario.toml"
"$dir/launch.sh" --shards 7 --scenario "$tmp/scenario.toml" --image registry.example/tools/pullstorm:1 \
    --dry-run >"$tmp/launched.yaml"
"$kv" --kubernetes-version "$version" --strict --quiet "$tmp/launched.yaml"
for want in '  completions: 7' '  parallelism: 7' 'value: "7"' 'image: registry.example/tools/pullstorm:1'; do
    grep -q "$want" "$tmp/launched.yaml" || { echo "validate.sh: launch.sh output lacks '$want'" >&2; exit 1; }
done
echo "validate.sh: launch.sh --dry-run output valid"

# The negative check: a misspelt field (parallelizm) and a wrong type must fail.
sed 's/^  parallelism: /  parallelizm: /' "$dir/job.yaml" >"$tmp/misspelt.yaml"
sed 's/^  completions: [0-9]*$/  completions: "four"/' "$dir/job.yaml" >"$tmp/mistyped.yaml"
for broken in misspelt mistyped; do
    if cmp -s "$dir/job.yaml" "$tmp/$broken.yaml"; then
        echo "validate.sh: could not break job.yaml ($broken): the check would prove nothing" >&2
        exit 1
    fi
    if "$kv" --kubernetes-version "$version" --strict --quiet "$tmp/$broken.yaml" >"$tmp/out" 2>&1; then
        echo "validate.sh: a broken job.yaml ($broken) passed validation:" >&2
        cat "$tmp/out" >&2
        exit 1
    fi
done
echo "validate.sh: broken copies of job.yaml are rejected"
