//! The control commands of the command line: `uplinkd status|reload|probe|enable|
//! disable|set-weight|ha|quota`, talking to the running daemon over the control socket.
//!
//! Exit codes, for scripts: 0 done, 1 the daemon refused (its message on stderr),
//! 2 usage error, 3 the daemon is not reachable.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::socket::{self, ClientError};
use crate::status;

pub const USAGE: &str = "\
       uplinkd status [--json] [WAN]              state of every WAN (or one)
       uplinkd reload                             re-read the configuration
       uplinkd probe [WAN]                        probe now
       uplinkd enable|disable WAN                 take a WAN in or out of service
       uplinkd set-weight WAN N                   run-time weight (lost on reload)
       uplinkd ha master|backup|fault             HA role, from keepalived's notify
       uplinkd quota reset WAN                    a metered WAN's count back to zero
         (all with --control-socket PATH, default /var/run/uplinkd.sock on
          OpenWrt, /run/uplinkd/uplinkd.sock elsewhere)
";

pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

/// How long the command line waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `word` names a control command.
pub fn is_command(word: &str) -> bool {
    matches!(
        word,
        "status" | "reload" | "probe" | "enable" | "disable" | "set-weight" | "ha" | "quota"
    )
}

struct Parsed {
    method: &'static str,
    args: Value,
    json: bool,
    socket: PathBuf,
}

fn parse(command: &str, rest: &[String]) -> Result<Parsed, String> {
    let mut json = false;
    let mut socket = socket::default_path();
    let mut words = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" if command == "status" => json = true,
            "--control-socket" => {
                socket = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--control-socket needs a path")?
            }
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s => words.push(s.to_string()),
        }
    }
    let (method, args) = match (command, &words[..]) {
        ("status", []) => ("status", json!({})),
        ("status", [wan]) => ("status", json!({"interface": wan})),
        ("reload", []) => ("reload", json!({})),
        ("probe", []) => ("probe", json!({})),
        ("probe", [wan]) => ("probe", json!({"interface": wan})),
        ("enable", [wan]) => ("enable", json!({"interface": wan})),
        ("disable", [wan]) => ("disable", json!({"interface": wan})),
        ("ha", [role]) => ("ha", json!({"role": role})),
        ("quota", [reset, wan]) if reset == "reset" => ("quota_reset", json!({"interface": wan})),
        ("set-weight", [wan, n]) => {
            let n: u64 = n
                .parse()
                .map_err(|_| format!("weight must be a number, not '{n}'"))?;
            ("set_weight", json!({"interface": wan, "weight": n}))
        }
        _ => return Err(format!("wrong number of arguments for '{command}'")),
    };
    Ok(Parsed {
        method,
        args,
        json,
        socket,
    })
}

/// Runs control command `command` with the words after it; returns the exit code.
pub fn run(command: &str, rest: &[String]) -> u8 {
    let p = match parse(command, rest) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("uplinkd {command}: {e}\nusage:\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    match socket::request(&p.socket, p.method, p.args, TIMEOUT) {
        Ok(data) => {
            if p.method == "status" {
                if p.json {
                    let json = serde_json::to_string_pretty(&data).unwrap_or_default();
                    crate::sys::print(&format!("{json}\n"));
                } else {
                    crate::sys::print(&status::table(&data));
                }
            }
            0
        }
        Err(ClientError::Unreachable(e)) => {
            eprintln!(
                "uplinkd {command}: no daemon answers on {}: {e}",
                p.socket.display()
            );
            EXIT_UNREACHABLE
        }
        Err(e) => {
            eprintln!("uplinkd {command}: {e}");
            EXIT_REFUSED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn commands_map_to_methods() {
        let p = parse("set-weight", &words("wan2 5 --control-socket /x")).unwrap();
        assert_eq!(p.method, "set_weight");
        assert_eq!(p.args, json!({"interface": "wan2", "weight": 5}));
        assert_eq!(p.socket, PathBuf::from("/x"));
        let p = parse("status", &words("--json wan1")).unwrap();
        assert!(p.json);
        assert_eq!(p.args, json!({"interface": "wan1"}));
        assert!(parse("disable", &[]).is_err());
        assert!(parse("reload", &words("--json")).is_err());
        let p = parse("ha", &words("master")).unwrap();
        assert_eq!((p.method, p.args), ("ha", json!({"role": "master"})));
        assert!(parse("ha", &words("")).is_err());
        assert!(parse("set-weight", &words("wan1 x")).is_err());
        assert!(parse("probe", &words("a b")).is_err());
        let p = parse("quota", &words("reset lte")).unwrap();
        assert_eq!(
            (p.method, p.args),
            ("quota_reset", json!({"interface": "lte"}))
        );
        assert!(parse("quota", &words("lte")).is_err());
        assert!(parse("quota", &words("clear lte")).is_err());
    }
}
