//! WANs that follow the real netifd (built from `../shared/upstream` by
//! tests/upstream/build.sh, run chrooted in the lab's router): uplinkd without
//! `option device` takes device, gateway and up/down from netifd over the real ubusd.
//! One static WAN, one DHCP WAN (busybox udhcpd in the ISP), one that comes up late;
//! a metric and a device changed with `uci` and `ubus call network reload`.
//! Skipped with one line when the upstream sources are absent.
#[path = "lab/mod.rs"]
mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(20);

fn ctl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/ctl.sh")
}

/// `ctl.sh ARGS`, its output collected through a file: a daemon it starts in the
/// background keeps a copy of the shell's stdout, so a pipe would never see its end.
fn sh(args: &[&str]) -> Output {
    let out = tempfile();
    let err = tempfile();
    let status = Command::new("sh")
        .arg(ctl())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .status()
        .expect("run tests/upstream/ctl.sh");
    Output {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

fn tempfile() -> std::fs::File {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "uplinkd-netifd-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("temp file");
    let _ = std::fs::remove_file(&path);
    f
}

fn read_back(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut v);
    v
}

/// The OpenWrt root in the lab's router namespace, torn down on drop.
struct Root {
    dir: String,
}

impl Root {
    /// `None` (after printing the one skip line) when the upstream sources are absent.
    fn new(lab: &Lab) -> Option<Root> {
        let built = sh(&["build"]);
        if built.status.code() == Some(77) {
            print!("{}", String::from_utf8_lossy(&built.stdout));
            return None;
        }
        assert!(built.status.success(), "upstream build failed: {built:?}");
        let out = sh(&["new"]);
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!dir.is_empty(), "ctl.sh new: {out:?}");
        let root = Root { dir };
        root.ok(&["create", &root.dir, &lab.ns("rtr")]);
        Some(root)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = sh(args);
        assert!(
            out.status.success(),
            "ctl.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, cmd: &[&str]) -> String {
        let mut args = vec!["run", self.dir.as_str()];
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    fn path(&self, p: &str) -> PathBuf {
        Path::new(&self.dir)
            .join("root")
            .join(p.trim_start_matches('/'))
    }

    fn socket(&self) -> PathBuf {
        self.path("/var/run/ubus/ubus.sock")
    }

    /// Pids of processes in the root whose command name is `comm`.
    fn pids(&self, comm: &str) -> Vec<i32> {
        self.ok(&["pids", &self.dir])
            .lines()
            .filter_map(|p| p.trim().parse::<i32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .collect()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(Path::new(&self.dir).join("log").join(name)).unwrap_or_default()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = sh(&["teardown", &self.dir]);
    }
}

const NETWORK: &str = "
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config interface 'wan1'
\toption device 'wan1'
\toption proto 'static'
\toption ipaddr '10.20.1.2'
\toption netmask '255.255.255.0'
\toption gateway '10.20.1.1'
\toption metric '10'

config interface 'wan2'
\toption device 'wan2'
\toption proto 'dhcp'
\toption metric '20'

config interface 'wan3'
\toption device 'wan3'
\toption proto 'static'
\toption auto '0'
\toption ipaddr '10.20.3.2'
\toption netmask '255.255.255.0'
\toption gateway '10.20.3.1'
\toption metric '30'
";

/// busybox udhcpd in ISP 2, handing out 10.20.2.2 (a static lease, so that a new
/// server still acknowledges a renewal) with `router`.
fn start_udhcpd(lab: &Lab, router: &str) -> std::process::Child {
    let link: serde_json::Value =
        serde_json::from_str(&lab.ip("rtr", &["-j", "link", "show", "wan2"])).expect("link");
    let mac = link[0]["address"].as_str().expect("wan2 MAC").to_string();
    let conf = lab.write_file(
        "udhcpd.conf",
        &format!(
            "start 10.20.2.2\nend 10.20.2.3\ninterface rtr\nlease_file {}\n\
             static_lease {mac} 10.20.2.2\n\
             option subnet 255.255.255.0\noption router {router}\noption lease 3600\n",
            lab.dir().join("udhcpd.leases").display()
        ),
    );
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir().join("udhcpd.leases"));
    Command::new("ip")
        .args(["netns", "exec", &lab.ns("isp2"), "busybox", "udhcpd", "-f"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn udhcpd")
}

/// The lab's config with every `option device` removed: all WANs follow netifd.
fn uplinkd_config() -> String {
    lab::config(&[1, 1, 1], lab::FAST)
        .lines()
        .filter(|l| !l.trim_start().starts_with("option device"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The gateway of uplinkd's route in WAN k's table, if any.
fn table_gateway(lab: &Lab, k: usize) -> Option<String> {
    let table = lab::wan_id(k).to_string();
    lab.routes(&table)
        .iter()
        .find(|r| r["dst"] == "default")
        .and_then(|r| r["gateway"].as_str().map(str::to_string))
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

struct Setup {
    udhcpd: Udhcpd,
    root: Root,
    lab: Lab,
}

struct Udhcpd(std::process::Child);

impl Udhcpd {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Udhcpd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The lab with netifd managing wan1 (static) and wan2 (DHCP); wan3 is configured but
/// not brought up.
fn setup() -> Option<Setup> {
    let lab = Lab::new(3);
    let root = Root::new(&lab)?;
    // netifd owns the WAN addresses and default routes, not the lab.
    for k in 1..=3 {
        let wan = format!("wan{k}");
        lab.ip("rtr", &["addr", "flush", "dev", &wan]);
        let _ = lab.try_ip("rtr", &["route", "del", "default", "dev", &wan]);
    }
    let udhcpd = Udhcpd(start_udhcpd(&lab, "10.20.2.1"));
    std::fs::write(root.path("/etc/config/network"), NETWORK).expect("write network config");
    root.ok(&["ubusd", &root.dir]);
    root.ok(&["netifd", &root.dir]);
    let up = wait_for(Duration::from_secs(30), || {
        let out = sh(&[
            "run",
            &root.dir,
            "ubus",
            "call",
            "network.interface.wan2",
            "status",
        ]);
        let s = String::from_utf8_lossy(&out.stdout);
        s.contains("\"up\": true") && s.contains("10.20.2.1")
    });
    assert!(
        up.is_some(),
        "wan2 did not get its DHCP lease:\n{}",
        root.log("netifd")
    );
    Some(Setup { udhcpd, root, lab })
}

fn start(s: &Setup, hook_log: &Path) -> lab::Daemon {
    let hook = s.lab.write_file(
        "user.hook",
        &format!(
            "#!/bin/sh\necho \"$ACTION $INTERFACE\" >> {}\n",
            hook_log.display()
        ),
    );
    Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
    let socket = s.root.socket();
    let empty = s.lab.dir().join("hooks.d");
    let _ = std::fs::create_dir_all(&empty);
    s.lab.start_daemon(
        bin(),
        &uplinkd_config(),
        &[
            "--ubus-socket",
            socket.to_str().unwrap(),
            "--hooks-dir",
            empty.to_str().unwrap(),
            "--user-hook",
            hook.to_str().unwrap(),
        ],
    )
}

/// `disconnected` hooks of WAN 1 and 2 (wan3 starts down: its first state is one).
fn disconnected(hook_log: &Path) -> Vec<String> {
    std::fs::read_to_string(hook_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("disconnected") && !l.ends_with("wan3"))
        .map(str::to_string)
        .collect()
}

#[test]
fn netifd_wans_are_followed() {
    let Some(mut s) = setup() else { return };
    let (lab, root) = (&s.lab, &s.root);
    let hooks = lab.dir().join("hooks-1.log");
    let mut d = start(&s, &hooks);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    assert_eq!(table_gateway(lab, 2).as_deref(), Some("10.20.2.1"));

    // The late WAN.
    root.run(&["ubus", "call", "network.interface.wan3", "up"]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    // ifdown / ifup.
    root.run(&["ubus", "call", "network.interface.wan1", "down"]);
    let out = wait_for(Duration::from_secs(10), || !lab.in_group(1));
    assert!(out.is_some(), "wan1 stayed in the group:\n{}", d.log());
    root.run(&["ubus", "call", "network.interface.wan1", "up"]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);

    // A renew that only changes the gateway: the ISP's router option moves to .254.
    lab.ip("isp2", &["addr", "add", "10.20.2.254/24", "dev", "rtr"]);
    s.udhcpd.stop();
    s.udhcpd = Udhcpd(start_udhcpd(lab, "10.20.2.254"));
    std::thread::sleep(Duration::from_millis(300));
    let udhcpc = root.pids("udhcpc");
    assert_eq!(udhcpc.len(), 1, "one udhcpc for wan2: {udhcpc:?}");
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(udhcpc[0], libc::SIGUSR1) };
    let t0 = Instant::now();
    let followed = wait_for(Duration::from_secs(35), || {
        table_gateway(lab, 2).as_deref() == Some("10.20.2.254")
    });
    let took = followed.unwrap_or_else(|| {
        panic!(
            "the new gateway was not followed; uplinkd:\n{}\nnetifd:\n{}",
            d.log(),
            root.log("netifd")
        )
    });
    eprintln!(
        "netifd: gateway renewal followed {:.0} ms after SIGUSR1 to udhcpc",
        took.as_secs_f64() * 1000.0
    );
    let _ = t0;
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    eprintln!("uplinkd log:\n{}", d.log());
    assert!(disconnected(&hooks).iter().all(|l| !l.ends_with("wan2")));
}

/// Samples the default group every 50 ms for `span`; returns the samples without WAN 1
/// or WAN 2.
fn watch_group(lab: &Lab, span: Duration) -> Vec<Vec<u32>> {
    let t0 = Instant::now();
    let mut bad = Vec::new();
    while t0.elapsed() < span {
        let m = lab.group_members();
        if !(m.contains(&lab::wan_id(1)) && m.contains(&lab::wan_id(2))) {
            bad.push(m);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bad
}

#[test]
fn ubusd_restart_keeps_the_wans_and_the_connections() {
    let Some(s) = setup() else { return };
    let (lab, root) = (&s.lab, &s.root);
    let hooks = lab.dir().join("hooks-2.log");
    let mut d = start(&s, &hooks);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let conns = lab.open_long_lived(100);
    assert_eq!(lab.check_alive(&conns), (100, 0));

    let ubusd = root.pids("ubusd");
    assert_eq!(ubusd.len(), 1, "{ubusd:?}");
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(ubusd[0], libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    root.ok(&["ubusd", &root.dir]);
    let registered = wait_for(Duration::from_secs(20), || {
        root.run(&["ubus", "list"]).lines().any(|l| l == "uplinkd")
    });
    assert!(
        registered.is_some(),
        "uplinkd not re-registered:\n{}",
        d.log()
    );
    let netifd_back = wait_for(Duration::from_secs(20), || {
        root.run(&["ubus", "list"])
            .lines()
            .any(|l| l == "network.interface.wan2")
    });
    assert!(netifd_back.is_some(), "netifd did not come back");
    eprintln!(
        "ubusd restart: uplinkd re-registered {:.2} s after ubusd started, netifd's objects {:.2} s after that",
        registered.unwrap_or_default().as_secs_f64(),
        netifd_back.unwrap_or_default().as_secs_f64()
    );
    let _ = t0;
    // netifd's objects came back; everything stays as it was meanwhile and after.
    let bad = watch_group(lab, Duration::from_secs(6));
    assert!(bad.is_empty(), "a WAN left the group: {bad:?}\n{}", d.log());
    assert_eq!(lab.check_alive(&conns), (100, 0), "{}", d.log());
    assert!(
        disconnected(&hooks).is_empty(),
        "{:?}",
        disconnected(&hooks)
    );
    let log = d.log();
    assert!(
        !log.contains("wan1 no-carrier") && !log.contains("wan2 no-carrier"),
        "{log}"
    );
    // Still following netifd over the new bus: an ifdown takes wan1 out.
    root.run(&["ubus", "call", "network.interface.wan1", "down"]);
    let out = wait_for(Duration::from_secs(10), || !lab.in_group(1));
    assert!(out.is_some(), "wan1 stayed in the group:\n{}", d.log());
}

/// uplinkd ended by SIGTERM (what procd and systemd send for a restart) or kill -9, and
/// started again, while 100 connections are held: none breaks, no `disconnected` hook
/// runs, and the group, sampled every 20 ms from before the end until 8 s after the new
/// daemon has both WANs, never loses a WAN.
fn restart(kill9: bool) {
    let Some(s) = setup() else { return };
    let lab = &s.lab;
    let how = if kill9 { "kill -9" } else { "SIGTERM" };
    let hooks = lab.dir().join("hooks-3.log");
    let mut d = start(&s, &hooks);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    std::thread::sleep(Duration::from_secs(1));
    let conns = lab.open_long_lived(100);
    assert_eq!(lab.check_alive(&conns), (100, 0));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (d2, samples, bad) = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let (mut samples, mut bad) = (0u32, Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let m = lab.group_members();
                samples += 1;
                if !(m.contains(&lab::wan_id(1)) && m.contains(&lab::wan_id(2))) {
                    bad.push(m);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (samples, bad)
        });
        std::thread::sleep(Duration::from_millis(200));
        if kill9 {
            d.kill9();
        } else {
            let status = d.terminate();
            assert!(status.success(), "{status:?}\n{}", d.log());
        }
        let d2 = start(&s, &hooks);
        let t0 = Instant::now();
        let grouped = wait_for(Duration::from_secs(10), || {
            let m = lab.group_members();
            m.contains(&lab::wan_id(1)) && m.contains(&lab::wan_id(2))
        });
        eprintln!(
            "restart ({how}): both WANs in the group {:.2} s after the start",
            t0.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(8));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (samples, bad) = sampler.join().expect("sampler");
        assert!(
            grouped.is_some(),
            "no group after the restart:\n{}",
            d2.log()
        );
        (d2, samples, bad)
    });
    eprintln!(
        "restart ({how}): {samples} samples of the group, {} without both WANs",
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "the group lost a WAN: {bad:?}\n{}\n{}",
        d.log(),
        d2.log()
    );
    let (alive, broken) = lab.check_alive(&conns);
    eprintln!("restart ({how}): {alive} connections alive, {broken} broken");
    assert_eq!((alive, broken), (100, 0), "{}\n{}", d.log(), d2.log());
    assert!(
        disconnected(&hooks).is_empty(),
        "{:?}\n{}",
        disconnected(&hooks),
        d2.log()
    );
    let log = d2.log();
    assert!(
        !log.contains("wan1: deleted the connections")
            && !log.contains("wan2: deleted the connections"),
        "{log}"
    );
    if !kill9 {
        // SIGTERM removed nothing: the new daemon adopted it all.
        let old = d.log();
        assert!(
            !old.lines()
                .any(|l| l.contains("kernel: ip") && l.contains(" del ")),
            "{old}"
        );
        assert!(log.contains("adopting"), "{log}");
    }
}

#[test]
fn uplinkd_restart_after_sigterm_keeps_the_connections() {
    restart(false);
}

#[test]
fn uplinkd_restart_after_kill9_keeps_the_connections() {
    restart(true);
}

/// `uci set` LINES, `uci commit network` and `ubus call network reload` in the root.
fn uci_reload(root: &Root, sets: &[&str]) {
    let mut line: String = sets.iter().map(|s| format!("uci set {s} && ")).collect();
    line.push_str("uci commit network && ubus call network reload");
    root.ok(&["sh", &root.dir, &line]);
}

/// The metric of the main table's default route on `dev`, if any.
fn main_metric(lab: &Lab, dev: &str) -> Option<u64> {
    lab.routes("main")
        .iter()
        .find(|r| r["dst"] == "default" && r["dev"] == dev)
        .map(|r| r["metric"].as_u64().unwrap_or(0))
}

/// The device of uplinkd's default route in WAN k's table, if any.
fn table_device(lab: &Lab, k: usize) -> Option<String> {
    lab.routes(&lab::wan_id(k).to_string())
        .iter()
        .find(|r| r["dst"] == "default")
        .and_then(|r| r["dev"].as_str().map(str::to_string))
}

/// The device of the default group's nexthop of WAN k, if it is in the group.
fn group_device(lab: &Lab, k: usize) -> Option<String> {
    let id = lab::wan_id(k);
    if !lab.group_members().contains(&id) {
        return None;
    }
    lab.nexthops()
        .into_iter()
        .find(|n| n["id"].as_u64() == Some(u64::from(id)))
        .and_then(|n| n["dev"].as_str().map(str::to_string))
}

/// Watches the group on another thread while `f` runs, then `span` longer.
fn watching<T>(lab: &Lab, span: Duration, f: impl FnOnce() -> T) -> (T, Vec<Vec<u32>>) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let w = sc.spawn(|| {
            let mut bad = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                bad.extend(watch_group(lab, Duration::from_millis(200)));
            }
            bad
        });
        let t = f();
        std::thread::sleep(span);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (t, w.join().expect("watcher"))
    })
}

/// A new metric: netifd replaces its default route; nothing changes for uplinkd, and
/// wan1 never leaves the group.
#[test]
fn netifd_metric_change_is_followed() {
    let Some(s) = setup() else { return };
    let (lab, root) = (&s.lab, &s.root);
    let hooks = lab.dir().join("hooks-4.log");
    let mut d = start(&s, &hooks);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    assert_eq!(main_metric(lab, "wan1"), Some(10));

    let (took, bad) = watching(lab, Duration::from_secs(5), || {
        let t0 = Instant::now();
        uci_reload(root, &["network.wan1.metric=55"]);
        let applied = wait_for(Duration::from_secs(15), || {
            main_metric(lab, "wan1") == Some(55)
        });
        applied.map(|_| t0.elapsed())
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "netifd did not move the route to metric 55: {:?}\nnetifd:\n{}",
            lab.routes("main"),
            root.log("netifd")
        )
    });
    eprintln!(
        "netifd: metric 10 -> 55 in the main table {:.0} ms after `uci set` began; group watched 5 s more",
        took.as_secs_f64() * 1000.0
    );
    assert!(bad.is_empty(), "a WAN left the group: {bad:?}\n{}", d.log());
    assert_eq!(table_gateway(lab, 1).as_deref(), Some("10.20.1.1"));
    assert_eq!(table_device(lab, 1).as_deref(), Some("wan1"));
    let st = lab.status(bin());
    assert_eq!(st["interfaces"]["wan1"]["state"], "up", "{st}");
    assert!(
        disconnected(&hooks).is_empty(),
        "{:?}",
        disconnected(&hooks)
    );
    let log = d.log();
    assert!(
        !log.contains("wan1 no-carrier") && !log.contains("wan1 down"),
        "{log}"
    );
    lab.wait_group(&mut d, &[1, 2], STARTUP);
}

/// A static WAN moved to another port on the same segment: netifd takes the interface
/// down and brings it up on the new device; uplinkd moves its nexthop, table route, rule
/// and pinning there, probes again, and leaves nothing on the old device.
#[test]
fn netifd_device_change_is_followed() {
    let Some(s) = setup() else { return };
    let (lab, root) = (&s.lab, &s.root);
    // A second port on ISP 1's segment: a bridge there holds the old port and the new
    // one, `wan1b` in the router.
    lab.ip("isp1", &["link", "add", "br0", "type", "bridge"]);
    lab.ip("isp1", &["addr", "del", "10.20.1.1/24", "dev", "rtr"]);
    lab.ip("isp1", &["link", "set", "rtr", "master", "br0"]);
    lab.ip("isp1", &["addr", "add", "10.20.1.1/24", "dev", "br0"]);
    lab.ip("isp1", &["link", "set", "br0", "up"]);
    let isp1 = lab.ns("isp1");
    lab.ip(
        "rtr",
        &[
            "link", "add", "wan1b", "type", "veth", "peer", "name", "rtr2", "netns", &isp1,
        ],
    );
    lab.ip("isp1", &["link", "set", "rtr2", "master", "br0"]);
    lab.ip("isp1", &["link", "set", "rtr2", "up"]);
    lab.ip("rtr", &["link", "set", "wan1b", "up"]);

    let hooks = lab.dir().join("hooks-5.log");
    let mut d = start(&s, &hooks);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    assert_eq!(group_device(lab, 1).as_deref(), Some("wan1"));

    let t0 = Instant::now();
    uci_reload(root, &["network.wan1.device=wan1b"]);
    let moved = wait_for(Duration::from_secs(20), || {
        table_device(lab, 1).as_deref() == Some("wan1b")
            && group_device(lab, 1).as_deref() == Some("wan1b")
    });
    let took = moved.map(|_| t0.elapsed()).unwrap_or_else(|| {
        panic!(
            "uplinkd did not follow wan1 to wan1b; objects:\n{}uplinkd:\n{}\nnetifd:\n{}",
            lab.uplinkd_objects(),
            d.log(),
            root.log("netifd")
        )
    });
    eprintln!(
        "netifd: device wan1 -> wan1b followed (table route and group) {:.0} ms after the reload began",
        took.as_secs_f64() * 1000.0
    );
    let st = lab.status(bin());
    assert_eq!(st["interfaces"]["wan1"]["device"], "wan1b", "{st}");
    assert_eq!(table_gateway(lab, 1).as_deref(), Some("10.20.1.1"));
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let st = lab.status(bin());
    assert_eq!(st["interfaces"]["wan1"]["state"], "up", "{st}");
    let objects = lab.uplinkd_objects();
    let stale: Vec<&String> = objects
        .routes
        .iter()
        .chain(&objects.nexthops)
        .chain(&objects.rules)
        .filter(|o| o.contains("\"wan1\""))
        .collect();
    assert!(stale.is_empty(), "objects on the old device: {stale:?}");
    let out = lab.exec("rtr", &["nft", "list", "table", "inet", "uplinkd"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("\"wan1b\"") && !table.contains("\"wan1\""),
        "nft table names the old device or not the new one:\n{table}"
    );
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    eprintln!("uplinkd log:\n{log}");
}
