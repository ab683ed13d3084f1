//! `standby_interval`: a backup that no policy chooses while the primary is up is probed
//! at its slow pace (one ping per round), counted where the probes leave the router: an
//! nft counter in each ISP's namespace. When the primary fails the backup takes over as
//! soon as the primary is found down, and is probed at the normal pace again.
use crate::support as lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::Lab;
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

/// Echo requests from the router as they enter ISP `k` (ahead of any drop the lab's
/// breaks add): `(packets, bytes)`, bytes at the IP layer.
fn echo_requests(lab: &Lab, k: usize) -> (u64, u64) {
    let out = lab.exec(
        &format!("isp{k}"),
        &["nft", "-j", "list", "table", "inet", "probecount"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["rule"]["expr"].as_array().into_iter().flatten() {
            if let Some(c) = e.get("counter") {
                return (
                    c["packets"].as_u64().unwrap_or(0),
                    c["bytes"].as_u64().unwrap_or(0),
                );
            }
        }
    }
    panic!(
        "no counter in isp{k}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn probe_tx(status: &Value, wan: &str) -> u64 {
    status["interfaces"][wan]["probe_bytes"]["tx"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn standby_backup_probes_a_tenth_and_takes_over() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    for k in 1..=2 {
        lab.nft(
            &format!("isp{k}"),
            "table inet probecount {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300;\n\t\tiifname \"rtr\" icmp type echo-request counter\n\t}\n}\n",
        );
    }
    // wan1 (metric 1) carries the flows; wan2 (metric 2) is the standby backup. Both probe
    // all three targets every 0.5 s at the normal pace.
    let conf = lab::config_with(
        &[1, 1],
        lab::FAST,
        &["", "option standby_interval '5s'"],
        "",
    )
    .replace(
        "option interface 'wan2'\n\toption metric '1'",
        "option interface 'wan2'\n\toption metric '2'",
    );
    assert!(conf.contains("option metric '2'"), "{conf}");
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1], STARTUP);
    let on_standby = lab::wait_until(STARTUP, Duration::from_millis(200), || {
        lab.status(bin())["interfaces"]["wan2"]["standby"] == true
    });
    assert!(on_standby.is_ok(), "wan2 not on standby; log:\n{}", d.log());

    // 20 s of both up.
    let s0 = lab.status(bin());
    let (a0, ab0) = echo_requests(&lab, 1);
    let (b0, bb0) = echo_requests(&lab, 2);
    std::thread::sleep(Duration::from_secs(20));
    let (a1, ab1) = echo_requests(&lab, 1);
    let (b1, bb1) = echo_requests(&lab, 2);
    let s1 = lab.status(bin());
    let (active, standby) = (a1 - a0, b1 - b0);
    eprintln!(
        "20 s with both up: wan1 sent {active} echo requests ({} bytes), wan2 {standby} ({} bytes)",
        ab1 - ab0,
        bb1 - bb0
    );
    assert_eq!(s1["interfaces"]["wan2"]["standby"], true);
    assert!(active >= 20, "wan1 sent only {active}");
    assert!(
        standby * 10 <= active,
        "standby wan2 sent {standby}, active wan1 {active}; log:\n{}",
        d.log()
    );
    // The model's byte count agrees with the wire's (give or take a round at each end).
    for (wan, wire) in [("wan1", ab1 - ab0), ("wan2", bb1 - bb0)] {
        let model = probe_tx(&s1, wan) - probe_tx(&s0, wan);
        eprintln!("{wan}: model {model} bytes sent, wire {wire}");
        assert!(
            model.abs_diff(wire) <= 2 * 3 * 36,
            "{wan}: {model} vs {wire}"
        );
    }
    let monthly = |s: &Value, w: &str| s["interfaces"][w]["probe_monthly_bytes"].as_u64();
    eprintln!(
        "monthly: wan1 {:?}, wan2 {:?}",
        monthly(&s1, "wan1"),
        monthly(&s1, "wan2")
    );

    // wan1 goes dark: wan2 takes over once wan1 is found down (down 3 at failure
    // interval 1 s: about 4 s), and is probed at the normal pace again.
    let t0 = Instant::now();
    lab.break_isp(1, lab::Break::Blackhole);
    lab.wait_group(&mut d, &[2], Duration::from_secs(30));
    eprintln!(
        "wan2 carries the flows {:?} after wan1 went dark",
        t0.elapsed()
    );
    let t = lab.connect_many(10);
    assert_eq!(t.count(2), 10, "{t:?}");
    assert_eq!(lab.status(bin())["interfaces"]["wan2"]["standby"], false);
    let (b2, _) = echo_requests(&lab, 2);
    std::thread::sleep(Duration::from_secs(5));
    let (b3, _) = echo_requests(&lab, 2);
    eprintln!("wan2 after the takeover: {} echo requests in 5 s", b3 - b2);
    assert!(b3 - b2 >= 15, "wan2 still slow: {}", b3 - b2);
    d.terminate();
}
