//! The control socket and the command line: `uplinkd status --json` tells what the lab
//! does, `disable`/`enable` drain and restore a WAN, `set-weight` changes only the
//! group, errors come back with their exit codes; transition hooks run in order with
//! their environment, and a hook that hangs does not delay failover.
#[path = "lab/mod.rs"]
mod lab;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use lab::{wait_until, Break, Lab};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

fn ctl(lab: &Lab, args: &[&str]) -> Output {
    lab.control(bin(), args)
}

fn status(lab: &Lab) -> Value {
    lab.status(bin())
}

fn state(lab: &Lab, wan: &str) -> String {
    status(lab)["interfaces"][wan]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn control_socket_status_drain_weight_and_errors() {
    let lab = Lab::new(3);
    let s = lab.control_socket();
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    let mode = std::fs::metadata(&s)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // Status matches the lab.
    let v = status(&lab);
    for k in 1..=3 {
        let w = &v["interfaces"][format!("wan{k}")];
        assert_eq!(w["state"], "up", "{v:#}");
        assert_eq!(w["device"], format!("wan{k}"));
        assert_eq!(w["gateway"], lab::gateway(k).to_string());
        assert_eq!(w["carrier"], true);
        assert_eq!(w["targets"].as_array().map(Vec::len), Some(3));
    }
    assert_eq!(
        v["policies"]["balanced"]["members"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let table = ctl(&lab, &["status"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("WAN "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("wan2") && l.contains("up")),
        "{text}"
    );

    // Break ISP 2: status says down.
    lab.break_isp(2, Break::Blackhole);
    lab.wait_group(&mut d, &[1, 3], Duration::from_secs(10));
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        state(&lab, "wan2") == "down"
    });
    assert!(r.is_ok(), "{:#}", status(&lab));
    let one = ctl(&lab, &["status", "--json", "wan2"]);
    let one: Value = serde_json::from_slice(&one.stdout).expect("json");
    assert_eq!(one["interfaces"].as_object().map(|m| m.len()), Some(1));
    assert!(one["interfaces"]["wan2"]["targets"][0]["lost"].as_u64() > Some(0));
    lab.restore(2);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));

    // Drain wan3 out of the group, bring it back.
    assert!(ctl(&lab, &["disable", "wan3"]).status.success());
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(5));
    assert_eq!(state(&lab, "wan3"), "disabled");
    assert!(ctl(&lab, &["enable", "wan3"]).status.success());
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(5));

    // A weight changes only the group.
    let before = lab.uplinkd_objects();
    assert!(ctl(&lab, &["set-weight", "wan1", "5"]).status.success());
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        lab.nexthop_group(lab::POLICY_ID)
            .is_some_and(|g| g.contains(&(lab::wan_id(1), 5)))
    });
    assert!(r.is_ok(), "group {:?}", lab.nexthop_group(lab::POLICY_ID));
    let after = lab.uplinkd_objects();
    assert_eq!(before.len(), after.len());
    let w = &status(&lab)["interfaces"]["wan1"];
    assert_eq!(w["weight"], 5);
    assert_eq!(w["share"]["balanced"], 71.4);

    // Errors: unknown WAN (1), bad arguments (1 from the daemon, 2 from usage), and
    // no daemon (3). The daemon goes on.
    let o = ctl(&lab, &["disable", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("no interface named 'nope'"),
        "{}",
        stderr(&o)
    );
    let o = ctl(&lab, &["set-weight", "wan1", "0"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("1 to 1000"), "{}", stderr(&o));
    assert_eq!(ctl(&lab, &["set-weight", "wan1"]).status.code(), Some(2));
    assert_eq!(ctl(&lab, &["enable"]).status.code(), Some(2));
    let o = lab.run_uplinkd(bin(), &["status", "--control-socket", "/nonexistent/sock"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // Raw protocol errors on the socket (a path socket is reachable from any network
    // namespace); the connection stays usable after each.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut c = std::os::unix::net::UnixStream::connect(lab.control_socket()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(
            b"garbage\n{\"method\":\"status\",\"args\":{\"interface\":7}}\n{\"method\":\"nope\"}\n",
        )
        .expect("write");
        let mut r = BufReader::new(c);
        let mut codes = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            r.read_line(&mut line).expect("answer");
            let v: Value = serde_json::from_str(&line).expect("answer is JSON");
            codes.push(v["status"].as_u64().unwrap_or(99));
        }
        assert_eq!(codes, vec![12, 2, 3]);
    }
    assert!(d.is_running());

    // Reload drops run-time changes.
    assert!(ctl(&lab, &["reload"]).status.success());
    let r = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        lab.nexthop_group(lab::POLICY_ID)
            .is_some_and(|g| g.iter().all(|&(_, w)| w == 1))
    });
    assert!(r.is_ok(), "group {:?}", lab.nexthop_group(lab::POLICY_ID));
    d.write_config("this is not a config\n");
    let o = ctl(&lab, &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("keeping the running configuration"));

    assert!(d.stop().success());
    assert!(!s.exists(), "socket removed at exit");
}

#[test]
fn hooks_run_in_order_and_never_delay_failover() {
    let lab = Lab::new(2);
    let hooks = lab.dir().join("hooks.d");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let record = lab.dir().join("hooks.log");
    let write_hook = |path: &Path, text: &str| {
        std::fs::write(path, text).expect("write hook");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    write_hook(
        &hooks.join("10-record"),
        &format!(
            "#!/bin/sh\necho \"record ACTION=$ACTION INTERFACE=$INTERFACE DEVICE=$DEVICE \
             GATEWAY=$GATEWAY STATE=$STATE PREVIOUS=$PREVIOUS REASON=$REASON ARGS=$#\" >> {}\n",
            record.display()
        ),
    );
    write_hook(&hooks.join("20-sleep"), "#!/bin/sh\nsleep 60\n");
    // Not executable: never run.
    std::fs::write(hooks.join("30-off"), "#!/bin/sh\necho off >> /dev/null\n").expect("write");
    let user = lab.dir().join("uplinkd.user");
    write_hook(
        &user,
        &format!(
            "#!/bin/sh\necho \"user $INTERFACE $ACTION\" >> {}\n",
            record.display()
        ),
    );

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

    // First transition: the sleeping hook hangs the hook thread for its timeout.
    let t0 = Instant::now();
    lab.break_isp(2, Break::Carrier);
    lab.wait_group(&mut d, &[1], Duration::from_secs(2));
    eprintln!("carrier loss -> out of the group after {:?}", t0.elapsed());
    // Second transition while the first's hook still sleeps: routing is not held up.
    let t1 = Instant::now();
    lab.break_isp(1, Break::Blackhole);
    let took = lab.wait_group(&mut d, &[], Duration::from_secs(10));
    eprintln!("blackhole -> out of the group after {took:?}");
    assert!(
        t1.elapsed() <= Duration::from_secs(5),
        "failover took {:?}",
        t1.elapsed()
    );

    let lines = |k: &str| -> Vec<String> {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(k))
            .map(str::to_string)
            .collect()
    };
    let r = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        !lines("record").is_empty()
    });
    assert!(r.is_ok(), "no hook ran; log:\n{}", d.log());
    let first = &lines("record")[0];
    assert_eq!(
        first,
        &format!(
            "record ACTION=disconnected INTERFACE=wan2 DEVICE=wan2 GATEWAY={} STATE=no-carrier \
             PREVIOUS=up REASON=carrier lost ARGS=0",
            lab::gateway(2)
        )
    );
    // The sleeper is killed after its timeout (10 s); then the user hook of the first
    // transition runs, then the hooks of the second, in order.
    let r = wait_until(Duration::from_secs(25), Duration::from_millis(100), || {
        lines("record").len() >= 2 && lines("user").len() >= 2
    });
    assert!(
        r.is_ok(),
        "hooks: {:?}; log:\n{}",
        std::fs::read_to_string(&record),
        d.log()
    );
    let all = std::fs::read_to_string(&record).unwrap_or_default();
    let order: Vec<String> = all
        .lines()
        .map(|l| {
            let kind = l.split(' ').next().unwrap_or("");
            let wan = match l.find("INTERFACE=") {
                Some(i) => l[i + 10..].split(' ').next().unwrap_or(""),
                None => l.split(' ').nth(1).unwrap_or(""),
            };
            format!("{kind} {wan}")
        })
        .collect();
    assert_eq!(
        &order[..4],
        &["record wan2", "user wan2", "record wan1", "user wan1"],
        "{all}"
    );
    assert!(
        d.log().contains("20-sleep") && d.log().contains("killed"),
        "{}",
        d.log()
    );
    assert!(d.stop().success());
}
