//! The local control socket: the methods of the `uplinkd` ubus object without ubus, for
//! `uplinkd status` and scripts on systems without ubusd.
//!
//! A unix stream socket (default [`default_path`], mode 0600: root only). Each
//! request is one line of JSON, `{"method": "status", "args": {"interface": "wan"}}`,
//! answered by one line, `{"status": 0, "data": {...}}` or
//! `{"status": 4, "error": "no interface named 'x'"}`, with the ubus status codes. A
//! connection may carry any number of requests. Requests are limited to
//! [`MAX_REQUEST`] bytes, connections to [`MAX_CLIENTS`] at once and an idle time of
//! [`IDLE`]; the server runs as tasks of the event loop's executor and never blocks it.

use crate::SpawnBoxed;
use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::channel::Sender;
use serde_json::Value;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::unix::{UnixListener, UnixStream as AsyncUnixStream};
use smol::{future, LocalExecutor, Timer};

use crate::control::{self, Call};
use crate::ubus::Status;

/// The default on OpenWrt, where init scripts, LuCI and users expect sockets in
/// `/var/run` (a link to the tmpfs `/tmp/run`).
pub const OPENWRT_PATH: &str = "/var/run/uplinkd.sock";
/// The default elsewhere (Debian): systemd's `RuntimeDirectory=uplinkd` is the one
/// writable place under `/run` that the unit's sandbox (`ProtectSystem=strict`) leaves.
pub const RUNTIME_DIR_PATH: &str = "/run/uplinkd/uplinkd.sock";

/// The default control socket, the same for the daemon and the command line: one
/// binary serves both systems (the Debian packages carry the static musl builds), so
/// the choice is made at run time, by the file every OpenWrt release has.
pub fn default_path() -> PathBuf {
    default_for(Path::new("/etc/openwrt_release").exists())
}

fn default_for(openwrt: bool) -> PathBuf {
    PathBuf::from(if openwrt {
        OPENWRT_PATH
    } else {
        RUNTIME_DIR_PATH
    })
}
/// Longest request line.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most connections served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 32;
/// A connection without a complete request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// The bound socket; removes its file when dropped (if it is still ours).
pub struct Server {
    path: PathBuf,
    ino: u64,
    _task: smol::Task<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Server {
    /// Binds `path` and serves it on `ex`, passing requests to `calls`. A stale socket
    /// file is replaced; a socket another process still answers on is an error.
    pub fn start(
        ex: &Rc<LocalExecutor<'static>>,
        path: &Path,
        calls: Sender<Call>,
    ) -> io::Result<Server> {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another process answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // Started by hand rather than by systemd, nobody made the runtime directory.
        if path == Path::new(RUNTIME_DIR_PATH) {
            if let Some(dir) = path.parent().filter(|d| !d.exists()) {
                std::fs::DirBuilder::new().mode(0o755).create(dir)?;
            }
        }
        let listener = UnixListener::bind(path)?;
        // The directory (/var/run, /run/uplinkd) is root's and a fresh socket is not writable by
        // others under the usual umask, so nobody else can connect before this.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let ino = std::fs::metadata(path)?.ino();
        let listener = Rc::new(listener);
        let task = accept_loop(
            ex,
            "control socket",
            move || {
                let l = listener.clone();
                async move { l.accept().await.map(|(s, _)| s) }
            },
            move |stream| {
                let calls = calls.clone();
                async move { serve(stream, &calls).await }
            },
        );
        Ok(Server {
            path: path.to_path_buf(),
            ino,
            _task: task,
        })
    }
}

/// The accept loop shared by the local front ends (control socket, HTTP): serve every
/// connection in its own task on `ex`, at most `MAX_CLIENTS` at once; a failing accept is
/// logged and retried, never fatal. Ends when the returned task is dropped.
pub(crate) fn accept_loop<S, A, AF, H, HF>(
    ex: &Rc<LocalExecutor<'static>>,
    label: &'static str,
    mut accept: A,
    handle: H,
) -> smol::Task<()>
where
    S: 'static,
    A: FnMut() -> AF + 'static,
    AF: std::future::Future<Output = io::Result<S>>,
    H: Fn(S) -> HF + 'static,
    HF: std::future::Future<Output = io::Result<()>> + 'static,
{
    let clients = Rc::new(Cell::new(0usize));
    let ex2 = ex.clone();
    ex.spawn_boxed(async move {
        loop {
            let stream = match accept().await {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("{label}: accept: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if clients.get() >= MAX_CLIENTS {
                log::debug!("{label}: more than {MAX_CLIENTS} connections, closing one");
                continue;
            }
            clients.set(clients.get() + 1);
            let clients = clients.clone();
            let served = handle(stream);
            ex2.spawn_boxed(async move {
                if let Err(e) = served.await {
                    log::debug!("{label}: client: {e}");
                }
                clients.set(clients.get() - 1);
            })
            .detach();
        }
    })
}

/// One connection: lines in, lines out, until EOF, an oversized line or idleness.
async fn serve(mut stream: AsyncUnixStream, calls: &Sender<Call>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            if line.trim().is_empty() {
                continue;
            }
            let result = match control::parse_line(&line) {
                Ok((method, args)) => Call::send(calls, method, args).await,
                Err(e) => Err(e),
            };
            let mut out = control::reply_line(&result);
            out.push('\n');
            stream.write_all(out.as_bytes()).await?;
        }
        if buf.len() > MAX_REQUEST {
            let e = control::Error::new(
                Status::InvalidArgument,
                format!("request longer than {MAX_REQUEST} bytes"),
            );
            let mut out = control::reply_line(&Err(e));
            out.push('\n');
            stream.write_all(out.as_bytes()).await?;
            return Ok(());
        }
        let read = future::or(async { stream.read(&mut chunk).await.map(Some) }, async {
            Timer::after(IDLE).await;
            Ok(None)
        })
        .await?;
        match read {
            None | Some(0) => return Ok(()),
            Some(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Why a request from the command line failed.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers on the socket.
    Unreachable(io::Error),
    /// The daemon refused the request.
    Refused { status: u32, message: String },
    /// The answer was not what the protocol says.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(e) => write!(f, "uplinkd is not reachable: {e}"),
            ClientError::Refused { status, message } => {
                write!(f, "{message} ({})", Status::from_u32(*status))
            }
            ClientError::Protocol(m) => write!(f, "bad answer from uplinkd: {m}"),
        }
    }
}

/// Sends one request to the daemon at `path` and returns its `data` (blocking; for the
/// command line).
pub fn request(
    path: &Path,
    method: &str,
    args: Value,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let stream = UnixStream::connect(path).map_err(ClientError::Unreachable)?;
    let proto = |e: io::Error| ClientError::Protocol(e.to_string());
    stream.set_read_timeout(Some(timeout)).map_err(proto)?;
    stream.set_write_timeout(Some(timeout)).map_err(proto)?;
    let mut line = serde_json::json!({"method": method, "args": args}).to_string();
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(proto)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .take(16 * 1024 * 1024)
        .read_line(&mut answer)
        .map_err(proto)?;
    let v: Value =
        serde_json::from_str(&answer).map_err(|e| ClientError::Protocol(e.to_string()))?;
    match v.get("status").and_then(Value::as_u64) {
        Some(0) => Ok(v.get("data").cloned().unwrap_or(Value::Null)),
        Some(status) => Err(ClientError::Refused {
            status: status as u32,
            message: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_string(),
        }),
        None => Err(ClientError::Protocol("no status".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_follows_the_system() {
        assert_eq!(default_for(true), Path::new("/var/run/uplinkd.sock"));
        assert_eq!(default_for(false), Path::new("/run/uplinkd/uplinkd.sock"));
    }
}
