//! Loading uplinkd's nftables table, and the netfilter netlink requests the daemon
//! makes on its own: "does our table exist?", "which flowtables are there?" and "delete
//! the conntrack entries pinned to this WAN".
//!
//! The table is loaded with `nft -f -` (the script on stdin, no shell): nft turns the
//! whole script into one netlink batch, which the kernel applies atomically, and its
//! parser and error messages are those users know. Encoding nftables expressions in
//! netlink ourselves would add far more code (and flash) than the one process spawned
//! per change; the steady state spawns nothing: the periodic existence check is a single
//! netlink request.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::wire::{
    parse_ack, u32_at, Attrs, Messages, Request, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
};
use crate::dataplane::{Existing, TABLE};

/// `NFNL_SUBSYS_CTNETLINK`, `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h).
const SUBSYS_CTNETLINK: u16 = 1;
const SUBSYS_NFTABLES: u16 = 10;
/// `IPCTNL_MSG_CT_DELETE`, `IPCTNL_MSG_CT_GET_STATS`; `NFT_MSG_GETTABLE`.
const CT_DELETE: u16 = 2;
const CT_GET_STATS: u16 = 5;
const NFT_GETTABLE: u16 = 1;
/// `NFT_MSG_NEWFLOWTABLE` (what a dump answers with), `NFT_MSG_GETFLOWTABLE`.
const NFT_NEWFLOWTABLE: u16 = 22;
const NFT_GETFLOWTABLE: u16 = 23;
/// `NFTA_FLOWTABLE_TABLE`, `_NAME`, `_FLAGS`; `NF_FLOWTABLE_HW_OFFLOAD`.
const NFTA_FLOWTABLE_TABLE: u16 = 1;
const NFTA_FLOWTABLE_NAME: u16 = 2;
const NFTA_FLOWTABLE_FLAGS: u16 = 7;
const NF_FLOWTABLE_HW_OFFLOAD: u32 = 1;
/// `CTA_MARK`, `CTA_MARK_MASK` (linux/netfilter/nfnetlink_conntrack.h); `NFTA_TABLE_NAME`.
const CTA_MARK: u16 = 8;
const CTA_MARK_MASK: u16 = 21;
const NFTA_TABLE_NAME: u16 = 1;
const NFPROTO_INET: u8 = 1;

/// `struct nfgenmsg`: family, version, resource id (big endian).
fn nfgenmsg(family: u8) -> [u8; 4] {
    [family, 0, 0, 0]
}

/// A netfilter netlink socket for requests.
pub struct Netfilter {
    socket: Socket,
    seq: u32,
}

impl Netfilter {
    pub fn open() -> io::Result<Netfilter> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: sets a plain option from a value that lives through the call.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(Netfilter { socket, seq: 1 })
    }

    /// Send with `NLM_F_ACK`; the kernel's errno (0 = success).
    fn ack(&mut self, req: &Request) -> io::Result<i32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&req.finish(seq), 0)?;
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            buf.clear();
            self.socket.recv(&mut buf, 0)?;
            for m in Messages::new(&buf) {
                if m.seq == seq && m.kind == NLMSG_ERROR {
                    return parse_ack(m.flags, m.payload)
                        .map(|a| a.errno)
                        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADMSG));
                }
            }
        }
    }

    /// Whether `inet uplinkd` exists (someone may have run `nft flush ruleset`).
    pub fn table_exists(&mut self) -> io::Result<bool> {
        let mut req = Request::new(
            SUBSYS_NFTABLES << 8 | NFT_GETTABLE,
            NLM_F_ACK,
            &nfgenmsg(NFPROTO_INET),
        );
        let mut name = TABLE.as_bytes().to_vec();
        name.push(0);
        req.attr(NFTA_TABLE_NAME, &name);
        match self.ack(&req)? {
            0 => Ok(true),
            e if e == libc::ENOENT => Ok(false),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Whether ctnetlink answers: the global conntrack statistics, which read nothing
    /// else and change nothing. Without `nf_conntrack_netlink` nfnetlink refuses the
    /// subsystem (`EINVAL`, after trying to load the module). Err: the errno.
    pub fn ctnetlink(&mut self) -> io::Result<()> {
        let req = Request::new(
            SUBSYS_CTNETLINK << 8 | CT_GET_STATS,
            NLM_F_ACK,
            &nfgenmsg(libc::AF_UNSPEC as u8),
        );
        match self.ack(&req)? {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Delete every conntrack entry (IPv4 and IPv6) whose mark, within `mask`, is
    /// `mark`: exactly the connections pinned to one WAN. Their next packet starts a new
    /// connection that is routed, and NATed, afresh. (ctnetlink flushes with a mark
    /// filter when a delete names no tuple; Linux >= 5.x. One request per family: older
    /// kernels ignore the family of a flush, newer ones filter by it.)
    pub fn flush_conntrack(&mut self, mark: u32, mask: u32) -> io::Result<()> {
        for family in [libc::AF_INET, libc::AF_INET6] {
            let mut req = Request::new(
                SUBSYS_CTNETLINK << 8 | CT_DELETE,
                NLM_F_ACK,
                &nfgenmsg(family as u8),
            );
            req.attr(CTA_MARK, &mark.to_be_bytes());
            req.attr(CTA_MARK_MASK, &mask.to_be_bytes());
            match self.ack(&req)? {
                // Nothing matched.
                0 => {}
                e if e == libc::ENOENT => {}
                e => return Err(io::Error::from_raw_os_error(e)),
            }
        }
        Ok(())
    }
}

/// A flowtable somebody (fw4's `flow_offloading`) set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flowtable {
    pub table: String,
    pub name: String,
    /// Hardware offload: offloaded flows bypass the kernel's forwarding path.
    pub hardware: bool,
}

impl Netfilter {
    /// Every flowtable of every table.
    pub fn flowtables(&mut self) -> io::Result<Vec<Flowtable>> {
        let req = Request::new(
            SUBSYS_NFTABLES << 8 | NFT_GETFLOWTABLE,
            NLM_F_DUMP,
            &nfgenmsg(0),
        );
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&req.finish(seq), 0)?;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(32 * 1024);
        loop {
            buf.clear();
            self.socket.recv(&mut buf, 0)?;
            for m in Messages::new(&buf).filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno =
                            parse_ack(m.flags, m.payload).map_or(libc::EBADMSG, |a| a.errno);
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    k if k == SUBSYS_NFTABLES << 8 | NFT_NEWFLOWTABLE => {
                        out.extend(decode_flowtable(m.payload));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A `NFT_MSG_NEWFLOWTABLE` payload: nfgenmsg, then attributes.
fn decode_flowtable(payload: &[u8]) -> Option<Flowtable> {
    let text = |v: &[u8]| {
        let v = v.split(|&b| b == 0).next().unwrap_or(&[]);
        String::from_utf8_lossy(v).into_owned()
    };
    let (mut table, mut name, mut flags) = (None, None, 0);
    for (kind, value) in Attrs::new(payload.get(4..)?) {
        match kind {
            NFTA_FLOWTABLE_TABLE => table = Some(text(value)),
            NFTA_FLOWTABLE_NAME => name = Some(text(value)),
            NFTA_FLOWTABLE_FLAGS => flags = u32_at(value, 0).map_or(0, u32::from_be),
            _ => {}
        }
    }
    Some(Flowtable {
        table: table?,
        name: name?,
        hardware: flags & NF_FLOWTABLE_HW_OFFLOAD != 0,
    })
}

/// Run `nft` with `args`, feeding `script` on stdin; stdout, or stderr as the error.
fn nft(args: &[&str], script: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (script, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Load a script as one transaction.
pub fn load(script: &str) -> Result<(), String> {
    nft(&["-f", "-"], Some(script)).map(|_| ())
}

/// The chains and sets of our table as the kernel has them (empty if it is missing).
pub fn existing() -> Result<Existing, String> {
    let json = match nft(&["-j", "list", "table", "inet", TABLE], None) {
        Ok(j) => j,
        Err(e) if e.contains("No such file") => return Ok(Existing::default()),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("nft -j output: {e}"))?;
    let mut ex = Existing::default();
    for item in v
        .get("nftables")
        .and_then(|n| n.as_array())
        .into_iter()
        .flatten()
    {
        let name = |k: &str| {
            item.get(k)
                .and_then(|o| o.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
        };
        if let Some(c) = name("chain") {
            ex.chains.push(c);
        }
        if let Some(s) = name("set").or_else(|| name("map")) {
            ex.sets.push(s);
        }
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ruleset;
    use crate::sys::testns::Netns;
    use crate::testutil::{config, policy_plan, wan_infos};

    #[test]
    fn flowtables_are_listed_and_decoded() {
        let ns = Netns::new();
        ns.run(|| {
            let mut nf = Netfilter::open().expect("netfilter socket");
            // Where the kernel has flowtables, one shows up; here, maybe none can exist.
            let made = load("table inet fw4test { flowtable ft { hook ingress priority 0; devices = { lo }; } }\n");
            let found = nf.flowtables().expect("dump");
            match made {
                Ok(()) => assert_eq!(found.len(), 1, "{found:?}"),
                Err(_) => assert!(found.is_empty(), "{found:?}"),
            }
        });
        // A message as the kernel sends it: nfgenmsg, table, name, hook (nested), flags.
        let mut msg = vec![1, 0, 0, 0];
        for (kind, value) in [
            (1u16, &b"fw4\0"[..]),
            (2, &b"ft\0"[..]),
            (3, &[4, 0, 1, 0][..]),
            (7, &1u32.to_be_bytes()[..]),
        ] {
            let len = 4 + value.len();
            msg.extend((len as u16).to_ne_bytes());
            msg.extend(kind.to_ne_bytes());
            msg.extend(value);
            msg.resize(msg.len() + (4 - len % 4) % 4, 0);
        }
        assert_eq!(
            decode_flowtable(&msg),
            Some(Flowtable {
                table: "fw4".into(),
                name: "ft".into(),
                hardware: true
            })
        );
        assert_eq!(decode_flowtable(&msg[..3]), None);
        assert_eq!(decode_flowtable(&msg[..4]), None);
    }

    #[test]
    fn ruleset_loads_replaces_and_is_found() {
        let ns = Netns::new();
        let mut cfg = config(&[3, 1], 1);
        cfg.rules.push(crate::config::Rule {
            name: "r".into(),
            family: crate::config::Family::Any,
            proto: crate::config::Proto::Tcp,
            src_ip: Vec::new(),
            dest_ip: Vec::new(),
            src_port: Vec::new(),
            dest_port: vec![crate::config::PortRange {
                first: 443,
                last: 443,
            }],
            src_iface: None,
            ipset: Some("users".into()),
            sticky: true,
            timeout: crate::time::Duration::from_secs(60),
            use_policy: crate::config::UsePolicy::Policy("balanced".into()),
        });
        let wans = wan_infos(2);
        let policy = |slots: &[(u32, u16)]| policy_plan("balanced", slots, None);
        ns.run(|| {
            let mut nf = Netfilter::open().expect("netfilter socket");
            assert!(!nf.table_exists().expect("query"));
            let r1 = ruleset(&cfg, &[policy(&[(0, 3), (1, 1)])], &wans);
            load(&r1.script(&existing().expect("list"))).expect("first load");
            assert!(nf.table_exists().expect("query"));
            let ex = existing().expect("list");
            assert!(ex.chains.contains(&"sticky_0".to_string()), "{ex:?}");
            assert!(ex.sets.contains(&"users".to_string()), "{ex:?}");
            // A member leaves and the rule goes: chains replaced, sticky sets pruned,
            // the user's set kept.
            let mut cfg2 = cfg.clone();
            cfg2.rules.clear();
            let r2 = ruleset(&cfg2, &[policy(&[(0, 3)])], &wans);
            load(&r2.script(&ex)).expect("second load");
            let ex2 = existing().expect("list");
            assert!(!ex2.chains.contains(&"sticky_0".to_string()), "{ex2:?}");
            assert!(
                !ex2.sets.iter().any(|s| s.starts_with("sticky_")),
                "{ex2:?}"
            );
            assert!(ex2.sets.contains(&"users".to_string()));
            // Same again: loads cleanly.
            load(&r2.script(&ex2)).expect("idempotent load");
            // Dual stack: per-family choice, delegated prefix, IPv6 sticky sets and an
            // IPv6 rule set are all valid nft.
            let mut dual = wans.clone();
            dual[0].v6 = true;
            (dual[1].v4, dual[1].v6) = (false, true);
            dual[1].prefixes6 = vec![crate::config::Prefix {
                addr: "2001:db8:20::".parse().unwrap(),
                len: 48,
            }];
            let mut cfg3 = cfg.clone();
            cfg3.rules[0].family = crate::config::Family::Any;
            let mut v6rule = cfg3.rules[0].clone();
            v6rule.family = crate::config::Family::Ipv6;
            v6rule.ipset = Some("users6".into());
            cfg3.rules.push(v6rule);
            let mut p = policy(&[(0, 3)]);
            p.v6.slots = vec![(0, 1), (1, 2)];
            let r3 = ruleset(&cfg3, &[p], &dual);
            let script = r3.script(&ex2);
            assert!(script.contains("meta nfproto ipv6 numgen"), "{script}");
            load(&script).unwrap_or_else(|e| panic!("dual-stack load: {e}\n{script}"));
            let ex3 = existing().expect("list");
            assert!(ex3.sets.contains(&"users6".to_string()), "{ex3:?}");
            nf.flush_conntrack(0x100, 0x3f00).expect("conntrack flush");
            load(&crate::dataplane::delete_script()).expect("delete");
            assert!(!nf.table_exists().expect("query"));
        });
        drop(ns);
    }
}
