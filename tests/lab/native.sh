#!/usr/bin/env bash
# Integration test of the native lab (scripts/lab.sh): up with every variant, /v2/ on each
# endpoint (401 without credentials on the auth variants, 200 with them, the full bearer
# flow with curl), a hand-made OCI image pushed with skopeo through nginx and pulled back
# through nginx, haproxy, the mirror, TLS, Basic and token auth with digests checked, Range
# through the LB, idempotent up, variant added to a running lab, down with no process left.
#
#   tests/lab/native.sh          (root on Debian 12: scripts/lab.sh installs what is missing)
#
# Uses its own state folder and the lab's fixed 127.0.0.1 ports: a lab already running on
# them makes it fail (stop it with scripts/lab.sh down). Every wait is bounded.
# Last line: "N passed, N failed"; exit status 0 only when nothing failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LAB="$ROOT/scripts/lab.sh"
# shellcheck source=lab/ports.env
. "$ROOT/lab/ports.env"

PASS=0 FAIL=0 LAB_STARTED=0
WORK="$(mktemp -d /tmp/pullstorm-lab-native-test.XXXXXX)"
export PULLSTORM_LAB_DIR="$WORK/lab"
export REGISTRY_AUTH_FILE="$WORK/auth.json"   # skopeo: never the user's credentials
USER_NAME=pullstorm USER_PASS=pullstorm-lab

ok() { PASS=$((PASS + 1)); echo "ok     $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "FAILED $*"; }
# check DESCRIPTION COMMAND...: one test, passes when the command succeeds.
check() { local d="$1"; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# check_log DESCRIPTION LOG COMMAND...: like check, the command's output going to LOG.
check_log() { local d="$1" log="$2"; shift 2; if "$@" >"$log" 2>&1; then ok "$d"; else not_ok "$d (output: $log)"; sed 's/^/    /' "$log" | tail -n 20; fi; }
# expect_code DESCRIPTION CODE CURL-ARGS...: curl answers with this HTTP status.
expect_code() {
  local d="$1" want="$2" got; shift 2
  got="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" 2>/dev/null || true)"
  if [[ "$got" == "$want" ]]; then ok "$d ($got)"; else not_ok "$d: HTTP $got, expected $want"; fi
}

# Processes of this test's lab, found independently of scripts/lab.sh: any process whose
# command line or working folder names the test's state folder.
lab_pids() {
  local d pid cwd
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    cwd="$(readlink "$d/cwd" 2>/dev/null || true)"
    if [[ "$cwd" == "$PULLSTORM_LAB_DIR" || "$cwd" == "$PULLSTORM_LAB_DIR"/* ]] ||
       tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF "$PULLSTORM_LAB_DIR/"; then
      echo "$pid"
    fi
  done
}

# shellcheck disable=SC2016 # $0 expands in the child shell
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

ALL_PORTS=()
for v in $(compgen -v LAB_PORT_); do ALL_PORTS+=("${!v}"); done

finish() {
  local rc=$?
  trap - EXIT
  if ((LAB_STARTED)); then timeout 120 "$LAB" down >/dev/null 2>&1 || true; fi
  if ((rc != 0)); then not_ok "the test script stopped early (status $rc)"; fi
  rm -rf "$WORK"
  echo "$PASS passed, $FAIL failed"
  if ((FAIL)); then exit 1; fi
  exit 0
}
trap finish EXIT


busy=""
for p in "${ALL_PORTS[@]}"; do port_open "$p" && busy+="$p "; done
if [[ -n "$busy" ]]; then
  not_ok "lab ports already in use: $busy(is a lab running? scripts/lab.sh down)"
  exit 1
fi

# ---- up -------------------------------------------------------------------------------
t0=$SECONDS
LAB_STARTED=1
if timeout 600 "$LAB" up >"$WORK/up.log" 2>&1; then
  ok "lab.sh up (all variants) in $((SECONDS - t0))s"
else
  not_ok "lab.sh up failed:"; sed 's/^/    /' "$WORK/up.log"; exit 1
fi
check "lab.sh up prints the endpoints" grep -q "nginx LB -> registry .*http://127.0.0.1:$LAB_PORT_NGINX" "$WORK/up.log"
check_log "lab.sh status: every component up" "$WORK/status.log" timeout 60 "$LAB" status
check "status lists 9 components up" test "$(grep -c ' up$' "$WORK/status.log")" -eq 9
# lab.sh up installs what is missing (curl, skopeo, ...) on a fresh Debian machine.
for tool in curl skopeo sha256sum; do command -v "$tool" >/dev/null || { not_ok "'$tool' missing after lab.sh up"; exit 1; }; done

# Nothing of the lab listens on a non-loopback address.
if command -v ss >/dev/null; then
  nonlocal="$(ss -Hltnp 2>/dev/null | awk '{print $4, $6}' | grep -F "$(lab_pids | sed 's/^/pid=/;s/$/,/')" | grep -v '^127\.0\.0\.1:' || true)"
  check "every lab socket listens on 127.0.0.1 only" test -z "$nonlocal"
fi

# ---- /v2/ on every endpoint -------------------------------------------------------------
CA="$PULLSTORM_LAB_DIR/secrets/ca.crt"
expect_code "registry /v2/" 200 "http://127.0.0.1:$LAB_PORT_REGISTRY/v2/"
expect_code "nginx /v2/" 200 "http://127.0.0.1:$LAB_PORT_NGINX/v2/"
expect_code "haproxy /v2/" 200 "http://127.0.0.1:$LAB_PORT_HAPROXY/v2/"
expect_code "mirror /v2/" 200 "http://127.0.0.1:$LAB_PORT_MIRROR/v2/"
expect_code "registry-redis /v2/" 200 "http://127.0.0.1:$LAB_PORT_REGISTRY_REDIS/v2/"
expect_code "nginx -> registry-redis /v2/" 200 "http://127.0.0.1:$LAB_PORT_NGINX_REDIS/v2/"
expect_code "nginx TLS /v2/ (verified with the lab CA)" 200 --cacert "$CA" "https://127.0.0.1:$LAB_PORT_NGINX_TLS/v2/"
expect_code "nginx TLS /v2/ as https://localhost" 200 --cacert "$CA" "https://localhost:$LAB_PORT_NGINX_TLS/v2/"
expect_code "nginx stub_status" 200 "http://127.0.0.1:$LAB_PORT_NGINX_STATUS/"
check "stub_status reports connections" bash -c "curl -fsS --max-time 5 http://127.0.0.1:$LAB_PORT_NGINX_STATUS/ | grep '^Active connections' >/dev/null"
check "registry Prometheus metrics" bash -c "curl -fsS --max-time 5 http://127.0.0.1:$LAB_PORT_REGISTRY_DEBUG/metrics | grep '^registry_' >/dev/null"
expect_code "haproxy stats" 200 "http://127.0.0.1:$LAB_PORT_HAPROXY_STATS/stats"

expect_code "basic: /v2/ without credentials" 401 "http://127.0.0.1:$LAB_PORT_NGINX_BASIC/v2/"
expect_code "basic: /v2/ with a wrong password" 401 -u "$USER_NAME:wrong" "http://127.0.0.1:$LAB_PORT_NGINX_BASIC/v2/"
expect_code "basic: /v2/ with the credentials" 200 -u "$USER_NAME:$USER_PASS" "http://127.0.0.1:$LAB_PORT_NGINX_BASIC/v2/"
expect_code "basic: registry direct with the credentials" 200 -u "$USER_NAME:$USER_PASS" "http://127.0.0.1:$LAB_PORT_REGISTRY_BASIC/v2/"

# Bearer flow by hand: 401 + challenge -> token from the realm -> 200 with the token.
expect_code "token: /v2/ without a token" 401 "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN/v2/"
challenge="$(curl -s -D - -o /dev/null --max-time 10 "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN/v2/" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p')"
realm="$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")"
service="$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")"
check "token: challenge is Bearer with the realm on the LB" test "$realm" = "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN/service/token"
check "token: service is pullstorm-lab" test "$service" = pullstorm-lab
expect_code "token: issuer refuses a wrong password" 401 -u "$USER_NAME:wrong" "$realm?service=$service&scope=repository:lab/small:pull"
token="$(curl -fsS --max-time 10 -u "$USER_NAME:$USER_PASS" "$realm?service=$service&scope=repository:lab/small:pull" \
  | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' || true)"
check "token: issuer gives a JWT for the credentials" test "$(tr -cd . <<<"$token" | wc -c)" -eq 2
expect_code "token: /v2/ with the token" 200 -H "Authorization: Bearer $token" "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN/v2/"
anon="$(curl -fsS --max-time 10 "$realm?service=$service&scope=repository:lab/small:pull" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' || true)"
expect_code "token: anonymous token grants no pull" 401 -H "Authorization: Bearer $anon" "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN/v2/lab/small/tags/list"
post_code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
  --data "grant_type=password&username=$USER_NAME&password=$USER_PASS&service=$service&scope=repository:lab/small:pull&client_id=test" "$realm" || true)"
check "token: OAuth2 password grant (POST, containerd style) ($post_code)" test "$post_code" = 200

# ---- push a hand-made OCI image, pull it back everywhere ---------------------------------
eval "$("$ROOT/lab/oci-sample.sh" "$WORK/oci" --size 2048 --seed "native $$ $RANDOM")"
: "${MANIFEST_DIGEST:?}" "${LAYER_DIGEST:?}" "${LAYER_SIZE:?}"
SK=(timeout 120 skopeo --insecure-policy)

t0=$SECONDS
check "skopeo push through nginx" "${SK[@]}" copy -q --preserve-digests --dest-tls-verify=false \
  "oci:$WORK/oci:v1" "docker://127.0.0.1:$LAB_PORT_NGINX/lab/small:v1"
echo "       (push took $((SECONDS - t0))s)"

# pulled DESC DIR: the dir: copy holds the pushed manifest and a layer with its digest.
pulled() {
  local d="$1" out="$2" m l
  m="sha256:$(sha256sum "$out/manifest.json" 2>/dev/null | cut -d' ' -f1)"
  l="sha256:$(sha256sum "$out/${LAYER_DIGEST#sha256:}" 2>/dev/null | cut -d' ' -f1)"
  check "$d: manifest digest matches" test "$m" = "$MANIFEST_DIGEST"
  check "$d: layer digest matches" test "$l" = "$LAYER_DIGEST"
}
pull() {
  local name="$1" src="$2"; shift 2
  if "${SK[@]}" copy -q "$@" "docker://$src" "dir:$WORK/pull-$name"; then
    ok "skopeo pull through $name"
    pulled "$name" "$WORK/pull-$name"
  else
    not_ok "skopeo pull through $name"
  fi
}
pull nginx "127.0.0.1:$LAB_PORT_NGINX/lab/small:v1" --src-tls-verify=false
pull haproxy "127.0.0.1:$LAB_PORT_HAPROXY/lab/small:v1" --src-tls-verify=false
pull mirror "127.0.0.1:$LAB_PORT_MIRROR/lab/small:v1" --src-tls-verify=false
pull tls "127.0.0.1:$LAB_PORT_NGINX_TLS/lab/small:v1" --src-cert-dir "$PULLSTORM_LAB_DIR/secrets/cert-dir"
pull basic "127.0.0.1:$LAB_PORT_NGINX_BASIC/lab/small:v1" --src-tls-verify=false --src-creds "$USER_NAME:$USER_PASS"
pull token "127.0.0.1:$LAB_PORT_NGINX_TOKEN/lab/small:v1" --src-tls-verify=false --src-creds "$USER_NAME:$USER_PASS"
check "basic: pull without credentials is refused" bash -c "! ${SK[*]} copy -q --src-tls-verify=false docker://127.0.0.1:$LAB_PORT_NGINX_BASIC/lab/small:v1 dir:$WORK/pull-denied 2>/dev/null"
check "mirror stored the layer it proxied" test -n "$(find "$PULLSTORM_LAB_DIR/data/mirror" -path "*blobs/sha256/*/${LAYER_DIGEST#sha256:}/data" 2>/dev/null)"

# Redis variant: push through its LB, pull back, and the descriptors are in Redis.
check "skopeo push through nginx -> registry-redis" "${SK[@]}" copy -q --preserve-digests --dest-tls-verify=false \
  "oci:$WORK/oci:v1" "docker://127.0.0.1:$LAB_PORT_NGINX_REDIS/lab/small:v1"
pull redis "127.0.0.1:$LAB_PORT_NGINX_REDIS/lab/small:v1" --src-tls-verify=false
# shellcheck disable=SC2016 # expanded by the child shell
keys="$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; printf "DBSIZE\r\n" >&3; IFS= read -r l <&3; echo "${l//[^0-9]/}"' "$LAB_PORT_REDIS" || true)"
check "redis holds blob descriptors (DBSIZE ${keys:-?})" test "${keys:-0}" -gt 0

# What a resuming client does: Range through the LB gives 206 and the right bytes.
hdrs="$(curl -s --max-time 10 -D - -o "$WORK/range.bin" -H 'Range: bytes=100-1123' \
  "http://127.0.0.1:$LAB_PORT_NGINX/v2/lab/small/blobs/$LAYER_DIGEST" | tr -d '\r')"
check "Range through nginx: 206" grep -q '^HTTP/1.1 206' <<<"$hdrs"
check "Range through nginx: Content-Range" grep -qi "^content-range: bytes 100-1123/$LAYER_SIZE" <<<"$hdrs"
check "Range through nginx: the 1024 bytes asked" cmp -s "$WORK/range.bin" <(tail -c +101 "$WORK/pull-nginx/${LAYER_DIGEST#sha256:}" | head -c 1024)
check "nginx access log records the Range header" grep -q 'range="bytes=100-1123"' "$PULLSTORM_LAB_DIR/logs/nginx-access.log"
check "nginx access log records Accept on manifests" grep -q '"GET /v2/lab/small/manifests/.*accept="[^"]*application/vnd' "$PULLSTORM_LAB_DIR/logs/nginx-access.log"
digest_hdr="$(curl -s --max-time 10 -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$LAB_PORT_NGINX/v2/lab/small/manifests/v1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
check "HEAD manifest through nginx: Docker-Content-Digest" test "$digest_hdr" = "$MANIFEST_DIGEST"

# ---- a fault knob: the seed-001 cut (short proxy_read_timeout + a frozen registry) ---------
# A file in conf/nginx/override.d/ plus SIGHUP; the registry frozen with SIGSTOP mid-body.
big="$("$ROOT/lab/oci-sample.sh" "$WORK/oci-big" --size 32768 --seed "big $$")"
BIG_LAYER="$(sed -n 's/^LAYER_DIGEST=//p' <<<"$big")"
BIG_SIZE="$(sed -n 's/^LAYER_SIZE=//p' <<<"$big")"
check "skopeo push of a 32 MiB layer through nginx" "${SK[@]}" copy -q --preserve-digests --dest-tls-verify=false \
  "oci:$WORK/oci-big:v1" "docker://127.0.0.1:$LAB_PORT_NGINX/lab/big:v1"
NGINX_PID="$(cat "$PULLSTORM_LAB_DIR/run/nginx.pid")"
REGISTRY_PID="$(cat "$PULLSTORM_LAB_DIR/run/registry.pid")"
echo 'proxy_read_timeout 2s;' >"$PULLSTORM_LAB_DIR/conf/nginx/override.d/test-seed001.conf"
kill -HUP "$NGINX_PID"; sleep 1
curl -s --max-time 30 --limit-rate 4M -o /dev/null -w '%{size_download}' \
  "http://127.0.0.1:$LAB_PORT_NGINX/v2/lab/big/blobs/$BIG_LAYER" >"$WORK/cut.out" 2>/dev/null &
curl_pid=$!
sleep 1
kill -STOP "$REGISTRY_PID"
curl_rc=0; wait "$curl_pid" || curl_rc=$?
kill -CONT "$REGISTRY_PID"
rm -f "$PULLSTORM_LAB_DIR/conf/nginx/override.d/test-seed001.conf"; kill -HUP "$NGINX_PID"; sleep 1
check "seed-001 knob: the client sees a short body (curl exit $curl_rc = 18)" test "$curl_rc" = 18
check "seed-001 knob: $(cat "$WORK/cut.out" 2>/dev/null) of $BIG_SIZE bytes arrived" test "$(cat "$WORK/cut.out" 2>/dev/null || echo 0)" -lt "$BIG_SIZE"
check "seed-001 knob: nginx logged 'upstream timed out ... while reading upstream'" \
  grep -q 'upstream timed out .* while reading upstream' "$PULLSTORM_LAB_DIR/logs/nginx-error.log"
expect_code "seed-001 knob removed: the whole layer comes through again" 200 "http://127.0.0.1:$LAB_PORT_NGINX/v2/lab/big/blobs/$BIG_LAYER"

# ---- env, idempotent up, adding a variant ---------------------------------------------------
check "lab.sh env exports the nginx URL" bash -c "'$LAB' env | grep -qx 'export PULLSTORM_LAB_NGINX=http://127.0.0.1:$LAB_PORT_NGINX'"
check "lab.sh env exports the registry pid" bash -c "'$LAB' env | grep -q '^export PULLSTORM_LAB_REGISTRY_PID=[0-9]'"
before="$(cat "$PULLSTORM_LAB_DIR"/run/*.pid | sort | paste -sd,)"
t0=$SECONDS
check_log "second lab.sh up is harmless" "$WORK/up2.log" timeout 120 "$LAB" up
after="$(cat "$PULLSTORM_LAB_DIR"/run/*.pid | sort | paste -sd,)"
check "second up kept every process (took $((SECONDS - t0))s)" test "$before" = "$after"

# ---- down ---------------------------------------------------------------------------------
t0=$SECONDS
check_log "lab.sh down" "$WORK/down.log" timeout 120 "$LAB" down
echo "       (down took $((SECONDS - t0))s)"
LAB_STARTED=0
left="$(lab_pids | paste -sd' ')"
check "no lab process left after down${left:+ (left: $left)}" test -z "$left"
busy=""
for p in "${ALL_PORTS[@]}"; do port_open "$p" && busy+="$p "; done
check "no lab port answers after down${busy:+ (open: $busy)}" test -z "$busy"
check_log "status after down: nothing expected, exit 0" "$WORK/status2.log" timeout 60 "$LAB" status

# ---- variants one by one: default, then tls added to the running nginx --------------------
LAB_STARTED=1
check_log "lab.sh up --variant default" "$WORK/up3.log" timeout 120 "$LAB" up --variant default
check "default variant: no TLS port yet" bash -c "! timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$LAB_PORT_NGINX_TLS' 2>/dev/null"
check "default variant: no basic-auth registry" test ! -s "$PULLSTORM_LAB_DIR/run/registry-basic.pid"
nginx_pid="$(cat "$PULLSTORM_LAB_DIR/run/nginx.pid")"
check_log "lab.sh up --variant tls on a running lab" "$WORK/up4.log" timeout 120 "$LAB" up --variant tls
expect_code "tls added: nginx TLS answers" 200 --cacert "$CA" "https://127.0.0.1:$LAB_PORT_NGINX_TLS/v2/"
check "tls added: same nginx master (reloaded, not restarted)" test "$(cat "$PULLSTORM_LAB_DIR/run/nginx.pid")" = "$nginx_pid"
expect_code "tls added: plain LB still serves the image" 200 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$LAB_PORT_NGINX/v2/lab/small/manifests/v1"
check_log "lab.sh down (second time)" "$WORK/down2.log" timeout 120 "$LAB" down
LAB_STARTED=0
left="$(lab_pids | paste -sd' ')"
check "no lab process left at the end${left:+ (left: $left)}" test -z "$left"
