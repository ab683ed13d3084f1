//! What a user-filled set in uplinkd's nft table costs: a 200,000-address set in
//! `inet uplinkd` (as dnsmasq's `nftset=` fills one) against none. Measured, in the
//! namespace lab with 2 ISPs at the default timers: upstream blackhole → the WAN is out
//! of the group (median of N), the daemon's peak and current RSS, and the peak RSS of
//! the `nft` children it runs (through a wrapper that reports each child's
//! `ru_maxrss`). Numbers, not assertions; the report is also written to
//! `bench/out/userset.txt`.
//!
//!   bench-userset UPLINKD [ELEMENTS]

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "common.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{list, max, median, ms, Report};
use lab::{wait_until, Break, Daemon, Lab};

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The largest `ru_maxrss` (kB) the wrapper logged since the file was last emptied,
/// and how many `nft` runs it saw.
fn nft_peak(file: &Path) -> (u64, usize) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let v: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    (v.iter().copied().max().unwrap_or(0), v.len())
}

fn failovers(lab: &Lab, d: &mut Daemon, runs: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        lab.break_isp(2, Break::Blackhole);
        let gone = wait_until(Duration::from_secs(15), Duration::from_millis(1), || {
            !lab.in_group(2)
        });
        if gone.is_ok() {
            out.push(ms(start.elapsed()));
        }
        lab.restore(2);
        lab.wait_group(d, &[1, 2], Duration::from_secs(20));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = lab::uplinkd_for_bench();
    let elements: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let runs = common::runs();
    let mut report = Report::new("userset.txt");

    let lab = Lab::new(2);
    let peaks = lab.dir().join("nft-peaks");
    let real_nft = "/usr/sbin/nft";
    let wrapper = lab.write_file(
        "nft-measured",
        &format!(
            "#!/usr/bin/python3\n\
             import resource, subprocess, sys\n\
             rc = subprocess.call([{real_nft:?}] + sys.argv[1:])\n\
             with open({peaks:?}, 'a') as f:\n\
             \x20   f.write('%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
             sys.exit(rc)\n",
            peaks = peaks.display().to_string()
        ),
    );
    make_executable(&wrapper);
    let wrapper = wrapper.display().to_string();
    let opts = "option flap_damping '0'";
    let mut d = lab.start_daemon(
        &bin,
        &lab::config(&[1, 1], opts),
        &["--nft", wrapper.as_str()],
    );
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(15));
    report.say(format!(
        "user set in inet uplinkd: {elements} vs 0 elements, {runs} failovers each, binary {}",
        bin.display()
    ));

    let measure = |label: &str, d: &mut Daemon, report: &mut Report| {
        let _ = std::fs::write(&peaks, "");
        let t = failovers(&lab, d, runs);
        let (nft, n) = nft_peak(&peaks);
        let pid = d.pid();
        report.say(format!(
            "{label}: blackhole -> out of the group median {:.0} ms, max {:.0} ms {}; daemon RSS {} kB (peak {} kB); nft peak {} kB over {} runs",
            median(&t),
            max(&t),
            list(&t, 0),
            proc_kb(pid, "VmRSS:"),
            proc_kb(pid, "VmHWM:"),
            nft,
            n
        ));
    };
    measure("empty", &mut d, &mut report);

    // The user's set, filled the way dnsmasq does: in our table, beside our sets.
    let mut script =
        String::from("add set inet uplinkd user_dns { type ipv4_addr; size 1048576; }\n");
    let mut i = 0;
    while i < elements {
        let end = (i + 10_000).min(elements);
        script.push_str("add element inet uplinkd user_dns { ");
        for j in i..end {
            let _ = write!(
                script,
                "100.{}.{}.{}, ",
                64 + (j >> 16) % 64,
                (j >> 8) & 255,
                j & 255
            );
        }
        script.push_str("}\n");
        i = end;
    }
    lab.nft("rtr", &script);
    measure(&format!("{elements} elements"), &mut d, &mut report);
    let count = lab.exec(
        "rtr",
        &["nft", "list", "set", "inet", "uplinkd", "user_dns"],
    );
    let text = String::from_utf8_lossy(&count.stdout);
    report.say(format!(
        "the user's set after the failovers: {}",
        if text.contains("100.64.0.0") {
            "still there with its elements"
        } else {
            "GONE or emptied"
        }
    ));
    report.write();
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}
