//! When the shell syncs the kernel: the schedule of dumps, route writes and nft loads.
//!
//! Pure and clock-free like the rest of the core (STYLE §1): every call takes `now`, and
//! [`Schedule::poll_at`] says when the loop must next wake for a sync. The shell asks
//! [`Schedule::due`] whether to dump and reconcile, [`Schedule::nft_load`] whether to
//! start loading the nft table, and reports back what happened. What it decides:
//!
//! - **debounce**: route, rule and nexthop events (bursts, echoes of our own writes)
//!   ask for a dump [`DEBOUNCE`] later; a lost event or a vanished link asks for one now;
//! - **retry**: a failed dump or write, and a failed nft load, are tried again with a
//!   backoff from 0.5 s to 30 s ([`crate::retry`]), never on every loop turn. A different
//!   table than the one that failed is tried at once;
//! - **periodic resync** every `reconcile_interval`, which also catches lost events;
//! - **table check**: every [`TABLE_CHECK`] the shell checks that our nft table exists
//!   (`nft flush ruleset` removes it) and loads it again if not;
//! - **hold**: route writes wait for a running nft load, so that new flows are already
//!   pinned when the routes appear, but for at most [`HOLD`]: a slow or hung `nft` never
//!   delays a failover longer.
//!
//! Nothing is synced while start-up waits for netifd (`waiting`): the plan does not yet
//! know every WAN's device and would remove what a previous run left for them.

use serde_json::Value;

use crate::dataplane::Ruleset;
use crate::retry::{self, Retry};
use crate::time::{earliest, Duration, Instant};

/// Debounce for dumps asked for by route, rule and nexthop events.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often the shell checks that our nft table still exists.
pub const TABLE_CHECK: Duration = Duration::from_secs(2);
/// How long route writes wait for a running nft load; past it the routes go first.
pub const HOLD: Duration = Duration::from_secs(2);

/// How urgently a dump is wanted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kick {
    /// After [`DEBOUNCE`]: more events of the same burst may follow.
    Soon,
    /// At once: events were lost, a link went away, netifd or a reload changed the plan.
    Now,
}

/// What an nft load that finished means for the log.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// Loaded; `after_failures` if the loads before it had failed.
    Ok { after_failures: bool },
    /// Failed; `new` if its error differs from the previous failure's (log it once).
    Failed { new: bool },
}

/// The sync schedule. See the module documentation.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// A dump is wanted then (events).
    resync_at: Option<Instant>,
    /// The next periodic resync.
    periodic_at: Instant,
    /// The last dump and write of routes, rules and nexthops, and its backoff.
    routes: Retry,
    /// The table the plan wants (from the last sync).
    nft_wanted: Option<Ruleset>,
    /// The table as last loaded; `None` forces a load.
    nft_applied: Option<Ruleset>,
    /// The table whose load failed last.
    nft_failed: Option<Ruleset>,
    /// A load is running beside the loop.
    nft_running: bool,
    /// The last load's result, and its backoff.
    nft: Retry,
    /// Route writes wait for the running load until then.
    hold_until: Option<Instant>,
    /// The next table check.
    check_at: Instant,
}

impl Schedule {
    /// A schedule that syncs at once.
    pub fn new(now: Instant) -> Schedule {
        Schedule {
            resync_at: None,
            periodic_at: now,
            routes: Retry::default(),
            nft_wanted: None,
            nft_applied: None,
            nft_failed: None,
            nft_running: false,
            nft: Retry::default(),
            hold_until: None,
            check_at: now,
        }
    }

    /// Something changed in the kernel or the plan's inputs: dump (see [`Kick`]).
    pub fn kick(&mut self, kick: Kick, now: Instant) {
        let at = match kick {
            Kick::Soon => now + DEBOUNCE,
            Kick::Now => now,
        };
        self.resync_at = earliest(self.resync_at, Some(at));
    }

    /// Whether to dump and reconcile now. `dirty`: the plan differs from what was last
    /// reconciled, or connections wait to be flushed after a sync. A missing or failed
    /// nft table is not a reason to dump: [`Schedule::nft_load`] retries it on its own
    /// backoff.
    pub fn due(&self, now: Instant, dirty: bool, waiting: bool) -> bool {
        if waiting || self.holding(now) {
            return false;
        }
        dirty
            || self.resync_at.is_some_and(|t| t <= now)
            || self.routes.due(now)
            || self.periodic_at <= now
    }

    /// A sync starts: the wanted dump is being done, the next periodic one is
    /// `interval` away. Returns whether it was the periodic one.
    pub fn begin(&mut self, now: Instant, interval: Duration) -> bool {
        let periodic = self.periodic_at <= now;
        self.resync_at = None;
        self.periodic_at = now + interval;
        periodic
    }

    /// The dump or a write of this sync failed (`Some`), or everything was written.
    /// True if the error is new (to be logged once).
    pub fn routes_done(&mut self, now: Instant, failed: Option<String>) -> bool {
        match failed {
            Some(e) => self.routes.failed(now, e),
            None => {
                self.routes.succeeded(now);
                false
            }
        }
    }

    /// The table the plan wants, as of this sync.
    pub fn want_nft(&mut self, ruleset: Ruleset) {
        self.nft_wanted = Some(ruleset);
    }

    /// The table to load now, if any: it differs from what is loaded (or the table went
    /// missing), no load is running, and a failed load's backoff is over (a different
    /// table is tried at once). The shell starts it and calls
    /// [`Schedule::nft_started`], or [`Schedule::nft_finished`] if it is done at once.
    pub fn nft_load(&self, now: Instant) -> Option<&Ruleset> {
        let wanted = self.nft_wanted.as_ref()?;
        if self.nft_applied.as_ref() == Some(wanted) || self.nft_running {
            return None;
        }
        if self.nft_failed.as_ref() == Some(wanted) && !self.nft.may_try(now) {
            return None;
        }
        Some(wanted)
    }

    /// A load started beside the loop. While nft is healthy, route writes wait for it
    /// (at most [`HOLD`]); after a failure they go first.
    pub fn nft_started(&mut self, now: Instant) {
        self.nft_running = true;
        if self.nft.retry_at().is_none() {
            self.hold_until = Some(now + HOLD);
        }
    }

    /// A load finished (or was cancelled: `Err`). Releases held route writes at once.
    pub fn nft_finished(
        &mut self,
        now: Instant,
        ruleset: Ruleset,
        result: Result<(), String>,
    ) -> Loaded {
        self.nft_running = false;
        if self.hold_until.take().is_some() {
            self.kick(Kick::Now, now);
        }
        match result {
            Ok(()) => {
                let after_failures = matches!(self.nft.outcome(), retry::Outcome::Failed { .. });
                self.nft.succeeded(now);
                self.nft_applied = Some(ruleset);
                self.nft_failed = None;
                Loaded::Ok { after_failures }
            }
            Err(e) => {
                let new = self.nft.failed(now, e);
                self.nft_failed = Some(ruleset);
                Loaded::Failed { new }
            }
        }
    }

    /// Whether route writes wait for the running load.
    pub fn holding(&self, now: Instant) -> bool {
        self.nft_running && self.hold_until.is_some_and(|t| now < t)
    }

    /// True once when the hold ran out before the load finished (to be logged): the
    /// routes are written without waiting for it.
    pub fn hold_expired(&mut self, now: Instant) -> bool {
        if self.hold_until.is_some_and(|t| t <= now) {
            self.hold_until = None;
            return true;
        }
        false
    }

    /// Whether the table check is due now; if so, the next one is scheduled.
    pub fn check_due(&mut self, now: Instant) -> bool {
        if now < self.check_at {
            return false;
        }
        self.check_at = now + TABLE_CHECK;
        true
    }

    /// The table check found our table missing: load it again. True if it had been
    /// loaded (someone removed it; to be logged).
    pub fn table_missing(&mut self) -> bool {
        self.nft_applied.take().is_some()
    }

    /// When the loop must next wake for a sync. `waiting`: start-up waits for netifd
    /// (nothing is synced, so those timers must not wake the loop); `checks`: the
    /// table can be checked.
    pub fn poll_at(&self, waiting: bool, checks: bool) -> Option<Instant> {
        let syncing = !waiting;
        [
            self.hold_until,
            self.resync_at.filter(|_| syncing),
            self.routes.retry_at().filter(|_| syncing),
            self.nft.retry_at().filter(|_| !self.nft_running),
            Some(self.periodic_at).filter(|_| syncing),
            checks.then_some(self.check_at),
        ]
        .into_iter()
        .fold(None, earliest)
    }

    /// The last sync for `status`: routes and the nft table, each with its result, what
    /// failed and when the next try is. `nft_available`: false when the table cannot be
    /// loaded at all.
    pub fn report(&self, now: Instant, nft_available: bool) -> Value {
        let mut nft = self.nft.report(now);
        if let Some(o) = nft.as_object_mut() {
            o.insert("running".into(), self.nft_running.into());
            if !nft_available {
                o.insert("result".into(), "unavailable".into());
            }
        }
        serde_json::json!({"routes": self.routes.report(now), "nft": nft})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    const INTERVAL: Duration = Duration::from_secs(10);

    fn table(n: usize) -> Ruleset {
        Ruleset {
            chains: (0..n)
                .map(|i| crate::dataplane::Chain {
                    name: format!("c{i}"),
                    hook: None,
                    rules: Vec::new(),
                })
                .collect(),
            sets: Vec::new(),
        }
    }

    /// A schedule after its first sync at t=0, with table 0 loaded.
    fn synced() -> Schedule {
        let mut s = Schedule::new(t(0));
        assert!(s.due(t(0), true, false));
        assert!(s.begin(t(0), INTERVAL));
        s.want_nft(table(0));
        let r = s.nft_load(t(0)).cloned().unwrap();
        s.nft_started(t(0));
        assert!(s.holding(t(0)));
        s.nft_finished(t(0), r, Ok(()));
        // The held routes go at once.
        assert!(s.due(t(0), false, false));
        s.begin(t(0), INTERVAL);
        s.routes_done(t(0), None);
        s
    }

    #[test]
    fn first_sync_is_due_at_once_and_waits_for_netifd() {
        let s = Schedule::new(t(0));
        assert!(s.due(t(0), false, false));
        assert!(!s.due(t(0), true, true));
        assert_eq!(s.poll_at(true, false), None);
        assert_eq!(s.poll_at(false, false), Some(t(0)));
    }

    #[test]
    fn events_are_debounced_and_urgent_ones_are_not() {
        let mut s = synced();
        assert!(!s.due(t(100), false, false));
        s.kick(Kick::Soon, t(100));
        s.kick(Kick::Soon, t(110));
        assert_eq!(s.poll_at(false, false), Some(t(120)));
        assert!(!s.due(t(119), false, false));
        assert!(s.due(t(120), false, false));
        assert!(!s.begin(t(120), INTERVAL));
        assert!(!s.due(t(121), false, false));
        s.kick(Kick::Soon, t(200));
        s.kick(Kick::Now, t(201));
        assert!(s.due(t(201), false, false));
    }

    #[test]
    fn periodic_resync_every_interval() {
        let mut s = synced();
        assert_eq!(s.poll_at(false, false), Some(t(10_000)));
        assert!(!s.due(t(9_999), false, false));
        assert!(s.due(t(10_000), false, false));
        assert!(s.begin(t(10_000), INTERVAL));
        assert_eq!(s.poll_at(false, false), Some(t(20_000)));
    }

    #[test]
    fn failed_writes_back_off_from_half_a_second_to_thirty() {
        let mut s = synced();
        let mut now = t(1_000);
        let mut waits = Vec::new();
        assert!(s.due(now, true, false));
        for i in 0..9 {
            s.begin(now, Duration::from_secs(3600));
            assert_eq!(s.routes_done(now, Some("EPERM".into())), i == 0);
            let next = s.poll_at(false, false).unwrap();
            assert!(!s.due(next - Duration::from_millis(1), false, false));
            assert!(s.due(next, false, false));
            waits.push(next.saturating_since(now).as_millis() as u64);
            now = next;
        }
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        s.begin(now, INTERVAL);
        s.routes_done(now, None);
        assert!(!s.due(now + Duration::from_secs(1), false, false));
    }

    #[test]
    fn routes_wait_for_a_load_but_not_longer_than_the_hold() {
        let mut s = synced();
        // The plan wants another table: the load starts, the routes wait.
        s.begin(t(1_000), INTERVAL);
        s.want_nft(table(1));
        let r = s.nft_load(t(1_000)).cloned().unwrap();
        s.nft_started(t(1_000));
        assert!(s.holding(t(1_000)));
        assert!(!s.due(t(1_000), true, false));
        assert_eq!(s.nft_load(t(1_000)), None, "one load at a time");
        // It finishes: the held routes go at once.
        assert_eq!(
            s.nft_finished(t(1_200), r, Ok(())),
            Loaded::Ok {
                after_failures: false
            }
        );
        assert!(!s.holding(t(1_200)));
        assert!(s.due(t(1_200), false, false));
        s.begin(t(1_200), INTERVAL);
        // The next load hangs: past the hold the routes go without it.
        s.want_nft(table(2));
        s.nft_started(t(2_000));
        assert!(s.holding(t(3_999)));
        assert_eq!(s.poll_at(false, false), Some(t(4_000)));
        assert!(s.hold_expired(t(4_000)));
        assert!(!s.hold_expired(t(4_001)));
        assert!(!s.holding(t(4_000)));
        assert!(s.due(t(4_000), true, false));
    }

    #[test]
    fn a_failed_load_is_retried_with_backoff_and_routes_do_not_wait_for_it() {
        let mut s = synced();
        s.begin(t(1_000), INTERVAL);
        s.want_nft(table(1));
        let r = s.nft_load(t(1_000)).cloned().unwrap();
        s.nft_started(t(1_000));
        assert_eq!(
            s.nft_finished(t(1_100), r.clone(), Err("syntax".into())),
            Loaded::Failed { new: true }
        );
        // A sync meanwhile writes the routes without waiting for nft.
        assert!(s.due(t(1_300), true, false));
        s.begin(t(1_300), INTERVAL);
        // The retry: at 1.6 s, not before (not on every loop turn).
        assert_eq!(s.nft_load(t(1_599)), None);
        assert_eq!(s.poll_at(false, false), Some(t(1_600)));
        assert_eq!(s.nft_load(t(1_600)), Some(&r));
        s.nft_started(t(1_600));
        assert!(!s.holding(t(1_600)), "no hold after a failure");
        assert_eq!(
            s.poll_at(false, false),
            Some(t(11_300)),
            "no retry while running"
        );
        assert_eq!(
            s.nft_finished(t(1_700), r.clone(), Err("syntax".into())),
            Loaded::Failed { new: false }
        );
        assert_eq!(s.poll_at(false, false), Some(t(2_700)));
        // Another table is tried at once.
        s.want_nft(table(2));
        assert_eq!(s.nft_load(t(1_800)), Some(&table(2)));
        s.nft_started(t(1_800));
        assert_eq!(
            s.nft_finished(t(1_900), table(2), Ok(())),
            Loaded::Ok {
                after_failures: true
            }
        );
        assert_eq!(s.report(t(1_900), true)["nft"]["result"], "ok");
    }

    #[test]
    fn a_vanished_table_is_loaded_again_at_the_next_check() {
        let mut s = synced();
        assert!(s.check_due(t(0)));
        assert!(!s.check_due(t(1_999)));
        assert_eq!(s.poll_at(false, true), Some(t(2_000)));
        assert!(s.check_due(t(2_000)));
        assert_eq!(s.nft_load(t(2_000)), None);
        assert!(s.table_missing());
        assert_eq!(s.nft_load(t(2_000)), Some(&table(0)));
        assert!(!s.table_missing(), "reported once");
    }

    #[test]
    fn status_says_unavailable_when_nft_cannot_load() {
        let s = synced();
        let r = s.report(t(3_000), false);
        assert_eq!(r["nft"]["result"], "unavailable");
        assert_eq!(r["nft"]["running"], false);
        assert_eq!(r["routes"]["result"], "ok");
    }
}
