//! Weights 3:1:1 share new connections about 60/20/20.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn weights_split_new_connections() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[3, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let group = lab.nexthop_group(1199).unwrap_or_default();
    let w: Vec<u16> = group.iter().map(|&(_, w)| w).collect();
    assert!(
        w.len() == 3 && w[0] == 3 * w[1] && w[1] == w[2],
        "weights {group:?}"
    );
    assert_eq!(
        lab.read_sysctl("rtr", "net.ipv4.fib_multipath_hash_policy"),
        "1"
    );

    // 300 connections: a binomial share has a standard deviation of ~2.8 points, so one
    // second, independent batch is allowed before calling the split wrong.
    let within = |t: &lab::Tally| {
        (t.share(1) - 60.0).abs() <= 5.0
            && (t.share(2) - 20.0).abs() <= 5.0
            && (t.share(3) - 20.0).abs() <= 5.0
    };
    let mut tallies = Vec::new();
    for _ in 0..2 {
        let t = lab.connect_many(300);
        eprintln!(
            "300 connections: {t:?} shares {:.1}/{:.1}/{:.1}",
            t.share(1),
            t.share(2),
            t.share(3)
        );
        assert_eq!(t.failed, 0, "{t:?}");
        let ok = within(&t);
        tallies.push(t);
        if ok {
            return;
        }
    }
    panic!("shares not within 5 points of 60/20/20: {tallies:?}");
}
