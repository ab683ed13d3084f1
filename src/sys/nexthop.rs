//! Nexthop objects on the wire (`RTM_{NEW,DEL,GET}NEXTHOP`, kernel >= 5.3), which
//! netlink-packet-route does not model: `struct nhmsg` and the `NHA_*` attributes of
//! `include/uapi/linux/nexthop.h`. Decoding is bounds-checked and ignores attributes it
//! does not know; nothing here panics on kernel input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::wire::{u16_at, u32_at, Attrs, Request};

pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;
pub const RTM_GETNEXTHOP: u16 = 106;

/// `struct nhmsg`: u8 family, u8 scope, u8 protocol, u8 reserved, u32 flags.
const NHMSG_LEN: usize = 8;

const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GROUP_TYPE: u16 = 3;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const NHA_ENCAP_TYPE: u16 = 7;
const NHA_MASTER: u16 = 10;
const NHA_FDB: u16 = 11;

/// `NEXTHOP_GRP_TYPE_MPATH`: hash-threshold group, the default.
pub const GROUP_TYPE_MPATH: u16 = 0;

/// `struct nexthop_grp`: u32 id, u8 weight-1, u8 high byte of weight-1 (6.12+), u16 reserved.
const NEXTHOP_GRP_LEN: usize = 8;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// What a nexthop message says, field for field; mapping to [`crate::kernel::Nexthop`]
/// (which cannot express blackholes, encapsulation, fdb or resilient groups) is the
/// caller's business.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NexthopMsg {
    pub family: u8,
    pub scope: u8,
    pub protocol: u8,
    /// `RTNH_F_*`.
    pub flags: u32,
    pub id: u32,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// `(id, weight)` with the kernel's weight (1..=65536 in principle, 1..=256 before 6.12).
    pub group: Vec<(u32, u32)>,
    pub group_type: u16,
    pub blackhole: bool,
    pub fdb: bool,
    /// Set when the message carries something this codec does not model
    /// (encapsulation, a master device, ...).
    pub other: bool,
}

/// Decodes the payload (after the `nlmsghdr`) of an `RTM_NEWNEXTHOP`/`RTM_DELNEXTHOP`.
/// `None` when the fixed header is missing or there is no id.
pub fn decode(payload: &[u8]) -> Option<NexthopMsg> {
    let hdr = payload.get(..NHMSG_LEN)?;
    let mut m = NexthopMsg {
        family: hdr[0],
        scope: hdr[1],
        protocol: hdr[2],
        flags: u32_at(hdr, 4)?,
        ..NexthopMsg::default()
    };
    let mut id = None;
    for (kind, value) in Attrs::new(&payload[NHMSG_LEN..]) {
        match kind {
            NHA_ID => id = u32_at(value, 0),
            NHA_OIF => m.oif = u32_at(value, 0),
            NHA_GATEWAY => m.gateway = addr(value),
            NHA_GROUP_TYPE => m.group_type = u16_at(value, 0).unwrap_or(0),
            NHA_BLACKHOLE => m.blackhole = true,
            NHA_FDB => m.fdb = true,
            NHA_ENCAP_TYPE | NHA_MASTER => m.other = true,
            NHA_GROUP => {
                m.group = value
                    .chunks_exact(NEXTHOP_GRP_LEN)
                    .filter_map(|e| {
                        let id = u32_at(e, 0)?;
                        let weight = (u32::from(e[5]) << 8 | u32::from(e[4])) + 1;
                        Some((id, weight))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    m.id = id?;
    Some(m)
}

fn addr(value: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(value) {
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    } else if let Ok(b) = <[u8; 16]>::try_from(value) {
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        None
    }
}

fn nhmsg(family: u8, protocol: u8) -> [u8; NHMSG_LEN] {
    [family, 0, protocol, 0, 0, 0, 0, 0]
}

/// A dump of every nexthop.
pub fn dump_request(flags: u16) -> Request {
    Request::new(RTM_GETNEXTHOP, flags, &nhmsg(AF_UNSPEC, 0))
}

/// `RTM_NEWNEXTHOP` for a single nexthop: `via <gateway> dev <oif>` or `dev <oif>`.
pub fn new_via(
    flags: u16,
    id: u32,
    family: u8,
    protocol: u8,
    oif: u32,
    gateway: Option<IpAddr>,
) -> Request {
    let mut r = Request::new(RTM_NEWNEXTHOP, flags, &nhmsg(family, protocol));
    r.attr_u32(NHA_ID, id).attr_u32(NHA_OIF, oif);
    match gateway {
        Some(IpAddr::V4(a)) => r.attr(NHA_GATEWAY, &a.octets()),
        Some(IpAddr::V6(a)) => r.attr(NHA_GATEWAY, &a.octets()),
        None => &mut r,
    };
    r
}

/// `RTM_NEWNEXTHOP` for a hash-threshold group of `(id, weight)`. Groups carry no
/// family (the kernel refuses one). Weights are clamped to 1..=65536; above 256 they
/// need the high byte that 6.12 introduced.
pub fn new_group(flags: u16, id: u32, protocol: u8, members: &[(u32, u32)]) -> Request {
    let mut entries = Vec::with_capacity(members.len() * NEXTHOP_GRP_LEN);
    for &(member, weight) in members {
        let w = weight.clamp(1, 65536) - 1;
        entries.extend_from_slice(&member.to_ne_bytes());
        entries.push((w & 0xff) as u8);
        entries.push((w >> 8) as u8);
        entries.extend_from_slice(&[0, 0]);
    }
    let mut r = Request::new(RTM_NEWNEXTHOP, flags, &nhmsg(AF_UNSPEC, protocol));
    r.attr_u32(NHA_ID, id)
        .attr(NHA_GROUP, &entries)
        .attr_u16(NHA_GROUP_TYPE, GROUP_TYPE_MPATH);
    r
}

/// `RTM_DELNEXTHOP` by id.
pub fn delete(flags: u16, id: u32) -> Request {
    let mut r = Request::new(RTM_DELNEXTHOP, flags, &nhmsg(AF_UNSPEC, 0));
    r.attr_u32(NHA_ID, id);
    r
}

#[cfg(test)]
mod tests {
    use super::super::wire::{Messages, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
    use super::*;

    fn payload_of(bytes: &[u8]) -> &[u8] {
        Messages::new(bytes).next().unwrap().payload
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Captured from kernel 6.18 (x86_64, so native byte order is little endian) with a
    // raw RTM_GETNEXTHOP dump after, in a namespace where wan1 is ifindex 3 and wan2 is 5:
    //   ip nexthop add id 1101 via 10.20.1.1 dev wan1 proto 212
    //   ip nexthop add id 1102 dev wan2 proto 212
    //   ip nexthop add id 1199 group 1101,3/1102 proto 212
    //   ip -6 nexthop add id 1201 via fd00:1::1 dev wan1 proto 212
    //   ip -6 nexthop add id 1202 dev wan1 proto 212
    const DUMP: [&str; 5] = [
        "300000006800020001000000b657000002fdd40000000000080001004d0400000800050003000000080006000a140101",
        "280000006800020001000000b657000002fed40000000000080001004e0400000800050005000000",
        "440000006800020001000000b65700000000d4000000000008000100af0400000600030000000000140002004d040000020000004e0400000000000008000e0000000080",
        "3c0000006800020001000000b65700000afdd4000000000008000100b1040000080005000300000014000600fd000001000000000000000000000001",
        "280000006800020001000000b65700000afdd4000000000008000100b20400000800050003000000",
    ];

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_captured_dump() {
        let msgs: Vec<NexthopMsg> = DUMP
            .iter()
            .map(|h| {
                let bytes = hex(h);
                let m = Messages::new(&bytes).next().unwrap();
                assert_eq!(m.kind, RTM_NEWNEXTHOP);
                decode(m.payload).unwrap()
            })
            .collect();
        let via = &msgs[0];
        assert_eq!((via.id, via.family, via.protocol), (1101, AF_INET, 212));
        assert_eq!(via.oif, Some(3));
        assert_eq!(via.gateway, Some("10.20.1.1".parse().unwrap()));
        // A dev-only nexthop gets scope host (254) for IPv4.
        assert_eq!(
            (msgs[1].id, msgs[1].scope, msgs[1].oif),
            (1102, 254, Some(5))
        );
        assert_eq!(msgs[1].gateway, None);
        // Groups are dumped without a family; the weight byte is weight - 1. The trailing
        // attribute 14 (op flags, 6.x) is skipped.
        let g = &msgs[2];
        assert_eq!(
            (g.id, g.family, g.group_type),
            (1199, AF_UNSPEC, GROUP_TYPE_MPATH)
        );
        assert_eq!(g.group, vec![(1101, 3), (1102, 1)]);
        assert!(!g.other && !g.blackhole);
        assert_eq!(msgs[3].gateway, Some("fd00:1::1".parse().unwrap()));
        assert_eq!(
            (msgs[4].family, msgs[4].oif, msgs[4].gateway),
            (AF_INET6, Some(3), None)
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn encodes_like_the_kernel_dumps() {
        // What we send for 1101 decodes to what the kernel reported for it.
        let sent = new_via(0, 1101, AF_INET, 212, 3, Some("10.20.1.1".parse().unwrap()));
        let sent = decode(payload_of(&sent.finish(1))).unwrap();
        let dumped = hex(DUMP[0]);
        let dumped = decode(payload_of(&dumped)).unwrap();
        assert_eq!(sent, NexthopMsg { scope: 0, ..dumped });
        let sent = new_group(0, 1199, 212, &[(1101, 3), (1102, 1)]);
        let sent = decode(payload_of(&sent.finish(1))).unwrap();
        let dumped = hex(DUMP[2]);
        assert_eq!(sent, decode(payload_of(&dumped)).unwrap());
    }

    #[test]
    fn truncated_captures_never_panic() {
        for h in DUMP {
            let bytes = hex(h);
            for cut in 0..bytes.len() {
                for m in Messages::new(&bytes[..cut]) {
                    let _ = decode(m.payload);
                }
                let _ = decode(&bytes[16.min(cut)..cut]);
            }
        }
    }

    #[test]
    fn group_weights_round_trip() {
        let r = new_group(
            NLM_F_CREATE | NLM_F_EXCL,
            1199,
            212,
            &[(1101, 3), (1102, 1)],
        );
        let bytes = r.finish(1);
        let m = decode(payload_of(&bytes)).unwrap();
        assert_eq!(m.id, 1199);
        assert_eq!(m.protocol, 212);
        assert_eq!(m.family, AF_UNSPEC);
        assert_eq!(m.group, vec![(1101, 3), (1102, 1)]);
        // 256 is the largest weight every kernel takes; it encodes as 255, high byte 0.
        let r = new_group(NLM_F_ACK, 1, 212, &[(2, 256), (3, 300), (4, 0)]);
        let m = decode(payload_of(&r.finish(2))).unwrap();
        assert_eq!(m.group, vec![(2, 256), (3, 300), (4, 1)]);
    }

    #[test]
    fn via_round_trip() {
        let gw = "fd00::1".parse().unwrap();
        let r = new_via(0, 7, AF_INET6, 212, 3, Some(gw));
        let m = decode(payload_of(&r.finish(3))).unwrap();
        assert_eq!(
            (m.id, m.family, m.oif, m.gateway),
            (7, AF_INET6, Some(3), Some(gw))
        );
    }

    #[test]
    fn no_id_or_short_header_is_none() {
        assert_eq!(decode(&[2, 0, 212, 0]), None);
        assert_eq!(decode(&[2, 0, 212, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200usize {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (seed >> 16) as u8;
            }
            let _ = decode(&buf);
            // Plausible header, then random attributes.
            if len > 11 {
                buf[8] = 8;
                buf[9] = 0;
                buf[10] = NHA_GROUP as u8;
                let _ = decode(&buf);
            }
        }
    }
}
