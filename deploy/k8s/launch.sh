#!/bin/sh
# Starts a sharded storm: the scenario and one start instant in the
# pullstorm-scenario ConfigMap, then the Indexed Job with N shards.
#
#   deploy/k8s/launch.sh --shards 4 --scenario my.toml [--start-in 120] \
#       [--image registry.example/tools/pullstorm:TAG] [--namespace NS] [--dry-run]
#
# The start instant is computed here, once, so every pod gets the same one
# (`pullstorm run --start-at`); --start-in must cover scheduling and the
# image pull of the slowest pod (a pod that starts late starts at once and
# says so in its result). --dry-run prints the manifests instead of
# applying them. The credentials Secret is made beforehand (docs/distributed.md).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
shards="" scenario="" start_in=120 image="" namespace="" dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) shards=$2; shift 2 ;;
        --scenario) scenario=$2; shift 2 ;;
        --start-in) start_in=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --namespace) namespace=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "launch.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$shards" in
    ''|*[!0-9]*|0) echo "launch.sh: --shards N (a whole number above 0) is required" >&2; exit 2 ;;
esac
case "$start_in" in
    ''|*[!0-9]*) echo "launch.sh: --start-in takes whole seconds, not '$start_in'" >&2; exit 2 ;;
esac
if [ -z "$scenario" ] || [ ! -r "$scenario" ]; then
    echo "launch.sh: --scenario FILE is required and must be readable (got '$scenario')" >&2
    exit 2
fi

start_at=$(date -u -d "@$(( $(date +%s) + start_in ))" +%Y-%m-%dT%H:%M:%SZ)

# The ConfigMap, written here rather than by `kubectl create configmap` so
# --dry-run needs no kubectl. `|2`: the block's indentation is explicit, so a
# scenario starting with a blank or indented line keeps its text.
configmap() {
    cat <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: pullstorm-scenario
  labels:
    app.kubernetes.io/name: pullstorm
data:
  start_at: "$start_at"
  scenario.toml: |2
YAML
    sed 's/^/    /' "$scenario"
}

# The Job with N in its three places (completions, parallelism, PULLSTORM_SHARDS).
job() {
    sed -e "s/^  completions: [0-9]*\$/  completions: $shards/" \
        -e "s/^  parallelism: [0-9]*\$/  parallelism: $shards/" \
        -e "/- name: PULLSTORM_SHARDS\$/{n;s/value: \"[0-9]*\"/value: \"$shards\"/;}" \
        ${image:+-e "s#image: pullstorm:local\$#image: $image#"} \
        "$here/job.yaml"
}

generated=$(job)
for want in "  completions: $shards" "  parallelism: $shards" "value: \"$shards\""; do
    if ! printf '%s\n' "$generated" | grep -q "$want"; then
        echo "launch.sh: $here/job.yaml no longer has the line for '$want'" >&2
        exit 3
    fi
done

if [ "$dry_run" = 1 ]; then
    configmap
    echo "---"
    printf '%s\n' "$generated"
    exit 0
fi

kubectl_ns() {
    if [ -n "$namespace" ]; then kubectl --namespace "$namespace" "$@"; else kubectl "$@"; fi
}
if kubectl_ns get job pullstorm >/dev/null 2>&1; then
    echo "launch.sh: a Job named pullstorm exists; collect its results (collect.sh), then" >&2
    echo "           kubectl delete job pullstorm (its pods' logs go with it)" >&2
    exit 3
fi
configmap | kubectl_ns apply -f -
printf '%s\n' "$generated" | kubectl_ns create -f -
echo "launch.sh: $shards shards start at $start_at (in ${start_in}s)"
