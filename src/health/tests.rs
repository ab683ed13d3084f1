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
