//! What the data plane needs from the system besides netlink, checked once at start.
//!
//! The packages declare these (nftables with JSON, nft's kernel modules, ctnetlink), but
//! a hand-installed binary, a trimmed image or a module that failed to load can still
//! lack them. The daemon then says once what is missing and what will not work, and
//! runs on without it: routes, rules and failover need neither. It does not try again
//! in a loop; a restart after installing the missing piece picks it up.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::nft::Netfilter;

/// What was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// `nft` runs and speaks JSON: the table can be loaded.
    pub nft: bool,
    /// ctnetlink answers: a WAN's pinned connections can be deleted.
    pub ctnetlink: bool,
}

impl Needs {
    /// Everything there (dry runs, tests).
    pub const ALL: Needs = Needs {
        nft: true,
        ctnetlink: true,
    };
}

/// Check once and log what is missing. `nf`: the netfilter socket, if it opened (its
/// failure was already logged; nothing here works without it); `nft`: the program.
pub fn check(nf: Option<&mut Netfilter>, nft: &Path) -> Needs {
    let Some(nf) = nf else {
        return Needs {
            nft: false,
            ctnetlink: false,
        };
    };
    let nft = match nft_json(nft) {
        Ok(()) => true,
        Err(why) => {
            log::error!(
                "{why}: connections are not pinned to a WAN, `rule` sections, sticky \
                 policies and weights per connection do not work (only the routes' \
                 per-flow hash balances); install nftables with JSON support \
                 (OpenWrt: nftables-json; Debian: nftables) and restart uplinkd"
            );
            false
        }
    };
    let ctnetlink = match nf.ctnetlink() {
        Ok(()) => true,
        Err(e) => {
            log::error!(
                "conntrack netlink does not answer ({e}): the connections pinned to a WAN \
                 that fails are not deleted and stay on it until they time out; load \
                 nf_conntrack_netlink (OpenWrt: kmod-nf-conntrack-netlink) and restart \
                 uplinkd"
            );
            false
        }
    };
    Needs { nft, ctnetlink }
}

/// How long the start-up check waits for `nft`: a hung or very slow `nft` is not a
/// missing one (the loads beside the event loop time out and retry on their own), and
/// the daemon must not wait for it before it routes.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `nft -j list tables`: present, and built with JSON (OpenWrt's nftables-nojson says
/// so on stderr). Other failures (a busy kernel, a denied operation, no answer within
/// `CHECK_TIMEOUT`) do not mean nft is missing: they show where the table is loaded.
fn nft_json(nft: &Path) -> Result<(), String> {
    let mut child = Command::new(nft)
        .args(["-j", "list", "tables"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft ({e})"))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                // Not an answer either way: kill it with whatever it started.
                kill_group(&child);
                let _ = child.wait();
                return Ok(());
            }
        }
    };
    // It has exited; a descendant still holding the pipe must not keep us reading.
    kill_group(&child);
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    if !status.success() && err.to_ascii_lowercase().contains("json") {
        return Err(format!("nft has no JSON support ({})", err.trim()));
    }
    Ok(())
}

/// SIGKILL to the process group `child` leads (it was started with `process_group(0)`).
fn kill_group(child: &std::process::Child) {
    // SAFETY: kill(2) takes no pointers; a group that is gone answers ESRCH.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
}
