#!/bin/sh
# Builds the package managers OpenWrt runs, from the unmodified upstream sources in
# ${UPLINKD_UPSTREAM:-<repo>/../shared/upstream}: opkg (opkg-lede, libubox linked in
# statically, so the binary also runs chrooted in a root that has only libc) and
# apk-tools 3.0.6 (static libapk). Once per source: the result is cached outside the
# clone in ${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}/pkgtools-<key>, key =
# hash of the tarballs and of this script. Prints that prefix (bin/opkg, bin/apk) as
# its last line. Without the sources: one line and exit 77.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
src=${UPLINKD_UPSTREAM:-$repo/../shared/upstream}
for t in libubox opkg apk-tools; do
    [ -f "$src/$t.tar.gz" ] || { echo "upstream: $src/$t.tar.gz absent, skipping"; exit 77; }
done
key=$(cat "$src/libubox.tar.gz" "$src/opkg.tar.gz" "$src/apk-tools.tar.gz" "$0" |
    sha256sum | cut -c 1-16)
cache=${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}
prefix=$cache/pkgtools-$key
if [ -x "$prefix/bin/opkg" ] && [ -x "$prefix/bin/apk" ]; then
    echo "$prefix"
    exit 0
fi

need=""
for c in cc:build-essential cmake:cmake pkg-config:pkg-config meson:meson ninja:ninja-build; do
    command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c#*:}"
done
for p in libjson-c-dev libssl-dev zlib1g-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >&2
    else
        echo "pkgtools: please install:$need" >&2
        exit 1
    fi
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/pkgtools-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=$work/out
mkdir -p "$out/bin"
jobs=$(nproc 2>/dev/null || echo 2)
for t in libubox opkg apk-tools; do
    tar -xzf "$src/$t.tar.gz" -C "$work"
done

echo "pkgtools: libubox" >&2
cmake -S "$work/libubox" -B "$work/libubox/build" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$work/ubox" >&2
cmake --build "$work/libubox/build" -j "$jobs" >&2
cmake --install "$work/libubox/build" >&2

echo "pkgtools: opkg" >&2
cmake -S "$work/opkg" -B "$work/opkg/build" -DSTATIC_UBOX=ON -DBUILD_TESTS=OFF \
    -DENABLE_USIGN=OFF -DVERSION=upstream -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/ubox" -DCMAKE_C_FLAGS="-I$work/ubox/include" >&2
cmake --build "$work/opkg/build" -j "$jobs" >&2
cp "$work/opkg/build/src/opkg-cl" "$out/bin/opkg"

echo "pkgtools: apk-tools" >&2
(cd "$work/apk-tools" &&
    meson setup build --buildtype=release -Ddefault_library=static -Ddocs=disabled \
        -Dhelp=disabled -Dlua=disabled -Dpython=disabled -Dtests=disabled -Dzstd=disabled >&2 &&
    ninja -C build -j "$jobs" src/apk >&2)
cp "$work/apk-tools/build/src/apk" "$out/bin/apk"
"$out/bin/apk" --version >&2

rm -rf "$prefix"
mv "$out" "$prefix"
echo "$prefix"
