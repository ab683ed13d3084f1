//! Where log lines go: syslog (the default under procd or systemd) or stderr.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::Instant;

/// The local syslog socket (OpenWrt's logd, rsyslog, journald).
const SYSLOG_SOCKET: &str = "/dev/log";
/// LOG_DAEMON.
const FACILITY: u8 = 3;

/// RFC 3164 messages without timestamp and hostname, as `<pri>tag[pid]: text`: the
/// receiving daemon adds both. Written by hand rather than with a syslog crate, whose
/// timestamp formatting cost about a tenth of the router binary.
struct Syslog {
    socket: Mutex<UnixDatagram>,
    pid: u32,
}

impl Syslog {
    fn connect() -> std::io::Result<UnixDatagram> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(SYSLOG_SOCKET)?;
        Ok(socket)
    }
}

impl log::Log for Syslog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let severity = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let line = format!(
            "<{}>uplinkd[{}]: {}",
            FACILITY * 8 + severity,
            self.pid,
            record.args()
        );
        let Ok(mut socket) = self.socket.lock() else {
            return;
        };
        // After a restart of the syslog daemon the old socket is dead: reconnect once.
        if socket.send(line.as_bytes()).is_err() {
            if let Ok(fresh) = Syslog::connect() {
                let _ = fresh.send(line.as_bytes());
                *socket = fresh;
            }
        }
    }

    fn flush(&self) {}
}

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
        if let Ok(socket) = Syslog::connect() {
            let logger = Syslog {
                socket: Mutex::new(socket),
                pid: std::process::id(),
            };
            if log::set_boxed_logger(Box::new(logger)).is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    #[test]
    fn syslog_lines() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let logger = Syslog {
            socket: Mutex::new(ours),
            pid: 42,
        };
        let mut buf = [0u8; 256];
        for (level, pri) in [(log::Level::Error, 27), (log::Level::Info, 30)] {
            logger.log(
                &log::Record::builder()
                    .level(level)
                    .args(format_args!("wan down"))
                    .build(),
            );
            let n = theirs.recv(&mut buf).unwrap();
            let expected = format!("<{pri}>uplinkd[42]: wan down");
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), expected);
        }
    }
}
