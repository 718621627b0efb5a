#!/usr/bin/env bash
# One pull of a 1 GiB layer from the embedded registry: pullstorm (sha256
# verified while streaming) against `curl -o /dev/null` on the same URL, in
# the same run, alternating, ROUNDS times each. Prints the medians and the
# ratio. Run on demand (not part of the test suite): bench/pull-vs-curl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1GiB}
PORT=${PORT:-5999}
cargo build --release --quiet
bin=target/release/pullstorm
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers "$SIZE" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
# The layer is the biggest blob of the manifest.
manifest=$(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$PORT/v2/bench/img/manifests/v1")
read -r digest size < <(python3 -c 'import json,sys; m=json.load(sys.stdin); l=max(m["layers"], key=lambda l: l["size"]); print(l["digest"], l["size"])' <<<"$manifest")
url="http://127.0.0.1:$PORT/v2/bench/img/blobs/$digest"
printf '[client]\nverify_digest = true\n' >"$work/verify.toml"
printf '[client]\nverify_digest = false\n' >"$work/noverify.toml"

# Rate of one pullstorm pull: the big layer is the slowest blob, so its time is latency.layer.max.
pull_rate() {
  "$bin" run "$work/$1.toml" --target "http://127.0.0.1:$PORT" --image bench/img:v1 --out "$work/$1-$2" --quiet >/dev/null
  python3 - "$work/$1-$2/result.json" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["pulls"]["completed"] == 1 and sum(r["errors"].values()) == 0, r["errors"]
print(int(sys.argv[2]) / (r["latency"]["layer"]["max"] / 1000.0))
PY
}
# Rate of a shell pipeline on the blob, from its wall time.
pipe_rate() {
  local t0=$EPOCHREALTIME
  bash -c "$1" >/dev/null
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v n="$size" 'BEGIN { print n / (b - a) }'
}

curl_r=(); verify_r=(); noverify_r=(); dgst_r=()
for i in $(seq "$ROUNDS"); do
  curl_r+=("$(curl -fs -o /dev/null -w '%{speed_download}' "$url")")
  verify_r+=("$(pull_rate verify "$i")")
  noverify_r+=("$(pull_rate noverify "$i")")
  dgst_r+=("$(pipe_rate "curl -fs '$url' | openssl dgst -sha256")")
done
sha_ceiling=$(openssl speed -evp sha256 -bytes 65536 -seconds 1 2>/dev/null | awk '/^sha256/ {sub("k","",$NF); print $NF * 1000}')
python3 - "${curl_r[*]}" "${verify_r[*]}" "${noverify_r[*]}" "${dgst_r[*]}" "$sha_ceiling" "$SIZE" "$ROUNDS" <<'PY'
import statistics, sys
med = lambda s: statistics.median(float(x) for x in s.split())
curl, ver, nover, dgst, ceiling = med(sys.argv[1]), med(sys.argv[2]), med(sys.argv[3]), med(sys.argv[4]), float(sys.argv[5])
mib = lambda r: f"{r / 2**20:7.0f} MiB/s"
print(f"one pull of a {sys.argv[6]} layer from the embedded registry, {sys.argv[7]} rounds each, medians:")
print(f"  curl -o /dev/null                      {mib(curl)}")
print(f"  curl | openssl dgst -sha256            {mib(dgst)}")
print(f"  pullstorm, sha256 verified             {mib(ver)}   ratio to curl {ver / curl:.2f}, to curl|openssl {ver / dgst:.2f}")
print(f"  pullstorm, verify_digest = false       {mib(nover)}   ratio to curl {nover / curl:.2f}")
print(f"  sha256 ceiling, one core (openssl speed) {mib(ceiling)}   pullstorm verified reaches {ver / ceiling:.2f} of it")
PY
