//! A renumbered gateway (DHCP renewal) is followed within a second.
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
