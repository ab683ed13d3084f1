//! Probe sockets against a real kernel, in throwaway network namespaces.
//!
//! Lab (IPv4), built fresh for every test:
//!
//! ```text
//!                 wanA 10.31.1.2/24 ---- eth0 10.31.1.1   B1 (lo: 203.0.113.7)
//!   A (prober)
//!                 wanB 10.31.2.2/24 ---- eth0 10.31.2.1   B2 (lo: 203.0.113.7)
//! ```
//!
//! A's main table has a default route via B1 only. Both B1 and B2 own 203.0.113.7, so a
//! reply from it says nothing about the path taken; nft counters of echo requests in B1
//! and B2 tell which one answered.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::Duration;

use super::*;
use crate::sys::testns::Netns;

const GW_A: Ipv4Addr = Ipv4Addr::new(10, 31, 1, 1);
const SRC_A: Ipv4Addr = Ipv4Addr::new(10, 31, 1, 2);
const GW_B: Ipv4Addr = Ipv4Addr::new(10, 31, 2, 1);
const SRC_B: Ipv4Addr = Ipv4Addr::new(10, 31, 2, 2);
const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

/// Bound on every wait for a reply that should come: generous for a loaded machine, and
/// only reached when a test fails.
const ANSWER: Duration = Duration::from_secs(3);
/// How long a test waits to be confident that nothing arrives.
const SILENCE: Duration = Duration::from_millis(500);

struct Lab {
    a: Netns,
    b1: Netns,
    b2: Netns,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            a: Netns::new(),
            b1: Netns::new(),
            b2: Netns::new(),
        };
        for (dev, peer, n) in [("wanA", &lab.b1, 1), ("wanB", &lab.b2, 2)] {
            lab.a.ip(&format!(
                "link add {dev} type veth peer name eth0 netns {}",
                peer.name()
            ));
            lab.a.ip(&format!("addr add 10.31.{n}.2/24 dev {dev}"));
            lab.a.ip(&format!("link set {dev} up"));
            peer.ip(&format!("addr add 10.31.{n}.1/24 dev eth0"));
            peer.ip("link set eth0 up");
            peer.ip(&format!("addr add {TARGET}/32 dev lo"));
            peer.nft(
                "table inet lab {
                    counter echo { }
                    chain input {
                        type filter hook input priority 0;
                        icmp type echo-request counter name echo
                        tcp dport 7003 drop
                    }
                }",
            );
        }
        lab.a.ip(&format!("route add default via {GW_A} dev wanA"));
        lab
    }

    /// A policy rule sending lookups for sockets bound to wanB to table 100, the way
    /// uplinkd routes each WAN's own traffic; `route` fills the table.
    fn route_wan_b(&self, route: &str) {
        self.a.ip("rule add oif wanB lookup 100 pref 100");
        self.a.ip(&format!("route add {route} table 100"));
    }
}

/// Echo requests that reached `ns` so far.
fn echo_requests(ns: &Netns) -> u64 {
    let out = ns.sh("nft list counter inet lab echo");
    let after = out.split("packets ").nth(1).expect("counter output");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("packet count")
}

/// Runs `f` to completion unless `limit` passes first.
fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::block_on(smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(limit).await;
        None
    }))
}

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

#[test]
fn ping_gateway_bound_to_wan() {
    let lab = Lab::new();
    let reply = lab.a.run(|| {
        let sock = IcmpSocket::open("wanA", Some(v4(SRC_A)), Family::V4).unwrap();
        sock.send(v4(GW_A), 0x1111, 1).unwrap();
        within(ANSWER, sock.recv())
    });
    let reply = reply.expect("no reply").unwrap();
    assert_eq!(
        reply,
        EchoReply {
            from: v4(GW_A),
            ident: 0x1111,
            seq: 1,
        }
    );
}

#[test]
fn ping_follows_the_wan_table_not_main() {
    let lab = Lab::new();
    lab.route_wan_b(&format!("default via {GW_B} dev wanB"));
    let reply = lab.a.run(|| {
        let sock = IcmpSocket::open("wanB", Some(v4(SRC_B)), Family::V4).unwrap();
        sock.send(v4(TARGET), 0x2222, 9).unwrap();
        within(ANSWER, sock.recv())
    });
    let reply = reply.expect("no reply").unwrap();
    assert_eq!(
        reply,
        EchoReply {
            from: v4(TARGET),
            ident: 0x2222,
            seq: 9,
        }
    );
    assert_eq!(echo_requests(&lab.b2), 1, "B2 answered");
    assert_eq!(
        echo_requests(&lab.b1),
        0,
        "B1, the main default, saw nothing"
    );
}

#[test]
fn probe_never_leaks_through_another_wan() {
    let lab = Lab::new();
    lab.route_wan_b("unreachable default");
    // With no usable route, the kernel treats the target as on-link for a device-bound
    // IPv4 socket and asks for it by ARP on wanB (see the module doc). Keep B2 from
    // answering ARP for its loopback address so that path stays silent, as a real
    // upstream would.
    lab.b2.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1");

    let (sent, reply) = lab.a.run(|| {
        let sock = IcmpSocket::open("wanB", None, Family::V4).unwrap();
        let sent = sock.send(v4(TARGET), 0x3333, 1);
        (sent, within(SILENCE, sock.recv()))
    });
    assert!(
        sent.is_err() || reply.is_none(),
        "probe on wanB answered: {reply:?}"
    );
    assert_eq!(echo_requests(&lab.b1), 0, "the probe left through wanA");
    assert_eq!(echo_requests(&lab.b2), 0);

    // The same target is reachable through wanA, so the silence above is the binding's
    // doing and not a broken lab.
    let reply = lab.a.run(|| {
        let sock = IcmpSocket::open("wanA", None, Family::V4).unwrap();
        sock.send(v4(TARGET), 0x3333, 2).unwrap();
        within(ANSWER, sock.recv())
    });
    assert_eq!(reply.expect("no reply via wanA").unwrap().seq, 2);
    assert_eq!(echo_requests(&lab.b1), 1);
}

#[test]
fn concurrent_sockets_see_only_their_own_replies() {
    let lab = Lab::new();
    lab.route_wan_b(&format!("default via {GW_B} dev wanB"));
    const ROUNDS: u16 = 3;
    let (got_a, got_b) = lab.a.run(|| {
        let sock_a = IcmpSocket::open("wanA", Some(v4(SRC_A)), Family::V4).unwrap();
        let sock_b = IcmpSocket::open("wanB", Some(v4(SRC_B)), Family::V4).unwrap();
        // Both probe the same target at the same time, with different identifiers.
        for seq in 0..ROUNDS {
            sock_a.send(v4(TARGET), 0xaaaa, seq).unwrap();
            sock_b.send(v4(TARGET), 0xbbbb, seq).unwrap();
        }
        // Collect until SILENCE passes with nothing new: everything each socket got.
        let collect = |sock: IcmpSocket| async move {
            let mut got = Vec::new();
            while let Some(r) = within_async(SILENCE, sock.recv()).await {
                got.push(r.unwrap());
            }
            got
        };
        within(
            ANSWER * 2,
            smol::future::zip(collect(sock_a), collect(sock_b)),
        )
        .expect("collecting replies")
    });
    let expect = |ident| {
        (0..ROUNDS)
            .map(|seq| EchoReply {
                from: v4(TARGET),
                ident,
                seq,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(got_a, expect(0xaaaa));
    assert_eq!(got_b, expect(0xbbbb));
    assert_eq!(echo_requests(&lab.b1), u64::from(ROUNDS));
    assert_eq!(echo_requests(&lab.b2), u64::from(ROUNDS));
}

/// [`within`] for use inside a future.
async fn within_async<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

#[test]
fn tcp_connect_outcomes() {
    let lab = Lab::new();
    lab.route_wan_b("unreachable default");
    lab.b2.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1");
    // A listener opened in B1; the kernel completes handshakes without accept().
    let _listener = lab
        .b1
        .run(|| TcpListener::bind((GW_A, 7001)))
        .expect("listen in B1");

    let (open, closed, dropped, other_wan) = lab.a.run(|| {
        let to = |port| SocketAddr::new(v4(GW_A), port);
        (
            within(ANSWER, tcp_connect("wanA", Some(v4(SRC_A)), None, to(7001))),
            within(ANSWER, tcp_connect("wanA", None, None, to(7002))),
            within(SILENCE, tcp_connect("wanA", None, None, to(7003))),
            within(SILENCE, tcp_connect("wanB", None, None, to(7001))),
        )
    });
    // The handshake's RTT comes from the kernel (TCP_INFO); a reset carries none.
    let rtt = open.expect("handshake timed out").expect("handshake");
    assert!(
        rtt.is_some_and(|r| r > Duration::ZERO && r < ANSWER),
        "{rtt:?}"
    );
    let closed = closed
        .expect("reset timed out")
        .expect("a reset counts as an answer");
    assert_eq!(closed, None);
    assert!(dropped.is_none(), "dropped SYN finished: {dropped:?}");
    assert!(
        !matches!(other_wan, Some(Ok(_))),
        "B1's listener reached from wanB"
    );
}

#[test]
fn open_errors_name_the_device() {
    let ns = Netns::new();
    let err = ns
        .run(|| IcmpSocket::open("nosuchwan0", None, Family::V4))
        .unwrap_err();
    assert!(err.to_string().contains("nosuchwan0"), "{err}");
    let err = ns
        .run(|| {
            let addr = SocketAddr::new(v4(GW_A), 80);
            within(ANSWER, tcp_connect("nosuchwan0", None, None, addr))
        })
        .expect("failed at once")
        .unwrap_err();
    assert!(err.to_string().contains("nosuchwan0"), "{err}");
    // A source address the device does not have cannot be bound either.
    ns.ip("link add wan0 type veth peer name wan0peer");
    let err = ns
        .run(|| IcmpSocket::open("wan0", Some(v4(SRC_A)), Family::V4))
        .unwrap_err();
    assert!(err.to_string().contains("wan0"), "{err}");
}

#[test]
fn ping_v6_bound_to_wan() {
    let a = Netns::new();
    let b = Netns::new();
    for ns in [&a, &b] {
        ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    }
    a.ip(&format!(
        "link add wan6 type veth peer name eth0 netns {}",
        b.name()
    ));
    a.ip("addr add fd00:31:6::2/64 dev wan6 nodad");
    a.ip("link set wan6 up");
    b.ip("addr add fd00:31:6::1/64 dev eth0 nodad");
    b.ip("link set eth0 up");
    let gw: Ipv6Addr = "fd00:31:6::1".parse().unwrap();
    let src: Ipv6Addr = "fd00:31:6::2".parse().unwrap();

    let (reply, tcp) = a.run(|| {
        let sock = IcmpSocket::open("wan6", Some(IpAddr::V6(src)), Family::V6).unwrap();
        sock.send(IpAddr::V6(gw), 0x6666, 42).unwrap();
        let reply = within(ANSWER, sock.recv());
        let tcp = within(
            ANSWER,
            tcp_connect("wan6", None, None, SocketAddr::new(IpAddr::V6(gw), 7002)),
        );
        (reply, tcp)
    });
    assert_eq!(
        reply.expect("no reply").unwrap(),
        EchoReply {
            from: IpAddr::V6(gw),
            ident: 0x6666,
            seq: 42,
        }
    );
    tcp.expect("reset timed out")
        .expect("a reset counts as an answer");
}

#[test]
fn tcp_outcome_counts_only_the_target() {
    let target = v4(TARGET);
    let hop = v4(GW_A);
    let icmp = |offender| {
        Some(IcmpError {
            kind: 3,
            code: 3,
            offender,
        })
    };
    // A reset: no ICMP error queued.
    assert!(tcp_outcome(target, libc::ECONNREFUSED, None).is_ok());
    // Port unreachable from a router on the way is a lost probe, not an answer.
    let err = tcp_outcome(target, libc::ECONNREFUSED, icmp(Some(hop))).unwrap_err();
    assert!(err.to_string().contains("10.31.1.1"), "{err}");
    assert!(tcp_outcome(target, libc::ECONNREFUSED, icmp(None)).is_err());
    // The target's own firewall rejecting: the path works.
    assert!(tcp_outcome(target, libc::ECONNREFUSED, icmp(Some(target))).is_ok());
    assert!(tcp_outcome(target, libc::EHOSTUNREACH, None).is_err());
}

#[test]
fn tcp_connect_ignores_rejects_from_other_hops() {
    let lab = Lab::new();
    // B1 forwards 198.51.100.0/24 and rejects it on the way, like an ISP's router would;
    // it rejects port 7005 of its own address itself.
    lab.b1.sh("sysctl -qw net.ipv4.ip_forward=1");
    lab.b1.ip("route add 198.51.100.0/24 dev lo");
    lab.b1.nft(
        "table inet hop {
            chain transit {
                type filter hook forward priority 0;
                ip daddr 198.51.100.1 reject with icmp type port-unreachable
                ip daddr 198.51.100.2 reject with icmp type host-unreachable
            }
            chain input {
                type filter hook input priority -10;
                tcp dport 7005 reject with icmp type port-unreachable
            }
        }",
    );
    let (port, host, own) = lab.a.run(|| {
        let to = |ip: Ipv4Addr, port| SocketAddr::new(v4(ip), port);
        (
            within(
                ANSWER,
                tcp_connect("wanA", None, None, to(Ipv4Addr::new(198, 51, 100, 1), 80)),
            ),
            within(
                ANSWER,
                tcp_connect("wanA", None, None, to(Ipv4Addr::new(198, 51, 100, 2), 80)),
            ),
            within(ANSWER, tcp_connect("wanA", None, None, to(GW_A, 7005))),
        )
    });
    let port = port.expect("port-unreachable timed out");
    assert!(
        port.is_err(),
        "a hop's port-unreachable counted as an answer"
    );
    assert!(
        port.unwrap_err().to_string().contains("10.31.1.1"),
        "the error names the hop"
    );
    assert!(host.expect("host-unreachable timed out").is_err());
    own.expect("own reject timed out")
        .expect("the target's own port-unreachable proves the path");
}

#[test]
fn echo_replies_carry_the_kernel_receive_time() {
    let lab = Lab::new();
    let (before, got, after) = lab.a.run(|| {
        let sock = IcmpSocket::open("wanA", Some(v4(SRC_A)), Family::V4).unwrap();
        let before = std::time::SystemTime::now();
        sock.send(v4(GW_A), 0x7777, 9).unwrap();
        let got = within(ANSWER, sock.recv_stamped());
        (before, got, std::time::SystemTime::now())
    });
    let got = got.expect("no reply").unwrap();
    assert_eq!((got.reply.ident, got.reply.seq), (0x7777, 9));
    let at = got.at.expect("SO_TIMESTAMPNS gives a receive time");
    assert!(before <= at && at <= after, "{before:?} {at:?} {after:?}");
}
