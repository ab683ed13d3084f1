//! An ISP whose router rejects what it cannot deliver (ICMP port-unreachable or
//! host-unreachable from the router itself) is down for TCP- and ping-tracked WANs
//! alike: an ICMP error from a hop on the way is not an answer from the target.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);
const FAILOVER: Duration = Duration::from_secs(20);

fn state(lab: &Lab, wan: &str) -> String {
    lab.status(bin())["interfaces"][wan]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn icmp_rejects_from_the_isp_take_tcp_and_ping_wans_down() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    // WAN1 probes TCP port 80 of the targets, where nothing listens: their resets are
    // the answer. WAN2 pings.
    let tcp = "option track_method 'tcp'\noption track_port '80'";
    let cfg = lab::config_with(&[1, 1], lab::FAST, &[tcp, ""], "");
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);

    for how in ["port-unreachable", "host-unreachable"] {
        for k in 1..=2 {
            lab.nft(
                &format!("isp{k}"),
                &format!("add rule inet lab transit reject with icmp type {how}\n"),
            );
        }
        let down = wait_until(FAILOVER, Duration::from_millis(200), || {
            state(&lab, "wan1") == "down" && state(&lab, "wan2") == "down"
        });
        assert!(
            down.is_ok(),
            "ISPs rejecting with {how}: wan1 {}, wan2 {}; log:\n{}",
            state(&lab, "wan1"),
            state(&lab, "wan2"),
            d.log()
        );
        for k in 1..=2 {
            lab.restore(k);
        }
        lab.wait_group(&mut d, &[1, 2], FAILOVER);
    }
}
