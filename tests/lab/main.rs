//! The network-namespace lab tests: one test binary, one module per scenario, all on the
//! lab of [`support`] (`cargo test --test lab netifd::` runs one scenario).
//!
//! The lab needs root and network namespaces. Where it cannot run (a normal user's
//! `cargo test`, a container without `CAP_SYS_ADMIN`), every test returns at its first
//! line and the binary says once, on stderr, why the lab was skipped. With
//! `UPLINKD_LAB_REQUIRED=1` (as `tests/run.sh` sets) that is a failure instead.
//!
//! Each test builds its own namespaces (`ul<pid>x<n>-*`), so tests run in parallel.

use std::io::Write;
use std::sync::OnceLock;

mod support;

mod adopt;
mod blackhole;
mod carrier;
mod config_errors;
mod control;
mod dryrun;
mod flap;
mod fw4;
mod gateway;
mod hooks;
mod http;
mod ipv6;
mod last_resort;
mod leak;
mod loss;
mod luci;
mod modes;
mod mwan3;
mod needs;
mod netifd;
mod page;
mod pinning;
mod probekinds;
mod quality;
mod quota;
mod reject;
mod reload;
mod rules;
mod selftest;
mod shutdown;
mod standby;
mod weights;

/// Why the lab cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (it creates network namespaces)".into());
    }
    // A new network namespace moves only the calling thread, so a throwaway thread
    // tries one.
    let tried = std::thread::spawn(|| {
        // SAFETY: unshare changes the namespaces of this thread only, which ends here.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
    .join();
    match tried {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("no network namespaces here (unshare: {e})")),
        Err(_) => Some("no network namespaces here (the probe panicked)".into()),
    }
}

/// True when the lab cannot run: the calling test returns at once. The first call
/// prints the one line that says why (straight to stderr, past the test harness's
/// capture). Panics instead when `UPLINKD_LAB_REQUIRED=1`.
pub fn skip() -> bool {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    let reason = REASON.get_or_init(|| {
        let reason = unavailable();
        if let Some(r) = &reason {
            let _ = writeln!(std::io::stderr(), "lab: skipped, {r}");
        }
        reason
    });
    match reason {
        None => false,
        Some(r) if std::env::var_os("UPLINKD_LAB_REQUIRED").is_some_and(|v| v == "1") => {
            panic!("the lab is required (UPLINKD_LAB_REQUIRED=1) but cannot run: {r}")
        }
        Some(_) => true,
    }
}
