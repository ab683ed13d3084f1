//! Kernel sync: routes, rules and nexthops over netlink, the nft table beside the loop,
//! and the conntrack flushes that follow them.

use super::*;
use crate::sync::Loaded;
use crate::sys::kernel::{Kernel, Load, HASH_POLICY};
use crate::SpawnBoxed;

impl Daemon {
    /// Per-flow multipath hashing (see [`HASH_POLICY`]); the old value is restored by a
    /// stop that removes everything.
    pub(super) fn set_hash_policy(&mut self) {
        let path = format!("/proc/sys/{HASH_POLICY}");
        match self.sys.sysctl.read(HASH_POLICY) {
            Ok(old) if old != "1" => match self.sys.sysctl.write(HASH_POLICY, "1") {
                Ok(()) => self.old_hash_policy = Some(old),
                Err(e) => log::warn!("cannot set {path} to 1 (per-flow balancing): {e}"),
            },
            Ok(_) => {}
            Err(e) => log::warn!("cannot read {path}: {e}"),
        }
    }

    /// The plan for the engine as it is now, computed at most once per change of the
    /// engine (see [`Daemon::changed`]): the sync check and `status` share it.
    pub(super) fn planned(&mut self) -> &Desired {
        let supported = self.nexthops_supported;
        let engine = &self.engine;
        self.planned
            .get_or_insert_with(|| engine.desired(supported))
    }

    /// The engine's state may have changed: the plan is computed again when next asked.
    pub(super) fn changed(&mut self) {
        self.planned = None;
    }

    /// Whether the kernel needs a dump and reconcile now (see [`crate::sync`]).
    pub(super) fn sync_due(&mut self, now: Instant) -> bool {
        let waiting = self.engine.waiting_for_netifd();
        if waiting || self.schedule.holding(now) {
            // Not now whatever the plan says: no need to compute it.
            return false;
        }
        let dirty = !self.pending_flush.is_empty() || {
            let applied = self.applied.take();
            let dirty = applied.as_ref() != Some(self.planned());
            self.applied = applied;
            dirty
        };
        self.schedule.due(now, dirty, waiting)
    }

    /// Dump, feed the engine, diff, apply.
    pub(super) fn sync_kernel(&mut self, now: Instant) {
        let interval = self.engine.config().globals.reconcile_interval;
        if self.schedule.begin(now, interval) {
            // The periodic re-check covers netifd too: its view may have moved without
            // an event reaching us.
            if let Some(bus) = &self.bus {
                if !bus.netifd_interfaces.borrow().is_empty() {
                    bus.send(bus::Out::RefreshNetifd);
                }
            }
        }
        let reads = self.engine.reads();
        let snap = match self.sys.kernel.snapshot(&self.own, &reads) {
            Ok(s) => s,
            Err(e) => {
                let e = format!("kernel dump failed: {e}");
                if self.schedule.routes_done(now, Some(e.clone())) {
                    log::warn!("{e}");
                }
                return;
            }
        };
        self.narrow_events(&reads, &snap);
        self.nexthops_supported = snap.nexthops_supported;
        let outs = self.engine.on_snapshot(&snap, now);
        self.handle(outs);
        self.changed();
        let desired = self.planned().clone();
        // The data plane first: when the routes appear, new flows are already pinned.
        // The nft table loads beside the loop, and the routes wait for it only while
        // nft is healthy and for at most `sync::HOLD` (nft may be slow or hang: then
        // the routes go first, so that failover never waits for nft).
        self.schedule.want_nft(desired.nft.clone());
        self.start_nft(now);
        if self.schedule.holding(now) {
            return;
        }
        if self.applied.as_ref().map(|a| &a.policies) != Some(&desired.policies) {
            for p in &desired.policies {
                log::info!("policy {}: {}", p.name, describe_policy(p));
            }
        }
        let ops = reconcile(&desired.objects, &snap.owned);
        let failed = self.apply(&ops, &snap);
        self.flush_pinned();
        self.applied = Some(desired);
        if let Some(e) = &failed {
            if self.schedule.routes_done(now, failed.clone()) {
                log::warn!("kernel: {e} (retrying)");
            }
        } else {
            self.schedule.routes_done(now, None);
        }
    }

    /// Apply ops in order; the first error if any failed (those are retried later).
    pub(super) fn apply(&mut self, ops: &[Op], snap: &Snapshot) -> Option<String> {
        let (writes, failed) = apply_ops(self.sys.kernel.as_mut(), &self.own, ops, snap);
        self.writes += writes;
        failed
    }

    pub(super) fn wan_mark(&self, wan: usize) -> Option<u32> {
        let marks = Marks::new(self.engine.config().globals.fwmark_mask);
        marks.wan(self.engine.wans().get(wan)?.slot)
    }

    /// Start loading the wanted nft table beside the loop when the schedule says so
    /// ([`crate::sync::Schedule::nft_load`]).
    pub(super) fn start_nft(&mut self, now: Instant) {
        let Some(ruleset) = self.schedule.nft_load(now).cloned() else {
            return;
        };
        match self.sys.nft.load(&ruleset) {
            // nft is missing: said once at start.
            None => {}
            Some(Load::Done) => {
                self.schedule.nft_finished(now, ruleset, Ok(()));
            }
            Some(Load::Running(job)) => {
                let tx = self.tx.clone();
                self.nft_job = Some(self.ex.spawn_boxed(async move {
                    let result = job.await;
                    let _ = tx.send(Input::Nft { ruleset, result }).await;
                }));
                self.schedule.nft_started(now);
            }
        }
    }

    /// A load beside the loop finished.
    pub(super) fn nft_done(&mut self, ruleset: Ruleset, result: Result<(), String>, now: Instant) {
        self.nft_job = None;
        let error = result.as_ref().err().cloned();
        match (self.schedule.nft_finished(now, ruleset, result), error) {
            (Loaded::Ok { after_failures }, _) => {
                self.writes += 1;
                if after_failures {
                    log::info!("nft: table inet {} loaded after failures", dataplane::TABLE);
                } else {
                    log::info!("nft: table inet {} loaded", dataplane::TABLE);
                }
            }
            (Loaded::Failed { new: true }, Some(e)) => log::warn!(
                "nft: loading table inet {} failed (retrying): {e}",
                dataplane::TABLE
            ),
            (Loaded::Failed { .. }, e) => log::debug!(
                "nft: loading table inet {} failed again: {}",
                dataplane::TABLE,
                e.unwrap_or_default()
            ),
        }
    }

    /// Delete the conntrack entries pinned to WANs that just went out of service (the
    /// engine's [`crate::engine::Output::Flush`]), after the sync that moved them.
    pub(super) fn flush_pinned(&mut self) {
        let mask = self.engine.config().globals.fwmark_mask;
        for (name, mark) in std::mem::take(&mut self.pending_flush) {
            match self.sys.conntrack.flush(mark, mask) {
                None => {}
                Some(Ok(())) => {
                    log::info!("{name}: deleted the connections pinned to it (mark {mark:#x})")
                }
                Some(Err(e)) => log::warn!("{name}: conntrack flush failed: {e}"),
            }
        }
    }

    /// Every `sync::TABLE_CHECK`: is our table still there? (`nft flush ruleset`
    /// removes it.)
    pub(super) fn check_nft(&mut self, now: Instant) {
        if !self.schedule.check_due(now) {
            return;
        }
        match self.sys.nft.table_exists() {
            None | Some(Ok(true)) => {}
            Some(Ok(false)) => {
                if self.schedule.table_missing() {
                    log::warn!(
                        "nft: table inet {} disappeared: restoring it",
                        dataplane::TABLE
                    );
                }
            }
            Some(Err(e)) => log::debug!("nft: table check failed: {e}"),
        }
        if let Some(Ok(found)) = self.sys.nft.flowtables() {
            if self.flowtables.as_ref() != Some(&found) {
                note_flowtables(&found);
                self.flowtables = Some(found);
            }
        }
    }

    /// The last kernel sync for `status`: routes (netlink) and the nft table, each
    /// with its result, what failed and when the next try is.
    pub(super) fn sync_report(&self, now: Instant) -> serde_json::Value {
        self.schedule.report(now, self.sys.nft.available())
    }
}

/// Apply ops in order: the number of writes done, and the first error if any failed.
pub(super) fn apply_ops(
    kernel: &mut dyn Kernel,
    own: &Ownership,
    ops: &[Op],
    snap: &Snapshot,
) -> (u64, Option<String>) {
    let mut writes = 0;
    let mut failed = None;
    for op in ops {
        match kernel.apply(op) {
            Ok(()) => {
                writes += 1;
                if kernel.writes() {
                    log::info!("kernel: {}", describe(op, &snap.links, own.protocol));
                }
            }
            // Already gone: the kernel removes nexthops with their link, and routes
            // with their nexthops. That is the state we wanted.
            Err(e) if matches!(op, Op::Delete(_)) && e.errno == Some(libc::ENOENT) => {}
            Err(e) => {
                log::warn!("kernel: {e}");
                failed.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (writes, failed)
}
