#!/bin/sh
# Build everything and run the whole test suite, network-namespace lab included.
# Needs root (the lab creates network namespaces). On Debian/Ubuntu the tools the lab
# uses are installed first if they are missing.
set -u

#
# What does not change between runs is built once into a cache outside the clone
# (UPLINKD_BUILD_CACHE, default /var/cache/uplinkd-build), like the upstream userland in
# /var/cache/uplinkd-upstream: the router targets' std and dependencies, zig, and the
# instrumented fuzz build. Each phase prints its wall time ("time: ...").

TEST_DEPS=1 . "$(dirname "$0")/lab/deps.sh"

cd "$(dirname "$0")/.." || exit 1
cache=${UPLINKD_BUILD_CACHE:-/var/cache/uplinkd-build}
mkdir -p "$cache" || exit 1
cross_targets="mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf"

start=$(date +%s)
last=$start
phase() {
    _now=$(date +%s)
    echo "time: $1 $((_now - last))s (total $((_now - start))s)"
    last=$_now
}

# One build serves `cargo test`, the lab, the demo and the upstream tests (same profile).
cargo build --all-targets || exit $?
phase "cargo build"

log=$(mktemp)
crosslog=$(mktemp)
bg=$(mktemp -d)
trap 'rm -rf "$log" "$crosslog" "$bg"' EXIT

# The router builds are CPU-bound and the lab mostly waits on timers: the former run
# meanwhile, at the lowest priority, so that they do not delay the lab's daemons. One
# build at a time per cache.
cross_pid=""
if [ "${UPLINKD_SKIP_CROSS:-0}" != 1 ]; then
    CARGO_TARGET_DIR=$cache/cross-target UPLINKD_VENV=$cache/cross-venv \
        nice -n 19 flock "$cache/cross.lock" ./packaging/build.sh $cross_targets >"$crosslog" 2>&1 &
    cross_pid=$!
fi

# The instrumented fuzz build and then the lints and API docs (tests/lint.sh: clippy and
# rustdoc, warnings as errors) are CPU-bound as well: they run meanwhile too, at the
# lowest priority, one after the other. The lints use target/lint: `cargo clippy` in
# target/ would hold its lock against the foreground's cargo, and it reuses none of
# `cargo build`'s output anyway. Each step leaves its status in $bg/<step>.rc.
(
    FUZZ_TARGET_DIR=$cache/fuzz-target nice -n 19 ./tests/fuzz.sh --build >"$bg/fuzz-build.log" 2>&1
    echo $? >"$bg/fuzz-build.rc"
    CARGO_TARGET_DIR=target/lint nice -n 19 ./tests/lint.sh >"$bg/lint.log" 2>&1
    echo $? >"$bg/lint.rc"
) &
bg_pid=$!
# bg_wait STEP: wait until the chain has done STEP; STEP's exit status.
bg_wait() {
    while [ ! -s "$bg/$1.rc" ] && kill -0 "$bg_pid" 2>/dev/null; do sleep 1; done
    [ -s "$bg/$1.rc" ] || return 1
    return "$(cat "$bg/$1.rc")"
}

# Keep the full output in a file, print cargo's result lines, exit with cargo's status.
# The lab (one binary, tests in parallel) must run here: a skip would be a failure.
# Its tests mostly wait on timers (on 2 cores: 61 tests, about 450 s of test time for
# 50 s of CPU), so they run 8 at a time, not one per core (UPLINKD_LAB_THREADS).
# The LuCI test drives Chromium against LuCI's ucode CGI: it runs alone at the end, once
# the background builds are done, since on 2 cores beside the parallel lab or those
# builds its page loads can outlast the browser's timeouts.
lab_threads=${UPLINKD_LAB_THREADS:-8}
UPLINKD_LAB_REQUIRED=1 cargo test --no-fail-fast -- --skip luci::luci_pages \
    --test-threads "$lab_threads" >"$log" 2>&1
status=$?
grep -E '^(test result:|     Running |test .* FAILED|error)' "$log"
if [ "$status" -ne 0 ]; then
    sed -n '/^failures:$/,/^test result:/p' "$log" | head -n 200
fi
phase "cargo test"

# The Prometheus output, parsed by a real exposition-format parser.
if ./tests/metrics.sh >"$log" 2>&1; then
    grep -E '^metrics' "$log"
else
    tail -n 40 "$log"
    status=1
fi
phase "metrics"

# The LuCI app: syntax checks and the view logic under node's test runner.
if ./tests/luci.sh >"$log" 2>&1; then
    grep -E '^luci' "$log"
else
    tail -n 60 "$log"
    status=1
fi
phase "luci"

# OpenWrt's real userland built from ../shared/upstream (tests/upstream/README.md): the
# harness itself, then uplinkd on real ubusd, rpcd, uhttpd and procd. Without the sources
# each prints one line and is skipped.
for t in smoke openwrt; do
    sh "tests/upstream/$t.sh" >"$log" 2>&1
    rc=$?
    case $rc in
    0) grep -E '^upstream' "$log" ;;
    77) head -n 1 "$log" ;;
    *) tail -n 80 "$log"; status=1 ;;
    esac
    phase "upstream $t"
done

# An HA pair (README "High availability"): keepalived and conntrackd from Debian's
# packages between two namespace routers; skipped with one line without them.
sh tests/ha.sh >"$log" 2>&1
case $? in
0) grep -E '^ha' "$log" ;;
77) head -n 1 "$log" ;;
*) tail -n 80 "$log"; status=1 ;;
esac
phase "ha"

# The README's demo, as a smoke test: without a terminal it runs its scripted tour.
if cargo run -q --example lab </dev/null >"$log" 2>&1; then
    echo "demo tour: ok"
else
    echo "demo tour: FAILED"
    tail -n 60 "$log"
    status=1
fi
phase "demo"

# The packages under the real package managers: opkg and apk-tools built from
# ../shared/upstream (skipped with one line without it), and the amd64 .deb in a booted
# Debian container with systemd (UPLINKD_SKIP_DEBIAN=1 skips it).
sh tests/pkgmanagers.sh || status=1
phase "pkgmanagers"
sh tests/debian.sh || status=1
phase "debian"

# The decoders of untrusted bytes, fuzzed for a bounded time, two targets at a time (one
# core each, as long as each was fuzzed when they ran one after the other). This comes
# after the phases that mostly wait, which leave the background builds the CPU.
if ! bg_wait fuzz-build; then
    tail -n 60 "$bg/fuzz-build.log"
    echo "fuzz build: FAILED"
    status=1
elif FUZZ_JOBS=2 FUZZ_TARGET_DIR=$cache/fuzz-target ./tests/fuzz.sh >"$log" 2>&1; then
    grep -E '^(fuzz|Done)' "$log"
else
    tail -n 60 "$log"
    status=1
fi
phase "fuzz"

# The lints, finished in the background by now or soon.
bg_wait lint || status=1
cat "$bg/lint.log"
phase "clippy, doc (the rest of them)"

# Router builds: the init script against stub procd, the mips (big-endian) and armv7
# binaries under qemu-user, the size budget on mipsel, and the package structure. The
# first run installs zig, qemu-user and rust-src and builds std per target (minutes);
# later runs reuse the cache. UPLINKD_SKIP_CROSS=1 skips the builds and qemu runs.
sh tests/initscript.sh || status=1
phase "initscript"
if [ -n "$cross_pid" ]; then
    if ! wait "$cross_pid"; then
        tail -n 40 "$crosslog"
        echo "cross build failed: run packaging/build.sh to see why" >&2
        status=1
    fi
    phase "cross build (the rest of it)"
    UPLINKD_SKIP_BUILD=1 sh tests/cross.sh || status=1
    UPLINKD_SKIP_BUILD=1 sh bench/size.sh $cross_targets || status=1
    # Packages of the targets built above (aarch64 is left out of CI to save a std build).
    pkgdir=$(mktemp -d)
    for t in $cross_targets; do
        mkdir -p "$pkgdir/$t" && cp "dist/$t/uplinkd" "$pkgdir/$t/" || status=1
    done
    if DIST=$pkgdir ./packaging/package.sh >/dev/null; then
        DIST=$pkgdir sh tests/packages.sh || status=1
    else
        status=1
    fi
    rm -rf "$pkgdir"
    phase "cross tests, size, packages"
fi

# Real LuCI in a browser, alone on the machine (see the lab above).
if UPLINKD_LAB_REQUIRED=1 cargo test --test lab luci::luci_pages >"$log" 2>&1; then
    grep -E '^test result:' "$log"
else
    sed -n '/^failures:$/,/^test result:/p' "$log" | head -n 200
    status=1
fi
phase "luci browser"
exit "$status"
