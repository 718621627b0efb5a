#!/usr/bin/env bash
# Build the Docker image pullstorm:local from a prebuilt release binary WITHOUT an image
# registry: the lab's debootstrapped base (scripts/lab-image.sh, pullstorm-lab:bookworm) plus
# target/release/pullstorm, as lab/Dockerfile.pullstorm says. The image also holds the lab's
# daemons (docker-registry, nginx, haproxy), so one image serves a sharded storm and its target.
# Users with internet access can instead build the slim image from the repository's Dockerfile.
#
#   scripts/pullstorm-image.sh [--tag NAME:TAG]      (default pullstorm:local)
#
# Environment: PULLSTORM_BIN (default target/release/pullstorm), PULLSTORM_IMAGE (the tag).
# Needs a Docker engine, and root when the lab base image must be built first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${PULLSTORM_IMAGE:-pullstorm:local}"
BIN="${PULLSTORM_BIN:-$ROOT/target/release/pullstorm}"

die() { echo "pullstorm-image: error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value"; TAG="$2"; shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

[[ -x "$BIN" ]] || die "no pullstorm binary at $BIN: run 'cargo build --release' first (or set PULLSTORM_BIN)"
"$ROOT/scripts/lab-image.sh" >&2

# A context of its own (not lab/.build, which scripts/lab.sh compose-pullstorm uses), holding
# only the binary: a context at the repository root would send all of target/.
CTX="$(mktemp -d /tmp/pullstorm-image.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
mkdir "$CTX/.build"
cp "$BIN" "$CTX/.build/pullstorm"
cp "$ROOT/lab/Dockerfile.pullstorm" "$CTX/Dockerfile"
timeout 600 docker build -q -t "$TAG" "$CTX" >/dev/null || die "docker build of $TAG failed"
echo "$TAG"
