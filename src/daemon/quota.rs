//! The shell of the metered WANs: the wall clock, the state file, and telling the world
//! about quota transitions (log, ubus, hooks). The counting is `quota`'s (pure).

use std::path::Path;

use super::Daemon;
use crate::quota::{self, Event, Wall};
use crate::time::Instant;
use crate::{bus, control, hooks};

/// The wall clock and the local UTC offset, as the C library sees them (`TZ`, else
/// `/etc/localtime`; see [`set_tz_from_openwrt`]).
pub(super) fn wall_now() -> Wall {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = unix as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i32
        }
    };
    Wall { unix, offset }
}

/// OpenWrt keeps the zone as a POSIX `TZ` string in `/etc/TZ` (written from
/// `system.@system[0].timezone` by `/etc/init.d/system`) and has no `/etc/localtime`:
/// without `TZ` in the environment, take it from there. Called once at start, before any
/// thread exists.
pub(super) fn set_tz_from_openwrt() {
    if std::env::var_os("TZ").is_some() {
        return;
    }
    if let Ok(tz) = std::fs::read_to_string("/etc/TZ") {
        let tz = tz.trim();
        if !tz.is_empty() && !tz.chars().any(char::is_control) {
            std::env::set_var("TZ", tz);
        }
    }
}

/// Read the state file; a missing file is a first start, a bad one is said once and
/// counting starts from zero.
pub(super) fn load(path: &Path) -> Option<quota::StateFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => match quota::StateFile::parse(&text) {
            Ok(f) => {
                log::info!(
                    "quota: restored the counts of {} WANs from {}",
                    f.wans.len(),
                    path.display()
                );
                Some(f)
            }
            Err(e) => {
                log::error!(
                    "quota: {} is not a quota state file ({e}): counting starts from zero",
                    path.display()
                );
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            log::error!(
                "quota: cannot read {} ({e}): counting starts from zero",
                path.display()
            );
            None
        }
    }
}

/// Write `text` to `path` atomically: a temporary file beside it, then a rename.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl Daemon {
    /// The counters of the metered WANs, their periods, and the state file when due.
    /// Called from `sample` once a second while a WAN is metered.
    pub(super) fn poll_quota(&mut self, now: Instant) {
        let outs = self.engine.poll_quota(wall_now());
        self.handle(outs);
        if self.engine.quota_save_due(now) {
            self.save_quota();
        }
    }

    /// Write the state file now (a tiny file: one line per metered WAN).
    pub(super) fn save_quota(&mut self) {
        if self.engine.quotas().is_empty() {
            return;
        }
        let path = self.engine.config().globals.quota_state.clone();
        let text = self.engine.save_quota().to_json();
        match write_atomic(Path::new(&path), &text) {
            Ok(()) => log::debug!("quota: saved {} bytes to {path}", text.len()),
            Err(e) => {
                // Said at each failed save: at most once per save interval or event.
                log::warn!("quota: cannot write {path}: {e}")
            }
        }
    }

    /// Log and announce a quota transition.
    pub(super) fn quota_event(&mut self, event: Event) {
        let wan = event.wan().to_string();
        let i = self.engine.wan_index(&wan);
        let q = i.and_then(|i| self.engine.config().interfaces[i].quota);
        let bytes = q.map_or(0, |q| q.bytes);
        let fmt = quota::fmt_bytes;
        let (used, reason) = match &event {
            Event::Warning { used, quota, .. } => {
                log::warn!(
                    "{wan}: quota warning: {} of {} used",
                    fmt(*used),
                    fmt(*quota)
                );
                (*used, String::new())
            }
            Event::Exceeded { used, quota, .. } => {
                log::warn!(
                    "{wan}: quota exceeded ({} of {}): last resort only until the period ends",
                    fmt(*used),
                    fmt(*quota)
                );
                (*used, String::new())
            }
            Event::Reset { used, reason, .. } => {
                let r = match reason {
                    quota::ResetReason::Period => "period",
                    quota::ResetReason::Manual => "manual",
                };
                log::info!("{wan}: quota reset ({r}), {} were used", fmt(*used));
                (*used, r.to_string())
            }
        };
        if let Some(bus) = &self.bus {
            bus.send(bus::Out::Quota(control::quota_event(&event, bytes)));
        }
        if let Some(hooks) = &self.hooks {
            hooks.quota(hooks::Quota {
                interface: wan.clone(),
                device: i.and_then(|i| self.engine.device(i)).map(str::to_string),
                action: event.action(),
                used,
                quota: bytes,
                reason,
            });
        }
        if matches!(event, Event::Reset { .. }) || matches!(event, Event::Exceeded { .. }) {
            // A changed level changes the plan: the next turn reconciles.
            self.save_quota();
        }
    }
}
