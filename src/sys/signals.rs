//! SIGHUP / SIGTERM / SIGINT as an async stream, through a signalfd.
//!
//! The signals are blocked in every thread (the mask is set before any thread starts and
//! is inherited), so they are only ever delivered to the signalfd and read in the event
//! loop like any other input: no async-signal-safety concerns, no self-pipe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use smol::Async;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the configuration.
    Reload,
    /// SIGTERM: exit and leave the forwarding state for the next start (a restart).
    Terminate,
    /// SIGINT: remove everything uplinkd owns, then exit (a stop).
    Stop,
}

pub struct Signals {
    fd: Async<OwnedFd>,
}

fn mask() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a plain C struct we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the handled signals in the calling thread and in every thread started after.
/// Call first thing in `main`.
pub fn block() -> io::Result<()> {
    let set = mask();
    // SAFETY: pthread_sigmask reads the set we pass and writes no output (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

impl Signals {
    pub fn open() -> io::Result<Signals> {
        let set = mask();
        // SAFETY: creates a new descriptor; ownership passes to OwnedFd right after.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals {
            fd: Async::new(owned)?,
        })
    }

    pub async fn next(&self) -> io::Result<Signal> {
        loop {
            let signo = self
                .fd
                .read_with(|fd| {
                    let mut info: libc::signalfd_siginfo =
                        // SAFETY: an all-zero signalfd_siginfo is a valid value.
                        unsafe { std::mem::zeroed() };
                    let size = std::mem::size_of::<libc::signalfd_siginfo>();
                    // SAFETY: reads at most `size` bytes into `info`, which is that big.
                    let n = unsafe {
                        libc::read(
                            fd.as_raw_fd(),
                            &mut info as *mut _ as *mut libc::c_void,
                            size,
                        )
                    };
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if n as usize != size {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "short read"));
                    }
                    Ok(info.ssi_signo as i32)
                })
                .await?;
            match signo {
                libc::SIGHUP => return Ok(Signal::Reload),
                libc::SIGTERM => return Ok(Signal::Terminate),
                libc::SIGINT => return Ok(Signal::Stop),
                _ => continue,
            }
        }
    }
}
