//! The dry-run backend (netifd's `system-dummy.c`): reads the real kernel, writes
//! nothing, prints the `ip` command of every operation instead.
//!
//! It keeps an overlay of our objects as they would be after the printed commands, and
//! reports that overlay as [`Snapshot::owned`], so the next reconcile sees its own
//! "writes" and converges instead of printing the same commands on every pass.

use std::io::Write;

use super::kernel::{Job, Kernel, Load};
use super::netlink::describe;
use super::nft::Flowtable;
use crate::dataplane::{Existing, Ruleset};
use crate::kernel::{Error, Link, Object, Ownership, Reads, Snapshot};
use crate::reconcile::Op;

pub struct DryRun<K: Kernel> {
    inner: K,
    /// Our objects as the dry run has "applied" them; `None` until the first snapshot.
    overlay: Option<Vec<Object>>,
    links: Vec<Link>,
    protocol: u8,
    out: Box<dyn Write + Send>,
}

impl<K: Kernel> DryRun<K> {
    /// Prints to stdout.
    pub fn new(inner: K) -> DryRun<K> {
        DryRun::with_output(inner, Box::new(std::io::stdout()))
    }

    pub fn with_output(inner: K, out: Box<dyn Write + Send>) -> DryRun<K> {
        DryRun {
            inner,
            overlay: None,
            links: Vec::new(),
            protocol: 0,
            out,
        }
    }

    pub fn inner(&self) -> &K {
        &self.inner
    }
}

impl<K: Kernel> Kernel for DryRun<K> {
    fn snapshot(&mut self, own: &Ownership, reads: &Reads) -> Result<Snapshot, Error> {
        let mut snap = self.inner.snapshot(own, reads)?;
        self.protocol = own.protocol;
        self.links = snap.links.clone();
        let overlay = self.overlay.get_or_insert_with(|| snap.owned.clone());
        snap.owned = overlay.clone();
        Ok(snap)
    }

    fn apply(&mut self, op: &Op) -> Result<(), Error> {
        let line = describe(op, &self.links, self.protocol);
        // A closed stdout must not stop the daemon; the overlay still advances.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
        let overlay = self.overlay.get_or_insert_with(Vec::new);
        let key = op.object().key();
        overlay.retain(|o| o.key() != key);
        if !matches!(op, Op::Delete(_)) {
            overlay.push(op.object().clone());
        }
        Ok(())
    }

    fn writes(&self) -> bool {
        false
    }

    /// A solicitation is a probe, not a change of the routing: a dry run probes the
    /// gateway as a real run does.
    fn solicit(&mut self, ifindex: u32, addr: std::net::IpAddr) -> Result<(), Error> {
        self.inner.solicit(ifindex, addr)
    }
}

/// The nft table of a dry run: a load prints the script that would create it (from an
/// empty table); nothing is checked or removed.
pub struct Nftables;

impl super::kernel::Nftables for Nftables {
    fn available(&self) -> bool {
        true
    }

    fn checks(&self) -> bool {
        false
    }

    fn load(&mut self, ruleset: &Ruleset) -> Option<Load> {
        super::print(&ruleset.script(&Existing::default()));
        Some(Load::Done)
    }

    fn table_exists(&mut self) -> Option<std::io::Result<bool>> {
        None
    }

    fn flowtables(&mut self) -> Option<std::io::Result<Vec<Flowtable>>> {
        None
    }

    fn remove(&mut self) -> Option<Job<usize>> {
        None
    }
}

/// Conntrack in a dry run: a flush prints the `conntrack` command; nothing is counted.
pub struct Conntrack;

impl super::kernel::Conntrack for Conntrack {
    fn flush(&mut self, mark: u32, mask: u32) -> Option<std::io::Result<()>> {
        super::print(&format!(
            "conntrack -D -f ipv4 --mark {mark:#x}/{mask:#x}\n"
        ));
        None
    }

    fn count(
        &mut self,
        _mark: u32,
        _mask: u32,
        _now: crate::time::Instant,
    ) -> Option<std::io::Result<u32>> {
        None
    }
}

/// Sysctls in a dry run: read for real, written as the `sysctl` command that would.
pub struct Sysctl;

impl super::kernel::Sysctl for Sysctl {
    fn read(&mut self, name: &str) -> std::io::Result<String> {
        super::kernel::ProcSys.read(name)
    }

    fn write(&mut self, name: &str, value: &str) -> std::io::Result<()> {
        super::print(&format!("sysctl -w {}={value}\n", name.replace('/', ".")));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::*;
    use crate::reconcile::reconcile;
    use crate::sys::kernel::Kernel;
    use crate::testutil::{nh, rule};
    use std::sync::{Arc, Mutex};

    /// A kernel that reports a fixed snapshot and refuses writes.
    struct Fake {
        snap: Snapshot,
    }

    impl Kernel for Fake {
        fn snapshot(&mut self, _own: &Ownership, _reads: &Reads) -> Result<Snapshot, Error> {
            Ok(self.snap.clone())
        }
        fn apply(&mut self, op: &Op) -> Result<(), Error> {
            panic!("dry run wrote to the kernel: {op:?}");
        }
    }

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Out {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    fn own() -> Ownership {
        Ownership {
            protocol: 212,
            tables: 1100..=1199,
            priorities: 4000..=4199,
            nexthop_ids: 1100..=1199,
        }
    }

    #[test]
    fn prints_and_converges() {
        let out = Out::default();
        let fake = Fake {
            snap: Snapshot {
                links: vec![Link {
                    ifindex: 3,
                    name: "wan1".into(),
                    up: true,
                    carrier: true,
                }],
                owned: vec![rule(4100, 1100)],
                nexthops_supported: true,
                ..Snapshot::default()
            },
        };
        let mut dry = DryRun::with_output(fake, Box::new(out.clone()));
        let desired = vec![nh(1101, 3), rule(4101, 1101)];

        let snap = dry.snapshot(&own(), &Reads::Everywhere).unwrap();
        assert_eq!(snap.owned, vec![rule(4100, 1100)]);
        for op in reconcile(&desired, &snap.owned) {
            dry.apply(&op).unwrap();
        }
        assert_eq!(
            out.take(),
            "ip nexthop add id 1101 via 10.20.3.1 dev wan1 proto 212\n\
             ip -4 rule add priority 4101 lookup 1101 proto 212\n\
             ip -4 rule del priority 4100 lookup 1100 proto 212\n"
        );

        // The next pass sees its own writes: nothing to do, nothing printed.
        let snap = dry.snapshot(&own(), &Reads::Everywhere).unwrap();
        let mut owned = snap.owned.clone();
        owned.sort();
        let mut want = desired.clone();
        want.sort();
        assert_eq!(owned, want);
        assert!(reconcile(&desired, &snap.owned).is_empty());
        assert_eq!(out.take(), "");
    }

    #[test]
    fn replace_overwrites_the_overlay_entry() {
        let out = Out::default();
        let fake = Fake {
            snap: Snapshot {
                owned: vec![nh(1101, 3)],
                ..Snapshot::default()
            },
        };
        let mut dry = DryRun::with_output(fake, Box::new(out.clone()));
        dry.snapshot(&own(), &Reads::Everywhere).unwrap();
        dry.apply(&Op::Replace(nh(1101, 4))).unwrap();
        assert_eq!(
            dry.snapshot(&own(), &Reads::Everywhere).unwrap().owned,
            vec![nh(1101, 4)]
        );
        assert_eq!(
            out.take(),
            "ip nexthop replace id 1101 via 10.20.4.1 dev if4 proto 212\n"
        );
    }
}
