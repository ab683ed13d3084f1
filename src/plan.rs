//! The routing plan: (config, per-WAN health and links) → the kernel objects uplinkd
//! wants. Pure; the result is a value, so "did anything change?" is `==` (STYLE §4).
//!
//! Layout, the same for each family a WAN carries (`T` = `table_first`, `L` =
//! `table_last`, `P` = `rule_priority`, `S` = `L - T + 1`):
//!
//! ```text
//! WAN slot i      table T+i:  default via <gw> dev <wan>          (while the link is up)
//!                             unreachable default metric 2^32-1    (terminal: never fall
//!                                                                   through to another WAN)
//!                 nexthop T+i: via <gw> dev <wan>                  (while it has carrier;
//!                                                                   IPv6: id T+i+S)
//! policy j        nexthop L-j: group of the usable members of the best tier, by weight
//!                 table L-j:   default nhid L-j | unreachable | blackhole | nothing
//! rules           P        lookup main suppress_prefixlength 0   LAN and connected win
//!                 P+50     fwmark <main mark> lookup main         `use_policy default`
//!                 P+100+i  from <wan address> lookup T+i          router traffic sourced
//!                          from <delegated prefix> lookup T+i     IPv6 prefixes of the WAN
//!                 P+200+i  oif <wan> lookup T+i                   probes, bound sockets
//!                 P+900    lookup L-<default policy>              everything else
//! ```
//!
//! The `main suppress_prefixlength 0` rule comes first (the validated layout had it after
//! the per-WAN rules): traffic from a WAN address to a LAN host, such as the router
//! answering a LAN client that addressed its WAN IP, must take the connected route, not
//! the WAN's default. Probes are unaffected: a socket bound to a WAN device matches only
//! routes through that device, and the main table's default routes are suppressed.
//!
//! IPv6 differs in three details: the kernel keeps nexthop ids in one space for both
//! families (hence the `S` offset), stores a route metric of 0 as 1024 (so the plan asks
//! for 1024), and a WAN's delegated prefixes are bound to it: an ISP routes its prefix
//! back only through its own link, and drops other sources (BCP 38).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{Config, Interface, LastResort, Policy, Prefix, RULE_PRIORITY_SPAN};
use crate::health::{State, Usability};
use crate::kernel::{
    Family, GroupMember, MultipathHop, Nexthop, NexthopKind, Object, Ownership, Route, RouteTarget,
    Rule, Selector,
};

/// Offsets within our rule priority range.
pub const PRIO_MAIN: u32 = 0;
/// Connections a rule sends to the main table (`use_policy default`). Ahead of the
/// `from <wan address>` rules: the router's own connections get their source address
/// from the first route lookup (through the default policy), and the main table's
/// choice must win over that address's WAN after the mark is set, as in mwan3.
pub const PRIO_MAIN_MARK: u32 = 50;
pub const PRIO_FROM: u32 = 100;
pub const PRIO_OIF: u32 = 200;
pub const PRIO_FWMARK: u32 = 300;
pub const PRIO_POLICY_MARK: u32 = 600;
pub const PRIO_POLICY: u32 = 900;
/// Most WAN slots (rule priority offsets per WAN are 100 apart).
pub const MAX_WANS: u32 = 100;
/// Metric of the terminal `unreachable default` in each WAN table.
pub const TERMINAL_METRIC: u32 = u32::MAX;
/// Largest nexthop group weight every kernel with nexthop groups accepts.
pub const MAX_KERNEL_WEIGHT: u16 = 256;

/// What the plan needs to know about one WAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wan<'a> {
    pub cfg: &'a Interface,
    /// Table / nexthop slot (table = `table_first + slot`).
    pub slot: u32,
    pub link: Option<LinkView>,
    /// What the WAN has of each family.
    pub v4: Path,
    pub v6: Path,
    pub state: State,
    /// Run-time weight override (`set_weight`), else the member's configured weight.
    pub weight: Option<u16>,
    /// The WAN's data quota is spent: it takes new flows only when no other member of
    /// a policy is usable (last resort), in every mode.
    pub metered_out: bool,
}

/// One address family of a WAN: how to leave through it and what it owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    /// The gateway in use: from the config, else discovered. `Some(None)` is a
    /// point-to-point link routed by device alone; `None` means no route is known.
    pub gateway: Option<Option<IpAddr>>,
    /// The WAN's own global addresses of this family.
    pub addresses: Vec<IpAddr>,
    /// IPv6 prefixes delegated to the WAN (config, netifd, source-specific routes):
    /// traffic from them always leaves through this WAN.
    pub prefixes: Vec<Prefix>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub ifindex: u32,
    pub up: bool,
    pub carrier: bool,
}

/// The members of a policy carrying new traffic of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// (interface name, kernel weight).
    pub active: Vec<(String, u16)>,
    /// The same members as (slot, configured weight), for new-flow selection.
    pub slots: Vec<(u32, u16)>,
    /// Whether the members in use are only degraded ones.
    pub degraded_only: bool,
}

/// A policy's resolved members, for logs, status and the nft data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPlan {
    pub name: String,
    pub v4: Members,
    pub v6: Members,
    /// The mark that routes into this policy's table (last resort), if it has one.
    pub mark: Option<u32>,
    /// Set when no member of a family the policy carries is usable: the last resort
    /// applies.
    pub last_resort: Option<LastResort>,
}

impl PolicyPlan {
    pub fn members(&self, f: Family) -> &Members {
        f.pick(&self.v4, &self.v6)
    }
}

/// Everything uplinkd wants in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Sorted, without duplicates.
    pub objects: Vec<Object>,
    pub policies: Vec<PolicyPlan>,
    /// Our nft table (marks, pinning, rules). Filled by
    /// [`crate::engine::Engine::desired`], which knows every WAN's device and delegated
    /// prefixes; empty from [`plan`] alone.
    pub nft: crate::dataplane::Ruleset,
}

/// The tags that make our objects ours, derived from the globals. IPv6 nexthops take
/// the ids after the table range (nexthop ids are shared by both families).
pub fn ownership(cfg: &Config) -> Ownership {
    let g = &cfg.globals;
    Ownership {
        protocol: g.route_proto,
        tables: g.table_first..=g.table_last,
        priorities: g.rule_priority..=g.rule_priority + RULE_PRIORITY_SPAN - 1,
        nexthop_ids: g.table_first
            ..=g.table_last
                .saturating_add(g.table_last - g.table_first + 1),
    }
}

/// The nexthop (or group) id of `table`'s route in family `f`: the table number for
/// IPv4, the same number shifted past the table range for IPv6.
pub fn nexthop_id(cfg: &Config, f: Family, table: u32) -> u32 {
    let g = &cfg.globals;
    match f {
        Family::V4 => table,
        Family::V6 => table.saturating_add(g.table_last - g.table_first + 1),
    }
}

/// The metric of our routes: the kernel stores an IPv6 route's metric 0 as 1024, so
/// that is what the plan asks for.
pub fn route_metric(f: Family) -> u32 {
    f.pick(0, 1024)
}

/// Connection-pinning marks: values inside `fwmark_mask`. WAN slot `s` gets value
/// `s + 1`; the main table (`use_policy default`) `max / 2 + 1`; policy `j` gets
/// `max - j` (used for its last resort only); 0 is "not pinned".
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Marks {
    pub mask: u32,
    shift: u32,
    max: u32,
}

impl Marks {
    pub fn new(mask: u32) -> Marks {
        let shift = mask.trailing_zeros().min(31);
        // The usable values are the contiguous run of ones starting at the lowest bit.
        let run = (mask >> shift).trailing_ones();
        let max = if run >= 32 {
            u32::MAX
        } else {
            (1u32 << run) - 1
        };
        Marks { mask, shift, max }
    }

    /// The mark of WAN slot `slot`, if the mask has room for it.
    pub fn wan(&self, slot: u32) -> Option<u32> {
        let v = slot.checked_add(1)?;
        (v <= self.max / 2).then(|| v << self.shift)
    }

    /// The mark of policy `index`, if the mask has room for it.
    pub fn policy(&self, index: usize) -> Option<u32> {
        let v = self.max.checked_sub(u32::try_from(index).ok()?)?;
        (v > self.max / 2 + 1).then(|| v << self.shift)
    }

    /// The mark of connections pinned to the main routing table, if the mask has room.
    pub fn main(&self) -> Option<u32> {
        let v = self.max / 2 + 1;
        (self.max >= 3).then(|| v << self.shift)
    }
}

/// The table (and IPv4 nexthop id) of WAN slot `slot`.
pub fn wan_table(cfg: &Config, slot: u32) -> u32 {
    cfg.globals.table_first + slot
}

/// The table (and IPv4 nexthop group id) of the policy at `index` in the config.
pub fn policy_table(cfg: &Config, index: usize) -> u32 {
    cfg.globals.table_last - index as u32
}

fn is_link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

impl Wan<'_> {
    pub fn path(&self, f: Family) -> &Path {
        f.pick(&self.v4, &self.v6)
    }

    /// Whether the WAN is configured for family `f`.
    pub fn carries(&self, f: Family) -> bool {
        self.cfg.family.carries(f)
    }

    /// The route of family `f` out of this WAN, if the link can carry one now.
    fn via(&self, f: Family) -> Option<(u32, Option<IpAddr>)> {
        let link = self.link?;
        let path = self.path(f);
        let gateway = path.gateway?;
        if !link.up || gateway.is_some_and(|g| Family::of(&g) != f) {
            return None;
        }
        // A gateway needs a connected route on the device, which comes with an address
        // (an IPv6 link-local gateway, the usual one, is always on the link).
        if gateway.is_some_and(|g| !is_link_local(&g)) && path.addresses.is_empty() {
            return None;
        }
        Some((link.ifindex, gateway))
    }
}

/// Compute the desired kernel objects, with each policy's configured weights.
pub fn plan(cfg: &Config, wans: &[Wan], nexthops_supported: bool) -> Desired {
    plan_with(cfg, wans, nexthops_supported, &Vec::new())
}

/// Compute the desired kernel objects, with the effective weights of the policies'
/// modes (`balance`): per policy, per WAN slot; 0 keeps a member out of the new-flow
/// choice (it stays in the nexthop group, which only carries unmarked traffic).
pub fn plan_with(
    cfg: &Config,
    wans: &[Wan],
    nexthops_supported: bool,
    effective: &crate::balance::Weights,
) -> Desired {
    let mut objects = Vec::new();
    let mut members: Vec<[Members; 2]> = Vec::new();
    for f in [Family::V4, Family::V6] {
        let chosen = plan_family(cfg, wans, nexthops_supported, effective, f, &mut objects);
        for (index, m) in chosen.into_iter().enumerate() {
            if members.len() <= index {
                members.push(Default::default());
            }
            members[index][f as usize] = m;
        }
    }
    let marks = Marks::new(cfg.globals.fwmark_mask);
    let policies = cfg
        .policies
        .iter()
        .zip(members)
        .enumerate()
        .map(|(index, (policy, [v4, v6]))| {
            // The last resort applies when no family the policy carries has a member.
            let carried: Vec<Family> = [Family::V4, Family::V6]
                .into_iter()
                .filter(|f| policy_carries(cfg, policy, *f))
                .collect();
            let empty = |f: &Family| match f {
                Family::V4 => v4.active.is_empty(),
                Family::V6 => v6.active.is_empty(),
            };
            let none = carried.iter().all(empty);
            PolicyPlan {
                name: policy.name.clone(),
                v4,
                v6,
                mark: marks.policy(index),
                last_resort: none.then_some(policy.last_resort),
            }
        })
        .collect();
    objects.sort();
    objects.dedup();
    Desired {
        objects,
        policies,
        nft: Default::default(),
    }
}

/// Whether any member of `policy` is configured for family `f`.
fn policy_carries(cfg: &Config, policy: &Policy, f: Family) -> bool {
    policy
        .use_member
        .iter()
        .filter_map(|m| cfg.member(m))
        .filter_map(|m| cfg.interface(&m.interface))
        .any(|i| i.family.carries(f))
}

/// The objects of one address family; returns each policy's members in it.
fn plan_family(
    cfg: &Config,
    wans: &[Wan],
    nexthops_supported: bool,
    effective: &crate::balance::Weights,
    f: Family,
    objects: &mut Vec<Object>,
) -> Vec<Members> {
    let g = &cfg.globals;
    let metric = route_metric(f);
    let rule = |offset: u32, selector: Selector, table: u32, suppress: Option<u8>| {
        Object::Rule(Rule {
            family: f,
            priority: g.rule_priority + offset,
            selector,
            table,
            suppress_prefixlength: suppress,
        })
    };
    let default_route = |table: u32, metric: u32, target: RouteTarget| {
        Object::Route(Route {
            family: f,
            table,
            dst: f.any(),
            dst_len: 0,
            metric,
            target,
        })
    };
    let carried = wans.iter().any(|w| w.carries(f));
    if !carried {
        // Nothing of this family: leave its rules to everyone else entirely.
        return cfg.policies.iter().map(|_| Default::default()).collect();
    }
    objects.push(rule(PRIO_MAIN, Selector::All, 254, Some(0)));

    let marks = Marks::new(g.fwmark_mask);
    // `use_policy default`: pinned to the main table, whatever uplinkd thinks of its WANs.
    let to_main = cfg
        .rules
        .iter()
        .any(|r| r.use_policy == crate::config::UsePolicy::Default && r.family.carries(f));
    if let Some(mark) = marks.main().filter(|_| to_main) {
        let sel = Selector::Fwmark {
            mark,
            mask: marks.mask,
        };
        objects.push(rule(PRIO_MAIN_MARK, sel, 254, None));
    }
    // Disabled WANs keep their table and rules: disabling drains (no new flows), and the
    // connections already pinned to the WAN keep running until they end.
    for wan in wans.iter().filter(|w| w.carries(f)) {
        let table = wan_table(cfg, wan.slot);
        if let Some(mark) = marks.wan(wan.slot) {
            let sel = Selector::Fwmark {
                mark,
                mask: marks.mask,
            };
            objects.push(rule(PRIO_FWMARK + wan.slot, sel, table, None));
        }
        objects.push(default_route(
            table,
            TERMINAL_METRIC,
            RouteTarget::Unreachable,
        ));
        if let Some((ifindex, gateway)) = wan.via(f) {
            objects.push(default_route(
                table,
                metric,
                RouteTarget::Via { ifindex, gateway },
            ));
            if nexthops_supported && wan.link.is_some_and(|l| l.carrier) {
                objects.push(Object::Nexthop(Nexthop {
                    id: nexthop_id(cfg, f, table),
                    family: f,
                    kind: NexthopKind::Via { ifindex, gateway },
                }));
            }
        }
        let path = wan.path(f);
        let own = path.addresses.iter().map(|a| (*a, host_len(a)));
        let delegated = path.prefixes.iter().map(|p| (p.addr, p.len));
        for (addr, len) in own.chain(delegated).filter(|(a, _)| Family::of(a) == f) {
            let from = Selector::From { addr, len };
            objects.push(rule(PRIO_FROM + wan.slot, from, table, None));
        }
        let oif = Selector::Oif(wan.cfg.device.clone());
        objects.push(rule(PRIO_OIF + wan.slot, oif, table, None));
    }

    let mut out = Vec::new();
    for (index, policy) in cfg.policies.iter().enumerate() {
        let is_default = policy.name == g.default_policy;
        let table = policy_table(cfg, index);
        let mut chosen = choose_members(cfg, policy, wans, f);
        apply_mode(&mut chosen.members, effective.get(index));
        let slots: Vec<(u32, u16)> = chosen
            .members
            .iter()
            .filter(|(_, wt)| *wt > 0)
            .map(|(w, wt)| (w.slot, *wt))
            .collect();
        let mut members: Vec<(&Wan, u16)> = chosen.members;
        scale_weights(&mut members);
        let plan = Members {
            active: members
                .iter()
                .map(|(w, weight)| (w.cfg.name.clone(), *weight))
                .collect(),
            slots,
            degraded_only: chosen.degraded_only,
        };
        // Every policy's table holds its last resort while no member is usable, reached
        // by the policy's mark. The default policy's table also carries all unmarked
        // traffic through its group.
        if let Some(mark) = marks.policy(index) {
            let sel = Selector::Fwmark {
                mark,
                mask: marks.mask,
            };
            objects.push(rule(PRIO_POLICY_MARK + index as u32, sel, table, None));
        }
        match (members.is_empty(), nexthops_supported) {
            (true, _) => match policy.last_resort {
                LastResort::Unreachable => {
                    objects.push(default_route(table, metric, RouteTarget::Unreachable))
                }
                LastResort::Blackhole => {
                    objects.push(default_route(table, metric, RouteTarget::Blackhole))
                }
                LastResort::Default => {}
            },
            (false, _) if !is_default => {}
            (false, true) => {
                let group = members
                    .iter()
                    .map(|(w, weight)| GroupMember {
                        id: nexthop_id(cfg, f, wan_table(cfg, w.slot)),
                        weight: *weight,
                    })
                    .collect();
                let id = nexthop_id(cfg, f, table);
                objects.push(Object::Nexthop(Nexthop {
                    id,
                    family: f,
                    kind: NexthopKind::Group(group),
                }));
                objects.push(default_route(table, metric, RouteTarget::Nexthop(id)));
            }
            (false, false) => {
                let mut hops: Vec<MultipathHop> = members
                    .iter()
                    .filter_map(|(w, weight)| {
                        let (ifindex, gateway) = w.via(f)?;
                        Some(MultipathHop {
                            ifindex,
                            gateway,
                            weight: *weight,
                        })
                    })
                    .collect();
                let target = if hops.len() == 1 {
                    let h = hops.remove(0);
                    RouteTarget::Via {
                        ifindex: h.ifindex,
                        gateway: h.gateway,
                    }
                } else {
                    RouteTarget::Multipath(hops)
                };
                objects.push(default_route(table, metric, target));
            }
        }
        if is_default {
            objects.push(rule(PRIO_POLICY, Selector::All, table, None));
        }
        out.push(plan);
    }
    out
}

fn host_len(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

struct Chosen<'w, 'a> {
    members: Vec<(&'w Wan<'a>, u16)>,
    degraded_only: bool,
}

/// mwan3's tier rule: the lowest metric with a usable member wins and is balanced by
/// weight. Degraded members are used only when no member of the policy is fully up, and
/// members whose quota is spent only when no other member is usable at all.
fn choose_members<'w, 'a>(
    cfg: &Config,
    policy: &Policy,
    wans: &'w [Wan<'a>],
    f: Family,
) -> Chosen<'w, 'a> {
    let candidates: Vec<(&Wan, u16, u16, Usability)> = policy
        .use_member
        .iter()
        .filter_map(|m| cfg.member(m))
        .filter_map(|m| {
            let wan = wans.iter().find(|w| w.cfg.name == m.interface)?;
            let routable = wan.cfg.enabled && wan.carries(f) && wan.via(f).is_some();
            let usability = if routable {
                wan.state.usability()
            } else {
                Usability::None
            };
            Some((wan, m.metric, wan.weight.unwrap_or(m.weight), usability))
        })
        .filter(|c| c.3 != Usability::None)
        .collect();
    let classes = [
        (Usability::Full, false),
        (Usability::Fallback, false),
        (Usability::Full, true),
        (Usability::Fallback, true),
    ];
    for (class, metered_out) in classes {
        let in_class =
            |c: &&(&Wan, u16, u16, Usability)| c.3 == class && c.0.metered_out == metered_out;
        let Some(best) = candidates.iter().filter(in_class).map(|c| c.1).min() else {
            continue;
        };
        let mut members: Vec<(&Wan, u16)> = candidates
            .iter()
            .filter(in_class)
            .filter(|c| c.1 == best)
            .map(|c| (c.0, c.2))
            .collect();
        members.sort_by_key(|(w, _)| w.slot);
        members.dedup_by_key(|(w, _)| w.slot);
        return Chosen {
            members,
            degraded_only: class == Usability::Fallback,
        };
    }
    Chosen {
        members: Vec::new(),
        degraded_only: false,
    }
}

/// Replace the members' weights with the mode's effective ones. A member the mode has
/// no weight for gets 0 (it became usable since the last measurement); when that leaves
/// no member with a weight, the configured weights stay: a mode never empties a policy.
fn apply_mode(members: &mut [(&Wan, u16)], effective: Option<&HashMap<u32, u16>>) {
    let Some(weights) = effective.filter(|w| !w.is_empty()) else {
        return;
    };
    let get = |slot: u32| weights.get(&slot).copied().unwrap_or(0);
    if members.iter().all(|(w, _)| get(w.slot) == 0) {
        return;
    }
    for m in members.iter_mut() {
        m.1 = get(m.0.slot);
    }
}

/// Scale weights proportionally into 1..=256 when any exceeds what the kernel takes.
fn scale_weights(members: &mut [(&Wan, u16)]) {
    let max = members.iter().map(|m| m.1).max().unwrap_or(1);
    if max <= MAX_KERNEL_WEIGHT {
        for m in members.iter_mut() {
            m.1 = m.1.max(1);
        }
        return;
    }
    for m in members.iter_mut() {
        let scaled =
            (u32::from(m.1) * u32::from(MAX_KERNEL_WEIGHT) + u32::from(max) / 2) / u32::from(max);
        m.1 = scaled.clamp(1, u32::from(MAX_KERNEL_WEIGHT)) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{config, ip};

    fn wans<'a>(cfg: &'a Config, states: &[State]) -> Vec<Wan<'a>> {
        cfg.interfaces
            .iter()
            .enumerate()
            .map(|(i, c)| Wan {
                cfg: c,
                slot: i as u32,
                link: Some(LinkView {
                    ifindex: 10 + i as u32,
                    up: true,
                    carrier: true,
                }),
                v4: Path {
                    gateway: Some(Some(ip(&format!("10.20.{}.1", i + 1)))),
                    addresses: vec![ip(&format!("10.20.{}.2", i + 1))],
                    prefixes: Vec::new(),
                },
                v6: Path {
                    gateway: Some(Some(ip("fe80::1"))),
                    addresses: vec![ip(&format!("2001:db8:{}::2", i + 1))],
                    prefixes: vec![Prefix {
                        addr: ip(&format!("2001:db8:{}0::", i + 1)),
                        len: 48,
                    }],
                },
                state: states[i],
                weight: None,
                metered_out: false,
            })
            .collect()
    }

    fn group(d: &Desired) -> Option<Vec<(u32, u16)>> {
        crate::kernel::group_members(&d.objects, 1199)
            .map(|m| m.iter().map(|m| (m.id, m.weight)).collect())
    }

    fn balance_route(d: &Desired) -> Option<RouteTarget> {
        d.objects.iter().find_map(|o| match o {
            Object::Route(r) if r.table == 1199 => Some(r.target.clone()),
            _ => None,
        })
    }

    const UP3: [State; 3] = [State::Up, State::Up, State::Up];

    #[test]
    fn three_wans_weighted_layout() {
        let cfg = config(&[3, 1, 1], 3);
        let d = plan(&cfg, &wans(&cfg, &UP3), true);
        assert_eq!(group(&d), Some(vec![(1100, 3), (1101, 1), (1102, 1)]));
        assert_eq!(balance_route(&d), Some(RouteTarget::Nexthop(1199)));
        let rules: Vec<(u32, u32)> = d
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Rule(r) => Some((r.priority, r.table)),
                _ => None,
            })
            .collect();
        assert_eq!(
            rules,
            vec![
                (4000, 254),
                (4100, 1100),
                (4101, 1101),
                (4102, 1102),
                (4200, 1100),
                (4201, 1101),
                (4202, 1102),
                (4300, 1100),
                (4301, 1101),
                (4302, 1102),
                (4600, 1199),
                (4900, 1199)
            ]
        );
        // Each WAN table: gateway route plus the terminal unreachable.
        let t1101: Vec<&Object> = d
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Route(r) if r.table == 1101))
            .collect();
        assert_eq!(t1101.len(), 2);
        assert_eq!(d.policies[0].v4.active.len(), 3);
        // Pure and deterministic.
        assert_eq!(d, plan(&cfg, &wans(&cfg, &UP3), true));
    }

    #[test]
    fn down_wan_leaves_the_group_but_keeps_its_table() {
        let cfg = config(&[3, 1, 1], 3);
        let d = plan(
            &cfg,
            &wans(&cfg, &[State::Up, State::Down, State::Up]),
            true,
        );
        assert_eq!(group(&d), Some(vec![(1100, 3), (1102, 1)]));
        assert!(d.objects.iter().any(|o| matches!(
            o,
            Object::Route(Route {
                table: 1101,
                target: RouteTarget::Via { .. },
                ..
            })
        )));
    }

    #[test]
    fn lower_metric_tier_wins_and_degraded_is_a_fallback() {
        let mut cfg = config(&[1, 1, 1], 1);
        cfg.members[2].metric = 2; // wan3 is the backup tier
        let d = plan(&cfg, &wans(&cfg, &UP3), true);
        assert_eq!(group(&d), Some(vec![(1100, 1), (1101, 1)]));
        let d = plan(
            &cfg,
            &wans(&cfg, &[State::Down, State::NoCarrier, State::Up]),
            true,
        );
        assert_eq!(group(&d), Some(vec![(1102, 1)]));
        let d = plan(
            &cfg,
            &wans(&cfg, &[State::Degraded, State::Down, State::Down]),
            true,
        );
        assert_eq!(group(&d), Some(vec![(1100, 1)]));
        assert!(d.policies[0].v4.degraded_only);
        let d = plan(
            &cfg,
            &wans(&cfg, &[State::Degraded, State::Down, State::Up]),
            true,
        );
        assert_eq!(
            group(&d),
            Some(vec![(1102, 1)]),
            "up backup beats degraded primary"
        );
    }

    #[test]
    fn a_spent_quota_makes_a_wan_last_resort_only() {
        // wan2 is the better tier (metric 0 against 1) but metered out.
        let mut cfg = config(&[1, 1], 1);
        cfg.members[0].metric = 1;
        let mut views = wans(&cfg, &[State::Up, State::Up]);
        views[1].metered_out = true;
        let d = plan(&cfg, &views, true);
        assert_eq!(group(&d), Some(vec![(1100, 1)]));
        assert_eq!(d.policies[0].v4.slots, vec![(0, 1)]);
        // A degraded unmetered member still beats it.
        let mut views = wans(&cfg, &[State::Degraded, State::Up]);
        views[1].metered_out = true;
        assert_eq!(group(&plan(&cfg, &views, true)), Some(vec![(1100, 1)]));
        // The other member fails: the spent WAN carries new flows, and its table and
        // rules (pinned flows) were there all along.
        let mut views = wans(&cfg, &[State::Down, State::Up]);
        views[1].metered_out = true;
        let d = plan(&cfg, &views, true);
        assert_eq!(group(&d), Some(vec![(1101, 1)]));
        assert_eq!(d.policies[0].last_resort, None);
    }

    #[test]
    fn last_resort_when_nothing_is_usable() {
        let mut cfg = config(&[1, 1, 1], 1);
        let down = [
            State::Down,
            State::Held {
                until: crate::time::Instant::ZERO,
            },
            State::Disabled,
        ];
        for (lr, want) in [
            (LastResort::Unreachable, Some(RouteTarget::Unreachable)),
            (LastResort::Blackhole, Some(RouteTarget::Blackhole)),
            (LastResort::Default, None),
        ] {
            cfg.policies[0].last_resort = lr;
            let d = plan(&cfg, &wans(&cfg, &down), true);
            assert_eq!(group(&d), None);
            assert_eq!(balance_route(&d), want);
            assert_eq!(d.policies[0].last_resort, Some(lr));
        }
    }

    #[test]
    fn carrier_loss_drops_the_nexthop_and_no_link_means_no_route() {
        let cfg = config(&[1, 1], 1);
        let mut w = wans(&cfg, &[State::Up, State::NoCarrier]);
        w[1].link.as_mut().unwrap().carrier = false;
        let d = plan(&cfg, &w, true);
        assert!(!d
            .objects
            .iter()
            .any(|o| matches!(o, Object::Nexthop(n) if n.id == 1101)));
        // Without a link: only the terminal route and the oif rule remain for wan2.
        w[1].link = None;
        w[1].v4.addresses.clear();
        let d = plan(&cfg, &w, true);
        let t: Vec<&Object> = d
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Route(r) if r.table == 1101))
            .collect();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn mode_weights_steer_new_flows_and_never_empty_a_policy() {
        let cfg = config(&[3, 1, 1], 1);
        let w = wans(&cfg, &UP3);
        // wan2 alone for new flows; the group keeps every usable member.
        let eff = vec![HashMap::from([(0, 0), (1, 5), (2, 0)])];
        let d = plan_with(&cfg, &w, true, &eff);
        assert_eq!(d.policies[0].v4.slots, vec![(1, 5)]);
        assert_eq!(group(&d), Some(vec![(1100, 1), (1101, 5), (1102, 1)]));
        // The mode's only choice is down: configured weights, not an empty choice.
        let w = wans(&cfg, &[State::Up, State::Down, State::Up]);
        let d = plan_with(&cfg, &w, true, &eff);
        assert_eq!(d.policies[0].v4.slots, vec![(0, 3), (2, 1)]);
        // No weights (weighted mode, nothing measured): unchanged.
        let d = plan_with(&cfg, &w, true, &vec![HashMap::new()]);
        assert_eq!(d, plan(&cfg, &w, true));
    }

    #[test]
    fn big_weights_are_scaled_for_the_kernel() {
        let cfg = config(&[1000, 500, 1], 1);
        let d = plan(&cfg, &wans(&cfg, &UP3), true);
        assert_eq!(group(&d), Some(vec![(1100, 256), (1101, 128), (1102, 1)]));
    }

    #[test]
    fn classic_multipath_without_nexthop_objects() {
        let cfg = config(&[2, 1], 1);
        let d = plan(&cfg, &wans(&cfg, &[State::Up, State::Up]), false);
        assert!(!d.objects.iter().any(|o| matches!(o, Object::Nexthop(_))));
        match balance_route(&d) {
            Some(RouteTarget::Multipath(h)) => {
                assert_eq!(h.iter().map(|h| h.weight).collect::<Vec<_>>(), vec![2, 1])
            }
            other => panic!("{other:?}"),
        }
        let d = plan(&cfg, &wans(&cfg, &[State::Up, State::Down]), false);
        assert!(matches!(
            balance_route(&d),
            Some(RouteTarget::Via { ifindex: 10, .. })
        ));
    }

    #[test]
    fn disabled_interface_drains_but_keeps_its_table() {
        let mut cfg = config(&[1, 1], 1);
        cfg.interfaces[1].enabled = false;
        let d = plan(&cfg, &wans(&cfg, &[State::Up, State::Disabled]), true);
        assert_eq!(group(&d), Some(vec![(1100, 1)]));
        assert_eq!(d.policies[0].v4.slots, vec![(0, 1)]);
        // Pinned connections of the drained WAN still find their way out.
        assert!(d.objects.iter().any(|o| matches!(
            o,
            Object::Rule(Rule {
                selector: Selector::Fwmark {
                    mark: 0x200,
                    mask: 0x3f00
                },
                table: 1101,
                ..
            })
        )));
        assert!(d.objects.iter().any(|o| matches!(
            o,
            Object::Route(Route {
                table: 1101,
                target: RouteTarget::Via { .. },
                ..
            })
        )));
    }

    #[test]
    fn dual_stack_plans_each_family_with_its_own_ids() {
        let mut cfg = config(&[2, 1], 1);
        cfg.interfaces[0].family = crate::config::Family::Any;
        cfg.interfaces[1].family = crate::config::Family::Ipv6;
        let mut w = wans(&cfg, &[State::Up, State::Up]);
        // wan1's IPv6 gateway is link-local: usable without a global address.
        w[0].v6.addresses.clear();
        let d = plan(&cfg, &w, true);
        let v6: Vec<&Object> = d
            .objects
            .iter()
            .filter(|o| match o {
                Object::Nexthop(n) => n.family == Family::V6,
                Object::Route(r) => r.family == Family::V6,
                Object::Rule(r) => r.family == Family::V6,
            })
            .collect();
        // IPv6 nexthops after the table range, routes at the kernel's metric 1024.
        let group6 = crate::kernel::group_members(&d.objects, 1299)
            .map(|m| m.iter().map(|m| (m.id, m.weight)).collect::<Vec<_>>());
        assert_eq!(group6, Some(vec![(1200, 2), (1201, 1)]));
        assert!(v6.iter().any(|o| matches!(o, Object::Route(r)
            if r.table == 1199 && r.metric == 1024 && r.target == RouteTarget::Nexthop(1299))));
        // IPv4: only wan1 (wan2 is IPv6-only).
        assert_eq!(group(&d), Some(vec![(1100, 2)]));
        assert_eq!(d.policies[0].v4.active, vec![("wan1".to_string(), 2)]);
        assert_eq!(d.policies[0].v6.slots, vec![(0, 2), (1, 1)]);
        // Delegated prefixes and own addresses bind sources to their WAN.
        let from6: Vec<(String, u32)> = v6
            .iter()
            .filter_map(|o| match o {
                Object::Rule(Rule {
                    selector: Selector::From { addr, len },
                    table,
                    ..
                }) => Some((format!("{addr}/{len}"), *table)),
                _ => None,
            })
            .collect();
        assert_eq!(
            from6,
            [
                ("2001:db8:10::/48".to_string(), 1100),
                ("2001:db8:2::2/128".to_string(), 1101),
                ("2001:db8:20::/48".to_string(), 1101)
            ]
        );
        // No IPv4 objects for the IPv6-only WAN.
        assert!(!d.objects.iter().any(|o| matches!(o,
            Object::Rule(r) if r.family == Family::V4 && r.table == 1101)));
        // IPv6 down on every member: IPv6 falls to the last resort, IPv4 keeps wan1.
        cfg.policies[0].last_resort = LastResort::Unreachable;
        let mut w = wans(&cfg, &[State::Up, State::Down]);
        w[0].v6.gateway = None;
        let d = plan(&cfg, &w, true);
        assert_eq!(d.policies[0].last_resort, None);
        assert!(d.objects.iter().any(|o| matches!(o, Object::Route(r)
            if r.family == Family::V6 && r.table == 1199 && r.target == RouteTarget::Unreachable)));
        assert_eq!(group(&d), Some(vec![(1100, 2)]));
    }

    #[test]
    fn ipv4_only_config_has_no_ipv6_objects() {
        let cfg = config(&[1, 1], 1);
        let d = plan(&cfg, &wans(&cfg, &[State::Up, State::Up]), true);
        assert!(d.objects.iter().all(|o| match o {
            Object::Nexthop(n) => n.family == Family::V4,
            Object::Route(r) => r.family == Family::V4,
            Object::Rule(r) => r.family == Family::V4,
        }));
    }

    fn rule_list(d: &Desired) -> Vec<(u32, u32)> {
        d.objects
            .iter()
            .filter_map(|o| match o {
                Object::Rule(r) => Some((r.priority, r.table)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn use_policy_default_gets_a_mark_rule_into_main() {
        let mut cfg = config(&[1, 1], 1);
        assert!(!rule_list(&plan(&cfg, &wans(&cfg, &UP3[..2]), true)).contains(&(4050, 254)));
        cfg.rules.push(crate::config::Rule {
            name: "vpn".into(),
            family: crate::config::Family::Any,
            proto: crate::config::Proto::All,
            src_ip: Vec::new(),
            dest_ip: vec![Prefix {
                addr: ip("198.51.100.0"),
                len: 24,
            }
            .into()],
            src_port: Vec::new(),
            dest_port: Vec::new(),
            src_iface: None,
            ipset: None,
            sticky: false,
            timeout: crate::time::Duration::from_secs(600),
            use_policy: crate::config::UsePolicy::Default,
        });
        let d = plan(&cfg, &wans(&cfg, &UP3[..2]), true);
        // Ahead of the `from <wan address>` rules, and judged by no WAN's health.
        let main: Vec<&Rule> = d
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Rule(r) if r.priority == 4050 => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(main.len(), 1);
        assert_eq!(main[0].table, 254);
        assert_eq!(
            main[0].selector,
            Selector::Fwmark {
                mark: 0x2000,
                mask: 0x3f00
            }
        );
        let down = plan(&cfg, &wans(&cfg, &[State::Down, State::Down]), true);
        assert!(rule_list(&down).contains(&(4050, 254)));
        // Both families, for each family the WANs carry.
        cfg.interfaces[1].family = crate::config::Family::Any;
        let d = plan(&cfg, &wans(&cfg, &UP3[..2]), true);
        let families: Vec<Family> = d
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::Rule(r) if r.priority == 4050 => Some(r.family),
                _ => None,
            })
            .collect();
        assert_eq!(families, [Family::V4, Family::V6]);
    }

    #[test]
    fn default_policy_default_leaves_unmatched_traffic_to_main() {
        let mut cfg = config(&[1, 1], 1);
        cfg.globals.default_policy = crate::config::DEFAULT_POLICY.into();
        let d = plan(&cfg, &wans(&cfg, &UP3[..2]), true);
        let rules = rule_list(&d);
        assert!(!rules.iter().any(|(p, _)| *p == 4900), "{rules:?}");
        // The policy's table stays for rules that name it.
        assert!(rules.contains(&(4600, 1199)));
    }

    #[test]
    fn marks_fit_the_mask() {
        let m = Marks::new(0x3f00);
        assert_eq!(m.wan(0), Some(0x100));
        assert_eq!(m.wan(30), Some(0x1f00));
        assert_eq!(m.wan(31), None);
        assert_eq!(m.policy(0), Some(0x3f00));
        assert_eq!(m.policy(30), Some(0x2100));
        assert_eq!(m.policy(31), None);
        assert_eq!(m.main(), Some(0x2000));
        let m = Marks::new(0xff);
        assert_eq!(
            (m.wan(0), m.policy(0), m.main()),
            (Some(1), Some(0xff), Some(0x80))
        );
    }
}
