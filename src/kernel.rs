//! The kernel as the core sees it: plain values for the objects uplinkd owns (nexthops,
//! routes, rules), what a dump reports about everyone else's (links, addresses, default
//! routes). The narrow traits the shell implements with netlink or dry run are in
//! [`crate::sys::kernel`].
//!
//! Ownership is explicit (STYLE §5): every object uplinkd creates carries its route
//! protocol number and lives in its table, priority and nexthop-id ranges. A dump keeps
//! only objects that carry those tags in [`Snapshot::owned`]; everything else is alien and
//! is only ever read (to discover gateways and links), never written.

use core::fmt;
use core::ops::RangeInclusive;
use std::net::IpAddr;

/// Address family of a route, rule or nexthop.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The unspecified address of this family (the destination of a default route).
    pub fn any(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }

    /// `v4` or `v6`, whichever is of this family.
    pub fn pick<T>(self, v4: T, v6: T) -> T {
        match self {
            Family::V4 => v4,
            Family::V6 => v6,
        }
    }

    /// `-4` / `-6`, as `ip` spells it.
    pub fn ip_flag(self) -> &'static str {
        self.pick("-4", "-6")
    }
}

/// The tags that tell uplinkd's kernel objects from everyone else's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// Route/rule/nexthop protocol number (`proto` in `ip`) stamped on everything we create.
    pub protocol: u8,
    /// Routing tables we own, whole.
    pub tables: RangeInclusive<u32>,
    /// Rule priorities we own.
    pub priorities: RangeInclusive<u32>,
    /// Nexthop ids we own (nexthops are global, not per table).
    pub nexthop_ids: RangeInclusive<u32>,
}

impl Ownership {
    pub fn owns_route(&self, table: u32, protocol: u8) -> bool {
        protocol == self.protocol && self.tables.contains(&table)
    }

    pub fn owns_rule(&self, priority: u32, protocol: u8) -> bool {
        protocol == self.protocol && self.priorities.contains(&priority)
    }

    pub fn owns_nexthop(&self, id: u32, protocol: u8) -> bool {
        protocol == self.protocol && self.nexthop_ids.contains(&id)
    }
}

/// A network device as a dump or an event reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub carrier: bool,
}

/// A global-scope address on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A default route that someone else (netifd, NetworkManager, dhclient) installed:
/// where uplinkd discovers a WAN's gateway when the config does not name one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignDefault {
    pub family: Family,
    pub table: u32,
    pub ifindex: u32,
    /// `None` for point-to-point devices (PPPoE, tun) routed with `dev` only.
    pub gateway: Option<IpAddr>,
    pub metric: u32,
    /// The source prefix of a source-specific route (`default from <prefix>`), which
    /// netifd installs for delegated IPv6 prefixes.
    pub src: Option<(IpAddr, u8)>,
}

/// One member of a nexthop group, with the kernel's weight (1..=256 on every kernel
/// that has nexthop groups; larger weights need 6.12's 16-bit weights and are not used).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupMember {
    pub id: u32,
    pub weight: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NexthopKind {
    /// `via <gateway> dev <ifindex>`, or `dev <ifindex>` for point-to-point links.
    Via {
        ifindex: u32,
        gateway: Option<IpAddr>,
    },
    /// A hash-threshold multipath group (`group a,w/b,w`).
    Group(Vec<GroupMember>),
}

/// A nexthop object (kernel >= 5.3), identified by its id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nexthop {
    pub id: u32,
    pub family: Family,
    pub kind: NexthopKind,
}

/// Where a route sends traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteTarget {
    /// `via <gateway> dev <ifindex>` (or `dev <ifindex>`).
    Via {
        ifindex: u32,
        gateway: Option<IpAddr>,
    },
    /// `nhid <id>`: a nexthop object or group.
    Nexthop(u32),
    /// Classic multipath route (`nexthop via .. weight ..` ...), for kernels older than 5.3.
    Multipath(Vec<MultipathHop>),
    Unreachable,
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MultipathHop {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    /// 1..=256, as `ip route ... weight` spells it.
    pub weight: u16,
}

/// A route in one of our tables. Identified (as the kernel does) by family, table,
/// destination and metric; the target is its content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub family: Family,
    pub table: u32,
    pub dst: IpAddr,
    pub dst_len: u8,
    pub metric: u32,
    pub target: RouteTarget,
}

/// What a rule matches on (besides its family).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// Every packet (`from all`).
    All,
    /// `from <addr>/<len>`.
    From { addr: IpAddr, len: u8 },
    /// `oif <device>`: sockets bound to the device (SO_BINDTODEVICE) and router traffic.
    Oif(String),
    /// `fwmark <mark>/<mask>`.
    Fwmark { mark: u32, mask: u32 },
}

/// A policy routing rule. Every field is identity: a changed rule is another rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub family: Family,
    pub priority: u32,
    pub selector: Selector,
    pub table: u32,
    /// `suppress_prefixlength N`: ignore answers with a prefix this short or shorter.
    pub suppress_prefixlength: Option<u8>,
}

/// Anything uplinkd may own in the kernel.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Nexthop(Nexthop),
    Route(Route),
    Rule(Rule),
}

/// The identity of an object: two objects with the same key are the same kernel object,
/// and if they differ otherwise one replaces the other.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Nexthop(u32),
    Route {
        family: Family,
        table: u32,
        dst: IpAddr,
        dst_len: u8,
        metric: u32,
    },
    Rule(Rule),
}

impl Object {
    pub fn key(&self) -> Key {
        match self {
            Object::Nexthop(n) => Key::Nexthop(n.id),
            Object::Route(r) => Key::Route {
                family: r.family,
                table: r.table,
                dst: r.dst,
                dst_len: r.dst_len,
                metric: r.metric,
            },
            Object::Rule(r) => Key::Rule(r.clone()),
        }
    }

    /// Order in which objects must be created: plain nexthops before the groups that
    /// name them, both before the routes that use them; rules last so they never point
    /// at an empty table. Deletion runs in the reverse order.
    pub fn create_rank(&self) -> u8 {
        match self {
            Object::Nexthop(Nexthop {
                kind: NexthopKind::Via { .. },
                ..
            }) => 0,
            Object::Nexthop(Nexthop {
                kind: NexthopKind::Group(_),
                ..
            }) => 1,
            Object::Route(_) => 2,
            Object::Rule(_) => 3,
        }
    }
}

/// The members of nexthop group `id` among `objects`, if it is there.
pub fn group_members(objects: &[Object], id: u32) -> Option<&[GroupMember]> {
    objects.iter().find_map(|o| match o {
        Object::Nexthop(Nexthop {
            id: i,
            kind: NexthopKind::Group(m),
            ..
        }) if *i == id => Some(m.as_slice()),
        _ => None,
    })
}

/// What one dump of the kernel reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    /// Default routes that are not ours, in any table.
    pub foreign_defaults: Vec<ForeignDefault>,
    /// Everything carrying our tags.
    pub owned: Vec<Object>,
    /// Whether the kernel has nexthop objects (>= 5.3); if not, the plan uses classic
    /// multipath routes.
    pub nexthops_supported: bool,
}

impl Snapshot {
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_name(&self, ifindex: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.ifindex == ifindex)
            .map(|l| l.name.as_str())
    }
}

/// A kernel operation that failed, with enough context for a log line a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What was being done, e.g. `ip route replace default nhid 1100 table 1100`.
    pub context: String,
    /// The kernel's errno, when the kernel answered.
    pub errno: Option<i32>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(e) => write!(
                f,
                "{}: {}",
                self.context,
                std::io::Error::from_raw_os_error(e)
            ),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for Error {}

/// A hint from the kernel's event socket. Events only say *that* something changed;
/// the daemon answers by dumping and reconciling, so a lost or misread event can never
/// leave state behind (BIRD and netifd resync the same way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A link changed; carried so carrier loss is acted on without waiting for a dump.
    Link(Link),
    /// A link went away.
    LinkGone { ifindex: u32 },
    /// The kernel gave up resolving a neighbour (`NUD_FAILED`): it answered no ARP or
    /// NDP solicitation. Carried so a dead gateway is acted on without waiting for probes.
    NeighbourFailed { ifindex: u32, addr: IpAddr },
    /// A neighbour on a WAN device was confirmed (`NUD_REACHABLE`: it answered a
    /// solicitation). The gateway probe's answer.
    NeighbourReachable { ifindex: u32, addr: IpAddr },
    /// Addresses, routes, rules or nexthops changed.
    Changed,
    /// The event socket overflowed (`ENOBUFS`): events were lost, resync now.
    Overrun,
}

/// Which foreign routes a snapshot reads, besides everything carrying our tags. What is
/// not read is filtered out by the kernel where it can be (see `sys::netlink`), so a
/// router with a full BGP table in `main` costs a snapshot nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Foreign default routes on every device (tools and tests).
    Everywhere,
    /// Foreign default routes on these devices only: the WANs' (gateway discovery). A
    /// name that no link has is skipped.
    Devices(Vec<String>),
}

impl Reads {
    /// Whether a route on `ifindex` is read, given the snapshot's links.
    pub fn device(&self, links: &[Link], ifindex: u32) -> bool {
        match self {
            Reads::Everywhere => true,
            Reads::Devices(names) => links
                .iter()
                .any(|l| l.ifindex == ifindex && names.contains(&l.name)),
        }
    }
}
