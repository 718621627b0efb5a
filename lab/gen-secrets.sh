#!/usr/bin/env bash
# Generate the pullstorm lab's test secrets under $LAB_STATE/secrets (idempotent: existing
# files are kept; the credential files are rewritten only when the user/password change).
# Runs natively from scripts/lab.sh and in the compose lab's "lab-init" service.
#
#   ca.crt ca.key          test CA (EC P-256), 10 years
#   tls.crt tls.key        nginx TLS cert from that CA: localhost, nginx, 127.0.0.1, ::1
#   cert-dir/ca.crt        the CA alone, for `skopeo --cert-dir` / containers' certs.d
#   token.crt token.key    RSA 2048 key signing the bearer tokens; token.crt is the
#                          registry's auth.token.rootcertbundle
#   htpasswd               bcrypt entry for the Basic-auth registry (htpasswd -B)
#   credentials            user:password for the token issuer
#
# Needs: openssl, htpasswd (apache2-utils). These are TEST credentials, documented in
# docs/lab.md: user "pullstorm", password "pullstorm-lab" unless LAB_USERNAME/LAB_PASSWORD.
set -euo pipefail

: "${LAB_STATE:?LAB_STATE must name the lab state folder}"
USERNAME="${LAB_USERNAME:-pullstorm}"
PASSWORD="${LAB_PASSWORD:-pullstorm-lab}"
DIR="$LAB_STATE/secrets"

die() { echo "gen-secrets: error: $*" >&2; exit 1; }
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
command -v htpasswd >/dev/null || die "htpasswd not found (apt-get install apache2-utils)"
[[ "$USERNAME" != *:* ]] || die "LAB_USERNAME must not contain ':'"

mkdir -p "$DIR/cert-dir"
chmod 755 "$DIR"
cd "$DIR"
umask 022

quiet() { "$@" >/dev/null 2>openssl.err || { cat openssl.err >&2; die "failed: $*"; }; rm -f openssl.err; }

if [[ ! -s ca.crt || ! -s ca.key ]]; then
  quiet openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.crt -days 3650 -subj "/O=pullstorm lab/CN=pullstorm lab test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  rm -f tls.crt
fi
cp ca.crt cert-dir/ca.crt

if [[ ! -s tls.crt || ! -s tls.key ]]; then
  quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls.key -out tls.csr -subj "/O=pullstorm lab/CN=localhost"
  printf '%s\n' "subjectAltName=DNS:localhost,DNS:nginx,IP:127.0.0.1,IP:::1" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >tls.ext
  quiet openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 12)" \
    -days 825 -sha256 -extfile tls.ext -out tls.crt
  rm -f tls.csr tls.ext
fi

if [[ ! -s token.crt || ! -s token.key ]]; then
  quiet openssl req -x509 -new -newkey rsa:2048 -nodes -keyout token.key -out token.crt -days 3650 \
    -subj "/O=pullstorm lab/CN=pullstorm-lab-issuer"
fi

# The daemons may run as another user (compose); the keys are test keys anyway.
chmod 644 ca.crt tls.crt token.crt cert-dir/ca.crt
chmod 640 ca.key tls.key token.key

want="$USERNAME:$PASSWORD"
if [[ ! -s credentials || "$(cat credentials)" != "$want" ]] || ! htpasswd -vb htpasswd "$USERNAME" "$PASSWORD" >/dev/null 2>&1; then
  printf '%s\n' "$want" >credentials.new
  chmod 640 credentials.new
  mv credentials.new credentials
  # bcrypt ($2y$): the only hash distribution's htpasswd accepts.
  htpasswd -Bbn "$USERNAME" "$PASSWORD" | sed '/^$/d' >htpasswd.new
  chmod 644 htpasswd.new
  mv htpasswd.new htpasswd
fi
echo "gen-secrets: secrets ready in $DIR (user $USERNAME)"
