//! Coming from mwan3: every configuration in tests/mwan3 converts, passes `check` and
//! starts in `--dry-run`; and `use_policy default` leaves connections to the main routing
//! table, whatever uplinkd thinks of the WAN the main table chose.
#[path = "lab/mod.rs"]
mod lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mwan3");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/mwan3")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mwan3"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_mwan3_config_converts_checks_and_starts_in_dry_run() {
    let lab = Lab::new(1);
    let files = corpus();
    assert!(files.len() >= 20, "{} configurations", files.len());
    for path in files {
        let name = path.display().to_string();
        let out = lab.dir().join("converted.conf");
        let mut import = Command::new(bin());
        import
            .arg("import-mwan3")
            .arg("-c")
            .arg(&path)
            .arg("-o")
            .arg(&out);
        for (flag, ext) in [("-n", "network"), ("-d", "dhcp")] {
            // Never this machine's /etc/config files: an empty file stands for none.
            let side = path.with_extension(ext);
            let side = if side.exists() {
                side
            } else {
                PathBuf::from("/dev/null")
            };
            import.arg(flag).arg(side);
        }
        let o = import.output().expect("run import-mwan3");
        assert!(
            o.status.success(),
            "{name}: import-mwan3 failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(&out).expect("converted file");
        if name.ends_with("2014-openwrt-default.mwan3") {
            // Its even/odd rules: masks that are no prefix, kept as masked matches.
            for v in ["0.0.0.0/0.0.0.1", "0.0.0.1/0.0.0.1"] {
                assert!(
                    text.contains(&format!("option src_ip '{v}'")),
                    "{name}: no src_ip {v}:\n{text}"
                );
            }
            let warnings = String::from_utf8_lossy(&o.stderr);
            assert!(!warnings.contains("sticky_"), "{name}: {warnings}");
        }
        let check = Command::new(bin())
            .args(["check", "-c"])
            .arg(&out)
            .output()
            .expect("run check");
        assert!(
            check.status.success(),
            "{name}: check failed: {}\n{text}",
            String::from_utf8_lossy(&check.stdout)
        );
        let mut d = lab.start_daemon(bin(), &text, &["--dry-run"]);
        let started = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            d.log().contains(" started: ") || d.wait_exit(Duration::ZERO).is_some()
        });
        assert!(started.is_ok(), "{name}: no start line; log:\n{}", d.log());
        // Still running a moment later (a failed first reconcile would have ended it).
        assert!(
            d.wait_exit(Duration::from_millis(500)).is_none(),
            "{name}: exited; log:\n{}",
            d.log()
        );
        assert!(d.stop().success(), "{name}: log:\n{}", d.log());
    }
}

/// Default policy over wan2+wan3; the main table's best default goes through wan1; a
/// rule sends connections to the server to the main table. They leave through wan1 from
/// the LAN and from the router, and keep doing so while uplinkd holds wan1 down.
#[test]
fn use_policy_default_leaves_connections_to_the_main_table() {
    let lab = Lab::new(3);
    let cfg = lab::config(&[1, 1, 1], lab::FAST).replace(
        "config policy 'balanced'\n\tlist use_member 'wan1_m1'\n",
        "config policy 'balanced'\n",
    ) + &format!(
        "\nconfig rule 'to_main'\n\toption dest_ip '{}'\n\toption use_policy 'default'\n",
        lab::SERVER
    );
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[2, 3], Duration::from_secs(15));

    let check = |when: &str, lab: &Lab| {
        let t = lab.connect_many(20);
        assert!(
            t.failed == 0 && t.count(1) == t.ok(),
            "{when}: LAN connections to the server: {t:?}"
        );
        for _ in 0..10 {
            match lab.router_connect() {
                Ok(k) => assert_eq!(k, 1, "{when}: router connection"),
                Err(e) => panic!("{when}: router connection failed: {e}"),
            }
        }
    };
    check("all up", &lab);
    let long = lab.open_long_lived(10);

    // wan1 stops answering probes (only them): uplinkd holds it down, the path stays.
    let targets: Vec<String> = lab::TARGETS.iter().map(|t| t.to_string()).collect();
    lab.nft(
        "isp1",
        &format!(
            "table inet probes {{\n\tchain probe_drop {{ type filter hook forward priority -5; policy accept;\n\
             \t\tip daddr {{ {} }} drop\n\t}}\n}}\n",
            targets.join(", ")
        ),
    );
    let down = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        d.log().contains("wan1 down")
    });
    assert!(down.is_ok(), "wan1 never went down; log:\n{}", d.log());
    check("wan1 down", &lab);
    assert_eq!(
        lab.check_alive(&long),
        (10, 0),
        "pinned to main, they live on"
    );
    assert!(d.stop().success(), "log:\n{}", d.log());
}

/// `import-mwan3` fails only for input it cannot read or without an interface section;
/// an explicitly named network file must exist and parse; `--help` documents `-n`.
#[test]
fn import_mwan3_command_line() {
    let dir = std::env::temp_dir().join(format!("uplinkd-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(bin())
            .arg("import-mwan3")
            .args(args)
            .output()
            .expect("run")
    };
    let help = run(&["--help".as_ref()]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(help.contains("-n, --network FILE"), "{help}");

    let good = write(
        "good",
        "config interface 'wan'\n\tlist track_ip 'example.com'\n",
    );
    let out = dir.join("out");
    let o = run(&[
        "-c".as_ref(),
        good.as_os_str(),
        "-n".as_ref(),
        "/dev/null".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        o.status.success(),
        "warnings only: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: "));
    assert!(std::fs::read_to_string(&out)
        .expect("output")
        .contains("default_policy 'default'"));

    let code = |o: std::process::Output| o.status.code();
    let missing = dir.join("missing");
    assert_eq!(
        code(run(&["-c".as_ref(), missing.as_os_str()])),
        Some(1),
        "unreadable input"
    );
    let empty = write("empty", "config globals 'globals'\n");
    assert_eq!(
        code(run(&[
            "-c".as_ref(),
            empty.as_os_str(),
            "-n".as_ref(),
            "/dev/null".as_ref()
        ])),
        Some(1),
        "no interface"
    );
    assert_eq!(
        code(run(&[
            "-c".as_ref(),
            good.as_os_str(),
            "-n".as_ref(),
            missing.as_os_str()
        ])),
        Some(1),
        "-n missing"
    );
    let broken = write("broken", "config interface 'wan\n");
    let o = run(&[
        "-c".as_ref(),
        good.as_os_str(),
        "-n".as_ref(),
        broken.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "-n unparsable");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&broken.display().to_string()));
    assert_eq!(code(run(&["--bogus".as_ref()])), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same for IPv6 from the LAN (ULA sources, NAT66 as fw4 does it): the main table's
/// best IPv6 default goes through wan1, the default policy over wan2+wan3.
#[test]
fn use_policy_default_leaves_ipv6_connections_to_the_main_table() {
    let lab = Lab::new_dual_stack(3);
    let mut cfg = String::from("config globals 'globals'\n\toption default_policy 'balanced'\n");
    for k in 1..=3 {
        cfg.push_str(&format!(
            "\nconfig interface 'wan{k}'\n\toption device 'wan{k}'\n\toption family 'any'\n\
             \tlist track_ip '{}'\n\tlist track_ip '{}'\n\toption reliability '2'\n{}\n",
            lab::TARGETS[k - 1],
            lab::TARGETS6[k - 1],
            lab::FAST.replace("option reliability '1'", "")
        ));
        cfg.push_str(&format!(
            "\nconfig member 'wan{k}_m'\n\toption interface 'wan{k}'\n"
        ));
    }
    cfg.push_str(
        "\nconfig policy 'balanced'\n\tlist use_member 'wan2_m'\n\tlist use_member 'wan3_m'\n",
    );
    let server = std::net::IpAddr::V6(lab::server6(None));
    cfg.push_str(&format!(
        "\nconfig rule 'to_main'\n\toption dest_ip '{server}'\n\toption use_policy 'default'\n"
    ));
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[2, 3], Duration::from_secs(15));
    let t = lab.connect_many_to(server, 20);
    assert!(
        t.failed == 0 && t.count(1) == t.ok(),
        "all up: {t:?}; log:\n{}",
        d.log()
    );

    // wan1's targets stop answering (both families): uplinkd holds it down.
    lab.nft(
        "isp1",
        &format!(
            "table inet probes {{\n\tchain probe_drop {{ type filter hook forward priority -5; policy accept;\n\
             \t\tip daddr {} drop\n\t\tip6 daddr {} drop\n\t}}\n}}\n",
            lab::TARGETS[0],
            lab::TARGETS6[0]
        ),
    );
    let down = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        d.log().contains("wan1 down")
    });
    assert!(down.is_ok(), "wan1 never went down; log:\n{}", d.log());
    let t = lab.connect_many_to(server, 20);
    assert!(t.failed == 0 && t.count(1) == t.ok(), "wan1 down: {t:?}");
    assert!(d.stop().success(), "log:\n{}", d.log());
}
