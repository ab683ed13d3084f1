#!/bin/sh
# Lints and API docs, warnings as errors: `cargo clippy --all-targets` and
# `cargo doc --no-deps`. Prints "clippy: ok|FAILED" and "doc: ok|FAILED" (with the
# messages); exit 0 when both pass. tests/run.sh runs it in the background, in a target
# directory of its own (CARGO_TARGET_DIR), so that it never holds the lock on target/
# that the foreground's cargo commands take.
set -u
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
if cargo clippy --all-targets -- -D warnings >"$log" 2>&1; then
    echo "clippy: ok"
else
    grep -E -A 12 '^(error|warning)' "$log" | head -n 150
    echo "clippy: FAILED"
    status=1
fi
if RUSTDOCFLAGS="-D warnings" cargo doc --no-deps >"$log" 2>&1; then
    echo "doc: ok"
else
    grep -E -A 12 '^(error|warning)' "$log" | head -n 150
    echo "doc: FAILED"
    status=1
fi
exit "$status"
