//! `uplinkd import-mwan3`: an mwan3 configuration → an uplinkd one, section for section.
//!
//! Pure text to text. Interfaces, members and policies keep their names and values; what
//! differs is written out so that the result means what the mwan3 file meant:
//!
//! - mwan3's defaults that differ from uplinkd's are written explicitly: interfaces are
//!   disabled unless `enabled 1`; probe timing `timeout 4`, `interval 10`, `down 5`,
//!   `up 5` (uplinkd fails over faster); policies `last_resort unreachable` (uplinkd
//!   falls through to the main table).
//! - mwan3 names netifd interfaces and asks netifd for the device; uplinkd wants the Linux
//!   device. It is taken from the network configuration when given (`device`, or the
//!   older `ifname`; `@alias` followed; `pppoe-<name>` and the like for PPP protocols),
//!   otherwise the interface name stands in, with a warning.
//! - mwan3 routes traffic through its rules; the policy of the first rule that matches
//!   everything becomes `default_policy`.
//! - `config rule` sections are copied unchanged for connection pinning and per-source
//!   policies (uplinkd accepts them and applies them from the next milestone on).
//! - What has no equivalent is dropped or approximated with a warning: `track_method`
//!   other than ping becomes ping; `flush_conntrack`, `size`, `max_ttl`, ... are dropped.

use super::uci::{self, Section, Value};
use super::Error;

/// The converted file and what could not be carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub text: String,
    /// One line each, `file:line: ...`.
    pub warnings: Vec<String>,
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

/// Interface options with the same name, values and meaning in both.
const SAME_INTERFACE: [&str; 16] = [
    "enabled",
    "family",
    "reliability",
    "count",
    "timeout",
    "interval",
    "failure_interval",
    "recovery_interval",
    "up",
    "down",
    "initial_state",
    "check_quality",
    "failure_latency",
    "recovery_latency",
    "failure_loss",
    "recovery_loss",
];

/// Most probe targets per interface (`config::MAX_TARGETS`).
const MAX_TARGETS: usize = super::MAX_TARGETS;

/// Converts `mwan3` (the text of `/etc/config/mwan3`; `file` names it in messages), with
/// device names from `network` (`/etc/config/network`) when given.
pub fn convert(file: &str, mwan3: &str, network: Option<&str>) -> Result<Import, Vec<Error>> {
    let sections = uci::parse(file, mwan3)?;
    let network = network
        .and_then(|text| uci::parse("network", text).ok())
        .unwrap_or_default();
    let mut c = Converter {
        file,
        out: String::new(),
        warnings: Vec::new(),
    };
    c.out.push_str(&format!(
        "# Converted from {file} by uplinkd import-mwan3.\n\
         # mwan3's probe timing is kept; uplinkd's own defaults (1 s probes, 3 rounds)\n\
         # fail over faster. Flap damping is on (option flap_damping '0' turns it off).\n"
    ));

    let globals = sections.iter().find(|s| s.ty == "globals");
    c.globals(globals, &sections);
    for s in &sections {
        match s.ty.as_str() {
            "globals" => {
                if globals.is_some_and(|g| !core::ptr::eq(g, s)) {
                    c.warn(s.line, "a second globals section is ignored".into());
                }
            }
            "interface" => c.interface(s, &network),
            "member" => c.copy(s, &["interface", "metric", "weight"], None),
            "policy" => c.copy(
                s,
                &["use_member", "last_resort"],
                Some(("last_resort", POLICY_LAST_RESORT)),
            ),
            "rule" => c.rule(s),
            other => c.warn(
                s.line,
                format!("section type '{other}' has no equivalent: dropped"),
            ),
        }
    }
    Ok(Import {
        text: c.out,
        warnings: c.warnings,
    })
}

struct Converter<'f> {
    file: &'f str,
    out: String,
    warnings: Vec<String>,
}

impl Converter<'_> {
    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(format!(
            "{}:{line}: {}",
            self.file,
            super::one_line(&message)
        ));
    }

    fn header(&mut self, ty: &str, name: Option<&str>) {
        match name {
            Some(name) => self
                .out
                .push_str(&format!("\nconfig {ty} {}\n", quote(name))),
            None => self.out.push_str(&format!("\nconfig {ty}\n")),
        }
    }

    fn option(&mut self, name: &str, value: &str) {
        self.out
            .push_str(&format!("\toption {name} {}\n", quote(value)));
    }

    fn value(&mut self, name: &str, value: &Value) {
        match value {
            Value::Single(v) => self.option(name, v),
            Value::List(items) => {
                for v in items {
                    self.out.push_str(&format!("\tlist {name} {}\n", quote(v)));
                }
            }
        }
    }

    fn dropped(&mut self, s: &Section, option: &str, why: &str) {
        let msg = format!("{} '{}': option {option} {why}: dropped", s.ty, s.label());
        let line = s.get(option).map_or(s.line, |o| o.line);
        self.warn(line, msg);
    }

    fn globals(&mut self, g: Option<&Section>, sections: &[Section]) {
        self.header("globals", Some("globals"));
        if let Some(policy) = self.default_policy(sections) {
            self.option("default_policy", &policy);
        }
        let Some(g) = g else {
            return;
        };
        for o in &g.options {
            match o.name.as_str() {
                "mmx_mask" => self.value("fwmark_mask", &o.value),
                "loglevel" => self.value("log_level", &o.value),
                "logging" => {}
                "rtmon_interval" | "rt_table_lookup" | "local_source" => {
                    self.dropped(g, &o.name, "is not needed by uplinkd")
                }
                _ => self.dropped(g, &o.name, "is not a known mwan3 option"),
            }
        }
    }

    /// The policy of the first rule that matches all traffic, as mwan3 evaluates rules
    /// in order; `None` (uplinkd then takes the first policy) when there is none.
    fn default_policy(&mut self, sections: &[Section]) -> Option<String> {
        let policies: Vec<&str> = sections
            .iter()
            .filter(|s| s.ty == "policy")
            .filter_map(|s| s.name.as_deref())
            .collect();
        let catch_all = sections.iter().filter(|s| s.ty == "rule").find(|s| {
            s.options.iter().all(|o| match (o.name.as_str(), &o.value) {
                ("dest_ip" | "src_ip", Value::Single(v)) => v == "0.0.0.0/0" || v == "::/0",
                ("proto", Value::Single(v)) => v == "all",
                ("use_policy" | "family" | "sticky" | "timeout" | "logging", _) => true,
                _ => false,
            })
        });
        let policy = catch_all.and_then(|r| match &r.get("use_policy")?.value {
            Value::Single(p) => Some((r, p.as_str())),
            Value::List(_) => None,
        });
        match policy {
            Some((_, p)) if policies.contains(&p) => Some(p.to_string()),
            Some((r, p)) => {
                let msg = format!(
                    "rule '{}' sends all other traffic to '{p}', which uplinkd has no policy for: \
                     default_policy is the first policy",
                    r.label()
                );
                self.warn(r.line, msg);
                None
            }
            None => {
                let line = sections.first().map_or(1, |s| s.line);
                if let Some(first) = policies.first() {
                    let msg = format!(
                        "no rule matches all traffic (mwan3 leaves it to the main table); \
                         uplinkd routes it through the first policy, '{first}'"
                    );
                    self.warn(line, msg);
                }
                None
            }
        }
    }

    fn interface(&mut self, s: &Section, network: &[Section]) {
        self.header("interface", s.name.as_deref());
        let name = s.label();
        let device = match s.name.as_deref().and_then(|n| device_of(network, n, 0)) {
            Some(d) => d,
            None => {
                let msg = format!(
                    "interface '{name}': no device found in the network configuration: \
                     using '{name}', set option device"
                );
                self.warn(s.line, msg);
                name.clone()
            }
        };
        self.option("device", &device);

        let family_v6 =
            matches!(s.get("family").map(|o| &o.value), Some(Value::Single(f)) if f == "ipv6");
        let mut targets: Vec<String> = Vec::new();
        if let Some(o) = s.get("track_ip") {
            let items = match &o.value {
                Value::Single(v) => vec![v.clone()],
                Value::List(items) => items.clone(),
            };
            for t in items {
                match t.parse::<std::net::IpAddr>() {
                    Ok(ip) if ip.is_ipv6() == family_v6 && !targets.contains(&t) => targets.push(t),
                    Ok(_) if targets.contains(&t) => {}
                    Ok(_) => self.warn(
                        o.line,
                        format!(
                            "interface '{name}': track_ip '{t}' is of the other family: dropped"
                        ),
                    ),
                    Err(_) => self.warn(
                        o.line,
                        format!("interface '{name}': track_ip '{t}' is not an IP address: dropped"),
                    ),
                }
            }
            if targets.len() > MAX_TARGETS {
                self.warn(
                    o.line,
                    format!(
                        "interface '{name}': {} track_ip targets, only the first {MAX_TARGETS} are kept",
                        targets.len()
                    ),
                );
                targets.truncate(MAX_TARGETS);
            }
        }
        for t in &targets {
            self.out
                .push_str(&format!("\tlist track_ip {}\n", quote(t)));
        }
        if let Some(o) = s.get("track_method") {
            match &o.value {
                Value::Single(m) if m == "ping" => {}
                _ => {
                    let m = match &o.value {
                        Value::Single(m) => m.clone(),
                        Value::List(items) => items.join(" "),
                    };
                    let msg = format!(
                        "interface '{name}': track_method '{m}' has no equivalent: probing with ping"
                    );
                    self.warn(o.line, msg);
                }
            }
        }

        for o in &s.options {
            let opt = o.name.as_str();
            if opt == "reliability" && !targets.is_empty() {
                // mwan3 lets reliability exceed the targets (the WAN then never comes up).
                if let Value::Single(v) = &o.value {
                    if v.parse::<usize>().is_ok_and(|r| r > targets.len()) {
                        let msg = format!(
                            "interface '{name}': reliability {v} exceeds the {} targets: lowered",
                            targets.len()
                        );
                        self.warn(o.line, msg);
                        self.option("reliability", &targets.len().to_string());
                        continue;
                    }
                }
            }
            if SAME_INTERFACE.contains(&opt) {
                self.value(opt, &o.value);
            } else if matches!(opt, "track_ip" | "track_method") {
            } else if matches!(
                opt,
                "flush_conntrack" | "size" | "max_ttl" | "httping_ssl" | "keep_failure_interval"
            ) {
                self.dropped(s, opt, "has no equivalent");
            } else {
                self.dropped(s, opt, "is not a known mwan3 interface option");
            }
        }
        for (opt, default) in INTERFACE_DEFAULTS {
            if s.get(opt).is_none() {
                self.option(opt, default);
            }
        }
    }

    /// Copies the `known` options; `default` is written when absent (mwan3's default
    /// where uplinkd's differs).
    fn copy(&mut self, s: &Section, known: &[&str], default: Option<(&str, &str)>) {
        self.header(&s.ty, s.name.as_deref());
        for o in &s.options {
            if known.contains(&o.name.as_str()) {
                self.value(&o.name, &o.value);
            } else {
                let why = format!("is not a known mwan3 {} option", s.ty);
                self.dropped(s, &o.name, &why);
            }
        }
        if let Some((opt, value)) = default {
            if s.get(opt).is_none() {
                self.option(opt, value);
            }
        }
    }

    fn rule(&mut self, s: &Section) {
        self.header("rule", s.name.as_deref());
        for o in &s.options {
            self.value(&o.name, &o.value);
        }
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
            return Some(format!("{proto}-{name}")).filter(|d| d.len() <= 15);
        }
        if proto == "wireguard" {
            return Some(name.to_string());
        }
    }
    if single("type").as_deref() == Some("bridge") {
        return Some(format!("br-{name}")).filter(|d| d.len() <= 15);
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
    (!device.contains('/') && device.len() <= 15).then_some(device)
}

/// `'value'`, with single quotes written the way uci reads them back (`'it'\''s'`).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests;
