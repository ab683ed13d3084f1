//! A renumbered gateway (DHCP renewal) is followed within a second; a gateway that
//! stops answering ARP takes a gateway-tracked WAN out within seconds, long before the
//! kernel's own re-check of the entry takes out a ping-tracked one.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn gateway_change_is_followed() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    assert_eq!(lab.table_gateway(1101).as_deref(), Some("10.20.2.1"));

    let t0 = Instant::now();
    let gw = lab.change_gateway(2).to_string();
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        lab.table_gateway(1101).as_deref() == Some(gw.as_str())
            && lab.nexthop_gateway(1101).as_deref() == Some(gw.as_str())
    });
    let took = t0.elapsed();
    eprintln!("gateway 10.20.2.1 -> {gw}: table 1101 and nexthop 1101 follow after {took:?}");
    assert!(
        r.is_ok(),
        "table 1101 {:?}, nexthop 1101 {:?}; log:\n{}",
        lab.routes("1101"),
        lab.nexthops(),
        d.log()
    );
    assert!(took <= Duration::from_millis(1500), "took {took:?}");

    let r = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        lab.in_group(2)
    });
    assert!(r.is_ok(), "WAN2 not in the group; log:\n{}", d.log());
    let t = lab.connect_many(30);
    eprintln!("after renumbering: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    assert!(t.count(2) > 0, "nothing went through ISP2: {t:?}");
}

/// `config` text with WAN `k`'s `track_ip` lines removed (the gateway probe has none).
fn without_targets(cfg: &str, k: usize) -> String {
    let mut out = String::new();
    let mut in_wan = false;
    for line in cfg.lines() {
        if line.starts_with("config ") {
            in_wan = line == format!("config interface 'wan{k}'");
        }
        if !(in_wan && line.trim_start().starts_with("list track_ip")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A gateway that stops answering ARP requests while still forwarding: the
/// gateway-tracked WAN (defaults: interval 1 s, timeout 1 s, down 3) is out within
/// seconds; the ping-tracked one (same defaults) keeps answering its pings through the
/// cached entry and only leaves when the kernel's own re-check of the entry fails
/// (REACHABLE ages to STALE, DELAY, PROBE, FAILED: the passive signal).
#[test]
fn a_gateway_that_stops_answering_arp_is_out_before_the_probes_say_so() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let gateway = "option track_method 'gateway'";
    let cfg = without_targets(&lab::config_with(&[1, 1], "", &[gateway, ""], ""), 1);
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let status = lab.status(bin());
    let target = &status["interfaces"]["wan1"]["targets"][0];
    assert_eq!(target["method"], "gateway", "{status:#}");
    assert_eq!(target["ip"], lab::gateway(1).to_string(), "{status:#}");
    let sysctls: Vec<String> = [
        "base_reachable_time_ms",
        "delay_first_probe_time",
        "ucast_solicit",
        "retrans_time_ms",
    ]
    .iter()
    .map(|k| {
        let v = lab.read_sysctl("rtr", &format!("net.ipv4.neigh.wan2.{k}"));
        format!("{k} {v}")
    })
    .collect();

    // Both gateways stop answering the router's ARP requests (on their router-facing
    // link only: upstream ARP must go on, or the return path dies and pings with it);
    // IP traffic still flows.
    let drop_requests = "add table arp gwtest\n\
        add chain arp gwtest in { type filter hook input priority 0; }\n\
        add rule arp gwtest in iifname rtr arp operation request drop\n";
    lab.nft("isp1", drop_requests);
    lab.nft("isp2", drop_requests);
    let t0 = Instant::now();
    let mut out = [None, None];
    let r = wait_until(Duration::from_secs(120), Duration::from_millis(50), || {
        for (k, slot) in out.iter_mut().enumerate() {
            if slot.is_none() && !lab.in_group(k + 1) {
                *slot = Some(t0.elapsed());
            }
        }
        out.iter().all(Option::is_some)
    });
    let log = d.log();
    let reason = |wan: &str| {
        log.lines()
            .find(|l| l.contains(&format!("{wan} down")))
            .unwrap_or("no transition logged")
            .to_string()
    };
    eprintln!(
        "ARP requests dropped: gateway probe out after {:?} ({}); ping out after {:?} ({}); \
         router sysctls: {}",
        out[0],
        reason("wan1"),
        out[1],
        reason("wan2"),
        sysctls.join(", ")
    );
    let gateway_out = out[0].expect("the gateway-tracked WAN never left");
    assert!(
        gateway_out < Duration::from_secs(10),
        "took {gateway_out:?}; log:\n{log}"
    );
    // The ping WAN's pings never failed: it only goes when the entry does.
    assert!(r.is_ok(), "the ping WAN stayed in the group; log:\n{log}");
    assert!(reason("wan2").contains("ARP/NDP"), "{}", reason("wan2"));
    assert!(out[1] > out[0], "{out:?}");
    let status = lab.status(bin());
    assert!(
        status["interfaces"]["wan1"]["targets"][0]["lost"].as_u64() > Some(0),
        "{status:#}"
    );

    // The gateway answers again: back in the group.
    lab.nft("isp1", "delete table arp gwtest\n");
    lab.nft("isp2", "delete table arp gwtest\n");
    let r = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        lab.in_group(1)
    });
    assert!(r.is_ok(), "wan1 did not come back; log:\n{}", d.log());
}
