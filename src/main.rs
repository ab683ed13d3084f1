//! `uplinkd`: command line, logging, and the start of the event loop.

use std::path::PathBuf;
use std::process::ExitCode;

use uplinkd::cli;
use uplinkd::config::Config;
use uplinkd::daemon::{self, Options};
use uplinkd::sys::{self, logger, signals};

const DEFAULT_CONFIG: &str = "/etc/config/uplinkd";

const USAGE: &str = "\
usage: uplinkd [-c FILE] [--stderr] [--dry-run]   run the daemon in the foreground
       uplinkd check [-c FILE]                    validate a configuration
       uplinkd cleanup [-c FILE]                  remove what a daemon with this
                                                  configuration left in the kernel
                                                  (SIGTERM keeps it for the next start)
       uplinkd import-mwan3 [-c FILE] [-n FILE] [-o FILE] ...
                                                  convert an mwan3 configuration
                                                  (import-mwan3 --help: all options)
       uplinkd --version
{CLI}
  -c, --config FILE       configuration in UCI format (default /etc/config/uplinkd)
      --stderr            log to stderr instead of syslog
      --dry-run           print the ip commands for every change instead of applying them
      --control-socket P  control socket ('none': off; default /var/run/uplinkd.sock
                          on OpenWrt, /run/uplinkd/uplinkd.sock elsewhere)
      --ubus-socket P     ubusd's socket (default /var/run/ubus/ubus.sock; 'none': off)
      --hooks-dir DIR     transition hooks (default /etc/uplinkd.d)
      --user-hook FILE    user hook run after them (default /etc/uplinkd.user)
      --nft PATH          the nft binary (default: nft on PATH)
";

fn usage() -> String {
    USAGE.replace("{CLI}", cli::USAGE)
}

enum Command {
    Run,
    Check,
    Cleanup,
}

struct Args {
    command: Command,
    config: PathBuf,
    stderr: bool,
    dry_run: bool,
    /// Options of the running daemon: sockets and hooks.
    daemon: Options,
}

/// `none` turns a socket off.
fn socket_path(arg: &str, value: Option<std::ffi::OsString>) -> Result<Option<PathBuf>, String> {
    let v = value.ok_or_else(|| format!("{arg} needs a path"))?;
    Ok((v != "none").then(|| PathBuf::from(v)))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        command: Command::Run,
        config: PathBuf::from(DEFAULT_CONFIG),
        stderr: false,
        dry_run: false,
        daemon: Options::new(PathBuf::from(DEFAULT_CONFIG)),
    };
    let mut it = std::env::args_os().skip(1);
    let mut first = true;
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument is not valid UTF-8: {a:?}"))?;
        match arg.as_str() {
            "check" if first => args.command = Command::Check,
            "cleanup" if first => args.command = Command::Cleanup,
            name if first && cli::is_command(name) => {
                let rest: Vec<String> = it.map(|a| a.to_string_lossy().into_owned()).collect();
                std::process::exit(i32::from(cli::run(name, &rest)));
            }
            "--control-socket" => args.daemon.control_socket = socket_path(&arg, it.next())?,
            "--ubus-socket" => args.daemon.ubus_socket = socket_path(&arg, it.next())?,
            "--hooks-dir" => {
                args.daemon.hooks.dir = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--hooks-dir needs a path")?
            }
            "--user-hook" => {
                args.daemon.hooks.user = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--user-hook needs a path")?
            }
            "--nft" => {
                args.daemon.nft = it.next().map(PathBuf::from).ok_or("--nft needs a path")?
            }
            "-c" | "--config" => {
                args.config = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{arg} needs a file name"))?
            }
            "--stderr" => args.stderr = true,
            "--dry-run" => args.dry_run = true,
            "-V" | "--version" => {
                sys::print(&format!("uplinkd {}\n", env!("CARGO_PKG_VERSION")));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                sys::print(&usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
        first = false;
    }
    Ok(args)
}

fn main() -> ExitCode {
    // procd's ujail starts a service with no environment at all: without PATH, `nft` and
    // hooks given without a directory are looked up in /bin:/usr/bin only. Still one thread.
    if std::env::var_os("PATH").is_none() {
        std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "import-mwan3")
    {
        return import_mwan3(std::env::args_os().skip(2).collect());
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("uplinkd: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "import-mwan3")
    {
        return import_mwan3(std::env::args_os().skip(2).collect());
    }
    let loaded = Config::load(&args.config);
    match args.command {
        Command::Check => match loaded {
            Ok(cfg) => {
                for line in cfg.summary() {
                    sys::print(&format!("{line}\n"));
                }
                let ruleset = uplinkd::dataplane::check_ruleset(&cfg);
                let script = ruleset.script(&uplinkd::dataplane::Existing::default());
                match nft_check(&script) {
                    NftCheck::Accepted => {
                        sys::print("nft: the ruleset passes nft -c\n");
                        ExitCode::SUCCESS
                    }
                    NftCheck::Skipped(why) => {
                        sys::print(&format!("nft: ruleset not checked: {why}\n"));
                        ExitCode::SUCCESS
                    }
                    NftCheck::Rejected(err) => {
                        sys::print(&format!(
                            "{}: nft -c rejects the ruleset this config renders:\n{}\n",
                            args.config.display(),
                            err.trim_end()
                        ));
                        ExitCode::from(1)
                    }
                }
            }
            Err(errors) => {
                for e in &errors {
                    sys::print(&format!("{e}\n"));
                }
                sys::print(&format!(
                    "{}: {} errors\n",
                    args.config.display(),
                    errors.len()
                ));
                ExitCode::from(1)
            }
        },
        Command::Cleanup => {
            let cfg = match loaded {
                Ok(cfg) => cfg,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "uplinkd: cleanup needs the configuration's tables and priorities: {} errors in {}",
                        errors.len(),
                        args.config.display()
                    );
                    return ExitCode::from(1);
                }
            };
            logger::init(true, cfg.globals.log_level);
            let code = daemon::cleanup(
                &cfg,
                args.daemon.control_socket.as_deref(),
                args.daemon.nft.clone(),
            );
            ExitCode::from(code as u8)
        }
        Command::Run => {
            // Before any thread exists, so every thread inherits the mask.
            if let Err(e) = signals::block() {
                eprintln!("uplinkd: cannot block signals: {e}");
                return ExitCode::from(1);
            }
            let cfg = match loaded {
                Ok(cfg) => cfg,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "uplinkd: refusing to start: {} errors in {}",
                        errors.len(),
                        args.config.display()
                    );
                    return ExitCode::from(1);
                }
            };
            logger::init(args.stderr, cfg.globals.log_level);
            let opts = Options {
                config: args.config,
                backend: if args.dry_run {
                    uplinkd::sys::kernel::Mode::DryRun
                } else {
                    uplinkd::sys::kernel::Mode::Live
                },
                ..args.daemon
            };
            ExitCode::from(daemon::run(opts, cfg) as u8)
        }
    }
}

enum NftCheck {
    Accepted,
    Rejected(String),
    Skipped(String),
}

/// Runs `nft -c -f -` (parse and validate in the kernel, commit nothing) on `script`.
/// Skipped without `nft`, or without the privilege to ask the kernel.
fn nft_check(script: &str) -> NftCheck {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("nft")
        .args(["-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return NftCheck::Skipped("no nft command".into())
        }
        Err(e) => return NftCheck::Skipped(format!("cannot run nft: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return NftCheck::Skipped(format!("nft: {e}")),
    };
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        NftCheck::Accepted
    } else if err.contains("Operation not permitted") {
        NftCheck::Skipped("nft -c needs CAP_NET_ADMIN".into())
    } else {
        NftCheck::Rejected(err)
    }
}

const IMPORT_USAGE: &str = "\
usage: uplinkd import-mwan3 [-c FILE] [-n FILE] [-d FILE] [-o FILE] [-b FILE]
Converts an mwan3 configuration into an uplinkd one; warnings (what changed and why) go
to stderr, one line each.
  -c, --config FILE   mwan3 configuration (default /etc/config/mwan3)
  -n, --network FILE  netifd configuration, for the devices of interfaces (default
                      /etc/config/network; given explicitly it must exist and parse)
  -d, --dhcp FILE     dnsmasq configuration, for the ipset sections of ipset rules
                      (default /etc/config/dhcp; given explicitly it must exist and parse)
  -o, --output FILE   write the result there (default: stdout)
  -b, --dhcp-batch FILE
                      write the `uci batch` commands that point the dhcp ipset sections
                      at uplinkd's table there (nothing is written when there are none)
Exit status: 0 converted (perhaps with warnings), 1 the input cannot be read or has no
interface section (or an output cannot be written), 2 usage error.
";

/// Reads an optional input: `Ok(None)` when the default file is missing, an error when
/// an explicitly given one is missing or does not parse as UCI.
fn optional_input(path: &std::path::Path, explicit: bool) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let name = path.display().to_string();
            match uplinkd::config::uci::parse(&name, &text) {
                Ok(_) => Ok(Some(text)),
                Err(errors) if explicit => Err(errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("warning: {e}: ignored");
                    }
                    Ok(None)
                }
            }
        }
        Err(e) if explicit => Err(format!("cannot read {}: {e}", path.display())),
        Err(_) => Ok(None),
    }
}

/// `uplinkd import-mwan3`, see [`IMPORT_USAGE`].
fn import_mwan3(args: Vec<std::ffi::OsString>) -> ExitCode {
    let mut input = PathBuf::from("/etc/config/mwan3");
    let mut network = (PathBuf::from("/etc/config/network"), false);
    let mut dhcp = (PathBuf::from("/etc/config/dhcp"), false);
    let (mut output, mut batch): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if matches!(arg.to_str(), Some("-h" | "--help")) {
            print!("{IMPORT_USAGE}");
            return ExitCode::SUCCESS;
        }
        let slot = match arg.to_str() {
            Some("-c" | "--config") => &mut input,
            Some("-n" | "--network") => {
                network.1 = true;
                &mut network.0
            }
            Some("-d" | "--dhcp") => {
                dhcp.1 = true;
                &mut dhcp.0
            }
            Some("-o" | "--output") => output.insert(PathBuf::new()),
            Some("-b" | "--dhcp-batch") => batch.insert(PathBuf::new()),
            _ => {
                eprintln!("uplinkd: unknown argument {arg:?}\n{IMPORT_USAGE}");
                return ExitCode::from(2);
            }
        };
        match it.next() {
            Some(v) => *slot = PathBuf::from(v),
            None => {
                eprintln!("uplinkd: {arg:?} needs a file name\n{IMPORT_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let name = input.display().to_string();
    let text = match std::fs::read(&input) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("uplinkd: cannot read {name}: {e}");
            return ExitCode::from(1);
        }
    };
    let (network, dhcp) = match (
        optional_input(&network.0, network.1),
        optional_input(&dhcp.0, dhcp.1),
    ) {
        (Ok(n), Ok(d)) => (n, d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("uplinkd: {e}");
            return ExitCode::from(1);
        }
    };
    let inputs = uplinkd::config::mwan3::Inputs {
        network: network.as_deref(),
        dhcp: dhcp.as_deref(),
    };
    let import = match uplinkd::config::mwan3::convert(&name, &text, inputs) {
        Ok(i) => i,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    for w in &import.warnings {
        eprintln!("warning: {w}");
    }
    let out_name = output
        .as_ref()
        .map_or_else(|| "<stdout>".to_string(), |p| p.display().to_string());
    let written = match &output {
        Some(path) => std::fs::write(path, &import.text).map_err(|e| (path.display(), e)),
        // A closed stdout (`| head`) is not worth a crash.
        None => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(import.text.as_bytes());
            Ok(())
        }
    };
    if let Err((path, e)) = written {
        eprintln!("uplinkd: cannot write {path}: {e}");
        return ExitCode::from(1);
    }
    if let (Some(path), false) = (&batch, import.dhcp_batch.is_empty()) {
        let mut lines = import.dhcp_batch.join("\n");
        lines.push('\n');
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("uplinkd: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    // Every conversion must pass check; if one does not, that is a bug worth a loud exit.
    match Config::parse(&out_name, &import.text) {
        Ok(_) => ExitCode::SUCCESS,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("uplinkd: {out_name} needs fixing before use");
            ExitCode::from(1)
        }
    }
}
