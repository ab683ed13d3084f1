//! Policy modes against the real kernel: `round_robin` splits new connections exactly by
//! the weight pattern; `least_connections` sends new connections to the WAN with fewer
//! live ones until the counts even out.
#[path = "lab/mod.rs"]
mod lab;

use std::path::Path;
use std::time::Duration;

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

fn with_mode(weights: &[u16], per_wan: &[&str], policy: &str) -> String {
    let mut text = lab::config_with(weights, lab::FAST, per_wan, "");
    text.push_str(policy);
    text
}

#[test]
fn round_robin_follows_the_weight_pattern() {
    let lab = Lab::new(2);
    let conf = with_mode(&[2, 1], &[], "\toption mode 'round_robin'\n");
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let t = lab.connect_many(300);
    eprintln!("300 connections: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    // In turn: 2 on wan1, 1 on wan2, ... exactly 200/100, give or take the pattern's
    // position at the start.
    assert!(t.count(1).abs_diff(200) <= 1, "{t:?}");
    assert!(t.count(2).abs_diff(100) <= 1, "{t:?}");
}

#[test]
fn least_connections_fills_the_emptier_wan_until_even() {
    let lab = Lab::new(2);
    // First wan2 is drained, so 100 long-lived connections all land on wan1.
    let policy = "\toption mode 'least_connections'\n";
    let conf = with_mode(&[1, 1], &["", "option enabled '0'"], policy);
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1], STARTUP);
    let held = lab.open_long_lived(100);
    assert_eq!(held.len(), 100);
    assert!(held.iter().all(|c| c.isp == 1));

    // Both usable: the next 100 go to wan2 (one measurement a second lags behind, which
    // only makes wan2 look emptier than it is).
    d.write_config(&with_mode(&[1, 1], &[], policy));
    d.reload();
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    std::thread::sleep(Duration::from_secs(3));
    let next = lab.open_long_lived(100);
    let on2 = next.iter().filter(|c| c.isp == 2).count();
    eprintln!("next 100: {on2} on wan2");
    assert_eq!(next.len(), 100);
    assert!(on2 >= 95, "only {on2} of 100 on wan2; log:\n{}", d.log());

    // Even now: new connections go to both again.
    std::thread::sleep(Duration::from_secs(3));
    let t = lab.connect_many(40);
    eprintln!("after evening out: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    assert!(t.count(1) > 0 && t.count(2) > 0, "{t:?}");
    let status = lab.status(bin());
    eprintln!("{status}");
    drop(next);
    drop(held);
    d.terminate();
}
