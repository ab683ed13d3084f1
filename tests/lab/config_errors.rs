//! Bad configs: `check` names file, line and option; the daemon refuses to start with one
//! and keeps its running state when handed one on SIGHUP.
use crate::support as lab;

use std::path::Path;
use std::time::Duration;

use lab::{wait_until, Break, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

/// A broken variant of the standard config: `from` replaced by `to`, with the 1-based
/// line of the change and the option that must be named (if the error is about one).
struct Broken {
    text: String,
    line: usize,
    option: Option<&'static str>,
}

fn broken(from: &str, to: &str, option: Option<&'static str>) -> Broken {
    let good = lab::config(&[3, 1, 1], lab::FAST);
    let at = good
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in the config"));
    let line = good[..at].matches('\n').count() + 1;
    Broken {
        text: good.replacen(from, to, 1),
        line,
        option,
    }
}

fn cases() -> Vec<Broken> {
    vec![
        broken(
            "option interval '0.5'",
            "option interval 'soon'",
            Some("interval"),
        ),
        broken("option weight '3'", "option weight 'heavy'", Some("weight")),
        broken(
            "option interface 'wan3'",
            "option interface 'wan9'",
            Some("interface"),
        ),
        broken(
            "option down '3'",
            "option track_method 'pigeon'",
            Some("track_method"),
        ),
        // Unterminated quote: a syntax error, no option to name.
        broken("option device 'wan2'", "option device 'wan2", None),
    ]
}

#[test]
fn check_accepts_a_good_config() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(1);
    let path = lab.write_file("good.conf", &lab::config(&[3, 1, 1], lab::FAST));
    let out = lab.run_uplinkd(bin(), &["check", "-c", path.to_str().unwrap_or("")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in ["wan1", "wan2", "wan3"] {
        assert_eq!(
            stdout.lines().filter(|l| l.contains(w)).count(),
            1,
            "one line for {w}:\n{stdout}"
        );
    }
}

#[test]
fn check_names_file_line_and_option() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(1);
    for (i, case) in cases().iter().enumerate() {
        let path = lab.write_file(&format!("bad{i}.conf"), &case.text);
        let p = path.to_str().unwrap_or("");
        let out = lab.run_uplinkd(bin(), &["check", "-c", p]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "case {i}: {all}");
        assert!(
            all.contains(&format!("{p}:{}:", case.line)),
            "case {i}: want {p}:{}: in\n{all}",
            case.line
        );
        if let Some(o) = case.option {
            assert!(
                all.contains(&format!("option '{o}'")),
                "case {i}: want option '{o}' in\n{all}"
            );
        }
    }
}

#[test]
fn daemon_refuses_to_start_with_a_bad_config() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    for (i, case) in cases().iter().enumerate() {
        let mut d = lab.start_daemon(bin(), &case.text, &[]);
        let status = d.wait_exit(Duration::from_secs(5));
        let log = d.log();
        match status {
            None => panic!("case {i}: still running with a bad config; log:\n{log}"),
            Some(s) => assert!(!s.success(), "case {i}: exit {s}"),
        }
        assert!(
            log.contains(&format!(":{}:", case.line)),
            "case {i}: no file:line in\n{log}"
        );
        let objs = lab.uplinkd_objects();
        assert!(objs.is_empty(), "case {i}: created\n{objs}");
    }
}

#[test]
fn bad_config_on_sighup_keeps_the_running_state() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(3);
    let mut d = lab.start_daemon(bin(), &lab::config(&[3, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    let before = lab.uplinkd_objects();

    let case = &cases()[0];
    d.write_config(&case.text);
    d.reload();
    let path = d.config_path().to_str().unwrap_or("").to_string();
    let want = format!("{path}:{}:", case.line);
    let r = wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        d.log().contains(&want)
    });
    assert!(r.is_ok(), "no {want} in the log:\n{}", d.log());
    std::thread::sleep(Duration::from_secs(1));
    assert!(d.is_running(), "log:\n{}", d.log());
    assert_eq!(
        lab.uplinkd_objects(),
        before,
        "state changed after a rejected reload"
    );

    // Still working: a carrier loss is still acted upon.
    lab.break_isp(3, Break::Carrier);
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(3));
}
