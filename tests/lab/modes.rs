//! Policy modes against the real kernel: `round_robin` splits new connections exactly by
//! the weight pattern; `least_connections` sends new connections to the WAN with fewer
//! live ones until the counts even out; `lowest_latency` follows the faster WAN and, under
//! jitter, switches at most once per `latency_hold`.
use crate::support as lab;

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
    if crate::skip() {
        return;
    }
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
    if crate::skip() {
        return;
    }
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

/// Keeps one connection (on whichever WAN it got) busy echoing bulk data until dropped.
struct Bulk {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Bulk {
    fn start(conn: lab::LongConn) -> Bulk {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let chunk = [b'x'; 16 * 1024];
            let mut buf = vec![0u8; 64 * 1024];
            let mut moved = 0u64;
            let s = &conn.stream;
            let _ = s.set_nonblocking(true);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                if let Ok(n) = (&*s).write(&chunk) {
                    moved += n as u64;
                }
                while let Ok(n) = (&*s).read(&mut buf) {
                    if n == 0 {
                        return moved;
                    }
                    moved += n as u64;
                }
            }
            moved
        });
        Bulk {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let moved = t.join().unwrap_or(0);
            eprintln!("bulk moved {} MB", moved / 1_000_000);
        }
    }
}

/// 8 Mbit/s each way: the lab's veth pairs carry far more, so one bulk connection
/// saturates it.
const BANDWIDTH: &str = "option bandwidth_down '8000'\noption bandwidth_up '8000'";

#[test]
fn overflow_fills_the_first_then_spills() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let conf = with_mode(
        &[1, 1],
        &[BANDWIDTH, BANDWIDTH],
        "\toption mode 'overflow'\n\toption overflow_threshold '50'\n",
    );
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    std::thread::sleep(Duration::from_secs(3));
    let t = lab.connect_many(40);
    eprintln!("idle: {t:?}");
    assert_eq!(
        (t.count(1), t.failed),
        (40, 0),
        "below the threshold all on wan1"
    );

    let mut conn = lab.open_long_lived(1);
    let bulk = Bulk::start(conn.remove(0));
    std::thread::sleep(Duration::from_secs(4));
    let t = lab.connect_many(40);
    eprintln!("wan1 saturated: {t:?}");
    drop(bulk);
    assert_eq!((t.count(2), t.failed), (40, 0), "above it new flows spill");
    d.terminate();
}

#[test]
fn least_used_follows_spare_capacity() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let conf = with_mode(
        &[1, 1],
        &[BANDWIDTH, BANDWIDTH],
        "\toption mode 'least_used'\n",
    );
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    // The bulk transfer on whichever WAN its connection got.
    let mut conn = lab.open_long_lived(1);
    let busy = conn[0].isp;
    let other = 3 - busy;
    let bulk = Bulk::start(conn.remove(0));
    // Weights move 20 points of 100 every 3 s: from 50/50 to 0/100 in about 9 s.
    std::thread::sleep(Duration::from_secs(15));
    let t = lab.connect_many(100);
    eprintln!("wan{busy} saturated: {t:?}");
    drop(bulk);
    assert_eq!(t.failed, 0, "{t:?}");
    assert!(t.count(other) >= 80, "{t:?}; log:\n{}", d.log());
    d.terminate();
}

/// A slow path without netem: a token bucket (`tc tbf`, 1 Mbit/s, 15 kB queue) on the
/// ISP's port towards the router, kept busy by a ping stream from the ISP slightly above
/// its rate, so packets to the router queue behind it (about 8 ms more RTT here, with
/// jitter; hence a 2 ms margin).
struct SlowPath {
    ns: String,
    flood: std::process::Child,
}

/// ISP `k`'s link towards the router limited to 1 Mbit/s with a short queue (tbf); its
/// namespace name.
fn narrow_isp(lab: &Lab, k: usize) -> String {
    let ns = lab.ns(&format!("isp{k}"));
    let tc = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "rtr"])
        .args([
            "root", "tbf", "rate", "1mbit", "burst", "1540", "limit", "15000",
        ])
        .status()
        .expect("run tc");
    assert!(tc.success(), "tc tbf in {ns}");
    ns
}

impl SlowPath {
    fn start(lab: &Lab, k: usize) -> SlowPath {
        let ns = narrow_isp(lab, k);
        let flood = std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-q", "-i", "0.0085", "-s", "1400",
            ])
            .arg(format!("10.20.{k}.2"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ping");
        SlowPath { ns, flood }
    }
}

impl Drop for SlowPath {
    fn drop(&mut self) {
        let _ = self.flood.kill();
        let _ = self.flood.wait();
        let _ = std::process::Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "tc", "qdisc", "del", "dev", "rtr", "root",
            ])
            .status();
    }
}

#[test]
fn lowest_latency_follows_the_faster_wan() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let conf = with_mode(
        &[1, 1],
        &[],
        "\toption mode 'lowest_latency'\n\toption latency_hold '2s'\n\toption latency_margin '2ms'\n",
    );
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let slow = SlowPath::start(&lab, 1);
    std::thread::sleep(Duration::from_secs(8));
    let t = lab.connect_many(100);
    eprintln!("wan1 slow: {t:?}");
    let out = lab.exec("rtr", &["ping", "-c", "3", "-I", "wan1", "203.0.113.1"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(t.count(2) >= 95, "{t:?}; log:\n{}", d.log());

    // The other one becomes the slow one: new flows move within a few seconds.
    drop(slow);
    let _slow = SlowPath::start(&lab, 2);
    let t0 = std::time::Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 5 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no move; log:\n{}",
            d.log()
        );
        match lab.connect_once(Duration::from_secs(2)) {
            Ok(1) => in_a_row += 1,
            _ => in_a_row = 0,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("moved to wan1 after {:?}", t0.elapsed());
    let t = lab.connect_many(100);
    eprintln!("wan2 slow: {t:?}");
    assert!(t.count(1) >= 95, "{t:?}");
    d.terminate();
}

/// Jitter on the slow path: the flood that fills ISP `k`'s token bucket runs in bursts,
/// `on` then `off`, so the path's delay swings between the empty and the full queue.
struct Jitter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    ns: String,
}

impl Jitter {
    fn start(lab: &Lab, k: usize, on: Duration, off: Duration, after: Duration) -> Jitter {
        use std::sync::atomic::{AtomicBool, Ordering};
        let ns = narrow_isp(lab, k);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ns2, router) = (ns.clone(), format!("10.20.{k}.2"));
        let thread = std::thread::spawn(move || {
            std::thread::sleep(after);
            while !flag.load(Ordering::Relaxed) {
                let flood = std::process::Command::new("ip")
                    .args([
                        "netns", "exec", &ns2, "ping", "-q", "-i", "0.0085", "-s", "1400",
                    ])
                    .arg(&router)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                std::thread::sleep(on);
                if let Ok(mut f) = flood {
                    let _ = f.kill();
                    let _ = f.wait();
                }
                std::thread::sleep(off);
            }
        });
        Jitter {
            stop,
            thread: Some(thread),
            ns,
        }
    }
}

impl Drop for Jitter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::process::Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "tc", "qdisc", "del", "dev", "rtr", "root",
            ])
            .status();
    }
}

/// The member `lowest_latency` chose (the one with a weight) per status.
fn chosen(status: &serde_json::Value) -> Option<String> {
    let w = status["policies"]["balanced"]["weights"].as_object()?;
    let mut on = w.iter().filter(|(_, v)| v.as_u64() > Some(0));
    let (name, _) = on.next()?;
    on.next().is_none().then(|| name.clone())
}

#[test]
fn lowest_latency_holds_its_choice_under_jitter() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let hold = Duration::from_secs(3);
    let conf = with_mode(
        &[1, 1],
        &[],
        "\toption mode 'lowest_latency'\n\toption latency_hold '3s'\n\toption latency_margin '2ms'\n",
    );
    let mut d = lab.start_daemon(bin(), &conf, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    // Both delays swing between an empty and a full queue, in antiphase: wan1's is full
    // 1 s of every 1.4 s, wan2's the other 0.4 s, so each is at times the faster one;
    // smoothed, wan2 is faster by more than the margin.
    let ms = Duration::from_millis;
    let _jitter1 = Jitter::start(&lab, 1, ms(1000), ms(400), ms(0));
    let _jitter2 = Jitter::start(&lab, 2, ms(400), ms(1000), ms(1000));
    let settled =
        crate::support::wait_until(Duration::from_secs(20), Duration::from_millis(250), || {
            chosen(&lab.status(bin())).as_deref() == Some("wan2")
        });
    assert!(settled.is_ok(), "wan2 never chosen; log:\n{}", d.log());
    // Watch the choice for 8 hold periods, opening new connections meanwhile.
    let t0 = std::time::Instant::now();
    let watch = hold * 8;
    let mut last = Some("wan2".to_string());
    let mut switches = Vec::new();
    let mut tally = (0usize, 0usize, 0usize);
    let mut rtts: Vec<f64> = Vec::new();
    while t0.elapsed() < watch {
        let status = lab.status(bin());
        let rtt = |w: &str| status["interfaces"][w]["targets"][0]["last_rtt_ms"].as_f64();
        if let (Some(a), Some(b)) = (rtt("wan1"), rtt("wan2")) {
            rtts.push(a - b);
        }
        let now = chosen(&status);
        if now != last {
            switches.push((t0.elapsed(), now.clone()));
            last = now;
        }
        let t = lab.connect_many(5);
        tally = (
            tally.0 + t.count(1),
            tally.1 + t.count(2),
            tally.2 + t.failed,
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let total = tally.0 + tally.1;
    eprintln!(
        "under jitter for {:?}: switches {switches:?}; new flows wan1 {}, wan2 {}, failed {}",
        t0.elapsed(),
        tally.0,
        tally.1,
        tally.2
    );
    let lo = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    eprintln!("wan1's last RTT minus wan2's swung from {lo:.1} to {hi:.1} ms");
    // The jitter crossed the margin both ways: each WAN was at times the faster by more.
    assert!(lo < -2.0 && hi > 2.0, "no crossing jitter: {rtts:?}");
    let periods = (t0.elapsed().as_secs_f64() / hold.as_secs_f64()).ceil() as usize;
    assert!(switches.len() <= periods, "{switches:?}");
    // No two switches within one hold period (seen by polling: up to a poll late).
    for pair in switches.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 + Duration::from_secs(1) >= hold,
            "{switches:?}"
        );
    }
    assert_eq!(tally.2, 0, "failed connections");
    assert!(
        tally.1 * 100 >= total * 95,
        "wan2 got {} of {total}",
        tally.1
    );
    d.terminate();
}
