//! The messages a client sends, one pure builder per operation.
//!
//! These fix the exact layout libubus uses (attribute order, types, which attributes are
//! present), so that ubusd and other clients see the same bytes from us as from a C
//! client; the replay tests compare them with captured libubus traffic.

use serde_json::{Map, Value};

use super::blob::Writer;
use super::blobmsg::{self, Type};
use super::msg::{Message, MsgAttr, MsgType, EVENT_OBJECT};
use super::Status;

/// Argument types advertised in an object's signature (what `ubus -v list` shows).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// "Boolean" in `ubus -v list`.
    Bool,
    /// "Integer" (int32).
    Int32,
    Int64,
    Int16,
    Double,
    String,
    Array,
    Table,
    /// Any type.
    Unspec,
}

impl ArgType {
    pub fn blobmsg_type(self) -> Type {
        match self {
            ArgType::Bool => Type::BOOL,
            ArgType::Int32 => Type::Int32,
            ArgType::Int64 => Type::Int64,
            ArgType::Int16 => Type::Int16,
            ArgType::Double => Type::Double,
            ArgType::String => Type::String,
            ArgType::Array => Type::Array,
            ArgType::Table => Type::Table,
            ArgType::Unspec => Type::Unspec,
        }
    }
}

/// A method of a published object, with the arguments it documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    pub name: String,
    pub args: Vec<(String, ArgType)>,
}

impl Method {
    pub fn new(name: &str, args: &[(&str, ArgType)]) -> Method {
        Method {
            name: name.to_owned(),
            args: args.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
        }
    }
}

/// LOOKUP of `path` (empty: every object). Addressed to ubusd (peer 0).
pub fn lookup(seq: u16, path: &str) -> Message {
    let mut attrs = Vec::new();
    if !path.is_empty() {
        attrs.push(MsgAttr::ObjPath(path.to_owned()));
    }
    Message::new(MsgType::Lookup, seq, 0, attrs)
}

/// INVOKE of `method` on object `obj` with a table of arguments. Addressed to the
/// object: its owner's replies come back with the object id as peer.
pub fn invoke(seq: u16, obj: u32, method: &str, args: &Map<String, Value>) -> Message {
    Message::new(
        MsgType::Invoke,
        seq,
        obj,
        vec![
            MsgAttr::ObjId(obj),
            MsgAttr::Method(method.to_owned()),
            MsgAttr::Data(blobmsg::encode_table(args)),
        ],
    )
}

/// The blobmsg signature of an object type: one table per method, mapping each
/// argument name to its blobmsg type number as an int32.
pub fn signature(methods: &[Method]) -> Vec<u8> {
    let mut sig = Writer::new();
    for m in methods {
        let mut args = Writer::new();
        for (arg, ty) in &m.args {
            let ty = ty.blobmsg_type() as u32;
            blobmsg::put(&mut args, Type::Int32, arg, &ty.to_be_bytes());
        }
        blobmsg::put(&mut sig, Type::Table, &m.name, &args.into_bytes());
    }
    sig.into_bytes()
}

/// ADD_OBJECT of a named object with its methods' signature.
pub fn add_object(seq: u16, name: &str, methods: &[Method]) -> Message {
    Message::new(
        MsgType::AddObject,
        seq,
        0,
        vec![
            MsgAttr::ObjPath(name.to_owned()),
            MsgAttr::Signature(signature(methods)),
        ],
    )
}

/// ADD_OBJECT of an anonymous object (no path, no type): what event listeners and
/// subscribers are.
pub fn add_anonymous(seq: u16) -> Message {
    Message::new(MsgType::AddObject, seq, 0, Vec::new())
}

/// SUBSCRIBE our anonymous object `subscriber` to the notifications of `target`.
pub fn subscribe(seq: u16, subscriber: u32, target: u32) -> Message {
    Message::new(
        MsgType::Subscribe,
        seq,
        0,
        vec![MsgAttr::ObjId(subscriber), MsgAttr::Target(target)],
    )
}

/// REMOVE_OBJECT of one of our objects.
pub fn remove_object(seq: u16, obj: u32) -> Message {
    Message::new(MsgType::RemoveObject, seq, 0, vec![MsgAttr::ObjId(obj)])
}

/// INVOKE "register" on ubusd's event object: deliver events matching `pattern` to
/// our object `listener`.
pub fn register_event(seq: u16, listener: u32, pattern: &str) -> Message {
    let mut w = Writer::new();
    // ubusd reads the object id as int32, whatever its value.
    blobmsg::put(&mut w, Type::Int32, "object", &listener.to_be_bytes());
    blobmsg::write_value(&mut w, "pattern", &Value::String(pattern.to_owned()));
    event_object_call(seq, "register", w.into_bytes())
}

/// INVOKE "send" on ubusd's event object: broadcast event `id` with `data`.
pub fn send_event(seq: u16, id: &str, data: &Map<String, Value>) -> Message {
    let mut w = Writer::new();
    blobmsg::write_value(&mut w, "id", &Value::String(id.to_owned()));
    blobmsg::put(&mut w, Type::Table, "data", &blobmsg::encode_table(data));
    event_object_call(seq, "send", w.into_bytes())
}

fn event_object_call(seq: u16, method: &str, data: Vec<u8>) -> Message {
    Message::new(
        MsgType::Invoke,
        seq,
        EVENT_OBJECT,
        vec![
            MsgAttr::ObjId(EVENT_OBJECT),
            MsgAttr::Method(method.to_owned()),
            MsgAttr::Data(data),
        ],
    )
}

/// NOTIFY the subscribers of our object `obj`, asking for no answers.
pub fn notify(seq: u16, obj: u32, kind: &str, data: &Map<String, Value>) -> Message {
    Message::new(
        MsgType::Notify,
        seq,
        obj,
        vec![
            MsgAttr::ObjId(obj),
            MsgAttr::Method(kind.to_owned()),
            MsgAttr::Data(blobmsg::encode_table(data)),
            MsgAttr::NoReply(true),
        ],
    )
}

/// The DATA part of an answer to a call: `seq` and `caller` from the INVOKE.
pub fn reply_data(seq: u16, caller: u32, obj: u32, data: &Map<String, Value>) -> Message {
    Message::new(
        MsgType::Data,
        seq,
        caller,
        vec![
            MsgAttr::ObjId(obj),
            MsgAttr::Data(blobmsg::encode_table(data)),
        ],
    )
}

/// The final STATUS of an answer to a call.
pub fn reply_status(seq: u16, caller: u32, obj: u32, status: Status) -> Message {
    Message::new(
        MsgType::Status,
        seq,
        caller,
        vec![MsgAttr::Status(status.as_u32()), MsgAttr::ObjId(obj)],
    )
}
