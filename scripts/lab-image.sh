#!/usr/bin/env bash
# Build the pullstorm lab base image (default tag pullstorm-lab:bookworm) WITHOUT pulling
# anything from an image registry: debootstrap a minimal Debian bookworm root with the lab's
# daemons (lab/packages.txt) from the machine's own apt mirror, then `docker import` it.
#
#   scripts/lab-image.sh [--rebuild] [--tag NAME:TAG] [--mirror URI]
#
# Idempotent: does nothing when the image exists and was built from the current
# lab/packages.txt (label org.pullstorm.lab.packages), unless --rebuild.
# Users with access to Docker Hub can instead run `docker compose build` (lab/Dockerfile.lab).
# Needs root (debootstrap) and a Docker engine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES_FILE="$ROOT/lab/packages.txt"
TAG="${PULLSTORM_LAB_IMAGE:-pullstorm-lab:bookworm}"
MIRROR="${PULLSTORM_LAB_APT_MIRROR:-}"
REBUILD=0
SUITE=bookworm

die() { echo "lab-image: error: $*" >&2; exit 1; }
say() { echo "lab-image: $*"; }

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
  case "$1" in
    --rebuild) REBUILD=1 ;;
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value"; TAG="$2"; shift ;;
    --mirror) [[ $# -ge 2 ]] || die "--mirror needs a value"; MIRROR="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (is it running, are you allowed to use it?)"
[[ -r "$PACKAGES_FILE" ]] || die "missing $PACKAGES_FILE"

# Package list, comma separated, and its hash (stored as an image label to detect staleness).
PACKAGES="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGES_FILE" | grep -v '^$' | paste -sd, -)"
[[ -n "$PACKAGES" ]] || die "no packages listed in $PACKAGES_FILE"
PKG_HASH="$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-16)"

if ((REBUILD == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
  have="$(docker image inspect -f '{{ index .Config.Labels "org.pullstorm.lab.packages" }}' "$TAG" 2>/dev/null || true)"
  if [[ -z "$have" || "$have" == "<no value>" || "$have" == "$PKG_HASH" ]]; then
    say "image $TAG already present (use --rebuild to rebuild it)"
    exit 0
  fi
  say "image $TAG was built from another package list ($have != $PKG_HASH): rebuilding"
fi

[[ $EUID -eq 0 ]] || die "debootstrap needs root; run as root (or build with 'docker compose build' if you can pull debian:bookworm)"

# The mirror: the first URI of the machine's apt sources that serves the bookworm suite.
find_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    # deb822 stanzas: remember URIs, emit them when the stanza's Suites lists "$SUITE".
    uri="$(awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Types:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
          if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
        }
        if (ok && deb && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f")"
    if [[ -n "$uri" ]]; then echo "$uri"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    uri="$(awk -v suite="$SUITE" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit } }' "$f")"
    if [[ -n "$uri" ]]; then echo "$uri"; return 0; fi
  done
  return 1
}

if [[ -z "$MIRROR" ]]; then
  MIRROR="$(find_mirror || true)"
  [[ -n "$MIRROR" ]] || { MIRROR="http://deb.debian.org/debian"; say "no $SUITE source found in /etc/apt; using $MIRROR"; }
fi

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends debootstrap >/dev/null; } \
    || die "could not install debootstrap"
fi

WORK="$(mktemp -d /var/tmp/pullstorm-lab-image.XXXXXX)"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT
ROOTFS="$WORK/rootfs"

say "debootstrap $SUITE from $MIRROR with: $PACKAGES"
t0=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
  tail -n 30 "$WORK/debootstrap.log" >&2
  [[ -f "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi
t_boot=$((SECONDS - t0))

# Every daemon the lab runs must be there.
for bin in usr/bin/docker-registry usr/sbin/nginx usr/bin/redis-server usr/sbin/haproxy \
           usr/bin/curl usr/bin/openssl usr/bin/htpasswd usr/bin/python3; do
  [[ -x "$ROOTFS/$bin" ]] || die "/$bin missing from the debootstrapped root"
done
chroot "$ROOTFS" python3 -c 'import cryptography' || die "python3-cryptography missing from the root"

# Slim down: package caches and lists are not needed at run time.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
# Services must never start from maintainer scripts inside the image.
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"

say "importing into docker as $TAG"
t1=$SECONDS
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.pullstorm.lab.packages=$PKG_HASH" \
  --change "LABEL org.pullstorm.lab.source=debootstrap" \
  --message "pullstorm lab: debootstrap $SUITE minbase + $PACKAGES" \
  - "$TAG" >/dev/null
t_import=$((SECONDS - t1))

size="$(docker image inspect -f '{{ .Size }}' "$TAG")"
say "built $TAG: $((size / 1024 / 1024)) MiB; debootstrap ${t_boot}s, import ${t_import}s, total $((SECONDS - t0))s"
