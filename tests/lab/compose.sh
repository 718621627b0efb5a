#!/usr/bin/env bash
# Integration test of the docker compose lab: lab image built locally if missing (debootstrap,
# no image registry), compose up through scripts/lab.sh, /v2/ on every published port (401
# without credentials on the auth variants, 200 with them, the bearer flow with curl), a
# hand-made OCI image pushed with skopeo through the compose nginx and pulled back through
# nginx, haproxy, the mirror, TLS and token auth with digests checked, then compose down
# with no container, network or volume of the test project left.
#
#   tests/lab/compose.sh         (root, Docker engine, docker compose v2 or docker-compose 1.29)
#
# Runs as its own compose project (pullstorm-lab-test) on the compose lab's fixed host ports
# 127.0.0.1:1xxxx: a compose lab already running on them makes it fail. Every wait is bounded.
# Last line: "N passed, N failed"; exit status 0 only when nothing failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LAB="$ROOT/scripts/lab.sh"
# shellcheck source=lab/ports.env
. "$ROOT/lab/ports.env"
OFF=10000

PASS=0 FAIL=0 STARTED=0
export PULLSTORM_LAB_COMPOSE_PROJECT="${PULLSTORM_LAB_TEST_PROJECT:-pullstorm-lab-test}"
PROJECT="$PULLSTORM_LAB_COMPOSE_PROJECT"
WORK="$(mktemp -d /tmp/pullstorm-lab-compose-test.XXXXXX)"
export REGISTRY_AUTH_FILE="$WORK/auth.json"   # skopeo: never the user's credentials
USER_NAME=pullstorm USER_PASS=pullstorm-lab

ok() { PASS=$((PASS + 1)); echo "ok     $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "FAILED $*"; }
check() { local d="$1"; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
check_log() { local d="$1" log="$2"; shift 2; if "$@" >"$log" 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/    /' "$log" | tail -n 20; fi; }
expect_code() {
  local d="$1" want="$2" got; shift 2
  got="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" 2>/dev/null || true)"
  if [[ "$got" == "$want" ]]; then ok "$d ($got)"; else not_ok "$d: HTTP $got, expected $want"; fi
}
# shellcheck disable=SC2016 # $0 expands in the child shell
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
hp() { echo $(($1 + OFF)); }   # host port of a container port
container() { docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n1; }

HOST_PORTS=()
for v in $(compgen -v LAB_PORT_); do HOST_PORTS+=("$(hp "${!v}")"); done

finish() {
  local rc=$?
  trap - EXIT
  if ((STARTED)); then timeout 180 "$LAB" compose-down --volumes >/dev/null 2>&1 || true; fi
  if ((rc != 0)); then not_ok "the test script stopped early (status $rc)"; fi
  rm -rf "$WORK"
  echo "$PASS passed, $FAIL failed"
  if ((FAIL)); then exit 1; fi
  exit 0
}
trap finish EXIT

for tool in docker curl skopeo timeout; do
  command -v "$tool" >/dev/null || { not_ok "'$tool' is needed (skopeo: apt-get install skopeo, or scripts/lab.sh up once)"; exit 1; }
done
busy=""
for p in "${HOST_PORTS[@]}"; do port_open "$p" && busy+="$p "; done
if [[ -n "$busy" ]]; then
  not_ok "compose lab host ports already in use: $busy(a compose lab running? scripts/lab.sh compose-down)"
  exit 1
fi

# ---- image, up -------------------------------------------------------------------------------
t0=$SECONDS
check_log "lab image present or built (scripts/lab-image.sh)" "$WORK/image.log" \
  timeout 900 "$ROOT/scripts/lab-image.sh"
echo "       ($((SECONDS - t0))s: $(tail -n1 "$WORK/image.log"))"
t0=$SECONDS
STARTED=1
if timeout 400 "$LAB" compose-up >"$WORK/up.log" 2>&1; then
  ok "lab.sh compose-up in $((SECONDS - t0))s"
else
  not_ok "lab.sh compose-up failed:"; sed 's/^/    /' "$WORK/up.log" | tail -n 30; exit 1
fi

for svc in redis token registry registry-redis registry-basic registry-token nginx haproxy mirror; do
  id="$(container "$svc")"
  check "container $svc is running" test "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" = true
done
init_id="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=lab-init" | head -n1)"
check "lab-init ran and exited 0" test "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$init_id" 2>/dev/null)" = "exited 0"
# Every published port is bound to 127.0.0.1 only.
# shellcheck disable=SC2016 # a Go template, not a shell expansion
bindings="$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker inspect \
  -f '{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}} {{end}}{{end}}' | tr ' ' '\n' | sed '/^$/d' | sort -u | paste -sd' ')"
check "published ports bound to 127.0.0.1 only ($bindings)" test "$bindings" = 127.0.0.1
check "the pullstorm service is not started by default" test -z "$(container pullstorm)"

# ---- /v2/ on every published port -----------------------------------------------------------
docker exec "$(container nginx)" cat /lab/secrets/ca.crt >"$WORK/ca.crt" 2>/dev/null || true
mkdir -p "$WORK/cert-dir" && cp "$WORK/ca.crt" "$WORK/cert-dir/ca.crt"
expect_code "registry /v2/" 200 "http://127.0.0.1:$(hp "$LAB_PORT_REGISTRY")/v2/"
expect_code "nginx /v2/" 200 "http://127.0.0.1:$(hp "$LAB_PORT_NGINX")/v2/"
expect_code "haproxy /v2/" 200 "http://127.0.0.1:$(hp "$LAB_PORT_HAPROXY")/v2/"
expect_code "mirror /v2/" 200 "http://127.0.0.1:$(hp "$LAB_PORT_MIRROR")/v2/"
expect_code "nginx -> registry-redis /v2/" 200 "http://127.0.0.1:$(hp "$LAB_PORT_NGINX_REDIS")/v2/"
expect_code "nginx TLS /v2/ (verified with the lab CA)" 200 --cacert "$WORK/ca.crt" "https://127.0.0.1:$(hp "$LAB_PORT_NGINX_TLS")/v2/"
expect_code "nginx stub_status" 200 "http://127.0.0.1:$(hp "$LAB_PORT_NGINX_STATUS")/"
expect_code "registry metrics" 200 "http://127.0.0.1:$(hp "$LAB_PORT_REGISTRY_DEBUG")/metrics"
expect_code "haproxy stats" 200 "http://127.0.0.1:$(hp "$LAB_PORT_HAPROXY_STATS")/stats"
expect_code "basic: /v2/ without credentials" 401 "http://127.0.0.1:$(hp "$LAB_PORT_NGINX_BASIC")/v2/"
expect_code "basic: /v2/ with the credentials" 200 -u "$USER_NAME:$USER_PASS" "http://127.0.0.1:$(hp "$LAB_PORT_NGINX_BASIC")/v2/"

TOKEN_LB="http://127.0.0.1:$(hp "$LAB_PORT_NGINX_TOKEN")"
expect_code "token: /v2/ without a token" 401 "$TOKEN_LB/v2/"
challenge="$(curl -s -D - -o /dev/null --max-time 10 "$TOKEN_LB/v2/" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p')"
realm="$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")"
check "token: realm is the host-published LB (${realm:-none})" test "$realm" = "$TOKEN_LB/service/token"
token="$(curl -fsS --max-time 10 -u "$USER_NAME:$USER_PASS" "$realm?service=pullstorm-lab&scope=repository:lab/small:pull" \
  | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' || true)"
expect_code "token: /v2/ with the token" 200 -H "Authorization: Bearer $token" "$TOKEN_LB/v2/"
expect_code "token: issuer refuses a wrong password" 401 -u "$USER_NAME:wrong" "$realm?service=pullstorm-lab&scope=repository:lab/small:pull"
# Inside the compose network the realm follows the LB name the client used.
inner="$(docker exec "$(container mirror)" curl -s -D - -o /dev/null --max-time 10 "http://nginx:$LAB_PORT_NGINX_TOKEN/v2/" 2>/dev/null \
  | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: .*realm="\([^"]*\)".*/\1/p' || true)"
check "token: realm seen inside the network is http://nginx:$LAB_PORT_NGINX_TOKEN/service/token" \
  test "$inner" = "http://nginx:$LAB_PORT_NGINX_TOKEN/service/token"

# ---- push / pull ---------------------------------------------------------------------------
eval "$("$ROOT/lab/oci-sample.sh" "$WORK/oci" --size 1024 --seed "compose $$ $RANDOM")"
: "${MANIFEST_DIGEST:?}" "${LAYER_DIGEST:?}"
SK=(timeout 120 skopeo --insecure-policy)
check "skopeo push through the compose nginx" "${SK[@]}" copy -q --preserve-digests --dest-tls-verify=false \
  "oci:$WORK/oci:v1" "docker://127.0.0.1:$(hp "$LAB_PORT_NGINX")/lab/small:v1"
pull() {
  local name="$1" src="$2" out m l; shift 2
  out="$WORK/pull-$name"
  if "${SK[@]}" copy -q "$@" "docker://$src" "dir:$out"; then
    ok "skopeo pull through $name"
    m="sha256:$(sha256sum "$out/manifest.json" | cut -d' ' -f1)"
    l="sha256:$(sha256sum "$out/${LAYER_DIGEST#sha256:}" 2>/dev/null | cut -d' ' -f1)"
    check "$name: manifest digest matches" test "$m" = "$MANIFEST_DIGEST"
    check "$name: layer digest matches" test "$l" = "$LAYER_DIGEST"
  else
    not_ok "skopeo pull through $name"
  fi
}
pull nginx "127.0.0.1:$(hp "$LAB_PORT_NGINX")/lab/small:v1" --src-tls-verify=false
pull haproxy "127.0.0.1:$(hp "$LAB_PORT_HAPROXY")/lab/small:v1" --src-tls-verify=false
pull mirror "127.0.0.1:$(hp "$LAB_PORT_MIRROR")/lab/small:v1" --src-tls-verify=false
pull tls "127.0.0.1:$(hp "$LAB_PORT_NGINX_TLS")/lab/small:v1" --src-cert-dir "$WORK/cert-dir"
pull token "127.0.0.1:$(hp "$LAB_PORT_NGINX_TOKEN")/lab/small:v1" --src-tls-verify=false --src-creds "$USER_NAME:$USER_PASS"
hits="$(docker exec "$(container nginx)" grep -c "/v2/lab/small/blobs/$LAYER_DIGEST" /lab/logs/nginx-access.log 2>/dev/null || true)"
check "nginx access log in the volume records the layer GETs (${hits:-0})" test "${hits:-0}" -ge 3

# ---- pullstorm inside the compose network -------------------------------------------------
# The pullstorm service seeds a multi-layer image through nginx:8080 and runs a small herd
# through the same LB by service name; the result lands in ./reports on the host.
if [[ -x "$ROOT/target/release/pullstorm" ]]; then
  check_log "pullstorm seed through the compose nginx" "$WORK/seed.log" timeout 300 \
    "$LAB" compose-pullstorm seed --registry "http://nginx:$LAB_PORT_NGINX" --image lab/big:v1 --layers 64MiB,16MiB
  out="compose-test-$$"
  check_log "pullstorm run (4 x 4 nodes) through the compose nginx" "$WORK/run.log" timeout 600 \
    "$LAB" compose-pullstorm run /scenarios/lab-compose.toml --out "/work/reports/$out" --quiet
  result="$ROOT/reports/$out/result.json"
  if [[ -f "$result" ]]; then
    read -r completed failed others < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["pulls"]["completed"], r["pulls"]["failed"], sum(r["errors"].values()))' "$result")
    check "compose run: 16 pulls completed ($completed), none failed ($failed), no errors ($others)" \
      test "$completed" = 16 -a "$failed" = 0 -a "$others" = 0
    rm -rf "${ROOT:?}/reports/$out"
  else
    not_ok "compose run wrote no result.json at reports/$out"
  fi
else
  not_ok "no target/release/pullstorm: run cargo build --release first (scripts/test.sh does)"
fi

# ---- down ------------------------------------------------------------------------------------
t0=$SECONDS
check_log "lab.sh compose-down --volumes" "$WORK/down.log" timeout 180 "$LAB" compose-down --volumes
echo "       (compose down took $((SECONDS - t0))s)"
STARTED=0
left="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | paste -sd' ')"
check "no container of $PROJECT left${left:+ ($left)}" test -z "$left"
nets="$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" | paste -sd' ')"
check "no network of $PROJECT left" test -z "$nets"
vols="$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | paste -sd' ')"
check "no volume of $PROJECT left" test -z "$vols"
busy=""
for p in "${HOST_PORTS[@]}"; do port_open "$p" && busy+="$p "; done
check "no compose lab port answers after down${busy:+ (open: $busy)}" test -z "$busy"
