#!/bin/sh
# luci-app-uplinkd: syntax of every JS and JSON file, then the view logic against the
# status fixtures with node's test runner.
set -u
cd "$(dirname "$0")/.." || exit 1
app=openwrt-package/luci-app-uplinkd
status=0
for f in $(find "$app" tests/luci -name '*.js' | sort); do
    node --check "$f" || { echo "luci: syntax error in $f"; status=1; }
done
for f in $(find "$app" tests/luci -name '*.json' | sort); do
    python3 -m json.tool "$f" >/dev/null || { echo "luci: bad JSON in $f"; status=1; }
done
[ "$status" -eq 0 ] && echo "luci: JS and JSON syntax ok"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if node --test tests/luci/ >"$log" 2>&1; then
    echo "luci: view logic $(grep -E '^# pass' "$log")"
else
    cat "$log"
    status=1
fi
exit "$status"
