//! luci-app-uplinkd in the real LuCI: uhttpd, rpcd and ucode LuCI built from OpenWrt's
//! sources (tests/upstream), chrooted in the lab's router namespace, with uplinkd running
//! there on the root's ubusd and WANs that are up, down, degraded and drained. Headless
//! Chromium (tests/luci/browser.js, driven through playwright-core) logs in as root and
//! as a read-only user, reads the status page and the overview widget, presses the
//! buttons, and uses the config page on a configuration converted from mwan3. Screenshots
//! go to `<target>/test-artifacts/luci/` (printed).
//!
//! Skipped with one line when the upstream sources (`../shared/upstream`, or
//! `$UPLINKD_UPSTREAM`) or Chromium are absent.
use crate::support as lab;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lab::{wait_until, Break, Lab, TARGETS};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/upstream").join(name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn must(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The chrooted userland; torn down (everything in it killed) when dropped.
struct Root {
    dir: String,
}

impl Root {
    /// A lib.sh function through ctl.sh. Its output goes through a file, not a pipe: the
    /// daemons it starts in the background keep the shell's descriptors open.
    fn ctl(&self, args: &[&str]) -> Output {
        let out = Path::new(&self.dir).with_extension("ctl.log");
        let file = fs::File::create(&out).expect("ctl log");
        let status = Command::new(script("ctl.sh"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .status()
            .expect("spawn ctl.sh");
        let text = fs::read(&out).unwrap_or_default();
        let _ = fs::remove_file(&out);
        Output {
            status,
            stdout: Vec::new(),
            stderr: text,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        Path::new(&self.dir)
            .join("root")
            .join(p.trim_start_matches('/'))
    }

    /// What a failed browser step needs to be understood: the last lines each daemon of
    /// the root logged, and the processes running in it (a stuck LuCI request shows as
    /// an old ucode or cgi process).
    fn diagnose(&self) -> String {
        let mut text = String::new();
        let logs = Path::new(&self.dir).join("log");
        let mut names: Vec<_> = fs::read_dir(&logs)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for log in names {
            let body = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            text.push_str(&format!(
                "--- {} (last {} lines)\n",
                log.display(),
                tail.len()
            ));
            for l in tail {
                text.push_str(l);
                text.push('\n');
            }
        }
        let root = fs::canonicalize(Path::new(&self.dir).join("root")).unwrap_or_default();
        text.push_str("--- processes in the root (pid, seconds, state, wait, command)\n");
        for pid in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let p = pid.path();
            if fs::read_link(p.join("root")).ok().as_deref() != Some(root.as_path()) {
                continue;
            }
            let cmd = fs::read(p.join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = fs::read_to_string(p.join("stat")).unwrap_or_default();
            let state = stat
                .rsplit(") ")
                .next()
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("?");
            let wchan = fs::read_to_string(p.join("wchan")).unwrap_or_default();
            let age = process_age(&stat);
            text.push_str(&format!(
                "{} {age} {state} {wchan} {cmd}\n",
                pid.file_name().to_string_lossy()
            ));
        }
        text
    }
}

/// Seconds since a process started, from its /proc stat line (start time in clock ticks
/// since boot; 100 ticks a second on the kernels we run on).
fn process_age(stat: &str) -> String {
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    let start: f64 = fields.get(19).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let up: f64 = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split(' ').next().and_then(|f| f.parse().ok()))
        .unwrap_or(0.0);
    format!("{:.0}", up - start / 100.0)
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = run(Command::new(script("ctl.sh")).args(["teardown", &self.dir]));
    }
}

/// uplinkd in the router namespace, killed when dropped.
struct Uplinkd(Child);

impl Drop for Uplinkd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("test-artifacts").join("luci");
    let _ = fs::create_dir_all(&dir);
    dir
}

const ROOT_PASSWORD: &str = "root-secret";
const VIEWER_PASSWORD: &str = "viewer-secret";

/// The mwan3 configuration the config page starts from (converted with import-mwan3):
/// fast probing, quality judged on wan3, rules with comma-joined values and lists.
fn mwan3_config() -> String {
    let mut s = String::from("config globals 'globals'\n\toption mmx_mask '0x3F00'\n");
    for k in 1..=4 {
        s.push_str(&format!(
            "\nconfig interface 'wan{k}'\n\toption enabled '1'\n\toption family 'ipv4'\n"
        ));
        for t in TARGETS {
            s.push_str(&format!("\tlist track_ip '{t}'\n"));
        }
        s.push_str(
            "\toption reliability '1'\n\toption timeout '1'\n\toption interval '1'\n\
             \toption failure_interval '1'\n\toption recovery_interval '1'\n\toption up '2'\n",
        );
        if k == 3 {
            s.push_str(
                "\toption count '2'\n\toption down '20'\n\toption check_quality '1'\n\
                 \toption failure_loss '20'\n\toption recovery_loss '5'\n\
                 \toption failure_latency '1000'\n\toption recovery_latency '500'\n",
            );
        } else {
            s.push_str("\toption count '1'\n\toption down '2'\n");
        }
    }
    for k in 1..=4 {
        s.push_str(&format!(
            "\nconfig member 'wan{k}_m1'\n\toption interface 'wan{k}'\n\toption metric '1'\n\toption weight '1'\n"
        ));
    }
    s.push_str("\nconfig policy 'balanced'\n");
    for k in 1..=4 {
        s.push_str(&format!("\tlist use_member 'wan{k}_m1'\n"));
    }
    s.push_str("\nconfig policy 'wan1_only'\n\tlist use_member 'wan1_m1'\n");
    s.push_str(
        "\nconfig rule 'web'\n\toption proto 'tcp'\n\toption dest_port '80,443'\n\
         \toption dest_ip '192.168.1.0/24,192.168.2.0/24'\n\toption use_policy 'balanced'\n\
         \nconfig rule 'lists'\n\toption proto 'udp'\n\tlist src_ip '10.0.0.0/8'\n\
         \tlist src_ip '172.16.0.0/12'\n\toption dest_port '8000:8100'\n\toption use_policy 'wan1_only'\n\
         \nconfig rule 'default_rule'\n\toption dest_ip '0.0.0.0/0'\n\toption use_policy 'balanced'\n",
    );
    s
}

/// The values of `option`/`list` OPTION in section RULE of a UCI text, in order.
fn uci_values(text: &str, section: &str, option: &str) -> Vec<String> {
    let head = format!("config rule '{section}'");
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("config ") {
            inside = line == head;
        } else if inside {
            // LuCI shows one `option` as the words of its value (L.toArray), a `list` as is.
            if let Some(v) = line.strip_prefix(&format!("option {option} ")) {
                out.extend(v.trim_matches('\'').split_whitespace().map(str::to_string));
            } else if let Some(v) = line.strip_prefix(&format!("list {option} ")) {
                out.push(v.trim_matches('\'').to_string());
            }
        }
    }
    out
}

fn status(lab: &Lab) -> Value {
    lab.status(bin())
}

fn state(s: &Value, wan: &str) -> String {
    s["interfaces"][wan]["state"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// One part of the browser script, in the router namespace; what it saw.
fn browser(lab: &Lab, root: &Root, playwright: &str, shots: &Path, step: &str) -> Value {
    let t0 = std::time::Instant::now();
    let out = lab.exec(
        "rtr",
        &[
            "env",
            &format!("LUCI_STEP={step}"),
            "LUCI_URL=http://127.0.0.1/",
            &format!("LUCI_SHOTS={}", shots.display()),
            &format!("LUCI_PLAYWRIGHT={playwright}"),
            &format!("LUCI_ROOT_PASSWORD={ROOT_PASSWORD}"),
            "LUCI_VIEWER=viewer",
            &format!("LUCI_VIEWER_PASSWORD={VIEWER_PASSWORD}"),
            "node",
            repo().join("tests/luci/browser.js").to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let probe = |url: &str| {
        let o = lab.exec(
            "rtr",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "10",
                "-w",
                "%{http_code} in %{time_total} s",
                url,
            ],
        );
        format!(
            "{url}: {}{}\n",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let answers = || {
        [
            "http://127.0.0.1/luci-static/resources/luci.js",
            "http://127.0.0.1/cgi-bin/luci/",
        ]
        .iter()
        .map(|u| probe(u))
        .collect::<String>()
    };
    let seen: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "browser step {step} failed: {}\nstdout: {text}\nstderr: {}\n{}",
        seen["error"],
        String::from_utf8_lossy(&out.stderr),
        root.diagnose() + &answers()
    );
    eprintln!("luci: {step} ({:.1} s): {seen}", t0.elapsed().as_secs_f64());
    seen
}

#[test]
fn luci_pages_in_real_luci() {
    if crate::skip() {
        return;
    }
    let build = run(Command::new(script("ctl.sh")).arg("build"));
    if build.status.code() == Some(77) {
        eprintln!("{}", String::from_utf8_lossy(&build.stdout).trim());
        return;
    }
    must("building the upstream userland", build);
    if !Path::new("/usr/bin/chromium").exists() {
        eprintln!("luci: /usr/bin/chromium absent (Debian: apt-get install chromium), skipping");
        return;
    }
    let playwright = must(
        "installing playwright-core",
        run(Command::new(script("luci.sh")).arg("playwright")),
    );

    let lab = Lab::new(4);
    let root = Root {
        dir: must("ctl.sh new", run(Command::new(script("ctl.sh")).arg("new"))),
    };
    must(
        "ctl.sh create",
        root.ctl(&["create", &root.dir, &lab.ns("rtr")]),
    );
    must(
        "installing LuCI",
        run(Command::new(script("luci.sh")).args(["install", &root.dir])),
    );
    must(
        "root login",
        run(Command::new(script("luci.sh")).args([
            "login",
            &root.dir,
            "root",
            ROOT_PASSWORD,
            "write",
        ])),
    );
    must(
        "viewer login",
        run(Command::new(script("luci.sh")).args([
            "login",
            &root.dir,
            "viewer",
            VIEWER_PASSWORD,
            "read",
        ])),
    );

    // The configuration converted from mwan3, where LuCI edits it.
    let mwan3 = lab.write_file("mwan3", &mwan3_config());
    let network: String = (1..=4)
        .map(|k| {
            format!(
                "config interface 'wan{k}'\n\toption device 'wan{k}'\n\toption proto 'static'\n\n"
            )
        })
        .collect();
    let network = lab.write_file("network", &network);
    let config = root.path("/etc/config/uplinkd");
    must(
        "import-mwan3",
        run(Command::new(bin())
            .arg("import-mwan3")
            .arg("-c")
            .arg(&mwan3)
            .arg("-n")
            .arg(&network)
            .arg("-o")
            .arg(&config)),
    );
    // A rule as written by hand (or by an older import): comma-joined values in one option.
    let mut imported = fs::read_to_string(&config).expect("imported config");
    imported.push_str(
        "\nconfig rule 'handmade'\n\toption proto 'tcp'\n\toption dest_port '80,443'\n\
         \toption dest_ip '192.168.1.0/24,192.168.2.0/24'\n\toption use_policy 'balanced'\n",
    );
    fs::write(&config, &imported).expect("write config");
    must(
        "check",
        lab.run_uplinkd(bin(), &["check", "-c", config.to_str().unwrap()]),
    );

    eprintln!("luci: LuCI installed in {}", root.dir);
    must("ubusd", root.ctl(&["ubusd", &root.dir]));
    // procd for the `system` object LuCI's header asks for the host name.
    must("procd", root.ctl(&["procd", &root.dir]));
    must("rpcd", root.ctl(&["rpcd", &root.dir]));
    must("uhttpd", root.ctl(&["uhttpd", &root.dir]));

    let log = lab.dir().join("uplinkd.log");
    let mut daemon = Uplinkd(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("rtr")])
            .arg(bin())
            .arg("-c")
            .arg(&config)
            .arg("--stderr")
            .arg("--control-socket")
            .arg(lab.control_socket())
            .arg("--ubus-socket")
            .arg(root.path("/var/run/ubus/ubus.sock"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(lab.dir().join("uplinkd.err")).unwrap())
            .spawn()
            .expect("spawn uplinkd"),
    );
    let log_text = || fs::read_to_string(lab.dir().join("uplinkd.err")).unwrap_or_default();
    must(
        "uplinkd on ubus",
        root.ctl(&["wait_ubus", &root.dir, "uplinkd", "15"]),
    );

    // WANs in four states: wan1 up, wan2 down, wan3 degraded, wan4 drained.
    lab.break_isp(2, Break::Blackhole);
    lab.break_isp(3, Break::Loss(50));
    let want = |s: &Value| {
        state(s, "wan1") == "up" && state(s, "wan2") == "down" && state(s, "wan3") == "degraded"
    };
    let r = wait_until(Duration::from_secs(150), Duration::from_millis(500), || {
        want(&status(&lab))
    });
    assert!(
        r.is_ok(),
        "states never reached: {}\n{}",
        status(&lab),
        log_text()
    );
    must("drain wan4", lab.control(bin(), &["disable", "wan4"]));

    eprintln!("luci: WANs up, down, degraded and drained");
    let shots = artifacts();
    eprintln!("luci: screenshots in {}", shots.display());
    let seen = browser(&lab, &root, &playwright, &shots, "status");
    let cards = seen["cards"].as_array().expect("cards");
    let card = |wan: &str| {
        cards
            .iter()
            .find(|c| c["wan"] == wan)
            .unwrap_or_else(|| panic!("no card for {wan}: {seen}"))
    };
    assert_eq!(card("wan1")["state"], "up");
    assert_eq!(card("wan2")["state"], "down");
    assert!(card("wan3")["state"] == "degraded", "{seen}");
    assert_eq!(card("wan4")["state"], "disabled");
    assert!(card("wan4")["label"].as_str().unwrap().contains("drained"));
    // Numbers: an RTT on the up WAN, lost/sent counters everywhere.
    assert!(
        card("wan1")["text"].as_str().unwrap().contains(" ms"),
        "{seen}"
    );
    assert_eq!(
        card("wan1")["buttons"],
        serde_json::json!(["Probe now", "Drain"])
    );
    assert_eq!(card("wan4")["buttons"], serde_json::json!(["Enable"]));
    assert_eq!(seen["overview"].as_array().map(Vec::len), Some(4), "{seen}");
    assert_eq!(
        seen["readOnlyCards"].as_array().map(Vec::len),
        Some(4),
        "{seen}"
    );
    assert_eq!(
        seen["readOnlyOverview"].as_array().map(Vec::len),
        Some(4),
        "{seen}"
    );
    // Other overview widgets may fail here (their packages' ACLs are not installed); ours not.
    let errors = seen["pageErrors"].as_array().cloned().unwrap_or_default();
    assert!(
        !errors
            .iter()
            .any(|e| e.as_str().unwrap_or("").contains("uplinkd")),
        "errors from the app's pages: {seen}"
    );
    assert_eq!(
        state(&status(&lab), "wan4"),
        "disabled",
        "the read-only user changed wan4"
    );

    // The config page: lists as lists, a good change saved and applied.
    let seen = browser(&lab, &root, &playwright, &shots, "config");
    let items = |field: &str| -> Vec<String> {
        seen["ruleLists"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .and_then(|f| f["items"].as_array())
            .map(|a| {
                a.iter()
                    .map(|i| i.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        items("cbid.uplinkd.lists.src_ip"),
        ["10.0.0.0/8", "172.16.0.0/12"],
        "{seen}"
    );
    // The importer's lists, entry for entry; a comma-joined value stays one entry.
    for (rule, option) in [
        ("web", "dest_ip"),
        ("web", "dest_port"),
        ("lists", "src_ip"),
    ] {
        assert_eq!(
            items(&format!("cbid.uplinkd.{rule}.{option}")),
            uci_values(&imported, rule, option),
            "{rule}.{option}: {seen}"
        );
    }
    assert_eq!(
        items("cbid.uplinkd.handmade.dest_ip"),
        ["192.168.1.0/24,192.168.2.0/24"],
        "{seen}"
    );
    assert_eq!(
        items("cbid.uplinkd.handmade.dest_port"),
        ["80,443"],
        "{seen}"
    );
    let saved = fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains("option weight '7'"),
        "weight not saved:\n{saved}"
    );
    // Every rule keeps its values (LuCI may write an option as the list it means).
    for rule in ["web", "lists", "default_rule", "handmade"] {
        for option in ["src_ip", "dest_ip", "src_port", "dest_port"] {
            assert_eq!(
                uci_values(&saved, rule, option),
                uci_values(&imported, rule, option),
                "{rule}.{option} changed on save:\nbefore:\n{imported}\nafter:\n{saved}"
            );
        }
    }
    let r = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        status(&lab)["interfaces"]["wan2"]["weight"] == 7
    });
    assert!(r.is_ok(), "the daemon did not reload: {}", status(&lab));

    // A change LuCI cannot judge (too few routing tables): the page says the daemon refused.
    let seen = browser(&lab, &root, &playwright, &shots, "apply-bad");
    let text = seen["applyBad"]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("refused") && text.contains("routing table"),
        "{seen}"
    );
    assert_eq!(
        status(&lab)["interfaces"]["wan2"]["weight"],
        7,
        "the running config stays"
    );
    let saved = fs::read_to_string(&config).unwrap();
    assert!(saved.contains("option table_last '1101'"), "{saved}");
    assert!(
        !saved.contains("wan5"),
        "sections added in another session were applied:\n{saved}"
    );

    // No daemon: both places say it is not running (not "access denied", not nothing).
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let seen = browser(&lab, &root, &playwright, &shots, "no-daemon");
    assert!(
        seen["statusPage"]
            .as_str()
            .unwrap_or("")
            .contains("not running"),
        "{seen}"
    );
}
