//! Where log lines go: syslog (the default under procd or systemd) or stderr.
//!
//! The syslog writer is the classic local one (what libc's `syslog()` does): one RFC 3164
//! line per datagram, `<PRI>Mmm dd hh:mm:ss uplinkd[PID]: message`, to `/dev/log`.
//! OpenWrt's logd, busybox syslogd, rsyslog and journald all read that socket. The
//! timestamp is UTC: a static binary has no time zone database, and the receiving daemon
//! stamps the line with its own clock anyway.

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Stderr {
    start: Instant,
}

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let t = self.start.elapsed();
        // One write per line so concurrent writers never interleave within a line.
        let line = format!(
            "{:>5}.{:03} {:<5} {}\n",
            t.as_secs(),
            t.subsec_millis(),
            level_name(record.level()),
            record.args()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// The sockets a local syslog daemon listens on, in the order libc and most tools try them.
const SOCKETS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];

/// `LOG_DAEMON` (RFC 3164 §4.1.1: facility 3).
const FACILITY_DAEMON: u8 = 3 << 3;

enum Sink {
    Datagram(UnixDatagram),
    /// Some syslog daemons (older rsyslog setups) listen on a stream socket: lines are
    /// then separated by a newline.
    Stream(UnixStream),
}

fn connect() -> Option<Sink> {
    for path in SOCKETS {
        let Ok(sock) = UnixDatagram::unbound() else {
            return None;
        };
        match sock.connect(path) {
            Ok(()) => return Some(Sink::Datagram(sock)),
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                if let Ok(s) = UnixStream::connect(path) {
                    return Some(Sink::Stream(s));
                }
            }
            Err(_) => {}
        }
    }
    None
}

struct Syslog {
    pid: u32,
    /// `None` after a failed write: the next line reconnects (the syslog daemon was
    /// restarted, which leaves our datagram socket connected to nothing).
    sink: Mutex<Option<Sink>>,
}

impl log::Log for Syslog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = rfc3164(record.level(), secs, self.pid, record.args());
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        for _ in 0..2 {
            if sink.is_none() {
                *sink = connect();
            }
            let sent = match sink.as_mut() {
                Some(Sink::Datagram(s)) => s.send(line.as_bytes()).is_ok(),
                Some(Sink::Stream(s)) => s.write_all(format!("{line}\n").as_bytes()).is_ok(),
                None => return,
            };
            if sent {
                return;
            }
            *sink = None;
        }
    }

    fn flush(&self) {}
}

/// One syslog line: `<PRI>Mmm dd hh:mm:ss uplinkd[PID]: message` (RFC 3164 §4.1, the
/// form libc's `syslog()` writes), `secs` since the Unix epoch, UTC.
fn rfc3164(level: log::Level, secs: u64, pid: u32, msg: &std::fmt::Arguments) -> String {
    // RFC 5424 §6.2.1 severities: err 3, warning 4, info 6, debug 7.
    let severity = match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    let (month, day) = month_day(secs / 86_400);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(month as usize).copied().unwrap_or("Jan");
    let t = secs % 86_400;
    format!(
        "<{}>{month} {day:02} {:02}:{:02}:{:02} uplinkd[{pid}]: {msg}",
        FACILITY_DAEMON | severity,
        t / 3600,
        t / 60 % 60,
        t % 60,
    )
}

/// Month (0-11) and day of the month of a day counted from 1970-01-01 (the civil-date
/// algorithm of Howard Hinnant's `civil_from_days`, for days after the epoch).
fn month_day(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 2 } else { mp - 10 };
    (month, day)
}

/// Install the logger. Falls back to stderr when no syslog socket is reachable
/// (containers, network namespaces without /dev/log).
pub fn init(to_stderr: bool, level: log::LevelFilter) {
    log::set_max_level(level);
    if !to_stderr {
        if let Some(sink) = connect() {
            let syslog = Syslog {
                pid: std::process::id(),
                sink: Mutex::new(Some(sink)),
            };
            if log::set_boxed_logger(Box::new(syslog)).is_ok() {
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

    #[test]
    fn lines_are_rfc3164() {
        // 2026-11-30 07:05:09 UTC = 1796022309 (date -u -d @1796022309).
        let line = rfc3164(log::Level::Info, 1_796_022_309, 42, &format_args!("wan up"));
        assert_eq!(line, "<30>Nov 30 07:05:09 uplinkd[42]: wan up");
        let line = rfc3164(log::Level::Error, 0, 1, &format_args!("x"));
        assert_eq!(line, "<27>Jan 01 00:00:00 uplinkd[1]: x");
        // A leap day, and the last second of a year.
        assert_eq!(month_day(19_782), (1, 29)); // 2024-02-29
        let line = rfc3164(log::Level::Warn, 1_735_689_599, 7, &format_args!("y"));
        assert_eq!(line, "<28>Dec 31 23:59:59 uplinkd[7]: y");
    }

    #[test]
    fn lines_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("uplinkd-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let log = Syslog {
            pid: 9,
            sink: Mutex::new(Some(Sink::Datagram(client))),
        };
        log::Log::log(
            &log,
            &log::Record::builder()
                .args(format_args!("hello"))
                .level(log::Level::Info)
                .build(),
        );
        let mut buf = [0u8; 128];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<30>") && got.ends_with(" uplinkd[9]: hello"),
            "{got}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
