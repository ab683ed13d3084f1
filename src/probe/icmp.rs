//! ICMP echo wire format: building requests and recognising our replies.
//!
//! Pure functions over byte slices, no I/O. Every reply is untrusted input (anyone on the
//! path, and any other program on the box pinging something, can put bytes in front of
//! us), so the parsers are bounds-checked and return `None` instead of panicking.
//!
//! Every request carries a [`Cookie`] right after the 8-byte echo header, before the
//! caller's payload: 64 random bits drawn once per process. A raw ICMP socket sees the
//! echo replies of every program on the host (e.g. a `ping` run by the user); the cookie
//! lets us drop those with one comparison, before the caller even looks at identifier and
//! sequence number. Being secret, it also stops forged replies: identifier and sequence
//! number are only 32 bits and easy to guess or to read off one probe, but a host that
//! did not see our probe cannot echo the cookie back, and one that did is on the path
//! anyway.
//!
//! Layouts: RFC 792 (ICMPv4 echo, type 8 request / 0 reply), RFC 4443 §4 (ICMPv6 echo,
//! type 128 request / 129 reply), RFC 791 (IPv4 header), RFC 1071 (Internet checksum).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Marks echo requests sent by this process; an echo reply echoes it back unchanged.
/// Chosen at random when the process starts (the caller draws it: this module does no
/// I/O).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cookie(pub [u8; 8]);

impl Cookie {
    pub const LEN: usize = 8;

    pub fn from_u64(v: u64) -> Cookie {
        Cookie(v.to_be_bytes())
    }
}

/// Length of the ICMP echo header: type, code, checksum, identifier, sequence number.
pub const ECHO_HEADER_LEN: usize = 8;

/// Smallest echo message we build or accept: header plus cookie.
pub const MIN_ECHO_LEN: usize = ECHO_HEADER_LEN + Cookie::LEN;

const ICMP4_ECHO_REPLY: u8 = 0;
const ICMP4_ECHO_REQUEST: u8 = 8;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
const IPPROTO_ICMP: u8 = 1;
const IPV4_MIN_HEADER_LEN: usize = 20;

/// An echo reply carrying our cookie. Whether it answers a probe we actually sent (and from
/// the address we sent it to) is the caller's question: it knows what is outstanding.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EchoReply {
    /// Source address of the reply.
    pub from: IpAddr,
    pub ident: u16,
    pub seq: u16,
}

/// Writes an ICMPv4 echo request (with checksum) into `out` and returns its length, or 0
/// if `out` is too small for header, tag and payload.
pub fn echo_request_v4(
    cookie: Cookie,
    ident: u16,
    seq: u16,
    payload: &[u8],
    out: &mut [u8],
) -> usize {
    let len = write_echo(ICMP4_ECHO_REQUEST, cookie, ident, seq, payload, out);
    if len == 0 {
        return 0;
    }
    let sum = checksum(&out[..len]);
    out[2..4].copy_from_slice(&sum.to_be_bytes());
    len
}

/// Writes an ICMPv6 echo request into `out` and returns its length, or 0 if `out` is too
/// small. The checksum is left 0: it covers a pseudo-header with the source address,
/// which only the kernel knows, and the kernel always fills it in on raw ICMPv6 sockets
/// (RFC 3542 §3.1).
pub fn echo_request_v6(
    cookie: Cookie,
    ident: u16,
    seq: u16,
    payload: &[u8],
    out: &mut [u8],
) -> usize {
    write_echo(ICMP6_ECHO_REQUEST, cookie, ident, seq, payload, out)
}

fn write_echo(
    kind: u8,
    cookie: Cookie,
    ident: u16,
    seq: u16,
    payload: &[u8],
    out: &mut [u8],
) -> usize {
    let len = MIN_ECHO_LEN + payload.len();
    let Some(out) = out.get_mut(..len) else {
        return 0;
    };
    out[0] = kind;
    out[1] = 0;
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..6].copy_from_slice(&ident.to_be_bytes());
    out[6..8].copy_from_slice(&seq.to_be_bytes());
    out[ECHO_HEADER_LEN..MIN_ECHO_LEN].copy_from_slice(&cookie.0);
    out[MIN_ECHO_LEN..].copy_from_slice(payload);
    len
}

/// Parses what a raw `IPPROTO_ICMP` socket delivers: an IPv4 header followed by the ICMP
/// message. Returns the reply if it is a well-formed echo reply (type 0, code 0, valid
/// checksum) carrying `cookie`.
pub fn parse_v4(cookie: Cookie, packet: &[u8]) -> Option<EchoReply> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return None;
    }
    let header = packet.get(..header_len)?;
    // Linux hands raw sockets the total length as it was on the wire (network order,
    // header included); anything after it is not part of the datagram.
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if total_len < header_len {
        return None;
    }
    if header[9] != IPPROTO_ICMP {
        return None;
    }
    let from = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let icmp = packet.get(header_len..total_len)?;
    if checksum(icmp) != 0 {
        return None;
    }
    parse_echo(ICMP4_ECHO_REPLY, cookie, IpAddr::V4(from), icmp)
}

/// Parses what a raw `IPPROTO_ICMPV6` socket delivers: the ICMPv6 message alone (the
/// source address comes from `recvfrom`). The kernel has already verified the checksum
/// (it always does on ICMPv6 raw sockets, RFC 3542 §3.1). Returns the reply if it is an
/// echo reply (type 129, code 0) carrying `cookie`.
pub fn parse_v6(cookie: Cookie, from: Ipv6Addr, icmp: &[u8]) -> Option<EchoReply> {
    parse_echo(ICMP6_ECHO_REPLY, cookie, IpAddr::V6(from), icmp)
}

fn parse_echo(kind: u8, cookie: Cookie, from: IpAddr, icmp: &[u8]) -> Option<EchoReply> {
    let msg = icmp.get(..MIN_ECHO_LEN)?;
    if msg[0] != kind || msg[1] != 0 || msg[ECHO_HEADER_LEN..] != cookie.0 {
        return None;
    }
    Some(EchoReply {
        from,
        ident: u16::from_be_bytes([msg[4], msg[5]]),
        seq: u16::from_be_bytes([msg[6], msg[7]]),
    })
}

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum of
/// 16-bit big-endian words, an odd trailing byte padded with zero. Over a message whose
/// checksum field is already filled in, the result is 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        // Fold early so the sum cannot overflow, whatever the length.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Cookie = Cookie(*b"\x5a\x17\xc3\x01\x99\x00\xfe\x42");

    /// An IPv4 header (IHL 5, protocol ICMP) around `icmp`, from 192.0.2.1.
    fn ipv4(icmp: &[u8]) -> Vec<u8> {
        let total = (20 + icmp.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(icmp);
        p
    }

    /// Turns an echo request into the reply a peer would send: type 0, fixed checksum.
    fn reply_v4(request: &[u8]) -> Vec<u8> {
        let mut r = request.to_vec();
        r[0] = ICMP4_ECHO_REPLY;
        r[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&r);
        r[2..4].copy_from_slice(&sum.to_be_bytes());
        r
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // Odd length: the last byte is the high half of a zero-padded word.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn v4_request_layout_and_checksum() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 0xbeef, 7, b"xy", &mut buf);
        assert_eq!(n, MIN_ECHO_LEN + 2);
        let req = &buf[..n];
        assert_eq!(req[0], 8);
        assert_eq!(req[1], 0);
        assert_eq!(&req[4..8], &[0xbe, 0xef, 0, 7]);
        assert_eq!(&req[8..16], &C.0);
        assert_eq!(&req[16..], b"xy");
        assert_eq!(checksum(req), 0, "a filled-in checksum verifies to 0");
    }

    #[test]
    fn v4_request_into_short_buffer_writes_nothing() {
        let mut buf = [0xaau8; MIN_ECHO_LEN + 1];
        assert_eq!(echo_request_v4(C, 1, 1, b"xy", &mut buf), 0);
        assert_eq!(buf, [0xaa; MIN_ECHO_LEN + 1]);
        assert_eq!(echo_request_v6(C, 1, 1, b"xy", &mut buf), 0);
    }

    #[test]
    fn v6_request_leaves_checksum_to_kernel() {
        let mut buf = [0u8; 32];
        let n = echo_request_v6(C, 0x0102, 0xfffe, &[], &mut buf);
        assert_eq!(n, MIN_ECHO_LEN);
        assert_eq!(
            &buf[..n],
            &[128, 0, 0, 0, 1, 2, 0xff, 0xfe, 0x5a, 0x17, 0xc3, 1, 0x99, 0, 0xfe, 0x42]
        );
    }

    #[test]
    fn v4_reply_round_trip() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 0x4242, 513, b"payload", &mut buf);
        let packet = ipv4(&reply_v4(&buf[..n]));
        assert_eq!(
            parse_v4(C, &packet),
            Some(EchoReply {
                from: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                ident: 0x4242,
                seq: 513,
            })
        );
    }

    #[test]
    fn v4_trailing_bytes_beyond_total_length_are_ignored() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 1, 2, &[], &mut buf);
        let mut packet = ipv4(&reply_v4(&buf[..n]));
        packet.extend_from_slice(&[0xde, 0xad]);
        assert!(parse_v4(C, &packet).is_some());
    }

    #[test]
    fn v4_with_ip_options_uses_ihl() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 9, 9, &[], &mut buf);
        let icmp = reply_v4(&buf[..n]);
        // IHL 6: one 4-byte option word (NOPs plus end of list).
        let mut p = ipv4(&[]);
        p[0] = 0x46;
        p.extend_from_slice(&[1, 1, 1, 0]);
        p.extend_from_slice(&icmp);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(parse_v4(C, &p).map(|r| (r.ident, r.seq)), Some((9, 9)));
    }

    #[test]
    fn v4_rejects_what_is_not_our_echo_reply() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 1, 2, b"abc", &mut buf);
        let good = ipv4(&reply_v4(&buf[..n]));
        assert!(parse_v4(C, &good).is_some());

        // Our own request looped back (type 8) is not a reply.
        assert_eq!(parse_v4(C, &ipv4(&buf[..n])), None);

        let mut bad = good.clone();
        bad[0] = 0x65; // version 6
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        bad[0] = 0x44; // IHL below the minimum header
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        bad[9] = 6; // TCP
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        bad[20 + 1] = 1; // code 1 (checksum now wrong too, fix it to isolate the code check)
        bad[22..24].copy_from_slice(&[0, 0]);
        let sum = checksum(&bad[20..]);
        bad[22..24].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x01; // corrupted payload: checksum fails
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        bad[2..4].copy_from_slice(&((good.len() + 1) as u16).to_be_bytes()); // claims more
        assert_eq!(parse_v4(C, &bad), None);

        let mut bad = good.clone();
        bad[2..4].copy_from_slice(&19u16.to_be_bytes()); // shorter than its own header
        assert_eq!(parse_v4(C, &bad), None);

        // A reply with another process's cookie (or a forged one guessing ours).
        assert_eq!(parse_v4(Cookie::from_u64(1), &good), None);
        let mut forged = buf[..n].to_vec();
        forged[15] ^= 1;
        assert_eq!(parse_v4(C, &ipv4(&reply_v4(&forged))), None);

        // Someone else's echo reply: same shape, no cookie.
        let mut other = buf[..n].to_vec();
        other[8..12].copy_from_slice(b"ping");
        assert_eq!(parse_v4(C, &ipv4(&reply_v4(&other))), None);
    }

    #[test]
    fn v4_truncated_input_never_parses() {
        let mut buf = [0u8; 64];
        let n = echo_request_v4(C, 1, 2, b"abc", &mut buf);
        let good = ipv4(&reply_v4(&buf[..n]));
        for len in 0..good.len() {
            assert_eq!(parse_v4(C, &good[..len]), None, "prefix of {len} bytes");
        }
    }

    #[test]
    fn v4_garbage_never_panics() {
        // A cheap deterministic byte generator (xorshift) instead of a random crate.
        let mut state: u32 = 0x1234_5678;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 80) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = p.first_mut() {
                *b = 0x45; // past the version check most of the time
            }
            let _ = parse_v4(C, &p);
            let _ = parse_v6(C, Ipv6Addr::LOCALHOST, &p);
        }
    }

    #[test]
    fn v6_reply_round_trip_and_rejections() {
        let mut buf = [0u8; 32];
        let n = echo_request_v6(C, 0xabcd, 3, b"z", &mut buf);
        let mut reply = buf[..n].to_vec();
        reply[0] = ICMP6_ECHO_REPLY;
        let from: Ipv6Addr = "fd00::1".parse().unwrap();
        assert_eq!(
            parse_v6(C, from, &reply),
            Some(EchoReply {
                from: IpAddr::V6(from),
                ident: 0xabcd,
                seq: 3,
            })
        );
        assert_eq!(
            parse_v6(C, from, &buf[..n]),
            None,
            "a request is not a reply"
        );
        for len in 0..MIN_ECHO_LEN {
            assert_eq!(parse_v6(C, from, &reply[..len]), None);
        }
        let mut bad = reply.clone();
        bad[1] = 1;
        assert_eq!(parse_v6(C, from, &bad), None);
        let mut bad = reply.clone();
        bad[8] = b'X';
        assert_eq!(parse_v6(C, from, &bad), None);
        assert_eq!(parse_v6(Cookie::from_u64(7), from, &reply), None);
    }
}
