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

use smol::process::Stdio;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use smol::io::AsyncWriteExt;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::wire::{
    parse_ack, u32_at, Attrs, Messages, Request, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
};
use crate::dataplane::{Existing, TABLE};

/// `NFNL_SUBSYS_CTNETLINK`, `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h).
const SUBSYS_CTNETLINK: u16 = 1;
const SUBSYS_NFTABLES: u16 = 10;
/// `IPCTNL_MSG_CT_NEW` (what a dump answers with), `IPCTNL_MSG_CT_GET`,
/// `IPCTNL_MSG_CT_DELETE`, `IPCTNL_MSG_CT_GET_STATS`; `NFT_MSG_GETTABLE`.
const CT_NEW: u16 = 0;
const CT_GET: u16 = 1;
const CT_DELETE: u16 = 2;
const CT_GET_STATS: u16 = 5;
const NFT_GETTABLE: u16 = 1;
/// `NFT_MSG_NEWCHAIN`/`GETCHAIN`, `NFT_MSG_NEWSET`/`GETSET` (a dump answers a GET
/// with NEWs); `NFTA_CHAIN_TABLE`, `_NAME`; `NFTA_SET_TABLE`, `_NAME`, `_FLAGS`;
/// `NFT_SET_ANONYMOUS` (the `{ .. }` literals of rules).
const NFT_NEWCHAIN: u16 = 3;
const NFT_GETCHAIN: u16 = 4;
const NFT_NEWSET: u16 = 9;
const NFT_GETSET: u16 = 10;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFT_SET_ANONYMOUS: u32 = 1;
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
            tv_sec: 1,
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

    /// Send `req` under the next sequence number, which is returned.
    fn send(&mut self, req: &Request) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        self.socket.send(&req.finish(self.seq), 0)?;
        Ok(self.seq)
    }

    /// Send with `NLM_F_ACK`; the kernel's errno (0 = success).
    fn ack(&mut self, req: &Request) -> io::Result<i32> {
        let seq = self.send(req)?;
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

impl Netfilter {
    /// How many conntrack entries (both families) carry `mark` within `mask`: the live
    /// connections pinned to one WAN. The kernel filters the dump by mark
    /// (`CTA_MARK`/`CTA_MARK_MASK` in a dump request, ctnetlink since Linux 3.x), so
    /// only that WAN's entries cross to user space, and nothing of them is decoded: the
    /// messages are counted. Only made while a policy uses `least_connections`.
    pub fn count_conntrack(&mut self, mark: u32, mask: u32) -> io::Result<u32> {
        let mut req = Request::new(
            SUBSYS_CTNETLINK << 8 | CT_GET,
            NLM_F_DUMP,
            &nfgenmsg(libc::AF_UNSPEC as u8),
        );
        req.attr(CTA_MARK, &mark.to_be_bytes());
        req.attr(CTA_MARK_MASK, &mask.to_be_bytes());
        let mut n = 0u32;
        self.dump_request(&req, SUBSYS_CTNETLINK << 8 | CT_NEW, |_| {
            n = n.saturating_add(1)
        })?;
        Ok(n)
    }
}

/// A WAN device's byte counters (received, sent) from sysfs: the same 64-bit counters
/// as netlink's `IFLA_STATS64`, for one device, without a dump of every link. `None`
/// while the device does not exist.
pub fn link_bytes(device: &str) -> Option<(u64, u64)> {
    if !crate::config::is_device_name(device) {
        return None;
    }
    let read = |what: &str| {
        let path = format!("/sys/class/net/{device}/statistics/{what}");
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((read("rx_bytes")?, read("tx_bytes")?))
}

/// A device's ifindex from sysfs: read with its counters, it tells a device that was
/// re-created (a PPP reconnect) from counters that went down.
pub fn link_ifindex(device: &str) -> Option<u32> {
    if !crate::config::is_device_name(device) {
        return None;
    }
    let path = format!("/sys/class/net/{device}/ifindex");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
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
    /// Run a dump of `get` over `family`, handing every `new` message's payload to `f`.
    fn dump(&mut self, family: u8, get: u16, new: u16, f: impl FnMut(&[u8])) -> io::Result<()> {
        let req = Request::new(SUBSYS_NFTABLES << 8 | get, NLM_F_DUMP, &nfgenmsg(family));
        self.dump_request(&req, SUBSYS_NFTABLES << 8 | new, f)
    }

    /// Send the dump request `req`, handing the payload of every answer of type `kind`
    /// to `f` until the dump is done.
    fn dump_request(
        &mut self,
        req: &Request,
        kind: u16,
        mut f: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let seq = self.send(req)?;
        let mut buf = Vec::with_capacity(32 * 1024);
        loop {
            buf.clear();
            self.socket.recv(&mut buf, 0)?;
            for m in Messages::new(&buf).filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno =
                            parse_ack(m.flags, m.payload).map_or(libc::EBADMSG, |a| a.errno);
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    k if k == kind => f(m.payload),
                    _ => {}
                }
            }
        }
    }

    /// The names of the chains and (named) sets of `inet uplinkd`, over netlink: set
    /// metadata only, never elements, so a set dnsmasq filled with 200,000 addresses
    /// costs what an empty one costs (`nft -t list` still reads every element).
    pub fn names(&mut self) -> io::Result<Existing> {
        let mut ex = Existing::default();
        self.dump(NFPROTO_INET, NFT_GETCHAIN, NFT_NEWCHAIN, |p| {
            if let Some((table, name, _)) = decode_named(p, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, 0) {
                if table == TABLE {
                    ex.chains.push(name);
                }
            }
        })?;
        self.dump(NFPROTO_INET, NFT_GETSET, NFT_NEWSET, |p| {
            if let Some((table, name, flags)) =
                decode_named(p, NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS)
            {
                if table == TABLE && flags & NFT_SET_ANONYMOUS == 0 {
                    ex.sets.push(name);
                }
            }
        })?;
        Ok(ex)
    }

    /// Every flowtable of every table.
    pub fn flowtables(&mut self) -> io::Result<Vec<Flowtable>> {
        let mut out = Vec::new();
        self.dump(0, NFT_GETFLOWTABLE, NFT_NEWFLOWTABLE, |p| {
            out.extend(decode_flowtable(p));
        })?;
        Ok(out)
    }
}

/// Table, name and flags (0 if `flags_attr` is absent) of a chain or set message:
/// nfgenmsg, then attributes.
fn decode_named(
    payload: &[u8],
    table_attr: u16,
    name_attr: u16,
    flags_attr: u16,
) -> Option<(String, String, u32)> {
    let text = |v: &[u8]| {
        let v = v.split(|&b| b == 0).next().unwrap_or(&[]);
        String::from_utf8_lossy(v).into_owned()
    };
    let (mut table, mut name, mut flags) = (None, None, 0);
    for (kind, value) in Attrs::new(payload.get(4..)?) {
        match kind {
            k if k == table_attr => table = Some(text(value)),
            k if k == name_attr => name = Some(text(value)),
            k if k == flags_attr && flags_attr != 0 => {
                flags = u32_at(value, 0).map_or(0, u32::from_be)
            }
            _ => {}
        }
    }
    Some((table?, name?, flags))
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

/// Fuzzing entry: the flowtable decoder on an untrusted `NFT_MSG_NEWFLOWTABLE` payload.
#[doc(hidden)]
pub fn fuzz_decode_flowtable(payload: &[u8]) -> Option<Flowtable> {
    decode_flowtable(payload)
}

/// How long one `nft` run may take before it is killed. Loads are small (names only are
/// listed, set elements never), so anything near this means nft hangs.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How an error that `nft` could not be started begins.
const CANNOT_RUN: &str = "cannot run";

/// The `nft` binary (`--nft`; default: found on `PATH`).
#[derive(Clone, Debug)]
pub struct Nft {
    pub path: PathBuf,
    pub timeout: Duration,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft {
            path: PathBuf::from("nft"),
            timeout: TIMEOUT,
        }
    }
}

impl Nft {
    /// The command for `args`, in a process group of its own so that a timeout kills
    /// whatever it started too.
    fn command(&self, args: &[&str], stdin: bool) -> smol::process::Command {
        let mut inner = std::process::Command::new(&self.path);
        inner.args(args).process_group(0);
        // Stdio is set on the async command: its conversion resets it to inherit.
        let mut cmd = smol::process::Command::from(inner);
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Run `nft ARGS` beside the event loop, `script` on stdin; its stdout, or its
    /// stderr as the error. Killed (with its process group) after `timeout`.
    pub async fn run(&self, args: &[&str], script: Option<String>) -> Result<String, String> {
        let mut child = self
            .command(args, script.is_some())
            .spawn()
            .map_err(|e| format!("{CANNOT_RUN} {}: {e}", self.path.display()))?;
        // Killed with whatever it started on timeout, and when the caller gives up
        // on it (the daemon stops).
        let mut group = GroupKill(child.id() as libc::pid_t);
        let stdin = child.stdin.take();
        let feed = async move {
            if let (Some(text), Some(mut stdin)) = (script, stdin) {
                // A broken pipe shows up as nft's own error below.
                let _ = stdin.write_all(text.as_bytes()).await;
            }
        };
        let work = smol::future::zip(feed, child.output());
        let timeout = self.timeout;
        let out = smol::future::or(async { Some(work.await.1) }, async {
            smol::Timer::after(timeout).await;
            None
        })
        .await;
        let Some(out) = out else {
            return Err(format!("nft did not finish within {timeout:?}: killed"));
        };
        group.0 = 0;
        let out = out.map_err(|e| format!("nft: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if err.is_empty() {
                format!("nft: {}", out.status)
            } else {
                err
            })
        }
    }

    /// Load a script as one transaction.
    pub async fn load(&self, script: String) -> Result<(), String> {
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// The names of the chains and sets of our table (empty if it is missing), from
    /// `nft -t`. Tests and tools only: nftables 1.0.6 still reads every set element
    /// for a terse listing (a 200,000-address set: 130 MB), which is why the daemon
    /// asks netlink instead ([`Netfilter::names`]).
    pub async fn existing(&self) -> Result<Existing, String> {
        let args = ["-t", "list", "table", "inet", TABLE];
        match self.run(&args, None).await {
            Ok(text) => Ok(parse_names(&text)),
            // nft's answer for a missing table, not a missing nft.
            Err(e) if !e.starts_with(CANNOT_RUN) && e.contains("No such file") => {
                Ok(Existing::default())
            }
            Err(e) => Err(e),
        }
    }
}

/// SIGKILLs a process group (nft and anything it started) when dropped, unless its
/// id was set to 0 (it finished).
struct GroupKill(libc::pid_t);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: sending a signal has no memory-safety preconditions.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// The chain, set and map names in `nft -t list table` output:
/// ```text
/// table inet uplinkd {
///     set users {
///         type ipv4_addr
///     }
///     chain select {
/// ```
/// Only lines one level below the table are read, so no rule text can look like a name.
pub fn parse_names(text: &str) -> Existing {
    let mut ex = Existing::default();
    let mut depth = 0usize;
    for line in text.lines() {
        let trimmed = line.trim();
        if depth == 1 {
            let mut words = trimmed.split_whitespace();
            let kind = words.next();
            let name = words.next().map(|n| n.trim_matches('"').to_string());
            match (kind, name) {
                (Some("chain"), Some(n)) => ex.chains.push(n),
                (Some("set" | "map"), Some(n)) => ex.sets.push(n),
                _ => {}
            }
        }
        // Braces in quoted strings (comments) would confuse the count; nft prints
        // comments as `comment "..."`, so count only outside quotes.
        let mut quoted = false;
        for c in trimmed.chars() {
            match c {
                '"' => quoted = !quoted,
                '{' if !quoted => depth += 1,
                '}' if !quoted => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    ex
}

/// Load a script as one transaction, waiting for it (tests and tools; the daemon uses
/// [`Nft::load`] beside its loop).
pub fn load(script: &str) -> Result<(), String> {
    smol::block_on(Nft::default().load(script.to_string()))
}

/// The chains and sets of our table, waiting for nft (tests and tools).
pub fn existing() -> Result<Existing, String> {
    smol::block_on(Nft::default().existing())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ruleset;
    use crate::sys::testns::Netns;
    use crate::testutil::{config, policy_plan, wan_infos};

    #[test]
    fn names_come_from_the_terse_listing_only_one_level_deep() {
        // `nft -t list table inet uplinkd` (nftables 1.0.6) with a filled user set, a
        // map, and a rule whose comment holds a brace.
        let text = "table inet uplinkd {\n\tset users {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n\n\tmap m {\n\t\ttype ipv4_addr : verdict\n\t}\n\n\tchain select {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tip saddr @users counter packets 0 bytes 0 comment \"x { y chain z\"\n\t}\n\n\tchain pin_0 {\n\t\tmeta mark set 0x00000001\n\t}\n}\n";
        assert_eq!(
            parse_names(text),
            Existing {
                chains: vec!["select".into(), "pin_0".into()],
                sets: vec!["users".into(), "m".into()],
            }
        );
        assert_eq!(parse_names(""), Existing::default());
        assert_eq!(parse_names("}}}\n\tchain x {"), Existing::default());
    }

    #[test]
    fn a_hanging_nft_is_killed_with_what_it_started() {
        let dir = std::env::temp_dir().join(format!("uplinkd-nft-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fake = dir.join("nft");
        let marker = dir.join("child-ran");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nsleep 30 &\necho $! > {}\nwait\n",
                marker.display()
            ),
        )
        .expect("write fake nft");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let nft = Nft {
            path: fake,
            timeout: Duration::from_millis(300),
        };
        let err = smol::block_on(nft.load("add table inet x\n".into())).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        // The shell's child went with it (a zombie until init reaps it at most).
        let pid: i32 = std::fs::read_to_string(&marker)
            .expect("the fake ran")
            .trim()
            .parse()
            .expect("pid");
        let mut alive = true;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            alive = stat.split(") ").nth(1).is_some_and(|r| !r.starts_with('Z'));
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive, "sleep {pid} survived the kill");
        // A missing binary is a clear error, not a panic.
        let missing = Nft {
            path: dir.join("absent"),
            ..Nft::default()
        };
        let err = smol::block_on(missing.existing()).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
            // Netlink gives the same names as nft, without anonymous sets.
            let mut by_netlink = nf.names().expect("names");
            let mut by_nft = ex.clone();
            for e in [&mut by_netlink, &mut by_nft] {
                e.chains.sort();
                e.sets.sort();
            }
            assert_eq!(by_netlink, by_nft);
            assert!(
                !by_netlink.sets.iter().any(|s| s.starts_with("__")),
                "{by_netlink:?}"
            );
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
