//! Moderate random loss on one ISP with three targets and reliability 1 is not an outage.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

const OPTS: &str = "option interval '1'\noption timeout '1'\noption failure_interval '1'\noption recovery_interval '1'\noption down '3'\noption up '3'\noption reliability '1'\noption count '1'";

#[test]
fn fifteen_percent_loss_never_removes_the_wan() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    lab.break_isp(1, Break::Loss(15));
    let t0 = Instant::now();
    let mut polls = 0;
    while t0.elapsed() < Duration::from_secs(30) {
        polls += 1;
        assert!(
            lab.in_group(1),
            "WAN1 left the group after {:?} at 15% loss; group {:?}; log:\n{}",
            t0.elapsed(),
            lab.nexthop_group(1199),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "WAN1 stayed in for 30 s ({polls} polls, {} packets dropped)",
        lab.dropped(1)
    );
    assert!(lab.dropped(1) > 0, "the loss rule dropped nothing");
}
