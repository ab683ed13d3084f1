//! Hooks in the lab: a hook that daemonizes (`setsid sleep &`) and keeps a child running
//! past the hook timeout is killed with everything it started; a hook file writable by
//! group or others is skipped with a warning; transitions of a WAN that pile up while a
//! hook runs reach the hooks as one, with the WAN's current state.
#[path = "lab/mod.rs"]
mod lab;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

/// Pids of the processes whose command line has an argument equal to `arg` or
/// containing `arg` when `contains`.
fn processes_with(arg: &str, contains: bool) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0).any(|a| {
                    let a = String::from_utf8_lossy(a);
                    if contains {
                        a.contains(arg)
                    } else {
                        a == arg
                    }
                })
            })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn timed_out_hooks_die_with_their_daemons_and_unsafe_hooks_are_skipped() {
    let lab = Lab::new(2);
    let hooks = lab.dir().join("hooks.d");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let record = lab.dir().join("hooks.log");
    let write_hook = |name: &str, text: &str, mode: u32| {
        let path = hooks.join(name);
        std::fs::write(&path, text).expect("write hook");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write_hook(
        "10-record",
        &format!(
            "#!/bin/sh\necho \"record $INTERFACE PREVIOUS=$PREVIOUS STATE=$STATE\" >> {}\n",
            record.display()
        ),
        0o755,
    );
    // Durations no other process uses name the sleepers.
    let id = std::process::id();
    let daemon_arg = format!("300.{id}");
    let child_arg = format!("301.{id}");
    write_hook(
        "20-daemonize",
        &format!(
            "#!/bin/sh\n[ \"$INTERFACE\" = wan1 ] || exit 0\n\
             setsid sleep {daemon_arg} </dev/null >/dev/null 2>&1 &\n\
             sleep {child_arg}\n"
        ),
        0o755,
    );
    // Writable by the group: whoever is in it could run code as root.
    write_hook(
        "30-writable",
        &format!("#!/bin/sh\necho writable >> {}\n", record.display()),
        0o775,
    );
    let user = lab.dir().join("uplinkd.user");
    let hook_path = hooks.join("20-daemonize");
    let hook_path = hook_path.to_str().unwrap();

    let mut d = lab.start_daemon(
        bin(),
        &lab::config(&[1, 1], lab::FAST),
        &[
            "--hooks-dir",
            hooks.to_str().unwrap(),
            "--user-hook",
            user.to_str().unwrap(),
        ],
    );
    lab.wait_group(&mut d, &[1, 2], STARTUP);

    let lines = || -> Vec<String> {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let of = |wan: &str| -> Vec<String> {
        lines()
            .into_iter()
            .filter(|l| l.starts_with(&format!("record {wan} ")))
            .collect()
    };

    // wan1's probes vanish: its hooks run, the second one daemonizes a sleeper and
    // waits on a child that outlives the timeout.
    lab.break_isp(1, Break::Blackhole);
    lab.wait_group(&mut d, &[2], Duration::from_secs(20));
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        !processes_with(&daemon_arg, false).is_empty()
            && !processes_with(&child_arg, false).is_empty()
    });
    assert!(
        r.is_ok(),
        "the hook did not start its sleepers; log:\n{}",
        d.log()
    );
    assert!(
        of("wan1")
            .first()
            .is_some_and(|l| l.contains("PREVIOUS=up")),
        "{:?}",
        lines()
    );

    // While the hook thread is stuck in that hook, wan2 moves twice: carrier lost,
    // then disabled. Both happen at once (no probe timing), well inside the timeout.
    lab.break_isp(2, Break::Carrier);
    let state = |wan: &str| -> String {
        lab.status(bin())["interfaces"][wan]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        state("wan2") == "no-carrier"
    });
    assert!(r.is_ok(), "wan2 is {}; log:\n{}", state("wan2"), d.log());
    let o = lab.control(bin(), &["disable", "wan2"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(state("wan2"), "disabled");
    // Whether the hook thread was still busy when wan2's second transition came in:
    // only then can the two be merged.
    let merged_in_time = of("wan2").is_empty() && !processes_with(&child_arg, false).is_empty();

    // The timeout (10 s, fixed) kills the hook, its child and the daemonized sleeper.
    let r = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        d.log().contains("20-daemonize") && d.log().contains("killed")
    });
    assert!(r.is_ok(), "the hook was not killed; log:\n{}", d.log());
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        processes_with(&daemon_arg, false).is_empty()
            && processes_with(&child_arg, false).is_empty()
            && processes_with(hook_path, true).is_empty()
    });
    assert!(
        r.is_ok(),
        "still alive after the timeout: daemonized {:?}, child {:?}, hook {:?}; log:\n{}",
        processes_with(&daemon_arg, false),
        processes_with(&child_arg, false),
        processes_with(hook_path, true),
        d.log()
    );

    // wan2's hooks run once, told where wan2 is now and where the hooks last saw it.
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        !of("wan2").is_empty()
    });
    assert!(r.is_ok(), "no hook for wan2; log:\n{}", d.log());
    std::thread::sleep(Duration::from_millis(500));
    if merged_in_time {
        assert_eq!(
            of("wan2"),
            ["record wan2 PREVIOUS=up STATE=disabled"],
            "{:?}",
            lines()
        );
    } else {
        eprintln!("wan2 moved after the hook thread was free again: merging not exercised");
    }

    // The group-writable hook never ran, and the log says why.
    assert!(!lines().iter().any(|l| l == "writable"), "{:?}", lines());
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("30-writable") && l.contains("writable by group or others")),
        "{}",
        d.log()
    );
    assert!(d.stop().success());
    assert!(processes_with(&daemon_arg, false).is_empty());
}
