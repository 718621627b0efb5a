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
printf '[embedded]\n' >"$work/one.toml"

curl_rates=(); pull_rates=()
for i in $(seq "$ROUNDS"); do
  curl_rates+=("$(curl -fs -o /dev/null -w '%{speed_download}' "$url")")
  "$bin" run "$work/one.toml" --target "http://127.0.0.1:$PORT" --image bench/img:v1 --out "$work/r$i" --quiet >/dev/null
  pull_rates+=("$(python3 - "$work/r$i/result.json" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["pulls"]["completed"] == 1 and sum(r["errors"].values()) == 0, r["errors"]
# The big layer is the slowest blob of the single pull: its time is latency.layer.max.
print(int(sys.argv[2]) / (r["latency"]["layer"]["max"] / 1000.0))
PY
)")
done
python3 - "${curl_rates[*]}" "${pull_rates[*]}" "$SIZE" "$ROUNDS" <<'PY'
import statistics, sys
curl = [float(x) for x in sys.argv[1].split()]
pull = [float(x) for x in sys.argv[2].split()]
mc, mp = statistics.median(curl), statistics.median(pull)
print(f"blob {sys.argv[3]}, {sys.argv[4]} rounds each, medians:")
print(f"  curl -o /dev/null          {mc / 2**20:8.0f} MiB/s")
print(f"  pullstorm (sha256 checked) {mp / 2**20:8.0f} MiB/s")
print(f"  ratio pullstorm/curl       {mp / mc:8.2f}")
PY
