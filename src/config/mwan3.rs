//! `uplinkd import-mwan3`: an mwan3 configuration → an uplinkd one that behaves the same.
//!
//! Pure text to text. The rule is: whatever mwan3 runs converts, and what cannot be
//! carried exactly is approximated or dropped *with a warning that says what really
//! happens now*; only a file without any usable `interface` section fails. Per section:
//!
//! - **interface**: mwan3's defaults that differ from uplinkd's are written explicitly
//!   (disabled unless `enabled 1`; `timeout 4`, `interval 10`, `down 5`, `up 5`). The
//!   device comes from the network configuration (`device`, older `ifname`, `@alias`,
//!   `pppoe-<name>` and the like for PPP protocols); when it names none (wifi clients,
//!   netifd's dynamic `wan_4`/`wan_6`, modems) `device` is left out and uplinkd follows
//!   the netifd interface. Targets must be addresses of the interface's family that can
//!   answer; hostnames and `0.0.0.0` are dropped. `reliability 0` (mwan3 then never
//!   declares the WAN down) becomes "no targets" (the WAN follows its link). Track
//!   methods uplinkd lacks map to the nearest one (`TRACK_METHODS`).
//! - **member**: members of interfaces without a section are dropped, as mwan3 skips them.
//! - **policy**: two members of one interface become one with mwan3's total share; a
//!   policy left without members keeps its `last_resort` (mwan3's default `unreachable`).
//! - **rule**: mwan3's values are normalised (dotted netmasks, also IPv4 ones that are no
//!   prefix, `:` port ranges, protocol names); what mwan3 itself ignores (`enabled 0`, names over 15 characters, ports
//!   without tcp/udp, a `src_iface` without a device) is ignored too; what uplinkd cannot
//!   express drops that one rule. `use_policy unreachable`/`blackhole` become policies
//!   without members. The policy of the first rule that matches everything becomes
//!   `default_policy`; without one, `default_policy 'default'` keeps mwan3's behaviour
//!   for unmatched traffic: the main routing table.
//! - `ipset` rules are kept; dnsmasq must fill the set in uplinkd's table. With the dhcp
//!   configuration given, [`Import::dhcp_batch`] holds the `uci batch` lines that point its
//!   `ipset` sections there.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use super::uci::{self, Section, Value};
use super::{AddrMatch, Error, Prefix, DEFAULT_POLICY, MAX_TARGETS};

/// The converted file and what could not be carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub text: String,
    /// One line each, `file:line: ...`.
    pub warnings: Vec<String>,
    /// `uci batch` commands for `/etc/config/dhcp` (empty when there is nothing to do).
    pub dhcp_batch: Vec<String>,
}

/// The other configuration files the conversion reads, when available.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    /// `/etc/config/network`: devices of interfaces.
    pub network: Option<&'a str>,
    /// `/etc/config/dhcp`: dnsmasq's `ipset` sections.
    pub dhcp: Option<&'a str>,
}

/// mwan3's defaults for options whose uplinkd default differs.
const INTERFACE_DEFAULTS: [(&str, &str); 5] = [
    ("enabled", "0"),
    ("timeout", "4"),
    ("interval", "10"),
    ("down", "5"),
    ("up", "5"),
];
const POLICY_LAST_RESORT: &str = "unreachable";

/// How each mwan3 `track_method` is carried: (mwan3 method, uplinkd method, what changes).
/// An empty note means the same probe. Change the second column when uplinkd gains a
/// nearer method.
const TRACK_METHODS: [(&str, &str, &str); 9] = [
    ("ping", "ping", ""),
    ("nping-icmp", "ping", ""),
    ("httping", "http", ""),
    ("nping-tcp", "tcp", ""),
    (
        "nping-udp",
        "ping",
        "mwan3 sent UDP probes; uplinkd pings the targets instead",
    ),
    (
        "arping",
        "gateway",
        "mwan3 asked the targets for their MAC address on the link (ARP); uplinkd asks \
         the kernel to re-resolve the WAN's gateway (ARP/NDP) each round instead, and \
         does not probe the track_ip targets",
    ),
    (
        "nping-arp",
        "gateway",
        "mwan3 asked the targets for their MAC address on the link (ARP); uplinkd asks \
         the kernel to re-resolve the WAN's gateway (ARP/NDP) each round instead, and \
         does not probe the track_ip targets",
    ),
    ("nslookup", "dns", ""),
    (
        "",
        "ping",
        "mwan3 does not know this method and pinged the targets; so does uplinkd",
    ),
];
/// The name mwan3's nslookup probe asks each target for.
const NSLOOKUP_NAME: &str = "www.google.com";
/// The port nping's TCP probes use by default (a RST answers, as for uplinkd's tcp).
const NPING_TCP_PORT: &str = "80";

/// Interface options carried over unchanged after a range check: (name, lowest, highest).
/// Durations are whole seconds in mwan3; latencies milliseconds.
const NUMERIC_INTERFACE: [(&str, u64, u64); 11] = [
    ("count", 1, 10),
    ("timeout", 1, 60),
    ("interval", 1, 3600),
    ("failure_interval", 1, 3600),
    ("recovery_interval", 1, 3600),
    ("up", 1, 100),
    ("down", 1, 100),
    ("failure_latency", 1, 60_000),
    ("recovery_latency", 1, 60_000),
    ("failure_loss", 0, 100),
    ("recovery_loss", 0, 100),
];

/// mwan3 options uplinkd has no use for, with no effect on routing.
const IGNORED_INTERFACE: [&str; 4] = ["size", "max_ttl", "httping_ssl", "keep_failure_interval"];

/// mwan3 ignores rules whose name is longer (its chain names would not fit).
const MAX_RULE_NAME: usize = 15;

/// Converts `mwan3` (the text of `/etc/config/mwan3`; `file` names it in messages). Fails
/// only when the file does not parse or has no usable `interface` section.
pub fn convert(file: &str, mwan3: &str, inputs: Inputs) -> Result<Import, Vec<Error>> {
    let sections = merge_named(uci::parse(file, mwan3)?);
    let network = inputs
        .network
        .and_then(|text| uci::parse("network", text).ok());
    let interfaces: Vec<&Section> = sections
        .iter()
        .filter(|s| s.ty == "interface" && s.name.is_some())
        .collect();
    if interfaces.is_empty() {
        let line = sections
            .iter()
            .find(|s| s.ty == "interface")
            .map_or(1, |s| s.line);
        return Err(vec![Error {
            file: file.to_string(),
            line,
            section: None,
            option: None,
            message: "no named 'config interface' section: nothing to convert".into(),
        }]);
    }
    let mut c = Converter {
        file,
        out: String::new(),
        warnings: Vec::new(),
        names: HashSet::new(),
        reserved: sections.iter().filter_map(|s| s.name.clone()).collect(),
        network: network.unwrap_or_default(),
        has_network: inputs.network.is_some(),
        families: BTreeMap::new(),
        members: BTreeMap::new(),
        policies: Vec::new(),
        extra_policies: Vec::new(),
        sets: Vec::new(),
    };
    if !c.has_network {
        c.warn(
            1,
            "no network configuration: every interface follows the netifd interface of its \
             name (device, gateway and state over ubus)"
                .into(),
        );
    }
    let header = format!(
        "# Converted from {file} by uplinkd import-mwan3.\n\
         # mwan3's probe timing is kept; uplinkd's own defaults (1 s probes, 3 rounds)\n\
         # fail over faster. Flap damping is on (option flap_damping '0' turns it off).\n"
    );

    // Interfaces first: members, policies and rules depend on what survives.
    let mut body = String::new();
    for s in &sections {
        if s.ty == "interface" {
            c.interface(s);
            body.push_str(&core::mem::take(&mut c.out));
        }
    }
    for s in sections.iter().filter(|s| s.ty == "member") {
        c.member(s);
        body.push_str(&core::mem::take(&mut c.out));
    }
    for s in sections.iter().filter(|s| s.ty == "policy") {
        c.policy(s);
        body.push_str(&core::mem::take(&mut c.out));
    }
    let mut default_policy: Option<(String, usize)> = None;
    for s in sections.iter().filter(|s| s.ty == "rule") {
        if let Some(to) = c.rule(s) {
            if default_policy.is_none() {
                default_policy = Some((to, s.line));
            }
        }
        body.push_str(&core::mem::take(&mut c.out));
    }
    for (name, last_resort) in core::mem::take(&mut c.extra_policies) {
        c.header("policy", &name);
        c.option("last_resort", &last_resort);
        body.push_str(&core::mem::take(&mut c.out));
    }
    let dhcp_batch = match inputs.dhcp {
        Some(text) => c.dhcp(text),
        None => {
            c.ipset_advice(None);
            Vec::new()
        }
    };

    let globals = sections
        .iter()
        .filter(|s| s.ty == "globals")
        .collect::<Vec<_>>();
    c.header("globals", "globals");
    let default_policy = match default_policy {
        Some((p, _)) => p,
        // mwan3 leaves traffic no rule matches unmarked: the main table routes it.
        None => DEFAULT_POLICY.to_string(),
    };
    c.option("default_policy", &default_policy);
    c.globals(globals.first().copied());
    for extra in globals.iter().skip(1) {
        c.warn(extra.line, "a second globals section is ignored".into());
    }
    for s in &sections {
        if !matches!(
            s.ty.as_str(),
            "globals" | "interface" | "member" | "policy" | "rule"
        ) {
            let msg = format!("section type '{}' has no equivalent: dropped", s.ty);
            c.warn(s.line, msg);
        }
    }
    let out = header + &c.out + &body;
    Ok(Import {
        text: out,
        warnings: c.warnings,
        dhcp_batch,
    })
}

struct Converter<'f> {
    file: &'f str,
    out: String,
    warnings: Vec<String>,
    /// Section names written so far (uci names are unique within a file).
    names: HashSet<String>,
    /// Every section name of the mwan3 file, for names of new sections.
    reserved: HashSet<String>,
    network: Vec<Section>,
    has_network: bool,
    /// Interfaces written, and whether they are IPv6.
    families: BTreeMap<String, bool>,
    /// Members written: mwan3 name → (written name, interface, metric, weight).
    members: BTreeMap<String, (String, String, u16, u16)>,
    /// Policies written: (mwan3 name, written name).
    policies: Vec<(String, String)>,
    /// Policies to add for `use_policy unreachable/blackhole`: (name, last_resort).
    extra_policies: Vec<(String, String)>,
    /// Sets named by rules: (set, rule, line).
    sets: Vec<(String, String, usize)>,
}

fn single(v: &Value) -> String {
    match v {
        Value::Single(s) => s.clone(),
        Value::List(items) => items.join(" "),
    }
}

fn items(v: &Value) -> Vec<String> {
    match v {
        Value::Single(s) => s
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Value::List(items) => items
            .iter()
            .flat_map(|s| s.split([' ', ',']))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// mwan3 reads booleans as uci does.
fn truthy(s: &str) -> Option<bool> {
    match s {
        "1" | "on" | "true" | "yes" | "enabled" => Some(true),
        "0" | "off" | "false" | "no" | "disabled" => Some(false),
        _ => None,
    }
}

impl Converter<'_> {
    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(format!(
            "{}:{line}: {}",
            self.file,
            super::one_line(&message)
        ));
    }

    fn header(&mut self, ty: &str, name: &str) {
        self.names.insert(name.to_string());
        self.out
            .push_str(&format!("\nconfig {ty} {}\n", quote(name)));
    }

    fn option(&mut self, name: &str, value: &str) {
        self.out
            .push_str(&format!("\toption {name} {}\n", quote(value)));
    }

    fn list(&mut self, name: &str, value: &str) {
        self.out
            .push_str(&format!("\tlist {name} {}\n", quote(value)));
    }

    /// A name for a new section, not yet used in the file: `base`, else `base_2`, ...
    fn fresh_name(&self, base: &str, taken: &HashSet<String>) -> String {
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let free =
            |n: &str| !self.names.contains(n) && !self.reserved.contains(n) && !taken.contains(n);
        if free(&base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| free(n))
            .unwrap_or(base)
    }

    fn globals(&mut self, g: Option<&Section>) {
        let Some(g) = g else {
            return;
        };
        for o in &g.options {
            let v = single(&o.value);
            match o.name.as_str() {
                "mmx_mask" => {
                    let n = v
                        .strip_prefix("0x")
                        .or_else(|| v.strip_prefix("0X"))
                        .map_or_else(|| v.parse().ok(), |h| u32::from_str_radix(h, 16).ok());
                    // WAN marks, policy marks and the main mark need 3 values at least.
                    match n.filter(|n| (n >> n.trailing_zeros()).trailing_ones() >= 3) {
                        Some(_) => self.option("fwmark_mask", &v),
                        None => self.warn(
                            o.line,
                            format!("mmx_mask '{v}' leaves no room for marks: uplinkd uses 0x3F00"),
                        ),
                    }
                }
                // Packet logging of rules (iptables LOG), not the daemon's log level.
                "logging" | "loglevel" => {
                    if o.name == "logging" && truthy(&v) == Some(true) {
                        self.warn(
                            o.line,
                            "globals: logging: mwan3 logged the packets of rules with \
                             'logging 1'; uplinkd logs state changes, not packets: dropped"
                                .into(),
                        );
                    }
                }
                "rtmon_interval" | "rt_table_lookup" => {}
                "local_source" => self.warn(
                    o.line,
                    format!(
                        "globals: local_source '{v}': uplinkd routes the router's own \
                         connections like forwarded ones: dropped"
                    ),
                ),
                other => self.warn(
                    o.line,
                    format!("globals: option {other} is not a known mwan3 option: dropped"),
                ),
            }
        }
    }

    fn interface(&mut self, s: &Section) {
        let Some(name) = s.name.clone() else {
            self.warn(
                s.line,
                "an interface section without a name: mwan3 cannot use it: dropped".into(),
            );
            return;
        };
        let get = |o: &str| s.get(o).map(|o| (single(&o.value), o.line));
        self.header("interface", &name);
        match device_of(&self.network, &name, 0) {
            Some(d) => self.option("device", &d),
            None if self.has_network => {
                let msg = format!(
                    "interface '{name}': the network configuration names no device for it \
                     (wifi client, dynamic or modem interface): uplinkd follows the netifd \
                     interface '{name}'"
                );
                self.warn(s.line, msg);
            }
            None => {}
        }
        let v6 = match get("family") {
            None => false,
            Some((f, _)) if f == "ipv4" => false,
            Some((f, _)) if f == "ipv6" => true,
            Some((f, line)) => {
                self.warn(
                    line,
                    format!("interface '{name}': family '{f}' is not ipv4 or ipv6: ipv4"),
                );
                false
            }
        };
        self.option("family", if v6 { "ipv6" } else { "ipv4" });
        self.families.insert(name.clone(), v6);

        // Targets: addresses of the interface's family that can answer.
        let mut targets: Vec<IpAddr> = Vec::new();
        let track_line = s.get("track_ip").map_or(s.line, |o| o.line);
        for t in s
            .get("track_ip")
            .map(|o| items(&o.value))
            .unwrap_or_default()
        {
            match t.parse::<IpAddr>() {
                Ok(ip) if targets.contains(&ip) => {}
                Ok(ip) if ip.is_ipv6() != v6 => self.warn(
                    track_line,
                    format!("interface '{name}': track_ip '{t}' is of the other family: dropped"),
                ),
                Ok(ip) if !usable_target(&ip) => self.warn(
                    track_line,
                    format!(
                        "interface '{name}': track_ip '{t}' cannot answer probes \
                         (unspecified, loopback, multicast, broadcast or link-local): dropped"
                    ),
                ),
                Ok(ip) => targets.push(ip),
                Err(_) => self.warn(
                    track_line,
                    format!(
                        "interface '{name}': track_ip '{t}' is not an address (mwan3 resolved \
                         hostnames at every probe; uplinkd probes addresses): dropped"
                    ),
                ),
            }
        }
        if targets.len() > MAX_TARGETS {
            self.warn(
                track_line,
                format!(
                    "interface '{name}': {} track_ip targets, only the first {MAX_TARGETS} are kept",
                    targets.len()
                ),
            );
            targets.truncate(MAX_TARGETS);
        }
        let listed = s.get("track_ip").is_some();
        // reliability: 0 means mwan3 never declares the WAN down from its probes.
        let mut reliability: Option<usize> = None;
        let mut reliability_zero = false;
        if let Some((r, line)) = get("reliability") {
            match r.parse::<usize>() {
                Ok(0) if listed => {
                    self.warn(
                        line,
                        format!(
                            "interface '{name}': reliability 0: mwan3 probed but never took \
                             the WAN down; uplinkd keeps no targets and follows its link \
                             state (carrier, netifd) only"
                        ),
                    );
                    targets.clear();
                    reliability_zero = true;
                }
                Ok(n) if n > 0 => reliability = Some(n),
                // Without targets mwan3 does not probe and ignores it.
                Ok(_) => {}
                Err(_) => self.warn(
                    line,
                    format!("interface '{name}': reliability '{r}' is not a number: 1"),
                ),
            }
        }
        let had = s.get("track_ip").map_or(0, |o| items(&o.value).len());
        if had > 0 && targets.is_empty() && !reliability_zero {
            self.warn(
                track_line,
                format!(
                    "interface '{name}': no usable track_ip is left: uplinkd does not probe \
                     it and follows its link state (carrier, netifd) only; add track_ip \
                     addresses to probe it"
                ),
            );
        }
        // arping asked the neighbours on the link: uplinkd's gateway probe, whose one
        // target per family is the gateway, not track_ip.
        let to_gateway = !targets.is_empty()
            && get("track_method").is_some_and(|(m, _)| {
                TRACK_METHODS
                    .iter()
                    .any(|(from, to, _)| *from == m && *to == "gateway")
            });
        if !to_gateway {
            for t in &targets {
                self.list("track_ip", &t.to_string());
            }
        }
        if let Some(r) = reliability.filter(|_| !targets.is_empty() && !to_gateway) {
            let line = get("reliability").map_or(s.line, |(_, l)| l);
            let kept = if r > targets.len() {
                let why = if r > had {
                    "mwan3 never brought it up"
                } else {
                    "targets were dropped"
                };
                self.warn(
                    line,
                    format!(
                        "interface '{name}': reliability {r} exceeds the {} usable targets \
                         ({why}): lowered to {}",
                        targets.len(),
                        targets.len()
                    ),
                );
                targets.len()
            } else {
                r
            };
            self.option("reliability", &kept.to_string());
        }

        // The probe method.
        if let Some((m, line)) = get("track_method") {
            let (_, to, note) = TRACK_METHODS
                .iter()
                .find(|(from, _, _)| *from == m)
                .or(TRACK_METHODS.last())
                .copied()
                .unwrap_or(("", "ping", ""));
            // httping over TLS: uplinkd speaks plain HTTP only.
            let tls =
                to == "http" && get("httping_ssl").is_some_and(|(v, _)| truthy(&v) == Some(true));
            if !targets.is_empty() {
                match to {
                    "tcp" => {
                        self.option("track_method", "tcp");
                        self.option("track_port", NPING_TCP_PORT);
                    }
                    // mwan3 runs `httping http://<target>`: any HTTP answer to `/` is a
                    // success.
                    "http" if !tls => {
                        self.option("track_method", "http");
                        self.option("http_path", "/");
                        self.option("expect_status", "any");
                    }
                    "gateway" => self.option("track_method", "gateway"),
                    // mwan3 runs `nslookup www.google.com <target>`.
                    "dns" => {
                        self.option("track_method", "dns");
                        self.option("dns_query", NSLOOKUP_NAME);
                    }
                    _ => {}
                }
                if tls {
                    self.warn(
                        line,
                        format!(
                            "interface '{name}': track_method 'httping' with httping_ssl: \
                             uplinkd does not speak TLS and pings the targets instead, \
                             which proves the path but not that a web server answers"
                        ),
                    );
                }
                if !note.is_empty() {
                    self.warn(
                        line,
                        format!("interface '{name}': track_method '{m}': {note}"),
                    );
                }
            }
        }

        for o in &s.options {
            let opt = o.name.as_str();
            let v = single(&o.value);
            if let Some((_, lo, hi)) = NUMERIC_INTERFACE.iter().find(|(n, _, _)| *n == opt) {
                // Seconds may have a fraction (uplinkd takes 0.1 s steps).
                let duration = opt == "timeout" || opt.ends_with("interval");
                // (uplinkd's own duration parser: no float parsing code in the binary.)
                let fraction = duration
                    .then(|| super::check::duration(v.trim(), 1000, 100, hi * 1000).ok())
                    .flatten()
                    .filter(|d| d.as_millis() % 1000 != 0);
                if fraction.is_some() {
                    self.option(opt, v.trim());
                    continue;
                }
                match v.trim().parse::<u64>() {
                    Ok(n) if (*lo..=*hi).contains(&n) => self.option(opt, &n.to_string()),
                    Ok(n) => {
                        let kept = n.clamp(*lo, *hi);
                        self.warn(
                            o.line,
                            format!("interface '{name}': {opt} {n} is outside {lo}..{hi}: {kept}"),
                        );
                        self.option(opt, &kept.to_string());
                    }
                    Err(_) => self.warn(
                        o.line,
                        format!("interface '{name}': {opt} '{v}' is not a whole number: dropped"),
                    ),
                }
                continue;
            }
            match opt {
                "enabled" | "check_quality" => {
                    match truthy(&v) {
                        Some(b) => self.option(opt, if b { "1" } else { "0" }),
                        None => {
                            self.warn(
                            o.line,
                            format!("interface '{name}': {opt} '{v}' is not a boolean: 0, as in mwan3"),
                        );
                            self.option(opt, "0");
                        }
                    }
                }
                "initial_state" => match v.as_str() {
                    "online" | "offline" => self.option(opt, &v),
                    _ => self.warn(
                        o.line,
                        format!("interface '{name}': initial_state '{v}': online"),
                    ),
                },
                "flush_conntrack" => self.flush(&name, o),
                "family" | "track_ip" | "track_method" | "reliability" => {}
                _ if IGNORED_INTERFACE.contains(&opt) => {}
                _ => self.warn(
                    o.line,
                    format!(
                        "interface '{name}': option {opt} is not a known mwan3 option: dropped"
                    ),
                ),
            }
        }
        // check_quality needs recovery thresholds not above the failure ones.
        for (fail, rec, fail_d, rec_d) in [
            ("failure_latency", "recovery_latency", 1000u64, 500u64),
            ("failure_loss", "recovery_loss", 40, 10),
        ] {
            let val = |o: &str, d: u64| {
                get(o)
                    .and_then(|(v, _)| v.trim().parse::<u64>().ok())
                    .unwrap_or(d)
            };
            let quality = get("check_quality").is_some_and(|(v, _)| truthy(&v) == Some(true));
            if quality && val(rec, rec_d) > val(fail, fail_d) {
                let line = get(rec).map_or(s.line, |(_, l)| l);
                self.warn(
                    line,
                    format!(
                        "interface '{name}': {rec} is above {fail}: lowered to {}",
                        val(fail, fail_d)
                    ),
                );
                self.option(rec, &val(fail, fail_d).to_string());
            }
        }
        for (opt, default) in INTERFACE_DEFAULTS {
            if !self.out.contains(&format!("\toption {opt} ")) {
                self.option(opt, default);
            }
        }
        // mwan3 confirms a fall at `interval`; uplinkd's default is twice as fast.
        let section = &self.out[self.out.rfind("config ").unwrap_or(0)..];
        if !section.contains("\toption failure_interval ") {
            let interval = section
                .rfind("\toption interval ")
                .map(|i| &section[i + "\toption interval ".len()..])
                .and_then(|rest| rest.lines().next())
                .map(|v| v.trim_matches('\'').to_string());
            if let Some(interval) = interval {
                self.option("failure_interval", &interval);
            }
        }
    }

    /// `flush_conntrack`: ifup, ifdown, connected, disconnected, never; mwan3's older
    /// `always` is ifup and ifdown, as its own migration does.
    fn flush(&mut self, name: &str, o: &uci::Opt) {
        let mut kept: Vec<&str> = Vec::new();
        for v in items(&o.value) {
            match v.as_str() {
                "ifup" | "ifdown" | "connected" | "disconnected" | "never" => {
                    if let Some(k) = ["ifup", "ifdown", "connected", "disconnected", "never"]
                        .into_iter()
                        .find(|k| *k == v)
                    {
                        kept.push(k);
                    }
                }
                "always" => kept.extend(["ifup", "ifdown"]),
                other => self.warn(
                    o.line,
                    format!("interface '{name}': flush_conntrack '{other}' is not an mwan3 event: dropped"),
                ),
            }
        }
        // `never` with anything else means the others.
        if kept.len() > 1 {
            kept.retain(|k| *k != "never");
        }
        let mut seen = Vec::new();
        for k in kept {
            if !seen.contains(&k) {
                seen.push(k);
                self.list("flush_conntrack", k);
            }
        }
        if seen.is_empty() {
            // Nothing valid: mwan3 flushed nothing.
            self.list("flush_conntrack", "never");
        }
    }

    fn member(&mut self, s: &Section) {
        let Some(name) = s.name.clone() else {
            self.warn(
                s.line,
                "a member section without a name: no policy can use it: dropped".into(),
            );
            return;
        };
        let iface = s.get("interface").map(|o| single(&o.value));
        let Some(iface) = iface.filter(|i| self.families.contains_key(i)) else {
            let msg = match s.get("interface") {
                Some(o) => format!(
                    "member '{name}': interface '{}' has no interface section (mwan3 skips \
                     such members): dropped",
                    single(&o.value)
                ),
                None => format!("member '{name}' names no interface: dropped"),
            };
            self.warn(s.line, msg);
            return;
        };
        let mut metric = 1u16;
        let mut weight = 1u16;
        for o in &s.options {
            let v = single(&o.value);
            let (slot, lo, hi) = match o.name.as_str() {
                "interface" => continue,
                "metric" => (&mut metric, 1, 256),
                "weight" => (&mut weight, 1, 1000),
                other => {
                    let msg = format!(
                        "member '{name}': option {other} is not a known mwan3 option: dropped"
                    );
                    self.warn(o.line, msg);
                    continue;
                }
            };
            match v.trim().parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => *slot = n as u16,
                Ok(n) => {
                    *slot = n.clamp(lo, hi) as u16;
                    let msg = format!(
                        "member '{name}': {} {n} is outside {lo}..{hi}: {slot}",
                        o.name
                    );
                    self.warn(o.line, msg);
                }
                Err(_) => {
                    let msg = format!(
                        "member '{name}': {} '{v}' is not a whole number: {slot}",
                        o.name
                    );
                    self.warn(o.line, msg);
                }
            }
        }
        let written = self.unique(&name, "member", s.line);
        self.header("member", &written);
        self.option("interface", &iface);
        self.option("metric", &metric.to_string());
        self.option("weight", &weight.to_string());
        self.members.insert(name, (written, iface, metric, weight));
    }

    /// `name`, or a new one when a section already has it (uci would merge or reject).
    fn unique(&mut self, name: &str, ty: &str, line: usize) -> String {
        if !self.names.contains(name) {
            return name.to_string();
        }
        let new = self.fresh_name(&format!("{name}_{ty}"), &HashSet::new());
        self.warn(
            line,
            format!("{ty} '{name}': another section has this name: written as '{new}'"),
        );
        new
    }

    fn policy(&mut self, s: &Section) {
        let Some(name) = s.name.clone() else {
            self.warn(
                s.line,
                "a policy section without a name: no rule can use it: dropped".into(),
            );
            return;
        };
        if name == DEFAULT_POLICY {
            self.warn(
                s.line,
                "policy 'default': mwan3's use_policy 'default' means the main table, so no \
                 rule can reach this policy: dropped"
                    .into(),
            );
            return;
        }
        let line = s.get("use_member").map_or(s.line, |o| o.line);
        let listed = s
            .get("use_member")
            .map(|o| items(&o.value))
            .unwrap_or_default();
        // Per interface: the members of its best metric, their weights added up (mwan3
        // balances over every member of the tier, so an interface listed twice gets both
        // shares); members of a worse metric on the same interface never carry traffic.
        let mut per_iface: Vec<(String, Vec<String>, u16, u32)> = Vec::new();
        for m in &listed {
            let Some((m, iface, metric, weight)) = self.members.get(m).cloned() else {
                self.warn(
                    line,
                    format!(
                        "policy '{name}': member '{m}' was dropped or does not exist: left out"
                    ),
                );
                continue;
            };
            match per_iface.iter_mut().find(|(i, ..)| *i == iface) {
                None => per_iface.push((iface, vec![m.clone()], metric, u32::from(weight))),
                Some(entry) if entry.1.contains(&m) => {}
                Some(entry) if metric < entry.2 => {
                    *entry = (iface, vec![m.clone()], metric, u32::from(weight));
                }
                Some(entry) if metric == entry.2 => {
                    entry.1.push(m.clone());
                    entry.3 += u32::from(weight);
                }
                Some(_) => {}
            }
        }
        let mut use_member = Vec::new();
        let mut merged = Vec::new();
        for (iface, ms, metric, total) in per_iface {
            if ms.len() == 1 {
                use_member.push(ms[0].clone());
                continue;
            }
            let total = total.min(1000) as u16;
            let new = self.fresh_name(&format!("{name}_{iface}"), &HashSet::new());
            self.warn(
                line,
                format!(
                    "policy '{name}': members {} all use interface '{iface}' at metric \
                     {metric}: one member '{new}' with their total weight {total}",
                    ms.join(", ")
                ),
            );
            self.names.insert(new.clone());
            merged.push((new.clone(), iface.clone(), metric, total));
            use_member.push(new);
        }
        for (m, iface, metric, weight) in merged {
            self.header("member", &m);
            self.option("interface", &iface);
            self.option("metric", &metric.to_string());
            self.option("weight", &weight.to_string());
            self.members.insert(m.clone(), (m, iface, metric, weight));
        }
        if use_member.is_empty() && !listed.is_empty() {
            self.warn(
                line,
                format!("policy '{name}': no member is left: its traffic gets its last_resort, as in mwan3"),
            );
        }
        let written = self.unique(&name, "policy", s.line);
        self.header("policy", &written);
        for m in &use_member {
            self.list("use_member", m);
        }
        let mut last_resort = POLICY_LAST_RESORT.to_string();
        for o in &s.options {
            match o.name.as_str() {
                "use_member" => {}
                "last_resort" => match single(&o.value).as_str() {
                    v @ ("unreachable" | "blackhole" | "default") => last_resort = v.to_string(),
                    v => self.warn(
                        o.line,
                        format!("policy '{name}': last_resort '{v}' is not known: unreachable"),
                    ),
                },
                other => self.warn(
                    o.line,
                    format!("policy '{name}': option {other} is not a known mwan3 option: dropped"),
                ),
            }
        }
        self.option("last_resort", &last_resort);
        self.policies.push((name, written));
    }

    /// Writes the rule when uplinkd can express it. Returns the policy it sends all
    /// traffic to, when it matches everything (for `default_policy`).
    fn rule(&mut self, s: &Section) -> Option<String> {
        let label = s.label();
        let drop = |c: &mut Self, line: usize, why: String| {
            c.warn(line, format!("rule '{label}': {why}: rule dropped"));
        };
        let get = |o: &str| s.get(o).map(|o| (single(&o.value), o.line));
        if let Some((v, line)) = get("enabled") {
            if truthy(&v) == Some(false) {
                drop(self, line, "enabled 0 (skipped, as mwan3 does)".into());
                return None;
            }
        }
        if let Some(name) = &s.name {
            if name.len() > MAX_RULE_NAME {
                drop(
                    self,
                    s.line,
                    format!("its name is longer than {MAX_RULE_NAME} characters, and mwan3 ignores such rules"),
                );
                return None;
            }
        }
        let Some((policy, line)) = get("use_policy") else {
            drop(self, s.line, "no use_policy (mwan3 ignores it)".into());
            return None;
        };
        let policy = match policy.as_str() {
            DEFAULT_POLICY => policy,
            "unreachable" | "blackhole" => {
                // A policy without members: its last resort is all it does.
                if let Some((n, _)) = self.extra_policies.iter().find(|(_, lr)| *lr == policy) {
                    n.clone()
                } else {
                    let n = self.fresh_name(&policy, &HashSet::new());
                    self.names.insert(n.clone());
                    self.extra_policies.push((n.clone(), policy.clone()));
                    n
                }
            }
            p if self.policies.iter().any(|(q, _)| q == p) => self
                .policies
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, w)| w.clone())
                .unwrap_or_default(),
            p => {
                drop(
                    self,
                    line,
                    format!("use_policy '{p}' names no policy that was converted"),
                );
                return None;
            }
        };
        let family = match get("family") {
            None => "any".to_string(),
            Some((f, _)) if matches!(f.as_str(), "any" | "ipv4" | "ipv6") => f,
            Some((f, l)) => {
                drop(self, l, format!("family '{f}' is not any, ipv4 or ipv6"));
                return None;
            }
        };
        let proto = match get("proto") {
            None => "all".to_string(),
            Some((p, l)) => match proto_of(&p) {
                Some(p) => p,
                None => {
                    drop(
                        self,
                        l,
                        format!("proto '{p}' is not a protocol uplinkd knows"),
                    );
                    return None;
                }
            },
        };
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut matches_all = true;
        for key in ["src_ip", "dest_ip"] {
            let Some(o) = s.get(key) else {
                continue;
            };
            let mut kept = Vec::new();
            for v in items(&o.value) {
                match prefix_of(&v) {
                    Ok(entry) => {
                        let addr = entry.addr();
                        let fam_ok = match family.as_str() {
                            "ipv4" => addr.is_ipv4(),
                            "ipv6" => addr.is_ipv6(),
                            _ => true,
                        };
                        if !fam_ok {
                            drop(
                                self,
                                o.line,
                                format!("{key} '{v}' is not of family {family}"),
                            );
                            return None;
                        }
                        if !matches!(entry, AddrMatch::Prefix(Prefix { len: 0, .. })) {
                            matches_all = false;
                        }
                        kept.push(entry.to_string());
                    }
                    Err(why) => {
                        drop(self, o.line, format!("{key} '{v}': {why}"));
                        return None;
                    }
                }
            }
            if !kept.is_empty() {
                lines.push((key.to_string(), kept.join(" ")));
            }
        }
        let tcp_udp = matches!(proto.as_str(), "tcp" | "udp");
        for key in ["src_port", "dest_port"] {
            let Some(o) = s.get(key) else {
                continue;
            };
            if !tcp_udp {
                let msg = format!(
                    "rule '{label}': {key} '{}' with proto {proto}: ignored, as mwan3 does (it \
                     applies to tcp and udp only)",
                    single(&o.value)
                );
                self.warn(o.line, msg);
                continue;
            }
            let mut kept = Vec::new();
            for v in items(&o.value) {
                match ports_of(&v) {
                    Some(p) => kept.push(p),
                    None => {
                        drop(
                            self,
                            o.line,
                            format!("{key} '{v}' is not a port or port range"),
                        );
                        return None;
                    }
                }
            }
            if !kept.is_empty() {
                matches_all = false;
                lines.push((key.to_string(), kept.join(",")));
            }
        }
        if let Some((iface, l)) = get("src_iface") {
            match device_of(&self.network, &iface, 0) {
                Some(dev) => {
                    matches_all = false;
                    lines.push(("src_iface".into(), dev));
                }
                None => {
                    drop(
                        self,
                        l,
                        format!(
                            "src_iface '{iface}': the network configuration names no device \
                             for it (mwan3 skips the rule then)"
                        ),
                    );
                    return None;
                }
            }
        }
        if let Some((set, l)) = get("ipset") {
            let ok = set
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && set
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
                && set.len() <= 64;
            if !ok {
                drop(
                    self,
                    l,
                    format!("ipset '{set}' is not a name nftables accepts"),
                );
                return None;
            }
            matches_all = false;
            self.sets.push((set.clone(), label.clone(), l));
            lines.push(("ipset".into(), set));
        }
        if proto != "all" {
            matches_all = false;
        }
        let sticky = get("sticky").is_some_and(|(v, _)| truthy(&v) == Some(true));
        let timeout = match get("timeout") {
            None => None,
            Some((v, l)) => match v.trim().parse::<u64>() {
                Ok(t) if (1..=86_400).contains(&t) => Some(t),
                Ok(t) => {
                    let kept = t.clamp(1, 86_400);
                    self.warn(
                        l,
                        format!("rule '{label}': timeout {t} is outside 1..86400: {kept}"),
                    );
                    Some(kept)
                }
                Err(_) => {
                    self.warn(
                        l,
                        format!("rule '{label}': timeout '{v}' is not a number: 600"),
                    );
                    None
                }
            },
        };
        if let Some((v, l)) = get("logging") {
            if truthy(&v) == Some(true) {
                let msg = format!(
                    "rule '{label}': logging: mwan3 logged this rule's packets; uplinkd \
                     does not log packets: dropped"
                );
                self.warn(l, msg);
            }
        }
        for o in &s.options {
            if !matches!(
                o.name.as_str(),
                "enabled"
                    | "use_policy"
                    | "family"
                    | "proto"
                    | "src_ip"
                    | "dest_ip"
                    | "src_port"
                    | "dest_port"
                    | "src_iface"
                    | "ipset"
                    | "sticky"
                    | "timeout"
                    | "logging"
            ) {
                let msg = format!(
                    "rule '{label}': option {} is not a known mwan3 option: dropped",
                    o.name
                );
                self.warn(o.line, msg);
            }
        }
        // An anonymous rule keeps being anonymous; a named one its name.
        match &s.name {
            Some(n) => {
                let n = self.unique(n, "rule", s.line);
                self.header("rule", &n);
            }
            None => self.out.push_str("\nconfig rule\n"),
        }
        if family != "any" {
            self.option("family", &family);
        }
        if proto != "all" {
            self.option("proto", &proto);
        }
        for (k, v) in &lines {
            self.option(k, v);
        }
        if sticky && policy != DEFAULT_POLICY {
            self.option("sticky", "1");
            if let Some(t) = timeout {
                self.option("timeout", &t.to_string());
            }
        }
        self.option("use_policy", &policy);
        // A rule matching everything decides the default policy. A catch-all written
        // for one family (0.0.0.0/0) counts for all: mwan3's shipped pair names the
        // same policy for both.
        matches_all.then_some(policy)
    }

    /// Points the dhcp configuration's `ipset` sections that fill sets of our rules at
    /// uplinkd's table; returns the `uci batch` lines.
    fn dhcp(&mut self, text: &str) -> Vec<String> {
        let Ok(sections) = uci::parse("dhcp", text) else {
            self.ipset_advice(None);
            return Vec::new();
        };
        let wanted: HashSet<String> = self.sets.iter().map(|(s, ..)| s.clone()).collect();
        let mut batch = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        for s in sections.iter().filter(|s| s.ty == "ipset") {
            let names = s.get("name").map(|o| items(&o.value)).unwrap_or_default();
            if names.is_empty() || !names.iter().all(|n| wanted.contains(n)) {
                continue;
            }
            let id = match &s.name {
                Some(n) => format!("dhcp.{n}"),
                None => format!("dhcp.@ipset[{}]", s.index),
            };
            batch.push(format!("set {id}.table='uplinkd'"));
            batch.push(format!("set {id}.table_family='inet'"));
            done.extend(names);
        }
        if !batch.is_empty() {
            batch.push("commit dhcp".into());
        }
        self.ipset_advice(Some(&done));
        batch
    }

    /// Says what the user must change for each set a rule matches.
    fn ipset_advice(&mut self, converted: Option<&HashSet<String>>) {
        let sets = core::mem::take(&mut self.sets);
        let mut said = HashSet::new();
        for (set, rule, line) in &sets {
            if !said.insert(set.clone()) {
                continue;
            }
            let msg = if converted.is_some_and(|c| c.contains(set)) {
                format!(
                    "rule '{rule}': ipset '{set}': uplinkd matches the set '{set}' in its own \
                     table (inet uplinkd); the ipset section of /etc/config/dhcp that fills it \
                     now has table 'uplinkd' and table_family 'inet'"
                )
            } else {
                format!(
                    "rule '{rule}': ipset '{set}': uplinkd matches the set '{set}' in its own \
                     table (inet uplinkd), which dnsmasq must fill: in /etc/config/dhcp give \
                     the ipset section table 'uplinkd' and table_family 'inet', or write \
                     nftset=/<domain>/4#inet#uplinkd#{set} in dnsmasq.conf"
                )
            };
            self.warn(*line, msg);
        }
    }
}

/// uci reads a named section that appears twice with the same type as one: later options
/// replace earlier ones, list items are appended.
fn merge_named(sections: Vec<Section>) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::with_capacity(sections.len());
    for s in sections {
        let first = s.name.as_ref().and_then(|name| {
            out.iter_mut()
                .find(|o| o.ty == s.ty && o.name.as_ref() == Some(name))
        });
        let Some(first) = first else {
            out.push(s);
            continue;
        };
        for o in s.options {
            match first.options.iter_mut().find(|f| f.name == o.name) {
                None => first.options.push(o),
                Some(f) => match (&mut f.value, o.value) {
                    (Value::List(items), Value::List(more)) => items.extend(more),
                    (slot, value) => *slot = value,
                },
            }
        }
    }
    out
}

/// Whether a probe target can answer from the other side of a WAN.
fn usable_target(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// mwan3's address forms: `a`, `a/len`, `a/255.255.255.0`, and IPv4 masks that are no
/// prefix (`0.0.0.1/0.0.0.1`: odd addresses), which iptables takes and uplinkd renders as
/// a masked match. An IPv6 mask in address form is kept when it is a prefix. Host bits are
/// cleared, as iptables does.
fn prefix_of(s: &str) -> Result<AddrMatch, String> {
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| "not an address or network (hostnames and ranges are not kept)".to_string())?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match m {
        None => max,
        Some(m) => match (m.parse::<u8>(), addr) {
            (Ok(l), _) if l <= max => l,
            (_, IpAddr::V4(a)) => match m.parse::<std::net::Ipv4Addr>() {
                Ok(mask) => return Ok(AddrMatch::with_mask(a, mask)),
                Err(_) => return Err(format!("'{m}' is not a prefix length or netmask")),
            },
            (_, IpAddr::V6(_)) => match m.parse::<std::net::Ipv6Addr>() {
                Ok(mask) => {
                    let bits = u128::from(mask);
                    if bits.leading_ones() + bits.trailing_zeros() != 128 {
                        return Err(format!(
                            "the IPv6 mask {m} is not a prefix (it picks single address bits; \
                             uplinkd takes such masks for IPv4 only)"
                        ));
                    }
                    bits.leading_ones() as u8
                }
                Err(_) => return Err(format!("'{m}' is not a prefix length or netmask")),
            },
        },
    };
    let addr = match addr {
        IpAddr::V4(a) => {
            let keep = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((u32::from(a) & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((u128::from(a) & keep).into())
        }
    };
    Ok(AddrMatch::Prefix(Prefix { addr, len }))
}

/// A port or range in mwan3's forms (`443`, `8000:8100`, `8000-8100`), as `a` or `a-b`.
fn ports_of(s: &str) -> Option<String> {
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
    match s.split_once([':', '-']) {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then(|| format!("{a}-{b}"))
        }
        None => port(s).map(|p| p.to_string()),
    }
}

/// An mwan3 `proto` as uplinkd writes it: all, tcp, udp, icmp or a number.
fn proto_of(p: &str) -> Option<String> {
    let named = [
        ("all", "all"),
        ("tcp", "tcp"),
        ("udp", "udp"),
        ("icmp", "icmp"),
        ("igmp", "2"),
        ("gre", "47"),
        ("esp", "50"),
        ("ah", "51"),
        ("icmpv6", "58"),
        ("ipv6-icmp", "58"),
        ("ospf", "89"),
        ("l2tp", "115"),
        ("sctp", "132"),
    ];
    let p = p.to_ascii_lowercase();
    if let Some((_, v)) = named.iter().find(|(n, _)| *n == p) {
        return Some(v.to_string());
    }
    match p.parse::<u8>() {
        Ok(0) => Some("all".into()),
        Ok(n) => Some(n.to_string()),
        Err(_) => None,
    }
}

/// The Linux device of netifd interface `name` in the network configuration.
fn device_of(network: &[Section], name: &str, depth: u8) -> Option<String> {
    let s = network
        .iter()
        .find(|s| s.ty == "interface" && s.name.as_deref() == Some(name))?;
    let single = |opt: &str| match &s.get(opt)?.value {
        Value::Single(v) => Some(v.clone()),
        Value::List(items) => items.first().cloned(),
    };
    // netifd names the devices of its PPP protocols `<proto>-<interface>`.
    if let Some(proto) = single("proto") {
        if matches!(
            proto.as_str(),
            "pppoe" | "pppoa" | "pptp" | "l2tp" | "3g" | "ppp"
        ) {
            return Some(format!("{proto}-{name}")).filter(|d| valid_device(d));
        }
        if proto == "wireguard" {
            return Some(name.to_string()).filter(|d| valid_device(d));
        }
    }
    if single("type").as_deref() == Some("bridge") {
        return Some(format!("br-{name}")).filter(|d| valid_device(d));
    }
    let device = single("device").or_else(|| single("ifname"))?;
    // `ifname 'eth0 eth1'` (a bridge, before 21.02): the first port is not the device.
    let device = device.split_whitespace().next()?.to_string();
    if let Some(alias) = device.strip_prefix('@') {
        return if depth < 4 {
            device_of(network, alias, depth + 1)
        } else {
            None
        };
    }
    // Character devices (`/dev/cdc-wdm0` of QMI/MBIM modems) are not network devices.
    valid_device(&device).then_some(device)
}

/// What the kernel (and `uplinkd check`) accepts as a device name.
fn valid_device(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 15
        && d != "."
        && d != ".."
        && !d.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// `'value'`, with single quotes written the way uci reads them back (`'it'\''s'`).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests;
