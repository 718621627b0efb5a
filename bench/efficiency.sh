#!/usr/bin/env bash
# Throughput per core and measurement accuracy, each against a peer in the same run:
#   - CPU seconds per GiB pulled with sha256 verification: pullstorm vs `curl | openssl dgst -sha256`;
#   - the same without verification (pure load): pullstorm vs oha (cargo install oha) and
#     `curl -o /dev/null`;
#   - a single pull's transfer time and bytes: pullstorm's layer time vs `curl -w` on the same
#     blob, both through `pullstorm proxy --bandwidth` so the same bottleneck sets the pace.
# One 1 GiB blob from `pullstorm serve` in its own process; ROUNDS alternating runs each;
# CPU time is user+sys of the client process tree (GNU time). Run on demand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-5992}
PROXY_PORT=${PROXY_PORT:-5991}
PACE=${PACE:-200MB/s}
command -v oha >/dev/null || { echo "oha not found: cargo install oha" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found: apt-get install time" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/pullstorm
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers 1GiB >"$work/serve.log" 2>&1 &
server=$!
"$bin" proxy --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$PORT" --bandwidth "$PACE" >"$work/proxy.log" 2>&1 &
proxy=$!
trap 'kill $server $proxy 2>/dev/null; wait $server $proxy 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
read -r digest size < <(curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$PORT/v2/bench/img/manifests/v1" |
  python3 -c 'import json,sys; l=max(json.load(sys.stdin)["layers"], key=lambda l: l["size"]); print(l["digest"], l["size"])')
url="http://127.0.0.1:$PORT/v2/bench/img/blobs/$digest"
printf '[client]\nverify_digest = true\n' >"$work/verify.toml"
printf '[client]\nverify_digest = false\n' >"$work/noverify.toml"

# CPU seconds (user+sys) of a command, from GNU time.
cpu() { /usr/bin/time -f '%U %S' -o "$work/time" "$@" >/dev/null 2>&1; awk '{print $1 + $2}' "$work/time"; }
pull() { echo "$bin" run "$work/$1.toml" --target "http://127.0.0.1:${2:-$PORT}" --image bench/img:v1 --out "$work/r" --quiet; }

declare -A samples
add() { samples[$1]+="$2 "; }
for _ in $(seq "$ROUNDS"); do
  # shellcheck disable=SC2046 # pull prints the command line to run
  add verify "$(cpu $(pull verify))"
  add dgst "$(cpu bash -c "curl -fs '$url' | openssl dgst -sha256")"
  # shellcheck disable=SC2046
  add noverify "$(cpu $(pull noverify))"
  add oha "$(cpu oha -n 1 -c 1 --no-tui "$url")"
  add curl "$(cpu curl -fs -o /dev/null "$url")"
  # Accuracy: the same blob through the same paced proxy, pullstorm's figures vs curl's.
  $(pull verify "$PROXY_PORT") >/dev/null
  add pull_s "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["latency"]["layer"]["max"] / 1000)' "$work/r/result.json")"
  add pull_bytes "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(max(b["size"] for b in r["target"]["blobs"]))' "$work/r/result.json")"
  read -r cb cs < <(curl -fs -o /dev/null -w '%{size_download} %{time_total}\n' "${url/:$PORT/:$PROXY_PORT}")
  add curl_bytes "$cb"; add curl_s "$cs"
done
python3 - "$size" "${samples[verify]}" "${samples[dgst]}" "${samples[noverify]}" "${samples[oha]}" "${samples[curl]}" \
  "${samples[pull_s]}" "${samples[curl_s]}" "${samples[pull_bytes]}" "${samples[curl_bytes]}" "$ROUNDS" <<'PY'
import statistics, sys
size = int(sys.argv[1]); gib = size / 2**30
m = [statistics.median(float(x) for x in a.split()) for a in sys.argv[2:11]]
verify, dgst, nover, oha, curl, pull_s, curl_s, pull_b, curl_b = m
per = lambda c: c / gib
print(f"1 GiB blob from `pullstorm serve`, {sys.argv[11]} rounds each, medians (CPU-s = user+sys per GiB):")
print(f"  verified:   pullstorm {per(verify):.2f} CPU-s/GiB   curl|openssl dgst {per(dgst):.2f}   ratio {verify / dgst:.2f}")
print(f"  unverified: pullstorm {per(nover):.2f} CPU-s/GiB   oha {per(oha):.2f}   curl {per(curl):.2f}   ratio to oha {nover / oha:.2f}")
print(f"  accuracy (paced): pullstorm {pull_s:.3f}s {int(pull_b)} B, curl -w {curl_s:.3f}s {int(curl_b)} B   time ratio {pull_s / curl_s:.3f}")
PY
