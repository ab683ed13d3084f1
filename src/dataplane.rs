//! The nftables half of the plan: uplinkd's own table (`inet uplinkd`) that chooses a WAN
//! for every new connection and pins it there for the connection's life. Pure: it renders
//! text; `sys::nft` loads it as one atomic transaction.
//!
//! ```text
//! prerouting (mangle) / output (route, mangle):
//!   ct mark has a WAN's pin  -> copy it to the packet mark, done      (established flows)
//!   not a new connection     -> leave alone
//!   arrived on a WAN         -> pin to that WAN                        (inbound, port forwards)
//!   rules, first match wins  -> policy chain, or sticky chain, or pin_main (`default`)
//!   otherwise                -> the default policy's chain (none for `default_policy
//!                               default`: unmarked, the main table routes it)
//! policy chain: numgen random over the usable members of its best tier, by weight -> pin
//! pin chain:    ct mark and packet mark := the WAN's mark; `fwmark M/mask lookup <wan table>`
//! pin_main:     the same with the main mark; `fwmark M/mask lookup main`
//! ```
//!
//! Why the choice is made here rather than by the kernel's multipath hash: the pin must be
//! known at the first packet to be saved in the conntrack mark, and a weight change or a
//! member leaving must not move any established flow. The kernel's nexthop group still
//! carries traffic that is not marked (connections older than uplinkd).
//!
//! Only marks within `fwmark_mask` are touched (`and ~mask or value`), so other users of
//! the mark bits keep theirs.

use std::fmt::Write;

use crate::config::{AddrMatch, Config, Family, LastResort, PortRange, Prefix, Proto, UsePolicy};
use crate::kernel::Family as KFamily;
use crate::plan::{Marks, PolicyPlan};

pub const TABLE: &str = "uplinkd";

/// What the data plane needs to know about one WAN (index-aligned with the config's
/// interfaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanInfo {
    pub slot: u32,
    /// `None` while a netifd-followed WAN has no device yet.
    pub device: Option<String>,
    /// The families the WAN carries.
    pub v4: bool,
    pub v6: bool,
    /// Delegated IPv6 prefixes: connections from them are pinned to this WAN.
    pub prefixes6: Vec<Prefix>,
}

impl WanInfo {
    fn carries(&self, f: KFamily) -> bool {
        f.pick(self.v4, self.v6)
    }
}

/// A chain: its name, its hook line for base chains, and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

/// A set uplinkd declares: a sticky set it owns, or a user set a rule matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub spec: String,
    /// Sticky sets are uplinkd's (deleted when unused); user sets are only created when
    /// missing, never changed or deleted.
    pub owned: bool,
}

/// The whole table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
    pub sets: Vec<Set>,
}

const PRE_HOOK: &str = "type filter hook prerouting priority mangle; policy accept;";
const OUT_HOOK: &str = "type route hook output priority mangle; policy accept;";
/// Prefix of the sticky sets uplinkd owns.
const STICKY: &str = "sticky_";

fn set_mark(what: &str, mask: u32, value: u32) -> String {
    format!("{what} set {what} and {:#x} or {value:#x}", !mask)
}

/// `ip` / `ip6`, as nft spells an address family's header.
fn ip(f: KFamily) -> &'static str {
    f.pick("ip", "ip6")
}

fn nfproto(f: KFamily) -> &'static str {
    f.pick("ipv4", "ipv6")
}

const FAMILIES: [KFamily; 2] = [KFamily::V4, KFamily::V6];

/// The rule lines for what `render` makes of each carried family: one line when only
/// one family is carried or both render alike, else one per family, restricted to it.
fn per_family(carried: [bool; 2], render: impl Fn(KFamily) -> Option<String>) -> Vec<String> {
    per_family_many(carried, |f| render(f).map(|t| vec![t]))
}

/// `per_family` for a rendering of several lines per family: the lines are shared when
/// both families render the same ones.
fn per_family_many(
    carried: [bool; 2],
    render: impl Fn(KFamily) -> Option<Vec<String>>,
) -> Vec<String> {
    let texts: Vec<(KFamily, Option<Vec<String>>)> = FAMILIES
        .into_iter()
        .filter(|f| carried[*f as usize])
        .map(|f| (f, render(f)))
        .collect();
    match texts.as_slice() {
        [(_, t)] => t.iter().flatten().cloned().collect(),
        [(_, Some(a)), (_, Some(b))] if a == b => a.clone(),
        _ => texts
            .into_iter()
            .flat_map(|(f, t)| {
                t.into_iter()
                    .flatten()
                    .map(move |t| format!("meta nfproto {} {t}", nfproto(f)))
            })
            .collect(),
    }
}

/// Render the table for the current plan.
pub fn ruleset(cfg: &Config, policies: &[PolicyPlan], wans: &[WanInfo]) -> Ruleset {
    let marks = Marks::new(cfg.globals.fwmark_mask);
    let mask = marks.mask;
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    let pinned: Vec<(&WanInfo, u32)> = wans
        .iter()
        .filter_map(|w| Some((w, marks.wan(w.slot)?)))
        .collect();
    let carried = FAMILIES.map(|f| wans.iter().any(|w| w.carries(f)));
    // `use_policy default`: pinned to the main table (see plan::PRIO_MAIN_MARK).
    let main = marks
        .main()
        .filter(|_| cfg.rules.iter().any(|r| r.use_policy == UsePolicy::Default));

    if let Some(mark) = main {
        chains.push(Chain {
            name: "pin_main".into(),
            hook: None,
            rules: vec![format!(
                "{} {}",
                set_mark("ct mark", mask, mark),
                set_mark("meta mark", mask, mark)
            )],
        });
        chains.push(Chain {
            name: "restore_main".into(),
            hook: None,
            rules: vec![format!("{} accept", set_mark("meta mark", mask, mark))],
        });
    }
    for (w, mark) in &pinned {
        chains.push(Chain {
            name: format!("pin_{}", w.slot),
            hook: None,
            rules: vec![format!(
                "{} {}",
                set_mark("ct mark", mask, *mark),
                set_mark("meta mark", mask, *mark)
            )],
        });
        chains.push(Chain {
            name: format!("restore_{}", w.slot),
            hook: None,
            rules: vec![format!("{} accept", set_mark("meta mark", mask, *mark))],
        });
    }

    // The head shared by prerouting and output. A family no WAN carries is left alone.
    let mut head: Vec<String> = FAMILIES
        .into_iter()
        .filter(|f| !carried[*f as usize])
        .map(|f| format!("meta nfproto {} return", nfproto(f)))
        .collect();
    if !pinned.is_empty() || main.is_some() {
        let map: Vec<String> = pinned
            .iter()
            .map(|(w, m)| format!("{m:#x} : goto restore_{}", w.slot))
            .chain(main.map(|m| format!("{m:#x} : goto restore_main")))
            .collect();
        head.push(format!(
            "ct mark and {mask:#x} vmap {{ {} }}",
            map.join(", ")
        ));
    }
    head.push("ct state != new return".into());

    let mut pre = head.clone();
    // Inbound connections (port forwards, servers on the router) stay on their WAN.
    pre.extend(per_family(carried, |f| {
        let map: Vec<String> = pinned
            .iter()
            .filter(|(w, _)| w.carries(f))
            .filter_map(|(w, _)| Some(format!("\"{}\" : goto pin_{}", w.device.as_ref()?, w.slot)))
            .collect();
        (!map.is_empty()).then(|| format!("iifname vmap {{ {} }}", map.join(", ")))
    }));
    pre.push("fib daddr type { local, broadcast, multicast } return".into());
    pre.push("jump select".into());
    chains.push(Chain {
        name: "prerouting".into(),
        hook: Some(PRE_HOOK),
        rules: pre,
    });

    let mut out = head;
    // Already steered: uplinkd's own probes (SO_MARK) and anything else that marks.
    out.push(format!("meta mark and {mask:#x} != 0 return"));
    out.push("oifname \"lo\" return".into());
    out.push("jump select".into());
    chains.push(Chain {
        name: "output".into(),
        hook: Some(OUT_HOOK),
        rules: out,
    });

    // Policies.
    for (j, p) in policies.iter().enumerate() {
        let rules = per_family(carried, |f| {
            let slots = &p.members(f).slots;
            let total: u32 = slots.iter().map(|(_, w)| u32::from(*w).max(1)).sum();
            match slots.as_slice() {
                // No member of this family: its policy table holds the last resort,
                // reached by the policy's mark. Not saved in conntrack: the connection
                // is retried when a member comes back.
                [] => {
                    let lr = cfg.policy(&p.name).map(|c| c.last_resort);
                    match (p.mark, lr) {
                        (Some(mark), Some(lr)) if lr != LastResort::Default => {
                            Some(set_mark("meta mark", mask, mark))
                        }
                        _ => None,
                    }
                }
                [(slot, _)] => Some(format!("goto pin_{slot}")),
                slots => {
                    let mut at = 0u32;
                    let map: Vec<String> = slots
                        .iter()
                        .map(|(slot, w)| {
                            let w = u32::from(*w).max(1);
                            let range = if w == 1 {
                                format!("{at}")
                            } else {
                                format!("{at}-{}", at + w - 1)
                            };
                            at += w;
                            format!("{range} : goto pin_{slot}")
                        })
                        .collect();
                    // round_robin: a counter instead of a random number, so the
                    // members take new flows in turn (each weight times).
                    let gen = match cfg.policy(&p.name).map(|c| c.mode) {
                        Some(crate::config::Mode::RoundRobin) => "inc",
                        _ => "random",
                    };
                    Some(format!(
                        "numgen {gen} mod {total} vmap {{ {} }}",
                        map.join(", ")
                    ))
                }
            }
        });
        chains.push(Chain {
            name: format!("policy_{j}"),
            hook: None,
            rules,
        });
    }

    let mut select = Vec::new();
    // A delegated IPv6 prefix belongs to its WAN: its ISP routes it back only there.
    for w in wans.iter().filter(|w| w.v6 && !w.prefixes6.is_empty()) {
        if marks.wan(w.slot).is_some() {
            let list: Vec<String> = w
                .prefixes6
                .iter()
                .map(|p| format!("{}/{}", p.addr, p.len))
                .collect();
            select.push(format!(
                "ip6 saddr {{ {} }} goto pin_{}",
                list.join(", "),
                w.slot
            ));
        }
    }
    // Rules, first match wins.
    for (r, rule) in cfg.rules.iter().enumerate() {
        if let Some(set) = &rule.ipset {
            let f = if rule.family == Family::Ipv6 {
                KFamily::V6
            } else {
                KFamily::V4
            };
            if carried[f as usize] && !sets.iter().any(|s: &Set| &s.name == set) {
                sets.push(Set {
                    name: set.clone(),
                    spec: format!("type {}_addr; flags interval;", nfproto(f)),
                    owned: false,
                });
            }
        }
        let target = match &rule.use_policy {
            UsePolicy::Default if main.is_some() => "goto pin_main".to_string(),
            // No room in the mask: unmarked, so the policy routes it (check refuses this).
            UsePolicy::Default => "accept".to_string(),
            UsePolicy::Policy(name) => {
                let Some(j) = policies.iter().position(|p| &p.name == name) else {
                    continue;
                };
                if !rule.sticky {
                    format!("goto policy_{j}")
                } else {
                    let chain = format!("sticky_{r}");
                    let secs = rule.timeout.as_secs().max(1);
                    let members = policy_slots(cfg, name, wans);
                    let set_name = |slot: u32, f: KFamily| match f {
                        KFamily::V4 => format!("{STICKY}{r}_{slot}_{secs}"),
                        KFamily::V6 => format!("{STICKY}{r}_{slot}_{secs}_6"),
                    };
                    let families: Vec<KFamily> = FAMILIES
                        .into_iter()
                        .filter(|f| carried[*f as usize] && rule.family.carries(*f))
                        .collect();
                    let mut rules = Vec::new();
                    for f in &families {
                        for (slot, _) in &policies[j].members(*f).slots {
                            // A hit refreshes the entry: the timeout runs from the last
                            // new connection, not the first.
                            let set = set_name(*slot, *f);
                            let a = ip(*f);
                            rules.push(format!(
                                "{a} saddr @{set} update @{set} {{ {a} saddr }} goto pin_{slot}"
                            ));
                        }
                    }
                    rules.push(format!("jump policy_{j}"));
                    for f in &families {
                        for slot in &members {
                            let Some(mark) = marks.wan(*slot) else {
                                continue;
                            };
                            let only = if families.len() > 1 {
                                format!("meta nfproto {} ", nfproto(*f))
                            } else {
                                String::new()
                            };
                            rules.push(format!(
                                "{only}meta mark and {mask:#x} == {mark:#x} update @{} {{ {} saddr }}",
                                set_name(*slot, *f),
                                ip(*f)
                            ));
                            sets.push(Set {
                                name: set_name(*slot, *f),
                                spec: format!(
                                    "type {}_addr; flags dynamic,timeout; timeout {secs}s;",
                                    nfproto(*f)
                                ),
                                owned: true,
                            });
                        }
                    }
                    chains.push(Chain {
                        name: chain.clone(),
                        hook: None,
                        rules,
                    });
                    format!("goto {chain}")
                }
            }
        };
        // Alternatives of one rule all have the same final verdict (a goto or accept), so
        // trying them in a row keeps first-match-wins.
        select.extend(per_family_many(carried, |f| {
            let alternatives = matchers(rule, f)?;
            Some(alternatives.iter().map(|m| join(m, &target)).collect())
        }));
    }
    if let Some(j) = policies
        .iter()
        .position(|p| p.name == cfg.globals.default_policy)
    {
        select.push(format!("goto policy_{j}"));
    }
    chains.push(Chain {
        name: "select".into(),
        hook: None,
        rules: select,
    });
    Ruleset { chains, sets }
}

/// Slots of every member a policy lists (usable or not): sticky sets exist for all.
fn policy_slots(cfg: &Config, policy: &str, wans: &[WanInfo]) -> Vec<u32> {
    let Some(p) = cfg.policy(policy) else {
        return Vec::new();
    };
    let mut slots: Vec<u32> = p
        .use_member
        .iter()
        .filter_map(|m| cfg.member(m))
        .filter_map(|m| {
            let i = cfg.interfaces.iter().position(|i| i.name == m.interface)?;
            wans.get(i).map(|w| w.slot)
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// The alternatives of one address list for family `f`, each an nft match: one set of
/// all its prefixes, then one masked comparison per masked entry (nft sets hold prefixes
/// and ranges, not masks). Empty if the list has no entry of that family.
fn addr_alternatives(list: &[AddrMatch], f: KFamily, dir: &str) -> Vec<String> {
    let a = ip(f);
    let of = list.iter().filter(|p| KFamily::of(&p.addr()) == f);
    let prefixes: Vec<String> = of
        .clone()
        .filter_map(|p| match p {
            AddrMatch::Prefix(p) => Some(format!("{}/{}", p.addr, p.len)),
            AddrMatch::Masked { .. } => None,
        })
        .collect();
    let mut out = Vec::new();
    if !prefixes.is_empty() {
        out.push(format!("{a} {dir} {{ {} }}", prefixes.join(", ")));
    }
    for p in of {
        if let AddrMatch::Masked { addr, mask } = p {
            out.push(format!("{a} {dir} & {mask} == {addr}"));
        }
    }
    out
}

fn ports(list: &[PortRange]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|p| {
            if p.first == p.last {
                p.first.to_string()
            } else {
                format!("{}-{}", p.first, p.last)
            }
        })
        .collect();
    format!("{{ {} }}", v.join(", "))
}

/// The match expressions of a rule for family `f`, as alternatives: the rule matches
/// when any of them does. One unless an address list has masked entries (then one per
/// combination of a source and a destination alternative, in list order). `None` if it
/// can never match that family (another `family`, address lists of the other family
/// only). A rule's `ipset` is of the rule's family: IPv4 unless `family ipv6`.
fn matchers(rule: &crate::config::Rule, f: KFamily) -> Option<Vec<String>> {
    if !rule.family.carries(f) {
        return None;
    }
    let mut before = String::new();
    if let Some(dev) = &rule.src_iface {
        before = format!("iifname \"{dev}\"");
    }
    let mut alternatives = vec![before];
    for (list, dir) in [(&rule.src_ip, "saddr"), (&rule.dest_ip, "daddr")] {
        if list.is_empty() {
            continue;
        }
        let these = addr_alternatives(list, f, dir);
        if these.is_empty() {
            return None;
        }
        alternatives = alternatives
            .iter()
            .flat_map(|a| these.iter().map(move |t| join(a, t)))
            .collect();
    }
    let mut m = Vec::new();
    if let Some(set) = &rule.ipset {
        let set_family = if rule.family == Family::Ipv6 {
            KFamily::V6
        } else {
            KFamily::V4
        };
        if set_family != f {
            return None;
        }
        m.push(format!("{} daddr @{set}", ip(f)));
    }
    let has_ports = !rule.src_port.is_empty() || !rule.dest_port.is_empty();
    match rule.proto {
        Proto::All if has_ports => m.push("meta l4proto { tcp, udp }".into()),
        Proto::All => {}
        Proto::Tcp => m.push("meta l4proto tcp".into()),
        Proto::Udp => m.push("meta l4proto udp".into()),
        Proto::Icmp if f == KFamily::V6 => m.push("meta l4proto ipv6-icmp".into()),
        Proto::Icmp => m.push("meta l4proto icmp".into()),
        Proto::Number(n) => m.push(format!("meta l4proto {n}")),
    }
    if !rule.src_port.is_empty() {
        m.push(format!("th sport {}", ports(&rule.src_port)));
    }
    if !rule.dest_port.is_empty() {
        m.push(format!("th dport {}", ports(&rule.dest_port)));
    }
    let rest = m.join(" ");
    Some(alternatives.iter().map(|a| join(a, &rest)).collect())
}

/// `a b`, without a space where one of them is empty.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a} {b}"),
    }
}

/// What is in the kernel's copy of the table, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    pub chains: Vec<String>,
    pub sets: Vec<String>,
}

impl Ruleset {
    /// One nft transaction that turns `existing` into this ruleset. Every chain is
    /// flushed and refilled; chains and sticky sets no longer wanted are deleted; sets
    /// (their elements: sticky sources, dnsmasq's addresses) otherwise survive.
    pub fn script(&self, existing: &Existing) -> String {
        let t = format!("inet {TABLE}");
        let mut s = format!("add table {t}\n");
        for c in &existing.chains {
            let _ = writeln!(s, "flush chain {t} {c}");
        }
        for c in &existing.chains {
            if !self.chains.iter().any(|w| &w.name == c) {
                let _ = writeln!(s, "delete chain {t} {c}");
            }
        }
        for set in &existing.sets {
            if set.starts_with(STICKY) && !self.sets.iter().any(|w| &w.name == set) {
                let _ = writeln!(s, "delete set {t} {set}");
            }
        }
        for set in &self.sets {
            if set.owned || !existing.sets.contains(&set.name) {
                let _ = writeln!(s, "add set {t} {} {{ {} }}", set.name, set.spec);
            }
        }
        for c in &self.chains {
            match c.hook {
                Some(hook) => {
                    let _ = writeln!(s, "add chain {t} {} {{ {hook} }}", c.name);
                }
                None => {
                    let _ = writeln!(s, "add chain {t} {}", c.name);
                }
            }
        }
        for c in &self.chains {
            for r in &c.rules {
                let _ = writeln!(s, "add rule {t} {} {r}", c.name);
            }
        }
        s
    }
}

/// The table as `uplinkd check` renders it: every enabled WAN up on every family it is
/// configured for, on its configured device (a WAN that follows netifd stands in as
/// `netifd<slot>`), so that every chain, set and rule the config can produce is in it.
pub fn check_ruleset(cfg: &Config) -> Ruleset {
    use crate::plan::{self, LinkView, Path};
    let devices: Vec<String> = cfg
        .interfaces
        .iter()
        .enumerate()
        .map(|(slot, i)| match i.device.is_empty() {
            true => format!("netifd{slot}"),
            false => i.device.clone(),
        })
        .collect();
    let path = |i: &crate::config::Interface, f: KFamily| Path {
        // A point-to-point route: needs neither gateway nor address.
        gateway: i.family.carries(f).then_some(None),
        addresses: Vec::new(),
        prefixes: match f {
            KFamily::V4 => Vec::new(),
            KFamily::V6 => i.ip6prefix.clone(),
        },
    };
    let views: Vec<plan::Wan> = cfg
        .interfaces
        .iter()
        .enumerate()
        .map(|(slot, i)| plan::Wan {
            cfg: i,
            slot: slot as u32,
            link: Some(LinkView {
                ifindex: slot as u32 + 1,
                up: true,
                carrier: true,
            }),
            v4: path(i, KFamily::V4),
            v6: path(i, KFamily::V6),
            state: match i.enabled {
                true => crate::health::State::Up,
                false => crate::health::State::Disabled,
            },
            weight: None,
            metered_out: false,
        })
        .collect();
    let desired = plan::plan(cfg, &views, true);
    let wans: Vec<WanInfo> = cfg
        .interfaces
        .iter()
        .zip(devices)
        .enumerate()
        .map(|(slot, (i, device))| WanInfo {
            slot: slot as u32,
            device: Some(device),
            v4: i.family.carries(KFamily::V4),
            v6: i.family.carries(KFamily::V6),
            prefixes6: i.ip6prefix.clone(),
        })
        .collect();
    ruleset(cfg, &desired.policies, &wans)
}

/// The transaction that removes the table (at exit).
pub fn delete_script() -> String {
    format!("delete table inet {TABLE}\n")
}

/// Whether a set of our table is one of uplinkd's own (sticky) sets.
pub fn owned_set(name: &str) -> bool {
    name.starts_with(STICKY)
}

/// The transaction that removes what is ours at exit: every chain and our sticky sets.
/// Any other set (dnsmasq's `nftset=`, one a rule's `ipset` names) keeps its elements
/// across stop, restart and upgrade, so the table itself goes only when no such set is
/// left in it.
pub fn stop_script(existing: &Existing) -> String {
    if existing.sets.iter().all(|s| owned_set(s)) {
        return delete_script();
    }
    let t = format!("inet {TABLE}");
    // Flushed first: a chain another one jumps to can only go once no rule refers to it.
    let mut s = String::new();
    for c in &existing.chains {
        let _ = writeln!(s, "flush chain {t} {c}");
    }
    for c in &existing.chains {
        let _ = writeln!(s, "delete chain {t} {c}");
    }
    for set in existing.sets.iter().filter(|s| owned_set(s)) {
        let _ = writeln!(s, "delete set {t} {set}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LastResort, Rule};
    use crate::testutil::{config, ip, policy_plan, wan_infos as wans};
    use crate::time::Duration;

    fn policy(name: &str, slots: &[(u32, u16)]) -> PolicyPlan {
        policy_plan(
            name,
            slots,
            slots.is_empty().then_some(LastResort::Unreachable),
        )
    }

    fn chain<'a>(r: &'a Ruleset, name: &str) -> &'a [String] {
        &r.chains
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no chain {name}"))
            .rules
    }

    #[test]
    fn weighted_choice_pins_and_restores() {
        let cfg = config(&[3, 1, 1], 1);
        let r = ruleset(
            &cfg,
            &[policy("balanced", &[(0, 3), (1, 1), (2, 1)])],
            &wans(3),
        );
        assert_eq!(
            chain(&r, "policy_0"),
            ["numgen random mod 5 vmap { 0-2 : goto pin_0, 3 : goto pin_1, 4 : goto pin_2 }"]
        );
        assert_eq!(
            chain(&r, "pin_1"),
            ["ct mark set ct mark and 0xffffc0ff or 0x200 meta mark set meta mark and 0xffffc0ff or 0x200"]
        );
        let pre = chain(&r, "prerouting");
        assert!(pre.contains(&"ct mark and 0x3f00 vmap { 0x100 : goto restore_0, 0x200 : goto restore_1, 0x300 : goto restore_2 }".to_string()));
        assert!(pre.contains(
            &"iifname vmap { \"wan1\" : goto pin_0, \"wan2\" : goto pin_1, \"wan3\" : goto pin_2 }"
                .to_string()
        ));
        assert_eq!(chain(&r, "select"), ["goto policy_0"]);
        assert!(chain(&r, "output").contains(&"meta mark and 0x3f00 != 0 return".to_string()));
    }

    #[test]
    fn round_robin_takes_members_in_turn() {
        let mut cfg = config(&[2, 1], 1);
        cfg.policies[0].mode = crate::config::Mode::RoundRobin;
        let r = ruleset(&cfg, &[policy("balanced", &[(0, 2), (1, 1)])], &wans(2));
        assert_eq!(
            chain(&r, "policy_0"),
            ["numgen inc mod 3 vmap { 0-1 : goto pin_0, 2 : goto pin_1 }"]
        );
    }

    #[test]
    fn no_member_means_last_resort_mark_or_nothing() {
        let mut cfg = config(&[1], 1);
        cfg.policies[0].last_resort = LastResort::Unreachable;
        let r = ruleset(&cfg, &[policy("balanced", &[])], &wans(1));
        assert_eq!(
            chain(&r, "policy_0"),
            ["meta mark set meta mark and 0xffffc0ff or 0x3f00"]
        );
        cfg.policies[0].last_resort = LastResort::Default;
        let r = ruleset(&cfg, &[policy("balanced", &[])], &wans(1));
        assert!(chain(&r, "policy_0").is_empty());
    }

    #[test]
    fn dual_stack_chooses_per_family_and_binds_delegated_prefixes() {
        // wan1 carries both families, wan2 IPv4 only, wan3 IPv6 only (mwan3's wan6 style).
        let mut cfg = config(&[1, 1, 1], 1);
        cfg.policies[0].last_resort = LastResort::Unreachable;
        let mut w = wans(3);
        w[0].v6 = true;
        (w[2].v4, w[2].v6) = (false, true);
        w[2].prefixes6 = vec![Prefix {
            addr: ip("2001:db8:30::"),
            len: 48,
        }];
        let mut p = policy("balanced", &[(0, 1), (1, 1)]);
        p.v6.slots = vec![(0, 1), (2, 3)];
        let r = ruleset(&cfg, &[p.clone()], &w);
        assert_eq!(
            chain(&r, "policy_0"),
            [
                "meta nfproto ipv4 numgen random mod 2 vmap { 0 : goto pin_0, 1 : goto pin_1 }",
                "meta nfproto ipv6 numgen random mod 4 vmap { 0 : goto pin_0, 1-3 : goto pin_2 }"
            ]
        );
        let pre = chain(&r, "prerouting");
        assert!(!pre.iter().any(|l| l.contains("nfproto ipv6 return")));
        assert!(pre.contains(
            &"meta nfproto ipv4 iifname vmap { \"wan1\" : goto pin_0, \"wan2\" : goto pin_1 }"
                .to_string()
        ));
        assert!(pre.contains(
            &"meta nfproto ipv6 iifname vmap { \"wan1\" : goto pin_0, \"wan3\" : goto pin_2 }"
                .to_string()
        ));
        assert_eq!(
            chain(&r, "select"),
            ["ip6 saddr { 2001:db8:30::/48 } goto pin_2", "goto policy_0"]
        );
        // No IPv6 member usable: IPv6 takes the last resort, IPv4 is still balanced.
        p.v6.slots.clear();
        let r = ruleset(&cfg, &[p], &w);
        assert_eq!(
            chain(&r, "policy_0")[1],
            "meta nfproto ipv6 meta mark set meta mark and 0xffffc0ff or 0x3f00"
        );
        // Same members in both families: one line for both.
        let mut p = policy("balanced", &[(0, 1)]);
        p.v6.slots = vec![(0, 1)];
        let r = ruleset(&cfg, &[p], &w);
        assert_eq!(chain(&r, "policy_0"), ["goto pin_0"]);
        // Without any IPv6 WAN, IPv6 is left alone.
        let r = ruleset(&cfg, &[policy("balanced", &[(0, 1)])], &wans(1));
        assert_eq!(chain(&r, "prerouting")[0], "meta nfproto ipv6 return");
    }

    #[test]
    fn dual_stack_rules_render_per_family() {
        let mut cfg = config(&[1], 1);
        let base = Rule {
            name: "r".into(),
            family: Family::Any,
            proto: Proto::Icmp,
            src_ip: vec![
                Prefix {
                    addr: ip("192.168.1.0"),
                    len: 24,
                }
                .into(),
                Prefix {
                    addr: ip("fd00:1::"),
                    len: 64,
                }
                .into(),
            ],
            dest_ip: Vec::new(),
            src_port: Vec::new(),
            dest_port: Vec::new(),
            src_iface: None,
            ipset: None,
            sticky: true,
            timeout: Duration::from_secs(60),
            use_policy: UsePolicy::Policy("balanced".into()),
        };
        cfg.rules = vec![
            base.clone(),
            Rule {
                family: Family::Ipv6,
                proto: Proto::All,
                src_ip: Vec::new(),
                sticky: false,
                ipset: Some("v6sites".into()),
                ..base.clone()
            },
            Rule {
                proto: Proto::Tcp,
                src_ip: Vec::new(),
                sticky: false,
                ..base
            },
        ];
        let mut w = wans(1);
        w[0].v6 = true;
        let mut p = policy("balanced", &[(0, 1)]);
        p.v6.slots = vec![(0, 1)];
        let r = ruleset(&cfg, &[p], &w);
        assert_eq!(
            chain(&r, "select"),
            [
                "meta nfproto ipv4 ip saddr { 192.168.1.0/24 } meta l4proto icmp goto sticky_0",
                "meta nfproto ipv6 ip6 saddr { fd00:1::/64 } meta l4proto ipv6-icmp goto sticky_0",
                "meta nfproto ipv6 ip6 daddr @v6sites goto policy_0",
                "meta l4proto tcp goto policy_0",
                "goto policy_0"
            ]
        );
        assert_eq!(
            chain(&r, "sticky_0"),
            [
                "ip saddr @sticky_0_0_60 update @sticky_0_0_60 { ip saddr } goto pin_0",
                "ip6 saddr @sticky_0_0_60_6 update @sticky_0_0_60_6 { ip6 saddr } goto pin_0",
                "jump policy_0",
                "meta nfproto ipv4 meta mark and 0x3f00 == 0x100 update @sticky_0_0_60 { ip saddr }",
                "meta nfproto ipv6 meta mark and 0x3f00 == 0x100 update @sticky_0_0_60_6 { ip6 saddr }"
            ]
        );
        let specs: Vec<(&str, &str)> = r
            .sets
            .iter()
            .map(|s| (s.name.as_str(), s.spec.as_str()))
            .collect();
        assert_eq!(
            specs,
            [
                (
                    "sticky_0_0_60",
                    "type ipv4_addr; flags dynamic,timeout; timeout 60s;"
                ),
                (
                    "sticky_0_0_60_6",
                    "type ipv6_addr; flags dynamic,timeout; timeout 60s;"
                ),
                ("v6sites", "type ipv6_addr; flags interval;")
            ]
        );
    }

    #[test]
    fn masked_addresses_render_one_rule_per_alternative() {
        let mut cfg = config(&[1], 1);
        let masked = |a: &str, m: &str| AddrMatch::Masked {
            addr: a.parse().unwrap(),
            mask: m.parse().unwrap(),
        };
        let prefix = |a: &str, len| AddrMatch::Prefix(Prefix { addr: ip(a), len });
        let base = Rule {
            name: "r".into(),
            family: Family::Any,
            proto: Proto::Tcp,
            src_ip: vec![masked("0.0.0.1", "0.0.0.1")],
            dest_ip: Vec::new(),
            src_port: Vec::new(),
            dest_port: vec![PortRange {
                first: 443,
                last: 443,
            }],
            src_iface: Some("br-lan".into()),
            ipset: None,
            sticky: false,
            timeout: Duration::from_secs(600),
            use_policy: UsePolicy::Policy("balanced".into()),
        };
        cfg.rules = vec![
            base.clone(),
            Rule {
                proto: Proto::All,
                dest_port: Vec::new(),
                src_iface: None,
                src_ip: vec![
                    masked("10.0.0.0", "255.0.0.255"),
                    prefix("192.168.1.0", 24),
                    prefix("fd00::", 8),
                    prefix("192.168.2.0", 24),
                ],
                dest_ip: vec![prefix("198.51.100.0", 24), masked("0.0.0.0", "0.0.0.1")],
                ..base.clone()
            },
            Rule {
                src_ip: vec![prefix("fd00::", 8)],
                dest_ip: vec![masked("0.0.0.0", "0.0.0.1")],
                ..base
            },
        ];
        let mut w = wans(1);
        w[0].v6 = true;
        let mut p = policy("balanced", &[(0, 1)]);
        p.v6.slots = vec![(0, 1)];
        let r = ruleset(&cfg, &[p], &w);
        let v4 = "meta nfproto ipv4";
        assert_eq!(
            chain(&r, "select"),
            [
                format!("{v4} iifname \"br-lan\" ip saddr & 0.0.0.1 == 0.0.0.1 meta l4proto tcp th dport {{ 443 }} goto policy_0"),
                // Prefixes in one set, then each masked entry, for every destination.
                format!("{v4} ip saddr {{ 192.168.1.0/24, 192.168.2.0/24 }} ip daddr {{ 198.51.100.0/24 }} goto policy_0"),
                format!("{v4} ip saddr {{ 192.168.1.0/24, 192.168.2.0/24 }} ip daddr & 0.0.0.1 == 0.0.0.0 goto policy_0"),
                format!("{v4} ip saddr & 255.0.0.255 == 10.0.0.0 ip daddr {{ 198.51.100.0/24 }} goto policy_0"),
                format!("{v4} ip saddr & 255.0.0.255 == 10.0.0.0 ip daddr & 0.0.0.1 == 0.0.0.0 goto policy_0"),
                // Sources of one family and destinations of the other: never matches.
                "goto policy_0".to_string(),
            ]
        );
    }

    #[test]
    fn rules_render_first_match_wins_with_sticky_sets() {
        let mut cfg = config(&[1, 1], 1);
        cfg.policies.push(crate::config::Policy {
            name: "only2".into(),
            use_member: vec!["m2".into()],
            last_resort: LastResort::Default,
            mode: crate::config::Mode::Weighted,
        });
        let base = Rule {
            name: "r".into(),
            family: Family::Any,
            proto: Proto::All,
            src_ip: Vec::new(),
            dest_ip: Vec::new(),
            src_port: Vec::new(),
            dest_port: Vec::new(),
            src_iface: None,
            ipset: None,
            sticky: false,
            timeout: Duration::from_secs(600),
            use_policy: UsePolicy::Policy("only2".into()),
        };
        cfg.rules = vec![
            Rule {
                proto: Proto::Tcp,
                dest_port: vec![PortRange {
                    first: 443,
                    last: 443,
                }],
                sticky: true,
                use_policy: UsePolicy::Policy("balanced".into()),
                ..base.clone()
            },
            Rule {
                src_ip: vec![Prefix {
                    addr: ip("192.168.77.0"),
                    len: 25,
                }
                .into()],
                ..base.clone()
            },
            Rule {
                ipset: Some("streaming".into()),
                use_policy: UsePolicy::Default,
                ..base.clone()
            },
        ];
        let policies = [
            policy("balanced", &[(0, 1), (1, 1)]),
            policy("only2", &[(1, 1)]),
        ];
        let r = ruleset(&cfg, &policies, &wans(2));
        assert_eq!(
            chain(&r, "select"),
            [
                "meta l4proto tcp th dport { 443 } goto sticky_0",
                "ip saddr { 192.168.77.0/25 } goto policy_1",
                "ip daddr @streaming goto pin_main",
                "goto policy_0"
            ]
        );
        // `use_policy default` pins to the main table's mark, restored like a WAN's.
        assert_eq!(
            chain(&r, "pin_main"),
            ["ct mark set ct mark and 0xffffc0ff or 0x2000 meta mark set meta mark and 0xffffc0ff or 0x2000"]
        );
        assert!(chain(&r, "prerouting").contains(
            &"ct mark and 0x3f00 vmap { 0x100 : goto restore_0, 0x200 : goto restore_1, 0x2000 : goto restore_main }".to_string()
        ));
        assert_eq!(
            chain(&r, "sticky_0"),
            [
                "ip saddr @sticky_0_0_600 update @sticky_0_0_600 { ip saddr } goto pin_0",
                "ip saddr @sticky_0_1_600 update @sticky_0_1_600 { ip saddr } goto pin_1",
                "jump policy_0",
                "meta mark and 0x3f00 == 0x100 update @sticky_0_0_600 { ip saddr }",
                "meta mark and 0x3f00 == 0x200 update @sticky_0_1_600 { ip saddr }"
            ]
        );
        let names: Vec<&str> = r.sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["sticky_0_0_600", "sticky_0_1_600", "streaming"]);
        // default_policy 'default': what no rule matches stays unmarked (the main table).
        let mut main = cfg.clone();
        main.globals.default_policy = crate::config::DEFAULT_POLICY.into();
        let r = ruleset(&main, &policies, &wans(2));
        assert_eq!(
            chain(&r, "select").last().map(String::as_str),
            Some("ip daddr @streaming goto pin_main")
        );
    }

    #[test]
    fn stop_keeps_user_sets_and_removes_the_rest() {
        let mut ex = Existing {
            chains: vec!["select".into(), "sticky_0".into()],
            sets: vec!["sticky_0_0_600".into()],
        };
        assert_eq!(stop_script(&ex), "delete table inet uplinkd\n");
        assert_eq!(
            stop_script(&Existing::default()),
            "delete table inet uplinkd\n"
        );
        ex.sets.push("streaming".into());
        let s = stop_script(&ex);
        assert_eq!(
            s.lines().collect::<Vec<_>>(),
            [
                "flush chain inet uplinkd select",
                "flush chain inet uplinkd sticky_0",
                "delete chain inet uplinkd select",
                "delete chain inet uplinkd sticky_0",
                "delete set inet uplinkd sticky_0_0_600",
            ]
        );
    }

    #[test]
    fn script_flushes_refills_and_prunes() {
        let cfg = config(&[1], 1);
        let r = ruleset(&cfg, &[policy("balanced", &[(0, 1)])], &wans(1));
        let existing = Existing {
            chains: vec!["select".into(), "sticky_9".into()],
            sets: vec!["sticky_9_0_600".into(), "users".into()],
        };
        let s = r.script(&existing);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "add table inet uplinkd");
        assert!(lines.contains(&"flush chain inet uplinkd select"));
        assert!(lines.contains(&"delete chain inet uplinkd sticky_9"));
        assert!(lines.contains(&"delete set inet uplinkd sticky_9_0_600"));
        assert!(!s.contains("delete set inet uplinkd users"));
        let flush = s.find("flush chain").unwrap_or(0);
        let delete = s.find("delete chain").unwrap_or(0);
        let add_rule = s.find("add rule").unwrap_or(0);
        assert!(flush < delete && delete < add_rule);
    }
}
