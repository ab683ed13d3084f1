//! A WAN whose gateway does not answer must stay out: its probes may not leak out through
//! another WAN (where the broad masquerade would make them succeed).
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn dead_gateway_wan_never_enters() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let per_wan = ["", "option gateway '10.20.2.99'", ""];
    let config = lab::config_with(&[1, 1, 1], lab::FAST, &per_wan, "");
    let mut d = lab.start_daemon(bin(), &config, &[]);
    lab.wait_group(&mut d, &[1, 3], STARTUP);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(8) {
        assert!(
            !lab.in_group(2),
            "WAN2 entered the group; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.is_running(), "log:\n{}", d.log());
}

/// Take WAN2's gateway away (its default route in main disappears, as when DHCP loses
/// its lease): WAN2's table keeps only the terminal `unreachable`, its probes fail, and
/// nothing sourced from WAN2's address ever leaves through another WAN, where the broad
/// masquerade would have NATed it into a success.
#[test]
fn removed_gateway_fails_probes_without_leaking() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    // Count, before NAT, every packet from WAN2's address leaving by another device.
    lab.nft(
        "rtr",
        "table inet leakwatch {\n\
         \tcounter leaked { }\n\
         \tchain post {\n\
         \t\ttype filter hook postrouting priority -300; policy accept;\n\
         \t\tip saddr 10.20.2.2 oifname { \"wan1\", \"wan3\" } counter name \"leaked\"\n\
         \t}\n\
         }\n",
    );
    // The watcher sees a leak when there is one: without uplinkd, traffic sourced from
    // WAN2's address follows main's best default route, out of WAN1.
    lab.exec(
        "rtr",
        &[
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "10.20.2.2",
            "203.0.113.1",
        ],
    );
    let counters = lab.exec(
        "rtr",
        &["nft", "reset", "counter", "inet", "leakwatch", "leaked"],
    );
    let text = String::from_utf8_lossy(&counters.stdout);
    assert!(
        !text.contains("packets 0 "),
        "the leak watcher is blind:\n{text}"
    );

    let config = lab::config(&[1, 1, 1], lab::FAST);
    let mut d = lab.start_daemon(bin(), &config, &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    let t0 = Instant::now();
    lab.ip(
        "rtr",
        &["route", "del", "default", "via", "10.20.2.1", "dev", "wan2"],
    );
    lab.wait_group(&mut d, &[1, 3], Duration::from_secs(5));
    eprintln!("gateway removed -> WAN2 out after {:?}", t0.elapsed());
    assert_eq!(
        lab.table_gateway(lab::wan_id(2)),
        None,
        "WAN2 table still routes"
    );
    assert_eq!(
        lab.default_route_type(lab::wan_id(2)).as_deref(),
        Some("unreachable")
    );

    // The kernel side of the guarantee, independent of the daemon: a socket bound to
    // WAN2 gets no answer from the internet.
    let ping = lab.exec(
        "rtr",
        &[
            "ping",
            "-n",
            "-c",
            "2",
            "-W",
            "1",
            "-I",
            "wan2",
            "203.0.113.1",
        ],
    );
    assert!(!ping.status.success(), "ping through WAN2 succeeded");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!lab.in_group(2), "log:\n{}", d.log());
    let counters = lab.exec(
        "rtr",
        &["nft", "list", "counter", "inet", "leakwatch", "leaked"],
    );
    let text = String::from_utf8_lossy(&counters.stdout);
    assert!(
        text.contains("packets 0 "),
        "WAN2 traffic leaked through another WAN:\n{text}"
    );

    // Gateway back: WAN2 rejoins.
    lab.ip(
        "rtr",
        &[
            "route",
            "add",
            "default",
            "via",
            "10.20.2.1",
            "dev",
            "wan2",
            "proto",
            "static",
            "metric",
            "20",
        ],
    );
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(10));
}
