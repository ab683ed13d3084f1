//! All ISPs dead with `last_resort unreachable`: LAN clients fail fast, then recover.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn all_down_is_unreachable_then_balanced_again() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    for k in 1..=3 {
        lab.break_isp(k, Break::Blackhole);
    }
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        lab.default_route_type(1199).as_deref() == Some("unreachable")
    });
    assert!(
        r.is_ok(),
        "table 1199: {:?}; log:\n{}",
        lab.routes("1199"),
        d.log()
    );

    match lab.connect_once(Duration::from_secs(3)) {
        Ok(k) => panic!("connected through ISP{k} while all are blackholed"),
        Err((e, took)) => {
            eprintln!("LAN connect with everything down: {e} after {took:?}");
            assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
            assert!(took < Duration::from_secs(1), "{e} after {took:?}");
        }
    }

    for k in 1..=3 {
        lab.restore(k);
    }
    let r = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        lab.default_route_type(1199).as_deref() == Some("unicast")
            && !lab.group_members().is_empty()
    });
    assert!(
        r.is_ok(),
        "table 1199: {:?}; log:\n{}",
        lab.routes("1199"),
        d.log()
    );
    let t = lab.connect_many(20);
    assert_eq!(t.failed, 0, "{t:?}");
}
