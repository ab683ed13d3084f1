//! Per-WAN health: round hysteresis, link quality and flap damping. Pure and clock-free.
//!
//! Inputs are probe rounds (from [`crate::probe::Scheduler`]), carrier changes and the
//! administrative switch, each with `now`. The output is an edge-triggered [`Event`]
//! whenever the reported [`State`] changes, never a repeated "still down".

mod damping;
mod quality;

use core::fmt;

pub use damping::Damper;
pub use quality::{TargetStats, SAMPLE_WINDOW};

use crate::config::{InitialState, Interface};
use crate::time::{Duration, Instant};

/// What the probes say, from best to worst.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Enough targets answer, with acceptable latency and loss.
    Up,
    /// Enough targets answer, but latency or loss is above the failure thresholds.
    Degraded,
    /// Fewer than `reliability` targets answer.
    Down,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Up => "up",
            Level::Degraded => "degraded",
            Level::Down => "down",
        }
    }
}

/// Rounds seen in a row that point away from the current level.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Toward {
    pub level: Level,
    pub rounds: u8,
}

/// The probe verdict with its hysteresis.
///
/// Invariant: the verdict moves to a worse level only after `down` consecutive rounds
/// pointing worse, and to a better level only after `up` consecutive rounds pointing
/// better; it moves to the mildest level of that run (`toward` keeps it). A round that
/// agrees with the current level, or points the other way, restarts the count. Carrier
/// loss bypasses the count (see [`Health::on_carrier`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub level: Level,
    pub toward: Option<Toward>,
}

/// The state a WAN is reported in: what the plan, logs and status use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    Degraded,
    Down,
    /// Probes say up or degraded, but flap damping holds the WAN down until `until`.
    Held {
        until: Instant,
    },
    /// The device has no carrier (or does not exist).
    NoCarrier,
    /// `enabled 0`, or disabled at run time.
    Disabled,
}

impl State {
    /// Number of distinct states, and their names in [`State::index`] order.
    pub const COUNT: usize = 6;
    pub const NAMES: [&'static str; State::COUNT] =
        ["up", "degraded", "down", "held", "no-carrier", "disabled"];

    /// Whether the WAN still carries the connections pinned to it: not while it is down,
    /// held or without carrier (a drained WAN keeps its connections).
    pub fn carries_pinned(&self) -> bool {
        !matches!(self, State::Down | State::NoCarrier | State::Held { .. })
    }

    /// Position of this state in [`State::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            State::Up => 0,
            State::Degraded => 1,
            State::Down => 2,
            State::Held { .. } => 3,
            State::NoCarrier => 4,
            State::Disabled => 5,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Held { .. } => "held",
            State::NoCarrier => "no-carrier",
            State::Disabled => "disabled",
        }
    }

    /// Whether new traffic may use the WAN: fully, or only when nothing better exists.
    pub fn usability(&self) -> Usability {
        match self {
            State::Up => Usability::Full,
            State::Degraded => Usability::Fallback,
            _ => Usability::None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Usability {
    Full,
    Fallback,
    None,
}

/// Why a transition happened, for logs, events and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Start,
    /// `rounds` consecutive rounds pointing to the new level; `answered` of `targets`
    /// answered in the last one.
    Rounds {
        rounds: u8,
        answered: u8,
        targets: u8,
    },
    /// Latency or loss crossed a threshold (worst target's figures).
    Quality {
        rounds: u8,
        loss_percent: u8,
        latency: Duration,
    },
    CarrierLost,
    CarrierBack,
    /// The kernel failed to resolve the gateway on the link (ARP or NDP went
    /// unanswered): nothing can leave through it.
    GatewayFailed,
    /// netifd reports the interface down while its device still has carrier (ifdown, a
    /// lost DHCP lease or PPP session). Given by the engine in place of `CarrierLost`.
    NetifdDown,
    /// netifd reports the interface up again on a device that had carrier all along.
    NetifdUp,
    /// A fall pushed the flap penalty over `suppress`.
    Damped {
        penalty: u32,
    },
    /// The flap penalty decayed below `reuse`.
    Released,
    Disabled,
    Enabled,
    /// Nothing to probe: the WAN follows its carrier.
    Untracked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Start => f.write_str("initial state"),
            Reason::Rounds {
                rounds,
                answered,
                targets,
            } => write!(
                f,
                "{rounds} consecutive rounds, {answered}/{targets} targets answering"
            ),
            Reason::Quality {
                rounds,
                loss_percent,
                latency,
            } => write!(
                f,
                "{rounds} consecutive rounds, loss {loss_percent}%, latency {} ms",
                latency.as_millis()
            ),
            Reason::CarrierLost => f.write_str("carrier lost"),
            Reason::CarrierBack => f.write_str("carrier back, probing"),
            Reason::GatewayFailed => f.write_str("gateway does not answer ARP/NDP"),
            Reason::NetifdDown => f.write_str("netifd reports the interface down"),
            Reason::NetifdUp => f.write_str("netifd reports the interface up"),
            Reason::Damped { penalty } => write!(f, "flapping, penalty {penalty}"),
            Reason::Released => f.write_str("flap penalty decayed"),
            Reason::Disabled => f.write_str("disabled"),
            Reason::Enabled => f.write_str("enabled"),
            Reason::Untracked => f.write_str("no track_ip: following carrier"),
        }
    }
}

/// An edge: the reported state changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

/// One target's result in one round: the best RTT of its probes, or lost.
pub type Answer = Option<Duration>;

/// Health of one WAN.
#[derive(Clone, Debug)]
pub struct Health {
    verdict: Verdict,
    /// `None` until the first dump has told us.
    carrier: Option<bool>,
    enabled: bool,
    damper: Option<Damper>,
    targets: heapless::Vec<TargetStats, { crate::config::MAX_TARGETS }>,
    state: State,
    since: Instant,
    reason: Reason,
    /// Edges into each state since start, indexed by [`State::index`].
    transitions: [u64; State::COUNT],
    /// The last [`HISTORY_LEN`] probe rounds, oldest first.
    history: heapless::Deque<Round, HISTORY_LEN>,
}

/// Least probes per target in a round that confirms a fall.
pub const CONFIRM_COUNT: u8 = 2;

/// Probe rounds kept per WAN for charts.
pub const HISTORY_LEN: usize = 120;

/// One finished probe round, summarised for the history.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// Mean RTT of the targets that answered, in microseconds; `None` if none did.
    pub rtt_us: Option<u32>,
    pub answered: u8,
    pub targets: u8,
}

impl Round {
    /// Share of targets that did not answer, in percent.
    pub fn loss_percent(&self) -> u8 {
        if self.targets == 0 {
            return 0;
        }
        let lost = u32::from(self.targets.saturating_sub(self.answered));
        (lost * 100 / u32::from(self.targets)) as u8
    }
}

impl Health {
    /// A WAN as configured; `carrier` is `None` until the kernel has been asked: the
    /// first carrier report then keeps the initial state instead of starting recovery.
    pub fn new(cfg: &Interface, carrier: Option<bool>, now: Instant) -> Health {
        let level = match (cfg.targets() == 0, cfg.initial_state) {
            (true, _) | (false, InitialState::Online) => Level::Up,
            (false, InitialState::Offline) => Level::Down,
        };
        let mut h = Health {
            verdict: Verdict {
                level,
                toward: None,
            },
            carrier,
            enabled: cfg.enabled,
            damper: cfg.damping.map(Damper::new),
            targets: heapless::Vec::new(),
            state: State::Down,
            since: now,
            reason: Reason::Start,
            transitions: [0; State::COUNT],
            history: heapless::Deque::new(),
        };
        h.resize_targets(cfg.targets());
        h.state = h.compute(now);
        h
    }

    /// Start from a verdict adopted from the kernel (restart after a crash): a WAN that
    /// was routed is assumed up, one that was not must earn its way back.
    pub fn adopt(&mut self, routed: bool, now: Instant) {
        self.verdict = Verdict {
            level: if routed { Level::Up } else { Level::Down },
            toward: None,
        };
        self.state = self.compute(now);
        self.since = now;
    }

    /// Keep the health state across a config retune (timers, thresholds, damping).
    pub fn retune(&mut self, cfg: &Interface, now: Instant) -> Option<Event> {
        match (&mut self.damper, cfg.damping) {
            (Some(d), Some(p)) => d.retune(p),
            (d, p) => *d = p.map(Damper::new),
        }
        self.resize_targets(cfg.targets());
        self.set_enabled(cfg.enabled, now)
    }

    fn resize_targets(&mut self, n: usize) {
        self.targets.clear();
        for _ in 0..n.min(crate::config::MAX_TARGETS) {
            let _ = self.targets.push(TargetStats::default());
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    pub fn targets(&self) -> &[TargetStats] {
        &self.targets
    }

    /// Edges into each state since start, indexed by [`State::index`].
    pub fn transitions(&self) -> &[u64; State::COUNT] {
        &self.transitions
    }

    /// The last probe rounds, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Round> {
        self.history.iter()
    }

    pub fn damper(&self) -> Option<&Damper> {
        self.damper.as_ref()
    }

    /// Up with nothing being confirmed: the last rounds all passed. Only then may a WAN
    /// that carries no flows be probed at its standby pace.
    pub fn steady_up(&self) -> bool {
        self.state == State::Up && self.verdict.level == Level::Up && self.verdict.toward.is_none()
    }

    /// The probe interval this state calls for: `failure_interval` while a fall is being
    /// confirmed, `recovery_interval` while a rise is, `interval` otherwise.
    pub fn interval(&self, cfg: &Interface) -> Duration {
        match self.verdict.toward {
            Some(t) if t.level > self.verdict.level => cfg.failure_interval,
            Some(_) => cfg.recovery_interval,
            None if self.verdict.level != Level::Up => cfg.recovery_interval,
            None => cfg.interval,
        }
    }

    /// Probes per target in the next round: `count`, and at least [`CONFIRM_COUNT`] while
    /// a fall is being confirmed: a lost round is rare on a live path, two in a row of
    /// rounds that each probe every target twice are rarer by far (see DESIGN.md, "False
    /// downs under random loss").
    pub fn probes_per_target(&self, cfg: &Interface) -> u8 {
        match self.verdict.toward {
            Some(t) if t.level > self.verdict.level => cfg.count.max(CONFIRM_COUNT),
            _ => cfg.count,
        }
    }

    /// Whether the WAN should be probed at all.
    pub fn probing(&self) -> bool {
        self.enabled && self.carrier == Some(true) && !self.targets.is_empty()
    }

    /// When damping next needs a look (a hold that expires).
    pub fn poll_at(&self) -> Option<Instant> {
        match self.state {
            State::Held { until } => Some(until),
            _ => None,
        }
    }

    /// Re-evaluate time-driven state (a damping hold running out).
    pub fn poll(&mut self, now: Instant) -> Option<Event> {
        self.update(now, Reason::Released)
    }

    /// A finished probe round: one [`Answer`] per target, in `track_ip` order.
    pub fn on_round(&mut self, cfg: &Interface, answers: &[Answer], now: Instant) -> Option<Event> {
        self.on_answers(cfg, answers.iter().copied().enumerate(), now)
    }

    /// A finished round that probed only some targets (a standby WAN's, see
    /// [`crate::engine`]): `(target index, answer)` for each. The targets it did not
    /// probe keep their statistics, and `reliability` asks for no more answers than
    /// targets were probed.
    pub fn on_answers(
        &mut self,
        cfg: &Interface,
        answers: impl Iterator<Item = (usize, Answer)>,
        now: Instant,
    ) -> Option<Event> {
        let mut answered = 0u8;
        let mut good = 0u8;
        let mut worst_loss = 0u8;
        let mut worst_latency = Duration::ZERO;
        let mut targets = 0u8;
        let mut sum_us = 0u64;
        for (i, answer) in answers {
            let Some(stats) = self.targets.get_mut(i) else {
                continue;
            };
            targets += 1;
            if let Some(rtt) = answer {
                sum_us += rtt.as_micros().min(u128::from(u32::MAX)) as u64;
            }
            stats.record(answer);
            if answer.is_some() {
                answered += 1;
            }
            let ok = match &cfg.quality {
                Some(q) => stats.quality_ok(q),
                None => true,
            };
            if answer.is_some() && ok {
                good += 1;
            }
            worst_loss = worst_loss.max(stats.loss_percent());
            worst_latency = worst_latency.max(stats.mean_rtt().unwrap_or(Duration::ZERO));
        }
        let need = cfg.reliability.min(targets);
        let points_to = if answered < need {
            Level::Down
        } else if good < need {
            Level::Degraded
        } else {
            Level::Up
        };
        let rtt_us = (answered > 0).then(|| (sum_us / u64::from(answered)) as u32);
        if self.history.is_full() {
            self.history.pop_front();
        }
        let _ = self.history.push_back(Round {
            rtt_us,
            answered,
            targets,
        });
        let before = self.verdict.level;
        let rounds = self.count(points_to, cfg)?;
        // A fall the probes decided is a flap for the damper (a withdrawal in RFC 2439),
        // also while a hold is running: a WAN that keeps failing stays held.
        if before != Level::Down && self.verdict.level == Level::Down {
            if let Some(d) = &mut self.damper {
                d.fall(now);
            }
        }
        let reason = if points_to == Level::Degraded || self.verdict.level == Level::Degraded {
            Reason::Quality {
                rounds,
                loss_percent: worst_loss,
                latency: worst_latency,
            }
        } else {
            Reason::Rounds {
                rounds,
                answered,
                targets,
            }
        };
        self.update(now, reason)
    }

    /// A reply came after its target's derived deadline but within `timeout`
    /// ([`crate::probe::Reply::Late`]): the path is slow, not dead. A fall being confirmed
    /// starts over, so a sudden rise in RTT (a saturated uplink) is never taken for a
    /// blackhole; the verdict itself is left alone.
    pub fn on_late(&mut self) {
        if let Some(t) = self.verdict.toward {
            if t.level > self.verdict.level {
                self.verdict.toward = None;
            }
        }
    }

    /// Apply the hysteresis to one round pointing at `to`; returns the length of the run
    /// when it flips the verdict.
    fn count(&mut self, to: Level, cfg: &Interface) -> Option<u8> {
        let v = &mut self.verdict;
        if to == v.level {
            v.toward = None;
            return None;
        }
        // Rounds on the same side of the verdict count as one run, and the run moves the
        // verdict only as far as its mildest round: a lossy WAN whose rounds alternate
        // between "degraded" and "down" is degraded after `down` of them, instead of
        // each kind restarting the other's count for ever.
        let worse = to > v.level;
        let (level, rounds) = match v.toward {
            Some(t) if (t.level > v.level) == worse => {
                let mildest = if worse {
                    t.level.min(to)
                } else {
                    t.level.max(to)
                };
                (mildest, t.rounds.saturating_add(1))
            }
            _ => (to, 1),
        };
        let needed = if worse { cfg.down } else { cfg.up };
        if rounds >= needed {
            *v = Verdict {
                level,
                toward: None,
            };
            Some(rounds)
        } else {
            v.toward = Some(Toward { level, rounds });
            None
        }
    }

    /// Carrier change from a netlink link event: loss takes the WAN down at once;
    /// carrier back starts recovery (it must earn `up` good rounds, unless untracked).
    pub fn on_carrier(&mut self, carrier: bool, now: Instant) -> Option<Event> {
        let first = match self.carrier {
            Some(c) if c == carrier => return None,
            Some(_) => false,
            None => true,
        };
        self.carrier = Some(carrier);
        if first {
            return self.update(now, Reason::Start);
        }
        if !carrier {
            // Every carrier loss is a flap, even of a WAN the probes had not let back in
            // yet: a link that keeps bouncing is held down once it calms.
            if let Some(d) = &mut self.damper {
                d.fall(now);
            }
        }
        let reason = if carrier {
            self.verdict = Verdict {
                level: if self.targets.is_empty() {
                    Level::Up
                } else {
                    Level::Down
                },
                toward: None,
            };
            if self.targets.is_empty() {
                Reason::Untracked
            } else {
                Reason::CarrierBack
            }
        } else {
            Reason::CarrierLost
        };
        self.update(now, reason)
    }

    /// The kernel's neighbour entry of the gateway went to `NUD_FAILED`: the gateway
    /// answered none of the kernel's solicitations (Linux sends `ucast_solicit` unicast,
    /// then `mcast_solicit` multicast ones, `retrans_time` apart). That is certain, so
    /// the verdict goes down at once, without waiting for probe rounds; coming back takes
    /// `up` good rounds as always. A fall for the damper like any other.
    pub fn on_gateway_failed(&mut self, now: Instant) -> Option<Event> {
        if self.targets.is_empty() || self.verdict.level == Level::Down {
            // Untracked WANs follow their carrier only; a down one stays down.
            self.verdict.toward = None;
            return None;
        }
        self.verdict = Verdict {
            level: Level::Down,
            toward: None,
        };
        if let Some(d) = &mut self.damper {
            d.fall(now);
        }
        self.update(now, Reason::GatewayFailed)
    }

    pub fn set_enabled(&mut self, enabled: bool, now: Instant) -> Option<Event> {
        if enabled == self.enabled {
            return None;
        }
        self.enabled = enabled;
        let reason = if enabled {
            Reason::Enabled
        } else {
            Reason::Disabled
        };
        self.update(now, reason)
    }

    fn compute(&self, now: Instant) -> State {
        if !self.enabled {
            return State::Disabled;
        }
        if self.carrier == Some(false) {
            return State::NoCarrier;
        }
        if let Some(until) = self.damper.as_ref().and_then(|d| d.held_until(now)) {
            return State::Held { until };
        }
        match self.verdict.level {
            Level::Up => State::Up,
            Level::Degraded => State::Degraded,
            Level::Down => State::Down,
        }
    }

    /// Recompute the reported state; feed falls to the damper; emit an edge.
    fn update(&mut self, now: Instant, reason: Reason) -> Option<Event> {
        let from = self.state;
        let to = self.compute(now);
        if from == to {
            return None;
        }
        let reason = match (from, to, &self.damper) {
            // Entering a hold: say why, whatever the input was.
            (State::Held { .. }, _, _) | (_, _, None) => reason,
            (_, State::Held { .. }, Some(d)) => Reason::Damped {
                penalty: d.penalty(now),
            },
            _ => reason,
        };
        // A hold whose deadline moved is not a new edge.
        if let (State::Held { .. }, State::Held { .. }) = (from, to) {
            self.state = to;
            return None;
        }
        self.state = to;
        self.since = now;
        self.reason = reason.clone();
        let n = &mut self.transitions[to.index()];
        *n = n.saturating_add(1);
        Some(Event { from, to, reason })
    }
}

#[cfg(test)]
mod tests;
