//! Carrier loss removes a WAN at once; carrier back brings it in after `up` good rounds.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

const OPTS: &str = "option interval '1'\noption timeout '1'\noption failure_interval '1'\noption recovery_interval '1'\noption down '3'\noption up '3'\noption reliability '1'";

#[test]
fn carrier_loss_and_return() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    let t0 = Instant::now();
    lab.break_isp(3, Break::Carrier);
    let r = wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
        lab.group_members() == vec![1100, 1101]
    });
    eprintln!("carrier loss on ISP3 -> removed after {:?}", t0.elapsed());
    assert!(
        r.is_ok(),
        "group {:?}; log:\n{}",
        lab.nexthop_group(1199),
        d.log()
    );
    // The daemon keeps a working group for the others (the kernel flushed nexthop 1102).
    assert!(lab.nexthop_group(1102).is_none());

    let t1 = Instant::now();
    lab.restore(3);
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        lab.in_group(3)
    });
    eprintln!("carrier back on ISP3 -> rejoined after {:?}", t1.elapsed());
    assert!(
        r.is_ok(),
        "ISP3 not back; group {:?}; log:\n{}",
        lab.nexthop_group(1199),
        d.log()
    );
    assert_eq!(lab.group_members(), vec![1100, 1101, 1102]);
}
