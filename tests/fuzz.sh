#!/bin/sh
# Run every fuzz target (decoders of untrusted bytes: UCI text, ICMP, ubus frames,
# netlink events, addresses, routes and nexthops, nft flowtables, HTTP heads, control
# lines, netifd status, mwan3 import, config -> nft ruleset, and the answers the http
# and dns probes read) for a bounded time.
#
#   tests/fuzz.sh [--long | --build]
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain build
# them. FUZZ_SECONDS per target: default 8 (CI), 300 with --long. --build only builds
# the instrumented targets (tests/run.sh does that while the lab runs). FUZZ_JOBS
# targets are fuzzed at once, each in one process on one core (default 1).
set -eu
long=0
build_only=0
case "${1:-}" in
    --long) long=1 ;;
    --build) build_only=1 ;;
esac
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
if [ "$long" = 1 ]; then
    seconds=${FUZZ_SECONDS:-300}
else
    seconds=${FUZZ_SECONDS:-8}
fi
jobs=${FUZZ_JOBS:-1}
# FUZZ_TARGET_DIR: where the instrumented build goes (default fuzz/target); tests/run.sh
# keeps it outside the clone, so that libFuzzer and the dependencies are built once.
set --
[ -n "${FUZZ_TARGET_DIR:-}" ] && set -- --target-dir "$FUZZ_TARGET_DIR"
# All targets in one cargo run; `cargo fuzz run` below then finds them built.
cargo fuzz build "$@"
[ "$build_only" = 1 ] && exit 0
targets=$(cargo fuzz list)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Target i goes to lane i % jobs; each lane fuzzes its targets one after the other.
lane=0
while [ "$lane" -lt "$jobs" ]; do
    (
        i=0
        for target in $targets; do
            if [ $((i % jobs)) = "$lane" ]; then
                cargo fuzz run "$@" "$target" -- -max_total_time="$seconds" \
                    -print_final_stats=0 >"$logs/$target" 2>&1 || : >"$logs/$target.failed"
            fi
            i=$((i + 1))
        done
    ) &
    lane=$((lane + 1))
done
wait
status=0
for target in $targets; do
    echo "fuzz $target: ${seconds}s"
    if [ -e "$logs/$target.failed" ]; then
        tail -n 40 "$logs/$target"
        echo "fuzz $target: FAILED"
        status=1
    else
        grep -E '^Done [0-9]+ runs' "$logs/$target" || true
    fi
done
exit "$status"
