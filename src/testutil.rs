//! Builders for unit tests of the pure core: configs without going through UCI text.

use std::net::IpAddr;

use crate::config::*;
use crate::kernel::{Address, ForeignDefault, Link, Snapshot};
use crate::time::Duration;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn interface(name: &str, device: &str, targets: &[&str]) -> Interface {
    Interface {
        name: name.into(),
        enabled: true,
        device: device.into(),
        gateway: None,
        gateway6: None,
        family: Family::Ipv4,
        ip6prefix: Vec::new(),
        track_ip: targets.iter().map(|t| ip(t)).collect(),
        track_method: TrackMethod::Ping,
        request: Request::default(),
        reliability: 1,
        count: 1,
        timeout: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        failure_interval: Duration::from_secs(1),
        recovery_interval: Duration::from_secs(1),
        up: 3,
        down: 3,
        initial_state: InitialState::Online,
        quality: None,
        damping: None,
        flush: Flush {
            on_down: true,
            on_up: false,
        },
        slot: None,
        bandwidth: Default::default(),
        quota: None,
        standby_interval: None,
        standby_method: None,
    }
}

pub fn globals() -> Globals {
    Globals {
        http_listen: None,
        http_hosts: Vec::new(),
        quota_state: crate::quota::DEFAULT_STATE.to_string(),
        table_first: 1100,
        table_last: 1199,
        rule_priority: 4000,
        route_proto: 212,
        fwmark_mask: 0x3F00,
        log_level: log::LevelFilter::Info,
        last_resort: LastResort::Default,
        default_policy: "balanced".into(),
        reconcile_interval: Duration::from_secs(30),
    }
}

/// `n` WANs `wan1..wanN` on devices of the same names, each with `targets` targets,
/// one member per WAN with the given weights (metric 1), in one policy `balanced`.
pub fn config(weights: &[u16], targets: usize) -> Config {
    let t: Vec<String> = (1..=targets).map(|i| format!("203.0.113.{i}")).collect();
    let t: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
    let interfaces = (1..=weights.len())
        .map(|i| interface(&format!("wan{i}"), &format!("wan{i}"), &t))
        .collect();
    let members = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Member {
            name: format!("m{}", i + 1),
            interface: format!("wan{}", i + 1),
            metric: 1,
            weight: w,
        })
        .collect();
    Config {
        globals: globals(),
        interfaces,
        members,
        policies: vec![Policy {
            name: "balanced".into(),
            use_member: (1..=weights.len()).map(|i| format!("m{i}")).collect(),
            last_resort: LastResort::Default,
            mode: crate::config::Mode::Weighted,
        }],
        rules: Vec::new(),
    }
}

/// A kernel dump with links `wan1..wanN` (ifindex 10..), each with address 10.20.k.2/24
/// and a main-table default route via 10.20.k.1; `carriers[k-1]` is wan k's carrier.
pub fn snapshot(carriers: &[bool]) -> Snapshot {
    let mut s = Snapshot {
        nexthops_supported: true,
        ..Snapshot::default()
    };
    for (i, &c) in carriers.iter().enumerate() {
        let ix = 10 + i as u32;
        s.links.push(Link {
            ifindex: ix,
            name: format!("wan{}", i + 1),
            up: true,
            carrier: c,
        });
        s.addresses.push(Address {
            ifindex: ix,
            addr: ip(&format!("10.20.{}.2", i + 1)),
            prefix_len: 24,
        });
        s.foreign_defaults.push(ForeignDefault {
            family: crate::kernel::Family::V4,
            table: 254,
            ifindex: ix,
            gateway: Some(ip(&format!("10.20.{}.1", i + 1))),
            metric: 10 * (i as u32 + 1),
            src: None,
        });
    }
    s
}

/// `ip nexthop add id <id> via 10.20.<ifindex>.1 dev <ifindex>`.
pub fn nh(id: u32, ifindex: u32) -> crate::kernel::Object {
    use crate::kernel::*;
    Object::Nexthop(Nexthop {
        id,
        family: Family::V4,
        kind: NexthopKind::Via {
            ifindex,
            gateway: Some(ip(&format!("10.20.{ifindex}.1"))),
        },
    })
}

/// `ip -4 rule add priority <priority> lookup <table>`.
pub fn rule(priority: u32, table: u32) -> crate::kernel::Object {
    use crate::kernel::*;
    Object::Rule(Rule {
        family: Family::V4,
        priority,
        selector: Selector::All,
        table,
        suppress_prefixlength: None,
    })
}

/// The data plane's view of `n` IPv4 WANs `wan1..wanN` in slots 0..n.
pub fn wan_infos(n: u32) -> Vec<crate::dataplane::WanInfo> {
    (0..n)
        .map(|slot| crate::dataplane::WanInfo {
            slot,
            device: Some(format!("wan{}", slot + 1)),
            v4: true,
            v6: false,
            prefixes6: Vec::new(),
        })
        .collect()
}

/// A plan of policy `name` (mark 0x3f00) whose IPv4 members are `slots`.
pub fn policy_plan(
    name: &str,
    slots: &[(u32, u16)],
    last_resort: Option<LastResort>,
) -> crate::plan::PolicyPlan {
    crate::plan::PolicyPlan {
        name: name.into(),
        v4: crate::plan::Members {
            active: Vec::new(),
            slots: slots.to_vec(),
            degraded_only: false,
        },
        v6: Default::default(),
        mark: Some(0x3f00),
        last_resort,
    }
}
