//! The nftables half of the plan: uplinkd's own table (`inet uplinkd`) that chooses a WAN
//! for every new connection and pins it there for the connection's life. Pure: it renders
//! text; `sys::nft` loads it as one atomic transaction.
//!
//! ```text
//! prerouting (mangle) / output (route, mangle):
//!   ct mark has a WAN's pin  -> copy it to the packet mark, done      (established flows)
//!   not a new connection     -> leave alone
//!   arrived on a WAN         -> pin to that WAN                        (inbound, port forwards)
//!   rules, first match wins  -> policy chain, or sticky chain, or leave to main (`default`)
//!   otherwise                -> the default policy's chain
//! policy chain: numgen random over the usable members of its best tier, by weight -> pin
//! pin chain:    ct mark and packet mark := the WAN's mark; `fwmark M/mask lookup <wan table>`
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

use crate::config::{Config, Family, PortRange, Prefix, Proto, UsePolicy};
use crate::plan::{Marks, PolicyPlan};

pub const TABLE: &str = "uplinkd";

/// What the data plane needs to know about one WAN (index-aligned with the config's
/// interfaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanInfo {
    pub slot: u32,
    /// `None` while a netifd-followed WAN has no device yet.
    pub device: Option<String>,
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

    // The head shared by prerouting and output.
    let mut head = vec!["meta nfproto != ipv4 return".to_string()];
    if !pinned.is_empty() {
        let map: Vec<String> = pinned
            .iter()
            .map(|(w, m)| format!("{m:#x} : goto restore_{}", w.slot))
            .collect();
        head.push(format!(
            "ct mark and {mask:#x} vmap {{ {} }}",
            map.join(", ")
        ));
    }
    head.push("ct state != new return".into());

    let mut pre = head.clone();
    if !pinned.is_empty() {
        let map: Vec<String> = pinned
            .iter()
            .filter_map(|(w, _)| Some(format!("\"{}\" : goto pin_{}", w.device.as_ref()?, w.slot)))
            .collect();
        if !map.is_empty() {
            pre.push(format!("iifname vmap {{ {} }}", map.join(", ")));
        }
    }
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
        let mut rules = Vec::new();
        let total: u32 = p.slots.iter().map(|(_, w)| u32::from(*w).max(1)).sum();
        match p.slots.as_slice() {
            [] => {
                if let (Some(mark), Some(lr)) = (p.mark, p.last_resort) {
                    if lr != crate::config::LastResort::Default {
                        // Not saved in conntrack: the connection is retried when a
                        // member comes back.
                        rules.push(set_mark("meta mark", mask, mark));
                    }
                }
            }
            [(slot, _)] => rules.push(format!("goto pin_{slot}")),
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
                rules.push(format!(
                    "numgen random mod {total} vmap {{ {} }}",
                    map.join(", ")
                ));
            }
        }
        chains.push(Chain {
            name: format!("policy_{j}"),
            hook: None,
            rules,
        });
    }

    // Rules, first match wins.
    let mut select = Vec::new();
    for (r, rule) in cfg.rules.iter().enumerate() {
        if rule.family == Family::Ipv6 {
            continue;
        }
        let Some(matchers) = matchers(rule) else {
            continue;
        };
        if let Some(set) = &rule.ipset {
            if !sets.iter().any(|s: &Set| &s.name == set) {
                sets.push(Set {
                    name: set.clone(),
                    spec: "type ipv4_addr; flags interval;".into(),
                    owned: false,
                });
            }
        }
        let target = match &rule.use_policy {
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
                    let set_name = |slot: u32| format!("{STICKY}{r}_{slot}_{secs}");
                    let mut rules = Vec::new();
                    for (slot, _) in &policies[j].slots {
                        // A hit refreshes the entry: the timeout runs from the last
                        // new connection, not the first.
                        let set = set_name(*slot);
                        rules.push(format!(
                            "ip saddr @{set} update @{set} {{ ip saddr }} goto pin_{slot}"
                        ));
                    }
                    rules.push(format!("jump policy_{j}"));
                    for slot in &members {
                        if let Some(mark) = marks.wan(*slot) {
                            rules.push(format!(
                                "meta mark and {mask:#x} == {mark:#x} update @{} {{ ip saddr }}",
                                set_name(*slot)
                            ));
                        }
                        sets.push(Set {
                            name: set_name(*slot),
                            spec: format!(
                                "type ipv4_addr; flags dynamic,timeout; timeout {secs}s;"
                            ),
                            owned: true,
                        });
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
        let m = matchers.join(" ");
        select.push(if m.is_empty() {
            target
        } else {
            format!("{m} {target}")
        });
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

fn prefixes(list: &[Prefix]) -> Option<String> {
    let v4: Vec<String> = list
        .iter()
        .filter(|p| p.addr.is_ipv4())
        .map(|p| format!("{}/{}", p.addr, p.len))
        .collect();
    (!v4.is_empty()).then(|| format!("{{ {} }}", v4.join(", ")))
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

/// The match expressions of a rule; `None` if it can never match IPv4 (IPv6-only lists).
fn matchers(rule: &crate::config::Rule) -> Option<Vec<String>> {
    let mut m = Vec::new();
    if let Some(dev) = &rule.src_iface {
        m.push(format!("iifname \"{dev}\""));
    }
    for (list, dir) in [(&rule.src_ip, "saddr"), (&rule.dest_ip, "daddr")] {
        if !list.is_empty() {
            m.push(format!("ip {dir} {}", prefixes(list)?));
        }
    }
    if let Some(set) = &rule.ipset {
        m.push(format!("ip daddr @{set}"));
    }
    let has_ports = !rule.src_port.is_empty() || !rule.dest_port.is_empty();
    match rule.proto {
        Proto::All if has_ports => m.push("meta l4proto { tcp, udp }".into()),
        Proto::All => {}
        Proto::Tcp => m.push("meta l4proto tcp".into()),
        Proto::Udp => m.push("meta l4proto udp".into()),
        Proto::Icmp => m.push("meta l4proto icmp".into()),
        Proto::Number(n) => m.push(format!("meta l4proto {n}")),
    }
    if !rule.src_port.is_empty() {
        m.push(format!("th sport {}", ports(&rule.src_port)));
    }
    if !rule.dest_port.is_empty() {
        m.push(format!("th dport {}", ports(&rule.dest_port)));
    }
    Some(m)
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

/// The transaction that removes the table (at exit).
pub fn delete_script() -> String {
    format!("delete table inet {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LastResort, Rule};
    use crate::testutil::{config, ip};
    use crate::time::Duration;

    fn wans(n: u32) -> Vec<WanInfo> {
        (0..n)
            .map(|slot| WanInfo {
                slot,
                device: Some(format!("wan{}", slot + 1)),
            })
            .collect()
    }

    fn policy(name: &str, slots: &[(u32, u16)]) -> PolicyPlan {
        PolicyPlan {
            name: name.into(),
            active: Vec::new(),
            slots: slots.to_vec(),
            mark: Some(0x3f00),
            degraded_only: false,
            last_resort: slots.is_empty().then_some(LastResort::Unreachable),
        }
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
    fn no_member_means_last_resort_mark_or_nothing() {
        let cfg = config(&[1], 1);
        let r = ruleset(&cfg, &[policy("balanced", &[])], &wans(1));
        assert_eq!(
            chain(&r, "policy_0"),
            ["meta mark set meta mark and 0xffffc0ff or 0x3f00"]
        );
        let mut p = policy("balanced", &[]);
        p.last_resort = Some(LastResort::Default);
        let r = ruleset(&cfg, &[p], &wans(1));
        assert!(chain(&r, "policy_0").is_empty());
    }

    #[test]
    fn rules_render_first_match_wins_with_sticky_sets() {
        let mut cfg = config(&[1, 1], 1);
        cfg.policies.push(crate::config::Policy {
            name: "only2".into(),
            use_member: vec!["m2".into()],
            last_resort: LastResort::Default,
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
                }],
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
                "ip daddr @streaming accept",
                "goto policy_0"
            ]
        );
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
