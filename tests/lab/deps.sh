# Sourced by the lab scripts: install the tools the lab drives, when missing (Debian).
need=""
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v nft >/dev/null 2>&1 || need="$need nftables"
command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
command -v sysctl >/dev/null 2>&1 || need="$need procps"
command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
# What only the test suite needs (tests/run.sh sets TEST_DEPS=1): the init script's
# shellcheck, headless Chromium for the status page and LuCI, lua for the node-exporter collector,
# node for the LuCI view logic, venv for the Prometheus parser.
if [ "${TEST_DEPS:-0}" = 1 ]; then
    command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
    command -v chromium >/dev/null 2>&1 || need="$need chromium"
    command -v lua5.1 >/dev/null 2>&1 || need="$need lua5.1"
    command -v node >/dev/null 2>&1 || need="$need nodejs"
    # The LuCI test drives Chromium with playwright-core (from npm) and hashes its
    # users' passwords with openssl.
    command -v npm >/dev/null 2>&1 || need="$need npm"
    command -v openssl >/dev/null 2>&1 || need="$need openssl"
    python3 -c "import venv" 2>/dev/null || need="$need python3-venv"
fi
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
