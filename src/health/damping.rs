//! Flap damping after RFC 2439 (BGP route flap damping), applied to a WAN.
//!
//! Each fall (usable -> unusable) adds a fixed penalty; the penalty decays exponentially
//! with `half_life`. A fall that lifts it above `suppress` holds the WAN down until the
//! penalty decays below `reuse`. The penalty is capped at the value that decays to
//! `reuse` in exactly `max_hold` (RFC 2439 §4.2 "maximum suppress time"), so a hold never
//! lasts longer than that, however long the WAN flapped.

use crate::config::Damping;
use crate::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub struct Damper {
    params: Damping,
    /// Penalty as of `at`.
    value: f64,
    at: Instant,
    suppressed: bool,
}

impl Damper {
    pub fn new(params: Damping) -> Damper {
        Damper {
            params,
            value: 0.0,
            at: Instant::ZERO,
            suppressed: false,
        }
    }

    pub fn retune(&mut self, params: Damping) {
        self.params = params;
        self.value = self.value.min(self.ceiling());
    }

    fn half_life_ms(&self) -> f64 {
        (self.params.half_life.as_millis() as f64).max(1.0)
    }

    fn ceiling(&self) -> f64 {
        let halvings = self.params.max_hold.as_millis() as f64 / self.half_life_ms();
        f64::from(self.params.reuse) * halvings.min(60.0).exp2()
    }

    fn decayed(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_since(self.at).as_millis() as f64;
        self.value * (-elapsed / self.half_life_ms()).exp2()
    }

    /// The current penalty, rounded.
    pub fn penalty(&self, now: Instant) -> u32 {
        self.decayed(now).round().min(u32::MAX as f64) as u32
    }

    /// Record a fall at `now`.
    pub fn fall(&mut self, now: Instant) {
        let current = self.decayed(now);
        if current <= f64::from(self.params.reuse) {
            self.suppressed = false;
        }
        self.value = (current + f64::from(self.params.penalty)).min(self.ceiling());
        self.at = now;
        if self.value > f64::from(self.params.suppress) {
            self.suppressed = true;
        }
    }

    /// If the WAN is held down at `now`, until when.
    pub fn held_until(&self, now: Instant) -> Option<Instant> {
        let reuse = f64::from(self.params.reuse);
        if !self.suppressed || self.decayed(now) <= reuse {
            return None;
        }
        // value * 2^(-t/h) = reuse  =>  t = h * log2(value / reuse)
        let t = self.half_life_ms() * (self.value / reuse).log2();
        // Round up so that at `until` the penalty is at or below reuse.
        Some(self.at + Duration::from_millis(t.ceil().max(0.0) as u64 + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Damping {
        Damping {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(10),
            max_hold: Duration::from_secs(60),
        }
    }

    #[test]
    fn two_falls_do_not_suppress_three_quick_ones_do() {
        let mut d = Damper::new(params());
        d.fall(Instant::from_secs(0));
        d.fall(Instant::from_secs(1));
        assert_eq!(d.held_until(Instant::from_secs(1)), None);
        d.fall(Instant::from_secs(2));
        let until = d.held_until(Instant::from_secs(2)).expect("held");
        // ~2800 decays to 750 in log2(2800/750) * 10 s ~= 19 s.
        assert!(until > Instant::from_secs(20) && until < Instant::from_secs(22));
        assert!(d.penalty(until) <= 750);
        assert_eq!(d.held_until(until), None);
    }

    #[test]
    fn hold_is_capped_by_max_hold() {
        let mut d = Damper::new(params());
        for s in 0..100 {
            d.fall(Instant::from_secs(s));
        }
        let until = d.held_until(Instant::from_secs(99)).expect("held");
        assert!(until <= Instant::from_secs(99 + 60 + 1));
    }

    #[test]
    fn penalty_decays_when_stable() {
        let mut d = Damper::new(params());
        d.fall(Instant::from_secs(0));
        assert_eq!(d.penalty(Instant::from_secs(10)), 500);
        assert_eq!(d.penalty(Instant::from_secs(20)), 250);
        // A fall long after the hold ended does not inherit the old suppression.
        d.fall(Instant::from_secs(0));
        d.fall(Instant::from_secs(0));
        assert!(d.held_until(Instant::from_secs(0)).is_some());
        d.fall(Instant::from_secs(300));
        assert_eq!(d.held_until(Instant::from_secs(300)), None);
    }
}
