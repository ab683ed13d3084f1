//! A WAN whose gateway does not answer must stay out: its probes may not leak out through
//! another WAN (where the broad masquerade would make them succeed).
#[path = "lab/mod.rs"]
mod lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn dead_gateway_wan_never_enters() {
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
