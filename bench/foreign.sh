#!/bin/sh
# What routes that are not uplinkd's cost it: CPU and RSS of the daemon while another
# process adds and deletes 50 routes per second in `main`, with no foreign routes,
# with N (300000) routes in `main`, and with N routes in a table of their own.
# Runs in a throwaway network namespace; needs root, ip.
#   bench/foreign.sh [UPLINKD [N [SECONDS]]]
set -u
bin=${1:-target/debug/uplinkd}
n=${2:-300000}
secs=${3:-20}
ns=upl-bench-foreign-$$
dir=$(mktemp -d)
hz=$(getconf CLK_TCK)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

cat >"$dir/uplinkd.conf" <<CONF
config globals 'globals'
	option default_policy 'balanced'
config interface 'wan1'
	option device 'wan1'
config interface 'wan2'
	option device 'wan2'
config member 'm1'
	option interface 'wan1'
config member 'm2'
	option interface 'wan2'
config policy 'balanced'
	list use_member 'm1'
	list use_member 'm2'
CONF

# Lines for `ip -batch`: N /32 routes (route add|del PREFIX.a.b/32 ...).
routes() { # verb count first-octet rest
    awk -v verb="$1" -v n="$2" -v o="$3" -v rest="$4" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "route %s %d.%d.%d.%d/32 %s\n", verb, o, int(i / 65536) % 256, int(i / 256) % 256, i % 256, rest
    }'
}

run() { # label: setup already done; start the daemon, churn, measure
    "$bin" -c "$dir/uplinkd.conf" --stderr --control-socket none --ubus-socket none \
        >"$dir/log" 2>&1 &
    pid=$!
    sleep 3
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    i=0
    while [ "$i" -lt "$secs" ]; do
        { routes add 50 10 "dev churn0"; } | ip -n "$ns" -batch - 2>/dev/null
        sleep 0.5
        { routes del 50 10 "dev churn0"; } | ip -n "$ns" -batch - 2>/dev/null
        sleep 0.5
        i=$((i + 1))
    done
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null; pid=
    awk -v l="$1" -v t="$((t1 - t0))" -v hz="$hz" -v s="$secs" -v rss="$rss" \
        'BEGIN { printf "%-32s CPU %.2f %% of a core   RSS %d kB\n", l, 100 * t / hz / s, rss }'
}

ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
for k in 1 2; do
    ip -n "$ns" link add "wan$k" type veth peer name "wan${k}p"
    ip -n "$ns" link set "wan${k}p" up
    ip -n "$ns" addr add "10.20.$k.2/24" dev "wan$k"
    ip -n "$ns" link set "wan$k" up
done
ip -n "$ns" route add default via 10.20.1.1 dev wan1
for d in churn0 bgp0; do
    ip -n "$ns" link add "$d" type veth peer name "${d}p"
    ip -n "$ns" link set "${d}p" up
    ip -n "$ns" link set "$d" up
done
ip netns exec "$ns" true || exit 1
bin=$(readlink -f "$bin")
exec_in() { ip netns exec "$ns" "$@"; }
# Run the daemon inside the namespace.
real_bin=$bin
bin="$dir/in-ns"
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "$real_bin" >"$bin"
chmod +x "$bin"

run "no foreign routes"
routes add "$n" 100 "dev bgp0" | ip -n "$ns" -batch -
run "$n routes in main"
routes del "$n" 100 "dev bgp0" | ip -n "$ns" -batch -
routes add "$n" 100 "dev bgp0 table 500" | ip -n "$ns" -batch -
run "$n routes in table 500"
