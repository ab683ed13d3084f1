#!/bin/sh
# Run the interactive lab demo (needs root): three ISPs, a router running uplinkd, a LAN
# client. Type `break 2 blackhole`, `conn 100`, `restore 2`, `quit`, ...
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

cd "$(dirname "$0")/../.." || exit 1
cargo build --release --bins --examples || exit $?
exec cargo run --release --example lab -- "$@"
