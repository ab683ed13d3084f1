//! Probe sockets: ICMP echo over raw sockets and TCP connect probes, each pinned to the
//! device of one WAN.
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
//! The payload tag in [`crate::probe::icmp`] then drops other programs' echo replies; the
//! caller matches identifier, sequence number and source address against what it sent.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use smol::Async;

use crate::kernel::Family;
use crate::probe::icmp::{self, EchoReply};

/// `ICMP_FILTER` (linux/icmp.h), a `SOL_RAW` option of raw IPv4 ICMP sockets: a 32-bit
/// mask of ICMP types to drop.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (RFC 3542 §3.2), an `IPPROTO_ICMPV6` option: 256 bits, one per ICMPv6
/// type; on Linux a set bit blocks the type.
const ICMP6_FILTER: libc::c_int = 1;
const ICMP4_ECHO_REPLY: u32 = 0;
const ICMP6_ECHO_REPLY: u32 = 129;

/// Receive buffer: our replies are tiny (IPv4 header with options, echo header, tag);
/// anything longer is someone else's and is truncated, then rejected by the parser.
const RECV_BUF: usize = 256;
/// Send buffer: echo header and tag, no further payload.
const SEND_BUF: usize = icmp::MIN_ECHO_LEN;

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
            IpAddr::V4(_) => icmp::echo_request_v4(ident, seq, &[], &mut buf),
            IpAddr::V6(_) => icmp::echo_request_v6(ident, seq, &[], &mut buf),
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

    /// Waits for the next echo reply that carries our tag. Anything else the socket
    /// receives is skipped. Whether the reply answers an outstanding probe (identifier,
    /// sequence number, source address) is for the caller to decide.
    pub async fn recv(&self) -> io::Result<EchoReply> {
        let mut buf = [0u8; RECV_BUF];
        loop {
            let (len, from) = self.io.read_with(|fd| recv_from(fd, &mut buf)).await?;
            let data = buf.get(..len).unwrap_or_default();
            let reply = match (self.family, from) {
                (Family::V4, _) => icmp::parse_v4(data),
                (Family::V6, Some(SocketAddr::V6(from))) => icmp::parse_v6(*from.ip(), data),
                (Family::V6, _) => None,
            };
            if let Some(reply) = reply {
                return Ok(reply);
            }
        }
    }
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
/// The socket lingers with a zero timeout, so closing an established probe connection
/// sends a reset instead of a FIN: no TIME_WAIT state piles up on either side however
/// often the target is probed.
pub async fn tcp_connect(
    device: &str,
    source: Option<IpAddr>,
    mark: Option<u32>,
    target: SocketAddr,
) -> io::Result<()> {
    let on_device = |e: io::Error| with_device(e, "TCP probe socket", device);
    if let Some(src) = source {
        if src.is_ipv4() != target.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TCP probe on {device}: source {src} and target {target} differ in family"),
            ));
        }
    }
    let domain = match target {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = socket(domain, libc::SOCK_STREAM, 0).map_err(on_device)?;
    bind_to_device(&fd, device).map_err(on_device)?;
    if let Some(mark) = mark {
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_MARK, &mark).map_err(on_device)?;
    }
    if let Some(src) = source {
        bind(&fd, SocketAddr::new(src, 0)).map_err(on_device)?;
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger).map_err(on_device)?;

    let (addr, addr_len) = sockaddr(target);
    // SAFETY: `addr` is a valid socket address of `addr_len` bytes.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_storage).cast(),
            addr_len,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINPROGRESS) => {}
        Some(libc::ECONNREFUSED) => return Ok(()),
        _ => return Err(err),
    }
    let io = Async::new_nonblocking(fd).map_err(on_device)?;
    io.writable().await?;
    let mut so_error: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `so_error` is a c_int and `len` holds its size.
    let rc = unsafe {
        libc::getsockopt(
            io.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut so_error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    match so_error {
        0 | libc::ECONNREFUSED => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
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

/// One nonblocking `recvfrom`; returns the length and the sender, if the kernel gave a
/// socket address we understand.
fn recv_from(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Option<SocketAddr>)> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut addr_len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` and `storage` are valid for the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut addr_len,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        // Interrupted: let the reactor call us again rather than fail the probe.
        if err.kind() == io::ErrorKind::Interrupted {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        return Err(err);
    }
    let from = socket_addr(&storage, addr_len);
    Ok((n as usize, from))
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
