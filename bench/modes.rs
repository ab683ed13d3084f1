//! Memory and CPU with every policy mode at once: 3 WANs × 3 targets probed every second,
//! one policy per mode over all three (so the daemon samples conntrack counts and link
//! counters every second and recomputes weights), 20 long-lived connections and a trickle
//! of new ones. Numbers, not assertions: `bench/run.sh` runs it, the report goes to
//! `bench/out/modes.txt`. Goals (issue "Beyond weights"): own memory ≤ 1 MB, CPU ≤ 1 %.

#[path = "../tests/lab/support.rs"]
mod lab;

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Report;
use lab::Lab;

const MODES: [&str; 6] = [
    "weighted",
    "round_robin",
    "least_connections",
    "lowest_latency",
    "least_used",
    "overflow",
];

/// Private (not shared) resident memory in kB: `Private_Clean + Private_Dirty` of
/// `smaps_rollup`.
fn private_kb(pid: u32) -> Option<u64> {
    Some(
        common::proc_field(pid, "smaps_rollup", "Private_Clean:")?
            + common::proc_field(pid, "smaps_rollup", "Private_Dirty:")?,
    )
}

/// The lab config with a policy per mode (the default policy `balanced` is the weighted
/// one) and the capacities `least_used` and `overflow` need.
fn config(modes: &[String]) -> String {
    let opts = "option interval '1'\noption timeout '1'\noption bandwidth_down '50000'\noption bandwidth_up '10000'";
    let mut text = lab::config_with(&[1, 1, 1], opts, &["", "", ""], "");
    for mode in modes.iter().filter(|m| *m != "weighted") {
        text.push_str(&format!("\nconfig policy '{mode}'\n"));
        for k in 1..=3 {
            text.push_str(&format!("\tlist use_member 'wan{k}_m1'\n"));
        }
        text.push_str(&format!("\toption mode '{mode}'\n"));
    }
    text
}

fn main() {
    let bin = lab::uplinkd_for_bench();
    let mut report = Report::new("modes.txt");
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    report.say(format!(
        "uplinkd with every policy mode at once, binary {}",
        bin.display()
    ));
    // `BENCH_MODES=round_robin,lowest_latency` limits the policies (to tell the modes'
    // costs apart); all six by default.
    let modes: Vec<String> = match std::env::var("BENCH_MODES") {
        Ok(v) => v.split(',').map(str::to_string).collect(),
        Err(_) => MODES.iter().map(|m| m.to_string()).collect(),
    };
    report.say(format!("modes: {}", modes.join(", ")));
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(&bin, &config(&modes), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
    let held = lab.open_long_lived(20);
    // Let the samplers and the modes settle.
    std::thread::sleep(Duration::from_secs(5));
    let pid = d.pid();
    let count = |log: &str, what: &str| log.lines().filter(|l| l.contains(what)).count();
    // Two halves: idle (the held connections only), then a trickle of new flows (2 a
    // second), so the modes' choices are used and their weights move.
    for trickle in [false, true] {
        let log0 = d.log();
        let t0 = common::cpu_ticks(pid).unwrap_or(0);
        let wall = Instant::now();
        let mut connections = 0;
        while wall.elapsed() < Duration::from_secs(seconds / 2) {
            if trickle {
                connections += lab.connect_many(2).ok();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let t1 = common::cpu_ticks(pid).unwrap_or(0);
        let log1 = d.log();
        let hz = 100.0; // USER_HZ on Linux
        let cpu = (t1 - t0) as f64 / hz / wall.elapsed().as_secs_f64() * 100.0;
        let loads = count(&log1, "nft: table") - count(&log0, "nft: table");
        let writes = count(&log1, " kernel: ") - count(&log0, " kernel: ");
        report.say(format!(
            "{}: {connections} new connections over {} s, CPU {cpu:.2} % of a core; {loads} nft loads, {writes} route writes",
            if trickle { "with new flows" } else { "idle" },
            wall.elapsed().as_secs()
        ));
    }
    let rss = common::proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let hwm = common::proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let anon = common::proc_field(pid, "status", "RssAnon:").unwrap_or(0);
    let file = common::proc_field(pid, "status", "RssFile:").unwrap_or(0);
    let private = private_kb(pid).unwrap_or(0);
    let status = lab.status(&bin);
    let mut weights = Vec::new();
    for mode in &modes {
        let name = if mode == "weighted" { "balanced" } else { mode };
        weights.push(format!("{mode} {}", status["policies"][name]["weights"]));
    }
    report.say(format!(
        "a policy per mode over 3 WANs x 3 targets, 1 s probes, 20 held connections: RSS {rss} kB (peak {hwm} kB): anonymous {anon} kB, file-backed {file} kB; private {private} kB"
    ));
    report.say(format!(
        "effective weights at the end: {}",
        weights.join("; ")
    ));
    drop(held);
    d.stop();
    drop(lab);
    report.write();
}
