//! HTTP listener under load: does a flood of requests on `http_listen` slow probing?
//! Numbers, not assertions: run with `bench/http.sh`.
//!
//! The daemon runs in the namespace lab with 2 WANs × 3 targets at 0.5 s intervals and
//! `http_listen` on the router's loopback. For a quiet period and then a period with
//! clients sending GET /metrics at a fixed pace (default 1000 requests/s) from the
//! router namespace, it reports: probe rounds per WAN per second (from the status
//! counters), the daemon's mean RTT per WAN (a busy event loop would read replies late
//! and inflate it) beside the RTT `ping` measures on the same path at the same time
//! (the lab's true RTT: `ping` takes its times from the kernel, and no loop of ours is
//! in its way), the requests served and failed, and the daemon's CPU time.

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab::Lab;
use serde_json::Value;

const LISTEN: &str = "127.0.0.1:9110";
const THREADS: u64 = 8;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Sample {
    at: Instant,
    sent: Vec<u64>,
    rtt_ms: Vec<f64>,
    cpu_ticks: u64,
}

fn sample(lab: &Lab, pid: u32) -> Sample {
    let v: Value = lab.status(&lab::uplinkd_for_bench());
    let mut sent = Vec::new();
    let mut rtt_ms = Vec::new();
    for k in 1..=2 {
        let targets = v["interfaces"][format!("wan{k}")]["targets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        sent.push(targets.iter().filter_map(|t| t["sent"].as_u64()).sum());
        let rtts: Vec<f64> = targets
            .iter()
            .filter_map(|t| t["mean_rtt_ms"].as_f64())
            .collect();
        rtt_ms.push(rtts.iter().sum::<f64>() / rtts.len().max(1) as f64);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Sample {
        at: Instant::now(),
        sent,
        rtt_ms,
        cpu_ticks: tick(11) + tick(12),
    }
}

/// `ping` through each WAN device to the first target, 5 per second for `secs`, in a
/// thread each; joined, they give the average RTT in ms per WAN.
fn ping_during(lab: &Lab, secs: u64) -> Vec<thread::JoinHandle<Option<f64>>> {
    (1..=2)
        .map(|k| {
            let ns = lab.ns("rtr");
            thread::spawn(move || {
                let count = (secs * 5).to_string();
                let target = lab::TARGETS[0].to_string();
                let dev = format!("wan{k}");
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &ns, "ping", "-n", "-q", "-i", "0.2"])
                    .args(["-c", &count, "-I", &dev, &target])
                    .output()
                    .ok()?;
                // rtt min/avg/max/mdev = 0.041/0.062/0.101/0.013 ms
                let text = String::from_utf8_lossy(&out.stdout);
                let stats = text.lines().find(|l| l.contains("min/avg/max"))?;
                stats
                    .split('=')
                    .nth(1)?
                    .trim()
                    .split('/')
                    .nth(1)?
                    .parse()
                    .ok()
            })
        })
        .collect()
}

fn ping_report(pings: Vec<thread::JoinHandle<Option<f64>>>) -> String {
    let avg: Vec<String> = pings
        .into_iter()
        .map(|p| match p.join().ok().flatten() {
            Some(ms) => format!("{ms:.2} ms"),
            None => "-".into(),
        })
        .collect();
    format!("ping on the same paths {}", avg.join(" / "))
}

fn report(name: &str, a: &Sample, b: &Sample, served: u64, failed: u64) {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    let rounds: Vec<String> = a
        .sent
        .iter()
        .zip(&b.sent)
        .map(|(x, y)| format!("{:.2}", (y - x) as f64 / 3.0 / secs))
        .collect();
    let rtt: Vec<String> = b.rtt_ms.iter().map(|r| format!("{r:.2} ms")).collect();
    let cpu = (b.cpu_ticks - a.cpu_ticks) as f64 / 100.0 / secs * 100.0;
    println!(
        "{name:<8} {secs:5.1} s  probe rounds/s per WAN {}  mean RTT {}  daemon CPU {cpu:.1} %  \
         requests {served} ok ({:.0}/s), {failed} failed",
        rounds.join(" / "),
        rtt.join(" / "),
        served as f64 / secs
    );
}

fn main() {
    let rate = arg(2, 1000);
    let secs = arg(3, 20);
    let lab = Lab::new(2);
    let cfg = lab::config_with(
        &[1, 1],
        "option interval '0.5'\noption timeout '1'",
        &["", ""],
        &format!("option http_listen '{LISTEN}'"),
    );
    let mut d = lab.start_daemon(&lab::uplinkd_for_bench(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(15));
    thread::sleep(Duration::from_secs(3));
    let pid = d.pid();
    println!("uplinkd HTTP load: 2 WANs x 3 targets, interval 0.5 s; {rate} GET /metrics per s from {THREADS} threads");

    let a = sample(&lab, pid);
    let pings = ping_during(&lab, secs);
    thread::sleep(Duration::from_secs(secs));
    let b = sample(&lab, pid);
    report("quiet", &a, &b, 0, 0);
    println!("         {}", ping_report(pings));

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    let per_thread = Duration::from_secs_f64(THREADS as f64 / rate as f64);
    for _ in 0..THREADS {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let ns = lab.ns("rtr");
        clients.push(thread::spawn(move || {
            let _ = lab::in_netns(&ns, move || {
                let mut next = Instant::now();
                let mut buf = Vec::with_capacity(8192);
                while !stop.load(Ordering::Relaxed) {
                    let ok = (|| -> std::io::Result<bool> {
                        let mut s = TcpStream::connect(LISTEN)?;
                        s.set_read_timeout(Some(Duration::from_secs(5)))?;
                        // The Host header must name the listener (DNS-rebinding guard).
                        s.write_all(
                            format!("GET /metrics HTTP/1.1\r\nHost: {LISTEN}\r\n\r\n").as_bytes(),
                        )?;
                        buf.clear();
                        s.read_to_end(&mut buf)?;
                        Ok(buf.starts_with(b"HTTP/1.1 200 "))
                    })();
                    match ok {
                        Ok(true) => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    next += per_thread;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                }
            });
        }));
    }
    thread::sleep(Duration::from_secs(2));
    let (s0, f0) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    let a = sample(&lab, pid);
    let pings = ping_during(&lab, secs);
    thread::sleep(Duration::from_secs(secs));
    let b = sample(&lab, pid);
    let (s1, f1) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    report("loaded", &a, &b, s1 - s0, f1 - f0);
    println!("         {}", ping_report(pings));
    let _ = d.stop();
}
