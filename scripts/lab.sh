#!/usr/bin/env bash
# The pullstorm lab: a Harbor-like registry topology on this machine, in one command.
#
#   scripts/lab.sh up [--variant NAME ...] [--no-install]   start (all variants by default)
#   scripts/lab.sh down                                     stop everything the lab started
#   scripts/lab.sh status                                   components, pids, ports, up/down
#   scripts/lab.sh restart COMPONENT...                     restart with the current env knobs
#   scripts/lab.sh env [--compose] [--creds]                shell exports of the endpoints
#   scripts/lab.sh compose-up [--no-wait]                   the same lab with docker compose
#   scripts/lab.sh compose-down [--volumes]                 stop it, remove its containers
#   scripts/lab.sh compose-status                           its containers
#   scripts/lab.sh compose-pullstorm [ARGS...]              run target/release/pullstorm in it
#
# Variants: default (registry + nginx + haproxy + mirror), redis (registry with the Redis
# blob-descriptor cache), basic (htpasswd), token (bearer tokens), tls (nginx over TLS);
# "up" starts those five. faults (fault LBs for the seeds: nginx :8085-8087/:8089 and
# docker-proxy :8088 under nofile 1024) starts only when asked: up --variant faults; so does
# s3 (registry-s3 :5040 on object storage, moto's S3 server :9000; blob GETs redirected).
# Every daemon listens on 127.0.0.1 only; state, logs and pids live in ONE folder,
# ${PULLSTORM_LAB_DIR:-/tmp/pullstorm-lab}. Ports: lab/ports.env; docs: docs/lab.md.
#
# Environment: PULLSTORM_LAB_DIR (state folder), PULLSTORM_LAB_TIMEOUT (seconds to wait
# for each component, default 20), PULLSTORM_LAB_NO_INSTALL=1 (never run apt-get),
# PULLSTORM_LAB_COMPOSE_PROJECT (default pullstorm-lab).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB_CFG="$ROOT/lab"
LAB_DIR="${PULLSTORM_LAB_DIR:-/tmp/pullstorm-lab}"
TIMEOUT="${PULLSTORM_LAB_TIMEOUT:-20}"
PROJECT="${PULLSTORM_LAB_COMPOSE_PROJECT:-pullstorm-lab}"
COMPOSE_FILE="$ROOT/docker-compose.yml"
USERNAME="pullstorm"
PASSWORD="pullstorm-lab"
COMPOSE_PORT_OFFSET=10000

# shellcheck source=lab/ports.env
. "$LAB_CFG/ports.env"

ALL_VARIANTS=(default redis basic token tls)
# Started only on request (up --variant faults): deliberately broken LBs.
EXTRA_VARIANTS=(faults s3)
# Start order; "down" goes the other way.
ORDER=(redis token registry registry-redis registry-basic registry-token nginx haproxy mirror herd-proxy s3 registry-s3)
NATIVE_PACKAGES=(docker-registry nginx-light redis-server haproxy skopeo apache2-utils openssl
                 curl ca-certificates python3 python3-cryptography iproute2 procps util-linux)
# Distro services of those packages: never left running on the lab's ports.
DISTRO_SERVICES=(docker-registry nginx redis-server haproxy)

say() { echo "lab: $*"; }
warn() { echo "lab: warning: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------
# The topology

variant_components() {
  case "$1" in
    default) echo "registry nginx haproxy mirror" ;;
    redis) echo "redis registry-redis nginx" ;;
    basic) echo "registry-basic nginx" ;;
    token) echo "token registry-token nginx" ;;
    tls) echo "registry nginx" ;;
    faults) echo "registry nginx herd-proxy" ;;   # with default (cmd_up adds it)
    s3) echo "s3 registry-s3" ;;                  # no LB: clients follow the redirects themselves
    *) return 1 ;;
  esac
}

# The ports a component listens on, given the nginx sites enabled ($SITES).
component_ports() {
  case "$1" in
    registry) echo "$LAB_PORT_REGISTRY $LAB_PORT_REGISTRY_DEBUG" ;;
    registry-redis) echo "$LAB_PORT_REGISTRY_REDIS $LAB_PORT_REGISTRY_REDIS_DEBUG" ;;
    registry-basic) echo "$LAB_PORT_REGISTRY_BASIC $LAB_PORT_REGISTRY_BASIC_DEBUG" ;;
    registry-token) echo "$LAB_PORT_REGISTRY_TOKEN $LAB_PORT_REGISTRY_TOKEN_DEBUG" ;;
    mirror) echo "$LAB_PORT_MIRROR $LAB_PORT_MIRROR_DEBUG" ;;
    token) echo "$LAB_PORT_TOKEN" ;;
    redis) echo "$LAB_PORT_REDIS" ;;
    haproxy) echo "$LAB_PORT_HAPROXY $LAB_PORT_HAPROXY_STATS" ;;
    herd-proxy) echo "$LAB_PORT_HERD_PROXY" ;;
    s3) echo "$LAB_PORT_S3" ;;
    registry-s3) echo "$LAB_PORT_REGISTRY_S3 $LAB_PORT_REGISTRY_S3_DEBUG" ;;
    nginx)
      local p="$LAB_PORT_NGINX_STATUS" s
      for s in ${SITES:-}; do p="$p $(site_port "$s")"; done
      echo "$p" ;;
  esac
}

site_port() {
  case "$1" in
    default) echo "$LAB_PORT_NGINX" ;;
    redis) echo "$LAB_PORT_NGINX_REDIS" ;;
    basic) echo "$LAB_PORT_NGINX_BASIC" ;;
    token) echo "$LAB_PORT_NGINX_TOKEN" ;;
    tls) echo "$LAB_PORT_NGINX_TLS" ;;
    faults) echo "$LAB_PORT_NGINX_RESET $LAB_PORT_NGINX_SEED001 $LAB_PORT_NGINX_NORANGE $LAB_PORT_NGINX_SEED001_UPSTREAM" ;;
  esac
}

# Executables a component's processes may run (identity check of a pid).
component_exes() {
  case "$1" in
    registry*|mirror) echo "docker-registry" ;;
    redis) echo "redis-server redis-check-rdb redis-check-aof" ;;
    token|s3) echo "python3 python3.11 python3.12 python3.13" ;;
    nginx) echo "nginx" ;;
    haproxy) echo "haproxy" ;;
    herd-proxy) echo "docker-proxy" ;;
  esac
}

# ---------------------------------------------------------------------------------------
# Processes

pidfile() { echo "$LAB_DIR/run/$1.pid"; }

# is_lab_process PID [COMPONENT]: the pid is alive (not a zombie) and is one of this lab's
# daemons: a known executable whose cwd is in $LAB_DIR or whose command line names it.
is_lab_process() {
  local pid="$1" comp="${2:-}" exe cwd cmd state exes
  [[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  exe="${exe##*/}"
  if [[ -n "$comp" ]]; then exes="$(component_exes "$comp")"; else
    exes="docker-registry redis-server redis-check-rdb redis-check-aof python3 python3.11 python3.12 python3.13 nginx haproxy docker-proxy"
  fi
  [[ " $exes " == *" $exe "* ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$exe" == python3* ]]; then [[ "$cmd" == *token-issuer.py* || "$cmd" == *s3/storage.py* ]] || return 1; fi
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
  [[ "$cwd" == "$LAB_DIR" || "$cwd" == "$LAB_DIR"/* || "$cmd" == *"$LAB_DIR/"* ]]
}

# Pid of a running component, or nothing (a stale pid file is removed).
component_pid() {
  local f pid
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if is_lab_process "$pid" "$1"; then echo "$pid"; else rm -f "$f"; fi
}

# Every process of this lab (including nginx workers), whether or not a pid file names it.
lab_processes() {
  local d pid
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    if is_lab_process "$pid"; then echo "$pid"; fi
  done
}

# shellcheck disable=SC2016 # $0 expands in the child shell
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

port_owner() {
  if command -v ss >/dev/null; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
  fi
}

# wait_gone PID SECONDS: true once the pid is gone (or a zombie).
wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2)) state
  while ((SECONDS < deadline)); do
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ -z "$state" || "$state" == Z || "$state" == X ]] && return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local pid="$1" what="$2"
  kill -TERM "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true   # a daemon frozen by a fault test (SIGSTOP) must see it
  if ! wait_gone "$pid" 10; then
    warn "$what (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || warn "$what (pid $pid) is still there after SIGKILL"
  fi
}

# ---------------------------------------------------------------------------------------
# Readiness probes (each bounded by curl's --max-time)

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" 2>/dev/null || true; }

# shellcheck disable=SC2016 # $0 and $l expand in the child shell
redis_ping() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && [[ "$l" == +PONG* ]]' "$1" 2>/dev/null
}

# probe COMPONENT: true when the component answers as it should.
probe() {
  local c="$1" s code p
  case "$c" in
    registry) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY/v2/")" == 200 ]] &&
              [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY_DEBUG/metrics")" == 200 ]] ;;
    registry-redis) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY_REDIS/v2/")" == 200 ]] ;;
    registry-basic) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY_BASIC/v2/")" == 401 ]] ;;
    registry-token) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY_TOKEN/v2/")" == 401 ]] ;;
    mirror) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_MIRROR/v2/")" == 200 ]] ;;
    token) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_TOKEN/healthz")" == 200 ]] ;;
    redis) redis_ping "$LAB_PORT_REDIS" ;;
    haproxy) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_HAPROXY_STATS/stats")" == 200 ]] &&
             [[ "$(http_code "http://127.0.0.1:$LAB_PORT_HAPROXY/v2/")" != 000 ]] ;;
    herd-proxy) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_HERD_PROXY/v2/")" != 000 ]] ;;
    s3) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_S3/${LAB_S3_BUCKET:-pullstorm-lab}")" == 200 ]] ;;
    registry-s3) [[ "$(http_code "http://127.0.0.1:$LAB_PORT_REGISTRY_S3/v2/")" == 401 ]] ;;
    nginx)
      [[ "$(http_code "http://127.0.0.1:$LAB_PORT_NGINX_STATUS/")" == 200 ]] || return 1
      for s in $SITES; do
        if [[ "$s" == tls ]]; then
          code="$(http_code --cacert "$LAB_DIR/secrets/ca.crt" "https://127.0.0.1:$LAB_PORT_NGINX_TLS/v2/")"
          [[ "$code" != 000 ]] || return 1
        else
          for p in $(site_port "$s"); do
            code="$(http_code "http://127.0.0.1:$p/v2/")"
            [[ "$code" != 000 ]] || return 1
          done
        fi
      done ;;
  esac
}

wait_ready() {
  local c="$1" pid="$2" deadline=$((SECONDS + TIMEOUT))
  local state
  while ((SECONDS < deadline)); do
    # Alive is enough here: until run-component.sh has exec'd it, the pid is still a shell.
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    if [[ -z "$state" || "$state" == Z || "$state" == X ]]; then
      echo "---- last lines of $LAB_DIR/logs/$c.log" >&2
      tail -n 20 "$LAB_DIR/logs/$c.log" >&2 || true
      die "$c exited during start-up (log above)"
    fi
    if probe "$c"; then return 0; fi
    sleep 0.1
  done
  echo "---- last lines of $LAB_DIR/logs/$c.log" >&2
  tail -n 20 "$LAB_DIR/logs/$c.log" >&2 || true
  die "$c (pid $pid) did not answer within ${TIMEOUT}s (log above); 'scripts/lab.sh down' stops the rest"
}

# ---------------------------------------------------------------------------------------
# Packages

pkg_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }

ensure_packages() {
  local missing=() p
  command -v dpkg-query >/dev/null || die "not a Debian system: install ${NATIVE_PACKAGES[*]} by hand, then rerun with PULLSTORM_LAB_NO_INSTALL=1"
  for p in "${NATIVE_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  if [[ "${PULLSTORM_LAB_NO_INSTALL:-0}" == 1 ]]; then
    warn "missing packages (PULLSTORM_LAB_NO_INSTALL=1, not installing): ${missing[*]}"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "missing packages: ${missing[*]}; run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  say "installing: ${missing[*]}"
  # No distro service may start on install (it would take the lab's ports): a temporary
  # policy-rc.d unless the machine already has one.
  local guard=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# pullstorm lab: temporary, removed after apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  local rc=0
  {
    apt-get update -q >"$LAB_DIR/logs/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LAB_DIR/logs/apt.log" 2>&1
  } || rc=$?
  ((guard)) && rm -f /usr/sbin/policy-rc.d
  if ((rc)); then tail -n 20 "$LAB_DIR/logs/apt.log" >&2; die "apt-get failed (full log: $LAB_DIR/logs/apt.log)"; fi
  # On a systemd machine the units are enabled by the packages: disable the ones just
  # installed so they do not grab 5000/80/6379 at the next boot, and stop any that runs.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    local svc pkg
    for svc in "${DISTRO_SERVICES[@]}"; do
      case "$svc" in nginx) pkg=nginx-light ;; *) pkg="$svc" ;; esac
      [[ " ${missing[*]} " == *" $pkg "* ]] || continue
      if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
        say "disabling the distro service $svc (the lab runs its own instances)"
        systemctl disable --now "$svc" >/dev/null 2>&1 || warn "could not disable $svc"
      fi
    done
  fi
}

# ---------------------------------------------------------------------------------------
# up / down / status / env

lock() {
  mkdir -p "$LAB_DIR"
  exec 9>"$LAB_DIR/.lock"
  flock -w 60 9 || die "another scripts/lab.sh holds $LAB_DIR/.lock"
}

native_env() {
  export LAB_STATE="$LAB_DIR" LAB_CONFIG="$LAB_CFG" LAB_BIND=127.0.0.1 LAB_NGINX_SITES="$SITES"
  export LAB_USERNAME="$USERNAME" LAB_PASSWORD="$PASSWORD"
}

check_ports_free() {
  local c="$1" p owner
  for p in $(component_ports "$c"); do
    if port_open "$p"; then
      owner="$(port_owner "$p")"
      die "port 127.0.0.1:$p (for $c) is already in use${owner:+ by $owner}; stop that process (a distro service? e.g. systemctl stop docker-registry nginx redis-server haproxy) or change lab/ports.env"
    fi
  done
}

start_component() {
  local c="$1" pid
  pid="$(component_pid "$c")"
  if [[ -n "$pid" ]]; then
    if [[ "$c" == nginx ]]; then reload_nginx "$pid"; fi
    wait_ready "$c" "$pid"
    say "$c already up (pid $pid)"
    return 0
  fi
  check_ports_free "$c"
  : >>"$LAB_DIR/logs/$c.log"
  # setsid: out of the caller's session (Ctrl-C, CI job control); nohup: no SIGHUP; the fd of
  # the lock is closed so the daemons do not hold it. run-component.sh execs the daemon, so
  # $! is the daemon's own pid.
  setsid nohup bash "$LAB_CFG/run-component.sh" "$c" >>"$LAB_DIR/logs/$c.log" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$(pidfile "$c")"
  wait_ready "$c" "$pid"
  say "$c up (pid $pid, ports $(component_ports "$c" | tr ' ' ','))"
}

# nginx is shared by every variant: re-render its config with the current sites and reload
# it when they changed.
reload_nginx() {
  local pid="$1" before after s p
  for s in $SITES; do
    [[ -f "$LAB_DIR/conf/nginx/sites/$s.conf" ]] && continue
    for p in $(site_port "$s"); do
      if port_open "$p"; then
        die "port 127.0.0.1:$p (nginx site $s) is already in use by $(port_owner "$p")"
      fi
    done
  done
  before="$(cat "$LAB_DIR/conf/nginx/sites/"*.conf "$LAB_DIR/conf/nginx/nginx.conf" 2>/dev/null | sha256sum)"
  bash "$LAB_CFG/run-component.sh" --render nginx 9>&- || die "nginx config does not pass nginx -t"
  after="$(cat "$LAB_DIR/conf/nginx/sites/"*.conf "$LAB_DIR/conf/nginx/nginx.conf" 2>/dev/null | sha256sum)"
  if [[ "$before" != "$after" ]]; then
    say "nginx: config changed (sites: $SITES): reloading (SIGHUP to pid $pid)"
    kill -HUP "$pid"
    sleep 0.3
  fi
}

read_variants() { if [[ -s "$LAB_DIR/variants" ]]; then paste -sd' ' "$LAB_DIR/variants"; fi; }

cmd_up() {
  local want=() v c install=1
  while (($#)); do
    case "$1" in
      --variant|-v)
        [[ $# -ge 2 ]] || die "--variant needs a name (${ALL_VARIANTS[*]})"
        for v in ${2//,/ }; do
          variant_components "$v" >/dev/null || die "unknown variant '$v' (${ALL_VARIANTS[*]} ${EXTRA_VARIANTS[*]})"
          want+=("$v")
        done
        shift ;;
      --no-install) install=0 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
    shift
  done
  ((${#want[@]})) || want=("${ALL_VARIANTS[@]}")
  # The fault LBs build on the default variant (herd-proxy forwards to nginx :8080).
  if [[ " ${want[*]} " == *" faults "* && " ${want[*]} " != *" default "* ]]; then want=(default "${want[@]}"); fi

  lock
  mkdir -p "$LAB_DIR"/{conf,data,logs,run}
  LAB_DIR="$(cd "$LAB_DIR" && pwd -P)"
  ((install)) && ensure_packages
  local tool
  for tool in docker-registry nginx redis-server haproxy curl openssl htpasswd python3 setsid flock timeout; do
    command -v "$tool" >/dev/null || die "'$tool' not found (packages: ${NATIVE_PACKAGES[*]})"
  done
  if [[ " ${want[*]} " == *" s3 "* ]] && ! python3 -c 'import moto.moto_server.threaded_moto_server' >/dev/null 2>&1; then
    die "variant s3 needs moto's S3 server (PyPI moto[server]) for $(command -v python3): run scripts/test-deps.sh"
  fi

  # Variants already up stay up: nginx keeps their sites.
  local variants=() running=0
  for c in "${ORDER[@]}"; do [[ -n "$(component_pid "$c")" ]] && running=1; done
  if ((running)); then read -ra variants <<<"$(read_variants)"; fi
  for v in "${want[@]}"; do [[ " ${variants[*]} " == *" $v "* ]] || variants+=("$v"); done
  SITES="${variants[*]}"

  native_env
  bash "$LAB_CFG/gen-secrets.sh" >/dev/null 9>&-

  local needed=" "
  for v in "${want[@]}"; do for c in $(variant_components "$v"); do needed+="$c "; done; done
  # Fail before starting anything when a port is taken.
  for c in "${ORDER[@]}"; do
    if [[ "$needed" == *" $c "* && -z "$(component_pid "$c")" ]]; then check_ports_free "$c"; fi
  done
  printf '%s\n' "${variants[@]}" >"$LAB_DIR/variants"
  local t0=$SECONDS
  for c in "${ORDER[@]}"; do
    if [[ "$needed" == *" $c "* ]]; then start_component "$c"; fi
  done
  say "lab up in $((SECONDS - t0))s: variants ${SITES}; state in $LAB_DIR"
  print_endpoints
}

print_endpoints() {
  local v vs=" $SITES "
  echo
  echo "Endpoints (all on 127.0.0.1):"
  if [[ "$vs" == *" default "* || "$vs" == *" tls "* ]]; then
    printf '  %-28s %s\n' "registry" "http://127.0.0.1:$LAB_PORT_REGISTRY  (metrics http://127.0.0.1:$LAB_PORT_REGISTRY_DEBUG/metrics)"
  fi
  if [[ "$vs" == *" default "* ]]; then
    printf '  %-28s %s\n' "nginx LB -> registry" "http://127.0.0.1:$LAB_PORT_NGINX" \
      "haproxy LB -> registry" "http://127.0.0.1:$LAB_PORT_HAPROXY  (stats http://127.0.0.1:$LAB_PORT_HAPROXY_STATS/stats)" \
      "mirror (pull-through)" "http://127.0.0.1:$LAB_PORT_MIRROR  (remote: nginx :$LAB_PORT_NGINX)"
  fi
  printf '  %-28s %s\n' "nginx stub_status" "http://127.0.0.1:$LAB_PORT_NGINX_STATUS/"
  if [[ "$vs" == *" tls "* ]]; then
    printf '  %-28s %s\n' "nginx TLS -> registry" "https://127.0.0.1:$LAB_PORT_NGINX_TLS  (CA $LAB_DIR/secrets/ca.crt)"
  fi
  if [[ "$vs" == *" redis "* ]]; then
    printf '  %-28s %s\n' "nginx LB -> registry-redis" "http://127.0.0.1:$LAB_PORT_NGINX_REDIS  (direct :$LAB_PORT_REGISTRY_REDIS, redis :$LAB_PORT_REDIS)"
  fi
  if [[ "$vs" == *" basic "* ]]; then
    printf '  %-28s %s\n' "nginx LB -> registry-basic" "http://127.0.0.1:$LAB_PORT_NGINX_BASIC  (Basic auth; direct :$LAB_PORT_REGISTRY_BASIC)"
  fi
  if [[ "$vs" == *" token "* ]]; then
    printf '  %-28s %s\n' "nginx LB -> registry-token" "http://127.0.0.1:$LAB_PORT_NGINX_TOKEN  (Bearer; realm /service/token; issuer :$LAB_PORT_TOKEN)"
  fi
  if [[ "$vs" == *" faults "* ]]; then
    printf '  %-28s %s\n' "fault LB: RST, slow readers" "http://127.0.0.1:$LAB_PORT_NGINX_RESET  (send_timeout ${LAB_FAULT_SEND_TIMEOUT:-1s} + reset_timedout_connection)" \
      "fault LB: Range dropped" "http://127.0.0.1:$LAB_PORT_NGINX_NORANGE" \
      "seed-001 LB (big layer cut)" "http://127.0.0.1:$LAB_PORT_NGINX_SEED001  (-> Harbor-like hop :$LAB_PORT_NGINX_SEED001_UPSTREAM)" \
      "seed-000 docker-proxy" "http://127.0.0.1:$LAB_PORT_HERD_PROXY  (nofile ${LAB_HERD_NOFILE:-1024} -> nginx :$LAB_PORT_NGINX)"
  fi
  if [[ "$vs" == *" s3 "* ]]; then
    printf '  %-28s %s\n' "registry-s3 (object storage)" "http://127.0.0.1:$LAB_PORT_REGISTRY_S3  (Basic auth; blobs 307 -> S3 http://127.0.0.1:$LAB_PORT_S3/${LAB_S3_BUCKET:-pullstorm-lab})"
  fi
  if [[ "$vs" == *" basic "* || "$vs" == *" token "* || "$vs" == *" s3 "* ]]; then
    echo "  credentials: user '$USERNAME', password not shown (eval \"\$(scripts/lab.sh env --creds)\" exports PULLSTORM_USERNAME/PULLSTORM_PASSWORD)"
  fi
  echo "  logs: $LAB_DIR/logs/   pids: $LAB_DIR/run/   exports: eval \"\$(scripts/lab.sh env)\""
}

cmd_down() {
  [[ $# -eq 0 ]] || die "down takes no argument"
  if [[ ! -d "$LAB_DIR" ]]; then say "nothing to stop ($LAB_DIR does not exist)"; return 0; fi
  lock
  LAB_DIR="$(cd "$LAB_DIR" && pwd -P)"
  local i c pid stopped=0
  for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
    c="${ORDER[i]}"
    pid="$(component_pid "$c")"
    if [[ -n "$pid" ]]; then
      stop_pid "$pid" "$c"
      say "$c stopped (pid $pid)"
      stopped=$((stopped + 1))
    fi
    rm -f "$(pidfile "$c")"
  done
  # Anything of ours still alive (a worker, a daemon whose pid file was lost): stop it too.
  local left
  left="$(lab_processes)"
  if [[ -n "$left" ]]; then
    warn "processes of the lab without a pid file: $(echo "$left" | tr '\n' ' ')- stopping them"
    for pid in $left; do stop_pid "$pid" "pid $pid"; done
    left="$(lab_processes)"
    [[ -z "$left" ]] || die "lab processes still running: $(echo "$left" | tr '\n' ' ')"
  fi
  rm -f "$LAB_DIR/variants"
  local p busy=""
  for c in "${ORDER[@]}"; do
    SITES="default redis basic token tls faults"
    for p in $(component_ports "$c"); do port_open "$p" && busy+="$p "; done
  done
  [[ -z "$busy" ]] || warn "ports still answering after down (not the lab's processes?): $busy"
  say "lab down: $stopped component(s) stopped, no lab process left (data kept in $LAB_DIR; rm -rf it to start afresh)"
}

# Restart components of a running lab with the current environment: the way to apply a knob
# that needs a new process (LAB_NOFILE=1024, LAB_HAPROXY_TIMEOUT_SERVER=3s, ...).
cmd_restart() {
  (($#)) || die "restart needs component names (${ORDER[*]})"
  local c pid
  for c in "$@"; do [[ " ${ORDER[*]} " == *" $c "* ]] || die "unknown component '$c' (${ORDER[*]})"; done
  [[ -d "$LAB_DIR" ]] || die "no lab in $LAB_DIR: scripts/lab.sh up first"
  lock
  LAB_DIR="$(cd "$LAB_DIR" && pwd -P)"
  SITES="$(read_variants)"
  [[ -n "$SITES" ]] || die "no lab is up in $LAB_DIR: scripts/lab.sh up first"
  native_env
  for c in "$@"; do
    pid="$(component_pid "$c")"
    if [[ -n "$pid" ]]; then stop_pid "$pid" "$c"; say "$c stopped (pid $pid)"; fi
    rm -f "$(pidfile "$c")"
    start_component "$c"
  done
}

cmd_status() {
  [[ $# -eq 0 ]] || die "status takes no argument"
  if [[ -d "$LAB_DIR" ]]; then LAB_DIR="$(cd "$LAB_DIR" && pwd -P)"; fi
  SITES="$(read_variants)"
  local c pid state expected=" " v bad=0
  for v in $SITES; do for c in $(variant_components "$v"); do expected+="$c "; done; done
  printf '%-15s %-8s %-32s %s\n' COMPONENT PID PORTS STATE
  for c in "${ORDER[@]}"; do
    pid=""
    if [[ -d "$LAB_DIR/run" ]]; then pid="$(component_pid "$c")"; fi
    if [[ -n "$pid" ]]; then
      if probe "$c"; then state="up"; else state="up, NOT ANSWERING"; bad=1; fi
    elif [[ "$expected" == *" $c "* ]]; then
      state="DOWN (expected up)"; bad=1
    else
      state="down"
    fi
    printf '%-15s %-8s %-32s %s\n' "$c" "${pid:--}" "$(component_ports "$c" | tr ' ' ',')" "$state"
  done
  echo "variants: ${SITES:-none}; state folder: $LAB_DIR"
  return "$bad"
}

cmd_env() {
  local compose=0 creds=0 off=0 host=127.0.0.1 c pid name
  while (($#)); do
    case "$1" in
      --compose) compose=1 ;;
      --creds) creds=1 ;;
      *) die "env: unknown argument '$1'" ;;
    esac
    shift
  done
  ((compose)) && off=$COMPOSE_PORT_OFFSET
  port() { echo $(($1 + off)); }
  echo "# pullstorm lab endpoints ($( ((compose)) && echo "docker compose, project $PROJECT" || echo "native, $LAB_DIR"))"
  if ((compose)); then
    echo "export PULLSTORM_LAB_COMPOSE_PROJECT='$PROJECT'"
  else
    echo "export PULLSTORM_LAB_DIR='$LAB_DIR'"
    echo "export PULLSTORM_LAB_CA_FILE='$LAB_DIR/secrets/ca.crt'"
  fi
  cat <<EOF
export PULLSTORM_LAB_REGISTRY=http://$host:$(port "$LAB_PORT_REGISTRY")
export PULLSTORM_LAB_REGISTRY_METRICS=http://$host:$(port "$LAB_PORT_REGISTRY_DEBUG")/metrics
export PULLSTORM_LAB_NGINX=http://$host:$(port "$LAB_PORT_NGINX")
export PULLSTORM_LAB_NGINX_STATUS=http://$host:$(port "$LAB_PORT_NGINX_STATUS")/
export PULLSTORM_LAB_NGINX_TLS=https://$host:$(port "$LAB_PORT_NGINX_TLS")
export PULLSTORM_LAB_HAPROXY=http://$host:$(port "$LAB_PORT_HAPROXY")
export PULLSTORM_LAB_HAPROXY_STATS=http://$host:$(port "$LAB_PORT_HAPROXY_STATS")/stats
export PULLSTORM_LAB_MIRROR=http://$host:$(port "$LAB_PORT_MIRROR")
export PULLSTORM_LAB_REDIS_REGISTRY=http://$host:$(port "$LAB_PORT_NGINX_REDIS")
export PULLSTORM_LAB_REDIS_REGISTRY_DIRECT=http://$host:$(port "$LAB_PORT_REGISTRY_REDIS")
export PULLSTORM_LAB_BASIC=http://$host:$(port "$LAB_PORT_NGINX_BASIC")
export PULLSTORM_LAB_TOKEN=http://$host:$(port "$LAB_PORT_NGINX_TOKEN")
export PULLSTORM_LAB_USERNAME=$USERNAME
export PULLSTORM_LAB_PASSWORD=$PASSWORD
EOF
  if ((!compose)); then
    # The fault LBs (up --variant faults) exist in the native lab only.
    echo "export PULLSTORM_LAB_FAULT_RESET=http://$host:$LAB_PORT_NGINX_RESET"
    echo "export PULLSTORM_LAB_FAULT_NORANGE=http://$host:$LAB_PORT_NGINX_NORANGE"
    echo "export PULLSTORM_LAB_SEED001=http://$host:$LAB_PORT_NGINX_SEED001"
    echo "export PULLSTORM_LAB_SEED000=http://$host:$LAB_PORT_HERD_PROXY"
    echo "export PULLSTORM_LAB_S3_REGISTRY=http://$host:$LAB_PORT_REGISTRY_S3"
  fi
  if ((creds)); then
    echo "export PULLSTORM_USERNAME=$USERNAME"
    echo "export PULLSTORM_PASSWORD=$PASSWORD"
  fi
  if ((!compose)) && [[ -d "$LAB_DIR/run" ]]; then
    LAB_DIR="$(cd "$LAB_DIR" && pwd -P)"
    for c in "${ORDER[@]}"; do
      pid="$(component_pid "$c")"
      [[ -n "$pid" ]] || continue
      name="${c^^}"
      echo "export PULLSTORM_LAB_${name//-/_}_PID=$pid"
    done
  fi
}

# ---------------------------------------------------------------------------------------
# docker compose

COMPOSE=()
compose_init() {
  [[ -f "$COMPOSE_FILE" ]] || die "missing $COMPOSE_FILE"
  command -v docker >/dev/null || die "docker CLI not found"
  docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine"
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' is installed"
  fi
  COMPOSE+=(-f "$COMPOSE_FILE" -p "$PROJECT")
}

# Published host ports of the compose lab with the status each must answer.
compose_probe() {
  local off=$COMPOSE_PORT_OFFSET ok=1
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_REGISTRY + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_REGISTRY_REDIS + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_MIRROR + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_NGINX + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_NGINX_STATUS + off))/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_NGINX_REDIS + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_NGINX_BASIC + off))/v2/")" == 401 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_NGINX_TOKEN + off))/v2/")" == 401 ]] || ok=0
  [[ "$(http_code -k "https://127.0.0.1:$((LAB_PORT_NGINX_TLS + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_HAPROXY + off))/v2/")" == 200 ]] || ok=0
  [[ "$(http_code "http://127.0.0.1:$((LAB_PORT_TOKEN + off))/healthz")" == 200 ]] || ok=0
  redis_ping $((LAB_PORT_REDIS + off)) || ok=0
  ((ok))
}

cmd_compose_up() {
  local wait=1
  while (($#)); do
    case "$1" in
      --no-wait) wait=0 ;;
      *) die "compose-up: unknown argument '$1'" ;;
    esac
    shift
  done
  compose_init
  local t0=$SECONDS
  "$ROOT/scripts/lab-image.sh"
  local t1=$SECONDS
  # No --wait even with compose v2: older v2 releases fail it on the one-shot lab-init; the
  # probes below (bounded) check every published port instead.
  local up=(up -d --remove-orphans)
  say "${COMPOSE[*]} ${up[*]}"
  timeout 300 "${COMPOSE[@]}" "${up[@]}" || die "docker compose up failed (see: ${COMPOSE[*]} logs)"
  if ((wait)); then
    local deadline=$((SECONDS + ${PULLSTORM_LAB_COMPOSE_TIMEOUT:-120}))
    until compose_probe; do
      if ((SECONDS >= deadline)); then
        "${COMPOSE[@]}" ps >&2 || true
        die "the compose lab did not answer on its published ports in time (see: ${COMPOSE[*]} logs)"
      fi
      sleep 0.5
    done
  fi
  say "compose lab up in $((SECONDS - t0))s (image check $((t1 - t0))s, compose $((SECONDS - t1))s)"
  cmd_env --compose | sed -n 's/^export PULLSTORM_LAB_\([A-Z_]*\)=\(.*\)/  \1 \2/p' | grep -v 'USERNAME\|PASSWORD\|PROJECT'
  echo "  credentials: user '$USERNAME', password not shown (scripts/lab.sh env --compose --creds); CA: ${COMPOSE[*]} exec nginx cat /lab/secrets/ca.crt"
}

cmd_compose_down() {
  local vol=()
  while (($#)); do
    case "$1" in
      --volumes|-v) vol=(--volumes) ;;
      *) die "compose-down: unknown argument '$1'" ;;
    esac
    shift
  done
  compose_init
  timeout 180 "${COMPOSE[@]}" --profile run down --remove-orphans "${vol[@]}" --timeout 10 \
    || die "docker compose down failed"
  local left
  left="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
  [[ -z "$left" ]] || die "containers of project $PROJECT remain: $left"
  say "compose lab down: no container of project $PROJECT left${vol:+ (volumes removed)}"
}

# Run the harness in the compose network: stage the release binary into the build context
# (lab/.build/), build the pullstorm image on the lab image, run it with ARGS.
cmd_compose_pullstorm() {
  compose_init
  local bin="${PULLSTORM_BIN:-$ROOT/target/release/pullstorm}"
  [[ -x "$bin" ]] || die "no pullstorm binary at $bin: run 'cargo build --release' first (or set PULLSTORM_BIN)"
  "$ROOT/scripts/lab-image.sh"
  mkdir -p "$LAB_CFG/.build" "$ROOT/reports"
  cp -f "$bin" "$LAB_CFG/.build/pullstorm"
  timeout 600 "${COMPOSE[@]}" --profile run build pullstorm || die "could not build the pullstorm image"
  (($#)) || set -- run /scenarios/lab-compose.toml
  "${COMPOSE[@]}" --profile run run --rm pullstorm "$@"
}

cmd_compose_status() {
  compose_init
  "${COMPOSE[@]}" ps
}

# ---------------------------------------------------------------------------------------

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    restart) cmd_restart "$@" ;;
    env) cmd_env "$@" ;;
    compose-up) cmd_compose_up "$@" ;;
    compose-down) cmd_compose_down "$@" ;;
    compose-status) cmd_compose_status "$@" ;;
    compose-pullstorm) cmd_compose_pullstorm "$@" ;;
    -h|--help|help) usage ;;
    "") usage >&2; exit 2 ;;
    *) echo "lab: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
