//! libubox "blob" attributes: the tagged, length-prefixed container ubus is built on.
//!
//! Every attribute starts with one big-endian `u32`:
//!
//! ```text
//!  bit 31      extended flag (set by blobmsg: a name header follows)
//!  bits 24..30 id (ubus: the UBUS_ATTR_* number; blobmsg: the value type)
//!  bits 0..23  length of the attribute in bytes, this 4-byte header included,
//!              trailing padding excluded
//! ```
//!
//! The payload follows and is zero-padded to a multiple of 4 bytes. A nested attribute's
//! payload is a list of attributes, and its length counts each child's padding (the
//! parent is always a multiple of 4 long). A ubus message body is one such nested
//! attribute with id 0.
//!
//! [`Attrs`] walks a list of attributes without trusting any length in it; [`Writer`]
//! builds one.

/// Size of the attribute header.
pub const HEADER_LEN: usize = 4;
/// Attributes start on multiples of this.
pub const ALIGN: usize = 4;
/// Set on attributes that carry a blobmsg name header.
pub const EXTENDED: u32 = 0x8000_0000;
/// Where the id sits in the header word.
pub const ID_MASK: u32 = 0x7f00_0000;
pub const ID_SHIFT: u32 = 24;
/// Where the length sits in the header word.
pub const LEN_MASK: u32 = 0x00ff_ffff;
/// Largest id that fits in the header.
pub const MAX_ID: u8 = 0x7f;

/// Rounds `len` up to the next multiple of [`ALIGN`].
pub const fn pad(len: usize) -> usize {
    (len + ALIGN - 1) & !(ALIGN - 1)
}

/// One attribute seen in a buffer: its id, extended flag and payload (without header or
/// padding). Borrowed from the buffer it was found in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    pub id: u8,
    pub extended: bool,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// Reads the attribute at the start of `buf`. Returns it with the number of bytes it
    /// occupies including padding (clamped to the buffer, since the last attribute of a
    /// list may legitimately lack padding bytes that a peer never sent), or `None` when
    /// the header is cut off or its length is impossible.
    pub fn parse(buf: &'a [u8]) -> Option<(Attr<'a>, usize)> {
        let word = u32::from_be_bytes(buf.get(..HEADER_LEN)?.try_into().ok()?);
        let len = (word & LEN_MASK) as usize;
        if len < HEADER_LEN {
            return None;
        }
        let payload = buf.get(HEADER_LEN..len)?;
        let attr = Attr {
            id: ((word & ID_MASK) >> ID_SHIFT) as u8,
            extended: word & EXTENDED != 0,
            payload,
        };
        Some((attr, pad(len).min(buf.len())))
    }

    /// The payload as a big-endian integer of exactly `N` bytes, as libubox checks them.
    fn exact<const N: usize>(&self) -> Option<[u8; N]> {
        self.payload.try_into().ok()
    }

    pub fn u8(&self) -> Option<u8> {
        self.exact::<1>().map(|b| b[0])
    }

    pub fn u16(&self) -> Option<u16> {
        self.exact::<2>().map(u16::from_be_bytes)
    }

    pub fn u32(&self) -> Option<u32> {
        self.exact::<4>().map(u32::from_be_bytes)
    }

    pub fn u64(&self) -> Option<u64> {
        self.exact::<8>().map(u64::from_be_bytes)
    }

    /// A NUL-terminated string payload (the terminator is required, as libubox requires
    /// it; bytes after the first NUL are ignored). Invalid UTF-8 is replaced, not refused:
    /// ubus itself does not care about encodings.
    pub fn string(&self) -> Option<String> {
        let (last, _) = self.payload.split_last()?;
        if *last != 0 {
            return None;
        }
        let end = self.payload.iter().position(|&b| b == 0).unwrap_or(0);
        Some(String::from_utf8_lossy(&self.payload[..end]).into_owned())
    }
}

/// Iterates over a list of attributes (the payload of a nested attribute). Stops at the
/// first attribute whose header is cut off or whose length does not fit, like libubox's
/// bounded iteration; [`Attrs::rest`] tells whether anything was left over.
#[derive(Clone, Debug)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(list: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: list }
    }

    /// Bytes not yet consumed: non-empty after iteration ended means a malformed tail.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let (attr, used) = Attr::parse(self.rest)?;
        self.rest = &self.rest[used..];
        Some(attr)
    }
}

/// Builds a list of attributes in a growing buffer.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

/// A nested attribute that was opened with [`Writer::open`] and must be closed.
#[must_use = "a nested attribute must be closed"]
#[derive(Debug)]
pub struct Nest {
    start: usize,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Appends an attribute with `payload`, zero-padded.
    pub fn put(&mut self, id: u8, payload: &[u8]) {
        let start = self.header(id, false);
        self.buf.extend_from_slice(payload);
        self.finish(start);
    }

    pub fn put_u8(&mut self, id: u8, v: u8) {
        self.put(id, &[v]);
    }

    pub fn put_u32(&mut self, id: u8, v: u32) {
        self.put(id, &v.to_be_bytes());
    }

    /// Appends a NUL-terminated string. An interior NUL would cut the string short for
    /// every C reader, so the string is cut there here too.
    pub fn put_string(&mut self, id: u8, s: &str) {
        let s = s.split('\0').next().unwrap_or("");
        let start = self.header(id, false);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.finish(start);
    }

    /// Starts a nested attribute; everything written until [`Writer::close`] goes inside.
    pub fn open(&mut self, id: u8) -> Nest {
        Nest {
            start: self.header(id, false),
        }
    }

    pub fn close(&mut self, nest: Nest) {
        self.finish(nest.start);
    }

    /// Starts an attribute by hand (header only); used by blobmsg for its name header.
    pub(crate) fn header(&mut self, id: u8, extended: bool) -> usize {
        let start = self.buf.len();
        let mut word = (u32::from(id.min(MAX_ID)) << ID_SHIFT) & ID_MASK;
        if extended {
            word |= EXTENDED;
        }
        self.buf.extend_from_slice(&word.to_be_bytes());
        start
    }

    /// Writes the length of the attribute that starts at `start` and pads it. Lengths
    /// over 24 bits cannot be expressed; they are clamped and the message limit (far
    /// below that) rejects such a message before it is sent.
    pub(crate) fn finish(&mut self, start: usize) {
        let len = (self.buf.len() - start).min(LEN_MASK as usize) as u32;
        let word = u32::from_be_bytes([
            self.buf[start],
            self.buf[start + 1],
            self.buf[start + 2],
            self.buf[start + 3],
        ]);
        let word = (word & !LEN_MASK) | len;
        self.buf[start..start + HEADER_LEN].copy_from_slice(&word.to_be_bytes());
        self.buf.resize(pad(self.buf.len()), 0);
    }

    pub(crate) fn raw(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_padded_attributes_and_nests() {
        let mut w = Writer::new();
        let n = w.open(0);
        w.put_u32(3, 7);
        w.put_string(4, "hi");
        w.close(n);
        let bytes = w.into_bytes();
        assert_eq!(
            bytes,
            [
                0x00, 0x00, 0x00, 0x14, // outer: id 0, 20 bytes
                0x03, 0x00, 0x00, 0x08, 0, 0, 0, 7, // id 3, u32 7
                0x04, 0x00, 0x00, 0x07, b'h', b'i', 0, 0, // id 4, "hi\0" + pad
            ]
        );
        let (outer, used) = Attr::parse(&bytes).unwrap();
        assert_eq!(used, 20);
        let inner: Vec<_> = Attrs::new(outer.payload).collect();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[0].u32(), Some(7));
        assert_eq!(inner[1].string().as_deref(), Some("hi"));
    }

    #[test]
    fn rejects_impossible_lengths() {
        assert_eq!(Attr::parse(&[0, 0, 0, 3]), None);
        assert_eq!(Attr::parse(&[0, 0, 0, 9, 1, 2, 3, 4]), None);
        assert_eq!(Attr::parse(&[0, 0]), None);
        let mut it = Attrs::new(&[0, 0, 0, 4, 0, 0, 0, 2]);
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        assert_eq!(it.rest(), &[0, 0, 0, 2]);
    }

    #[test]
    fn typed_getters_require_exact_sizes() {
        let a = Attr {
            id: 1,
            extended: false,
            payload: &[0, 0, 1],
        };
        assert_eq!(a.u32(), None);
        assert_eq!(a.string(), None);
        let s = Attr {
            id: 1,
            extended: false,
            payload: b"ab\0cd\0",
        };
        assert_eq!(s.string().as_deref(), Some("ab"));
    }
}
