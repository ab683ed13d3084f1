//! After kill -9, a new uplinkd adopts what the old one left: no duplicates, no deletions,
//! long-lived connections survive.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn restart_after_kill9_adopts_without_churn() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let config = lab::config(&[1, 1, 1], lab::FAST);
    let mut d = lab.start_daemon(bin(), &config, &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    std::thread::sleep(Duration::from_secs(1));

    let conns = lab.open_long_lived(30);
    assert_eq!(conns.len(), 30);
    assert_eq!(lab.check_alive(&conns), (30, 0));
    let before = lab.uplinkd_objects();
    d.kill9();
    assert_eq!(
        lab.uplinkd_objects(),
        before,
        "kill -9 must leave the objects in place"
    );

    let mon = lab.monitor();
    let t0 = mon.mark();
    let mut d2 = lab.start_daemon(bin(), &config, &[]);
    // Long enough for startup, a reconcile and several probe rounds.
    std::thread::sleep(Duration::from_secs(8));
    assert!(d2.is_running(), "log:\n{}", d2.log());

    let after = lab.uplinkd_objects();
    assert!(!after.has_duplicates(), "duplicates:\n{after}");
    assert_eq!(
        after, before,
        "objects differ after adoption:\nbefore:\n{before}\nafter:\n{after}"
    );
    let events = mon.events_since(t0);
    let deletions: Vec<&String> = events.iter().filter(|e| e.starts_with("Deleted")).collect();
    assert!(
        deletions.is_empty(),
        "deletions during adoption: {deletions:?}\nlog:\n{}",
        d2.log()
    );
    eprintln!("events during adoption: {events:?}");

    let (alive, broken) = lab.check_alive(&conns);
    assert_eq!((alive, broken), (30, 0), "long-lived connections broke");
}
