//! Hooks: executables run on every WAN transition, as mwan3 users know them
//! (`/etc/mwan3.user`, hotplug scripts).
//!
//! On each transition the files in the hooks directory (default `/etc/uplinkd.d/`) that
//! are executable run one after another in name order, then the user hook (default
//! `/etc/uplinkd.user`) if it exists and is executable. Each gets the transition in its
//! environment (see [`env`]) and nothing on its command line: no shell ever sees a
//! string from the configuration. Each runs in its own process group and is killed with
//! it (SIGKILL) after [`TIMEOUT`].
//!
//! The hooks run on their own thread, fed by a queue: the event loop only enqueues, so a
//! slow or hanging hook never delays routing. Transitions are handled in the order they
//! happened; a hook that hangs delays the hooks of later transitions by at most the
//! timeout.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::health::State;

/// How long one hook may run before it (and its process group) is killed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Transitions waiting for their hooks; more are dropped (and logged).
const QUEUE: usize = 256;

pub const DEFAULT_DIR: &str = "/etc/uplinkd.d";
pub const DEFAULT_USER: &str = "/etc/uplinkd.user";

/// Where the hooks are.
#[derive(Clone, Debug)]
pub struct Paths {
    pub dir: PathBuf,
    pub user: PathBuf,
    pub timeout: Duration,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            dir: PathBuf::from(DEFAULT_DIR),
            user: PathBuf::from(DEFAULT_USER),
            timeout: TIMEOUT,
        }
    }
}

/// One transition, as the hooks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub interface: String,
    pub device: Option<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
    pub state: State,
    pub previous: State,
    pub reason: String,
}

/// The `ACTION` for a transition into `state`:
///
/// | state | ACTION |
/// |---|---|
/// | up | `connected` |
/// | degraded | `degraded` |
/// | down, no-carrier, held | `disconnected` |
/// | disabled | `disabled` |
pub fn action(state: State) -> &'static str {
    match state {
        State::Up => "connected",
        State::Degraded => "degraded",
        State::Down | State::NoCarrier | State::Held { .. } => "disconnected",
        State::Disabled => "disabled",
    }
}

/// The environment of a hook: `ACTION`, `INTERFACE`, `DEVICE`, `GATEWAY`, `GATEWAY6` (address, or
/// empty when unknown or point-to-point), `STATE`, `PREVIOUS`, `REASON`.
pub fn env(t: &Transition) -> Vec<(&'static str, String)> {
    vec![
        ("ACTION", action(t.state).to_string()),
        ("INTERFACE", t.interface.clone()),
        ("DEVICE", t.device.clone().unwrap_or_default()),
        ("GATEWAY", t.gateway.clone().unwrap_or_default()),
        ("GATEWAY6", t.gateway6.clone().unwrap_or_default()),
        ("STATE", t.state.as_str().to_string()),
        ("PREVIOUS", t.previous.as_str().to_string()),
        ("REASON", t.reason.clone()),
    ]
}

/// The hooks to run, in order: executable files of `dir` by name (dot files skipped),
/// then `user` if it is an executable file.
pub fn list(paths: &Paths) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&paths.dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| executable(p))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    if executable(&paths.user) {
        out.push(paths.user.clone());
    }
    out
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The queue to the hook thread.
pub struct Hooks {
    tx: mpsc::SyncSender<Transition>,
}

impl Hooks {
    /// Starts the hook thread.
    pub fn start(paths: Paths) -> std::io::Result<Hooks> {
        let (tx, rx) = mpsc::sync_channel::<Transition>(QUEUE);
        std::thread::Builder::new()
            .name("hooks".into())
            .spawn(move || {
                while let Ok(t) = rx.recv() {
                    for hook in list(&paths) {
                        run_one(&hook, &t, paths.timeout);
                    }
                }
            })?;
        Ok(Hooks { tx })
    }

    /// Queues the hooks of one transition; never blocks.
    pub fn transition(&self, t: Transition) {
        if let Err(mpsc::TrySendError::Full(t)) = self.tx.try_send(t) {
            log::warn!(
                "hooks: queue full, skipping the hooks of {} {}",
                t.interface,
                t.state.as_str()
            );
        }
    }
}

/// Runs one hook to completion or timeout; logs failures.
fn run_one(hook: &Path, t: &Transition, timeout: Duration) {
    let mut cmd = Command::new(hook);
    cmd.envs(env(t))
        .stdin(Stdio::null())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("hook {}: cannot run: {e}", hook.display());
            return;
        }
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                log::warn!("hook {}: {e}", hook.display());
                break None;
            }
        }
    };
    match status {
        Some(s) if s.success() => log::debug!("hook {}: ok", hook.display()),
        Some(s) => log::warn!(
            "hook {} ({} {}): {s}",
            hook.display(),
            t.interface,
            action(t.state)
        ),
        None => {
            log::warn!(
                "hook {} ({} {}): still running after {} s, killed",
                hook.display(),
                t.interface,
                action(t.state),
                timeout.as_secs()
            );
            // SAFETY: kill() has no memory-safety preconditions; the negative pid names
            // the hook's own process group, created at spawn.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_environment() {
        let t = Transition {
            interface: "wan2".into(),
            device: Some("eth2".into()),
            gateway: None,
            gateway6: None,
            state: State::Held {
                until: crate::time::Instant::ZERO,
            },
            previous: State::Up,
            reason: "flapping, penalty 2100".into(),
        };
        let env = env(&t);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ACTION"), Some("disconnected"));
        assert_eq!(get("STATE"), Some("held"));
        assert_eq!(get("PREVIOUS"), Some("up"));
        assert_eq!(get("DEVICE"), Some("eth2"));
        assert_eq!(get("GATEWAY"), Some(""));
        assert_eq!(get("REASON"), Some("flapping, penalty 2100"));
        assert_eq!(action(State::Up), "connected");
        assert_eq!(action(State::Degraded), "degraded");
        assert_eq!(action(State::NoCarrier), "disconnected");
        assert_eq!(action(State::Disabled), "disabled");
    }
}
