//! Failure as state: the result of the last attempt at one kind of kernel write (the
//! routes over netlink, the nft table), and when a failed one is tried again.
//!
//! Pure and clock-free like the rest of the core: every call takes `now`. The backoff
//! starts at [`FIRST`] and doubles up to [`MAX`]; a success resets it. The event loop
//! wakes at [`Retry::retry_at`] and nowhere else for a failed write, so a write that
//! keeps failing is tried at most once per backoff step, never on every loop turn.

use serde_json::{json, Value};

use crate::time::{Duration, Instant};

/// First retry after a failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two tries.
pub const MAX: Duration = Duration::from_secs(30);

/// How the last attempt went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Not tried yet.
    #[default]
    Pending,
    Ok {
        at: Instant,
    },
    Failed {
        at: Instant,
        error: String,
        /// Failures in a row.
        failures: u32,
        retry_at: Instant,
    },
}

/// One kind of write's last outcome and its backoff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retry {
    outcome: Outcome,
}

impl Retry {
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub fn succeeded(&mut self, now: Instant) {
        self.outcome = Outcome::Ok { at: now };
    }

    /// Record a failure; returns whether the error differs from the previous attempt's
    /// (so that the caller logs a repeating error once).
    pub fn failed(&mut self, now: Instant, error: String) -> bool {
        let (failures, new) = match &self.outcome {
            Outcome::Failed {
                failures, error: e, ..
            } => (failures.saturating_add(1), *e != error),
            _ => (1, true),
        };
        let wait = FIRST
            .checked_mul(1u32 << (failures - 1).min(16))
            .unwrap_or(MAX)
            .min(MAX);
        self.outcome = Outcome::Failed {
            at: now,
            error,
            failures,
            retry_at: now + wait,
        };
        new
    }

    /// When a failed write is to be tried again.
    pub fn retry_at(&self) -> Option<Instant> {
        match self.outcome {
            Outcome::Failed { retry_at, .. } => Some(retry_at),
            _ => None,
        }
    }

    /// Whether a write may be tried now: nothing failed, or the backoff is over.
    pub fn may_try(&self, now: Instant) -> bool {
        self.retry_at().map_or(true, |t| t <= now)
    }

    /// For `status`: `{"result": "ok", "age_s": 3}`, `{"result": "pending"}`, or
    /// `{"result": "failed", "error": .., "failures": 3, "age_s": 1, "retry_in_ms": 1500}`.
    pub fn report(&self, now: Instant) -> Value {
        match &self.outcome {
            Outcome::Pending => json!({"result": "pending"}),
            Outcome::Ok { at } => json!({
                "result": "ok",
                "age_s": now.saturating_since(*at).as_secs(),
            }),
            Outcome::Failed {
                at,
                error,
                failures,
                retry_at,
            } => json!({
                "result": "failed",
                "error": error,
                "failures": failures,
                "age_s": now.saturating_since(*at).as_secs(),
                "retry_in_ms": retry_at.saturating_since(now).as_millis() as u64,
            }),
        }
    }

    /// Whether a failed write is due for its retry.
    pub fn due(&self, now: Instant) -> bool {
        self.retry_at().is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets_on_success() {
        let mut r = Retry::default();
        assert!(r.may_try(t(0)) && !r.due(t(0)));
        assert!(r.failed(t(0), "nft: boom".into()));
        assert_eq!(r.retry_at(), Some(t(500)));
        assert!(!r.may_try(t(499)));
        assert!(r.may_try(t(500)) && r.due(t(500)));
        // Same error again: not new, and the wait doubles.
        assert!(!r.failed(t(500), "nft: boom".into()));
        assert_eq!(r.retry_at(), Some(t(1500)));
        let mut at = 1500;
        let mut waits = Vec::new();
        for _ in 0..8 {
            r.failed(t(at), "nft: boom".into());
            let next = r.retry_at().map_or(0, Instant::millis);
            waits.push(next - at);
            at = next;
        }
        assert_eq!(waits, [2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
        // A different error is news.
        assert!(r.failed(t(at), "nft: other".into()));
        r.succeeded(t(at + 1));
        assert_eq!(r.outcome(), &Outcome::Ok { at: t(at + 1) });
        assert_eq!(r.retry_at(), None);
        r.failed(t(at + 2), "again".into());
        assert_eq!(r.retry_at(), Some(t(at + 502)));
    }

    #[test]
    fn the_report_says_what_failed_and_when_the_next_try_is() {
        let mut r = Retry::default();
        assert_eq!(r.report(t(0)), json!({"result": "pending"}));
        r.succeeded(t(1000));
        assert_eq!(r.report(t(4500)), json!({"result": "ok", "age_s": 3}));
        r.failed(t(5000), "nft: timed out".into());
        r.failed(t(5500), "nft: timed out".into());
        assert_eq!(
            r.report(t(6000)),
            json!({
                "result": "failed",
                "error": "nft: timed out",
                "failures": 2,
                "age_s": 0,
                "retry_in_ms": 500,
            })
        );
        // Overdue (the loop is about to retry): zero, never negative.
        assert_eq!(r.report(t(9000))["retry_in_ms"], json!(0));
    }

    #[test]
    fn thousands_of_failures_do_not_overflow() {
        let mut r = Retry::default();
        for i in 0..5000 {
            r.failed(t(i), "x".into());
        }
        assert_eq!(r.retry_at(), Some(t(4999 + 30_000)));
    }
}
