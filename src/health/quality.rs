//! Per-target link quality: a rolling window of the last probes' outcomes.

use heapless::Deque;

use crate::config::Quality;
use crate::time::Duration;

/// Probes remembered per target for loss and latency.
pub const SAMPLE_WINDOW: usize = 16;

/// Rolling statistics of one target, with hysteresis on the quality verdict: a target
/// fails the quality check above a failure threshold and passes again only once it is
/// below both recovery thresholds.
#[derive(Clone, Debug, Default)]
pub struct TargetStats {
    /// RTT in microseconds, or `None` for a lost round.
    samples: Deque<Option<u32>, SAMPLE_WINDOW>,
    failing: bool,
    pub sent: u64,
    pub lost: u64,
    pub last_rtt: Option<Duration>,
}

impl TargetStats {
    pub fn record(&mut self, answer: Option<Duration>) {
        if self.samples.is_full() {
            self.samples.pop_front();
        }
        let us = answer.map(|d| d.as_micros().min(u32::MAX as u128) as u32);
        let _ = self.samples.push_back(us);
        self.sent += 1;
        match answer {
            Some(rtt) => self.last_rtt = Some(rtt),
            None => self.lost += 1,
        }
    }

    /// Whether the last finished round was answered; `None` before the first.
    pub fn last_answered(&self) -> Option<bool> {
        self.samples.back().map(Option::is_some)
    }

    /// Loss over the window, in percent (0 with no samples).
    pub fn loss_percent(&self) -> u8 {
        let n = self.samples.len();
        if n == 0 {
            return 0;
        }
        let lost = self.samples.iter().filter(|s| s.is_none()).count();
        (lost * 100 / n) as u8
    }

    /// Mean RTT of the answered probes in the window.
    pub fn mean_rtt(&self) -> Option<Duration> {
        let (sum, n) = self
            .samples
            .iter()
            .flatten()
            .fold((0u64, 0u64), |(s, n), &us| (s + u64::from(us), n + 1));
        (n > 0).then(|| Duration::from_micros(sum / n))
    }

    /// Quality verdict with hysteresis; updates the sticky state.
    pub fn quality_ok(&mut self, q: &Quality) -> bool {
        let loss = self.loss_percent();
        let rtt = self.mean_rtt().unwrap_or(Duration::ZERO);
        if self.failing {
            if loss <= q.recovery_loss && rtt <= q.recovery_latency {
                self.failing = false;
            }
        } else if loss > q.failure_loss || rtt > q.failure_latency {
            self.failing = true;
        }
        !self.failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quality {
        Quality {
            failure_latency: Duration::from_millis(200),
            recovery_latency: Duration::from_millis(100),
            failure_loss: 20,
            recovery_loss: 5,
        }
    }

    #[test]
    fn window_rolls_and_reports_loss_and_latency() {
        let mut t = TargetStats::default();
        for i in 0..SAMPLE_WINDOW {
            t.record(if i % 4 == 0 {
                None
            } else {
                Some(Duration::from_millis(10))
            });
        }
        assert_eq!(t.loss_percent(), 25);
        assert_eq!(t.mean_rtt(), Some(Duration::from_millis(10)));
        for _ in 0..SAMPLE_WINDOW {
            t.record(Some(Duration::from_millis(30)));
        }
        assert_eq!(t.loss_percent(), 0);
        assert_eq!(t.mean_rtt(), Some(Duration::from_millis(30)));
        assert_eq!(t.sent, 2 * SAMPLE_WINDOW as u64);
        assert_eq!(t.lost, 4);
    }

    #[test]
    fn quality_has_hysteresis() {
        let mut t = TargetStats::default();
        let rtt = |ms| Some(Duration::from_millis(ms));
        t.record(rtt(150));
        assert!(t.quality_ok(&q()), "between thresholds, starting good");
        t.record(rtt(400)); // mean 275 > 200
        assert!(!t.quality_ok(&q()));
        for _ in 0..SAMPLE_WINDOW {
            t.record(rtt(150));
        }
        assert!(!t.quality_ok(&q()), "150 ms is not below recovery 100 ms");
        for _ in 0..SAMPLE_WINDOW {
            t.record(rtt(50));
        }
        assert!(t.quality_ok(&q()));
    }
}
