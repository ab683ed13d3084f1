//! Detection benchmark against the real kernel in the namespace lab, at the defaults
//! (interval 1 s, timeout 1 s, down 3, up 3; damping off so runs do not hold each
//! other down). Numbers, not assertions; the report goes to `bench/out/detect.txt`.
//!
//! - blackhole → WAN out of the balance group, each run at a random phase of the rounds;
//! - restore → WAN back in the group (recovery);
//! - 5 × 60 s of 15 % random loss each way (nft `numgen random` in the ISP's forwarding
//!   chain, both directions): how often the WAN left the group;
//! - 1 s total-loss bursts every 10 s: how often the WAN left the group.

#[path = "../tests/lab/support.rs"]
mod lab;

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{list, max, median, ms, Report};
use lab::{wait_until, Break, Lab};

fn time_until(limit: Duration, cond: impl FnMut() -> bool) -> Option<Duration> {
    wait_until(limit, Duration::from_millis(1), cond).ok()
}

/// A random phase in 0..1000 ms. (Not from the clock: the runs are paced by the
/// rounds, so the clock's sub-second part follows their phase.)
fn phase() -> Duration {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    Duration::from_millis(u64::from(u32::from_ne_bytes(b) % 1000))
}

/// Watch ISP k's WAN for `total`, counting how often it left the group.
fn count_exits(lab: &Lab, k: usize, total: Duration, mut tick: impl FnMut(Duration)) -> usize {
    let start = Instant::now();
    let mut inside = true;
    let mut exits = 0;
    while start.elapsed() < total {
        tick(start.elapsed());
        let now_in = lab.in_group(k);
        if inside && !now_in {
            exits += 1;
        }
        inside = now_in;
        std::thread::sleep(Duration::from_millis(20));
    }
    exits
}

fn main() {
    let bin = lab::uplinkd_for_bench();
    // The figure is over 20 runs; `BENCH_RUNS` lowers it for a quick look.
    let runs = if std::env::var_os("BENCH_RUNS").is_some() {
        common::runs()
    } else {
        20
    };
    let loss_runs: usize = std::env::var("BENCH_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut report = Report::new("detect.txt");
    let mut say = |line: String| report.say(line);
    say(format!(
        "uplinkd detection benchmark, binary {}",
        bin.display()
    ));

    let lab = Lab::new(3);
    let opts = "option flap_damping '0'";
    let mut d = lab.start_daemon(&bin, &lab::config(&[1, 1, 1], opts), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(10));
    // Let every target answer a few rounds: its RTT becomes known.
    std::thread::sleep(Duration::from_secs(8));

    let mut out = Vec::new();
    let mut back = Vec::new();
    for _ in 0..runs {
        std::thread::sleep(phase());
        let start = Instant::now();
        lab.break_isp(2, Break::Blackhole);
        if let Some(t) = time_until(Duration::from_secs(10), || !lab.in_group(2)) {
            out.push(ms(start.elapsed().max(t)));
        }
        let start = Instant::now();
        lab.restore(2);
        if let Some(t) = time_until(Duration::from_secs(15), || lab.in_group(2)) {
            back.push(ms(start.elapsed().max(t)));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    say(format!(
        "blackhole -> out of the group: median {:.0} ms, max {:.0} ms over {} runs {}",
        median(&out),
        max(&out),
        out.len(),
        list(&out, 0)
    ));
    say(format!(
        "restore -> back in the group: median {:.0} ms, max {:.0} ms over {} runs",
        median(&back),
        max(&back),
        back.len()
    ));

    let mut false_downs = 0;
    for i in 0..loss_runs {
        lab.break_isp(2, Break::Loss(15));
        let n = count_exits(&lab, 2, Duration::from_secs(60), |_| {});
        lab.restore(2);
        say(format!(
            "15 % loss each way, run {}: {n} exits in 60 s",
            i + 1
        ));
        false_downs += n;
        lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
    }
    say(format!(
        "15 % random loss each way: {false_downs} false downs over {loss_runs} x 60 s"
    ));

    // A gateway that stops answering the router's ARP requests (but still forwards,
    // still learns from replies, and still resolves its upstream): the router's entry
    // for it stays usable until the kernel re-checks it (STALE, DELAY, PROBE), then FAILED.
    lab.nft(
        "isp2",
        "add table arp benchgw\nadd chain arp benchgw in { type filter hook input priority 0; }\n\
         add rule arp benchgw in iifname rtr arp operation request drop\n",
    );
    let gone = time_until(Duration::from_secs(120), || !lab.in_group(2));
    let log = d.log();
    let reason = log
        .lines()
        .rev()
        .find(|l| l.contains("wan2 down"))
        .unwrap_or("no transition logged")
        .to_string();
    lab.nft("isp2", "delete table arp benchgw\n");
    say(format!(
        "gateway stops answering ARP -> out of the group after {:.0} ms: {reason}",
        gone.map_or(f64::NAN, ms)
    ));
    lab.restore(2);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(30));

    // Bursts: total loss for 1 s at the start of every 10 s.
    if std::env::var_os("BENCH_NO_BURSTS").is_some() {
        report.write();
        return;
    }
    let mut broken = false;
    let n = count_exits(&lab, 2, Duration::from_secs(120), |t| {
        let in_burst = t.as_millis() % 10_000 < 1000;
        if in_burst && !broken {
            lab.break_isp(2, Break::Blackhole);
            broken = true;
        } else if !in_burst && broken {
            lab.restore(2);
            broken = false;
        }
    });
    if broken {
        lab.restore(2);
    }
    say(format!(
        "1 s total-loss bursts every 10 s: {n} exits in 12 bursts"
    ));
    report.write();
}
