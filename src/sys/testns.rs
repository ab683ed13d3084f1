//! Throwaway network namespaces for tests that need a real kernel.
//!
//! [`Netns::new`] creates `ul-t<pid>-<n>` with `ip netns add`; [`Netns::run`] runs a
//! closure on a fresh thread that has `setns()`ed into it, so every socket the closure
//! opens (and every process it spawns) lives there. Dropping the guard deletes the
//! namespace, also when the test panicked.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("ul-t{}-{}", std::process::id(), n);
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sh -c <script>` inside the namespace; stdout, panics on failure.
    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec");
        assert!(
            out.status.success(),
            "{script} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Loads an nft ruleset into the namespace (`nft -f -`).
    pub fn nft(&self, ruleset: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .expect("write nft ruleset");
        }
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `ip -n <ns> <args>` and panics with its stderr if it fails.
    pub fn ip(&self, args: &str) -> String {
        let out = self.try_ip(args);
        match out {
            Ok(s) => s,
            Err(e) => panic!("ip -n {} {args}: {e}", self.name),
        }
    }

    /// Runs `ip -n <ns> <args>`: stdout, or stderr on failure.
    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args.split_whitespace())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `f` on a new thread inside the namespace and returns its result: sockets it
    /// opens live there, whatever thread uses them afterwards. A panic in `f` is re-raised
    /// here (after the thread is gone, so Drop still cleans up).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        start_reactor_here();
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let file = File::open(&path).expect("open netns handle");
                // SAFETY: a valid namespace fd; only this thread changes namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// smol's reactor thread is spawned on first use and inherits the network namespace of
/// the thread that spawned it; start it from the test's own namespace so it never pins a
/// throwaway namespace after that is deleted.
fn start_reactor_here() {
    static START: Once = Once::new();
    START.call_once(|| {
        smol::block_on(smol::Timer::after(Duration::from_millis(1)));
    });
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
