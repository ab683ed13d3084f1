//! Rules choose policies (first match wins), sticky rules keep a source on one WAN, and
//! inbound connections (to the router, or port-forwarded to the LAN) answer through the
//! WAN they arrived on.
#[path = "lab/mod.rs"]
mod lab;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

/// Three WANs balanced 1:1:1, plus one single-member policy per WAN (`only1`..`only3`),
/// and `rules` appended.
fn config(rules: &str) -> String {
    let mut s = lab::config(&[1, 1, 1], lab::FAST);
    for k in 1..=3 {
        s.push_str(&format!(
            "\nconfig policy 'only{k}'\n\tlist use_member 'wan{k}_m1'\n"
        ));
    }
    s.push_str(rules);
    s
}

fn all_on(t: &lab::Tally, k: usize) -> bool {
    t.failed == 0 && t.count(k) == t.ok() && t.ok() > 0
}

#[test]
fn rules_pick_policies_and_reloads_break_nothing() {
    let lab = Lab::new(3);
    let port_rule = "\nconfig rule 'web'\n\toption proto 'tcp'\n\toption dest_port '8000-8100'\n\toption use_policy 'only1'\n";
    let mut d = lab.start_daemon(bin(), &config(port_rule), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let t = lab.connect_many(40);
    assert!(all_on(&t, 1), "tcp 8000-8100 -> only1: {t:?}");
    // UDP is not matched by the rule: balanced.
    let mut udp = std::collections::BTreeSet::new();
    for _ in 0..30 {
        udp.extend(lab.udp_once().ok());
    }
    assert!(udp.len() > 1, "udp should be balanced: {udp:?}");
    let pinned = lab.open_long_lived(20);

    // A source network rule instead: the open connections live on.
    let src_rule =
        "\nconfig rule 'lan'\n\toption src_ip '192.168.77.0/24'\n\toption use_policy 'only2'\n";
    d.write_config(&config(src_rule));
    d.reload();
    let moved = wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        all_on(&lab.connect_many(10), 2)
    });
    assert!(moved.is_ok(), "src_ip rule not applied; log:\n{}", d.log());
    assert_eq!(
        lab.check_alive(&pinned),
        (20, 0),
        "reload broke connections"
    );

    // A destination set rule (what dnsmasq's nftset= fills): empty set, no match.
    let set_rule =
        "\nconfig rule 'streaming'\n\toption ipset 'streaming'\n\toption use_policy 'only3'\n";
    d.write_config(&config(set_rule));
    d.reload();
    let loaded = wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        let out = lab.exec(
            "rtr",
            &["nft", "list", "set", "inet", "uplinkd", "streaming"],
        );
        out.status.success()
    });
    assert!(loaded.is_ok(), "set not declared; log:\n{}", d.log());
    let t = lab.connect_many(30);
    assert!(t.count(1) + t.count(2) > 0, "{t:?}");
    lab.exec(
        "rtr",
        &[
            "nft",
            "add",
            "element",
            "inet",
            "uplinkd",
            "streaming",
            "{ 203.0.113.10 }",
        ],
    );
    assert!(all_on(&lab.connect_many(30), 3), "set rule -> only3");
    assert_eq!(lab.check_alive(&pinned), (20, 0));
    assert!(d.stop().success());
}

#[test]
fn sticky_rule_keeps_a_source_on_one_wan_until_the_timeout() {
    let lab = Lab::new(3);
    let rule = "\nconfig rule 'sticky'\n\toption proto 'tcp'\n\toption sticky '1'\n\toption timeout '2'\n\toption use_policy 'balanced'\n";
    let mut d = lab.start_daemon(bin(), &config(rule), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    // The first connection decides (simultaneous first connections may race).
    assert_eq!(lab.connect_many(1).failed, 0);
    let t = lab.connect_many(50);
    let first = (1..=3).find(|&k| t.count(k) > 0).expect("some ISP");
    assert!(all_on(&t, first), "50 connections from one host: {t:?}");
    // After the timeout the host may move: within a few rounds it lands elsewhere.
    let mut seen = std::collections::BTreeSet::from([first]);
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(2300));
        assert_eq!(lab.connect_many(1).failed, 0);
        let t = lab.connect_many(10);
        let k = (1..=3).find(|&k| t.count(k) > 0).expect("some ISP");
        assert!(all_on(&t, k), "still one ISP per period: {t:?}");
        seen.insert(k);
        if seen.len() > 1 {
            break;
        }
    }
    assert!(seen.len() > 1, "never moved after the timeout: {seen:?}");
}

#[test]
fn inbound_connections_answer_through_the_wan_they_came_in_on() {
    let lab = Lab::new(2);
    // Failover: WAN1 preferred. Inbound traffic arrives on WAN2 all the same.
    let cfg = lab::config(&[1, 1], lab::FAST).replace(
        "config member 'wan2_m1'\n\toption interface 'wan2'\n\toption metric '1'",
        "config member 'wan2_m1'\n\toption interface 'wan2'\n\toption metric '2'",
    );
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1], STARTUP);
    // ISP2 forwards its public port 9001 to the router, and the router forwards it to
    // the LAN client (a port forward, as fw4 would set it up).
    lab.nft(
        "isp2",
        "table ip portin {\n\
         \tchain pre { type nat hook prerouting priority -100; ip daddr 100.64.2.2 tcp dport 9001 dnat to 10.20.2.2; }\n\
         }\n",
    );
    lab.nft(
        "rtr",
        "table ip portfwd {\n\
         \tchain pre { type nat hook prerouting priority -100; iifname \"wan2\" tcp dport 9001 dnat to 192.168.77.2; }\n\
         }\n",
    );
    let listener = lab::in_netns(&lab.ns("lan"), || TcpListener::bind("0.0.0.0:9001"))
        .expect("netns")
        .expect("listen");
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(5) {
            if let Ok(mut s) = stream {
                let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                let _ = writeln!(s, "hello {peer}");
            }
        }
    });
    for _ in 0..5 {
        let line = lab::in_netns(&lab.ns("inet"), || -> std::io::Result<String> {
            let s = TcpStream::connect_timeout(
                &"100.64.2.2:9001".parse().expect("addr"),
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            Ok(line)
        })
        .expect("netns");
        let line = line
            .unwrap_or_else(|e| panic!("port forward through WAN2 failed: {e}; log:\n{}", d.log()));
        assert!(line.starts_with("hello "), "{line:?}");
    }
    let _ = server.join();
}
