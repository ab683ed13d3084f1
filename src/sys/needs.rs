//! What the data plane needs from the system besides netlink, checked once at start.
//!
//! The packages declare these (nftables with JSON, nft's kernel modules, ctnetlink), but
//! a hand-installed binary, a trimmed image or a module that failed to load can still
//! lack them. The daemon then says once what is missing and what will not work, and
//! runs on without it: routes, rules and failover need neither. It does not try again
//! in a loop; a restart after installing the missing piece picks it up.

use std::path::Path;
use std::process::{Command, Stdio};

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

/// `nft -j list tables`: present, and built with JSON (OpenWrt's nftables-nojson says
/// so on stderr). Other failures (a busy kernel, a denied operation) do not mean nft is
/// missing: they show where the table is loaded.
fn nft_json(nft: &Path) -> Result<(), String> {
    let out = Command::new(nft)
        .args(["-j", "list", "tables"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run nft ({e})"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && err.to_ascii_lowercase().contains("json") {
        return Err(format!("nft has no JSON support ({})", err.trim()));
    }
    Ok(())
}
