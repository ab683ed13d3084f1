#!/bin/sh
# Run the interactive lab demo (needs root): three ISPs, a router running uplinkd, a LAN
# client. Type `break 2 blackhole`, `conn 100`, `restore 2`, `quit`, ...
set -u

. "$(dirname "$0")/deps.sh"

cd "$(dirname "$0")/../.." || exit 1
cargo build --release --bins --examples || exit $?
exec cargo run --release --example lab -- "$@"
