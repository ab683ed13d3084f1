#!/bin/sh
# The HA pair lab (issue 16): two routers in network namespaces run keepalived (VRRP),
# conntrackd (FT-FW over a dedicated link) and uplinkd with the same file.
#
#   client 10.99.0.10 ── brlan ──┬── r1 (10.99.0.2) ──┬── bra (172.16.1.0/24) ──┐
#                                └── r2 (10.99.0.3) ──┴── brb (172.16.2.0/24) ──┴── net:
#   VIPs: LAN 10.99.0.1, WAN A 172.16.1.10, WAN B 172.16.2.10     ISP gateways .254,
#   r1 sync0 192.168.100.1 ── r2 sync0 192.168.100.2 (conntrackd)  server 198.51.100.1
#
# The bridges live in a namespace of their own; each router joins each of them with a
# veth. The routers SNAT LAN traffic to the WAN VIP of the WAN uplinkd chose.
#
# Steps: both routers' kernel objects compared (r2 started with one WAN and reloaded,
# r1 reloaded with its sections reordered and pinned); 100 TCP connections and a UDP
# flow through r1; r1's links go down; r2 takes over: connections surviving and the UDP
# gap are reported; WAN A fails upstream: r2 fails over as a single router; r1 returns as
# backup without taking the connections back. Figures go to stdout and to $HA_REPORT.
#
# Needs root. Installs keepalived, conntrackd and conntrack (Debian) when missing; skips
# with one line when they cannot be installed. Exit 0 pass, 1 fail, 77 skipped.
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "ha: skipped: needs root (network namespaces)"
    exit 77
fi
need=""
command -v keepalived >/dev/null 2>&1 || need="$need keepalived"
command -v conntrackd >/dev/null 2>&1 || need="$need conntrackd"
command -v conntrack >/dev/null 2>&1 || need="$need conntrack"
command -v python3 >/dev/null 2>&1 || need="$need python3"
if [ -n "$need" ]; then
    if ! command -v apt-get >/dev/null 2>&1 ||
        ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends $need; } >/dev/null 2>&1; then
        echo "ha: skipped: cannot install$need"
        exit 77
    fi
fi
. tests/lab/deps.sh || exit 1

bin=${UPLINKD_BIN:-$root/target/debug/uplinkd}
[ -x "$bin" ] || cargo build -q --bin uplinkd || exit 1

p=uha$$
SW=$p-sw NET=$p-net LAN=$p-lan R1=$p-r1 R2=$p-r2
work=$(mktemp -d /tmp/uplinkd-ha.XXXXXX)
chmod 755 "$work"
report=${HA_REPORT:-$work/report.txt}
: >"$report"
fail=0
client_pid=""

ns() { n=$1; shift; ip netns exec "$n" "$@"; }
say() { echo "ha: $*"; echo "$*" >>"$report"; }
bad() { say "FAIL: $*"; fail=1; }

cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null
    for r in r1 r2; do
        for f in "$work/$r/uplinkd.pid" "$work/$r/keepalived.pid" "$work/$r/server.pid"; do
            [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
        done
        [ -f "$work/$r/conntrackd.conf" ] &&
            ip netns exec "$p-$r" conntrackd -C "$work/$r/conntrackd.conf" -k >/dev/null 2>&1
    done
    [ -f "$work/server.pid" ] && kill "$(cat "$work/server.pid")" 2>/dev/null
    sleep 1
    for n in $R1 $R2 $LAN $NET $SW; do
        ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$n" 2>/dev/null
    done
    if [ "${HA_KEEP:-0}" = 1 ]; then echo "ha: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for n in $SW $NET $LAN $R1 $R2; do
    ip netns add "$n" || exit 1
    ns "$n" ip link set lo up
done
for b in brlan bra brb; do
    ns "$SW" ip link add "$b" type bridge
    ns "$SW" ip link set "$b" up
done
# plug NS IFNAME BRIDGE PORTNAME
plug() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$SW" || exit 1
    ns "$SW" ip link set "$4" master "$3" up
    ns "$1" ip link set "$2" up
}
plug "$LAN" eth0 brlan lanc
plug "$NET" ispa bra neta
plug "$NET" ispb brb netb
for i in 1 2; do
    r=$p-r$i
    plug "$r" lan0 brlan "r${i}lan"
    plug "$r" wana bra "r${i}a"
    plug "$r" wanb brb "r${i}b"
done
ip link add sync0 netns "$R1" type veth peer name sync0 netns "$R2"

ns "$LAN" ip addr add 10.99.0.10/24 dev eth0
ns "$LAN" ip route add default via 10.99.0.1
ns "$NET" ip addr add 172.16.1.254/24 dev ispa
ns "$NET" ip addr add 172.16.2.254/24 dev ispb
ns "$NET" ip addr add 198.51.100.1/32 dev lo
ns "$NET" nft add table inet isp

for i in 1 2; do
    r=$p-r$i d=$work/r$i
    mkdir -p "$d/hooks"
    ns "$r" ip addr add 10.99.0.$((i + 1))/24 dev lan0
    ns "$r" ip addr add 172.16.1.$((i + 1))/24 dev wana
    ns "$r" ip addr add 172.16.2.$((i + 1))/24 dev wanb
    ns "$r" ip addr add 192.168.100.$i/24 dev sync0
    ns "$r" ip link set sync0 up
    ns "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0
    # LAN traffic leaves from the WAN VIP, which the peer takes over: masquerade would
    # use the router's own address, which dies with it.
    ns "$r" nft -f - <<NFT || exit 1
table ip hanat {
    chain post {
        type nat hook postrouting priority srcnat;
        ip saddr 10.99.0.0/24 oifname "wana" snat to 172.16.1.10
        ip saddr 10.99.0.0/24 oifname "wanb" snat to 172.16.2.10
    }
}
NFT

    sed -e "s|IPv4_address 192.168.100.1$|IPv4_address 192.168.100.$i|" \
        -e "s|IPv4_Destination_Address 192.168.100.2|IPv4_Destination_Address 192.168.100.$((3 - i))|" \
        -e "s|/var/log/conntrackd.log|$d/conntrackd.log|; s|/var/lock/conntrackd.lock|$d/conntrackd.lock|" \
        -e "s|/var/run/conntrackd.ctl|$d/conntrackd.ctl|" \
        contrib/ha/conntrackd.conf >"$d/conntrackd.conf"
    sed -e "s|priority 250|priority $((260 - i * 10))|; s|/etc/keepalived/uplinkd-notify.sh|$d/notify.sh|" \
        contrib/ha/keepalived.conf >"$d/keepalived.conf"
    sed -e "s|^CONF=.*|CONF=$d/conntrackd.conf|" \
        -e "s|^UPLINKD_OPTS=.*|UPLINKD_OPTS=\"--control-socket $d/uplinkd.sock\"|" \
        -e "s|^LOG=.*|LOG=$d/notify.log|; s|^uplinkd ha|$bin ha|" \
        contrib/ha/uplinkd-notify.sh >"$d/notify.sh"
    chmod 755 "$d/notify.sh"
    ns "$r" conntrackd -C "$d/conntrackd.conf" -d || { bad "conntrackd did not start in r$i"; exit 1; }
done

# The file both routers run; r2 first runs a version without wana and is reloaded.
cp contrib/ha/uplinkd.conf "$work/full.conf"
awk '/^config interface .wana./,/^$/ {next} /^config member .ma./,/^$/ {next}
     /use_member .ma./ {next} {print}' contrib/ha/uplinkd.conf >"$work/partial.conf"
start_uplinkd() { # N CONFIG
    d=$work/r$1
    cp "$2" "$d/uplinkd.conf"
    ns "$p-r$1" "$bin" -c "$d/uplinkd.conf" --stderr --ubus-socket none \
        --control-socket "$d/uplinkd.sock" --hooks-dir "$d/hooks" --user-hook "$d/none" \
        >"$d/uplinkd.log" 2>&1 &
    echo $! >"$d/uplinkd.pid"
}
ctl() { n=$1; shift; ns "$p-r$n" "$bin" "$@" --control-socket "$work/r$n/uplinkd.sock"; }
wait_for() { # SECONDS COMMAND...: true once COMMAND succeeds
    t=$(($1 * 10)); shift
    while [ "$t" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        t=$((t - 1))
    done
    return 1
}
up_both() { ctl "$1" status --json | grep -c '"state": "up"' | grep -qx 2; }

start_uplinkd 2 "$work/partial.conf"
sleep 1
start_uplinkd 1 "$work/full.conf"
wait_for 20 up_both 1 || bad "r1: WANs not up: $(tail -5 "$work/r1/uplinkd.log")"
cp "$work/full.conf" "$work/r2/uplinkd.conf"
ctl 2 reload || bad "r2: reload failed"
wait_for 20 up_both 2 || bad "r2: WANs not up after reload: $(tail -5 "$work/r2/uplinkd.log")"
sleep 1

# What a router owns in the kernel, with its own addresses written as ME.
objects() { # N
    r=$p-r$1 me=$(($1 + 1))
    {
        ns "$r" ip -4 rule show
        ns "$r" ip -4 route show table all proto 212
        ns "$r" ip nexthop show
        # Chain by chain in name order: `nft list table` shows them in creation order,
        # which differs between a router that started with a WAN and one reloaded to it.
        for c in $(ns "$r" nft list table inet uplinkd | awk '$1 == "chain" {print $2}' | sort); do
            ns "$r" nft list chain inet uplinkd "$c"
        done
    } | sed -e "s/\(10\.99\.0\|172\.16\.[12]\)\.$me\b/\1.ME/g"
}
compare() { # WHEN
    objects 1 >"$work/obj1"
    objects 2 >"$work/obj2"
    if cmp -s "$work/obj1" "$work/obj2"; then
        say "kernel objects identical $1 ($(wc -l <"$work/obj1") lines: rules, routes, nexthops, nft)"
    else
        bad "kernel objects differ $1:"
        diff "$work/obj1" "$work/obj2" | head -20
    fi
}
compare "after r2 started with wana missing and was reloaded"
# r1 reloads a file with the WAN sections in the opposite order, pinned to the same slots.
awk 'BEGIN{RS=""; ORS="\n\n"} /^config interface .wana./ {a=$0; next}
     /^config interface .wanb./ {print $0 "\n\toption slot 1"; print a "\n\toption slot 0"; next}
     {print}' "$work/full.conf" >"$work/r1/uplinkd.conf"
ctl 1 reload || bad "r1: reload failed"
sleep 2
compare "after r1 reloaded its sections reordered and pinned"

# keepalived: r1 first, so that it is master; both run with nopreempt.
ka() { # N
    d=$work/r$1
    ns "$p-r$1" keepalived -P -f "$d/keepalived.conf" -p "$d/keepalived.pid" \
        -r "$d/vrrp.pid" -c "$d/checkers.pid" -l -D -n >"$d/keepalived.log" 2>&1 &
    echo $! >"$d/keepalived.pid.sh"
}
role() { ctl "$1" status --json | grep -A1 '"ha"' | grep -q "\"role\": \"$2\""; }
ka 1
wait_for 15 role 1 master || bad "r1 did not become master: $(tail -5 "$work/r1/keepalived.log")"
ka 2
wait_for 15 role 2 backup || bad "r2 did not become backup: $(tail -5 "$work/r2/keepalived.log")"
say "roles: r1 master, r2 backup (from keepalived's notify through 'uplinkd ha')"

# Traffic: the server in net, the client on the LAN.
ns "$NET" python3 tests/ha/flows.py server 198.51.100.1 7000 >"$work/server.log" 2>&1 &
echo $! >"$work/server.pid"
sleep 0.5
mkfifo "$work/cmd"
ns "$LAN" python3 tests/ha/flows.py client 198.51.100.1 7000 100 <"$work/cmd" >"$work/client.out" 2>&1 &
client_pid=$!
exec 3>"$work/cmd"
answers() { wc -l <"$work/client.out"; }
answered() { [ "$(answers)" -gt "$1" ]; } # N: a line beyond the first N
# Runs in $(...), where bad() would set fail in a subshell: a missing answer is noted in
# a file instead, and the line says so.
ask() { # COMMAND: the client's one-line answer
    n=$(answers)
    echo "$1" >&3
    if wait_for 30 answered "$n"; then
        tail -n 1 "$work/client.out"
    else
        echo "$1" >>"$work/unanswered"
        echo "no answer to $1 in 30 s"
    fi
}
wait_for 30 grep -q ready "$work/client.out" || { bad "client: $(cat "$work/client.out")"; exit 1; }
say "100 connections through r1, leaving from $(grep ready "$work/client.out" | cut -d' ' -f2-)"
sleep 2
r=$(ask check); say "before: $r"
ask gap >/dev/null
r2cache() {
    ns "$R2" conntrackd -C "$work/r2/conntrackd.conf" -s cache 2>/dev/null |
        grep -i -m1 "external" -A3 | tr -s ' \n' ' '
}
# conntrackd sends each new entry at once; wait until r2 holds the 100 connections and
# the UDP flow (a shortfall is reported, and the takeover check below judges it).
synced() { r2cache | awk '{for (i = 1; i < NF; i++) if ($i == "objects:") exit !($(i + 1) >= 101); exit 1}'; }
wait_for 20 synced || say "r2 external cache short of 101 entries after 20 s"
say "r2 external cache: $(r2cache)"

# r1 dies: every link of its namespace goes down at once.
t0=$(date +%s.%N)
for l in lan0 wana wanb sync0; do ns "$R1" ip link set "$l" down; done
wait_for 15 role 2 master || bad "r2 did not take over"
t1=$(date +%s.%N)
say "r2 master $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s after r1's links went down"
sleep 3
r=$(ask check); say "after takeover: $r"
case $r in "alive 100/100 moved 0") ;; *) bad "connections lost or moved in the takeover" ;; esac
g=$(ask gap); say "UDP across the takeover: $g"
# The gap is a measurement (goal < 3 s, bench/README.md), not a pass/fail: it follows
# keepalived's advert timing and the machine's load.
gap=$(echo "$g" | cut -d' ' -f2)
awk "BEGIN{exit !($gap < 3)}" || say "UDP gap $gap s is above the 3 s goal"

# WAN A fails upstream of the new master: r2 fails over as a single router would.
ns "$NET" nft add chain inet isp in "{ type filter hook prerouting priority -300; }"
ns "$NET" nft add rule inet isp in iifname ispa drop
ns "$NET" nft add chain inet isp out "{ type filter hook output priority -300; }"
ns "$NET" nft add rule inet isp out oifname ispa drop
wait_for 20 sh -c "'$bin' status --json --control-socket '$work/r2/uplinkd.sock' wana | grep -q '\"state\": \"down\"'" ||
    bad "r2: wana not down after its ISP failed"
sleep 2
r=$(ask check); say "after WAN A failed on r2: $r (the connections through WAN A die with it)"
n=$(ask open); say "a new connection: $n"
case $n in "new 172.16.2.10") ;; *) bad "new connection not on WAN B: $n" ;; esac
g=$(ask gap); say "UDP across the WAN failure: $g"
ns "$NET" nft flush table inet isp
wait_for 20 sh -c "'$bin' status --json --control-socket '$work/r2/uplinkd.sock' wana | grep -q '\"state\": \"up\"'" ||
    bad "r2: wana not back up"
before=$(ask check)

# r1 returns: it must stay backup (nopreempt) and take nothing back.
for l in lan0 wana wanb sync0; do ns "$R1" ip link set "$l" up; done
wait_for 20 role 1 backup || bad "r1 did not return as backup: $(tail -3 "$work/r1/notify.log")"
sleep 4
role 2 master || bad "r2 lost the master role to the returning r1"
after=$(ask check)
say "r1 back as backup; connections before: $before, after: $after"
[ "${before%% moved*}" = "${after%% moved*}" ] || bad "connections lost when r1 returned"
g=$(ask gap); say "UDP while r1 returned: $g"

echo quit >&3
[ -s "$work/unanswered" ] && bad "the client did not answer: $(tr '\n' ' ' <"$work/unanswered")"
if [ "$fail" = 0 ]; then echo "ha: ok"; else
    for r in r1 r2; do echo "== $r"; tail -n 15 "$work/$r/uplinkd.log"; cat "$work/$r/notify.log" 2>/dev/null; done
fi
exit "$fail"
