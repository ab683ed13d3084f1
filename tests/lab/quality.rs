//! check_quality: heavy loss on a reachable WAN degrades it out of the group.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

const OPTS: &str = "option interval '0.5'\noption timeout '1'\noption failure_interval '1'\noption recovery_interval '1'\noption down '3'\noption up '3'\noption reliability '1'\noption count '3'\noption check_quality '1'\noption failure_latency '1000'\noption recovery_latency '500'\noption failure_loss '20'\noption recovery_loss '5'";

#[test]
fn heavy_loss_degrades_and_recovers() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], OPTS), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    let t0 = Instant::now();
    lab.break_isp(1, Break::Loss(50));
    let r = wait_until(Duration::from_secs(45), Duration::from_millis(100), || {
        !lab.in_group(1)
    });
    eprintln!("50% loss on ISP1 -> out after {:?}", t0.elapsed());
    assert!(r.is_ok(), "WAN1 never degraded; log:\n{}", d.log());
    assert_eq!(lab.group_members(), vec![1101, 1102]);
    assert!(
        d.log().to_lowercase().contains("degraded"),
        "log:\n{}",
        d.log()
    );

    let t1 = Instant::now();
    lab.restore(1);
    let r = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        lab.in_group(1)
    });
    eprintln!("loss gone -> WAN1 back after {:?}", t1.elapsed());
    assert!(r.is_ok(), "WAN1 never came back; log:\n{}", d.log());
}
