use super::*;
use crate::config::{Config, Family, LastResort, TrackMethod};
use crate::time::Duration;

/// An OpenWrt network configuration with the usual shapes of WAN devices.
const NETWORK: &str = "\
config interface 'loopback'
	option device 'lo'
config interface 'lan'
	option device 'br-lan'
config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'
config interface 'wan6'
	option device '@wan'
	option proto 'dhcpv6'
config interface 'wanb'
	option ifname 'eth2'
	option proto 'dhcp'
config interface 'wanb6'
	option device 'eth2'
	option proto 'dhcpv6'
config interface 'dsl'
	option device 'ptm0'
	option proto 'pppoe'
config interface 'wwan'
	option device '/dev/cdc-wdm0'
	option proto 'qmi'
";

/// The shape of the configuration the mwan3 package ships (two IPv4 and two IPv6
/// interfaces, ten members, five policies, an https rule and catch-all rules).
const SHIPPED: &str = "\
config globals 'globals'
	option mmx_mask '0x3F00'

config interface 'wan'
	option enabled '1'
	list track_ip '1.0.0.1'
	list track_ip '1.1.1.1'
	list track_ip '208.67.222.222'
	list track_ip '208.67.220.220'
	option family 'ipv4'
	option reliability '2'

config interface 'wan6'
	option enabled '0'
	list track_ip '2606:4700:4700::1001'
	list track_ip '2606:4700:4700::1111'
	list track_ip '2620:0:ccd::2'
	list track_ip '2620:0:ccc::2'
	option family 'ipv6'
	option reliability '2'

config interface 'wanb'
	option enabled '0'
	list track_ip '1.0.0.1'
	list track_ip '1.1.1.1'
	list track_ip '208.67.222.222'
	list track_ip '208.67.220.220'
	option family 'ipv4'
	option reliability '1'

config interface 'wanb6'
	option enabled '0'
	list track_ip '2606:4700:4700::1001'
	list track_ip '2606:4700:4700::1111'
	list track_ip '2620:0:ccd::2'
	list track_ip '2620:0:ccc::2'
	option family 'ipv6'
	option reliability '1'

config member 'wan_m1_w3'
	option interface 'wan'
	option metric '1'
	option weight '3'

config member 'wan_m2_w3'
	option interface 'wan'
	option metric '2'
	option weight '3'

config member 'wanb_m1_w2'
	option interface 'wanb'
	option metric '1'
	option weight '2'

config member 'wanb_m1_w3'
	option interface 'wanb'
	option metric '1'
	option weight '3'

config member 'wanb_m2_w2'
	option interface 'wanb'
	option metric '2'
	option weight '2'

config member 'wan6_m1_w3'
	option interface 'wan6'
	option metric '1'
	option weight '3'

config member 'wan6_m2_w3'
	option interface 'wan6'
	option metric '2'
	option weight '3'

config member 'wanb6_m1_w2'
	option interface 'wanb6'
	option metric '1'
	option weight '2'

config member 'wanb6_m1_w3'
	option interface 'wanb6'
	option metric '1'
	option weight '3'

config member 'wanb6_m2_w2'
	option interface 'wanb6'
	option metric '2'
	option weight '2'

config policy 'wan_only'
	list use_member 'wan_m1_w3'
	list use_member 'wan6_m1_w3'

config policy 'wanb_only'
	list use_member 'wanb_m1_w2'
	list use_member 'wanb6_m1_w2'

config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w3'
	list use_member 'wan6_m1_w3'
	list use_member 'wanb6_m1_w3'

config policy 'wan_wanb'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m2_w2'
	list use_member 'wan6_m1_w3'
	list use_member 'wanb6_m2_w2'

config policy 'wanb_wan'
	list use_member 'wan_m2_w3'
	list use_member 'wanb_m1_w2'
	list use_member 'wan6_m2_w3'
	list use_member 'wanb6_m1_w2'

config rule 'https'
	option sticky '1'
	option dest_port '443'
	option proto 'tcp'
	option use_policy 'balanced'

config rule 'default_rule_v4'
	option dest_ip '0.0.0.0/0'
	option use_policy 'balanced'
	option family 'ipv4'

config rule 'default_rule_v6'
	option dest_ip '::/0'
	option use_policy 'balanced'
	option family 'ipv6'
";

/// Failover: fibre preferred, LTE when it is down, quality checks on the fibre.
const FAILOVER: &str = "\
config globals 'globals'
	option mmx_mask '0x3F00'
	option logging '1'
	option loglevel 'notice'

config interface 'wan'
	option enabled '1'
	list track_ip '1.1.1.1'
	list track_ip '8.8.8.8'
	list track_ip '9.9.9.9'
	option reliability '2'
	option count '2'
	option timeout '2'
	option interval '5'
	option failure_interval '2'
	option recovery_interval '3'
	option down '3'
	option up '5'
	option check_quality '1'
	option failure_latency '800'
	option recovery_latency '400'
	option failure_loss '30'
	option recovery_loss '5'
	option initial_state 'online'

config interface 'wwan'
	option enabled '1'
	list track_ip '1.0.0.1'
	list track_ip '8.8.4.4'
	option reliability '1'
	option interval '30'
	option initial_state 'offline'

config member 'wan_m1'
	option interface 'wan'
	option metric '1'

config member 'wwan_m2'
	option interface 'wwan'
	option metric '2'

config policy 'failover'
	list use_member 'wan_m1'
	list use_member 'wwan_m2'
	option last_resort 'default'

config rule 'default_rule'
	option dest_ip '0.0.0.0/0'
	option use_policy 'failover'
";

/// 3:1 balance over DSL (PPPoE) and cable, https pinned to one WAN per client.
const BALANCE: &str = "\
config interface 'dsl'
	option enabled '1'
	list track_ip '9.9.9.9'
	list track_ip '1.1.1.1'
	option track_method 'ping'

config interface 'wanb'
	option enabled '1'
	list track_ip '8.8.8.8'
	list track_ip '208.67.222.222'
	option reliability '1'

config member 'dsl_w3'
	option interface 'dsl'
	option metric '1'
	option weight '3'

config member 'wanb_w1'
	option interface 'wanb'
	option metric '1'
	option weight '1'

config policy 'balanced'
	list use_member 'dsl_w3'
	list use_member 'wanb_w1'
	option last_resort 'unreachable'

config rule 'https'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option timeout '600'
	option use_policy 'balanced'

config rule 'default_rule'
	option use_policy 'balanced'
";

/// One policy per LAN subnet: staff on the fibre, guests on LTE, servers balanced.
const PER_SUBNET: &str = "\
config interface 'wan'
	option enabled '1'
	list track_ip '1.1.1.1'
	list track_ip '9.9.9.9'

config interface 'wwan'
	option enabled '1'
	list track_ip '8.8.8.8'
	option track_method 'httping'
	option httping_ssl '1'

config member 'wan_only_m'
	option interface 'wan'

config member 'wwan_only_m'
	option interface 'wwan'

config member 'wan_m1_w1'
	option interface 'wan'
	option metric '1'
	option weight '1'

config member 'wwan_m1_w1'
	option interface 'wwan'
	option metric '1'
	option weight '1'

config policy 'staff'
	list use_member 'wan_only_m'
	option last_resort 'blackhole'

config policy 'guests'
	list use_member 'wwan_only_m'

config policy 'servers'
	list use_member 'wan_m1_w1'
	list use_member 'wwan_m1_w1'

config rule 'staff_lan'
	option src_ip '192.168.1.0/24'
	option use_policy 'staff'

config rule 'guest_lan'
	option src_ip '192.168.2.0/24'
	option use_policy 'guests'

config rule
	option src_ip '192.168.3.0/24'
	option dest_port '22 80 443'
	option proto 'tcp'
	option use_policy 'servers'

config rule 'default_rule'
	option dest_ip '0.0.0.0/0'
	option use_policy 'staff'
";

fn net() -> Inputs<'static> {
    Inputs {
        network: Some(NETWORK),
        dhcp: None,
    }
}

fn import(mwan3: &str) -> (Config, Import) {
    import_with(mwan3, net())
}

/// Converts, and insists that the result passes uplinkd's own check.
fn import_with(mwan3: &str, inputs: Inputs) -> (Config, Import) {
    let import = match convert("mwan3", mwan3, inputs) {
        Ok(i) => i,
        Err(e) => panic!("{e:#?}"),
    };
    match Config::parse("converted", &import.text) {
        Ok(c) => (c, import),
        Err(e) => panic!("{e:#?}\n{}", import.text),
    }
}

fn single<'a>(s: &'a uci::Section, name: &str) -> Option<&'a str> {
    match &s.get(name)?.value {
        Value::Single(v) => Some(v),
        Value::List(_) => None,
    }
}

fn list(s: &uci::Section, name: &str) -> Vec<String> {
    match s.get(name).map(|o| &o.value) {
        None => Vec::new(),
        Some(Value::Single(v)) => vec![v.clone()],
        Some(Value::List(items)) => items.clone(),
    }
}

fn secs(s: &str) -> Duration {
    Duration::from_millis(s.parse::<u64>().unwrap() * 1000)
}

fn warned(import: &Import, needle: &str) -> bool {
    import.warnings.iter().any(|w| w.contains(needle))
}

#[track_caller]
fn assert_warned(import: &Import, needles: &[&str]) {
    for n in needles {
        assert!(
            warned(import, n),
            "no warning with {n:?}: {:#?}",
            import.warnings
        );
    }
}

/// Everything an mwan3 interface, member and policy says, read with mwan3's defaults,
/// must be what uplinkd understood from the converted file (for files whose values all
/// have an exact equivalent).
fn assert_same_meaning(mwan3: &str, cfg: &Config) {
    let sections = uci::parse("mwan3", mwan3).unwrap();
    let of_type = |ty: &'static str| sections.iter().filter(move |s| s.ty == ty);
    assert_eq!(cfg.interfaces.len(), of_type("interface").count());
    for s in of_type("interface") {
        let name = s.name.as_deref().unwrap();
        let i = cfg.interface(name).unwrap();
        let get = |o: &str, default: &'static str| single(s, o).unwrap_or(default).to_string();
        assert_eq!(i.enabled, get("enabled", "0") == "1", "{name}");
        let v6 = get("family", "ipv4") == "ipv6";
        assert_eq!(i.family, if v6 { Family::Ipv6 } else { Family::Ipv4 });
        let targets: Vec<std::net::IpAddr> = list(s, "track_ip")
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(i.track_ip, targets, "{name}");
        assert_eq!(i.track_method, TrackMethod::Ping);
        assert_eq!(i.reliability.to_string(), get("reliability", "1"));
        assert_eq!(i.count.to_string(), get("count", "1"));
        assert_eq!(i.timeout, secs(&get("timeout", "4")));
        let interval = get("interval", "10");
        assert_eq!(i.interval, secs(&interval));
        assert_eq!(
            i.failure_interval,
            single(s, "failure_interval").map_or(secs(&interval), secs)
        );
        assert_eq!(
            i.recovery_interval,
            single(s, "recovery_interval").map_or(secs(&interval), secs)
        );
        assert_eq!(i.down.to_string(), get("down", "5"));
        assert_eq!(i.up.to_string(), get("up", "5"));
        let online = get("initial_state", "online") == "online";
        assert_eq!(
            i.initial_state == crate::config::InitialState::Online,
            online
        );
        match i.quality {
            None => assert_eq!(get("check_quality", "0"), "0"),
            Some(q) => {
                assert_eq!(get("check_quality", "0"), "1");
                let ms = |o, d| Duration::from_millis(get(o, d).parse().unwrap());
                assert_eq!(q.failure_latency, ms("failure_latency", "1000"));
                assert_eq!(q.recovery_latency, ms("recovery_latency", "500"));
                assert_eq!(q.failure_loss.to_string(), get("failure_loss", "40"));
                assert_eq!(q.recovery_loss.to_string(), get("recovery_loss", "10"));
            }
        }
    }
    assert_eq!(cfg.members.len(), of_type("member").count());
    for s in of_type("member") {
        let m = cfg.member(s.name.as_deref().unwrap()).unwrap();
        assert_eq!(Some(m.interface.as_str()), single(s, "interface"));
        assert_eq!(m.metric.to_string(), single(s, "metric").unwrap_or("1"));
        assert_eq!(m.weight.to_string(), single(s, "weight").unwrap_or("1"));
    }
    assert_eq!(cfg.policies.len(), of_type("policy").count());
    for s in of_type("policy") {
        let p = cfg.policy(s.name.as_deref().unwrap()).unwrap();
        assert_eq!(p.use_member, list(s, "use_member"));
        let expected = match single(s, "last_resort").unwrap_or("unreachable") {
            "unreachable" => LastResort::Unreachable,
            "blackhole" => LastResort::Blackhole,
            _ => LastResort::Default,
        };
        assert_eq!(p.last_resort, expected);
    }
    let rules: Vec<&str> = of_type("rule").filter_map(|s| s.name.as_deref()).collect();
    let converted: Vec<&str> = cfg.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(converted, rules);
}

#[test]
fn shipped_default() {
    let (cfg, import) = import(SHIPPED);
    assert_same_meaning(SHIPPED, &cfg);
    assert_eq!(cfg.globals.default_policy, "balanced");
    assert_eq!(cfg.globals.fwmark_mask, 0x3F00);
    let devices: Vec<&str> = cfg.interfaces.iter().map(|i| i.device.as_str()).collect();
    assert_eq!(devices, ["eth1", "eth1", "eth2", "eth2"]);
    assert_eq!(import.warnings, Vec::<String>::new());
    let https = &cfg.rules[0];
    assert!(https.sticky);
    assert_eq!(https.dest_port.len(), 1);
}

#[test]
fn failover() {
    let (cfg, import) = import(FAILOVER);
    assert_same_meaning(FAILOVER, &cfg);
    assert_eq!(cfg.globals.default_policy, "failover");
    // Class 9: mwan3's loglevel is the level of packet logging, not the daemon's.
    assert_eq!(cfg.globals.log_level, log::LevelFilter::Info);
    assert!(!import.text.contains("log_level"));
    // Class 5: no device for the QMI modem: it follows netifd, never its own name.
    assert_eq!(cfg.interface("wwan").unwrap().device, "");
    assert!(cfg.interface("wwan").unwrap().follows_netifd());
    assert_warned(
        &import,
        &["'wwan'", "follows the netifd interface 'wwan'", "logging"],
    );
    assert_eq!(import.warnings.len(), 2, "{:#?}", import.warnings);
}

#[test]
fn balance_with_sticky_https() {
    let (cfg, import) = import(BALANCE);
    assert_same_meaning(BALANCE, &cfg);
    assert_eq!(cfg.globals.default_policy, "balanced");
    assert_eq!(cfg.interface("dsl").unwrap().device, "pppoe-dsl");
    assert!(import.text.contains("\toption sticky '1'\n"));
    assert_eq!(import.warnings, Vec::<String>::new());
}

#[test]
fn policy_per_subnet() {
    let (cfg, import) = import(PER_SUBNET);
    assert_eq!(cfg.globals.default_policy, "staff");
    assert_eq!(cfg.rules.len(), 4);
    assert_eq!(cfg.rules[2].dest_port.len(), 3);
    assert_eq!(cfg.rules[2].proto, crate::config::Proto::Tcp);
    let w = &import.warnings;
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].starts_with("mwan3:6: interface 'wwan': the network configuration names no device")
    );
    assert!(w[1].contains(
        ":9: interface 'wwan': track_method 'httping' with httping_ssl: uplinkd does not speak TLS"
    ));
    assert_eq!(
        cfg.interface("wwan").unwrap().track_method,
        TrackMethod::Ping
    );
}

#[test]
fn quotes_survive() {
    let mwan3 = "config interface 'wan'\nconfig member 'm'\n\toption interface 'wan'\n\
                 config policy 'p'\n\tlist use_member 'm'\n\
                 config rule 'r'\n\toption ipset \"it's\"\n\toption use_policy 'p'\n";
    // A set name nft cannot take drops that rule only.
    let (cfg, import) = import(mwan3);
    assert!(cfg.rules.is_empty());
    assert_warned(
        &import,
        &["ipset 'it's' is not a name nftables accepts: rule dropped"],
    );
}

#[test]
fn broken_input_is_an_error() {
    let e = convert("mwan3", "config interface 'wan\n", net()).unwrap_err();
    assert_eq!(e[0].line, 1);
}

#[test]
fn no_interface_section_is_an_error() {
    let mwan3 = "config globals 'globals'\n\toption mmx_mask '0x3F00'\n\
                 config policy 'p'\n\tlist use_member 'm'\n";
    let e = convert("mwan3", mwan3, net()).unwrap_err();
    assert!(
        e[0].message.contains("no named 'config interface' section"),
        "{e:?}"
    );
    assert!(convert("mwan3", "", net()).is_err());
}

/// Class 1: members of interfaces without a section are skipped by mwan3.
#[test]
fn members_of_unknown_interfaces_are_dropped() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
	list track_ip '1.1.1.1'
config member 'wan_m1'
	option interface 'wan'
config member 'lte_m2'
	option interface 'lte'
	option metric '2'
config member 'vpn_m1'
	option interface 'vpn'
config policy 'failover'
	list use_member 'wan_m1'
	list use_member 'lte_m2'
config policy 'vpn_only'
	list use_member 'vpn_m1'
	option last_resort 'default'
config rule 'vpn'
	option dest_ip '10.8.0.0/16'
	option use_policy 'vpn_only'
";
    let (cfg, import) = import(mwan3);
    assert_eq!(cfg.members.len(), 1);
    assert_eq!(cfg.policy("failover").unwrap().use_member, ["wan_m1"]);
    // Empty, as in mwan3: its traffic gets the last resort (here the main table).
    let vpn = cfg.policy("vpn_only").unwrap();
    assert!(vpn.use_member.is_empty());
    assert_eq!(vpn.last_resort, LastResort::Default);
    assert_eq!(cfg.rules.len(), 1);
    assert_warned(
        &import,
        &[
            "member 'lte_m2': interface 'lte' has no interface section",
            "member 'vpn_m1': interface 'vpn' has no interface section",
            "policy 'vpn_only': no member is left",
        ],
    );
}

/// Class 2: mwan3's rule values: dotted netmasks (its 2014 default's even/odd sticky
/// rules), `enabled 0`, ports with proto all, long names.
#[test]
fn rule_values_mwan3_accepts() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config interface 'wanb'
	option enabled '1'
config member 'wan_m1_w3'
	option interface 'wan'
	option metric '1'
	option weight '3'
config member 'wanb_m1_w2'
	option interface 'wanb'
	option metric '1'
	option weight '2'
config policy 'balanced'
	list use_member 'wan_m1_w3'
	list use_member 'wanb_m1_w2'
config policy 'wan_only'
	list use_member 'wan_m1_w3'
config rule 'sticky_even'
	option src_ip '0.0.0.0/0.0.0.1'
	option dest_port '443'
	option proto 'tcp'
	option use_policy 'wan_only'
config rule 'sticky_odd'
	option src_ip '0.0.0.1/0.0.0.1'
	option dest_port '443'
	option proto 'tcp'
	option use_policy 'balanced'
config rule 'lan_mask'
	option src_ip '192.168.1.77/255.255.255.0'
	option use_policy 'wan_only'
config rule 'v6_mask'
	option family 'ipv6'
	option dest_ip '2001:db8::/ffff:0:ffff::'
	option use_policy 'wan_only'
config rule 'v6_dotted'
	option family 'ipv6'
	option dest_ip '2001:db8:1::/ffff:ffff:ffff::'
	option use_policy 'wan_only'
config rule 'off'
	option enabled '0'
	option dest_ip '8.8.8.8'
	option use_policy 'wan_only'
config rule 'dns'
	option dest_ip '9.9.9.9'
	option dest_port '53'
	option use_policy 'wan_only'
config rule 'range'
	option proto 'udp'
	option dest_port '5060:5061 10000-20000'
	option use_policy 'wan_only'
config rule 'a_very_long_rule_name'
	option dest_ip '1.2.3.4'
	option use_policy 'wan_only'
config rule 'esp'
	option proto 'esp'
	option use_policy 'wan_only'
config rule 'host'
	option dest_ip 'example.com'
	option use_policy 'wan_only'
config rule 'default_rule'
	option dest_ip '0.0.0.0/0'
	option use_policy 'balanced'
";
    let (cfg, import) = import(mwan3);
    let names: Vec<&str> = cfg.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sticky_even",
            "sticky_odd",
            "lan_mask",
            "v6_dotted",
            "dns",
            "range",
            "esp",
            "default_rule"
        ]
    );
    let shown = |r: usize| -> Vec<String> {
        let r = &cfg.rules[r];
        r.src_ip
            .iter()
            .chain(&r.dest_ip)
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(shown(0), ["0.0.0.0/0.0.0.1"]);
    assert_eq!(shown(1), ["0.0.0.1/0.0.0.1"]);
    assert_eq!(shown(2), ["192.168.1.0/24"]);
    assert_eq!(shown(3), ["2001:db8:1::/48"]);
    // Ports are ignored by mwan3 unless proto is tcp or udp.
    assert!(cfg.rules[4].dest_port.is_empty());
    assert_eq!(cfg.rules[5].dest_port.len(), 2);
    assert_eq!(cfg.rules[6].proto, crate::config::Proto::Number(50));
    assert_eq!(cfg.globals.default_policy, "balanced");
    assert_warned(
        &import,
        &[
            "rule 'v6_mask': dest_ip '2001:db8::/ffff:0:ffff::': the IPv6 mask ffff:0:ffff:: is \
             not a prefix",
            "rule 'off': enabled 0",
            "rule 'dns': dest_port '53' with proto all: ignored, as mwan3 does",
            "rule 'a_very_long_rule_name': its name is longer than 15 characters",
            "rule 'host': dest_ip 'example.com'",
        ],
    );
}

/// Class 3: `reliability 0` never takes a WAN down in mwan3; reliability without
/// targets is ignored by mwan3.
#[test]
fn reliability_zero_and_without_targets() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
	list track_ip '1.1.1.1'
	list track_ip '8.8.8.8'
	option reliability '0'
config interface 'wanb'
	option enabled '1'
	option reliability '2'
config interface 'wanc'
	option enabled '1'
	list track_ip '1.1.1.1'
	option reliability '3'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
";
    let (cfg, import) = import(mwan3);
    let wan = cfg.interface("wan").unwrap();
    assert!(wan.track_ip.is_empty(), "follows its link only");
    let wanb = cfg.interface("wanb").unwrap();
    assert!(wanb.track_ip.is_empty());
    assert_eq!(wanb.reliability, 1);
    assert_eq!(cfg.interface("wanc").unwrap().reliability, 1);
    assert_warned(
        &import,
        &[
            "interface 'wan': reliability 0",
            "reliability 3 exceeds the 1 usable targets",
        ],
    );
    assert!(
        !warned(&import, "interface 'wanb'"),
        "{:#?}",
        import.warnings
    );
}

/// Class 4: flush_conntrack is carried; the old `always` is ifup and ifdown.
#[test]
fn flush_conntrack_is_carried() {
    let mwan3 = "\
config interface 'wan'
	list flush_conntrack 'ifup'
	list flush_conntrack 'disconnected'
config interface 'wanb'
	option flush_conntrack 'always'
config interface 'wanc'
	option flush_conntrack 'never'
config interface 'wand'
	option flush_conntrack 'sometimes'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
";
    let (cfg, import) = import(mwan3);
    let flush = |n: &str| {
        let f = cfg.interface(n).unwrap().flush;
        (f.on_up, f.on_down)
    };
    assert_eq!(flush("wan"), (true, true));
    assert_eq!(flush("wanb"), (true, true));
    assert_eq!(flush("wanc"), (false, false));
    assert_eq!(flush("wand"), (false, false));
    assert_warned(
        &import,
        &["flush_conntrack 'sometimes' is not an mwan3 event"],
    );
    assert!(!warned(&import, "interface 'wanb'"));
}

/// Class 5: interfaces without a device in the network configuration follow netifd.
#[test]
fn devices_left_to_netifd() {
    let network = "\
config interface 'wan'
	option device 'eth0.2'
	option proto 'dhcp'
config interface 'wwan'
	option proto 'dhcp'
config interface 'wan6'
	option device '@wan'
	option proto 'dhcpv6'
config interface 'lte'
	option proto 'qmi'
	option device '/dev/cdc-wdm0'
";
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config interface 'wan6'
	option enabled '1'
	option family 'ipv6'
config interface 'wwan'
	option enabled '1'
config interface 'lte_4'
	option enabled '1'
config interface 'wan_6'
	option enabled '1'
	option family 'ipv6'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
";
    let inputs = Inputs {
        network: Some(network),
        dhcp: None,
    };
    let (cfg, import) = import_with(mwan3, inputs);
    let dev = |n: &str| cfg.interface(n).unwrap().device.clone();
    assert_eq!(dev("wan"), "eth0.2");
    assert_eq!(dev("wan6"), "eth0.2");
    for n in ["wwan", "lte_4", "wan_6"] {
        assert_eq!(dev(n), "", "{n} follows netifd");
        assert_warned(&import, &[&format!("follows the netifd interface '{n}'")]);
    }
    // Without a network file: all follow netifd, one warning says so.
    let import = convert("mwan3", mwan3, Inputs::default()).unwrap();
    let cfg = Config::parse("converted", &import.text).unwrap();
    assert!(cfg.interfaces.iter().all(|i| i.device.is_empty()));
    assert_eq!(import.warnings.len(), 1, "{:#?}", import.warnings);
    assert!(!import.text.contains("option device"));
}

/// Class 6: without a catch-all rule mwan3 leaves unmatched traffic to the main table.
#[test]
fn unmatched_traffic_stays_in_the_main_table() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
config rule 'lan'
	option src_ip '192.168.1.0/24'
	option use_policy 'p'
config rule 'vpn'
	option dest_ip '10.0.0.0/8'
	option use_policy 'default'
";
    let (cfg, converted) = import(mwan3);
    assert_eq!(cfg.globals.default_policy, crate::config::DEFAULT_POLICY);
    assert_eq!(cfg.rules[1].use_policy, crate::config::UsePolicy::Default);
    assert_eq!(converted.warnings, Vec::<String>::new());
    // A catch-all to `default` says the same explicitly.
    let (cfg, _) = import(&format!(
        "{mwan3}config rule 'all'\n\toption use_policy 'default'\n"
    ));
    assert_eq!(cfg.globals.default_policy, crate::config::DEFAULT_POLICY);
}

/// Class 7: ipset rules are kept; the dhcp ipset sections are pointed at uplinkd's table.
#[test]
fn ipset_rules_and_dhcp_sections() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
config rule 'streaming'
	option ipset 'streaming'
	option use_policy 'p'
config rule 'work'
	option ipset 'work'
	option use_policy 'p'
";
    let dhcp = "\
config dnsmasq
	option domainneeded '1'
config ipset
	list name 'streaming'
	list domain 'netflix.com'
config ipset 'fw'
	list name 'blocked'
	list domain 'example.org'
";
    let inputs = Inputs {
        network: Some(NETWORK),
        dhcp: Some(dhcp),
    };
    let (cfg, import) = import_with(mwan3, inputs);
    assert_eq!(cfg.rules[0].ipset.as_deref(), Some("streaming"));
    assert_eq!(
        import.dhcp_batch,
        [
            "set dhcp.@ipset[0].table='uplinkd'",
            "set dhcp.@ipset[0].table_family='inet'",
            "commit dhcp"
        ]
    );
    assert_warned(
        &import,
        &[
            "ipset 'streaming': uplinkd matches the set 'streaming' in its own table (inet uplinkd); the ipset section of /etc/config/dhcp that fills it now has table 'uplinkd'",
            "ipset 'work': uplinkd matches the set 'work' in its own table (inet uplinkd), which dnsmasq must fill",
            "nftset=/<domain>/4#inet#uplinkd#work",
        ],
    );
    // Without the dhcp file: the advice for every set.
    let (_, import) = import_with(mwan3, net());
    assert!(import.dhcp_batch.is_empty());
    assert_warned(
        &import,
        &["ipset 'streaming': uplinkd matches", "table_family 'inet'"],
    );
}

/// Class 8 and 12: track methods uplinkd lacks, hostnames and targets that cannot answer.
#[test]
fn track_methods_and_unusable_targets() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
	option track_method 'httping'
	list track_ip 'www.google.com'
	list track_ip '1.1.1.1'
config interface 'wanb'
	option enabled '1'
	option track_method 'nping-tcp'
	list track_ip '8.8.8.8'
config interface 'wanc'
	option enabled '1'
	option track_method 'arping'
	list track_ip '0.0.0.0'
	list track_ip '192.168.100.1'
config interface 'wand'
	option enabled '1'
	option track_method 'nslookup'
	list track_ip 'dns.google'
config interface 'wane'
	option enabled '1'
	option track_method 'bogus'
	list track_ip '9.9.9.9'
	list track_ip '255.255.255.255'
	list track_ip '127.0.0.1'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
";
    let (cfg, import) = import(mwan3);
    let i = |n: &str| cfg.interface(n).unwrap();
    assert_eq!(i("wan").track_ip.len(), 1);
    assert_eq!(
        i("wan").track_method,
        TrackMethod::Http {
            port: 80,
            expect_status: 0
        }
    );
    assert_eq!(i("wan").request.http_path, "/");
    assert_eq!(i("wanb").track_method, TrackMethod::Tcp { port: 80 });
    assert!(i("wanc").track_ip.is_empty());
    assert_eq!(i("wanc").track_method, TrackMethod::Gateway);
    assert!(i("wand").track_ip.is_empty());
    assert_eq!(i("wane").track_ip.len(), 1);
    assert_warned(
        &import,
        &[
            "track_ip 'www.google.com' is not an address",
            "track_method 'arping': mwan3 asked the targets for their MAC address",
            "track_ip '0.0.0.0' cannot answer probes",
            "interface 'wand': no usable track_ip is left: uplinkd does not probe it and follows its link state",
            "track_method 'bogus': mwan3 does not know this method and pinged",
            "track_ip '255.255.255.255' cannot answer",
            "track_ip '127.0.0.1' cannot answer",
        ],
    );
    // No method warning where no targets are left (nothing is probed at all).
    assert!(!warned(&import, "track_method 'nslookup'"));
    assert!(!warned(&import, "nping-tcp"));
    assert!(!warned(&import, "track_method 'httping'"));
}

/// arping on the shape OpenWrt users write it (the modem or gateway as the one target,
/// count, timeout, interval, reliability) becomes the gateway probe with the same pace.
#[test]
fn arping_becomes_the_gateway_probe() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mwan3");
    let text = std::fs::read_to_string(dir.join("arping-gateway.mwan3")).unwrap();
    let network = std::fs::read_to_string(dir.join("arping-gateway.network")).unwrap();
    let inputs = Inputs {
        network: Some(&network),
        dhcp: None,
    };
    let import = convert("mwan3", &text, inputs).unwrap();
    let cfg = Config::parse("uplinkd", &import.text).unwrap();
    let wan = cfg.interface("wan").unwrap();
    assert_eq!(wan.track_method, TrackMethod::Gateway);
    assert!(wan.track_ip.is_empty(), "{}", import.text);
    assert_eq!((wan.targets(), wan.reliability, wan.count), (1, 1, 2));
    assert_eq!((wan.timeout, wan.interval), (secs("1"), secs("2")));
    // The other WAN keeps its pings.
    assert_eq!(
        cfg.interface("wan2").unwrap().track_method,
        TrackMethod::Ping
    );
    assert_warned(
        &import,
        &[
            "interface 'wan': track_method 'arping': mwan3 asked the targets for their MAC \
           address on the link (ARP); uplinkd asks the kernel to re-resolve the WAN's gateway",
        ],
    );
}

/// httping and nslookup become uplinkd's http and dns probes, asking what mwan3 asked.
#[test]
fn httping_and_nslookup_become_http_and_dns() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
	option track_method 'nslookup'
	list track_ip '1.1.1.1'
config interface 'wanb'
	option enabled '1'
	option track_method 'httping'
	option httping_ssl '0'
	list track_ip '192.0.2.80'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
";
    let (cfg, import) = import(mwan3);
    let wan = cfg.interface("wan").unwrap();
    assert_eq!(
        wan.track_method,
        TrackMethod::Dns {
            port: 53,
            qtype: crate::probe::dns::Type::A
        }
    );
    assert_eq!(wan.request.dns_query, "www.google.com");
    let wanb = cfg.interface("wanb").unwrap();
    assert_eq!(
        wanb.track_method,
        TrackMethod::Http {
            port: 80,
            expect_status: 0
        }
    );
    assert!(!warned(&import, "track_method"), "{:#?}", import.warnings);
}

/// Class 9: `logging`/`loglevel` are per-rule packet logging.
#[test]
fn logging_is_packet_logging() {
    let mwan3 = "\
config globals 'globals'
	option logging '1'
	option loglevel 'debug'
config interface 'wan'
	option enabled '1'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
config rule 'r'
	option logging '1'
	option use_policy 'p'
";
    let (cfg, import) = import(mwan3);
    assert_eq!(cfg.globals.log_level, log::LevelFilter::Info);
    assert_warned(&import, &["globals: logging", "rule 'r': logging"]);
}

/// Class 10: two members of one interface in one policy keep mwan3's total share.
#[test]
fn two_members_of_one_interface_keep_their_share() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config interface 'wanb'
	option enabled '1'
config member 'wan_a'
	option interface 'wan'
	option weight '2'
config member 'wan_b'
	option interface 'wan'
	option weight '3'
config member 'wan_backup'
	option interface 'wan'
	option metric '5'
config member 'wanb_m'
	option interface 'wanb'
	option weight '5'
config policy 'balanced'
	list use_member 'wan_a'
	list use_member 'wan_b'
	list use_member 'wan_backup'
	list use_member 'wanb_m'
	list use_member 'wanb_m'
";
    let (cfg, import) = import(mwan3);
    let p = cfg.policy("balanced").unwrap();
    assert_eq!(p.use_member, ["balanced_wan", "wanb_m"]);
    let m = cfg.member("balanced_wan").unwrap();
    assert_eq!((m.interface.as_str(), m.metric, m.weight), ("wan", 1, 5));
    assert_warned(&import, &["members wan_a, wan_b all use interface 'wan'"]);
}

/// `use_policy unreachable` and `blackhole` (mwan3's built-in targets).
#[test]
fn unreachable_and_blackhole_policies() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
config rule 'block'
	option dest_ip '198.51.100.0/24'
	option use_policy 'blackhole'
config rule 'reject'
	option dest_ip '203.0.113.0/24'
	option use_policy 'unreachable'
config policy 'default'
	list use_member 'm'
";
    let (cfg, import) = import(mwan3);
    let p = cfg.policy("blackhole").unwrap();
    assert!(p.use_member.is_empty());
    assert_eq!(p.last_resort, LastResort::Blackhole);
    assert_eq!(
        cfg.policy("unreachable").unwrap().last_resort,
        LastResort::Unreachable
    );
    assert!(cfg.policy("default").is_none());
    assert_warned(&import, &["policy 'default'"]);
}

/// uci reads two sections of one name and type as one, and so does the conversion.
#[test]
fn repeated_sections_merge_as_uci_does() {
    let mwan3 = "\
config interface 'wan'
	option enabled '1'
	list track_ip '1.1.1.1'
	option timeout '1.5'
config member 'm'
	option interface 'wan'
config policy 'p'
	list use_member 'm'
config interface 'wan'
	list track_ip '8.8.8.8'
	option interval '2'
";
    let (cfg, import) = import(mwan3);
    let wan = cfg.interface("wan").unwrap();
    assert_eq!(wan.track_ip.len(), 2);
    assert_eq!(wan.interval, secs("2"));
    assert_eq!(wan.timeout, Duration::from_millis(1500));
    assert_eq!(import.warnings, Vec::<String>::new());
}

/// Out-of-range numbers are brought into range, never fail the import.
#[test]
fn numbers_out_of_range_are_clamped() {
    let mwan3 = "\
config interface 'wan'
	option enabled 'yes'
	list track_ip '1.1.1.1'
	option count '20'
	option timeout '0'
	option interval 'ten'
	option up '0'
	option check_quality '1'
	option failure_latency '100'
	option recovery_latency '400'
config member 'm'
	option interface 'wan'
	option metric '0'
	option weight '5000'
config policy 'p'
	list use_member 'm'
	option last_resort 'maybe'
";
    let (cfg, import) = import(mwan3);
    let i = cfg.interface("wan").unwrap();
    assert!(i.enabled);
    assert_eq!(i.count, 10);
    assert_eq!(i.interval, secs("10"));
    let m = cfg.member("m").unwrap();
    assert_eq!((m.metric, m.weight), (1, 1000));
    assert!(import.warnings.len() >= 6, "{:#?}", import.warnings);
}

/// The realistic configurations in tests/mwan3 (OpenWrt's defaults of several eras,
/// 1 to 8 WANs, IPv6, sticky, ipset, tracking methods, wifi clients, netifd's dynamic
/// interfaces) all convert and pass check.
#[test]
fn corpus_converts_and_passes_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mwan3");
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mwan3"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let side = |ext: &str| std::fs::read_to_string(path.with_extension(ext)).ok();
        let (network, dhcp) = (side("network"), side("dhcp"));
        let inputs = Inputs {
            network: network.as_deref(),
            dhcp: dhcp.as_deref(),
        };
        let name = path.display().to_string();
        let import = convert(&name, &text, inputs).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
        if let Err(e) = Config::parse(&name, &import.text) {
            panic!("{name}: {e:#?}\n{}", import.text);
        }
        n += 1;
    }
    assert!(n >= 20, "only {n} configurations in {}", dir.display());
}
