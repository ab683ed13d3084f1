//! The real firewall4 (ucode, from the upstream sources, run by tests/upstream's OpenWrt
//! root in the lab's router namespace) builds the router's firewall: zones lan and wan,
//! masquerade on wan. `fw4 reload` and `fw4 restart` while 100 connections are held break
//! none of them, leave `table inet uplinkd` as it was, and new connections are still
//! spread over both WANs and stay on theirs. Without the sources: one line, skipped.
#[path = "lab/mod.rs"]
mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lab::{wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn upstream() -> PathBuf {
    std::env::var_os("UPLINKD_UPSTREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/upstream"))
}

/// One function of tests/upstream/lib.sh.
fn ctl(args: &[&str]) -> Output {
    Command::new(repo().join("tests/upstream/ctl.sh"))
        .args(args)
        .output()
        .expect("run tests/upstream/ctl.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An OpenWrt root in the lab's router namespace, torn down when dropped.
struct Root(String);

impl Root {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run", self.0.as_str()];
        all.extend_from_slice(args);
        ctl(&all)
    }

    fn path(&self, p: &str) -> PathBuf {
        Path::new(&self.0).join("root").join(p)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = ctl(&["teardown", &self.0]);
    }
}

const FIREWALL: &str = "\
config defaults
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'
\toption synflood_protect '1'

config zone
\toption name 'lan'
\tlist device 'lan'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'

config zone
\toption name 'wan'
\tlist device 'wan1'
\tlist device 'wan2'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'
\toption masq '1'
\toption mtu_fix '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

config rule
\toption name 'Allow-Ping'
\toption src 'wan'
\toption proto 'icmp'
\toption icmp_type 'echo-request'
\toption family 'ipv4'
\toption target 'ACCEPT'
";

fn uplinkd_table(lab: &Lab) -> String {
    text(
        &lab.exec("rtr", &["nft", "-a", "list", "table", "inet", "uplinkd"])
            .stdout,
    )
}

#[test]
fn fw4_reload_and_restart_keep_connections_table_and_pinning() {
    let built = ctl(&["build"]);
    if built.status.code() == Some(77) {
        println!("{}", text(&built.stdout).trim());
        return;
    }
    assert!(
        built.status.success(),
        "upstream build: {}",
        text(&built.stderr)
    );

    let lab = Lab::new(2);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);

    let root = Root(text(&ctl(&["new"]).stdout).trim().to_string());
    let out = ctl(&["create", &root.0, &lab.ns("rtr")]);
    assert!(out.status.success(), "create: {}", text(&out.stderr));
    // firewall4 as its package installs it: the tree's root/ onto /.
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(upstream().join("firewall4.tar.gz"))
        .arg("-C")
        .arg(root.path(""))
        .args(["--strip-components=2", "firewall4/root"])
        .output()
        .expect("tar");
    assert!(out.status.success(), "firewall4: {}", text(&out.stderr));
    std::fs::write(root.path("etc/config/firewall"), FIREWALL).expect("firewall config");
    let out = ctl(&["ubusd", &root.0]);
    assert!(out.status.success(), "ubusd: {}", text(&out.stderr));

    // The lab's stand-in masquerade goes; fw4's zones take over.
    lab.exec("rtr", &["nft", "delete", "table", "inet", "labfw"]);
    let out = root.run(&["fw4", "start"]);
    assert!(out.status.success(), "fw4 start: {}", text(&out.stderr));
    let ruleset = text(
        &lab.exec("rtr", &["nft", "list", "table", "inet", "fw4"])
            .stdout,
    );
    for want in [
        "chain srcnat_wan",
        "masquerade",
        "chain forward_lan",
        "chain input_wan",
    ] {
        assert!(
            ruleset.contains(want),
            "fw4 ruleset lacks {want}:\n{ruleset}"
        );
    }
    let before = uplinkd_table(&lab);
    assert!(before.contains("table inet uplinkd"), "no uplinkd table");

    let conns = lab.open_long_lived(100);
    let (alive, broken) = lab.check_alive_by_isp(&conns);
    assert!(
        broken.is_empty(),
        "before: alive {alive:?} broken {broken:?}"
    );
    assert_eq!(alive.len(), 2, "connections use both WANs: {alive:?}");

    for action in ["reload", "restart"] {
        let out = root.run(&["fw4", action]);
        assert!(out.status.success(), "fw4 {action}: {}", text(&out.stderr));
        let (alive, broken) = lab.check_alive_by_isp(&conns);
        eprintln!("fw4 {action}: alive {alive:?} broken {broken:?}");
        assert!(
            broken.is_empty(),
            "fw4 {action} broke connections: {broken:?}"
        );
        assert_eq!(alive.values().sum::<usize>(), 100);
        assert_eq!(
            uplinkd_table(&lab),
            before,
            "fw4 {action} changed uplinkd's table"
        );
    }

    // Pinning still works: new connections use both WANs and stay on theirs.
    let more = lab.open_long_lived(40);
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(200), || {
        let (alive, broken) = lab.check_alive_by_isp(&more);
        broken.is_empty() && alive.len() == 2
    });
    assert!(ok.is_ok(), "{:?}", lab.check_alive_by_isp(&more));
    let (_, broken) = lab.check_alive_by_isp(&conns);
    assert!(broken.is_empty(), "at the end: {broken:?}");
    d.stop();
}
