#!/bin/sh
# Cross-built binaries under qemu-user: catches endianness and 32-bit bugs before a
# router does.
#
#   tests/cross.sh [TARGET...]     default: mips-unknown-linux-musl armv7-unknown-linux-musleabihf
#
# Builds with packaging/build.sh (installing zig, qemu-user, rust-src on first use; set
# UPLINKD_NO_INSTALL=1 to use what is there), then for each target runs:
# --version; 'check' on the shipped default config (exit 0) and on a broken one (exit 1,
# file:line); 'import-mwan3'; and a dry run against the kernel inside a throwaway
# network namespace with two WANs, one of which stops answering probes: the plan must
# show up as 'ip' lines, the dead WAN must be taken out after its probes time out (the
# timers fire: trap 1 of mips musl), and SIGTERM must end it promptly.
#
# Needs root (network namespaces). Only touches namespaces it creates.
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

targets=${*:-mips-unknown-linux-musl armv7-unknown-linux-musleabihf}
if [ "${UPLINKD_SKIP_BUILD:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    ./packaging/build.sh $targets >/dev/null || { echo "cross: build failed" >&2; exit 1; }
fi

tmp=$(mktemp -d) || exit 1
ns=uplinkd-cross-$$-1
isp=uplinkd-cross-$$-2
cleanup() {
    ip netns del "$ns" 2>/dev/null
    ip netns del "$isp" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail=0
bad() { echo "cross: FAIL: $*" >&2; fail=1; }

# The router namespace: wan1 and wan2 to an "ISP" namespace that answers on
# 192.0.2.1 (wan1's target) but not on 198.51.100.99 (wan2's target).
ip netns add "$ns" && ip netns add "$isp" || exit 1
# No IPv6: its address and DAD events would wake the daemon's loop at random and
# hide timers that never fire (see the timer check below).
for n in "$ns" "$isp"; do
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$ns" link set lo up
ip -n "$isp" link set lo up
ip -n "$ns" link add wan1 type veth peer name isp1 netns "$isp"
ip -n "$ns" link add wan2 type veth peer name isp2 netns "$isp"
ip -n "$ns" addr add 192.0.2.2/24 dev wan1
ip -n "$ns" addr add 198.51.100.2/24 dev wan2
ip -n "$isp" addr add 192.0.2.1/24 dev isp1
ip -n "$isp" addr add 198.51.100.1/24 dev isp2
for l in wan1 wan2; do ip -n "$ns" link set "$l" up; done
for l in isp1 isp2; do ip -n "$isp" link set "$l" up; done
ip -n "$ns" route add default via 192.0.2.1 dev wan1 metric 10
ip -n "$ns" route add default via 198.51.100.1 dev wan2 metric 20

cat >"$tmp/lab.conf" <<'C'
config interface 'wan1'
	option device 'wan1'
	list track_ip '192.0.2.1'
	option interval '500ms'
	option timeout '500ms'
	option down '2'
config interface 'wan2'
	option device 'wan2'
	list track_ip '198.51.100.99'
	option interval '500ms'
	option timeout '500ms'
	option down '2'
config member 'm1'
	option interface 'wan1'
config member 'm2'
	option interface 'wan2'
config policy 'balanced'
	list use_member 'm1'
	list use_member 'm2'
C
printf "config interface 'wan'\n\toption device eth1\n\toption interval '2x'\nconfig policy 'p'\n" >"$tmp/broken.conf"
printf "config interface 'wan'\n\tlist track_ip '1.1.1.1'\nconfig member 'm'\n\toption interface 'wan'\nconfig policy 'p'\n\tlist use_member 'm'\n" >"$tmp/mwan3"

for t in $targets; do
    case "$t" in
        mips-*) qemu="qemu-mips -cpu 24Kc" ;;
        mipsel-*) qemu="qemu-mipsel -cpu 24Kc" ;;
        armv7-*) qemu="qemu-arm -cpu cortex-a7" ;;
        aarch64-*) qemu="qemu-aarch64 -cpu cortex-a53" ;;
        *) bad "$t: no qemu known"; continue ;;
    esac
    bin="${DIST:-$root/dist}/$t/uplinkd"
    echo "== $t ($qemu)"
    # shellcheck disable=SC2086
    run() { $qemu "$bin" "$@"; }

    out=$(run --version) && [ "$out" = "uplinkd $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)" ] ||
        bad "$t: --version: $out"
    run check -c openwrt-package/uplinkd/files/etc/config/uplinkd >"$tmp/out" 2>&1 ||
        bad "$t: check of the shipped default: $(cat "$tmp/out")"
    grep -q '^wan: device eth1' "$tmp/out" || bad "$t: check summary: $(cat "$tmp/out")"
    run check -c "$tmp/broken.conf" >"$tmp/out" 2>&1
    [ $? = 1 ] || bad "$t: check of a broken file did not exit 1"
    grep -q "broken.conf:3: section 'wan' option 'interval'" "$tmp/out" ||
        bad "$t: check of a broken file: $(cat "$tmp/out")"
    run import-mwan3 -c "$tmp/mwan3" -o "$tmp/imported" 2>/dev/null &&
        run check -c "$tmp/imported" >/dev/null || bad "$t: import-mwan3"

    # The netlink round trip and the timers.
    # shellcheck disable=SC2086
    ip netns exec "$ns" $qemu "$bin" --dry-run --stderr -c "$tmp/lab.conf" >"$tmp/plan" 2>"$tmp/log" &
    pid=$!
    # wan2 goes down after 2 failed rounds of 500 ms: wait for it, at most 20 s.
    i=0
    while [ $i -lt 40 ] && ! grep -q 'wan2 down' "$tmp/log"; do
        sleep 0.5
        i=$((i + 1))
    done
    # Timers (trap 1 of mips musl): with a timer that never fires the loop sleeps until
    # SIGTERM wakes it, and only then notices wan2's overdue probes.
    grep -q 'wan2 down' "$tmp/log" || bad "$t: wan2 did not go down while running (timers?)"
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt 20 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.5
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        bad "$t: dry run did not exit within 10 s of SIGTERM"
        kill -KILL "$pid"
    fi
    wait "$pid"
    status=$?
    [ "$status" = 0 ] || bad "$t: dry run exited with $status"
    grep -q '^ip route .*table' "$tmp/plan" || bad "$t: no 'ip route' in the plan"
    grep -q '^ip .*rule add' "$tmp/plan" || bad "$t: no 'ip rule' in the plan"
    grep -q 'dev wan1' "$tmp/plan" || bad "$t: plan does not use wan1"
    [ -n "${UPLINKD_CROSS_VERBOSE:-}" ] && cat "$tmp/log"
    if [ "$fail" != 0 ]; then
        echo "-- plan"; cat "$tmp/plan"; echo "-- log"; cat "$tmp/log"
    else
        echo "   $(grep -c '^ip ' "$tmp/plan") ip lines, wan2 down after probes, clean exit"
    fi
done
[ "$fail" = 0 ] && echo "cross: ok"
exit "$fail"
