#!/bin/sh
# Build OpenWrt's userland (libubox, ubus, uci, ucode and its modules, udebug, libnl-tiny,
# netifd, procd with ujail, rpcd and its plugins, rpcd-mod-luci, uhttpd with its ubus and
# ucode handlers, lucihttp, cgi-io) from the upstream tarballs, once, into a cache outside
# the repository. Prints the cache prefix as its last line of stdout; exits 77 with one
# line when the sources are absent. See tests/upstream/README.md.
#
#   UPLINKD_UPSTREAM        the tarballs (default: ../shared/upstream beside the repository)
#   UPLINKD_UPSTREAM_CACHE  the cache (default: /var/cache/uplinkd-upstream)
#
# The prefix holds root/, laid out as on a router (/sbin/ubusd, /bin/ubus, /usr/lib/ucode,
# ...), built for the host's glibc; tests/upstream/lib.sh makes a chroot from it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
src=${UPLINKD_UPSTREAM:-$repo/../shared/upstream}
cache=${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}
parts="libubox ubus uci ucode udebug libnl-tiny netifd procd rpcd uhttpd lucihttp cgi-io iwinfo luci-25.12"

for p in $parts; do
    if [ ! -f "$src/$p.tar.gz" ]; then
        echo "upstream: $src/$p.tar.gz absent, skipping"
        exit 77
    fi
done

# The key: the tarballs' hashes and this recipe.
key=$({
    for p in $parts; do sha256sum <"$src/$p.tar.gz"; done
    cat "$0"
} | sha256sum | cut -c1-16)
prefix=$cache/$key
if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi

# Debian packages the builds need (CI runs on a fresh machine).
need=""
for pkg in build-essential cmake pkg-config libjson-c-dev libmd-dev busybox-static; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "upstream: installing$need" >&2
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need; } >&2 || exit 1
fi

mkdir -p "$cache"
# One build at a time per cache; a second caller waits and then finds the result.
exec 9>"$cache/.lock"
flock 9
if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi

# netifd's system-linux.c and procd's ujail need kernel UAPI headers newer than Debian
# 12's 6.1: unpack bookworm-backports' linux-libc-dev into the cache, not onto the host.
kh=$cache/linux-headers
if [ ! -f "$kh/usr/include/linux/ethtool_netlink.h" ] ||
    ! grep -q ETHTOOL_A_C33_PSE "$kh"/usr/include/linux/ethtool_netlink*.h; then
    echo "upstream: fetching newer kernel UAPI headers (bookworm-backports linux-libc-dev)" >&2
    apt=$(mktemp -d)
    mkdir -p "$apt/lists/partial"
    echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
    o="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=$apt/lists"
    # shellcheck disable=SC2086
    { apt-get -q $o update && (cd "$apt" && apt-get -q $o download linux-libc-dev/bookworm-backports); } >&2
    rm -rf "$kh"
    dpkg -x "$apt"/linux-libc-dev_*.deb "$kh"
    rm -rf "$apt"
fi

started=$(date +%s)
rm -rf "$prefix" "$prefix.tmp"
tmp=$prefix.tmp
root=$tmp/root
srcs=$tmp/src
mkdir -p "$root" "$srcs"
log=$tmp/build.log
echo "upstream: building into $prefix (log: $prefix/build.log)" >&2
for p in $parts; do tar -xzf "$src/$p.tar.gz" -C "$srcs"; done

# glibc before 2.38 has no strlcpy, which procd and rpcd call.
cat >"$tmp/compat.h" <<'EOF'
static inline __SIZE_TYPE__ compat_strlcpy(char *d, const char *s, __SIZE_TYPE__ n)
{
	__SIZE_TYPE__ l = __builtin_strlen(s);
	if (n) {
		__SIZE_TYPE__ c = l >= n ? n - 1 : l;
		__builtin_memcpy(d, s, c);
		d[c] = 0;
	}
	return l;
}
#define strlcpy compat_strlcpy
EOF

jobs=$(nproc 2>/dev/null || echo 2)
export CFLAGS="-O1 -g -I$root/usr/include -Wno-error=unused-result -Wno-error=stringop-truncation -Wno-error=format-truncation -Wno-error=deprecated-declarations -Wno-error=format-overflow -Wno-error=maybe-uninitialized -Wno-error=unused-function -Wno-error=stringop-overread -Wno-error=array-bounds -Wno-error=stringop-overflow -Wno-error=use-after-free -Wno-error=dangling-pointer"
export LDFLAGS="-L$root/usr/lib -Wl,-rpath-link,$root/usr/lib"

fail() {
    echo "upstream: build of $1 failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
}

# cmake_build NAME SOURCE_DIR [IN_TREE] -- CMAKE_OPTIONS...
cmake_build() {
    name=$1 dir=$2 bdir=$2/build
    shift 2
    if [ "${1:-}" = in-tree ]; then
        bdir=$dir
        shift
    fi
    echo "== $name" >>"$log"
    (
        cmake -S "$dir" -B "$bdir" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_PREFIX_PATH="$root/usr" \
            -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_LIBDIR=lib "$@" &&
            cmake --build "$bdir" -j "$jobs" &&
            DESTDIR=$root cmake --install "$bdir"
    ) >>"$log" 2>&1 || fail "$name"
}

cmake_build libubox "$srcs/libubox" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DBUILD_TESTS=OFF
cmake_build ubus "$srcs/ubus" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DBUILD_TESTS=OFF
cmake_build uci "$srcs/uci" -DBUILD_LUA=OFF -DBUILD_TESTS=OFF
cmake_build libnl-tiny "$srcs/libnl-tiny"
cmake_build ucode "$srcs/ucode" -DBUILD_TESTS=OFF -DNL80211_SUPPORT=OFF -DRTNL_SUPPORT=OFF \
    -DUBUS_SUPPORT=ON -DUCI_SUPPORT=ON -DULOOP_SUPPORT=ON -DDIGEST_SUPPORT=ON -DZLIB_SUPPORT=OFF \
    -DDIGEST_SUPPORT_EXTENDED=OFF -DLINK_GC_SECTIONS=OFF
cmake_build udebug "$srcs/udebug"
# netifd builds in its tree (a custom command runs ./make_ethtool_modes_h.sh).
CFLAGS="$CFLAGS -I$root/usr/include/libnl-tiny -isystem $kh/usr/include -D_GNU_SOURCE=" \
    cmake_build netifd "$srcs/netifd" in-tree -DLIBNL_LIBS=-lnl-tiny -DDEBUG=1
CFLAGS="$CFLAGS -isystem $kh/usr/include -include $tmp/compat.h" \
    cmake_build procd "$srcs/procd" in-tree -DJAIL_SUPPORT=1 -DSECCOMP_SUPPORT=0 \
    -DUTRACE_SUPPORT=0 -DEARLY_PATH=/usr/sbin:/usr/bin:/sbin:/bin
# ucode's util.h calls vasprintf: the rest needs _GNU_SOURCE throughout.
CFLAGS="$CFLAGS -D_GNU_SOURCE="
CFLAGS="$CFLAGS -include $tmp/compat.h" cmake_build rpcd "$srcs/rpcd" -DIWINFO_SUPPORT=OFF
cmake_build uhttpd "$srcs/uhttpd" -DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF
cmake_build lucihttp "$srcs/lucihttp" -DBUILD_LUA=OFF -DBUILD_TESTS=OFF
cmake_build cgi-io "$srcs/cgi-io" -DBUILD_TESTS=OFF
# rpcd-mod-luci only needs iwinfo's header (libiwinfo is dlopen()ed). Its CMakeLists
# asks for a newer cmake than Debian 12's for no feature it uses: compile it directly.
echo "== rpcd-mod-luci" >>"$log"
mkdir -p "$root/usr/lib/rpcd"
# shellcheck disable=SC2086
cc $CFLAGS -std=gnu99 -shared -fPIC -I"$srcs/iwinfo/include" -I"$srcs/rpcd/include" -I"$root/usr/include/libnl-tiny" \
    -o "$root/usr/lib/rpcd/luci.so" "$srcs/luci-25.12/libs/rpcd-mod-luci/src/luci.c" \
    $LDFLAGS -lubox -lubus -luci -lnl-tiny -ldl >>"$log" 2>&1 || fail rpcd-mod-luci
echo "== ucode-mod-html" >>"$log"
mkdir -p "$root/usr/lib/ucode"
# shellcheck disable=SC2086
cc $CFLAGS -shared -fPIC -o "$root/usr/lib/ucode/html.so" \
    "$srcs/luci-25.12/contrib/package/ucode-mod-html/src/html.c" $LDFLAGS >>"$log" 2>&1 ||
    fail ucode-mod-html

# Where a router has them (init scripts and procd name these paths).
mkdir -p "$root/sbin" "$root/bin" "$root/usr/sbin" "$root/usr/bin" "$root/www/cgi-bin" "$root/usr/libexec"
for b in ubusd procd rpcd netifd ujail uxc udebugd; do
    [ -e "$root/usr/sbin/$b" ] && mv "$root/usr/sbin/$b" "$root/sbin/$b"
done
[ -e "$root/usr/bin/uci" ] && mv "$root/usr/bin/uci" "$root/sbin/uci"
[ -e "$root/usr/bin/ubus" ] && mv "$root/usr/bin/ubus" "$root/bin/ubus"
[ -e "$root/usr/bin/uhttpd" ] && mv "$root/usr/bin/uhttpd" "$root/usr/sbin/uhttpd"
[ -e "$root/usr/sbin/cgi-io" ] && mv "$root/usr/sbin/cgi-io" "$root/usr/libexec/cgi-io"
for b in ubusd procd rpcd netifd uci ubus uhttpd ucode; do
    [ -x "$root/sbin/$b" ] || [ -x "$root/bin/$b" ] || [ -x "$root/usr/sbin/$b" ] || [ -x "$root/usr/bin/$b" ] ||
        { echo "upstream: $b missing after the build" >&2 && exit 1; }
done
rm -rf "$srcs"
mv "$tmp" "$prefix"
echo "$(($(date +%s) - started))" >"$prefix/build-seconds"
touch "$prefix/.complete"
echo "upstream: built in $(cat "$prefix/build-seconds") s" >&2
echo "$prefix"
