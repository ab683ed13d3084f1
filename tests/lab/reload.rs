//! SIGHUP is a diff: the same file writes nothing, one changed weight rewrites only the
//! policy group.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn reload_changes_only_what_changed() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    std::thread::sleep(Duration::from_secs(2));

    let mon = lab.monitor();
    let t0 = mon.mark();
    d.reload();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.is_running(), "log:\n{}", d.log());
    let events = mon.events_since(t0);
    assert!(
        events.is_empty(),
        "same config, yet kernel writes: {events:?}"
    );

    d.write_config(&lab::config(&[2, 1, 1], lab::FAST));
    let t1 = mon.mark();
    d.reload();
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let g = lab.nexthop_group(1199).unwrap_or_default();
        g.len() == 3 && g[0].1 == 2 * g[1].1 && g[1].1 == g[2].1
    });
    assert!(
        r.is_ok(),
        "group {:?}; log:\n{}",
        lab.nexthop_group(1199),
        d.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let events = mon.events_since(t1);
    eprintln!("events after a weight change: {events:?}");
    assert!(
        events.iter().any(|e| e.starts_with("id 1199 ")),
        "{events:?}"
    );
    // With nexthop_compat_mode the kernel also reports the route that uses the group.
    let others: Vec<&String> = events
        .iter()
        .filter(|e| !(e.starts_with("id 1199 ") || e.contains("nhid 1199")))
        .collect();
    assert!(others.is_empty(), "unrelated writes: {others:?}");
}
