#!/usr/bin/env bash
# Ten thousand concurrent downloads on this machine: 3,340 dockerd nodes x 3 download
# slots, each node capped at NODE_BW so the transfers last, against `pullstorm serve`
# in its own process (the harness and the registry would otherwise share one nofile
# limit). Reports the peak of concurrent connections, harness RSS per download (max RSS
# / peak connections), timeline rows vs run seconds (no second dropped), and errors.
# Run on demand: bench/scale-10k.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-5990}
CLUSTERS=${CLUSTERS:-10}
NODES=${NODES:-334}
NODE_BW=${NODE_BW:-120KB/s}
LAYERS=${LAYERS:-2MiB,2MiB,2MiB}
cargo build --release --quiet
bin=$PWD/target/release/pullstorm
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers "$LAYERS" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
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
  "$bin" run "$work/scale.toml" --target "http://127.0.0.1:$PORT" --image scale/app:v1 --out "$work/r" --quiet >"$work/run.log" 2>&1 || true
read -r maxrss_kb user sys wall <"$work/time"
python3 - "$work/r/result.json" "$maxrss_kb" "$user" "$sys" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss, user, sys_, wall = int(sys.argv[2]) * 1024, float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
peak = r["connections"]["peak"]
rows = [row["t"] for row in r["timeline"]]
gaps = sum(1 for a, b in zip(rows, rows[1:]) if b - a != 1)
print(f"{r['fleet']['nodes']} nodes, node_bandwidth {r['fleet']['node_bandwidth_bytes_per_sec']} B/s, {wall:.0f}s wall")
print(f"  concurrent connections (peak)   {peak}")
print(f"  harness max RSS                 {rss / 2**20:.0f} MiB = {rss / max(peak, 1) / 1024:.1f} KiB per download (goal <= 64)")
print(f"  harness CPU                     {user + sys_:.1f} s for {r['bytes']['downloaded'] / 2**30:.1f} GiB")
print(f"  timeline rows {len(rows)} for {r['duration_ms'] / 1000:.0f}s, gaps {gaps}; fd peak {r['fd']['client_peak']} of {r['fd']['client_limit']}")
print(f"  pulls {r['pulls']['completed']} completed, {r['pulls']['failed']} failed; errors {sum(r['errors'].values())}; connect p99 {r['latency']['connect']['p99']:.0f} ms")
PY
