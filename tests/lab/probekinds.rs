//! The probe kinds that see what ping does not: an ISP behind a captive portal (every
//! web request answered with a redirect to its login page, ICMP fine) takes an
//! http-tracked WAN down and leaves a ping-tracked one up; a resolver that answers
//! SERVFAIL takes a dns-tracked WAN down, and NOERROR brings it back.
use crate::support as lab;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lab::{enter_netns, wait_until, Lab};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);
const FAILOVER: Duration = Duration::from_secs(20);
/// Where each ISP's portal listens; its nat table sends port 80 there.
const PORTAL_PORT: u16 = 8880;

fn state(lab: &Lab, wan: &str) -> String {
    lab.status(bin())["interfaces"][wan]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Stops the test's servers when the test ends, however it ends.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An HTTP server in `ns` on `addr` that answers every request with `answer`.
fn http_server(ns: String, addr: SocketAddr, answer: &'static str, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let listener = enter_netns(&ns).and_then(|()| {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        });
        let listener = match listener {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(answer.as_bytes());
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("server thread")
        .expect("server bound");
}

/// A resolver in `ns` on `addr`: answers each query with its question and the rcode
/// held in `rcode`.
fn dns_server(ns: String, addr: SocketAddr, rcode: Arc<AtomicU8>, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let sock = enter_netns(&ns).and_then(|()| {
            let s = UdpSocket::bind(addr)?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
        });
        let sock = match sock {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] = 0x81; // QR, RD
            answer[3] = 0x80 | rcode.load(Ordering::Relaxed); // RA, rcode
            let _ = sock.send_to(&answer, peer);
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("server thread")
        .expect("server bound");
}

#[test]
fn a_captive_portal_takes_the_http_wan_down_but_not_the_ping_wan() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    // The real internet: the targets answer the generate_204 check.
    for t in lab::TARGETS {
        http_server(
            lab.ns("inet"),
            SocketAddr::from((t, 80)),
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            stop.0.clone(),
        );
    }
    // Each ISP's portal, idle until its nat table sends web traffic there.
    for k in 1..=2 {
        http_server(
            lab.ns(&format!("isp{k}")),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORTAL_PORT)),
            "HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/login\r\nContent-Length: 0\r\n\r\n",
            stop.0.clone(),
        );
    }
    let http = "option track_method 'http'";
    let cfg = lab::config_with(&[1, 1], lab::FAST, &[http, ""], "");
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);
    let status = lab.status(bin());
    assert_eq!(status["interfaces"]["wan1"]["targets"][0]["method"], "http");

    // Both ISPs turn into captive portals: pings still pass, web requests are redirected.
    for k in 1..=2 {
        lab.nft(
            &format!("isp{k}"),
            &format!(
                "table ip portal {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
                 tcp dport 80 redirect to :{PORTAL_PORT}\n }}\n}}\n"
            ),
        );
    }
    let down = wait_until(FAILOVER, Duration::from_millis(200), || {
        state(&lab, "wan1") == "down"
    });
    assert!(
        down.is_ok(),
        "behind a portal the http WAN is {}; log:\n{}",
        state(&lab, "wan1"),
        d.log()
    );
    assert_eq!(state(&lab, "wan2"), "up", "the ping WAN stays up");
    let status = lab.status(bin());
    assert_eq!(
        status["interfaces"]["wan1"]["targets"][0]["last_error"], "HTTP 302",
        "{status:#}"
    );
    assert!(lab.in_group(2) && !lab.in_group(1));

    for k in 1..=2 {
        lab.nft(&format!("isp{k}"), "delete table ip portal\n");
    }
    lab.wait_group(&mut d, &[1, 2], FAILOVER);
}

#[test]
fn a_resolver_answering_servfail_takes_the_dns_wan_down() {
    if crate::skip() {
        return;
    }
    let lab = Lab::new(2);
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let rcode = Arc::new(AtomicU8::new(0));
    for t in lab::TARGETS {
        dns_server(
            lab.ns("inet"),
            SocketAddr::from((t, 53)),
            rcode.clone(),
            stop.0.clone(),
        );
    }
    let dns = "option track_method 'dns'";
    let cfg = lab::config_with(&[1, 1], lab::FAST, &[dns, ""], "");
    let mut d = lab.start_daemon(bin(), &cfg, &[]);
    lab.wait_group(&mut d, &[1, 2], STARTUP);

    rcode.store(2, Ordering::Relaxed); // SERVFAIL
    let down = wait_until(FAILOVER, Duration::from_millis(200), || {
        state(&lab, "wan1") == "down"
    });
    assert!(
        down.is_ok(),
        "with SERVFAIL answers the dns WAN is {}; log:\n{}",
        state(&lab, "wan1"),
        d.log()
    );
    assert_eq!(state(&lab, "wan2"), "up", "the ping WAN stays up");
    let status = lab.status(bin());
    assert_eq!(
        status["interfaces"]["wan1"]["targets"][0]["last_error"], "SERVFAIL",
        "{status:#}"
    );

    rcode.store(0, Ordering::Relaxed); // NOERROR
    lab.wait_group(&mut d, &[1, 2], FAILOVER);
    let status = lab.status(bin());
    assert!(status["interfaces"]["wan1"]["targets"][0]
        .get("last_error")
        .is_none());
}
