//! Static musl builds only: a smaller `pthread_setname_np`.
//!
//! std names a thread (ours: `hooks`; async-io's and async-process's helpers) by calling
//! `pthread_setname_np(pthread_self(), name)` from the new thread itself. musl's version
//! handles other threads too, through `/proc/self/task/<tid>/comm` formatted with
//! `snprintf`, and that one call links musl's whole printf engine (about 11 kB on mipsel)
//! into a binary that never prints with it. For the calling thread both do the same
//! thing, `prctl(PR_SET_NAME)`; a static link takes this definition and leaves musl's
//! object out.

use std::ffi::{c_char, c_int};

/// Names the calling thread, like musl's for that case; another thread gets `ENOTSUP`
/// (nothing in the process asks for that).
///
/// # Safety
/// `name` must be a NUL-terminated string, as for the C function.
#[no_mangle]
pub unsafe extern "C" fn pthread_setname_np(thread: libc::pthread_t, name: *const c_char) -> c_int {
    // Linux keeps 15 bytes and the NUL (TASK_COMM_LEN); musl refuses longer names.
    if libc::strnlen(name, 16) > 15 {
        return libc::ERANGE;
    }
    if thread != libc::pthread_self() {
        return libc::ENOTSUP;
    }
    let zero: libc::c_ulong = 0;
    if libc::prctl(libc::PR_SET_NAME, name, zero, zero, zero) == 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    }
}
