#!/usr/bin/env bash
# Write a small single-layer OCI image layout, tag "v1", made by hand (tar, gzip, sha256sum),
# to push into the lab without any image registry:
#
#   lab/oci-sample.sh DIR [--size KIB] [--seed TEXT]
#   skopeo --insecure-policy copy --preserve-digests --dest-tls-verify=false \
#       oci:DIR:v1 docker://127.0.0.1:8080/lab/small:v1
#
# (--preserve-digests: without it skopeo silently recompresses the layer.) The layer holds
# hello.txt and KIB KiB (default 2048) of pseudo-random bytes derived from TEXT: the same
# seed and size give the same digests. Prints shell assignments:
# MANIFEST_DIGEST, MANIFEST_SIZE, CONFIG_DIGEST, LAYER_DIGEST, LAYER_SIZE.
set -euo pipefail

die() { echo "oci-sample: error: $*" >&2; exit 1; }

dir="" size=2048 seed="pullstorm lab sample"
while (($#)); do
  case "$1" in
    --size) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--size needs a number of KiB"; size="$2"; shift ;;
    --seed) [[ $# -ge 2 ]] || die "--seed needs a value"; seed="$2"; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1'" ;;
    *) [[ -z "$dir" ]] || die "one DIR only"; dir="$1" ;;
  esac
  shift
done
[[ -n "$dir" ]] || die "usage: oci-sample.sh DIR [--size KIB] [--seed TEXT]"
for t in tar gzip sha256sum openssl; do command -v "$t" >/dev/null || die "'$t' not found"; done

sha() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

rm -rf "$dir"
mkdir -p "$dir/blobs/sha256"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs/pullstorm"
printf 'pullstorm lab sample layer\nseed: %s\n' "$seed" >"$work/rootfs/pullstorm/hello.txt"
key="$(printf '%s' "$seed" | sha256sum | cut -c1-32)"
head -c "$((size * 1024))" /dev/zero \
  | openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 \
  >"$work/rootfs/pullstorm/random.bin"
touch -d @0 "$work/rootfs/pullstorm" "$work/rootfs/pullstorm/"*
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$work/rootfs" -cf "$work/layer.tar" pullstorm
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"

diff_id="$(sha "$work/layer.tar")"
layer="$(sha "$work/layer.tar.gz")"
layer_size="$(size_of "$work/layer.tar.gz")"
mv "$work/layer.tar.gz" "$dir/blobs/sha256/$layer"

printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"lab/oci-sample.sh"}]}' \
  "$diff_id" >"$work/config.json"
config="$(sha "$work/config.json")"
config_size="$(size_of "$work/config.json")"
mv "$work/config.json" "$dir/blobs/sha256/$config"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
manifest="$(sha "$work/manifest.json")"
manifest_size="$(size_of "$work/manifest.json")"
mv "$work/manifest.json" "$dir/blobs/sha256/$manifest"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
  "$manifest" "$manifest_size" >"$dir/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"

echo "MANIFEST_DIGEST=sha256:$manifest"
echo "MANIFEST_SIZE=$manifest_size"
echo "CONFIG_DIGEST=sha256:$config"
echo "LAYER_DIGEST=sha256:$layer"
echo "LAYER_SIZE=$layer_size"
