//! The HTTP listener (`http_listen`) in the lab: `/metrics` parses with a real
//! Prometheus parser and agrees with `uplinkd status --json` before and after an ISP
//! breaks; `/status.json` and `/` are served; anything but GET on the three paths, an
//! unknown path, a malformed or oversized request head, a foreign `Host` are refused;
//! one client's slow heads do not lock out another.
use crate::support as lab;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab::{wait_until, Break, Lab};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const LISTEN: &str = "127.0.0.1:9110";

/// Send `request` to the daemon's listener from inside the router namespace; the status
/// code and body of the answer.
fn http(lab: &Lab, request: Vec<u8>) -> (u16, String) {
    let raw = lab::in_netns(&lab.ns("rtr"), move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(LISTEN)?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(&request)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })
    .expect("enter the router namespace")
    .expect("HTTP exchange");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(head.contains("Connection: close"), "{head}");
    (code, body.to_string())
}

fn get(lab: &Lab, path: &str) -> (u16, String) {
    http(
        lab,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes(),
    )
}

fn status(lab: &Lab) -> Value {
    lab.status(bin())
}

/// Metrics without the one series that moves with the clock.
fn steady(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| !l.starts_with("uplinkd_wan_state_age_seconds{"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `/metrics` and `status --json` taken at the same moment (retried until no probe
/// round lands between them), checked by the real parser against each other. The
/// listener reuses a status report for up to a second, so `/metrics` may be older than
/// the status taken after it: a mismatch is retried too, and only the last one fails.
fn check_metrics_match_status(lab: &Lab) {
    let mut last = String::new();
    for _ in 0..40 {
        let (code, m1) = get(lab, "/metrics");
        assert_eq!(code, 200, "{m1}");
        let s = status(lab);
        let (_, m2) = get(lab, "/metrics");
        if steady(&m1) != steady(&m2) {
            last = format!("metrics never steady across a status request; last:\n{m1}");
            continue;
        }
        let prom = lab.write_file("metrics.prom", &m1);
        let json = lab.write_file("status.json", &s.to_string());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("tests/metrics.sh"))
            .arg(&prom)
            .arg("--expect-json")
            .arg(&json)
            .output()
            .expect("run tests/metrics.sh");
        if out.status.success() {
            return;
        }
        last = format!(
            "metrics do not parse or do not match status:\n{}{}\n{m1}\n{s:#}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{last}");
}

#[test]
fn http_listener_serves_metrics_status_and_page_and_refuses_the_rest() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let cfg = lab::config_with(
        &[1, 1],
        lab::FAST,
        &["", ""],
        &format!("option http_listen '{LISTEN}'"),
    );
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], Duration::from_secs(15));
    // Targets have answered: RTT series exist.
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        get(&lab, "/metrics")
            .1
            .contains("uplinkd_probe_rtt_seconds{")
    })
    .expect("RTT is reported");
    check_metrics_match_status(&lab);
    let (_, m) = get(&lab, "/metrics");
    assert!(
        m.contains("uplinkd_wan_state{wan=\"wan2\",state=\"up\"} 1"),
        "{m}"
    );

    // Break ISP 2: down in the metrics, and still the same as status.
    lab.break_isp(2, Break::Blackhole);
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        get(&lab, "/metrics")
            .1
            .contains("uplinkd_wan_state{wan=\"wan2\",state=\"down\"} 1")
    })
    .expect("wan2 goes down in /metrics");
    check_metrics_match_status(&lab);
    let (_, m) = get(&lab, "/metrics");
    assert!(
        m.contains("uplinkd_transitions_total{wan=\"wan2\",to=\"down\"} 1"),
        "{m}"
    );
    assert!(m.contains("uplinkd_wan_up{wan=\"wan2\"} 0"), "{m}");
    assert!(
        m.contains("uplinkd_flow_share{wan=\"wan1\",policy=\"balanced\"} 1"),
        "{m}"
    );

    // /status.json is the status report; / is the page.
    let (code, body) = get(&lab, "/status.json?pretty=0");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("status.json is JSON");
    assert_eq!(v["interfaces"]["wan2"]["state"], "down");
    assert!(v["interfaces"]["wan1"]["history"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    let (code, body) = get(&lab, "/");
    assert_eq!(code, 200);
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains("cardsHtml"));

    // Refusals.
    for (req, want) in [
        (
            &b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            405,
        ),
        (b"DELETE /status.json HTTP/1.1\r\n\r\n", 405),
        (b"HEAD / HTTP/1.1\r\n\r\n", 405),
        (b"GET /etc/passwd HTTP/1.1\r\n\r\n", 404),
        (b"GET metrics HTTP/1.1\r\n\r\n", 400),
        // DNS rebinding: a name that is not the listener's.
        (
            b"GET /status.json HTTP/1.1\r\nHost: evil.example:9110\r\n\r\n",
            421,
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ] {
        let (code, body) = http(&lab, req.to_vec());
        assert_eq!(code, want, "{req:?}: {body}");
    }
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 20_000 {
        big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let (code, _) = http(&lab, big);
    assert_eq!(code, 431, "oversized head");

    // A client that never finishes its head is answered 408 and dropped (after the
    // read timeout); meanwhile others are served.
    let ns = lab.ns("rtr");
    let slow = std::thread::spawn(move || {
        lab::in_netns(&ns, || -> std::io::Result<String> {
            let mut s = TcpStream::connect(LISTEN)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
    });
    assert_eq!(
        get(&lab, "/metrics").0,
        200,
        "served while a slow client waits"
    );
    let answer = slow
        .join()
        .expect("slow client")
        .expect("netns")
        .expect("slow read");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");

    // The daemon is still fine and still routing.
    assert!(d.wait_exit(Duration::ZERO).is_none(), "the daemon died");
    assert_eq!(status(&lab)["interfaces"]["wan1"]["state"], "up");
}

/// Opens `n` connections to `addr` that each send a few bytes of a head and then stall.
fn slow_heads(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").ok()?;
            Some(s)
        })
        .collect()
}

#[test]
fn one_clients_slow_heads_do_not_lock_out_another() {
    if crate::skip() {
        return;
    }
    const LAN_LISTEN: &str = "192.168.77.1:9110";
    let lab = Lab::new(1);
    let cfg = lab::config_with(
        &[1],
        lab::FAST,
        &[""],
        &format!("option http_listen '{LAN_LISTEN}'"),
    );
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1], Duration::from_secs(15));

    // The LAN client holds more slow heads than the listener serves at once in all.
    let held = lab::in_netns(&lab.ns("lan"), || slow_heads(LAN_LISTEN, 40)).expect("netns");
    assert!(held.len() >= 32, "only {} connections opened", held.len());
    // Another client (the router itself, 192.168.77.1) is still served at once.
    let answer = lab::in_netns(&lab.ns("rtr"), || -> std::io::Result<String> {
        let mut s = TcpStream::connect(LAN_LISTEN)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET /status.json HTTP/1.1\r\nHost: 192.168.77.1:9110\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .expect("netns");
    let answer = answer.expect("served while another client holds 40 slow heads");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    for h in [
        "Content-Security-Policy: ",
        "X-Frame-Options: DENY",
        "X-Content-Type-Options: nosniff",
        "Cache-Control: no-store",
    ] {
        assert!(answer.contains(h), "{h} missing: {answer}");
    }
    drop(held);
    assert!(d.wait_exit(Duration::ZERO).is_none(), "the daemon died");
}
