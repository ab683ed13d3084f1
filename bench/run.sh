#!/bin/sh
# Build release and run the lab benchmarks (root: they create network namespaces).
# The reports are printed and written to bench/out/lab.txt, bench/out/userset.txt,
# bench/out/flows.txt and bench/out/modes.txt.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin uplinkd --example bench-lab --example bench-userset \
    --example bench-flows --example bench-modes
"target/release/examples/bench-lab" "target/release/uplinkd"
"target/release/examples/bench-userset" "target/release/uplinkd"
"target/release/examples/bench-flows" "target/release/uplinkd"
exec "target/release/examples/bench-modes" "target/release/uplinkd"
