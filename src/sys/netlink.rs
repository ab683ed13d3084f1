//! The netlink backend of [`Kernel`]: dumps and writes over a `NETLINK_ROUTE` socket,
//! plus the event [`Monitor`] and the `ip`-command rendering of an [`Op`] ([`describe`]).
//!
//! Routes and rules go through netlink-packet-route; nexthop objects, which it does not
//! model, through [`super::nexthop`]; links and addresses are read with a few lines of
//! our own (only the ifindex, name, flags and address are needed, and the link message
//! carries dozens of attributes a newer kernel may extend). Every received buffer is
//! walked with [`super::wire::Messages`], so a message nobody can parse is skipped, never
//! fatal.
//!
//! # Mapping to the model
//!
//! Objects that carry our tags are decoded into [`Object`]s exactly, so that what was
//! applied dumps back equal and a reconcile of a system in sync is empty. An object in
//! our ranges with our protocol that the model cannot express is still reported, so the
//! reconciler replaces or deletes it:
//! - a route of another type (prohibit, throw, ...) or a nexthop that is a blackhole,
//!   fdb, encap or resilient-group nexthop decodes as `Via { ifindex: 0, gateway: None }`,
//!   a value the plan never asks for, so it differs from any wanted object with its key;
//! - a rule with another action (goto, blackhole, ...) decodes with table 0;
//! - match fields the model lacks (iif, dst, tos, ports, uid range, source of a route,
//!   ...) are ignored.
//!
//! IPv6 stores a route added with metric 0 as metric 1024 (`IP6_RT_PRIO_USER`), so
//! IPv6 routes should be planned with a non-zero metric to dump back equal. A gateway
//! of the other family (an IPv4 route via an IPv6 gateway) is decoded from `RTA_VIA`
//! but not written: the kernel refuses it as `RTA_GATEWAY`.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SmolSocket, Socket};

use super::kernel::Kernel;
use super::nexthop::{self, NexthopMsg, AF_INET, AF_INET6};
use super::wire::{
    align, parse_ack, u16_at, u32_at, Ack, Attrs, Messages, Request, NLA_HDRLEN, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL,
    NLM_F_REPLACE,
};
use crate::kernel::{
    self, Address, Family, ForeignDefault, GroupMember, Link, MultipathHop, Nexthop, NexthopKind,
    Object, Ownership, Reads, Route, RouteTarget, Rule, Selector, Snapshot,
};
use crate::reconcile::Op;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNEIGH: u16 = 28;
/// `struct ndmsg` (12 bytes): family, pad, pad, ifindex, state, flags, type.
const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;
const RTM_GETNEIGH: u16 = 30;
/// `ndm_state` bits (include/uapi/linux/neighbour.h).
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// `ndm_flags`: "use" the entry, as sending a packet to it would (`neigh_event_send`).
const NTF_USE: u8 = 0x01;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;

const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFLA_IFNAME: u16 = 3;
const RTA_OIF: u16 = 4;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_NH_ID: u16 = 30;
const RTPROT_KERNEL: u8 = 2;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RT_SCOPE_UNIVERSE: u8 = 0;

const RT_TABLE_UNSPEC: u32 = 0;
const RT_TABLE_DEFAULT: u32 = 253;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;
/// `RTM_F_CLONED` in `rtmsg.rtm_flags`: a cached clone (PMTU exception, redirect).
const RTM_F_CLONED: u32 = 0x200;

/// Multicast groups of the event socket (`enum rtnetlink_groups`).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV6_RULE: u32 = 19;
const RTNLGRP_NEXTHOP: u32 = 32;

/// A dump that the kernel keeps interrupting (`NLM_F_DUMP_INTR`) is retried this often.
const DUMP_ATTEMPTS: usize = 8;
/// Receive buffer of the request socket; a dump datagram is at most 32 KiB on current
/// kernels, and a larger one is detected (`MSG_TRUNC`) and the dump redone with room.
const RECV_BUF: usize = 64 * 1024;
/// How long a request waits for the kernel's reply before giving up.
const REPLY_TIMEOUT_S: libc::time_t = 2;
/// Receive buffer of the event socket, so a burst (a link flap drops many routes) fits.
const MONITOR_RCVBUF: libc::c_int = 1 << 20;

/// Set once the "rule dumps refused" warning has been logged.
static RULES_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Why a request failed.
enum Failure {
    Io(io::Error),
    Kernel(Ack),
    /// A dump was interrupted or did not fit: redo it.
    Retry,
}

impl Failure {
    fn errno(&self) -> Option<i32> {
        match self {
            Failure::Io(e) => e.raw_os_error(),
            Failure::Kernel(a) => Some(a.errno),
            Failure::Retry => Some(libc::EINTR),
        }
    }

    fn into_error(self, context: String) -> kernel::Error {
        let errno = self.errno();
        let context = match self {
            Failure::Kernel(Ack {
                reason: Some(r), ..
            }) => format!("{context} ({r})"),
            _ => context,
        };
        kernel::Error { context, errno }
    }
}

/// The request/ack socket. Every write carries `NLM_F_ACK` and is waited for, so a
/// failure is reported against the operation that caused it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    own: Ownership,
    /// Links of the last snapshot, to name devices in error messages.
    links: Vec<Link>,
    buf: Vec<u8>,
    /// The kernel checks dump requests strictly and honours their filters
    /// (`NETLINK_GET_STRICT_CHK`, kernel >= 4.20).
    strict: bool,
}

impl Netlink {
    /// Opens the socket. `own` supplies the protocol stamped on every object written
    /// (a later [`Kernel::snapshot`] with other tags replaces it).
    pub fn open(own: Ownership) -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        // Best effort: the kernel's reason for a refusal, and short error replies.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        // Kernel 4.20 added NETLINK_GET_STRICT_CHK: dump requests are validated and
        // their header fields and attributes filter what is dumped. Older kernels
        // refuse the option (ENOPROTOOPT); dumps are then whole and filtered here.
        let strict = socket.set_netlink_get_strict_chk(true).is_ok();
        if !strict {
            log::info!(
                "netlink: the kernel cannot filter dumps (before 4.20): reading whole tables"
            );
        }
        // The kernel answers every request; a reply that never comes (a lost datagram)
        // must surface as an error, not hang the daemon.
        set_timeout(&socket, libc::SO_RCVTIMEO, REPLY_TIMEOUT_S);
        Ok(Netlink {
            socket,
            seq: std::process::id().wrapping_mul(1000),
            own,
            links: Vec::new(),
            buf: Vec::with_capacity(RECV_BUF),
            strict,
        })
    }

    /// The netlink port id of the request socket: the kernel stamps it on the
    /// notifications our own writes cause, which is how the event monitor knows them.
    pub fn port_id(&self) -> u32 {
        let mut addr = netlink_sys::SocketAddr::new(0, 0);
        match self.socket.get_address(&mut addr) {
            Ok(()) => addr.port_number(),
            Err(_) => 0,
        }
    }

    /// Whether dumps are filtered by the kernel (strict checking accepted).
    pub fn filters_dumps(&self) -> bool {
        self.strict
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Receives one datagram into `self.buf`; `Retry` if it did not fit.
    fn recv(&mut self) -> Result<(), Failure> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.capacity() => {
                    self.buf.reserve(n);
                    return Err(Failure::Retry);
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }

    /// Sends `req` with `NLM_F_ACK` and waits for the kernel's answer to it.
    fn request(&mut self, req: &Request) -> Result<(), Failure> {
        let seq = self.next_seq();
        self.socket.send(&req.finish(seq), 0).map_err(Failure::Io)?;
        loop {
            match self.recv() {
                Ok(()) => {}
                // An oversized reply to a write is not ours to redo; keep reading.
                Err(Failure::Retry) => continue,
                Err(e) => return Err(e),
            }
            for m in Messages::new(&self.buf) {
                if m.seq != seq || m.kind != NLMSG_ERROR {
                    continue;
                }
                return match parse_ack(m.flags, m.payload) {
                    Some(Ack { errno: 0, .. }) => Ok(()),
                    Some(ack) => Err(Failure::Kernel(ack)),
                    None => Err(Failure::Io(io::Error::from_raw_os_error(libc::EBADMSG))),
                };
            }
        }
    }

    /// Runs a dump to its end, handing every message to `each` as it arrives (nothing
    /// but what `each` keeps is held, so a dump of 300,000 routes costs one receive
    /// buffer), and redoes it, from a fresh `A`, when the kernel flags it inconsistent.
    fn dump<A: Default>(
        &mut self,
        req: &Request,
        mut each: impl FnMut(&mut A, u16, &[u8]),
    ) -> Result<A, Failure> {
        let mut last = Failure::Retry;
        for _ in 0..DUMP_ATTEMPTS {
            let mut acc = A::default();
            match self.dump_once(req, &mut |kind, payload| each(&mut acc, kind, payload)) {
                Ok(()) => return Ok(acc),
                Err(Failure::Retry) => last = Failure::Retry,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn dump_once(
        &mut self,
        req: &Request,
        each: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<(), Failure> {
        let seq = self.next_seq();
        self.socket.send(&req.finish(seq), 0).map_err(Failure::Io)?;
        let mut interrupted = false;
        let mut truncated = false;
        loop {
            match self.recv() {
                Ok(()) => {}
                // Keep reading to the end of this dump, then redo it.
                Err(Failure::Retry) => {
                    truncated = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            for m in Messages::new(&self.buf) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.kind {
                    NLMSG_DONE => {
                        // The kernel may put a dump's error into DONE (a negative errno).
                        let code = u32_at(m.payload, 0).map_or(0, |c| c as i32);
                        if code < 0 {
                            return Err(Failure::Kernel(Ack {
                                errno: code.checked_neg().unwrap_or(i32::MAX),
                                reason: None,
                            }));
                        }
                        if interrupted || truncated {
                            return Err(Failure::Retry);
                        }
                        return Ok(());
                    }
                    NLMSG_ERROR => {
                        return match parse_ack(m.flags, m.payload) {
                            Some(Ack { errno: 0, .. }) => Ok(()),
                            Some(ack) => Err(Failure::Kernel(ack)),
                            None => Err(Failure::Io(io::Error::from_raw_os_error(libc::EBADMSG))),
                        };
                    }
                    NLMSG_OVERRUN => return Err(Failure::Retry),
                    kind if !truncated => each(kind, m.payload),
                    _ => {}
                }
            }
        }
    }

    /// Dumps routes with `req`, classifying each as it arrives (see [`RoutePass`]).
    fn dump_routes(
        &mut self,
        req: &Request,
        pass: RoutePass,
        own: &Ownership,
        nexthops: &[NexthopMsg],
    ) -> Result<Snapshot, Failure> {
        self.dump(req, |part: &mut Snapshot, kind, payload| {
            if kind != RTM_NEWROUTE {
                return;
            }
            let Some(msg) = RouteMsg::parse(payload) else {
                log::debug!("skipping an undecodable route message");
                return;
            };
            classify_route(&msg, own, nexthops, pass, part);
        })
    }
}

impl Netlink {
    /// The `ndm_state` of neighbour `addr` on `ifindex` (`ip neigh get`, kernel 5.0);
    /// `None` when there is no entry.
    fn neighbour_state(&mut self, ifindex: u32, addr: IpAddr) -> Result<Option<u16>, Failure> {
        let mut header = [0u8; NDMSG_LEN];
        header[0] = family_byte(addr);
        header[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        let mut req = Request::new(RTM_GETNEIGH, 0, &header);
        req.attr(NDA_DST, &addr_bytes(addr));
        let seq = self.next_seq();
        self.socket.send(&req.finish(seq), 0).map_err(Failure::Io)?;
        loop {
            match self.recv() {
                Ok(()) | Err(Failure::Retry) => {}
                Err(e) => return Err(e),
            }
            for m in Messages::new(&self.buf) {
                if m.seq != seq {
                    continue;
                }
                match m.kind {
                    RTM_NEWNEIGH => {
                        return Ok(m.payload.get(..NDMSG_LEN).and_then(|h| u16_at(h, 8)))
                    }
                    NLMSG_ERROR => {
                        return match parse_ack(m.flags, m.payload) {
                            Some(Ack { errno: 0, .. }) => Ok(None),
                            Some(Ack { errno, .. }) if errno == libc::ENOENT => Ok(None),
                            Some(ack) => Err(Failure::Kernel(ack)),
                            None => Err(Failure::Io(io::Error::from_raw_os_error(libc::EBADMSG))),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What a gateway probe asks of the kernel, given the entry's `ndm_state`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Solicitation {
    /// Permanent or noarp: set by someone else, never resolved; left alone.
    Static,
    /// Already being resolved (incomplete, probe): its outcome answers.
    Pending,
    /// A known address (reachable, stale, delay): set `NUD_PROBE`, so the kernel sends
    /// unicast solicitations at once (`ucast_solicit`, every `retrans_time_ms`) and the
    /// entry goes `REACHABLE` on an answer or `FAILED` when they are used up. Seen on
    /// Linux 6.x; `__neigh_update` has accepted an administrative `NUD_PROBE` since 2.6.
    Probe,
    /// No entry, or a failed one: `NTF_USE` starts a resolution (`INCOMPLETE`,
    /// broadcast/multicast solicitations), as a packet to it would.
    Resolve,
}

fn solicitation(state: Option<u16>) -> Solicitation {
    match state {
        Some(s) if s & (NUD_PERMANENT | NUD_NOARP) != 0 => Solicitation::Static,
        Some(s) if s & (NUD_INCOMPLETE | NUD_PROBE) != 0 => Solicitation::Pending,
        Some(s) if s & (NUD_REACHABLE | NUD_STALE | NUD_DELAY) != 0 => Solicitation::Probe,
        _ => Solicitation::Resolve,
    }
}

/// The `RTM_NEWNEIGH` request of a [`Solicitation`]: `ip neigh change ADDR dev DEV nud
/// probe` (the kernel keeps the known link-layer address when none is given), or
/// `ip neigh replace ADDR dev DEV use`.
fn neighbour_request(ifindex: u32, addr: IpAddr, what: Solicitation) -> Request {
    let mut header = [0u8; NDMSG_LEN];
    header[0] = family_byte(addr);
    header[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    let flags = if what == Solicitation::Probe {
        header[8..10].copy_from_slice(&NUD_PROBE.to_ne_bytes());
        NLM_F_ACK | NLM_F_REPLACE
    } else {
        header[10] = NTF_USE;
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    };
    let mut req = Request::new(RTM_NEWNEIGH, flags, &header);
    req.attr(NDA_DST, &addr_bytes(addr));
    req
}

fn family_byte(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Which routes of a dump a snapshot keeps: a filtered dump asks for either ours (by
/// protocol) or those on one device, and a route of ours on a WAN device comes in both.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum RoutePass {
    Owned,
    Foreign,
    Both,
}

/// `RTM_GETROUTE` dump request for `family`, which the kernel (strict checking, 4.20+)
/// narrows to routes of `protocol` and/or through `oif` (0: any), as
/// `ip route show proto P` / `ip route show dev D` ask (`ip_valid_fib_dump_req`:
/// rtm_table, rtm_protocol, rtm_type, RTA_TABLE and RTA_OIF filter; the prefix lengths
/// must be 0).
fn route_dump_request(family: u8, protocol: u8, oif: u32) -> Request {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut header = [0u8; 12];
    header[0] = family;
    header[5] = protocol;
    let mut req = Request::new(RTM_GETROUTE, NLM_F_DUMP, &header);
    if oif != 0 {
        req.attr_u32(RTA_OIF, oif);
    }
    req
}

impl Kernel for Netlink {
    fn solicit(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), kernel::Error> {
        let dev = self.links.iter().find(|l| l.ifindex == ifindex);
        let dev = dev.map_or_else(|| format!("if{ifindex}"), |l| l.name.clone());
        let context = || format!("ip neigh change {addr} dev {dev} nud probe");
        let state = match self.neighbour_state(ifindex, addr) {
            Ok(state) => state,
            Err(f) => return Err(f.into_error(context())),
        };
        match solicitation(state) {
            Solicitation::Static => Err(kernel::Error {
                context: format!("{}: the entry is static, nothing to ask", context()),
                errno: None,
            }),
            Solicitation::Pending => Ok(()),
            Solicitation::Probe | Solicitation::Resolve => {
                let req = neighbour_request(ifindex, addr, solicitation(state));
                self.request(&req).map_err(|f| f.into_error(context()))
            }
        }
    }

    fn snapshot(&mut self, own: &Ownership, reads: &Reads) -> Result<Snapshot, kernel::Error> {
        self.own = own.clone();
        let mut snap = Snapshot::default();
        let what = |what: &'static str| move |f: Failure| f.into_error(format!("dump {what}"));

        snap.links = self
            .dump(
                &Request::new(RTM_GETLINK, NLM_F_DUMP, &[0u8; 16]),
                |links: &mut Vec<Link>, kind, payload| {
                    if kind == RTM_NEWLINK {
                        links.extend(decode_link(payload));
                    }
                },
            )
            .map_err(what("links"))?;
        self.links = snap.links.clone();

        snap.addresses = self
            .dump(
                &Request::new(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8]),
                |addrs: &mut Vec<Address>, kind, payload| {
                    if kind == RTM_NEWADDR {
                        addrs.extend(decode_address(payload));
                    }
                },
            )
            .map_err(what("addresses"))?;

        // Nexthops are not filtered: the kernel can narrow a nexthop dump by device or
        // to groups only, not by id or protocol, and a stale nexthop of ours on a device
        // that is no longer a WAN must still be found and removed.
        let nexthops = match self.dump(
            &nexthop::dump_request(NLM_F_DUMP),
            |nhs: &mut Vec<NexthopMsg>, kind, payload| {
                if kind == nexthop::RTM_NEWNEXTHOP {
                    nhs.extend(nexthop::decode(payload));
                }
            },
        ) {
            Ok(nhs) => {
                snap.nexthops_supported = true;
                nhs
            }
            // Before 5.3 the message type is unknown to rtnetlink.
            Err(f)
                if matches!(
                    f.errno(),
                    Some(libc::EINVAL | libc::EOPNOTSUPP | libc::EAFNOSUPPORT)
                ) =>
            {
                snap.nexthops_supported = false;
                Vec::new()
            }
            Err(f) => return Err(f.into_error("dump nexthops".into())),
        };
        for nh in &nexthops {
            if own.owns_nexthop(nh.id, nh.protocol) {
                snap.owned.push(Object::Nexthop(to_nexthop(nh, &nexthops)));
            }
        }

        let devices: Option<Vec<u32>> = match reads {
            Reads::Devices(names) if self.strict => Some(
                snap.links
                    .iter()
                    .filter(|l| names.contains(&l.name))
                    .map(|l| l.ifindex)
                    .collect(),
            ),
            _ => None,
        };
        match devices {
            // Ours by protocol, then what is on each WAN device: the kernel walks its
            // tables and sends only those, and a BGP table elsewhere is never copied.
            Some(devices) => {
                for family in [AF_INET, AF_INET6] {
                    let req = route_dump_request(family, own.protocol, 0);
                    let part = self
                        .dump_routes(&req, RoutePass::Owned, own, &nexthops)
                        .map_err(what("routes"))?;
                    snap.owned.extend(part.owned);
                    for &oif in &devices {
                        let req = route_dump_request(family, 0, oif);
                        match self.dump_routes(&req, RoutePass::Foreign, own, &nexthops) {
                            Ok(part) => snap.foreign_defaults.extend(part.foreign_defaults),
                            // The device went away since the link dump.
                            Err(f) if f.errno() == Some(libc::ENODEV) => {}
                            Err(f) => return Err(what("routes")(f)),
                        }
                    }
                }
            }
            // rtm_table RT_TABLE_UNSPEC: every table; ids above 255 come in RTA_TABLE.
            None => {
                let req = route_dump_request(0, 0, 0);
                let part = self
                    .dump_routes(&req, RoutePass::Both, own, &nexthops)
                    .map_err(what("routes"))?;
                snap.owned.extend(part.owned);
                snap.foreign_defaults = part.foreign_defaults;
                let links = &snap.links;
                snap.foreign_defaults
                    .retain(|d| reads.device(links, d.ifindex));
            }
        }

        // Rules cannot be filtered (`fib_valid_dumprule_req` wants an empty request)
        // and are few.
        let rules = match self.dump(
            &Request::new(RTM_GETRULE, NLM_F_DUMP, &[0u8; 12]),
            |rules: &mut Vec<Object>, kind, payload| {
                if kind != RTM_NEWRULE {
                    return;
                }
                let Ok(msg) = RuleMessage::parse(payload) else {
                    log::debug!("skipping an undecodable rule message");
                    return;
                };
                if let Some((rule, protocol)) = to_rule(&msg) {
                    if own.owns_rule(rule.priority, protocol) {
                        rules.push(Object::Rule(rule));
                    }
                }
            },
        ) {
            Ok(rules) => rules,
            // A kernel answers every request with a message, errors included; a send
            // refused with EOPNOTSUPP comes from an emulator's netlink translation
            // (qemu-user converts link, address and route messages only). Go on without
            // rules so that the rest of the daemon can still be exercised there.
            Err(Failure::Io(e)) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                if !RULES_REFUSED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    log::warn!("the system refuses rule dumps (an emulator?): assuming no rules");
                }
                Vec::new()
            }
            Err(f) => return Err(f.into_error("dump rules".into())),
        };
        snap.owned.extend(rules);
        Ok(snap)
    }

    fn apply(&mut self, op: &Op) -> Result<(), kernel::Error> {
        let req = encode(op, self.own.protocol);
        self.request(&req)
            .map_err(|f| f.into_error(describe(op, &self.links, self.own.protocol)))
    }
}

/// The netlink request for `op`, stamped with `protocol`.
fn encode(op: &Op, protocol: u8) -> Request {
    let (flags, delete) = match op {
        Op::Add(_) => (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, false),
        Op::Replace(_) => (NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, false),
        Op::Delete(_) => (NLM_F_ACK, true),
    };
    match op.object() {
        Object::Nexthop(n) if delete => nexthop::delete(flags, n.id),
        Object::Nexthop(n) => match &n.kind {
            NexthopKind::Via { ifindex, gateway } => {
                nexthop::new_via(flags, n.id, af(n.family), protocol, *ifindex, *gateway)
            }
            NexthopKind::Group(members) => {
                let members: Vec<(u32, u32)> = members
                    .iter()
                    .map(|m| (m.id, u32::from(m.weight)))
                    .collect();
                nexthop::new_group(flags, n.id, protocol, &members)
            }
        },
        Object::Route(r) => {
            let kind = if delete { RTM_DELROUTE } else { RTM_NEWROUTE };
            route_request(kind, flags, r, protocol, delete)
        }
        Object::Rule(r) => {
            let msg = rule_message(r, protocol, delete);
            let kind = if delete { RTM_DELRULE } else { RTM_NEWRULE };
            // Rules have no NLM_F_REPLACE; a changed rule is another rule (see kernel.rs).
            let flags = if matches!(op, Op::Replace(_)) {
                NLM_F_ACK | NLM_F_CREATE
            } else {
                flags
            };
            Request::new(kind, flags, &emit(&msg))
        }
    }
}

fn emit<T: Emitable>(msg: &T) -> Vec<u8> {
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    buf
}

fn af(family: Family) -> u8 {
    match family {
        Family::V4 => AF_INET,
        Family::V6 => AF_INET6,
    }
}

fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

fn family_of(af: AddressFamily) -> Option<Family> {
    match af {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

/// rtm_table / frh.table: the id if it fits in a byte, else UNSPEC (the real id
/// travels in RTA_TABLE / FRA_TABLE, which we always send).
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC as u8)
}

/// The `RTM_NEWROUTE` / `RTM_DELROUTE` request for `r`, encoded by hand like the
/// decoder ([`RouteMsg`]): `struct rtmsg`, then `RTA_TABLE`, `RTA_DST` (not for a
/// default), `RTA_PRIORITY` and the target.
fn route_request(kind: u16, flags: u16, r: &Route, protocol: u8, delete: bool) -> Request {
    let (mut scope, rtype) = match &r.target {
        // Delete by identity (table, destination, metric, protocol): type and scope
        // left as wildcards, the target not named, as `ip route del` does.
        _ if delete => (RT_SCOPE_NOWHERE, RTN_UNSPEC),
        RouteTarget::Unreachable => (RT_SCOPE_UNIVERSE, RTN_UNREACHABLE),
        RouteTarget::Blackhole => (RT_SCOPE_UNIVERSE, RTN_BLACKHOLE),
        _ => (RT_SCOPE_UNIVERSE, RTN_UNICAST),
    };
    if let (false, RouteTarget::Via { gateway: None, .. }) = (delete, &r.target) {
        // `ip route add <dst> dev X` makes a link-scope route.
        scope = RT_SCOPE_LINK;
    }
    let header = [
        af(r.family),
        r.dst_len,
        0,
        0,
        header_table(r.table),
        protocol,
        scope,
        rtype,
        0,
        0,
        0,
        0,
    ];
    let mut req = Request::new(kind, flags, &header);
    req.attr_u32(RTA_TABLE, r.table);
    if r.dst_len > 0 {
        req.attr(RTA_DST, &ip_bytes(r.dst));
    }
    req.attr_u32(RTA_PRIORITY, r.metric);
    if delete {
        return req;
    }
    match &r.target {
        RouteTarget::Via { ifindex, gateway } => {
            if let Some(gw) = gateway {
                req.attr(RTA_GATEWAY, &ip_bytes(*gw));
            }
            req.attr_u32(RTA_OIF, *ifindex);
        }
        RouteTarget::Nexthop(id) => {
            req.attr_u32(RTA_NH_ID, *id);
        }
        RouteTarget::Multipath(hops) => {
            // `struct rtnexthop` per hop: u16 len, u8 flags, u8 hops (weight - 1),
            // i32 ifindex, then the hop's RTA_GATEWAY.
            let mut buf = Vec::new();
            for h in hops {
                let gw = h.gateway.map(ip_bytes).unwrap_or_default();
                let attr_len = if gw.is_empty() {
                    0
                } else {
                    NLA_HDRLEN + gw.len()
                };
                buf.extend_from_slice(&((8 + attr_len) as u16).to_ne_bytes());
                buf.push(0);
                buf.push((h.weight.clamp(1, 256) - 1) as u8);
                buf.extend_from_slice(&h.ifindex.to_ne_bytes());
                if !gw.is_empty() {
                    buf.extend_from_slice(&(attr_len as u16).to_ne_bytes());
                    buf.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
                    buf.extend_from_slice(&gw);
                }
            }
            req.attr(RTA_MULTIPATH, &buf);
        }
        RouteTarget::Unreachable | RouteTarget::Blackhole => {}
    }
    req
}

/// An address as a route attribute carries it: 4 or 16 bytes.
fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn rule_message(r: &Rule, protocol: u8, delete: bool) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = address_family(r.family);
    m.header.table = header_table(r.table);
    // Deleting matches on what is given; an unspecified action matches any.
    m.header.action = if delete {
        RuleAction::Unspec
    } else {
        RuleAction::ToTable
    };
    m.attributes.push(RuleAttribute::Priority(r.priority));
    m.attributes.push(RuleAttribute::Table(r.table));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(protocol)));
    match &r.selector {
        Selector::All => {}
        Selector::From { addr, len } => {
            m.header.src_len = *len;
            m.attributes.push(RuleAttribute::Source(*addr));
        }
        Selector::Oif(name) => m.attributes.push(RuleAttribute::Oifname(name.clone())),
        Selector::Fwmark { mark, mask } => {
            m.attributes.push(RuleAttribute::FwMark(*mark));
            m.attributes.push(RuleAttribute::FwMask(*mask));
        }
    }
    if let Some(len) = r.suppress_prefixlength {
        m.attributes
            .push(RuleAttribute::SuppressPrefixLen(u32::from(len)));
    }
    m
}

/// `struct ifinfomsg` (16 bytes) + IFLA_IFNAME.
fn decode_link(payload: &[u8]) -> Option<Link> {
    let ifindex = u32_at(payload, 4)?;
    let flags = u32_at(payload, 8)?;
    let name = Attrs::new(payload.get(16..)?)
        .find(|(k, _)| *k == IFLA_IFNAME)
        .map(|(_, v)| {
            let v = v.split(|&b| b == 0).next().unwrap_or(&[]);
            String::from_utf8_lossy(v).into_owned()
        })?;
    Some(Link {
        ifindex,
        name,
        up: flags & IFF_UP != 0,
        carrier: flags & IFF_LOWER_UP != 0,
    })
}

/// `struct ifaddrmsg` (8 bytes) + IFA_LOCAL / IFA_ADDRESS; global scope only.
fn decode_address(payload: &[u8]) -> Option<Address> {
    let hdr = payload.get(..8)?;
    let (family, prefix_len, scope) = (hdr[0], hdr[1], hdr[3]);
    if scope != RT_SCOPE_UNIVERSE {
        return None;
    }
    let ifindex = u32_at(hdr, 4)?;
    let (mut local, mut address) = (None, None);
    for (kind, value) in Attrs::new(&payload[8..]) {
        let ip = match (family, value.len()) {
            (AF_INET, 4) => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
            (AF_INET6, 16) => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
            _ => None,
        };
        match kind {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            _ => {}
        }
    }
    // IFA_LOCAL is the address on point-to-point links (IFA_ADDRESS is the peer).
    let addr = local.or(address)?;
    if let IpAddr::V6(a) = addr {
        if a.segments()[0] & 0xffc0 == 0xfe80 {
            return None;
        }
    }
    Some(Address {
        ifindex,
        addr,
        prefix_len,
    })
}

/// Fuzzing entry: the address decoder and the route classifier on untrusted bytes.
/// `data` is an `RTM_NEWADDR` payload and, from the offset its first byte names, the
/// nexthop objects a route may refer to; the whole of it is also an `RTM_NEWROUTE`
/// payload, classified once as a route we own and once as a foreign one.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let _ = decode_address(data);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let nexthops: Vec<NexthopMsg> = nexthop::decode(&data[split..]).into_iter().collect();
    let Some(msg) = RouteMsg::parse(data) else {
        return;
    };
    let everything = Ownership {
        protocol: msg.protocol,
        tables: 0..=u32::MAX,
        priorities: 0..=u32::MAX,
        nexthop_ids: 0..=u32::MAX,
    };
    // Empty ranges on purpose: this ownership claims nothing.
    #[allow(clippy::reversed_empty_ranges)]
    let nothing = Ownership {
        protocol: msg.protocol.wrapping_add(1),
        tables: 1..=0,
        priorities: 1..=0,
        nexthop_ids: 1..=0,
    };
    for own in [everything, nothing] {
        let mut snap = Snapshot::default();
        classify_route(&msg, &own, &nexthops, RoutePass::Both, &mut snap);
    }
}

const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_VIA: u16 = 18;
const RTN_UNSPEC: u8 = 0;
const RTN_BLACKHOLE: u8 = 6;
const RTN_UNREACHABLE: u8 = 7;
const RT_SCOPE_NOWHERE: u8 = 255;

/// What uplinkd reads of an `RTM_NEWROUTE`: `struct rtmsg` and the few attributes the
/// classifier uses, decoded by hand with the bounds-checked [`Attrs`] walk (the full
/// decoder of netlink-packet-route, for every route attribute the kernel knows, was
/// about 25 kB of a router binary). Other attributes are skipped; one of ours with
/// the wrong size makes the message undecodable, as it did there.
#[derive(Default)]
struct RouteMsg<'a> {
    family: u8,
    dst_len: u8,
    src_len: u8,
    /// `RTA_TABLE`, else `rtm_table`.
    table: u32,
    protocol: u8,
    kind: u8,
    flags: u32,
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    metric: Option<u32>,
    nh_id: Option<u32>,
    /// The `struct rtnexthop` run of `RTA_MULTIPATH`.
    multipath: Option<&'a [u8]>,
}

impl<'a> RouteMsg<'a> {
    /// `struct rtmsg`: family, dst_len, src_len, tos, table, protocol, scope, type
    /// (a byte each), then u32 flags.
    const HDRLEN: usize = 12;

    fn parse(payload: &'a [u8]) -> Option<RouteMsg<'a>> {
        let h = payload.get(..Self::HDRLEN)?;
        let mut m = RouteMsg {
            family: h[0],
            dst_len: h[1],
            src_len: h[2],
            table: u32::from(h[4]),
            protocol: h[5],
            kind: h[7],
            flags: u32_at(h, 8)?,
            ..RouteMsg::default()
        };
        for (kind, value) in Attrs::new(&payload[Self::HDRLEN..]) {
            match kind {
                RTA_DST => m.dst = Some(ip_of(value)?),
                RTA_SRC => m.src = Some(ip_of(value)?),
                RTA_OIF => m.oif = Some(u32_of(value)?),
                RTA_PRIORITY => m.metric = Some(u32_of(value)?),
                RTA_TABLE => m.table = u32_of(value)?,
                RTA_NH_ID => m.nh_id = Some(u32_of(value)?),
                RTA_MULTIPATH => m.multipath = Some(value),
                RTA_GATEWAY | RTA_VIA => m.gateway = m.gateway.or(gateway_of(kind, value)),
                _ => {}
            }
        }
        Some(m)
    }

    /// The hops of `RTA_MULTIPATH`: ifindex, gateway and weight (`rtnh_hops` + 1) of
    /// each `struct rtnexthop` (u16 len, u8 flags, u8 hops, i32 ifindex, attributes).
    /// A malformed hop ends the list.
    fn hops(&self) -> Vec<MultipathHop> {
        let mut out = Vec::new();
        let mut buf = self.multipath.unwrap_or_default();
        while let (Some(len), Some(ifindex)) = (u16_at(buf, 0), u32_at(buf, 4)) {
            let len = usize::from(len);
            if len < 8 || len > buf.len() {
                break;
            }
            let gateway = Attrs::new(&buf[8..len])
                .filter(|(k, _)| *k == RTA_GATEWAY || *k == RTA_VIA)
                .find_map(|(k, v)| gateway_of(k, v));
            out.push(MultipathHop {
                ifindex,
                gateway,
                weight: u16::from(buf[3]) + 1,
            });
            buf = &buf[align(len).min(buf.len())..];
        }
        out
    }
}

fn u32_of(value: &[u8]) -> Option<u32> {
    (value.len() == 4).then(|| u32_at(value, 0)).flatten()
}

/// An address attribute: 4 bytes for IPv4, 16 for IPv6.
fn ip_of(value: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(value) {
        Some(IpAddr::from(a))
    } else {
        <[u8; 16]>::try_from(value).ok().map(IpAddr::from)
    }
}

/// A gateway given as `RTA_GATEWAY`, or as `RTA_VIA` (`struct rtvia`: u16 family, then
/// the address; an IPv4 route via an IPv6 gateway).
fn gateway_of(kind: u16, value: &[u8]) -> Option<IpAddr> {
    match kind {
        RTA_GATEWAY => ip_of(value),
        RTA_VIA => match (u16_at(value, 0), value.get(2..)) {
            (Some(f), Some(a)) if f == u16::from(AF_INET) && a.len() == 4 => ip_of(a),
            (Some(f), Some(a)) if f == u16::from(AF_INET6) && a.len() == 16 => ip_of(a),
            _ => None,
        },
        _ => None,
    }
}

/// The value for objects the model cannot express: never planned, so never "in sync".
const INEXPRESSIBLE: RouteTarget = RouteTarget::Via {
    ifindex: 0,
    gateway: None,
};

fn classify_route(
    msg: &RouteMsg,
    own: &Ownership,
    nexthops: &[NexthopMsg],
    pass: RoutePass,
    snap: &mut Snapshot,
) {
    let family = match msg.family {
        AF_INET => Family::V4,
        AF_INET6 => Family::V6,
        _ => return,
    };
    // Cached clones (PMTU exceptions, redirects) are not routes anyone installed.
    if msg.flags & RTM_F_CLONED != 0 {
        return;
    }
    let table = msg.table;
    let protocol = msg.protocol;
    let metric = msg.metric.unwrap_or(0);
    let oif = msg.oif;
    let nh_id = msg.nh_id;
    let multipath = msg.multipath.is_some();

    if own.owns_route(table, protocol) {
        if pass == RoutePass::Foreign {
            return;
        }
        let dst = msg.dst.unwrap_or(family.any());
        let target = match msg.kind {
            RTN_UNREACHABLE => RouteTarget::Unreachable,
            RTN_BLACKHOLE => RouteTarget::Blackhole,
            RTN_UNICAST => {
                if let Some(id) = nh_id {
                    RouteTarget::Nexthop(id)
                } else if multipath {
                    RouteTarget::Multipath(msg.hops())
                } else {
                    RouteTarget::Via {
                        ifindex: oif.unwrap_or(0),
                        gateway: msg.gateway,
                    }
                }
            }
            _ => INEXPRESSIBLE,
        };
        snap.owned.push(Object::Route(Route {
            family,
            table,
            dst,
            dst_len: msg.dst_len,
            metric,
            target,
        }));
        return;
    }

    if pass == RoutePass::Owned
        || msg.dst_len != 0
        || table == RT_TABLE_LOCAL
        || msg.kind != RTN_UNICAST
    {
        return;
    }
    // A source-specific default (`default from <prefix>`), as netifd installs for
    // delegated IPv6 prefixes.
    let src = msg.src.map(|s| (s, msg.src_len));
    let mut push = |ifindex: u32, gateway: Option<IpAddr>| {
        snap.foreign_defaults.push(ForeignDefault {
            family,
            table,
            ifindex,
            gateway,
            metric,
            src,
        })
    };
    if let Some(id) = nh_id {
        // A foreign default through a nexthop object: report what it resolves to.
        let Some(nh) = nexthops.iter().find(|n| n.id == id) else {
            return;
        };
        let members: Vec<&NexthopMsg> = if nh.group.is_empty() {
            vec![nh]
        } else {
            nh.group
                .iter()
                .filter_map(|(m, _)| nexthops.iter().find(|n| n.id == *m))
                .collect()
        };
        for m in members {
            if let Some(oif) = m.oif {
                push(oif, m.gateway);
            }
        }
    } else if multipath {
        for nh in msg.hops() {
            push(nh.ifindex, nh.gateway);
        }
    } else if let Some(oif) = oif {
        push(oif, msg.gateway);
    }
}

/// A dumped rule and its protocol; `None` for families other than IPv4/IPv6.
fn to_rule(msg: &RuleMessage) -> Option<(Rule, u8)> {
    let family = family_of(msg.header.family)?;
    let (mut priority, mut table, mut protocol) = (0, u32::from(msg.header.table), 0u8);
    let (mut src, mut oif, mut mark, mut mask, mut suppress) = (None, None, None, None, None);
    for a in &msg.attributes {
        match a {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            RuleAttribute::Source(s) => src = Some(*s),
            RuleAttribute::Oifname(n) => oif = Some(n.clone()),
            RuleAttribute::FwMark(m) => mark = Some(*m),
            RuleAttribute::FwMask(m) => mask = Some(*m),
            // The kernel reports "unset" as -1 on some versions.
            RuleAttribute::SuppressPrefixLen(l) => {
                suppress = u8::try_from(*l).ok().filter(|l| *l <= 128)
            }
            _ => {}
        }
    }
    if msg.header.action != RuleAction::ToTable {
        table = 0;
    }
    let selector = match (src, oif) {
        (Some(addr), _) if msg.header.src_len > 0 => Selector::From {
            addr,
            len: msg.header.src_len,
        },
        (_, Some(name)) => Selector::Oif(name),
        _ if mark.is_some() || mask.is_some() => Selector::Fwmark {
            mark: mark.unwrap_or(0),
            mask: mask.unwrap_or(u32::MAX),
        },
        _ => Selector::All,
    };
    Some((
        Rule {
            family,
            priority,
            selector,
            table,
            suppress_prefixlength: suppress,
        },
        protocol,
    ))
}

fn to_nexthop(nh: &NexthopMsg, all: &[NexthopMsg]) -> Nexthop {
    let family_of_af = |af: u8| {
        if af == AF_INET6 {
            Family::V6
        } else {
            Family::V4
        }
    };
    let plain = !nh.blackhole && !nh.fdb && !nh.other;
    let kind = if !nh.group.is_empty() && plain && nh.group_type == nexthop::GROUP_TYPE_MPATH {
        NexthopKind::Group(
            nh.group
                .iter()
                .map(|&(id, weight)| GroupMember {
                    id,
                    weight: u16::try_from(weight).unwrap_or(u16::MAX),
                })
                .collect(),
        )
    } else if nh.group.is_empty() && plain {
        NexthopKind::Via {
            ifindex: nh.oif.unwrap_or(0),
            gateway: nh.gateway,
        }
    } else {
        NexthopKind::Via {
            ifindex: 0,
            gateway: None,
        }
    };
    // Groups are dumped without a family; they have their members'.
    let family = match nh.group.first() {
        Some((first, _)) => all
            .iter()
            .find(|n| n.id == *first)
            .map_or(Family::V4, |n| family_of_af(n.family)),
        None => family_of_af(nh.family),
    };
    Nexthop {
        id: nh.id,
        family,
        kind,
    }
}

/// The `ip` command that does what `op` does, with `protocol` as its `proto`; `links`
/// names the devices (unknown ifindexes print as `if<N>`).
pub fn describe(op: &Op, links: &[Link], protocol: u8) -> String {
    let verb = match op {
        Op::Add(_) => "add",
        Op::Replace(_) => "replace",
        Op::Delete(_) => "del",
    };
    let dev = |ifindex: u32| {
        links
            .iter()
            .find(|l| l.ifindex == ifindex)
            .map_or_else(|| format!("if{ifindex}"), |l| l.name.clone())
    };
    let via = |ifindex: u32, gateway: &Option<IpAddr>| match gateway {
        Some(gw) => format!("via {gw} dev {}", dev(ifindex)),
        None => format!("dev {}", dev(ifindex)),
    };
    match op.object() {
        Object::Nexthop(n) => {
            let what = match &n.kind {
                NexthopKind::Via { ifindex, gateway } => via(*ifindex, gateway),
                NexthopKind::Group(members) => {
                    let list: Vec<String> = members
                        .iter()
                        .map(|m| {
                            if m.weight == 1 {
                                m.id.to_string()
                            } else {
                                format!("{},{}", m.id, m.weight)
                            }
                        })
                        .collect();
                    format!("group {}", list.join("/"))
                }
            };
            let fam = match (&n.kind, n.family) {
                (NexthopKind::Via { gateway: None, .. }, Family::V6) => "-6 ",
                _ => "",
            };
            if matches!(op, Op::Delete(_)) {
                format!("ip {fam}nexthop del id {}", n.id)
            } else {
                format!(
                    "ip {fam}nexthop {verb} id {} {what} proto {}",
                    n.id, protocol
                )
            }
        }
        Object::Route(r) => {
            let fam = match r.family {
                Family::V4 => "",
                Family::V6 => "-6 ",
            };
            let dst = if r.dst_len == 0 {
                "default".to_string()
            } else {
                format!("{}/{}", r.dst, r.dst_len)
            };
            let (kind, target) = match &r.target {
                RouteTarget::Via { ifindex, gateway } => {
                    ("", format!(" {}", via(*ifindex, gateway)))
                }
                RouteTarget::Nexthop(id) => ("", format!(" nhid {id}")),
                RouteTarget::Multipath(hops) => {
                    let hops: Vec<String> = hops
                        .iter()
                        .map(|h| {
                            format!(
                                " nexthop {} weight {}",
                                via(h.ifindex, &h.gateway),
                                h.weight
                            )
                        })
                        .collect();
                    ("", hops.concat())
                }
                RouteTarget::Unreachable => ("unreachable ", String::new()),
                RouteTarget::Blackhole => ("blackhole ", String::new()),
            };
            let metric = if r.metric != 0 {
                format!(" metric {}", r.metric)
            } else {
                String::new()
            };
            let table = table_name(r.table);
            if let RouteTarget::Multipath(_) = r.target {
                // `ip` wants the nexthop list last.
                format!("ip {fam}route {verb} {dst} table {table}{metric} proto {protocol}{target}")
            } else {
                format!("ip {fam}route {verb} {kind}{dst}{target} table {table}{metric} proto {protocol}")
            }
        }
        Object::Rule(r) => {
            let sel = match &r.selector {
                Selector::All => String::new(),
                Selector::From { addr, len } => {
                    let full = if addr.is_ipv4() { 32 } else { 128 };
                    if *len == full {
                        format!(" from {addr}")
                    } else {
                        format!(" from {addr}/{len}")
                    }
                }
                Selector::Oif(name) => format!(" oif {name}"),
                Selector::Fwmark { mark, mask } => {
                    if *mask == u32::MAX {
                        format!(" fwmark {mark:#x}")
                    } else {
                        format!(" fwmark {mark:#x}/{mask:#x}")
                    }
                }
            };
            let suppress = r
                .suppress_prefixlength
                .map(|l| format!(" suppress_prefixlength {l}"))
                .unwrap_or_default();
            format!(
                "ip {} rule {verb} priority {}{sel} lookup {}{suppress} proto {}",
                r.family.ip_flag(),
                r.priority,
                table_name(r.table),
                protocol
            )
        }
    }
}

fn table_name(table: u32) -> String {
    match table {
        RT_TABLE_MAIN => "main".into(),
        RT_TABLE_LOCAL => "local".into(),
        RT_TABLE_DEFAULT => "default".into(),
        t => t.to_string(),
    }
}

/// Event socket: one datagram in, a few [`kernel::Event`]s out.
///
/// Kernel 6.18 deletes a nexthop whose device loses carrier (and drops it from its
/// groups) without sending any nexthop event; the only trace is the link's
/// [`kernel::Event::Link`] with `carrier: false`, so a carrier change must trigger a
/// dump and reconcile like [`kernel::Event::Changed`] does.
pub struct Monitor {
    socket: SmolSocket,
    buf: Vec<u8>,
    /// Shared with the daemon, which narrows it after every snapshot.
    filter: std::rc::Rc<std::cell::RefCell<EventFilter>>,
}

impl Monitor {
    pub fn open() -> io::Result<Monitor> {
        Monitor::with_rcvbuf(MONITOR_RCVBUF)
    }

    /// With a receive buffer of `size` bytes (tests shrink it to provoke `ENOBUFS`).
    pub(crate) fn with_rcvbuf(size: libc::c_int) -> io::Result<Monitor> {
        let mut socket = SmolSocket::new(NETLINK_ROUTE)?;
        socket.socket_mut().bind_auto()?;
        for group in [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_ROUTE,
            RTNLGRP_IPV4_RULE,
            RTNLGRP_IPV6_RULE,
            RTNLGRP_NEXTHOP,
        ] {
            socket.socket_ref().add_membership(group)?;
        }
        set_rcvbuf(socket.socket_ref(), size);
        Ok(Monitor {
            socket,
            buf: Vec::with_capacity(RECV_BUF),
            filter: Default::default(),
        })
    }

    /// The filter [`Monitor::next`] decodes with; the owner updates it in place.
    pub fn filter(&self) -> std::rc::Rc<std::cell::RefCell<EventFilter>> {
        self.filter.clone()
    }

    /// Waits for the next datagram and decodes it. An overflowed socket (`ENOBUFS`)
    /// yields [`kernel::Event::Overrun`]; so does any other receive error, since a
    /// resync is always a safe answer.
    pub async fn next(&mut self) -> Vec<kernel::Event> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf).await {
                Ok(()) => {
                    let events = decode_events(&self.buf, &self.filter.borrow());
                    if !events.is_empty() {
                        return events;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.raw_os_error() != Some(libc::ENOBUFS) {
                        log::warn!("netlink event socket: {e}");
                    }
                    return vec![kernel::Event::Overrun];
                }
            }
        }
    }
}

fn set_timeout(socket: &Socket, opt: libc::c_int, seconds: libc::time_t) {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: seconds,
        tv_usec: 0,
    };
    // SAFETY: a valid fd and a timeval option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::warn!(
            "netlink: cannot set a reply timeout: {}",
            io::Error::last_os_error()
        );
    }
}

/// SO_RCVBUFFORCE (ignores rmem_max, needs CAP_NET_ADMIN), else SO_RCVBUF.
pub(crate) fn set_rcvbuf(socket: &Socket, size: libc::c_int) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid fd and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// What the event monitor lets through, decided when a message is decoded (STYLE §13,
/// as BIRD's netlink scan does): the daemon updates it after every snapshot. The
/// default lets every message that could matter to some configuration through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Our tags: events about objects carrying them matter (unless they are echoes).
    pub own: Option<Ownership>,
    /// Ifindexes of the WAN devices: foreign routes, nexthops and addresses matter only
    /// there. `None`: on every device.
    pub devices: Option<Vec<u32>>,
    /// Port id of our request socket ([`Netlink::port_id`]): the kernel stamps it on
    /// the notifications of our own writes, which the daemon already knows about.
    pub echo_port: u32,
}

/// A neighbour message, if it says the kernel failed to resolve the entry, or (on a
/// WAN device only) that it confirmed it. Every other neighbour state (a LAN's hosts
/// come and go all day) is dropped here, where it costs the least.
fn decode_neighbour(payload: &[u8], filter: &EventFilter) -> Option<kernel::Event> {
    let hdr = payload.get(..NDMSG_LEN)?;
    let family = hdr[0];
    let ifindex = u32_at(hdr, 4)?;
    let state = u16_at(hdr, 8)?;
    let failed = state & NUD_FAILED != 0;
    let on_wan = filter
        .devices
        .as_ref()
        .map_or(true, |d| d.contains(&ifindex));
    let confirmed = state & NUD_REACHABLE != 0 && on_wan;
    if !failed && !confirmed {
        return None;
    }
    let addr = Attrs::new(payload.get(NDMSG_LEN..)?)
        .find(|(k, _)| *k == NDA_DST)
        .and_then(|(_, v)| match (family, v.len()) {
            (AF_INET, 4) => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
            (AF_INET6, 16) => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
            _ => None,
        })?;
    Some(if failed {
        kernel::Event::NeighbourFailed { ifindex, addr }
    } else {
        kernel::Event::NeighbourReachable { ifindex, addr }
    })
}

/// What one event message is to the daemon.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A notification of our own write.
    Echo,
    /// Nothing a snapshot reads: someone else's table, device or prefix.
    Foreign,
    /// It can change what a snapshot gives the engine: resync.
    Matters,
}

impl EventFilter {
    fn on_device(&self, ifindex: u32) -> bool {
        self.devices.as_ref().map_or(true, |d| d.contains(&ifindex))
    }

    fn is_echo(&self, pid: u32) -> bool {
        self.echo_port != 0 && pid == self.echo_port
    }

    /// Classifies a route message (`RTM_NEWROUTE` / `RTM_DELROUTE`). Routes of ours
    /// changed by someone else (the kernel drops them with their device) matter;
    /// foreign ones only when they are default routes, or connected routes, through a
    /// WAN device. Cached clones and the local table never do. An undecodable header
    /// matters, since a resync is always safe.
    pub fn route(&self, pid: u32, payload: &[u8]) -> Class {
        if self.is_echo(pid) {
            return Class::Echo;
        }
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let Some(h) = payload.get(..12) else {
            return Class::Matters;
        };
        let (dst_len, protocol, scope, kind) = (h[1], h[5], h[6], h[7]);
        let flags = u32_at(h, 8).unwrap_or(0);
        let (mut table, mut oifs, mut via_object) = (u32::from(h[4]), Vec::new(), false);
        for (k, v) in Attrs::new(&payload[12..]) {
            match k {
                RTA_TABLE => table = u32_at(v, 0).unwrap_or(table),
                RTA_OIF => oifs.extend(u32_at(v, 0)),
                RTA_NH_ID => via_object = true,
                RTA_MULTIPATH => oifs.extend(multipath_oifs(v)),
                _ => {}
            }
        }
        if flags & RTM_F_CLONED != 0 || table == RT_TABLE_LOCAL {
            return Class::Foreign;
        }
        if let Some(own) = &self.own {
            if own.owns_route(table, protocol) {
                return Class::Matters;
            }
        }
        let connected = protocol == RTPROT_KERNEL && scope == RT_SCOPE_LINK;
        if (dst_len != 0 && !connected) || kind != RTN_UNICAST {
            return Class::Foreign;
        }
        // A route through a nexthop object names no device here: assume it matters.
        if via_object || self.devices.is_none() || oifs.iter().any(|&i| self.on_device(i)) {
            Class::Matters
        } else {
            Class::Foreign
        }
    }

    /// Classifies a nexthop message: ours, a group (its members may be on a WAN) or
    /// one on a WAN device matter.
    pub fn nexthop(&self, pid: u32, payload: &[u8]) -> Class {
        if self.is_echo(pid) {
            return Class::Echo;
        }
        let Some(nh) = nexthop::decode(payload) else {
            return Class::Matters;
        };
        let ours = self
            .own
            .as_ref()
            .is_some_and(|o| o.owns_nexthop(nh.id, nh.protocol));
        if ours || !nh.group.is_empty() || nh.oif.map_or(true, |i| self.on_device(i)) {
            Class::Matters
        } else {
            Class::Foreign
        }
    }

    /// Classifies an address message: only addresses of WAN devices are read.
    pub fn address(&self, payload: &[u8]) -> Class {
        match u32_at(payload, 4) {
            Some(ifindex) if !self.on_device(ifindex) => Class::Foreign,
            _ => Class::Matters,
        }
    }
}

/// The devices of an `RTA_MULTIPATH` value (`struct rtnexthop`: u16 len, u8 flags,
/// u8 hops, i32 ifindex, then attributes).
fn multipath_oifs(mut v: &[u8]) -> Vec<u32> {
    let mut oifs = Vec::new();
    while let (Some(len), Some(ifindex)) = (u16_at(v, 0), u32_at(v, 4)) {
        oifs.push(ifindex);
        let len = align(usize::from(len));
        if len < 8 || len > v.len() {
            break;
        }
        v = &v[len..];
    }
    oifs
}

/// The events in one datagram of the event socket, as `filter` sees them. Link
/// messages become `Link` / `LinkGone`; a neighbour the kernel failed to resolve
/// `NeighbourFailed`, one it confirmed on a WAN device `NeighbourReachable`; address, route, rule and nexthop messages that
/// matter one `Changed`, echoes of our writes and foreign objects nothing; a cut-off
/// datagram an `Overrun`. Undecodable messages are skipped.
pub fn decode_events(buf: &[u8], filter: &EventFilter) -> Vec<kernel::Event> {
    let mut events = Vec::new();
    let mut changed = false;
    let mut msgs = Messages::new(buf);
    for m in &mut msgs {
        let class = match m.kind {
            RTM_NEWLINK => {
                if let Some(link) = decode_link(m.payload) {
                    events.push(kernel::Event::Link(link));
                }
                continue;
            }
            RTM_DELLINK => {
                if let Some(ifindex) = u32_at(m.payload, 4) {
                    events.push(kernel::Event::LinkGone { ifindex });
                }
                continue;
            }
            RTM_NEWROUTE | RTM_DELROUTE => filter.route(m.pid, m.payload),
            RTM_NEWNEIGH => {
                events.extend(decode_neighbour(m.payload, filter));
                continue;
            }
            RTM_NEWADDR | RTM_DELADDR => filter.address(m.payload),
            RTM_NEWRULE | RTM_DELRULE if filter.is_echo(m.pid) => Class::Echo,
            RTM_NEWRULE | RTM_DELRULE => Class::Matters,
            nexthop::RTM_NEWNEXTHOP | nexthop::RTM_DELNEXTHOP => filter.nexthop(m.pid, m.payload),
            NLMSG_OVERRUN => {
                events.push(kernel::Event::Overrun);
                continue;
            }
            _ => continue,
        };
        changed |= class == Class::Matters;
    }
    if msgs.truncated() {
        events.push(kernel::Event::Overrun);
    }
    if changed {
        events.push(kernel::Event::Changed);
    }
    events
}

/// Reads a sysctl such as `/proc/sys/net/ipv4/fib_multipath_hash_policy`, trimmed.
pub fn read_sysctl(path: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// Writes a sysctl value.
pub fn write_sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_helpers_read_trimmed_and_write() {
        let path = std::env::temp_dir().join(format!("uplinkd-sysctl-{}", std::process::id()));
        let path = path.to_str().unwrap();
        std::fs::write(path, "0\n").unwrap();
        assert_eq!(read_sysctl(path).unwrap(), "0");
        write_sysctl(path, "1").unwrap();
        assert_eq!(read_sysctl(path).unwrap(), "1");
        std::fs::remove_file(path).unwrap();
        assert!(read_sysctl(path).is_err());
    }
}
