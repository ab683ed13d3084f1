#!/bin/sh
# Build stripped, static uplinkd binaries for routers: dist/<target>/uplinkd.
#
#   packaging/build.sh [--no-install] [--packages] [TARGET...]
#
# --packages then writes the .ipk, .apk and .deb packages of what was built
# (packaging/package.sh): `packaging/build.sh --packages` is the whole release.
# With no TARGET, builds all of: mips-unknown-linux-musl, mipsel-unknown-linux-musl,
# armv7-unknown-linux-musleabihf, aarch64-unknown-linux-musl, x86_64-unknown-linux-musl
# (x86 routers and Debian gateways). On a fresh Debian machine
# (as root) it first installs what it needs; --no-install (or UPLINKD_NO_INSTALL=1) skips
# that and uses what is there.
#
# Environment:
#   UPLINKD_VENV      Python venv holding zig and cargo-zigbuild (default .cross/venv)
#   CARGO_TARGET_DIR  respected as usual (default target/)
#   DIST              output directory (default dist/)
#
# Why each piece:
# - musl, static: one binary that runs on any OpenWrt release and any Debian/Raspberry Pi
#   OS, with no libc version to match. OpenWrt itself uses musl.
# - The MIPS targets (mips = ath79 big-endian, mipsel = ramips) are tier 3: rustup has no
#   std for them, so std is built from source (`-Zbuild-std`, needs the rust-src
#   component). Stable rustc accepts the -Z flags with RUSTC_BOOTSTRAP=1; no nightly.
#   Soft-float musl targets are used because the routers' 24Kc/74Kc cores have no FPU
#   (the mips*-gnu targets are hard-float and die with SIGILL there).
# - std is rebuilt for the ARM targets too, because the size settings below only pay
#   off when std is compiled with them (and rustup has no armv7 musl std on every
#   mirror). So `rustup target add` is not needed for any target.
# - Zig (from PyPI's `ziglang`, driven by `cargo-zigbuild`) is the C toolchain and
#   linker: it ships musl's crt files and libc for every target, so there is no
#   per-target cross gcc to install. Hence `-C link-self-contained=no`: rustc must not
#   add its own crt1.o (which a rebuilt std does not have), zig supplies it.
# - `-C target-feature=+crt-static` (set in .cargo/config.toml): the mips musl targets
#   link dynamically by default.
# - `--cfg fix_y2038` (in .cargo/config.toml): without it, timers never fire on
#   mips*-musl (rustix passes a 64-bit-time itimerspec to the libc crate's 32-bit-time
#   timerfd_settime, which disarms the timer) and the daemon would sleep forever.
# - Size (profile `router` in Cargo.toml: opt-level z, fat LTO, one codegen unit,
#   strip): `panic = immediate-abort` drops the panic machinery and messages (nothing
#   in uplinkd is meant to panic; if something does, procd/systemd restarts it), and
#   `-Zlocation-detail=none` drops file/line strings of would-be panics.
#   `-C force-unwind-tables=no`: nothing unwinds with immediate-abort, so the
#   .eh_frame tables would be dead weight. The C parts (musl, compiler-rt) still bring
#   theirs: packaging/no-eh-frame.ld, added to the default link script, discards them
#   and --no-eh-frame-hdr drops the lookup table (about 10 kB on mipsel).
#   `-C relocation-model=static` (MIPS only): the binary is a static executable at a
#   fixed address, but the MIPS targets default to position-independent code, where
#   every call loads its target from the GOT (`lw $t9; jalr $t9`) and every function
#   first computes `$gp`. Non-PIC code calls with a single `jal`: about a tenth
#   smaller. (ARM and AArch64 code is PC-relative either way.)
#   `-Zbuild-std-features=optimize_for_size` picks std's smaller variants of
#   sorting, formatting and collections code (it also replaces std's default
#   features, backtrace and unwinding, which immediate-abort makes useless anyway).
#   `-Zfmt-debug=none` is NOT used: it blanks every `{:?}`, including in messages
#   users read.
# - MIPS objects carry a .pdr section (procedure descriptors for old debuggers,
#   ~15% of the binary) that no strip flag of the linker removes; binutils-multiarch's
#   objcopy, which reads every architecture, drops it.
# - qemu-user is installed so that tests/cross.sh can run the results.
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)

all_targets="mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl"
install=1
packages=0
[ "${UPLINKD_NO_INSTALL:-0}" = 1 ] && install=0
targets=""
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        --packages) packages=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
        *) targets="$targets $arg" ;;
    esac
done
[ -n "$targets" ] || targets=$all_targets

venv=${UPLINKD_VENV:-$root/.cross/venv}
dist=${DIST:-$root/dist}
target_dir=${CARGO_TARGET_DIR:-$root/target}

if [ "$install" = 1 ]; then
    need=""
    command -v python3 >/dev/null 2>&1 || need="$need python3"
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
    command -v qemu-mips >/dev/null 2>&1 || need="$need qemu-user"
    dpkg -s binutils-multiarch >/dev/null 2>&1 || need="$need binutils-multiarch"
    if [ -n "$need" ]; then
        if command -v apt-get >/dev/null 2>&1; then
            apt-get update -q
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
        else
            echo "build.sh: please install:$need" >&2
            exit 1
        fi
    fi
    rustup component add rust-src
    if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q ziglang cargo-zigbuild
    fi
fi
[ -x "$venv/bin/cargo-zigbuild" ] || {
    echo "build.sh: no cargo-zigbuild in $venv (run without --no-install)" >&2
    exit 1
}
# cargo-zigbuild runs `python3 -m ziglang` when no `zig` is on PATH: the venv's python.
PATH="$venv/bin:$PATH"
export PATH

for t in $targets; do
    case "$t" in
        mips-unknown-linux-musl|mipsel-unknown-linux-musl|armv7-unknown-linux-musleabihf|aarch64-unknown-linux-musl|x86_64-unknown-linux-musl) ;;
        *) echo "build.sh: unsupported target $t" >&2; exit 2 ;;
    esac
    var=CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
    flags="-C link-self-contained=no -C force-unwind-tables=no -Zlocation-detail=none"
    flags="$flags -C link-arg=-Wl,-T,$root/packaging/no-eh-frame.ld -C link-arg=-Wl,--no-eh-frame-hdr"
    case "$t" in
        mips*) flags="$flags -C relocation-model=static" ;;
    esac
    echo "== $t"
    # CARGO_TARGET_<T>_RUSTFLAGS adds to target.<t>.rustflags of .cargo/config.toml
    # (RUSTFLAGS would replace them).
    env RUSTC_BOOTSTRAP=1 \
        CARGO_PROFILE_ROUTER_PANIC=immediate-abort \
        "$var=$flags" \
        cargo zigbuild --locked --profile router --target "$t" --bin uplinkd \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
        -Zpanic-immediate-abort
    mkdir -p "$dist/$t"
    cp "$target_dir/$t/router/uplinkd" "$dist/$t/uplinkd"
    case "$t" in
        mips*)
            objcopy -R .pdr "$dist/$t/uplinkd" 2>/dev/null ||
                echo "build.sh: objcopy cannot read MIPS (install binutils-multiarch): .pdr kept" >&2
            ;;
    esac
    ls -l "$dist/$t/uplinkd"
done
if [ "$packages" = 1 ]; then
    DIST=$dist "$root/packaging/package.sh"
fi
