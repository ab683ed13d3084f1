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

fn import(mwan3: &str) -> (Config, Import) {
    let import = match convert("mwan3", mwan3, Some(NETWORK)) {
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

/// Everything an mwan3 interface, member and policy says, read with mwan3's defaults,
/// must be what uplinkd understood from the converted file; rules must be unchanged.
fn assert_same_meaning(mwan3: &str, cfg: &Config, import: &Import) {
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
    let converted = uci::parse("converted", &import.text).unwrap();
    let rules = |secs: &[uci::Section]| -> Vec<(Option<String>, Vec<(String, Value)>)> {
        secs.iter()
            .filter(|s| s.ty == "rule")
            .map(|s| {
                let opts = s.options.iter().map(|o| (o.name.clone(), o.value.clone()));
                (s.name.clone(), opts.collect())
            })
            .collect()
    };
    assert_eq!(rules(&converted), rules(&sections));
}

#[test]
fn shipped_default() {
    let (cfg, import) = import(SHIPPED);
    assert_same_meaning(SHIPPED, &cfg, &import);
    assert_eq!(cfg.globals.default_policy, "balanced");
    assert_eq!(cfg.globals.fwmark_mask, 0x3F00);
    let devices: Vec<&str> = cfg.interfaces.iter().map(|i| i.device.as_str()).collect();
    assert_eq!(devices, ["eth1", "eth1", "eth2", "eth2"]);
    assert_eq!(import.warnings, Vec::<String>::new());
}

#[test]
fn failover() {
    let (cfg, import) = import(FAILOVER);
    assert_same_meaning(FAILOVER, &cfg, &import);
    assert_eq!(cfg.globals.default_policy, "failover");
    assert_eq!(cfg.globals.log_level, log::LevelFilter::Info);
    // No device for the QMI modem in the network configuration: its name stands in.
    assert_eq!(cfg.interface("wwan").unwrap().device, "wwan");
    assert_eq!(import.warnings.len(), 1, "{:#?}", import.warnings);
    assert!(import.warnings[0].contains("set option device"));
}

#[test]
fn balance_with_sticky_https() {
    let (cfg, import) = import(BALANCE);
    assert_same_meaning(BALANCE, &cfg, &import);
    assert_eq!(cfg.globals.default_policy, "balanced");
    assert_eq!(cfg.interface("dsl").unwrap().device, "pppoe-dsl");
    assert!(import.text.contains("\toption sticky '1'\n"));
    assert_eq!(import.warnings, Vec::<String>::new());
}

#[test]
fn policy_per_subnet() {
    let (cfg, import) = import(PER_SUBNET);
    assert_same_meaning(PER_SUBNET, &cfg, &import);
    assert_eq!(cfg.globals.default_policy, "staff");
    let w = &import.warnings;
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].starts_with("mwan3:6: interface 'wwan': no device found"));
    assert!(w[1].contains(":9: interface 'wwan': track_method 'httping' has no equivalent"));
    assert!(w[2].contains(":10: interface 'wwan': option httping_ssl has no equivalent"));
}

#[test]
fn without_network_config_or_catch_all_rule() {
    let mwan3 =
        "config interface 'wan'\n\tlist track_ip 'example.com'\n\tlist track_ip '1.1.1.1'\n\
                 \toption reliability '2'\n\toption flush_conntrack 'ifdown'\n\
                 config member 'm'\n\toption interface 'wan'\n\toption bogus 'x'\n\
                 config policy 'p'\n\tlist use_member 'm'\n\
                 config policy 'q'\n\tlist use_member 'm'\n";
    let import = convert("mwan3", mwan3, None).unwrap();
    let cfg = Config::parse("converted", &import.text).unwrap();
    assert_eq!(cfg.interfaces[0].device, "wan");
    assert_eq!(
        cfg.interfaces[0].track_ip,
        ["1.1.1.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(cfg.interfaces[0].reliability, 1);
    // mwan3 leaves interfaces without 'enabled' disabled.
    assert!(!cfg.interfaces[0].enabled);
    assert_eq!(cfg.globals.default_policy, "p");
    let w = import.warnings.join("\n");
    for expected in [
        "no rule matches all traffic",
        "set option device",
        "'example.com' is not an IP address",
        "reliability 2 exceeds",
        "flush_conntrack has no equivalent",
        "option bogus is not a known mwan3 member option",
    ] {
        assert!(w.contains(expected), "{expected}: {w}");
    }
}

#[test]
fn quotes_survive() {
    let mwan3 = "config interface 'wan'\nconfig member 'm'\n\toption interface 'wan'\n\
                 config policy 'p'\n\tlist use_member 'm'\n\
                 config rule 'r'\n\toption ipset \"it's\"\n\toption use_policy 'p'\n";
    // The quote must survive the trip (uplinkd's check then refuses the set name).
    let import = convert("mwan3", mwan3, Some(NETWORK)).expect("converted");
    assert!(
        import.text.contains("option ipset 'it'\\''s'"),
        "{}",
        import.text
    );
}

#[test]
fn broken_input_is_an_error() {
    let e = convert("mwan3", "config interface 'wan\n", None).unwrap_err();
    assert_eq!(e[0].line, 1);
}
