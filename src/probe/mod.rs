//! TODO

pub mod icmp;
