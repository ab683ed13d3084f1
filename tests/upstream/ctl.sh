#!/bin/sh
# Run one function of lib.sh from any language: ctl.sh FUNCTION [ARG...], where FUNCTION is
# a lib.sh function without its up_ prefix (build, new, create, ubusd, run, teardown, ...).
# `ctl.sh build` prints the cache prefix (or the one skip line, exit 77).
# Example from a Rust test: Command::new("tests/upstream/ctl.sh").args(["run", dir, "ubus", "list"]).
UP_LIB=$0
. "$(dirname "$0")/lib.sh"
f=$1
shift
case $f in
build) up_build && echo "$UP_PREFIX" ;;
create | root | install_project) up_build && "up_$f" "$@" ;;
*) "up_$f" "$@" ;;
esac
