//! ubus messages: the 8-byte header, the attribute table, and stream framing.
//!
//! On the unix stream socket every message is
//!
//! ```text
//!  u8 version (0) | u8 type | u16 BE sequence | u32 BE peer | blob attribute (id 0)
//! ```
//!
//! and the blob attribute's payload is a list of `UBUS_ATTR_*` attributes. The message
//! length is only in that attribute's header, so a reader needs the first 12 bytes
//! before it knows how many follow. ubusd and libubus refuse messages whose attribute is
//! longer than [`MAX_MSGLEN`] (its default build setting); so does [`FrameDecoder`],
//! before buffering any of it.
//!
//! `peer` means "who this is about": the client id in ubusd's HELLO, the target object
//! id in a request, the caller's client id in an INVOKE that ubusd forwards to an object
//! owner, and the answering object's id in the replies ubusd passes back.

use super::blob::{self, Attr, Attrs, Writer};

/// Largest message body (the top-level attribute, padded) ubusd and libubus accept.
pub const MAX_MSGLEN: usize = 1 << 20;
/// Bytes of the message header.
pub const HEADER_LEN: usize = 8;
/// The only protocol version there is.
pub const VERSION: u8 = 0;

/// Object id of ubusd's built-in event object (methods "send" and "register").
pub const EVENT_OBJECT: u32 = 1;
/// Object id of ubusd's built-in ACL object.
pub const ACL_OBJECT: u32 = 2;
/// Object id of ubusd's built-in monitor object.
pub const MONITOR_OBJECT: u32 = 3;
/// Ids below this are reserved for ubusd's own objects.
pub const SYSTEM_OBJECT_MAX: u32 = 1024;

/// Message types (`UBUS_MSG_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// First message from ubusd; `peer` is the new client's id.
    Hello,
    /// Final answer to a request, carrying `UBUS_ATTR_STATUS`.
    Status,
    /// A data answer to a request (lookup results, method replies); more may follow
    /// before the Status.
    Data,
    Ping,
    Lookup,
    Invoke,
    AddObject,
    RemoveObject,
    Subscribe,
    Unsubscribe,
    /// From a client: notify the subscribers of an object. From ubusd: the object's
    /// subscriber list became empty or non-empty (`UBUS_ATTR_ACTIVE`).
    Notify,
    Monitor,
    /// A type this code does not know; kept so that it can be skipped.
    Other(u8),
}

impl MsgType {
    pub fn from_u8(v: u8) -> MsgType {
        match v {
            0 => MsgType::Hello,
            1 => MsgType::Status,
            2 => MsgType::Data,
            3 => MsgType::Ping,
            4 => MsgType::Lookup,
            5 => MsgType::Invoke,
            6 => MsgType::AddObject,
            7 => MsgType::RemoveObject,
            8 => MsgType::Subscribe,
            9 => MsgType::Unsubscribe,
            10 => MsgType::Notify,
            11 => MsgType::Monitor,
            other => MsgType::Other(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            MsgType::Hello => 0,
            MsgType::Status => 1,
            MsgType::Data => 2,
            MsgType::Ping => 3,
            MsgType::Lookup => 4,
            MsgType::Invoke => 5,
            MsgType::AddObject => 6,
            MsgType::RemoveObject => 7,
            MsgType::Subscribe => 8,
            MsgType::Unsubscribe => 9,
            MsgType::Notify => 10,
            MsgType::Monitor => 11,
            MsgType::Other(v) => v,
        }
    }
}

/// Attribute ids (`UBUS_ATTR_*`) of the message table.
pub mod attr {
    pub const STATUS: u8 = 1;
    pub const OBJPATH: u8 = 2;
    pub const OBJID: u8 = 3;
    pub const METHOD: u8 = 4;
    pub const OBJTYPE: u8 = 5;
    pub const SIGNATURE: u8 = 6;
    pub const DATA: u8 = 7;
    pub const TARGET: u8 = 8;
    pub const ACTIVE: u8 = 9;
    pub const NO_REPLY: u8 = 10;
    pub const SUBSCRIBERS: u8 = 11;
    pub const USER: u8 = 12;
    pub const GROUP: u8 = 13;
}

/// The fixed header in front of every message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: MsgType,
    pub seq: u16,
    pub peer: u32,
}

/// One entry of the message's attribute table. Values that fail the type check libubus
/// applies (a u32 that is not 4 bytes, a string without NUL) are kept as [`MsgAttr::Other`]
/// so that nothing is lost and nothing is misread.
#[derive(Clone, Debug, PartialEq)]
pub enum MsgAttr {
    /// A `UBUS_STATUS_*` code.
    Status(u32),
    ObjPath(String),
    ObjId(u32),
    Method(String),
    ObjType(u32),
    /// A list of blobmsg tables, one per method, each mapping argument names to types
    /// (int32). Kept as raw attribute list; decode with [`super::blobmsg::decode_table`].
    Signature(Vec<u8>),
    /// blobmsg table payload (method arguments or reply); raw attribute list.
    Data(Vec<u8>),
    Target(u32),
    Active(bool),
    NoReply(bool),
    /// Client ids of an object's subscribers.
    Subscribers(Vec<u32>),
    User(String),
    Group(String),
    Other {
        id: u8,
        payload: Vec<u8>,
    },
}

impl MsgAttr {
    fn from_attr(a: Attr<'_>) -> MsgAttr {
        let typed = match a.id {
            attr::STATUS => a.u32().map(MsgAttr::Status),
            attr::OBJPATH => a.string().map(MsgAttr::ObjPath),
            attr::OBJID => a.u32().map(MsgAttr::ObjId),
            attr::METHOD => a.string().map(MsgAttr::Method),
            attr::OBJTYPE => a.u32().map(MsgAttr::ObjType),
            attr::SIGNATURE => Some(MsgAttr::Signature(a.payload.to_vec())),
            attr::DATA => Some(MsgAttr::Data(a.payload.to_vec())),
            attr::TARGET => a.u32().map(MsgAttr::Target),
            attr::ACTIVE => a.u8().map(|v| MsgAttr::Active(v != 0)),
            attr::NO_REPLY => a.u8().map(|v| MsgAttr::NoReply(v != 0)),
            attr::SUBSCRIBERS => {
                let ids: Vec<u32> = Attrs::new(a.payload).filter_map(|s| s.u32()).collect();
                Some(MsgAttr::Subscribers(ids))
            }
            attr::USER => a.string().map(MsgAttr::User),
            attr::GROUP => a.string().map(MsgAttr::Group),
            _ => None,
        };
        typed.unwrap_or_else(|| MsgAttr::Other {
            id: a.id,
            payload: a.payload.to_vec(),
        })
    }

    fn write(&self, w: &mut Writer) {
        match self {
            MsgAttr::Status(v) => w.put_u32(attr::STATUS, *v),
            MsgAttr::ObjPath(s) => w.put_string(attr::OBJPATH, s),
            MsgAttr::ObjId(v) => w.put_u32(attr::OBJID, *v),
            MsgAttr::Method(s) => w.put_string(attr::METHOD, s),
            MsgAttr::ObjType(v) => w.put_u32(attr::OBJTYPE, *v),
            MsgAttr::Signature(raw) => w.put(attr::SIGNATURE, raw),
            MsgAttr::Data(raw) => w.put(attr::DATA, raw),
            MsgAttr::Target(v) => w.put_u32(attr::TARGET, *v),
            MsgAttr::Active(b) => w.put_u8(attr::ACTIVE, u8::from(*b)),
            MsgAttr::NoReply(b) => w.put_u8(attr::NO_REPLY, u8::from(*b)),
            MsgAttr::Subscribers(ids) => {
                let n = w.open(attr::SUBSCRIBERS);
                for id in ids {
                    w.put_u32(0, *id);
                }
                w.close(n);
            }
            MsgAttr::User(s) => w.put_string(attr::USER, s),
            MsgAttr::Group(s) => w.put_string(attr::GROUP, s),
            MsgAttr::Other { id, payload } => w.put(*id, payload),
        }
    }
}

/// A decoded message: header plus attributes in wire order.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub header: Header,
    pub attrs: Vec<MsgAttr>,
}

macro_rules! getter {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(&self) -> Option<$ty> {
            self.attrs.iter().find_map(|a| match a {
                MsgAttr::$variant(v) => Some(v.clone()),
                _ => None,
            })
        }
    };
}

impl Message {
    pub fn new(kind: MsgType, seq: u16, peer: u32, attrs: Vec<MsgAttr>) -> Message {
        Message {
            header: Header { kind, seq, peer },
            attrs,
        }
    }

    getter!(status, Status, u32);
    getter!(obj_id, ObjId, u32);
    getter!(obj_type, ObjType, u32);
    getter!(target, Target, u32);
    getter!(active, Active, bool);
    getter!(
        /// `UBUS_ATTR_NO_REPLY`, false when absent.
        no_reply_attr,
        NoReply,
        bool
    );

    pub fn no_reply(&self) -> bool {
        self.no_reply_attr().unwrap_or(false)
    }

    pub fn obj_path(&self) -> Option<&str> {
        self.attrs.iter().find_map(|a| match a {
            MsgAttr::ObjPath(s) => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn method(&self) -> Option<&str> {
        self.attrs.iter().find_map(|a| match a {
            MsgAttr::Method(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Raw blobmsg list of `UBUS_ATTR_DATA`.
    pub fn data(&self) -> Option<&[u8]> {
        self.attrs.iter().find_map(|a| match a {
            MsgAttr::Data(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// Raw blobmsg list of `UBUS_ATTR_SIGNATURE`.
    pub fn signature(&self) -> Option<&[u8]> {
        self.attrs.iter().find_map(|a| match a {
            MsgAttr::Signature(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// Encodes the message for the wire: header, then the attribute table.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw().extend_from_slice(&[0; HEADER_LEN]);
        let n = w.open(0);
        for a in &self.attrs {
            a.write(&mut w);
        }
        w.close(n);
        let mut out = w.into_bytes();
        out[0] = VERSION;
        out[1] = self.header.kind.as_u8();
        out[2..4].copy_from_slice(&self.header.seq.to_be_bytes());
        out[4..8].copy_from_slice(&self.header.peer.to_be_bytes());
        out
    }

    /// Decodes one complete frame (header and body, nothing after it).
    pub fn decode(frame: &[u8]) -> Result<Message, FrameError> {
        let len = frame_len(frame)?.ok_or(FrameError::Truncated)?;
        if len != frame.len() {
            return Err(FrameError::Truncated);
        }
        let (body, _) = Attr::parse(&frame[HEADER_LEN..]).ok_or(FrameError::Truncated)?;
        let attrs = Attrs::new(body.payload).map(MsgAttr::from_attr).collect();
        Ok(Message {
            header: Header {
                kind: MsgType::from_u8(frame[1]),
                seq: u16::from_be_bytes([frame[2], frame[3]]),
                peer: u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
            },
            attrs,
        })
    }
}

/// Why a stream of bytes is not a ubus message stream. Any of these is fatal for the
/// connection: after it, message boundaries are lost.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The version byte is not 0.
    BadVersion(u8),
    /// The body attribute claims fewer than its own 4 header bytes.
    BadLength,
    /// The body claims more than [`MAX_MSGLEN`] bytes.
    TooLarge(usize),
    /// A frame handed to [`Message::decode`] is incomplete or has bytes left over.
    Truncated,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadVersion(v) => write!(f, "unknown ubus protocol version {v}"),
            FrameError::BadLength => write!(f, "ubus message with an impossible length"),
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "ubus message of {n} bytes exceeds the {MAX_MSGLEN}-byte limit"
                )
            }
            FrameError::Truncated => write!(f, "incomplete ubus message"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks the first 12 bytes of a frame and returns its total length (header included),
/// or `None` if fewer than 12 bytes are there yet.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(head) = buf.get(..HEADER_LEN + blob::HEADER_LEN) else {
        return Ok(None);
    };
    if head[0] != VERSION {
        return Err(FrameError::BadVersion(head[0]));
    }
    let word = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let raw = (word & blob::LEN_MASK) as usize;
    if raw < blob::HEADER_LEN {
        return Err(FrameError::BadLength);
    }
    if blob::pad(raw) > MAX_MSGLEN {
        return Err(FrameError::TooLarge(raw));
    }
    // libubus sends exactly the raw length (which is a multiple of 4 for the bodies it
    // builds) and reads exactly that much; so do we.
    Ok(Some(HEADER_LEN + raw))
}

/// Splits a byte stream into messages. Feed it whatever the socket returned with
/// [`FrameDecoder::push`], then take messages with [`FrameDecoder::next_message`] until it
/// returns `Ok(None)`. Memory grows only with bytes actually received, never with a
/// length a peer claims.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame's bytes, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(len) = frame_len(&self.buf)? else {
            return Ok(None);
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        let rest = self.buf.split_off(len);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// The next complete message, if one is buffered.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        match self.next_frame()? {
            Some(frame) => Message::decode(&frame).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        // ubusd's greeting to client 0x1234abcd: empty attribute table.
        let bytes = [0, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd, 0, 0, 0, 4];
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.header.kind, MsgType::Hello);
        assert_eq!(m.header.peer, 0x1234abcd);
        assert!(m.attrs.is_empty());
        assert_eq!(m.encode(), bytes);
    }

    #[test]
    fn status_round_trip() {
        let m = Message::new(MsgType::Status, 7, 3, vec![MsgAttr::Status(4)]);
        let bytes = m.encode();
        assert_eq!(
            bytes,
            [
                1 - 1,
                1,
                0,
                7,
                0,
                0,
                0,
                3,
                0,
                0,
                0,
                12,
                1,
                0,
                0,
                8,
                0,
                0,
                0,
                4
            ]
        );
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn framing_splits_and_joins() {
        let a = Message::new(MsgType::Status, 1, 0, vec![MsgAttr::Status(0)]).encode();
        let b = Message::new(
            MsgType::Data,
            2,
            0,
            vec![MsgAttr::ObjPath("x".into()), MsgAttr::ObjId(9)],
        )
        .encode();
        let stream: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        // Byte by byte.
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for byte in &stream {
            d.push(std::slice::from_ref(byte));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].obj_path(), Some("x"));
        assert_eq!(got[1].obj_id(), Some(9));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let mut d = FrameDecoder::new();
        // Claims 16 MiB - 1.
        d.push(&[0, 2, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_message(), Err(FrameError::TooLarge(0xff_ffff)));
        let mut d = FrameDecoder::new();
        d.push(&[1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4]);
        assert_eq!(d.next_message(), Err(FrameError::BadVersion(1)));
        let mut d = FrameDecoder::new();
        d.push(&[0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(d.next_message(), Err(FrameError::BadLength));
        // Exactly at the limit is fine (and just waits for the rest).
        let mut d = FrameDecoder::new();
        d.push(&[0, 2, 0, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn badly_typed_attributes_are_kept_as_other() {
        let mut w = Writer::new();
        w.raw().extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
        let n = w.open(0);
        w.put(attr::STATUS, &[1, 2]);
        w.put(attr::METHOD, b"nonul");
        w.put(99, b"x");
        w.close(n);
        let m = Message::decode(&w.into_bytes()).unwrap();
        assert_eq!(m.status(), None);
        assert_eq!(m.method(), None);
        assert_eq!(m.attrs.len(), 3);
        assert!(m.attrs.iter().all(|a| matches!(a, MsgAttr::Other { .. })));
    }
}
