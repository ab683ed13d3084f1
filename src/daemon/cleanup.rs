//! Removing what uplinkd owns: a stop (SIGINT) and `uplinkd cleanup`.

use super::sync::apply_ops;
use super::*;
use crate::sys::kernel::{Kernel, LiveNft, Nftables};
use crate::sys::needs::Needs;
use crate::sys::nft::{Netfilter, Nft};

/// How long `uplinkd cleanup` waits for a daemon that is exiting (procd's stop runs it
/// right after sending SIGTERM; procd itself waits `term_timeout`, 10 s, before SIGKILL).
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

/// `uplinkd cleanup`: remove what a daemon with this configuration left in the kernel
/// (after SIGTERM, kill -9 or a crash). A daemon still running would put it all back at
/// its next sync, so this first waits for it to exit (its control socket stops
/// answering), bounded, and refuses if it does not. Returns the exit code.
pub fn cleanup(cfg: &Config, control_socket: Option<&std::path::Path>, nft: PathBuf) -> i32 {
    if let Some(path) = control_socket {
        let until = std::time::Instant::now() + CLEANUP_WAIT;
        while std::os::unix::net::UnixStream::connect(path).is_ok() {
            if std::time::Instant::now() >= until {
                log::error!(
                    "uplinkd is still running (it answers on {}): stop it first",
                    path.display()
                );
                return 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let own = plan::ownership(cfg);
    let mut kernel = match Netlink::open(own.clone()) {
        Ok(k) => k,
        Err(e) => {
            log::error!("cannot open netlink: {e}");
            return 1;
        }
    };
    let nf = match Netfilter::open() {
        Ok(nf) => Some(Rc::new(RefCell::new(nf))),
        Err(e) => {
            log::warn!("cannot open netfilter netlink ({e}): the nft table is not checked");
            None
        }
    };
    let nft = Nft {
        path: nft,
        ..Nft::default()
    };
    let mut nft = LiveNft::new(nf, nft, Needs::ALL);
    let removed = smol::block_on(remove_owned(&mut kernel, &own, &mut nft));
    log::info!("cleanup: {} kernel objects removed", removed.writes);
    removed.code
}

/// What `remove_owned` did.
pub struct Removed {
    /// 0, or 1 when something may remain.
    pub code: i32,
    pub writes: u64,
}

/// Remove every kernel object with our tags and our nft table (sets that others fill
/// stay, with their elements). Bounded: routes go over netlink; `nft` gets `NFT_AT_EXIT`
/// in all, and what it cannot remove in that time is replaced by the next start.
/// Shared by a stop (SIGINT) and `uplinkd cleanup`.
pub(super) async fn remove_owned(
    kernel: &mut dyn Kernel,
    own: &Ownership,
    nft: &mut dyn Nftables,
) -> Removed {
    let mut removed = Removed { code: 0, writes: 0 };
    // Only our objects are wanted here.
    match kernel.snapshot(own, &kernel::Reads::Devices(Vec::new())) {
        Ok(snap) => {
            let ops = reconcile(&[] as &[Object], &snap.owned);
            let (writes, failed) = apply_ops(kernel, own, &ops, &snap);
            removed.writes = writes;
            if failed.is_some() {
                removed.code = 1;
            }
        }
        Err(e) => {
            log::error!("kernel dump failed, objects may remain: {e}");
            removed.code = 1;
        }
    }
    if let Some(work) = nft.remove() {
        let limit = async {
            Timer::after(NFT_AT_EXIT).await;
            Err(format!("nft did not finish within {NFT_AT_EXIT:?}"))
        };
        match smol::future::or(work, limit).await {
            Ok(0) => {}
            Ok(kept) => log::info!(
                "nft: kept table inet {} for {kept} sets filled by others",
                dataplane::TABLE
            ),
            Err(e) => {
                log::error!(
                    "nft: cannot remove table inet {} ({e}): the next start replaces it",
                    dataplane::TABLE
                );
                removed.code = 1;
            }
        }
    }
    removed
}
