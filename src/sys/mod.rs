//! The shell: everything that touches the operating system.

pub mod dryrun;
pub mod netlink;
#[cfg(test)]
mod netlink_tests;
pub mod nexthop;
#[cfg(test)]
pub(crate) mod testns;
pub mod wire;
