//! The HTTP probe's wire side: the request it sends and the verdict on what came back.
//! Pure; the socket work is in [`crate::sys::probe`].
//!
//! A round passes for a target when its answer starts with an HTTP/1.x status line whose
//! code is `expect_status` and, when `expect_body` is set, the body read within
//! [`MAX_RESPONSE`] bytes contains it. Anything else fails the round with a reason the
//! status report shows (`HTTP 302`, `HTTP 200 without the expected body`, `not HTTP`):
//! a captive portal that redirects (302) or serves its login page (200 where 204 is
//! expected) is a failed round though the path carries packets.

/// At most this many bytes of an answer are read: enough for a status line, headers
/// and the start of a body; anything after it is never looked at.
pub const MAX_RESPONSE: usize = 4096;

/// What a good answer looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect<'a> {
    /// 0: any status.
    pub status: u16,
    pub body: Option<&'a str>,
}

/// The verdict on the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Read on (the answer is incomplete and the connection still open).
    More,
    Pass,
    Fail(String),
}

/// `GET path HTTP/1.1` with `Host: host` and `Connection: close`. `path` and `host`
/// were checked by the configuration parser (no spaces, no control characters).
pub fn request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: uplinkd\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
}

/// The `Host` header for `target` when none is configured: the address, IPv6 in
/// brackets (RFC 7230 §5.4, RFC 3986 §3.2.2).
pub fn default_host(target: std::net::IpAddr) -> String {
    match target {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Judge `data`, the first bytes of the answer (at most [`MAX_RESPONSE`]); `closed` when
/// nothing more will come (the peer closed, or the cap was reached).
pub fn verdict(data: &[u8], closed: bool, expect: &Expect) -> Verdict {
    let Some(line_end) = find(data, b"\r\n").or_else(|| find(data, b"\n")) else {
        let not_http = !data.is_empty() && !b"HTTP/1.".starts_with(&data[..data.len().min(7)]);
        return if closed || data.len() >= MAX_RESPONSE || not_http {
            Verdict::Fail("not HTTP".into())
        } else {
            Verdict::More
        };
    };
    let Some(status) = status_code(&data[..line_end]) else {
        return Verdict::Fail("not HTTP".into());
    };
    if status != expect.status && expect.status != 0 {
        return Verdict::Fail(format!("HTTP {status}"));
    }
    let Some(want) = expect.body else {
        return Verdict::Pass;
    };
    let body = find(data, b"\r\n\r\n")
        .map(|i| &data[i + 4..])
        .or_else(|| find(data, b"\n\n").map(|i| &data[i + 2..]));
    match body {
        Some(b) if find(b, want.as_bytes()).is_some() => Verdict::Pass,
        _ if closed || data.len() >= MAX_RESPONSE => {
            Verdict::Fail(format!("HTTP {status} without the expected body"))
        }
        _ => Verdict::More,
    }
}

/// The code of `HTTP/1.x NNN reason` (RFC 7230 §3.1.2).
fn status_code(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&c| c != b' ' && c != b'\r')
    {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E204: Expect = Expect {
        status: 204,
        body: None,
    };

    #[test]
    fn a_204_passes_and_a_portal_fails() {
        let ok = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(verdict(ok, false, &E204), Verdict::Pass);
        // A captive portal's redirect (what the lab's portal answers).
        let portal = b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/login\r\n\r\n";
        assert_eq!(
            verdict(portal, true, &E204),
            Verdict::Fail("HTTP 302".into())
        );
        // Its login page where 204 is expected.
        let page = b"HTTP/1.0 200 OK\r\n\r\n<html>login</html>";
        assert_eq!(verdict(page, true, &E204), Verdict::Fail("HTTP 200".into()));
    }

    #[test]
    fn partial_answers_wait_for_more() {
        assert_eq!(verdict(b"", false, &E204), Verdict::More);
        assert_eq!(verdict(b"HTTP/1.1 20", false, &E204), Verdict::More);
        assert_eq!(
            verdict(b"HTTP/1.1 20", true, &E204),
            Verdict::Fail("not HTTP".into())
        );
        assert_eq!(
            verdict(b"SSH-2.0-OpenSSH", false, &E204),
            Verdict::Fail("not HTTP".into())
        );
        assert_eq!(
            verdict(b"HTTP/1.1 2040 x\r\n", false, &E204),
            Verdict::Fail("not HTTP".into())
        );
        assert_eq!(verdict(b"HTTP/1.1 204\r\n", false, &E204), Verdict::Pass);
    }

    #[test]
    fn the_body_must_contain_the_expected_text() {
        let want = Expect {
            status: 200,
            body: Some("success"),
        };
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        assert_eq!(verdict(head, false, &want), Verdict::More);
        let mut all = head.to_vec();
        all.extend_from_slice(b"<HTML>Success</HTML>");
        assert_eq!(
            verdict(&all, true, &want),
            Verdict::Fail("HTTP 200 without the expected body".into())
        );
        all.extend_from_slice(b"success\n");
        assert_eq!(verdict(&all, false, &want), Verdict::Pass);
        // The text in a header does not count.
        let in_header = b"HTTP/1.1 200 OK\r\nX: success\r\n\r\nnope";
        assert_eq!(
            verdict(in_header, true, &want),
            Verdict::Fail("HTTP 200 without the expected body".into())
        );
    }

    #[test]
    fn requests_name_the_host() {
        assert_eq!(
            request("/generate_204", "192.0.2.1"),
            "GET /generate_204 HTTP/1.1\r\nHost: 192.0.2.1\r\nUser-Agent: uplinkd\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            default_host("2001:db8::1".parse().unwrap()),
            "[2001:db8::1]"
        );
    }
}
