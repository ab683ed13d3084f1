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
# The daemon's status page inlines the same model: its script must parse too.
page=$(mktemp --suffix=.js)
python3 - "$page" <<'PY' || status=1
import re, sys
model = open("openwrt-package/luci-app-uplinkd/htdocs/luci-static/resources/uplinkd/model.js").read()
html = open("src/http_page.html").read().replace("/*MODEL*/", model)
scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
assert len(scripts) == 1, "one inline script"
open(sys.argv[1], "w").write(scripts[0])
PY
node --check "$page" || { echo "luci: the status page's script does not parse"; status=1; }
rm -f "$page"
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
