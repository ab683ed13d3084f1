//! An async ubus client for a single-threaded smol executor.
//!
//! # How messages get read
//!
//! There is no background task: whichever future is waiting for something from ubusd
//! (a reply, or the next incoming call) takes the reader lock, reads what the socket has,
//! and sorts every complete message into the mailbox it belongs to: replies by
//! (sequence, peer) to the request that is waiting for them, calls and events to the
//! incoming queue. The others wait on their mailbox or for the reader lock, whichever
//! comes first. So replies and incoming calls may interleave freely, any future may be
//! dropped at any point (a timeout) without losing bytes, and the client works on a
//! `LocalExecutor` without spawning.
//!
//! Writes go through an outgoing buffer that is flushed under a write lock, so a
//! message is never interleaved with another and a write cancelled halfway is finished
//! by the next one.
//!
//! # Lifetime
//!
//! When ubusd goes away (socket closed, read error, or bytes that are not ubus), every
//! waiting call returns [`Error::ConnectionLost`] and so does every later one; the
//! objects and event registrations are gone with the connection. [`Session`] keeps the
//! list of what to register and builds a fresh, registered [`Client`] after a loss.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::channel::{self, Receiver, Sender};
use serde_json::{Map, Value};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::{Mutex, MutexGuard};
use smol::{future, Async, Timer};

use super::blobmsg::{self, DecodeError};
use super::msg::{FrameDecoder, Message, MsgType, MAX_MSGLEN};
use super::proto::{self, Method};
use super::Status;

/// Object ids are assigned by ubusd (random, at least 1024 for client objects).
pub type ObjectId = u32;

/// How long a control request (lookup, add object, register, send event) may take
/// before ubusd is considered stuck. ubusd answers these itself, at once.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` waits for ubusd's HELLO.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before reconnecting after a failure; doubles up to [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_millis(250);
pub const RECONNECT_MAX: Duration = Duration::from_secs(4);

const READ_CHUNK: usize = 16 * 1024;
const WRITE_CHUNK: usize = 64 * 1024;

/// What went wrong with a ubus operation.
#[derive(Debug)]
pub enum Error {
    /// Could not connect to the socket, or ubusd did not greet us.
    Connect(io::Error),
    /// The connection is gone (ubusd exited or sent garbage); reconnect.
    ConnectionLost(String),
    /// ubusd or the object's owner refused the request.
    Status(Status),
    /// No final answer within the time given.
    Timeout,
    /// Arguments and event data must be JSON objects (or null for "none").
    NotATable,
    /// The message would exceed ubus's 1 MiB limit.
    TooLarge(usize),
    /// An answer arrived but lacks what it must carry.
    Protocol(&'static str),
    /// Reply data that is not valid blobmsg.
    Data(DecodeError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot connect to ubus: {e}"),
            Error::ConnectionLost(why) => write!(f, "ubus connection lost: {why}"),
            Error::Status(s) => write!(f, "ubus request failed: {s}"),
            Error::Timeout => write!(f, "ubus request timed out"),
            Error::NotATable => write!(f, "ubus data must be a JSON object"),
            Error::TooLarge(n) => {
                write!(
                    f,
                    "ubus message of {n} bytes exceeds the {MAX_MSGLEN}-byte limit"
                )
            }
            Error::Protocol(what) => write!(f, "unexpected answer from ubusd: {what}"),
            Error::Data(e) => write!(f, "bad ubus reply data: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// One object found by [`Client::lookup`].
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub path: String,
    pub id: ObjectId,
    pub type_id: u32,
    /// `{"method": {"arg": type number, ...}, ...}`, type numbers as in blobmsg.
    pub signature: Value,
}

/// Identifies a call to be answered with [`Client::reply`]. Each call is answered at
/// most once; a call that is never answered makes its caller wait for its own timeout.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestToken {
    seq: u16,
    peer: u32,
    object: ObjectId,
    no_reply: bool,
}

impl RequestToken {
    /// The object that was called.
    pub fn object(&self) -> ObjectId {
        self.object
    }

    /// The caller's client id.
    pub fn caller(&self) -> u32 {
        self.peer
    }

    /// True when the caller asked for no answer (a subscriber notification).
    pub fn no_reply(&self) -> bool {
        self.no_reply
    }
}

/// Something ubusd sent us unasked.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A method of one of our objects was called; answer with [`Client::reply`].
    /// Calls to unknown methods were already answered "method not found".
    Invoke {
        object: ObjectId,
        method: String,
        /// Always a JSON object.
        args: Value,
        request: RequestToken,
    },
    /// An event matching a pattern given to [`Client::register_event`].
    Event { id: String, data: Value },
    /// Our object got its first subscriber (`active`) or lost its last one.
    Subscribers { object: ObjectId, active: bool },
    /// A notification of `kind` from an object we subscribed to with
    /// [`Client::subscribe`].
    Notification { kind: String, data: Value },
}

#[derive(Clone, Debug)]
enum Owned {
    Published { methods: Vec<String> },
    Listener,
    Subscriber,
}

#[derive(Default)]
struct State {
    closed: Option<String>,
    pending: HashMap<(u16, u32), Sender<Message>>,
    objects: HashMap<ObjectId, Owned>,
    listener: Option<ObjectId>,
    subscriber: Option<ObjectId>,
}

struct Inner {
    io: Async<UnixStream>,
    local_id: u32,
    reader: Mutex<FrameDecoder>,
    writer: Mutex<()>,
    out: RefCell<Vec<u8>>,
    seq: Cell<u16>,
    state: RefCell<State>,
    incoming_tx: Sender<Incoming>,
    incoming_rx: Receiver<Incoming>,
}

/// A connection to ubusd. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

/// The answer to a request: its data messages, then the final status.
struct Reply {
    data: Vec<Message>,
    status: Status,
}

/// Removes a request's mailbox when the request finishes or is cancelled.
struct PendingGuard<'a> {
    inner: &'a Inner,
    key: (u16, u32),
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.state.borrow_mut().pending.remove(&self.key);
    }
}

enum Step<'a, T> {
    Got(Option<T>),
    Lead(MutexGuard<'a, FrameDecoder>),
}

fn table(v: &Value) -> Result<Map<String, Value>, Error> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        _ => Err(Error::NotATable),
    }
}

impl Client {
    /// Connects to ubusd at `path` and waits for its greeting, which carries our
    /// client id.
    pub async fn connect(path: &Path) -> Result<Client, Error> {
        let io = Async::<UnixStream>::connect(path)
            .await
            .map_err(Error::Connect)?;
        let mut decoder = FrameDecoder::new();
        let hello = async {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match decoder.next_message() {
                    Ok(Some(m)) => return Ok(m),
                    Ok(None) => {}
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
                let n = (&io).read(&mut buf).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                decoder.push(&buf[..n]);
            }
        };
        let timeout = async {
            Timer::after(HELLO_TIMEOUT).await;
            Err(io::ErrorKind::TimedOut.into())
        };
        let hello = future::or(hello, timeout).await.map_err(Error::Connect)?;
        // libubus refuses ids 0 and 1 (1 marks a private channel, not a bus client).
        if hello.header.kind != MsgType::Hello || hello.header.peer <= 1 {
            return Err(Error::Connect(io::Error::new(
                io::ErrorKind::InvalidData,
                "ubusd did not send a valid HELLO",
            )));
        }
        let (incoming_tx, incoming_rx) = channel::unbounded();
        Ok(Client {
            inner: Rc::new(Inner {
                io,
                local_id: hello.header.peer,
                reader: Mutex::new(decoder),
                writer: Mutex::new(()),
                out: RefCell::new(Vec::new()),
                seq: Cell::new(0),
                state: RefCell::new(State::default()),
                incoming_tx,
                incoming_rx,
            }),
        })
    }

    /// Our client id on the bus, as ubusd assigned it.
    pub fn local_id(&self) -> u32 {
        self.inner.local_id
    }

    /// Why the connection is gone, if it is.
    pub fn closed(&self) -> Option<String> {
        self.inner.state.borrow().closed.clone()
    }

    /// Looks up objects by path; a path ending in `*` matches by prefix, an empty path
    /// lists every object. An unknown path gives an empty list.
    pub async fn lookup(&self, path: &str) -> Result<Vec<ObjectInfo>, Error> {
        let reply = self
            .request(|seq| proto::lookup(seq, path), Some(CONTROL_TIMEOUT))
            .await?;
        match reply.status {
            Status::Ok => {}
            Status::NotFound => return Ok(Vec::new()),
            other => return Err(Error::Status(other)),
        }
        let mut out = Vec::new();
        for m in reply.data {
            let (Some(path), Some(id), Some(type_id)) = (m.obj_path(), m.obj_id(), m.obj_type())
            else {
                continue;
            };
            let signature = match m.signature() {
                Some(raw) => Value::Object(blobmsg::decode_table(raw).map_err(Error::Data)?),
                None => Value::Object(Map::new()),
            };
            out.push(ObjectInfo {
                path: path.to_owned(),
                id,
                type_id,
                signature,
            });
        }
        Ok(out)
    }

    /// The id of the object at `path`, if there is one.
    pub async fn lookup_id(&self, path: &str) -> Result<Option<ObjectId>, Error> {
        if path.is_empty() || path.ends_with('*') {
            return Err(Error::Status(Status::InvalidArgument));
        }
        Ok(self.lookup(path).await?.first().map(|o| o.id))
    }

    /// Calls `method` of object `obj` with `args` (a JSON object, or null for none) and
    /// returns the final status with the first data reply, if any. A non-OK status is the
    /// callee's answer, not an `Err`.
    pub async fn invoke(
        &self,
        obj: ObjectId,
        method: &str,
        args: &Value,
        timeout: Duration,
    ) -> Result<(Status, Option<Value>), Error> {
        let args = table(args)?;
        let reply = self
            .request(|seq| proto::invoke(seq, obj, method, &args), Some(timeout))
            .await?;
        let first = reply.data.iter().find_map(|m| m.data());
        let value = match first {
            Some(raw) => Some(Value::Object(
                blobmsg::decode_table(raw).map_err(Error::Data)?,
            )),
            None => None,
        };
        Ok((reply.status, value))
    }

    /// Publishes an object named `name` with `methods`; returns its id.
    pub async fn add_object(&self, name: &str, methods: &[Method]) -> Result<ObjectId, Error> {
        let id = self
            .add(|seq| proto::add_object(seq, name, methods))
            .await?;
        let methods = methods.iter().map(|m| m.name.clone()).collect();
        self.inner
            .state
            .borrow_mut()
            .objects
            .insert(id, Owned::Published { methods });
        Ok(id)
    }

    async fn add(&self, build: impl FnOnce(u16) -> Message) -> Result<ObjectId, Error> {
        let reply = self.request(build, Some(CONTROL_TIMEOUT)).await?;
        if !reply.status.is_ok() {
            return Err(Error::Status(reply.status));
        }
        reply
            .data
            .iter()
            .find_map(|m| m.obj_id())
            .ok_or(Error::Protocol("no object id in ADD_OBJECT reply"))
    }

    /// Withdraws one of our objects.
    pub async fn remove_object(&self, id: ObjectId) -> Result<(), Error> {
        let reply = self
            .request(|seq| proto::remove_object(seq, id), Some(CONTROL_TIMEOUT))
            .await?;
        if !reply.status.is_ok() {
            return Err(Error::Status(reply.status));
        }
        let mut st = self.inner.state.borrow_mut();
        st.objects.remove(&id);
        if st.listener == Some(id) {
            st.listener = None;
        }
        if st.subscriber == Some(id) {
            st.subscriber = None;
        }
        Ok(())
    }

    /// Waits for the next call to one of our objects, event, or subscription change.
    pub async fn next_incoming(&self) -> Result<Incoming, Error> {
        self.inner.wait(&self.inner.incoming_rx).await
    }

    /// Answers a call: a data message when `data` is given, then the status, both with
    /// the call's sequence number, as libubus does. Calls that asked for no reply are
    /// not answered.
    pub async fn reply(
        &self,
        request: RequestToken,
        status: Status,
        data: Option<&Value>,
    ) -> Result<(), Error> {
        if request.no_reply {
            return Ok(());
        }
        let (seq, caller, obj) = (request.seq, request.peer, request.object);
        let mut msgs = Vec::new();
        if let Some(data) = data {
            msgs.push(proto::reply_data(seq, caller, obj, &table(data)?));
        }
        msgs.push(proto::reply_status(seq, caller, obj, status));
        for m in &msgs {
            self.inner.queue(m)?;
        }
        self.inner.flush().await
    }

    /// Sends a notification of `kind` with `data` to the subscribers of our object
    /// `object`, without waiting for any answer.
    pub async fn notify(&self, object: ObjectId, kind: &str, data: &Value) -> Result<(), Error> {
        let data = table(data)?;
        let seq = self.inner.next_seq(object);
        self.inner.queue(&proto::notify(seq, object, kind, &data))?;
        self.inner.flush().await
    }

    /// Broadcasts event `id` with `data` (a JSON object) to every listener whose pattern
    /// matches, except our own. Ids starting with "ubus." are reserved for ubusd.
    pub async fn send_event(&self, id: &str, data: &Value) -> Result<(), Error> {
        let data = table(data)?;
        self.control_invoke(|seq| proto::send_event(seq, id, &data))
            .await
    }

    /// Starts receiving events whose id matches `pattern` (a trailing `*` matches by
    /// prefix) as [`Incoming::Event`]. The first call publishes an anonymous listener
    /// object, as libubus does; later patterns are added to it.
    pub async fn register_event(&self, pattern: &str) -> Result<ObjectId, Error> {
        let existing = self.inner.state.borrow().listener;
        let listener = match existing {
            Some(id) => id,
            None => {
                let id = self.add(proto::add_anonymous).await?;
                let mut st = self.inner.state.borrow_mut();
                st.objects.insert(id, Owned::Listener);
                st.listener = Some(id);
                id
            }
        };
        self.control_invoke(|seq| proto::register_event(seq, listener, pattern))
            .await?;
        Ok(listener)
    }

    /// Subscribes to the notifications of object `target` (as `ubus subscribe` does);
    /// they arrive as [`Incoming::Notification`]. The first call publishes an anonymous
    /// subscriber object, as libubus does; later subscriptions share it. A subscription
    /// ends with the target object.
    pub async fn subscribe(&self, target: ObjectId) -> Result<(), Error> {
        let existing = self.inner.state.borrow().subscriber;
        let subscriber = match existing {
            Some(id) => id,
            None => {
                let id = self.add(proto::add_anonymous).await?;
                let mut st = self.inner.state.borrow_mut();
                st.objects.insert(id, Owned::Subscriber);
                st.subscriber = Some(id);
                id
            }
        };
        let reply = self
            .request(
                |seq| proto::subscribe(seq, subscriber, target),
                Some(CONTROL_TIMEOUT),
            )
            .await?;
        if reply.status.is_ok() {
            Ok(())
        } else {
            Err(Error::Status(reply.status))
        }
    }

    async fn control_invoke(&self, build: impl FnOnce(u16) -> Message) -> Result<(), Error> {
        let reply = self.request(build, Some(CONTROL_TIMEOUT)).await?;
        if reply.status.is_ok() {
            Ok(())
        } else {
            Err(Error::Status(reply.status))
        }
    }

    /// Sends a request and collects its answer. Replies are matched on sequence number
    /// and peer: ubusd answers with the peer we addressed (0 for its own commands, the
    /// object id for calls).
    async fn request(
        &self,
        build: impl FnOnce(u16) -> Message,
        timeout: Option<Duration>,
    ) -> Result<Reply, Error> {
        let inner = &*self.inner;
        if let Some(why) = inner.state.borrow().closed.clone() {
            return Err(Error::ConnectionLost(why));
        }
        // Built first, numbered after: the peer tells which numbers are free.
        let mut msg = build(0);
        let peer = msg.header.peer;
        let seq = inner.next_seq(peer);
        msg.header.seq = seq;
        let (tx, rx) = channel::unbounded();
        inner.state.borrow_mut().pending.insert((seq, peer), tx);
        let _guard = PendingGuard {
            inner,
            key: (seq, peer),
        };
        inner.queue(&msg)?;
        let collect = async {
            inner.flush().await?;
            let mut data = Vec::new();
            loop {
                let m = inner.wait(&rx).await?;
                if m.header.kind == MsgType::Status {
                    // libubus reads a status message without a code as "invalid argument".
                    let code = m.status().unwrap_or(Status::InvalidArgument.as_u32());
                    return Ok(Reply {
                        data,
                        status: Status::from_u32(code),
                    });
                }
                data.push(m);
            }
        };
        match timeout {
            Some(t) => {
                future::or(collect, async {
                    Timer::after(t).await;
                    Err(Error::Timeout)
                })
                .await
            }
            None => collect.await,
        }
    }
}

impl Inner {
    fn lost(&self) -> Error {
        let why = self.state.borrow().closed.clone();
        Error::ConnectionLost(why.unwrap_or_else(|| "closed".to_owned()))
    }

    /// Marks the connection dead and wakes everybody waiting on it.
    fn close(&self, why: String) {
        let mut st = self.state.borrow_mut();
        if st.closed.is_none() {
            log::debug!("ubus: connection closed: {why}");
            st.closed = Some(why);
        }
        st.pending.clear();
        st.objects.clear();
        st.listener = None;
        drop(st);
        self.incoming_tx.close();
        self.out.borrow_mut().clear();
        let _ = self.io.get_ref().shutdown(std::net::Shutdown::Both);
    }

    /// A sequence number not in use by any request to `peer` still waiting.
    fn next_seq(&self, peer: u32) -> u16 {
        let st = self.state.borrow();
        loop {
            let seq = self.seq.get().wrapping_add(1);
            self.seq.set(seq);
            if !st.pending.contains_key(&(seq, peer)) {
                return seq;
            }
        }
    }

    /// Appends a message to the outgoing buffer.
    fn queue(&self, m: &Message) -> Result<(), Error> {
        if let Some(why) = self.state.borrow().closed.clone() {
            return Err(Error::ConnectionLost(why));
        }
        let bytes = m.encode();
        let body = bytes.len() - super::msg::HEADER_LEN;
        if body > MAX_MSGLEN {
            return Err(Error::TooLarge(body));
        }
        self.out.borrow_mut().extend_from_slice(&bytes);
        Ok(())
    }

    /// Writes out the outgoing buffer. Cancel-safe: bytes leave the buffer only once the
    /// socket took them.
    async fn flush(&self) -> Result<(), Error> {
        let _w = self.writer.lock().await;
        loop {
            let chunk = {
                let out = self.out.borrow();
                if out.is_empty() {
                    return Ok(());
                }
                out[..out.len().min(WRITE_CHUNK)].to_vec()
            };
            match (&self.io).write(&chunk).await {
                Ok(0) => {
                    self.close("ubusd stopped accepting data".to_owned());
                    return Err(self.lost());
                }
                Ok(n) => {
                    self.out.borrow_mut().drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(format!("write: {e}"));
                    return Err(self.lost());
                }
            }
        }
    }

    /// Waits for a message in `rx`, reading from the socket whenever nobody else is.
    async fn wait<T>(&self, rx: &Receiver<T>) -> Result<T, Error> {
        loop {
            if let Ok(v) = rx.try_recv() {
                return Ok(v);
            }
            if self.state.borrow().closed.is_some() {
                return Err(self.lost());
            }
            let step = future::or(async { Step::Got(rx.recv().await.ok()) }, async {
                Step::Lead(self.reader.lock().await)
            })
            .await;
            match step {
                Step::Got(Some(v)) => return Ok(v),
                Step::Got(None) => return Err(self.lost()),
                Step::Lead(mut decoder) => {
                    if let Ok(v) = rx.try_recv() {
                        return Ok(v);
                    }
                    self.read_some(&mut decoder).await;
                    drop(decoder);
                    // Answers to calls that dispatch made on its own (unknown objects,
                    // event acknowledgements).
                    let _ = self.flush().await;
                }
            }
        }
    }

    /// One read from the socket; dispatches every complete message.
    async fn read_some(&self, decoder: &mut FrameDecoder) {
        let mut buf = vec![0u8; READ_CHUNK];
        let n = match (&self.io).read(&mut buf).await {
            Ok(0) => return self.close("ubusd closed the connection".to_owned()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => return self.close(format!("read: {e}")),
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => self.dispatch(m),
                Ok(None) => return,
                Err(e) => return self.close(e.to_string()),
            }
        }
    }

    /// Sorts one message from ubusd into its mailbox.
    fn dispatch(&self, m: Message) {
        match m.header.kind {
            MsgType::Status | MsgType::Data => {
                let key = (m.header.seq, m.header.peer);
                let st = self.state.borrow();
                match st.pending.get(&key) {
                    Some(tx) => {
                        let _ = tx.try_send(m);
                    }
                    None => log::debug!("ubus: unmatched {:?} seq {}", m.header.kind, key.0),
                }
            }
            MsgType::Invoke => self.dispatch_invoke(m),
            MsgType::Notify => {
                if let (Some(object), Some(active)) = (m.obj_id(), m.active()) {
                    let _ = self
                        .incoming_tx
                        .try_send(Incoming::Subscribers { object, active });
                }
            }
            other => log::debug!("ubus: ignoring {other:?} from ubusd"),
        }
    }

    fn dispatch_invoke(&self, m: Message) {
        let Some(object) = m.obj_id() else {
            return;
        };
        let request = RequestToken {
            seq: m.header.seq,
            peer: m.header.peer,
            object,
            no_reply: m.no_reply(),
        };
        let owned = self.state.borrow().objects.get(&object).cloned();
        let method = m.method().map(str::to_owned);
        let args = m.data().map(blobmsg::decode_table);
        let answer = match (owned, method, args) {
            (None, _, _) => Status::NotFound,
            (Some(_), None, _) => Status::InvalidArgument,
            (Some(Owned::Listener), Some(id), args) => {
                let data = match args {
                    Some(Ok(map)) => Value::Object(map),
                    _ => Value::Object(Map::new()),
                };
                let _ = self.incoming_tx.try_send(Incoming::Event { id, data });
                // libubus acknowledges every event it handled.
                Status::Ok
            }
            (Some(Owned::Subscriber), Some(kind), args) => {
                let data = match args {
                    Some(Ok(map)) => Value::Object(map),
                    _ => Value::Object(Map::new()),
                };
                let _ = self
                    .incoming_tx
                    .try_send(Incoming::Notification { kind, data });
                Status::Ok
            }
            (Some(Owned::Published { methods }), Some(method), args) => {
                if !methods.contains(&method) {
                    Status::MethodNotFound
                } else {
                    match args {
                        Some(Ok(map)) => {
                            let _ = self.incoming_tx.try_send(Incoming::Invoke {
                                object,
                                method,
                                args: Value::Object(map),
                                request,
                            });
                            return;
                        }
                        _ => Status::InvalidArgument,
                    }
                }
            }
        };
        if !request.no_reply {
            let (seq, caller, obj) = (request.seq, request.peer, request.object);
            let _ = self.queue(&proto::reply_status(seq, caller, obj, answer));
        }
    }
}

/// The pure part of reconnecting: how long to wait before attempt `n` (0-based) after
/// the connection was lost.
pub fn reconnect_delay(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(16);
    RECONNECT_FIRST.saturating_mul(factor).min(RECONNECT_MAX)
}

/// What to publish on ubus: objects and event patterns, re-created on every connect.
#[derive(Clone, Debug)]
pub struct Session {
    path: PathBuf,
    objects: Vec<(String, Vec<Method>)>,
    patterns: Vec<String>,
}

/// A connected client with everything in its [`Session`] registered.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    objects: Vec<(String, ObjectId)>,
}

impl Connection {
    /// The id our object `name` got on this connection.
    pub fn object_id(&self, name: &str) -> Option<ObjectId> {
        self.objects
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }
}

impl Session {
    pub fn new(path: impl Into<PathBuf>) -> Session {
        Session {
            path: path.into(),
            objects: Vec::new(),
            patterns: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds an object to publish on every connection.
    pub fn object(&mut self, name: &str, methods: Vec<Method>) -> &mut Session {
        self.objects.push((name.to_owned(), methods));
        self
    }

    /// Adds an event pattern to listen to on every connection.
    pub fn listen(&mut self, pattern: &str) -> &mut Session {
        self.patterns.push(pattern.to_owned());
        self
    }

    /// Connects once and registers everything.
    pub async fn connect(&self) -> Result<Connection, Error> {
        let client = Client::connect(&self.path).await?;
        let mut objects = Vec::new();
        for (name, methods) in &self.objects {
            let id = client.add_object(name, methods).await?;
            objects.push((name.clone(), id));
        }
        for p in &self.patterns {
            client.register_event(p).await?;
        }
        Ok(Connection { client, objects })
    }

    /// Connects and registers, retrying with [`reconnect_delay`] until it works. Logs the
    /// first failure as a warning and the rest at debug level, so that a ubusd that
    /// stays away for long does not flood the log.
    pub async fn connect_with_backoff(&self) -> Connection {
        let mut attempt = 0u32;
        loop {
            match self.connect().await {
                Ok(c) => {
                    if attempt > 0 {
                        log::info!("ubus: connected to {} again", self.path.display());
                    }
                    return c;
                }
                Err(e) => {
                    if attempt == 0 {
                        log::warn!("ubus: {e}; retrying");
                    } else {
                        log::debug!("ubus: attempt {}: {e}", attempt + 1);
                    }
                    Timer::after(reconnect_delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(reconnect_delay(0), RECONNECT_FIRST);
        assert_eq!(reconnect_delay(1), RECONNECT_FIRST * 2);
        assert_eq!(reconnect_delay(4), RECONNECT_MAX);
        assert_eq!(reconnect_delay(u32::MAX), RECONNECT_MAX);
    }
}
