#!/bin/sh
# The harness itself: ubusd in a chroot in a network namespace answers plain `ubus list`,
# procd -S, rpcd and uhttpd start, and everything is gone after teardown.
set -u
UP_LIB=$0
. "$(dirname "$0")/lib.sh"
up_build || exit $?
dir=$(up_new)
up_trap "$dir"
fail() { echo "upstream smoke: FAILED: $*"; for f in "$dir"/log/*; do echo "--- $f"; tail -n 20 "$f"; done; exit 1; }

up_create "$dir" || fail "create"
up_ubusd "$dir" || fail "ubusd"
up_run "$dir" ubus list >/dev/null || fail "ubus list"
up_procd "$dir" || fail "procd"
up_rpcd "$dir" || fail "rpcd"
up_uhttpd "$dir" || fail "uhttpd"
objs=$(up_run "$dir" ubus list | tr '\n' ' ')
for o in service system session uci file; do
    case " $objs" in *" $o "*) ;; *) fail "no ubus object $o in: $objs" ;; esac
done
# The host reaches the same bus through the root's socket path.
[ -S "$dir/root/var/run/ubus/ubus.sock" ] || fail "socket not visible from the host"
# uhttpd answers JSON-RPC on /ubus (a login attempt with a wrong password is refused).
r=$(up_run "$dir" wget -q -O - --post-data '{"jsonrpc":"2.0","id":1,"method":"call","params":["00000000000000000000000000000000","session","login",{"username":"root","password":"x"}]}' http://127.0.0.1/ubus) || fail "uhttpd /ubus: $r"
case $r in *'"result"'*) ;; *) fail "uhttpd /ubus answered: $r" ;; esac
ns=$(up_netns "$dir")
up_teardown "$dir"
trap - EXIT
[ ! -e "/run/netns/$ns" ] || fail "netns $ns left behind"
[ ! -d "$dir" ] || fail "$dir left behind"
echo "upstream smoke: ok (ubusd, procd, rpcd, uhttpd; objects: $objs)"
