//! Sections → typed [`Config`], with every value checked and every error collected.
//!
//! A value that fails to parse is reported and replaced by its default so that the rest
//! of the file is still checked; checks that relate several options of a section only run
//! when each of those options parsed, so one typo does not cascade into more errors.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use super::uci::{Section, Value};
use super::*;

const MS: u64 = 1;
const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Highest `rule_priority`: our span must end below 32766, the kernel's `main` table rule.
const MAX_RULE_PRIORITY: u32 = 31000;
const _: () = assert!(MAX_RULE_PRIORITY + RULE_PRIORITY_SPAN <= 32766);

/// Collects errors while turning sections into a [`Config`].
pub(super) struct Check<'f> {
    pub file: &'f str,
    pub errors: Vec<Error>,
}

/// Names of the sections of each type, known before any section is read.
struct Names<'s> {
    interfaces: HashSet<&'s str>,
    members: HashSet<&'s str>,
    policies: Vec<&'s str>,
}

impl Check<'_> {
    fn error(
        &mut self,
        line: usize,
        section: Option<String>,
        option: Option<&str>,
        message: String,
    ) {
        let (file, option) = (self.file.to_string(), option.map(str::to_string));
        let message = one_line(&message);
        self.errors.push(Error {
            file,
            line,
            section,
            option,
            message,
        });
    }

    /// `end_line` is where file-wide errors are reported (the last line).
    pub fn config(&mut self, sections: &[Section], end_line: usize) -> Config {
        // uci section names are unique across types within a file.
        let mut seen: HashMap<&str, &Section> = HashMap::new();
        for s in sections {
            let Some(name) = s.name.as_deref() else {
                continue;
            };
            if let Some(first) = seen.get(name) {
                let msg = format!(
                    "duplicate section name (the {} section at line {} has it)",
                    first.ty, first.line
                );
                self.error(s.line, s.name.clone(), None, msg);
            } else {
                seen.insert(name, s);
            }
        }
        let named = |ty: &'static str| {
            sections
                .iter()
                .filter(move |s| s.ty == ty)
                .filter_map(|s| s.name.as_deref())
        };
        let names = Names {
            interfaces: named("interface").collect(),
            members: named("member").collect(),
            policies: named("policy").collect(),
        };

        let mut all_globals = sections.iter().filter(|s| s.ty == "globals");
        let first_globals = all_globals.next();
        for extra in all_globals {
            let msg = format!(
                "only one 'globals' section is allowed (the first is at line {})",
                first_globals.map_or(0, |s| s.line)
            );
            self.error(extra.line, Some(extra.label()), None, msg);
        }
        let globals = self.globals(first_globals, &names, end_line);

        let (mut interfaces, mut members, mut policies) = (Vec::new(), Vec::new(), Vec::new());
        let mut rules = Vec::new();
        let mut devices: HashMap<(String, bool), (usize, String)> = HashMap::new();
        let mut sets: HashMap<String, (bool, String)> = HashMap::new();
        for s in sections {
            let r = Reader {
                check: self,
                sec: s,
                label: s.label(),
                read: Vec::new(),
            };
            match s.ty.as_str() {
                "globals" => continue,
                "rule" => {
                    if let Some(rule) = r.rule(&names) {
                        self.one_family_per_set(&mut sets, s, &rule);
                        rules.push(rule);
                    }
                }
                "interface" => {
                    if let Some(i) = r.interface() {
                        self.one_section_per_device(&mut devices, s, &i);
                        interfaces.push(i);
                    }
                }
                "member" => members.extend(r.member(&names)),
                "policy" => policies.extend(r.policy(&names, globals.last_resort)),
                other => {
                    let msg = format!("unknown section type '{other}' (expected globals, interface, member, policy or rule)");
                    self.error(s.line, Some(s.label()), None, msg);
                }
            }
        }

        // Modes that follow capacity need it on every member's interface.
        for p in policies
            .iter()
            .filter(|p: &&Policy| p.mode.needs_bandwidth())
        {
            let Some(s) = sections
                .iter()
                .find(|s| s.ty == "policy" && s.name.as_deref() == Some(p.name.as_str()))
            else {
                continue;
            };
            for m in p.use_member.iter() {
                let Some(iface) = members
                    .iter()
                    .find(|x: &&Member| &x.name == m)
                    .and_then(|x| {
                        interfaces
                            .iter()
                            .find(|i: &&Interface| i.name == x.interface)
                    })
                else {
                    continue;
                };
                if iface.bandwidth.down == 0 && iface.bandwidth.up == 0 {
                    let msg = format!(
                        "mode {} needs bandwidth_down or bandwidth_up on interface '{}' (member '{m}')",
                        p.mode.name(),
                        iface.name
                    );
                    self.error(s.line, Some(s.label()), Some("mode"), msg);
                }
            }
        }

        // One routing table per interface and per policy.
        let g = &globals;
        if let Some(span) = g.table_last.checked_sub(g.table_first) {
            let tables = u64::from(span) + 1;
            let users = sections
                .iter()
                .filter(|s| s.ty == "interface" || s.ty == "policy");
            if let Some(s) = users
                .clone()
                .nth(usize::try_from(tables).unwrap_or(usize::MAX))
            {
                let msg = format!(
                    "needs a routing table, but table_first..table_last ({}..{}) holds only {tables} for {} interfaces and policies",
                    g.table_first,
                    g.table_last,
                    users.count()
                );
                self.error(s.line, Some(s.label()), None, msg);
            }
        }
        self.slots(sections, &globals, &interfaces, policies.len());
        Config {
            globals,
            interfaces,
            members,
            policies,
            rules,
        }
    }

    /// `option slot`: distinct, and below the policies' tables (which count down from
    /// `table_last`) and the policies' marks.
    fn slots(
        &mut self,
        sections: &[Section],
        g: &Globals,
        interfaces: &[Interface],
        policies: usize,
    ) {
        let span = u64::from(g.table_last.saturating_sub(g.table_first)) + 1;
        let room = span
            .saturating_sub(policies as u64)
            .min(u64::from(crate::plan::MAX_WANS));
        let mut seen: Vec<(u32, &str)> = Vec::new();
        for i in interfaces {
            let Some(slot) = i.slot else { continue };
            let Some(s) = sections
                .iter()
                .find(|s| s.ty == "interface" && s.name.as_deref() == Some(i.name.as_str()))
            else {
                continue;
            };
            let line = s
                .options
                .iter()
                .find(|o| o.name == "slot")
                .map_or(s.line, |o| o.line);
            let msg = if let Some((_, other)) = seen.iter().find(|(n, _)| *n == slot) {
                format!("{slot} is already the slot of interface '{other}'")
            } else if u64::from(slot) >= room {
                format!(
                    "{slot} is outside the WAN slots: table_first..table_last ({}..{}) leaves slots 0..{} beside {policies} policies",
                    g.table_first,
                    g.table_last,
                    room.saturating_sub(1)
                )
            } else if crate::plan::Marks::new(g.fwmark_mask).wan(slot).is_none() {
                format!("{slot} has no mark in fwmark_mask {:#x}", g.fwmark_mask)
            } else {
                seen.push((slot, &i.name));
                continue;
            };
            self.error(line, Some(s.label()), Some("slot"), msg);
        }
    }

    /// An `ipset` is IPv6 in `family ipv6` rules and IPv4 in the others: one set (one nft
    /// object, of one address type) cannot be both.
    fn one_family_per_set(
        &mut self,
        seen: &mut HashMap<String, (bool, String)>,
        s: &Section,
        rule: &Rule,
    ) {
        let Some(set) = &rule.ipset else {
            return;
        };
        let v6 = rule.family == Family::Ipv6;
        match seen.get(set) {
            Some((first, label)) if *first != v6 => {
                let msg = format!(
                    "set '{set}' is {} in rule '{label}' but {} here (IPv6 only in family ipv6 \
                     rules): one set holds one family",
                    if *first { "IPv6" } else { "IPv4" },
                    if v6 { "IPv6" } else { "IPv4" },
                );
                let line = s
                    .options
                    .iter()
                    .find(|o| o.name == "ipset")
                    .map_or(s.line, |o| o.line);
                self.error(line, Some(s.label()), Some("ipset"), msg);
            }
            Some(_) => {}
            None => {
                seen.insert(set.clone(), (v6, s.label()));
            }
        }
    }

    /// Two enabled sections of one family on one device would give the kernel two
    /// owners of the same per-device objects (nft refuses the second with `File
    /// exists`); one section per device and family, or one `family any` section.
    fn one_section_per_device(
        &mut self,
        seen: &mut HashMap<(String, bool), (usize, String)>,
        s: &Section,
        i: &Interface,
    ) {
        if !i.enabled || i.device.is_empty() {
            return;
        }
        let families: &[bool] = match i.family {
            Family::Ipv4 => &[false],
            Family::Ipv6 => &[true],
            Family::Any => &[false, true],
        };
        for &v6 in families {
            let key = (i.device.clone(), v6);
            if let Some((line, label)) = seen.get(&key) {
                let msg = format!(
                    "device '{}' already carries {} for {label} (line {line}): one section per device and family",
                    i.device,
                    if v6 { "IPv6" } else { "IPv4" },
                );
                self.error(s.line, Some(s.label()), Some("device"), msg);
                return;
            }
            seen.insert(key, (s.line, s.label()));
        }
    }

    fn globals(&mut self, sec: Option<&Section>, names: &Names, end_line: usize) -> Globals {
        let first_policy = names.policies.first().copied().unwrap_or_default();
        let to_main = sec
            .and_then(|s| s.get("default_policy"))
            .is_some_and(|o| matches!(&o.value, Value::Single(v) if v == DEFAULT_POLICY));
        if names.policies.is_empty() && !to_main {
            let msg = "no 'config policy' section: at least one policy is needed to route traffic"
                .to_string();
            self.error(end_line, None, None, msg);
        }
        let empty = Section {
            ty: "globals".into(),
            name: None,
            index: 0,
            line: end_line,
            options: Vec::new(),
        };
        let sec = sec.unwrap_or(&empty);
        let mut r = Reader {
            check: self,
            sec,
            label: sec.label(),
            read: Vec::new(),
        };
        let errors = r.errors();
        let table_first = r.or("table_first", 1100, |s| number(s, 1, 0xFFFF_FFFE));
        let table_last = r.or("table_last", 1199, |s| number(s, 1, 0xFFFF_FFFE));
        if r.errors() == errors && table_first > table_last {
            r.error(
                "table_last",
                format!("must not be below table_first ({table_first})"),
            );
        } else if r.errors() == errors
            && u64::from(table_last) * 2 - u64::from(table_first) + 1 > 0xFFFF_FFFF
        {
            // IPv6 nexthops take the ids after the range (see plan::nexthop_id).
            r.error(
                "table_last",
                "leaves no room for IPv6 nexthop ids: the range must end below 2^31".into(),
            );
        } else if r.errors() == errors && table_first <= 255 && table_last >= 253 {
            r.error(
                "table_first",
                "the range must not include tables 253, 254 and 255 (default, main, local)".into(),
            );
        }
        let rule_priority = r.or("rule_priority", 4000, |s| {
            number(s, 1, u64::from(MAX_RULE_PRIORITY))
        });
        // 0..=4 are the kernel's unspec, redirect, kernel, boot and static protocols.
        let route_proto = r.or("route_proto", 212, |s| number(s, 5, 254));
        let mask_key = if r.sec.get("fwmark_mask").is_some() {
            "fwmark_mask"
        } else {
            "mmx_mask"
        };
        let fwmark_mask = r.or(mask_key, 0x3F00, parse_mask);
        let level_key = if r.sec.get("log_level").is_some() {
            "log_level"
        } else {
            "loglevel"
        };
        let log_level = r.or(level_key, log::LevelFilter::Info, parse_level);
        let last_resort = r.or("last_resort", LastResort::Default, parse_last_resort);
        // `default`: traffic no rule matches is left to the main table, as in mwan3.
        let default_policy = r.or("default_policy", first_policy.to_string(), |s| {
            match s == DEFAULT_POLICY || names.policies.contains(&s) {
                true => Ok(s.to_string()),
                false => Err(format!(
                    "names no policy section: '{s}' (or use 'default': the main table)"
                )),
            }
        });
        let reconcile_interval = r.or("reconcile_interval", Duration::from_secs(30), |s| {
            duration(s, SEC, SEC, HOUR)
        });
        let http_listen = r.or("http_listen", None, |s| parse_listen(s).map(Some));
        let mut http_hosts = Vec::new();
        for v in r.list("http_host") {
            let valid = !v.is_empty()
                && v.len() <= 253
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
            if valid {
                http_hosts.push(v.to_ascii_lowercase());
            } else {
                r.error(
                    "http_host",
                    format!(
                        "must be a host name or address (letters, digits, - . : [ ]), not '{v}'"
                    ),
                );
            }
        }
        let quota_state = r.or(
            "quota_state",
            crate::quota::DEFAULT_STATE.to_string(),
            |s| match s.starts_with('/') && !s.ends_with('/') && !s.chars().any(char::is_control) {
                true => Ok(s.to_string()),
                false => Err(format!("must be an absolute file path, not '{s}'")),
            },
        );
        r.finish(&[
            "fwmark_mask",
            "mmx_mask",
            "log_level",
            "loglevel",
            "logging",
            "rtmon_interval",
            "rt_table_lookup",
        ]);
        Globals {
            table_first,
            table_last,
            rule_priority,
            route_proto,
            fwmark_mask,
            log_level,
            last_resort,
            default_policy,
            reconcile_interval,
            http_listen,
            http_hosts,
            quota_state,
        }
    }
}

/// `quota_reset_day` of a weekly quota: `mon`..`sun` (or the full name) or 1..7 (1 =
/// Monday, as ISO 8601 numbers them); 0 = Monday.
fn parse_weekday(s: &str) -> Result<u8, String> {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = s.to_ascii_lowercase();
    if let Some(i) = DAYS
        .iter()
        .position(|d| lower == *d || (lower.len() == 3 && d.starts_with(&lower)))
    {
        return Ok(i as u8);
    }
    match s.parse::<u8>() {
        Ok(n @ 1..=7) => Ok(n - 1),
        _ => Err(format!(
            "must be a weekday for quota_period weekly: mon..sun or 1..7 (1 = Monday), not '{s}'"
        )),
    }
}

/// `quota_reset_time`: `HH:MM`, 24-hour local time; minutes after midnight.
fn parse_time_of_day(s: &str) -> Result<u16, String> {
    let err = || format!("must be a local time of day HH:MM from 00:00 to 23:59, not '{s}'");
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(err());
    }
    let h: u16 = number(h, 0, 23).map_err(|_| err())?;
    let m: u16 = number(m, 0, 59).map_err(|_| err())?;
    Ok(h * 60 + m)
}

/// `http_listen`: `ADDR:PORT`, `[V6]:PORT`, or a bare port (on 127.0.0.1).
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let err = || format!("must be a port or an address:port, not '{s}'");
    let addr = match s.parse::<u16>() {
        Ok(port) => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => s.parse().map_err(|_| err())?,
    };
    if addr.port() == 0 {
        return Err(err());
    }
    Ok(addr)
}

/// Reads the options of one section, remembering which were read to flag the others.
struct Reader<'c, 'f, 's> {
    check: &'c mut Check<'f>,
    sec: &'s Section,
    label: String,
    read: Vec<&'static str>,
}

impl<'s> Reader<'_, '_, 's> {
    /// Errors so far: relations between options are checked only if none was added
    /// while reading those options.
    fn errors(&self) -> usize {
        self.check.errors.len()
    }

    fn line(&self, option: &str) -> usize {
        self.sec.get(option).map_or(self.sec.line, |o| o.line)
    }

    fn error(&mut self, option: &str, message: String) {
        let (line, label) = (self.line(option), Some(self.label.clone()));
        let option = (!option.is_empty()).then_some(option);
        self.check.error(line, label, option, message);
    }

    /// The section's name, which is required for this type.
    fn name(&mut self) -> Option<String> {
        if self.sec.name.is_none() {
            let ty = &self.sec.ty;
            self.error(
                "",
                format!("this {ty} section needs a name, as in: config {ty} 'name'"),
            );
        }
        self.sec.name.clone()
    }

    /// A single value; `None` when absent or given as a list (reported).
    fn single(&mut self, option: &'static str) -> Option<&'s str> {
        self.read.push(option);
        match &self.sec.get(option)?.value {
            Value::Single(v) => Some(v),
            Value::List(_) => {
                self.error(
                    option,
                    "takes a single value: use 'option', not 'list'".into(),
                );
                None
            }
        }
    }

    /// An option that may be given with `list` lines or a single `option`.
    fn list(&mut self, option: &'static str) -> Vec<&'s str> {
        self.read.push(option);
        match self.sec.get(option).map(|o| &o.value) {
            None => Vec::new(),
            Some(Value::Single(v)) => vec![v.as_str()],
            Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
        }
    }

    fn get<T>(
        &mut self,
        option: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(self.single(option)?) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(option, message);
                None
            }
        }
    }

    fn or<T>(
        &mut self,
        option: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        self.get(option, parse).unwrap_or(default)
    }

    fn required<T>(
        &mut self,
        option: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.sec.get(option).is_none() {
            self.error(option, "is required".into());
        }
        self.get(option, parse)
    }

    /// Reports the options that were not read, except `ignored` ones.
    fn finish(self, ignored: &[&str]) {
        for o in &self.sec.options {
            if !self.read.contains(&o.name.as_str()) && !ignored.contains(&o.name.as_str()) {
                let message = format!("is not a known {} option", self.sec.ty);
                self.check
                    .error(o.line, Some(self.label.clone()), Some(&o.name), message);
            }
        }
    }

    /// `track_method` with what it needs: the port and what http and dns ask. Options
    /// of another method are errors, so a typo cannot silently probe something else.
    fn probe(&mut self, method: &str, port: Option<u16>) -> (TrackMethod, Request) {
        let mut request = Request::default();
        let http = ["http_path", "track_host", "expect_status", "expect_body"];
        let dns = ["dns_query", "dns_type"];
        let foreign: &[&'static str] = match method {
            "http" => &dns,
            "dns" => &http,
            _ => &[
                "http_path",
                "track_host",
                "expect_status",
                "expect_body",
                "dns_query",
                "dns_type",
            ],
        };
        for &o in foreign {
            if self.sec.get(o).is_some() {
                self.read.push(o);
                self.error(o, format!("does not apply to track_method {method}"));
            }
        }
        let method = match (method, port) {
            ("tcp", Some(port)) => TrackMethod::Tcp { port },
            ("tcp", None) => {
                if self.sec.get("track_port").is_none() {
                    self.error("track_port", "is required with track_method tcp".into());
                }
                TrackMethod::Ping
            }
            ("gateway", None) => TrackMethod::Gateway,
            ("http", port) => {
                if let Some(p) = self.get("http_path", http_text("/")) {
                    request.http_path = p;
                }
                request.track_host = self.get("track_host", http_text(""));
                request.expect_body = self.get("expect_body", |s| {
                    if s.is_empty() || s.len() > 256 {
                        Err("must be 1-256 characters".into())
                    } else {
                        Ok(s.to_string())
                    }
                });
                TrackMethod::Http {
                    port: port.unwrap_or(80),
                    expect_status: self.or("expect_status", 204, |s| match s {
                        "any" => Ok(0),
                        _ => number(s, 100, 599),
                    }),
                }
            }
            ("dns", port) => {
                if let Some(q) = self.get("dns_query", |s| {
                    crate::probe::dns::check_name(s).map(|()| s.to_string())
                }) {
                    request.dns_query = q;
                }
                let qtype = self.or("dns_type", crate::probe::dns::Type::A, |s| match s {
                    "A" | "a" => Ok(crate::probe::dns::Type::A),
                    "AAAA" | "aaaa" => Ok(crate::probe::dns::Type::Aaaa),
                    _ => Err(format!("must be A or AAAA, not '{s}'")),
                });
                TrackMethod::Dns {
                    port: port.unwrap_or(53),
                    qtype,
                }
            }
            (_, Some(_)) => {
                self.error(
                    "track_port",
                    "only applies to track_method tcp, http and dns".into(),
                );
                TrackMethod::Ping
            }
            _ => TrackMethod::Ping,
        };
        (method, request)
    }

    fn interface(mut self) -> Option<Interface> {
        let name = self.name();
        let enabled = self.or("enabled", true, parse_bool);
        // Without a device the WAN follows the netifd interface of the same name.
        let device = Some(self.get("device", parse_device).unwrap_or_default());
        let family = self.or("family", Family::Ipv4, parse_family);
        // One gateway per family: `option gateway`, or `list gateway` for both.
        let (mut gateway, mut gateway6) = (None, None);
        for value in self.list("gateway") {
            match parse_ip(value) {
                Err(e) => self.error("gateway", e),
                Ok(gw) if !family_matches(family, &gw) => self.error(
                    "gateway",
                    format!("{gw} does not match family {}", family_name(family)),
                ),
                Ok(gw) => {
                    let slot = if gw.is_ipv4() {
                        &mut gateway
                    } else {
                        &mut gateway6
                    };
                    if slot.replace(gw).is_some() {
                        self.error("gateway", "lists two gateways of one family".into());
                    }
                }
            }
        }
        let mut ip6prefix = Vec::new();
        for value in self.list("ip6prefix") {
            match parse_prefix(value) {
                Err(e) => self.error("ip6prefix", e),
                Ok(p) if p.addr.is_ipv4() || family == Family::Ipv4 => self.error(
                    "ip6prefix",
                    format!("'{value}' needs an IPv6 interface (family ipv6 or any)"),
                ),
                Ok(p) => ip6prefix.push(p),
            }
        }

        let errors = self.errors();
        let mut track_ip = Vec::new();
        for target in self.list("track_ip") {
            match parse_ip(target) {
                Err(e) => self.error("track_ip", e),
                Ok(ip) if track_ip.contains(&ip) => {
                    self.error("track_ip", format!("lists {ip} twice"))
                }
                Ok(ip) if !family_matches(family, &ip) => self.error(
                    "track_ip",
                    format!("{ip} does not match family {}", family_name(family)),
                ),
                Ok(ip) => track_ip.push(ip),
            }
        }
        if track_ip.len() > MAX_TARGETS {
            self.error(
                "track_ip",
                format!(
                    "has {} targets; at most {MAX_TARGETS} are supported",
                    track_ip.len()
                ),
            );
        }
        let method = self.or("track_method", "ping", |s| match s {
            "ping" => Ok("ping"),
            "tcp" => Ok("tcp"),
            "http" => Ok("http"),
            "dns" => Ok("dns"),
            "gateway" => Ok("gateway"),
            _ => Err(format!(
                "must be ping, tcp, http, dns or gateway, not '{s}'"
            )),
        });
        let port = self.get("track_port", |s| number(s, 1, 65535));
        let (track_method, request) = self.probe(method, port);
        // The gateway probe asks the kernel about the gateway of each family the WAN
        // carries: its targets are those gateways, not `track_ip`.
        let targets = if track_method == TrackMethod::Gateway {
            if !track_ip.is_empty() {
                self.error(
                    "track_ip",
                    "does not apply to track_method gateway (the gateway is the target)".into(),
                );
            }
            family.families().len()
        } else {
            track_ip.len()
        };
        let max_reliability = targets.clamp(1, MAX_TARGETS);
        let reliability: u8 = self.or("reliability", 1, |s| number(s, 1, MAX_TARGETS as u64));
        if usize::from(reliability) > max_reliability && self.errors() == errors {
            let msg = if track_method == TrackMethod::Gateway {
                format!("is {reliability} but the gateway probe has only {targets} target(s), one per family")
            } else {
                format!("is {reliability} but only {targets} track_ip targets are configured")
            };
            self.error("reliability", msg);
        }
        let count = self.or("count", 1, |s| number(s, 1, 10));
        let timeout = self.or("timeout", Duration::from_secs(1), |s| {
            duration(s, SEC, 100, MIN)
        });
        let interval = self.or("interval", Duration::from_secs(1), |s| {
            duration(s, SEC, 100, HOUR)
        });
        // Confirm a fall twice as fast as the steady pace (see DESIGN.md, "Blackhole
        // detection time"); 100 ms is the shortest interval accepted.
        let confirm = (interval / 2).max(Duration::from_millis(100));
        let failure_interval =
            self.or("failure_interval", confirm, |s| duration(s, SEC, 100, HOUR));
        let recovery_interval = self.or("recovery_interval", interval, |s| {
            duration(s, SEC, 100, HOUR)
        });
        let up = self.or("up", 3, |s| number(s, 1, 100));
        let down = self.or("down", 3, |s| number(s, 1, 100));
        let initial_state = self.or("initial_state", InitialState::Online, |s| match s {
            "online" => Ok(InitialState::Online),
            "offline" => Ok(InitialState::Offline),
            _ => Err(format!("must be online or offline, not '{s}'")),
        });
        let quality = self.quality();
        let damping = self.damping();
        let flush = self.flush();
        let slot = self.get("slot", |s| {
            number(s, 0, u64::from(crate::plan::MAX_WANS) - 1)
        });
        let bandwidth = Bandwidth {
            down: self.or("bandwidth_down", 0, |s| number(s, 1, 100_000_000)),
            up: self.or("bandwidth_up", 0, |s| number(s, 1, 100_000_000)),
        };
        let standby_interval = self.get("standby_interval", |s| duration(s, SEC, 100, HOUR));
        if let Some(standby) = standby_interval {
            if standby < interval && self.errors() == errors {
                let msg = format!(
                    "is {} but must not be shorter than interval ({})",
                    fmt_duration(standby),
                    fmt_duration(interval)
                );
                self.error("standby_interval", msg);
            }
        }
        let standby_method =
            self.standby_method(track_method, port, &track_ip, family, reliability);
        let quota = self.quota();
        self.finish(&["size", "max_ttl", "keep_failure_interval", "httping_ssl"]);
        Some(Interface {
            name: name?,
            enabled,
            device: device?,
            gateway,
            gateway6,
            family,
            ip6prefix,
            track_ip,
            track_method,
            request,
            reliability,
            count,
            timeout,
            interval,
            failure_interval,
            recovery_interval,
            up,
            down,
            initial_state,
            quality,
            damping,
            flush,
            slot,
            bandwidth,
            standby_interval,
            standby_method,
            quota,
        })
    }

    /// `standby_method`: the kind of a standby round, to the same targets (the gateway
    /// kind: the WAN's gateways). Of another kind than `track_method`, http and dns ask
    /// the defaults on their well-known ports; tcp connects to `track_port`.
    fn standby_method(
        &mut self,
        track_method: TrackMethod,
        port: Option<u16>,
        track_ip: &[IpAddr],
        family: Family,
        reliability: u8,
    ) -> Option<TrackMethod> {
        let name = self.get("standby_method", |s| match s {
            "ping" | "tcp" | "http" | "dns" | "gateway" => Ok(s.to_string()),
            _ => Err(format!(
                "must be ping, tcp, http, dns or gateway, not '{s}'"
            )),
        })?;
        let method = match name.as_str() {
            same if same == track_method.name() => track_method,
            "ping" => TrackMethod::Ping,
            "gateway" => TrackMethod::Gateway,
            // `track_port` belongs to the `track_method` kind: the well-known ports.
            "http" => TrackMethod::Http {
                port: 80,
                expect_status: 204,
            },
            "dns" => TrackMethod::Dns {
                port: 53,
                qtype: crate::probe::dns::Type::A,
            },
            _ => match port {
                Some(port) => TrackMethod::Tcp { port },
                None => {
                    self.error(
                        "standby_method",
                        "is tcp but no track_port says which port (track_method tcp, \
                         http or dns with track_port)"
                            .into(),
                    );
                    return None;
                }
            },
        };
        if method == TrackMethod::Gateway {
            let targets = family.families().len();
            if usize::from(reliability) > targets {
                self.error(
                    "standby_method",
                    format!(
                        "is gateway but reliability is {reliability} and the gateway probe \
                         has only {targets} target(s), one per family"
                    ),
                );
                return None;
            }
        } else if track_ip.is_empty() {
            self.error(
                "standby_method",
                format!("is {name} but there are no track_ip targets to probe"),
            );
            return None;
        }
        Some(method)
    }

    /// `quota` and the options that shape it; those without a `quota` are errors, so a
    /// typo cannot leave a WAN unmetered unnoticed.
    fn quota(&mut self) -> Option<crate::quota::Quota> {
        use crate::quota::{self as q, Direction, Period};
        const OPTIONS: [&str; 6] = [
            "quota_period",
            "quota_reset_day",
            "quota_reset_time",
            "quota_direction",
            "quota_warn",
            "quota_save_interval",
        ];
        let bytes = self.get("quota", q::parse_bytes);
        if self.sec.get("quota").is_none() {
            for o in OPTIONS {
                self.read.push(o);
                if self.sec.get(o).is_some() {
                    self.error(
                        o,
                        "needs option 'quota' (the data cap) on this interface".into(),
                    );
                }
            }
            return None;
        }
        let errors = self.errors();
        let kind = self.or("quota_period", "monthly", |s| match s {
            "monthly" => Ok("monthly"),
            "weekly" => Ok("weekly"),
            "daily" => Ok("daily"),
            _ => Err(format!("must be monthly, weekly or daily, not '{s}'")),
        });
        let day = self.single("quota_reset_day");
        let period = match (kind, day) {
            (_, _) if self.errors() != errors => None,
            ("monthly", d) => match d.map_or(Ok(1), |d| number(d, 1, 31)) {
                Ok(day) => Some(Period::Monthly { day }),
                Err(_) => {
                    let d = d.unwrap_or_default();
                    let msg = format!("must be a day of the month from 1 to 31 (a shorter month resets on its last day), not '{d}'");
                    self.error("quota_reset_day", msg);
                    None
                }
            },
            ("weekly", d) => match d.map_or(Ok(0), parse_weekday) {
                Ok(weekday) => Some(Period::Weekly { weekday }),
                Err(e) => {
                    self.error("quota_reset_day", e);
                    None
                }
            },
            (_, Some(_)) => {
                let msg = "has no meaning with quota_period daily (use quota_reset_time)";
                self.error("quota_reset_day", msg.into());
                None
            }
            (_, None) => Some(Period::Daily),
        };
        let reset_minute = self.or("quota_reset_time", 0, parse_time_of_day);
        let direction = self.or("quota_direction", Direction::Both, |s| match s {
            "both" => Ok(Direction::Both),
            "down" => Ok(Direction::Down),
            "up" => Ok(Direction::Up),
            _ => Err(format!("must be both, down or up, not '{s}'")),
        });
        let warn = self.or("quota_warn", q::DEFAULT_WARN, |s| {
            number(s.strip_suffix('%').unwrap_or(s), 1, 100)
        });
        let save_interval = self.or("quota_save_interval", q::DEFAULT_SAVE_INTERVAL, |s| match s
            .strip_suffix('h')
        {
            Some(h) => number::<u64>(h, 1, 24)
                .map(|h| Duration::from_secs(h * 3600))
                .map_err(|_| {
                    format!("must be a duration from 1m to 24h such as 30m or 1h, not '{s}'")
                }),
            None => duration(s, SEC, MIN, 24 * HOUR).map_err(|_| {
                format!("must be a duration from 1m to 24h such as 30m or 1h, not '{s}'")
            }),
        });
        Some(q::Quota {
            bytes: bytes?,
            period: period?,
            reset_minute,
            direction,
            warn,
            save_interval,
        })
    }

    /// mwan3's `flush_conntrack` events, applied to this WAN's pinned connections only.
    fn flush(&mut self) -> Flush {
        if self.sec.get("flush_conntrack").is_none() {
            self.read.push("flush_conntrack");
            return Flush {
                on_down: true,
                on_up: false,
            };
        }
        let mut flush = Flush::default();
        for v in self.list("flush_conntrack") {
            match v {
                "ifdown" | "disconnected" => flush.on_down = true,
                "ifup" | "connected" => flush.on_up = true,
                "never" | "none" => {}
                other => self.error(
                    "flush_conntrack",
                    format!(
                        "must be ifdown, disconnected, ifup, connected or never, not '{other}'"
                    ),
                ),
            }
        }
        flush
    }

    fn quality(&mut self) -> Option<Quality> {
        let errors = self.errors();
        let on = self.or("check_quality", false, parse_bool);
        // Plain numbers are milliseconds here, as in mwan3.
        let failure_latency = self.or("failure_latency", Duration::from_millis(1000), |s| {
            duration(s, MS, 1, MIN)
        });
        let recovery_latency = self.or("recovery_latency", Duration::from_millis(500), |s| {
            duration(s, MS, 1, MIN)
        });
        let failure_loss = self.or("failure_loss", 40, |s| number(s, 0, 100));
        let recovery_loss = self.or("recovery_loss", 10, |s| number(s, 0, 100));
        if on && self.errors() == errors && recovery_latency > failure_latency {
            self.error(
                "recovery_latency",
                format!(
                    "must not exceed failure_latency ({})",
                    fmt_duration(failure_latency)
                ),
            );
        }
        if on && self.errors() == errors && recovery_loss > failure_loss {
            self.error(
                "recovery_loss",
                format!("must not exceed failure_loss ({failure_loss})"),
            );
        }
        on.then_some(Quality {
            failure_latency,
            recovery_latency,
            failure_loss,
            recovery_loss,
        })
    }

    fn damping(&mut self) -> Option<Damping> {
        let errors = self.errors();
        let on = self.or("flap_damping", true, parse_bool);
        let penalty = self.or("flap_penalty", 1000, |s| number(s, 1, 1_000_000));
        let suppress = self.or("flap_suppress", 2000, |s| number(s, 1, 1_000_000));
        let reuse = self.or("flap_reuse", 750, |s| number(s, 1, 1_000_000));
        let half_life = self.or("flap_half_life", Duration::from_secs(60), |s| {
            duration(s, SEC, SEC, HOUR)
        });
        let max_hold = self.or("flap_max_hold", Duration::from_secs(300), |s| {
            duration(s, SEC, SEC, HOUR)
        });
        if on && self.errors() == errors && reuse >= suppress {
            self.error(
                "flap_reuse",
                format!("must be below flap_suppress ({suppress})"),
            );
        }
        on.then_some(Damping {
            penalty,
            suppress,
            reuse,
            half_life,
            max_hold,
        })
    }

    fn member(mut self, names: &Names) -> Option<Member> {
        let name = self.name();
        let interface = self.required("interface", |s| match names.interfaces.contains(s) {
            true => Ok(s.to_string()),
            false => Err(format!("names no interface section: '{s}'")),
        });
        let metric = self.or("metric", 1, |s| number(s, 1, 256));
        let weight = self.or("weight", 1, |s| number(s, 1, 1000));
        self.finish(&[]);
        Some(Member {
            name: name?,
            interface: interface?,
            metric,
            weight,
        })
    }

    fn policy(mut self, names: &Names, default_last_resort: LastResort) -> Option<Policy> {
        let name = self.name();
        if name.as_deref() == Some(DEFAULT_POLICY) {
            let msg = "the policy name 'default' is reserved: use_policy and default_policy \
                       'default' mean the main routing table"
                .to_string();
            let line = self.sec.line;
            self.check.error(line, Some(self.label.clone()), None, msg);
        }
        let mut use_member: Vec<String> = Vec::new();
        for m in self.list("use_member") {
            if !names.members.contains(m) {
                self.error("use_member", format!("names no member section: '{m}'"));
            } else if use_member.iter().any(|u| u == m) {
                self.error("use_member", format!("lists '{m}' twice"));
            } else {
                use_member.push(m.to_string());
            }
        }
        let last_resort = self.or("last_resort", default_last_resort, parse_last_resort);
        let mode = self.mode();
        self.finish(&[]);
        Some(Policy {
            name: name?,
            use_member,
            last_resort,
            mode,
        })
    }

    /// `mode` and the options that tune it; a tuning option of another mode is an error
    /// (it would silently do nothing).
    fn mode(&mut self) -> Mode {
        let mode = self.or("mode", Mode::Weighted, |s| match s {
            "weighted" => Ok(Mode::Weighted),
            "round_robin" => Ok(Mode::RoundRobin),
            "least_connections" => Ok(Mode::LeastConnections),
            "least_used" => Ok(Mode::LeastUsed),
            "lowest_latency" => Ok(Mode::LowestLatency {
                margin: Duration::ZERO,
                hold: Duration::ZERO,
            }),
            "overflow" => Ok(Mode::Overflow { threshold: 0 }),
            _ => Err(format!(
                "must be weighted, round_robin, least_connections, lowest_latency, \
                 least_used or overflow, not '{s}'"
            )),
        });
        for (option, wanted) in [
            ("overflow_threshold", "overflow"),
            ("latency_margin", "lowest_latency"),
            ("latency_hold", "lowest_latency"),
        ] {
            if mode.name() != wanted && self.sec.get(option).is_some() {
                self.read.push(option);
                self.error(option, format!("only applies to mode {wanted}"));
            }
        }
        match mode {
            Mode::LowestLatency { .. } => Mode::LowestLatency {
                margin: self.or("latency_margin", Duration::from_millis(10), |s| {
                    duration(s, MS, 0, 10 * SEC)
                }),
                hold: self.or("latency_hold", Duration::from_secs(5), |s| {
                    duration(s, SEC, 0, HOUR)
                }),
            },
            Mode::Overflow { .. } => Mode::Overflow {
                threshold: self.or("overflow_threshold", 80, |s| number(s, 1, 100)),
            },
            other => other,
        }
    }
}

impl Reader<'_, '_, '_> {
    fn rule(mut self, names: &Names) -> Option<Rule> {
        let name = self.label.clone();
        let use_policy = self.required("use_policy", |s| match s {
            "default" => Ok(UsePolicy::Default),
            p if names.policies.contains(&p) => Ok(UsePolicy::Policy(p.to_string())),
            p => Err(format!("names no policy section: '{p}' (or use 'default')")),
        });
        let family = self.or("family", Family::Any, parse_family);
        let proto = self.or("proto", Proto::All, parse_proto);
        let prefixes = |r: &mut Self, option: &'static str| -> Vec<AddrMatch> {
            let mut out = Vec::new();
            for v in r.list(option).into_iter().flat_map(|v| v.split([',', ' '])) {
                if v.is_empty() {
                    continue;
                }
                match parse_addr_match(v) {
                    Ok(p) if family_matches(family, &p.addr()) => out.push(p),
                    Ok(_) => r.error(
                        option,
                        format!("'{v}' does not match family {}", family_name(family)),
                    ),
                    Err(e) => r.error(option, e),
                }
            }
            out
        };
        let src_ip = prefixes(&mut self, "src_ip");
        let dest_ip = prefixes(&mut self, "dest_ip");
        let ports = |r: &mut Self, option: &'static str| -> Vec<PortRange> {
            let mut out = Vec::new();
            for v in r.list(option).into_iter().flat_map(|v| v.split([',', ' '])) {
                if v.is_empty() {
                    continue;
                }
                match parse_ports(v) {
                    Ok(p) => out.push(p),
                    Err(e) => r.error(option, e),
                }
            }
            out
        };
        let src_port = ports(&mut self, "src_port");
        let dest_port = ports(&mut self, "dest_port");
        if (!src_port.is_empty() || !dest_port.is_empty())
            && !matches!(proto, Proto::All | Proto::Tcp | Proto::Udp)
        {
            let option = if src_port.is_empty() {
                "dest_port"
            } else {
                "src_port"
            };
            self.error(option, "needs proto tcp, udp or all (tcp and udp)".into());
        }
        let src_iface = self.get("src_iface", parse_device);
        let ipset = self.get("ipset", |s| {
            if is_nft_identifier(s) {
                Ok(s.to_string())
            } else {
                Err(format!(
                    "must be an nft set name (a letter, then letters, digits, _ - . /), not '{s}'"
                ))
            }
        });
        let sticky = self.or("sticky", false, parse_bool);
        let timeout = self.or("timeout", Duration::from_secs(600), |s| {
            duration(s, SEC, SEC, 24 * HOUR)
        });
        self.finish(&["logging"]);
        Some(Rule {
            name,
            family,
            proto,
            src_ip,
            dest_ip,
            src_port,
            dest_port,
            src_iface,
            ipset,
            sticky,
            timeout,
            use_policy: use_policy?,
        })
    }
}

/// A path (`must_start` "/") or host name for an HTTP request line: printable ASCII
/// without spaces, at most 256 characters, so the request stays one well-formed line.
fn http_text(must_start: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |s| {
        if s.is_empty()
            || s.len() > 256
            || !s.starts_with(must_start)
            || !s.bytes().all(|b| b.is_ascii_graphic())
        {
            let start = if must_start.is_empty() {
                String::new()
            } else {
                format!(" starting with '{must_start}'")
            };
            Err(format!(
                "must be 1-256 printable characters{start}, without spaces, not '{s}'"
            ))
        } else {
            Ok(s.to_string())
        }
    }
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    Ok(match s {
        "all" => Proto::All,
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "icmp" => Proto::Icmp,
        n => match n.parse::<u8>() {
            Ok(6) => Proto::Tcp,
            Ok(17) => Proto::Udp,
            Ok(1) => Proto::Icmp,
            Ok(n) => Proto::Number(n),
            Err(_) => {
                return Err(format!(
                    "must be all, tcp, udp, icmp or a protocol number, not '{s}'"
                ))
            }
        },
    })
}

/// `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`.
fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let err = || format!("must be an address or network such as 192.0.2.0/24, not '{s}'");
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(err)?,
        None => max,
    };
    Ok(Prefix { addr, len })
}

/// A rule's address: what `parse_prefix` takes, or an IPv4 address with a dotted netmask
/// (`192.0.2.0/255.255.255.0`, `0.0.0.1/0.0.0.1`).
fn parse_addr_match(s: &str) -> Result<AddrMatch, String> {
    if let Some((a, m)) = s.split_once('/') {
        if let (Ok(addr), Ok(mask)) = (a.parse::<Ipv4Addr>(), m.parse::<Ipv4Addr>()) {
            return Ok(AddrMatch::with_mask(addr, mask));
        }
    }
    parse_prefix(s).map(AddrMatch::Prefix).map_err(|_| {
        format!(
            "must be an address, a network such as 192.0.2.0/24 or an IPv4 address with a \
             netmask such as 0.0.0.1/0.0.0.1, not '{s}'"
        )
    })
}

/// `443`, `8000-8100` or mwan3's `8000:8100`.
fn parse_ports(s: &str) -> Result<PortRange, String> {
    let err = || format!("must be a port or range such as 443 or 8000-8100, not '{s}'");
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(err);
    let (first, last) = match s.split_once(['-', ':']) {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(s)?, port(s)?),
    };
    if first > last {
        return Err(err());
    }
    Ok(PortRange { first, last })
}

fn number<T: TryFrom<u64>>(s: &str, lo: u64, hi: u64) -> Result<T, String> {
    let err = || format!("must be a whole number from {lo} to {hi}, not '{s}'");
    let n: u64 = s.parse().map_err(|_| err())?;
    if !(lo..=hi).contains(&n) {
        return Err(err());
    }
    T::try_from(n).map_err(|_| err())
}

/// uci's boolean spellings.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(format!(
            "must be a boolean (1/0, yes/no, on/off, true/false), not '{s}'"
        )),
    }
}

fn parse_mask(s: &str) -> Result<u32, String> {
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    match n {
        Some(n) if n != 0 => Ok(n),
        _ => Err(format!(
            "must be a non-zero 32-bit mask such as 0x3F00, not '{s}'"
        )),
    }
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    use log::LevelFilter::*;
    match s {
        // emerg, alert and crit appear in mwan3 configs (syslog names).
        "emerg" | "alert" | "crit" | "err" | "error" => Ok(Error),
        "warning" | "warn" => Ok(Warn),
        "notice" | "info" => Ok(Info),
        "debug" => Ok(Debug),
        _ => Err(format!(
            "must be error, warning, notice, info or debug, not '{s}'"
        )),
    }
}

fn parse_last_resort(s: &str) -> Result<LastResort, String> {
    match s {
        "unreachable" => Ok(LastResort::Unreachable),
        "blackhole" => Ok(LastResort::Blackhole),
        "default" => Ok(LastResort::Default),
        _ => Err(format!(
            "must be unreachable, blackhole or default, not '{s}'"
        )),
    }
}

fn parse_family(s: &str) -> Result<Family, String> {
    match s {
        "ipv4" => Ok(Family::Ipv4),
        "ipv6" => Ok(Family::Ipv6),
        "any" => Ok(Family::Any),
        _ => Err(format!("must be ipv4, ipv6 or any, not '{s}'")),
    }
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
        Family::Any => "any",
    }
}

fn family_matches(f: Family, ip: &IpAddr) -> bool {
    matches!(
        (f, ip),
        (Family::Any, _) | (Family::Ipv4, IpAddr::V4(_)) | (Family::Ipv6, IpAddr::V6(_))
    )
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("must be an IP address, not '{s}'"))
}

/// A name the kernel accepts for a network device (`dev_valid_name()` in net/core/dev.c):
/// 1 to 15 bytes (IFNAMSIZ with its NUL), not `.` or `..`, no `/`, `:` or whitespace.
fn parse_device(s: &str) -> Result<String, String> {
    if !is_device_name(s) {
        return Err(format!(
            "must be a Linux device name (1-15 of the characters a-z A-Z 0-9 _ - . @ +), not '{s}'"
        ));
    }
    Ok(s.to_string())
}

/// `500ms`, `2s`, `1.5m`, or a plain (possibly decimal) number of `plain_ms` units;
/// bounded to `lo_ms..=hi_ms`. Sub-millisecond parts are dropped.
pub(super) fn duration(s: &str, plain_ms: u64, lo_ms: u64, hi_ms: u64) -> Result<Duration, String> {
    let (lo, hi) = (
        fmt_duration(Duration::from_millis(lo_ms)),
        fmt_duration(Duration::from_millis(hi_ms)),
    );
    let err = || format!("must be a duration from {lo} to {hi} such as 500ms, 2s or 1m, not '{s}'");
    let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, MS)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, SEC)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, MIN)
    } else {
        (s, plain_ms)
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !digits(int)
        || !digits(frac)
        || int.len() > 12
        || frac.len() > 6
    {
        return Err(err());
    }
    // Fixed point in millionths of `unit`: at most 10^18 * 60_000, which fits in a u128.
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err())?
    };
    let frac: u128 = format!("{frac:0<6}").parse().map_err(|_| err())?;
    let ms = (int * 1_000_000 + frac) * u128::from(unit) / 1_000_000;
    match u64::try_from(ms) {
        Ok(ms) if (lo_ms..=hi_ms).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(err()),
    }
}

/// The shortest of `5m`, `2s`, `1.5s`, `500ms` that is exact to the millisecond.
pub(super) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 60_000 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms >= 1000 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'))
    }
}
