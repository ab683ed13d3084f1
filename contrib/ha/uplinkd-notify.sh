#!/bin/sh
# keepalived's notify for a pair of uplinkd routers (contrib/ha): called with master,
# backup or fault. conntrackd first, then uplinkd, which must see the committed
# connections (it deletes those pinned to a WAN that is out on this router).
CONF=/etc/conntrackd/conntrackd.conf
UPLINKD_OPTS=""
LOG=""

log() {
    if [ -n "$LOG" ]; then echo "$(date +%s.%N) $*" >>"$LOG"; else logger -t uplinkd-ha "$*"; fi
}

case "$1" in
master)
    # Put the peer's connections into the kernel, then become the sender: drop both
    # caches, refill the internal one from the kernel, send it all to the peer.
    conntrackd -C "$CONF" -c || log "conntrackd -c failed"
    conntrackd -C "$CONF" -f
    conntrackd -C "$CONF" -R
    conntrackd -C "$CONF" -B
    ;;
backup)
    # Shorten the timers of what this router forwarded (the peer has them now) and ask
    # the peer for its connections.
    conntrackd -C "$CONF" -t
    conntrackd -C "$CONF" -n
    ;;
fault)
    conntrackd -C "$CONF" -t
    ;;
*)
    echo "usage: $0 master|backup|fault" >&2
    exit 2
    ;;
esac
# shellcheck disable=SC2086 # options are words
uplinkd ha "$1" $UPLINKD_OPTS || log "uplinkd ha $1 failed"
log "$1"
