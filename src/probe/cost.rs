//! What probing costs on the wire: bytes sent and received per probe at the IP layer,
//! counted per WAN and projected to a month. Pure: sizes come from the probe kind, the
//! target's family and what the probe asks; nothing here reads a counter.
//!
//! The sizes are those of the packets uplinkd's probes put on the wire, headers included:
//!
//! | probe | sent | received when answered |
//! |---|---|---|
//! | ping | echo request: IP + 8 ICMP + 8 cookie | the echo reply, same size |
//! | tcp | SYN (TCP 40: MSS, SACK, timestamps, window scale); answered: ACK and the RST of the zero-linger close (TCP 32 each, with timestamps) | SYN-ACK (TCP 40) |
//! | http | as tcp, plus the request in one segment | SYN-ACK, and the answer in one segment ([`HTTP_ANSWER`] bytes assumed: a bare `204`) |
//! | dns | the query in a UDP datagram | the query echoed plus one answer record |
//! | gateway | a unicast ARP request (28 bytes) or neighbour solicitation (IPv6 + 32) | the ARP reply or neighbour advertisement, same size |
//!
//! IP is 20 bytes for IPv4 (no options) and 40 for IPv6 (no extension headers). A
//! probe that is not answered costs its first packet only (a lost SYN is not retried
//! within a probe's timeout of a few seconds; a retransmission would add one SYN).

use std::net::IpAddr;

use crate::config::{Interface, Request, TrackMethod};
use crate::time::Duration;

/// IPv4 header without options (RFC 791).
pub const IPV4_HEADER: u64 = 20;
/// IPv6 header without extension headers (RFC 8200).
pub const IPV6_HEADER: u64 = 40;
/// ICMP echo header plus uplinkd's 8-byte cookie (see [`super::icmp`]).
pub const ICMP_ECHO: u64 = super::icmp::MIN_ECHO_LEN as u64;
/// A Linux SYN or SYN-ACK: 20 bytes of header and 20 of options (MSS 4, SACK permitted
/// 2, timestamps 10, NOP 1, window scale 3).
pub const TCP_SYN: u64 = 40;
/// A segment with the timestamp option (RFC 7323), as Linux sends once both ends agree.
pub const TCP_SEGMENT: u64 = 32;
/// An ARP request or reply for IPv4 over Ethernet (RFC 826).
pub const ARP_PACKET: u64 = 28;
/// A neighbour solicitation or advertisement with its link-layer address option.
pub const NDP_MESSAGE: u64 = 32;
/// UDP header (RFC 768).
pub const UDP_HEADER: u64 = 8;
/// The HTTP answer assumed in the model: a `204 No Content` with a few headers. A
/// server that sends more costs more; the counters in status count what the model says,
/// not what the server sent.
pub const HTTP_ANSWER: u64 = 128;
/// One resource record in an answer, name compressed to a pointer: name 2, type 2, class
/// 2, TTL 4, length 2, then the address.
const DNS_RECORD: u64 = 12;
/// The month of the projections: 30 days.
pub const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

/// The bytes of one probe.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Sent when the probe goes out, answered or not.
    pub sent: u64,
    /// Sent after an answer (the rest of a handshake, the request, the reset).
    pub answered_tx: u64,
    /// Received with the answer.
    pub answered_rx: u64,
}

impl Cost {
    /// Both directions of an answered probe.
    pub fn answered(&self) -> u64 {
        self.sent + self.answered_tx + self.answered_rx
    }
}

/// Bytes sent and received by a WAN's probes so far.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub tx: u64,
    pub rx: u64,
}

impl Counted {
    pub fn on_sent(&mut self, c: &Cost) {
        self.tx = self.tx.saturating_add(c.sent);
    }

    pub fn on_answered(&mut self, c: &Cost) {
        self.tx = self.tx.saturating_add(c.answered_tx);
        self.rx = self.rx.saturating_add(c.answered_rx);
    }
}

fn ip_header(target: &IpAddr) -> u64 {
    match target {
        IpAddr::V4(_) => IPV4_HEADER,
        IpAddr::V6(_) => IPV6_HEADER,
    }
}

/// What one probe of `iface`'s kind to `target` costs.
pub fn probe(iface: &Interface, target: &IpAddr) -> Cost {
    of(iface.track_method, &iface.request, target)
}

/// What one probe of kind `method` asking `request` to `target` costs.
pub fn of(method: TrackMethod, request: &Request, target: &IpAddr) -> Cost {
    let ip = ip_header(target);
    let handshake = Cost {
        sent: ip + TCP_SYN,
        // The ACK that completes the handshake and the RST that ends it.
        answered_tx: 2 * (ip + TCP_SEGMENT),
        answered_rx: ip + TCP_SYN,
    };
    match method {
        TrackMethod::Ping => Cost {
            sent: ip + ICMP_ECHO,
            answered_tx: 0,
            answered_rx: ip + ICMP_ECHO,
        },
        TrackMethod::Tcp { .. } => handshake,
        TrackMethod::Http { .. } => {
            let host = request
                .track_host
                .clone()
                .unwrap_or_else(|| super::http::default_host(*target));
            let request = super::http::request(&request.http_path, &host).len() as u64;
            Cost {
                sent: handshake.sent,
                answered_tx: handshake.answered_tx + ip + TCP_SEGMENT + request,
                answered_rx: handshake.answered_rx + ip + TCP_SEGMENT + HTTP_ANSWER,
            }
        }
        TrackMethod::Gateway => {
            // ARP for IPv4 (RFC 826, Ethernet and IPv4 addresses: 28 bytes, no IP
            // header); a neighbour solicitation or advertisement with a link-layer
            // address option for IPv6 (RFC 4861: ICMPv6 24 + option 8).
            let size = match target {
                IpAddr::V4(_) => ARP_PACKET,
                IpAddr::V6(_) => ip + NDP_MESSAGE,
            };
            Cost {
                sent: size,
                answered_tx: 0,
                answered_rx: size,
            }
        }
        TrackMethod::Dns { qtype, .. } => {
            let mut buf = [0u8; super::dns::MAX_QUERY];
            let query = super::dns::query(0, &request.dns_query, qtype, &mut buf) as u64;
            let address = match qtype {
                super::dns::Type::A => 4,
                super::dns::Type::Aaaa => 16,
            };
            Cost {
                sent: ip + UDP_HEADER + query,
                answered_tx: 0,
                answered_rx: ip + UDP_HEADER + query + DNS_RECORD + address,
            }
        }
    }
}

/// Bytes a month of rounds every `interval`, each sending `count` probes to each of
/// `targets`, all answered, costs (both directions).
pub fn monthly(per_probe: &Cost, targets: u64, count: u64, interval: Duration) -> u64 {
    let micros = interval.as_micros().max(1);
    let rounds = MONTH.as_micros() / micros;
    let rounds = u64::try_from(rounds).unwrap_or(u64::MAX);
    rounds
        .saturating_mul(targets)
        .saturating_mul(count)
        .saturating_mul(per_probe.answered())
}

/// The README's table of monthly probe cost (IPv4 targets, every probe answered,
/// `count 1`), in MB (10^6 bytes), rendered from this model.
pub fn readme_table() -> String {
    use std::fmt::Write;
    let methods = [
        ("ping", TrackMethod::Ping),
        ("tcp", TrackMethod::Tcp { port: 443 }),
        (
            "http",
            TrackMethod::Http {
                port: 80,
                expect_status: 204,
            },
        ),
        (
            "dns",
            TrackMethod::Dns {
                port: 53,
                qtype: super::dns::Type::A,
            },
        ),
    ];
    let settings: [(u64, u64); 6] = [(1, 1), (3, 1), (1, 5), (3, 5), (1, 10), (3, 10)];
    let target: IpAddr = IpAddr::from([203, 0, 113, 1]);
    let mut out = String::from("| method | bytes per probe |");
    for (t, i) in settings {
        let _ = write!(out, " {t}×{i} s |");
    }
    out.push_str("\n|---|---|");
    for _ in settings {
        out.push_str("---|");
    }
    for (name, method) in methods {
        let c = of(method, &Request::default(), &target);
        let _ = write!(out, "\n| {name} | {} |", c.answered());
        for (t, i) in settings {
            let bytes = monthly(&c, t, 1, Duration::from_secs(i));
            let _ = write!(out, " {} |", mega(bytes));
        }
    }
    out.push('\n');
    out
}

/// Bytes as MB with one decimal below 10, whole MB above.
fn mega(bytes: u64) -> String {
    let tenths = (bytes + 50_000) / 100_000;
    if tenths < 100 {
        format!("{}.{}", tenths / 10, tenths % 10)
    } else {
        format!("{}", (bytes + 500_000) / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(method: TrackMethod) -> Interface {
        let mut i = crate::testutil::interface("wan", "eth1", &["192.0.2.1"]);
        i.track_method = method;
        i
    }

    #[test]
    fn sizes_of_each_kind() {
        let v4: IpAddr = "203.0.113.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let ping = probe(&iface(TrackMethod::Ping), &v4);
        assert_eq!((ping.sent, ping.answered_tx, ping.answered_rx), (36, 0, 36));
        assert_eq!(probe(&iface(TrackMethod::Ping), &v6).answered(), 112);
        let tcp = probe(&iface(TrackMethod::Tcp { port: 443 }), &v4);
        assert_eq!((tcp.sent, tcp.answered_tx, tcp.answered_rx), (60, 104, 60));
        let dns = probe(
            &iface(TrackMethod::Dns {
                port: 53,
                qtype: crate::probe::dns::Type::A,
            }),
            &v4,
        );
        // example.com: 12 header + 13 name + 4 type and class.
        assert_eq!((dns.sent, dns.answered_rx), (20 + 8 + 29, 20 + 8 + 29 + 16));
        let http = probe(
            &iface(TrackMethod::Http {
                port: 80,
                expect_status: 204,
            }),
            &v4,
        );
        assert!(http.answered() > tcp.answered() + HTTP_ANSWER);
    }

    #[test]
    fn defaults_cost_about_half_a_gigabyte_a_month() {
        // 3 targets, 1 s, ping: the figure the issue quotes.
        let c = probe(&iface(TrackMethod::Ping), &"192.0.2.1".parse().unwrap());
        let m = monthly(&c, 3, 1, Duration::from_secs(1));
        assert_eq!(m, 30 * 24 * 3600 * 3 * 72);
        assert!((500_000_000..600_000_000).contains(&m));
    }

    #[test]
    fn counted_bytes_follow_sends_and_answers() {
        let c = probe(
            &iface(TrackMethod::Tcp { port: 443 }),
            &"192.0.2.1".parse().unwrap(),
        );
        let mut n = Counted::default();
        n.on_sent(&c);
        n.on_sent(&c);
        n.on_answered(&c);
        assert_eq!(
            n,
            Counted {
                tx: 60 + 60 + 104,
                rx: 60
            }
        );
    }

    #[test]
    fn the_readme_table_is_the_model() {
        let readme = include_str!("../../README.md");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md must hold the probe cost table as the model renders it:\n{table}"
        );
    }
}
