//! Connection pinning: flows that work keep working through weight changes, failures,
//! recoveries, a new WAN and a drain; a failed WAN's UDP flows move at once; the table
//! survives firewall rebuilds and comes back after `nft flush ruleset`.
#[path = "lab/mod.rs"]
mod lab;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lab::{wait_until, Break, Lab, LongConn};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);
/// Fast probing, damping off: the test breaks ISPs on purpose, again and again.
const OPTS: &str = "option interval '0.5'\noption timeout '1'\noption failure_interval '1'\noption recovery_interval '0.5'\noption down '3'\noption up '3'\noption flap_damping '0'";

/// Every connection on an ISP in `up` is alive (0 broken); returns the count checked.
fn assert_alive_on(lab: &Lab, conns: &[LongConn], up: &[usize], step: &str) -> usize {
    let (alive, broken) = lab.check_alive_by_isp(conns);
    let mut checked = 0;
    for k in up {
        assert_eq!(
            broken.get(k).copied().unwrap_or(0),
            0,
            "{step}: connections on ISP{k} broke: alive {alive:?} broken {broken:?}"
        );
        checked += alive.get(k).copied().unwrap_or(0);
    }
    eprintln!("{step}: alive {alive:?} broken {broken:?}");
    checked
}

/// New connections follow `want` (percent per ISP) within ±5 points; one retry batch.
fn assert_shares(lab: &Lab, want: &BTreeMap<usize, f64>, step: &str) {
    let mut last = None;
    for _ in 0..2 {
        let t = lab.connect_many(300);
        assert_eq!(t.failed, 0, "{step}: {t:?}");
        let ok = (1..=4).all(|k| (t.share(k) - want.get(&k).copied().unwrap_or(0.0)).abs() <= 5.0);
        eprintln!("{step}: new connections {t:?}");
        if ok {
            return;
        }
        last = Some(t);
    }
    panic!("{step}: shares not within 5 points of {want:?}: {last:?}");
}

fn shares(v: &[(usize, f64)]) -> BTreeMap<usize, f64> {
    v.iter().copied().collect()
}

#[test]
fn flows_survive_weights_failures_recovery_a_new_wan_and_a_drain() {
    let lab = Lab::new(4);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let conns = lab.open_long_lived(150);
    assert_eq!(conns.len(), 150);
    assert_alive_on(&lab, &conns, &[1, 2, 3], "start");

    // 1. Weights 3:1:1: nothing established moves, new flows follow.
    d.write_config(&lab::config(&[3, 1, 1], OPTS));
    d.reload();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        assert_alive_on(&lab, &conns, &[1, 2, 3], "weights 3:1:1"),
        150
    );
    assert_shares(
        &lab,
        &shares(&[(1, 60.0), (2, 20.0), (3, 20.0)]),
        "weights 3:1:1",
    );

    // 2. ISP2 blackholes: flows on ISP1 and ISP3 live on; new flows avoid ISP2.
    lab.break_isp(2, Break::Blackhole);
    lab.wait_group(&mut d, &[1, 3], Duration::from_secs(6));
    assert_alive_on(&lab, &conns, &[1, 3], "ISP2 blackholed");
    assert_shares(&lab, &shares(&[(1, 75.0), (3, 25.0)]), "ISP2 blackholed");

    // 3. ISP2 recovers: nobody moves back or breaks.
    lab.restore(2);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(10));
    assert_alive_on(&lab, &conns, &[1, 3], "ISP2 recovered");

    // 4. ISP3 loses carrier, then comes back.
    lab.break_isp(3, Break::Carrier);
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(3));
    assert_alive_on(&lab, &conns, &[1], "ISP3 carrier lost");
    lab.restore(3);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(10));

    // 5. A fourth WAN joins.
    let conns = lab.open_long_lived(150);
    d.write_config(&lab::config(&[1, 1, 1, 1], OPTS));
    d.reload();
    lab.wait_group(&mut d, &[1, 2, 3, 4], Duration::from_secs(10));
    assert_eq!(
        assert_alive_on(&lab, &conns, &[1, 2, 3], "WAN4 joined"),
        150
    );
    assert_shares(
        &lab,
        &shares(&[(1, 25.0), (2, 25.0), (3, 25.0), (4, 25.0)]),
        "WAN4 joined",
    );

    // 6. Drain WAN2: it keeps every existing connection and gets no new one.
    let on2 = conns.iter().filter(|c| c.isp == 2).count();
    assert!(on2 > 10, "{on2} connections on ISP2");
    let drained = lab::config_with(&[1, 1, 1, 1], OPTS, &["", "option enabled '0'", "", ""], "");
    d.write_config(&drained);
    d.reload();
    lab.wait_group(&mut d, &[1, 3, 4], Duration::from_secs(5));
    assert_eq!(
        assert_alive_on(&lab, &conns, &[1, 2, 3, 4], "WAN2 drained"),
        150
    );
    let t = lab.connect_many(200);
    assert_eq!(
        (t.failed, t.count(2)),
        (0, 0),
        "drained WAN got new flows: {t:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        assert_alive_on(&lab, &conns, &[1, 2, 3, 4], "WAN2 drained, later"),
        150
    );

    // Router traffic follows the default policy too, and avoids a dead WAN.
    lab.break_isp(1, Break::Blackhole);
    lab.wait_group(&mut d, &[3, 4], Duration::from_secs(6));
    for _ in 0..20 {
        let isp = lab.router_connect().expect("router connection");
        assert!(isp == 3 || isp == 4, "router traffic used ISP{isp}");
    }

    assert!(d.stop().success(), "log:\n{}", d.log());
    let tables = lab.exec("rtr", &["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("uplinkd"),
        "nft table left behind"
    );
    assert!(lab.uplinkd_objects().is_empty());
}

#[test]
fn a_failed_wans_udp_flows_move_within_an_interval_others_stay() {
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    // One fixed 5-tuple per ISP.
    let mut flows: BTreeMap<usize, lab::UdpFlow> = BTreeMap::new();
    for _ in 0..60 {
        let f = lab.udp_flow().expect("udp socket");
        if let Ok(k) = f.ask() {
            flows.entry(k).or_insert(f);
        }
        if flows.len() == 3 {
            break;
        }
    }
    assert_eq!(flows.len(), 3, "could not place a flow on every ISP");
    // Pinned: asking again takes the same ISP.
    for (k, f) in &flows {
        for _ in 0..5 {
            assert_eq!(f.ask().expect("answer"), *k);
        }
    }
    lab.break_isp(2, Break::Blackhole);
    lab.wait_group(&mut d, &[1, 3], Duration::from_secs(6));
    let out_at = Instant::now();
    let moved = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || matches!(flows[&2].ask(), Ok(k) if k != 2),
    );
    let after = out_at.elapsed();
    eprintln!("UDP flow of ISP2 answered through another ISP {after:?} after the failover");
    assert!(moved.is_ok(), "the UDP flow never moved; log:\n{}", d.log());
    assert!(after <= Duration::from_millis(1500), "took {after:?}");
    assert_eq!(flows[&1].ask().expect("ISP1 flow"), 1);
    assert_eq!(flows[&3].ask().expect("ISP3 flow"), 3);
    assert!(d.log().contains("deleted the connections pinned to it"));
}

#[test]
fn firewall_rebuilds_and_ruleset_flushes_do_not_lose_pinning() {
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let table = |lab: &Lab| {
        let out = lab.exec("rtr", &["nft", "list", "tables"]);
        String::from_utf8_lossy(&out.stdout).contains("inet uplinkd")
    };
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || table(&lab)
    )
    .is_ok());
    let conns = lab.open_long_lived(60);

    // A firewall rebuild (what `fw4 reload` does to its own table).
    lab.exec("rtr", &["nft", "delete", "table", "inet", "labfw"]);
    lab.install_masquerade();
    assert_eq!(
        assert_alive_on(&lab, &conns, &[1, 2, 3], "firewall rebuilt"),
        60
    );
    assert!(table(&lab));

    // Everything flushed: uplinkd's table is back within seconds.
    let t0 = Instant::now();
    lab.exec("rtr", &["nft", "flush", "ruleset"]);
    let back = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        table(&lab)
    });
    eprintln!("table restored after {:?}", t0.elapsed());
    assert!(back.is_ok(), "log:\n{}", d.log());
    lab.install_masquerade();
    let t = lab.connect_many(60);
    assert_eq!(t.failed, 0, "{t:?}");
}

/// With a software flowtable (fw4's `flow_offloading`), offloaded flows stay on their
/// pinned WAN and a failed WAN's flows still move once their conntrack entries go.
#[test]
fn software_flow_offloading_keeps_pinning_and_failover() {
    let lab = Lab::new(3);
    // Kernels built without CONFIG_NF_FLOW_TABLE cannot run this test: say so loudly.
    let probe = lab.exec(
        "rtr",
        &["nft", "add table inet ftprobe; add flowtable inet ftprobe ft { hook ingress priority 0; devices = { lan }; }"],
    );
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: this kernel has no flowtable support (CONFIG_NF_FLOW_TABLE): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    lab.exec("rtr", &["nft", "delete", "table", "inet", "ftprobe"]);
    lab.nft(
        "rtr",
        "table inet labft {\n\
         \tflowtable ft { hook ingress priority 0; devices = { lan, wan1, wan2, wan3 }; }\n\
         \tchain forwarding { type filter hook forward priority 0; policy accept; meta l4proto { tcp, udp } ct state established flow add @ft; }\n\
         }\n",
    );
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let conns = lab.open_long_lived(60);
    assert_eq!(assert_alive_on(&lab, &conns, &[1, 2, 3], "offloaded"), 60);
    let offloaded = lab.exec("rtr", &["conntrack", "-L", "-p", "tcp"]);
    let text = String::from_utf8_lossy(&offloaded.stdout);
    assert!(
        text.contains("OFFLOAD"),
        "flows were not offloaded:\n{text}"
    );
    // A UDP flow on ISP2, exchanging often enough to be offloaded.
    let udp = (0..60)
        .filter_map(|_| lab.udp_flow().ok())
        .find(|f| matches!(f.ask(), Ok(2)))
        .expect("a UDP flow on ISP2");
    for _ in 0..5 {
        assert_eq!(udp.ask().expect("answer"), 2);
    }
    lab.break_isp(2, Break::Blackhole);
    lab.wait_group(&mut d, &[1, 3], Duration::from_secs(6));
    assert_alive_on(&lab, &conns, &[1, 3], "offloaded, ISP2 blackholed");
    let moved = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || matches!(udp.ask(), Ok(k) if k != 2),
    );
    assert!(
        moved.is_ok(),
        "offloaded UDP flow stuck on ISP2; log:\n{}",
        d.log()
    );
    let t = lab.connect_many(60);
    assert_eq!((t.failed, t.count(2)), (0, 0), "{t:?}");
}
