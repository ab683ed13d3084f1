//! Hooks: executables run on every WAN transition, as mwan3 users know them
//! (`/etc/mwan3.user`, hotplug scripts).
//!
//! On each transition the files in the hooks directory (default `/etc/uplinkd.d/`) that
//! are executable run one after another in name order, then the user hook (default
//! `/etc/uplinkd.user`) if it exists and is executable. Each gets the transition in its
//! environment (see [`env()`]) and nothing on its command line: no shell ever sees a
//! string from the configuration. A hook file must be owned by root (by the daemon's
//! user) and not writable by group or others, else it is skipped with a warning: whoever
//! can write it runs code as root.
//!
//! Each run is over when the hook and everything it started have exited. What is still
//! running after [`TIMEOUT`] is killed (SIGKILL), descendants included, even those that
//! left the hook's process group or session (`setsid cmd &`): every process of a run
//! carries the run's token in its environment (`UPLINKD_HOOK_RUN`), and the processes
//! that have it are found in `/proc`. (A subreaper, `PR_SET_CHILD_SUBREAPER`, would make
//! the daemon the parent of such orphans, and reaping them could steal the exit status
//! of the daemon's other children.)
//!
//! The hooks run on their own thread, fed by a queue: the event loop only enqueues, so a
//! slow or hanging hook never delays routing. Transitions are handled in the order they
//! happened, except that a WAN's transitions still waiting are merged into one (see
//! [`coalesce`]), so a hook that runs late is told the current state, not a stale one.

use std::collections::VecDeque;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// A metered WAN's quota transition, as the hooks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    pub interface: String,
    pub device: Option<String>,
    /// `quota_warning`, `quota_exceeded` or `quota_reset`.
    pub action: &'static str,
    /// Bytes counted this period (for a reset: before it), and the quota.
    pub used: u64,
    pub quota: u64,
    /// `period` or `manual` for a reset, else empty.
    pub reason: String,
}

/// The environment of a quota hook: `ACTION`, `INTERFACE`, `DEVICE`, `QUOTA_USED`,
/// `QUOTA_BYTES` (bytes), `REASON`.
pub fn quota_env(q: &Quota) -> Vec<(&'static str, String)> {
    vec![
        ("ACTION", q.action.to_string()),
        ("INTERFACE", q.interface.clone()),
        ("DEVICE", q.device.clone().unwrap_or_default()),
        ("QUOTA_USED", q.used.to_string()),
        ("QUOTA_BYTES", q.quota.to_string()),
        ("REASON", q.reason.clone()),
    ]
}

/// What the hook thread is asked to run.
enum Job {
    Transition(Transition),
    Quota(Quota),
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
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
        return false;
    }
    // SAFETY: geteuid() has no preconditions.
    let me = unsafe { libc::geteuid() };
    match trusted(m.uid(), m.permissions().mode(), me) {
        Ok(()) => true,
        Err(why) => {
            log::warn!("hook {}: skipped: {why}", p.display());
            false
        }
    }
}

/// Whether a hook file with owner `uid` and `mode` may run as `me`: owned by root or by
/// `me`, not writable by group or others.
pub fn trusted(uid: u32, mode: u32, me: u32) -> Result<(), String> {
    if uid != 0 && uid != me {
        return Err(format!("owned by uid {uid}, not by root"));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Adds `t` to the transitions waiting for their hooks. A WAN that already has one
/// waiting gets that one updated to the new state (its `previous` stays what the hooks
/// last heard); when the WAN is back where the hooks last saw it, nothing is left to
/// tell and the waiting transition is dropped.
pub fn coalesce(queue: &mut VecDeque<Transition>, t: Transition) {
    let Some(i) = queue.iter().position(|q| q.interface == t.interface) else {
        queue.push_back(t);
        return;
    };
    let previous = queue[i].previous;
    if t.state == previous {
        queue.remove(i);
        return;
    }
    queue[i] = Transition { previous, ..t };
}

/// The queue to the hook thread.
pub struct Hooks {
    tx: mpsc::SyncSender<Job>,
}

impl Hooks {
    /// Starts the hook thread.
    pub fn start(paths: Paths) -> std::io::Result<Hooks> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("hooks".into())
            .spawn(move || {
                // Quota events are not merged: each is told once, in order.
                let mut queue = VecDeque::new();
                let mut quotas = VecDeque::new();
                let take =
                    |job: Job, queue: &mut VecDeque<Transition>, quotas: &mut VecDeque<Quota>| {
                        match job {
                            Job::Transition(t) => coalesce(queue, t),
                            Job::Quota(q) => quotas.push_back(q),
                        }
                    };
                let mut run = 0u64;
                loop {
                    if queue.is_empty() && quotas.is_empty() {
                        match rx.recv() {
                            Ok(job) => take(job, &mut queue, &mut quotas),
                            Err(_) => return,
                        }
                    }
                    while let Ok(job) = rx.try_recv() {
                        take(job, &mut queue, &mut quotas);
                    }
                    let (env, label) = if let Some(t) = queue.pop_front() {
                        (env(&t), format!("{} {}", t.interface, action(t.state)))
                    } else if let Some(q) = quotas.pop_front() {
                        (quota_env(&q), format!("{} {}", q.interface, q.action))
                    } else {
                        continue;
                    };
                    for hook in list(&paths) {
                        run += 1;
                        run_one(&hook, &env, &label, paths.timeout, run);
                        // Transitions that came in meanwhile update what is waiting.
                        while let Ok(job) = rx.try_recv() {
                            take(job, &mut queue, &mut quotas);
                        }
                    }
                }
            })?;
        Ok(Hooks { tx })
    }

    /// Queues the hooks of one transition; never blocks.
    pub fn transition(&self, t: Transition) {
        if let Err(mpsc::TrySendError::Full(Job::Transition(t))) =
            self.tx.try_send(Job::Transition(t))
        {
            log::warn!(
                "hooks: queue full, skipping the hooks of {} {}",
                t.interface,
                t.state.as_str()
            );
        }
    }

    /// Queues the hooks of one quota event; never blocks.
    pub fn quota(&self, q: Quota) {
        if let Err(mpsc::TrySendError::Full(Job::Quota(q))) = self.tx.try_send(Job::Quota(q)) {
            log::warn!(
                "hooks: queue full, skipping the hooks of {} {}",
                q.interface,
                q.action
            );
        }
    }
}

/// The environment variable that marks every process of one hook run.
const RUN_VAR: &str = "UPLINKD_HOOK_RUN";

/// Runs one hook until it and its descendants have exited, or the timeout; logs
/// failures. `run` numbers the run within this process.
fn run_one(hook: &Path, env: &[(&'static str, String)], label: &str, timeout: Duration, run: u64) {
    let token = format!("{}.{run}", std::process::id());
    let mut cmd = Command::new(hook);
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .env(RUN_VAR, &token)
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
    let mut status = None;
    let finished = loop {
        if status.is_none() {
            match child.try_wait() {
                Ok(s) => status = s,
                Err(e) => {
                    log::warn!("hook {}: {e}", hook.display());
                    break false;
                }
            }
        }
        if status.is_some() && processes_of(&token).is_empty() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match status {
        Some(s) if s.success() => log::debug!("hook {}: ok", hook.display()),
        Some(s) => log::warn!("hook {} ({label}): {s}", hook.display()),
        None => {}
    }
    if finished {
        return;
    }
    log::warn!(
        "hook {} ({label}): {} after {} s, killed",
        hook.display(),
        match status {
            None => "still running",
            Some(_) => "left processes running",
        },
        timeout.as_secs()
    );
    if status.is_none() {
        // SAFETY: kill() has no memory-safety preconditions; the negative pid names the
        // hook's own process group, created at spawn.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
    }
    // Descendants that left the group; a few rounds for any forked meanwhile.
    for _ in 0..10 {
        let left = processes_of(&token);
        if left.is_empty() {
            break;
        }
        for pid in left {
            // SAFETY: as above; `pid` carries this run's token.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose environment carries `UPLINKD_HOOK_RUN=token`.
fn processes_of(token: &str) -> Vec<libc::pid_t> {
    let needle = format!("{RUN_VAR}={token}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
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

    #[test]
    fn quota_environment() {
        let q = Quota {
            interface: "lte".into(),
            device: Some("wwan0".into()),
            action: "quota_exceeded",
            used: 5_000_123,
            quota: 5_000_000,
            reason: String::new(),
        };
        let env = quota_env(&q);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ACTION"), Some("quota_exceeded"));
        assert_eq!(get("QUOTA_USED"), Some("5000123"));
        assert_eq!(get("QUOTA_BYTES"), Some("5000000"));
        assert_eq!(get("DEVICE"), Some("wwan0"));
    }

    fn tr(wan: &str, previous: State, state: State) -> Transition {
        Transition {
            interface: wan.into(),
            device: None,
            gateway: None,
            gateway6: None,
            state,
            previous,
            reason: format!("{} -> {}", previous.as_str(), state.as_str()),
        }
    }

    #[test]
    fn waiting_transitions_of_a_wan_are_merged() {
        let mut q = VecDeque::new();
        coalesce(&mut q, tr("wan1", State::Up, State::Down));
        coalesce(&mut q, tr("wan2", State::Up, State::Degraded));
        coalesce(&mut q, tr("wan1", State::Down, State::NoCarrier));
        assert_eq!(
            q.iter()
                .map(|t| (t.interface.as_str(), t.previous, t.state))
                .collect::<Vec<_>>(),
            [
                ("wan1", State::Up, State::NoCarrier),
                ("wan2", State::Up, State::Degraded)
            ]
        );
        assert_eq!(q[0].reason, "down -> no-carrier", "the newest reason");
        // Back where the hooks last saw it: nothing to tell.
        coalesce(&mut q, tr("wan2", State::Degraded, State::Up));
        assert_eq!(q.len(), 1);
        coalesce(&mut q, tr("wan2", State::Up, State::Down));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn only_root_owned_unwritable_hooks_are_trusted() {
        assert!(trusted(0, 0o755, 0).is_ok());
        assert!(trusted(1000, 0o700, 1000).is_ok(), "the daemon's own user");
        assert!(trusted(1000, 0o755, 0).unwrap_err().contains("uid 1000"));
        assert!(trusted(0, 0o775, 0).unwrap_err().contains("775"));
        assert!(trusted(0, 0o757, 0).is_err());
    }

    #[test]
    fn a_timed_out_hook_is_killed_with_its_daemons() {
        let dir = std::env::temp_dir().join(format!("uplinkd-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A duration no other process uses: 300.<pid> seconds.
        let marker = format!("300.{}", std::process::id());
        let hook = dir.join("daemonizes");
        // `setsid` puts the sleeper in a new session and process group: killing the
        // hook's group alone would miss it. Its argv names it for the check below.
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh
setsid sh -c 'exec -a {marker} sleep 300' &
sleep 300
"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = tr("wan1", State::Up, State::Down);
        let t0 = Instant::now();
        run_one(&hook, &env(&t), "wan1 down", Duration::from_millis(800), 1);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let alive = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == marker.as_bytes()))
            })
        };
        // The kill is asynchronous to the last read of /proc; allow the exit to land.
        let mut gone = false;
        for _ in 0..100 {
            if !alive() {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "the daemonized sleeper survived the timeout");
    }
}
