#!/bin/sh
# Build everything and run the whole test suite, network-namespace lab included.
# Needs root (the lab creates network namespaces). On Debian/Ubuntu the tools the lab
# uses are installed first if they are missing.
set -u

. "$(dirname "$0")/lab/deps.sh"

cd "$(dirname "$0")/.." || exit 1
cargo build --all-targets || exit $?

# Keep the full output in a file, print cargo's result lines, exit with cargo's status.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --no-fail-fast >"$log" 2>&1
status=$?
grep -E '^(test result:|     Running |test .* FAILED|error)' "$log"
if [ "$status" -ne 0 ]; then
    sed -n '/^failures:$/,/^test result:/p' "$log" | head -n 200
fi

# The decoders of untrusted bytes, fuzzed for a bounded time.
if ./tests/fuzz.sh >"$log" 2>&1; then
    grep -E '^(fuzz|Done)' "$log"
else
    tail -n 60 "$log"
    status=1
fi

# The Prometheus output, parsed by a real exposition-format parser.
if ./tests/metrics.sh >"$log" 2>&1; then
    grep -E '^metrics' "$log"
else
    tail -n 40 "$log"
    status=1
fi

# The LuCI app: syntax checks and the view logic under node's test runner.
if ./tests/luci.sh >"$log" 2>&1; then
    grep -E '^luci' "$log"
else
    tail -n 60 "$log"
    status=1
fi

# The README's demo, as a smoke test: without a terminal it runs its scripted tour.
if cargo run -q --example lab </dev/null >"$log" 2>&1; then
    echo "demo tour: ok"
else
    echo "demo tour: FAILED"
    tail -n 60 "$log"
    status=1
fi
exit "$status"
