//! Live connections per WAN mark, kept from ctnetlink events rather than counted by a
//! dump every second (`least_connections`).
//!
//! A mark-filtered conntrack dump costs the kernel a walk of the whole conntrack hash
//! table, however few entries match (the filter is applied entry by entry), and the
//! table is sized by memory, not by traffic. So the counts are seeded by one dump per
//! mark and then follow the events of a second netfilter netlink socket subscribed to
//! the NEW and DESTROY groups: a created entry adds one to its mark, a destroyed one
//! takes one away. The socket is read once per sample, without blocking; a large
//! receive buffer holds the events in between.
//!
//! A count is seeded again when events were lost (`ENOBUFS`) and every
//! [`RESEED_INTERVAL`]: with `net.netfilter.nf_conntrack_events=2` (the default since
//! Linux 6.0: events only when a listener exists), an entry created while nobody
//! listened carries no event extension and is destroyed silently; and a mark changed
//! after creation (an UPDATE event, not followed here) moves an entry between counts.
//!
//! [`Counts`] is the pure part: events and seeds in, counts out, never negative.

use crate::time::{Duration, Instant};
use std::collections::HashMap;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::netlink::set_rcvbuf;
use super::wire::{Attrs, Messages};

/// `NFNLGRP_CONNTRACK_NEW`, `NFNLGRP_CONNTRACK_DESTROY` (linux/netfilter/nfnetlink.h).
const GROUP_NEW: u32 = 1;
const GROUP_DESTROY: u32 = 3;
/// `NFNL_SUBSYS_CTNETLINK`; `IPCTNL_MSG_CT_NEW`, `IPCTNL_MSG_CT_DELETE`; `CTA_MARK`.
const SUBSYS_CTNETLINK: u16 = 1;
const CT_NEW: u16 = 0;
const CT_DELETE: u16 = 2;
const CTA_MARK: u16 = 8;
/// `struct nfgenmsg` before the attributes.
const NFGENMSG_LEN: usize = 4;
/// The receive buffer: a NEW or DESTROY message is a few hundred bytes, so this holds
/// several thousand events between two reads a second apart.
const RCVBUF: libc::c_int = 4 << 20;

/// How long a seeded count is trusted before it is seeded again.
pub const RESEED_INTERVAL: Duration = Duration::from_secs(60);

/// One conntrack event, as far as counting cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An entry was created with this conntrack mark (0 when it has none).
    New { mark: u32 },
    /// An entry with this mark was destroyed.
    Destroy { mark: u32 },
    /// Events were lost: every count must be seeded again.
    Lost,
}

/// Decode the events of one datagram. Messages of other kinds, and a `CTA_MARK` of the
/// wrong size, are skipped (mark 0); a cut-off datagram also yields [`Event::Lost`].
pub fn decode(buf: &[u8], out: &mut impl FnMut(Event)) {
    let mut messages = Messages::new(buf);
    for m in messages.by_ref() {
        if m.kind >> 8 != SUBSYS_CTNETLINK {
            continue;
        }
        let mark = || {
            let attrs = m.payload.get(NFGENMSG_LEN..).unwrap_or_default();
            Attrs::new(attrs)
                .find(|(kind, _)| *kind == CTA_MARK)
                .and_then(|(_, v)| <[u8; 4]>::try_from(v).ok())
                .map_or(0, u32::from_be_bytes)
        };
        match m.kind & 0xff {
            CT_NEW => out(Event::New { mark: mark() }),
            CT_DELETE => out(Event::Destroy { mark: mark() }),
            _ => {}
        }
    }
    if messages.truncated() {
        out(Event::Lost);
    }
}

/// Live connections per mark under one mask. Only seeded marks are counted; events
/// for the others are ignored until their seed.
#[derive(Debug, Default)]
pub struct Counts {
    mask: u32,
    marks: HashMap<u32, Count>,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    n: u32,
    seeded: Instant,
}

impl Counts {
    /// Count under `mask`; a different mask forgets every count.
    pub fn set_mask(&mut self, mask: u32) {
        if mask != self.mask {
            self.mask = mask;
            self.marks.clear();
        }
    }

    pub fn apply(&mut self, event: Event) {
        match event {
            Event::New { mark } => {
                if let Some(c) = self.marks.get_mut(&(mark & self.mask)) {
                    c.n = c.n.saturating_add(1);
                }
            }
            Event::Destroy { mark } => {
                if let Some(c) = self.marks.get_mut(&(mark & self.mask)) {
                    c.n = c.n.saturating_sub(1);
                }
            }
            Event::Lost => self.marks.clear(),
        }
    }

    /// The count of `mark` from a dump made at `now`.
    pub fn seed(&mut self, mark: u32, n: u32, now: Instant) {
        self.marks
            .insert(mark & self.mask, Count { n, seeded: now });
    }

    /// The count of `mark`, or `None` when it needs a seed (never seeded, events lost,
    /// or seeded [`RESEED_INTERVAL`] ago).
    pub fn get(&self, mark: u32, now: Instant) -> Option<u32> {
        let c = self.marks.get(&(mark & self.mask))?;
        (now < c.seeded + RESEED_INTERVAL).then_some(c.n)
    }
}

/// The event socket: NEW and DESTROY groups, non-blocking, read by [`Listener::drain`].
pub struct Listener {
    socket: Socket,
    buf: Vec<u8>,
}

impl Listener {
    pub fn open() -> io::Result<Listener> {
        Listener::with_rcvbuf(RCVBUF)
    }

    /// With a receive buffer of `size` bytes (tests shrink it to provoke `ENOBUFS`).
    pub(crate) fn with_rcvbuf(size: libc::c_int) -> io::Result<Listener> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.add_membership(GROUP_NEW)?;
        socket.add_membership(GROUP_DESTROY)?;
        socket.set_non_blocking(true)?;
        set_rcvbuf(&socket, size);
        Ok(Listener {
            socket,
            buf: Vec::with_capacity(8 * 1024),
        })
    }

    /// Hand every event received since the last call to `f`, without waiting. An
    /// overflowed socket (`ENOBUFS`) or any other receive error yields [`Event::Lost`].
    pub fn drain(&mut self, mut f: impl FnMut(Event)) {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return,
                Ok(_) => decode(&self.buf, &mut f),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.raw_os_error() != Some(libc::ENOBUFS) {
                        log::debug!("conntrack event socket: {e}");
                        f(Event::Lost);
                        return;
                    }
                    // Lost events; the socket goes on with the next ones.
                    f(Event::Lost);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::wire::Request;

    const MASK: u32 = 0x3f00;

    /// A ctnetlink event message of `kind` with `CTA_MARK` `mark` (none if `None`),
    /// after a tuple attribute as the kernel sends first.
    fn message(kind: u16, mark: Option<u32>) -> Vec<u8> {
        let mut req = Request::new(SUBSYS_CTNETLINK << 8 | kind, 0, &[2, 0, 0, 0]);
        req.attr(1, &[0u8; 8]);
        if let Some(m) = mark {
            req.attr(CTA_MARK, &m.to_be_bytes());
        }
        req.finish(0)
    }

    fn events(buf: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        decode(buf, &mut |e| out.push(e));
        out
    }

    #[test]
    fn decodes_new_and_destroy_with_their_marks() {
        let mut buf = message(CT_NEW, Some(0x1234_0200));
        buf.extend(message(CT_DELETE, Some(0x300)));
        buf.extend(message(CT_DELETE, None));
        assert_eq!(
            events(&buf),
            [
                Event::New { mark: 0x1234_0200 },
                Event::Destroy { mark: 0x300 },
                Event::Destroy { mark: 0 },
            ]
        );
    }

    #[test]
    fn other_subsystems_are_skipped_and_a_cut_datagram_is_a_loss() {
        let mut other = message(CT_NEW, Some(0x200));
        other[5] = 10; // NFNL_SUBSYS_NFTABLES
        assert_eq!(events(&other), []);
        let whole = message(CT_NEW, Some(0x200));
        let cut = &whole[..whole.len() - 6];
        assert_eq!(events(cut), [Event::Lost]);
        // A mark of the wrong size reads as no mark.
        let mut req = Request::new(SUBSYS_CTNETLINK << 8 | CT_NEW, 0, &[2, 0, 0, 0]);
        req.attr(CTA_MARK, &[1, 2]);
        assert_eq!(events(&req.finish(0)), [Event::New { mark: 0 }]);
    }

    #[test]
    fn timeline_seed_then_events_then_reseed() {
        let t0 = Instant::from_secs(100);
        let s = Duration::from_secs;
        let mut c = Counts::default();
        c.set_mask(MASK);
        // Not seeded: no count, and events do not make one.
        assert_eq!(c.get(0x200, t0), None);
        c.apply(Event::New { mark: 0x200 });
        assert_eq!(c.get(0x200, t0), None);
        c.seed(0x200, 5, t0);
        c.seed(0x300, 0, t0);
        // Bits outside the mask do not matter.
        c.apply(Event::New { mark: 0xff00_0200 });
        c.apply(Event::New { mark: 0x200 });
        c.apply(Event::Destroy { mark: 0x300 });
        c.apply(Event::New { mark: 0x400 });
        assert_eq!(c.get(0x200, t0 + s(1)), Some(7));
        // Never negative: a destroy whose entry the seed did not count.
        assert_eq!(c.get(0x300, t0 + s(1)), Some(0));
        c.apply(Event::Destroy { mark: 0x200 });
        assert_eq!(c.get(0x200, t0 + s(59)), Some(6));
        // Seeded again after the interval.
        assert_eq!(c.get(0x200, t0 + RESEED_INTERVAL), None);
        c.seed(0x200, 3, t0 + RESEED_INTERVAL);
        assert_eq!(c.get(0x200, t0 + s(61)), Some(3));
    }

    #[test]
    fn lost_events_and_a_new_mask_need_new_seeds() {
        let t0 = Instant::from_secs(100);
        let mut c = Counts::default();
        c.set_mask(MASK);
        c.seed(0x200, 4, t0);
        c.set_mask(MASK);
        assert_eq!(c.get(0x200, t0), Some(4));
        c.apply(Event::Lost);
        assert_eq!(c.get(0x200, t0), None);
        c.seed(0x200, 4, t0);
        c.set_mask(0xff);
        assert_eq!(c.get(0x200, t0), None);
    }

    /// Against the real kernel, in a throwaway namespace: entries inserted and deleted
    /// through ctnetlink (`conntrack -I`/`-D`) reach the listener as NEW and DESTROY
    /// events with their marks, and the counts follow a seed from the filtered dump.
    #[test]
    fn kernel_events_follow_entries_of_a_mark() {
        let ns = crate::sys::testns::Netns::new();
        let insert = |sport: u16, mark: u32| {
            ns.sh(&format!(
                "conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport {sport} --dport 53 \
                 --timeout 300 --mark {mark:#x} 2>/dev/null"
            ));
        };
        // One entry before the listener: seeded, never reported.
        insert(1000, 0x200);
        let (seed, mut listener) = ns.run(|| {
            let mut nf = crate::sys::nft::Netfilter::open().unwrap();
            (
                nf.count_conntrack(0x200, MASK).unwrap(),
                Listener::open().unwrap(),
            )
        });
        assert_eq!(seed, 1);
        let t0 = Instant::from_secs(100);
        let mut c = Counts::default();
        c.set_mask(MASK);
        c.seed(0x200, seed, t0);
        c.seed(0x300, 0, t0);
        insert(1001, 0x200);
        insert(1002, 0x4_0200);
        insert(1003, 0x300);
        let mut seen = Vec::new();
        listener.drain(|e| {
            seen.push(e);
            c.apply(e)
        });
        assert_eq!(
            seen,
            [
                Event::New { mark: 0x200 },
                Event::New { mark: 0x4_0200 },
                Event::New { mark: 0x300 },
            ]
        );
        assert_eq!(c.get(0x200, t0), Some(3));
        assert_eq!(c.get(0x300, t0), Some(1));
        ns.sh("conntrack -D --mark 0x300 2>/dev/null");
        listener.drain(|e| c.apply(e));
        assert_eq!(c.get(0x300, t0), Some(0));
        assert_eq!(c.get(0x200, t0), Some(3));
    }

    /// An overflowed socket says so once ([`Event::Lost`]), every count needs a seed,
    /// and the events after it arrive again.
    #[test]
    fn kernel_overflow_is_a_loss() {
        let ns = crate::sys::testns::Netns::new();
        let mut listener = ns.run(|| Listener::with_rcvbuf(1024).unwrap());
        ns.sh(
            "for p in $(seq 2000 2063); do conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 \
             --sport $p --dport 53 --timeout 300 --mark 0x200 2>/dev/null; done",
        );
        let t0 = Instant::from_secs(100);
        let mut c = Counts::default();
        c.set_mask(MASK);
        c.seed(0x200, 0, t0);
        let mut seen = Vec::new();
        listener.drain(|e| {
            seen.push(e);
            c.apply(e)
        });
        assert!(seen.contains(&Event::Lost), "{seen:?}");
        assert!(seen.len() < 64, "{seen:?}");
        assert_eq!(c.get(0x200, t0), None);
        c.seed(0x200, 64, t0);
        ns.sh(
            "conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport 3000 --dport 53 \
             --timeout 300 --mark 0x200 2>/dev/null",
        );
        listener.drain(|e| c.apply(e));
        assert_eq!(c.get(0x200, t0), Some(65));
    }
}
