# shellcheck shell=sh
# Sourced by the package tests: sets $bin to the uplinkd binary to package. $UPLINKD_BIN,
# else the x86_64 musl build in dist/, else the debug build (built here when missing).
bin=${UPLINKD_BIN:-}
[ -n "$bin" ] || for b in dist/x86_64-unknown-linux-musl/uplinkd target/debug/uplinkd; do
    [ -f "$b" ] && { bin=$b; break; }
done
[ -n "$bin" ] || { cargo build -q --bin uplinkd && bin=target/debug/uplinkd; } || exit 1
