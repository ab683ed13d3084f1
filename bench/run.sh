#!/bin/sh
# Build release and run the lab benchmark (root: it creates network namespaces).
# The report is printed and written to bench/out/lab.txt.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin uplinkd --example bench-lab
exec "target/release/examples/bench-lab" "target/release/uplinkd"
