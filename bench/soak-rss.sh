#!/usr/bin/env bash
# Does the harness's own memory stay flat over a soak? A soak (arrival.pattern = "soak") of
# MINUTES minutes (default 10; `--minutes N` for a shorter look) against `pullstorm serve` in
# a process of its own (so the registry's memory is not the harness's): waves of WAVE_SIZE
# nodes every WAVE_INTERVAL, each node pulling again every cycle. The harness samples its own
# RSS once a second (result.json targets[kind=harness].series); this script reads that series
# and prints, after the warm-up (the first fifth of the run, as result::leak leaves out):
#   - the growth: the highest RSS of the last minute minus the highest of the first minute
#     after the warm-up (peaks, as the series keeps them);
#   - the Theil-Sen slope per hour with its 95 % interval and the fitted growth over the
#     judged span (targets[].trend.rss, the same figures the report shows);
# and a PASS line when the growth is under 5 MB (5,000,000 bytes). Run on demand, with nice.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    *) echo "usage: bench/soak-rss.sh [--minutes N]" >&2; exit 2 ;;
  esac
done
PORT=${PORT:-5993}
NODES=${NODES:-40}
WAVE_SIZE=${WAVE_SIZE:-10}
WAVE_INTERVAL=${WAVE_INTERVAL:-5s}
# PULLSTORM=path/to/pullstorm runs that binary instead of building this checkout.
bin=${PULLSTORM:-}
[[ -n $bin ]] || { cargo build --release --quiet; bin=$PWD/target/release/pullstorm; }
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers 8MiB,2MiB,512KiB >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
cat >"$work/soak.toml" <<EOF
name = "soak-rss"
[target]
url = "http://127.0.0.1:$PORT"
image = "bench/soak:v1"
[fleet]
nodes_per_cluster = $NODES
[arrival]
pattern = "soak"
wave_size = $WAVE_SIZE
wave_interval = "$WAVE_INTERVAL"
[watch]
processes = ["$server"]
[run]
duration = "${MINUTES}m"
EOF
echo "soak-rss: ${MINUTES} min soak, $NODES nodes in waves of $WAVE_SIZE every $WAVE_INTERVAL, against pullstorm serve (pid $server)" >&2
"$bin" run "$work/soak.toml" --out "$work/r" --quiet >"$work/console.txt" || true
cat "$work/console.txt"
python3 - "$work/r/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
h = next(t for t in r["targets"] if t["kind"] == "harness")
pts = [(p["t"], p["rss"]) for p in h["series"] if "rss" in p]
t_end = pts[-1][0]
warm = t_end * 0.2
judged = [(t, v) for t, v in pts if t >= warm]
first = max(v for t, v in judged if t < judged[0][0] + 60)
last = max(v for t, v in judged if t > t_end - 60)
growth = last - first
mib = 1024 * 1024
print(f"pulls: {r['pulls']['completed']} completed, {r['pulls']['failed']} failed, "
      f"{r['pulls'].get('interrupted', 0)} cut at the end; stop_reason {r['stop_reason']}, complete {r['complete']}")
print(f"harness RSS: {pts[0][1] / mib:.1f} MiB at start, peak {h['rss_peak_bytes'] / mib:.1f} MiB; "
      f"after the warm-up ({warm:.0f} s): first minute peak {first / mib:.2f} MiB, last minute peak {last / mib:.2f} MiB")
tr = (h.get("trend") or {}).get("rss")
if tr:
    fitted = tr["slope_per_hour"] * (tr["to_s"] - tr["from_s"]) / 3600
    print(f"harness RSS trend: {tr['slope_per_hour'] / mib:+.2f} MiB/h (95 %: {tr['low_per_hour'] / mib:.2f} .. "
          f"{tr['high_per_hour'] / mib:.2f}), fitted growth {fitted / mib:+.2f} MiB over {tr['from_s']}..{tr['to_s']} s, "
          f"leak_suspected {tr['leak_suspected']}")
for t in r["targets"]:
    if t["kind"] == "process" and (t.get("trend") or {}).get("rss"):
        s = t["trend"]["rss"]
        print(f"{t['name']} RSS trend: {s['slope_per_hour'] / mib:+.2f} MiB/h, leak_suspected {t['leak_suspected']}")
verdict = "PASS" if growth < 5_000_000 else "FAIL"
print(f"{verdict}: harness RSS growth after warm-up {growth / 1e6:+.2f} MB (goal < 5 MB)")
sys.exit(0 if verdict == "PASS" else 1)
PY
