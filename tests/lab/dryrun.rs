//! `--dry-run`: the daemon reads the real kernel and prints the `ip` equivalent of every
//! change, but writes nothing.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

#[test]
fn dry_run_prints_ip_commands_and_writes_nothing() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let before = lab.foreign_objects();
    let mut d = lab.start_daemon(bin(), &lab::config(&[3, 1, 1], lab::FAST), &["--dry-run"]);
    let printed = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        d.log().contains("ip -4 rule add priority 4900 lookup 1199")
    });
    assert!(printed.is_ok(), "log:\n{}", d.log());
    let log = d.log();
    for line in [
        "ip nexthop add id 1100 via 10.20.1.1 dev wan1 proto 212",
        "ip nexthop add id 1199 group 1100,3/1101/1102 proto 212",
        "ip route add default nhid 1199 table 1199 proto 212",
        "ip route add unreachable default table 1101 metric 4294967295 proto 212",
        "ip -4 rule add priority 4000 lookup main suppress_prefixlength 0 proto 212",
        "ip -4 rule add priority 4201 oif wan2 lookup 1101 proto 212",
        // The nft table and the hash policy are printed too, not written.
        "add table inet uplinkd",
        "sysctl -w net.ipv4.fib_multipath_hash_policy=1",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(
        lab.uplinkd_objects().is_empty(),
        "dry run wrote to the kernel"
    );
    assert_eq!(lab.foreign_objects(), before);
    // A failure is printed as a group change, and still nothing is written.
    lab.break_isp(2, lab::Break::Carrier);
    let printed = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        d.log()
            .contains("ip nexthop replace id 1199 group 1100,3/1102 proto 212")
    });
    assert!(printed.is_ok(), "log:\n{}", d.log());
    // And wan2's pinned connections would be deleted.
    let printed = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        d.log().contains("conntrack -D -f ipv4 --mark ")
    });
    assert!(printed.is_ok(), "log:\n{}", d.log());
    assert!(
        lab.uplinkd_objects().is_empty(),
        "dry run wrote to the kernel"
    );
    assert_eq!(
        lab.read_sysctl("rtr", "net.ipv4.fib_multipath_hash_policy"),
        "0",
        "dry run changed a sysctl"
    );
    assert!(d.stop().success(), "log:\n{}", d.log());
}
