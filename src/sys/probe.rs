//! Probe sockets: ICMP echo over raw sockets, TCP connect, HTTP and DNS probes, each
//! pinned to the device of one WAN.
//!
//! Everything runs inside the daemon on nonblocking sockets driven by smol; no process is
//! ever spawned. The wire format lives in [`crate::probe::icmp`]; when to probe, and what
//! counts as an answer, is the pure scheduler's business in [`crate::probe`].
//!
//! # Staying on the WAN
//!
//! Every socket is bound to the WAN's device with `SO_BINDTODEVICE` (and to the WAN's
//! source address when known). The route lookup for a bound socket carries the device as
//! output interface, so it matches `oif <dev>` policy rules, and routes through any
//! other device are skipped even in tables the lookup reaches; a probe therefore never
//! leaves through another uplink. Binding the source address alone would not be enough:
//! the main table's default route would carry it out of whichever WAN is primary.
//!
//! One kernel behaviour matters when the WAN's table has no usable route (IPv4, seen on
//! Linux 5.x and 6.x, `ip_route_output_key_hash_rcu`): for a socket bound to a device the
//! kernel does not fail with `ENETUNREACH` but assumes the target is on-link and sends
//! an ARP request for it on that device. The packet still never leaves through another
//! WAN; the probe is lost (no neighbour answers), unless the upstream router answers ARP
//! for arbitrary addresses (proxy ARP). IPv6 has no such fallback: a bound socket whose
//! lookup ends in an `unreachable` route gets `ENETUNREACH` from `send`/`connect`
//! (checked on Linux 6.x).
//!
//! # Filtering replies
//!
//! A raw ICMP socket receives a copy of every ICMP packet addressed to the host. The
//! kernel narrows that down for us: the device binding (only packets that arrived on the
//! WAN's device), the source binding (only packets addressed to the WAN's address), and
//! a type filter (`ICMP_FILTER` on IPv4, `ICMP6_FILTER` on IPv6: echo replies only).
//! The per-process cookie in [`crate::probe::icmp`] then drops other programs' echo
//! replies and forged ones; the caller matches identifier, sequence number and source
//! address against what it sent.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use smol::Async;

use crate::kernel::Family;
use std::sync::OnceLock;

use crate::probe::icmp::{self, Cookie, EchoReply};
use crate::probe::{dns, http};

/// `ICMP_FILTER` (linux/icmp.h), a `SOL_RAW` option of raw IPv4 ICMP sockets: a 32-bit
/// mask of ICMP types to drop.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (RFC 3542 §3.2), an `IPPROTO_ICMPV6` option: 256 bits, one per ICMPv6
/// type; on Linux a set bit blocks the type.
const ICMP6_FILTER: libc::c_int = 1;
const ICMP4_ECHO_REPLY: u32 = 0;
const ICMP6_ECHO_REPLY: u32 = 129;

/// Receive buffer: our replies are tiny (IPv4 header with options, echo header, cookie);
/// anything longer is someone else's and is truncated, then rejected by the parser.
const RECV_BUF: usize = 256;
/// Send buffer: echo header and cookie, no further payload.
const SEND_BUF: usize = icmp::MIN_ECHO_LEN;

/// The cookie every echo request of this process carries: 64 bits from the kernel's
/// random pool (`getrandom`), drawn on first use. If the pool cannot be read (a kernel
/// without `getrandom`, before 3.17), the time and pid are mixed instead: still not
/// public, only guessable by someone who can see the host.
pub fn process_cookie() -> Cookie {
    static COOKIE: OnceLock<Cookie> = OnceLock::new();
    *COOKIE.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // SAFETY: `bytes` is valid for its length.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n == bytes.len() as isize {
            return Cookie(bytes);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mixed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        Cookie::from_u64(mixed.wrapping_mul(0xbf58_476d_1ce4_e5b9))
    })
}

/// A raw ICMP socket of one WAN and one address family, bound to the WAN's device.
#[derive(Debug)]
pub struct IcmpSocket {
    io: Async<OwnedFd>,
    family: Family,
    device: String,
}

impl IcmpSocket {
    /// Stamp every probe with `mark` (`SO_MARK`): uplinkd's fwmark rule for this WAN
    /// routes it into the WAN's table, and uplinkd's nft output chain leaves it alone.
    pub fn set_mark(&self, mark: u32) -> io::Result<()> {
        setsockopt(self.io.get_ref(), libc::SOL_SOCKET, libc::SO_MARK, &mark)
            .map_err(|e| with_device(e, "ICMP socket", &self.device))
    }

    /// Opens a raw echo socket bound to `device` and, if given, to `source` (which must
    /// be of `family`). Errors name the device.
    pub fn open(device: &str, source: Option<IpAddr>, family: Family) -> io::Result<IcmpSocket> {
        if let Some(src) = source {
            if Family::of(&src) != family {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("ICMP socket on {device}: source {src} is not of the socket's family"),
                ));
            }
        }
        let what = match family {
            Family::V4 => "ICMP socket",
            Family::V6 => "ICMPv6 socket",
        };
        let on_device = |e: io::Error| with_device(e, what, device);
        let fd = match family {
            Family::V4 => socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
            Family::V6 => socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
        }
        .map_err(on_device)?;
        match family {
            Family::V4 => {
                let block: u32 = !(1 << ICMP4_ECHO_REPLY);
                setsockopt(&fd, libc::SOL_RAW, ICMP_FILTER, &block)
            }
            Family::V6 => {
                let mut block = [u32::MAX; 8];
                block[(ICMP6_ECHO_REPLY >> 5) as usize] &= !(1 << (ICMP6_ECHO_REPLY & 31));
                setsockopt(&fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &block)
            }
        }
        .map_err(on_device)?;
        bind_to_device(&fd, device).map_err(on_device)?;
        if let Some(src) = source {
            bind(&fd, SocketAddr::new(src, 0)).map_err(on_device)?;
        }
        // The kernel stamps every packet when it arrives (SCM_TIMESTAMPNS, wall clock):
        // the RTT then does not include the time the reply waited for the event loop.
        let on: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on).map_err(on_device)?;
        let io = Async::new_nonblocking(fd).map_err(on_device)?;
        Ok(IcmpSocket {
            io,
            family,
            device: device.to_owned(),
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// Sends one echo request without waiting. An error (`ENETUNREACH`, `EHOSTUNREACH`,
    /// `EAGAIN` when the socket buffer is full, ...) means the probe did not leave: the
    /// caller counts it as lost. The errno is kept (`raw_os_error`).
    pub fn send(&self, target: IpAddr, ident: u16, seq: u16) -> io::Result<()> {
        if Family::of(&target) != self.family {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{target} is not of the ICMP socket's family"),
            ));
        }
        let mut buf = [0u8; SEND_BUF];
        let len = match target {
            IpAddr::V4(_) => icmp::echo_request_v4(process_cookie(), ident, seq, &[], &mut buf),
            IpAddr::V6(_) => icmp::echo_request_v6(process_cookie(), ident, seq, &[], &mut buf),
        };
        let packet = buf.get(..len).unwrap_or_default();
        let (addr, addr_len) = sockaddr(SocketAddr::new(target, 0));
        loop {
            // SAFETY: `packet` and `addr` are valid for the lengths passed.
            let sent = unsafe {
                libc::sendto(
                    self.io.get_ref().as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    (&addr as *const libc::sockaddr_storage).cast(),
                    addr_len,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Waits for the next echo reply that carries our cookie. Anything else the socket
    /// receives is skipped. Whether the reply answers an outstanding probe (identifier,
    /// sequence number, source address) is for the caller to decide.
    pub async fn recv(&self) -> io::Result<EchoReply> {
        self.recv_stamped().await.map(|r| r.reply)
    }

    /// [`IcmpSocket::recv`], with the time the kernel received the reply, when it says.
    pub async fn recv_stamped(&self) -> io::Result<Received> {
        let mut buf = [0u8; RECV_BUF];
        loop {
            let (len, from, at) = self.io.read_with(|fd| recv_msg(fd, &mut buf)).await?;
            let data = buf.get(..len).unwrap_or_default();
            let reply = match (self.family, from) {
                (Family::V4, _) => icmp::parse_v4(process_cookie(), data),
                (Family::V6, Some(SocketAddr::V6(from))) => {
                    icmp::parse_v6(process_cookie(), *from.ip(), data)
                }
                (Family::V6, _) => None,
            };
            if let Some(reply) = reply {
                return Ok(Received { reply, at });
            }
        }
    }
}

/// An echo reply and when the kernel received it (`SO_TIMESTAMPNS`, wall clock).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub reply: EchoReply,
    pub at: Option<std::time::SystemTime>,
}

/// Opens a TCP connection to `target` from `device` (and `source`, if given) and reports
/// whether the path works. Dropping the future abandons the attempt: the caller applies
/// the timeout.
///
/// `Ok(())` when the handshake completes, and also when the target answers with a reset
/// (`ECONNREFUSED`): a reset is an answer from the target host itself, which proves the
/// path to it as well as a completed handshake does; whether anything listens on the port
/// is not what the probe asks. Any other error (`ENETUNREACH`, `EHOSTUNREACH` after a
/// failed neighbour lookup or an ICMP unreachable, ...) is returned. Socket creation
/// errors name the device.
///
/// Linux also fails a connect with `ECONNREFUSED` when an ICMP port (or protocol)
/// unreachable arrives from *any* hop (`tcp_v4_err`, `icmp_err_convert`), so
/// `ECONNREFUSED` alone does not prove the target answered: a router of the ISP that
/// rejects with port-unreachable would keep the WAN up. The socket therefore sets
/// `IP_RECVERR` / `IPV6_RECVERR`, which makes the kernel queue every ICMP error with the
/// address of the host that sent it (`SO_EE_OFFENDER`); see [`tcp_outcome`].
///
/// The socket lingers with a zero timeout, so closing an established probe connection
/// sends a reset instead of a FIN: no TIME_WAIT state piles up on either side however
/// often the target is probed.
///
/// A completed handshake also returns its round-trip time as the kernel measured it
/// (`handshake_rtt`); a reset returns `None`.
pub async fn tcp_connect(
    device: &str,
    source: Option<IpAddr>,
    mark: Option<u32>,
    target: SocketAddr,
) -> io::Result<Option<Duration>> {
    let on_device = |e: io::Error| with_device(e, "TCP probe socket", device);
    if let Some(src) = source {
        if src.is_ipv4() != target.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TCP probe on {device}: source {src} and target {target} differ in family"),
            ));
        }
    }
    let fd = pinned_socket(device, source, mark, target, libc::SOCK_STREAM).map_err(on_device)?;
    let on: libc::c_int = 1;
    match target {
        SocketAddr::V4(_) => setsockopt(&fd, libc::SOL_IP, libc::IP_RECVERR, &on),
        SocketAddr::V6(_) => setsockopt(&fd, libc::SOL_IPV6, libc::IPV6_RECVERR, &on),
    }
    .map_err(on_device)?;

    let Err(err) = connect_start(&fd, target) else {
        return Ok(handshake_rtt(&fd));
    };
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) => {}
        Some(errno) => return tcp_outcome(target.ip(), errno, icmp_error(&fd)).map(|()| None),
        None => return Err(err),
    }
    let io = Async::new_nonblocking(fd).map_err(on_device)?;
    io.writable().await?;
    let so_error = pending_error(io.get_ref())?;
    if so_error == 0 {
        return Ok(handshake_rtt(io.get_ref()));
    }
    tcp_outcome(target.ip(), so_error, icmp_error(io.get_ref())).map(|()| None)
}

/// The round-trip time of a connection's handshake, from `TCP_INFO`. After the
/// handshake the kernel has exactly one RTT sample, SYN sent to SYN-ACK received, both
/// stamped by the kernel when the SYN left and the SYN-ACK arrived (`tcp_ack_update_rtt`,
/// microseconds since 3.15); the first sample sets the smoothed RTT to itself
/// (`tcp_rtt_estimator`: srtt = m), so `tcpi_rtt` is that sample, unaffected by when
/// the loop got round to the socket. A retransmitted SYN gives no exact sample (Karn's
/// rule; at most a TCP-timestamp one, in milliseconds). `None` if the kernel has no
/// sample or refuses the option.
fn handshake_rtt(fd: &OwnedFd) -> Option<Duration> {
    // SAFETY: tcp_info is plain data; the kernel fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // tcpi_rtt ends at byte 72 of struct tcp_info (there since 2.6).
    if rc != 0 || (len as usize) < 72 || info.tcpi_rtt == 0 {
        return None;
    }
    Some(Duration::from_micros(u64::from(info.tcpi_rtt)))
}

/// A socket of type `ty` for `target`, pinned to the WAN like every probe socket:
/// bound to `device`, stamped with `mark`, bound to `source` if given. TCP sockets
/// linger with a zero timeout (see [`tcp_connect`]).
fn pinned_socket(
    device: &str,
    source: Option<IpAddr>,
    mark: Option<u32>,
    target: SocketAddr,
    ty: libc::c_int,
) -> io::Result<OwnedFd> {
    let domain = match target {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = socket(domain, ty, 0)?;
    bind_to_device(&fd, device)?;
    if let Some(mark) = mark {
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_MARK, &mark)?;
    }
    if let Some(src) = source {
        bind(&fd, SocketAddr::new(src, 0))?;
    }
    if ty == libc::SOCK_STREAM {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger)?;
    }
    Ok(fd)
}

fn same_family(device: &str, source: Option<IpAddr>, target: SocketAddr) -> Result<(), String> {
    match source {
        Some(src) if src.is_ipv4() != target.is_ipv4() => Err(format!(
            "probe on {device}: source {src} and target {target} differ in family"
        )),
        _ => Ok(()),
    }
}

/// Starts `connect` on a nonblocking socket: `Ok` when it completed at once, else the
/// error (`EINPROGRESS` while the handshake runs).
fn connect_start(fd: &OwnedFd, target: SocketAddr) -> io::Result<()> {
    let (addr, addr_len) = sockaddr(target);
    // SAFETY: `addr` is a valid socket address of `addr_len` bytes.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_storage).cast(),
            addr_len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The socket's pending error (`SO_ERROR`): how a nonblocking connect ended, 0 if well.
fn pending_error(fd: &OwnedFd) -> io::Result<libc::c_int> {
    let mut so_error: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `so_error` is a c_int and `len` holds its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut so_error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(so_error)
    }
}

/// `connect` on a nonblocking socket, waiting for the handshake.
async fn connect(fd: OwnedFd, target: SocketAddr) -> io::Result<Async<OwnedFd>> {
    match connect_start(&fd, target) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => return Err(e),
        _ => {}
    }
    let io = Async::new_nonblocking(fd)?;
    io.writable().await?;
    let so_error = pending_error(io.get_ref())?;
    if so_error != 0 {
        return Err(io::Error::from_raw_os_error(so_error));
    }
    Ok(io)
}

/// One non-blocking `send` on a connected socket: how many bytes the kernel took.
fn send_now(fd: &impl AsRawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for its length.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// One non-blocking `recv` into `buf`: how many bytes came (0: the peer closed).
fn recv_now(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for its length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// The http probe: `GET` with `request` (from [`http::request`]) to `target` from
/// `device`, then reads at most [`http::MAX_RESPONSE`] bytes until
/// [`http::verdict`] decides. `Err` carries the reason the status report shows (`HTTP
/// 302`, `connection refused`). Dropping the future abandons it: the caller applies the
/// probe timeout. The connection is reset, not closed, when done (zero linger).
pub async fn http_get(
    device: &str,
    source: Option<IpAddr>,
    mark: Option<u32>,
    target: SocketAddr,
    request: &str,
    expect: &http::Expect<'_>,
) -> Result<(), String> {
    same_family(device, source, target)?;
    let fd = pinned_socket(device, source, mark, target, libc::SOCK_STREAM)
        .map_err(|e| with_device(e, "HTTP probe socket", device).to_string())?;
    let io = connect(fd, target).await.map_err(|e| e.to_string())?;
    let mut sent = 0;
    while sent < request.len() {
        let rest = request.as_bytes().get(sent..).unwrap_or_default();
        let n = io
            .write_with(|fd| send_now(fd, rest))
            .await
            .map_err(|e| e.to_string())?;
        sent += n;
    }
    let mut buf = vec![0u8; http::MAX_RESPONSE];
    let mut len = 0;
    loop {
        let room = buf.get_mut(len..).unwrap_or_default();
        let n = io
            .read_with(|fd| recv_now(fd, room))
            .await
            .map_err(|e| e.to_string())?;
        len += n;
        let closed = n == 0 || len >= buf.len();
        match http::verdict(buf.get(..len).unwrap_or_default(), closed, expect) {
            http::Verdict::Pass => return Ok(()),
            http::Verdict::Fail(why) => return Err(why),
            http::Verdict::More if closed => return Err("answer ended early".into()),
            http::Verdict::More => {}
        }
    }
}

/// The dns probe: `query` (from [`dns::query`]) over UDP to the resolver `target` from
/// `device`; waits for its answer and judges it with [`dns::check`]. Datagrams that do
/// not answer this query are skipped (the connected socket already drops those from
/// other addresses). Dropping the future abandons it: the caller applies the timeout.
pub async fn dns_ask(
    device: &str,
    source: Option<IpAddr>,
    mark: Option<u32>,
    target: SocketAddr,
    query: &[u8],
) -> Result<(), String> {
    same_family(device, source, target)?;
    let fd = pinned_socket(device, source, mark, target, libc::SOCK_DGRAM)
        .map_err(|e| with_device(e, "DNS probe socket", device).to_string())?;
    // A UDP connect only sets the peer: it completes at once.
    let io = connect(fd, target).await.map_err(|e| e.to_string())?;
    io.write_with(|fd| send_now(fd, query))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; dns::MAX_ANSWER];
    loop {
        let n = io
            .read_with(|fd| recv_now(fd, &mut buf))
            .await
            .map_err(|e| e.to_string())?;
        match dns::check(query, buf.get(..n).unwrap_or_default()) {
            Ok(()) => return Ok(()),
            Err(dns::Fail::NotOurs) => {}
            Err(rcode) => return Err(rcode.to_string()),
        }
    }
}

/// An ICMP error the kernel queued on a socket (`IP_RECVERR`): its type and code, and
/// the host that sent it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub kind: u8,
    pub code: u8,
    pub offender: Option<IpAddr>,
}

/// What a failed TCP probe connect means, given the errno and the ICMP error the kernel
/// queued for it (if any).
///
/// - An ICMP error sent by the target itself (a host firewall answering with
///   port-unreachable, the default of iptables' `REJECT`) proves the path: `Ok`.
/// - An ICMP error from any other hop is a lost probe, whatever errno it produced.
/// - `ECONNREFUSED` without an ICMP error is the target's reset: `Ok`.
/// - Anything else is a lost probe.
pub fn tcp_outcome(target: IpAddr, errno: i32, icmp: Option<IcmpError>) -> io::Result<()> {
    match icmp {
        Some(e) if e.offender == Some(target) => Ok(()),
        Some(e) => {
            let from = e
                .offender
                .map_or_else(|| "an unknown hop".to_string(), |a| a.to_string());
            Err(io::Error::other(format!(
                "ICMP type {} code {} from {from}: {}",
                e.kind,
                e.code,
                io::Error::from_raw_os_error(errno)
            )))
        }
        None if errno == libc::ECONNREFUSED => Ok(()),
        None => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Reads the socket's error queue (`MSG_ERRQUEUE`) and returns the last ICMP error on it.
fn icmp_error(fd: &OwnedFd) -> Option<IcmpError> {
    let mut found = None;
    // A few rounds at most: one connect sees one SYN, retransmitted a few times.
    for _ in 0..8 {
        let mut data = [0u8; 64];
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: all-zero bytes are a valid msghdr.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: `msg` points to buffers that live for the call.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            break;
        }
        // SAFETY: the kernel filled `msg.msg_control` with `msg_controllen` bytes of
        // well-formed control messages; the CMSG macros stay within them.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let is_err = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
                    || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
                let len = c.cmsg_len as usize;
                let head = libc::CMSG_LEN(0) as usize;
                let ee_len = mem::size_of::<libc::sock_extended_err>();
                if is_err && len >= head + ee_len {
                    let p = libc::CMSG_DATA(cmsg);
                    let ee = p.cast::<libc::sock_extended_err>().read_unaligned();
                    if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP
                        || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6
                    {
                        // SO_EE_OFFENDER: the sender's address follows the struct.
                        let mut storage: libc::sockaddr_storage = mem::zeroed();
                        let avail = (len - head - ee_len).min(mem::size_of_val(&storage));
                        std::ptr::copy_nonoverlapping(
                            p.add(ee_len),
                            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                            avail,
                        );
                        let offender = socket_addr(&storage, avail as libc::socklen_t)
                            .map(|a| a.ip())
                            .map(|ip| match ip {
                                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                                v4 => v4,
                            });
                        found = Some(IcmpError {
                            kind: ee.ee_type,
                            code: ee.ee_code,
                            offender,
                        });
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    found
}

/// Wraps an error from setting up a socket so the log line says which WAN device it was.
fn with_device(err: io::Error, what: &str, device: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what} on {device}: {err}"))
}

fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success we own the returned descriptor.
    let fd = unsafe {
        libc::socket(
            domain,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind_to_device(fd: &OwnedFd, device: &str) -> io::Result<()> {
    // The kernel copies at most IFNAMSIZ - 1 bytes; a longer name would silently bind to
    // a truncated (possibly other) device, so refuse it.
    if device.is_empty() || device.len() >= libc::IFNAMSIZ || device.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid device name",
        ));
    }
    // SAFETY: the name bytes are valid for `device.len()` bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.as_ptr().cast(),
            device.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let (sa, len) = sockaddr(addr);
    // SAFETY: `sa` is a valid socket address of `len` bytes.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("bind to {}: {err}", addr.ip()),
        ));
    }
    Ok(())
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One nonblocking `recvmsg`; returns the length, the sender (if the kernel gave a
/// socket address we understand) and the kernel's receive time (`SCM_TIMESTAMPNS`).
fn recv_msg(
    fd: &OwnedFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<std::time::SystemTime>)> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage and msghdr.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        return Err(err);
    }
    let mut at = None;
    // SAFETY: the kernel filled `msg_controllen` bytes of well-formed control messages;
    // the CMSG macros stay within them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let size = mem::size_of::<libc::timespec>();
            if c.cmsg_level == libc::SOL_SOCKET
                && c.cmsg_type == libc::SCM_TIMESTAMPNS
                && c.cmsg_len as usize >= libc::CMSG_LEN(size as u32) as usize
            {
                let ts = libc::CMSG_DATA(cmsg)
                    .cast::<libc::timespec>()
                    .read_unaligned();
                if ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec) {
                    at = Some(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                    );
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let from = socket_addr(&storage, msg.msg_namelen);
    Ok((n as usize, from, at))
}

fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in of at least this size.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the kernel wrote a sockaddr_in6 of at least this size.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
