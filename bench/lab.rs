//! Lab benchmark for the core daemon: failover latencies, memory, CPU and kernel writes,
//! measured against the real kernel in the namespace lab. Numbers, not assertions: run it
//! with `bench/run.sh` and read the report (also written to `bench/out/lab.txt`).
//!
//! Measured:
//! - carrier loss → the WAN is out of the balance group (kernel + daemon), median of N;
//! - carrier loss of the last WAN → the daemon installs the last resort (daemon alone);
//! - upstream blackhole → the WAN is out of the group, against I + T + (D-1)·F;
//! - resident memory and CPU of the daemon with 3 WANs × 3 targets at 1 s intervals;
//! - kernel writes per state change (the daemon logs one `kernel:` line per write).

#[path = "../tests/lab/support.rs"]
mod lab;

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{list, max, median, ms, Report};
use lab::{wait_until, Break, Lab};

/// Poll `cond` every millisecond; the elapsed time when it first holds.
fn time_until(limit: Duration, cond: impl FnMut() -> bool) -> Option<Duration> {
    wait_until(limit, Duration::from_millis(1), cond).ok()
}

fn kernel_writes(log: &str) -> usize {
    log.lines().filter(|l| l.contains(" kernel: ")).count()
}

fn main() {
    let bin = lab::uplinkd_for_bench();
    let runs = common::runs();
    let mut report = Report::new("lab.txt");
    let mut say = |line: String| report.say(line);
    say(format!(
        "uplinkd lab benchmark, {runs} runs per measurement, binary {}",
        bin.display()
    ));

    // --- carrier loss -----------------------------------------------------------
    let lab = Lab::new(3);
    // Damping off: the benchmark breaks the same WAN over and over on purpose.
    let opts = "option flap_damping '0'";
    let mut d = lab.start_daemon(&bin, &lab::config(&[1, 1, 1], opts), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(10));
    let mut carrier = Vec::new();
    for _ in 0..runs {
        let before = kernel_writes(&d.log());
        let start = Instant::now();
        lab.break_isp(3, Break::Carrier);
        let cmd = start.elapsed();
        if let Some(t) = time_until(Duration::from_secs(5), || !lab.in_group(3)) {
            carrier.push(ms(t + cmd));
        }
        std::thread::sleep(Duration::from_millis(300));
        let writes = kernel_writes(&d.log()) - before;
        say(format!(
            "carrier loss: {writes} kernel writes by the daemon"
        ));
        lab.restore(3);
        lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
    }
    say(format!(
        "carrier loss -> out of the group: median {:.1} ms over {} runs {}",
        median(&carrier),
        carrier.len(),
        list(&carrier, 1)
    ));

    // --- blackhole ----------------------------------------------------------------
    let mut blackhole = Vec::new();
    for _ in 0..runs {
        let before = kernel_writes(&d.log());
        let start = Instant::now();
        lab.break_isp(2, Break::Blackhole);
        if let Some(t) = time_until(Duration::from_secs(10), || !lab.in_group(2)) {
            blackhole.push(ms(start.elapsed().max(t)));
        }
        let writes = kernel_writes(&d.log()) - before;
        say(format!(
            "blackhole: {writes} kernel writes for the transition"
        ));
        let before = kernel_writes(&d.log());
        lab.restore(2);
        lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
        std::thread::sleep(Duration::from_millis(200));
        let writes = kernel_writes(&d.log()) - before;
        say(format!(
            "recovery: {writes} kernel writes for the transition"
        ));
    }
    say(format!(
        "blackhole -> out of the group: median {:.0} ms, max {:.0} ms over {} runs (bound I+T+(D-1)F = 1000+1000+2000 = 4000 ms)",
        median(&blackhole),
        max(&blackhole),
        blackhole.len()
    ));

    // --- memory and CPU at steady state ----------------------------------------------
    let pid = d.pid();
    let t0 = common::cpu_ticks(pid).unwrap_or(0);
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let t1 = common::cpu_ticks(pid).unwrap_or(0);
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (t1 - t0) as f64 / hz / wall.elapsed().as_secs_f64() * 100.0;
    let rss = common::proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let hwm = common::proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    // Anonymous memory is the daemon's own; file-backed pages are the binary and shared
    // libraries, shared with every other process that maps them.
    let anon = common::proc_field(pid, "status", "RssAnon:").unwrap_or(0);
    let file = common::proc_field(pid, "status", "RssFile:").unwrap_or(0);
    say(format!(
        "3 WANs x 3 targets, 1 s interval: RSS {rss} kB (peak {hwm} kB; anonymous {anon} kB, file-backed {file} kB), CPU {cpu:.2} % of a core over 30 s"
    ));
    d.stop();
    drop(lab);

    // --- last resort: the daemon alone reacts ------------------------------------------
    let lab = Lab::new(1);
    let cfg = lab::config_with(&[1], opts, &[""], "option last_resort 'unreachable'");
    let cfg = cfg.replace(
        "config policy 'balanced'\n",
        "config policy 'balanced'\n\toption last_resort 'unreachable'\n",
    );
    let mut d = lab.start_daemon(&bin, &cfg, &[]);
    lab.wait_group(&mut d, &[1], Duration::from_secs(10));
    let mut last = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        lab.break_isp(1, Break::Carrier);
        if let Some(t) = time_until(Duration::from_secs(5), || {
            lab.default_route_type(lab::POLICY_ID).as_deref() == Some("unreachable")
        }) {
            last.push(ms(start.elapsed().max(t)));
        }
        lab.restore(1);
        lab.wait_group(&mut d, &[1], Duration::from_secs(15));
    }
    say(format!(
        "carrier loss of the last WAN -> unreachable installed: median {:.1} ms over {} runs",
        median(&last),
        last.len()
    ));
    d.stop();
    drop(lab);

    report.write();
}
