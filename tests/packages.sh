#!/bin/sh
# Checks the structure of the packages packaging/package.sh writes to dist/packages:
# .ipk members and control fields (OpenWrt architecture names, conffiles, postinst and
# prerm), the binary's ELF machine, .deb fields and files, and the systemd unit
# (systemd-analyze verify, when available).
set -u
cd "$(dirname "$0")/.." || exit 1
pkgs=${DIST:-dist}/packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
fail=0
checked=0
bad() { echo "packages: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# ELF e_machine (2 bytes at offset 18) and EI_DATA (endianness, byte 5) of a file.
elf() {
    data=$(od -An -tu1 -j5 -N1 "$1" | tr -d ' ')
    if [ "$data" = 2 ]; then
        m=$(od -An -tu1 -j18 -N2 "$1" | awk '{print $1 * 256 + $2}')
    else
        m=$(od -An -tu1 -j18 -N2 "$1" | awk '{print $2 * 256 + $1}')
    fi
    echo "$data:$m"
}

field() { sed -n "s/^$2: //p" "$1"; }

# OpenWrt architecture, expected ELF endianness:machine (MIPS 8, ARM 40, AArch64 183).
for spec in mips_24kc:2:8 mipsel_24kc:1:8 arm_cortex-a7_neon-vfpv4:1:40 aarch64_cortex-a53:1:183; do
    arch=${spec%%:*}
    want=${spec#*:}
    f=$pkgs/uplinkd_$version-1_$arch.ipk
    [ -f "$f" ] || { echo "packages: no $f, skipped" >&2; continue; }
    checked=$((checked + 1))
    d=$tmp/$arch
    mkdir -p "$d/data" "$d/control"
    members=$(tar -tzf "$f" | tr '\n' ' ')
    [ "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz " ] || bad "$arch: members: $members"
    tar -xzf "$f" -C "$d"
    [ "$(cat "$d/debian-binary")" = 2.0 ] || bad "$arch: debian-binary"
    tar -xzf "$d/control.tar.gz" -C "$d/control"
    tar -xzf "$d/data.tar.gz" -C "$d/data"
    c=$d/control/control
    [ "$(field "$c" Package)" = uplinkd ] || bad "$arch: Package"
    [ "$(field "$c" Version)" = "$version-1" ] || bad "$arch: Version"
    [ "$(field "$c" Architecture)" = "$arch" ] || bad "$arch: Architecture $(field "$c" Architecture)"
    [ "$(field "$c" License)" = GPL-2.0-only ] || bad "$arch: License"
    grep -q '^Depends: ' "$c" || bad "$arch: no Depends"
    size=$(field "$c" Installed-Size)
    [ "$size" -gt 100000 ] 2>/dev/null || bad "$arch: Installed-Size '$size'"
    grep -q '^Description: ..' "$c" || bad "$arch: Description"
    grep -qx /etc/config/uplinkd "$d/control/conffiles" || bad "$arch: conffiles"
    for s in postinst prerm; do
        [ -x "$d/control/$s" ] || bad "$arch: $s missing or not executable"
        sh -n "$d/control/$s" || bad "$arch: $s syntax"
        grep -q 'IPKG_INSTROOT' "$d/control/$s" || bad "$arch: $s ignores IPKG_INSTROOT"
    done
    grep -q 'init.d/uplinkd enable' "$d/control/postinst" || bad "$arch: postinst does not enable"
    grep -q 'init.d/uplinkd restart' "$d/control/postinst" || bad "$arch: postinst does not start"
    grep -q 'init.d/uplinkd stop' "$d/control/prerm" || bad "$arch: prerm does not stop"
    grep -q 'init.d/uplinkd disable' "$d/control/prerm" || bad "$arch: prerm does not disable"
    for p in usr/sbin/uplinkd etc/init.d/uplinkd etc/uci-defaults/99-uplinkd; do
        [ -x "$d/data/$p" ] || bad "$arch: /$p missing or not executable"
    done
    for p in etc/config/uplinkd usr/share/uplinkd/uplinkd.default usr/share/acl.d/uplinkd.json; do
        [ -f "$d/data/$p" ] || bad "$arch: /$p missing"
    done
    [ "$(elf "$d/data/usr/sbin/uplinkd")" = "$want" ] || bad "$arch: binary is ELF $(elf "$d/data/usr/sbin/uplinkd"), want $want"
    [ -z "$(tar -tvzf "$d/data.tar.gz" | awk '$2 != "0/0"')" ] || bad "$arch: files not owned by root"
done

for spec in arm64:1:183 armhf:1:40; do
    arch=${spec%%:*}
    want=${spec#*:}
    f=$pkgs/uplinkd_$version-1_$arch.deb
    [ -f "$f" ] || { echo "packages: no $f, skipped" >&2; continue; }
    checked=$((checked + 1))
    d=$tmp/deb-$arch
    dpkg-deb -x "$f" "$d" && dpkg-deb -e "$f" "$d/DEBIAN" || { bad "$arch: cannot unpack"; continue; }
    [ "$(dpkg-deb -f "$f" Architecture)" = "$arch" ] || bad "$arch: Architecture"
    [ "$(dpkg-deb -f "$f" Version)" = "$version-1" ] || bad "$arch: Version"
    grep -qx /etc/uplinkd/uplinkd "$d/DEBIAN/conffiles" || bad "$arch: conffiles"
    for s in postinst prerm postrm; do
        [ -x "$d/DEBIAN/$s" ] || bad "$arch: $s"
    done
    [ -f "$d/etc/uplinkd/uplinkd" ] || bad "$arch: no /etc/uplinkd/uplinkd"
    unit=$d/lib/systemd/system/uplinkd.service
    [ -f "$unit" ] || { bad "$arch: no unit"; continue; }
    [ "$(elf "$d/usr/sbin/uplinkd")" = "$want" ] || bad "$arch: binary is ELF $(elf "$d/usr/sbin/uplinkd")"
    grep -qx 'ExecStart=/usr/sbin/uplinkd --stderr -c /etc/uplinkd/uplinkd' "$unit" || bad "$arch: ExecStart"
    grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW' "$unit" || bad "$arch: capabilities"
    grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || bad "$arch: ExecReload"
    # Install it for real with dpkg into an empty root of its own (a container-less
    # chroot: the host's own package database is never touched), then purge it.
    root=$tmp/root-$arch
    mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
    : >"$root/var/lib/dpkg/status"
    if dpkg --root="$root" --force-architecture --force-script-chrootless --force-depends \
        -i "$f" >/dev/null 2>&1; then
        for p in /usr/sbin/uplinkd /lib/systemd/system/uplinkd.service /etc/uplinkd/uplinkd; do
            [ -f "$root$p" ] || bad "$arch: dpkg -i did not place $p"
        done
        dpkg --root="$root" --force-script-chrootless --purge uplinkd >/dev/null 2>&1 ||
            bad "$arch: dpkg --purge failed"
        [ ! -e "$root/usr/sbin/uplinkd" ] && [ ! -e "$root/etc/uplinkd/uplinkd" ] ||
            bad "$arch: purge left files behind"
    else
        bad "$arch: dpkg -i into an empty root failed"
    fi
    if command -v systemd-analyze >/dev/null 2>&1; then
        # Verify a copy whose binary path points into the unpacked package (the host
        # cannot install a foreign-architecture package); verify only checks that it
        # is executable.
        mkdir -p "$tmp/units-$arch"
        sed "s|/usr/sbin/uplinkd|$d/usr/sbin/uplinkd|g" "$unit" >"$tmp/units-$arch/uplinkd.service"
        systemd-analyze verify "$tmp/units-$arch/uplinkd.service" || bad "$arch: systemd-analyze verify"
    fi
done

[ "$checked" -gt 0 ] || bad "no packages in $pkgs (run packaging/package.sh)"
[ "$fail" = 0 ] && echo "packages: ok ($checked packages)"
exit "$fail"
