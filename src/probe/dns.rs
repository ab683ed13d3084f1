//! The DNS probe's wire side: one query (RFC 1035 §4.1) and the checked reading of its
//! answer. Pure; the socket work is in [`crate::sys::probe`].
//!
//! A round passes for a target resolver when it answers our query (same ID, QR set,
//! opcode QUERY, the same single question) with rcode NOERROR or NXDOMAIN. NXDOMAIN is
//! an answer: the resolver reached the name's authority and said it does not exist,
//! which proves the path and the resolver as well as an address does. SERVFAIL,
//! REFUSED, FORMERR, NOTIMP and the rest fail the round, as does silence. Whether the
//! answer section holds an address is not checked (a NOERROR without one is still a
//! resolver at work).

/// Largest answer read: a plain UDP DNS message (RFC 1035 §4.2.1).
pub const MAX_ANSWER: usize = 512;
/// Longest query: header, a name of at most 255 bytes, type and class.
pub const MAX_QUERY: usize = 12 + 255 + 4;

/// `A` (RFC 1035 §3.2.2) and `AAAA` (RFC 3596 §2.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Type {
    A,
    Aaaa,
}

impl Type {
    pub fn code(self) -> u16 {
        match self {
            Type::A => 1,
            Type::Aaaa => 28,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Type::A => "A",
            Type::Aaaa => "AAAA",
        }
    }
}

/// Checks a name for `dns_query`: dot-separated labels of 1-63 letters, digits, `-`
/// and `_`, at most 253 characters, an optional final dot.
pub fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return Err(format!("'{name}' is not a DNS name of 1-253 characters"));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "'{name}' has an empty label or one over 63 characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "'{name}' may only hold letters, digits, '-', '_' and dots"
            ));
        }
    }
    Ok(())
}

/// Writes the query for `name` (checked with [`check_name`]) into `buf`; returns its
/// length. Recursion desired, one question, class IN.
pub fn query(id: u16, name: &str, ty: Type, buf: &mut [u8; MAX_QUERY]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = buf.get_mut(n) {
                *slot = b;
                n += 1;
            }
        }
    };
    put(&id.to_be_bytes());
    put(&[0x01, 0x00]); // RD
    put(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        let len = label.len().min(63);
        put(&[len as u8]);
        put(&label.as_bytes()[..len]);
    }
    put(&[0]);
    put(&ty.code().to_be_bytes());
    put(&[0, 1]); // IN
    n
}

/// Why an answer does not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fail {
    /// Not an answer to our query (other ID, a question that differs, malformed): keep
    /// waiting for the real one.
    NotOurs,
    /// Our query, answered with this rcode (RFC 1035 §4.1.1, RFC 6895 §2.3).
    Rcode(u8),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Fail::NotOurs => f.write_str("not an answer to the query"),
            Fail::Rcode(1) => f.write_str("FORMERR"),
            Fail::Rcode(2) => f.write_str("SERVFAIL"),
            Fail::Rcode(4) => f.write_str("NOTIMP"),
            Fail::Rcode(5) => f.write_str("REFUSED"),
            Fail::Rcode(r) => write!(f, "rcode {r}"),
        }
    }
}

/// Reads `answer` as the reply to `query` (the bytes we sent). `Ok` for NOERROR and
/// NXDOMAIN.
pub fn check(query: &[u8], answer: &[u8]) -> Result<(), Fail> {
    // Header: ID, flags, QDCOUNT (our query has exactly one question).
    let (Some(q_head), Some(a_head)) = (query.get(..12), answer.get(..12)) else {
        return Err(Fail::NotOurs);
    };
    let flags = u16::from_be_bytes([a_head[2], a_head[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if a_head[..2] != q_head[..2] || !qr || opcode != 0 || a_head[4..6] != [0, 1] {
        return Err(Fail::NotOurs);
    }
    // The question must be ours, byte for byte except the case of the name (resolvers
    // may echo it in another case, RFC 4343 §4.1; 0x20 randomisation).
    let question = query.get(12..).unwrap_or_default();
    let echoed = answer.get(12..12 + question.len()).ok_or(Fail::NotOurs)?;
    if !question.eq_ignore_ascii_case(echoed) {
        return Err(Fail::NotOurs);
    }
    match (flags & 0xf) as u8 {
        0 | 3 => Ok(()),
        rcode => Err(Fail::Rcode(rcode)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: u16, name: &str, ty: Type) -> Vec<u8> {
        let mut buf = [0u8; MAX_QUERY];
        let n = query(id, name, ty, &mut buf);
        buf[..n].to_vec()
    }

    #[test]
    fn the_query_is_rfc1035() {
        // dig +noedns +noadflag -q example.com -t A: header with RD, one question.
        assert_eq!(
            q(0x1234, "example.com.", Type::A),
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
        );
        assert!(q(1, "a.b", Type::Aaaa).ends_with(&[0, 28, 0, 1]));
    }

    /// An answer to `query`: the question echoed, `rcode`, one A record (compressed name).
    fn answer(query: &[u8], rcode: u8) -> Vec<u8> {
        let mut a = query.to_vec();
        a[2] = 0x81;
        a[3] = 0x80 | rcode;
        a[7] = 1;
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        a
    }

    #[test]
    fn noerror_and_nxdomain_pass_servfail_and_refused_fail() {
        let query = q(7, "example.com", Type::A);
        assert_eq!(check(&query, &answer(&query, 0)), Ok(()));
        assert_eq!(check(&query, &answer(&query, 3)), Ok(()));
        assert_eq!(check(&query, &answer(&query, 2)), Err(Fail::Rcode(2)));
        assert_eq!(check(&query, &answer(&query, 5)), Err(Fail::Rcode(5)));
        assert_eq!(Fail::Rcode(2).to_string(), "SERVFAIL");
        assert_eq!(Fail::Rcode(5).to_string(), "REFUSED");
    }

    #[test]
    fn answers_to_other_queries_are_not_ours() {
        let query = q(7, "example.com", Type::A);
        let mut other_id = answer(&query, 0);
        other_id[1] = 8;
        assert_eq!(check(&query, &other_id), Err(Fail::NotOurs));
        // Our own query reflected back (QR clear).
        assert_eq!(check(&query, &query), Err(Fail::NotOurs));
        let other_type = answer(&q(7, "example.com", Type::Aaaa), 0);
        assert_eq!(check(&query, &other_type), Err(Fail::NotOurs));
        let mut upper = answer(&query, 0);
        upper[13] = b'E';
        assert_eq!(check(&query, &upper), Ok(()));
        for n in 0..answer(&query, 0).len() {
            let _ = check(&query, &answer(&query, 0)[..n]);
        }
        assert_eq!(check(&query, &answer(&query, 0)[..20]), Err(Fail::NotOurs));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("example.com").is_ok());
        assert!(check_name("example.com.").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
    }
}
