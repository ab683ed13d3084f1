//! `/etc/config/uplinkd`: UCI text → sections ([`uci`]) → a typed, validated [`Config`].
//!
//! Vocabulary follows mwan3 (`interface`, `member`, `policy`, `track_ip`, `reliability`,
//! `down`/`up`, `last_resort`, ...) so that its users, and an importer, can map one to one.
//! Defaults do not: they are tuned for fast, honest failover (see DESIGN.md, "Defaults").

mod check;
pub mod mwan3;
pub mod uci;

pub(crate) use check::family_name;
use check::Check;

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::time::Duration;

/// What to do with a policy's traffic when none of its members is usable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LastResort {
    /// `unreachable default`: fail fast with ICMP net-unreachable.
    Unreachable,
    /// `blackhole default`: drop silently.
    Blackhole,
    /// Install nothing: traffic falls through to the main table (netifd's default routes).
    Default,
}

/// Which address families an interface carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
    /// Both families on one section (uplinkd extension; mwan3 needs a second section).
    Any,
}

impl Family {
    /// The kernel families this carries, IPv4 first: the gateway probe's targets.
    pub fn families(self) -> &'static [crate::kernel::Family] {
        use crate::kernel::Family::{V4, V6};
        match self {
            Family::Ipv4 => &[V4],
            Family::Ipv6 => &[V6],
            Family::Any => &[V4, V6],
        }
    }
}

/// How targets are probed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TrackMethod {
    /// ICMP echo.
    Ping,
    /// TCP connect to `track_port`.
    Tcp { port: u16 },
    /// HTTP GET of [`Request::http_path`] on `port` (`track_port`, default 80); the
    /// answer must carry `expect_status` (0: any status, `expect_status any`) and
    /// [`Request::expect_body`].
    Http { port: u16, expect_status: u16 },
    /// A DNS query for [`Request::dns_query`] to the target resolvers on `port`
    /// (`track_port`, default 53); NOERROR and NXDOMAIN answer.
    Dns {
        port: u16,
        qtype: crate::probe::dns::Type,
    },
    /// The kernel is asked to re-resolve the WAN's gateway (ARP / NDP) every round; a
    /// confirmation (`NUD_REACHABLE`) answers, `NUD_FAILED` or silence does not. One
    /// target per family the WAN carries, instead of `track_ip`.
    Gateway,
}

impl TrackMethod {
    /// The `track_method` value.
    pub fn name(self) -> &'static str {
        match self {
            TrackMethod::Ping => "ping",
            TrackMethod::Tcp { .. } => "tcp",
            TrackMethod::Http { .. } => "http",
            TrackMethod::Dns { .. } => "dns",
            TrackMethod::Gateway => "gateway",
        }
    }
}

/// What the http and dns probes ask (defaults, unused by ping and tcp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `http_path`: the path of the GET, `/generate_204` by default.
    pub http_path: String,
    /// `track_host`: the `Host` header; `None`: the target's address.
    pub track_host: Option<String>,
    /// `expect_body`: text the first bytes of the body must contain.
    pub expect_body: Option<String>,
    /// `dns_query`: the name asked for, `example.com` by default.
    pub dns_query: String,
}

/// `http_path` when none is given: the path of the well-known "generate 204" checks,
/// which answer an empty 204 where no portal intercepts.
pub const DEFAULT_HTTP_PATH: &str = "/generate_204";
/// `dns_query` when none is given: a name reserved for documentation (RFC 2606 §3)
/// whose records IANA keeps in place.
pub const DEFAULT_DNS_QUERY: &str = "example.com";

impl Default for Request {
    fn default() -> Request {
        Request {
            http_path: DEFAULT_HTTP_PATH.into(),
            track_host: None,
            expect_body: None,
            dns_query: DEFAULT_DNS_QUERY.into(),
        }
    }
}

/// mwan3's `initial_state`: what a WAN is assumed to be before probes have spoken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InitialState {
    Online,
    Offline,
}

/// Latency/loss thresholds (`check_quality 1`). A target above a failure threshold fails
/// the quality check; it passes again only once below both recovery thresholds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Quality {
    pub failure_latency: Duration,
    pub recovery_latency: Duration,
    /// Percent, 0..=100.
    pub failure_loss: u8,
    /// Percent, 0..=100.
    pub recovery_loss: u8,
}

/// Flap damping in the RFC 2439 model: each fall adds `penalty`, the penalty halves every
/// `half_life`; above `suppress` the WAN is held down until the penalty decays below
/// `reuse`, and never for longer than `max_hold`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Damping {
    pub penalty: u32,
    pub suppress: u32,
    pub reuse: u32,
    pub half_life: Duration,
    pub max_hold: Duration,
}

/// `config globals`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Globals {
    /// First and last routing table id uplinkd may use (it owns them whole).
    pub table_first: u32,
    pub table_last: u32,
    /// Rule priorities `rule_priority .. rule_priority + RULE_PRIORITY_SPAN` are ours.
    pub rule_priority: u32,
    /// Route protocol number stamped on our routes, rules and nexthops.
    pub route_proto: u8,
    /// Conntrack/packet mark bits uplinkd may use (for connection pinning).
    pub fwmark_mask: u32,
    pub log_level: log::LevelFilter,
    /// Default `last_resort` for policies that do not set one.
    pub last_resort: LastResort,
    /// The policy that carries the traffic no rule matches; [`DEFAULT_POLICY`]: none,
    /// the main routing table does.
    pub default_policy: String,
    /// How often the kernel is re-dumped and reconciled even without events.
    pub reconcile_interval: Duration,
    /// Address of the optional HTTP listener (`/metrics`, `/status.json`, `/`); `None`:
    /// off. A bare port means 127.0.0.1.
    pub http_listen: Option<std::net::SocketAddr>,
    /// Names the HTTP listener answers to (`list http_host`) besides the address a
    /// client connected to; any other `Host` gets 421 (no DNS rebinding).
    pub http_hosts: Vec<String>,
    /// Where the metered WANs' byte counts are kept across restarts (`quota_state`).
    pub quota_state: String,
}

/// `default_policy` / `use_policy` value meaning "the main routing table" (mwan3's).
pub const DEFAULT_POLICY: &str = "default";

/// Number of rule priorities uplinkd owns, starting at `Globals::rule_priority`.
pub const RULE_PRIORITY_SPAN: u32 = 1000;

/// Most targets one interface may track.
pub const MAX_TARGETS: usize = 8;

/// `config interface '<name>'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub enabled: bool,
    /// Linux device name (`eth1`, `pppoe-wan`, `wwan0`). Empty when the section has no
    /// `option device`: the WAN then follows the netifd interface of the same name, which
    /// supplies device, gateway and up/down over ubus (see [`Interface::follows_netifd`]).
    pub device: String,
    /// Fixed IPv4 gateway; `None` means "discover from the kernel's routes on the device".
    pub gateway: Option<IpAddr>,
    /// Fixed IPv6 gateway (often link-local, `fe80::1`); `None`: discover.
    pub gateway6: Option<IpAddr>,
    pub family: Family,
    /// IPv6 prefixes delegated to this WAN (`ip6prefix`, netifd's name): connections
    /// from addresses in them always leave through this WAN, whose ISP routes them back.
    pub ip6prefix: Vec<Prefix>,
    pub track_ip: Vec<IpAddr>,
    pub track_method: TrackMethod,
    /// What `track_method` http and dns ask.
    pub request: Request,
    /// Targets that must answer for a round to pass.
    pub reliability: u8,
    /// Probes per target per round; a target answers if any of them does.
    pub count: u8,
    pub timeout: Duration,
    pub interval: Duration,
    pub failure_interval: Duration,
    pub recovery_interval: Duration,
    /// Consecutive good rounds to come up.
    pub up: u8,
    /// Consecutive failed rounds to go down.
    pub down: u8,
    pub initial_state: InitialState,
    pub quality: Option<Quality>,
    pub damping: Option<Damping>,
    /// `flush_conntrack`: which of this WAN's pinned connections to delete when.
    pub flush: Flush,
    /// `option slot`: pins the WAN's slot (mark, table, nexthop id); `None` takes the
    /// lowest slot that no earlier interface holds and none pins (see [`Config::slots`]).
    pub slot: Option<u32>,
    /// Capacity in kbit/s (`bandwidth_down`, `bandwidth_up`), for the `least_used` and
    /// `overflow` modes.
    pub bandwidth: Bandwidth,
    /// A data cap (`option quota` and the `quota_*` options); `None`: not metered.
    pub quota: Option<crate::quota::Quota>,
    /// `standby_interval`: the pace of a WAN that carries no flows (no policy chooses it
    /// now) while its rounds pass; `None`: always the normal pace.
    pub standby_interval: Option<Duration>,
    /// `standby_method`: the probe kind of a round on standby; `None`: `track_method`.
    pub standby_method: Option<TrackMethod>,
}

/// A WAN's capacity per direction, kbit/s; 0 = not configured.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub down: u32,
    pub up: u32,
}

/// `config member`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub interface: String,
    /// Lower is preferred; members with equal metric form a tier balanced by weight.
    pub metric: u16,
    pub weight: u16,
}

/// `config policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub use_member: Vec<String>,
    pub last_resort: LastResort,
    /// How new flows are spread over the usable members of the best tier.
    pub mode: Mode,
}

/// A policy's `mode`: how the usable members of its best tier share new flows. Every
/// mode ends in the same place, effective weights for the nft choice and the nexthop
/// group (`balance`), so pinning, rules, sticky sets and draining work the same in all.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Random choice in proportion to the weights (the default).
    Weighted,
    /// In turn (`numgen inc`); a member's weight repeats it in the pattern.
    RoundRobin,
    /// The member with the fewest live connections pinned to it, per unit of weight.
    LeastConnections,
    /// The member with the lowest smoothed RTT; another one takes over only after it has
    /// been better by `margin` for `hold`.
    LowestLatency { margin: Duration, hold: Duration },
    /// In proportion to spare capacity (`bandwidth_down`/`bandwidth_up` minus what the
    /// link counters show in use).
    LeastUsed,
    /// Members in order (metric, then config order) until the first one's use passes
    /// `threshold` percent of its capacity; then new flows spill to the next one.
    Overflow { threshold: u8 },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Weighted => "weighted",
            Mode::RoundRobin => "round_robin",
            Mode::LeastConnections => "least_connections",
            Mode::LowestLatency { .. } => "lowest_latency",
            Mode::LeastUsed => "least_used",
            Mode::Overflow { .. } => "overflow",
        }
    }

    /// Whether the mode needs the members' `bandwidth_down`/`bandwidth_up`.
    pub fn needs_bandwidth(&self) -> bool {
        matches!(self, Mode::LeastUsed | Mode::Overflow { .. })
    }
}

/// An address or network: `192.0.2.0/24`, `2001:db8::/32`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// One entry of a rule's `src_ip`/`dest_ip`: `192.0.2.0/24`, or an IPv4 address with a
/// dotted netmask. A contiguous netmask (`/255.255.255.0`) is a prefix; any other
/// (`0.0.0.1/0.0.0.1`: the odd addresses) is a masked match.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrMatch {
    Prefix(Prefix),
    /// The addresses whose bits under `mask` equal `addr`. `mask` is not a run of leading
    /// ones (that would be a prefix) and `addr` has no bit outside `mask`.
    Masked {
        addr: Ipv4Addr,
        mask: Ipv4Addr,
    },
}

impl AddrMatch {
    /// The family's address (for a masked match, the value it compares with).
    pub fn addr(&self) -> IpAddr {
        match self {
            AddrMatch::Prefix(p) => p.addr,
            AddrMatch::Masked { addr, .. } => IpAddr::V4(*addr),
        }
    }

    /// `addr` with a dotted `mask`: a prefix when the mask is contiguous, otherwise a
    /// masked match. The bits outside the mask are cleared, as iptables does.
    pub fn with_mask(addr: Ipv4Addr, mask: Ipv4Addr) -> AddrMatch {
        let bits = u32::from(mask);
        let addr = Ipv4Addr::from(u32::from(addr) & bits);
        if bits.leading_ones() + bits.trailing_zeros() == 32 {
            AddrMatch::Prefix(Prefix {
                addr: IpAddr::V4(addr),
                len: bits.leading_ones() as u8,
            })
        } else {
            AddrMatch::Masked { addr, mask }
        }
    }
}

impl From<Prefix> for AddrMatch {
    fn from(p: Prefix) -> AddrMatch {
        AddrMatch::Prefix(p)
    }
}

/// The form the config takes: `192.0.2.0/24`, `0.0.0.1/0.0.0.1`.
impl fmt::Display for AddrMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrMatch::Prefix(p) => write!(f, "{}/{}", p.addr, p.len),
            AddrMatch::Masked { addr, mask } => write!(f, "{addr}/{mask}"),
        }
    }
}

/// A port or an inclusive port range.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Transport protocol a `rule` matches.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    All,
    Tcp,
    Udp,
    Icmp,
    /// Any other IP protocol number.
    Number(u8),
}

/// Where a `rule` sends matching new connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsePolicy {
    /// A `config policy` by name.
    Policy(String),
    /// `default`: uplinkd leaves the connection to the main routing table.
    Default,
}

/// `config rule`: first match wins, matched against the first packet of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Section name, or `@rule[i]` for anonymous ones.
    pub name: String,
    pub family: Family,
    pub proto: Proto,
    pub src_ip: Vec<AddrMatch>,
    pub dest_ip: Vec<AddrMatch>,
    pub src_port: Vec<PortRange>,
    pub dest_port: Vec<PortRange>,
    /// Incoming device (a LAN bridge, a VLAN).
    pub src_iface: Option<String>,
    /// An nft set in uplinkd's own table (`inet uplinkd`), filled by dnsmasq's `nftset=`
    /// or by hand: the rule matches destinations in it.
    pub ipset: Option<String>,
    /// Keep every connection of one source address on the same WAN for `timeout`.
    pub sticky: bool,
    pub timeout: Duration,
    pub use_policy: UsePolicy,
}

/// When a WAN's pinned connections are deleted from conntrack (so their next packet is
/// routed, and NATed, afresh). Only the connections pinned to that WAN, never all.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Flush {
    /// When the WAN stops carrying traffic (down, no carrier, held). Default on.
    pub on_down: bool,
    /// When it comes back (mwan3's `connected`): pinned flows are none, by construction.
    pub on_up: bool,
}

/// A whole, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub globals: Globals,
    /// In file order.
    pub interfaces: Vec<Interface>,
    pub members: Vec<Member>,
    pub policies: Vec<Policy>,
    /// In file order: first match wins.
    pub rules: Vec<Rule>,
}

/// Where in the file something is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    pub line: usize,
    /// Section name (or `@type[index]` for anonymous sections), when known.
    pub section: Option<String>,
    pub option: Option<String>,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.file, self.line)?;
        if let Some(s) = &self.section {
            write!(f, " section '{s}'")?;
        }
        if let Some(o) = &self.option {
            write!(f, " option '{o}'")?;
        }
        write!(f, " {}", self.message)
    }
}

/// `s` with control characters (newlines in multi-line values, say) and byte order marks
/// escaped, so that an error message stays on one line and shows what is really there.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\u{feff}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How an interface changed between two configs (STYLE §7).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// Timers, thresholds, enabled flag: keep the health state.
    Retune,
    /// Device, targets, method, family or gateway: reset the health state.
    Restart,
}

impl Config {
    /// Parse and validate. `file` is only used in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Config, Vec<Error>> {
        let sections = uci::parse(file, text)?;
        let mut check = Check {
            file,
            errors: Vec::new(),
        };
        let config = check.config(&sections, text.lines().count().max(1));
        if check.errors.is_empty() {
            Ok(config)
        } else {
            check.errors.sort_by_key(|e| e.line);
            Err(check.errors)
        }
    }

    /// Read and parse a file; a read error is one [`Error`] at line 0.
    pub fn load(path: &std::path::Path) -> Result<Config, Vec<Error>> {
        let file = path.display().to_string();
        match std::fs::read(path) {
            // Invalid UTF-8 becomes U+FFFD, which no name or value accepts.
            Ok(bytes) => Config::parse(&file, &String::from_utf8_lossy(&bytes)),
            Err(e) => Err(vec![Error {
                file,
                line: 0,
                section: None,
                option: None,
                message: format!("cannot read: {e}"),
            }]),
        }
    }

    /// One line per interface, for `uplinkd check`.
    pub fn summary(&self) -> Vec<String> {
        self.interfaces
            .iter()
            .map(|i| self.describe(i) + &describe_quota(i))
            .collect()
    }

    fn device_text(&self, i: &Interface) -> String {
        if i.follows_netifd() {
            format!("from netifd interface {}", i.name)
        } else {
            i.device.clone()
        }
    }

    fn describe(&self, i: &Interface) -> String {
        use check::fmt_duration as d;
        if !i.enabled {
            return format!("{}: disabled (device {})", i.name, self.device_text(i));
        }
        let gateway = match (i.family, i.gateway, i.gateway6) {
            (_, None, None) => "auto".to_string(),
            (_, Some(g), None) | (_, None, Some(g)) => g.to_string(),
            (_, Some(g4), Some(g6)) => format!("{g4} and {g6}"),
        };
        let family = match i.family {
            Family::Ipv4 => "",
            Family::Ipv6 => "IPv6, ",
            Family::Any => "IPv4 and IPv6, ",
        };
        let n = i.targets();
        let tracking = match (n, i.track_method) {
            (0, _) => "no tracking (up while the device has carrier)".to_string(),
            (_, method) => {
                let method = match method {
                    TrackMethod::Ping => "ping".to_string(),
                    TrackMethod::Tcp { port } => format!("tcp port {port}"),
                    TrackMethod::Http {
                        port,
                        expect_status,
                    } => format!(
                        "http GET {} port {port} expecting {expect_status}",
                        i.request.http_path
                    ),
                    TrackMethod::Dns { port, qtype } => {
                        format!("dns {} {} port {port}", qtype.name(), i.request.dns_query)
                    }
                    TrackMethod::Gateway => "gateway (ARP/NDP)".to_string(),
                };
                let s = if n == 1 { "" } else { "s" };
                format!(
                    "{method} {n} target{s} (reliability {}, count {})",
                    i.reliability, i.count
                )
            }
        };
        let quality = match i.quality {
            None => "quality off".to_string(),
            Some(q) => format!(
                "quality on (down above {}/{}% loss, up below {}/{}%)",
                d(q.failure_latency),
                q.failure_loss,
                d(q.recovery_latency),
                q.recovery_loss
            ),
        };
        let damping = if i.damping.is_some() { "on" } else { "off" };
        let mut policies = Vec::new();
        for m in self.members.iter().filter(|m| m.interface == i.name) {
            for p in self
                .policies
                .iter()
                .filter(|p| p.use_member.contains(&m.name))
            {
                policies.push(format!(
                    "{} (metric {}, weight {})",
                    p.name, m.metric, m.weight
                ));
            }
        }
        let policies = if policies.is_empty() {
            "no policy".to_string()
        } else {
            policies.join(", ")
        };
        let standby = i
            .standby_interval
            .map_or(String::new(), |s| match i.standby_method {
                Some(m) => format!(", standby {} by {}", d(s), m.name()),
                None => format!(", standby {}", d(s)),
            });
        format!(
            "{}: {family}device {}, gateway {gateway}, {tracking}, interval {} (failure {}, recovery {}{standby}), timeout {}, \
             down {}, up {}, {quality}, damping {damping}; member of {policies}",
            i.name,
            self.device_text(i),
            d(i.interval),
            d(i.failure_interval),
            d(i.recovery_interval),
            d(i.timeout),
            i.down,
            i.up,
        )
    }

    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Every interface's slot, index-aligned with `interfaces`: a pure function of the
    /// configuration, so that two routers with the same file give every WAN the same
    /// mark, table and nexthop ids whatever happened before (starts, reloads, adoption).
    /// Pinned interfaces (`option slot`) take theirs; the others, in file order, take the
    /// lowest slot no pin claims and no earlier interface took. Validation guarantees the
    /// pins are distinct and inside the table range.
    pub fn slots(&self) -> Vec<u32> {
        let pinned: Vec<u32> = self.interfaces.iter().filter_map(|i| i.slot).collect();
        let mut taken: Vec<u32> = Vec::with_capacity(self.interfaces.len());
        for i in &self.interfaces {
            let slot = match i.slot {
                Some(s) if !taken.contains(&s) => s,
                _ => (0..)
                    .find(|s| !pinned.contains(s) && !taken.contains(s))
                    .unwrap_or(0),
            };
            taken.push(slot);
        }
        taken
    }

    /// The policy named by `globals.default_policy` (validation guarantees it exists).
    pub fn default_policy(&self) -> Option<&Policy> {
        self.policy(&self.globals.default_policy)
    }
}

/// `; quota 20.00 GB monthly from day 15 04:00 (both counted, warning at 80%)` for
/// `uplinkd check`.
fn describe_quota(i: &Interface) -> String {
    use crate::quota::Period;
    let Some(q) = &i.quota else {
        return String::new();
    };
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let period = match q.period {
        Period::Monthly { day } => format!("monthly from day {day}"),
        Period::Weekly { weekday } => {
            format!("weekly from {}", DAYS[usize::from(weekday.min(6))])
        }
        Period::Daily => "daily from".to_string(),
    };
    format!(
        "; quota {} {period} {:02}:{:02} ({} counted, warning at {}%)",
        crate::quota::fmt_bytes(q.bytes),
        q.reset_minute / 60,
        q.reset_minute % 60,
        q.direction.as_str(),
        q.warn
    )
}

impl Family {
    /// Whether a WAN of this family carries `f`.
    pub fn carries(self, f: crate::kernel::Family) -> bool {
        matches!(
            (self, f),
            (Family::Any, _)
                | (Family::Ipv4, crate::kernel::Family::V4)
                | (Family::Ipv6, crate::kernel::Family::V6)
        )
    }
}

impl Interface {
    /// How many targets a round probes: `track_ip`, or for the gateway probe one
    /// gateway per family.
    pub fn targets(&self) -> usize {
        self.targets_of(self.track_method)
    }

    /// How many targets a round of kind `method` probes (see [`Interface::targets`]).
    pub fn targets_of(&self, method: TrackMethod) -> usize {
        match method {
            TrackMethod::Gateway => self.family.families().len(),
            _ => self.track_ip.len(),
        }
    }

    /// The configured gateway of family `f`.
    pub fn gateway_of(&self, f: crate::kernel::Family) -> Option<IpAddr> {
        match f {
            crate::kernel::Family::V4 => self.gateway,
            crate::kernel::Family::V6 => self.gateway6,
        }
    }

    /// Whether device and gateway come from netifd (`network.interface.<name>`) rather
    /// than from `option device`.
    pub fn follows_netifd(&self) -> bool {
        self.device.is_empty()
    }

    /// How going from `self` to `new` affects this WAN's running state.
    pub fn change_to(&self, new: &Interface) -> Change {
        if self == new {
            Change::Unchanged
        } else if (
            &self.device,
            (self.gateway, self.gateway6),
            (self.family, &self.ip6prefix),
            &self.track_ip,
            (self.track_method, &self.request),
        ) != (
            &new.device,
            (new.gateway, new.gateway6),
            (new.family, &new.ip6prefix),
            &new.track_ip,
            (new.track_method, &new.request),
        ) {
            Change::Restart
        } else {
            Change::Retune
        }
    }
}

/// Whether `s` can name a network device wherever uplinkd puts one: `SO_BINDTODEVICE`,
/// netlink, and quoted strings in the nft ruleset (`iifname "..."`).
///
/// Linux itself accepts 1-15 bytes without `/`, `:`, whitespace or NUL (`dev_valid_name`).
/// uplinkd is stricter: ASCII letters, digits and `_ - . @ +` only, which covers what
/// OpenWrt and Debian create (`eth0.2`, `pppoe-wan`, `br-lan`, `wg0`, `6in4-he`). A `"`
/// would end the nft string early, a trailing `*` would turn it into a wildcard that
/// matches other devices, and `#`, `;` or a newline would change the meaning of the rest
/// of the line.
pub fn is_device_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@+".contains(&b))
}

/// Whether `s` is an nft identifier (a set name): a letter or `_`, then letters, digits
/// and `_ - . /`, at most 64 bytes (nft's `NFT_NAME_MAXLEN` is 256, but sets we reference
/// are named by people; 64 keeps the rules readable).
pub fn is_nft_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first && s.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "config interface 'wan'\n\toption device eth1\nconfig policy 'p'\n";

    fn ok(text: &str) -> Config {
        match Config::parse("t", text) {
            Ok(c) => c,
            Err(e) => panic!("{e:#?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match Config::parse("t", text) {
            Ok(c) => panic!("expected errors, got {c:#?}"),
            Err(e) => e.iter().map(Error::to_string).collect(),
        }
    }

    /// The single error of `text`, which must contain `expected`.
    fn error(text: &str, expected: &str) {
        let e = errors(text);
        assert!(
            e.len() == 1 && e[0].contains(expected),
            "expected one error with {expected:?}, got {e:#?}"
        );
    }

    fn wan(options: &str) -> String {
        format!("config interface 'wan'\n\toption device eth1\n{options}\nconfig policy 'p'\n")
    }

    fn globals(options: &str) -> String {
        format!("config globals 'globals'\n{options}\n{MIN}")
    }

    #[test]
    fn quota_options() {
        use crate::quota::{Direction, Period, Quota};
        let q = |o: &str| ok(&wan(o)).interfaces[0].quota;
        assert_eq!(q(""), None);
        assert_eq!(
            q("option quota 20G"),
            Some(Quota {
                bytes: 20_000_000_000,
                period: Period::Monthly { day: 1 },
                reset_minute: 0,
                direction: Direction::Both,
                warn: 80,
                save_interval: std::time::Duration::from_secs(3600),
            })
        );
        let full = q(
            "option quota 5Mi\noption quota_period weekly\noption quota_reset_day sun\n\
                      option quota_reset_time 04:30\noption quota_direction down\n\
                      option quota_warn 90\noption quota_save_interval 10m",
        );
        let full = full.expect("a quota");
        assert_eq!(full.bytes, 5 << 20);
        assert_eq!(full.period, Period::Weekly { weekday: 6 });
        assert_eq!(full.reset_minute, 4 * 60 + 30);
        assert_eq!(full.direction, Direction::Down);
        assert_eq!(full.warn, 90);
        assert_eq!(full.save_interval, std::time::Duration::from_secs(600));
        let p = |o: &str| q(&format!("option quota 1G\n{o}")).map(|q| q.period);
        assert_eq!(
            p("option quota_reset_day 31"),
            Some(Period::Monthly { day: 31 })
        );
        assert_eq!(
            p("option quota_period weekly\noption quota_reset_day 1"),
            Some(Period::Weekly { weekday: 0 })
        );
        assert_eq!(p("option quota_period daily"), Some(Period::Daily));
        for (o, want) in [
            ("option quota lots", "option 'quota' must be a size"),
            ("option quota 0", "option 'quota' must be a size"),
            (
                "option quota_warn 80",
                "option 'quota_warn' needs option 'quota'",
            ),
            (
                "option quota 1G\noption quota_period yearly",
                "must be monthly, weekly or daily",
            ),
            (
                "option quota 1G\noption quota_reset_day 32",
                "option 'quota_reset_day' must be a day of the month",
            ),
            (
                "option quota 1G\noption quota_period weekly\noption quota_reset_day fun",
                "must be a weekday",
            ),
            (
                "option quota 1G\noption quota_period daily\noption quota_reset_day 3",
                "has no meaning with quota_period daily",
            ),
            (
                "option quota 1G\noption quota_reset_time 24:00",
                "option 'quota_reset_time' must be a local time",
            ),
            (
                "option quota 1G\noption quota_reset_time 4:5",
                "must be a local time",
            ),
            (
                "option quota 1G\noption quota_direction sideways",
                "must be both, down or up",
            ),
            (
                "option quota 1G\noption quota_warn 0",
                "option 'quota_warn' must be",
            ),
            (
                "option quota 1G\noption quota_save_interval 10s",
                "option 'quota_save_interval' must be a duration from 1m to 24h",
            ),
            (
                "option quota 1G\noption quota_save_interval 25h",
                "from 1m to 24h",
            ),
        ] {
            error(&wan(o), want);
        }
        let text =
            wan("option quota 20G\noption quota_reset_day 15\noption quota_reset_time 04:00");
        assert!(ok(&text).summary()[0].ends_with(
            "; quota 20.00 GB monthly from day 15 04:00 (both counted, warning at 80%)"
        ));
        assert_eq!(
            ok(&globals("")).globals.quota_state,
            "/etc/uplinkd/quota.json"
        );
        assert_eq!(
            ok(&globals("option quota_state /overlay/q.json"))
                .globals
                .quota_state,
            "/overlay/q.json"
        );
        error(
            &globals("option quota_state relative.json"),
            "option 'quota_state' must be an absolute file path",
        );
    }

    #[test]
    fn policy_modes_and_their_options() {
        let with = |iface: &str, policy: &str| {
            format!(
                "config interface 'wan'\n\toption device eth1\n{iface}\n\
                 config member 'm'\n\toption interface wan\n\
                 config policy 'p'\n\tlist use_member m\n{policy}\n"
            )
        };
        let mode = |iface: &str, policy: &str| ok(&with(iface, policy)).policies[0].mode;
        assert_eq!(mode("", ""), Mode::Weighted);
        assert_eq!(mode("", "option mode round_robin"), Mode::RoundRobin);
        assert_eq!(
            mode("", "option mode least_connections"),
            Mode::LeastConnections
        );
        assert_eq!(
            mode("", "option mode lowest_latency\noption latency_hold 3"),
            Mode::LowestLatency {
                margin: Duration::from_millis(10),
                hold: Duration::from_secs(3)
            }
        );
        let standby = ok(&with("option standby_interval 10s", ""));
        assert_eq!(
            standby.interfaces[0].standby_interval,
            Some(Duration::from_secs(10))
        );
        assert!(
            standby.summary()[0].contains("recovery 1s, standby 10s)"),
            "{}",
            standby.summary()[0]
        );
        assert_eq!(ok(&with("", "")).interfaces[0].standby_interval, None);
        let method = |o: &str| {
            let text = format!("list track_ip 192.0.2.1\noption standby_interval 10s\n{o}");
            ok(&with(&text, "")).interfaces[0].standby_method
        };
        assert_eq!(method(""), None);
        let text =
            "list track_ip 192.0.2.1\noption standby_interval 10s\noption standby_method ping";
        let summary = &ok(&with(text, "")).summary()[0];
        assert!(summary.contains("standby 10s by ping)"), "{summary}");
        assert_eq!(
            method("option standby_method ping"),
            Some(TrackMethod::Ping)
        );
        assert_eq!(
            method("option standby_method gateway"),
            Some(TrackMethod::Gateway)
        );
        // Of the track_method's kind: as it is; of another kind: the well-known port.
        assert_eq!(
            method("option track_method dns\noption track_port 5353\noption standby_method dns"),
            Some(TrackMethod::Dns {
                port: 5353,
                qtype: crate::probe::dns::Type::A
            })
        );
        assert_eq!(
            method("option track_method tcp\noption track_port 443\noption standby_method http"),
            Some(TrackMethod::Http {
                port: 80,
                expect_status: 204
            })
        );
        assert_eq!(
            method("option track_method http\noption track_port 8080\noption standby_method tcp"),
            Some(TrackMethod::Tcp { port: 8080 })
        );
        let bw = "option bandwidth_down 50000\noption bandwidth_up 10000";
        assert_eq!(mode(bw, "option mode least_used"), Mode::LeastUsed);
        assert_eq!(
            mode(bw, "option mode overflow"),
            Mode::Overflow { threshold: 80 }
        );
        assert_eq!(
            ok(&with(bw, "")).interfaces[0].bandwidth,
            Bandwidth {
                down: 50000,
                up: 10000
            }
        );
        for (iface, policy, expected) in [
            (
                "",
                "option mode fastest",
                "option 'mode' must be weighted, round_robin",
            ),
            (
                "",
                "option mode overflow",
                "mode overflow needs bandwidth_down or bandwidth_up on interface 'wan'",
            ),
            (
                "",
                "option mode least_used",
                "mode least_used needs bandwidth_down",
            ),
            (
                bw,
                "option mode overflow\noption overflow_threshold 101",
                "option 'overflow_threshold'",
            ),
            (
                "",
                "option overflow_threshold 50",
                "option 'overflow_threshold' only applies to mode overflow",
            ),
            (
                "",
                "option mode round_robin\noption latency_margin 5",
                "only applies to mode lowest_latency",
            ),
            (
                "option bandwidth_down fast",
                "",
                "option 'bandwidth_down' must be",
            ),
            ("option bandwidth_up 0", "", "option 'bandwidth_up' must be"),
        ] {
            error(&with(iface, policy), expected);
        }
    }

    #[test]
    fn defaults() {
        let c = ok(MIN);
        let g = &c.globals;
        assert_eq!(
            (g.table_first, g.table_last, g.rule_priority, g.route_proto),
            (1100, 1199, 4000, 212)
        );
        assert_eq!(
            (g.fwmark_mask, g.log_level, g.last_resort),
            (0x3F00, log::LevelFilter::Info, LastResort::Default)
        );
        assert_eq!(
            (g.default_policy.as_str(), g.reconcile_interval),
            ("p", Duration::from_secs(30))
        );
        let i = &c.interfaces[0];
        let s = Duration::from_secs(1);
        assert_eq!(
            (i.enabled, i.device.as_str(), i.gateway, i.family),
            (true, "eth1", None, Family::Ipv4)
        );
        assert_eq!(
            (i.track_ip.len(), i.track_method, i.reliability, i.count),
            (0, TrackMethod::Ping, 1, 1)
        );
        assert_eq!(
            (
                i.timeout,
                i.interval,
                i.failure_interval,
                i.recovery_interval
            ),
            (s, s, Duration::from_millis(500), s)
        );
        assert_eq!(
            (i.up, i.down, i.initial_state, i.quality),
            (3, 3, InitialState::Online, None)
        );
        let d = Damping {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(60),
            max_hold: Duration::from_secs(300),
        };
        assert_eq!(i.damping, Some(d));
        assert_eq!(
            c.policies[0],
            Policy {
                name: "p".into(),
                use_member: vec![],
                last_resort: LastResort::Default,
                mode: Mode::Weighted,
            }
        );
    }

    #[test]
    fn example_config() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/three-wan.conf");
        let c = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => panic!("{e:#?}"),
        };
        assert_eq!(c.interfaces.len(), 3);
        assert_eq!(c.default_policy().map(|p| p.use_member.len()), Some(3));
        assert_eq!(c.member("wan1_m1_w3").map(|m| m.weight), Some(3));
        assert_eq!(
            c.policy("balanced").map(|p| p.last_resort),
            Some(LastResort::Unreachable)
        );
        assert_eq!(
            c.summary()[0],
            "wan1: device wan1, gateway auto, ping 3 targets (reliability 2, count 1), interval 1s (failure 1s, \
             recovery 1s), timeout 1s, down 3, up 3, quality off, damping on; member of balanced (metric 1, weight 3)"
        );
    }

    #[test]
    fn interface_without_device_follows_netifd() {
        let c = ok("config interface wanb\nlist track_ip 192.0.2.1\nconfig policy p\n");
        assert!(c.interfaces[0].follows_netifd());
        assert!(c.summary()[0].starts_with("wanb: device from netifd interface wanb, "));
    }

    #[test]
    fn summary_variants() {
        let c = ok("config interface a\noption device e1\noption enabled 0\n\
                    config interface b\noption device e2\nlist track_ip 192.0.2.1\noption track_method tcp\n\
                    option track_port 443\noption check_quality 1\noption flap_damping off\noption interval 1.5\n\
                    config interface c\noption device e3\nconfig policy p\n");
        assert_eq!(
            c.summary(),
            [
                "a: disabled (device e1)",
                "b: device e2, gateway auto, tcp port 443 1 target (reliability 1, count 1), interval 1.5s \
                 (failure 750ms, recovery 1.5s), timeout 1s, down 3, up 3, quality on (down above 1s/40% loss, \
                 up below 500ms/10%), damping off; member of no policy",
                "c: device e3, gateway auto, no tracking (up while the device has carrier), interval 1s (failure 500ms, \
                 recovery 1s), timeout 1s, down 3, up 3, quality off, damping on; member of no policy",
            ]
        );
    }

    #[test]
    fn values_are_parsed() {
        let c = ok(&wan("option enabled off\noption gateway 192.0.2.1\nlist track_ip 192.0.2.9\n\
             option track_ip 192.0.2.8\noption interval 500ms\noption failure_interval 0.25\n\
             option recovery_interval 2m\noption timeout 1.5s\noption check_quality yes\noption failure_latency 800\n\
             option recovery_latency 0.2s\noption initial_state offline\noption family any\noption up 1\noption down 100"));
        let i = &c.interfaces[0];
        assert!(!i.enabled);
        assert_eq!(i.gateway, "192.0.2.1".parse().ok());
        assert_eq!(
            i.track_ip,
            ["192.0.2.8".parse::<IpAddr>().unwrap()],
            "option after list replaces it"
        );
        let ms = Duration::from_millis;
        assert_eq!(
            (i.interval, i.failure_interval, i.recovery_interval),
            (ms(500), ms(250), ms(120_000))
        );
        assert_eq!(
            (i.timeout, i.initial_state, i.family, i.up, i.down),
            (ms(1500), InitialState::Offline, Family::Any, 1, 100)
        );
        let q = Quality {
            failure_latency: ms(800),
            recovery_latency: ms(200),
            failure_loss: 40,
            recovery_loss: 10,
        };
        assert_eq!(i.quality, Some(q));
        let c = ok(&globals("option mmx_mask 16128\noption loglevel notice\noption logging 1\noption rtmon_interval 5"));
        assert_eq!(
            (c.globals.fwmark_mask, c.globals.log_level),
            (0x3F00, log::LevelFilter::Info)
        );
        let c = ok(&globals(
            "option fwmark_mask 0xff\noption log_level warn\noption last_resort blackhole",
        ));
        assert_eq!(
            (c.globals.fwmark_mask, c.globals.log_level),
            (0xff, log::LevelFilter::Warn)
        );
        assert_eq!(
            c.policies[0].last_resort,
            LastResort::Blackhole,
            "policies inherit last_resort"
        );
        ok(&wan("option size 56\noption max_ttl 60\nlist flush_conntrack ifup\noption httping_ssl 0\noption keep_failure_interval 1"));
        ok(&format!(
            "{MIN}config rule 'https'\n\toption dest_port 443\n\toption use_policy p\n"
        ));
    }

    #[test]
    fn rule_addresses_take_netmasks() {
        let c = ok(&format!(
            "{MIN}config rule 'r'\n\toption src_ip '0.0.0.1/0.0.0.1 192.0.2.7/255.255.255.0'\n\t\
             list dest_ip 10.1.2.3/255.0.255.0\n\tlist dest_ip 2001:db8::/32\n\t\
             list dest_ip 198.51.100.9\n\toption use_policy p\n"
        ));
        let r = &c.rules[0];
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let prefix = |a: &str, len| {
            AddrMatch::Prefix(Prefix {
                addr: a.parse().unwrap(),
                len,
            })
        };
        assert_eq!(
            r.src_ip,
            [
                AddrMatch::Masked {
                    addr: v4("0.0.0.1"),
                    mask: v4("0.0.0.1")
                },
                prefix("192.0.2.0", 24)
            ]
        );
        assert_eq!(
            r.dest_ip,
            [
                AddrMatch::Masked {
                    addr: v4("10.0.2.0"),
                    mask: v4("255.0.255.0")
                },
                prefix("2001:db8::", 32),
                prefix("198.51.100.9", 32)
            ]
        );
        let shown: Vec<String> = r.dest_ip.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.2.0/255.0.255.0", "2001:db8::/32", "198.51.100.9/32"]
        );
        assert_eq!(
            AddrMatch::with_mask(v4("192.0.2.9"), v4("0.0.0.0")),
            prefix("0.0.0.0", 0)
        );
        assert_eq!(
            AddrMatch::with_mask(v4("192.0.2.9"), v4("255.255.255.255")),
            prefix("192.0.2.9", 32)
        );
        let rule = |v: &str| {
            format!("{MIN}config rule 'r'\n\toption dest_ip '{v}'\n\toption use_policy p\n")
        };
        for bad in [
            "2001:db8::/ffff::",
            "10.0.0.0/255.0.0.256",
            "10.0.0.0/33",
            "0.0.0.1/0.0.0.1/1",
            "host.example",
        ] {
            error(
                &rule(bad),
                "or an IPv4 address with a netmask such as 0.0.0.1/0.0.0.1",
            );
        }
        error(
            &format!("{MIN}config rule 'r'\n\toption family ipv6\n\toption src_ip 0.0.0.1/0.0.0.1\n\toption use_policy p\n"),
            "'0.0.0.1/0.0.0.1' does not match family ipv6",
        );
    }

    #[test]
    fn one_set_serves_one_family() {
        error(
            &format!(
                "{MIN}config rule 'a'\n\toption ipset s\n\toption use_policy p\n\
                 config rule 'b'\n\toption family ipv6\n\toption ipset s\n\toption use_policy p\n"
            ),
            "t:9: section 'b' option 'ipset' set 's' is IPv4 in rule 'a' but IPv6 here",
        );
        ok(&format!(
            "{MIN}config rule 'a'\n\toption ipset s\n\toption use_policy p\n\
             config rule 'b'\n\toption family ipv4\n\toption ipset s\n\toption use_policy p\n"
        ));
    }

    #[test]
    fn names_reaching_nft_are_checked() {
        let rule =
            |opt: &str| format!("{MIN}config rule 'r'\n\toption {opt}\n\toption use_policy p\n");
        let e = errors(&rule("src_iface 'wan1\"drop#'"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t:5:"), "{e:?}");
        assert!(e[0].contains("must be a Linux device name"), "{e:?}");
        error(&rule("ipset 'a\"b'"), "must be an nft set name");
        error(&rule("ipset '1abc'"), "must be an nft set name");
        ok(&rule("src_iface 'br-lan'"));
        ok(&rule("ipset 'vpn_v4'"));
        for good in ["eth0.2", "pppoe-wan", "wg0", "6in4-he", "lan1@eth0"] {
            assert!(is_device_name(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a\"",
            "wan*",
            "x;y",
            "a#",
            "0123456789abcdef",
            "..",
            "é",
        ] {
            assert!(!is_device_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn one_section_per_device_and_family() {
        let two = "config interface 'a'\n\toption device eth1\n\
                   config interface 'b'\n\toption device eth1\n\
                   config policy 'p'\n";
        let e = errors(two);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t:3:"), "{e:?}");
        assert!(e[0].contains("already carries IPv4 for"), "{e:?}");
        // One per family is fine; `any` takes both.
        ok(&two.replacen("device eth1\n", "device eth1\n\toption family ipv6\n", 1));
        let any = "config interface 'a'\n\toption device eth1\n\toption family any\n\
                   config interface 'b'\n\toption device eth1\n\toption family ipv6\n\
                   config policy 'p'\n";
        assert!(errors(any)[0].contains("already carries IPv6"));
        // A disabled section owns nothing.
        ok(&two.replacen("device eth1\n", "device eth1\n\toption enabled 0\n", 1));
    }

    #[test]
    fn durations() {
        let d = |s, plain| check::duration(s, plain, 0, u64::MAX).map(|d| d.as_millis());
        assert_eq!(d("2", 1000), Ok(2000));
        assert_eq!(d("0.5", 1000), Ok(500));
        assert_eq!(d(".5", 1000), Ok(500));
        assert_eq!(d("250", 1), Ok(250));
        assert_eq!(d("1.5m", 1), Ok(90_000));
        assert_eq!(d("3s", 1), Ok(3000));
        assert_eq!(d("40ms", 1000), Ok(40));
        for bad in [
            "",
            ".",
            "s",
            "1.2.3",
            "-1",
            "1h",
            "1 s",
            "+1",
            "99999999999999999999",
            "1.0000001",
        ] {
            assert!(d(bad, 1000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gateway_probe_targets_one_gateway_per_family() {
        let c = ok(&wan("option track_method gateway"));
        let i = &c.interfaces[0];
        assert_eq!((i.track_method, i.targets()), (TrackMethod::Gateway, 1));
        assert!(
            c.summary()[0].contains("gateway (ARP/NDP) 1 target"),
            "{:?}",
            c.summary()
        );
        let c = ok(&wan(
            "option family any\noption track_method gateway\noption reliability 2",
        ));
        assert_eq!(
            (c.interfaces[0].targets(), c.interfaces[0].reliability),
            (2, 2)
        );
    }

    #[test]
    fn http_and_dns_probes() {
        let c = ok(&wan(
            "list track_ip 192.0.2.9\noption track_method http\noption track_host example.net\n\
             option expect_status 200\noption expect_body success\noption track_port 8080",
        ));
        let i = &c.interfaces[0];
        assert_eq!(
            i.track_method,
            TrackMethod::Http {
                port: 8080,
                expect_status: 200
            }
        );
        assert_eq!(i.request.http_path, DEFAULT_HTTP_PATH);
        assert_eq!(i.request.track_host.as_deref(), Some("example.net"));
        assert_eq!(i.request.expect_body.as_deref(), Some("success"));
        assert!(c.summary()[0].contains("http GET /generate_204 port 8080 expecting 200"));
        let c = ok(&wan(
            "list track_ip 192.0.2.53\noption track_method dns\noption dns_type AAAA",
        ));
        let i = &c.interfaces[0];
        assert_eq!(
            i.track_method,
            TrackMethod::Dns {
                port: 53,
                qtype: crate::probe::dns::Type::Aaaa
            }
        );
        assert_eq!(i.request.dns_query, DEFAULT_DNS_QUERY);
        assert!(c.summary()[0].contains("dns AAAA example.com port 53"));
        // Another question is a restart of the WAN's health, like another method.
        let mut other = i.clone();
        other.request.dns_query = "example.org".into();
        assert_eq!(i.change_to(&other), Change::Restart);
    }

    #[test]
    fn dual_stack_interface() {
        let c = ok(&wan(
            "option family any\nlist gateway 192.0.2.1\nlist gateway fe80::1\n\
             list ip6prefix 2001:db8:d1::/48\nlist track_ip 192.0.2.9\nlist track_ip 2001:db8::9",
        ));
        let i = &c.interfaces[0];
        assert_eq!(
            (i.family, i.gateway, i.gateway6),
            (
                Family::Any,
                "192.0.2.1".parse().ok(),
                "fe80::1".parse().ok()
            )
        );
        assert_eq!(i.ip6prefix.len(), 1);
        assert!(
            c.summary()[0].contains("IPv4 and IPv6, device eth1, gateway 192.0.2.1 and fe80::1")
        );
        let c = ok(&wan("option family ipv6\noption gateway fe80::1"));
        assert_eq!(
            (c.interfaces[0].gateway, c.interfaces[0].gateway6),
            (None, "fe80::1".parse().ok())
        );
    }

    #[test]
    fn value_errors() {
        for (options, expected) in [
            ("option enabled 2", "option 'enabled' must be a boolean"),
            (
                "option device 'a b'",
                "option 'device' must be a Linux device name",
            ),
            ("option device ..", "must be a Linux device name"),
            ("option device eth0:1", "must be a Linux device name"),
            ("option device 'wan1\"x'", "must be a Linux device name"),
            ("option device 'wan*'", "must be a Linux device name"),
            ("option device 'wan1#x'", "must be a Linux device name"),
            (
                "option gateway 1.2.3.4/24",
                "option 'gateway' must be an IP address",
            ),
            (
                "option family ipv5",
                "option 'family' must be ipv4, ipv6 or any",
            ),
            (
                "option family any\nlist gateway 192.0.2.1\nlist gateway 192.0.2.2",
                "option 'gateway' lists two gateways of one family",
            ),
            (
                "option gateway fe80::1",
                "option 'gateway' fe80::1 does not match family ipv4",
            ),
            (
                "list ip6prefix 2001:db8::/48",
                "option 'ip6prefix' '2001:db8::/48' needs an IPv6 interface",
            ),
            (
                "option family ipv6\nlist ip6prefix 2001:db8::/129",
                "option 'ip6prefix' must be an address or network",
            ),
            (
                "option family ipv6\nlist track_ip 192.0.2.1",
                "option 'track_ip' 192.0.2.1 does not match family ipv6",
            ),
            (
                "list track_ip 192.0.2.1\nlist track_ip 192.0.2.1",
                "option 'track_ip' lists 192.0.2.1 twice",
            ),
            (
                "option track_method https",
                "option 'track_method' must be ping, tcp, http, dns or gateway",
            ),
            (
                "option track_method http\noption expect_status 99",
                "option 'expect_status' must be a whole number from 100 to 599",
            ),
            (
                "option track_method http\noption http_path 'generate_204'",
                "option 'http_path' must be 1-256 printable characters starting with '/'",
            ),
            (
                "option track_method http\noption track_host 'a b'",
                "option 'track_host' must be 1-256 printable characters, without spaces",
            ),
            (
                "option track_method gateway\nlist track_ip 192.0.2.1",
                "option 'track_ip' does not apply to track_method gateway (the gateway is the target)",
            ),
            (
                "option track_method gateway\noption track_port 80",
                "option 'track_port' only applies to track_method tcp, http and dns",
            ),
            (
                "option track_method gateway\noption reliability 2",
                "option 'reliability' is 2 but the gateway probe has only 1 target(s), one per family",
            ),
            (
                "option track_method gateway\noption dns_query example.com",
                "option 'dns_query' does not apply to track_method gateway",
            ),
            (
                "option track_method ping\noption http_path /",
                "option 'http_path' does not apply to track_method ping",
            ),
            (
                "option track_method http\noption dns_query example.com",
                "option 'dns_query' does not apply to track_method http",
            ),
            (
                "option track_method dns\noption dns_query 'a..b'",
                "option 'dns_query' 'a..b' has an empty label",
            ),
            (
                "option track_method dns\noption dns_type MX",
                "option 'dns_type' must be A or AAAA, not 'MX'",
            ),
            (
                "option track_method tcp\noption track_port 0",
                "option 'track_port' must be a whole number from 1 to 65535",
            ),
            (
                "option reliability 2",
                "option 'reliability' is 2 but only 0 track_ip targets",
            ),
            (
                "option count 11",
                "option 'count' must be a whole number from 1 to 10",
            ),
            (
                "option interval 50ms",
                "option 'interval' must be a duration from 100ms to 60m",
            ),
            ("option failure_interval 61m", "option 'failure_interval'"),
            ("option recovery_interval x", "option 'recovery_interval'"),
            (
                "option interval 2s\noption standby_interval 1s",
                "option 'standby_interval' is 1s but must not be shorter than interval (2s)",
            ),
            (
                "option standby_interval 2h",
                "option 'standby_interval' must be a duration",
            ),
            (
                "list track_ip 192.0.2.1\noption standby_method icmp",
                "option 'standby_method' must be ping, tcp, http, dns or gateway, not 'icmp'",
            ),
            (
                "option track_method gateway\noption standby_method ping",
                "option 'standby_method' is ping but there are no track_ip targets to probe",
            ),
            (
                "list track_ip 192.0.2.1\nlist track_ip 192.0.2.2\noption reliability 2\n\
                 option standby_method gateway",
                "option 'standby_method' is gateway but reliability is 2 and the gateway probe \
                 has only 1 target(s), one per family",
            ),
            (
                "list track_ip 192.0.2.1\noption standby_method tcp",
                "option 'standby_method' is tcp but no track_port says which port",
            ),
            (
                "option up 0",
                "option 'up' must be a whole number from 1 to 100",
            ),
            ("option down 101", "option 'down'"),
            (
                "option initial_state up",
                "option 'initial_state' must be online or offline",
            ),
            (
                "option failure_loss 101",
                "option 'failure_loss' must be a whole number from 0 to 100",
            ),
            (
                "option failure_latency 61s",
                "option 'failure_latency' must be a duration from 1ms to 1m",
            ),
            (
                "option check_quality 1\noption recovery_latency 2s",
                "option 'recovery_latency' must not exceed failure_latency (1s)",
            ),
            (
                "option flap_penalty 0",
                "option 'flap_penalty' must be a whole number from 1",
            ),
            (
                "option flap_reuse 2000",
                "option 'flap_reuse' must be below flap_suppress (2000)",
            ),
            (
                "option flap_half_life 0.5",
                "option 'flap_half_life' must be a duration from 1s",
            ),
            ("option flap_max_hold 2h", "option 'flap_max_hold'"),
            (
                "list enabled 1",
                "option 'enabled' takes a single value: use 'option', not 'list'",
            ),
            (
                "option track_method 'tc\tp'",
                "must be ping, tcp, http, dns or gateway, not 'tc\\tp'",
            ),
            (
                "option bogus 1",
                "t:3: section 'wan' option 'bogus' is not a known interface option",
            ),
        ] {
            error(&wan(options), expected);
        }
        let many: String = (1..=9)
            .map(|i| format!("list track_ip 192.0.2.{i}\n"))
            .collect();
        error(
            &wan(&many),
            "option 'track_ip' has 9 targets; at most 8 are supported",
        );
        // Thresholds are only related when they are used.
        ok(&wan(
            "option recovery_loss 50\noption flap_damping 0\noption flap_reuse 3000",
        ));
    }

    #[test]
    fn slots_follow_the_file_and_pins() {
        let two = |a: &str, b: &str, c: &str| {
            format!(
                "config interface 'wan1'\n\toption device eth1\n{a}\n\
                 config interface 'wan2'\n\toption device eth2\n{b}\n\
                 config interface 'wan3'\n\toption device eth3\n{c}\n\
                 config policy 'p'\n"
            )
        };
        assert_eq!(ok(&two("", "", "")).slots(), vec![0, 1, 2]);
        // A pin is kept free for its WAN; the others fill the gaps in file order.
        let pinned = ok(&two("", "", "option slot 0"));
        assert_eq!(pinned.slots(), vec![1, 2, 0]);
        assert_eq!(pinned.interfaces[2].slot, Some(0));
        assert_eq!(
            ok(&two("option slot 7", "", "option slot 1")).slots(),
            vec![7, 0, 1]
        );
        error(
            &two("option slot 3", "", "option slot 3"),
            "t:9: section 'wan3' option 'slot' 3 is already the slot of interface 'wan1'",
        );
        error(
            &two("option slot 100", "", ""),
            "option 'slot' must be a whole number from 0 to 99",
        );
        // Slots stop below the policies' tables (which count down from table_last).
        let small = "config globals 'g'\n\toption table_first 1100\n\toption table_last 1103\n";
        error(
            &format!("{small}{}", two("", "option slot 3", "")),
            "option 'slot' 3 is outside the WAN slots: table_first..table_last (1100..1103) \
             leaves slots 0..2 beside 1 policies",
        );
        // The mark must fit the mask (0x300 holds WAN marks 1 only).
        error(
            &format!(
                "config globals 'g'\n\toption fwmark_mask 0x300\n{}",
                two("option slot 1", "", "")
            ),
            "option 'slot' 1 has no mark in fwmark_mask 0x300",
        );
    }

    #[test]
    fn globals_errors() {
        for (options, expected) in [
            (
                "option table_first 0",
                "option 'table_first' must be a whole number from 1 to 4294967294",
            ),
            ("option table_last 4294967295", "option 'table_last'"),
            (
                "option table_first 2000\noption table_last 1999",
                "option 'table_last' must not be below table_first (2000)",
            ),
            (
                "option table_first 250\noption table_last 253",
                "must not include tables 253",
            ),
            (
                "option table_first 255\noption table_last 300",
                "must not include tables 253",
            ),
            (
                "option rule_priority 31001",
                "option 'rule_priority' must be a whole number from 1 to 31000",
            ),
            ("option route_proto 255", "option 'route_proto'"),
            (
                "option fwmark_mask 0",
                "option 'fwmark_mask' must be a non-zero 32-bit mask",
            ),
            ("option fwmark_mask 0x1FFFFFFFF", "option 'fwmark_mask'"),
            (
                "option log_level loud",
                "option 'log_level' must be error, warning",
            ),
            (
                "option last_resort drop",
                "option 'last_resort' must be unreachable, blackhole or default",
            ),
            (
                "option default_policy q",
                "option 'default_policy' names no policy section: 'q'",
            ),
            ("option reconcile_interval 0", "option 'reconcile_interval'"),
            (
                "option http_listen 0",
                "option 'http_listen' must be a port",
            ),
            ("option http_listen localhost:80", "option 'http_listen'"),
            ("option http_listen 1.2.3.4", "option 'http_listen'"),
            (
                "option bogus 1",
                "section 'globals' option 'bogus' is not a known globals option",
            ),
        ] {
            error(&globals(options), expected);
        }
        ok(&globals("option table_first 256\noption table_last 257"));
        ok(&globals("option table_first 1\noption table_last 252"));
        let listen = |v: &str| {
            ok(&globals(&format!("option http_listen '{v}'")))
                .globals
                .http_listen
        };
        assert_eq!(listen("9110"), "127.0.0.1:9110".parse().ok());
        assert_eq!(listen("0.0.0.0:80"), "0.0.0.0:80".parse().ok());
        assert_eq!(listen("[::1]:9110"), "[::1]:9110".parse().ok());
        assert_eq!(ok(MIN).globals.http_listen, None);
        error(
            &format!("{MIN}config globals g1\nconfig globals g2\n"),
            "t:5: section 'g2' only one 'globals' section is allowed (the first is at line 4)",
        );
    }

    #[test]
    fn section_errors() {
        error(
            &format!("{MIN}config member m\n"),
            "t:4: section 'm' option 'interface' is required",
        );
        error(
            &format!("{MIN}config member m\noption interface wan\noption metric 257\n"),
            "option 'metric' must be a whole number from 1 to 256",
        );
        error(
            &format!("{MIN}config member m\noption interface wan\noption weight 0\n"),
            "option 'weight' must be a whole number from 1 to 1000",
        );
        error(
            &format!("{MIN}config member\noption interface wan\n"),
            "t:4: section '@member[0]' this member section needs a name",
        );
        error(
            &format!("{MIN}config policy\n"),
            "section '@policy[1]' this policy section needs a name",
        );
        error(&format!("{MIN}config member m\noption interface wan\nconfig policy q\nlist use_member m\nlist use_member m\n"), "option 'use_member' lists 'm' twice");
        error(
            &format!("{MIN}config policy q\noption last_resort x\n"),
            "section 'q' option 'last_resort' must be",
        );
        error(
            &format!("{MIN}config member wan\noption interface wan\n"),
            "t:4: section 'wan' duplicate section name (the interface section at line 1 has it)",
        );
        error(
            &format!("{MIN}config foo\n"),
            "t:4: section '@foo[0]' unknown section type 'foo'",
        );
        error(
            "config interface wan\noption device eth1\n",
            "t:2: no 'config policy' section",
        );
        // `default` is the main table, not a policy name.
        error(
            &format!("{MIN}config policy default\n"),
            "section 'default' the policy name 'default' is reserved",
        );
        // default_policy 'default': unmatched traffic is the main table's; no policy needed.
        let main = ok("config globals g\noption default_policy default\nconfig interface wan\noption device eth1\n");
        assert_eq!(main.globals.default_policy, DEFAULT_POLICY);
        assert!(main.default_policy().is_none());
        assert_eq!(
            ok(&format!(
                "config globals g\noption default_policy default\n{MIN}"
            ))
            .globals
            .default_policy,
            DEFAULT_POLICY
        );
        // default_policy defaults to the first policy.
        assert_eq!(
            ok(&format!("{MIN}config policy q\n"))
                .globals
                .default_policy,
            "p"
        );
        // Tables: one per interface and per policy.
        let tight = "config globals g\noption table_first 7\noption table_last 8\n";
        ok(&format!("{tight}{MIN}"));
        error(&format!("{tight}{MIN}config policy q\n"), "t:7: section 'q' needs a routing table, but table_first..table_last (7..8) holds only 2 for 3 interfaces and policies");
    }

    #[test]
    fn all_errors_are_collected() {
        let e = errors("config interface wan\noption device 'a/b'\noption up 0\noption bogus 1\nconfig member m\noption interface nope\nconfig policy p\nlist use_member n\n");
        assert_eq!(e.len(), 5, "{e:#?}");
        let lines: Vec<_> = e
            .iter()
            .map(|e| e.split(':').nth(1).unwrap_or_default().to_string())
            .collect();
        assert_eq!(lines, ["2", "3", "4", "6", "8"]);
        // An error elsewhere in the section does not hide a relation check...
        let e = errors(&wan(
            "option enabled x\nlist track_ip 192.0.2.1\noption reliability 2",
        ));
        assert_eq!(e.len(), 2, "{e:#?}");
        // ...but a bad input of that relation does (no error about a value the user did not write).
        error(
            &wan("list track_ip 192.0.2.x\nlist track_ip 192.0.2.1\noption reliability 2"),
            "must be an IP address",
        );
    }

    #[test]
    fn change_classification() {
        let c = ok(&wan("list track_ip 192.0.2.1"));
        let old = &c.interfaces[0];
        assert_eq!(old.change_to(old), Change::Unchanged);
        let with = |f: &dyn Fn(&mut Interface)| {
            let mut new = old.clone();
            f(&mut new);
            old.change_to(&new)
        };
        assert_eq!(
            with(&|i| i.interval = Duration::from_secs(5)),
            Change::Retune
        );
        assert_eq!(with(&|i| i.enabled = false), Change::Retune);
        assert_eq!(with(&|i| i.down = 5), Change::Retune);
        assert_eq!(with(&|i| i.damping = None), Change::Retune);
        assert_eq!(with(&|i| i.device = "eth2".into()), Change::Restart);
        assert_eq!(
            with(&|i| i.gateway = "192.0.2.254".parse().ok()),
            Change::Restart
        );
        assert_eq!(with(&|i| i.family = Family::Any), Change::Restart);
        assert_eq!(with(&|i| i.track_ip.clear()), Change::Restart);
        assert_eq!(
            with(&|i| i.track_method = TrackMethod::Tcp { port: 80 }),
            Change::Restart
        );
    }

    /// A cheap stand-in for the fuzz target: mangled versions of the example never panic.
    #[test]
    fn mangled_example_does_not_panic() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/three-wan.conf");
        let text = std::fs::read_to_string(path).expect("example config");
        for (at, _) in text.char_indices().step_by(5) {
            let _ = Config::parse("t", &text[..at]);
            for insert in ["'", "\"", "\\", "#", ";", "\n", "\\\n", "\u{0}", "é"] {
                let _ = Config::parse("t", &format!("{}{insert}{}", &text[..at], &text[at..]));
            }
        }
    }

    /// Every file in tests/configs/bad starts with `# expect: <part of an error>`.
    #[test]
    fn bad_configs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/bad");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("tests/configs/bad") {
            let path = entry.expect("dir entry").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            let name = path.display().to_string();
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .expect("expect line");
            let errors = match Config::parse(&name, &text) {
                Ok(_) => panic!("{name}: parsed without error"),
                Err(e) => e,
            };
            assert!(errors.iter().all(|e| e.line > 0), "{name}: {errors:#?}");
            let shown: Vec<_> = errors.iter().map(Error::to_string).collect();
            assert!(
                shown.iter().any(|e| e.contains(expected)),
                "{name}: want {expected:?}, got {shown:#?}"
            );
            checked += 1;
        }
        assert!(checked >= 20);
    }
}
