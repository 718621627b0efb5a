#!/usr/bin/env bash
# Ten thousand concurrent downloads on this machine: 3,340 dockerd nodes x 3 download
# slots, each node capped at NODE_BW so the transfers last, against `pullstorm serve`
# in its own process (the harness and the registry would otherwise share one nofile
# limit). Reports the peak of concurrent connections, harness RSS per download (max RSS
# / peak connections), timeline rows vs run seconds (no second dropped), and errors.
# TARGET=nginx serves the same image as plain files from nginx (sendfile) instead.
# Run on demand: bench/scale-10k.sh   or   TARGET=nginx bench/scale-10k.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-5990}
CLUSTERS=${CLUSTERS:-10}
NODES=${NODES:-334}
NODE_BW=${NODE_BW:-120KB/s}
LAYERS=${LAYERS:-2MiB,2MiB,2MiB}
TARGET=${TARGET:-embedded}
cargo build --release --quiet
bin=$PWD/target/release/pullstorm
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers "$LAYERS" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
url="http://127.0.0.1:$PORT"
if [[ "$TARGET" == nginx ]]; then
  # The registry API as files: /v2/, the manifest by tag and digest, every blob; nginx
  # answers GET and HEAD with sendfile. No Docker-Content-Digest header: the client
  # falls back to GET by tag, as dockerd does.
  command -v nginx >/dev/null || { echo "nginx not found: scripts/lab.sh up installs it" >&2; exit 1; }
  tree="$work/www/v2/scale/app"
  mkdir -p "$tree/manifests" "$tree/blobs" "$work/nginx/logs"
  echo '{}' >"$work/www/v2/index.json"
  accept='Accept: application/vnd.oci.image.manifest.v1+json'
  curl -fs -H "$accept" "$url/v2/scale/app/manifests/v1" -o "$tree/manifests/v1"
  digest="sha256:$(sha256sum "$tree/manifests/v1" | cut -d' ' -f1)"
  cp "$tree/manifests/v1" "$tree/manifests/$digest"
  for b in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join([m["config"]["digest"]] + [l["digest"] for l in m["layers"]]))' "$tree/manifests/v1"); do
    curl -fs "$url/v2/scale/app/blobs/$b" -o "$tree/blobs/$b"
  done
  kill "$server"; wait "$server" 2>/dev/null || true
  # nginx workers drop root: let them read the tree.
  chmod a+x "$work"; chmod -R a+rX "$work/www"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
worker_rlimit_nofile 16384;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 12000; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$PORT backlog=16384;
    root $work/www;
    location = /v2/ { default_type application/json; try_files /v2/index.json =404; }
    location /v2/scale/app/manifests/ { default_type application/vnd.oci.image.manifest.v1+json; }
    location /v2/scale/app/blobs/ { default_type application/octet-stream; }
  }
}
NGINX
  mkdir -p "$work/nginx/tmp"
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
  server=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "$url/v2/" && break; sleep 0.1; done
fi
cat >"$work/scale.toml" <<TOML
[fleet]
clusters = $CLUSTERS
nodes_per_cluster = $NODES
node_bandwidth = "$NODE_BW"
loopback_sources = 8
[run]
duration = "5m"
TOML
/usr/bin/time -f '%M %U %S %e' -o "$work/time" \
  "$bin" run "$work/scale.toml" --target "$url" --image scale/app:v1 --out "$work/r" --quiet >"$work/run.log" 2>&1 || true
[[ -f "$work/r/result.json" ]] || { cat "$work/run.log" "$work/nginx/logs/error.log" 2>/dev/null | tail -20; exit 1; }
read -r maxrss_kb user sys wall <"$work/time"
python3 - "$work/r/result.json" "$maxrss_kb" "$user" "$sys" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss, user, sys_, wall = int(sys.argv[2]) * 1024, float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
peak = r["connections"]["peak"]
rows = [row["t"] for row in r["timeline"]]
gaps = sum(1 for a, b in zip(rows, rows[1:]) if b - a != 1)
print(f"target {r['target']['url']} ({r['target'].get('server') or 'pullstorm serve'}), {r['fleet']['nodes']} nodes, node_bandwidth {r['fleet']['node_bandwidth_bytes_per_sec']} B/s, {wall:.0f}s wall")
print(f"  concurrent connections (peak)   {peak}")
print(f"  harness max RSS                 {rss / 2**20:.0f} MiB = {rss / max(peak, 1) / 1024:.1f} KiB per download (goal <= 64)")
print(f"  harness CPU                     {user + sys_:.1f} s for {r['bytes']['downloaded'] / 2**30:.1f} GiB")
print(f"  timeline rows {len(rows)} for {r['duration_ms'] / 1000:.0f}s, gaps {gaps}; fd peak {r['fd']['client_peak']} of {r['fd']['client_limit']}")
print(f"  pulls {r['pulls']['completed']} completed, {r['pulls']['failed']} failed; errors {sum(r['errors'].values())}; connect p99 {r['latency']['connect']['p99']:.0f} ms")
PY
