//! Interactive demo: three ISPs, a router running uplinkd, a LAN client, all in throwaway
//! network namespaces. Shows every second which WANs carry the default policy and reads
//! commands from stdin:
//!
//! ```text
//! break <k> carrier|blackhole|loss <pct>    restore <k>    gw <k>    conn <n>    quit
//! ```
//!
//! Without a terminal on stdin it runs a short scripted tour and exits (a smoke test).
//! Needs root. `--uplinkd PATH` overrides the daemon binary (default: `uplinkd` in the
//! target directory this example was built into).

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab::{Break, Daemon, Lab};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() {
    std::process::exit(run());
}

fn daemon_path() -> Result<PathBuf, String> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--uplinkd") {
        return args
            .get(i + 1)
            .map(PathBuf::from)
            .ok_or_else(|| "--uplinkd needs a path".to_string());
    }
    // target/<profile>/examples/lab -> target/<profile>/uplinkd
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the target directory")?;
    let bin = dir.join("uplinkd");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it or pass --uplinkd PATH",
            bin.display()
        ))
    }
}

fn run() -> i32 {
    let bin = match daemon_path() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("lab: {e}");
            return 2;
        }
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    println!("building the lab (3 ISPs)...");
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(&bin, &lab::config(&[3, 1, 1], lab::FAST), &[]);
    println!(
        "uplinkd (pid {}) running in namespace {}",
        d.pid(),
        lab.ns("rtr")
    );

    // SAFETY: isatty only inspects the descriptor.
    let interactive = unsafe { libc::isatty(0) } == 1;
    let code = if interactive {
        interact(&lab, &mut d)
    } else {
        tour(&lab, &mut d)
    };
    let status = d.stop();
    println!("uplinkd exited: {status}");
    let left = lab.uplinkd_objects();
    if !left.is_empty() {
        println!("left behind:\n{left}");
    }
    code
}

fn interact(lab: &Lab, d: &mut Daemon) -> i32 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    println!(
        "commands: break <k> carrier|blackhole|loss <pct> | restore <k> | gw <k> | conn <n> | quit"
    );
    let mut next_status = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return 0;
        }
        if Instant::now() >= next_status {
            show(lab, d);
            next_status = Instant::now() + Duration::from_secs(1);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if !command(lab, line.trim()) {
                    return 0;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return 0,
        }
    }
}

/// Apply one command; false means quit.
fn command(lab: &Lab, line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let isp = |i: usize| -> Option<usize> {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .filter(|k| (1..=lab.n_isps()).contains(k))
    };
    match (words.first().copied(), isp(1)) {
        (None, _) => {}
        (Some("quit" | "exit" | "q"), _) => return false,
        (Some("break"), Some(k)) => {
            let how = match (
                words.get(2).copied(),
                words.get(3).and_then(|p| p.parse::<u8>().ok()),
            ) {
                (Some("carrier"), _) => Some(Break::Carrier),
                (Some("blackhole"), _) => Some(Break::Blackhole),
                (Some("loss"), Some(p)) if p <= 100 => Some(Break::Loss(p)),
                _ => None,
            };
            match how {
                Some(how) => {
                    lab.break_isp(k, how);
                    println!(">> ISP{k}: {how:?}");
                }
                None => println!(">> usage: break <k> carrier|blackhole|loss <pct>"),
            }
        }
        (Some("restore"), Some(k)) => {
            lab.restore(k);
            println!(">> ISP{k} restored");
        }
        (Some("gw"), Some(k)) => println!(">> ISP{k} gateway is now {}", lab.change_gateway(k)),
        (Some("conn"), _) => {
            let n = words
                .get(1)
                .and_then(|w| w.parse().ok())
                .unwrap_or(100)
                .min(2000);
            conn(lab, n);
        }
        _ => println!(">> unknown command {line:?}"),
    }
    true
}

fn conn(lab: &Lab, n: usize) {
    let t = lab.connect_many(n);
    let shares: Vec<String> = (1..=lab.n_isps())
        .map(|k| format!("ISP{k} {:>3} ({:.0}%)", t.count(k), t.share(k)))
        .collect();
    println!(
        ">> {n} connections: {}, failed {}",
        shares.join(", "),
        t.failed
    );
}

fn show(lab: &Lab, d: &Daemon) {
    let group = lab.nexthop_group(lab::POLICY_ID).unwrap_or_default();
    let wans: Vec<String> = (1..=lab.n_isps())
        .map(
            |k| match group.iter().find(|(id, _)| *id == lab::wan_id(k)) {
                Some((_, w)) => format!("wan{k} IN w={w}"),
                None => format!("wan{k} out"),
            },
        )
        .collect();
    let policy = match lab.default_route_type(lab::POLICY_ID).as_deref() {
        Some("unicast") => "default nhid 1199".to_string(),
        Some(t) => format!("{t} default"),
        None => "no route".to_string(),
    };
    println!("[{}] table 1199: {policy}", wans.join(" | "));
    let log = d.log();
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    for l in tail.iter().rev() {
        println!("    {l}");
    }
}

/// Watch for `secs` seconds, showing state every second; false if interrupted.
fn watch(lab: &Lab, d: &Daemon, secs: u64) -> bool {
    for _ in 0..secs {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return false;
        }
        show(lab, d);
        std::thread::sleep(Duration::from_secs(1));
    }
    true
}

fn tour(lab: &Lab, d: &mut Daemon) -> i32 {
    println!("stdin is not a terminal: running the scripted tour");
    let steps: [(&str, u64); 7] = [
        ("", 6),
        ("conn 100", 1),
        ("break 2 blackhole", 6),
        ("conn 50", 1),
        ("restore 2", 6),
        ("break 3 carrier", 3),
        ("restore 3", 6),
    ];
    for (cmd, secs) in steps {
        if !cmd.is_empty() {
            println!("$ {cmd}");
            command(lab, cmd);
        }
        if !watch(lab, d, secs) {
            break;
        }
    }
    conn(lab, 100);
    if d.is_running() {
        0
    } else {
        println!("uplinkd exited early; log:\n{}", d.log());
        1
    }
}
