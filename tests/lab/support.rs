//! A network-namespace lab: a router with N uplinks to N ISPs, an "internet" behind them
//! and a LAN client in front, built from veth pairs, `ip` and `nft` in throwaway
//! namespaces. It exists to prove uplinkd against the real kernel with real traffic.
//!
//! ```text
//!   lan (192.168.77.2) ── rtr ──wan1── isp1 ──100.64.1.0/24──┐
//!                          │  ──wan2── isp2 ──100.64.2.0/24──┼── inet: 203.0.113.1-3 (probe
//!                          │  ──wan3── isp3 ──100.64.3.0/24──┘         targets), .10 (server)
//!                    uplinkd runs here
//! ```
//!
//! Every ISP masquerades towards `inet`, so the server sees 100.64.k.2 and can tell which
//! ISP carried a connection. `inet` routes nothing back but its own links: traffic that
//! leaves an ISP un-NATed (a leak) cannot return. The router carries what netifd leaves
//! behind (one `proto static` default route per WAN in `main`, metric 10·k) and a broad
//! `oifname "wan*" masquerade`, like fw4.
//!
//! Namespaces are named `ul<pid>x<counter>-<role>`; a new lab first deletes those whose
//! process is gone. Dropping the [`Lab`] kills what runs inside and deletes them all, also
//! when a test panics.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where the test server listens (on `lo` in `inet`).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const TCP_PORT: u16 = 8080;
pub const UDP_PORT: u16 = 8081;
/// Probe targets, on `lo` in `inet`.
pub const TARGETS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(203, 0, 113, 1),
    Ipv4Addr::new(203, 0, 113, 2),
    Ipv4Addr::new(203, 0, 113, 3),
];
/// The LAN client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

/// uplinkd's default kernel layout.
pub const TABLE_FIRST: u32 = 1100;
pub const POLICY_ID: u32 = 1199;
pub const RULE_FIRST: u32 = 4000;
pub const RULE_LAST: u32 = 4999;
pub const OWNED_IDS: std::ops::RangeInclusive<u32> = 1100..=1199;
/// Nexthop ids uplinkd owns: the tables' for IPv4, the next hundred for IPv6.
pub const OWNED_NEXTHOP_IDS: std::ops::RangeInclusive<u32> = 1100..=1299;
/// IPv6 nexthop id of WAN slot `k` - 1, and of the default policy's group.
pub const NH6_OFFSET: u32 = 100;

/// Bound on any single client operation, so a broken path costs seconds, not minutes.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How to break an ISP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Break {
    /// The ISP's router-facing veth goes down: the router's `wan<k>` loses carrier.
    Carrier,
    /// The ISP drops everything it forwards; its gateway still answers ARP and ping.
    Blackhole,
    /// The ISP drops this percentage of forwarded packets at random, both directions.
    Loss(u8),
}

pub struct Lab {
    prefix: String,
    n_isps: usize,
    /// Dual stack: IPv6 beside IPv4 (see [`Lab::new_dual_stack`]).
    v6: bool,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
}

/// The daemon a benchmark drives: the path in its first argument, else the `uplinkd`
/// binary of the same build (`target/<profile>/examples/<bench>` → `target/<profile>/`).
pub fn uplinkd_for_bench() -> PathBuf {
    if let Some(p) = std::env::args().nth(1) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("uplinkd"))
        .expect("binary path")
}

/// WAN k (1-based) → its nexthop id / table.
pub fn wan_id(k: usize) -> u32 {
    TABLE_FIRST + k as u32 - 1
}

/// The gateway of ISP k as the router first sees it.
pub fn gateway(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, k as u8, 1)
}

/// The address ISP k masquerades to (what the server sees).
pub fn isp_public(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, k as u8, 2)
}

/// IPv6 probe targets, on `lo` in `inet` (dual-stack lab).
pub const TARGETS6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 3),
];

/// IPv6 server addresses: `[0]` is reached from the client's ULA address, `[k]` from
/// its address in ISP k's delegated prefix.
pub const SERVERS6: [Ipv6Addr; 5] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x12),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x13),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x14),
];

/// The IPv6 server the client reaches from its ULA address (`None`) or from its
/// address in ISP k's prefix.
pub fn server6(k: Option<usize>) -> Ipv6Addr {
    SERVERS6[k.unwrap_or(0)]
}

/// The client's IPv6 address: ULA (`None`) or in ISP k's delegated prefix.
pub fn client6(k: Option<usize>) -> Ipv6Addr {
    match k {
        None => Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2),
        Some(k) => Ipv6Addr::new(0x2001, 0xdb8, 0xd0 + k as u16, 1, 0, 0, 0, 2),
    }
}

/// ISP k's /64 on the WAN link.
pub fn wan_prefix6(k: usize) -> String {
    format!("2001:db8:20:{k}::/64")
}

/// The router's address on WAN k (what NAT66 rewrites ULA sources to).
pub fn wan_address6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x20, k as u16, 0, 0, 0, 2)
}

/// The /48 ISP k delegates to the router.
pub fn delegated6(k: usize) -> String {
    format!("2001:db8:d{k}::/48")
}

/// Which ISP a source address the server sees belongs to: an ISP's masquerade address
/// (IPv4), or an address in an ISP's WAN /64 or delegated /48 (IPv6).
fn isp_of(addr: IpAddr) -> Option<usize> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            (o[0] == 100 && o[1] == 64 && o[3] == 2 && o[2] >= 1).then_some(o[2] as usize)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if s[0] != 0x2001 || s[1] != 0xdb8 {
                return None;
            }
            match s[2] {
                0x20 if (1..=4).contains(&s[3]) => Some(s[3] as usize),
                0xd1..=0xd4 => Some(usize::from(s[2] - 0xd0)),
                _ => None,
            }
        }
    }
}

impl Lab {
    /// Build the whole topology with `n_isps` (1..=4) ISPs. Panics with the failing
    /// command if the kernel refuses something.
    pub fn new(n_isps: usize) -> Lab {
        Lab::with(n_isps, false)
    }

    /// The same lab, dual stack: every ISP also gives the router native IPv6 (a
    /// /64 on the WAN link with the ISP at `fe80::1`, and a delegated /48 `2001:db8:dK::/48`
    /// that it routes back through the router), routes only its own prefixes towards
    /// `inet` and drops other sources (BCP 38). The LAN has a ULA /64 (`fd77::/64`,
    /// NAT66 on the router, for uplinkd to balance and fail over) and a /64 of each
    /// delegated prefix (bound to its ISP). The client reaches [`server6`]`(None)`
    /// from its ULA address and `server6(Some(k))` from its address in ISP k's prefix.
    pub fn new_dual_stack(n_isps: usize) -> Lab {
        Lab::with(n_isps, true)
    }

    fn with(n_isps: usize, v6: bool) -> Lab {
        assert!((1..=4).contains(&n_isps), "1..=4 ISPs");
        cleanup_stale();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
        let prefix = format!("ul{}x{}-", std::process::id(), n);
        let dir = std::env::temp_dir().join(format!("uplinkd-lab-{}x{}", std::process::id(), n));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create lab dir");
        let lab = Lab {
            prefix,
            n_isps,
            v6,
            dir,
            stop: Arc::new(AtomicBool::new(false)),
        };
        lab.build();
        lab.start_server();
        lab.warm_up();
        lab
    }

    pub fn n_isps(&self) -> usize {
        self.n_isps
    }

    /// The full namespace name of a role (`rtr`, `lan`, `inet`, `isp1`..).
    pub fn ns(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A scratch directory that lives as long as the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn roles(&self) -> Vec<String> {
        let mut r = vec!["inet".to_string(), "rtr".to_string(), "lan".to_string()];
        r.extend((1..=self.n_isps).map(|k| format!("isp{k}")));
        r
    }

    fn build(&self) {
        for role in self.roles() {
            run(Command::new("ip").args(["netns", "add", &self.ns(&role)]));
            if self.v6 {
                // Addresses are usable at once; nobody autoconfigures.
                for conf in ["all", "default"] {
                    self.sysctl(&role, &format!("net.ipv6.conf.{conf}.accept_dad"), "0");
                    self.sysctl(&role, &format!("net.ipv6.conf.{conf}.accept_ra"), "0");
                }
            } else {
                // No IPv6: keeps `ip monitor` free of link-local noise.
                self.sysctl(&role, "net.ipv6.conf.all.disable_ipv6", "1");
                self.sysctl(&role, "net.ipv6.conf.default.disable_ipv6", "1");
            }
            self.sysctl(&role, "net.ipv4.conf.all.rp_filter", "0");
            self.sysctl(&role, "net.ipv4.conf.default.rp_filter", "0");
            self.ip(&role, &["link", "set", "lo", "up"]);
        }
        let rtr = self.ns("rtr");
        let inet = self.ns("inet");

        // inet: targets and server on lo, one link per ISP, no route back to anything else.
        for a in TARGETS.iter().chain([SERVER].iter()) {
            self.ip("inet", &["addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }

        for k in 1..=self.n_isps {
            let isp = format!("isp{k}");
            let isp_ns = self.ns(&isp);
            // ISP upstream: "upstream" in the ISP, "isp<k>" in inet.
            self.ip(
                &isp,
                &[
                    "link", "add", "upstream", "type", "veth", "peer", "name", &isp, "netns", &inet,
                ],
            );
            self.ip(
                &isp,
                &[
                    "addr",
                    "add",
                    &format!("100.64.{k}.2/24"),
                    "dev",
                    "upstream",
                ],
            );
            self.ip(&isp, &["link", "set", "upstream", "up"]);
            self.ip(
                "inet",
                &["addr", "add", &format!("100.64.{k}.1/24"), "dev", &isp],
            );
            self.ip("inet", &["link", "set", &isp, "up"]);
            // Router side: "wan<k>" in the router, "rtr" in the ISP.
            let wan = format!("wan{k}");
            self.ip(
                "rtr",
                &[
                    "link", "add", &wan, "type", "veth", "peer", "name", "rtr", "netns", &isp_ns,
                ],
            );
            self.ip(
                &isp,
                &["addr", "add", &format!("10.20.{k}.1/24"), "dev", "rtr"],
            );
            self.ip(&isp, &["link", "set", "rtr", "up"]);
            self.ip(
                "rtr",
                &["addr", "add", &format!("10.20.{k}.2/24"), "dev", &wan],
            );
            self.ip("rtr", &["link", "set", &wan, "up"]);
            self.ip(
                &isp,
                &["route", "add", "default", "via", &format!("100.64.{k}.1")],
            );
            self.sysctl(&isp, "net.ipv4.ip_forward", "1");
            self.nft(
                &isp,
                "table inet lab {\n\
                 \tchain transit { type filter hook forward priority 0; policy accept; }\n\
                 \tchain nat_out { type nat hook postrouting priority 100; oifname \"upstream\" meta nfproto ipv4 masquerade; }\n\
                 }\n",
            );
        }

        // Router: what netifd and fw4 leave behind.
        self.ip(
            "rtr",
            &[
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &self.ns("lan"),
            ],
        );
        self.ip("rtr", &["addr", "add", "192.168.77.1/24", "dev", "lan"]);
        self.ip("rtr", &["link", "set", "lan", "up"]);
        self.sysctl("rtr", "net.ipv4.ip_forward", "1");
        for k in 1..=self.n_isps {
            let gw = gateway(k).to_string();
            let metric = (10 * k).to_string();
            let wan = format!("wan{k}");
            self.ip(
                "rtr",
                &[
                    "route", "add", "default", "via", &gw, "dev", &wan, "proto", "static",
                    "metric", &metric,
                ],
            );
        }
        self.install_masquerade();
        let _ = rtr;

        // LAN client.
        self.ip(
            "lan",
            &["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"],
        );
        self.ip("lan", &["link", "set", "eth0", "up"]);
        self.ip("lan", &["route", "add", "default", "via", "192.168.77.1"]);
        if self.v6 {
            self.build_v6();
        }
    }

    fn build_v6(&self) {
        for a in TARGETS6.iter().chain(&SERVERS6) {
            self.ip(
                "inet",
                &["-6", "addr", "add", &format!("{a}/128"), "dev", "lo"],
            );
        }
        self.sysctl("rtr", "net.ipv6.conf.all.forwarding", "1");
        let lan = ["-6", "addr", "add", "fd77::1/64", "dev", "lan", "nodad"];
        self.ip("rtr", &lan);
        self.ip(
            "lan",
            &["-6", "addr", "add", "fd77::2/64", "dev", "eth0", "nodad"],
        );
        self.ip(
            "lan",
            &[
                "-6", "route", "add", "default", "via", "fd77::1", "src", "fd77::2",
            ],
        );
        for k in 1..=self.n_isps {
            let isp = format!("isp{k}");
            let wan = format!("wan{k}");
            let (link, delegated) = (wan_prefix6(k), delegated6(k));
            self.sysctl(&isp, "net.ipv6.conf.all.forwarding", "1");
            let up_isp = format!("2001:db8:64:{k}::2/64");
            self.ip(
                &isp,
                &["-6", "addr", "add", &up_isp, "dev", "upstream", "nodad"],
            );
            let up_inet = format!("2001:db8:64:{k}::1");
            self.ip(
                "inet",
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{up_inet}/64"),
                    "dev",
                    &isp,
                    "nodad",
                ],
            );
            self.ip(&isp, &["-6", "route", "add", "default", "via", &up_inet]);
            // The internet routes the ISP's prefixes to it, and only those.
            for p in [&link, &delegated] {
                self.ip(
                    "inet",
                    &["-6", "route", "add", p, "via", &up_isp[..up_isp.len() - 3]],
                );
            }
            // The ISP's side of the WAN link: fe80::1 (its RA address) and the /64.
            self.ip(
                &isp,
                &["-6", "addr", "add", "fe80::1/64", "dev", "rtr", "nodad"],
            );
            let isp_link = format!("2001:db8:20:{k}::1/64");
            self.ip(
                &isp,
                &["-6", "addr", "add", &isp_link, "dev", "rtr", "nodad"],
            );
            self.ip(
                &isp,
                &[
                    "-6", "route", "add", &delegated, "via", "fe80::2", "dev", "rtr",
                ],
            );
            self.nft(
                &isp,
                &format!(
                    "table inet lab6 {{\n\
                     \tchain bcp38 {{ type filter hook forward priority -10; policy accept;\n\
                     \t\tiifname \"rtr\" ip6 saddr != {{ {link}, {delegated} }} counter drop\n\
                     \t}}\n\
                     }}\n"
                ),
            );
            // The router's side, and what netifd installs for a DHCPv6-PD uplink: a
            // default route and a source-specific one for the delegated prefix.
            self.ip(
                "rtr",
                &["-6", "addr", "add", "fe80::2/64", "dev", &wan, "nodad"],
            );
            let rtr_addr = format!("{}/64", wan_address6(k));
            self.ip(
                "rtr",
                &["-6", "addr", "add", &rtr_addr, "dev", &wan, "nodad"],
            );
            let metric = (10 * k).to_string();
            for from in [None, Some(delegated.as_str())] {
                let mut args = vec!["-6", "route", "add", "default"];
                if let Some(f) = from {
                    args.extend(["from", f]);
                }
                args.extend([
                    "via", "fe80::1", "dev", &wan, "proto", "static", "metric", &metric,
                ]);
                self.ip("rtr", &args);
            }
            let lan_net = format!("2001:db8:d{k}:1::1/64");
            self.ip(
                "rtr",
                &["-6", "addr", "add", &lan_net, "dev", "lan", "nodad"],
            );
            let client = client6(Some(k)).to_string();
            let with_len = format!("{client}/64");
            self.ip(
                "lan",
                &["-6", "addr", "add", &with_len, "dev", "eth0", "nodad"],
            );
            let server = server6(Some(k)).to_string();
            self.ip(
                "lan",
                &[
                    "-6", "route", "add", &server, "via", "fd77::1", "src", &client,
                ],
            );
        }
    }

    /// Resolve every neighbour on every path once, so that the first measured
    /// connections do not race ARP (a first burst through a cold path loses a handshake
    /// now and then).
    fn warm_up(&self) {
        let mut pings = Vec::new();
        for k in 1..=self.n_isps {
            let wan = format!("wan{k}");
            pings.push(self.spawn_in(
                "rtr",
                &["ping", "-c1", "-W2", "-I", &wan, &SERVER.to_string()],
            ));
        }
        pings.push(self.spawn_in("lan", &["ping", "-c1", "-W2", "192.168.77.1"]));
        if self.v6 {
            let server = server6(None).to_string();
            for k in 1..=self.n_isps {
                let wan = format!("wan{k}");
                let args = ["ping", "-6", "-c1", "-W2", "-I", &wan, &server];
                pings.push(self.spawn_in("rtr", &args));
            }
            pings.push(self.spawn_in("lan", &["ping", "-6", "-c1", "-W2", "fd77::1"]));
        }
        for mut p in pings {
            let _ = p.wait();
        }
    }

    fn spawn_in(&self, ns: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ip netns exec")
    }

    // ---- running things -------------------------------------------------------------

    /// Run a command inside a namespace (`ip netns exec`), whatever its exit status.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec")
    }

    /// Run `ip -n <ns> ARGS`; panics with stderr if it fails.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        run(Command::new("ip").args(["-n", &self.ns(ns)]).args(args))
    }

    /// Run `ip -n <ns> ARGS`, returning None on failure.
    pub fn try_ip(&self, ns: &str, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns(ns)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Feed an nft script to `nft -f -` inside a namespace; panics if nft refuses it.
    pub fn nft(&self, ns: &str, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child.wait_with_output().expect("wait nft");
        assert!(
            out.status.success(),
            "nft in {ns} failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Write a sysctl of namespace `ns` (`net.ipv4.ip_forward`): from a thread that
    /// joins the namespace, since `/proc/sys/net` is the reader's. No process is started
    /// (a lab of five namespaces sets some thirty of them).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        let netns = format!("/run/netns/{}", self.ns(ns));
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let text = value.to_string();
        let written = std::thread::spawn(move || -> Result<(), String> {
            let f = fs::File::open(&netns).map_err(|e| format!("{netns}: {e}"))?;
            // SAFETY: a namespace file descriptor; only this thread changes namespace.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {netns}: {}", io::Error::last_os_error()));
            }
            fs::write(&path, text).map_err(|e| format!("{path}: {e}"))
        })
        .join()
        .expect("sysctl thread");
        if let Err(e) = written {
            panic!("sysctl {key}={value} in {ns}: {e}");
        }
    }

    pub fn read_sysctl(&self, ns: &str, key: &str) -> String {
        let out = self.exec(ns, &["sysctl", "-n", key]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    // ---- breaking ISPs --------------------------------------------------------------

    pub fn break_isp(&self, k: usize, how: Break) {
        let isp = format!("isp{k}");
        match how {
            Break::Carrier => {
                self.ip(&isp, &["link", "set", "rtr", "down"]);
            }
            Break::Blackhole => self.nft(&isp, "add rule inet lab transit counter drop\n"),
            Break::Loss(pct) => self.nft(
                &isp,
                &format!("add rule inet lab transit numgen random mod 100 < {pct} counter drop\n"),
            ),
        }
    }

    /// Undo every [`Break`] on ISP k (not [`Lab::change_gateway`]).
    pub fn restore(&self, k: usize) {
        let isp = format!("isp{k}");
        self.nft(&isp, "flush chain inet lab transit\n");
        self.ip(&isp, &["link", "set", "rtr", "up"]);
    }

    /// DHCP-style renumbering: ISP k's gateway becomes 10.20.k.254 and the router's main
    /// default route for wan k follows with the same metric, as netifd would do it.
    /// Returns the new gateway.
    pub fn change_gateway(&self, k: usize) -> Ipv4Addr {
        let isp = format!("isp{k}");
        let new = Ipv4Addr::new(10, 20, k as u8, 254);
        // Old one first: deleting a primary address takes its secondaries with it.
        self.ip(
            &isp,
            &["addr", "del", &format!("{}/24", gateway(k)), "dev", "rtr"],
        );
        self.ip(&isp, &["addr", "add", &format!("{new}/24"), "dev", "rtr"]);
        let metric = (10 * k).to_string();
        let wan = format!("wan{k}");
        self.ip(
            "rtr",
            &[
                "route",
                "replace",
                "default",
                "via",
                &new.to_string(),
                "dev",
                &wan,
                "proto",
                "static",
                "metric",
                &metric,
            ],
        );
        new
    }

    /// Packets the ISP's forward chain dropped so far (its `counter drop` rules).
    pub fn dropped(&self, k: usize) -> u64 {
        let out = self.exec(
            &format!("isp{k}"),
            &["nft", "-j", "list", "chain", "inet", "lab", "transit"],
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut total = 0;
        for item in v["nftables"].as_array().into_iter().flatten() {
            for e in item["rule"]["expr"].as_array().into_iter().flatten() {
                total += e["counter"]["packets"].as_u64().unwrap_or(0);
            }
        }
        total
    }

    // ---- traffic --------------------------------------------------------------------

    fn start_server(&self) {
        let mut addrs = vec![IpAddr::V4(SERVER)];
        if self.v6 {
            addrs.extend(SERVERS6.iter().map(|a| IpAddr::V6(*a)));
        }
        for addr in addrs {
            self.serve_on(addr);
        }
    }

    /// The TCP server (says the peer's address, then echoes) and UDP echo on `addr`.
    fn serve_on(&self, addr: IpAddr) {
        let stop = self.stop.clone();
        let ns = self.ns("inet");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let bound = enter_netns(&ns).and_then(|()| {
                let tcp = TcpListener::bind((addr, TCP_PORT))?;
                tcp.set_nonblocking(true)?;
                let udp = UdpSocket::bind((addr, UDP_PORT))?;
                udp.set_read_timeout(Some(Duration::from_millis(100)))?;
                Ok((tcp, udp))
            });
            let (tcp, udp) = match bound {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let udp_stop = stop.clone();
            thread::spawn(move || udp_echo(udp, udp_stop));
            while !stop.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((conn, peer)) => {
                        let stop = stop.clone();
                        thread::spawn(move || serve_tcp(conn, peer, stop));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("lab server on {addr}: {e}"),
            Err(_) => panic!("lab server on {addr} did not start"),
        }
    }

    /// One new TCP connection from the LAN client: which ISP carried it, or the error
    /// and how long it took to get it.
    pub fn connect_once(&self, timeout: Duration) -> Result<usize, (io::Error, Duration)> {
        in_netns(&self.ns("lan"), move || {
            let t0 = Instant::now();
            open_conn(timeout)
                .map(|c| c.isp)
                .map_err(|e| (e, t0.elapsed()))
        })
        .unwrap_or_else(|e| Err((e, Duration::ZERO)))
    }

    /// `n` new TCP connections from the LAN client, four at a time.
    pub fn connect_many(&self, n: usize) -> Tally {
        self.connect_many_to(IpAddr::V4(SERVER), n)
    }

    /// `n` new TCP connections from the LAN client to `server` (see [`server6`]).
    pub fn connect_many_to(&self, server: IpAddr, n: usize) -> Tally {
        let addr = SocketAddr::new(server, TCP_PORT);
        let ns = self.ns("lan");
        let workers = 4.min(n.max(1));
        let next = Arc::new(AtomicUsize::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (ns, next, tally) = (ns.clone(), next.clone(), tally.clone());
                thread::spawn(move || {
                    if let Err(e) = enter_netns(&ns) {
                        lock(&tally).record(Err(e));
                        return;
                    }
                    while next.fetch_add(1, Ordering::SeqCst) < n {
                        let r = open_conn_to(addr, IO_TIMEOUT).map(|c| c.isp);
                        lock(&tally).record(r);
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
        let t = lock(&tally).clone();
        t
    }

    /// `n` connections that stay open; see [`Lab::check_alive`].
    pub fn open_long_lived(&self, n: usize) -> Vec<LongConn> {
        self.open_long_lived_to(IpAddr::V4(SERVER), n)
    }

    /// `n` connections to `server` that stay open.
    pub fn open_long_lived_to(&self, server: IpAddr, n: usize) -> Vec<LongConn> {
        let addr = SocketAddr::new(server, TCP_PORT);
        in_netns(&self.ns("lan"), move || {
            (0..n)
                .filter_map(|_| open_conn_to(addr, IO_TIMEOUT).ok())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Round-trip a few bytes over every connection: (alive, broken). Bounded by about
    /// `IO_TIMEOUT` in total, however many are broken.
    pub fn check_alive(&self, conns: &[LongConn]) -> (usize, usize) {
        let (alive, broken) = self.check_alive_by_isp(conns);
        (alive.values().sum(), broken.values().sum())
    }

    /// [`Lab::check_alive`] split per ISP.
    pub fn check_alive_by_isp(
        &self,
        conns: &[LongConn],
    ) -> (BTreeMap<usize, usize>, BTreeMap<usize, usize>) {
        let mut alive = BTreeMap::new();
        let mut broken = BTreeMap::new();
        let mut sent = Vec::new();
        for (i, c) in conns.iter().enumerate() {
            let msg = format!("ping{i:04}\n");
            let ok = (&c.stream).write_all(msg.as_bytes()).is_ok();
            sent.push((ok, msg));
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        for (c, (ok, msg)) in conns.iter().zip(sent) {
            let good = ok && {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(50));
                let _ = c.stream.set_read_timeout(Some(left));
                let mut buf = vec![0u8; msg.len()];
                (&c.stream).read_exact(&mut buf).is_ok() && buf == msg.as_bytes()
            };
            *(if good { &mut alive } else { &mut broken })
                .entry(c.isp)
                .or_insert(0) += 1;
        }
        (alive, broken)
    }

    /// One TCP connection from the router itself: which ISP carried it.
    pub fn router_connect(&self) -> io::Result<usize> {
        self.router_connect_to(IpAddr::V4(SERVER))
    }

    /// One TCP connection from the router itself to `server`: which ISP carried it.
    pub fn router_connect_to(&self, server: IpAddr) -> io::Result<usize> {
        let addr = SocketAddr::new(server, TCP_PORT);
        in_netns(&self.ns("rtr"), move || {
            open_conn_to(addr, IO_TIMEOUT).map(|c| c.isp)
        })?
    }

    /// A UDP "flow" with a fixed 5-tuple, opened in the LAN client: `UdpFlow::ask`
    /// sends from the same local port every time.
    pub fn udp_flow(&self) -> io::Result<UdpFlow> {
        self.udp_flow_to(IpAddr::V4(SERVER))
    }

    /// A UDP flow with a fixed 5-tuple to `server`.
    pub fn udp_flow_to(&self, server: IpAddr) -> io::Result<UdpFlow> {
        in_netns(&self.ns("lan"), move || {
            let any: IpAddr = match server {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let s = UdpSocket::bind((any, 0))?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            Ok(UdpFlow {
                socket: s,
                server: SocketAddr::new(server, UDP_PORT),
            })
        })?
    }

    /// The lab firewall's masquerade (like fw4's), e.g. to put it back after someone
    /// flushed the ruleset.
    /// In the dual-stack lab, NAT66 for the ULA LAN too; delegated prefixes pass as
    /// they are.
    pub fn install_masquerade(&self) {
        let v6 = if self.v6 {
            "\t\toifname \"wan*\" ip6 saddr fd00::/8 masquerade\n"
        } else {
            ""
        };
        self.nft(
            "rtr",
            &format!(
                "table inet labfw {{\n\
                 \tchain nat_out {{ type nat hook postrouting priority 100;\n\
                 \t\toifname \"wan*\" meta nfproto ipv4 masquerade\n{v6}\
                 \t}}\n\
                 }}\n"
            ),
        );
    }

    /// One UDP round trip to the echo server: which ISP carried it.
    pub fn udp_once(&self) -> io::Result<usize> {
        in_netns(&self.ns("lan"), || {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.send_to(b"who", (SERVER, UDP_PORT))?;
            let mut buf = [0u8; 64];
            let (len, _) = s.recv_from(&mut buf)?;
            parse_peer(&buf[..len])
        })?
    }

    // ---- the daemon -----------------------------------------------------------------

    /// Write `config` to a file and run `<bin> -c FILE --stderr EXTRA..` in the router.
    /// The control socket defaults to one in the lab directory and ubus is off, so that
    /// nothing lands in the host's /var/run; `extra` may override both.
    pub fn start_daemon(&self, bin: &Path, config: &str, extra: &[&str]) -> Daemon {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let conf = self.dir.join(format!("uplinkd-{n}.conf"));
        let control = self.control_socket();
        let log = self.dir.join(format!("uplinkd-{n}.log"));
        fs::write(&conf, config).expect("write config");
        let logf = fs::File::create(&log).expect("create log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("rtr")])
            .arg(bin)
            .arg("-c")
            .arg(&conf)
            .arg("--stderr")
            .arg("--control-socket")
            .arg(&control)
            .args(["--ubus-socket", "none"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn uplinkd");
        Daemon {
            child,
            exited: None,
            conf,
            log,
        }
    }

    /// The control socket every daemon of this lab listens on (`start_daemon` passes it).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("uplinkd.sock")
    }

    /// `<bin> ARGS --control-socket <the lab's>` in the router: a control command.
    pub fn control(&self, bin: &Path, args: &[&str]) -> Output {
        let sock = self.control_socket();
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--control-socket", sock.to_str().unwrap_or("")]);
        self.run_uplinkd(bin, &all)
    }

    /// The running daemon's `status --json`.
    pub fn status(&self, bin: &Path) -> Value {
        let out = self.control(bin, &["status", "--json"]);
        assert!(out.status.success(), "status failed: {out:?}");
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// Run `<bin> ARGS` once in the router (e.g. `check -c FILE`).
    pub fn run_uplinkd(&self, bin: &Path, args: &[&str]) -> Output {
        let mut all: Vec<&str> = vec![bin.to_str().unwrap_or("uplinkd")];
        all.extend_from_slice(args);
        self.exec("rtr", &all)
    }

    /// Write a file into the lab directory; returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, text).expect("write lab file");
        p
    }

    // ---- kernel observation in the router ---------------------------------------------

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        self.try_ip("rtr", &full)
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Members `(nexthop id, weight)` of nexthop group `id`, or None if there is no such
    /// nexthop (or it is not a group).
    pub fn nexthop_group(&self, id: u32) -> Option<Vec<(u32, u16)>> {
        let v = self.json(&["nexthop", "show", "id", &id.to_string()]);
        let group = v.first()?.get("group")?.as_array()?;
        Some(
            group
                .iter()
                .filter_map(|m| {
                    let id = m.get("id")?.as_u64()? as u32;
                    let w = m.get("weight").and_then(Value::as_u64).unwrap_or(1) as u16;
                    Some((id, w))
                })
                .collect(),
        )
    }

    /// Sorted member ids of the default policy's group (empty when absent).
    pub fn group_members(&self) -> Vec<u32> {
        self.sorted_members(POLICY_ID)
    }

    /// The same for the default policy's IPv6 group: WAN slot s is `1100 + 100 + s`.
    pub fn group6_members(&self) -> Vec<u32> {
        self.sorted_members(POLICY_ID + NH6_OFFSET)
    }

    fn sorted_members(&self, group: u32) -> Vec<u32> {
        let mut m: Vec<u32> = self
            .nexthop_group(group)
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        m.sort_unstable();
        m
    }

    /// Is WAN k (1-based) in the default policy's group?
    pub fn in_group(&self, k: usize) -> bool {
        self.group_members().contains(&wan_id(k))
    }

    /// `ip -j route show table TABLE` (`main`, `1199`, `all`, ...).
    pub fn routes(&self, table: &str) -> Vec<Value> {
        self.json(&["route", "show", "table", table])
    }

    pub fn rules(&self) -> Vec<Value> {
        self.json(&["rule", "show"])
    }

    pub fn nexthops(&self) -> Vec<Value> {
        self.json(&["nexthop", "show"])
    }

    /// A nexthop's gateway, if it exists and has one.
    pub fn nexthop_gateway(&self, id: u32) -> Option<String> {
        let v = self.json(&["nexthop", "show", "id", &id.to_string()]);
        v.first()?.get("gateway")?.as_str().map(str::to_string)
    }

    /// The gateway of the `default via` route in a table, if any.
    pub fn table_gateway(&self, table: u32) -> Option<String> {
        self.routes(&table.to_string()).iter().find_map(|r| {
            (r["dst"] == "default" && r.get("type").is_none())
                .then(|| r.get("gateway")?.as_str().map(str::to_string))
                .flatten()
        })
    }

    /// The type of the default route in a table: `unicast` (also nhid routes),
    /// `unreachable`, `blackhole`, ..., or None.
    pub fn default_route_type(&self, table: u32) -> Option<String> {
        let routes = self.routes(&table.to_string());
        let mut best: Option<(u64, String)> = None;
        for r in routes.iter().filter(|r| r["dst"] == "default") {
            let metric = r["metric"].as_u64().unwrap_or(0);
            let ty = r["type"].as_str().unwrap_or("unicast").to_string();
            if best.as_ref().map_or(true, |(m, _)| metric < *m) {
                best = Some((metric, ty));
            }
        }
        best.map(|(_, t)| t)
    }

    /// Everything in uplinkd's ranges: rules 4000..=4999, routes in tables 1100..=1199,
    /// nexthops 1100..=1199 (both families), sorted so that sets compare with `==`.
    pub fn uplinkd_objects(&self) -> Objects {
        let (mine, _) = self.split_objects();
        mine
    }

    /// Everything outside uplinkd's ranges (routes of every table, rules, nexthops).
    pub fn foreign_objects(&self) -> Objects {
        let (_, foreign) = self.split_objects();
        foreign
    }

    fn split_objects(&self) -> (Objects, Objects) {
        let mut mine = Objects::default();
        let mut foreign = Objects::default();
        for fam in ["-4", "-6"] {
            for r in self.json(&[fam, "rule", "show"]) {
                let p = r["priority"].as_u64().unwrap_or(0) as u32;
                let dst = if (RULE_FIRST..=RULE_LAST).contains(&p) {
                    &mut mine
                } else {
                    &mut foreign
                };
                dst.rules.push(r.to_string());
            }
            for r in self.json(&[fam, "route", "show", "table", "all"]) {
                let t = r["table"].as_str().and_then(|t| t.parse::<u32>().ok());
                let ours = t.is_some_and(|t| OWNED_IDS.contains(&t));
                let dst = if ours { &mut mine } else { &mut foreign };
                dst.routes.push(r.to_string());
            }
        }
        // Not per family: `ip -4 nexthop` leaves out groups (they have no family).
        for r in self.json(&["nexthop", "show"]) {
            let id = r["id"].as_u64().unwrap_or(0) as u32;
            let dst = if OWNED_NEXTHOP_IDS.contains(&id) {
                &mut mine
            } else {
                &mut foreign
            };
            dst.nexthops.push(r.to_string());
        }
        mine.sort();
        foreign.sort();
        (mine, foreign)
    }

    /// Start `ip monitor route rule nexthop` in the router.
    pub fn monitor(&self) -> Monitor {
        Monitor::start(&self.ns("rtr"))
    }

    /// Install by hand what uplinkd would install for a balanced policy over all WANs
    /// with these weights (used to check the lab itself, without the daemon).
    pub fn install_static_balance(&self, weights: &[u16]) {
        self.sysctl("rtr", "net.ipv4.fib_multipath_hash_policy", "1");
        let mut members = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            let k = i + 1;
            let id = wan_id(k).to_string();
            let gw = gateway(k).to_string();
            let wan = format!("wan{k}");
            self.ip(
                "rtr",
                &[
                    "nexthop", "add", "id", &id, "via", &gw, "dev", &wan, "proto", "212",
                ],
            );
            self.ip(
                "rtr",
                &[
                    "route", "add", "table", &id, "default", "via", &gw, "dev", &wan, "proto",
                    "212",
                ],
            );
            self.ip(
                "rtr",
                &[
                    "rule",
                    "add",
                    "pref",
                    &(4200 + i).to_string(),
                    "oif",
                    &wan,
                    "lookup",
                    &id,
                    "proto",
                    "212",
                ],
            );
            members.push(format!("{id},{w}"));
        }
        let pid = POLICY_ID.to_string();
        self.ip(
            "rtr",
            &[
                "nexthop",
                "add",
                "id",
                &pid,
                "group",
                &members.join("/"),
                "proto",
                "212",
            ],
        );
        self.ip(
            "rtr",
            &[
                "route", "add", "table", &pid, "default", "nhid", &pid, "proto", "212",
            ],
        );
        self.ip(
            "rtr",
            &[
                "rule",
                "add",
                "pref",
                "4000",
                "lookup",
                "main",
                "suppress_prefixlength",
                "0",
                "proto",
                "212",
            ],
        );
        self.ip(
            "rtr",
            &[
                "rule", "add", "pref", "4900", "lookup", &pid, "proto", "212",
            ],
        );
    }
}

impl Lab {
    /// Wait until the default policy's group holds exactly the WANs `ks` (1-based).
    /// Panics, showing the daemon's log and the kernel state, if the daemon exits first
    /// or the time runs out. Returns how long it took.
    pub fn wait_group(&self, d: &mut Daemon, ks: &[usize], timeout: Duration) -> Duration {
        let mut want: Vec<u32> = ks.iter().map(|&k| wan_id(k)).collect();
        want.sort_unstable();
        let mut exited = None;
        let r = wait_until(timeout, Duration::from_millis(50), || {
            if let Some(s) = d.wait_exit(Duration::ZERO) {
                exited = Some(s);
                return true;
            }
            self.group_members() == want
        });
        if let Some(s) = exited {
            panic!(
                "uplinkd exited ({s}) while waiting for group {want:?}; log:\n{}",
                d.log()
            );
        }
        match r {
            Ok(t) => t,
            Err(t) => panic!(
                "group 1199 is {:?}, not {want:?}, after {t:?}; objects:\n{}log:\n{}",
                self.nexthop_group(POLICY_ID),
                self.uplinkd_objects(),
                d.log()
            ),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for role in self.roles() {
            delete_netns(&self.ns(&role));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---- uplinkd objects ------------------------------------------------------------------

/// Kernel objects as `ip -j` prints them, one JSON string each, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub rules: Vec<String>,
    pub routes: Vec<String>,
    pub nexthops: Vec<String>,
}

impl Objects {
    fn sort(&mut self) {
        self.rules.sort();
        self.routes.sort();
        self.nexthops.sort();
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.routes.is_empty() && self.nexthops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len() + self.routes.len() + self.nexthops.len()
    }

    /// True if some object appears twice.
    pub fn has_duplicates(&self) -> bool {
        [&self.rules, &self.routes, &self.nexthops]
            .iter()
            .any(|v| v.windows(2).any(|w| w[0] == w[1]))
    }
}

impl std::fmt::Display for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, v) in [
            ("rule", &self.rules),
            ("route", &self.routes),
            ("nexthop", &self.nexthops),
        ] {
            for o in v {
                writeln!(f, "{what} {o}")?;
            }
        }
        Ok(())
    }
}

// ---- connections ----------------------------------------------------------------------

/// Outcome of a batch of new connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// ISP (1-based) → connections it carried.
    pub by_isp: BTreeMap<usize, usize>,
    pub failed: usize,
    /// Error text → count, for the failure message.
    pub errors: BTreeMap<String, usize>,
}

impl Tally {
    fn record(&mut self, r: io::Result<usize>) {
        match r {
            Ok(k) => *self.by_isp.entry(k).or_insert(0) += 1,
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(e.to_string()).or_insert(0) += 1;
            }
        }
    }

    pub fn ok(&self) -> usize {
        self.by_isp.values().sum()
    }

    pub fn count(&self, k: usize) -> usize {
        self.by_isp.get(&k).copied().unwrap_or(0)
    }

    /// Percentage of the successful connections carried by ISP k.
    pub fn share(&self, k: usize) -> f64 {
        let ok = self.ok();
        if ok == 0 {
            0.0
        } else {
            100.0 * self.count(k) as f64 / ok as f64
        }
    }
}

/// An open connection to the server and the ISP that carries it.
/// A UDP socket whose 5-tuple never changes.
pub struct UdpFlow {
    socket: UdpSocket,
    server: SocketAddr,
}

impl UdpFlow {
    /// One round trip: which ISP carried it, or an error (lost: timed out).
    pub fn ask(&self) -> io::Result<usize> {
        self.socket.send_to(b"who", self.server)?;
        let mut buf = [0u8; 64];
        let (len, _) = self.socket.recv_from(&mut buf)?;
        parse_peer(&buf[..len])
    }
}

pub struct LongConn {
    pub stream: TcpStream,
    pub isp: usize,
}

impl Drop for LongConn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn open_conn(timeout: Duration) -> io::Result<LongConn> {
    open_conn_to(SocketAddr::from((SERVER, TCP_PORT)), timeout)
}

fn open_conn_to(addr: SocketAddr, timeout: Duration) -> io::Result<LongConn> {
    let t0 = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    let local = stream.local_addr()?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // Byte by byte up to the newline, so nothing after it is swallowed by a buffer.
    let mut line = Vec::with_capacity(32);
    let mut b = [0u8; 1];
    while line.len() < 64 {
        (&stream).read_exact(&mut b).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "reading peer line after {:?} from {local}: {e}",
                    t0.elapsed()
                ),
            )
        })?;
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    let isp = parse_peer(&line)?;
    Ok(LongConn { stream, isp })
}

fn parse_peer(line: &[u8]) -> io::Result<usize> {
    let text = String::from_utf8_lossy(line);
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad peer line {text:?}"),
        )
    })?;
    isp_of(ip).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server saw {ip}: not NATed by an ISP"),
        )
    })
}

fn serve_tcp(conn: TcpStream, peer: SocketAddr, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    if (&conn)
        .write_all(format!("{}\n", peer.ip()).as_bytes())
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        match (&conn).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if (&conn).write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn udp_echo(udp: UdpSocket, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("{}\n", peer.ip()).as_bytes(), peer);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- namespaces -------------------------------------------------------------------------

/// Move the calling thread into a named network namespace. Sockets it opens afterwards
/// stay in that namespace wherever they are used from.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let f = fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: plain syscall on a descriptor we own; only this thread changes namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Run `f` on a fresh thread inside a network namespace and return its result.
pub fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let name = name.to_string();
    thread::spawn(move || enter_netns(&name).map(|()| f()))
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
}

fn delete_netns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        let me = std::process::id();
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<u32>() {
                if pid != me && pid > 1 {
                    // SAFETY: sending a signal has no memory-safety preconditions.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// Delete lab namespaces (`ul<pid>x<n>-*`) whose creating process is gone.
fn cleanup_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("ul") else {
            continue;
        };
        let Some((pid, tail)) = rest.split_once('x') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let Some((n, _role)) = tail.split_once('-') else {
            continue;
        };
        if n.parse::<u32>().is_err() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn command");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- the daemon ---------------------------------------------------------------------------

/// A running uplinkd; dropping it kills it.
pub struct Daemon {
    child: Child,
    exited: Option<ExitStatus>,
    conf: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    /// Replace the config file's contents (then [`Daemon::reload`]).
    pub fn write_config(&self, text: &str) {
        fs::write(&self.conf, text).expect("rewrite config");
    }

    fn signal(&self, sig: libc::c_int) {
        if self.exited.is_none() {
            // SAFETY: sending a signal has no memory-safety preconditions.
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        }
    }

    /// SIGHUP.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGINT, a stop: the daemon removes everything it owns. Waits up to 10 s (SIGKILL
    /// after that) and returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGINT);
        match self.wait_exit(Duration::from_secs(10)) {
            Some(s) => s,
            None => self.kill9(),
        }
    }

    /// SIGTERM, a restart's first half: the daemon exits and leaves its kernel objects for
    /// the next start. Waits like [`Daemon::stop`].
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        match self.wait_exit(Duration::from_secs(10)) {
            Some(s) => s,
            None => self.kill9(),
        }
    }

    /// SIGKILL: leaves whatever the daemon had installed in the kernel.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let _ = self.child.kill();
        let s = self
            .child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(9));
        self.exited = Some(s);
        s
    }

    /// The exit status if it exits within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }

    /// Everything it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- ip monitor --------------------------------------------------------------------------

/// `ip monitor route rule nexthop` in a namespace, recording every event line.
pub struct Monitor {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Monitor {
    fn start(ns: &str) -> Monitor {
        let mut child = Command::new("ip")
            .args(["-n", ns, "monitor", "route", "rule", "nexthop"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ip monitor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = lines.clone();
            thread::spawn(move || {
                use std::io::BufRead;
                for line in io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    lock(&lines).push((Instant::now(), line));
                }
            });
        }
        // Let it subscribe before anyone relies on it.
        thread::sleep(Duration::from_millis(300));
        Monitor { child, lines }
    }

    /// A point in time to count from.
    pub fn mark(&self) -> Instant {
        Instant::now()
    }

    /// Event lines (continuation lines of multipath routes excluded) seen after `since`.
    pub fn events_since(&self, since: Instant) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .filter(|(t, l)| *t >= since && !l.starts_with(char::is_whitespace) && !l.is_empty())
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Event lines between two points in time.
    pub fn events_between(&self, from: Instant, to: Instant) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .filter(|(t, l)| {
                *t >= from && *t <= to && !l.starts_with(char::is_whitespace) && !l.is_empty()
            })
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub fn count_since(&self, since: Instant) -> usize {
        self.events_since(since).len()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- waiting -----------------------------------------------------------------------------

/// Poll `cond` every `every` until it holds (Ok(elapsed)) or `timeout` passes (Err(elapsed)).
pub fn wait_until(
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration, Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return Err(t0.elapsed());
        }
        thread::sleep(every);
    }
}

// ---- configs -----------------------------------------------------------------------------

/// A config with one WAN per weight (all probing 203.0.113.1-3, one tier, policy
/// `balanced` with `last_resort unreachable`); `extra_iface_opts` are UCI lines added to
/// every interface (`option interval '0.5'`, one per line).
pub fn config(weights: &[u16], extra_iface_opts: &str) -> String {
    let per_wan = vec![""; weights.len()];
    config_with(weights, extra_iface_opts, &per_wan, "")
}

/// [`config`] with extra lines per WAN (`per_wan[i]` for WAN i+1) and for `globals`.
pub fn config_with(
    weights: &[u16],
    extra_iface_opts: &str,
    per_wan: &[&str],
    extra_globals: &str,
) -> String {
    let indent = |text: &str| -> String {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| format!("\t{l}\n"))
            .collect()
    };
    let mut s = String::new();
    s.push_str("config globals 'globals'\n\toption default_policy 'balanced'\n");
    s.push_str(&indent(extra_globals));
    for (i, _) in weights.iter().enumerate() {
        let k = i + 1;
        s.push_str(&format!(
            "\nconfig interface 'wan{k}'\n\toption enabled '1'\n\toption device 'wan{k}'\n"
        ));
        for t in TARGETS {
            s.push_str(&format!("\tlist track_ip '{t}'\n"));
        }
        s.push_str(&indent(extra_iface_opts));
        s.push_str(&indent(per_wan.get(i).copied().unwrap_or("")));
    }
    for (i, w) in weights.iter().enumerate() {
        let k = i + 1;
        s.push_str(&format!(
            "\nconfig member 'wan{k}_m1'\n\toption interface 'wan{k}'\n\toption metric '1'\n\toption weight '{w}'\n"
        ));
    }
    s.push_str("\nconfig policy 'balanced'\n");
    for (i, _) in weights.iter().enumerate() {
        s.push_str(&format!("\tlist use_member 'wan{}_m1'\n", i + 1));
    }
    s.push_str("\toption last_resort 'unreachable'\n");
    s
}

/// Fast timers used by most tests: a dead path is noticed within about 4 s.
pub const FAST: &str = "option interval '0.5'\noption timeout '1'\noption failure_interval '1'\noption recovery_interval '1'\noption down '3'\noption up '3'\noption reliability '1'\noption count '1'";
