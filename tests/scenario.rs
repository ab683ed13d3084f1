//! Scenario tests: the whole pure core (engine, health, plan, reconcile) driven through
//! hours of simulated time with a seeded loss model. No kernel, no sockets, no sleeping:
//! the "kernel" is the set of objects the reconciler's operations produce.

use std::net::IpAddr;

use uplinkd::config::Config;
use uplinkd::engine::{Engine, Output};
use uplinkd::health::State;
use uplinkd::kernel::{group_members, Address, Family, ForeignDefault, Link, Object, Snapshot};
use uplinkd::reconcile::{reconcile, Op};
use uplinkd::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so every run sees the same losses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const CONFIG: &str = "
config globals 'globals'
	option default_policy 'balanced'

config interface 'wan1'
	option device 'wan1'
	list track_ip '203.0.113.1'
	list track_ip '203.0.113.2'
	list track_ip '203.0.113.3'

config interface 'wan2'
	option device 'wan2'
	list track_ip '203.0.113.1'
	list track_ip '203.0.113.2'
	list track_ip '203.0.113.3'

config interface 'wan3'
	option device 'wan3'
	list track_ip '203.0.113.1'
	list track_ip '203.0.113.2'
	list track_ip '203.0.113.3'

config member 'm1'
	option interface 'wan1'
	option weight '3'

config member 'm2'
	option interface 'wan2'

config member 'm3'
	option interface 'wan3'

config policy 'balanced'
	list use_member 'm1'
	list use_member 'm2'
	list use_member 'm3'
";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn snapshot(owned: &[Object]) -> Snapshot {
    let mut s = Snapshot {
        nexthops_supported: true,
        owned: owned.to_vec(),
        ..Snapshot::default()
    };
    for k in 1..=3u32 {
        s.links.push(Link {
            ifindex: 10 + k,
            name: format!("wan{k}"),
            up: true,
            carrier: true,
        });
        s.addresses.push(Address {
            ifindex: 10 + k,
            addr: ip(&format!("10.20.{k}.2")),
            prefix_len: 24,
        });
        s.foreign_defaults.push(ForeignDefault {
            family: Family::V4,
            table: 254,
            ifindex: 10 + k,
            gateway: Some(ip(&format!("10.20.{k}.1"))),
            metric: 10 * k,
            src: None,
        });
    }
    s
}

/// Apply ops to the simulated kernel.
fn apply(kernel: &mut Vec<Object>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Add(o) | Op::Replace(o) => {
                kernel.retain(|k| k.key() != o.key());
                kernel.push(o.clone());
            }
            Op::Delete(o) => kernel.retain(|k| k.key() != o.key()),
        }
    }
}

fn group(kernel: &[Object]) -> Vec<u32> {
    group_members(kernel, 1199)
        .map(|m| m.iter().map(|m| m.id).collect())
        .unwrap_or_default()
}

struct Run {
    transitions: Vec<(Instant, usize, State)>,
    writes: usize,
    kernel: Vec<Object>,
}

/// Drive the core for `duration` in 10 ms steps. `loss(wan, t)` gives the loss percent
/// of a WAN at a time; replies come back 20 ms after their probe unless lost.
fn run(duration: Duration, seed: u64, loss: impl Fn(usize, Instant) -> u64) -> Run {
    let cfg = Config::parse("scenario", CONFIG).expect("config");
    let mut rng = Rng(seed);
    let mut engine = Engine::new(cfg, None, 0x1000, Instant::ZERO);
    let mut kernel: Vec<Object> = Vec::new();
    let mut pending: Vec<(Instant, usize, IpAddr, u16)> = Vec::new();
    let mut out = Run {
        transitions: Vec::new(),
        writes: 0,
        kernel: Vec::new(),
    };
    let step = Duration::from_millis(10);
    let mut now = Instant::ZERO;
    let end = Instant::ZERO + duration;
    let sync = |engine: &mut Engine, kernel: &mut Vec<Object>, now: Instant| -> usize {
        engine.on_snapshot(&snapshot(kernel), now);
        let desired = engine.desired(true);
        let ops = reconcile(&desired.objects, kernel);
        apply(kernel, &ops);
        ops.len()
    };
    out.writes += sync(&mut engine, &mut kernel, now);
    let mut last_desired = engine.desired(true);
    while now < end {
        let mut replies = Vec::new();
        pending.retain(|p| {
            if p.0 <= now {
                replies.push(*p);
                false
            } else {
                true
            }
        });
        for (_, wan, from, seq) in replies {
            let ident = engine.wans()[wan].ident;
            engine.on_reply(wan, from, ident, seq, now);
        }
        for o in engine.poll(now) {
            match o {
                Output::Probe {
                    wan, target, seq, ..
                } => {
                    if !rng.chance(loss(wan, now)) {
                        pending.push((now + Duration::from_millis(20), wan, target, seq));
                    }
                }
                Output::Transition { wan, event } => out.transitions.push((now, wan, event.to)),
                Output::Gateway { .. }
                | Output::AskNetifd { .. }
                | Output::Role { .. }
                | Output::Flush { .. }
                | Output::Moved { .. }
                | Output::Quota(_) => {}
            }
        }
        let desired = engine.desired(true);
        if desired != last_desired {
            out.writes += sync(&mut engine, &mut kernel, now);
            last_desired = desired;
        }
        now = now + step;
    }
    // A periodic resync finds nothing to do.
    assert_eq!(sync(&mut engine, &mut kernel, now), 0, "kernel drifted");
    out.kernel = kernel;
    out
}

#[test]
fn fifteen_percent_loss_for_four_hours_never_takes_a_wan_down() {
    let r = run(Duration::from_secs(4 * 3600), 7, |wan, _| {
        if wan == 0 {
            15
        } else {
            0
        }
    });
    assert!(r.transitions.is_empty(), "{:?}", r.transitions);
    assert_eq!(group(&r.kernel), vec![1100, 1101, 1102]);
}

#[test]
fn outages_are_detected_in_bounded_time_and_cost_one_write_each() {
    // WAN2 loses everything for 60 s once every 10 minutes, for two hours.
    let outage = |t: Instant| {
        let s = t.millis() / 1000 % 600;
        (300..360).contains(&s)
    };
    let r = run(Duration::from_secs(2 * 3600), 11, |wan, t| {
        if wan == 1 && outage(t) {
            100
        } else {
            0
        }
    });
    let downs: Vec<Instant> = r
        .transitions
        .iter()
        .filter(|(_, w, s)| *w == 1 && *s == State::Down)
        .map(|t| t.0)
        .collect();
    let ups = r
        .transitions
        .iter()
        .filter(|(_, w, s)| *w == 1 && *s == State::Up)
        .count();
    assert_eq!(downs.len(), 12, "{:?}", r.transitions);
    assert_eq!(ups, 12);
    for d in &downs {
        let into = d.millis() / 1000 % 600 * 1000 + d.millis() % 1000 - 300_000;
        // interval + timeout + (down - 1) x failure_interval = 1 + 1 + 2 s
        assert!(into <= 4000, "detected {into} ms into the outage");
    }
    assert!(r.transitions.iter().all(|(_, w, _)| *w == 1));
    // Initial layout (23 objects), then one group replace per transition.
    assert_eq!(r.writes, 23 + 24, "writes");
    assert_eq!(group(&r.kernel), vec![1100, 1101, 1102]);
}

#[test]
fn a_wan_flapping_for_an_hour_is_held_and_bounded() {
    // WAN3 alternates 5 s dead / 5 s alive: probes see it fall, and recover only to fall.
    let r = run(Duration::from_secs(3600), 3, |wan, t| {
        if wan == 2 && t.millis() / 5000 % 2 == 0 {
            100
        } else {
            0
        }
    });
    let held = r
        .transitions
        .iter()
        .any(|(_, w, s)| *w == 2 && matches!(s, State::Held { .. }));
    assert!(held, "{:?}", r.transitions);
    // Without damping WAN3 would change state twice per 10 s cycle: 720 times an hour.
    let changes = r.transitions.iter().filter(|(_, w, _)| *w == 2).count();
    assert!(changes < 20, "{changes} transitions: {:?}", r.transitions);
}
