#!/bin/sh
# Checks the structure of the packages packaging/package.sh writes to dist/packages:
# .ipk members and control fields (OpenWrt architecture names, conffiles, postinst and
# prerm), the binary's ELF machine; .apk (apk-tools v3) parsed as ADB by
# `packaging/apk3.py dump` (magic, schema, blocks and their alignment, every value's
# bounds and alignment, sorted paths, each DATA block against the file's size and
# sha256), its fields, the same files and modes as the .ipk, OpenWrt's metadata files
# and the scripts; .deb fields and files, and the systemd unit (systemd-analyze
# verify, when available).
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

# The maintainer scripts of a package: valid sh, aware of an offline root (IPKG_INSTROOT),
# enabling and starting the service on install, stopping and disabling it on removal.
scripts() { # <label> <install script> <removal script> [<more scripts>...]
    label=$1
    shift
    for f in "$@"; do
        [ -s "$f" ] || { bad "$label: no ${f##*/} script"; continue; }
        sh -n "$f" || bad "$label: ${f##*/} syntax"
        grep -q 'IPKG_INSTROOT' "$f" || bad "$label: ${f##*/} ignores IPKG_INSTROOT"
    done
    grep -qs 'init.d/uplinkd enable' "$1" || bad "$label: ${1##*/} does not enable"
    grep -qs 'init.d/uplinkd restart' "$1" || bad "$label: ${1##*/} does not start"
    grep -qs 'init.d/uplinkd stop' "$2" || bad "$label: ${2##*/} does not stop"
    grep -qs 'init.d/uplinkd disable' "$2" || bad "$label: ${2##*/} does not disable"
}

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
    for f in "$d/control/postinst" "$d/control/prerm"; do
        [ -x "$f" ] || bad "$arch: ${f##*/} not executable"
    done
    scripts "$arch" "$d/control/postinst" "$d/control/prerm"
    for p in usr/sbin/uplinkd etc/init.d/uplinkd etc/uci-defaults/99-uplinkd; do
        [ -x "$d/data/$p" ] || bad "$arch: /$p missing or not executable"
    done
    for p in etc/config/uplinkd usr/share/uplinkd/uplinkd.default usr/share/acl.d/uplinkd.json \
        etc/capabilities/uplinkd.json; do
        [ -f "$d/data/$p" ] || bad "$arch: /$p missing"
    done
    [ "$(elf "$d/data/usr/sbin/uplinkd")" = "$want" ] || bad "$arch: binary is ELF $(elf "$d/data/usr/sbin/uplinkd"), want $want"
    [ -z "$(tar -tvzf "$d/data.tar.gz" | awk '$2 != "0/0"')" ] || bad "$arch: files not owned by root"
done

# apk-tools v3 packages. The dump's lines: "<field>: <value>", "script: <type> <n> bytes",
# "dir: /<path> <mode> <user> <group>",
# "file: /<path> <mode> <user> <group> <size> <mtime> <sha256>".
apk_damaged_checked=0
for spec in mips_24kc:2:8 mipsel_24kc:1:8 arm_cortex-a7_neon-vfpv4:1:40 aarch64_cortex-a53:1:183; do
    arch=${spec%%:*}
    want=${spec#*:}
    f=$pkgs/uplinkd_$version-r1_$arch.apk
    [ -f "$f" ] || { echo "packages: no $f, skipped" >&2; continue; }
    checked=$((checked + 1))
    a=$tmp/apk-$arch
    mkdir -p "$a"
    if ! python3 packaging/apk3.py dump "$f" --extract "$a/root" --scripts "$a/scripts" \
        >"$a/dump" 2>"$a/err"; then
        bad "$arch: apk: $(cat "$a/err")"
        continue
    fi
    val() { sed -n "s/^$1: //p" "$a/dump"; }
    grep -q '^format: adb pckg, compression deflate, 1 ADB block, 0 SIG blocks' "$a/dump" ||
        bad "$arch: apk: $(head -n 1 "$a/dump")"
    [ "$(val name)" = uplinkd ] || bad "$arch: apk name '$(val name)'"
    [ "$(val version)" = "$version-r1" ] || bad "$arch: apk version '$(val version)'"
    [ "$(val arch)" = "$arch" ] || bad "$arch: apk arch '$(val arch)'"
    [ "$(val license)" = GPL-2.0-only ] || bad "$arch: apk license '$(val license)'"
    [ "$(val depends)" = libc ] || bad "$arch: apk depends '$(val depends)'"
    for k in description origin maintainer url; do
        [ -n "$(val "$k")" ] || bad "$arch: apk has no $k"
    done
    case $(val hashes) in *"(matches)") ;; *) bad "$arch: apk unique id '$(val hashes)'" ;; esac
    sum=$(awk '$1 == "file:" { s += $6 } END { print s + 0 }' "$a/dump")
    [ "$(val installed-size)" = "$sum" ] || bad "$arch: apk installed-size $(val installed-size), files $sum"
    [ -z "$(awk '($1 == "file:" || $1 == "dir:") && ($4 != "root" || $5 != "root")' "$a/dump")" ] ||
        bad "$arch: apk entries not owned by root"
    grep -q '^data: .* match the file list$' "$a/dump" || bad "$arch: apk data not checked"
    # The same files, modes and contents as the .ipk, plus OpenWrt's metadata files.
    awk '$1 == "file:" && $2 !~ "^/lib/apk/packages/" { m = $3; sub(/^0+/, "", m); print $2, m, $8 }' \
        "$a/dump" | LC_ALL=C sort >"$a/files"
    if [ -d "$tmp/$arch/data" ]; then
        (cd "$tmp/$arch/data" && find . -type f -printf '/%P %m\n' | LC_ALL=C sort | while read -r p m; do
            echo "$p $m $(sha256sum ".$p" | cut -d ' ' -f 1)"
        done) >"$a/ipk-files"
        cmp -s "$a/files" "$a/ipk-files" || bad "$arch: apk and ipk files differ: $(diff "$a/ipk-files" "$a/files" | head -n 4)"
    fi
    meta=$a/root/lib/apk/packages
    for m in list conffiles conffiles_static; do
        grep -q "^file: /lib/apk/packages/uplinkd.$m 0644 " "$a/dump" || bad "$arch: apk has no uplinkd.$m"
    done
    cut -d ' ' -f 1 "$a/files" | cmp -s - "$meta/uplinkd.list" || bad "$arch: apk uplinkd.list"
    [ "$(cat "$meta/uplinkd.conffiles")" = /etc/config/uplinkd ] || bad "$arch: apk uplinkd.conffiles"
    conf_sha=$(awk '$1 == "file:" && $2 == "/etc/config/uplinkd" { print $8 }' "$a/dump")
    [ "$(cat "$meta/uplinkd.conffiles_static")" = "/etc/config/uplinkd $conf_sha" ] ||
        bad "$arch: apk uplinkd.conffiles_static"
    scripts "$arch apk" "$a/scripts/post-install" "$a/scripts/pre-deinstall" "$a/scripts/post-upgrade"
    grep -qsx 'export PKG_UPGRADE=1' "$a/scripts/post-upgrade" || bad "$arch: apk post-upgrade is not an upgrade"
    [ "$(elf "$a/root/usr/sbin/uplinkd")" = "$want" ] ||
        bad "$arch: apk binary is ELF $(elf "$a/root/usr/sbin/uplinkd"), want $want"
    # A damaged package must be refused with a message, not a traceback: cut short, and
    # one byte changed in the compressed stream.
    if [ "$apk_damaged_checked" = 0 ]; then
        apk_damaged_checked=1
        n=$(wc -c <"$f")
        head -c $((n / 2)) "$f" >"$a/short.apk"
        cp "$f" "$a/flipped.apk"
        printf '\377' | dd of="$a/flipped.apk" bs=1 seek=$((n - 1000)) conv=notrunc 2>/dev/null
        for broken in short flipped; do
            if python3 packaging/apk3.py dump "$a/$broken.apk" >/dev/null 2>"$a/err"; then
                bad "apk3.py accepted a $broken package"
            elif [ "$(wc -l <"$a/err")" != 1 ] || ! grep -q '^apk3.py: ' "$a/err"; then
                bad "apk3.py on a $broken package: $(head -n 3 "$a/err")"
            fi
        done
    fi
done

for spec in arm64:1:183 armhf:1:40; do
    arch=${spec%%:*}
    want=${spec#*:}
    f=$pkgs/uplinkd_$version-1_$arch.deb
    [ -f "$f" ] || { echo "packages: no $f, skipped" >&2; continue; }
    checked=$((checked + 1))
    d=$tmp/deb-$arch
    if ! dpkg-deb -x "$f" "$d" || ! dpkg-deb -e "$f" "$d/DEBIAN"; then
        bad "$arch: cannot unpack"
        continue
    fi
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
    # shellcheck disable=SC2016 # $MAINPID is systemd's, matched literally
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
        if [ -e "$root/usr/sbin/uplinkd" ] || [ -e "$root/etc/uplinkd/uplinkd" ]; then
            bad "$arch: purge left files behind"
        fi
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
