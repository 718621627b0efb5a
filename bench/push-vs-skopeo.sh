#!/usr/bin/env bash
# Push speed of `pullstorm seed` against `skopeo copy` of the same image layout, into
# the same private docker-registry (its own storage in a temp folder), alternating,
# ROUNDS times each, each round into fresh repositories. Needs docker-registry and
# skopeo (scripts/lab.sh up installs both). Run on demand: bench/push-vs-skopeo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
LAYERS=${LAYERS:-1GiB,1GiB}
PORT=${PORT:-5997}
cargo build --release --quiet
bin=$PWD/target/release/pullstorm
work=$(mktemp -d)
# Each push goes into an empty registry: nothing to mount or skip (skopeo's blob-info
# cache would otherwise turn a push into a cross-repository mount).
registry=""
fresh_registry() {
  [[ -n "$registry" ]] && { kill "$registry" 2>/dev/null; wait "$registry" 2>/dev/null || true; }
  rm -rf "$work/data"
  cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$PORT, secret: bench}
YML
  env -u REGISTRY_AUTH_FILE docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && return; sleep 0.1; done
  echo "registry did not start" >&2; exit 1
}
trap '[[ -n "$registry" ]] && kill $registry 2>/dev/null; rm -rf "$work"' EXIT
reg="http://127.0.0.1:$PORT"

# The layout skopeo pushes: the very image seed pushes, fetched once into an OCI layout.
fresh_registry
"$bin" seed --registry "$reg" --image bench/source:v1 --layers "$LAYERS" >/dev/null 2>&1
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/source:v1" "oci:$work/layout:v1"
bytes=$(du -sb "$work/layout/blobs" | cut -f1)

seconds() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'; }
seed_t=(); skopeo_t=()
for i in $(seq "$ROUNDS"); do
  fresh_registry
  seed_t+=("$(seconds "$bin" seed --registry "$reg" --image "bench/seed-$i:v1" --layers "$LAYERS")")
  fresh_registry
  skopeo_t+=("$(seconds skopeo --insecure-policy copy -q --preserve-digests --dest-tls-verify=false "oci:$work/layout:v1" "docker://127.0.0.1:$PORT/bench/skopeo-$i:v1")")
done
python3 - "${seed_t[*]}" "${skopeo_t[*]}" "$bytes" "$LAYERS" "$ROUNDS" <<'PY'
import statistics, sys
seed = statistics.median(float(x) for x in sys.argv[1].split())
sk = statistics.median(float(x) for x in sys.argv[2].split())
b = int(sys.argv[3])
print(f"push of layers {sys.argv[4]} into a local docker-registry, {sys.argv[5]} rounds each, medians:")
print(f"  skopeo copy oci: -> docker://   {sk:6.2f}s  {b / sk / 2**20:6.0f} MiB/s")
print(f"  pullstorm seed                  {seed:6.2f}s  {b / seed / 2**20:6.0f} MiB/s   ratio to skopeo {sk / seed:.2f}")
PY
