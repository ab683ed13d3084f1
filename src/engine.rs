//! The engine: the pure core of the daemon: every WAN's probe schedule and health, what the kernel
//! last told us about links, addresses and gateways, and the plan that follows.
//!
//! [`Engine`] never reads a clock, opens a socket or awaits: the event loop in
//! [`crate::daemon`] hands it inputs with `now`, executes the [`Output`]s, asks it for
//! the [`Desired`] kernel state, and sleeps until [`Engine::poll_at`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;

use crate::balance::{self, Balancer, Sample};
use crate::config::{Change, Config, Interface, Mode, Prefix, TrackMethod};
use crate::health::{self, Health, Reason};
use crate::kernel::{Family, Link, NexthopKind, Object, Ownership, Reads, Snapshot};
use crate::plan::{self, Desired, LinkView, Marks, Path};
use crate::probe::{cost, Params, Reply, Scheduler};
use crate::quota::{self, Quota};
use crate::time::{earliest, Duration, Instant};

/// Something the shell must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send one probe now.
    Probe {
        wan: usize,
        /// The kind of probe: `track_method`, or `standby_method` on standby.
        method: TrackMethod,
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
    /// The kernel's default route on a WAN that follows netifd disagrees with what
    /// netifd last said: ask netifd again.
    AskNetifd { wan: usize },
    /// The HA role keepalived reported changed (`uplinkd ha master|backup|fault`).
    Role {
        from: Option<ha::Role>,
        to: ha::Role,
    },
    /// Delete the connections pinned with conntrack mark `mark` (WAN `wan`'s, or the
    /// mark of the slot it left) after the next kernel sync, so that they start over on
    /// the routes that sync writes. Decided by [`Engine::flushes`], [`Engine::set_role`]
    /// and [`Engine::reload`].
    Flush { wan: usize, mark: u32, why: Flush },
    /// A reload moved a WAN to another slot (a WAN inserted or removed before it, or
    /// its `option slot` changed): the connections pinned with the old slot's mark
    /// would now route through whatever WAN holds that slot.
    Moved { wan: usize, from: u32, to: u32 },
    /// A metered WAN's quota was crossed or reset (see [`Engine::poll_quota`]).
    Quota(quota::Event),
}

/// Why connections are flushed ([`Output::Flush`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flush {
    /// The WAN went out of service (`flush_conntrack` `ifdown`).
    Out,
    /// The WAN came up (`flush_conntrack` `ifup`).
    Up,
    /// This router became HA master while the WAN cannot carry traffic here.
    Takeover,
    /// A reload moved the WAN to another slot: the mark is the old slot's.
    Moved,
}

/// What an answer to a probe of `w` changes: a late one cancels a fall, a counted one
/// adds its bytes. Returns whether it was counted.
fn settle(w: &mut Wan, iface: &crate::config::Interface, from: &IpAddr, reply: Reply) -> bool {
    if reply == Reply::Late {
        w.health.on_late();
    }
    if reply.counted() {
        w.probe_bytes
            .on_answered(&cost::of(w.method, &iface.request, from));
    }
    reply.counted()
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
    /// The Linux device a WAN that follows netifd uses: netifd's `l3_device` while the
    /// interface is up, kept while it is down (see [`Engine::on_netifd`]).
    netifd_device: Option<String>,
    /// Waiting for netifd's first answer (start-up): nothing about this WAN is judged.
    /// `Answered` waits for the dump that shows its device.
    pending: Pending,
    /// The kernel gateway (per family) for which netifd was last asked again.
    asked: [Option<Option<IpAddr>>; 2],
    /// Per target (index into `track_ip`): why its last tcp, http or dns probe failed
    /// (`HTTP 302`, `SERVFAIL`, `timed out`); `None` once one succeeds.
    pub last_error: Vec<Option<String>>,
    /// Bytes this WAN's probes sent and received at the IP layer (the model of
    /// [`cost`]), since start.
    pub probe_bytes: cost::Counted,
    /// The probe kind of the last round started (`standby_method` on standby, else
    /// `track_method`): the kind whose answers count.
    pub method: TrackMethod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    No,
    Netifd,
    Answered,
}

/// netifd's view of a logical interface (`network.interface.<name>` `status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netifd {
    /// The interface is up (configured, addresses assigned).
    pub up: bool,
    /// `l3_device`: the Linux device carrying its traffic (`pppoe-wan`, `wwan0`, ...);
    /// netifd reports it only while the interface is up.
    pub device: Option<String>,
    /// `device`: the interface's main device (for PPPoE the Ethernet device under it,
    /// for QMI/MBIM none). Used only until an `l3_device` is known.
    pub main_device: Option<String>,
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

/// Membership of an HA pair (keepalived VRRP + conntrackd): the role keepalived's notify
/// script reported, and when.
pub mod ha {
    use crate::time::Instant;

    /// keepalived's VRRP states as its `notify` script names them.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum Role {
        /// Holds the virtual addresses: forwards the LAN's traffic.
        Master,
        /// Ready (probing, tables in place), forwards nothing.
        Backup,
        /// keepalived found a tracked interface or script failing: forwards nothing.
        Fault,
    }

    impl Role {
        pub const NAMES: [&'static str; 3] = ["master", "backup", "fault"];

        pub fn as_str(self) -> &'static str {
            match self {
                Role::Master => "master",
                Role::Backup => "backup",
                Role::Fault => "fault",
            }
        }

        pub fn parse(s: &str) -> Option<Role> {
            match s {
                "master" => Some(Role::Master),
                "backup" => Some(Role::Backup),
                "fault" => Some(Role::Fault),
                _ => None,
            }
        }
    }

    /// The role in force and since when.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub struct Ha {
        pub role: Role,
        pub since: Instant,
    }
}

pub struct Engine {
    /// The HA role, once keepalived has reported one; `None` on a router alone.
    ha: Option<ha::Ha>,
    cfg: Config,
    wans: Vec<Wan>,
    ident_base: u16,
    /// What a previous run left, for WANs whose device is known only once netifd answers.
    adoption: Adoption,
    /// Until when start-up waits for netifd (see [`Engine::wait_for_netifd`]).
    netifd_wait: Option<Instant>,
    /// The policies' modes: measurements in, effective weights out.
    balancer: Balancer,
    /// When the balancer next recomputes (every second while a mode measures).
    balance_at: Option<Instant>,
    /// The metered WANs' byte counts.
    meters: quota::Meters,
    /// The last nft table planned and what it was built from. The loop plans on every
    /// turn, mostly the same table, and building one (its text) costs as much as the
    /// rest of the plan. Cleared when the configuration changes.
    nft_memo: RefCell<Option<NftMemo>>,
}

/// See `Engine::nft_memo`.
type NftMemo = (
    Vec<plan::PolicyPlan>,
    Vec<crate::dataplane::WanInfo>,
    crate::dataplane::Ruleset,
);

/// What the shell should measure of one WAN for the policies' modes (see
/// [`Engine::sampling`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sampling {
    pub wan: usize,
    /// Live conntrack entries with this WAN's mark (`least_connections`).
    pub connections: bool,
    /// The link's byte counters (`least_used`, `overflow`).
    pub counters: bool,
}

/// The group membership found at start.
#[derive(Clone, Debug, Default)]
struct Adoption {
    /// Tables (= first nexthop ids) of the default policy's group members.
    group: Vec<u32>,
    /// Whether anything was adopted at all.
    any: bool,
}

impl Engine {
    /// A core for `cfg`. `previous` is the kernel as found at start: if it holds our
    /// objects (a restart after a crash), WAN slots and health are adopted from it so the
    /// restart changes nothing in the kernel.
    pub fn new(cfg: Config, previous: Option<&Snapshot>, ident_base: u16, now: Instant) -> Engine {
        let mut core = Engine {
            ha: None,
            cfg,
            wans: Vec::new(),
            ident_base,
            adoption: Adoption::default(),
            netifd_wait: None,
            balancer: Balancer::default(),
            balance_at: None,
            meters: quota::Meters::default(),
            nft_memo: RefCell::new(None),
        };
        core.meters = quota::Meters::restore(None, &core.quotas());
        let adopted: Vec<&Object> = previous.map_or(Vec::new(), |s| s.owned.iter().collect());
        // Slots come from the configuration alone (never from what a previous run left),
        // so that both routers of an HA pair route a synced connection's mark alike.
        let slots = core.cfg.slots();
        for (i, iface) in core.cfg.interfaces.iter().enumerate() {
            core.wans.push(new_wan(iface, slots[i], ident_base, now));
        }
        // With `default_policy 'default'` no group tells which WANs were up: they keep
        // their initial state.
        if !adopted.is_empty() && core.cfg.default_policy().is_some() {
            let group = core.default_group_members(&adopted);
            for w in core.wans.iter_mut() {
                let id = core.cfg.globals.table_first + w.slot;
                w.health.adopt(group.contains(&id), now);
            }
            core.adoption.group = group;
            core.adoption.any = true;
        }
        core
    }

    /// Start-up with ubus: WANs that follow netifd are not judged until netifd has
    /// answered for them and a dump has shown their device, or until `until`. Until then
    /// they keep what a previous run left in the kernel (see [`Engine::waiting_for_netifd`]).
    pub fn wait_for_netifd(&mut self, until: Instant) {
        let mut any = false;
        for (i, w) in self.wans.iter_mut().enumerate() {
            if self.cfg.interfaces[i].follows_netifd() && w.netifd.is_none() {
                w.pending = Pending::Netifd;
                any = true;
            }
        }
        if any {
            self.netifd_wait = Some(until);
        }
    }

    /// True while start-up waits for netifd: the kernel must not be reconciled yet, as
    /// the plan does not know the devices of the WANs that follow netifd.
    pub fn waiting_for_netifd(&self) -> bool {
        self.wans.iter().any(|w| w.pending == Pending::Netifd)
    }

    /// WAN `i` has its device from netifd: take the verdict a previous run left for its
    /// slot, as a device-bound WAN does at start. The slot itself is the configuration's.
    fn adopt_netifd(&mut self, i: usize, now: Instant) {
        if self.wans[i].netifd_device.is_none() {
            return;
        }
        if self.adoption.any {
            let id = self.cfg.globals.table_first + self.wans[i].slot;
            let routed = self.adoption.group.contains(&id);
            self.wans[i].health.adopt(routed, now);
        }
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
            if self.wans[i].pending == Pending::Answered {
                // netifd has named the device and this dump shows it: judge from here.
                self.wans[i].pending = Pending::No;
            }
            out.extend(self.set_link(i, link, now));
            let iface = &self.cfg.interfaces[i];
            let ifindex = link.map(|l| l.ifindex);
            let wan = &mut self.wans[i];
            for f in [Family::V4, Family::V6] {
                let from_netifd = wan.netifd.as_ref().and_then(|n| match f {
                    Family::V4 => n.gateway,
                    Family::V6 => n.gateway6,
                });
                let kernel = ifindex.and_then(|ix| discover_gateway(snap, ix, f));
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
                let slot = usize::from(f == Family::V6);
                let gateway = match (iface.gateway_of(f), &wan.netifd) {
                    (Some(gw), _) => Some(Some(gw)),
                    // Not following netifd, or netifd has not said anything: the kernel.
                    (None, None) => kernel,
                    // netifd took it down: its routes are on their way out; using them
                    // would only make nexthops on a device going down.
                    (None, Some(n)) if !n.up => None,
                    // The kernel's default route is the truth of the moment (a DHCP renew
                    // replaces it without a netifd event); when netifd's view differs,
                    // ask netifd again, once per disagreement.
                    (None, Some(_)) => match (kernel, from_netifd) {
                        (Some(k), Some(n)) if k != n => {
                            if wan.asked[slot] != Some(k) {
                                wan.asked[slot] = Some(k);
                                out.push(Output::AskNetifd { wan: i });
                            }
                            Some(k)
                        }
                        (Some(k), _) => Some(k),
                        (None, n) => n.filter(|_| ifindex.is_some()),
                    },
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
        self.flushing(out)
    }

    /// A link event, acted on before the next dump: carrier loss must not wait.
    pub fn on_link(&mut self, link: &Link, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            if self.device(i) == Some(link.name.as_str()) {
                out.extend(self.set_link(i, Some(link), now));
            }
        }
        self.flushing(out)
    }

    /// The kernel failed to resolve a neighbour: if it is a WAN's gateway on that WAN's
    /// device, the WAN is down now.
    pub fn on_neighbour_failed(&mut self, ifindex: u32, addr: IpAddr, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for (i, wan) in self.wans.iter_mut().enumerate() {
            let on_device = wan.link.is_some_and(|l| l.ifindex == ifindex);
            if !on_device || wan.pending != Pending::No {
                continue;
            }
            if wan.path(Family::of(&addr)).gateway != Some(Some(addr)) {
                continue;
            }
            if let Some(event) = wan.health.on_gateway_failed(now) {
                out.push(Output::Transition { wan: i, event });
            }
        }
        self.flushing(out)
    }

    /// The kernel confirmed a neighbour (`NUD_REACHABLE`): if it is the gateway of a WAN
    /// tracked by `track_method gateway` on that WAN's device, the probe is answered.
    pub fn on_neighbour_reachable(&mut self, ifindex: u32, addr: IpAddr, now: Instant) -> bool {
        let mut counted = false;
        for (wan, iface) in self.wans.iter_mut().zip(&self.cfg.interfaces) {
            let on_device = wan.link.is_some_and(|l| l.ifindex == ifindex);
            let f = Family::of(&addr);
            if !on_device
                || wan.method != TrackMethod::Gateway
                || wan.path(f).gateway != Some(Some(addr))
            {
                continue;
            }
            let Some(t) = iface.family.families().iter().position(|x| *x == f) else {
                continue;
            };
            let reply = wan.sched.on_target_reply(t as u8, now);
            match reply {
                Reply::Ignored => {}
                Reply::Answer => counted = true,
                Reply::Late => {
                    wan.health.on_late();
                    counted = true;
                }
            }
            if reply.counted() {
                wan.probe_bytes
                    .on_answered(&cost::of(wan.method, &iface.request, &addr));
            }
            if let Some(slot) = wan.last_error.get_mut(t) {
                *slot = None;
            }
        }
        counted
    }

    /// A link disappeared.
    pub fn on_link_gone(&mut self, ifindex: u32, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        for i in 0..self.wans.len() {
            if self.wans[i].link.is_some_and(|l| l.ifindex == ifindex) {
                out.extend(self.set_link(i, None, now));
            }
        }
        self.flushing(out)
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
        let had_link = wan.link.is_some_and(|l| l.up && l.carrier);
        wan.link = link;
        if wan.pending != Pending::No {
            return None;
        }
        // A WAN that follows netifd is usable only while netifd calls it up.
        let netifd_up = wan.netifd.as_ref().map_or(true, |n| n.up);
        let has_link = link.is_some_and(|l| l.up && l.carrier);
        let carrier = netifd_up && has_link;
        let mut event = wan.health.on_carrier(carrier, now)?;
        // Say what happened: netifd's word, when the device's carrier did not change.
        event.reason = match event.reason {
            Reason::CarrierLost if has_link => Reason::NetifdDown,
            Reason::CarrierBack | Reason::Untracked if had_link => Reason::NetifdUp,
            other => other,
        };
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
        if w.method == TrackMethod::Ping && ident != w.ident {
            return false;
        }
        let Some(target) = self.cfg.interfaces[wan]
            .track_ip
            .iter()
            .position(|t| *t == from)
        else {
            return false;
        };
        let reply = w.sched.on_reply(seq, target as u8, now);
        settle(w, &self.cfg.interfaces[wan], &from, reply)
    }

    /// The outcome of target `target_index`'s last tcp, http or dns probe, for status.
    pub fn set_last_result(&mut self, wan: usize, target_index: u8, error: Option<String>) {
        if let Some(slot) = self
            .wans
            .get_mut(wan)
            .and_then(|w| w.last_error.get_mut(usize::from(target_index)))
        {
            *slot = error;
        }
    }

    /// A TCP probe of `wan` to `from` completed its handshake; `rtt` is the kernel's
    /// measurement of it when there is one (a reset carries none: then `now` counts).
    pub fn on_tcp_answer(
        &mut self,
        wan: usize,
        from: IpAddr,
        seq: u16,
        rtt: Option<Duration>,
        now: Instant,
    ) -> bool {
        let Some(target) = self
            .cfg
            .interfaces
            .get(wan)
            .and_then(|i| i.track_ip.iter().position(|t| *t == from))
        else {
            return false;
        };
        let Some(w) = self.wans.get_mut(wan) else {
            return false;
        };
        let reply = match rtt {
            Some(rtt) => w.sched.on_measured_reply(seq, target as u8, rtt),
            None => w.sched.on_reply(seq, target as u8, now),
        };
        settle(w, &self.cfg.interfaces[wan], &from, reply)
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

    /// The probe kind of WAN `i`'s next round: its `standby_method` while on standby,
    /// else its `track_method`.
    pub fn method(&self, i: usize) -> TrackMethod {
        let Some(iface) = self.cfg.interfaces.get(i) else {
            return TrackMethod::Ping;
        };
        match iface.standby_method {
            Some(m) if iface.standby_interval.is_some() && self.standby(i) => m,
            _ => iface.track_method,
        }
    }

    fn params(&self, i: usize) -> Params {
        let iface = &self.cfg.interfaces[i];
        let targets = iface.targets_of(self.method(i)) as u8;
        match iface.standby_interval.filter(|_| self.standby(i)) {
            // The cheapest round that can pass: `reliability` targets in turn, one probe
            // each. A lost one starts confirming a fall, which ends standby at once.
            Some(interval) => Params {
                targets,
                per_round: iface.reliability.max(1),
                count: 1,
                timeout: iface.timeout,
                interval,
            },
            None => Params {
                targets,
                per_round: targets,
                count: self.wans[i].health.probes_per_target(iface),
                timeout: iface.timeout,
                interval: self.wans[i].health.interval(iface),
            },
        }
    }

    /// Whether WAN `i` is on standby: it has a `standby_interval`, its rounds pass, and
    /// no policy would choose it now, because each policy it is a member of has a usable
    /// member with a better (lower) metric. A WAN in no policy carries no flows either.
    /// As soon as the better members fail, or a round of its own fails, it is not.
    pub fn standby(&self, i: usize) -> bool {
        let (Some(iface), Some(w)) = (self.cfg.interfaces.get(i), self.wans.get(i)) else {
            return false;
        };
        if iface.standby_interval.is_none() || !w.health.steady_up() {
            return false;
        }
        let usable = |name: &str| {
            self.cfg
                .interfaces
                .iter()
                .position(|x| x.name == name)
                .is_some_and(|k| {
                    let (x, w) = (&self.cfg.interfaces[k], &self.wans[k]);
                    x.enabled
                        && !w.admin_disabled
                        && w.health.state().usability() == health::Usability::Full
                        // A spent quota makes a member last resort only: the backup
                        // behind it carries the flows.
                        && !self.meters.exceeded(name)
                })
        };
        self.cfg.policies.iter().all(|p| {
            let members: Vec<&crate::config::Member> = p
                .use_member
                .iter()
                .filter_map(|m| self.cfg.member(m))
                .collect();
            members
                .iter()
                .filter(|m| m.interface == iface.name)
                .all(|mine| {
                    members.iter().any(|m| {
                        m.interface != iface.name && m.metric < mine.metric && usable(&m.interface)
                    })
                })
        })
    }

    /// Bytes a month of probing WAN `i` at its present pace costs, every probe answered
    /// (both directions; see [`cost`]).
    pub fn probe_monthly_bytes(&self, i: usize) -> u64 {
        let Some(iface) = self.cfg.interfaces.get(i) else {
            return 0;
        };
        if !self.wans[i].health.probing() {
            return 0;
        }
        let p = self.params(i);
        let per_round = usize::from(p.per_round.min(p.targets));
        // The mean cost of a target: targets of both families may differ.
        // The gateway probe's targets: one gateway per family (only the family matters).
        let method = self.method(i);
        let targets: Vec<IpAddr> = match method {
            TrackMethod::Gateway => (iface.family.families().iter())
                .map(|f| match f {
                    Family::V4 => IpAddr::from([0u8; 4]),
                    Family::V6 => IpAddr::from([0u8; 16]),
                })
                .collect(),
            _ => iface.track_ip.clone(),
        };
        let total: u64 = targets
            .iter()
            .map(|t| cost::of(method, &iface.request, t).answered())
            .sum();
        let n = targets.len().max(1) as u64;
        let mean = cost::Cost {
            sent: total / n,
            ..cost::Cost::default()
        };
        cost::monthly(&mean, per_round as u64, u64::from(p.count), p.interval)
    }

    /// Advance time: finish rounds, feed health, start due rounds, expire holds.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.netifd_wait.is_some_and(|t| t <= now) {
            // netifd did not answer in time: judge these WANs on what is known.
            self.netifd_wait = None;
            for i in 0..self.wans.len() {
                if self.wans[i].pending == Pending::Netifd {
                    self.wans[i].pending = Pending::No;
                    let link = self.wans[i].link;
                    out.extend(self.set_link_view(i, link, now));
                }
            }
        }
        for i in 0..self.wans.len() {
            let iface = &self.cfg.interfaces[i];
            let wan = &mut self.wans[i];
            if wan.pending != Pending::No {
                continue;
            }
            if let Some(event) = wan.health.poll(now) {
                out.push(Output::Transition { wan: i, event });
            }
            while let Some(round) = wan.sched.finished(now) {
                if let Some(event) = wan.health.on_answers(iface, round.iter(), now) {
                    out.push(Output::Transition { wan: i, event });
                }
                if let Some(rtt) = wan.health.history().last().and_then(|r| r.rtt_us) {
                    let rtt = Duration::from_micros(u64::from(rtt));
                    self.balancer.on_rtt(wan.slot, rtt, now);
                }
            }
            if !wan.health.probing() {
                wan.sched.reset();
                continue;
            }
            let params = self.params(i);
            let method = self.method(i);
            let iface = &self.cfg.interfaces[i];
            let wan = &mut self.wans[i];
            // Without a route out of this WAN a probe has failed before it is sent. (For
            // IPv4 a device-bound socket would otherwise ARP for the target on the link,
            // the kernel's "assume on-link" fallback, and proxy ARP could answer.)
            let link_up = wan.link.is_some_and(|l| l.up && l.carrier);
            for p in wan.sched.start(now, &params) {
                wan.method = method;
                let target = match method {
                    TrackMethod::Gateway => {
                        let f = iface.family.families().get(usize::from(p.target));
                        match f.map(|&f| wan.path(f).gateway) {
                            Some(Some(Some(gw))) => Some(gw),
                            // A point-to-point link (PPP, most LTE modems) has no
                            // gateway and no neighbour to ask: its carrier answers.
                            Some(Some(None)) if link_up => {
                                wan.sched.on_measured_reply(p.seq, p.target, Duration::ZERO);
                                continue;
                            }
                            _ => None,
                        }
                    }
                    _ => iface.track_ip.get(usize::from(p.target)).copied(),
                };
                let Some(target) = target else {
                    wan.sched.on_error(p.seq, p.target);
                    continue;
                };
                if !link_up || wan.path(Family::of(&target)).gateway.is_none() {
                    wan.sched.on_error(p.seq, p.target);
                    continue;
                }
                wan.probe_bytes
                    .on_sent(&cost::of(method, &iface.request, &target));
                out.push(Output::Probe {
                    wan: i,
                    method,
                    target,
                    target_index: p.target,
                    seq: p.seq,
                });
            }
        }
        self.balance(now);
        self.flushing(out)
    }

    /// Recompute the modes' effective weights when due; a change shows in
    /// [`Engine::desired`], which the daemon compares with what it applied.
    fn balance(&mut self, now: Instant) {
        if self.balance_at.is_some_and(|t| t > now) {
            return;
        }
        self.balance_at = self.balancer.poll_at(&self.cfg, now);
        if self.balance_at.is_none() && self.balancer.weights().iter().all(|w| w.is_empty()) {
            return;
        }
        let slot_of = |name: &str| {
            let i = self.cfg.interfaces.iter().position(|i| i.name == name)?;
            Some(self.wans.get(i)?.slot)
        };
        let members: Vec<Vec<balance::Member>> = (0..self.cfg.policies.len())
            .map(|j| balance::members(&self.cfg, j, slot_of))
            .collect();
        let usable: Vec<u32> = self
            .wans
            .iter()
            .zip(&self.cfg.interfaces)
            .filter(|(w, i)| {
                i.enabled
                    && !w.admin_disabled
                    && w.health.state().usability() == health::Usability::Full
            })
            .map(|(w, _)| w.slot)
            .collect();
        if self
            .balancer
            .tick(&self.cfg, &members, |s| usable.contains(&s), now)
        {
            log::debug!("policy weights now {:?}", self.balancer.weights());
        }
    }

    /// The metered WANs and their quotas, by name.
    pub fn quotas(&self) -> Vec<(String, Quota)> {
        self.cfg
            .interfaces
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.quota?)))
            .collect()
    }

    /// Take the counts a previous run saved (see [`quota::Meters::restore`]).
    pub fn restore_quota(&mut self, saved: Option<&quota::StateFile>) {
        self.meters = quota::Meters::restore(saved, &self.quotas());
    }

    /// The metered WANs' counts, for status, metrics and saving.
    pub fn meters(&self) -> &quota::Meters {
        &self.meters
    }

    /// The state to write to the quota file; marks it saved.
    pub fn save_quota(&mut self) -> quota::StateFile {
        self.meters.save()
    }

    /// Whether the quota file is due a write, and when it next will be.
    pub fn quota_save_due(&self, now: Instant) -> bool {
        self.quota_save_interval()
            .is_some_and(|i| self.meters.save_due(i, now))
    }

    pub fn quota_save_at(&self) -> Option<Instant> {
        self.meters.save_at(self.quota_save_interval()?)
    }

    /// The shortest `quota_save_interval` of the metered WANs.
    fn quota_save_interval(&self) -> Option<Duration> {
        self.cfg
            .interfaces
            .iter()
            .filter_map(|i| i.quota.map(|q| q.save_interval))
            .min()
    }

    /// A sample of WAN `wan`'s device counters for its quota; `ifindex` tells a device
    /// that was re-created (a PPP reconnect).
    pub fn on_counters(&mut self, wan: usize, ifindex: u32, rx: u64, tx: u64, now: Instant) {
        if let Some(i) = self.cfg.interfaces.get(wan).filter(|i| i.quota.is_some()) {
            self.meters.on_counters(&i.name, ifindex, rx, tx, now);
        }
    }

    /// Bring the quota periods and levels up to date with the wall clock. A spent
    /// quota changes [`Engine::desired`] (the WAN becomes last resort only).
    pub fn poll_quota(&mut self, wall: quota::Wall) -> Vec<Output> {
        let quotas = self.quotas();
        if quotas.is_empty() {
            return Vec::new();
        }
        self.meters
            .poll(&quotas, wall)
            .into_iter()
            .map(Output::Quota)
            .collect()
    }

    /// `quota reset WAN`: `None` when the WAN has no quota.
    pub fn reset_quota(&mut self, wan: usize) -> Option<quota::Event> {
        let i = self.cfg.interfaces.get(wan)?;
        self.meters.reset(&i.name, &i.quota?)
    }

    /// What the shell should measure for the policies' modes and the quotas, every
    /// second.
    pub fn sampling(&self) -> Vec<Sampling> {
        let mut out: Vec<Sampling> = self
            .cfg
            .interfaces
            .iter()
            .enumerate()
            .filter(|(_, i)| i.quota.is_some())
            .map(|(wan, _)| Sampling {
                wan,
                connections: false,
                counters: true,
            })
            .collect();
        for p in &self.cfg.policies {
            let (connections, counters) = match p.mode {
                Mode::LeastConnections => (true, false),
                Mode::LeastUsed | Mode::Overflow { .. } => (false, true),
                _ => continue,
            };
            for m in p.use_member.iter().filter_map(|m| self.cfg.member(m)) {
                let Some(wan) = self
                    .cfg
                    .interfaces
                    .iter()
                    .position(|i| i.name == m.interface)
                else {
                    continue;
                };
                match out.iter_mut().find(|s| s.wan == wan) {
                    Some(s) => {
                        s.connections |= connections;
                        s.counters |= counters;
                    }
                    None => out.push(Sampling {
                        wan,
                        connections,
                        counters,
                    }),
                }
            }
        }
        out
    }

    /// A measurement of WAN `wan` (see [`Engine::sampling`]).
    pub fn on_sample(&mut self, wan: usize, sample: Sample, now: Instant) {
        if let Some(w) = self.wans.get(wan) {
            self.balancer.on_sample(w.slot, sample, now);
        }
    }

    /// The balancer's view (effective weights, smoothed use), for status.
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// When [`Engine::poll`] next has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at = self.netifd_wait.filter(|_| self.waiting_for_netifd());
        at = earliest(at, self.balance_at);
        for (i, w) in self.wans.iter().enumerate() {
            at = earliest(at, w.health.poll_at());
            if w.health.probing() {
                at = earliest(at, w.sched.poll_at(&self.params(i)));
            }
        }
        at
    }

    /// The kernel state the current health and links call for: routes, rules,
    /// nexthops, and the nft table.
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
                metered_out: self.meters.exceeded(&cfg.name),
            })
            .collect();
        let mut desired = plan::plan_with(
            &self.cfg,
            &views,
            nexthops_supported,
            self.balancer.weights(),
        );
        desired.nft = self.ruleset(&desired);
        desired
    }

    /// The HA role keepalived last reported, if any.
    pub fn ha(&self) -> Option<ha::Ha> {
        self.ha
    }

    /// keepalived's notify script reports a VRRP transition. On becoming master, every
    /// WAN that cannot carry traffic here gets a [`Output::Flush`]: conntrackd has just
    /// committed the peer's connections (`conntrackd -c` runs before this call), and
    /// those pinned to a WAN that is out on this router would otherwise stay pinned to a
    /// dead end, as no transition of that WAN will come to flush them. Reporting the
    /// role in force again changes nothing.
    pub fn set_role(&mut self, role: ha::Role, now: Instant) -> Vec<Output> {
        let from = self.ha.map(|h| h.role);
        if from == Some(role) {
            return Vec::new();
        }
        self.ha = Some(ha::Ha { role, since: now });
        let mut out = vec![Output::Role { from, to: role }];
        if role == ha::Role::Master {
            out.extend(
                self.wans
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| !w.health.state().carries_pinned())
                    .filter_map(|(wan, w)| {
                        let mark = self.marks().wan(w.slot)?;
                        Some(Output::Flush {
                            wan,
                            mark,
                            why: Flush::Takeover,
                        })
                    }),
            );
        }
        out
    }

    /// The fwmark layout of this configuration.
    fn marks(&self) -> Marks {
        Marks::new(self.cfg.globals.fwmark_mask)
    }

    /// `out` with the flushes its transitions and slot moves call for, each right after
    /// its cause.
    fn flushing(&self, out: Vec<Output>) -> Vec<Output> {
        let mut with = Vec::with_capacity(out.len());
        for o in out {
            let flush = match &o {
                Output::Transition { wan, event } if self.flushes(*wan, event) => {
                    let why = if event.to == health::State::Up {
                        Flush::Up
                    } else {
                        Flush::Out
                    };
                    let slot = self.wans.get(*wan).map(|w| w.slot);
                    slot.and_then(|s| self.marks().wan(s))
                        .map(|mark| Output::Flush {
                            wan: *wan,
                            mark,
                            why,
                        })
                }
                Output::Moved { wan, from, .. } => {
                    self.marks().wan(*from).map(|mark| Output::Flush {
                        wan: *wan,
                        mark,
                        why: Flush::Moved,
                    })
                }
                _ => None,
            };
            with.push(o);
            with.extend(flush);
        }
        with
    }

    /// Whether a transition of a WAN to `to` deletes its pinned connections, given the
    /// WAN's `flush_conntrack` and the HA role. Alone: as configured. In an HA pair the
    /// deletions reach the peer through conntrackd, so only what is dead for both
    /// routers is flushed: a backup or faulty router flushes nothing (its kernel holds
    /// no live connection; on takeover `set_role` flushes what it must), and a master
    /// does not flush on carrier loss, its own link: keepalived moves the pair and the
    /// peer carries those connections on.
    pub fn flushes(&self, wan: usize, event: &health::Event) -> bool {
        let Some(iface) = self.cfg.interfaces.get(wan) else {
            return false;
        };
        let out = |s: &health::State| !s.carries_pinned();
        let flush = (out(&event.to) && !out(&event.from) && iface.flush.on_down)
            || (event.to == health::State::Up && iface.flush.on_up);
        match self.ha.map(|h| h.role) {
            None => flush,
            Some(ha::Role::Master) => flush && event.to != health::State::NoCarrier,
            Some(ha::Role::Backup | ha::Role::Fault) => false,
        }
    }

    /// The nft table for `desired` (this engine's plan).
    fn ruleset(&self, desired: &Desired) -> crate::dataplane::Ruleset {
        let cfg = &self.cfg;
        let wans: Vec<crate::dataplane::WanInfo> = (0..cfg.interfaces.len())
            .zip(&self.wans)
            .map(|(i, w)| {
                let family = cfg.interfaces[i].family;
                crate::dataplane::WanInfo {
                    slot: w.slot,
                    device: self.device(i).map(str::to_string),
                    v4: family.carries(Family::V4),
                    v6: family.carries(Family::V6),
                    prefixes6: w.v6.prefixes.clone(),
                }
            })
            .collect();
        let mut memo = self.nft_memo.borrow_mut();
        if let Some((policies, infos, ruleset)) = memo.as_ref() {
            if *policies == desired.policies && *infos == wans {
                return ruleset.clone();
            }
        }
        let ruleset = crate::dataplane::ruleset(cfg, &desired.policies, &wans);
        *memo = Some((desired.policies.clone(), wans, ruleset.clone()));
        ruleset
    }

    /// Switch to a new config, keeping what did not change (STYLE §7): unchanged WANs
    /// keep everything, retuned ones keep their health, restarted ones start over. Every
    /// WAN takes the slot the new configuration gives it ([`Config::slots`]); a WAN that
    /// changes slot is reported ([`Output::Moved`]). Link facts are kept until the next
    /// dump.
    pub fn reload(&mut self, cfg: Config, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let mut old: Vec<(String, Wan, crate::config::Interface)> = self
            .cfg
            .interfaces
            .drain(..)
            .zip(self.wans.drain(..))
            .map(|(i, w)| (i.name.clone(), w, i))
            .collect();
        let slots = cfg.slots();
        let mut wans = Vec::new();
        for (i, iface) in cfg.interfaces.iter().enumerate() {
            let slot = slots[i];
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
                        if w.slot != slot {
                            out.push(Output::Moved {
                                wan: i,
                                from: w.slot,
                                to: slot,
                            });
                            w.slot = slot;
                            w.ident = self.ident_base.wrapping_add(slot as u16);
                        }
                        w
                    }
                    Change::Restart => {
                        if w.slot != slot {
                            out.push(Output::Moved {
                                wan: i,
                                from: w.slot,
                                to: slot,
                            });
                        }
                        let mut fresh = new_wan(iface, slot, self.ident_base, now);
                        fresh.link = w.link;
                        fresh.v4.addresses = w.v4.addresses.clone();
                        fresh.v6.addresses = w.v6.addresses.clone();
                        if iface.follows_netifd() {
                            fresh.netifd = w.netifd;
                            fresh.netifd_device = w.netifd_device;
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
        *self.nft_memo.get_mut() = None;
        // Policies may have moved, changed mode or members: their modes start over
        // (measurements too: a restarted WAN's counters are another device's).
        self.balancer = Balancer::default();
        self.balance_at = None;
        self.wans = wans;
        // Metered WANs keep their counts; a moved period resets at the next poll.
        self.meters.reconfigure(&self.quotas());
        self.flushing(out)
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
        let out = event.map(|event| Output::Transition { wan, event });
        Some(self.flushing(out.into_iter().collect()))
    }

    /// The Linux device WAN `i` uses now: the configured one, or for a WAN that follows
    /// netifd the `l3_device` netifd last reported (none until it has).
    pub fn device(&self, i: usize) -> Option<&str> {
        let iface = self.cfg.interfaces.get(i)?;
        if iface.follows_netifd() {
            self.wans.get(i)?.netifd_device.as_deref()
        } else {
            Some(&iface.device)
        }
    }

    /// What a kernel snapshot must read besides our own objects: the foreign routes on
    /// the devices the WANs use now (their gateways).
    pub fn reads(&self) -> Reads {
        Reads::Devices(
            (0..self.cfg.interfaces.len())
                .filter_map(|i| self.device(i))
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        )
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
        if !self.cfg.interfaces[wan].follows_netifd() {
            return (false, Vec::new());
        }
        if w.pending == Pending::Netifd {
            w.pending = Pending::Answered;
        }
        if w.netifd == info {
            return (false, Vec::new());
        }
        let device = netifd_device(w.netifd_device.as_deref(), w.netifd.as_ref(), info.as_ref());
        let device_changed = device != w.netifd_device;
        w.netifd = info;
        w.netifd_device = device;
        w.asked = [None, None];
        if w.pending == Pending::Answered {
            self.adopt_netifd(wan, now);
            return (true, Vec::new());
        }
        let w = &mut self.wans[wan];
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
        (true, self.flushing(out))
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
        netifd_device: None,
        pending: Pending::No,
        asked: [None, None],
        last_error: vec![None; iface.targets()],
        probe_bytes: cost::Counted::default(),
        method: iface.track_method,
    }
}

/// The device of a WAN that follows netifd after netifd's new report `new`: its
/// `l3_device` while up. Without one (down, or gone) a separate L3 device (PPP, a
/// modem's network device) is kept, as it comes back under the same name, rather than
/// falling back to the Ethernet device under it; a WAN whose L3 device is its main
/// device follows the main device.
fn netifd_device(
    current: Option<&str>,
    old: Option<&Netifd>,
    new: Option<&Netifd>,
) -> Option<String> {
    let new = new?;
    if let Some(l3) = &new.device {
        return Some(l3.clone());
    }
    match current {
        Some(cur) if old.and_then(|n| n.main_device.as_deref()) != Some(cur) => {
            Some(cur.to_string())
        }
        _ => new.main_device.clone().or(current.map(str::to_string)),
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
    use crate::kernel::Selector;
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

    #[test]
    fn a_backup_behind_a_spent_quota_is_not_on_standby() {
        use crate::quota::{Period, Quota, Wall};
        let mut cfg = config(&[1, 1], 0);
        cfg.members[1].metric = 2;
        cfg.interfaces[1].standby_interval = Some(Duration::from_secs(10));
        cfg.interfaces[0].quota = Some(Quota::for_tests(5_000_000, Period::Daily));
        let mut core = Engine::new(cfg, None, 0x100, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let mut t = 0;
        while t <= 30_000 {
            let out = core.poll(at(t));
            answer(&mut core, &out, None, at(t) + Duration::from_millis(15));
            t += 50;
        }
        assert!(core.standby(1), "wan2 backs up a usable wan1");
        let wall = Wall::utc(20_422 * 86_400 + 36_000);
        core.on_counters(0, 10, 1_000, 0, at(30_000));
        core.poll_quota(wall);
        core.on_counters(0, 10, 6_001_000, 0, at(31_000));
        core.poll_quota(wall);
        assert!(
            !core.standby(1),
            "wan1's quota is spent: wan2 carries the flows"
        );
    }

    #[test]
    fn a_spent_quota_leaves_the_wan_as_last_resort_until_the_period_ends() {
        use crate::quota::{Period, Quota, Wall};
        let mut cfg = config(&[1, 1], 0);
        cfg.interfaces[1].quota = Some(Quota::for_tests(5_000_000, Period::Daily));
        let mut core = Engine::new(cfg, None, 0x100, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        core.poll(at(0));
        assert_eq!(group(&core), vec![1100, 1101]);
        assert!(core.sampling().iter().any(|s| s.wan == 1 && s.counters));
        // 10:00 UTC; wan2 carries 6 MB.
        let wall = Wall::utc(20_422 * 86_400 + 36_000);
        core.on_counters(1, 11, 1_000, 0, at(1000));
        assert!(core.poll_quota(wall).is_empty());
        core.on_counters(1, 11, 6_001_000, 0, at(2000));
        let outs = core.poll_quota(wall);
        assert!(matches!(
            &outs[..],
            [
                Output::Quota(quota::Event::Warning { .. }),
                Output::Quota(quota::Event::Exceeded { .. })
            ]
        ));
        assert_eq!(group(&core), vec![1100], "wan2 out of new-flow choice");
        assert!(core.quota_save_due(at(2000)));
        // wan1 loses carrier: the spent wan2 is all there is, so it carries.
        let mut snap = snapshot(&[false, true]);
        snap.links[0].carrier = false;
        core.on_snapshot(&snap, at(3000));
        core.poll(at(3000));
        assert_eq!(group(&core), vec![1101]);
        core.on_snapshot(&snapshot(&[true, true]), at(4000));
        core.poll(at(4000));
        assert_eq!(group(&core), vec![1100]);
        // Midnight: the period ends and wan2 is back.
        let outs = core.poll_quota(Wall::utc(20_423 * 86_400));
        assert!(matches!(
            &outs[..],
            [Output::Quota(quota::Event::Reset { .. })]
        ));
        assert_eq!(group(&core), vec![1100, 1101]);
        // A manual reset of an unmetered WAN is refused.
        assert!(core.reset_quota(0).is_none());
        assert!(core.reset_quota(1).is_some());
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

    /// wan1 (metric 1) and wan2 (metric 2, `standby_interval 10s`), 3 targets each,
    /// `reliability 1`: probes per WAN per 50 ms step, answered 15 ms later unless the
    /// WAN is dead then.
    #[test]
    fn timeline_standby_backup_probes_slowly_and_takes_over() {
        let mut cfg = config(&[1, 1], 3);
        cfg.members[1].metric = 2;
        cfg.interfaces[1].standby_interval = Some(Duration::from_secs(10));
        let mut core = Engine::new(cfg, None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let mut sent: Vec<(u64, usize, u8)> = Vec::new();
        let mut down_at = None;
        let mut t = 0;
        // wan1 stops answering at 60 s; wan2 goes dark at 100 s.
        while t <= 120_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                match o {
                    Output::Probe {
                        wan, target_index, ..
                    } => sent.push((t, *wan, *target_index)),
                    Output::Transition { wan: 0, event } if event.to == State::Down => {
                        down_at = Some(t)
                    }
                    _ => {}
                }
            }
            let dead = match t {
                60_000..=99_999 => Some(0),
                100_000.. => Some(1),
                _ => None,
            };
            answer(&mut core, &out, dead, now + Duration::from_millis(15));
            if t == 30_000 {
                assert!(core.standby(1) && !core.standby(0));
                let v = crate::status::report(&core, None, now);
                assert_eq!(v["interfaces"]["wan2"]["standby"], true);
                assert!(v["interfaces"]["wan1"].get("standby").is_none());
                // 1 ping of 72 bytes every 10 s against 3 every second.
                let month = 30 * 24 * 360;
                assert_eq!(core.probe_monthly_bytes(1), month * 72);
                assert_eq!(core.probe_monthly_bytes(0), month * 10 * 3 * 72);
            }
            t += 50;
        }
        let count = |wan: usize, from: u64, to: u64| {
            sent.iter()
                .filter(|(t, w, _)| *w == wan && (from..to).contains(t))
                .count()
        };
        // Both start at the normal pace (the plan must first see wan1 up); once steady
        // wan2 sends one probe per 10 s, the targets in turn.
        assert_eq!(count(0, 10_000, 60_000), 150);
        assert_eq!(count(1, 10_000, 60_000), 5);
        let turns: Vec<u8> = sent
            .iter()
            .filter(|(t, w, _)| *w == 1 && (10_000..60_000).contains(t))
            .map(|s| s.2)
            .collect();
        assert_eq!(turns.len(), 5);
        assert!(
            turns.windows(2).all(|w| w[1] == (w[0] + 1) % 3),
            "{turns:?}"
        );
        // wan1 is found down at 63 s (three lost rounds); wan2 is then chosen and back at
        // the normal pace at once.
        let down_at = down_at.expect("wan1 down");
        assert!((62_000..=64_000).contains(&down_at), "{down_at}");
        // At the end wan1 answers again (from 100 s) and carries the flows; wan2 is down.
        assert_eq!(group(&core), vec![1100]);
        assert!(!core.standby(1));
        let first_after = sent
            .iter()
            .find(|(t, w, _)| *w == 1 && *t >= down_at)
            .expect("wan2 probed")
            .0;
        assert_eq!(first_after, down_at, "wan2 leaves standby at once");
        // From then on: all three targets every second (one round more or less at the ends).
        let normal = 3 * (99_000 - down_at - 1000) as usize / 1000;
        assert!(count(1, down_at + 1000, 99_000).abs_diff(normal) <= 3);
        // wan2 fails while not on standby: its own fall detection at the normal pace.
        let wan2_down = core.wans()[1].health.state();
        assert_eq!(wan2_down, State::Down);
        // Bytes counted: every probe sent 36 bytes, every answered one brought 36 back.
        let b = core.wans()[1].probe_bytes;
        assert_eq!(b.tx, 36 * count(1, 0, 200_000) as u64);
        assert!(b.rx > 0 && b.rx < b.tx);
    }

    /// Answer every probe in `out` except those of WAN `dead`, `rtt` later, each by the
    /// path of its kind: an echo reply for ping, a completed connection for the others.
    fn answer_by_kind(core: &mut Engine, out: &[Output], dead: Option<usize>, now: Instant) {
        for o in out {
            if let Output::Probe {
                wan,
                method,
                target,
                seq,
                ..
            } = o
            {
                if Some(*wan) == dead {
                    continue;
                }
                if *method == TrackMethod::Ping {
                    let ident = core.wans()[*wan].ident;
                    assert!(core.on_reply(*wan, *target, ident, *seq, now));
                } else {
                    assert!(core.on_tcp_answer(*wan, *target, *seq, None, now));
                }
            }
        }
    }

    /// Two WANs, wan2 the backup (metric 2), tracked by http with `standby_interval 10s`
    /// and `standby_method ping`, each WAN with `targets` targets. Also its http kind.
    fn http_backup_with_standby_pings(targets: usize) -> (Config, TrackMethod) {
        let mut cfg = config(&[1, 1], targets);
        cfg.members[1].metric = 2;
        let http = TrackMethod::Http {
            port: 80,
            expect_status: 204,
        };
        cfg.interfaces[1].track_method = http;
        cfg.interfaces[1].standby_interval = Some(Duration::from_secs(10));
        cfg.interfaces[1].standby_method = Some(TrackMethod::Ping);
        (cfg, http)
    }

    /// wan2, tracked by http, has `standby_method ping`: its standby rounds are pings
    /// (costed as pings); when wan1 fails it is back to http at the normal pace at once.
    #[test]
    fn timeline_standby_method_pings_and_the_need_brings_http_back() {
        let (cfg, http) = http_backup_with_standby_pings(3);
        let target = cfg.interfaces[1].track_ip[0];
        let request = cfg.interfaces[1].request.clone();
        let mut core = Engine::new(cfg, None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let mut sent: Vec<(u64, TrackMethod)> = Vec::new();
        let mut down_at = None;
        let mut t = 0;
        // wan1 stops answering at 60 s.
        while t <= 80_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                match o {
                    Output::Probe { wan: 1, method, .. } => sent.push((t, *method)),
                    Output::Transition { wan: 0, event } if event.to == State::Down => {
                        down_at = Some(t)
                    }
                    _ => {}
                }
            }
            let dead = (t >= 60_000).then_some(0);
            answer_by_kind(&mut core, &out, dead, now + Duration::from_millis(15));
            if t == 30_000 {
                assert!(core.standby(1));
                assert_eq!(core.method(1), TrackMethod::Ping);
                // The cost follows the kind in use: 1 ping of 72 bytes every 10 s.
                let month = 30 * 24 * 360;
                assert_eq!(core.probe_monthly_bytes(1), month * 72);
            }
            t += 50;
        }
        let standby: Vec<&(u64, TrackMethod)> = sent
            .iter()
            .filter(|(t, _)| (10_000..60_000).contains(t))
            .collect();
        assert_eq!(standby.len(), 5, "{standby:?}");
        assert!(standby.iter().all(|(_, m)| *m == TrackMethod::Ping));
        // wan1 is found down; wan2 is needed and probed by http at once, at 1 s a round.
        let down_at = down_at.expect("wan1 down");
        let after: Vec<&(u64, TrackMethod)> = sent.iter().filter(|(t, _)| *t >= down_at).collect();
        assert_eq!(after[0].0, down_at, "wan2 leaves standby at once");
        assert!(after.iter().all(|(_, m)| *m == http), "{after:?}");
        let normal = 3 * (80_000 - down_at) as usize / 1000;
        assert!(
            after.len().abs_diff(normal) <= 3,
            "{} {normal}",
            after.len()
        );
        assert!(!core.standby(1));
        assert_eq!(core.method(1), http);
        // Off standby the cost is http's again: 3 GETs a second.
        let each = cost::Cost {
            sent: cost::of(http, &request, &target).answered(),
            ..cost::Cost::default()
        };
        let month = cost::monthly(&each, 3, 1, Duration::from_secs(1));
        assert_eq!(core.probe_monthly_bytes(1), month);
        assert!(
            month > 7 * 10 * 30 * 24 * 360 * 72,
            "http costs more than ping"
        );
        // Bytes sent, every probe answered: each as the kind it was.
        let tx = |c: cost::Cost| c.sent + c.answered_tx;
        let ping = tx(cost::of(TrackMethod::Ping, &request, &target));
        let get = tx(cost::of(http, &request, &target));
        let pings = sent.iter().filter(|(_, m)| *m == TrackMethod::Ping).count() as u64;
        let gets = sent.len() as u64 - pings;
        assert_eq!(core.wans()[1].probe_bytes.tx, pings * ping + gets * get);
    }

    /// A failed standby round of `standby_method ping` brings the WAN's http back at the
    /// normal (failure) pace at once.
    #[test]
    fn timeline_a_failed_standby_ping_round_returns_to_http() {
        let (cfg, http) = http_backup_with_standby_pings(1);
        let mut core = Engine::new(cfg, None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let mut sent: Vec<(u64, TrackMethod)> = Vec::new();
        let mut t = 0;
        while t <= 45_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                if let Output::Probe { wan: 1, method, .. } = o {
                    sent.push((t, *method));
                }
            }
            // wan2 goes dark at 30 s.
            let dead = (t >= 30_000).then_some(1);
            answer_by_kind(&mut core, &out, dead, now + Duration::from_millis(15));
            t += 50;
        }
        let i = sent
            .iter()
            .position(|(t, _)| *t >= 30_000)
            .expect("a round");
        let (lost, kind) = sent[i];
        assert_eq!(kind, TrackMethod::Ping, "{sent:?}");
        // The next rounds are http, confirming the fall at failure_interval.
        let next = &sent[i + 1..];
        assert!(next.len() >= 2, "{sent:?}");
        assert!(next.iter().all(|(_, m)| *m == http), "{sent:?}");
        assert!(next[0].0 <= lost + 2_100, "{sent:?}");
    }

    /// A standby round that fails ends standby at once: the fall is confirmed at
    /// `failure_interval`, not at the standby pace.
    #[test]
    fn timeline_a_failed_standby_round_returns_to_the_normal_pace() {
        let mut cfg = config(&[1, 1], 1);
        cfg.members[1].metric = 2;
        cfg.interfaces[1].standby_interval = Some(Duration::from_secs(10));
        let mut core = Engine::new(cfg, None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let mut wan2: Vec<u64> = Vec::new();
        let mut down_at = None;
        let mut t = 0;
        while t <= 60_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                match o {
                    Output::Probe { wan: 1, .. } => wan2.push(t),
                    Output::Transition { wan: 1, event } if event.to == State::Down => {
                        down_at = Some(t)
                    }
                    _ => {}
                }
            }
            // wan2 goes dark at 30 s.
            let dead = (t >= 30_000).then_some(1);
            answer(&mut core, &out, dead, now + Duration::from_millis(15));
            t += 50;
        }
        let standby_round = *wan2.iter().find(|t| **t >= 30_000).expect("a round");
        assert!(standby_round < 40_000, "{wan2:?}");
        let down_at = down_at.expect("wan2 down");
        // Lost at +1 s, then two more rounds at failure_interval (1 s) and their timeout.
        assert!(
            down_at <= standby_round + 3_100,
            "{standby_round} {down_at}"
        );
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

    /// The nft table is part of the plan and the conntrack flushes are outputs: a WAN
    /// its probes take out leaves the table's choice of WAN for new flows and has its
    /// pinned connections flushed, once; a run-time weight changes the table too.
    #[test]
    fn timeline_nft_table_and_flushes_follow_a_probe_outage() {
        let mut core = Engine::new(config(&[1, 1], 3), None, 0x4000, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let both = core.desired(true).nft;
        assert!(!both.chains.is_empty());
        let mut flushes = Vec::new();
        let mut during = None;
        let mut t = 0;
        // WAN 2 stops answering at t = 2000 ms and comes back at t = 10000 ms.
        while t <= 20_000 {
            let now = at(t);
            let out = core.poll(now);
            for o in &out {
                if let Output::Flush { wan, mark, why } = o {
                    flushes.push((t, *wan, *mark, *why));
                }
            }
            if t == 8_000 {
                during = Some(core.desired(true).nft);
            }
            let dead = (2000..10_000).contains(&t).then_some(1);
            answer(&mut core, &out, dead, now + Duration::from_millis(15));
            t += 50;
        }
        let mark = core.marks().wan(core.wans()[1].slot).unwrap();
        assert_eq!(flushes, vec![(5000, 1, mark, Flush::Out)]);
        assert_ne!(during, Some(both.clone()), "wan2 still chosen while down");
        assert_eq!(core.desired(true).nft, both, "back after recovery");
        assert!(core.set_weight(0, Some(3)));
        assert_ne!(core.desired(true).nft, both, "weight 3:1");
        core.set_weight(0, None);
        assert_eq!(core.desired(true).nft, both);
    }

    /// In an HA pair a backup flushes nothing, a master does not flush on carrier loss
    /// (the peer carries those connections on), and a takeover flushes what is out here.
    #[test]
    fn timeline_flush_outputs_follow_the_ha_role() {
        let mut core = Engine::new(config(&[1, 1], 1), None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let flushes = |out: &[Output]| -> Vec<(usize, Flush)> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Flush { wan, why, .. } => Some((*wan, *why)),
                    _ => None,
                })
                .collect()
        };
        core.set_role(ha::Role::Backup, at(10));
        let out = core.on_neighbour_failed(11, ip("10.20.2.1"), at(100));
        assert!(
            matches!(&out[..], [Output::Transition { wan: 1, event }] if event.to == State::Down),
            "{out:?}"
        );
        assert_eq!(flushes(&out), vec![]);
        let out = core.set_role(ha::Role::Master, at(200));
        assert_eq!(flushes(&out), vec![(1, Flush::Takeover)]);
        let out = core.on_link(
            &Link {
                ifindex: 10,
                name: "wan1".into(),
                up: true,
                carrier: false,
            },
            at(300),
        );
        assert!(
            matches!(&out[..], [Output::Transition { wan: 0, event }] if event.to == State::NoCarrier),
            "{out:?}"
        );
        assert_eq!(flushes(&out), vec![]);
    }

    #[test]
    fn timeline_least_connections_steers_new_flows_through_the_plan() {
        let mut cfg = config(&[1, 1], 1);
        cfg.policies[0].mode = Mode::LeastConnections;
        let mut core = Engine::new(cfg, None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        assert_eq!(
            core.sampling(),
            [0, 1].map(|wan| Sampling {
                wan,
                connections: true,
                counters: false
            })
        );
        let slots = |core: &Engine| core.desired(true).policies[0].v4.slots.clone();
        core.poll(at(0));
        assert_eq!(slots(&core), [(0, 1), (1, 1)], "nothing measured yet");
        let conns = |n| Sample {
            connections: Some(n),
            ..Sample::default()
        };
        core.on_sample(0, conns(100), at(1000));
        core.on_sample(1, conns(0), at(1000));
        // Not before its second is up, then wan2 alone takes new flows.
        core.poll(at(500));
        assert_eq!(slots(&core), [(0, 1), (1, 1)]);
        assert!(core.poll_at().is_some_and(|t| t <= at(1000)));
        core.poll(at(1000));
        assert_eq!(slots(&core), [(1, 1)]);
        // The group keeps both (it routes only unmarked traffic).
        assert_eq!(group(&core), vec![1100, 1101]);
        // A reload starts the mode over.
        let cfg = core.config().clone();
        core.reload(cfg, at(1500));
        core.poll(at(1500));
        assert_eq!(slots(&core), [(0, 1), (1, 1)]);
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
            matches!(&out[..], [Output::Transition { wan: 1, event }, Output::Flush { wan: 1, why: Flush::Out, .. }]
                if event.to == State::NoCarrier),
            "{out:?}"
        );
        assert_eq!(group(&core), vec![1100]);
        // No probes for a WAN without carrier.
        let out = core.poll(at(200));
        assert!(out
            .iter()
            .all(|o| !matches!(o, Output::Probe { wan: 1, .. })));
    }

    #[test]
    fn timeline_gateway_probe_answered_by_neighbour_confirmations() {
        let mut cfg = config(&[1, 1], 1);
        for i in &mut cfg.interfaces {
            i.track_ip.clear();
            i.track_method = TrackMethod::Gateway;
        }
        let mut core = Engine::new(cfg, None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        let gw2 = ip("10.20.2.1");
        let mut down_at = None;
        let mut t = 0;
        // wan2's gateway stops confirming at t = 3000.
        while t <= 8000 {
            let out = core.poll(at(t));
            for o in &out {
                match o {
                    Output::Probe { wan, target, .. } => {
                        // One probe per round, to the discovered gateway of its WAN.
                        assert_eq!(*target, ip(&format!("10.20.{}.1", wan + 1)));
                        if *wan == 0 || t < 3000 {
                            let ifindex = 10 + *wan as u32;
                            assert!(core.on_neighbour_reachable(ifindex, *target, at(t + 1)));
                        }
                    }
                    Output::Transition { wan: 1, event } if event.to == State::Down => {
                        down_at.get_or_insert(t);
                    }
                    _ => {}
                }
            }
            t += 50;
        }
        let down_at = down_at.expect("wan2 went down");
        assert!((4000..=7000).contains(&down_at), "down at {down_at}");
        assert_eq!(group(&core), vec![1100]);
        // A confirmation of another address, or on another device, answers nothing.
        core.poll(at(9000));
        assert!(!core.on_neighbour_reachable(11, ip("10.20.2.77"), at(9001)));
        assert!(!core.on_neighbour_reachable(10, gw2, at(9001)));
    }

    #[test]
    fn gateway_probe_of_a_point_to_point_link_follows_carrier() {
        let mut cfg = config(&[1], 1);
        cfg.interfaces[0].track_ip.clear();
        cfg.interfaces[0].track_method = TrackMethod::Gateway;
        let mut core = Engine::new(cfg, None, 1, at(0));
        let mut snap = snapshot(&[true]);
        snap.foreign_defaults[0].gateway = None;
        core.on_snapshot(&snap, at(0));
        for t in (0..6000).step_by(100) {
            let out = core.poll(at(t));
            assert!(out.iter().all(|o| !matches!(o, Output::Probe { .. })));
            assert!(out.iter().all(|o| !matches!(o, Output::Transition { .. })));
        }
        assert_eq!(core.wans()[0].health.state(), State::Up);
    }

    #[test]
    fn a_gateway_the_kernel_cannot_resolve_takes_its_wan_out_at_once() {
        let cfg = config(&[1, 1], 1);
        let mut core = Engine::new(cfg, None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, true]), at(0));
        // Another host on wan2's link, and wan1's gateway seen on wan2's device: nothing.
        assert!(core
            .on_neighbour_failed(11, ip("10.20.2.77"), at(50))
            .is_empty());
        assert!(core
            .on_neighbour_failed(11, ip("10.20.1.1"), at(60))
            .is_empty());
        let out = core.on_neighbour_failed(11, ip("10.20.2.1"), at(100));
        assert!(
            matches!(&out[..], [Output::Transition { wan: 1, event }, Output::Flush { wan: 1, why: Flush::Out, .. }]
                if event.to == State::Down && event.reason == health::Reason::GatewayFailed),
            "{out:?}"
        );
        assert_eq!(group(&core), vec![1100]);
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
        // The kernel's default route on wan2 (via 10.20.2.1) differs from netifd's: the
        // kernel wins, and netifd is asked again.
        let out = core.on_snapshot(&snap, at(20));
        assert!(out.contains(&Output::AskNetifd { wan: 1 }), "{out:?}");
        assert_eq!(core.device(1), Some("wan2"));
        assert_eq!(core.wans()[1].v4.gateway, Some(Some(ip("10.20.2.1"))));
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
            matches!(&out[..], [Output::Transition { wan: 1, event }, Output::Flush { wan: 1, why: Flush::Out, .. }]
                if event.to == State::NoCarrier),
            "{out:?}"
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

    /// A netifd-followed WAN `wan2` (no `option device`) next to a device-bound `wan1`.
    fn netifd_config() -> Config {
        let mut cfg = config(&[1, 1], 0);
        cfg.interfaces[1].device = String::new();
        cfg
    }

    fn netifd_up(device: &str, gateway: &str) -> Netifd {
        Netifd {
            up: true,
            device: Some(device.into()),
            main_device: Some(device.into()),
            gateway: Some(Some(ip(gateway))),
            ..Netifd::default()
        }
    }

    fn transitions(out: &[Output]) -> Vec<(usize, State)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Transition { wan, event } => Some((*wan, event.to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn timeline_netifd_gateway_renewal_follows_the_kernel() {
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let mut snap = snapshot(&[true, true]);
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(0));
        let out = core.on_snapshot(&snap, at(10));
        assert!(!out.contains(&Output::AskNetifd { wan: 1 }), "they agree");
        assert_eq!(core.wans()[1].v4.gateway, Some(Some(ip("10.20.2.1"))));
        // t = 1 s: a DHCP renew moves the gateway; netifd replaces the kernel route and
        // sends no event. The next dump (a route event, or the periodic re-check) sees
        // the new route: the WAN uses it at once, and netifd is asked again, once.
        snap.foreign_defaults[1].gateway = Some(ip("10.20.2.254"));
        let out = core.on_snapshot(&snap, at(1000));
        assert!(out.contains(&Output::Gateway {
            wan: 1,
            family: Family::V4,
            from: Some(Some(ip("10.20.2.1"))),
            to: Some(Some(ip("10.20.2.254"))),
        }));
        assert!(out.contains(&Output::AskNetifd { wan: 1 }));
        let routes_via = |core: &Engine, gw: &str| {
            core.desired(true).objects.iter().any(|o| {
                matches!(o, Object::Nexthop(n)
                    if matches!(n.kind, NexthopKind::Via { gateway: Some(g), .. } if g == ip(gw)))
            })
        };
        assert!(routes_via(&core, "10.20.2.254"));
        assert!(!routes_via(&core, "10.20.2.1"));
        let out = core.on_snapshot(&snap, at(1020));
        assert!(out.is_empty(), "asked once per disagreement: {out:?}");
        // t = 1.1 s: netifd's answer (or its interface.update notification) agrees.
        let (changed, out) = core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.254")), at(1100));
        assert!(changed);
        assert!(transitions(&out).is_empty());
        assert!(core.on_snapshot(&snap, at(1120)).is_empty());
        assert_eq!(core.wans()[1].health.state(), State::Up);
        // The notification may come first: netifd's new gateway is used even before the
        // kernel route shows up in a dump.
        let mut stale = snap.clone();
        stale.foreign_defaults.retain(|d| d.ifindex != 11);
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.9")), at(2000));
        core.on_snapshot(&stale, at(2010));
        assert_eq!(core.wans()[1].v4.gateway, Some(Some(ip("10.20.2.9"))));
    }

    #[test]
    fn netifd_down_does_not_fall_back_to_the_dying_kernel_route() {
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let snap = snapshot(&[true, true]);
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(0));
        core.on_snapshot(&snap, at(10));
        // ifdown: netifd reports the interface down, without l3_device or routes, while
        // the kernel still has its default route for a moment.
        let down = Netifd {
            up: false,
            main_device: Some("wan2".into()),
            ..Netifd::default()
        };
        let (_, out) = core.on_netifd(1, Some(down), at(100));
        assert_eq!(transitions(&out), vec![(1, State::NoCarrier)]);
        let reasons = |out: &[Output]| -> Vec<Reason> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Transition { event, .. } => Some(event.reason.clone()),
                    _ => None,
                })
                .collect()
        };
        // The carrier never changed: the log says what netifd said.
        assert_eq!(reasons(&out), vec![Reason::NetifdDown]);
        let out = core.on_snapshot(&snap, at(120));
        assert_eq!(core.device(1), Some("wan2"));
        assert_eq!(core.wans()[1].v4.gateway, None);
        assert!(!out.contains(&Output::AskNetifd { wan: 1 }));
        // No nexthop and no route on wan2 while it is down.
        assert!(!core.desired(true).objects.iter().any(|o| matches!(o,
            Object::Nexthop(n) if matches!(n.kind, NexthopKind::Via { ifindex: 11, .. }))));
        // ifup: back with its route.
        let (_, out) = core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(200));
        assert_eq!(reasons(&out), vec![Reason::NetifdUp]);
        core.on_snapshot(&snap, at(220));
        assert_eq!(core.wans()[1].v4.gateway, Some(Some(ip("10.20.2.1"))));
        assert_eq!(core.wans()[1].health.state(), State::Up);
    }

    #[test]
    fn timeline_ubus_outage_keeps_the_last_netifd_view() {
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let snap = snapshot(&[true, true]);
        let view = netifd_up("wan2", "10.20.2.1");
        core.on_netifd(1, Some(view.clone()), at(0));
        core.on_snapshot(&snap, at(10));
        assert_eq!(group(&core), vec![1100, 1101]);
        // t = 1 s .. 49 s: ubusd is gone, then back without netifd's objects (netifd
        // registers again only after its own 2 s retry): no netifd update at all, only
        // the periodic re-checks of an unchanged kernel. Nothing moves.
        let mut out = Vec::new();
        for t in (1000..49_000).step_by(100) {
            let o = core.poll(at(t));
            answer(&mut core, &o, None, at(t + 5));
            out.extend(o);
            if t % 2000 == 0 {
                out.extend(core.on_snapshot(&snap, at(t)));
            }
            assert_eq!(group(&core), vec![1100, 1101], "at {t} ms");
        }
        assert!(transitions(&out).is_empty(), "{out:?}");
        assert_eq!(core.device(1), Some("wan2"));
        // t = 49 s: netifd's object is back and answers as before: nothing changes.
        let (changed, out) = core.on_netifd(1, Some(view), at(49_000));
        assert!(!changed);
        assert!(out.is_empty());
        // Only netifd removing the object (ubus.object.remove) makes it unknown.
        let (changed, out) = core.on_netifd(1, None, at(50_000));
        assert!(changed);
        assert_eq!(transitions(&out), vec![(1, State::NoCarrier)]);
    }

    /// netifd's `status` replies as `netifd_dump_status` (netifd `ubus.c`) shapes them:
    /// `l3_device` only while the interface is up, `device` (the main device) only for
    /// protocols that have one (not for a `no_device` handler such as QMI's).
    #[test]
    fn netifd_status_shapes_of_ppp_wwan_and_dhcp() {
        use crate::bus::parse_netifd;
        use serde_json::json;
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let feed = |core: &mut Engine, v: serde_json::Value, t: u64| {
            core.on_netifd(1, Some(parse_netifd(&v)), at(t));
            core.device(1).map(str::to_string)
        };
        // PPPoE over eth0.2: up on pppoe-wan, a default route without a gateway.
        let ppp_up = json!({"up": true, "pending": false, "available": true, "proto": "pppoe",
            "l3_device": "pppoe-wan", "device": "eth0.2", "uptime": 12,
            "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "0.0.0.0", "source": "0.0.0.0/0"}]});
        assert_eq!(
            feed(&mut core, ppp_up.clone(), 0).as_deref(),
            Some("pppoe-wan")
        );
        assert_eq!(
            core.wans()[1].netifd.as_ref().and_then(|n| n.gateway),
            Some(None)
        );
        // PPPoE down (peer gone, redialling): no l3_device, only eth0.2.
        let ppp_down = json!({"up": false, "pending": true, "available": true, "proto": "pppoe",
            "device": "eth0.2", "data": {}});
        assert_eq!(feed(&mut core, ppp_down, 10).as_deref(), Some("pppoe-wan"));
        assert_eq!(feed(&mut core, ppp_up, 20).as_deref(), Some("pppoe-wan"));
        // wwan over QMI: the network device wwan0 while up; the control device
        // (/dev/cdc-wdm0) is a protocol option, never `device`.
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let qmi_up = json!({"up": true, "proto": "qmi", "l3_device": "wwan0",
            "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "10.64.64.64"}]});
        assert_eq!(feed(&mut core, qmi_up, 0).as_deref(), Some("wwan0"));
        let qmi_down = json!({"up": false, "pending": false, "available": true, "proto": "qmi",
            "data": {}});
        assert_eq!(feed(&mut core, qmi_down, 10).as_deref(), Some("wwan0"));
        // DHCP: the L3 device is the main device; down it keeps reporting it.
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        let dhcp_up = json!({"up": true, "proto": "dhcp", "l3_device": "wan2", "device": "wan2",
            "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "10.20.2.1"}]});
        assert_eq!(feed(&mut core, dhcp_up, 0).as_deref(), Some("wan2"));
        let dhcp_down = json!({"up": false, "proto": "dhcp", "device": "wan2"});
        assert_eq!(feed(&mut core, dhcp_down, 10).as_deref(), Some("wan2"));
        assert_eq!(core.wans()[1].health.state(), State::NoCarrier);
    }

    #[test]
    fn netifd_l3_device_is_kept_while_down() {
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        // PPPoE: up on pppoe-wan over wan2; down it reports only the Ethernet device.
        let ppp = Netifd {
            up: true,
            device: Some("pppoe-wan".into()),
            main_device: Some("wan2".into()),
            gateway: Some(None),
            ..Netifd::default()
        };
        core.on_netifd(1, Some(ppp.clone()), at(0));
        assert_eq!(core.device(1), Some("pppoe-wan"));
        let down = Netifd {
            up: false,
            device: None,
            main_device: Some("wan2".into()),
            ..Netifd::default()
        };
        core.on_netifd(1, Some(down.clone()), at(10));
        assert_eq!(core.device(1), Some("pppoe-wan"), "not the Ethernet device");
        core.on_netifd(1, Some(ppp), at(20));
        assert_eq!(core.device(1), Some("pppoe-wan"));
        // QMI/MBIM: no main device at all; the modem's network device is kept.
        let qmi = Netifd {
            up: true,
            device: Some("wwan0".into()),
            ..Netifd::default()
        };
        core.on_netifd(1, Some(qmi), at(30));
        core.on_netifd(1, Some(Netifd::default()), at(40));
        assert_eq!(core.device(1), Some("wwan0"));
        // DHCP/static: the L3 device is the main device, so a down interface whose
        // device was changed follows the change.
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(50));
        let moved = Netifd {
            up: false,
            main_device: Some("wan3".into()),
            ..Netifd::default()
        };
        core.on_netifd(1, Some(moved), at(60));
        assert_eq!(core.device(1), Some("wan3"));
        // Removed from netifd: no device.
        core.on_netifd(1, None, at(70));
        assert_eq!(core.device(1), None);
    }

    /// The kernel as a previous run left it, both WANs up and in the group, wan2 on
    /// device wan2 in slot 1 (it followed netifd).
    fn previous_run() -> Snapshot {
        let mut prev = Engine::new(netifd_config(), None, 1, at(0));
        prev.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(0));
        let mut snap = snapshot(&[true, true]);
        prev.on_snapshot(&snap, at(0));
        assert_eq!(group(&prev), vec![1100, 1101]);
        snap.owned = prev.desired(true).objects;
        snap
    }

    #[test]
    fn timeline_restart_waits_for_netifd_and_adopts_its_wan() {
        let snap = previous_run();
        let mut core = Engine::new(netifd_config(), Some(&snap), 2, at(0));
        core.wait_for_netifd(at(5000));
        assert!(core.waiting_for_netifd());
        // Before netifd answers: nothing judged, no probes on wan2, no transition.
        let mut out = core.on_snapshot(&snap, at(0));
        for t in (0..700).step_by(50) {
            out.extend(core.poll(at(t)));
        }
        assert!(transitions(&out).iter().all(|(w, _)| *w != 1), "{out:?}");
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::Probe { wan: 1, .. })));
        // t = 0.7 s: netifd answers; the next dump shows the device.
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(700));
        assert!(!core.waiting_for_netifd());
        let out = core.on_snapshot(&snap, at(710));
        assert!(transitions(&out).is_empty(), "{out:?}");
        assert_eq!(core.wans()[1].slot, 1);
        assert_eq!(core.wans()[1].health.state(), State::Up);
        assert_eq!(core.desired(true).objects, snap.owned, "nothing to change");
        assert!(transitions(&core.poll(at(800))).is_empty());
    }

    #[test]
    fn restart_takes_the_configured_slot_not_the_previous_one() {
        // A previous run (another release, or history) put wan2 in slot 0 and wan1 in 1.
        let mut snap = previous_run();
        for o in snap.owned.iter_mut() {
            if let Object::Rule(r) = o {
                if r.table == 1100 || r.table == 1101 {
                    r.selector = match &r.selector {
                        Selector::Oif(d) if d == "wan1" => Selector::Oif("wan2".into()),
                        Selector::Oif(_) => Selector::Oif("wan1".into()),
                        other => other.clone(),
                    };
                }
            }
        }
        let mut core = Engine::new(netifd_config(), Some(&snap), 2, at(0));
        core.wait_for_netifd(at(5000));
        assert_eq!(core.wans()[0].slot, 0, "the file's order, not the kernel's");
        core.on_netifd(1, Some(netifd_up("wan2", "10.20.2.1")), at(100));
        assert_eq!(core.wans()[1].slot, 1);
    }

    #[test]
    fn startup_wait_for_netifd_is_bounded() {
        let mut core = Engine::new(netifd_config(), None, 1, at(0));
        core.wait_for_netifd(at(5000));
        let out = core.on_snapshot(&snapshot(&[true, true]), at(0));
        assert!(transitions(&out).iter().all(|(w, _)| *w != 1));
        assert_eq!(
            core.poll_at(),
            Some(at(5000)),
            "untracked: only the deadline"
        );
        let out = core.poll(at(4999));
        assert!(transitions(&out).is_empty());
        // netifd never answered: judged on what is known (no device) at the deadline.
        let out = core.poll(at(5000));
        assert_eq!(transitions(&out), vec![(1, State::NoCarrier)]);
        // The start transition: logged as the initial state, never as "(was up)".
        assert!(out.iter().all(|o| !matches!(o,
            Output::Transition { event, .. } if event.reason != Reason::Start)));
        assert!(!core.waiting_for_netifd());
    }

    #[test]
    fn restart_adopts_group_membership() {
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
        // A new WAN in front takes slot 0 and moves the others (reported, so that their
        // pinned connections are flushed); they keep their health.
        let mut more = new.clone();
        let mut extra = more.interfaces[0].clone();
        extra.name = "wan0".into();
        extra.device = "wan0".into();
        more.interfaces.insert(0, extra);
        let out = core.reload(more.clone(), at(20));
        let slots: Vec<u32> = core.wans().iter().map(|w| w.slot).collect();
        assert_eq!(slots, vec![0, 1, 2]);
        let marks = Marks::new(core.config().globals.fwmark_mask);
        assert_eq!(
            out,
            vec![
                Output::Moved {
                    wan: 1,
                    from: 0,
                    to: 1
                },
                Output::Flush {
                    wan: 1,
                    mark: marks.wan(0).unwrap(),
                    why: Flush::Moved
                },
                Output::Moved {
                    wan: 2,
                    from: 1,
                    to: 2
                },
                Output::Flush {
                    wan: 2,
                    mark: marks.wan(1).unwrap(),
                    why: Flush::Moved
                },
            ]
        );
        assert_eq!(core.wans()[2].health.state(), State::NoCarrier);
        // With pins, the same insertion moves nothing.
        let mut core = Engine::new(pin(new.clone()), None, 1, at(0));
        let mut more = pin(new);
        let mut extra = more.interfaces[0].clone();
        extra.name = "wan0".into();
        extra.device = "wan0".into();
        extra.slot = None;
        more.interfaces.insert(0, extra);
        assert!(core.reload(more, at(20)).is_empty());
        let slots: Vec<u32> = core.wans().iter().map(|w| w.slot).collect();
        assert_eq!(slots, vec![2, 0, 1]);
    }

    /// keepalived's roles decide which transitions flush (conntrackd replicates the
    /// deletions to the peer), and a new master flushes what is out on it.
    #[test]
    fn timeline_ha_roles_and_flushes() {
        let mut core = Engine::new(config(&[1, 1], 1), None, 1, at(0));
        core.on_snapshot(&snapshot(&[true, false]), at(0));
        let ev = |from, to| health::Event {
            from,
            to,
            reason: health::Reason::Start,
        };
        let down = ev(State::Up, State::Down);
        let carrier = ev(State::Up, State::NoCarrier);
        assert!(core.flushes(0, &down) && core.flushes(0, &carrier), "alone");
        assert_eq!(
            core.set_role(ha::Role::Backup, at(10)),
            vec![Output::Role {
                from: None,
                to: ha::Role::Backup
            }]
        );
        assert!(
            !core.flushes(0, &down) && !core.flushes(0, &carrier),
            "backup"
        );
        assert!(
            core.set_role(ha::Role::Backup, at(20)).is_empty(),
            "no edge"
        );
        // Takeover: wan2 has no carrier here, so what was committed for it is flushed.
        assert_eq!(
            core.set_role(ha::Role::Master, at(30)),
            vec![
                Output::Role {
                    from: Some(ha::Role::Backup),
                    to: ha::Role::Master
                },
                Output::Flush {
                    wan: 1,
                    mark: core.marks().wan(core.wans()[1].slot).unwrap(),
                    why: Flush::Takeover
                },
            ]
        );
        assert!(core.flushes(0, &down), "the ISP is dead for both routers");
        assert!(!core.flushes(0, &carrier), "the peer takes over");
        assert_eq!(
            core.ha().map(|h| (h.role, h.since)),
            Some((ha::Role::Master, at(30)))
        );
    }

    /// Every interface pinned to the slot its file order gives it now.
    fn pin(mut cfg: Config) -> Config {
        for (i, s) in cfg.slots().into_iter().enumerate() {
            cfg.interfaces[i].slot = Some(s);
        }
        cfg
    }

    /// What a router hands the kernel: its routes, rules and nexthops, and its nft
    /// script, rendered once every link is up and every WAN judged.
    fn rendered(core: &mut Engine) -> (Vec<Object>, String) {
        core.on_snapshot(&snapshot(&[true, true, true, true]), at(100_000));
        let desired = core.desired(true);
        let mut objects = desired.objects.clone();
        objects.sort_by_key(|o| format!("{o:?}"));
        let nft = core
            .ruleset(&desired)
            .script(&crate::dataplane::Existing::default());
        (objects, nft)
    }

    /// Two routers of an HA pair with the same file must route a connection synced with
    /// its conntrack mark the same way, whatever each lived through before.
    #[test]
    fn timeline_same_file_same_kernel_objects_whatever_the_history() {
        let full = config(&[1, 2, 3, 4], 1);
        let without = |names: &[&str]| {
            let mut c = full.clone();
            c.interfaces.retain(|i| !names.contains(&i.name.as_str()));
            c.members.retain(|m| !names.contains(&m.interface.as_str()));
            let members: Vec<String> = c.members.iter().map(|m| m.name.clone()).collect();
            c.policies[0].use_member = members;
            c
        };
        // Router A: started with the file.
        let mut a = Engine::new(full.clone(), None, 1, at(0));
        let a_objects = rendered(&mut a);
        // Router B: started with wan2 and wan4 missing, then reloaded twice (WANs coming).
        let mut b = Engine::new(without(&["wan2", "wan4"]), None, 7, at(0));
        rendered(&mut b);
        b.reload(without(&["wan2"]), at(200_000));
        rendered(&mut b);
        b.reload(full.clone(), at(300_000));
        // Router C: started with the file, then wan1 went away and came back.
        let mut c = Engine::new(full.clone(), None, 3, at(0));
        rendered(&mut c);
        c.reload(without(&["wan1"]), at(200_000));
        rendered(&mut c);
        c.reload(full.clone(), at(300_000));
        // Router D: restarted over the objects of a run whose file listed the WANs in the
        // opposite order (an adoption must not carry the old slots over).
        let mut reversed = full.clone();
        reversed.interfaces.reverse();
        let mut old = Engine::new(reversed, None, 5, at(0));
        let mut left = snapshot(&[true, true, true, true]);
        left.owned = rendered(&mut old).0;
        let mut d = Engine::new(full.clone(), Some(&left), 9, at(0));
        for (name, core) in [("B", &mut b), ("C", &mut c), ("D", &mut d)] {
            let slots: Vec<u32> = core.wans().iter().map(|w| w.slot).collect();
            assert_eq!(slots, vec![0, 1, 2, 3], "router {name}");
            let (objects, nft) = rendered(core);
            assert_eq!(
                objects, a_objects.0,
                "router {name}: routes, rules, nexthops"
            );
            assert_eq!(nft, a_objects.1, "router {name}: nft ruleset");
        }
    }
}
