#!/bin/sh
# Packages from the cross-built binaries in dist/<target>/uplinkd, without the OpenWrt
# SDK, in dist/packages:
#   uplinkd_<version>-1_<arch>.ipk    OpenWrt 23.05/24.10 (opkg)
#   uplinkd_<version>-r1_<arch>.apk   OpenWrt 25.12 and later (apk-tools v3, ADB format)
#   uplinkd_<version>-1_<arch>.deb    Debian / Raspberry Pi OS (arm64, armhf, amd64)
#   luci-app-uplinkd_<version>-1_all.ipk, luci-app-uplinkd_<version>-r1_noarch.apk
#                                     the LuCI pages (always built: no binary in them)
#
#   packaging/package.sh        (after packaging/build.sh)
#
# The .ipk and .apk of an architecture hold the same files. The .apk also carries
# what OpenWrt's own apk packages carry in /lib/apk/packages: the file list (which
# OpenWrt's default_postinst/default_prerm read), the conffiles and their sha256
# (sysupgrade keeps the conffiles that differ). apk itself keeps a changed
# /etc/config/uplinkd over upgrades (it protects modified files under /etc and
# installs the new default as uplinkd.apk-new). No tool that writes apk v3 packages is
# packaged for Debian or on PyPI: packaging/apk3.py writes them (Python standard
# library only) and `packaging/apk3.py dump` checks one. The packages are unsigned:
# install them with `apk add --allow-untrusted`.
set -eu
umask 022
cd "$(dirname "$0")/.."
root=$(pwd)
dist=${DIST:-$root/dist}
out=$dist/packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
release=1
apk_version=$version-r$release
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
maintainer="uplinkd maintainers <uplinkd@example.invalid>"
url=https://example.invalid/uplinkd
summary="Multi-WAN failover and load balancing daemon"
# What the code needs besides the kernel's routing: nft with JSON output (the table is
# loaded with `nft -f`, read back with `nft -j`), nftables' core (ct marks, numgen,
# sets) and fib expressions in the kernel, and ctnetlink for deleting a failed WAN's
# pinned connections (fw4 images carry all but the last). mwan3 fights over the same
# marks, rules and tables. Keep in step with openwrt-package/uplinkd/Makefile.
openwrt_depends="libc nftables-json kmod-nft-core kmod-nft-fib kmod-nf-conntrack-netlink"
openwrt_conflicts="mwan3"
luci_depends="uplinkd luci-base"
# nft; procps for /bin/kill (ExecReload).
deb_depends="nftables, procps"
description=" uplinkd probes every uplink, moves new traffic away from a dead one within
 seconds and balances by weight over the healthy ones. mwan3's configuration
 language; one static binary."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# Reproducible tar: sorted, root-owned, fixed times.
mktar() { # <archive.tar.gz> <dir>
    (cd "$2" && find . -mindepth 1 | LC_ALL=C sort |
        tar --no-recursion --numeric-owner --owner=0 --group=0 --mtime="@$epoch" \
            --format=gnu -cf - -T -) | gzip -9n >"$1"
}

# The files of the OpenWrt packages (.ipk and .apk alike).
openwrt_files() { # <binary> <dir>
    files=openwrt-package/uplinkd/files
    mkdir -p "$2/usr/sbin" "$2/etc/init.d" "$2/etc/config" "$2/etc/uci-defaults" \
        "$2/usr/share/uplinkd" "$2/usr/share/acl.d"
    install -m 0755 "$1" "$2/usr/sbin/uplinkd"
    install -m 0755 "$files/etc/init.d/uplinkd" "$2/etc/init.d/uplinkd"
    install -m 0600 "$files/etc/config/uplinkd" "$2/etc/config/uplinkd"
    install -m 0644 "$files/etc/config/uplinkd" "$2/usr/share/uplinkd/uplinkd.default"
    install -m 0644 "$files/usr/share/acl.d/uplinkd.json" "$2/usr/share/acl.d/uplinkd.json"
    install -D -m 0644 "$files/etc/capabilities/uplinkd.json" "$2/etc/capabilities/uplinkd.json"
    install -m 0755 uci-defaults/99-uplinkd "$2/etc/uci-defaults/99-uplinkd"
}

# The OpenWrt file set for <rust target> in $d/data, d=$tmp/<work dir>; false (and a
# note) when the binary has not been built.
stage() { # <rust target> <work dir>
    bin=$dist/$1/uplinkd
    [ -f "$bin" ] || { echo "package: no $bin (run packaging/build.sh $1): skipped" >&2; return 1; }
    d=$tmp/$2
    rm -rf "$d"
    mkdir -p "$d/control"
    openwrt_files "$bin" "$d/data"
}

ipk() { # <rust target> <OpenWrt architecture>
    stage "$1" "ipk-$2" || return 0
    size=$(find "$d/data" -type f -exec cat {} + | wc -c)
    cat >"$d/control/control" <<C
Package: uplinkd
Version: $version-$release
Depends: $(echo "$openwrt_depends" | sed 's/ /, /g')
Conflicts: $openwrt_conflicts
Source: feeds/packages/net/uplinkd
SourceName: uplinkd
License: GPL-2.0-only
Section: net
SourceDateEpoch: $epoch
Maintainer: $maintainer
Architecture: $2
Installed-Size: $size
Description: $summary
$description
C
    echo /etc/config/uplinkd >"$d/control/conffiles"
    install -m 0755 packaging/openwrt/postinst "$d/control/postinst"
    install -m 0755 packaging/openwrt/prerm "$d/control/prerm"
    ipk_pack "$out/uplinkd_$version-${release}_$2.ipk"
}

# opkg's format (OpenWrt's ipkg-build): a gzip'd tar of debian-binary and the tars of
# $d/data and $d/control.
ipk_pack() { # <output>
    mkdir -p "$d/pkg"
    echo 2.0 >"$d/pkg/debian-binary"
    mktar "$d/pkg/data.tar.gz" "$d/data"
    mktar "$d/pkg/control.tar.gz" "$d/control"
    (cd "$d/pkg" && tar --numeric-owner --owner=0 --group=0 --mtime="@$epoch" --format=gnu \
        -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) | gzip -9n >"$1"
    echo "$1"
}

# luci-app-uplinkd as openwrt-package/luci-app-uplinkd/Makefile builds it with luci.mk:
# htdocs/ under /www, root/ under /, architecture-independent; its postinst drops
# LuCI's caches and reloads rpcd (for the ACL) as luci.mk's default does.
luci_files() { # <dir>
    app=openwrt-package/luci-app-uplinkd
    mkdir -p "$1/www"
    cp -pR "$app/htdocs/." "$1/www/"
    cp -pR "$app/root/." "$1/"
    find "$1" -type d -exec chmod 0755 {} +
    find "$1" -type f -exec chmod 0644 {} +
}

luci_ipk() {
    d=$tmp/luci-ipk
    rm -rf "$d"
    mkdir -p "$d/control"
    luci_files "$d/data"
    size=$(find "$d/data" -type f -exec cat {} + | wc -c)
    cat >"$d/control/control" <<C
Package: luci-app-uplinkd
Version: $version-$release
Depends: $(echo "$luci_depends" | sed 's/ /, /g')
Source: feeds/luci/applications/luci-app-uplinkd
SourceName: luci-app-uplinkd
License: GPL-2.0-only
Section: luci
SourceDateEpoch: $epoch
Maintainer: $maintainer
Architecture: all
Installed-Size: $size
Description: LuCI support for uplinkd (multi-WAN failover and load balancing)
C
    install -m 0755 packaging/openwrt/luci-postinst "$d/control/postinst"
    ipk_pack "$out/luci-app-uplinkd_$version-${release}_all.ipk"
}

luci_apk() {
    d=$tmp/luci-apk
    rm -rf "$d"
    mkdir -p "$d"
    luci_files "$d/data"
    apk_meta luci-app-uplinkd
    f=$out/luci-app-uplinkd_${apk_version}_noarch.apk
    python3 packaging/apk3.py build --output "$f" --files "$d/data" --epoch "$epoch" \
        --info "name:luci-app-uplinkd" \
        --info "version:$apk_version" \
        --info "description:LuCI support for uplinkd (multi-WAN failover and load balancing)" \
        --info "arch:noarch" \
        --info "license:GPL-2.0-only" \
        --info "origin:feeds/luci/applications/luci-app-uplinkd" \
        --info "url:$url" \
        --info "maintainer:$maintainer" \
        --info "depends:$luci_depends" \
        --script "post-install:packaging/openwrt/luci-postinst" \
        --script "post-upgrade:packaging/openwrt/luci-postinst"
    echo "$f"
}

# OpenWrt's metadata files in $d/data/lib/apk/packages: the list of the package's files
# (made before the metadata files are added, so it does not name them), its conffiles,
# and the conffiles with the sha256 of their packaged contents.
apk_meta() { # <package> [<conffile>...]
    pkg=$1
    shift
    meta=$d/data/lib/apk/packages
    (cd "$d/data" && find . -type f -o -type l) | sed 's|^\.||' | LC_ALL=C sort >"$d/list"
    mkdir -p "$meta"
    mv "$d/list" "$meta/$pkg.list"
    [ $# -gt 0 ] || return 0
    : >"$meta/$pkg.conffiles"
    : >"$meta/$pkg.conffiles_static"
    for c in "$@"; do
        echo "$c" >>"$meta/$pkg.conffiles"
        echo "$c $(sha256sum "$d/data$c" | cut -d ' ' -f 1)" >>"$meta/$pkg.conffiles_static"
    done
}

apkv3() { # <rust target> <OpenWrt architecture>
    stage "$1" "apk-$2" || return 0
    apk_meta uplinkd /etc/config/uplinkd
    # apk runs post-upgrade instead of post-install on an upgrade: the same script,
    # told that it is an upgrade the way OpenWrt's generated scripts are.
    {
        echo '#!/bin/sh'
        echo 'export PKG_UPGRADE=1'
        sed '/^#!/d' packaging/openwrt/postinst
    } >"$d/post-upgrade"
    f=$out/uplinkd_${apk_version}_$2.apk
    python3 packaging/apk3.py build --output "$f" --files "$d/data" --epoch "$epoch" \
        --info "name:uplinkd" \
        --info "version:$apk_version" \
        --info "description:$(echo "$description" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')" \
        --info "arch:$2" \
        --info "license:GPL-2.0-only" \
        --info "origin:feeds/packages/net/uplinkd" \
        --info "url:$url" \
        --info "maintainer:$maintainer" \
        --info "depends:$openwrt_depends !$openwrt_conflicts" \
        --script "post-install:packaging/openwrt/postinst" \
        --script "post-upgrade:$d/post-upgrade" \
        --script "pre-deinstall:packaging/openwrt/prerm"
    echo "$f"
}

deb() { # <rust target> <Debian architecture>
    bin=$dist/$1/uplinkd
    [ -f "$bin" ] || { echo "package: no $bin (run packaging/build.sh $1): skipped" >&2; return 0; }
    d=$tmp/deb-$2
    rm -rf "$d"
    mkdir -p "$d/DEBIAN" "$d/usr/sbin" "$d/lib/systemd/system" "$d/etc/uplinkd" "$d/usr/share/doc/uplinkd"
    install -m 0755 "$bin" "$d/usr/sbin/uplinkd"
    install -m 0644 packaging/debian/uplinkd.service "$d/lib/systemd/system/uplinkd.service"
    install -m 0644 openwrt-package/uplinkd/files/etc/config/uplinkd "$d/etc/uplinkd/uplinkd"
    install -m 0644 README.md "$d/usr/share/doc/uplinkd/README.md"
    install -m 0644 packaging/debian/copyright "$d/usr/share/doc/uplinkd/copyright"
    mkdir -p "$d/usr/share/lintian/overrides"
    install -m 0644 packaging/debian/lintian-overrides "$d/usr/share/lintian/overrides/uplinkd"
    gzip -9n <packaging/debian/changelog >"$d/usr/share/doc/uplinkd/changelog.Debian.gz"
    chmod 0644 "$d/usr/share/doc/uplinkd/changelog.Debian.gz"
    size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
    cat >"$d/DEBIAN/control" <<C
Package: uplinkd
Version: $version-$release
Architecture: $2
Maintainer: $maintainer
Installed-Size: $size
Depends: $deb_depends
Section: net
Priority: optional
Homepage: $url
Description: $summary
$description
C
    echo /etc/uplinkd/uplinkd >"$d/DEBIAN/conffiles"
    install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$d/DEBIAN/"
    f=$out/uplinkd_$version-${release}_$2.deb
    SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zgzip --build "$d" "$f" >/dev/null
    echo "$f"
}

for spec in mips-unknown-linux-musl:mips_24kc mipsel-unknown-linux-musl:mipsel_24kc \
    armv7-unknown-linux-musleabihf:arm_cortex-a7_neon-vfpv4 aarch64-unknown-linux-musl:aarch64_cortex-a53 \
    x86_64-unknown-linux-musl:x86_64; do
    ipk "${spec%%:*}" "${spec#*:}"
    apkv3 "${spec%%:*}" "${spec#*:}"
done
luci_ipk
luci_apk
deb aarch64-unknown-linux-musl arm64
deb armv7-unknown-linux-musleabihf armhf
deb x86_64-unknown-linux-musl amd64
