#!/bin/sh
# uplinkd in OpenWrt's real userland (built by build.sh, run by lib.sh): the ubus object
# through the real ubusd and `ubus` CLI, ACLs through real rpcd sessions and uhttpd,
# events, a ubusd restart; then the project's init script under real procd: start,
# reload_config, respawn, stop, validation errors, capabilities.
#
# Topology: a router namespace with wan1 (to isp1, whose target answers) and wan2 (to
# isp2, whose target does not exist), default routes via both gateways as netifd leaves
# them. Prints one line per check and "upstream openwrt: N passed, N failed".
set -u
UP_LIB=$0
. "$(dirname "$0")/lib.sh"
up_build || exit $?

bin=${UPLINKD_BIN:-$UP_REPO/target/debug/uplinkd}
[ -x "$bin" ] || { echo "upstream openwrt: build uplinkd first ($bin missing)"; exit 1; }

tag=$$
R=ulup-r-$tag
I1=ulup-i1-$tag
I2=ulup-i2-$tag
dir=$(up_new)
cleanup() {
    up_teardown "$dir"
    for n in "$R" "$I1" "$I2"; do ip netns delete "$n" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
bad() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/    /' | head -n 30
}
# check NAME CMD...: CMD succeeds.
check() {
    _name=$1
    shift
    if _out=$("$@" 2>&1); then ok "$_name"; else bad "$_name" "$_out"; fi
}
# JSON on stdin; a Python expression over it as `v` must be true.
jtrue() {
    python3 -c 'import json,sys; v=json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}
ub() { up_run "$dir" ubus "$@"; }
# call_is EXPR METHOD [ARGS]: `ubus call uplinkd METHOD ARGS` succeeds and EXPR holds.
call_is() {
    _e=$1
    shift
    _j=$(ub call uplinkd "$@") && printf '%s' "$_j" | jtrue "$_e" || { echo "$_j" && return 1; }
}
state_is() {
    call_is "v['interfaces']['$1']['state'] == '$2'" status
}
daemon_alive() {
    _p=$(up_pids "$dir" | while read -r p; do
        # (ujail names itself after the jail: match the command line.)
        [ "$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -n 1)" = /usr/sbin/uplinkd ] && echo "$p"
    done)
    [ -n "$_p" ] && echo "$_p"
}

# --- topology -------------------------------------------------------------------------
for n in "$R" "$I1" "$I2"; do ip netns add "$n" && ip -n "$n" link set lo up || exit 1; done
for k in 1 2; do
    eval "isp=\$I$k"
    ip -n "$R" link add "wan$k" type veth peer name rtr netns "$isp" || exit 1
    ip -n "$R" addr add "10.201.$k.2/24" dev "wan$k"
    ip -n "$R" link set "wan$k" up
    ip -n "$isp" addr add "10.201.$k.1/24" dev rtr
    ip -n "$isp" link set rtr up
    ip -n "$R" route add default via "10.201.$k.1" dev "wan$k" metric "$((k * 10))"
done
ip -n "$I1" addr add 198.51.100.1/32 dev lo || exit 1

up_create "$dir" "$R" || exit 1
up_install_project "$dir" "$bin" || exit 1
root=$dir/root
mkdir -p "$root/usr/share/rpcd/acl.d"
cp "$UP_REPO/openwrt-package/luci-app-uplinkd/root/usr/share/rpcd/acl.d/luci-app-uplinkd.json" \
    "$root/usr/share/rpcd/acl.d/"
cat >"$root/etc/config/uplinkd" <<'EOF'
config globals 'globals'
	option default_policy 'balanced'
	option log_level 'debug'

config interface 'wan1'
	option enabled '1'
	option device 'wan1'
	list track_ip '198.51.100.1'
	option interval '0.5'
	option timeout '1'
	option failure_interval '1'
	option recovery_interval '1'
	option down '2'
	option up '2'

config interface 'wan2'
	option enabled '1'
	option device 'wan2'
	list track_ip '198.51.100.1'
	option interval '0.5'
	option timeout '1'
	option failure_interval '1'
	option recovery_interval '1'
	option down '2'
	option up '2'

config member 'wan1_m1'
	option interface 'wan1'
	option metric '1'
	option weight '1'

config member 'wan2_m1'
	option interface 'wan2'
	option metric '1'
	option weight '1'

config policy 'balanced'
	list use_member 'wan1_m1'
	list use_member 'wan2_m1'
	option last_resort 'unreachable'
EOF
# A read-only rpcd login (password "reader") with the LuCI app's read ACL.
hash=$(up_run "$dir" mkpasswd -m md5 reader)
cat >>"$root/etc/config/rpcd" <<EOF

config login
	option username 'reader'
	option password '$hash'
	list read 'luci-app-uplinkd'
EOF

# --- ubus -----------------------------------------------------------------------------
up_ubusd "$dir" || exit 1
up_spawn "$dir" uplinkd /usr/sbin/uplinkd -c /etc/config/uplinkd
check "uplinkd registers on the real ubusd" up_wait_ubus "$dir" uplinkd 20

out=$(ub -v list uplinkd 2>&1)
case $out in
*'"status":{"interface":"String"}'*'"set_weight":{"interface":"String","weight":"Integer"}'*)
    ok "ubus -v list uplinkd shows the methods and argument types" ;;
*) bad "ubus -v list uplinkd shows the methods and argument types" "$out" ;;
esac
for m in reload probe disable enable; do
    case $out in *"\"$m\":"*) ;; *) bad "ubus -v list has $m" "$out" ;; esac
done

check "wan1 up through ubus" up_wait 30 state_is wan1 up
check "wan2 down through ubus" up_wait 30 state_is wan2 down
check "status with ubus_rpc_session as uhttpd and rpcd add it" \
    call_is "v['interfaces']['wan1']['state'] == 'up'" status '{"ubus_rpc_session":"x"}'
check "status of one interface" call_is "'wan1' in json.dumps(v)" status '{"interface":"wan1"}'
check "probe" ub call uplinkd probe '{"interface":"wan1","ubus_rpc_session":"x"}'
check "disable" ub call uplinkd disable '{"interface":"wan1"}'
check "disabled wan1 is drained" call_is "v['interfaces']['wan1'].get('drained') == True" status
check "enable restores wan1" ub call uplinkd enable '{"interface":"wan1"}'
check "enabled wan1 is no longer drained" call_is "v['interfaces']['wan1'].get('drained') != True" status
check "set_weight" ub call uplinkd set_weight '{"interface":"wan1","weight":5}'
check "the weight shows in status" call_is "'5' in json.dumps(v['interfaces']['wan1'])" status
check "reload" ub call uplinkd reload

# Invalid arguments: the ubus CLI exits with minus ubus's status (256 - N), and the
# daemon keeps running.
expect_status() {
    _want=$(((256 - $1) % 256))
    shift
    ub "$@" >/dev/null 2>&1
    _rc=$?
    [ "$_rc" = "$_want" ] || { echo "exit $_rc, want $_want: $(ub "$@" 2>&1)" && return 1; }
}
check "a string weight is Invalid argument (2)" \
    expect_status 2 call uplinkd set_weight '{"interface":"wan1","weight":"x"}'
check "an unknown key is Invalid argument (2)" expect_status 2 call uplinkd status '{"iface":"wan1"}'
check "an unknown interface is Not found (4)" expect_status 4 call uplinkd disable '{"interface":"nope"}'
check "an unknown method is Method not found (3)" expect_status 3 call uplinkd frobnicate
check "the daemon keeps running after bad calls" daemon_alive
check "and still answers" state_is wan1 up

# Events: wan1 loses its target, then gets it back.
up_spawn "$dir" listen ubus listen uplinkd.wan
up_spawn "$dir" subscribe ubus subscribe uplinkd
sleep 0.5
ip -n "$I1" addr del 198.51.100.1/32 dev lo
check "wan1 goes down when its target goes" up_wait 30 state_is wan1 down
check "ubus listen sees the uplinkd.wan down event" up_wait 10 grep -q '"uplinkd.wan".*down' "$dir/log/listen"
ip -n "$I1" addr add 198.51.100.1/32 dev lo
check "wan1 comes back" up_wait 30 state_is wan1 up
check "ubus listen sees the uplinkd.wan up event" up_wait 10 grep -q '"uplinkd.wan".*"up"' "$dir/log/listen"
check "ubus subscribe uplinkd gets the uplinkd.wan notifications" \
    grep -q '"uplinkd.wan"' "$dir/log/subscribe"
up_stop "$dir" listen
up_stop "$dir" subscribe

# ACLs: a read-only rpcd session may call status, not disable (session access checks
# and the real path, uhttpd's /ubus JSON-RPC).
up_rpcd "$dir" || exit 1
up_uhttpd "$dir" 127.0.0.1:8080 || exit 1
sid=$(ub call session login '{"username":"reader","password":"reader"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ubus_rpc_session"])')
if [ -n "$sid" ]; then ok "rpcd login as the read-only user"; else bad "rpcd login as the read-only user"; fi
access() {
    ub call session access "{\"ubus_rpc_session\":\"$sid\",\"scope\":\"ubus\",\"object\":\"uplinkd\",\"function\":\"$1\"}" |
        jtrue "v['access'] == $2"
}
check "session access: status allowed" access status True
check "session access: disable refused" access disable False
rpc() {
    up_run "$dir" wget -q -O - --post-data \
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"call\",\"params\":[\"$sid\",\"uplinkd\",\"$1\",$2]}" \
        http://127.0.0.1:8080/ubus
}
out=$(rpc status '{}')
case $out in
*'"result":[0,{'*'"interfaces"'*) ok "uhttpd /ubus: status for the read-only user" ;;
*) bad "uhttpd /ubus: status for the read-only user" "$out" ;;
esac
out=$(rpc disable '{"interface":"wan1"}')
case $out in
*'"code":-32002'*) ok "uhttpd /ubus: disable refused for the read-only user (Access denied)" ;;
*) bad "uhttpd /ubus: disable refused for the read-only user (Access denied)" "$out" ;;
esac
check "and wan1 is not drained" call_is "v['interfaces']['wan1'].get('drained') != True" status

# ubusd killed and restarted: uplinkd re-registers.
up_stop "$dir" ubusd KILL
up_ubusd "$dir" || exit 1
check "uplinkd re-registers after ubusd restarts" up_wait_ubus "$dir" uplinkd 30
check "and answers status" up_wait 10 state_is wan1 up
check "the daemon survived the ubusd restart" daemon_alive
up_stop "$dir" uplinkd INT

# --- procd ----------------------------------------------------------------------------
# The project's init script under real procd -S, with rc.common and procd.sh.
up_stop "$dir" uhttpd
up_stop "$dir" rpcd
up_procd "$dir" || exit 1
svc_pid() {
    ub call service list '{"name":"uplinkd"}' |
        python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["uplinkd"]["instances"]["instance1"]["pid"])' 2>/dev/null
}
running() { [ -n "$(svc_pid)" ] && kill -0 "$(svc_pid)" 2>/dev/null; }
out=$(up_service "$dir" uplinkd start 2>&1)
check "init script start: procd runs an instance" up_wait 20 running
check "the procd-started daemon registers on ubus" up_wait_ubus "$dir" uplinkd 20
check "and reaches up" up_wait 30 state_is wan1 up
# procd runs the daemon through ujail (capabilities, no_new_privs): the instance's pid
# is ujail's, the daemon is its child.
pid1=$(daemon_alive)
spid=$(svc_pid)
check "procd's instance runs ujail with uplinkd as its child" sh -c "
    [ -n '$pid1' ] && tr '\\0' ' ' </proc/$spid/cmdline | grep -q '^/sbin/ujail ' &&
    grep -q '^PPid:[[:space:]]*$spid\$' /proc/$pid1/status"
caps=$(grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs):' "/proc/$pid1/status" 2>&1)
want='CapInh:	0000000000000000
CapPrm:	0000000000003000
CapEff:	0000000000003000
CapBnd:	0000000000003000
CapAmb:	0000000000000000
NoNewPrivs:	1'
[ "$caps" = "$want" ] && ok "the daemon runs with exactly CAP_NET_ADMIN and CAP_NET_RAW, no_new_privs" ||
    bad "the daemon runs with exactly CAP_NET_ADMIN and CAP_NET_RAW, no_new_privs" "$caps"
check "with those capabilities it installs its rules and nft table" sh -c "
    ip -n $R rule show | grep -q '^4000:' && ip netns exec $R nft list table inet uplinkd >/dev/null"

# uci commit + reload_config: the same process applies the new weight.
up_sh "$dir" "uci set uplinkd.wan1_m1.weight=7 && uci commit uplinkd && reload_config" >/dev/null 2>&1
check "reload_config applies the committed weight" up_wait 20 call_is \
    "'7' in json.dumps(v['interfaces']['wan1'])" status
[ "$(daemon_alive)" = "$pid1" ] && ok "reload_config kept the daemon's pid $pid1" ||
    bad "reload_config kept the daemon's pid $pid1" "now: $(daemon_alive)"
[ "$(svc_pid)" = "$spid" ] && ok "procd's instance was not restarted" || bad "procd's instance was not restarted"
out=$(up_run "$dir" /etc/init.d/uplinkd reload 2>&1)
[ "$(daemon_alive)" = "$pid1" ] && ok "init script reload keeps pid $pid1" || bad "init script reload keeps pid $pid1" "$out"

# Respawn after kill -9.
kill -9 "$pid1"
respawned() { _p=$(daemon_alive); [ -n "$_p" ] && [ "$_p" != "$pid1" ]; }
check "procd respawns uplinkd after kill -9" up_wait 30 respawned
check "the respawned daemon registers again" up_wait_ubus "$dir" uplinkd 20
check "and adopts its state (wan1 up)" up_wait 30 state_is wan1 up

# Restart: procd's SIGTERM, then a new daemon. rc.common runs service_stopped with
# $action=restart, which keeps the objects: the new daemon adopts them, and
# `ip monitor` sees none of uplinkd's rules or routes deleted in between.
pid2=$(daemon_alive)
objects() {
    ip -n "$R" rule show | grep -E '^4[0-9]{3}:'
    ip -n "$R" route show table all | grep -E 'proto 212'
}
before=$(objects | sort)
ip -n "$R" monitor rule route nexthop >"$dir/monitor.log" 2>&1 &
mon=$!
sleep 0.3
up_service "$dir" uplinkd restart >/dev/null 2>&1
restarted() { _p=$(daemon_alive); [ -n "$_p" ] && [ "$_p" != "$pid2" ]; }
check "restart: a new daemon (pid changed from $pid2)" up_wait 30 restarted
check "restart: the new daemon reaches up" up_wait 30 state_is wan1 up
sleep 1
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
deleted=$(grep -E '^Deleted' "$dir/monitor.log" | grep -E '^Deleted (4[0-9]{3}:|.*proto 212|.*id )' | head -n 5)
[ -z "$deleted" ] && ok "restart deleted none of uplinkd's rules, routes or nexthops" ||
    bad "restart deleted none of uplinkd's rules, routes or nexthops" "$deleted"
[ "$(objects | sort)" = "$before" ] && ok "restart kept the same rules and routes" ||
    bad "restart kept the same rules and routes" "$(objects)"
ip netns exec "$R" nft list table inet uplinkd >/dev/null 2>&1 && ok "restart kept the nft table" ||
    bad "restart kept the nft table"

# Stop: nothing of uplinkd's is left in the kernel.
up_service "$dir" uplinkd stop >/dev/null 2>&1
gone() { [ -z "$(daemon_alive)" ]; }
check "stop ends the daemon" up_wait 15 gone
left=$( {
    ip -n "$R" rule show | grep -E '^4[0-9]{3}:'
    ip -n "$R" route show table all | grep -E 'proto 212'
    ip netns exec "$R" nft list table inet uplinkd 2>/dev/null | head -n 3
} 2>&1)
[ -z "$left" ] && ok "stop leaves no uplinkd rules, routes or nft table" ||
    bad "stop leaves no uplinkd rules, routes or nft table" "$left"

# Validation errors: shown by start, reload and service.
cp "$root/etc/config/uplinkd" "$root/tmp/uplinkd.good"
up_sh "$dir" "uci set uplinkd.wan1.reliability=99 && uci commit uplinkd" >/dev/null 2>&1
out=$(up_sh "$dir" "/etc/init.d/uplinkd start" 2>&1)
case $out in *invalid*) ok "start refuses an invalid option and says so" ;; *) bad "start refuses an invalid option and says so" "$out" ;; esac
check "nothing was started" gone
out=$(up_sh "$dir" "service uplinkd start" 2>&1)
case $out in *invalid*) ok "service uplinkd start shows it" ;; *) bad "service uplinkd start shows it" "$out" ;; esac
cp "$root/tmp/uplinkd.good" "$root/etc/config/uplinkd"
up_service "$dir" uplinkd start >/dev/null 2>&1
check "the valid config starts again" up_wait 20 running
pid3=$(daemon_alive)
up_sh "$dir" "uci set uplinkd.wan1.reliability=99 && uci commit uplinkd" >/dev/null 2>&1
out=$(up_sh "$dir" "/etc/init.d/uplinkd reload" 2>&1)
case $out in *invalid*) ok "reload shows the invalid option" ;; *) bad "reload shows the invalid option" "$out" ;; esac
out=$(up_sh "$dir" "service uplinkd reload" 2>&1)
case $out in *invalid*) ok "service uplinkd reload shows it" ;; *) bad "service uplinkd reload shows it" "$out" ;; esac
[ -n "$pid3" ] && [ "$(daemon_alive)" = "$pid3" ] && ok "an invalid reload keeps the daemon (pid $pid3)" ||
    bad "an invalid reload keeps the daemon (pid $pid3)" "now $(daemon_alive)"
cp "$root/tmp/uplinkd.good" "$root/etc/config/uplinkd"
up_service "$dir" uplinkd stop >/dev/null 2>&1

echo "upstream openwrt: $passed passed, $failed failed"
[ "$failed" = 0 ]
