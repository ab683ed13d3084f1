//! Property: every config that `uplinkd check` accepts renders an nft ruleset that
//! `nft -c` accepts too. Configs come from a small seeded generator mixing valid and
//! hostile values (names with quotes, wildcards and comment signs, odd families, sets,
//! ports); `check` itself runs `nft -c` on what it renders, so a config that passes the
//! config checks but not nft shows up as "nft -c rejects".
//!
//! Needs `nft` and CAP_NET_ADMIN (nft -c asks the kernel); skips with one line otherwise.

use std::path::Path;
use std::process::Command;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const DEVICES: &[&str] = &[
    "eth1",
    "eth0.2",
    "pppoe-wan",
    "wg0",
    "6in4-he",
    "lan1@eth0",
    "wan+",
    "a.b_c-d",
    "br-lan",
];
const BAD_DEVICES: &[&str] = &[
    "wan1\"x",
    "wan*",
    "wan1#",
    "x;y",
    "sixteen-bytes-xx",
    "eth 1",
    "a}b",
    "",
];
const SETS: &[&str] = &["vpn", "_v6set", "a.b/c-d", "Set9"];
const BAD_SETS: &[&str] = &["1bad", "a\"b", "set;x", "x#y", "a b"];
const FAMILIES: &[&str] = &["ipv4", "ipv6", "any"];
const PROTOS: &[&str] = &["all", "tcp", "udp", "icmp", "47"];
const PORTS: &[&str] = &["443", "8000-8100", "1", "65535", "22 80"];
const BAD_PORTS: &[&str] = &["0", "5-4", "x"];

/// Mostly valid values, now and then a hostile one.
fn value<'a>(rng: &mut Rng, good: &[&'a str], bad: &[&'a str]) -> &'a str {
    if rng.chance(8) {
        rng.pick(bad)
    } else {
        rng.pick(good)
    }
}

fn config(rng: &mut Rng) -> String {
    let mut s = String::from("config globals 'globals'\n");
    let n = 1 + rng.below(4);
    let mut families = Vec::new();
    for k in 0..n {
        s += &format!("\nconfig interface 'wan{k}'\n");
        if rng.chance(85) {
            // Mostly one device per WAN; sometimes a shared one.
            let dev = if rng.chance(90) {
                DEVICES[k % DEVICES.len()]
            } else {
                value(rng, DEVICES, BAD_DEVICES)
            };
            s += &format!("\toption device '{dev}'\n");
        }
        let family = rng.pick(FAMILIES);
        families.push(family);
        s += &format!("\toption family '{family}'\n");
        if family != "ipv6" {
            s += "\tlist track_ip '192.0.2.1'\n";
        }
        if family != "ipv4" {
            s += "\tlist track_ip '2001:db8::53'\n";
            if rng.chance(30) {
                s += "\tlist ip6prefix '2001:db8:1::/48'\n";
            }
        }
        if rng.chance(10) {
            s += "\toption enabled '0'\n";
        }
        s += &format!(
            "\nconfig member 'm{k}'\n\toption interface 'wan{k}'\n\toption metric '{}'\n\toption weight '{}'\n",
            1 + rng.below(3),
            1 + rng.below(5)
        );
    }
    for p in 0..1 + rng.below(3) {
        s += &format!("\nconfig policy 'p{p}'\n");
        for k in 0..n {
            if rng.chance(70) {
                s += &format!("\tlist use_member 'm{k}'\n");
            }
        }
    }
    for r in 0..rng.below(5) {
        s += &format!("\nconfig rule 'r{r}'\n\toption use_policy 'p0'\n");
        let proto = if rng.chance(60) {
            rng.pick(PROTOS)
        } else {
            "all"
        };
        s += &format!("\toption proto '{proto}'\n");
        let ports_ok = matches!(proto, "all" | "tcp" | "udp");
        if ports_ok && rng.chance(40) {
            s += &format!("\toption dest_port '{}'\n", value(rng, PORTS, BAD_PORTS));
        }
        if ports_ok && rng.chance(20) {
            s += &format!("\toption src_port '{}'\n", value(rng, PORTS, BAD_PORTS));
        }
        let family = rng.pick(FAMILIES);
        if rng.chance(30) {
            s += &format!("\toption family '{family}'\n");
            if rng.chance(50) {
                let src = if family == "ipv6" {
                    "fd00::/8"
                } else {
                    rng.pick(&[
                        "10.0.0.0/8",
                        "0.0.0.1/0.0.0.1",
                        "10.0.0.0/255.0.0.0 0.0.0.0/0.0.0.1 192.168.1.0/24",
                        "10.1.0.7/255.0.255.0",
                    ])
                };
                if family != "any" {
                    s += &format!("\toption src_ip '{src}'\n");
                }
                if family == "ipv4" && rng.chance(50) {
                    s += "\toption dest_ip '198.51.100.0/24 0.0.0.0/0.0.0.3'\n";
                }
            }
        }
        if rng.chance(40) {
            s += &format!(
                "\toption src_iface '{}'\n",
                value(rng, DEVICES, BAD_DEVICES)
            );
        }
        if rng.chance(40) {
            s += &format!("\toption ipset '{}'\n", value(rng, SETS, BAD_SETS));
        }
        if rng.chance(30) {
            s += "\toption sticky '1'\n";
        }
    }
    s
}

#[test]
fn nft_accepts_what_check_accepts() {
    let dir = std::env::temp_dir().join(format!("uplinkd-check-nft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("uplinkd");
    let mut rng = Rng(0x005e_ed0f_c0ff_ee42);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..150 {
        let text = config(&mut rng);
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(bin())
            .arg("check")
            .arg("-c")
            .arg(&file)
            .output()
            .expect("run uplinkd check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("ruleset not checked") {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("skipped: {}", stdout.lines().last().unwrap_or(""));
            return;
        }
        assert!(
            !stdout.contains("nft -c rejects"),
            "config #{i} passes check but not nft -c:\n{text}\n---\n{stdout}"
        );
        if out.status.success() {
            accepted += 1;
        } else {
            refused += 1;
            if std::env::var_os("CHECK_NFT_VERBOSE").is_some() {
                eprintln!("{stdout}");
            }
            // Refusals name the place: file:line.
            let place = format!("{}:", file.display());
            assert!(stdout.contains(&place), "config #{i}: {stdout}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{accepted} configs accepted by check and nft -c, {refused} refused by check");
    assert!(accepted > 50, "the generator makes too few valid configs");
    assert!(refused > 5, "the generator makes too few hostile configs");
}

/// Dotted netmasks, contiguous or not, mixed with prefixes of both families: what
/// `check` accepts, `nft -c` accepts.
#[test]
fn nft_accepts_masked_rule_addresses() {
    let dir = std::env::temp_dir().join(format!("uplinkd-check-mask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("uplinkd");
    let text = "\
config interface 'wan'
	option device 'eth1'
	option family 'any'
config interface 'wanb'
	option device 'eth2'
config member 'a'
	option interface 'wan'
config member 'b'
	option interface 'wanb'
config policy 'p'
	list use_member 'a'
	list use_member 'b'
config rule 'even'
	option src_ip '0.0.0.0/0.0.0.1'
	option proto 'tcp'
	option dest_port '443'
	option sticky '1'
	option use_policy 'p'
config rule 'mixed'
	list src_ip '10.0.0.0/255.0.0.255'
	list src_ip '192.168.1.0/255.255.255.0'
	list src_ip 'fd00::/8'
	list dest_ip '198.51.100.0/24'
	list dest_ip '0.0.0.2/0.0.0.3'
	option src_iface 'br-lan'
	option use_policy 'default'
";
    std::fs::write(&file, text).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("-c")
        .arg(&file)
        .output()
        .expect("run uplinkd check");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("ruleset not checked") {
        eprintln!("skipped: {}", stdout.lines().last().unwrap_or(""));
        return;
    }
    assert!(out.status.success(), "{stdout}");
}
