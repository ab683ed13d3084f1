//! The optional HTTP listener (`globals` option `http_listen`): `/metrics` in the
//! Prometheus text format, `/status.json` and `/`, a self-contained status page.
//!
//! A deliberately small HTTP/1.1 server: one request per connection (`Connection:
//! close`), GET only, the request head capped at [`MAX_HEAD`] bytes, its first byte due
//! within [`FIRST_BYTE_TIMEOUT`] and the whole of it within [`READ_TIMEOUT`], at most
//! [`MAX_CLIENTS`] connections at once and [`MAX_PER_CLIENT`] from one address, so one
//! client's slow heads cannot lock the others out. It runs as tasks on the daemon's
//! executor and asks the event loop for the status like any other front end; the report
//! is kept for [`STATUS_CACHE`], so a flood of requests costs the loop at most one status
//! report per second.
//!
//! A browser on the LAN can be steered at the listener by DNS rebinding (a hostile name
//! that resolves to the router): the `Host` header must therefore name the address the
//! client connected to or one of the `http_host` names, else the answer is 421. Every
//! answer forbids framing, sniffing and caching, and the page may load nothing but
//! itself and `/status.json` (`Content-Security-Policy`).
//!
//! The parsing and routing are pure functions, tested without sockets.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::channel::Sender;
use serde_json::json;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{future, LocalExecutor, Timer};

use crate::control::Call;
use crate::metrics;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once (the shared accept loop of the local front ends).
pub use crate::socket::MAX_CLIENTS;
/// Connections served at once from one client address.
pub const MAX_PER_CLIENT: usize = 4;
/// The first byte of the request must arrive within this time.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole request head must arrive within this time (slow clients are dropped).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A status report is reused for this long.
pub const STATUS_CACHE: Duration = Duration::from_secs(1);
/// Sent with every answer: the page is self-contained (inline script and style) and
/// fetches only `/status.json`.
const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; \
     script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
     X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n";
/// The response must be taken within this time.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After answering, input still arriving is read and dropped up to this much, for up to
/// this long, so that the close does not reset the connection before the client reads.
const DRAIN_MAX: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The status page: the view model shared with the LuCI app (without its comment lines,
/// see build.rs), and the page around it.
const MODEL_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/model.js"));
const PAGE: &str = include_str!("http_page.html");

/// What a request head says, as far as it has arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// No blank line yet.
    Incomplete,
    /// A request line we can route, and the `Host` header if there is one.
    Request {
        method: &'a str,
        target: &'a str,
        host: Option<&'a str>,
    },
    /// Not HTTP/1.x.
    Bad,
}

/// Parse the start of a request: `METHOD SP TARGET SP HTTP/1.x CRLF ... CRLF CRLF`.
pub fn parse_head(buf: &[u8]) -> Head<'_> {
    let end = match find(buf, b"\r\n\r\n").or_else(|| find(buf, b"\n\n")) {
        Some(end) => end,
        None => return Head::Incomplete,
    };
    let head = &buf[..end];
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Head::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty()
                && method.bytes().all(|b| b.is_ascii_uppercase())
                && target.starts_with('/')
                && (version == "HTTP/1.1" || version == "HTTP/1.0") =>
        {
            let mut host = None;
            for line in head[line_end..].split(|&b| b == b'\n').skip(1) {
                let Ok(line) = std::str::from_utf8(line) else {
                    return Head::Bad;
                };
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("host") {
                        if host.is_some() {
                            // Two Host headers: ambiguous, refuse (RFC 9112 §3.2).
                            return Head::Bad;
                        }
                        host = Some(value.trim());
                    }
                }
            }
            Head::Request {
                method,
                target,
                host,
            }
        }
        _ => Head::Bad,
    }
}

/// Whether a request's `Host` is one this listener answers to: the address the client
/// connected to (`local`, port optional) or a configured name. No `Host` at all is
/// accepted (HTTP/1.0 tools, scrapers): a browser always sends one.
pub fn host_allowed(host: Option<&str>, local: SocketAddr, names: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let host = host.to_ascii_lowercase();
    // Split off a port: `name:port`, `[v6]:port`, `a.b.c.d:port`; a bare IPv6 address
    // has more than one colon and no port.
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, Some(p)),
        _ => (host.as_str(), None),
    };
    if port.is_some_and(|p| p.parse::<u16>().ok() != Some(local.port())) {
        return false;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().ok() == Some(local.ip()) {
        return true;
    }
    // Only this host reaches a loopback listener, and no rebinding name is "localhost".
    if bare == "localhost" && local.ip().is_loopback() {
        return true;
    }
    names.iter().any(|n| n == name || n == &host)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The three resources.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Status,
    Page,
}

/// Route a request, or the status code refusing it (404, 405).
pub fn route(method: &str, target: &str) -> Result<Route, u16> {
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let r = match path {
        "/metrics" => Route::Metrics,
        "/status.json" => Route::Status,
        "/" | "/index.html" => Route::Page,
        _ => return Err(404),
    };
    if method != "GET" {
        return Err(405);
    }
    Ok(r)
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A complete response with `Connection: close`.
pub fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {SECURITY_HEADERS}Connection: close\r\n",
        reason(code),
        body.len()
    );
    if code == 405 {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn error(code: u16) -> Vec<u8> {
    let body = format!("{code} {}\n", reason(code));
    response(code, "text/plain; charset=utf-8", body.as_bytes())
}

/// The status page with the view model inlined.
pub fn page() -> String {
    PAGE.replace("/*MODEL*/", MODEL_JS)
}

/// Handle on the listening task; dropping it stops the listener.
pub struct Server {
    pub addr: SocketAddr,
    /// The `http_host` names it answers to.
    pub hosts: Vec<String>,
    _task: smol::Task<()>,
}

/// What the connections of one listener share.
struct Shared {
    calls: Sender<Call>,
    page: Rc<str>,
    hosts: Vec<String>,
    /// Open connections per client address.
    per_client: RefCell<HashMap<IpAddr, usize>>,
    /// The last status report and when it was made.
    status: RefCell<Option<(Instant, serde_json::Value)>>,
}

/// Counts one connection of a client while it lives.
struct ClientSlot {
    shared: Rc<Shared>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(shared: &Rc<Shared>, ip: IpAddr) -> Option<ClientSlot> {
        let mut map = shared.per_client.borrow_mut();
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.shared.per_client.borrow_mut();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Server {
    /// Bind `addr` and serve on `ex`, asking the event loop behind `calls` for status;
    /// `hosts` are the names (`http_host`) accepted in `Host` besides the address.
    pub fn start(
        ex: &Rc<LocalExecutor<'static>>,
        addr: SocketAddr,
        hosts: Vec<String>,
        calls: Sender<Call>,
    ) -> io::Result<Server> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::try_from(std_listener)?;
        let shared = Rc::new(Shared {
            calls,
            page: page().into(),
            hosts: hosts.clone(),
            per_client: RefCell::new(HashMap::new()),
            status: RefCell::new(None),
        });
        let listener = Rc::new(listener);
        let admit = shared.clone();
        let task = crate::socket::accept_loop(
            ex,
            "http",
            // A client over its share is closed here, before it counts against the
            // listener's total.
            move || {
                let l = listener.clone();
                let shared = admit.clone();
                async move {
                    loop {
                        let (stream, peer) = l.accept().await?;
                        match ClientSlot::take(&shared, peer.ip()) {
                            Some(slot) => return Ok((stream, slot)),
                            None => log::debug!(
                                "http: more than {MAX_PER_CLIENT} connections from {}",
                                peer.ip()
                            ),
                        }
                    }
                }
            },
            move |(stream, slot): (TcpStream, ClientSlot)| {
                let shared = shared.clone();
                async move {
                    let _slot = slot;
                    serve(stream, &shared).await
                }
            },
        );
        Ok(Server {
            addr,
            hosts,
            _task: task,
        })
    }
}

/// What a request asks for, or why it is refused.
enum Request {
    Route(Route),
    Refuse(Vec<u8>),
    /// The client left or was too slow to say anything.
    Gone,
}

/// Read a request head, within [`FIRST_BYTE_TIMEOUT`] for its first byte and
/// [`READ_TIMEOUT`] for all of it.
async fn read_request(stream: &mut TcpStream, hosts: &[String]) -> io::Result<Request> {
    let local = stream.local_addr()?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let start = Instant::now();
    loop {
        match parse_head(&buf) {
            Head::Request {
                method,
                target,
                host,
            } => {
                if !host_allowed(host, local, hosts) {
                    return Ok(Request::Refuse(error(421)));
                }
                return Ok(match route(method, target) {
                    Ok(r) => Request::Route(r),
                    Err(code) => Request::Refuse(error(code)),
                });
            }
            Head::Bad => return Ok(Request::Refuse(error(400))),
            Head::Incomplete if buf.len() >= MAX_HEAD => return Ok(Request::Refuse(error(431))),
            Head::Incomplete => {}
        }
        let limit = match buf.is_empty() {
            true => FIRST_BYTE_TIMEOUT,
            false => READ_TIMEOUT,
        };
        let left = limit.saturating_sub(start.elapsed());
        let read = future::or(async { stream.read(&mut chunk).await.map(Some) }, async {
            Timer::after(left).await;
            Ok(None)
        })
        .await?;
        match read {
            // Nothing at all: not worth an answer.
            None if buf.is_empty() => return Ok(Request::Gone),
            None => return Ok(Request::Refuse(error(408))),
            Some(0) => return Ok(Request::Gone),
            Some(n) => {
                let room = MAX_HEAD + 4 - buf.len().min(MAX_HEAD + 4);
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The status report, from the cache when it is younger than [`STATUS_CACHE`].
async fn status(shared: &Shared) -> Option<serde_json::Value> {
    if let Some((at, v)) = shared.status.borrow().as_ref() {
        if at.elapsed() < STATUS_CACHE {
            return Some(v.clone());
        }
    }
    let v = Call::send(&shared.calls, "status".into(), json!({}))
        .await
        .ok()?;
    *shared.status.borrow_mut() = Some((Instant::now(), v.clone()));
    Some(v)
}

async fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let out = match read_request(&mut stream, &shared.hosts).await? {
        Request::Gone => return Ok(()),
        Request::Refuse(refusal) => refusal,
        Request::Route(Route::Page) => {
            response(200, "text/html; charset=utf-8", shared.page.as_bytes())
        }
        Request::Route(route) => match status(shared).await {
            Some(status) if route == Route::Metrics => response(
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&status).as_bytes(),
            ),
            Some(status) => response(200, "application/json", status.to_string().as_bytes()),
            None => error(503),
        },
    };
    let written = future::or(async { stream.write_all(&out).await.map(Some) }, async {
        Timer::after(WRITE_TIMEOUT).await;
        Ok(None)
    })
    .await?;
    if written.is_some() {
        let _ = stream.flush().await;
        // Let the client read everything before the close: closing with unread input
        // (a refused oversized request) would reset the connection and lose the
        // answer. Discard what is still coming, within bounds.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut left = DRAIN_MAX;
        let mut chunk = [0u8; 2048];
        let drain = async {
            while left > 0 {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        future::or(drain, async {
            Timer::after(DRAIN_TIME).await;
        })
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_or_wait_or_fail() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Head::Incomplete
        );
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Head::Request {
                method: "GET",
                target: "/metrics",
                host: Some("x"),
            }
        );
        assert_eq!(
            parse_head(b"POST /?a=b HTTP/1.0\n\n"),
            Head::Request {
                method: "POST",
                target: "/?a=b",
                host: None,
            }
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nhOsT:  192.0.2.1:80 \r\n\r\n"),
            Head::Request {
                method: "GET",
                target: "/",
                host: Some("192.0.2.1:80"),
            }
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Head::Bad
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Head::Bad, "{bad:?}");
        }
    }

    #[test]
    fn only_get_on_three_paths() {
        assert_eq!(route("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(route("GET", "/status.json?x=1"), Ok(Route::Status));
        assert_eq!(route("GET", "/"), Ok(Route::Page));
        assert_eq!(route("POST", "/metrics"), Err(405));
        assert_eq!(route("HEAD", "/"), Err(405));
        assert_eq!(route("DELETE", "/status.json"), Err(405));
        assert_eq!(route("GET", "/etc/passwd"), Err(404));
        assert_eq!(route("GET", "/metrics/"), Err(404));
    }

    #[test]
    fn host_must_name_the_listener() {
        let local: SocketAddr = "192.168.1.1:9110".parse().unwrap();
        let names = vec!["router.lan".to_string()];
        let ok = |h| host_allowed(h, local, &names);
        assert!(ok(None));
        assert!(ok(Some("192.168.1.1")));
        assert!(ok(Some("192.168.1.1:9110")));
        assert!(ok(Some("Router.LAN:9110")));
        assert!(ok(Some("router.lan")));
        assert!(!ok(Some("192.168.1.1:80")), "another port");
        assert!(!ok(Some("evil.example")), "DNS rebinding");
        assert!(!ok(Some("evil.example:9110")));
        assert!(!ok(Some("192.168.1.2")));
        assert!(!ok(Some("")));
        let v6: SocketAddr = "[fd00::1]:9110".parse().unwrap();
        assert!(host_allowed(Some("[fd00::1]:9110"), v6, &[]));
        assert!(host_allowed(Some("[FD00::1]"), v6, &[]));
        assert!(!host_allowed(Some("[fd00::2]:9110"), v6, &[]));
        let lo: SocketAddr = "127.0.0.1:9110".parse().unwrap();
        assert!(host_allowed(Some("localhost:9110"), lo, &[]));
        assert!(!ok(Some("localhost")), "not a loopback listener");
    }

    #[test]
    fn responses_carry_the_security_headers() {
        let r = String::from_utf8(response(200, "text/html", b"x")).unwrap();
        for h in [
            "\r\nContent-Security-Policy: default-src 'none';",
            "frame-ancestors 'none'\r\n",
            "\r\nX-Frame-Options: DENY\r\n",
            "\r\nX-Content-Type-Options: nosniff\r\n",
            "\r\nCache-Control: no-store\r\n",
        ] {
            assert!(r.contains(h), "{h} missing in {r}");
        }
        let r = String::from_utf8(error(421)).unwrap();
        assert!(r.starts_with("HTTP/1.1 421 Misdirected Request\r\n"), "{r}");
    }

    #[test]
    fn responses_are_framed() {
        let r = String::from_utf8(response(405, "text/plain", b"no")).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nAllow: GET\r\n") && r.contains("Content-Length: 2\r\n"));
        assert!(r.ends_with("\r\n\r\nno"));
        let r = String::from_utf8(error(431)).unwrap();
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    }

    #[test]
    fn page_is_self_contained() {
        let p = page();
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(!p.contains("/*MODEL*/"));
        assert!(p.contains("function cardsHtml"));
        // Nothing is fetched from elsewhere.
        for fetched in ["src=", "<link", "@import", "url(", "https://"] {
            assert!(!p.contains(fetched), "{fetched}");
        }
    }
}
