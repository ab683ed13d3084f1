//! The optional HTTP listener (`globals` option `http_listen`): `/metrics` in the
//! Prometheus text format, `/status.json` and `/`, a self-contained status page.
//!
//! A deliberately small HTTP/1.1 server: one request per connection (`Connection:
//! close`), GET only, the request head capped at [`MAX_HEAD`] bytes and due within
//! [`READ_TIMEOUT`], at most [`MAX_CLIENTS`] connections at once. It runs as tasks on the
//! daemon's executor and asks the event loop for the status like any other front end,
//! so a flood of requests costs the loop one status report per request and nothing else.
//! The parsing and routing are pure functions, tested without sockets.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use smol::channel::Sender;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{future, LocalExecutor, Timer};

use crate::control::Call;
use crate::metrics;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once (the shared accept loop of the local front ends).
pub use crate::socket::MAX_CLIENTS;
/// The whole request head must arrive within this time (slow clients are dropped).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The response must be taken within this time.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After answering, input still arriving is read and dropped up to this much, for up to
/// this long, so that the close does not reset the connection before the client reads.
const DRAIN_MAX: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The status page: the view model shared with the LuCI app, and the page around it.
const MODEL_JS: &str = include_str!(
    "../openwrt-package/luci-app-uplinkd/htdocs/luci-static/resources/uplinkd/model.js"
);
const PAGE: &str = include_str!("http_page.html");

/// What a request head says, as far as it has arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// No blank line yet.
    Incomplete,
    /// A request line we can route.
    Request { method: &'a str, target: &'a str },
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
            Head::Request { method, target }
        }
        _ => Head::Bad,
    }
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
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A complete response with `Connection: close`.
pub fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
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
    _task: smol::Task<()>,
}

impl Server {
    /// Bind `addr` and serve on `ex`, asking the event loop behind `calls` for status.
    pub fn start(
        ex: &Rc<LocalExecutor<'static>>,
        addr: SocketAddr,
        calls: Sender<Call>,
    ) -> io::Result<Server> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::try_from(std_listener)?;
        let page: Rc<str> = page().into();
        let listener = Rc::new(listener);
        let task = crate::socket::accept_loop(
            ex,
            "http",
            move || {
                let l = listener.clone();
                async move { l.accept().await.map(|(s, _)| s) }
            },
            move |stream| {
                let calls = calls.clone();
                let page = page.clone();
                async move { serve(stream, &calls, &page).await }
            },
        );
        Ok(Server { addr, _task: task })
    }
}

/// Read a request head: `Ok(Some(response))` for a refusal, `Ok(None)` when the client
/// left or was too slow; else the route.
async fn read_request(stream: &mut TcpStream) -> io::Result<Result<Route, Option<Vec<u8>>>> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let deadline = Timer::after(READ_TIMEOUT);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        match parse_head(&buf) {
            Head::Request { method, target } => {
                return Ok(route(method, target).map_err(|code| Some(error(code))));
            }
            Head::Bad => return Ok(Err(Some(error(400)))),
            Head::Incomplete if buf.len() >= MAX_HEAD => return Ok(Err(Some(error(431)))),
            Head::Incomplete => {}
        }
        let read = future::or(async { stream.read(&mut chunk).await.map(Some) }, async {
            (&mut deadline).await;
            Ok(None)
        })
        .await?;
        match read {
            None => return Ok(Err(Some(error(408)))),
            Some(0) => return Ok(Err(None)),
            Some(n) => {
                let room = MAX_HEAD + 4 - buf.len().min(MAX_HEAD + 4);
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

async fn serve(mut stream: TcpStream, calls: &Sender<Call>, page: &str) -> io::Result<()> {
    let out = match read_request(&mut stream).await? {
        Err(None) => return Ok(()),
        Err(Some(refusal)) => refusal,
        Ok(Route::Page) => response(200, "text/html; charset=utf-8", page.as_bytes()),
        Ok(route) => match Call::send(calls, "status".into(), json!({})).await {
            Ok(status) if route == Route::Metrics => response(
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&status).as_bytes(),
            ),
            Ok(status) => response(200, "application/json", status.to_string().as_bytes()),
            Err(_) => error(503),
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
                target: "/metrics"
            }
        );
        assert_eq!(
            parse_head(b"POST /?a=b HTTP/1.0\n\n"),
            Head::Request {
                method: "POST",
                target: "/?a=b"
            }
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
