#!/bin/sh
# Build everything and run the whole test suite, network-namespace lab included.
# Needs root (the lab creates network namespaces). On Debian/Ubuntu the tools the lab
# uses are installed first if they are missing.
set -u

need=""
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v nft >/dev/null 2>&1 || need="$need nftables"
command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
command -v sysctl >/dev/null 2>&1 || need="$need procps"
if [ -n "$need" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && apt-get install -y -q $need || exit 1
    else
        echo "missing:$need" >&2
        exit 1
    fi
fi

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
exit "$status"
