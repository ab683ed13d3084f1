//! Kernel sync: routes, rules and nexthops over netlink, the nft table beside the loop,
//! and the conntrack flushes that follow them.

use super::*;

impl Daemon {
    pub(super) fn set_hash_policy(&mut self) {
        match std::fs::read_to_string(HASH_POLICY) {
            Ok(old) if old.trim() != "1" => match std::fs::write(HASH_POLICY, "1") {
                Ok(()) => self.old_hash_policy = Some(old.trim().to_string()),
                Err(e) => log::warn!("cannot set {HASH_POLICY} to 1 (per-flow balancing): {e}"),
            },
            Ok(_) => {}
            Err(e) => log::warn!("cannot read {HASH_POLICY}: {e}"),
        }
    }

    /// Whether the kernel needs a dump and reconcile now.
    pub(super) fn sync_due(&self, now: Instant) -> bool {
        if self.engine.waiting_for_netifd() {
            // The plan does not know every WAN's device yet: it would remove what a
            // previous run left for them.
            return false;
        }
        if self.holding_for_nft(now) {
            return false;
        }
        let changed = match &self.applied {
            None => true,
            Some(a) => *a != self.engine.desired(self.nexthops_supported),
        };
        // A missing or failed nft table is not a reason to dump: `start_nft` retries
        // it on its own backoff.
        changed
            || !self.pending_flush.is_empty()
            || self.resync_at.is_some_and(|t| t <= now)
            || self.routes.due(now)
            || self.periodic_at <= now
    }

    /// Dump, feed the engine, diff, apply.
    pub(super) fn sync_kernel(&mut self, now: Instant) {
        if self.periodic_at <= now {
            // The periodic re-check covers netifd too: its view may have moved without
            // an event reaching us.
            if let Some(bus) = &self.bus {
                if !bus.netifd_interfaces.borrow().is_empty() {
                    bus.send(bus::Out::RefreshNetifd);
                }
            }
        }
        self.resync_at = None;
        self.periodic_at = now + self.engine.config().globals.reconcile_interval;
        let reads = self.engine.reads();
        let snap = match self.kernel.snapshot(&self.own, &reads) {
            Ok(s) => s,
            Err(e) => {
                let e = format!("kernel dump failed: {e}");
                if self.routes.failed(now, e.clone()) {
                    log::warn!("{e}");
                }
                return;
            }
        };
        self.narrow_events(&reads, &snap);
        self.nexthops_supported = snap.nexthops_supported;
        let outs = self.engine.on_snapshot(&snap, now);
        self.handle(outs);
        let desired = self.engine.desired(self.nexthops_supported);
        // The data plane first: when the routes appear, new flows are already pinned.
        // The nft table loads beside the loop, and the routes wait for it only while
        // nft is healthy and for at most `NFT_HOLD` (nft may be slow or hang: then
        // the routes go first, so that failover never waits for nft).
        self.nft_wanted = Some(self.ruleset(&desired));
        if self.start_nft(now) && self.nft_retry.retry_at().is_none() {
            self.nft_hold_until = Some(now + NFT_HOLD);
        }
        if self.holding_for_nft(now) {
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
        match failed {
            Some(e) => {
                if self.routes.failed(now, e.clone()) {
                    log::warn!("kernel: {e} (retrying)");
                }
            }
            None => self.routes.succeeded(now),
        }
    }

    /// Apply ops in order; the first error if any failed (those are retried later).
    pub(super) fn apply(&mut self, ops: &[Op], snap: &Snapshot) -> Option<String> {
        let (writes, failed) = apply_ops(
            self.kernel.as_mut(),
            &self.own,
            ops,
            snap,
            self.opts.dry_run,
        );
        self.writes += writes;
        failed
    }

    pub(super) fn wan_mark(&self, wan: usize) -> Option<u32> {
        let marks = Marks::new(self.engine.config().globals.fwmark_mask);
        marks.wan(self.engine.wans().get(wan)?.slot)
    }

    /// The nft table for `desired`.
    pub(super) fn ruleset(&self, desired: &Desired) -> Ruleset {
        self.engine.ruleset(desired)
    }

    /// Whether route writes wait for the nft load that is running.
    pub(super) fn holding_for_nft(&self, now: Instant) -> bool {
        self.nft_job.is_some() && self.nft_hold_until.is_some_and(|t| now < t)
    }

    /// Start loading the wanted nft table beside the loop if it differs from what is
    /// loaded (or the table went missing), no load is running, and a failed load's
    /// backoff is over (a different table is tried at once). True if one started.
    pub(super) fn start_nft(&mut self, now: Instant) -> bool {
        let Some(wanted) = &self.nft_wanted else {
            return false;
        };
        if self.nft_applied.as_ref() == Some(wanted) || self.nft_job.is_some() {
            return false;
        }
        if self.nft_failed.as_ref() == Some(wanted) && !self.nft_retry.may_try(now) {
            return false;
        }
        if self.opts.dry_run {
            crate::sys::print(&wanted.script(&dataplane::Existing::default()));
            self.nft_applied = Some(wanted.clone());
            return false;
        }
        if !self.needs.nft {
            return false;
        }
        let Some(nf) = self.nf.as_mut() else {
            return false;
        };
        // Names over netlink (one quick request, never set elements); the load beside
        // the loop.
        let (nft, ruleset, tx) = (self.nft.clone(), wanted.clone(), self.tx.clone());
        let names = nf
            .names()
            .map_err(|e| format!("cannot list table inet {}: {e}", dataplane::TABLE));
        self.nft_job = Some(self.ex.spawn(async move {
            let result = match names {
                Ok(ex) => nft.load(ruleset.script(&ex)).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(Input::Nft { ruleset, result }).await;
        }));
        true
    }

    /// A load beside the loop finished.
    pub(super) fn nft_done(&mut self, ruleset: Ruleset, result: Result<(), String>, now: Instant) {
        self.nft_job = None;
        if self.nft_hold_until.take().is_some() {
            // The routes held back for this load go now.
            self.resync_at = Some(now);
        }
        match result {
            Ok(()) => {
                self.writes += 1;
                if matches!(self.nft_retry.outcome(), retry::Outcome::Failed { .. }) {
                    log::info!("nft: table inet {} loaded after failures", dataplane::TABLE);
                } else {
                    log::info!("nft: table inet {} loaded", dataplane::TABLE);
                }
                self.nft_retry.succeeded(now);
                self.nft_applied = Some(ruleset);
                self.nft_failed = None;
            }
            Err(e) => {
                if self.nft_retry.failed(now, e.clone()) {
                    log::warn!(
                        "nft: loading table inet {} failed (retrying): {e}",
                        dataplane::TABLE
                    );
                } else {
                    log::debug!(
                        "nft: loading table inet {} failed again: {e}",
                        dataplane::TABLE
                    );
                }
                self.nft_failed = Some(ruleset);
            }
        }
    }

    /// Delete the conntrack entries pinned to WANs that just went out of service.
    pub(super) fn flush_pinned(&mut self) {
        let mask = self.engine.config().globals.fwmark_mask;
        for (name, mark) in std::mem::take(&mut self.pending_flush) {
            if self.opts.dry_run {
                crate::sys::print(&format!(
                    "conntrack -D -f ipv4 --mark {mark:#x}/{mask:#x}\n"
                ));
                continue;
            }
            let Some(nf) = self.nf.as_mut().filter(|_| self.needs.ctnetlink) else {
                continue;
            };
            match nf.flush_conntrack(mark, mask) {
                Ok(()) => {
                    log::info!("{name}: deleted the connections pinned to it (mark {mark:#x})")
                }
                Err(e) => log::warn!("{name}: conntrack flush failed: {e}"),
            }
        }
    }

    /// Every `NFT_CHECK`: is our table still there? (`nft flush ruleset` removes it.)
    pub(super) fn check_nft(&mut self, now: Instant) {
        if now < self.nft_check_at {
            return;
        }
        self.nft_check_at = now + NFT_CHECK;
        let Some(nf) = self.nf.as_mut().filter(|_| self.needs.nft) else {
            return;
        };
        match nf.table_exists() {
            Ok(true) => {}
            Ok(false) => {
                if self.nft_applied.is_some() {
                    log::warn!(
                        "nft: table inet {} disappeared: restoring it",
                        dataplane::TABLE
                    );
                }
                self.nft_applied = None;
            }
            Err(e) => log::debug!("nft: table check failed: {e}"),
        }
        if let Ok(found) = nf.flowtables() {
            if self.flowtables.as_ref() != Some(&found) {
                note_flowtables(&found);
                self.flowtables = Some(found);
            }
        }
    }

    /// The last kernel sync for `status`: routes (netlink) and the nft table, each
    /// with its result, what failed and when the next try is.
    pub(super) fn sync_report(&self, now: Instant) -> serde_json::Value {
        let mut nft = self.nft_retry.report(now);
        if let Some(o) = nft.as_object_mut() {
            o.insert("running".into(), self.nft_job.is_some().into());
            if self.nf.is_none() && !self.opts.dry_run {
                o.insert("result".into(), "unavailable".into());
            }
        }
        serde_json::json!({"routes": self.routes.report(now), "nft": nft})
    }
}

/// Apply ops in order: the number of writes done, and the first error if any failed.
pub(super) fn apply_ops(
    kernel: &mut dyn Kernel,
    own: &Ownership,
    ops: &[Op],
    snap: &Snapshot,
    dry_run: bool,
) -> (u64, Option<String>) {
    let mut writes = 0;
    let mut failed = None;
    for op in ops {
        match kernel.apply(op) {
            Ok(()) => {
                writes += 1;
                if !dry_run {
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
