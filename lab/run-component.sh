#!/usr/bin/env bash
# Render one lab component's config from its template and exec the daemon in the foreground.
# The ONE start path of both labs: scripts/lab.sh runs it under nohup/setsid natively, and
# every compose service runs it as its command. Only the environment differs:
#
#   LAB_STATE     state folder: rendered configs (conf/), data/, logs/, run/ (required)
#   LAB_CONFIG    this lab/ folder (default: the folder of this script)
#   LAB_BIND      listen address: 127.0.0.1 natively, 0.0.0.0 inside a compose container
#   LAB_HOST_*    where each upstream lives: 127.0.0.1 natively, the service name in compose
#                 (REGISTRY REGISTRY_REDIS REGISTRY_BASIC REGISTRY_TOKEN REDIS TOKEN NGINX)
#   LAB_PORT_*    ports, defaults in lab/ports.env
#   LAB_NGINX_SITES  nginx server blocks to enable (default: all: default redis basic token tls;
#                 "faults" is the fault LBs' site, native lab only)
#   LAB_NOFILE    start the daemon under prlimit --nofile=N:N
#   LAB_NGINX_WORKER_CONNECTIONS (1024), LAB_HAPROXY_TIMEOUT_CLIENT / _SERVER (1h),
#   LAB_HAPROXY_EXTRA (one more line in haproxy's defaults, e.g. "option nolinger")
#   LAB_FAULT_SEND_TIMEOUT (1s), LAB_SEED001_TEMP_FILE (64m), LAB_SEED001_SEND_TIMEOUT (1s):
#                 the "faults" site (lab/nginx/sites/faults.conf)
#   LAB_HERD_NOFILE  nofile of herd-proxy, the docker-proxy of seed 000 (default 1024)
#   LAB_REGISTRY_*   passed to the registries as REGISTRY_* (config overrides); the caller's
#                 own REGISTRY_* variables are dropped
#   LAB_S3_BUCKET (pullstorm-lab), LAB_HOST_S3: the "s3" variant's storage (moto's server,
#                 lab/s3/storage.py) and where registry-s3 finds it; LAB_S3_RECORD=FILE makes
#                 the storage log every request it receives to FILE (JSON lines)
#
#   run-component.sh COMPONENT            render, then exec the daemon
#   run-component.sh --render COMPONENT   render only (scripts/lab.sh uses it to reload nginx)
#   run-component.sh --list               the component names
#
# Templates use @@NAME@@ placeholders, replaced by the value of $LAB_NAME; an unset variable
# is an error, never an empty string.
set -euo pipefail

COMPONENTS="redis token registry registry-redis registry-basic registry-token nginx haproxy mirror herd-proxy s3 registry-s3"

die() { echo "run-component: error: $*" >&2; exit 1; }

LAB_CONFIG="${LAB_CONFIG:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
# shellcheck source=lab/ports.env
. "$LAB_CONFIG/ports.env"
for v in $(compgen -v LAB_PORT_); do export "${v?}"; done
export LAB_BIND="${LAB_BIND:-127.0.0.1}"
for h in REGISTRY REGISTRY_REDIS REGISTRY_BASIC REGISTRY_TOKEN REDIS TOKEN NGINX S3; do
  v="LAB_HOST_$h"
  export "$v=${!v:-127.0.0.1}"
done
export LAB_NGINX_SITES="${LAB_NGINX_SITES:-default redis basic token tls}"
# Knobs with Harbor-like / generous defaults (docs/lab.md, "Reproducing the seeds' faults").
export LAB_NGINX_WORKER_CONNECTIONS="${LAB_NGINX_WORKER_CONNECTIONS:-1024}"
export LAB_HAPROXY_TIMEOUT_CLIENT="${LAB_HAPROXY_TIMEOUT_CLIENT:-1h}"
export LAB_HAPROXY_TIMEOUT_SERVER="${LAB_HAPROXY_TIMEOUT_SERVER:-1h}"
export LAB_HAPROXY_EXTRA="${LAB_HAPROXY_EXTRA:-# LAB_HAPROXY_EXTRA: none}"
export LAB_FAULT_SEND_TIMEOUT="${LAB_FAULT_SEND_TIMEOUT:-1s}"
export LAB_SEED001_TEMP_FILE="${LAB_SEED001_TEMP_FILE:-64m}"
export LAB_SEED001_SEND_TIMEOUT="${LAB_SEED001_SEND_TIMEOUT:-1s}"
export LAB_S3_BUCKET="${LAB_S3_BUCKET:-pullstorm-lab}"

render_only=0
case "${1:-}" in
  --list) echo "$COMPONENTS"; exit 0 ;;
  --render) render_only=1; shift ;;
  ""|-h|--help) sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
component="${1:-}"
[[ " $COMPONENTS " == *" $component "* ]] || die "unknown component '$component' (one of: $COMPONENTS)"
: "${LAB_STATE:?LAB_STATE must name the lab state folder}"
export LAB_STATE

# render TEMPLATE OUTPUT: replace each @@NAME@@ by $LAB_NAME; write atomically.
render() {
  local src="$1" dst="$2" content name var
  content="$(cat "$src")"
  while [[ "$content" =~ @@([A-Z0-9_]+)@@ ]]; do
    name="${BASH_REMATCH[1]}"
    var="LAB_$name"
    [[ -n "${!var+set}" ]] || die "$src uses @@${name}@@ but \$$var is not set"
    content="${content//"@@${name}@@"/"${!var}"}"
  done
  mkdir -p "$(dirname "$dst")"
  printf '%s\n' "$content" >"$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
}

mkdir -p "$LAB_STATE"/{conf,data,logs,run}
conf="$LAB_STATE/conf"

case "$component" in
  registry|registry-redis|registry-basic|registry-token|registry-s3|mirror)
    render "$LAB_CONFIG/registry/$component.yml" "$conf/$component.yml"
    case "$component" in
      registry-redis) mkdir -p "$LAB_STATE/data/registry-redis" ;;
      mirror) mkdir -p "$LAB_STATE/data/mirror" ;;
      *) mkdir -p "$LAB_STATE/data/registry" ;;
    esac
    case "$component" in
      registry-basic|registry-s3) [[ -s "$LAB_STATE/secrets/htpasswd" ]] || die "no $LAB_STATE/secrets/htpasswd: run lab/gen-secrets.sh" ;;
      registry-token) [[ -s "$LAB_STATE/secrets/token.crt" ]] || die "no $LAB_STATE/secrets/token.crt: run lab/gen-secrets.sh" ;;
    esac
    # distribution reads REGISTRY_<SECTION>_<KEY> from the environment as config overrides:
    # drop the caller's (e.g. REGISTRY_AUTH_FILE of podman/skopeo breaks the config) and
    # pass LAB_REGISTRY_<...> on as REGISTRY_<...> (LAB_REGISTRY_LOG_LEVEL=debug).
    for v in $(compgen -v REGISTRY_ || true); do unset "$v"; done
    for v in $(compgen -v LAB_REGISTRY_ || true); do export "${v#LAB_}=${!v}"; done
    # The S3 driver's AWS SDK reads AWS_* too (AWS_CA_BUNDLE makes it panic on a plain-HTTP
    # endpoint): the lab's storage is configured in the template alone.
    if [[ "$component" == registry-s3 ]]; then
      for v in $(compgen -v AWS_ || true); do unset "$v"; done
    fi
    cmd=(docker-registry serve "$conf/$component.yml")
    ;;
  s3)
    # moto's server (PyPI moto[server]) runs in the python3 it was installed for: the
    # first in PATH, as scripts/test-deps.sh installs it.
    cmd=(python3 "$LAB_CONFIG/s3/storage.py" --listen "$LAB_BIND:$LAB_PORT_S3" --bucket "$LAB_S3_BUCKET")
    if [[ -n "${LAB_S3_RECORD:-}" ]]; then cmd+=(--record "$LAB_S3_RECORD"); fi
    ;;
  redis)
    render "$LAB_CONFIG/redis/redis.conf" "$conf/redis.conf"
    mkdir -p "$LAB_STATE/data/redis"
    cmd=(redis-server "$conf/redis.conf")
    ;;
  token)
    [[ -s "$LAB_STATE/secrets/token.key" && -s "$LAB_STATE/secrets/credentials" ]] \
      || die "no token key or credentials in $LAB_STATE/secrets: run lab/gen-secrets.sh"
    # Debian's python3 has python3-cryptography; a python3 earlier in PATH may not.
    py=python3
    if [[ -x /usr/bin/python3 ]]; then py=/usr/bin/python3; fi
    cmd=("$py" "$LAB_CONFIG/token-issuer.py" --listen "$LAB_BIND:$LAB_PORT_TOKEN"
         --key "$LAB_STATE/secrets/token.key" --cert "$LAB_STATE/secrets/token.crt"
         --credentials "$LAB_STATE/secrets/credentials"
         --issuer pullstorm-lab-issuer --service pullstorm-lab --ttl "${LAB_TOKEN_TTL:-300}")
    ;;
  nginx)
    # Workers run as the user that starts the lab (root in CI and in the containers).
    if [[ $EUID -eq 0 ]]; then
      export LAB_NGINX_USER_DIRECTIVE="user root root;"
    else
      LAB_NGINX_USER_DIRECTIVE="# (not root: workers run as $(id -un))"
      export LAB_NGINX_USER_DIRECTIVE
    fi
    mkdir -p "$conf/nginx/sites.new" "$conf/nginx/override.d" "$conf/nginx/main.d" "$conf/nginx/http.d" "$LAB_STATE/nginx/tmp"
    for site in $LAB_NGINX_SITES; do
      [[ -f "$LAB_CONFIG/nginx/sites/$site.conf" ]] || die "no nginx site '$site' in $LAB_CONFIG/nginx/sites"
      render "$LAB_CONFIG/nginx/sites/$site.conf" "$conf/nginx/sites.new/$site.conf"
    done
    rm -rf "$conf/nginx/sites.old"
    if [[ -d "$conf/nginx/sites" ]]; then mv "$conf/nginx/sites" "$conf/nginx/sites.old"; fi
    mv "$conf/nginx/sites.new" "$conf/nginx/sites"
    rm -rf "$conf/nginx/sites.old"
    render "$LAB_CONFIG/nginx/nginx.conf" "$conf/nginx/nginx.conf"
    cmd=(nginx -p "$LAB_STATE/nginx/" -e stderr -c "$conf/nginx/nginx.conf")
    ;;
  haproxy)
    render "$LAB_CONFIG/haproxy/haproxy.cfg" "$conf/haproxy.cfg"
    cmd=(haproxy -db -f "$conf/haproxy.cfg")
    ;;
  herd-proxy)
    # Seed 000: Docker's userland port proxy in front of the LB, with the nofile limit a
    # dockerd started by hand passes on (1024). It stops accepting on the first accept error
    # (EMFILE) and exits: the "docker-proxy dies" of the seed. docker-proxy ships with the
    # Docker engine (Debian docker.io: /usr/sbin; Docker CE: /usr/bin).
    proxy="$(command -v docker-proxy || true)"
    for p in /usr/sbin/docker-proxy /usr/bin/docker-proxy /usr/libexec/docker/docker-proxy; do
      [[ -n "$proxy" ]] && break
      [[ -x "$p" ]] && proxy="$p"
    done
    [[ -n "$proxy" ]] || die "docker-proxy not found (it comes with the Docker engine: Debian docker.io, or docker-ce)"
    LAB_NOFILE="${LAB_HERD_NOFILE:-1024}"
    cmd=("$proxy" -proto tcp -host-ip "$LAB_BIND" -host-port "$LAB_PORT_HERD_PROXY"
         -container-ip "$LAB_HOST_NGINX" -container-port "$LAB_PORT_NGINX")
    ;;
esac

if ((render_only)); then
  if [[ "$component" == nginx ]]; then "${cmd[@]}" -t -q || die "nginx config test failed"; fi
  exit 0
fi
cd "$LAB_STATE"
# docker-proxy reports its start to its parent (dockerd) on fd 3; without one it closes
# whatever fd 3 is, its own listener. Give it a file.
if [[ "$component" == herd-proxy ]]; then exec 3>"$LAB_STATE/run/herd-proxy.status"; fi
# LAB_NOFILE=N: start the daemon with its fd limit at N (soft and hard), the seed-000 knob.
if [[ -n "${LAB_NOFILE:-}" ]]; then
  [[ "$LAB_NOFILE" =~ ^[0-9]+$ ]] || die "LAB_NOFILE must be a number"
  exec prlimit --nofile="$LAB_NOFILE:$LAB_NOFILE" -- "${cmd[@]}"
fi
exec "${cmd[@]}"
