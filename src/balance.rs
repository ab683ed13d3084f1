//! Policy modes beyond static weights: measurements in, effective weights out. Pure: the
//! daemon samples the kernel (live connections per WAN mark, link byte counters) and the
//! engine supplies smoothed RTTs, each with `now`; [`Balancer::tick`] turns them into a
//! weight per member of each policy, which the plan then applies to the members it
//! chose (usable, best tier). Every mode therefore ends in the same nft choice and
//! nexthop group as `weighted`: pinning, rules, sticky sets and draining are unchanged,
//! and an established connection never moves when its policy's weights do.
//!
//! ```text
//! weighted           configured weights (nothing here)
//! round_robin        configured weights; the data plane takes them in turn
//! least_connections  the members with the fewest live connections per unit of weight get
//!                    their weight, the others 0 (not chosen for new flows)
//! lowest_latency     the member with the lowest smoothed RTT; a challenger takes over
//!                    only after being better by `margin` for `hold` (no flapping)
//! least_used         weights follow spare capacity, recomputed every STEP, moving at
//!                    most MAX_STEP_CHANGE points (of 100) per step
//! overflow           the first member (policy order) under `threshold` % of its capacity
//!                    takes all new flows; when all are over, the least loaded one does
//! ```
//!
//! Weight 0 means "not for new flows"; the plan falls back to the configured weights when
//! the mode leaves no chosen member with a weight (measurements missing or stale), so a
//! mode can never make a usable policy choose nothing.

use std::collections::HashMap;

use crate::config::{Bandwidth, Config, Mode};
use crate::time::{Duration, Instant};

/// How often `least_used` recomputes its weights.
pub const STEP: Duration = Duration::from_secs(3);
/// Largest change of one `least_used` weight per step, in points of [`SCALE`].
pub const MAX_STEP_CHANGE: u16 = 20;
/// `least_used` and `overflow` weights are out of this.
pub const SCALE: u16 = 100;
/// A measurement older than this is ignored (the sampler stopped, the WAN went away).
pub const STALE: Duration = Duration::from_secs(5);

/// One sample of one WAN's measurements. `None`: not measured this time.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Live conntrack entries pinned to the WAN (its mark).
    pub connections: Option<u32>,
    /// The link's byte counters (received = download, sent = upload).
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
}

/// What is known about one WAN (by slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct WanState {
    connections: Option<(u32, Instant)>,
    /// Last counters and when they were read.
    counters: Option<(u64, u64, Instant)>,
    /// Smoothed use, kbit/s, down and up, and when last updated.
    rate: Option<(u64, u64, Instant)>,
    /// Smoothed RTT in microseconds, when last updated.
    srtt: Option<(u64, Instant)>,
}

/// Per-policy memory of the modes that have some.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PolicyState {
    None,
    Latency {
        current: Option<u32>,
        /// A member better than `current` by the margin, and since when.
        challenger: Option<(u32, Instant)>,
    },
    Used {
        next_at: Instant,
    },
}

/// Effective weights: per policy (config order), per WAN slot. A policy without an
/// entry, or a slot without one, keeps its configured weight.
pub type Weights = Vec<HashMap<u32, u16>>;

/// A member as the balancer sees it: WAN slot, configured weight, capacity.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub slot: u32,
    pub weight: u16,
    pub bandwidth: Bandwidth,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Clone, Debug, Default)]
pub struct Balancer {
    wans: HashMap<u32, WanState>,
    policies: Vec<PolicyState>,
    weights: Weights,
}

/// The members of policy `index`, in policy order (WAN slots from `slot_of`).
pub fn members(cfg: &Config, index: usize, slot_of: impl Fn(&str) -> Option<u32>) -> Vec<Member> {
    let Some(p) = cfg.policies.get(index) else {
        return Vec::new();
    };
    p.use_member
        .iter()
        .filter_map(|m| cfg.member(m))
        .filter_map(|m| {
            let i = cfg.interface(&m.interface)?;
            Some(Member {
                slot: slot_of(&i.name)?,
                weight: m.weight,
                bandwidth: i.bandwidth,
            })
        })
        .collect()
}

impl Balancer {
    /// The weights in force.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Smoothed use of a WAN, kbit/s (down, up), for status.
    pub fn rate(&self, slot: u32) -> Option<(u64, u64)> {
        self.wans.get(&slot)?.rate.map(|(d, u, _)| (d, u))
    }

    /// Feed one sampled WAN.
    pub fn on_sample(&mut self, slot: u32, s: Sample, now: Instant) {
        let w = self.wans.entry(slot).or_default();
        if let Some(c) = s.connections {
            w.connections = Some((c, now));
        }
        if let (Some(rx), Some(tx)) = (s.rx_bytes, s.tx_bytes) {
            if let Some((rx0, tx0, at)) = w.counters {
                let dt = now.saturating_since(at).as_micros();
                if dt > 0 {
                    // A counter that went backwards was reset (the device was re-created,
                    // a PPP reconnect): everything it shows now is new.
                    let d = |new: u64, old: u64| if new >= old { new - old } else { new };
                    // bytes/µs → kbit/s: × 8 × 10^6 / 1000.
                    let kbps = |bytes: u64| {
                        u64::try_from(u128::from(bytes) * 8000 / dt).unwrap_or(u64::MAX)
                    };
                    let (down, up) = (kbps(d(rx, rx0)), kbps(d(tx, tx0)));
                    w.rate = Some(match w.rate {
                        // EWMA with 1/2: a few seconds to follow a change.
                        Some((d0, u0, at)) if now.saturating_since(at) <= STALE => {
                            ((d0 + down) / 2, (u0 + up) / 2, now)
                        }
                        _ => (down, up, now),
                    });
                }
            }
            w.counters = Some((rx, tx, now));
        }
    }

    /// Feed one RTT measurement of a WAN (a probe round's mean).
    pub fn on_rtt(&mut self, slot: u32, rtt: Duration, now: Instant) {
        let w = self.wans.entry(slot).or_default();
        let x = micros(rtt);
        w.srtt = Some(match w.srtt {
            // EWMA with 1/4 (RFC 6298 uses 1/8; a quicker one moves flows within seconds).
            Some((s, at)) if now.saturating_since(at) <= STALE => ((3 * s + x) / 4, now),
            _ => (x, now),
        });
    }

    /// Forget a WAN's measurements (it went down, or away): stale values must not steer.
    pub fn forget(&mut self, slot: u32) {
        self.wans.remove(&slot);
    }

    /// Recompute the effective weights of every policy. `members[j]` are policy `j`'s
    /// members (see [`members`]); `usable` says which slots can take new flows now.
    /// Returns whether any weight changed.
    pub fn tick(
        &mut self,
        cfg: &Config,
        members: &[Vec<Member>],
        usable: impl Fn(u32) -> bool,
        now: Instant,
    ) -> bool {
        self.policies.resize(cfg.policies.len(), PolicyState::None);
        self.weights.resize(cfg.policies.len(), HashMap::new());
        let mut changed = false;
        for (j, p) in cfg.policies.iter().enumerate() {
            let ms: Vec<Member> = members
                .get(j)
                .map(|m| m.iter().copied().filter(|m| usable(m.slot)).collect())
                .unwrap_or_default();
            let next = match p.mode {
                Mode::Weighted | Mode::RoundRobin => HashMap::new(),
                Mode::LeastConnections => self.least_connections(&ms, now),
                Mode::LowestLatency { margin, hold } => {
                    self.lowest_latency(j, &ms, margin, hold, now)
                }
                Mode::LeastUsed => match self.least_used(j, &ms, now) {
                    Some(w) => w,
                    None => continue,
                },
                Mode::Overflow { threshold } => self.overflow(&ms, threshold, now),
            };
            if self.weights[j] != next {
                self.weights[j] = next;
                changed = true;
            }
        }
        changed
    }

    /// When the balancer next needs a tick: every second while a mode measures.
    pub fn poll_at(&self, cfg: &Config, last: Instant) -> Option<Instant> {
        cfg.policies
            .iter()
            .any(|p| !matches!(p.mode, Mode::Weighted | Mode::RoundRobin))
            .then(|| last + Duration::from_secs(1))
    }

    fn fresh<T: Copy>(v: Option<(T, Instant)>, now: Instant) -> Option<T> {
        v.filter(|(_, at)| now.saturating_since(*at) <= STALE)
            .map(|(x, _)| x)
    }

    fn least_connections(&self, ms: &[Member], now: Instant) -> HashMap<u32, u16> {
        let per_weight = |m: &Member| {
            let c = self
                .wans
                .get(&m.slot)
                .and_then(|w| Self::fresh(w.connections, now))?;
            // Connections per unit of weight, in millionths: exact enough to tell ties.
            Some(u64::from(c) * 1_000_000 / u64::from(m.weight.max(1)))
        };
        let Some(best) = ms.iter().filter_map(per_weight).min() else {
            return HashMap::new();
        };
        ms.iter()
            .map(|m| {
                let w = match per_weight(m) {
                    Some(v) if v == best => m.weight.max(1),
                    Some(_) => 0,
                    // Not measured: not preferred, but not excluded either.
                    None => 0,
                };
                (m.slot, w)
            })
            .collect()
    }

    fn lowest_latency(
        &mut self,
        j: usize,
        ms: &[Member],
        margin: Duration,
        hold: Duration,
        now: Instant,
    ) -> HashMap<u32, u16> {
        let srtt = |slot: u32| self.wans.get(&slot).and_then(|w| Self::fresh(w.srtt, now));
        let measured: Vec<(u32, u64)> = ms
            .iter()
            .filter_map(|m| Some((m.slot, srtt(m.slot)?)))
            .collect();
        let Some(&(best, best_rtt)) = measured.iter().min_by_key(|(s, r)| (*r, *s)) else {
            return HashMap::new();
        };
        let (mut current, mut challenger) = match &self.policies[j] {
            PolicyState::Latency {
                current,
                challenger,
            } => (*current, *challenger),
            _ => (None, None),
        };
        let current_rtt = current.and_then(|c| measured.iter().find(|m| m.0 == c).map(|m| m.1));
        match current_rtt {
            // No current member, or it is no longer usable or measured: take the best now.
            None => {
                current = Some(best);
                challenger = None;
            }
            Some(cur)
                if best != current.unwrap_or(best)
                    && best_rtt.saturating_add(micros(margin)) < cur =>
            {
                match challenger {
                    Some((c, since)) if c == best => {
                        if now.saturating_since(since) >= hold {
                            current = Some(best);
                            challenger = None;
                        }
                    }
                    _ => challenger = Some((best, now)),
                }
                // A hold of zero switches at once.
                if hold == Duration::ZERO {
                    current = Some(best);
                    challenger = None;
                }
            }
            Some(_) => challenger = None,
        }
        self.policies[j] = PolicyState::Latency {
            current,
            challenger,
        };
        ms.iter()
            .map(|m| {
                (
                    m.slot,
                    if Some(m.slot) == current {
                        m.weight.max(1)
                    } else {
                        0
                    },
                )
            })
            .collect()
    }

    /// Spare capacity of a member in kbit/s: the smaller spare share of the directions
    /// it has a capacity for, times its download (else upload) capacity.
    fn spare(&self, m: &Member, now: Instant) -> Option<(u64, u64)> {
        let (down, up) = self
            .wans
            .get(&m.slot)
            .and_then(|w| w.rate.filter(|r| now.saturating_since(r.2) <= STALE))
            .map(|(d, u, _)| (d, u))?;
        let b = m.bandwidth;
        // Spare share in per-mille, per direction with a capacity.
        let share = |cap: u32, used: u64| {
            (cap > 0).then(|| 1000u64.saturating_sub(used * 1000 / u64::from(cap)))
        };
        let share = match (share(b.down, down), share(b.up, up)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        let cap = u64::from(if b.down > 0 { b.down } else { b.up });
        // Also the used share in per-mille (for overflow).
        Some((cap * share / 1000, 1000 - share))
    }

    fn least_used(&mut self, j: usize, ms: &[Member], now: Instant) -> Option<HashMap<u32, u16>> {
        if let PolicyState::Used { next_at } = self.policies[j] {
            if now < next_at {
                return None;
            }
        }
        self.policies[j] = PolicyState::Used {
            next_at: now + STEP,
        };
        let spare: Vec<(u32, Option<u64>)> = ms
            .iter()
            .map(|m| (m.slot, self.spare(m, now).map(|s| s.0)))
            .collect();
        if spare.iter().all(|s| s.1.is_none()) {
            return Some(HashMap::new());
        }
        let total: u64 = spare.iter().filter_map(|s| s.1).sum();
        let old = &self.weights[j];
        Some(
            spare
                .iter()
                .map(|&(slot, s)| {
                    // Unmeasured members get an even share until measured.
                    let target = match (s, total) {
                        (None, _) => SCALE / ms.len().max(1) as u16,
                        (Some(_), 0) => SCALE / ms.len().max(1) as u16,
                        (Some(s), t) => (s * u64::from(SCALE) / t) as u16,
                    };
                    let from = old
                        .get(&slot)
                        .copied()
                        .unwrap_or(SCALE / ms.len().max(1) as u16);
                    let w = if target > from {
                        from + (target - from).min(MAX_STEP_CHANGE)
                    } else {
                        from - (from - target).min(MAX_STEP_CHANGE)
                    };
                    (slot, w)
                })
                .collect(),
        )
    }

    fn overflow(&self, ms: &[Member], threshold: u8, now: Instant) -> HashMap<u32, u16> {
        let used: Vec<(u32, Option<u64>)> = ms
            .iter()
            .map(|m| (m.slot, self.spare(m, now).map(|s| s.1)))
            .collect();
        // An unmeasured member counts as empty: it is filled first in its turn.
        let limit = u64::from(threshold) * 10;
        let pick = used
            .iter()
            .find(|(_, u)| u.unwrap_or(0) < limit)
            .or_else(|| used.iter().min_by_key(|(_, u)| u.unwrap_or(0)))
            .map(|(s, _)| *s);
        ms.iter()
            .map(|m| (m.slot, if Some(m.slot) == pick { SCALE } else { 0 }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::config;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn with_mode(weights: &[u16], mode: Mode) -> Config {
        let mut cfg = config(weights, 1);
        cfg.policies[0].mode = mode;
        for i in cfg.interfaces.iter_mut() {
            i.bandwidth = Bandwidth {
                down: 10_000,
                up: 1_000,
            };
        }
        cfg
    }

    fn all(cfg: &Config) -> Vec<Vec<Member>> {
        vec![members(cfg, 0, |n| {
            cfg.interfaces
                .iter()
                .position(|i| i.name == n)
                .map(|p| p as u32)
        })]
    }

    fn weights(b: &Balancer) -> Vec<(u32, u16)> {
        let mut w: Vec<(u32, u16)> = b.weights()[0].iter().map(|(s, w)| (*s, *w)).collect();
        w.sort();
        w
    }

    /// `kbps` down on `slot` for one second, from counters at `t` (ms).
    fn traffic(b: &mut Balancer, slot: u32, t: u64, rx_total: &mut u64, kbps: u64) {
        *rx_total += kbps * 1000 / 8;
        b.on_sample(
            slot,
            Sample {
                rx_bytes: Some(*rx_total),
                tx_bytes: Some(0),
                connections: None,
            },
            at(t),
        );
    }

    #[test]
    fn weighted_and_round_robin_keep_configured_weights() {
        for mode in [Mode::Weighted, Mode::RoundRobin] {
            let cfg = with_mode(&[3, 1], mode);
            let mut b = Balancer::default();
            assert!(!b.tick(&cfg, &all(&cfg), |_| true, at(0)));
            assert!(b.weights()[0].is_empty());
            assert_eq!(b.poll_at(&cfg, at(0)), None);
        }
    }

    #[test]
    fn timeline_least_connections_fills_the_emptier_member_until_even() {
        let cfg = with_mode(&[1, 1], Mode::LeastConnections);
        let ms = all(&cfg);
        let mut b = Balancer::default();
        let conns = |b: &mut Balancer, t: u64, c0: u32, c1: u32| {
            for (slot, c) in [(0, c0), (1, c1)] {
                let s = Sample {
                    connections: Some(c),
                    ..Sample::default()
                };
                b.on_sample(slot, s, at(t));
            }
        };
        // t=0: nothing measured yet: configured weights.
        b.tick(&cfg, &ms, |_| true, at(0));
        assert!(weights(&b).is_empty());
        // t=1s: 100 long-lived connections on wan1: new flows go to wan2 only.
        conns(&mut b, 1000, 100, 0);
        assert!(b.tick(&cfg, &ms, |_| true, at(1000)));
        assert_eq!(weights(&b), [(0, 0), (1, 1)]);
        // t=2s: wan2 has caught up: both again.
        conns(&mut b, 2000, 100, 100);
        b.tick(&cfg, &ms, |_| true, at(2000));
        assert_eq!(weights(&b), [(0, 1), (1, 1)]);
        // Unchanged measurements: no change reported.
        conns(&mut b, 3000, 100, 100);
        assert!(!b.tick(&cfg, &ms, |_| true, at(3000)));
        // wan2 unusable: it is not a candidate, wan1 takes everything.
        conns(&mut b, 4000, 100, 0);
        b.tick(&cfg, &ms, |s| s == 0, at(4000));
        assert_eq!(weights(&b), [(0, 1)]);
        // Measurements stop: stale after STALE, back to configured weights.
        b.tick(&cfg, &ms, |_| true, at(4000 + 6000));
        assert!(weights(&b).is_empty());
    }

    #[test]
    fn least_connections_divides_by_weight() {
        let cfg = with_mode(&[3, 1], Mode::LeastConnections);
        let ms = all(&cfg);
        let mut b = Balancer::default();
        for (slot, c) in [(0, 30), (1, 20)] {
            let s = Sample {
                connections: Some(c),
                ..Sample::default()
            };
            b.on_sample(slot, s, at(0));
        }
        b.tick(&cfg, &ms, |_| true, at(0));
        // 30/3 = 10 per unit of weight beats 20/1.
        assert_eq!(weights(&b), [(0, 3), (1, 0)]);
    }

    #[test]
    fn timeline_lowest_latency_with_hysteresis() {
        let mode = Mode::LowestLatency {
            margin: Duration::from_millis(10),
            hold: Duration::from_secs(5),
        };
        let cfg = with_mode(&[1, 1], mode);
        let ms = all(&cfg);
        let mut b = Balancer::default();
        let rtt = |b: &mut Balancer, t: u64, r0: u64, r1: u64| {
            b.on_rtt(0, Duration::from_millis(r0), at(t));
            b.on_rtt(1, Duration::from_millis(r1), at(t));
        };
        // wan1 at 20 ms, wan2 at 80 ms: wan1 takes the new flows.
        rtt(&mut b, 0, 20, 80);
        b.tick(&cfg, &ms, |_| true, at(0));
        assert_eq!(weights(&b), [(0, 1), (1, 0)]);
        // wan1 slows to 120 ms at t=1s; its smoothed RTT passes wan2's + margin at t=5s
        // (45, 64, 78, 88, 96 ms), and wan2 must stay better for 5 s: the switch at t=10s.
        let mut switched = None;
        for s in 1..=12u64 {
            rtt(&mut b, s * 1000, 120, 80);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
            if switched.is_none() && weights(&b) == [(0, 0), (1, 1)] {
                switched = Some(s);
            }
        }
        assert_eq!(switched, Some(10));
        // Jitter around equal RTTs within the margin: never switches back.
        for s in 13..=60u64 {
            let j = if s % 2 == 0 { 75 } else { 88 };
            rtt(&mut b, s * 1000, j, 80);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
            assert_eq!(weights(&b), [(0, 0), (1, 1)], "t={s}s");
        }
        // Jitter that crosses the margin now and then, never for 5 s: no switch.
        for s in 61..=120u64 {
            let j = if s % 4 == 0 { 20 } else { 120 };
            rtt(&mut b, s * 1000, j, 80);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
            assert_eq!(weights(&b), [(0, 0), (1, 1)], "t={s}s");
        }
        // The current member goes down: the other takes over at once.
        b.tick(&cfg, &ms, |s| s == 0, at(121_000));
        assert_eq!(weights(&b), [(0, 1)]);
    }

    #[test]
    fn timeline_least_used_follows_spare_capacity_in_bounded_steps() {
        let cfg = with_mode(&[1, 1], Mode::LeastUsed);
        let ms = all(&cfg);
        let mut b = Balancer::default();
        let (mut rx0, mut rx1) = (0u64, 0u64);
        let mut history = Vec::new();
        for s in 0..=30u64 {
            // wan1 saturated (10 Mbit/s of 10), wan2 idle.
            traffic(&mut b, 0, s * 1000, &mut rx0, 10_000);
            traffic(&mut b, 1, s * 1000, &mut rx1, 0);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
            history.push(weights(&b));
        }
        // Nothing until two counter readings give a rate; then from even, by at most
        // MAX_STEP_CHANGE per STEP, to all on wan2.
        assert!(history[..3].iter().all(|w| w.is_empty()), "{history:?}");
        assert_eq!(history[3], [(0, 30), (1, 70)]);
        for pair in history[3..].windows(2) {
            for (a, b) in pair[0].iter().zip(&pair[1]) {
                assert!(a.1.abs_diff(b.1) <= MAX_STEP_CHANGE, "{pair:?}");
            }
        }
        assert_eq!(history[30], [(0, 0), (1, 100)]);
        // Both half used: even again.
        for s in 31..=60u64 {
            traffic(&mut b, 0, s * 1000, &mut rx0, 5_000);
            traffic(&mut b, 1, s * 1000, &mut rx1, 5_000);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
        }
        // Even again (the EWMA's rounding leaves a point).
        let w = weights(&b);
        assert!(
            w[0].1.abs_diff(50) <= 1 && w[1].1.abs_diff(50) <= 1,
            "{w:?}"
        );
    }

    #[test]
    fn counter_reset_counts_from_zero_not_a_wrap() {
        let mut b = Balancer::default();
        let s = |rx| Sample {
            rx_bytes: Some(rx),
            tx_bytes: Some(0),
            connections: None,
        };
        b.on_sample(0, s(1_000_000_000), at(0));
        b.on_sample(0, s(1_000_000_000 + 125_000), at(1000));
        assert_eq!(b.rate(0), Some((1000, 0)));
        // PPP reconnect: the device is new, its counters start again.
        b.on_sample(0, s(125_000), at(2000));
        assert_eq!(b.rate(0), Some((1000, 0)));
    }

    #[test]
    fn timeline_overflow_fills_in_order_then_spills() {
        let cfg = with_mode(&[1, 1], Mode::Overflow { threshold: 80 });
        let ms = all(&cfg);
        let mut b = Balancer::default();
        let (mut rx0, mut rx1) = (0u64, 0u64);
        // Unmeasured: the first member.
        b.tick(&cfg, &ms, |_| true, at(0));
        assert_eq!(weights(&b), [(0, 100), (1, 0)]);
        // Below the threshold (5 of 10 Mbit/s): all on the first.
        for s in 0..=5u64 {
            traffic(&mut b, 0, s * 1000, &mut rx0, 5_000);
            traffic(&mut b, 1, s * 1000, &mut rx1, 0);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
            assert_eq!(weights(&b), [(0, 100), (1, 0)]);
        }
        // Above it (9.5 of 10): new flows spill to the second.
        for s in 6..=12u64 {
            traffic(&mut b, 0, s * 1000, &mut rx0, 9_500);
            traffic(&mut b, 1, s * 1000, &mut rx1, 1_000);
            b.tick(&cfg, &ms, |_| true, at(s * 1000));
        }
        assert_eq!(weights(&b), [(0, 0), (1, 100)]);
        // The first member down: the second, whatever its use.
        b.tick(&cfg, &ms, |s| s == 1, at(13_000));
        assert_eq!(weights(&b), [(1, 100)]);
    }
}
