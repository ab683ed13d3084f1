//! The status page (`/` of `http_listen`) in headless Chromium against the daemon in the
//! lab: every WAN card shows the daemon's state before and after ISPs break, and a
//! screenshot is kept (`<target>/test-artifacts/status-page-*.png`). Skipped, with a
//! note, where no Chromium is installed (Debian: `apt-get install chromium`).
use crate::support as lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab::{wait_until, Break, Lab};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
        })
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Load the page in the router namespace; the DOM after its script ran. Also writes a
/// screenshot to `shot`.
fn render(lab: &Lab, chrome: &Path, shot: &Path) -> String {
    let profile = lab.dir().join("chromium-profile");
    let common = |extra: &[String]| -> String {
        let mut args: Vec<String> = vec![
            chrome.to_string_lossy().into_owned(),
            "--headless".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=4000".into(),
            "--window-size=1280,900".into(),
        ];
        args.extend_from_slice(extra);
        args.push("http://127.0.0.1:9110/".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lab.exec("rtr", &refs);
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let _ = common(&[format!("--screenshot={}", shot.display())]);
    common(&["--dump-dom".into()])
}

/// `data-wan` → `data-state` of every card in the rendered DOM, with its label text.
fn cards(dom: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    // Only the rendered cards, not the page's own script text.
    let body = dom.split_once("id=\"cards\"").map_or("", |(_, r)| r);
    let body = body.split_once("<script").map_or(body, |(b, _)| b);
    for part in body.split("class=\"uplinkd-card\"").skip(1) {
        let attr = |name: &str| {
            part.split_once(&format!("{name}=\""))
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default()
        };
        let label = part
            .split_once("class=\"uplinkd-state\"")
            .and_then(|(_, r)| r.split_once('>'))
            .and_then(|(_, r)| r.split_once('<'))
            .map(|(v, _)| v.to_string())
            .unwrap_or_default();
        out.push((attr("data-wan"), attr("data-state"), label));
    }
    out
}

fn status(lab: &Lab) -> Value {
    lab.status(bin())
}

fn check_page(lab: &Lab, chrome: &Path, name: &str, want: &[(&str, &str, &str)]) {
    let shot = artifacts().join(format!("status-page-{name}.png"));
    let dom = render(lab, chrome, &shot);
    let got = cards(&dom);
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(w, s, l)| (w.to_string(), s.to_string(), l.to_string()))
        .collect();
    assert_eq!(got, want, "page cards ({name}); DOM:\n{dom}");
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0),
        "no screenshot at {}",
        shot.display()
    );
}

#[test]
fn status_page_shows_every_wan_state_in_chromium() {
    if crate::skip() {
        return;
    }
    let Some(chrome) = chromium() else {
        eprintln!("no chromium installed: status page not rendered");
        return;
    };
    let lab = Lab::new(3);
    let cfg = lab::config_with(
        &[1, 1, 1],
        lab::FAST,
        &["", "", ""],
        "option http_listen '127.0.0.1:9110'",
    );
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
    check_page(
        &lab,
        &chrome,
        "all-up",
        &[
            ("wan1", "up", "Up"),
            ("wan2", "up", "Up"),
            ("wan3", "up", "Up"),
        ],
    );

    lab.break_isp(2, Break::Blackhole);
    lab.break_isp(3, Break::Carrier);
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        let v = status(&lab);
        v["interfaces"]["wan2"]["state"] == "down"
            && v["interfaces"]["wan3"]["state"] == "no-carrier"
    })
    .expect("wan2 down and wan3 without carrier");
    check_page(
        &lab,
        &chrome,
        "broken",
        &[
            ("wan1", "up", "Up"),
            ("wan2", "down", "Down"),
            ("wan3", "no-carrier", "No carrier"),
        ],
    );
}
