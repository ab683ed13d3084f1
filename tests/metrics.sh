#!/bin/sh
# Check the Prometheus output with a real exposition-format parser: prometheus_client
# from PyPI, in a virtualenv kept in the cargo target directory between runs.
# Usage: tests/metrics.sh            render samples from the unit tests and parse them
#        tests/metrics.sh FILE...    parse these files (extra args go to metrics_check.py)
set -u
cd "$(dirname "$0")/.." || exit 1
target=${CARGO_TARGET_DIR:-target}
venv="$target/metrics-venv"
if ! "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
    python3 -m venv "$venv" || exit 1
    "$venv/bin/pip" install -q prometheus_client || exit 1
fi
if [ "$#" -gt 0 ]; then
    exec "$venv/bin/python" tests/metrics_check.py "$@"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
UPLINKD_METRICS_SAMPLES="$dir" cargo test -q --lib metrics::tests::renders_the_real_report \
    >"$dir/log" 2>&1 || { cat "$dir/log"; exit 1; }
"$venv/bin/python" tests/metrics_check.py "$dir/report.prom" "$dir/tricky.prom" || exit 1

# The Grafana dashboard uses only metrics that exist.
for name in $(grep -o 'uplinkd_[a-z_]*' contrib/grafana-uplinkd.json | sort -u); do
    grep -q "^# TYPE $name " "$dir/report.prom" || {
        echo "metrics: contrib/grafana-uplinkd.json uses unknown metric $name"
        exit 1
    }
done
python3 -m json.tool contrib/grafana-uplinkd.json >/dev/null || exit 1
echo "metrics: the Grafana dashboard uses known metrics only"

# The OpenWrt collector (prometheus-node-exporter-lua) on the same fixtures, when a Lua
# 5.1 interpreter is there: it must parse and agree with the status it was given.
lua=$(command -v lua5.1 || command -v lua || true)
if [ -z "$lua" ]; then
    echo "metrics: no lua interpreter, collector not checked"
    exit 0
fi
collector=openwrt-package/prometheus-node-exporter-lua-uplinkd/files/usr/lib/lua/prometheus-collectors/uplinkd.lua
for fixture in tests/luci/fixtures/*.json; do
    name=$(basename "$fixture" .json)
    python3 tests/json_to_lua.py <"$fixture" >"$dir/$name.lua" || exit 1
    "$lua" tests/lua/collector_run.lua "$dir/$name.lua" "$collector" >"$dir/lua-$name.prom" || exit 1
    "$venv/bin/python" tests/metrics_check.py "$dir/lua-$name.prom" --no-help \
        --expect-json "$fixture" || exit 1
done
