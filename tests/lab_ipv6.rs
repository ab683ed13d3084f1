//! Dual stack: IPv6 failover and balancing across two ISPs with native prefixes.
//!
//! ISP1 is one `family any` section (IPv4 and IPv6 share one health: both targets must
//! answer); ISP2 is mwan3-style, `wan2` for IPv4 and `wan2_6` for IPv6 on the same
//! device, each with its own health. The LAN's ULA addresses are NAT66ed by the router
//! and balanced by uplinkd; its addresses in an ISP's delegated prefix always leave
//! through that ISP.
#[path = "lab/mod.rs"]
mod lab;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use lab::{server6, wait_until, Break, Lab, LongConn, NH6_OFFSET, TABLE_FIRST};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);
const DETECT: Duration = Duration::from_secs(10);
const OPTS: &str = "\toption interval '0.5'\n\toption timeout '1'\n\toption failure_interval '0.5'\n\toption recovery_interval '0.5'\n\toption down '3'\n\toption up '3'\n\toption flap_damping '0'\n";

fn config() -> String {
    let mut s = String::from("config globals 'globals'\n\toption default_policy 'balanced'\n");
    s.push_str(&format!(
        "\nconfig interface 'wan1'\n\toption device 'wan1'\n\toption family 'any'\n\
         \tlist track_ip '203.0.113.1'\n\tlist track_ip '2001:db8:ffff::1'\n\toption reliability '2'\n{OPTS}"
    ));
    s.push_str(&format!(
        "\nconfig interface 'wan2'\n\toption device 'wan2'\n\tlist track_ip '203.0.113.2'\n{OPTS}"
    ));
    s.push_str(&format!(
        "\nconfig interface 'wan2_6'\n\toption device 'wan2'\n\toption family 'ipv6'\n\
         \tlist track_ip '2001:db8:ffff::2'\n{OPTS}"
    ));
    for wan in ["wan1", "wan2", "wan2_6"] {
        s.push_str(&format!(
            "\nconfig member '{wan}_m'\n\toption interface '{wan}'\n\toption metric '1'\n\toption weight '1'\n"
        ));
    }
    s.push_str(
        "\nconfig policy 'balanced'\n\tlist use_member 'wan1_m'\n\tlist use_member 'wan2_m'\n\
         \tlist use_member 'wan2_6_m'\n\toption last_resort 'unreachable'\n",
    );
    s
}

/// IPv6 nexthop ids of WAN slots.
fn v6_ids(slots: &[u32]) -> Vec<u32> {
    slots.iter().map(|s| TABLE_FIRST + NH6_OFFSET + s).collect()
}

fn wait_group6(lab: &Lab, slots: &[u32], timeout: Duration, step: &str) -> Duration {
    let want = v6_ids(slots);
    wait_until(timeout, Duration::from_millis(20), || {
        lab.group6_members() == want
    })
    .unwrap_or_else(|t| {
        panic!(
            "{step}: IPv6 group {:?} after {t:?}, want {want:?}",
            lab.group6_members()
        )
    })
}

fn all_on(lab: &Lab, server: IpAddr, n: usize, isp: usize, step: &str) {
    let t = lab.connect_many_to(server, n);
    assert_eq!(t.failed, 0, "{step}: {t:?}");
    assert_eq!(t.share(isp), 100.0, "{step}: {t:?}");
}

fn assert_alive(lab: &Lab, conns: &[LongConn], up: usize, step: &str) {
    let (alive, broken) = lab.check_alive_by_isp(conns);
    eprintln!("{step}: alive {alive:?} broken {broken:?}");
    assert_eq!(
        broken.get(&up).copied().unwrap_or(0),
        0,
        "{step}: {broken:?}"
    );
    assert!(
        alive.get(&up).copied().unwrap_or(0) > 0,
        "{step}: {alive:?}"
    );
}

#[test]
fn ipv6_failover_and_balancing_across_two_isps_with_native_prefixes() {
    let lab = Lab::new_dual_stack(2);
    let mut d = lab.start_daemon(bin(), &config(), &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    wait_group6(&lab, &[0, 2], STARTUP, "start");
    // Steady state: what uplinkd wrote is what the kernel reports back (IPv6 metrics,
    // link-local gateways, source routes), so nothing is rewritten.
    let mon = lab.monitor();
    let quiet = mon.mark();
    d.reload();
    std::thread::sleep(Duration::from_secs(2));
    let churn = mon.events_since(quiet);
    assert!(
        churn.is_empty(),
        "kernel writes in steady state: {churn:#?}"
    );

    // What uplinkd found: link-local gateways, the delegated prefix from netifd-style
    // source routes, per-family shares.
    let s = lab.status(bin());
    let wan1 = &s["interfaces"]["wan1"];
    assert_eq!(wan1["family"], "any", "{wan1}");
    assert_eq!(wan1["gateway"], "10.20.1.1");
    assert_eq!(wan1["gateway6"], "fe80::1");
    assert_eq!(wan1["address6"], "2001:db8:20:1::2");
    assert_eq!(wan1["prefixes6"], serde_json::json!(["2001:db8:d1::/48"]));
    let wan2_6 = &s["interfaces"]["wan2_6"];
    assert_eq!(wan2_6["gateway"], "fe80::1", "{wan2_6}");
    assert_eq!(wan2_6["share"]["balanced"], 50.0, "{wan2_6}");
    assert_eq!(
        s["policies"]["balanced"]["members6"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Balancing: ULA sources (NAT66) spread over both ISPs, by weight.
    let ula = IpAddr::V6(server6(None));
    let t = lab.connect_many_to(ula, 300);
    eprintln!("IPv6 new connections 1:1: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    for k in [1, 2] {
        assert!((t.share(k) - 50.0).abs() <= 10.0, "ISP{k}: {t:?}");
    }
    // IPv4 still balanced beside it.
    let t4 = lab.connect_many(100);
    assert_eq!(t4.failed, 0, "{t4:?}");
    assert!(t4.share(1) > 0.0 && t4.share(2) > 0.0, "{t4:?}");
    // Native prefixes: always through their own ISP, whatever the weights say.
    for k in [1, 2] {
        all_on(
            &lab,
            IpAddr::V6(server6(Some(k))),
            20,
            k,
            "delegated prefix",
        );
    }
    assert!(lab.router_connect_to(ula).is_ok(), "router's own IPv6");

    // Flows that must survive ISP1's failure, and a UDP flow pinned to ISP1.
    let conns = lab.open_long_lived_to(ula, 40);
    let d2 = lab.open_long_lived_to(IpAddr::V6(server6(Some(2))), 10);
    assert_eq!((conns.len(), d2.len()), (40, 10));
    let flow = (0..40)
        .filter_map(|_| {
            let f = lab.udp_flow_to(ula).ok()?;
            (f.ask().ok()? == 1).then_some(f)
        })
        .next()
        .expect("a UDP flow on ISP1");

    // 1. ISP1 blackholes (both families): out of both groups, flows on ISP2 untouched.
    let t0 = Instant::now();
    lab.break_isp(1, Break::Blackhole);
    let detected = wait_group6(&lab, &[2], DETECT, "ISP1 blackhole");
    lab.wait_group(&mut d, &[2], DETECT);
    eprintln!("ISP1 blackhole: IPv6 group without it after {detected:?}");
    let moved = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        flow.ask().ok() == Some(2)
    })
    .expect("UDP flow moved to ISP2");
    eprintln!(
        "UDP flow answered through ISP2 {:?} after the blackhole, {:?} after detection",
        t0.elapsed(),
        moved
    );
    assert_alive(&lab, &conns, 2, "ISP1 blackhole, ULA");
    assert_alive(&lab, &d2, 2, "ISP1 blackhole, ISP2 prefix");
    all_on(&lab, ula, 50, 2, "after ISP1 blackhole");
    assert_eq!(
        lab.router_connect_to(ula).ok(),
        Some(2),
        "router fails over"
    );

    // 2. ISP1 back: balanced again.
    lab.restore(1);
    wait_group6(&lab, &[0, 2], DETECT, "ISP1 restored");
    let t = lab.connect_many_to(ula, 100);
    assert_eq!(t.failed, 0, "{t:?}");
    assert!(t.share(1) > 0.0 && t.share(2) > 0.0, "{t:?}");
    assert_alive(&lab, &d2, 2, "ISP1 restored");

    // 3. ISP2 loses IPv6 only: wan2_6 goes, wan2 (IPv4) stays.
    lab.nft(
        "isp2",
        "add rule inet lab transit meta nfproto ipv6 counter drop\n",
    );
    wait_group6(&lab, &[0], DETECT, "ISP2 IPv6 outage");
    assert_eq!(lab.group_members(), vec![TABLE_FIRST, TABLE_FIRST + 1]);
    all_on(&lab, ula, 30, 1, "ISP2 IPv6 outage");
    let t4 = lab.connect_many(100);
    assert!(
        t4.share(1) > 0.0 && t4.share(2) > 0.0,
        "IPv4 unaffected: {t4:?}"
    );
    lab.restore(2);
    wait_group6(&lab, &[0, 2], DETECT, "ISP2 IPv6 back");

    // 4. A stop (SIGINT): nothing of ours is left, in either family.
    assert!(d.stop().success());
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
    let tables = lab.exec("rtr", &["nft", "list", "tables"]);
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("uplinkd"));
}
