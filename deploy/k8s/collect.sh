#!/bin/sh
# Gathers every shard's result of the pullstorm Job from its pod's log and
# merges them into one result and report:
#
#   deploy/k8s/collect.sh --out merged/ [--job pullstorm] [--namespace NS] \
#       [--wait-seconds 3600] [--partial]
#
# Waits (at most --wait-seconds) for the Job to end, reads each pod's log
# (`kubectl logs`), takes the base64 tar.gz between its
# "pullstorm-shard-result ... begin" and "pullstorm-shard-result end" lines
# into OUT/shards/shard-I/ (result.json, latency.hlog), then runs
#   pullstorm merge OUT/shards/shard-*/result.json --out OUT
# which writes OUT/result.json and OUT/report.html with the thresholds
# judged on the merged result. Its exit code is this script's: 0 passed,
# 1 thresholds failed, 2 bad input; 3 when a shard's result is missing
# (unless --partial, which merges the shards there are and says which are
# missing) or the Job did not end in time. PULLSTORM names the binary
# (default: pullstorm on PATH).
set -eu

out="" job=pullstorm namespace="" wait_seconds=3600 partial=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --job) job=$2; shift 2 ;;
        --namespace) namespace=$2; shift 2 ;;
        --wait-seconds) wait_seconds=$2; shift 2 ;;
        --partial) partial=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "collect.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$out" ]; then
    echo "collect.sh: --out DIR is required" >&2
    exit 2
fi
case "$wait_seconds" in
    ''|*[!0-9]*) echo "collect.sh: --wait-seconds takes whole seconds" >&2; exit 2 ;;
esac
pullstorm=${PULLSTORM:-pullstorm}

k() {
    if [ -n "$namespace" ]; then kubectl --namespace "$namespace" "$@"; else kubectl "$@"; fi
}

shards=$(k get job "$job" -o jsonpath='{.spec.completions}')
echo "collect.sh: job/$job has $shards shards; waiting for it to end"
waited=0
while :; do
    ended=$(k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case "$ended" in
        *Complete*|*Failed*) break ;;
    esac
    if [ "$waited" -ge "$wait_seconds" ]; then
        echo "collect.sh: job/$job has not ended after ${wait_seconds}s" >&2
        exit 3
    fi
    sleep 10
    waited=$((waited + 10))
done
echo "collect.sh: job/$job ended: $ended"

mkdir -p "$out/shards"
pods=$(k get pods -l "job-name=$job" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
for pod in $pods; do
    log=$(mktemp)
    k logs "$pod" >"$log" || true
    header=$(grep -m1 '^pullstorm-shard-result index=[0-9]* exit=[0-9]* begin$' "$log" || true)
    if [ -z "$header" ]; then
        echo "collect.sh: pod $pod printed no result (see kubectl logs $pod)" >&2
        rm -f "$log"
        continue
    fi
    index=$(printf '%s\n' "$header" | sed 's/.*index=\([0-9]*\).*/\1/')
    code=$(printf '%s\n' "$header" | sed 's/.*exit=\([0-9]*\).*/\1/')
    dir="$out/shards/shard-$index"
    rm -rf "$dir"
    mkdir -p "$dir"
    sed -n '/^pullstorm-shard-result index=.* begin$/,/^pullstorm-shard-result end$/p' "$log" \
        | sed '1d;$d' | base64 -d | tar -xzf - -C "$dir"
    rm -f "$log"
    echo "collect.sh: shard $index from pod $pod (its run exited $code)"
done

missing=""
i=0
while [ "$i" -lt "$shards" ]; do
    [ -f "$out/shards/shard-$i/result.json" ] || missing="$missing $i"
    i=$((i + 1))
done
if [ -n "$missing" ]; then
    if [ "$partial" = 1 ]; then
        echo "collect.sh: merging without shard(s)$missing (--partial): the merged load is not the scenario's" >&2
    else
        echo "collect.sh: no result from shard(s)$missing; --partial merges the others" >&2
        exit 3
    fi
fi

# Every result.json found, in shard order.
set --
i=0
while [ "$i" -lt "$shards" ]; do
    [ -f "$out/shards/shard-$i/result.json" ] && set -- "$@" "$out/shards/shard-$i/result.json"
    i=$((i + 1))
done
set +e
"$pullstorm" merge "$@" --out "$out"
code=$?
echo "collect.sh: merged $# shard(s) into $out/result.json and $out/report.html (exit $code)"
exit "$code"
