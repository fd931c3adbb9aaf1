//! Waiting for children: reaping, waiting without reaping, and sleeping on a descriptor.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use super::{cvt, cvt_r};

/// `waitpid(pid, WNOHANG)`: `Some(raw status)` once the child has been reaped.
pub(crate) fn waitpid_nohang(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for the kernel to fill.
    let ret = cvt_r(|| unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    Ok(if ret == 0 { None } else { Some(status) })
}

/// `waitpid(pid, 0)`, retrying `EINTR`.
pub(crate) fn waitpid_blocking(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for the kernel to fill.
    cvt_r(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(status)
}

/// Blocks until the child `pid` has exited, without reaping it (`waitid(WEXITED | WNOWAIT)`), so
/// its pid stays reserved until whoever holds the reaping lock collects it.
pub(crate) fn wait_exited_noreap(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: `info` is a valid siginfo_t for the kernel to fill.
    cvt_r(|| unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    })
    .map(drop)
}

/// Sleeps until `fd` is readable or `deadline` passes (`None`: no deadline). Returns whether it
/// became readable. Signals that interrupt the sleep resume it with the time that is left.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that we never wake before the deadline and spin.
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd.
        match cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
