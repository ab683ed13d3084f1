//! The routing plan: (config, per-WAN health and links) → the kernel objects uplinkd
//! wants. Pure; the result is a value, so "did anything change?" is `==` (STYLE §4).
//!
//! Layout (IPv4; `T` = `table_first`, `L` = `table_last`, `P` = `rule_priority`):
//!
//! ```text
//! WAN slot i      table T+i:  default via <gw> dev <wan>          (while the link is up)
//!                             unreachable default metric 2^32-1    (terminal: never fall
//!                                                                   through to another WAN)
//!                 nexthop T+i: via <gw> dev <wan>                  (while it has carrier)
//! policy j        nexthop L-j: group of the usable members of the best tier, by weight
//!                 table L-j:   default nhid L-j | unreachable | blackhole | nothing
//! rules           P        lookup main suppress_prefixlength 0   LAN and connected win
//!                 P+100+i  from <wan address> lookup T+i          router traffic sourced
//!                 P+200+i  oif <wan> lookup T+i                   probes, bound sockets
//!                 P+900    lookup L-<default policy>              everything else
//! ```
//!
//! The `main suppress_prefixlength 0` rule comes first (the validated layout had it after
//! the per-WAN rules): traffic from a WAN address to a LAN host, such as the router
//! answering a LAN client that addressed its WAN IP, must take the connected route, not
//! the WAN's default. Probes are unaffected: a socket bound to a WAN device matches only
//! routes through that device, and the main table's default routes are suppressed.

use std::net::IpAddr;

use crate::config::{Config, Interface, LastResort, Policy, RULE_PRIORITY_SPAN};
use crate::health::{State, Usability};
use crate::kernel::{
    Family, GroupMember, MultipathHop, Nexthop, NexthopKind, Object, Ownership, Route, RouteTarget,
    Rule, Selector,
};

/// Offsets within our rule priority range.
pub const PRIO_MAIN: u32 = 0;
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
    /// The gateway in use: from the config, else discovered. `Some(None)` is a
    /// point-to-point link routed by device alone; `None` means no route is known.
    pub gateway: Option<Option<IpAddr>>,
    /// The WAN's own (source) address, if it has one.
    pub address: Option<IpAddr>,
    pub state: State,
    /// Run-time weight override (`set_weight`), else the member's configured weight.
    pub weight: Option<u16>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub ifindex: u32,
    pub up: bool,
    pub carrier: bool,
}

/// A policy's resolved members, for logs, status and the nft data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPlan {
    pub name: String,
    /// (interface name, kernel weight) of the members carrying new traffic.
    pub active: Vec<(String, u16)>,
    /// The same members as (slot, configured weight), for new-flow selection.
    pub slots: Vec<(u32, u16)>,
    /// The mark that routes into this policy's table (last resort), if it has one.
    pub mark: Option<u32>,
    /// Whether the members in use are only degraded ones.
    pub degraded_only: bool,
    /// Set when no member is usable and the last resort applies.
    pub last_resort: Option<LastResort>,
}

/// Everything uplinkd wants in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Sorted, without duplicates.
    pub objects: Vec<Object>,
    pub policies: Vec<PolicyPlan>,
}

/// The tags that make our objects ours, derived from the globals.
pub fn ownership(cfg: &Config) -> Ownership {
    let g = &cfg.globals;
    Ownership {
        protocol: g.route_proto,
        tables: g.table_first..=g.table_last,
        priorities: g.rule_priority..=g.rule_priority + RULE_PRIORITY_SPAN - 1,
        nexthop_ids: g.table_first..=g.table_last,
    }
}

/// Connection-pinning marks: values inside `fwmark_mask`. WAN slot `s` gets value
/// `s + 1`; policy `j` gets `max - j` (used for its last resort only); 0 is "not pinned".
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
        (v > self.max / 2).then(|| v << self.shift)
    }
}

/// The table (and nexthop id) of WAN slot `slot`.
pub fn wan_table(cfg: &Config, slot: u32) -> u32 {
    cfg.globals.table_first + slot
}

/// The table (and nexthop group id) of the policy at `index` in the config.
pub fn policy_table(cfg: &Config, index: usize) -> u32 {
    cfg.globals.table_last - index as u32
}

impl Wan<'_> {
    /// The route out of this WAN, if the link can carry one now.
    fn via(&self) -> Option<(u32, Option<IpAddr>)> {
        let link = self.link?;
        let gateway = self.gateway?;
        // A gateway needs a connected route on the device, which comes with its address.
        if !link.up || (gateway.is_some() && self.address.is_none()) {
            return None;
        }
        Some((link.ifindex, gateway))
    }

    fn carries_v4(&self) -> bool {
        self.cfg.family != crate::config::Family::Ipv6
            && self.gateway.flatten().map_or(true, |g| g.is_ipv4())
    }
}

/// Compute the desired kernel objects.
pub fn plan(cfg: &Config, wans: &[Wan], nexthops_supported: bool) -> Desired {
    let g = &cfg.globals;
    let v4 = Family::V4;
    let mut objects = Vec::new();
    let rule = |offset: u32, selector: Selector, table: u32, suppress: Option<u8>| {
        Object::Rule(Rule {
            family: v4,
            priority: g.rule_priority + offset,
            selector,
            table,
            suppress_prefixlength: suppress,
        })
    };
    let default_route = |table: u32, metric: u32, target: RouteTarget| {
        Object::Route(Route {
            family: v4,
            table,
            dst: v4.any(),
            dst_len: 0,
            metric,
            target,
        })
    };

    objects.push(rule(PRIO_MAIN, Selector::All, 254, Some(0)));

    let marks = Marks::new(g.fwmark_mask);
    // Disabled WANs keep their table and rules: disabling drains (no new flows), and the
    // connections already pinned to the WAN keep running until they end.
    for wan in wans.iter().filter(|w| w.carries_v4()) {
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
        if let Some((ifindex, gateway)) = wan.via() {
            objects.push(default_route(
                table,
                0,
                RouteTarget::Via { ifindex, gateway },
            ));
            if nexthops_supported && wan.link.is_some_and(|l| l.carrier) {
                objects.push(Object::Nexthop(Nexthop {
                    id: table,
                    family: v4,
                    kind: NexthopKind::Via { ifindex, gateway },
                }));
            }
        }
        if let Some(addr @ IpAddr::V4(_)) = wan.address {
            let from = Selector::From { addr, len: 32 };
            objects.push(rule(PRIO_FROM + wan.slot, from, table, None));
        }
        let oif = Selector::Oif(wan.cfg.device.clone());
        objects.push(rule(PRIO_OIF + wan.slot, oif, table, None));
    }

    let mut policies = Vec::new();
    for (index, policy) in cfg.policies.iter().enumerate() {
        let is_default = policy.name == g.default_policy;
        let table = policy_table(cfg, index);
        let chosen = choose_members(cfg, policy, wans);
        let slots: Vec<(u32, u16)> = chosen.members.iter().map(|(w, wt)| (w.slot, *wt)).collect();
        let mut members: Vec<(&Wan, u16)> = chosen.members;
        scale_weights(&mut members);
        let mark = marks.policy(index);
        let plan = PolicyPlan {
            name: policy.name.clone(),
            active: members
                .iter()
                .map(|(w, weight)| (w.cfg.name.clone(), *weight))
                .collect(),
            slots,
            mark,
            degraded_only: chosen.degraded_only,
            last_resort: members.is_empty().then_some(policy.last_resort),
        };
        // Every policy's table holds its last resort while no member is usable, reached
        // by the policy's mark. The default policy's table also carries all unmarked
        // traffic through its group.
        if let Some(mark) = mark {
            let sel = Selector::Fwmark {
                mark,
                mask: marks.mask,
            };
            objects.push(rule(PRIO_POLICY_MARK + index as u32, sel, table, None));
        }
        match (members.is_empty(), nexthops_supported) {
            (true, _) => match policy.last_resort {
                LastResort::Unreachable => {
                    objects.push(default_route(table, 0, RouteTarget::Unreachable))
                }
                LastResort::Blackhole => {
                    objects.push(default_route(table, 0, RouteTarget::Blackhole))
                }
                LastResort::Default => {}
            },
            (false, _) if !is_default => {}
            (false, true) => {
                let group = members
                    .iter()
                    .map(|(w, weight)| GroupMember {
                        id: wan_table(cfg, w.slot),
                        weight: *weight,
                    })
                    .collect();
                objects.push(Object::Nexthop(Nexthop {
                    id: table,
                    family: v4,
                    kind: NexthopKind::Group(group),
                }));
                objects.push(default_route(table, 0, RouteTarget::Nexthop(table)));
            }
            (false, false) => {
                let mut hops: Vec<MultipathHop> = members
                    .iter()
                    .filter_map(|(w, weight)| {
                        let (ifindex, gateway) = w.via()?;
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
                objects.push(default_route(table, 0, target));
            }
        }
        if is_default {
            objects.push(rule(PRIO_POLICY, Selector::All, table, None));
        }
        policies.push(plan);
    }

    objects.sort();
    objects.dedup();
    Desired { objects, policies }
}

struct Chosen<'w, 'a> {
    members: Vec<(&'w Wan<'a>, u16)>,
    degraded_only: bool,
}

/// mwan3's tier rule: the lowest metric with a usable member wins and is balanced by
/// weight. Degraded members are used only when no member of the policy is fully up.
fn choose_members<'w, 'a>(cfg: &Config, policy: &Policy, wans: &'w [Wan<'a>]) -> Chosen<'w, 'a> {
    let candidates: Vec<(&Wan, u16, u16, Usability)> = policy
        .use_member
        .iter()
        .filter_map(|m| cfg.member(m))
        .filter_map(|m| {
            let wan = wans.iter().find(|w| w.cfg.name == m.interface)?;
            let routable = wan.cfg.enabled && wan.carries_v4() && wan.via().is_some();
            let usability = if routable {
                wan.state.usability()
            } else {
                Usability::None
            };
            Some((wan, m.metric, wan.weight.unwrap_or(m.weight), usability))
        })
        .filter(|c| c.3 != Usability::None)
        .collect();
    for class in [Usability::Full, Usability::Fallback] {
        let Some(best) = candidates
            .iter()
            .filter(|c| c.3 == class)
            .map(|c| c.1)
            .min()
        else {
            continue;
        };
        let mut members: Vec<(&Wan, u16)> = candidates
            .iter()
            .filter(|c| c.3 == class && c.1 == best)
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
                gateway: Some(Some(ip(&format!("10.20.{}.1", i + 1)))),
                address: Some(ip(&format!("10.20.{}.2", i + 1))),
                state: states[i],
                weight: None,
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
        assert_eq!(d.policies[0].active.len(), 3);
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
        assert!(d.policies[0].degraded_only);
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
        w[1].address = None;
        let d = plan(&cfg, &w, true);
        let t: Vec<&Object> = d
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Route(r) if r.table == 1101))
            .collect();
        assert_eq!(t.len(), 1);
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
        assert_eq!(d.policies[0].slots, vec![(0, 1)]);
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
    fn marks_fit_the_mask() {
        let m = Marks::new(0x3f00);
        assert_eq!(m.wan(0), Some(0x100));
        assert_eq!(m.wan(30), Some(0x1f00));
        assert_eq!(m.wan(31), None);
        assert_eq!(m.policy(0), Some(0x3f00));
        assert_eq!(m.policy(30), Some(0x2100));
        assert_eq!(m.policy(31), Some(0x2000));
        assert_eq!(m.policy(32), None);
        let m = Marks::new(0xff);
        assert_eq!((m.wan(0), m.policy(0)), (Some(1), Some(0xff)));
    }
}
