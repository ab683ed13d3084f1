# Sourced by the lab scripts: install the tools the lab drives, when missing (Debian).
need=""
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v nft >/dev/null 2>&1 || need="$need nftables"
command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
command -v sysctl >/dev/null 2>&1 || need="$need procps"
command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
if [ -n "$need" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && apt-get install -y -q $need || exit 1
    else
        echo "missing:$need" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (rustup) first" >&2
    exit 1
fi
