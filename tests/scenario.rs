//! Scenario tests: the whole pure core (engine, health, plan, reconcile) driven through
//! hours of simulated time with a seeded loss model. No kernel, no sockets, no sleeping:
//! the "kernel" is the set of objects the reconciler's operations produce, and when it
//! is synced is what the daemon's own sync schedule (`uplinkd::sync`) says.

use std::net::IpAddr;

use uplinkd::config::Config;
use uplinkd::engine::{Engine, Output};
use uplinkd::health::State;
use uplinkd::kernel::{group_members, Address, Family, ForeignDefault, Link, Object, Snapshot};
use uplinkd::plan::Desired;
use uplinkd::reconcile::{reconcile, Op};
use uplinkd::sync::Schedule;
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
    /// When a sync (dump, reconcile, apply) ran.
    syncs: Vec<Instant>,
    nft_loads: usize,
    flushes: Vec<(Instant, usize)>,
    kernel: Vec<Object>,
}

/// The simulated kernel, synced as the daemon syncs it: when the schedule says so.
struct Shell {
    kernel: Vec<Object>,
    schedule: Schedule,
    applied: Option<Desired>,
    /// Whether the kernel takes writes at a time (`false`: every write fails).
    writable: fn(Instant) -> bool,
}

impl Shell {
    /// Dump, feed the engine, load nft (at once), reconcile, apply: the number of
    /// writes, as `sync_kernel` does it.
    fn sync(&mut self, engine: &mut Engine, out: &mut Run, now: Instant) -> usize {
        let interval = engine.config().globals.reconcile_interval;
        self.schedule.begin(now, interval);
        out.syncs.push(now);
        engine.on_snapshot(&snapshot(&self.kernel), now);
        let desired = engine.desired(true);
        self.schedule.want_nft(desired.nft.clone());
        if let Some(ruleset) = self.schedule.nft_load(now).cloned() {
            // The simulated nft loads at once: nothing waits for it.
            self.schedule.nft_finished(now, ruleset, Ok(()));
            out.nft_loads += 1;
        }
        let ops = reconcile(&desired.objects, &self.kernel);
        self.applied = Some(desired);
        if !ops.is_empty() && !(self.writable)(now) {
            self.schedule
                .routes_done(now, Some("Operation not permitted".into()));
            return 0;
        }
        apply(&mut self.kernel, &ops);
        self.schedule.routes_done(now, None);
        ops.len()
    }

    fn due(&self, engine: &Engine, now: Instant) -> bool {
        let dirty = self.applied.as_ref() != Some(&engine.desired(true));
        self.schedule.due(now, dirty, false)
    }
}

/// Drive the core for `duration` in 10 ms steps. `loss(wan, t)` gives the loss percent
/// of a WAN at a time; replies come back 20 ms after their probe unless lost.
fn run(duration: Duration, seed: u64, loss: impl Fn(usize, Instant) -> u64) -> Run {
    run_with(duration, seed, loss, |_| true)
}

fn run_with(
    duration: Duration,
    seed: u64,
    loss: impl Fn(usize, Instant) -> u64,
    writable: fn(Instant) -> bool,
) -> Run {
    let cfg = Config::parse("scenario", CONFIG).expect("config");
    let mut rng = Rng(seed);
    let mut engine = Engine::new(cfg, None, 0x1000, Instant::ZERO);
    let mut shell = Shell {
        kernel: Vec::new(),
        schedule: Schedule::new(Instant::ZERO),
        applied: None,
        writable,
    };
    let mut pending: Vec<(Instant, usize, IpAddr, u16)> = Vec::new();
    let mut out = Run {
        transitions: Vec::new(),
        writes: 0,
        syncs: Vec::new(),
        nft_loads: 0,
        flushes: Vec::new(),
        kernel: Vec::new(),
    };
    let step = Duration::from_millis(10);
    let mut now = Instant::ZERO;
    let end = Instant::ZERO + duration;
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
                Output::Flush { wan, .. } => out.flushes.push((now, wan)),
                Output::Gateway { .. }
                | Output::AskNetifd { .. }
                | Output::Role { .. }
                | Output::Moved { .. }
                | Output::Quota(_) => {}
            }
        }
        if shell.due(&engine, now) {
            out.writes += shell.sync(&mut engine, &mut out, now);
        }
        now = now + step;
    }
    // A resync finds nothing to do.
    assert_eq!(shell.sync(&mut engine, &mut out, now), 0, "kernel drifted");
    out.kernel = shell.kernel;
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
    // The nft table follows each transition too, and each outage flushes wan2's
    // pinned connections once.
    assert_eq!(r.nft_loads, 1 + 24, "nft loads");
    assert_eq!(r.flushes.len(), 12, "{:?}", r.flushes);
    assert!(r.flushes.iter().all(|(t, w)| *w == 1 && downs.contains(t)));
    // Besides those, the periodic resync every 30 s and nothing else.
    assert!(
        r.syncs.len() <= 1 + 24 + 2 * 3600 / 30 + 1,
        "{} syncs",
        r.syncs.len()
    );
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

#[test]
fn a_kernel_refusing_writes_is_retried_with_backoff_not_every_step() {
    // Writes fail for the first minute (a read-only netlink, a missing module).
    let r = run_with(
        Duration::from_secs(120),
        5,
        |_, _| 0,
        |t| t >= Instant::ZERO + Duration::from_secs(60),
    );
    let at: Vec<u64> = r.syncs.iter().map(|t| t.millis()).collect();
    // 0.5 s, doubling to 30 s (the periodic resync adds none: each try moves it);
    // the try after the kernel takes writes again converges; then the periodic one.
    assert_eq!(
        at,
        [0, 500, 1500, 3500, 7500, 15500, 31500, 61500, 91500, 120_000]
    );
    assert_eq!(r.writes, 23);
    assert_eq!(group(&r.kernel), vec![1100, 1101, 1102]);
}
