//! The shell: everything that touches the operating system.

pub mod dryrun;
pub mod logger;
pub mod netlink;
pub mod nexthop;
pub mod nft;
pub mod probe;
pub mod signals;
pub mod wire;

#[cfg(test)]
mod netlink_tests;
#[cfg(test)]
pub(crate) mod testns;
