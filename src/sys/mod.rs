//! The shell: everything that touches the operating system.

/// Write `text` to stdout, ignoring errors: output piped into `head`, or a closed pipe
/// under a service manager, must never abort the process (`println!` panics there).
pub fn print(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub mod ct_events;
pub mod dryrun;
pub mod kernel;
pub mod logger;
#[cfg(all(target_env = "musl", target_os = "linux"))]
pub mod musl;
pub mod needs;
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
