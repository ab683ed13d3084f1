#!/bin/sh
# The amd64 .deb in a real Debian (bookworm, minbase + systemd) booted with
# systemd-nspawn in a private network namespace: install the previous release, start,
# `uplinkd status` through the control socket (default /run/uplinkd/uplinkd.sock),
# `systemctl reload`, CapEff only CAP_NET_ADMIN + CAP_NET_RAW, `systemctl restart` keeps
# the rules, routes and nft table (SIGTERM) for the new process, `systemctl stop`
# (SIGINT) leaves none; upgrade to this tree's package with an edited config
# (kept, still enabled, restarted), remove (stopped), purge (nothing left); lintian
# reports no errors. The Debian root is made once with debootstrap and cached outside
# the clone in ${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}/debian-<key>;
# each run boots it with --volatile=overlay, so the cache stays pristine.
# UPLINKD_SKIP_DEBIAN=1 skips it; so does a machine without systemd-nspawn that cannot
# install it (one line). Binary: as tests/pkgmanagers.sh.
set -u
cd "$(dirname "$0")/.." || exit 1
[ "${UPLINKD_SKIP_DEBIAN:-0}" = 1 ] && { echo "debian: skipped (UPLINKD_SKIP_DEBIAN=1)"; exit 0; }
need=""
command -v systemd-nspawn >/dev/null 2>&1 || need="$need systemd-container"
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
command -v lintian >/dev/null 2>&1 || need="$need lintian"
if [ -n "$need" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need; } >&2
    else
        echo "debian: skipped (no$need)"
        exit 0
    fi
fi
. tests/package-bin.sh

fail=0
bad() { echo "debian: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d) || exit 1
name=uplinkd-deb-$$
nspawn=""
cleanup() {
    if [ -n "$nspawn" ]; then
        kill "$nspawn" 2>/dev/null
        i=0
        while kill -0 "$nspawn" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
        kill -9 "$nspawn" 2>/dev/null
        wait "$nspawn" 2>/dev/null
    fi
    # nspawn and the container's systemd leave sub-cgroups behind: innermost first.
    # (The container's last processes may still be exiting: retry a while.)
    i=0
    while [ $i -lt 25 ]; do
        left=0
        for c in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/"$name"; do
            [ -d "$c" ] || continue
            find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
            [ -d "$c" ] && left=1
        done
        [ "$left" = 0 ] && break
        sleep 0.2
        i=$((i + 1))
    done
    ip netns del "$name" 2>/dev/null
    ip netns del "$name-gw" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# The cached root.
mirror=$(sed -n 's/^URIs: *//p; s/^deb \(http[^ ]*\) .*/\1/p' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
include=systemd,systemd-sysv,dbus,iproute2,nftables,procps
cache=${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}
key=$(echo "bookworm minbase $include" | sha256sum | cut -c 1-16)
root=$cache/debian-$key
if [ ! -x "$root/lib/systemd/systemd" ]; then
    echo "debian: debootstrap bookworm into $root (once)" >&2
    mkdir -p "$cache"
    rm -rf "$root.tmp"
    if ! debootstrap --variant=minbase --include=$include bookworm "$root.tmp" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
        echo "debian: skipped (debootstrap from $mirror failed: $(tail -n 1 "$tmp/debootstrap.log"))"
        rm -rf "$root.tmp"
        exit 0
    fi
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi

# This tree's .deb and the previous release's (version 0.0.1, another default config).
mkdir -p "$tmp/bin/x86_64-unknown-linux-musl" "$tmp/debs"
strip -o "$tmp/bin/x86_64-unknown-linux-musl/uplinkd" "$bin" 2>/dev/null ||
    cp "$bin" "$tmp/bin/x86_64-unknown-linux-musl/uplinkd"
DIST=$tmp/bin ./packaging/package.sh >/dev/null 2>"$tmp/package.err" || { bad "package.sh: $(cat "$tmp/package.err")"; exit 1; }
cp "$tmp/bin/packages/uplinkd_$version-1_amd64.deb" "$tmp/debs/cur.deb"
rm -rf "$tmp/bin/packages"
prev=$tmp/prev-tree
mkdir -p "$prev"
cp -R packaging openwrt-package uci-defaults Cargo.toml README.md "$prev/"
sed -i 's/^version = ".*"/version = "0.0.1"/' "$prev/Cargo.toml"
echo "# the previous release's default" >>"$prev/openwrt-package/uplinkd/files/etc/config/uplinkd"
(cd "$prev" && DIST=$tmp/bin ./packaging/package.sh >/dev/null 2>"$tmp/package.err") ||
    { bad "previous package.sh: $(cat "$tmp/package.err")"; exit 1; }
cp "$tmp/bin/packages/uplinkd_0.0.1-1_amd64.deb" "$tmp/debs/prev.deb"

# lintian: errors only (warnings such as no-manual-page are listed, not fatal). A
# dynamically linked test binary (a glibc debug build) makes lintian ask for a libc
# dependency that the static release binaries do not need.
lintian --no-tag-display-limit "$tmp/debs/cur.deb" >"$tmp/lintian" 2>/dev/null
if file -L "$tmp/bin/x86_64-unknown-linux-musl/uplinkd" 2>/dev/null | grep -q 'dynamically linked'; then
    sed -i '/missing-dependency-on-libc/d' "$tmp/lintian"
fi
grep '^E: ' "$tmp/lintian" >&2 && bad "lintian errors"

# The configuration the test installs: one WAN on a veth device that nobody answers on,
# so that uplinkd creates its rules, routes and nft table.
cat >"$tmp/debs/uplinkd.conf" <<'C'
config globals 'globals'
	option default_policy 'only_wan'

config interface 'wan'
	option device 'wan0'
	option gateway '192.0.2.1'
	list track_ip '192.0.2.1'
	option interval '1s'

config member 'wan_m1'
	option interface 'wan'

config policy 'only_wan'
	list use_member 'wan_m1'
C

# Boot it: in its own cgroup (else nspawn leaves its payload at the cgroup root), in a
# network namespace of this test, with a throwaway overlay over the cached root.
ip netns add "$name" || exit 1
# The WAN's device: a veth pair to a gateway namespace that answers the probes, so that
# the WAN stays up while the objects are compared (a WAN judged down between two looks
# would change them for a reason that is not the restart).
ip netns add "$name-gw" || exit 1
ip -n "$name" link add wan0 type veth peer name wan0p netns "$name-gw" &&
    ip -n "$name" addr add 192.0.2.2/24 dev wan0 && ip -n "$name" link set wan0 up &&
    ip -n "$name-gw" addr add 192.0.2.1/24 dev wan0p && ip -n "$name-gw" link set wan0p up &&
    ip -n "$name-gw" link set lo up || bad "wan0"
for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$c" ] && [ -w "$c" ] && mkdir -p "$c/$name" 2>/dev/null
done
# nspawn keeps CAP_NET_ADMIN from the container only when asked.
# (sh -c: its $$ is nspawn's pid after exec; a subshell's $$ would be this script's.)
# shellcheck disable=SC2016 # expanded by that sh
sh -c 'for c in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
        [ -f "$c/cgroup.procs" ] && echo $$ >"$c/cgroup.procs" 2>/dev/null
    done
    shift
    exec "$@"' sh "$name" \
    systemd-nspawn --quiet --boot --register=no --keep-unit --volatile=overlay \
    --capability=CAP_NET_ADMIN --network-namespace-path="/run/netns/$name" -M "$name" \
    -D "$root" --bind-ro="$tmp/debs:/debs" </dev/null >"$tmp/boot.log" 2>&1 &
nspawn=$!
pid=""
i=0
while [ -z "$pid" ] && [ $i -lt 100 ]; do
    sleep 0.2
    i=$((i + 1))
    for p in $(pgrep -P "$nspawn" 2>/dev/null); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && pid=$p
    done
done
[ -n "$pid" ] || { bad "the container did not boot: $(tail -n 5 "$tmp/boot.log")"; exit 1; }
cx() { nsenter -t "$pid" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
i=0
until cx test -S /run/systemd/private 2>/dev/null || [ $i -ge 150 ]; do sleep 0.2; i=$((i + 1)); done
cx timeout 60 systemctl is-system-running --wait >/dev/null 2>&1
mainpid() { cx systemctl show -p MainPID --value uplinkd.service; }
leftovers() {
    cx nft list tables | grep uplinkd
    cx ip rule | grep -E '^4[0-9]{3}:'
    cx ip route show table all | grep -E 'table 11[0-9][0-9]'
}

# Install the previous release, configure, start.
cx dpkg -i /debs/prev.deb >"$tmp/out" 2>&1 || bad "dpkg -i previous: $(cat "$tmp/out")"
cx systemctl is-enabled --quiet uplinkd.service && bad "a fresh install enabled the service"
cx cp /debs/uplinkd.conf /etc/uplinkd/uplinkd
cx systemctl enable --now uplinkd.service >"$tmp/out" 2>&1 || bad "systemctl enable --now: $(cat "$tmp/out")"
i=0
until cx uplinkd status >"$tmp/status" 2>&1 || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
grep -q '^wan ' "$tmp/status" || bad "uplinkd status: $(cat "$tmp/status"; cx journalctl -u uplinkd --no-pager | tail -n 5)"
cx test -S /run/uplinkd/uplinkd.sock || bad "no /run/uplinkd/uplinkd.sock"
p1=$(mainpid)
cap=$(cx sed -n 's/^CapEff:\t*//p' "/proc/$p1/status")
[ "$cap" = 0000000000003000 ] || bad "CapEff $cap, want 0000000000003000 (NET_ADMIN + NET_RAW)"
[ -n "$(leftovers)" ] || bad "the running daemon made no rules, routes or nft table"
cx systemctl reload uplinkd.service || bad "systemctl reload"
sleep 1
[ "$(mainpid)" = "$p1" ] || bad "reload restarted the daemon"
cx journalctl -u uplinkd --no-pager | grep -qi reload || bad "no reload in the journal"
cx uplinkd status >/dev/null 2>&1 || bad "status after reload"
# Restart: RestartKillSignal=SIGTERM, the objects stay and the new process adopts them;
# `ip monitor` sees none of them deleted in between.
before=$(leftovers | sort)
ip -n "$name" monitor rule route nexthop >"$tmp/monitor" 2>&1 &
mon=$!
sleep 0.3
cx systemctl restart uplinkd.service || bad "systemctl restart"
i=0
until cx uplinkd status >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
sleep 1
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
[ "$(mainpid)" != "$p1" ] || bad "restart: same process"
deleted=$(grep -E '^Deleted (4[0-9]{3}:|.*table 11[0-9][0-9]|.*id )' "$tmp/monitor" | head -n 3)
[ -z "$deleted" ] || bad "restart deleted: $deleted"
[ "$(leftovers | sort)" = "$before" ] || bad "restart changed the objects: $(leftovers)"
cx journalctl -u uplinkd --no-pager | grep -q 'adopting' || bad "restart: nothing adopted"
cx systemctl stop uplinkd.service
[ -z "$(leftovers)" ] || bad "stop left: $(leftovers)"
# RuntimeDirectory=: systemd removes the socket's directory with the service.
cx test -e /run/uplinkd && bad "stop left /run/uplinkd"

# Upgrade with an edited config: kept, still enabled, restarted.
cx systemctl start uplinkd.service
p1=$(mainpid)
cx sh -c 'echo "# edited by the user" >>/etc/uplinkd/uplinkd'
cx dpkg -i --force-confold /debs/cur.deb >"$tmp/out" 2>&1 || bad "dpkg -i upgrade: $(cat "$tmp/out")"
[ "$(cx dpkg-query -W -f '${Version}' uplinkd)" = "$version-1" ] || bad "upgrade: version"
cx grep -qx '# edited by the user' /etc/uplinkd/uplinkd || bad "upgrade replaced the edited config"
cx test -f /etc/uplinkd/uplinkd.dpkg-dist || bad "upgrade: no uplinkd.dpkg-dist"
cx systemctl is-enabled --quiet uplinkd.service || bad "upgrade: no longer enabled"
cx systemctl is-active --quiet uplinkd.service || bad "upgrade: not running"
[ "$(mainpid)" != "$p1" ] || bad "upgrade: not restarted"

# Remove: stopped, nothing of ours in the kernel; purge: nothing left.
cx dpkg -r uplinkd >"$tmp/out" 2>&1 || bad "dpkg -r: $(cat "$tmp/out")"
cx systemctl is-active --quiet uplinkd.service && bad "remove: still running"
[ -z "$(leftovers)" ] || bad "remove left: $(leftovers)"
cx test -e /usr/sbin/uplinkd && bad "remove: binary left"
cx dpkg -P uplinkd >"$tmp/out" 2>&1 || bad "dpkg -P: $(cat "$tmp/out")"
for f in /etc/uplinkd/uplinkd /etc/systemd/system/multi-user.target.wants/uplinkd.service \
    /etc/systemd/system/uplinkd.service /var/lib/systemd/deb-systemd-helper-enabled/uplinkd.service; do
    cx test -e "$f" && bad "purge left $f"
done
[ "$fail" = 0 ] && echo "debian: ok (install, status, reload, CapEff, restart, stop, upgrade, remove, purge; lintian: $(grep -c '^W: ' "$tmp/lintian") warnings, no errors)"
exit "$fail"
