//! Netlink framing shared by the request socket, the event monitor and the nexthop
//! codec: walking the `nlmsghdr`s of a received buffer, walking route attributes,
//! and building requests. Every read is bounds-checked; malformed input ends the walk,
//! it never panics.

/// `struct nlmsghdr`: u32 len, u16 type, u16 flags, u32 seq, u32 pid.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct nlattr`: u16 len, u16 type.
pub const NLA_HDRLEN: usize = 4;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;
/// In an `NLMSG_ERROR` reply: extended-ack attributes follow the echoed header.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// In an `NLMSG_ERROR` reply: the echoed request was cut down to its header.
pub const NLM_F_CAPPED: u16 = 0x100;

/// `NLMSGERR_ATTR_MSG`: the kernel's human-readable reason for an error.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Netlink's 4-byte alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

pub fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

pub fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// One netlink message of a received buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// The bytes after the header, up to the message's own length.
    pub payload: &'a [u8],
}

/// Iterates over the messages of a datagram. A header that claims more bytes than
/// remain, or fewer than a header, ends the walk and sets [`Messages::truncated`].
pub struct Messages<'a> {
    buf: &'a [u8],
    truncated: bool,
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages {
            buf,
            truncated: false,
        }
    }

    /// Whether the walk stopped at a malformed or cut-off message.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        if self.buf.is_empty() {
            return None;
        }
        let fail = |s: &mut Self| {
            s.truncated = true;
            s.buf = &[];
            None
        };
        let Some(len) = u32_at(self.buf, 0) else {
            return fail(self);
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > self.buf.len() {
            return fail(self);
        }
        let msg = Message {
            kind: u16_at(self.buf, 4).unwrap_or(0),
            flags: u16_at(self.buf, 6).unwrap_or(0),
            seq: u32_at(self.buf, 8).unwrap_or(0),
            pid: u32_at(self.buf, 12).unwrap_or(0),
            payload: &self.buf[NLMSG_HDRLEN..len],
        };
        let next = align(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(msg)
    }
}

/// Iterates over `(type, value)` of a run of netlink attributes. The nested and
/// byte-order flag bits are masked off the type. Stops at the first malformed attribute.
pub struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let len = u16_at(self.buf, 0)? as usize;
        let kind = u16_at(self.buf, 2)? & 0x3fff;
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let value = &self.buf[NLA_HDRLEN..len];
        let next = align(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some((kind, value))
    }
}

/// What an `NLMSG_ERROR` message says: 0 is an ack, otherwise a positive errno and,
/// with extended acks, the kernel's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub errno: i32,
    pub reason: Option<String>,
}

/// Decodes the payload of an `NLMSG_ERROR` message (`struct nlmsgerr` + ext-ack TLVs).
pub fn parse_ack(flags: u16, payload: &[u8]) -> Option<Ack> {
    let code = u32_at(payload, 0)? as i32;
    let mut reason = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        // The echoed request: its header only when capped, else the whole message.
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            u32_at(payload, 4).map_or(NLMSG_HDRLEN, |l| l as usize)
        };
        if let Some(tlvs) = payload.get(4 + align(echoed)..) {
            for (kind, value) in Attrs::new(tlvs) {
                if kind == NLMSGERR_ATTR_MSG {
                    let text = value.split(|&b| b == 0).next().unwrap_or(&[]);
                    reason = Some(String::from_utf8_lossy(text).into_owned());
                }
            }
        }
    }
    Some(Ack {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        reason,
    })
}

/// A request under construction: header, fixed-size family header, attributes.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    pub fn new(kind: u16, flags: u16, header: &[u8]) -> Request {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(header);
        buf.resize(align(buf.len()), 0);
        Request { buf }
    }

    /// Appends the serialized attributes of a netlink-packet-route message body.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Request {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Request {
        let len = (NLA_HDRLEN + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    pub fn attr_u32(&mut self, kind: u16, value: u32) -> &mut Request {
        self.attr(kind, &value.to_ne_bytes())
    }

    pub fn attr_u16(&mut self, kind: u16, value: u16) -> &mut Request {
        self.attr(kind, &value.to_ne_bytes())
    }

    pub fn attr_flag(&mut self, kind: u16) -> &mut Request {
        self.attr(kind, &[])
    }

    /// The finished message with `seq` stamped in.
    pub fn finish(&self, seq: u32) -> Vec<u8> {
        let mut buf = self.buf.clone();
        let len = (buf.len() as u32).to_ne_bytes();
        buf[0..4].copy_from_slice(&len);
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_messages_and_stops_at_garbage() {
        let mut r = Request::new(24, NLM_F_DUMP, &[0u8; 12]);
        r.attr_u32(15, 1101);
        let one = r.finish(7);
        let mut buf = one.clone();
        buf.extend_from_slice(&one);
        buf.extend_from_slice(&[0xff, 0xff, 0, 0, 1]);
        let mut it = Messages::new(&buf);
        let m = it.next().unwrap();
        assert_eq!((m.kind, m.seq), (24, 7));
        assert_eq!(m.flags, NLM_F_DUMP | NLM_F_REQUEST);
        let attrs: Vec<_> = Attrs::new(&m.payload[12..]).collect();
        assert_eq!(attrs, vec![(15, &1101u32.to_ne_bytes()[..])]);
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        assert!(it.truncated());
    }

    #[test]
    fn never_panics_on_short_or_lying_lengths() {
        for len in 0..40usize {
            let mut buf = vec![0u8; len];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i * 37) as u8;
            }
            for m in Messages::new(&buf) {
                for _ in Attrs::new(m.payload) {}
                let _ = parse_ack(0xffff, m.payload);
            }
            for _ in Attrs::new(&buf) {}
            let _ = parse_ack(0xffff, &buf);
        }
        // An attribute claiming more than there is.
        assert_eq!(Attrs::new(&[200, 0, 1, 0, 1, 2]).count(), 0);
    }

    #[test]
    fn reads_extended_ack_reason() {
        // errno -EINVAL, echoed header (capped), then NLMSGERR_ATTR_MSG "bad".
        let mut p = Vec::new();
        p.extend_from_slice(&(-22i32).to_ne_bytes());
        p.extend_from_slice(&[16, 0, 0, 0, 104, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
        let ack = parse_ack(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).unwrap();
        assert_eq!(ack.errno, 22);
        assert_eq!(ack.reason.as_deref(), Some("bad"));
        assert_eq!(parse_ack(0, &0u32.to_ne_bytes()).unwrap().errno, 0);
    }
}
