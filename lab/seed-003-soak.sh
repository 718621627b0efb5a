#!/usr/bin/env bash
# Seed 003 as far as one machine allows: the machine's dockerd pulls one image over and over
# (`docker pull` then `docker rmi`, as a node re-pulling through the day) from `pullstorm serve`
# while `pullstorm run scenarios/seed-003-soak.toml` soaks the same registry and watches
# dockerd and its containerd. Prints the console summary and each daemon's trend line.
#   lab/seed-003-soak.sh [--duration 5m]
# Needs root (dockerd's /proc) and a running dockerd. Loopback registries are insecure to
# dockerd by default, so no daemon.json change is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=5m
[[ ${1:-} == --duration ]] && DURATION=$2
PORT=5994
# PULLSTORM=path/to/pullstorm runs that binary instead of this checkout's release build.
bin=${PULLSTORM:-$PWD/target/release/pullstorm}
[[ -x $bin ]] || cargo build --release --quiet
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$PORT" --layers 16MiB,4MiB,1MiB >"$work/serve.log" 2>&1 &
server=$!
loop=
cleanup() {
  # Each step may fail (already gone): the rest must still run under `set -e`.
  if [[ -n $loop ]]; then kill "$loop" 2>/dev/null || true; wait "$loop" 2>/dev/null || true; fi
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  docker rmi -f "127.0.0.1:$PORT/seed003/app:v1" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
# dockerd's repeated pulls: the daemon under watch does the work a node's daemon does.
(
  while true; do
    docker pull -q "127.0.0.1:$PORT/seed003/app:v1" >/dev/null 2>>"$work/pulls.err" && echo ok >>"$work/pulls.log"
    docker rmi -f "127.0.0.1:$PORT/seed003/app:v1" >/dev/null 2>&1 || true
  done
) &
loop=$!
"$bin" run scenarios/seed-003-soak.toml --set "run.duration=$DURATION" --out "$work/r" --quiet || true
echo "dockerd pulls completed during the soak: $(wc -l <"$work/pulls.log" 2>/dev/null || echo 0)"
python3 - "$work/r/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mib = 1024 * 1024
for t in r["targets"]:
    if t["kind"] != "process":
        continue
    tr = t.get("trend") or {}
    parts = []
    for m, unit, scale in (("rss", "MiB", mib), ("fds", "", 1), ("threads", "", 1)):
        s = tr.get(m)
        if s:
            parts.append(f"{m} {s['slope_per_hour'] / scale:+.2f}{unit}/h (95 %: {s['low_per_hour'] / scale:.2f} .. {s['high_per_hour'] / scale:.2f})")
        else:
            parts.append(f"{m} no data")
    print(f"{t['name']}: leak_suspected {t['leak_suspected']}; " + "; ".join(parts))
PY
