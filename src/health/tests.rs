//! Health timelines: explicit times, one round per line, nothing sleeps.

use super::*;
use crate::config::{Damping, Quality};
use crate::testutil::interface;

const OK: Answer = Some(Duration::from_millis(20));
const LOST: Answer = None;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn three() -> Interface {
    interface(
        "wan",
        "eth1",
        &["203.0.113.1", "203.0.113.2", "203.0.113.3"],
    )
}

#[test]
fn down_after_three_lost_rounds_up_after_three_good() {
    let cfg = three();
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.state(), State::Up);
    assert_eq!(h.interval(&cfg), cfg.interval);
    assert_eq!(h.on_round(&cfg, &[LOST, LOST, LOST], at(1000)), None);
    assert_eq!(h.interval(&cfg), cfg.failure_interval);
    assert_eq!(h.on_round(&cfg, &[LOST, LOST, LOST], at(2000)), None);
    let ev = h
        .on_round(&cfg, &[LOST, LOST, LOST], at(3000))
        .expect("down");
    assert_eq!((ev.from, ev.to), (State::Up, State::Down));
    assert_eq!(
        ev.reason,
        Reason::Rounds {
            rounds: 3,
            answered: 0,
            targets: 3
        }
    );
    assert_eq!(h.since(), at(3000));
    // Still down: no repeated event.
    assert_eq!(h.on_round(&cfg, &[LOST, LOST, LOST], at(4000)), None);
    assert_eq!(h.on_round(&cfg, &[OK, LOST, LOST], at(5000)), None);
    assert_eq!(h.interval(&cfg), cfg.recovery_interval);
    assert_eq!(h.on_round(&cfg, &[OK, LOST, LOST], at(6000)), None);
    let ev = h.on_round(&cfg, &[LOST, OK, LOST], at(7000)).expect("up");
    assert_eq!((ev.from, ev.to), (State::Down, State::Up));
}

#[test]
fn a_good_round_resets_the_count() {
    let cfg = three();
    let mut h = Health::new(&cfg, Some(true), at(0));
    for (t, a) in [
        (1000, [LOST; 3]),
        (2000, [LOST; 3]),
        (3000, [OK, LOST, LOST]),
        (4000, [LOST; 3]),
        (5000, [LOST; 3]),
    ] {
        assert_eq!(h.on_round(&cfg, &a, at(t)), None, "t={t}");
    }
    assert_eq!(h.verdict().toward.map(|t| t.rounds), Some(2));
    assert!(h.on_round(&cfg, &[LOST; 3], at(6000)).is_some());
}

#[test]
fn reliability_counts_answering_targets() {
    let mut cfg = three();
    cfg.reliability = 2;
    cfg.down = 1;
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.on_round(&cfg, &[OK, OK, LOST], at(1000)), None);
    let ev = h.on_round(&cfg, &[OK, LOST, LOST], at(2000)).expect("down");
    assert_eq!(ev.to, State::Down);
}

#[test]
fn initial_state_offline_must_earn_up() {
    let mut cfg = three();
    cfg.initial_state = InitialState::Offline;
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.state(), State::Down);
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(1000)), None);
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(2000)), None);
    assert_eq!(
        h.on_round(&cfg, &[OK; 3], at(3000)).map(|e| e.to),
        Some(State::Up)
    );
}

#[test]
fn carrier_loss_is_immediate_and_recovery_needs_rounds() {
    let cfg = three();
    let mut h = Health::new(&cfg, Some(true), at(0));
    let ev = h.on_carrier(false, at(500)).expect("edge");
    assert_eq!(
        (ev.from, ev.to, ev.reason),
        (State::Up, State::NoCarrier, Reason::CarrierLost)
    );
    assert!(!h.probing());
    assert_eq!(h.on_carrier(false, at(600)), None, "edge-triggered");
    let ev = h.on_carrier(true, at(5000)).expect("edge");
    assert_eq!((ev.to, ev.reason), (State::Down, Reason::CarrierBack));
    assert!(h.probing());
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(6000)), None);
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(7000)), None);
    assert_eq!(
        h.on_round(&cfg, &[OK; 3], at(8000)).map(|e| e.to),
        Some(State::Up)
    );
}

#[test]
fn untracked_wan_follows_carrier() {
    let cfg = interface("wan", "eth1", &[]);
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.state(), State::Up);
    assert!(!h.probing());
    assert_eq!(
        h.on_carrier(false, at(1)).map(|e| e.to),
        Some(State::NoCarrier)
    );
    assert_eq!(h.on_carrier(true, at(2)).map(|e| e.to), Some(State::Up));
}

#[test]
fn quality_degrades_and_recovers_with_hysteresis() {
    let mut cfg = three();
    cfg.quality = Some(Quality {
        failure_latency: Duration::from_millis(200),
        recovery_latency: Duration::from_millis(100),
        failure_loss: 20,
        recovery_loss: 5,
    });
    let slow = Some(Duration::from_millis(300));
    let mid = Some(Duration::from_millis(150));
    let fast = Some(Duration::from_millis(10));
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.on_round(&cfg, &[slow; 3], at(1000)), None);
    assert_eq!(h.on_round(&cfg, &[slow; 3], at(2000)), None);
    let ev = h.on_round(&cfg, &[slow; 3], at(3000)).expect("degraded");
    assert_eq!(ev.to, State::Degraded);
    assert!(matches!(ev.reason, Reason::Quality { .. }));
    assert_eq!(ev.to.usability(), Usability::Fallback);
    // Between thresholds: the window mean falls but stays above recovery: still degraded.
    for t in 4..30 {
        assert_eq!(h.on_round(&cfg, &[mid; 3], at(t * 1000)), None, "t={t}");
    }
    // Fast answers drag the mean below recovery; then `up` rounds to return.
    let mut up_at = None;
    for t in 30..60 {
        if let Some(ev) = h.on_round(&cfg, &[fast; 3], at(t * 1000)) {
            assert_eq!(ev.to, State::Up);
            up_at = Some(t);
            break;
        }
    }
    assert!(up_at.is_some());
    // Losing every target from degraded goes down after `down` rounds.
    let mut h2 = h.clone();
    for t in 60..62 {
        assert_eq!(h2.on_round(&cfg, &[LOST; 3], at(t * 1000)), None);
    }
    assert_eq!(
        h2.on_round(&cfg, &[LOST; 3], at(62_000)).map(|e| e.to),
        Some(State::Down)
    );
}

#[test]
fn heavy_loss_mixing_degraded_and_lost_rounds_is_degraded() {
    // A WAN at ~50 % loss: the rounds some target answers point to "degraded" (every
    // target fails the loss check), the rounds none answers point to "down". Together
    // they are `down` rounds worse than up: the WAN is degraded, not kept up because
    // each kind restarts the other's count.
    let mut cfg = three();
    cfg.quality = Some(Quality {
        failure_latency: Duration::from_millis(1000),
        recovery_latency: Duration::from_millis(500),
        failure_loss: 20,
        recovery_loss: 5,
    });
    let mut h = Health::new(&cfg, Some(true), at(0));
    // Fill the windows with 50 % loss while still up (a lost round every other one
    // keeps every target above 20 % loss).
    let lossy = [OK, LOST, LOST];
    let rounds: [[Answer; 3]; 2] = [lossy, [LOST; 3]];
    let mut events = Vec::new();
    for t in 1..=12u64 {
        let answers = rounds[(t % 2) as usize];
        if let Some(ev) = h.on_round(&cfg, &answers, at(t * 1000)) {
            events.push((t, ev.to));
        }
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, State::Degraded, "{events:?}");
    // Staying this bad never takes it down (down needs `down` all-lost rounds in a row)
    // nor back up.
    for t in 13..40u64 {
        let answers = rounds[(t % 2) as usize];
        assert_eq!(h.on_round(&cfg, &answers, at(t * 1000)), None, "t={t}");
    }
    // All lost from there: down after `down` rounds.
    let mut down = None;
    for t in 40..50u64 {
        if let Some(ev) = h.on_round(&cfg, &[LOST; 3], at(t * 1000)) {
            down = Some((t, ev.to));
            break;
        }
    }
    // (Round 39 already lost everything: 39, 40, 41.)
    assert_eq!(down, Some((41, State::Down)));
}

#[test]
fn flapping_wan_is_held_then_released() {
    let mut cfg = three();
    cfg.damping = Some(Damping {
        penalty: 1000,
        suppress: 2000,
        reuse: 750,
        half_life: Duration::from_secs(10),
        max_hold: Duration::from_secs(60),
    });
    cfg.up = 1;
    let mut h = Health::new(&cfg, Some(true), at(0));
    let mut edges = Vec::new();
    // Carrier drops every 2 s, comes back and answers right away.
    for i in 0..5u64 {
        let t = i * 2000;
        edges.extend(h.on_carrier(false, at(t + 100)));
        edges.extend(h.on_carrier(true, at(t + 1000)));
        edges.extend(h.on_round(&cfg, &[OK; 3], at(t + 1500)));
    }
    let held = edges
        .iter()
        .find(|e| matches!(e.to, State::Held { .. }))
        .expect("held");
    assert!(matches!(held.reason, Reason::Damped { .. }));
    let State::Held { until } = h.state() else {
        panic!("still held: {:?}", h.state())
    };
    assert_eq!(h.poll_at(), Some(until));
    assert!(until <= at(9000 + 60_000 + 1));
    // Before the deadline nothing changes; at it, release.
    assert_eq!(h.poll(until - Duration::from_millis(500)), None);
    let ev = h.poll(until).expect("released");
    assert_eq!((ev.to, ev.reason), (State::Up, Reason::Released));
}

#[test]
fn disable_and_enable_are_edges() {
    let cfg = three();
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(
        h.set_enabled(false, at(1)).map(|e| e.to),
        Some(State::Disabled)
    );
    assert!(!h.probing());
    assert_eq!(h.set_enabled(false, at(2)), None);
    assert_eq!(h.set_enabled(true, at(3)).map(|e| e.to), Some(State::Up));
}

#[test]
fn first_carrier_report_keeps_the_initial_state() {
    let cfg = three();
    let mut h = Health::new(&cfg, None, at(0));
    assert_eq!(h.state(), State::Up);
    assert!(!h.probing(), "carrier unknown");
    assert_eq!(h.on_carrier(true, at(1)), None);
    assert!(h.probing());
    let mut h = Health::new(&cfg, None, at(0));
    let ev = h.on_carrier(false, at(1)).expect("edge");
    assert_eq!((ev.to, ev.reason), (State::NoCarrier, Reason::Start));
}

#[test]
fn history_is_bounded_and_transitions_are_counted() {
    let cfg = three();
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.history().count(), 0);
    for i in 0..(HISTORY_LEN as u64 + 10) {
        h.on_round(
            &cfg,
            &[OK, LOST, Some(Duration::from_millis(40))],
            at(i * 1000),
        );
    }
    assert_eq!(h.history().count(), HISTORY_LEN);
    let r = *h.history().last().unwrap();
    assert_eq!(r.rtt_us, Some(30_000));
    assert_eq!(r.loss_percent(), 33);
    let t = at(200_000);
    for _ in 0..3 {
        h.on_round(&cfg, &[LOST, LOST, LOST], t);
    }
    assert_eq!(h.state(), State::Down);
    assert_eq!(h.history().last().unwrap().rtt_us, None);
    assert_eq!(h.transitions()[State::Down.index()], 1);
    assert_eq!(State::NAMES[State::NoCarrier.index()], "no-carrier");
    assert_eq!(
        Round {
            rtt_us: None,
            answered: 0,
            targets: 0
        }
        .loss_percent(),
        0
    );
}

// Timelines of the probe schedule and health together: a path decides the fate of every
// probe (its RTT, or lost), the driver steps time in milliseconds.

use crate::probe::{Params, Reply, Scheduler, MIN_TIMEOUT};

/// The defaults: interval 1 s, timeout 1 s, failure interval 500 ms, down 3, up 3.
fn defaults() -> Interface {
    let mut cfg = three();
    cfg.failure_interval = Duration::from_millis(500);
    cfg
}

struct Sim {
    sched: Scheduler,
    health: Health,
    now: Instant,
    /// (arrives at, seq, target)
    flying: Vec<(Instant, u16, u8)>,
    events: Vec<(Instant, State)>,
    late: u32,
}

impl Sim {
    fn new(cfg: &Interface) -> Sim {
        Sim {
            sched: Scheduler::new(0),
            health: Health::new(cfg, Some(true), at(0)),
            now: at(0),
            flying: Vec::new(),
            events: Vec::new(),
            late: 0,
        }
    }

    /// Run until `until`; `fate(sent_at, target)` is the RTT of a probe, or `None` if it
    /// or its reply is lost.
    fn run(
        &mut self,
        cfg: &Interface,
        until: Instant,
        mut fate: impl FnMut(Instant, u8) -> Option<Duration>,
    ) {
        while self.now < until {
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = self.flying.drain(..).partition(|f| f.0 <= now);
            self.flying = rest;
            for (_, seq, target) in due {
                if self.sched.on_reply(seq, target, now) == Reply::Late {
                    self.late += 1;
                    self.health.on_late();
                }
            }
            while let Some(round) = self.sched.finished(now) {
                if let Some(e) = self.health.on_round(cfg, &round, now) {
                    self.events.push((now, e.to));
                }
            }
            let params = Params {
                targets: cfg.targets() as u8,
                per_round: cfg.targets() as u8,
                count: self.health.probes_per_target(cfg),
                timeout: cfg.timeout,
                interval: self.health.interval(cfg),
            };
            for p in self.sched.start(now, &params) {
                if let Some(rtt) = fate(now, p.target) {
                    self.flying.push((now + rtt, p.seq, p.target));
                }
            }
            self.now = now + Duration::from_millis(1);
        }
    }

    fn first(&self, state: State) -> Option<Instant> {
        self.events.iter().find(|e| e.1 == state).map(|e| e.0)
    }
}

/// A small deterministic generator (xorshift64*), so every run sees the same losses.
struct Rng(u64);

impl Rng {
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100
    }
}

const RTT: Duration = Duration::from_millis(20);

#[test]
fn a_blackhole_is_out_one_derived_timeout_after_two_confirmations() {
    let cfg = defaults();
    let mut sim = Sim::new(&cfg);
    // Rounds at 0, 1000, ...: by 10 s every target's RTT is well known (20 ms), so its
    // probes are lost after 200 ms (the floor), not after the 1 s timeout.
    sim.run(&cfg, at(10_300), |_, _| Some(RTT));
    assert_eq!(sim.sched.rtt()[0].timeout(cfg.timeout), MIN_TIMEOUT);
    // The path dies at 10.3 s. The round of 11.0 s is lost at 11.2 s; confirmations
    // start every 500 ms (11.5, 12.0) and each is lost 200 ms after it started.
    sim.run(&cfg, at(20_000), |_, _| None);
    assert_eq!(sim.events[0], (at(12_200), State::Down));
    // The same blackhole before the RTT is known: every round waits the full timeout.
    let mut cold = Sim::new(&cfg);
    cold.run(&cfg, at(300), |_, _| Some(RTT));
    cold.run(&cfg, at(10_000), |_, _| None);
    // Round 1.0 s lost at 2.0 s, confirmations at 2.0 and 2.5 s lost at 3.0 and 3.5 s.
    assert_eq!(cold.events[0], (at(3_500), State::Down));
}

#[test]
fn blackhole_to_out_over_every_phase_is_at_most_two_and_a_quarter_seconds() {
    let cfg = defaults();
    let mut outs = Vec::new();
    for phase in (0..1000).step_by(50) {
        let mut sim = Sim::new(&cfg);
        let t0 = at(10_000 + phase);
        sim.run(&cfg, at(20_000), |sent, _| (sent + RTT < t0).then_some(RTT));
        let down = sim.first(State::Down).expect("down");
        outs.push(down.saturating_since(t0).as_millis() as u64);
    }
    outs.sort_unstable();
    // A blackhole waits for the next round (0..1 s), which is lost after 200 ms, then
    // two confirmations 500 ms apart: 1.2..2.2 s, median 1.7 s.
    assert!(outs.iter().all(|&o| (1200..=2200).contains(&o)), "{outs:?}");
    assert_eq!(outs[outs.len() / 2], 1700, "{outs:?}");
}

#[test]
fn fifteen_percent_loss_each_way_for_an_hour_never_goes_down() {
    let cfg = defaults();
    let mut sim = Sim::new(&cfg);
    let mut rng = Rng(0x5eed);
    sim.run(&cfg, at(3_600_000), |_, _| {
        let there = rng.percent() >= 15;
        let back = rng.percent() >= 15;
        (there && back).then_some(RTT)
    });
    assert_eq!(sim.events, vec![], "no false down");
}

#[test]
fn total_loss_bursts_of_one_second_never_take_it_down_longer_ones_do() {
    let cfg = defaults();
    // A 1 s burst every 10 s for 5 minutes, at a phase that drifts against the rounds.
    let mut sim = Sim::new(&cfg);
    let burst = |t: Instant, len: u64| {
        let ms = t.millis();
        ms >= 10_000 && (ms + ms / 10_000 * 37) % 10_000 < len
    };
    sim.run(&cfg, at(310_000), |sent, _| {
        (!burst(sent, 1000) && !burst(sent + RTT / 2, 1000)).then_some(RTT)
    });
    assert_eq!(
        sim.events,
        vec![],
        "1 s bursts are within (down - 1) x failure_interval"
    );
    // 1.5 s bursts: a lost round, and both confirmations, can fall inside one.
    let mut sim = Sim::new(&cfg);
    sim.run(&cfg, at(310_000), |sent, _| {
        (!burst(sent, 1500) && !burst(sent + RTT / 2, 1500)).then_some(RTT)
    });
    assert!(sim.first(State::Down).is_some());
}

#[test]
fn a_path_that_turns_slow_is_not_taken_for_dead() {
    let cfg = defaults();
    let mut sim = Sim::new(&cfg);
    sim.run(&cfg, at(10_000), |_, _| Some(RTT));
    // A saturated uplink: the RTT jumps from 20 ms to 700 ms, past the 200 ms derived
    // deadline but within the 1 s timeout. Rounds are judged lost at 200 ms, then the
    // late replies cancel the fall being confirmed, and the deadlines grow to fit.
    sim.run(&cfg, at(60_000), |_, _| Some(Duration::from_millis(700)));
    assert_eq!(sim.events, vec![]);
    assert!(sim.late > 0);
    let t = sim.sched.rtt()[0].timeout(cfg.timeout);
    assert!(t > Duration::from_millis(700), "{t:?}");
    assert_eq!(sim.health.verdict().toward, None);
}

#[test]
fn recovery_after_a_blackhole_still_needs_up_rounds_at_the_recovery_pace() {
    let cfg = defaults();
    let mut sim = Sim::new(&cfg);
    sim.run(&cfg, at(10_300), |_, _| Some(RTT));
    sim.run(&cfg, at(30_300), |_, _| None);
    assert_eq!(sim.first(State::Down), Some(at(12_200)));
    sim.run(&cfg, at(60_000), |_, _| Some(RTT));
    // Back at 30.3 s: rounds every second (recovery_interval), three good ones.
    let up = sim.first(State::Up).expect("up");
    assert!(
        up >= at(32_300) && up <= at(33_400),
        "up at {up} ({:?})",
        sim.events
    );
}

#[test]
fn a_failed_gateway_is_down_at_once_and_comes_back_by_rounds() {
    let cfg = defaults();
    let mut h = Health::new(&cfg, Some(true), at(0));
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(1000)), None);
    // The kernel's ARP for the gateway went unanswered (NUD_FAILED) at 1.5 s.
    let ev = h.on_gateway_failed(at(1500)).expect("edge");
    assert_eq!(
        (ev.from, ev.to, ev.reason),
        (State::Up, State::Down, Reason::GatewayFailed)
    );
    assert_eq!(h.on_gateway_failed(at(1600)), None, "edge-triggered");
    assert_eq!(h.interval(&cfg), cfg.recovery_interval);
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(3000)), None);
    assert_eq!(h.on_round(&cfg, &[OK; 3], at(4000)), None);
    assert_eq!(
        h.on_round(&cfg, &[OK; 3], at(5000)).map(|e| e.to),
        Some(State::Up)
    );
    // A WAN without targets follows its carrier only.
    let untracked = interface("wan", "eth1", &[]);
    let mut h = Health::new(&untracked, Some(true), at(0));
    assert_eq!(h.on_gateway_failed(at(10)), None);
    assert_eq!(h.state(), State::Up);
}
