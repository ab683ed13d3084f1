//! Where log lines go: syslog (the default under procd or systemd) or stderr.

use std::io::Write;
use std::time::Instant;

struct Stderr {
    start: Instant,
}

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = self.start.elapsed();
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        // One write per line so concurrent writers never interleave within a line.
        let line = format!(
            "{:>5}.{:03} {level:<5} {}\n",
            t.as_secs(),
            t.subsec_millis(),
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Install the logger. Falls back to stderr when no syslog socket is reachable
/// (containers, network namespaces without /dev/log).
pub fn init(to_stderr: bool, level: log::LevelFilter) {
    log::set_max_level(level);
    if !to_stderr {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "uplinkd".into(),
            pid: std::process::id(),
        };
        if let Ok(logger) = syslog::unix(formatter) {
            if log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger))).is_ok() {
                return;
            }
        }
    }
    let _ = log::set_boxed_logger(Box::new(Stderr {
        start: Instant::now(),
    }));
}

/// Change the level after a reload.
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}
