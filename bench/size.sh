#!/bin/sh
# Size budget of the router binaries: writes bench/out/size.txt and fails (exit 1) if the
# stripped static mipsel binary exceeds 1,000,000 bytes.
#
#   bench/size.sh [TARGET...]   default: all four router targets
#
# Builds with packaging/build.sh unless UPLINKD_SKIP_BUILD=1 (then measures dist/ as is).
set -u
cd "$(dirname "$0")/.." || exit 1
budget=1000000
targets=${*:-mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl}
if [ "${UPLINKD_SKIP_BUILD:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    ./packaging/build.sh $targets >/dev/null || exit 1
fi
mkdir -p bench/out
out=bench/out/size.txt
fail=0
{
    echo "# stripped static binary sizes in bytes ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    for t in $targets; do
        f=dist/$t/uplinkd
        if [ -f "$f" ]; then
            printf '%-34s %9d\n' "$t" "$(wc -c <"$f")"
        else
            printf '%-34s %9s\n' "$t" missing
        fi
    done
} >"$out"
cat "$out"
case " $targets " in
    *" mipsel-unknown-linux-musl "*)
        f=dist/mipsel-unknown-linux-musl/uplinkd
        size=$(wc -c <"$f" 2>/dev/null || echo 0)
        if [ "$size" -eq 0 ]; then
            echo "size: no mipsel binary" >&2
            fail=1
        elif [ "$size" -gt "$budget" ]; then
            echo "size: FAIL: mipsel binary is $size bytes, budget $budget" >&2
            fail=1
        else
            echo "size: mipsel binary is $size bytes: within the $budget budget"
        fi
        ;;
esac
exit "$fail"
