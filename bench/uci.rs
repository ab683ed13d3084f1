//! Config parsing cost: 20,000 sections (goal: well under 100 ms, linear in the size).
//! Numbers, not assertions: `cargo run --release --example bench-uci`.
//!
//! Two files: 20,000 `config rule` sections under one policy (a valid config, the whole
//! check runs), and 20,000 anonymous sections of one type (the UCI parser's per-type
//! indexes). Each is parsed 5 times; the median is reported, with 2,000 sections for
//! comparison (linear: 10x the sections, about 10x the time).

use std::time::{Duration, Instant};

use uplinkd::config::{uci, Config};

fn rules(n: usize) -> String {
    let mut s = String::from(
        "config globals 'globals'\n\
         config interface 'wan'\n\toption device 'eth1'\n\tlist track_ip '192.0.2.1'\n\
         config member 'm'\n\toption interface 'wan'\n\
         config policy 'p'\n\tlist use_member 'm'\n",
    );
    for i in 0..n {
        s += &format!(
            "config rule 'r{i}'\n\toption proto 'tcp'\n\toption dest_port '{}'\n\toption use_policy 'p'\n",
            1 + i % 65535
        );
    }
    s
}

fn anonymous(n: usize) -> String {
    (0..n)
        .map(|i| format!("config thing\n\toption a '{i}'\n\tlist b 'x'\n\tlist b 'y'\n"))
        .collect()
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    runs.sort();
    runs[2]
}

fn main() {
    for n in [2_000, 20_000] {
        let text = rules(n);
        let t = median(|| {
            let cfg = Config::parse("bench", &text).expect("valid config");
            assert_eq!(cfg.rules.len(), n);
        });
        println!(
            "Config::parse, {n} rule sections ({} KiB): {:.1} ms",
            text.len() / 1024,
            t.as_secs_f64() * 1e3
        );
        let text = anonymous(n);
        let t = median(|| {
            let s = uci::parse("bench", &text).expect("valid UCI");
            assert_eq!(s.len(), n);
        });
        println!(
            "uci::parse, {n} anonymous sections ({} KiB): {:.1} ms",
            text.len() / 1024,
            t.as_secs_f64() * 1e3
        );
    }
}
