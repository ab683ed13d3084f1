//! ubus, OpenWrt's system message bus: wire format and an async client.
//!
//! ubus is a unix stream socket served by `ubusd`. Clients publish *objects* with
//! *methods*, call methods of other clients' objects, send and listen to broadcast
//! *events*, and notify the subscribers of their objects. Everything on the wire is
//! libubox's blob format:
//!
//! - [`blob`]: tagged, length-prefixed, 4-byte aligned attributes;
//! - [`blobmsg`]: named, typed values on top of them (tables, arrays, strings, integers,
//!   bools, doubles) and their JSON mapping, the one `ubus call` uses;
//! - [`msg`]: the 8-byte message header, the `UBUS_ATTR_*` table and stream framing;
//! - [`client`]: a single-threaded async client on smol, and [`client::Session`], which
//!   keeps a list of objects and event patterns and re-creates them after ubusd restarts.
//!
//! The first three are pure functions over bytes; every decoder is bounds-checked and
//! returns an error instead of panicking, since any local process can write to ubusd.

pub mod blob;
pub mod blobmsg;
pub mod client;
pub mod msg;
pub mod proto;

pub use client::{Client, Connection, Error, Incoming, ObjectInfo, RequestToken, Session};
pub use msg::{Message, MsgType};
pub use proto::{ArgType, Method};

/// Result codes of ubus requests (`UBUS_STATUS_*`), as carried in `UBUS_ATTR_STATUS`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    InvalidCommand,
    InvalidArgument,
    MethodNotFound,
    NotFound,
    NoData,
    PermissionDenied,
    Timeout,
    NotSupported,
    UnknownError,
    ConnectionFailed,
    NoMemory,
    ParseError,
    SystemError,
    /// A code this code does not know.
    Other(u32),
}

impl Status {
    pub fn from_u32(v: u32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::InvalidCommand,
            2 => Status::InvalidArgument,
            3 => Status::MethodNotFound,
            4 => Status::NotFound,
            5 => Status::NoData,
            6 => Status::PermissionDenied,
            7 => Status::Timeout,
            8 => Status::NotSupported,
            9 => Status::UnknownError,
            10 => Status::ConnectionFailed,
            11 => Status::NoMemory,
            12 => Status::ParseError,
            13 => Status::SystemError,
            other => Status::Other(other),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::InvalidCommand => 1,
            Status::InvalidArgument => 2,
            Status::MethodNotFound => 3,
            Status::NotFound => 4,
            Status::NoData => 5,
            Status::PermissionDenied => 6,
            Status::Timeout => 7,
            Status::NotSupported => 8,
            Status::UnknownError => 9,
            Status::ConnectionFailed => 10,
            Status::NoMemory => 11,
            Status::ParseError => 12,
            Status::SystemError => 13,
            Status::Other(v) => v,
        }
    }

    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Status::Ok => "ok",
            Status::InvalidCommand => "invalid command",
            Status::InvalidArgument => "invalid argument",
            Status::MethodNotFound => "method not found",
            Status::NotFound => "object not found",
            Status::NoData => "no data in reply",
            Status::PermissionDenied => "permission denied",
            Status::Timeout => "request timed out",
            Status::NotSupported => "not supported",
            Status::UnknownError => "unknown error",
            Status::ConnectionFailed => "connection failed",
            Status::NoMemory => "out of memory",
            Status::ParseError => "could not parse message data",
            Status::SystemError => "system error",
            Status::Other(v) => return write!(f, "ubus status {v}"),
        };
        f.write_str(text)
    }
}
