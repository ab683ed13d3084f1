#!/bin/sh
# The .ipk and .apk packages under the real package managers, opkg (opkg-lede) and
# apk-tools 3.0.6, built from ../shared/upstream by tests/upstream/pkgtools.sh, in
# offline roots (skipped with one line without the sources):
# - a router (opkg chrooted in the root; apk chroots its scripts itself): install the
#   previous release, edit the configuration, upgrade to this tree's: the edit is kept
#   (the new default beside it as uplinkd-opkg / uplinkd.apk-new), the boot links in
#   /etc/rc.d stay and the service was stopped and started again; the LuCI app installs
#   with its dependency and places exactly what its feed Makefile installs; removal
#   stops and disables;
# - an image build (opkg -o, IPKG_INSTROOT): enable only, nothing started;
# - refusals: a root without kmod-nf-conntrack-netlink, and one with mwan3.
# Dependencies resolve against stub packages of the declared names. The root's
# /etc/rc.common is a stub that keeps the links as OpenWrt's does and logs the other
# actions, so the test sees what the scripts ran. Binary: $UPLINKD_BIN, else the
# x86_64 musl build in dist/, else target/debug/uplinkd (it is packaged, not run).
set -u
cd "$(dirname "$0")/.." || exit 1
prefix=$(sh tests/upstream/pkgtools.sh | tail -n 1)
rc=$?
case "$prefix" in
    upstream:*) echo "pkgmanagers: skipped ($prefix)"; exit 0 ;;
esac
[ -x "$prefix/bin/opkg" ] || { echo "pkgmanagers: FAIL: building opkg/apk-tools failed ($rc)" >&2; exit 1; }
opkg=$prefix/bin/opkg
apk=$prefix/bin/apk
command -v busybox >/dev/null 2>&1 ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static; } >&2
busybox=$(command -v busybox) || { echo "pkgmanagers: FAIL: no busybox" >&2; exit 1; }
. tests/package-bin.sh

fail=0
bad() { echo "pkgmanagers: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# This tree's packages, and the "previous release": the same tree at version 0.0.1
# with a different default configuration.
mkdir -p "$tmp/bin/x86_64-unknown-linux-musl"
strip -o "$tmp/bin/x86_64-unknown-linux-musl/uplinkd" "$bin" 2>/dev/null ||
    cp "$bin" "$tmp/bin/x86_64-unknown-linux-musl/uplinkd"
# (package.sh notes on stderr that the other targets are not built.)
DIST=$tmp/bin ./packaging/package.sh >/dev/null 2>"$tmp/package.err" || { bad "package.sh: $(cat "$tmp/package.err")"; exit 1; }
mv "$tmp/bin/packages" "$tmp/cur"
prev=$tmp/prev-tree
mkdir -p "$prev"
cp -R packaging openwrt-package uci-defaults Cargo.toml README.md "$prev/"
sed -i 's/^version = ".*"/version = "0.0.1"/' "$prev/Cargo.toml"
echo "# the previous release's default" >>"$prev/openwrt-package/uplinkd/files/etc/config/uplinkd"
(cd "$prev" && DIST=$tmp/bin ./packaging/package.sh >/dev/null 2>"$tmp/package.err") ||
    { bad "previous package.sh: $(cat "$tmp/package.err")"; exit 1; }
mv "$tmp/bin/packages" "$tmp/prev"
cur_ipk=$tmp/cur/uplinkd_$version-1_x86_64.ipk
prev_ipk=$tmp/prev/uplinkd_0.0.1-1_x86_64.ipk
luci_ipk=$tmp/cur/luci-app-uplinkd_$version-1_all.ipk
cur_apk=$tmp/cur/uplinkd_$version-r1_x86_64.apk
prev_apk=$tmp/prev/uplinkd_0.0.1-r1_x86_64.apk
luci_apk=$tmp/cur/luci-app-uplinkd_$version-r1_noarch.apk

# Stub packages: one per declared dependency, plus mwan3.
stubs="libc nftables-json kmod-nft-core kmod-nft-fib kmod-nf-conntrack-netlink luci-base mwan3"
mkdir -p "$tmp/stubs"
for s in $stubs; do
    d=$tmp/stub-$s
    mkdir -p "$d/control" "$d/data/usr/share/stub" "$d/pkg"
    echo "$s" >"$d/data/usr/share/stub/$s"
    printf 'Package: %s\nVersion: 1.0-1\nArchitecture: x86_64\nDescription: stub\n' "$s" >"$d/control/control"
    echo 2.0 >"$d/pkg/debian-binary"
    tar -C "$d/data" -czf "$d/pkg/data.tar.gz" .
    tar -C "$d/control" -czf "$d/pkg/control.tar.gz" .
    (cd "$d/pkg" && tar -czf "$tmp/stubs/$s.ipk" ./debian-binary ./data.tar.gz ./control.tar.gz)
    python3 packaging/apk3.py build --output "$tmp/stubs/$s.apk" --files "$d/data" \
        --info "name:$s" --info "version:1.0-r1" --info "arch:x86_64" --info "description:stub" ||
        bad "stub $s.apk"
done

# A root with busybox, the stub rc.common, /etc/rc.d.
mkroot() { # <dir>
    r=$1
    mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc/rc.d" "$r/etc/config" \
        "$r/tmp" "$r/var/log" "$r/var/lock" "$r/lib" "$r/pkgs"
    cp "$busybox" "$r/bin/busybox"
    for a in $("$busybox" --list); do
        [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
    done
    cat >"$r/etc/rc.common" <<'RC'
#!/bin/sh
# Test stub of OpenWrt's rc.common: boot links as OpenWrt makes them, other actions logged.
initscript=$1
action=$2
name=${initscript##*/}
start=$(sed -n 's/^START=//p' "$initscript")
stop=$(sed -n 's/^STOP=//p' "$initscript")
case "$action" in
enable)
	rm -f "$IPKG_INSTROOT/etc/rc.d/S"??"$name" "$IPKG_INSTROOT/etc/rc.d/K"??"$name"
	[ -n "$start" ] && ln -s "../init.d/$name" "$IPKG_INSTROOT/etc/rc.d/S$start$name"
	[ -n "$stop" ] && ln -s "../init.d/$name" "$IPKG_INSTROOT/etc/rc.d/K$stop$name"
	;;
disable) rm -f "$IPKG_INSTROOT/etc/rc.d/S"??"$name" "$IPKG_INSTROOT/etc/rc.d/K"??"$name" ;;
enabled) [ -n "$start" ] && [ -e "$IPKG_INSTROOT/etc/rc.d/S$start$name" ] ;;
*) echo "$name $action" >>"$IPKG_INSTROOT/var/log/rc.log" ;;
esac
RC
    chmod 0755 "$r/etc/rc.common"
    cp "$tmp"/stubs/*.ipk "$tmp"/stubs/*.apk "$r/pkgs/"
}
enabled() { # <root>
    for l in "$1"/etc/rc.d/S[0-9][0-9]uplinkd; do
        [ -L "$l" ] && return 0
    done
    return 1
}
log() { cat "$1/var/log/rc.log" 2>/dev/null | tr '\n' ';'; }

# ---- opkg, on a router: chrooted in the root with its libraries.
opkg_root() { # <dir>
    mkroot "$1"
    cp "$opkg" "$1/bin/opkg"
    for l in $(ldd "$opkg" | grep -o '/[^ ]*'); do
        mkdir -p "$1$(dirname "$l")"
        cp -L "$l" "$1$l"
    done
    mkdir -p "$1/usr/lib/opkg/info" "$1/var/opkg-lists"
    : >"$1/usr/lib/opkg/status"
    printf 'dest root /\nlists_dir ext /var/opkg-lists\narch all 1\narch noarch 1\narch x86_64 10\n' >"$1/etc/opkg.conf"
}
ropkg() { # <root> <args...>
    r=$1
    shift
    chroot "$r" /bin/opkg "$@" >"$tmp/opkg.out" 2>&1
}
r=$tmp/opkg-router
opkg_root "$r"
cp "$prev_ipk" "$cur_ipk" "$luci_ipk" "$r/pkgs/"
for s in libc nftables-json kmod-nft-core kmod-nft-fib kmod-nf-conntrack-netlink; do
    ropkg "$r" install "/pkgs/$s.ipk" || bad "opkg: stub $s: $(cat "$tmp/opkg.out")"
done
if ropkg "$r" install "/pkgs/${prev_ipk##*/}"; then
    enabled "$r" || bad "opkg install: not enabled ($(ls "$r/etc/rc.d"))"
    [ "$(log "$r")" = "uplinkd restart;" ] || bad "opkg install: rc actions '$(log "$r")'"
    [ -x "$r/usr/sbin/uplinkd" ] || bad "opkg install: no /usr/sbin/uplinkd"
    [ ! -e "$r/etc/uci-defaults/99-uplinkd" ] || bad "opkg install: uci-defaults not run"
else
    bad "opkg install of the previous release: $(cat "$tmp/opkg.out")"
fi
echo "# edited by the user" >>"$r/etc/config/uplinkd"
rm -f "$r/var/log/rc.log"
if ropkg "$r" install "/pkgs/${cur_ipk##*/}"; then
    grep -q '^Version: '"$version"'-1$' "$r/usr/lib/opkg/info/uplinkd.control" ||
        bad "opkg upgrade: version $(grep Version "$r/usr/lib/opkg/info/uplinkd.control")"
    grep -qx '# edited by the user' "$r/etc/config/uplinkd" || bad "opkg upgrade: the edited config was replaced"
    [ -f "$r/etc/config/uplinkd-opkg" ] || bad "opkg upgrade: no uplinkd-opkg beside the edited config"
    enabled "$r" || bad "opkg upgrade: no longer enabled ($(ls "$r/etc/rc.d"))"
    [ "$(log "$r")" = "uplinkd stop;uplinkd restart;" ] || bad "opkg upgrade: rc actions '$(log "$r")'"
else
    bad "opkg upgrade: $(cat "$tmp/opkg.out")"
fi
# LuCI app: refused without luci-base, installed with it, exactly the feed's files.
if ropkg "$r" install "/pkgs/${luci_ipk##*/}"; then
    bad "opkg: luci-app-uplinkd installed without luci-base"
fi
ropkg "$r" install /pkgs/luci-base.ipk || bad "opkg: stub luci-base"
if ropkg "$r" install "/pkgs/${luci_ipk##*/}"; then
    app=openwrt-package/luci-app-uplinkd
    { (cd "$app/htdocs" && find . -type f | sed 's|^\.|/www|'); (cd "$app/root" && find . -type f | sed 's|^\.||'); } |
        LC_ALL=C sort >"$tmp/luci-want"
    LC_ALL=C sort "$r/usr/lib/opkg/info/luci-app-uplinkd.list" | sed 's/\t.*//' | grep -v '/$' >"$tmp/luci-got"
    cmp -s "$tmp/luci-want" "$tmp/luci-got" || bad "opkg: luci-app files: $(diff "$tmp/luci-want" "$tmp/luci-got" | head -n 4)"
    for f in $(cat "$tmp/luci-want"); do
        [ -f "$r$f" ] || bad "opkg: luci-app: $f not installed"
    done
else
    bad "opkg: luci-app-uplinkd: $(cat "$tmp/opkg.out")"
fi
ropkg "$r" remove luci-app-uplinkd || bad "opkg remove luci-app-uplinkd: $(cat "$tmp/opkg.out")"
rm -f "$r/var/log/rc.log"
if ropkg "$r" remove uplinkd; then
    ! enabled "$r" || bad "opkg remove: still enabled"
    [ "$(log "$r")" = "uplinkd stop;" ] || bad "opkg remove: rc actions '$(log "$r")'"
    [ ! -e "$r/usr/sbin/uplinkd" ] || bad "opkg remove: binary left"
else
    bad "opkg remove: $(cat "$tmp/opkg.out")"
fi

# A root without kmod-nf-conntrack-netlink, and one with mwan3: refused.
r=$tmp/opkg-missing
opkg_root "$r"
cp "$cur_ipk" "$r/pkgs/"
for s in libc nftables-json kmod-nft-core kmod-nft-fib; do
    ropkg "$r" install "/pkgs/$s.ipk" || bad "opkg: stub $s"
done
if ropkg "$r" install "/pkgs/${cur_ipk##*/}"; then
    bad "opkg installed uplinkd without kmod-nf-conntrack-netlink"
else
    grep -q kmod-nf-conntrack-netlink "$tmp/opkg.out" || bad "opkg refusal does not name the dependency: $(cat "$tmp/opkg.out")"
fi
[ ! -e "$r/usr/sbin/uplinkd" ] || bad "opkg: refused install left files"
ropkg "$r" install /pkgs/kmod-nf-conntrack-netlink.ipk /pkgs/mwan3.ipk || bad "opkg: stubs"
if ropkg "$r" install "/pkgs/${cur_ipk##*/}"; then
    bad "opkg installed uplinkd beside mwan3"
fi

# An image build: opkg -o on the host, scripts with IPKG_INSTROOT: enable only.
r=$tmp/opkg-image
opkg_root "$r"
for s in libc nftables-json kmod-nft-core kmod-nft-fib kmod-nf-conntrack-netlink; do
    IPKG_INSTROOT=$r "$opkg" -f "$r/etc/opkg.conf" -o "$r" --force-postinstall install "$r/pkgs/$s.ipk" >/dev/null 2>&1
done
if IPKG_INSTROOT=$r "$opkg" -f "$r/etc/opkg.conf" -o "$r" --force-postinstall install "$cur_ipk" >"$tmp/opkg.out" 2>&1; then
    enabled "$r" || bad "opkg image build: not enabled"
    [ -z "$(log "$r")" ] || bad "opkg image build: rc actions '$(log "$r")'"
    [ -e "$r/etc/uci-defaults/99-uplinkd" ] || bad "opkg image build: uci-defaults ran at build time"
else
    bad "opkg image build: $(cat "$tmp/opkg.out")"
fi
[ "$fail" = 0 ] && echo "pkgmanagers: opkg ok"
ofail=$fail
fail=0

# ---- apk: it chroots into --root for the scripts itself.
rapk() { # <root> <args...>
    r=$1
    shift
    "$apk" --root "$r" --allow-untrusted --no-network --no-cache --arch x86_64 "$@" >"$tmp/apk.out" 2>&1
}
r=$tmp/apk-router
mkroot "$r"
rapk "$r" add --initdb "$r/pkgs/libc.apk" "$r/pkgs/nftables-json.apk" "$r/pkgs/kmod-nft-core.apk" \
    "$r/pkgs/kmod-nft-fib.apk" "$r/pkgs/kmod-nf-conntrack-netlink.apk" || bad "apk: stubs: $(cat "$tmp/apk.out")"
if rapk "$r" add "$prev_apk"; then
    enabled "$r" || bad "apk install: not enabled ($(ls "$r/etc/rc.d"))"
    [ "$(log "$r")" = "uplinkd restart;" ] || bad "apk install: rc actions '$(log "$r")'"
    [ -x "$r/usr/sbin/uplinkd" ] || bad "apk install: no /usr/sbin/uplinkd"
else
    bad "apk install of the previous release: $(cat "$tmp/apk.out")"
fi
echo "# edited by the user" >>"$r/etc/config/uplinkd"
rm -f "$r/var/log/rc.log"
if rapk "$r" add "$cur_apk"; then
    grep -A1 -x 'P:uplinkd' "$r/lib/apk/db/installed" | grep -qx "V:$version-r1" ||
        bad "apk upgrade: installed $(grep -A1 -x 'P:uplinkd' "$r/lib/apk/db/installed")"
    grep -qx '# edited by the user' "$r/etc/config/uplinkd" || bad "apk upgrade: the edited config was replaced"
    [ -f "$r/etc/config/uplinkd.apk-new" ] || bad "apk upgrade: no uplinkd.apk-new beside the edited config"
    enabled "$r" || bad "apk upgrade: no longer enabled ($(ls "$r/etc/rc.d"))"
    [ "$(log "$r")" = "uplinkd restart;" ] || bad "apk upgrade: rc actions '$(log "$r")'"
else
    bad "apk upgrade: $(cat "$tmp/apk.out")"
fi
if rapk "$r" add "$luci_apk"; then
    bad "apk: luci-app-uplinkd installed without luci-base"
fi
if rapk "$r" add "$r/pkgs/luci-base.apk" "$luci_apk"; then
    for f in $(cat "$tmp/luci-want"); do
        [ -f "$r$f" ] || bad "apk: luci-app: $f not installed"
    done
else
    bad "apk: luci-app-uplinkd: $(cat "$tmp/apk.out")"
fi
rapk "$r" del luci-app-uplinkd || bad "apk del luci-app-uplinkd: $(cat "$tmp/apk.out")"
rm -f "$r/var/log/rc.log"
if rapk "$r" del uplinkd; then
    ! enabled "$r" || bad "apk del: still enabled"
    [ "$(log "$r")" = "uplinkd stop;" ] || bad "apk del: rc actions '$(log "$r")'"
    [ ! -e "$r/usr/sbin/uplinkd" ] || bad "apk del: binary left"
else
    bad "apk del: $(cat "$tmp/apk.out")"
fi
r=$tmp/apk-missing
mkroot "$r"
rapk "$r" add --initdb "$r/pkgs/libc.apk" "$r/pkgs/nftables-json.apk" "$r/pkgs/kmod-nft-core.apk" \
    "$r/pkgs/kmod-nft-fib.apk" || bad "apk: stubs"
if rapk "$r" add "$cur_apk"; then
    bad "apk installed uplinkd without kmod-nf-conntrack-netlink"
else
    grep -q kmod-nf-conntrack-netlink "$tmp/apk.out" || bad "apk refusal does not name the dependency: $(cat "$tmp/apk.out")"
fi
[ ! -e "$r/usr/sbin/uplinkd" ] || bad "apk: refused install left files"
rapk "$r" add "$r/pkgs/kmod-nf-conntrack-netlink.apk" "$r/pkgs/mwan3.apk" || bad "apk: stubs"
if rapk "$r" add "$cur_apk"; then
    bad "apk installed uplinkd beside mwan3"
fi
[ "$fail" = 0 ] && echo "pkgmanagers: apk ok"
[ "$fail" = 0 ] && [ "$ofail" = 0 ]
