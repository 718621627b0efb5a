#!/bin/sh
# Screenshot of a pullstorm report, for the README and docs/report.md.
#
#   scripts/report-screenshot.sh RESULT.json|REPORT.html OUT.png [WIDTH,HEIGHT]
#
# A result.json is first turned into a report with `pullstorm report` (the
# binary in $PULLSTORM, else target/release/pullstorm). Headless chromium
# (scripts/test-deps.sh installs it) renders the page with the network cut
# off, so the picture also proves the report needs nothing from outside.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 RESULT.json|REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
input=$1
out=$2
size=${3:-1280,2400}
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v chromium >/dev/null 2>&1; then
    echo "$0: chromium is missing: run scripts/test-deps.sh" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $input in
*.html)
    html=$input
    ;;
*)
    bin=${PULLSTORM:-$root/target/release/pullstorm}
    if [ ! -x "$bin" ]; then
        echo "$0: no pullstorm binary at $bin: run cargo build --release or set PULLSTORM" >&2
        exit 1
    fi
    html=$work/report.html
    "$bin" report "$input" --out "$html" >/dev/null
    ;;
esac
html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")

# --proxy-server to a closed port and a resolver that resolves nothing: any
# request the page made would fail (and show as a gap in the picture).
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --force-device-scale-factor=1 --user-data-dir="$work/profile" \
    --proxy-server=127.0.0.1:9 --host-resolver-rules="MAP * ~NOTFOUND" \
    --window-size="$size" --screenshot="$out" "file://$html" >"$work/log" 2>&1 || {
    cat "$work/log" >&2
    exit 1
}
if [ ! -s "$out" ]; then
    cat "$work/log" >&2
    echo "$0: no screenshot written" >&2
    exit 1
fi
echo "$out"
