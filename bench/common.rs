//! What the lab benchmarks share: their run count, statistics and report.
// Each benchmark uses a part of this.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

/// Runs per latency measurement: `BENCH_RUNS`, else 5.
pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// The median (the mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().cloned().fold(0.0, f64::max)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `[1.2, 3.4]` with `digits` decimals.
pub fn list(v: &[f64], digits: usize) -> String {
    let s: Vec<String> = v.iter().map(|x| format!("{x:.digits$}")).collect();
    format!("[{}]", s.join(", "))
}

/// Lines printed as they come and written to `bench/out/<name>` at the end.
pub struct Report {
    name: &'static str,
    lines: Vec<String>,
}

impl Report {
    pub fn new(name: &'static str) -> Report {
        Report {
            name,
            lines: Vec::new(),
        }
    }

    pub fn say(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }

    pub fn write(&self) {
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/out");
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join(self.name), self.lines.join("\n") + "\n");
    }
}

/// A number field (`Key: value`) of a file under `/proc/<pid>/`.
pub fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
