//! A stop (SIGINT) removes everything uplinkd owns and nothing else.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn stop_leaves_the_kernel_as_it_was() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let before = lab.foreign_objects();
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    assert!(!lab.uplinkd_objects().is_empty());

    let status = d.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
    let after = lab.foreign_objects();
    assert_eq!(
        before, after,
        "foreign objects changed:\nbefore:\n{before}\nafter:\n{after}"
    );
}

/// SIGTERM, a restart's first half, leaves every object (the next start adopts them);
/// `uplinkd cleanup` refuses while a daemon runs, and run the moment SIGTERM is sent
/// (as procd's stop does) waits for the daemon to exit and then removes them all.
#[test]
fn sigterm_keeps_everything_and_cleanup_removes_it() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let before = lab.foreign_objects();
    let config = lab::config(&[1, 1], lab::FAST);
    let mut d = lab.start_daemon(bin(), &config, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let ours = lab.uplinkd_objects();
    assert!(!ours.is_empty());

    let status = d.terminate();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    assert_eq!(lab.uplinkd_objects(), ours, "SIGTERM changed the objects");
    let table = lab.exec("rtr", &["nft", "list", "table", "inet", "uplinkd"]);
    assert!(table.status.success(), "SIGTERM removed the nft table");

    // The retained group is there from the start, so wait for the new daemon to say it
    // adopted it rather than for the group.
    let mut d2 = lab.start_daemon(bin(), &config, &[]);
    let adopted = lab::wait_until(STARTUP, Duration::from_millis(50), || {
        d2.log().contains("adopting")
    });
    assert!(adopted.is_ok(), "no adoption; log:\n{}", d2.log());
    lab.wait_group(&mut d2, &[1, 2], STARTUP);
    // While the daemon runs (and would put everything back), cleanup waits its 10 s and
    // refuses.
    let conf = d2.config_path().to_str().unwrap_or("").to_string();
    let out = lab.control(bin(), &["cleanup", "-c", &conf]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("still running"), "{err}");
    assert_eq!(
        lab.uplinkd_objects(),
        ours,
        "a refused cleanup changed the objects"
    );
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(d2.pid() as libc::pid_t, libc::SIGTERM) };
    let out = lab.control(bin(), &["cleanup", "-c", &conf]);
    assert!(
        out.status.success(),
        "cleanup: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d2.log()
    );
    assert!(d2.wait_exit(Duration::from_secs(10)).is_some());
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
    let table = lab.exec("rtr", &["nft", "list", "table", "inet", "uplinkd"]);
    assert!(!table.status.success(), "the nft table is left");
    assert_eq!(lab.foreign_objects(), before, "foreign objects changed");
}

/// Sum of the probes sent to every target of every WAN, from `status --json`.
fn probes_sent(status: &serde_json::Value) -> u64 {
    status["interfaces"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|w| w["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["sent"].as_u64().unwrap_or(0))
        .sum()
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn a_hanging_nft_blocks_nothing() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    // An `nft` that never answers (and starts a child, as a wrapper script might).
    let marker = lab.write_file("nft-hangs", "");
    let fake = lab.write_file(
        "nft",
        &format!("#!/bin/sh\ntail -f /dev/null {}\n", marker.display()),
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod fake nft");
    let fake_s = fake.to_str().expect("utf-8 path");
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1], lab::FAST), &["--nft", fake_s]);
    // Routing does not wait for nft.
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    // The control socket answers and probing goes on while nft hangs.
    let first = lab.status(bin());
    let mut later = first.clone();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        later = lab.status(bin());
        if probes_sent(&later) > probes_sent(&first) + 4 {
            break;
        }
    }
    assert!(
        probes_sent(&later) > probes_sent(&first) + 4,
        "probing stalled: {first}\n{later}\nlog:\n{}",
        d.log()
    );
    for wan in ["wan1", "wan2"] {
        assert_eq!(later["interfaces"][wan]["state"], "up", "{later}");
    }
    assert!(
        !processes_with(marker.to_str().unwrap_or("-")).is_empty(),
        "the fake nft never ran; log:\n{}",
        d.log()
    );
    // A stop while nft hangs: the daemon exits (it does not wait for nft), removes its
    // routes, and leaves no nft behind.
    let status = d.stop();
    let log = d.log();
    assert!(
        status.code().is_some(),
        "killed instead of exiting: {status}; log:\n{log}"
    );
    assert!(log.contains("stopped after"), "log:\n{log}");
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
    let mut procs = processes_with(marker.to_str().unwrap_or("-"));
    for _ in 0..50 {
        if procs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        procs = processes_with(marker.to_str().unwrap_or("-"));
    }
    assert!(procs.is_empty(), "nft left running: {procs:?}");
}

#[test]
fn a_failing_nft_is_retried_with_backoff_not_in_a_loop() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let calls = lab.write_file("nft-calls", "");
    let fake = lab.write_file(
        "nft",
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\necho 'Error: Could not process rule: Operation not supported' >&2\nexit 1\n",
            calls.display()
        ),
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod fake nft");
    let fake_s = fake.to_str().expect("utf-8 path");
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1], lab::FAST), &["--nft", fake_s]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let runs = std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .count();
    let elapsed = start.elapsed();
    // Failure is state: status says what failed and when the next try is.
    let report = lab.status(bin());
    let nft = &report["sync"]["nft"];
    assert_eq!(nft["result"], "failed", "{report}");
    assert!(
        nft["error"]
            .as_str()
            .is_some_and(|e| e.contains("Operation not supported")),
        "{report}"
    );
    assert!(nft["retry_in_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["sync"]["routes"]["result"], "ok", "{report}");
    let text = lab.control(bin(), &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nft: failed"), "{text}");
    let status = d.stop();
    let log = d.log();
    assert!(status.success(), "exit {status}; log:\n{log}");
    // Each plan change tries at once, a failure waits 0.5 s, 1 s, 2 s ...: a handful
    // of runs, not one per loop turn (a slow machine only makes fewer).
    assert!(runs >= 1, "nft never ran; log:\n{log}");
    assert!(
        runs <= 16,
        "{runs} nft runs in {elapsed:?}: a retry loop; log:\n{log}"
    );
    let warnings = log.matches("nft: loading table").count();
    assert!(
        warnings <= 3,
        "{warnings} warnings for one error; log:\n{log}"
    );
}

/// The elements of a set in `inet uplinkd` in the router, or None if it is missing.
fn set_elements(lab: &Lab, set: &str) -> Option<String> {
    let out = lab.exec("rtr", &["nft", "list", "set", "inet", "uplinkd", set]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The chain lines of `inet uplinkd` in the router (none if the table is missing).
fn chains(lab: &Lab) -> Vec<String> {
    let out = lab.exec("rtr", &["nft", "-t", "list", "table", "inet", "uplinkd"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("chain "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_filled_user_set_survives_stop_and_restart() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let cfg = lab::config(&[1, 1], lab::FAST);
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    // What dnsmasq's `nftset=/example.com/4#inet#uplinkd#dns4` would leave there.
    lab.nft(
        "rtr",
        "add set inet uplinkd dns4 { type ipv4_addr; }\nadd element inet uplinkd dns4 { 198.51.100.7, 203.0.113.9 }\n",
    );
    let has_elements = |what: &str| {
        let e = set_elements(&lab, "dns4").unwrap_or_else(|| panic!("{what}: set dns4 is gone"));
        assert!(
            e.contains("198.51.100.7") && e.contains("203.0.113.9"),
            "{what}: elements lost:\n{e}"
        );
    };
    let status = d.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    has_elements("after a stop");
    // Only the set stays: no chain of ours filters anything while uplinkd is stopped.
    let left = chains(&lab);
    assert!(left.is_empty(), "chains left: {left:?}");
    assert!(lab.uplinkd_objects().is_empty());

    // A restart loads the table around the set without touching its elements.
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let mut loaded = false;
    for _ in 0..100 {
        if !chains(&lab).is_empty() && d.log().contains("nft: table inet uplinkd loaded") {
            loaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(loaded, "table not reloaded; log:\n{}", d.log());
    has_elements("after restart");
    let status = d.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    has_elements("after the second stop");
    // Without sets of others, stop removes the whole table.
    lab.nft("rtr", "delete set inet uplinkd dns4\n");
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    for _ in 0..100 {
        if d.log().contains("nft: table inet uplinkd loaded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let out = lab.exec("rtr", &["nft", "list", "table", "inet", "uplinkd"]);
    assert!(!out.status.success(), "table left behind");
}
