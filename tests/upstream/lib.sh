# OpenWrt's real userland in a chroot, for tests. Source this file from a POSIX shell
# script (or run it through tests/upstream/ctl.sh from any language). See README.md beside
# it for the functions; in short:
#
#   . tests/upstream/lib.sh
#   up_build || exit $?             # 77 (with one line printed) when the sources are absent
#   dir=$(up_new)                   # a fresh state directory
#   up_trap "$dir"                  # tear down on exit, failure or signal
#   up_create "$dir" my-router      # root + private mount namespace, in netns my-router
#   up_ubusd "$dir"                 # ubusd on the default socket inside the root
#   up_run "$dir" ubus list         # any command, chrooted, in the router namespace
#   up_teardown "$dir"              # kills everything that runs in the root, unmounts
#
# State lives in files under the state directory (no shell variables are needed between
# calls), so separate processes can drive the same root:
#   $dir/root      the root (its /var/run/ubus/ubus.sock is reachable from the host too)
#   $dir/log/NAME  stdout+stderr of each daemon started with up_spawn
#   $dir/pid/NAME  its pid
#   $dir/netns     the network namespace's name; $dir/ns/mnt the mount namespace

UP_HERE=$(cd "$(dirname "${UP_LIB:-$0}")" 2>/dev/null && pwd)
# Sourced scripts cannot see their own path in POSIX sh: callers outside tests/upstream set
# UP_LIB to this file's path, or the repository root is found from the caller's directory.
if [ ! -f "$UP_HERE/build.sh" ]; then
    UP_HERE=$(cd "$(dirname "$0")" && git rev-parse --show-toplevel 2>/dev/null)/tests/upstream
fi
UP_REPO=$(cd "$UP_HERE/../.." && pwd)
UP_SRC=${UPLINKD_UPSTREAM:-$UP_REPO/../shared/upstream}
UP_PATH=/usr/sbin:/usr/bin:/sbin:/bin

# up_build: build (or find in the cache) the userland; sets UP_PREFIX. Returns 77 after
# printing one line when the upstream sources are absent, another status on failure.
up_build() {
    UP_PREFIX=$("$UP_HERE/build.sh" | tail -n 1)
    _s=$?
    # A pipeline's status is tail's: check what build.sh printed instead.
    if [ ! -f "$UP_PREFIX/.complete" ]; then
        case $UP_PREFIX in
        upstream:*absent*) echo "$UP_PREFIX"; return 77 ;;
        esac
        echo "upstream: build failed" >&2
        return 1
    fi
    export UP_PREFIX
    return "$_s"
}

# up_new: print a fresh, empty state directory.
up_new() {
    mktemp -d "${TMPDIR:-/tmp}/uplinkd-upstream.XXXXXX"
}

# up_trap DIR: tear DIR down when the calling shell exits or is interrupted.
up_trap() {
    # shellcheck disable=SC2064
    trap "up_teardown '$1'" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# up_netns DIR: the network namespace's name.
up_netns() {
    cat "$1/netns"
}

# up_create DIR [NETNS]: assemble the root in DIR/root and a private mount namespace for
# it inside network namespace NETNS (created, and deleted again by up_teardown, when it
# does not exist yet; default: a new one named after DIR).
up_create() {
    _d=$1
    _ns=${2:-up-$(basename "$_d" | tr -cd 'a-zA-Z0-9' | tail -c 8)}
    [ -n "${UP_PREFIX:-}" ] || up_build || return $?
    mkdir -p "$_d/log" "$_d/pid" "$_d/ns"
    echo "$_ns" >"$_d/netns"
    if [ ! -e "/run/netns/$_ns" ]; then
        ip netns add "$_ns" || return 1
        touch "$_d/own-netns"
        ip -n "$_ns" link set lo up
    fi
    up_root "$_d/root" || return 1
    # The mount namespace is kept by a bind mount of its handle on a private mount.
    mount --bind "$_d/ns" "$_d/ns" && mount --make-private "$_d/ns" && touch "$_d/ns/mnt" || return 1
    _r=$_d/root
    nsenter --net="/run/netns/$_ns" unshare --mount="$_d/ns/mnt" --propagation private sh -ec "
        mount -t proc proc '$_r/proc'
        mount -t sysfs sysfs '$_r/sys'
        mount --rbind /dev '$_r/dev'
        mount --bind /usr/lib/x86_64-linux-gnu '$_r/usr/lib/x86_64-linux-gnu'
        mount -o remount,bind,ro '$_r/usr/lib/x86_64-linux-gnu'
    " || return 1
}

# up_root ROOT: lay out an OpenWrt-like root: the built binaries, busybox applets,
# OpenWrt's runtime files. up_create calls it; call it alone to inspect a root.
up_root() {
    _r=$1
    mkdir -p "$_r"
    cp -a "$UP_PREFIX/root/." "$_r/" || return 1
    rm -rf "$_r/usr/include" "$_r/usr/lib/pkgconfig"
    # OpenWrt's runtime files.
    _t=$(mktemp -d) || return 1
    tar -xzf "$UP_SRC/openwrt-files.tar.gz" -C "$_t" || { rm -rf "$_t"; return 1; }
    tar -xzf "$UP_SRC/netifd.tar.gz" -C "$_t" netifd/scripts
    tar -xzf "$UP_SRC/rpcd.tar.gz" -C "$_t" rpcd/unauthenticated.json
    _p=$_t/openwrt-files/package
    cp -a "$_p/base-files/files/." "$_r/"
    sed -i "s|%PATH%|$UP_PATH|" "$_r/sbin/hotplug-call"
    cp -a "$_p/network/config/netifd/files/." "$_r/"
    mkdir -p "$_r/lib/netifd" "$_r/lib/config" "$_r/lib/functions" "$_r/usr/share/rpcd/acl.d" \
        "$_r/etc/config" "$_r/etc/init.d" "$_r/usr/share/acl.d"
    cp "$_t/netifd/scripts/netifd-proto.sh" "$_t/netifd/scripts/utils.sh" "$_r/lib/netifd/"
    cp "$_p/system/uci/files/lib/config/uci.sh" "$_r/lib/config/"
    cp "$_p/system/procd/files/procd.sh" "$_r/lib/functions/procd.sh"
    cp "$_p/system/procd/files/service" "$_p/system/procd/files/reload_config" "$_r/sbin/"
    cp "$_p/system/procd/files/hotplug.json" "$_r/etc/"
    cp "$_p/system/rpcd/files/rpcd.init" "$_r/etc/init.d/rpcd"
    cp "$_p/system/rpcd/files/rpcd.config" "$_r/etc/config/rpcd"
    cp "$_t/rpcd/unauthenticated.json" "$_r/usr/share/rpcd/acl.d/"
    cp "$_p/network/services/uhttpd/files/uhttpd.init" "$_r/etc/init.d/uhttpd"
    cp "$_p/network/services/uhttpd/files/uhttpd.config" "$_r/etc/config/uhttpd"
    chmod 755 "$_r/sbin/service" "$_r/sbin/reload_config" "$_r/etc/init.d/"*
    rm -rf "$_t"
    # busybox applets where nothing else is (after the runtime files: a copy onto an applet
    # link would land on busybox), linked relatively so that nothing reaches the host.
    cp /bin/busybox "$_r/bin/busybox" || return 1
    for _a in $("$_r/bin/busybox" --list-full); do
        [ -e "$_r/$_a" ] || [ -L "$_r/$_a" ] && continue
        mkdir -p "$_r/${_a%/*}"
        case $_a in
        bin/*) ln -s busybox "$_r/$_a" ;;
        sbin/*) ln -s ../bin/busybox "$_r/$_a" ;;
        *) ln -s ../../bin/busybox "$_r/$_a" ;;
        esac
    done
    # The host's nft (uplinkd and fw4 run it; its libraries come with the host's glibc).
    if command -v nft >/dev/null 2>&1; then
        mkdir -p "$_r/usr/sbin"
        cp "$(command -v nft)" "$_r/usr/sbin/nft"
    fi
    # flock from the host (procd.sh locks with it; Debian's busybox has no flock applet).
    if [ ! -e "$_r/usr/bin/flock" ] && command -v flock >/dev/null 2>&1; then
        rm -f "$_r/usr/bin/flock"
        cp "$(command -v flock)" "$_r/usr/bin/flock"
    fi
    # jsonfilter is not among the sources: a ucode stand-in for the expressions that
    # procd.sh, /sbin/service and network.sh use (see jsonfilter.uc).
    cp "$UP_HERE/jsonfilter.uc" "$_r/usr/bin/jsonfilter" && chmod 755 "$_r/usr/bin/jsonfilter"
    # Neither is ubox's validate_data (uci_validate_section in init scripts).
    cp "$UP_HERE/validate_data.uc" "$_r/sbin/validate_data" && chmod 755 "$_r/sbin/validate_data"
    # The glibc the binaries were built against comes from the host (read-only bind
    # mount in up_create); /var is /tmp as on a router.
    mkdir -p "$_r/usr/lib/x86_64-linux-gnu" "$_r/lib64" "$_r/proc" "$_r/sys" "$_r/dev" \
        "$_r/tmp/run/ubus" "$_r/tmp/lock" "$_r/tmp/state" "$_r/root" "$_r/www/cgi-bin"
    ln -sfn ../usr/lib/x86_64-linux-gnu "$_r/lib/x86_64-linux-gnu"
    ln -sfn /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$_r/lib64/ld-linux-x86-64.so.2"
    chmod 1777 "$_r/tmp"
    rm -rf "$_r/var"
    ln -s tmp "$_r/var"
    # A minimal system config (procd's service object and some scripts read it).
    [ -f "$_r/etc/config/system" ] || printf "config system\n\toption hostname 'OpenWrt'\n" >"$_r/etc/config/system"
    touch "$_r/etc/config/network"
}

# up_install_project DIR [BINARY]: install the project's package files (as the OpenWrt
# package installs them) and BINARY (default: target/debug/uplinkd) into the root.
up_install_project() {
    _r=$1/root
    _b=${2:-$UP_REPO/target/debug/uplinkd}
    _f=$UP_REPO/openwrt-package/uplinkd/files
    mkdir -p "$_r/usr/sbin" "$_r/usr/share/uplinkd" "$_r/usr/share/acl.d"
    cp "$_b" "$_r/usr/sbin/uplinkd" || return 1
    cp "$_f/etc/init.d/uplinkd" "$_r/etc/init.d/uplinkd" && chmod 755 "$_r/etc/init.d/uplinkd"
    cp "$_f/etc/config/uplinkd" "$_r/etc/config/uplinkd"
    cp "$_f/etc/config/uplinkd" "$_r/usr/share/uplinkd/uplinkd.default"
    if [ -d "$_f/usr/share" ]; then cp -a "$_f/usr/share/." "$_r/usr/share/"; fi
    if [ -d "$_f/etc/capabilities" ]; then cp -a "$_f/etc/capabilities" "$_r/etc/"; fi
}

# up_run DIR CMD [ARG...]: run CMD chrooted in the root, in its network and mount
# namespaces, with a clean environment (PATH as on a router). Returns CMD's status.
up_run() {
    _d=$1
    shift
    nsenter --net="/run/netns/$(cat "$_d/netns")" --mount="$_d/ns/mnt" \
        chroot "$_d/root" /usr/bin/env -i PATH="$UP_PATH" HOME=/root TERM=dumb "$@"
}

# up_sh DIR SCRIPT: run a shell command line in the root (busybox ash).
up_sh() {
    up_run "$1" /bin/sh -c "$2"
}

# up_spawn DIR NAME CMD [ARG...]: start a daemon in the root in the background; its
# output goes to DIR/log/NAME, its pid to DIR/pid/NAME.
up_spawn() {
    _d=$1 _n=$2
    shift 2
    # exec: the recorded pid is the daemon's own (nsenter, chroot and env exec in turn).
    (exec nsenter --net="/run/netns/$(cat "$_d/netns")" --mount="$_d/ns/mnt" \
        chroot "$_d/root" /usr/bin/env -i PATH="$UP_PATH" HOME=/root TERM=dumb "$@") \
        >>"$_d/log/$_n" 2>&1 </dev/null &
    echo $! >"$_d/pid/$_n"
}

# up_stop DIR NAME [SIGNAL]: stop a daemon started with up_spawn (default SIGTERM) and
# wait up to 5 s for it to exit.
up_stop() {
    _p=$(cat "$1/pid/$2" 2>/dev/null) || return 0
    kill "-${3:-TERM}" "$_p" 2>/dev/null
    _i=0
    while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    rm -f "$1/pid/$2"
}

# up_wait TIMEOUT_S CMD [ARG...]: retry CMD every 0.1 s until it succeeds; 1 on timeout.
up_wait() {
    _end=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.1
    done
}

# up_wait_ubus DIR OBJECT [TIMEOUT_S]: wait until OBJECT is on the bus (default 10 s).
up_wait_ubus() {
    up_wait "${3:-10}" up_run "$1" ubus -t 1 list "$2" ||
        { echo "upstream: ubus object $2 did not appear" >&2 && return 1; }
}

# up_ubusd DIR: start ubusd on the default socket (/var/run/ubus/ubus.sock in the root;
# $DIR/root/var/run/ubus/ubus.sock from the host).
up_ubusd() {
    rm -f "$1/root/var/run/ubus/ubus.sock"
    up_spawn "$1" ubusd /sbin/ubusd
    up_wait 10 test -S "$1/root/var/run/ubus/ubus.sock" ||
        { echo "upstream: ubusd did not start:" >&2 && cat "$1/log/ubusd" >&2 && return 1; }
}

# up_procd DIR: start procd -S (not PID 1: it provides the service and system objects
# that /etc/rc.common and procd.sh init scripts use). Needs ubusd.
up_procd() {
    up_spawn "$1" procd /sbin/procd -S
    up_wait_ubus "$1" service
}

# up_rpcd DIR: start rpcd (session, uci, file, luci ... objects). Needs ubusd.
up_rpcd() {
    up_spawn "$1" rpcd /sbin/rpcd
    up_wait_ubus "$1" session
}

# up_uhttpd DIR [LISTEN]: start uhttpd serving /www with /cgi-bin and /ubus, and LuCI's
# ucode handler on /cgi-bin/luci when LuCI is installed in the root
# (/usr/share/ucode/luci/uhttpd.uc), on LISTEN (default 0.0.0.0:80 inside the
# namespace). Needs ubusd (for /ubus).
# With LuCI, one LuCI request runs at a time (`-n 1`, the `max_requests` option of
# /etc/config/uhttpd): LuCI's ucode dispatcher connects to ubus once, in uhttpd, and
# every request's forked worker shares that socket, so two workers waiting at once can
# read each other's replies and both wait until the script timeout. Two parallel
# requests for /cgi-bin/luci/admin/menu stalled 14 times in 20 with the default of 3.
up_uhttpd() {
    _l=${2:-0.0.0.0:80}
    if [ -f "$1/root/usr/share/ucode/luci/uhttpd.uc" ]; then
        set -- "$1" -n 1 -o /cgi-bin/luci -O /usr/share/ucode/luci/uhttpd.uc
    else
        set -- "$1"
    fi
    _d=$1
    shift
    up_spawn "$_d" uhttpd /usr/sbin/uhttpd -f -h /www -r OpenWrt -x /cgi-bin -u /ubus -t 60 -T 30 \
        -p "$_l" "$@"
    _port=${_l##*:}
    up_wait 10 up_sh "$_d" "netstat -ltn | grep -q ':$_port '" && kill -0 "$(cat "$_d/pid/uhttpd")" ||
        { echo "upstream: uhttpd did not listen:" >&2 && cat "$_d/log/uhttpd" >&2 && return 1; }
}

# up_netifd DIR: start netifd (configuration from the root's /etc/config/network). Needs
# ubusd.
up_netifd() {
    up_spawn "$1" netifd /sbin/netifd
    up_wait_ubus "$1" network.interface
}

# up_service DIR NAME ACTION: run /etc/init.d/NAME ACTION in the root (needs procd).
up_service() {
    up_run "$1" "/etc/init.d/$2" "$3"
}

# up_pids DIR: pids of every process running in the root's mount namespace.
up_pids() {
    _m=$(stat -L -c %i "$1/ns/mnt" 2>/dev/null) || return 0
    for _p in /proc/[0-9]*; do
        [ "$(stat -L -c %i "$_p/ns/mnt" 2>/dev/null)" = "$_m" ] && echo "${_p#/proc/}"
    done
    return 0
}

# up_teardown DIR: kill everything running in the root (TERM, then KILL after 3 s),
# drop its mount namespace, delete the network namespace if up_create made it, remove
# DIR. Safe to call twice and on a half-made DIR. Set UP_KEEP=1 to keep DIR (logs).
up_teardown() {
    _d=$1
    [ -d "$_d" ] || return 0
    if [ -e "$_d/ns/mnt" ]; then
        _ps=$(up_pids "$_d")
        if [ -n "$_ps" ]; then
            # shellcheck disable=SC2086
            kill -TERM $_ps 2>/dev/null
            _i=0
            while [ -n "$(up_pids "$_d")" ] && [ $_i -lt 30 ]; do
                sleep 0.1
                _i=$((_i + 1))
            done
            # shellcheck disable=SC2046
            kill -KILL $(up_pids "$_d") 2>/dev/null
        fi
        umount "$_d/ns/mnt" 2>/dev/null
    fi
    umount "$_d/ns" 2>/dev/null
    if [ -f "$_d/own-netns" ]; then
        ip netns delete "$(cat "$_d/netns")" 2>/dev/null
    fi
    if [ "${UP_KEEP:-0}" = 1 ]; then
        echo "upstream: kept $_d" >&2
    else
        rm -rf "$_d"
    fi
}
