//! Lab benchmark for the data plane: what happens to connections when WANs change, in
//! the namespace lab against the real kernel. Numbers, not assertions: run it with
//! `bench/run.sh` and read the report (also written to `bench/out/flows.txt`).
//!
//! Measured:
//! - connections broken per event, on the ISPs that stayed up (goal: 0) and on the one
//!   that failed, over 150 long-lived TCP connections: weight change, blackhole,
//!   recovery, carrier loss and return, a fourth WAN, a drain;
//! - new-flow share error after weight changes (300 new connections, worst ISP, points);
//! - time for a UDP flow (fixed 5-tuple) pinned to a failed ISP to be answered through
//!   another one, from the moment the WAN leaves the group;
//! - IPv6 (dual-stack lab): blackhole → out of the IPv6 group at the default timers, and
//!   the same UDP resume time for an IPv6 flow.

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{list, max, median, ms, Report};
use lab::{wait_until, Break, Lab, LongConn, NH6_OFFSET, TABLE_FIRST};

/// Fast probing, damping off: the benchmark breaks ISPs on purpose, again and again.
const FAST: &str = "option interval '0.5'\noption timeout '1'\noption failure_interval '0.5'\noption recovery_interval '0.5'\noption flap_damping '0'";
const WAIT: Duration = Duration::from_secs(15);

/// Which connections still carry a round trip (all written first, then each read with
/// what is left of one shared deadline).
fn alive(conns: &[LongConn]) -> Vec<bool> {
    use std::io::{Read, Write};
    let sent: Vec<bool> = conns
        .iter()
        .map(|c| (&c.stream).write_all(b"bench\n").is_ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    conns
        .iter()
        .zip(sent)
        .map(|(c, ok)| {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50));
            let _ = c.stream.set_read_timeout(Some(left));
            let mut buf = [0u8; 6];
            ok && (&c.stream).read_exact(&mut buf).is_ok() && &buf == b"bench\n"
        })
        .collect()
}

/// After an event: connections that broke in it, on the ISPs in `up` and on the others;
/// the broken ones are dropped so the next event counts afresh.
fn broken(conns: &mut Vec<LongConn>, up: &[usize]) -> (usize, usize, usize) {
    let mask = alive(conns);
    let (mut on_up, mut elsewhere) = (0, 0);
    for (c, ok) in conns.iter().zip(&mask) {
        match (ok, up.contains(&c.isp)) {
            (true, _) => {}
            (false, true) => on_up += 1,
            (false, false) => elsewhere += 1,
        }
    }
    let mut keep = mask.into_iter();
    conns.retain(|_| keep.next().unwrap_or(false));
    (on_up, elsewhere, conns.len())
}

/// The worst distance, in percentage points, between new connections' shares and `want`.
fn share_error(lab: &Lab, want: &BTreeMap<usize, f64>) -> (f64, String) {
    let t = lab.connect_many(300);
    let err = (1..=4)
        .map(|k| (t.share(k) - want.get(&k).copied().unwrap_or(0.0)).abs())
        .fold(0.0, f64::max);
    let shares: Vec<String> = (1..=4)
        .filter(|k| t.share(*k) > 0.0 || want.contains_key(k))
        .map(|k| format!("ISP{k} {:.1}%", t.share(k)))
        .collect();
    (err, format!("{} ({} failed)", shares.join(", "), t.failed))
}

fn v4_events(bin: &Path, r: &mut Report) {
    let lab = Lab::new(4);
    let mut d = lab.start_daemon(bin, &lab::config(&[1, 1, 1], FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], WAIT);
    let mut conns = lab.open_long_lived(150);
    r.say(format!(
        "150 long-lived TCP connections opened ({} established)",
        conns.len()
    ));
    let mut event = |r: &mut Report, name: &str, up: &[usize]| {
        let (on_up, elsewhere, alive) = broken(&mut conns, up);
        r.say(format!(
            "{name}: {on_up} broke on ISPs that stayed up, {elsewhere} on the failed one; {alive} still open"
        ));
    };

    d.write_config(&lab::config(&[3, 1, 1], FAST));
    d.reload();
    std::thread::sleep(Duration::from_millis(500));
    event(r, "weights 1:1:1 -> 3:1:1", &[1, 2, 3]);
    let want: BTreeMap<usize, f64> = [(1, 60.0), (2, 20.0), (3, 20.0)].into_iter().collect();
    let (err, shares) = share_error(&lab, &want);
    r.say(format!(
        "new-flow share error after 3:1:1: {err:.1} points (300 new connections: {shares})"
    ));

    lab.break_isp(2, Break::Blackhole);
    lab.wait_group(&mut d, &[1, 3], WAIT);
    event(r, "ISP2 blackhole", &[1, 3]);
    lab.restore(2);
    lab.wait_group(&mut d, &[1, 2, 3], WAIT);
    event(r, "ISP2 recovers", &[1, 2, 3]);

    lab.break_isp(3, Break::Carrier);
    lab.wait_group(&mut d, &[1, 2], WAIT);
    event(r, "ISP3 carrier loss", &[1, 2]);
    lab.restore(3);
    lab.wait_group(&mut d, &[1, 2, 3], WAIT);

    d.write_config(&lab::config(&[3, 1, 1, 1], FAST));
    d.reload();
    lab.wait_group(&mut d, &[1, 2, 3, 4], WAIT);
    event(r, "a fourth WAN joins (3:1:1:1)", &[1, 2, 3, 4]);
    let want: BTreeMap<usize, f64> = [(1, 50.0), (2, 16.7), (3, 16.7), (4, 16.7)]
        .into_iter()
        .collect();
    let (err, shares) = share_error(&lab, &want);
    r.say(format!(
        "new-flow share error after 3:1:1:1: {err:.1} points ({shares})"
    ));

    let out = lab.control(bin, &["disable", "wan1"]);
    assert!(out.status.success(), "disable wan1 failed");
    lab.wait_group(&mut d, &[2, 3, 4], WAIT);
    event(r, "ISP1 drained", &[1, 2, 3, 4]);
    let t = lab.connect_many(100);
    r.say(format!(
        "drained ISP1: {:.1}% of 100 new connections",
        t.share(1)
    ));
    d.stop();
}

/// Time for a UDP flow on the failed ISP to be answered elsewhere, `runs` times.
fn udp_resume(
    lab: &Lab,
    d: &mut lab::Daemon,
    server: IpAddr,
    out_of_group: &dyn Fn() -> bool,
    back: &mut dyn FnMut(&mut lab::Daemon),
    runs: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut detect, mut resume) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let Some(flow) = (0..60)
            .filter_map(|_| {
                let f = lab.udp_flow_to(server).ok()?;
                (f.ask().ok()? == 1).then_some(f)
            })
            .next()
        else {
            continue;
        };
        let start = Instant::now();
        lab.break_isp(1, Break::Blackhole);
        if wait_until(
            Duration::from_secs(10),
            Duration::from_millis(5),
            out_of_group,
        )
        .is_ok()
        {
            detect.push(ms(start.elapsed()));
            let t = wait_until(
                Duration::from_secs(5),
                Duration::from_millis(1),
                || matches!(flow.ask(), Ok(k) if k != 1),
            );
            if let Ok(t) = t {
                resume.push(ms(t));
            }
        }
        lab.restore(1);
        back(d);
    }
    (detect, resume)
}

fn v4_udp(bin: &Path, runs: usize, r: &mut Report) {
    let lab = Lab::new(2);
    let mut d = lab.start_daemon(bin, &lab::config(&[1, 1], FAST), &[]);
    lab.wait_group(&mut d, &[1, 2], WAIT);
    let server = IpAddr::V4(lab::SERVER);
    let out = || !lab.in_group(1);
    let mut back = |d: &mut lab::Daemon| {
        lab.wait_group(d, &[1, 2], WAIT);
    };
    let (_, resume) = udp_resume(&lab, &mut d, server, &out, &mut back, runs);
    r.say(format!(
        "IPv4 UDP flow on a blackholed ISP answered through the other: median {:.2} ms after the WAN left the group {} ms",
        median(&resume),
        list(&resume, 2)
    ));
    d.stop();
}

fn v6(bin: &Path, runs: usize, r: &mut Report) {
    let lab = Lab::new_dual_stack(2);
    let mut cfg = String::from("config globals 'globals'\n\toption default_policy 'balanced'\n");
    for k in 1..=2 {
        cfg.push_str(&format!(
            "\nconfig interface 'wan{k}'\n\toption device 'wan{k}'\n\toption family 'ipv6'\n\
             \tlist track_ip '{}'\n\tlist track_ip '{}'\n\toption flap_damping '0'\n\
             \nconfig member 'wan{k}_m'\n\toption interface 'wan{k}'\n",
            lab::TARGETS6[0],
            lab::TARGETS6[1]
        ));
    }
    cfg.push_str(
        "\nconfig policy 'balanced'\n\tlist use_member 'wan1_m'\n\tlist use_member 'wan2_m'\n",
    );
    let mut d = lab.start_daemon(bin, &cfg, &[]);
    let both = vec![TABLE_FIRST + NH6_OFFSET, TABLE_FIRST + NH6_OFFSET + 1];
    let mut back = |_: &mut lab::Daemon| {
        let _ = wait_until(WAIT, Duration::from_millis(20), || {
            lab.group6_members() == both
        });
    };
    back(&mut d);
    let out = || !lab.group6_members().contains(&(TABLE_FIRST + NH6_OFFSET));
    let server = IpAddr::V6(lab::server6(None));
    let (detect, resume) = udp_resume(&lab, &mut d, server, &out, &mut back, runs);
    r.say(format!(
        "IPv6 blackhole -> out of the IPv6 group: median {:.0} ms, max {:.0} ms over {} runs (default timers; bound I+T+(D-1)F = 4000 ms, plus the nft command that breaks the ISP)",
        median(&detect),
        max(&detect),
        detect.len()
    ));
    r.say(format!(
        "IPv6 UDP flow (ULA source, NAT66) on the blackholed ISP answered through the other: median {:.2} ms after the WAN left the group {} ms",
        median(&resume),
        list(&resume, 2)
    ));
    d.stop();
}

fn main() {
    let bin = lab::uplinkd_for_bench();
    let runs = common::runs();
    let mut r = Report::new("flows.txt");
    r.say(format!(
        "uplinkd flow benchmark, {runs} runs per latency, binary {}",
        bin.display()
    ));
    v4_events(&bin, &mut r);
    v4_udp(&bin, runs, &mut r);
    v6(&bin, runs, &mut r);
    r.write();
}
