//! `/etc/config/uplinkd`: UCI text → sections ([`uci`]) → a typed, validated [`Config`].
//!
//! Vocabulary follows mwan3 (`interface`, `member`, `policy`, `track_ip`, `reliability`,
//! `down`/`up`, `last_resort`, ...) so that its users, and an importer, can map one to one.
//! Defaults do not: they are tuned for fast, honest failover (see DESIGN.md, "Defaults").

mod check;
pub mod uci;

use check::Check;

use core::fmt;
use std::net::IpAddr;

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

/// How targets are probed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TrackMethod {
    /// ICMP echo.
    Ping,
    /// TCP connect to `track_port`.
    Tcp { port: u16 },
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
    /// The policy that carries all traffic.
    pub default_policy: String,
    /// How often the kernel is re-dumped and reconciled even without events.
    pub reconcile_interval: Duration,
}

/// Number of rule priorities uplinkd owns, starting at `Globals::rule_priority`.
pub const RULE_PRIORITY_SPAN: u32 = 1000;

/// Most targets one interface may track.
pub const MAX_TARGETS: usize = 8;

/// `config interface '<name>'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub enabled: bool,
    /// Linux device name (`eth1`, `pppoe-wan`, `wwan0`).
    pub device: String,
    /// Fixed gateway; `None` means "discover from the kernel's routes on the device".
    pub gateway: Option<IpAddr>,
    pub family: Family,
    pub track_ip: Vec<IpAddr>,
    pub track_method: TrackMethod,
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
}

/// A whole, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub globals: Globals,
    /// In file order.
    pub interfaces: Vec<Interface>,
    pub members: Vec<Member>,
    pub policies: Vec<Policy>,
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
        self.interfaces.iter().map(|i| self.describe(i)).collect()
    }

    fn describe(&self, i: &Interface) -> String {
        use check::fmt_duration as d;
        if !i.enabled {
            return format!("{}: disabled (device {})", i.name, i.device);
        }
        let gateway = i.gateway.map_or("auto".to_string(), |g| g.to_string());
        let n = i.track_ip.len();
        let tracking = match (n, i.track_method) {
            (0, _) => "no tracking (up while the device has carrier)".to_string(),
            (_, method) => {
                let method = match method {
                    TrackMethod::Ping => "ping".to_string(),
                    TrackMethod::Tcp { port } => format!("tcp port {port}"),
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
        format!(
            "{}: device {}, gateway {gateway}, {tracking}, interval {} (failure {}, recovery {}), timeout {}, \
             down {}, up {}, {quality}, damping {damping}; member of {policies}",
            i.name,
            i.device,
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

    /// The policy named by `globals.default_policy` (validation guarantees it exists).
    pub fn default_policy(&self) -> Option<&Policy> {
        self.policy(&self.globals.default_policy)
    }
}

impl Interface {
    /// How going from `self` to `new` affects this WAN's running state.
    pub fn change_to(&self, new: &Interface) -> Change {
        if self == new {
            Change::Unchanged
        } else if (
            &self.device,
            self.gateway,
            self.family,
            &self.track_ip,
            self.track_method,
        ) != (
            &new.device,
            new.gateway,
            new.family,
            &new.track_ip,
            new.track_method,
        ) {
            Change::Restart
        } else {
            Change::Retune
        }
    }
}
