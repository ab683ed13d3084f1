//! Metered WANs against the real kernel: wan2 has a 5 MB quota; a transfer through it
//! crosses the warning threshold and the quota (hooks see both), after which new flows
//! take wan1 only while the connection already on wan2 keeps working; when wan1 fails,
//! wan2 carries new flows again; the count survives a SIGTERM restart through the state
//! file. (The period reset is the pure core's: `quota::tests`, `engine::tests`.)
use crate::support as lab;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);
const QUOTA: u64 = 5_000_000;

/// Send `bytes` through the echo server on `conn` and read them back, in chunks.
fn push(conn: &mut lab::LongConn, bytes: usize) -> std::io::Result<()> {
    let chunk = vec![b'q'; 16 * 1024];
    let mut back = vec![0u8; chunk.len()];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        conn.stream.write_all(&chunk[..n])?;
        conn.stream.read_exact(&mut back[..n])?;
        sent += n;
    }
    Ok(())
}

fn quota_of(lab: &Lab) -> serde_json::Value {
    lab.status(bin())["interfaces"]["wan2"]["quota"].clone()
}

#[test]
fn a_spent_quota_keeps_new_flows_off_the_metered_wan() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let state = lab.dir().join("state").join("quota.json");
    let hooks = lab.dir().join("hooks.d");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let record = lab.dir().join("hooks.log");
    let hook = hooks.join("10-record");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncase \"$ACTION\" in quota_*) echo \"$ACTION $INTERFACE $QUOTA_USED $QUOTA_BYTES\" >> {} ;; esac\n",
            record.display()
        ),
    )
    .expect("write hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let user = lab.dir().join("no-user-hook");
    let conf = lab::config_with(
        &[1, 1],
        lab::FAST,
        &[
            "",
            "option quota '5M'\noption quota_period 'daily'\noption quota_warn '50'",
        ],
        &format!("option quota_state '{}'", state.display()),
    );
    let args = [
        "--hooks-dir",
        hooks.to_str().unwrap(),
        "--user-hook",
        user.to_str().unwrap(),
    ];
    let mut d = lab.start_daemon(bin(), &conf, &args);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let q = quota_of(&lab);
    eprintln!("quota at start: {q}");
    assert_eq!(q["bytes"], QUOTA);
    assert_eq!(q["state"], "normal");

    // A connection on wan2, then 3 MB each way through it: more than 5 MB counted.
    let mut on2 = None;
    for _ in 0..5 {
        let mut conns = lab.open_long_lived(16);
        if let Some(i) = conns.iter().position(|c| c.isp == 2) {
            on2 = Some(conns.swap_remove(i));
            break;
        }
    }
    let mut on2 = on2.expect("a connection on wan2");
    push(&mut on2, 3_000_000).expect("transfer over wan2");
    // Counted once a second: wait for the whole transfer, not just the crossing.
    let crossed = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let q = quota_of(&lab);
        q["state"] == "exceeded" && q["used"].as_u64().unwrap_or(0) >= 6_000_000
    });
    let q = quota_of(&lab);
    eprintln!("after 2 x 3 MB over wan2: {q}");
    assert!(crossed.is_ok(), "not exceeded: {q}; log:\n{}", d.log());
    let used = q["used"].as_u64().unwrap_or(0);
    assert!(used >= 6_000_000, "{q}");
    lab.wait_group(&mut d, &[1], STARTUP);

    // New flows: wan1 only. The pinned connection on wan2 keeps working.
    let t = lab.connect_many(40);
    eprintln!("40 new connections with wan2 spent: {t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    assert_eq!(t.count(1), 40, "{t:?}");
    push(&mut on2, 10_000).expect("the pinned connection on wan2 still works");

    // Hooks: warning, then exceeded, once each.
    let seen = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        std::fs::read_to_string(&record).is_ok_and(|r| r.contains("quota_exceeded"))
    });
    let log = std::fs::read_to_string(&record).unwrap_or_default();
    eprintln!("hooks:\n{log}");
    assert!(seen.is_ok(), "hooks: {log:?}\n{}", d.log());
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("quota_warning wan2 "), "{log}");
    assert!(lines[1].starts_with("quota_exceeded wan2 "), "{log}");
    assert!(lines[1].ends_with(" 5000000"), "{log}");

    // wan1 fails: the spent wan2 is the last resort and carries new flows.
    lab.break_isp(1, Break::Carrier);
    lab.wait_group(&mut d, &[2], STARTUP);
    let t = lab.connect_many(10);
    eprintln!("10 new connections with wan1 down: {t:?}");
    assert_eq!(t.count(2), 10, "{t:?}");
    lab.restore(1);
    lab.wait_group(&mut d, &[1], STARTUP);
    drop(on2);

    // SIGTERM saves the count; the next start restores it (and stays exceeded).
    let before = quota_of(&lab)["used"].as_u64().unwrap_or(0);
    d.terminate();
    let text = std::fs::read_to_string(&state).expect("state file written at SIGTERM");
    eprintln!("state file ({} bytes): {text}", text.len());
    assert!(text.contains("\"wan2\""), "{text}");
    let mut d = lab.start_daemon(bin(), &conf, &args);
    let started = wait_until(STARTUP, Duration::from_millis(100), || {
        d.log().contains("started:")
    });
    assert!(started.is_ok(), "{}", d.log());
    lab.wait_group(&mut d, &[1], STARTUP);
    let q = quota_of(&lab);
    eprintln!("after restart: {q}");
    assert_eq!(q["state"], "exceeded", "{q}");
    assert!(q["used"].as_u64().unwrap_or(0) >= before, "{q} < {before}");
    assert!(
        d.log().contains("quota: restored the counts of 1 WANs"),
        "{}",
        d.log()
    );

    // A manual reset makes wan2 usable at once.
    let out = lab.control(bin(), &["quota", "reset", "wan2"]);
    assert!(out.status.success(), "{out:?}");
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    assert_eq!(quota_of(&lab)["state"], "normal");
    let out = lab.control(bin(), &["quota", "reset", "wan1"]);
    assert!(!out.status.success(), "wan1 has no quota: {out:?}");
    d.terminate();
    // A corrupt state file: said once, counting starts from zero, the daemon runs.
    std::fs::write(&state, "{\"version\":1,\"wans\":").expect("corrupt");
    let mut d = lab.start_daemon(bin(), &conf, &args);
    let said = wait_until(STARTUP, Duration::from_millis(100), || {
        d.log().contains("started:")
    });
    assert!(said.is_ok(), "{}", d.log());
    assert!(d.log().contains("is not a quota state file"), "{}", d.log());
    assert_eq!(quota_of(&lab)["used"], 0);
    assert!(d.is_running());
    d.terminate();
}
