//! Flap damping: a WAN whose carrier flaps every 2 s is held down instead of churning the
//! policy group.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::{Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn flapping_wan_is_damped() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let opts = format!(
        "{}\noption flap_damping '1'\noption flap_penalty '1000'\noption flap_suppress '2000'\noption flap_reuse '750'\noption flap_half_life '10s'\noption flap_max_hold '60s'",
        lab::FAST
    );
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], &opts), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    let mon = lab.monitor();
    let t0 = mon.mark();
    let start = Instant::now();
    let mut down = false;
    while start.elapsed() < Duration::from_secs(30) {
        if down {
            lab.restore(3);
        } else {
            lab.break_isp(3, Break::Carrier);
        }
        down = !down;
        std::thread::sleep(Duration::from_secs(2));
    }
    lab.restore(3);
    std::thread::sleep(Duration::from_millis(500));

    let events = mon.events_since(t0);
    let group_changes: Vec<&String> = events
        .iter()
        .filter(|e| {
            let e = e.strip_prefix("Deleted ").unwrap_or(e);
            e.starts_with("id 1199 ") || e.contains("table 1199")
        })
        .collect();
    eprintln!(
        "{} group/route changes in 30 s of flapping:",
        group_changes.len()
    );
    for e in &group_changes {
        eprintln!("  {e}");
    }
    assert!(d.is_running(), "log:\n{}", d.log());
    assert!(
        group_changes.len() <= 12,
        "{} changes; log:\n{}",
        group_changes.len(),
        d.log()
    );
    let log = d.log().to_lowercase();
    assert!(
        log.contains("held") || log.contains("damp"),
        "no hold in the log:\n{}",
        d.log()
    );
}
