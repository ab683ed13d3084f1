#!/bin/sh
# Packages from the cross-built binaries in dist/<target>/uplinkd, without the OpenWrt
# SDK: dist/packages/*.ipk for OpenWrt 23.05/24.10 (opkg) and *.deb for Debian /
# Raspberry Pi OS (arm64, armhf).
#
#   packaging/package.sh        (after packaging/build.sh)
#
# OpenWrt 25.12+ uses apk-tools v3 packages (ADB format); no tool that writes them is
# packaged for Debian or on PyPI, so no .apk is built here: use the feed Makefile in
# openwrt-package/ with the OpenWrt SDK for those.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dist=${DIST:-$root/dist}
out=$dist/packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
release=1
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
maintainer="uplinkd maintainers <uplinkd@example.invalid>"
summary="Multi-WAN failover and load balancing daemon"
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

ipk() { # <rust target> <OpenWrt architecture>
    bin=$dist/$1/uplinkd
    [ -f "$bin" ] || { echo "package: no $bin (run packaging/build.sh $1): skipped" >&2; return 0; }
    d=$tmp/ipk-$2
    rm -rf "$d"
    mkdir -p "$d/data/usr/sbin" "$d/data/etc/init.d" "$d/data/etc/config" \
        "$d/data/etc/uci-defaults" "$d/data/usr/share/uplinkd" "$d/data/usr/share/acl.d" "$d/control"
    files=openwrt-package/uplinkd/files
    install -m 0755 "$bin" "$d/data/usr/sbin/uplinkd"
    install -m 0755 "$files/etc/init.d/uplinkd" "$d/data/etc/init.d/uplinkd"
    install -m 0600 "$files/etc/config/uplinkd" "$d/data/etc/config/uplinkd"
    install -m 0644 "$files/etc/config/uplinkd" "$d/data/usr/share/uplinkd/uplinkd.default"
    install -m 0644 "$files/usr/share/acl.d/uplinkd.json" "$d/data/usr/share/acl.d/uplinkd.json"
    install -m 0755 uci-defaults/99-uplinkd "$d/data/etc/uci-defaults/99-uplinkd"
    size=$(find "$d/data" -type f -exec cat {} + | wc -c)
    cat >"$d/control/control" <<C
Package: uplinkd
Version: $version-$release
Depends: libc
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
    mkdir -p "$d/pkg"
    echo 2.0 >"$d/pkg/debian-binary"
    mktar "$d/pkg/data.tar.gz" "$d/data"
    mktar "$d/pkg/control.tar.gz" "$d/control"
    # opkg's format (OpenWrt's ipkg-build): a gzip'd tar of the three members.
    f=$out/uplinkd_$version-${release}_$2.ipk
    (cd "$d/pkg" && tar --numeric-owner --owner=0 --group=0 --mtime="@$epoch" --format=gnu \
        -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) | gzip -9n >"$f"
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
    size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
    cat >"$d/DEBIAN/control" <<C
Package: uplinkd
Version: $version-$release
Architecture: $2
Maintainer: $maintainer
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://example.invalid/uplinkd
Description: $summary
$description
C
    echo /etc/uplinkd/uplinkd >"$d/DEBIAN/conffiles"
    install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$d/DEBIAN/"
    f=$out/uplinkd_$version-${release}_$2.deb
    SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zgzip --build "$d" "$f" >/dev/null
    echo "$f"
}

ipk mips-unknown-linux-musl mips_24kc
ipk mipsel-unknown-linux-musl mipsel_24kc
ipk armv7-unknown-linux-musleabihf arm_cortex-a7_neon-vfpv4
ipk aarch64-unknown-linux-musl aarch64_cortex-a53
deb aarch64-unknown-linux-musl arm64
deb armv7-unknown-linux-musleabihf armhf
