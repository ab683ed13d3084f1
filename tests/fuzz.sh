#!/bin/sh
# Run every fuzz target (decoders of untrusted bytes: UCI text, ICMP, ubus frames,
# netlink events, addresses, routes and nexthops, nft flowtables, HTTP heads, control
# lines, netifd status, mwan3 import, config -> nft ruleset, and the answers the http
# and dns probes read) for a bounded time.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain build
# them. FUZZ_SECONDS per target: default 8 (CI), 300 with --long.
set -eu
long=0
[ "${1:-}" = "--long" ] && long=1
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
if [ "$long" = 1 ]; then
    seconds=${FUZZ_SECONDS:-300}
else
    seconds=${FUZZ_SECONDS:-8}
fi
# FUZZ_TARGET_DIR: where the instrumented build goes (default fuzz/target); tests/run.sh
# keeps it outside the clone, so that libFuzzer and the dependencies are built once.
set --
[ -n "${FUZZ_TARGET_DIR:-}" ] && set -- --target-dir "$FUZZ_TARGET_DIR"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
    echo "fuzz $target: ${seconds}s"
    cargo fuzz run "$@" "$target" -- -max_total_time="$seconds" -print_final_stats=0 >"$log" 2>&1 || {
        tail -n 40 "$log"
        echo "fuzz $target: FAILED"
        exit 1
    }
    grep -E '^Done [0-9]+ runs' "$log" || true
done
