//! Tests of the netlink backend against the real kernel, each in a throwaway namespace.

use std::net::IpAddr;
use std::time::Duration;

use super::kernel::Kernel;
use super::netlink::{decode_events, describe, EventFilter, Monitor, Netlink};
use super::testns::Netns;
use crate::kernel::*;
use crate::reconcile::{reconcile, Op};

const PROTO: u8 = 212;

fn own() -> Ownership {
    Ownership {
        protocol: PROTO,
        tables: 1100..=1399,
        priorities: 4000..=4199,
        nexthop_ids: 1100..=1199,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two veth pairs with addresses and the default routes a netifd would install.
/// wan1p, wan1, wan2p, wan2 get ifindex 2, 3, 4, 5.
fn lab() -> Netns {
    let ns = Netns::new();
    ns.ip("link add wan1 type veth peer name wan1p");
    ns.ip("link add wan2 type veth peer name wan2p");
    for l in ["wan1", "wan1p", "wan2", "wan2p"] {
        ns.ip(&format!("link set {l} up"));
    }
    ns.ip("addr add 10.20.1.2/24 dev wan1");
    ns.ip("addr add 10.20.2.2/24 dev wan2");
    ns.ip("addr add fd00:1::2/64 dev wan1 nodad");
    ns.ip("route add default via 10.20.1.1 dev wan1 metric 10 proto static");
    ns.ip("route add default via 10.20.2.1 dev wan2 metric 20 proto static");
    ns
}

fn ifindex(snap: &Snapshot, name: &str) -> u32 {
    snap.link_by_name(name).expect("link").ifindex
}

fn via_nh(id: u32, family: Family, ifindex: u32, gateway: Option<&str>) -> Object {
    Object::Nexthop(Nexthop {
        id,
        family,
        kind: NexthopKind::Via {
            ifindex,
            gateway: gateway.map(ip),
        },
    })
}

fn group(id: u32, family: Family, members: &[(u32, u16)]) -> Object {
    Object::Nexthop(Nexthop {
        id,
        family,
        kind: NexthopKind::Group(
            members
                .iter()
                .map(|&(id, weight)| GroupMember { id, weight })
                .collect(),
        ),
    })
}

fn route(family: Family, table: u32, dst: &str, metric: u32, target: RouteTarget) -> Object {
    let (addr, len) = match dst.split_once('/') {
        Some((a, l)) => (ip(a), l.parse().unwrap()),
        None => (family.any(), 0),
    };
    Object::Route(Route {
        family,
        table,
        dst: addr,
        dst_len: len,
        metric,
        target,
    })
}

fn rule(
    family: Family,
    priority: u32,
    selector: Selector,
    table: u32,
    suppress: Option<u8>,
) -> Object {
    Object::Rule(Rule {
        family,
        priority,
        selector,
        table,
        suppress_prefixlength: suppress,
    })
}

/// One object of every kind and shape the model has.
fn everything(wan1: u32, wan2: u32) -> Vec<Object> {
    use Family::*;
    vec![
        via_nh(1101, V4, wan1, Some("10.20.1.1")),
        via_nh(1102, V4, wan2, None),
        via_nh(1103, V6, wan1, Some("fd00:1::1")),
        via_nh(1104, V6, wan1, None),
        group(1199, V4, &[(1101, 3), (1102, 1)]),
        group(1198, V6, &[(1103, 256), (1104, 1)]),
        route(V4, 1101, "", 0, RouteTarget::Nexthop(1199)),
        route(
            V4,
            1102,
            "",
            5,
            RouteTarget::Via {
                ifindex: wan1,
                gateway: Some(ip("10.20.1.1")),
            },
        ),
        route(
            V4,
            1103,
            "10.99.0.0/16",
            0,
            RouteTarget::Via {
                ifindex: wan2,
                gateway: None,
            },
        ),
        route(V4, 1104, "", u32::MAX, RouteTarget::Unreachable),
        route(V4, 1105, "", 7, RouteTarget::Blackhole),
        route(
            V4,
            1106,
            "",
            0,
            RouteTarget::Multipath(vec![
                MultipathHop {
                    ifindex: wan1,
                    gateway: Some(ip("10.20.1.1")),
                    weight: 2,
                },
                MultipathHop {
                    ifindex: wan2,
                    gateway: Some(ip("10.20.2.1")),
                    weight: 1,
                },
            ]),
        ),
        route(V6, 1301, "", 1, RouteTarget::Nexthop(1198)),
        route(
            V6,
            1107,
            "",
            100,
            RouteTarget::Via {
                ifindex: wan1,
                gateway: Some(ip("fd00:1::1")),
            },
        ),
        route(V6, 1108, "", 2000, RouteTarget::Unreachable),
        rule(V4, 4000, Selector::All, 254, Some(0)),
        rule(V4, 4101, Selector::Oif("wan1".into()), 1101, None),
        rule(
            V4,
            4001,
            Selector::From {
                addr: ip("10.20.1.2"),
                len: 32,
            },
            1101,
            None,
        ),
        rule(
            V4,
            4002,
            Selector::Fwmark {
                mark: 0x100,
                mask: 0xff00,
            },
            1102,
            None,
        ),
        rule(
            V4,
            4003,
            Selector::Fwmark {
                mark: 0x200,
                mask: u32::MAX,
            },
            1103,
            None,
        ),
        rule(
            V6,
            4010,
            Selector::From {
                addr: ip("fd00:1::"),
                len: 64,
            },
            1107,
            Some(0),
        ),
    ]
}

fn sorted(mut v: Vec<Object>) -> Vec<Object> {
    v.sort();
    v
}

fn apply_all(nl: &mut Netlink, ops: &[Op]) {
    for op in ops {
        if let Err(e) = nl.apply(op) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_object_kind_round_trips() {
    let ns = lab();
    ns.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert!(snap.nexthops_supported);
        assert!(snap.owned.is_empty(), "{:?}", snap.owned);
        let desired = everything(ifindex(&snap, "wan1"), ifindex(&snap, "wan2"));
        let ops = reconcile(&desired, &snap.owned);
        assert_eq!(ops.len(), desired.len());
        apply_all(&mut nl, &ops);

        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(sorted(snap.owned.clone()), sorted(desired.clone()));
        assert_eq!(reconcile(&desired, &snap.owned), vec![]);

        // Changing a group's weights replaces just the group, atomically.
        let mut changed = desired.clone();
        let at = changed
            .iter()
            .position(|o| matches!(o, Object::Nexthop(n) if n.id == 1199))
            .unwrap();
        changed[at] = group(1199, Family::V4, &[(1101, 1), (1102, 5)]);
        let ops = reconcile(&changed, &snap.owned);
        assert_eq!(ops, vec![Op::Replace(changed[at].clone())]);
        apply_all(&mut nl, &ops);
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(sorted(snap.owned.clone()), sorted(changed.clone()));

        // Deleting everything leaves nothing of ours, and nobody else's was touched.
        let ops = reconcile(&[], &snap.owned);
        apply_all(&mut nl, &ops);
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(snap.owned, vec![]);
        assert_eq!(snap.foreign_defaults.len(), 2);
    });
}

#[test]
fn describe_matches_what_apply_does() {
    // Apply through netlink in one namespace, feed describe() to `ip` in another set up
    // the same way, and compare what the two kernels dump.
    let a = lab();
    let b = lab();
    let (desired, links) = a.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let desired = everything(ifindex(&snap, "wan1"), ifindex(&snap, "wan2"));
        apply_all(&mut nl, &reconcile(&desired, &[]));
        (desired, snap.links)
    });
    for op in reconcile(&desired, &[]) {
        let line = describe(&op, &links, PROTO);
        let args = line.strip_prefix("ip ").unwrap();
        if let Err(e) = b.try_ip(args) {
            panic!("`{line}` failed: {e}");
        }
    }
    let dumped = b.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        nl.snapshot(&own(), &Reads::Everywhere).unwrap().owned
    });
    assert_eq!(sorted(dumped), sorted(desired.clone()));

    // Deletions as described also work.
    for op in reconcile(&[], &desired) {
        let line = describe(&op, &links, PROTO);
        if let Err(e) = b.try_ip(line.strip_prefix("ip ").unwrap()) {
            panic!("`{line}` failed: {e}");
        }
    }
    let dumped = b.run(|| {
        Netlink::open(own())
            .unwrap()
            .snapshot(&own(), &Reads::Everywhere)
            .unwrap()
            .owned
    });
    assert_eq!(dumped, vec![]);
}

#[test]
fn alien_objects_are_never_owned() {
    let ns = lab();
    // A route in main with our protocol; a non-default route in our table, another protocol.
    ns.ip("route add 10.50.0.0/16 via 10.20.1.1 proto 212");
    ns.ip("route add 10.60.0.0/16 via 10.20.1.1 table 1101 proto static");
    // Rules outside our priorities, or without our protocol.
    ns.ip("rule add priority 5000 lookup 1101 proto 212");
    ns.ip("rule add priority 4050 lookup 1101");
    ns.ip("rule add priority 4051 lookup 1101 proto static");
    // Nexthops with another protocol, or outside our ids.
    ns.ip("nexthop add id 1150 via 10.20.1.1 dev wan1");
    ns.ip("nexthop add id 2000 via 10.20.1.1 dev wan1 proto 212");
    ns.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(snap.owned, vec![]);
    });
}

#[test]
fn finds_foreign_default_routes() {
    let ns = lab();
    ns.ip("-6 route add default via fd00:1::1 dev wan1 metric 30 proto static");
    // netifd's source routing for a delegated prefix.
    ns.ip("-6 route add default from 2001:db8:10::/48 via fe80::1 dev wan1 metric 40");
    ns.ip("route add default via 10.20.2.1 dev wan2 table 77 proto static");
    ns.ip("route add default dev wan2 table 78 metric 3");
    // Not gateways: reject routes, and our own default.
    ns.ip("route add unreachable default table 50 metric 99");
    ns.ip("route add blackhole default table 51");
    ns.ip("route add prohibit default table 52");
    ns.ip("route add default via 10.20.1.1 dev wan1 table 1101 proto 212");
    ns.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let (wan1, wan2) = (ifindex(&snap, "wan1"), ifindex(&snap, "wan2"));
        let fd = |family, table, ifindex, gateway: Option<&str>, metric| ForeignDefault {
            family,
            table,
            ifindex,
            gateway: gateway.map(ip),
            metric,
            src: None,
        };
        let mut got = snap.foreign_defaults.clone();
        got.sort_by_key(|f| (f.table, f.metric));
        assert_eq!(
            got,
            vec![
                fd(Family::V4, 77, wan2, Some("10.20.2.1"), 0),
                fd(Family::V4, 78, wan2, None, 3),
                fd(Family::V4, 254, wan1, Some("10.20.1.1"), 10),
                fd(Family::V4, 254, wan2, Some("10.20.2.1"), 20),
                fd(Family::V6, 254, wan1, Some("fd00:1::1"), 30),
                ForeignDefault {
                    src: Some((ip("2001:db8:10::"), 48)),
                    ..fd(Family::V6, 254, wan1, Some("fe80::1"), 40)
                },
            ]
        );
        assert_eq!(snap.owned.len(), 1);
        // Links and global addresses; the IPv6 link-local one is left out.
        let wan1_link = snap.link_by_name("wan1").unwrap();
        assert!(wan1_link.up && wan1_link.carrier);
        let mut addrs: Vec<(u32, IpAddr, u8)> = snap
            .addresses
            .iter()
            .map(|a| (a.ifindex, a.addr, a.prefix_len))
            .collect();
        addrs.sort();
        assert_eq!(
            addrs,
            vec![
                (wan1, ip("10.20.1.2"), 24),
                (wan1, ip("fd00:1::2"), 64),
                (wan2, ip("10.20.2.2"), 24),
            ]
        );
    });
}

#[test]
fn errors_name_the_operation() {
    let ns = lab();
    ns.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let op = Op::Add(via_nh(
            1101,
            Family::V4,
            ifindex(&snap, "wan1"),
            Some("10.20.1.1"),
        ));
        nl.apply(&op).unwrap();
        let err = nl.apply(&op).unwrap_err();
        assert_eq!(err.errno, Some(libc::EEXIST));
        assert!(
            err.context
                .starts_with("ip nexthop add id 1101 via 10.20.1.1 dev wan1 proto 212"),
            "{err}"
        );
        // A group naming a missing member: the kernel refuses, the socket stays usable.
        let err = nl
            .apply(&Op::Add(group(1199, Family::V4, &[(1150, 1)])))
            .unwrap_err();
        assert_eq!(err.errno, Some(libc::EINVAL), "{err}");
        assert_eq!(
            nl.snapshot(&own(), &Reads::Everywhere).unwrap().owned.len(),
            1
        );
    });
}

/// Waits (boundedly) for the first event that `want` accepts.
fn wait_for(monitor: &mut Monitor, want: impl Fn(&Event) -> bool) -> Option<Event> {
    smol::block_on(smol::future::or(
        async {
            loop {
                for e in monitor.next().await {
                    if want(&e) {
                        return Some(e);
                    }
                }
            }
        },
        async {
            smol::Timer::after(Duration::from_secs(10)).await;
            None
        },
    ))
}

#[test]
fn monitor_reports_carrier_loss_and_changes() {
    let ns = lab();
    let name = ns.name.clone();
    ns.run(move || {
        let mut monitor = Monitor::open().unwrap();
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let wan1 = ifindex(&snap, "wan1");

        let wan2 = ifindex(&snap, "wan2");
        for nh in [
            via_nh(1101, Family::V4, wan1, Some("10.20.1.1")),
            via_nh(1102, Family::V4, wan2, None),
            group(1199, Family::V4, &[(1101, 1), (1102, 1)]),
        ] {
            nl.apply(&Op::Add(nh)).unwrap();
        }
        assert_eq!(
            wait_for(&mut monitor, |e| *e == Event::Changed),
            Some(Event::Changed)
        );

        // The peer going down takes wan1's carrier.
        let ok = std::process::Command::new("ip")
            .args(["-n", &name, "link", "set", "wan1p", "down"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let ev = wait_for(
            &mut monitor,
            |e| matches!(e, Event::Link(l) if l.name == "wan1" && !l.carrier),
        );
        assert_eq!(
            ev,
            Some(Event::Link(Link {
                ifindex: wan1,
                name: "wan1".into(),
                up: true,
                carrier: false,
            }))
        );

        // Observed on kernel 6.18: a nexthop whose device loses carrier is deleted by the
        // kernel (its netdev notifier flushes a device's nexthops on a state change that
        // leaves the device without carrier) and dropped from the groups that name it,
        // WITHOUT any RTM_DELNEXTHOP / RTM_NEWNEXTHOP event (`ip monitor all` shows only
        // the link change). So the daemon must resync on a Link event with carrier
        // loss; reconcile recreates the nexthop once the carrier is back.
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(
            snap.owned,
            vec![
                via_nh(1102, Family::V4, wan2, None),
                group(1199, Family::V4, &[(1102, 1)]),
            ],
            "nexthop survived carrier loss"
        );

        // A deleted link is reported as gone.
        let ok = std::process::Command::new("ip")
            .args(["-n", &name, "link", "del", "wan2"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let ev = wait_for(&mut monitor, |e| matches!(e, Event::LinkGone { .. }));
        assert!(matches!(ev, Some(Event::LinkGone { .. })), "{ev:?}");
    });
}

#[test]
fn decodes_event_datagrams() {
    use super::wire::Request;
    // Two route messages and an address message make one Changed; a link message its Link.
    let mut buf = Request::new(24, 0, &[0u8; 12]).finish(0);
    buf.extend(Request::new(25, 0, &[0u8; 12]).finish(0));
    buf.extend(Request::new(20, 0, &[0u8; 8]).finish(0));
    let mut link = Request::new(16, 0, &{
        let mut h = [0u8; 16];
        h[4..8].copy_from_slice(&7u32.to_ne_bytes());
        h[8..12].copy_from_slice(&0x1u32.to_ne_bytes());
        h
    });
    link.attr(3, b"wan9\0");
    buf.extend(link.finish(0));
    assert_eq!(
        decode_events(&buf, &EventFilter::default()),
        vec![
            Event::Link(Link {
                ifindex: 7,
                name: "wan9".into(),
                up: true,
                carrier: false
            }),
            Event::Changed
        ]
    );
    // A cut-off datagram means lost events.
    let cut = &buf[..buf.len() - 3];
    assert_eq!(
        decode_events(cut, &EventFilter::default()),
        vec![Event::Overrun, Event::Changed]
    );
    // Unknown and undecodable messages are skipped.
    assert_eq!(
        decode_events(
            &Request::new(16, 0, &[1, 2]).finish(0),
            &EventFilter::default()
        ),
        vec![]
    );
    assert_eq!(
        decode_events(
            &Request::new(999, 0, &[]).finish(0),
            &EventFilter::default()
        ),
        vec![]
    );
}

#[test]
fn route_events_that_cannot_matter_are_dropped_at_decode() {
    use super::wire::Request;
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let route = |kind: u16, dst_len: u8, table: u8, flags: u32| {
        let mut h = [0u8; 12];
        h[0] = libc::AF_INET as u8;
        h[1] = dst_len;
        h[4] = table;
        h[7] = 1; // RTN_UNICAST
        h[8..12].copy_from_slice(&flags.to_ne_bytes());
        Request::new(kind, 0, &h).finish(0)
    };
    // `ip route add 10.9.0.0/16 via ..` in main, or in a table of its own: nothing.
    assert_eq!(
        decode_events(&route(24, 16, 254, 0), &EventFilter::default()),
        vec![]
    );
    assert_eq!(
        decode_events(&route(25, 24, 200, 0), &EventFilter::default()),
        vec![]
    );
    // Local table and cached clones: nothing.
    assert_eq!(
        decode_events(&route(24, 0, 255, 0), &EventFilter::default()),
        vec![]
    );
    assert_eq!(
        decode_events(&route(24, 0, 254, 0x200), &EventFilter::default()),
        vec![]
    );
    // A default route anywhere else (a gateway change, ours deleted): a resync.
    assert_eq!(
        decode_events(&route(25, 0, 254, 0), &EventFilter::default()),
        vec![Event::Changed]
    );
    assert_eq!(
        decode_events(&route(24, 0, 0, 0), &EventFilter::default()),
        vec![Event::Changed]
    );
    // A short header is not trusted to be harmless.
    assert_eq!(
        decode_events(
            &Request::new(24, 0, &[0u8; 1]).finish(0),
            &EventFilter::default()
        ),
        vec![Event::Changed]
    );
}

/// A route event as the kernel sends it: `pid` is the port id of the writer (0: the
/// kernel itself), `attrs` are (type, u32 value) pairs.
fn route_event(kind: u16, pid: u32, hdr: [u8; 8], attrs: &[(u16, u32)]) -> Vec<u8> {
    use super::wire::Request;
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut h = [0u8; 12];
    h[..8].copy_from_slice(&hdr);
    let mut r = Request::new(kind, 0, &h);
    for &(k, v) in attrs {
        r.attr_u32(k, v);
    }
    with_pid(r.finish(0), pid)
}

fn with_pid(mut msg: Vec<u8>, pid: u32) -> Vec<u8> {
    msg[12..16].copy_from_slice(&pid.to_ne_bytes());
    msg
}

#[test]
fn events_are_classified_when_decoded() {
    use super::nexthop;
    use super::wire::Request;
    const OIF: u16 = 4;
    const MULTIPATH: u16 = 9;
    const TABLE: u16 = 15;
    const NH_ID: u16 = 30;
    const ECHO: u32 = 777;
    // WAN devices 3 and 5; 9 is someone else's (a BGP peering, a LAN bridge).
    let filter = EventFilter {
        own: Some(own()),
        devices: Some(vec![3, 5]),
        echo_port: ECHO,
    };
    let changed = vec![Event::Changed];
    let nothing: Vec<Event> = vec![];
    let dec = |buf: &[u8]| decode_events(buf, &filter);
    let v4 = libc::AF_INET as u8;
    // Header bytes: family, dst_len, src_len, tos, table, protocol, scope, type.
    let default_main = [v4, 0, 0, 0, 254, 4, 0, 1];
    let ours = [v4, 0, 0, 0, 0, PROTO, 0, 1];

    // `ip route replace default nhid 1101 table 1101 proto 212` from our own socket is
    // an echo; the same route deleted by the kernel (its device went away) is not.
    let our_route = |pid| route_event(24, pid, ours, &[(TABLE, 1101), (NH_ID, 1101)]);
    assert_eq!(dec(&our_route(ECHO)), nothing);
    assert_eq!(dec(&route_event(25, 0, ours, &[(TABLE, 1101)])), changed);
    // A gateway change on a WAN device matters, in main or another table (netifd's
    // ip4table); on another device it does not, even as a default route.
    assert_eq!(dec(&route_event(24, 0, default_main, &[(OIF, 3)])), changed);
    let table_77 = [v4, 0, 0, 0, 77, 4, 0, 1];
    assert_eq!(dec(&route_event(24, 0, table_77, &[(OIF, 5)])), changed);
    assert_eq!(dec(&route_event(24, 0, default_main, &[(OIF, 9)])), nothing);
    // A BGP prefix on a WAN device, or anywhere: nothing. A connected route of a WAN
    // device (proto kernel, scope link) matters; another device's does not.
    let prefix = [v4, 24, 0, 0, 254, 186, 0, 1];
    assert_eq!(dec(&route_event(24, 0, prefix, &[(OIF, 3)])), nothing);
    let connected = [v4, 24, 0, 0, 254, 2, 253, 1];
    assert_eq!(dec(&route_event(24, 0, connected, &[(OIF, 3)])), changed);
    assert_eq!(dec(&route_event(24, 0, connected, &[(OIF, 9)])), nothing);
    // A foreign unreachable default, in a table of its own: nothing.
    let unreachable = [v4, 0, 0, 0, 50, 4, 0, 7];
    assert_eq!(dec(&route_event(24, 0, unreachable, &[])), nothing);
    // A default through a nexthop object names no device: assumed to matter.
    assert_eq!(
        dec(&route_event(24, 0, default_main, &[(NH_ID, 42)])),
        changed
    );
    // Multipath defaults: one hop on a WAN device is enough.
    let multipath = |oifs: &[u32]| {
        let mut hops = Vec::new();
        for &oif in oifs {
            // struct rtnexthop: u16 len, u8 flags, u8 hops, i32 ifindex.
            hops.extend_from_slice(&8u16.to_ne_bytes());
            hops.extend_from_slice(&[0, 0]);
            hops.extend_from_slice(&oif.to_ne_bytes());
        }
        let mut h = [0u8; 12];
        h[..8].copy_from_slice(&default_main);
        let mut r = Request::new(24, 0, &h);
        r.attr(MULTIPATH, &hops);
        r.finish(0)
    };
    assert_eq!(dec(&multipath(&[9, 5])), changed);
    assert_eq!(dec(&multipath(&[9, 10])), nothing);

    // Nexthops: our own write is an echo; ours changed by the kernel, one on a WAN
    // device and any group matter; one on another device does not.
    let via = |id, proto, oif, pid| {
        with_pid(
            nexthop::new_via(0, id, nexthop::AF_INET, proto, oif, None).finish(0),
            pid,
        )
    };
    assert_eq!(dec(&via(1101, PROTO, 3, ECHO)), nothing);
    assert_eq!(dec(&via(1101, PROTO, 9, 0)), changed);
    assert_eq!(dec(&via(5000, 11, 3, 0)), changed);
    assert_eq!(dec(&via(5000, 11, 9, 0)), nothing);
    let grp = nexthop::new_group(0, 5001, 11, &[(5000, 1)]).finish(0);
    assert_eq!(dec(&grp), changed);

    // Addresses of WAN devices only.
    let addr = |ifindex: u32| {
        let mut h = [0u8; 8];
        h[0] = v4;
        h[1] = 24;
        h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        Request::new(20, 0, &h).finish(0)
    };
    assert_eq!(dec(&addr(3)), changed);
    assert_eq!(dec(&addr(9)), nothing);

    // Rules: ours echo; anyone else's matter (they can shadow ours).
    let rule = |pid| with_pid(Request::new(32, 0, &[0u8; 12]).finish(0), pid);
    assert_eq!(dec(&rule(ECHO)), nothing);
    assert_eq!(dec(&rule(0)), changed);

    // Without a filter (before the first snapshot) every default route matters.
    assert_eq!(
        decode_events(
            &route_event(24, 0, default_main, &[(OIF, 9)]),
            &EventFilter::default()
        ),
        changed
    );
}

/// The kernel stamps our request socket's port id on the notifications of our writes
/// (`rtmsg_fib` / `nexthop_notify` take the requester's portid), so the monitor knows
/// them; the same change made by `ip` is someone else's.
#[test]
fn our_writes_echo_and_others_do_not() {
    let ns = lab();
    let name = ns.name.clone();
    ns.run(move || {
        let mut monitor = Monitor::open().unwrap();
        let mut nl = Netlink::open(own()).unwrap();
        assert!(nl.port_id() != 0);
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let wan1 = ifindex(&snap, "wan1");
        *monitor.filter().borrow_mut() = EventFilter {
            own: Some(own()),
            devices: Some(vec![wan1]),
            echo_port: nl.port_id(),
        };
        nl.apply(&Op::Add(via_nh(1101, Family::V4, wan1, Some("10.20.1.1"))))
            .unwrap();
        nl.apply(&Op::Add(route(
            Family::V4,
            1101,
            "0.0.0.0/0",
            0,
            RouteTarget::Nexthop(1101),
        )))
        .unwrap();
        // Someone else's route on another device, then our table touched by `ip`.
        for args in [
            "route add 10.99.0.0/16 via 10.20.2.1 dev wan2",
            "route del default table 1101",
        ] {
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["-n", &name]).args(args.split(' '));
            assert!(cmd.status().unwrap().success(), "ip {args}");
        }
        // The first event that gets through is the deletion by `ip`: the two writes
        // and the foreign route before it were dropped at decode.
        let first = smol::block_on(smol::future::or(
            async { Some(monitor.next().await) },
            async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            },
        ));
        assert_eq!(first, Some(vec![Event::Changed]));
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(
            snap.owned,
            vec![via_nh(1101, Family::V4, wan1, Some("10.20.1.1"))]
        );
    });
}

/// With strict checking (4.20+) the kernel sends only our routes and those on the WAN
/// devices asked for; without it the same filter runs here. Either way a snapshot
/// reports the same.
#[test]
fn snapshots_read_only_our_routes_and_the_wan_devices() {
    let ns = lab();
    ns.ip("link add bgp0 type veth peer name bgp0p");
    ns.ip("link set bgp0 up");
    ns.ip("link set bgp0p up");
    ns.ip("route add default dev bgp0 table 90");
    ns.ip("route add 10.70.0.0/16 dev bgp0");
    ns.ip("route add default via 10.20.2.1 dev wan2 table 77 proto static");
    ns.ip("route add default via 10.20.1.1 dev wan1 table 1101 proto 212");
    ns.ip("route add default dev bgp0 table 1102 proto 212");
    ns.run(|| {
        let mut nl = Netlink::open(own()).unwrap();
        assert!(nl.filters_dumps(), "kernel before 4.20?");
        let all = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let (wan1, wan2) = (ifindex(&all, "wan1"), ifindex(&all, "wan2"));
        let bgp0 = ifindex(&all, "bgp0");
        let tables = |s: &Snapshot| {
            let mut t: Vec<(u32, u32)> = s
                .foreign_defaults
                .iter()
                .map(|d| (d.table, d.ifindex))
                .collect();
            t.sort();
            t
        };
        assert_eq!(
            tables(&all),
            vec![(77, wan2), (90, bgp0), (254, wan1), (254, wan2)]
        );
        let wans = Reads::Devices(vec!["wan1".into(), "wan2".into(), "gone0".into()]);
        let some = nl.snapshot(&own(), &wans).unwrap();
        assert_eq!(tables(&some), vec![(77, wan2), (254, wan1), (254, wan2)]);
        // Ours come whatever their device, and only once.
        let mut owned = some.owned.clone();
        owned.sort();
        assert_eq!(owned.len(), 2, "{owned:?}");
        assert_eq!(sorted(all.owned.clone()), owned);
        let none = nl.snapshot(&own(), &Reads::Devices(Vec::new())).unwrap();
        assert_eq!(none.foreign_defaults, vec![]);
        assert_eq!(sorted(none.owned), owned);
    });
}

#[test]
fn describe_spells_ip_commands() {
    let links = vec![Link {
        ifindex: 3,
        name: "wan1".into(),
        up: true,
        carrier: true,
    }];
    let d = |op: Op| describe(&op, &links, PROTO);
    assert_eq!(
        d(Op::Add(via_nh(1101, Family::V4, 3, Some("10.20.1.1")))),
        "ip nexthop add id 1101 via 10.20.1.1 dev wan1 proto 212"
    );
    assert_eq!(
        d(Op::Replace(group(
            1199,
            Family::V4,
            &[(1101, 3), (1102, 1)]
        ))),
        "ip nexthop replace id 1199 group 1101,3/1102 proto 212"
    );
    assert_eq!(
        d(Op::Add(route(
            Family::V4,
            1199,
            "",
            0,
            RouteTarget::Nexthop(1199)
        ))),
        "ip route add default nhid 1199 table 1199 proto 212"
    );
    assert_eq!(
        d(Op::Add(route(
            Family::V4,
            1101,
            "",
            u32::MAX,
            RouteTarget::Unreachable
        ))),
        "ip route add unreachable default table 1101 metric 4294967295 proto 212"
    );
    assert_eq!(
        d(Op::Add(rule(Family::V4, 4000, Selector::All, 254, Some(0)))),
        "ip -4 rule add priority 4000 lookup main suppress_prefixlength 0 proto 212"
    );
    assert_eq!(
        d(Op::Add(rule(
            Family::V4,
            4101,
            Selector::Oif("wan1".into()),
            1101,
            None
        ))),
        "ip -4 rule add priority 4101 oif wan1 lookup 1101 proto 212"
    );
    let from = Selector::From {
        addr: ip("10.20.1.2"),
        len: 32,
    };
    assert_eq!(
        d(Op::Delete(rule(Family::V4, 4001, from, 1101, None))),
        "ip -4 rule del priority 4001 from 10.20.1.2 lookup 1101 proto 212"
    );
    assert_eq!(
        d(Op::Delete(via_nh(1102, Family::V4, 9, None))),
        "ip nexthop del id 1102"
    );
    assert_eq!(
        d(Op::Add(via_nh(1102, Family::V4, 9, None))),
        "ip nexthop add id 1102 dev if9 proto 212"
    );
}

#[test]
fn monitor_overflow_is_an_overrun() {
    let ns = lab();
    ns.run(|| {
        // The smallest buffer the kernel allows, then many changes nobody reads.
        let mut monitor = Monitor::with_rcvbuf(1).unwrap();
        let mut nl = Netlink::open(own()).unwrap();
        for t in 0..200 {
            nl.apply(&Op::Add(route(
                Family::V4,
                1100 + t,
                "",
                0,
                RouteTarget::Blackhole,
            )))
            .unwrap();
        }
        assert_eq!(
            wait_for(&mut monitor, |e| *e == Event::Overrun),
            Some(Event::Overrun)
        );
    });
}

#[test]
fn decodes_failed_neighbours() {
    use super::wire::Request;
    // struct ndmsg: family, pad, pad, ifindex, state, flags, type; then NDA_DST (1).
    let neigh = |family: u8, state: u16, dst: &[u8]| {
        let mut h = [0u8; 12];
        h[0] = family;
        h[4..8].copy_from_slice(&3u32.to_ne_bytes());
        h[8..10].copy_from_slice(&state.to_ne_bytes());
        let mut m = Request::new(28, 0, &h);
        m.attr(1, dst);
        m.finish(0)
    };
    // NUD_FAILED (0x20): the gateway 10.20.1.1 answered no ARP.
    assert_eq!(
        decode_events(
            &neigh(libc::AF_INET as u8, 0x20, &[10, 20, 1, 1]),
            &EventFilter::default()
        ),
        vec![Event::NeighbourFailed {
            ifindex: 3,
            addr: ip("10.20.1.1")
        }]
    );
    let v6: [u8; 16] = ip("fe80::1")
        .to_string()
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    assert_eq!(
        decode_events(
            &neigh(libc::AF_INET6 as u8, 0x20, &v6),
            &EventFilter::default()
        ),
        vec![Event::NeighbourFailed {
            ifindex: 3,
            addr: ip("fe80::1")
        }]
    );
    // STALE (0x04), INCOMPLETE (0x01), PERMANENT (0x80): dropped at decode (REACHABLE:
    // see `decodes_confirmed_neighbours_on_wan_devices_only`).
    for state in [0x04, 0x01, 0x80] {
        assert_eq!(
            decode_events(
                &neigh(libc::AF_INET as u8, state, &[10, 20, 1, 1]),
                &EventFilter::default()
            ),
            vec![]
        );
    }
    // A destination of the wrong length, a cut header: skipped, never a panic.
    assert_eq!(
        decode_events(
            &neigh(libc::AF_INET as u8, 0x20, &[10, 20, 1]),
            &EventFilter::default()
        ),
        vec![]
    );
    assert_eq!(
        decode_events(
            &neigh(libc::AF_INET6 as u8, 0x20, &[10, 20, 1, 1]),
            &EventFilter::default()
        ),
        vec![]
    );
    assert_eq!(
        decode_events(
            &Request::new(28, 0, &[0u8; 9]).finish(0),
            &EventFilter::default()
        ),
        vec![]
    );
}

#[test]
fn monitor_reports_a_gateway_that_answers_no_arp() {
    let ns = lab();
    ns.run(|| {
        // Nothing answers for 10.20.1.1 on wan1 (its peer has no address). Solicit
        // faster than the 1 s default so the entry fails within a second.
        std::fs::write("/proc/sys/net/ipv4/neigh/wan1/retrans_time_ms", "100").unwrap();
        let mut monitor = Monitor::open().unwrap();
        let sock = std::net::UdpSocket::bind("10.20.1.2:0").unwrap();
        // Sending makes the kernel resolve the gateway: INCOMPLETE, then FAILED after
        // mcast_solicit (3) unanswered requests.
        let _ = sock.send_to(b"x", "10.20.1.1:9");
        let ev = wait_for(&mut monitor, |e| matches!(e, Event::NeighbourFailed { .. }));
        assert_eq!(
            ev,
            Some(Event::NeighbourFailed {
                ifindex: 3,
                addr: ip("10.20.1.1")
            })
        );
    });
}

#[test]
fn decodes_confirmed_neighbours_on_wan_devices_only() {
    use super::wire::Request;
    let mut h = [0u8; 12];
    h[0] = libc::AF_INET as u8;
    h[4..8].copy_from_slice(&3u32.to_ne_bytes());
    h[8..10].copy_from_slice(&0x02u16.to_ne_bytes());
    let mut m = Request::new(28, 0, &h);
    m.attr(1, &[10, 20, 1, 1]);
    let msg = m.finish(0);
    let reachable = vec![Event::NeighbourReachable {
        ifindex: 3,
        addr: ip("10.20.1.1"),
    }];
    assert_eq!(decode_events(&msg, &EventFilter::default()), reachable);
    let wans = |devices: Vec<u32>| EventFilter {
        devices: Some(devices),
        ..EventFilter::default()
    };
    assert_eq!(decode_events(&msg, &wans(vec![3, 5])), reachable);
    // A LAN host confirmed on another device: dropped at decode.
    assert_eq!(decode_events(&msg, &wans(vec![5])), vec![]);
}

#[test]
fn solicit_asks_the_kernel_and_leaves_static_entries_alone() {
    let ns = lab();
    ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/neigh/wan1/retrans_time_ms", "100").unwrap();
        let mut monitor = Monitor::open().unwrap();
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let wan1 = ifindex(&snap, "wan1");
        // Nothing answers for 10.20.1.1 yet: no entry, resolved afresh, FAILED.
        nl.solicit(wan1, ip("10.20.1.1")).unwrap();
        let failed = Event::NeighbourFailed {
            ifindex: wan1,
            addr: ip("10.20.1.1"),
        };
        assert_eq!(wait_for(&mut monitor, |e| *e == failed), Some(failed));
        // The peer answers now: a failed entry is resolved afresh, then a confirmed
        // one is probed again; each time the kernel reports it REACHABLE.
        let reachable = Event::NeighbourReachable {
            ifindex: wan1,
            addr: ip("10.20.1.1"),
        };
        let peer = Netns::new();
        ns.ip(&format!("link set wan1p netns {}", peer.name()));
        peer.ip("addr add 10.20.1.1/24 dev wan1p");
        peer.ip("link set wan1p up");
        for _ in 0..2 {
            nl.solicit(wan1, ip("10.20.1.1")).unwrap();
            assert_eq!(
                wait_for(&mut monitor, |e| *e == reachable),
                Some(reachable.clone())
            );
        }
        // A static entry is someone else's: refused, and left as it was.
        ns.ip("neigh add 10.20.1.9 dev wan1 lladdr 02:00:00:00:00:09 nud permanent");
        let e = nl.solicit(wan1, ip("10.20.1.9")).unwrap_err();
        assert!(e.to_string().contains("static"), "{e}");
        let shown = ns.ip("neigh show 10.20.1.9 dev wan1");
        assert!(shown.contains("PERMANENT"), "{shown}");
    });
}

#[test]
fn solicit_asks_ndp_for_an_ipv6_gateway() {
    let ns = lab();
    let peer = Netns::new();
    ns.ip(&format!("link set wan1p netns {}", peer.name()));
    peer.ip("addr add fd00:1::1/64 dev wan1p nodad");
    peer.ip("link set wan1p up");
    ns.run(|| {
        let mut monitor = Monitor::open().unwrap();
        let mut nl = Netlink::open(own()).unwrap();
        let snap = nl.snapshot(&own(), &Reads::Everywhere).unwrap();
        let wan1 = ifindex(&snap, "wan1");
        let reachable = Event::NeighbourReachable {
            ifindex: wan1,
            addr: ip("fd00:1::1"),
        };
        // No entry: a fresh resolution (neighbour solicitation); then a confirmed entry
        // is probed again (unicast solicitation). The peer answers both.
        for _ in 0..2 {
            nl.solicit(wan1, ip("fd00:1::1")).unwrap();
            assert_eq!(
                wait_for(&mut monitor, |e| *e == reachable),
                Some(reachable.clone())
            );
        }
        // The peer stops answering solicitations: the probed entry fails.
        peer.nft(
            "table ip6 t {\n chain in {\n  type filter hook input priority 0;\n  \
             icmpv6 type nd-neighbor-solicit drop\n }\n}\n",
        );
        std::fs::write("/proc/sys/net/ipv6/neigh/wan1/retrans_time_ms", "100").unwrap();
        nl.solicit(wan1, ip("fd00:1::1")).unwrap();
        let failed = Event::NeighbourFailed {
            ifindex: wan1,
            addr: ip("fd00:1::1"),
        };
        assert_eq!(wait_for(&mut monitor, |e| *e == failed), Some(failed));
    });
}
