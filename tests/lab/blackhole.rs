//! An upstream blackhole behind a live gateway is noticed by probes, within the bound
//! timeout + (down - 1) x failure_interval + 1 s.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn blackholed_isp_leaves_the_group_in_time() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    // interval 0.5, timeout 1, failure_interval 1, down 3 -> 1 + 2 x 1 + 1 = 4 s.
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    let t0 = Instant::now();
    lab.break_isp(2, Break::Blackhole);
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        !lab.in_group(2)
    });
    let took = t0.elapsed();
    eprintln!("blackhole of ISP2 -> out of the group after {took:?}");
    assert!(
        r.is_ok(),
        "ISP2 still in the group after {took:?}; log:\n{}",
        d.log()
    );
    assert!(took <= Duration::from_secs(4), "took {took:?} > 4 s");
    assert_eq!(lab.group_members(), vec![1100, 1102]);

    let t = lab.connect_many(50);
    eprintln!("after: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    assert_eq!(t.count(2), 0, "{t:?}");
}
