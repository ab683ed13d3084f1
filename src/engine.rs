//! The engine: the pure core of the daemon: every WAN's probe schedule and health, what the kernel
//! last told us about links, addresses and gateways, and the plan that follows.
//!
//! [`Engine`] never reads a clock, opens a socket or awaits: the event loop in
//! [`crate::daemon`] hands it inputs with `now`, executes the [`Output`]s, asks it for
//! the [`Desired`] kernel state, and sleeps until [`Engine::poll_at`].

use std::borrow::Cow;
use std::net::IpAddr;

use crate::config::{Change, Config, Interface, Prefix, TrackMethod};
use crate::health::{self, Health};
use crate::kernel::{Family, Link, NexthopKind, Object, Ownership, Selector, Snapshot};
use crate::plan::{self, Desired, LinkView, Path};
use crate::probe::{Params, Scheduler};
use crate::time::{earliest, Instant};

/// Something the shell must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send one probe now.
    Probe {
        wan: usize,
        target: IpAddr,
        target_index: u8,
        seq: u16,
    },
    /// A WAN's reported state changed.
    Transition { wan: usize, event: health::Event },
    /// A WAN's gateway of one family (configured or discovered) changed.
    Gateway {
        wan: usize,
        family: Family,
        from: Option<Option<IpAddr>>,
        to: Option<Option<IpAddr>>,
    },
}

/// Run-time state of one WAN. Index-aligned with `Config::interfaces`.
#[derive(Clone, Debug)]
pub struct Wan {
    pub slot: u32,
    pub health: Health,
    sched: Scheduler,
    pub link: Option<LinkView>,
    /// Gateway, addresses and delegated prefixes, per family.
    pub v4: Path,
    pub v6: Path,
    /// ICMP identifier of this WAN's probes.
    pub ident: u16,
    /// Run-time weight override (`set_weight`); cleared by a reload.
    pub weight: Option<u16>,
    /// Drained at run time (`disable`); cleared by a reload.
    pub admin_disabled: bool,
    /// What netifd last said about this WAN's logical interface (only for interfaces
    /// without `option device`, which follow netifd).
    pub netifd: Option<Netifd>,
}

/// netifd's view of a logical interface (`network.interface.<name>` `status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netifd {
    /// The interface is up (configured, addresses assigned).
    pub up: bool,
    /// `l3_device`: the Linux device carrying its traffic (`pppoe-wan`, `wwan0`, ...).
    pub device: Option<String>,
    /// The nexthop of its IPv4 default route: `Some(None)` for a point-to-point default
    /// route without a nexthop, `None` when netifd lists no default route.
    pub gateway: Option<Option<IpAddr>>,
    /// The same for its IPv6 default route.
    pub gateway6: Option<Option<IpAddr>>,
    /// IPv6 prefixes delegated to it (`ipv6-prefix`).
    pub prefixes6: Vec<Prefix>,
}

impl Wan {
    pub fn path(&self, f: Family) -> &Path {
        f.pick(&self.v4, &self.v6)
    }

    fn path_mut(&mut self, f: Family) -> &mut Path {
        f.pick(&mut self.v4, &mut self.v6)
    }

    /// The source address of probes to `target`: the WAN's first address of its family.
    pub fn source_for(&self, target: &IpAddr) -> Option<IpAddr> {
        self.path(Family::of(target)).addresses.first().copied()
    }
}

pub struct Engine {
    cfg: Config,
    wans: Vec<Wan>,
    ident_base: u16,
}

impl Engine {
    /// A core for `cfg`. `previous` is the kernel as found at start: if it holds our
    /// objects (a restart after a crash), WAN slots and health are adopted from it so the
    /// restart changes nothing in the kernel.
    pub fn new(cfg: Config, previous: Option<&Snapshot>, ident_base: u16, now: Instant) -> Engine {
        let mut core = Engine {
            cfg,
            wans: Vec::new(),
            ident_base,
        };
        let own = core.ownership();
        let adopted: Vec<&Object> = previous.map_or(Vec::new(), |s| s.owned.iter().collect());
        let mut slots: Vec<Option<u32>> = core
            .cfg
            .interfaces
            .iter()
            .map(|i| adopted_slot(&adopted, &own, i, core.cfg.globals.table_first))
            .collect();
        assign_free_slots(&mut slots);
        for (i, iface) in core.cfg.interfaces.iter().enumerate() {
            let slot = slots[i].unwrap_or(i as u32);
            core.wans.push(new_wan(iface, slot, ident_base, now));
        }
        // With `default_policy 'default'` no group tells which WANs were up: they keep
        // their initial state.
        if !adopted.is_empty() && core.cfg.default_policy().is_some() {
            let group = core.default_group_members(&adopted);
            for w in core.wans.iter_mut() {
                let id = core.cfg.globals.table_first + w.slot;
                w.health.adopt(group.contains(&id), now);
            }
        }
        core
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn wans(&self) -> &[Wan] {
        &self.wans
    }

    pub fn ownership(&self) -> Ownership {
        plan::ownership(&self.cfg)
    }

    fn default_group_members(&self, owned: &[&Object]) -> Vec<u32> {
        let Some(index) = self
            .cfg
            .policies
            .iter()
            .position(|p| p.name == self.cfg.globals.default_policy)
        else {
            return Vec::new();
        };
        // Members of either family's group, as IPv4 ids (= tables).
        let table = plan::policy_table(&self.cfg, index);
        let mut ids = Vec::new();
        for f in [Family::V4, Family::V6] {
            let gid = plan::nexthop_id(&self.cfg, f, table);
            let shift = gid - table;
            for o in owned {
                if let Object::Nexthop(n) = o {
                    if let (true, NexthopKind::Group(m)) = (n.id == gid, &n.kind) {
                        ids.extend(m.iter().map(|m| m.id - shift.min(m.id)));
                    }
                }
            }
        }
        ids
    }

    /// Take in a fresh dump: links (carrier), addresses and discovered gateways.
    pub fn on_snapshot(&mut self, snap: &Snapshot, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            let link = self.device(i).and_then(|d| snap.link_by_name(d));
            out.extend(self.set_link(i, link, now));
            let iface = &self.cfg.interfaces[i];
            let ifindex = link.map(|l| l.ifindex);
            let wan = &mut self.wans[i];
            for f in [Family::V4, Family::V6] {
                let from_netifd = wan.netifd.as_ref().and_then(|n| match f {
                    Family::V4 => n.gateway,
                    Family::V6 => n.gateway6,
                });
                let mut prefixes = iface.ip6prefix.clone();
                if f == Family::V6 {
                    if let Some(n) = &wan.netifd {
                        prefixes.extend(n.prefixes6.iter().copied());
                    }
                    if let Some(ix) = ifindex {
                        prefixes.extend(source_prefixes(snap, ix));
                    }
                    prefixes.sort();
                    prefixes.dedup();
                }
                let gateway = match (iface.gateway_of(f), from_netifd) {
                    (Some(gw), _) => Some(Some(gw)),
                    (None, Some(gw)) if ifindex.is_some() => Some(gw),
                    _ => ifindex.and_then(|ix| discover_gateway(snap, ix, f)),
                };
                let path = wan.path_mut(f);
                path.addresses = ifindex.map_or(Vec::new(), |ix| {
                    snap.addresses
                        .iter()
                        .filter(|a| a.ifindex == ix && Family::of(&a.addr) == f)
                        .map(|a| a.addr)
                        .collect()
                });
                path.prefixes = prefixes;
                if gateway != path.gateway {
                    out.push(Output::Gateway {
                        wan: i,
                        family: f,
                        from: path.gateway,
                        to: gateway,
                    });
                    path.gateway = gateway;
                }
            }
        }
        out
    }

    /// A link event, acted on before the next dump: carrier loss must not wait.
    pub fn on_link(&mut self, link: &Link, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            if self.device(i) == Some(link.name.as_str()) {
                out.extend(self.set_link(i, Some(link), now));
            }
        }
        out
    }

    /// A link disappeared.
    pub fn on_link_gone(&mut self, ifindex: u32, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            if self.wans[i].link.is_some_and(|l| l.ifindex == ifindex) {
                out.extend(self.set_link(i, None, now));
            }
        }
        out
    }

    fn set_link(&mut self, i: usize, link: Option<&Link>, now: Instant) -> Option<Output> {
        let view = link.map(|l| LinkView {
            ifindex: l.ifindex,
            up: l.up,
            carrier: l.carrier,
        });
        self.set_link_view(i, view, now)
    }

    fn set_link_view(&mut self, i: usize, link: Option<LinkView>, now: Instant) -> Option<Output> {
        let wan = &mut self.wans[i];
        wan.link = link;
        // A WAN that follows netifd is usable only while netifd calls it up.
        let netifd_up = wan.netifd.as_ref().map_or(true, |n| n.up);
        let carrier = netifd_up && link.is_some_and(|l| l.up && l.carrier);
        let event = wan.health.on_carrier(carrier, now)?;
        if !carrier {
            wan.sched.reset();
        }
        Some(Output::Transition { wan: i, event })
    }

    /// An ICMP echo reply (or TCP connect success) on WAN `wan`. Returns whether it
    /// was counted.
    pub fn on_reply(
        &mut self,
        wan: usize,
        from: IpAddr,
        ident: u16,
        seq: u16,
        now: Instant,
    ) -> bool {
        let Some(w) = self.wans.get_mut(wan) else {
            return false;
        };
        let method = self.cfg.interfaces[wan].track_method;
        if method == TrackMethod::Ping && ident != w.ident {
            return false;
        }
        let Some(target) = self.cfg.interfaces[wan]
            .track_ip
            .iter()
            .position(|t| *t == from)
        else {
            return false;
        };
        w.sched.on_reply(seq, target as u8, now)
    }

    /// A probe could not be sent, or its connect failed.
    pub fn on_probe_error(&mut self, wan: usize, target_index: u8, seq: u16) {
        if let Some(w) = self.wans.get_mut(wan) {
            w.sched.on_error(seq, target_index);
        }
    }

    /// Start an immediate round on one WAN or all.
    pub fn probe_now(&mut self, wan: Option<usize>) {
        for (i, w) in self.wans.iter_mut().enumerate() {
            if wan.map_or(true, |x| x == i) {
                w.sched.probe_now();
            }
        }
    }

    fn params(&self, i: usize) -> Params {
        let iface = &self.cfg.interfaces[i];
        Params {
            targets: iface.track_ip.len() as u8,
            count: iface.count,
            timeout: iface.timeout,
            interval: self.wans[i].health.interval(iface),
        }
    }

    /// Advance time: finish rounds, feed health, start due rounds, expire holds.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            let iface = &self.cfg.interfaces[i];
            let wan = &mut self.wans[i];
            if let Some(event) = wan.health.poll(now) {
                out.push(Output::Transition { wan: i, event });
            }
            while let Some(round) = wan.sched.finished(now) {
                if let Some(event) = wan.health.on_round(iface, &round, now) {
                    out.push(Output::Transition { wan: i, event });
                }
            }
            if !wan.health.probing() {
                wan.sched.reset();
                continue;
            }
            let params = self.params(i);
            let wan = &mut self.wans[i];
            // Without a route out of this WAN a probe has failed before it is sent. (For
            // IPv4 a device-bound socket would otherwise ARP for the target on the link,
            // the kernel's "assume on-link" fallback, and proxy ARP could answer.)
            let link_up = wan.link.is_some_and(|l| l.up && l.carrier);
            for p in wan.sched.start(now, &params) {
                let Some(&target) = iface.track_ip.get(usize::from(p.target)) else {
                    continue;
                };
                if !link_up || wan.path(Family::of(&target)).gateway.is_none() {
                    wan.sched.on_error(p.seq, p.target);
                    continue;
                }
                out.push(Output::Probe {
                    wan: i,
                    target,
                    target_index: p.target,
                    seq: p.seq,
                });
            }
        }
        out
    }

    /// When [`Engine::poll`] next has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at = None;
        for (i, w) in self.wans.iter().enumerate() {
            at = earliest(at, w.health.poll_at());
            if w.health.probing() {
                at = earliest(at, w.sched.poll_at(&self.params(i)));
            }
        }
        at
    }

    /// The kernel state the current health and links call for.
    pub fn desired(&self, nexthops_supported: bool) -> Desired {
        let resolved: Vec<Option<Cow<Interface>>> =
            (0..self.wans.len()).map(|i| self.resolved(i)).collect();
        let views: Vec<plan::Wan> = self
            .wans
            .iter()
            .zip(&resolved)
            // A WAN that follows netifd has no objects until netifd names its device.
            .filter_map(|(w, cfg)| Some((w, cfg.as_deref()?)))
            .map(|(w, cfg)| plan::Wan {
                cfg,
                slot: w.slot,
                link: w.link,
                v4: w.v4.clone(),
                v6: w.v6.clone(),
                state: w.health.state(),
                weight: w.weight,
            })
            .collect();
        plan::plan(&self.cfg, &views, nexthops_supported)
    }

    /// Switch to a new config, keeping what did not change (STYLE §7): unchanged WANs
    /// keep everything, retuned ones keep their health, restarted ones start over in
    /// their old slot, new ones get a free slot. Link facts are kept until the next dump.
    pub fn reload(&mut self, cfg: Config, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let mut old: Vec<(String, Wan, crate::config::Interface)> = self
            .cfg
            .interfaces
            .drain(..)
            .zip(self.wans.drain(..))
            .map(|(i, w)| (i.name.clone(), w, i))
            .collect();
        let mut slots: Vec<Option<u32>> = cfg
            .interfaces
            .iter()
            .map(|i| old.iter().find(|o| o.0 == i.name).map(|o| o.1.slot))
            .collect();
        assign_free_slots(&mut slots);
        let mut wans = Vec::new();
        for (i, iface) in cfg.interfaces.iter().enumerate() {
            let slot = slots[i].unwrap_or(i as u32);
            let prev = old
                .iter()
                .position(|o| o.0 == iface.name)
                .map(|p| old.swap_remove(p));
            let wan = match prev {
                Some((_, mut w, old_iface)) => match old_iface.change_to(iface) {
                    // Run-time changes (set_weight, disable) do not survive a reload.
                    change @ (Change::Unchanged | Change::Retune) => {
                        w.weight = None;
                        w.admin_disabled = false;
                        let event = if change == Change::Retune {
                            w.health.retune(iface, now)
                        } else {
                            w.health.set_enabled(iface.enabled, now)
                        };
                        if let Some(event) = event {
                            out.push(Output::Transition { wan: i, event });
                        }
                        w
                    }
                    Change::Restart => {
                        let mut fresh = new_wan(iface, slot, self.ident_base, now);
                        fresh.link = w.link;
                        fresh.v4.addresses = w.v4.addresses.clone();
                        fresh.v6.addresses = w.v6.addresses.clone();
                        if iface.follows_netifd() {
                            fresh.netifd = w.netifd;
                        }
                        let carrier = w.link.is_some_and(|l| l.up && l.carrier);
                        fresh.health = Health::new(iface, Some(carrier), now);
                        fresh
                    }
                },
                None => new_wan(iface, slot, self.ident_base, now),
            };
            wans.push(wan);
        }
        self.cfg = cfg;
        self.wans = wans;
        out
    }

    /// Set or clear a run-time weight override. Returns false for an unknown WAN.
    pub fn set_weight(&mut self, wan: usize, weight: Option<u16>) -> bool {
        match self.wans.get_mut(wan) {
            Some(w) => {
                w.weight = weight;
                true
            }
            None => false,
        }
    }

    /// Index of the WAN named `name`.
    pub fn wan_index(&self, name: &str) -> Option<usize> {
        self.cfg.interfaces.iter().position(|i| i.name == name)
    }

    /// Drain (`false`) or restore (`true`) a WAN at run time: a drained WAN is reported
    /// `disabled`, is not probed and takes no new flows. A WAN disabled in the config
    /// stays disabled. Returns `None` for an unknown WAN, else the transition, if any.
    pub fn set_admin_enabled(
        &mut self,
        wan: usize,
        enabled: bool,
        now: Instant,
    ) -> Option<Vec<Output>> {
        let configured = self.cfg.interfaces.get(wan)?.enabled;
        let w = self.wans.get_mut(wan)?;
        w.admin_disabled = !enabled;
        let event = w.health.set_enabled(configured && enabled, now);
        if !w.health.probing() {
            w.sched.reset();
        }
        Some(
            event
                .map(|event| Output::Transition { wan, event })
                .into_iter()
                .collect(),
        )
    }

    /// The Linux device WAN `i` uses now: the configured one, or for a WAN that follows
    /// netifd the `l3_device` netifd last reported (none until it has).
    pub fn device(&self, i: usize) -> Option<&str> {
        let iface = self.cfg.interfaces.get(i)?;
        if iface.follows_netifd() {
            self.wans.get(i)?.netifd.as_ref()?.device.as_deref()
        } else {
            Some(&iface.device)
        }
    }

    /// WAN `i`'s configuration with the device it uses now; `None` while it has none.
    fn resolved(&self, i: usize) -> Option<Cow<'_, Interface>> {
        let iface = &self.cfg.interfaces[i];
        if !iface.follows_netifd() {
            return Some(Cow::Borrowed(iface));
        }
        let device = self.device(i)?;
        let mut owned = iface.clone();
        owned.device = device.to_string();
        Some(Cow::Owned(owned))
    }

    /// Names of the WANs whose device and gateway come from netifd.
    pub fn netifd_interfaces(&self) -> impl Iterator<Item = &str> {
        self.cfg
            .interfaces
            .iter()
            .filter(|i| i.follows_netifd())
            .map(|i| i.name.as_str())
    }

    /// What netifd says about WAN `wan` (`None`: it does not know the interface). Takes
    /// effect at once for up/down; device and gateway at the next dump, which the caller
    /// should request. Returns whether anything changed.
    pub fn on_netifd(
        &mut self,
        wan: usize,
        info: Option<Netifd>,
        now: Instant,
    ) -> (bool, Vec<Output>) {
        let Some(w) = self.wans.get_mut(wan) else {
            return (false, Vec::new());
        };
        if !self.cfg.interfaces[wan].follows_netifd() || w.netifd == info {
            return (false, Vec::new());
        }
        let device_changed = w.netifd.as_ref().and_then(|n| n.device.clone())
            != info.as_ref().and_then(|n| n.device.clone());
        w.netifd = info;
        let mut out = Vec::new();
        if device_changed {
            // The old link facts belong to the old device.
            w.link = None;
            w.v4 = Path::default();
            w.v6 = Path::default();
            out.extend(self.set_link(wan, None, now));
        } else {
            let link = self.wans[wan].link;
            out.extend(self.set_link_view(wan, link, now));
        }
        (true, out)
    }
}

fn new_wan(iface: &crate::config::Interface, slot: u32, ident_base: u16, now: Instant) -> Wan {
    let ident = ident_base.wrapping_add(slot as u16);
    Wan {
        slot,
        health: Health::new(iface, None, now),
        // Spread sequence numbers per WAN and per start.
        sched: Scheduler::new(ident.rotate_left(8)),
        link: None,
        v4: Path {
            gateway: iface.gateway.map(Some),
            ..Path::default()
        },
        v6: Path {
            gateway: iface.gateway6.map(Some),
            ..Path::default()
        },
        ident,
        weight: None,
        admin_disabled: false,
        netifd: None,
    }
}

/// The slot a previous run used for `iface`, read from its `oif` rule of a family it
/// carries (two sections may share a device, one per family, as in mwan3).
fn adopted_slot(
    owned: &[&Object],
    own: &Ownership,
    iface: &Interface,
    table_first: u32,
) -> Option<u32> {
    let oif = Selector::Oif(iface.device.clone());
    owned.iter().find_map(|o| match o {
        Object::Rule(r) if r.selector == oif && iface.family.carries(r.family) => {
            own.tables.contains(&r.table).then(|| r.table - table_first)
        }
        _ => None,
    })
}

/// Give every WAN without a slot the lowest slot nobody holds; drop duplicates.
fn assign_free_slots(slots: &mut [Option<u32>]) {
    for i in 0..slots.len() {
        if let Some(s) = slots[i] {
            if slots[..i].contains(&Some(s)) || s >= plan::MAX_WANS {
                slots[i] = None;
            }
        }
    }
    for i in 0..slots.len() {
        if slots[i].is_none() {
            let free = (0..).find(|s| !slots.contains(&Some(*s))).unwrap_or(0);
            slots[i] = Some(free);
        }
    }
}

/// The gateway of the best foreign default route on `ifindex` (lowest metric, main
/// table first): what netifd, NetworkManager or a DHCP client installed.
fn discover_gateway(snap: &Snapshot, ifindex: u32, f: Family) -> Option<Option<IpAddr>> {
    snap.foreign_defaults
        .iter()
        .filter(|d| d.ifindex == ifindex && d.family == f)
        .min_by_key(|d| (d.table != 254, d.metric))
        .map(|d| d.gateway)
}

/// The source prefixes of foreign source-specific IPv6 default routes on `ifindex`
/// (`default from 2001:db8:1::/48 via fe80::1 dev wan`: netifd's source routing for a
/// delegated prefix).
fn source_prefixes(snap: &Snapshot, ifindex: u32) -> impl Iterator<Item = Prefix> + '_ {
    snap.foreign_defaults
        .iter()
        .filter(move |d| d.ifindex == ifindex && d.family == Family::V6)
        .filter_map(|d| d.src)
        .filter(|(_, len)| *len > 0)
        .map(|(addr, len)| Prefix { addr, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;
    use crate::testutil::{config, ip, snapshot};
    use crate::time::Duration;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn group(core: &Engine) -> Vec<u32> {
        let d = core.desired(true);
        crate::kernel::group_members(&d.objects, 1199)
            .map(|m| m.iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }

    /// Answer every probe in `out` except those of WAN `dead`, `rtt` later.
    fn answer(core: &mut Engine, out: &[Output], dead: Option<usize>, now: Instant) {
        for o in out {
            if let Output::Probe {
                wan, target, seq, ..
            } = o
            {
                if Some(*wan) != dead {
                    let ident = core.wans()[*wan].ident;
                    assert!(core.on_reply(*wan, *target, ident, *seq, now));
                }
            }
        }
    }

    #[test]
    fn timeline_blackhole_detection_and_recovery() {
        let cfg = config(&[3, 1, 1], 3);
        let mut core = Engine::new(cfg, None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true, true]), at(0));
        assert_eq!(group(&core), vec![1100, 1101, 1102]);
        let mut transitions = Vec::new();
        let mut down_at = None;
        let mut t = 0;
        // WAN 2 stops answering at t = 2000 ms and comes back at t = 10000 ms.
        while t <= 20_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                if let Output::Transition { wan, event } = o {
                    transitions.push((t, *wan, event.to));
                    if *wan == 1 && event.to == State::Down {
                        down_at = Some(t);
                    }
                }
            }
            let dead = (2000..10_000).contains(&t).then_some(1);
            answer(&mut core, &out, dead, now + Duration::from_millis(15));
            t += 50;
        }
        // Rounds at 2000, 3000, 4000 lost, the last one times out at 5000.
        assert_eq!(down_at, Some(5000));
        assert!(transitions.contains(&(5000, 1, State::Down)));
        let up = transitions
            .iter()
            .find(|(t, w, s)| *w == 1 && *s == State::Up && *t > 5000)
            .expect("recovered");
        assert!(
            up.0 >= 12_000 && up.0 <= 13_100,
            "up after 3 good rounds: {up:?}"
        );
        assert_eq!(group(&core), vec![1100, 1101, 1102]);
        assert_eq!(transitions.len(), 2, "{transitions:?}");
    }

    #[test]
    fn carrier_loss_leaves_the_group_at_once() {
        let cfg = config(&[1, 1], 1);
        let mut core = Engine::new(cfg, None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let out = core.on_link(
            &Link {
                ifindex: 11,
                name: "wan2".into(),
                up: true,
                carrier: false,
            },
            at(100),
        );
        assert!(
            matches!(&out[..], [Output::Transition { wan: 1, event }] if event.to == State::NoCarrier)
        );
        assert_eq!(group(&core), vec![1100]);
        // No probes for a WAN without carrier.
        let out = core.poll(at(200));
        assert!(out
            .iter()
            .all(|o| !matches!(o, Output::Probe { wan: 1, .. })));
    }

    #[test]
    fn replies_for_another_wan_or_ident_are_not_counted() {
        let cfg = config(&[1, 1], 2);
        let mut core = Engine::new(cfg, None, 7, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let out = core.poll(at(0));
        let Output::Probe { target, seq, .. } = out[0] else {
            panic!()
        };
        let other_ident = core.wans()[1].ident;
        assert!(!core.on_reply(0, target, other_ident, seq, at(5)));
        assert!(!core.on_reply(0, ip("198.51.100.1"), core.wans()[0].ident, seq, at(5)));
        assert!(core.on_reply(0, target, core.wans()[0].ident, seq, at(5)));
    }

    #[test]
    fn gateway_is_discovered_and_followed() {
        let cfg = config(&[1], 1);
        let mut core = Engine::new(cfg, None, 1, at(0));
        let mut snap = snapshot(&[true]);
        let out = core.on_snapshot(&snap, at(0));
        assert!(out.iter().any(|o| matches!(o, Output::Gateway { .. })));
        assert!(core.on_snapshot(&snap, at(1)).is_empty(), "edge-triggered");
        snap.foreign_defaults[0].gateway = Some(ip("10.20.1.254"));
        let out = core.on_snapshot(&snap, at(2));
        assert_eq!(
            out,
            vec![Output::Gateway {
                wan: 0,
                family: Family::V4,
                from: Some(Some(ip("10.20.1.1"))),
                to: Some(Some(ip("10.20.1.254")))
            }]
        );
    }

    #[test]
    fn netifd_supplies_device_gateway_and_up() {
        let mut cfg = config(&[1, 1], 0);
        cfg.interfaces[1].device = String::new();
        let mut core = Engine::new(cfg, None, 1, at(0));
        let snap = snapshot(&[true, true]);
        core.on_snapshot(&snap, at(0));
        // Until netifd speaks: no device, no carrier, no objects at all for wan2.
        assert_eq!(core.device(1), None);
        assert_eq!(core.wans()[1].health.state(), State::NoCarrier);
        let oif_rules = |core: &Engine| {
            core.desired(true)
                .objects
                .iter()
                .filter(|o| matches!(o, Object::Rule(r) if matches!(r.selector, Selector::Oif(_))))
                .count()
        };
        assert_eq!(oif_rules(&core), 1);
        let info = Netifd {
            up: true,
            device: Some("wan2".into()),
            gateway: Some(Some(ip("10.20.2.77"))),
            ..Netifd::default()
        };
        let (changed, _) = core.on_netifd(1, Some(info.clone()), at(10));
        assert!(changed);
        assert!(
            !core.on_netifd(1, Some(info.clone()), at(11)).0,
            "edge-triggered"
        );
        core.on_snapshot(&snap, at(20));
        assert_eq!(core.device(1), Some("wan2"));
        assert_eq!(core.wans()[1].v4.gateway, Some(Some(ip("10.20.2.77"))));
        assert_eq!(
            core.wans()[1].health.state(),
            State::Up,
            "untracked: follows carrier"
        );
        assert_eq!(group(&core), vec![1100, 1101]);
        assert_eq!(oif_rules(&core), 2);
        // netifd takes it down: out at once, without a dump.
        let down = Netifd {
            up: false,
            ..info.clone()
        };
        let (_, out) = core.on_netifd(1, Some(down), at(30));
        assert!(
            matches!(&out[..], [Output::Transition { wan: 1, event }] if event.to == State::NoCarrier)
        );
        assert_eq!(group(&core), vec![1100]);
        // A new device: the next dump finds it (here: one that does not exist).
        let moved = Netifd {
            device: Some("ppp0".into()),
            ..info
        };
        core.on_netifd(1, Some(moved), at(40));
        core.on_snapshot(&snap, at(50));
        assert_eq!(core.device(1), Some("ppp0"));
        assert_eq!(core.wans()[1].health.state(), State::NoCarrier);
        // Device-bound WANs ignore netifd.
        assert!(!core.on_netifd(0, None, at(60)).0);
    }

    #[test]
    fn restart_adopts_slots_and_group_membership() {
        let cfg = config(&[1, 1, 1], 1);
        // A previous run: wan2 was down (not in the group).
        let mut prev_core = Engine::new(cfg.clone(), None, 1, at(0));
        prev_core.on_snapshot(&snapshot(&[true, true, true]), at(0));
        let mut snap = snapshot(&[true, true, true]);
        let mut desired = prev_core.desired(true);
        for o in desired.objects.iter_mut() {
            if let Object::Nexthop(n) = o {
                if let NexthopKind::Group(m) = &mut n.kind {
                    m.retain(|m| m.id != 1101);
                }
            }
        }
        snap.owned = desired.objects.clone();
        let mut core = Engine::new(cfg, Some(&snap), 2, at(0));
        core.on_snapshot(&snap, at(0));
        assert_eq!(core.wans()[1].health.state(), State::Down);
        assert_eq!(
            core.desired(true).objects,
            desired.objects,
            "nothing to change"
        );
    }

    #[test]
    fn reload_keeps_health_of_unchanged_and_retuned_wans() {
        let cfg = config(&[1, 1], 1);
        let mut core = Engine::new(cfg.clone(), None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, false]), at(0));
        let mut new = cfg.clone();
        new.members[0].weight = 5;
        new.interfaces[0].interval = Duration::from_millis(500);
        let out = core.reload(new.clone(), at(10));
        assert!(out.is_empty());
        assert_eq!(core.wans()[1].health.state(), State::NoCarrier);
        assert_eq!(core.wans()[0].slot, 0);
        // A new WAN in front gets a fresh slot; the others keep theirs.
        let mut more = new.clone();
        let mut extra = more.interfaces[0].clone();
        extra.name = "wan0".into();
        extra.device = "wan0".into();
        more.interfaces.insert(0, extra);
        core.reload(more, at(20));
        let slots: Vec<u32> = core.wans().iter().map(|w| w.slot).collect();
        assert_eq!(slots, vec![2, 0, 1]);
    }
}
