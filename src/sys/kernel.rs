//! The narrow boundary between the daemon and the kernel (STYLE §8): four small traits,
//! each with a live implementation and a dry-run one ([`super::dryrun`]).
//!
//! - [`Kernel`]: dump and write routes, rules and nexthops (netlink);
//! - [`Nftables`]: load, check and remove our nft table;
//! - [`Conntrack`]: delete and count the connections pinned to a WAN (ctnetlink);
//! - [`Sysctl`]: the multipath hash policy.
//!
//! The values that cross this boundary ([`crate::kernel`], [`crate::reconcile::Op`],
//! [`crate::dataplane::Ruleset`]) belong to the core; the traits belong to the shell.
//! [`Backend::open`] is the only place that chooses between live and dry run.

use crate::time::Instant;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use super::ct_events::{Counts, Listener};

use super::dryrun::{self, DryRun};
use super::needs::{self, Needs};
use super::netlink::Netlink;
use super::nft::{Flowtable, Netfilter, Nft};
use crate::dataplane::{self, Ruleset};
use crate::kernel::{Error, Ownership, Reads, Snapshot};
use crate::reconcile::Op;

/// Routes, rules and nexthops: dump and apply. Implemented by netlink and by the
/// dry-run backend, which prints `ip` equivalents instead.
pub trait Kernel {
    /// Dump links, addresses, everything we own and the foreign default routes `reads`
    /// names.
    fn snapshot(&mut self, own: &Ownership, reads: &Reads) -> Result<Snapshot, Error>;
    /// Apply one operation. Ops arrive already ordered by [`crate::reconcile`].
    fn apply(&mut self, op: &Op) -> Result<(), Error>;
    /// Whether applied ops reach the kernel. The dry run prints them already, so the
    /// shell does not log them a second time.
    fn writes(&self) -> bool {
        true
    }
    /// Ask the kernel to re-resolve neighbour `addr` on `ifindex` now (the gateway
    /// probe); the answer comes as a [`crate::kernel::Event::NeighbourReachable`] or
    /// [`crate::kernel::Event::NeighbourFailed`]. A static entry (permanent or noarp)
    /// is never touched: that is an error, as there is nothing to ask.
    fn solicit(&mut self, ifindex: u32, addr: std::net::IpAddr) -> Result<(), Error> {
        let _ = (ifindex, addr);
        Err(Error {
            context: "neighbour solicitation is not supported by this backend".into(),
            errno: None,
        })
    }
}

/// Work that runs beside the event loop; dropping it cancels it (and kills `nft`).
pub type Job<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// How a load of the nft table started.
pub enum Load {
    /// `nft` runs beside the loop; the job answers when it is done.
    Running(Job<()>),
    /// Done already (the dry run printed it).
    Done,
}

/// Our nft table. `None` from a method means "nothing to do here": nft or netfilter
/// netlink is missing (said once at start), or the dry run printed it.
pub trait Nftables {
    /// Whether the table can be loaded at all; `status` says "unavailable" if not.
    fn available(&self) -> bool;
    /// Whether [`Nftables::table_exists`] can check anything (the loop wakes for it).
    fn checks(&self) -> bool;
    /// Load `ruleset` as one transaction, replacing our chains and our own sets and
    /// keeping sets others fill.
    fn load(&mut self, ruleset: &Ruleset) -> Option<Load>;
    /// Whether our table still exists (`nft flush ruleset` removes it).
    fn table_exists(&mut self) -> Option<io::Result<bool>>;
    /// The flowtables of every table (fw4's `flow_offloading`).
    fn flowtables(&mut self) -> Option<io::Result<Vec<Flowtable>>>;
    /// Remove our chains and sets; sets filled by others stay, with the table. The job
    /// answers how many sets were kept.
    fn remove(&mut self) -> Option<Job<usize>>;
}

/// The connections pinned to a WAN, by conntrack mark. `None`: not done here
/// (ctnetlink missing, or the dry run printed it).
pub trait Conntrack {
    /// Delete the connections whose mark under `mask` is `mark`.
    fn flush(&mut self, mark: u32, mask: u32) -> Option<io::Result<()>>;
    /// Count them, as of `now`.
    fn count(&mut self, mark: u32, mask: u32, now: Instant) -> Option<io::Result<u32>>;
    /// No policy counts connections any more: stop following them.
    fn stop_counting(&mut self) {}
}

/// Values under `/proc/sys`, named by their path there (`net/ipv4/...`).
pub trait Sysctl {
    fn read(&mut self, name: &str) -> io::Result<String>;
    fn write(&mut self, name: &str, value: &str) -> io::Result<()>;
}

/// The sysctl that makes the kernel hash multipath routes per flow (L4) rather than per
/// host pair: without it every connection between two hosts takes the same WAN.
pub const HASH_POLICY: &str = "net/ipv4/fib_multipath_hash_policy";

/// Everything the daemon writes to, live or dry run.
pub struct Backend {
    pub kernel: Box<dyn Kernel>,
    pub nft: Box<dyn Nftables>,
    pub conntrack: Box<dyn Conntrack>,
    pub sysctl: Box<dyn Sysctl>,
    /// The netlink port our writes come from, whose echoes the event monitor drops.
    pub port_id: u32,
    /// Appended to the start-up line (" (dry run)").
    pub label: &'static str,
}

/// Which backend to open.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Live,
    /// Read the real kernel, write nothing, print the commands instead.
    DryRun,
}

impl Backend {
    /// Open netlink (an error if it cannot be), and for a live backend netfilter
    /// netlink and `nft`, checking once what is missing (`sys::needs`).
    pub fn open(mode: Mode, own: &Ownership, nft: PathBuf) -> Result<Backend, String> {
        let netlink =
            Netlink::open(own.clone()).map_err(|e| format!("cannot open netlink: {e}"))?;
        let port_id = netlink.port_id();
        if mode == Mode::DryRun {
            return Ok(Backend {
                kernel: Box::new(DryRun::new(netlink)),
                nft: Box::new(dryrun::Nftables),
                conntrack: Box::new(dryrun::Conntrack),
                sysctl: Box::new(dryrun::Sysctl),
                port_id,
                label: " (dry run)",
            });
        }
        let mut nf = match Netfilter::open() {
            Ok(nf) => Some(nf),
            Err(e) => {
                log::error!(
                    "cannot open netfilter netlink ({e}): connections are not pinned to their WAN"
                );
                None
            }
        };
        let nft = Nft {
            path: nft,
            ..Nft::default()
        };
        let needs = needs::check(nf.as_mut(), &nft.path);
        let nf = nf.map(|nf| Rc::new(RefCell::new(nf)));
        Ok(Backend {
            kernel: Box::new(netlink),
            nft: Box::new(LiveNft::new(nf.clone(), nft, needs)),
            conntrack: Box::new(LiveConntrack::new(nf.filter(|_| needs.ctnetlink))),
            sysctl: Box::new(ProcSys),
            port_id,
            label: "",
        })
    }
}

/// The nft table through netfilter netlink (names, checks) and the `nft` program
/// (loads), both found at start.
pub struct LiveNft {
    nf: Option<Rc<RefCell<Netfilter>>>,
    nft: Nft,
    /// `nft` runs and speaks JSON.
    loads: bool,
}

impl LiveNft {
    pub fn new(nf: Option<Rc<RefCell<Netfilter>>>, nft: Nft, needs: Needs) -> LiveNft {
        LiveNft {
            nf,
            nft,
            loads: needs.nft,
        }
    }
}

impl Nftables for LiveNft {
    fn available(&self) -> bool {
        self.nf.is_some()
    }

    fn checks(&self) -> bool {
        self.nf.is_some()
    }

    fn load(&mut self, ruleset: &Ruleset) -> Option<Load> {
        let nf = self.nf.as_ref().filter(|_| self.loads)?;
        // Names over netlink (one quick request, never set elements); the load beside
        // the loop.
        let names = nf
            .borrow_mut()
            .names()
            .map_err(|e| format!("cannot list table inet {}: {e}", dataplane::TABLE));
        let (nft, ruleset) = (self.nft.clone(), ruleset.clone());
        Some(Load::Running(Box::pin(async move {
            nft.load(ruleset.script(&names?)).await
        })))
    }

    fn table_exists(&mut self) -> Option<io::Result<bool>> {
        let nf = self.nf.as_ref().filter(|_| self.loads)?;
        let exists = nf.borrow_mut().table_exists();
        Some(exists)
    }

    fn flowtables(&mut self) -> Option<io::Result<Vec<Flowtable>>> {
        let nf = self.nf.as_ref().filter(|_| self.loads)?;
        let found = nf.borrow_mut().flowtables();
        Some(found)
    }

    fn remove(&mut self) -> Option<Job<usize>> {
        let nf = self.nf.as_ref()?;
        if !nf.borrow_mut().table_exists().unwrap_or(true) {
            return None;
        }
        // Names only (never set elements), then our chains and sticky sets go; sets
        // others fill stay with their elements.
        let names = nf
            .borrow_mut()
            .names()
            .map_err(|e| format!("cannot list it: {e}"));
        let nft = self.nft.clone();
        Some(Box::pin(async move {
            let ex = names?;
            let kept = ex.sets.iter().filter(|s| !dataplane::owned_set(s)).count();
            nft.load(dataplane::stop_script(&ex)).await.map(|()| kept)
        }))
    }
}

/// Conntrack over ctnetlink; `None` when it did not answer at start. Counts come from
/// events once seeded by a dump ([`super::ct_events`]); the event socket is opened at
/// the first count and closed by [`Conntrack::stop_counting`].
pub struct LiveConntrack {
    nf: Option<Rc<RefCell<Netfilter>>>,
    listener: Option<Listener>,
    /// The event socket could not be opened: count by dump (said once).
    dumps_only: bool,
    counts: Counts,
}

impl LiveConntrack {
    pub fn new(nf: Option<Rc<RefCell<Netfilter>>>) -> LiveConntrack {
        LiveConntrack {
            nf,
            listener: None,
            dumps_only: false,
            counts: Counts::default(),
        }
    }
}

impl Conntrack for LiveConntrack {
    fn flush(&mut self, mark: u32, mask: u32) -> Option<io::Result<()>> {
        let done = self.nf.as_ref()?.borrow_mut().flush_conntrack(mark, mask);
        Some(done)
    }

    fn count(&mut self, mark: u32, mask: u32, now: Instant) -> Option<io::Result<u32>> {
        let nf = self.nf.as_ref()?;
        if self.listener.is_none() && !self.dumps_only {
            match Listener::open() {
                Ok(l) => self.listener = Some(l),
                Err(e) => {
                    log::warn!(
                        "cannot follow conntrack events ({e}): least_connections counts \
                         by dump every second"
                    );
                    self.dumps_only = true;
                }
            }
        }
        let Some(listener) = self.listener.as_mut() else {
            return Some(nf.borrow_mut().count_conntrack(mark, mask));
        };
        self.counts.set_mask(mask);
        let counts = &mut self.counts;
        listener.drain(|e| counts.apply(e));
        if let Some(n) = self.counts.get(mark, now) {
            return Some(Ok(n));
        }
        // Events about entries the dump also sees may still be queued, or arrive
        // during it; they are few, and the next seed corrects them.
        let n = nf.borrow_mut().count_conntrack(mark, mask);
        if let Ok(n) = n {
            self.counts.seed(mark, n, now);
        }
        Some(n)
    }

    fn stop_counting(&mut self) {
        if self.listener.take().is_some() {
            self.counts = Counts::default();
        }
    }
}

/// The real `/proc/sys`.
pub struct ProcSys;

impl Sysctl for ProcSys {
    fn read(&mut self, name: &str) -> io::Result<String> {
        std::fs::read_to_string(format!("/proc/sys/{name}")).map(|s| s.trim().to_string())
    }

    fn write(&mut self, name: &str, value: &str) -> io::Result<()> {
        std::fs::write(format!("/proc/sys/{name}"), value)
    }
}
