#!/bin/sh
# LuCI in the upstream root (see lib.sh beside this file), for tests of luci-app-uplinkd:
#
#   tests/upstream/luci.sh install DIR     luci-base, luci-mod-status, luci-theme-bootstrap
#                                          and the project's luci-app-uplinkd, as luci.mk
#                                          and the app's Makefile install them
#   tests/upstream/luci.sh login DIR USER PASSWORD read|write
#                                          an rpcd login (LuCI user) with its own password
#   tests/upstream/luci.sh playwright      prints the directory of playwright-core (from
#                                          npm, cached beside the upstream build)
#
# `install` needs a root made by `ctl.sh create`; it also builds LuCI's small C module
# (luci.core) into the cache, as luci-base's src/Makefile does.
set -u
UP_LIB=$(dirname "$0")/lib.sh
. "$UP_LIB"

LUCI_PARTS="modules/luci-base modules/luci-mod-status themes/luci-theme-bootstrap"
PLAYWRIGHT_VERSION=1.65.1

cache_dir() {
    echo "${UPLINKD_UPSTREAM_CACHE:-/var/cache/uplinkd-upstream}"
}

# luci_core SRC: build luci-base's core.so (translations, crypt) once; print its path.
luci_core() {
    _src=$1/modules/luci-base/src
    _key=$({ sha256sum <"$UP_SRC/luci-25.12.tar.gz"; echo "$UP_PREFIX"; } | sha256sum | cut -c1-16)
    _out=$(cache_dir)/luci-core-$_key
    if [ ! -f "$_out/core.so" ]; then
        rm -rf "$_out.tmp" && mkdir -p "$_out.tmp" || return 1
        (
            cd "$_src" &&
                cc -std=gnu17 -o "$_out.tmp/lemon" contrib/lemon.c &&
                cp contrib/lempar.c lib/plural_formula.y "$_out.tmp/" &&
                (cd "$_out.tmp" && ./lemon -q plural_formula.y) &&
                cp "$_out.tmp/plural_formula.c" "$_out.tmp/plural_formula.h" lib/ &&
                cc -O1 -shared -fPIC -DNDEBUG -I"$UP_PREFIX/root/usr/include" -o "$_out.tmp/core.so" \
                    lib/luci.c lib/lmo.c lib/plural_formula.c -lcrypt
        ) >"$_out.tmp/build.log" 2>&1 || {
            echo "luci: building luci.core failed:" >&2
            tail -n 20 "$_out.tmp/build.log" >&2
            return 1
        }
        rm -rf "$_out" && mv "$_out.tmp" "$_out"
    fi
    echo "$_out/core.so"
}

# luci_install DIR
luci_install() {
    _r=$1/root
    _t=$(mktemp -d) || return 1
    tar -xzf "$UP_SRC/luci-25.12.tar.gz" -C "$_t" || { rm -rf "$_t"; return 1; }
    _l=$_t/luci-25.12
    _core=$(luci_core "$_l") || { rm -rf "$_t"; return 1; }
    # As luci.mk: ucode/* → /usr/share/ucode/luci, htdocs/* → /www, root/* → /.
    for _p in $LUCI_PARTS; do
        if [ -d "$_l/$_p/ucode" ]; then
            mkdir -p "$_r/usr/share/ucode/luci" && cp -pR "$_l/$_p/ucode/." "$_r/usr/share/ucode/luci/"
        fi
        if [ -d "$_l/$_p/htdocs" ]; then
            mkdir -p "$_r/www" && cp -pR "$_l/$_p/htdocs/." "$_r/www/"
        fi
        if [ -d "$_l/$_p/root" ]; then
            cp -pR "$_l/$_p/root/." "$_r/"
        fi
    done
    # What luci-base's src/Makefile installs.
    mkdir -p "$_r/usr/lib/ucode/luci"
    cp "$_core" "$_r/usr/lib/ucode/luci/core.so"
    echo "export const revision = '25.12', branch = 'LuCI openwrt-25.12';" >"$_r/usr/share/ucode/luci/version.uc"
    rm -rf "$_t"
    # The project's app, as its Makefile (luci.mk) installs it.
    _app=$UP_REPO/openwrt-package/luci-app-uplinkd
    cp -pR "$_app/htdocs/." "$_r/www/" && cp -pR "$_app/root/." "$_r/" || return 1
    # First boot: the theme's uci-defaults set the media URL.
    up_sh "$1" 'cd /etc/uci-defaults && for f in *luci*; do [ -f "$f" ] && sh "$f" >/dev/null && rm -f "$f"; done; true'
    rm -f "$_r"/tmp/luci-indexcache* "$_r"/tmp/luci-modulecache/* 2>/dev/null
    return 0
}

# luci_login DIR USER PASSWORD read|write: an rpcd login section with a crypt hash;
# `write` may change everything, `read` only read. rpcd must be (re)started after.
luci_login() {
    _hash=$(printf '%s' "$3" | openssl passwd -1 -stdin) || return 1
    if [ "$2" = root ]; then
        # root logs in with its system password ($p$root in OpenWrt's /etc/config/rpcd).
        sed -i "s|^root:[^:]*:|root:$_hash:|" "$1/root/etc/shadow"
        return 0
    fi
    {
        printf "\nconfig login\n\toption username '%s'\n\toption password '%s'\n\tlist read '*'\n" "$2" "$_hash"
        if [ "$4" = write ]; then printf "\tlist write '*'\n"; fi
    } >>"$1/root/etc/config/rpcd"
}

# luci_playwright: the playwright-core module directory (installed with npm once).
luci_playwright() {
    _d=$(cache_dir)/playwright-core-$PLAYWRIGHT_VERSION
    if [ ! -f "$_d/node_modules/playwright-core/package.json" ]; then
        command -v npm >/dev/null 2>&1 || { echo "luci: npm not found" >&2; return 1; }
        mkdir -p "$_d" &&
            npm install --silent --no-audit --no-fund --prefix "$_d" "playwright-core@$PLAYWRIGHT_VERSION" >&2 ||
            return 1
    fi
    echo "$_d/node_modules/playwright-core"
}

f=$1
shift
case $f in
install) up_build && luci_install "$@" ;;
login) luci_login "$@" ;;
playwright) luci_playwright ;;
*) echo "usage: $0 install DIR | login DIR USER PASSWORD read|write | playwright" >&2; exit 2 ;;
esac
