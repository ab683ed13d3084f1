#!/bin/sh
# Build release and measure probing while the HTTP listener serves a request flood
# (root: it creates network namespaces). Usage: bench/http.sh [REQUESTS_PER_S [SECONDS]]
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin uplinkd --example bench-http
target=${CARGO_TARGET_DIR:-target}
exec "$target/release/examples/bench-http" "$target/release/uplinkd" "$@"
