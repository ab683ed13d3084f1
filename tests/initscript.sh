#!/bin/sh
# Checks the OpenWrt init script: sh -n, shellcheck (when installed), and the procd
# service definition it produces, by sourcing it against stub procd/uci functions that
# record their calls.
set -u
cd "$(dirname "$0")/.." || exit 1
script=openwrt-package/uplinkd/files/etc/init.d/uplinkd
fail=0
bad() { echo "initscript: FAIL: $*" >&2; fail=1; }

sh -n "$script" || bad "sh -n"
sh -n uci-defaults/99-uplinkd || bad "sh -n uci-defaults"
if command -v shellcheck >/dev/null 2>&1; then
    shellcheck "$script" uci-defaults/99-uplinkd || bad shellcheck
else
    echo "initscript: shellcheck not installed, skipped" >&2
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
calls=$tmp/calls

# Run one init script function in a subshell with stubs; its calls go to $calls.
run() {
    (
        log() { echo "$*" >>"$calls"; }
        procd_open_instance() { log "open_instance $*"; }
        procd_close_instance() { log "close_instance"; }
        procd_set_param() { log "set_param $*"; }
        procd_add_jail() { log "add_jail $*"; }
        procd_add_reload_trigger() { log "reload_trigger $*"; }
        procd_add_validation() { log "validation $*"; "$@"; }
        procd_send_signal() { log "send_signal $*"; }
        uci_validate_section() {
            log "validate $1 $2 ${3:-}"
            [ "${STUB_INVALID_TYPE:-}" = "$2" ] && return 1
            return "${STUB_INVALID:-0}"
        }
        config_load() { log "config_load $*"; }
        # Two sections of each type.
        config_foreach() {
            fn=$1 type=$2
            shift 2
            "$fn" "${type}_a" "$@"
            "$fn" "${type}_b" "$@"
        }
        logger() { cat >/dev/null; }
        # shellcheck disable=SC1090
        . "./$script"
        PROG=$tmp/uplinkd
        "$@"
    )
}

# A stand-in for the daemon's 'check': exit status from STUB_CHECK.
printf '#!/bin/sh\nexit "${STUB_CHECK:-0}"\n' >"$tmp/uplinkd"
chmod +x "$tmp/uplinkd"

: >"$calls"
run start_service 2>/dev/null || bad "start_service failed"
grep -qx "set_param command $tmp/uplinkd -c /etc/config/uplinkd" "$calls" ||
    bad "command line: $(grep command "$calls")"
grep -qx "set_param respawn 3600 5 5" "$calls" || bad "respawn"
grep -qx "set_param capabilities /etc/capabilities/uplinkd.json" "$calls" &&
    grep -qx "set_param no_new_privs 1" "$calls" && grep -qx "add_jail uplinkd" "$calls" ||
    bad "capabilities"
grep -qx "open_instance " "$calls" && grep -qx "close_instance" "$calls" || bad "instance"
for t in globals interface member policy rule; do
    grep -qx "validate uplinkd $t ${t}_a" "$calls" || bad "validates no $t section"
    grep -qx "validate uplinkd $t ${t}_b" "$calls" || bad "validates only one $t section"
done

# Only rule sections invalid: not started either.
: >"$calls"
STUB_INVALID_TYPE=rule run start_service 2>"$tmp/err" && bad "started with an invalid rule section"
grep -q "open_instance" "$calls" && bad "opened an instance with an invalid rule section"
grep -q "section 'rule_a' has invalid options" "$tmp/err" || bad "no message names the rule section: $(cat "$tmp/err")"

# procd's 'ubus call service validate' sees every section type, rules too.
: >"$calls"
run validate_uplinkd
grep -q "^validate uplinkd rule" "$calls" || bad "validate_uplinkd skips rules"

: >"$calls"
STUB_INVALID=1 run start_service 2>/dev/null && bad "started with invalid options"
grep -q "open_instance" "$calls" && bad "opened an instance with invalid options"
: >"$calls"
STUB_CHECK=1 run start_service 2>/dev/null && bad "started although uplinkd check failed"
grep -q "open_instance" "$calls" && bad "opened an instance although uplinkd check failed"

: >"$calls"
run service_triggers || bad "service_triggers failed"
grep -qx "reload_trigger uplinkd" "$calls" || bad "reload trigger"
grep -qx "validation validate_uplinkd" "$calls" || bad "validation"

: >"$calls"
run reload_service 2>/dev/null
grep -qx "send_signal uplinkd \* HUP" "$calls" || bad "reload does not send SIGHUP"
grep -q "open_instance\|stop" "$calls" && bad "reload restarts the instance"

# First boot with an mwan3 configuration: the conversion (with warnings) is installed,
# the warnings land in the report and in syslog, and the dhcp ipset sections are
# pointed at uplinkd's table. Needs the debug binary (tests/run.sh builds it first).
bin=target/debug/uplinkd
if [ -x "$bin" ]; then
    root=$tmp/root
    mkdir -p "$root/etc/config" "$root/usr/sbin" "$root/usr/share/uplinkd" "$root/etc/init.d" "$tmp/path"
    ln -s "$PWD/$bin" "$root/usr/sbin/uplinkd"
    cp openwrt-package/uplinkd/files/etc/config/uplinkd "$root/usr/share/uplinkd/uplinkd.default"
    cp tests/mwan3/sticky-ipset-dnsmasq.mwan3 "$root/etc/config/mwan3"
    cp tests/mwan3/sticky-ipset-dnsmasq.network "$root/etc/config/network"
    cp tests/mwan3/sticky-ipset-dnsmasq.dhcp "$root/etc/config/dhcp"
    printf '#!/bin/sh\necho "dnsmasq $*" >>"%s"\n' "$calls" >"$root/etc/init.d/dnsmasq"
    printf '#!/bin/sh\necho "uci $*" >>"%s"; cat >>"%s"\n' "$calls" "$calls" >"$tmp/path/uci"
    printf '#!/bin/sh\necho "logger $*" >>"%s"; cat >>"%s"\n' "$calls" "$calls" >"$tmp/path/logger"
    chmod +x "$root/etc/init.d/dnsmasq" "$tmp/path/uci" "$tmp/path/logger"
    : >"$calls"
    UPLINKD_ROOT=$root PATH="$tmp/path:$PATH" sh uci-defaults/99-uplinkd || bad "uci-defaults failed"
    cmp -s "$root/etc/config/uplinkd" "$root/usr/share/uplinkd/uplinkd.default" &&
        bad "uci-defaults kept the default despite a convertible mwan3 file"
    "$bin" check -c "$root/etc/config/uplinkd" >/dev/null || bad "converted config fails check"
    report=$root/etc/uplinkd/import-report.txt
    head -n 1 "$report" | grep -q "^uplinkd: converted .* ([1-9][0-9]* warnings)" ||
        bad "report header: $(head -n 1 "$report")"
    grep -q "^warning: .*ipset 'streaming'" "$report" || bad "report lacks the ipset warning"
    grep -q "^logger -t uplinkd" "$calls" && grep -q "^warning: .*ipset 'banking'" "$calls" ||
        bad "warnings not sent to syslog"
    grep -qx "set dhcp.@ipset\[0\].table='uplinkd'" "$calls" || bad "dhcp ipset sections not converted"
    grep -qx "dnsmasq restart" "$calls" || bad "dnsmasq not restarted"
    # No interface section: the default stays, and the report says why.
    rm -f "$root/etc/config/uplinkd" "$report"
    printf "config globals 'globals'\n" >"$root/etc/config/mwan3"
    UPLINKD_ROOT=$root PATH="$tmp/path:$PATH" sh uci-defaults/99-uplinkd || bad "uci-defaults failed"
    cmp -s "$root/etc/config/uplinkd" "$root/usr/share/uplinkd/uplinkd.default" ||
        bad "uci-defaults installed an unusable conversion"
    grep -q "could not convert" "$report" || bad "report: $(cat "$report")"
else
    echo "initscript: $bin not built, first-boot conversion skipped" >&2
fi

[ "$fail" = 0 ] && echo "initscript: ok"
exit "$fail"
