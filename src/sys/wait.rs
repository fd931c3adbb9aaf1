//! Waiting for children: reaping, waiting without reaping, and sleeping on a descriptor.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use super::cvt_r;

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
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    super::poll::poll(&mut pfd, deadline).map(|ready| ready > 0)
}

/// `waitid(P_PIDFD, pidfd, WEXITED | options)`, retrying `EINTR`: the raw wait status of the
/// child once it has exited (reaped unless `options` has `WNOWAIT`), `None` if `options` has
/// `WNOHANG` and it still runs. `ECHILD`: the process is not (or no longer) a child of ours —
/// reaped elsewhere.
#[cfg(target_os = "linux")]
pub(crate) fn waitid_pidfd(
    pidfd: BorrowedFd<'_>,
    options: libc::c_int,
) -> io::Result<Option<libc::c_int>> {
    // SAFETY: all-zero is a valid siginfo_t; the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid siginfo_t for the kernel to fill.
    cvt_r(|| unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | options,
        )
    })?;
    // SAFETY: waitid filled `info` for a child event (or left it zeroed under WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // Back to the encoding waitpid uses, which `ExitStatus` reads.
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn waitid_pidfd(
    _pidfd: BorrowedFd<'_>,
    _options: libc::c_int,
) -> io::Result<Option<libc::c_int>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether the kernel reaps this process's children itself as they exit: SIGCHLD set to
/// `SIG_IGN` or with `SA_NOCLDWAIT`. A child's pid may then be recycled as soon as it exits,
/// so only a pidfd made with the child (`CLONE_PIDFD`) surely refers to it. One system call.
pub(crate) fn children_reaped_by_kernel() -> bool {
    // SAFETY: all-zero is a valid sigaction; sigaction only fills `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    let ret = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) };
    ret == 0 && (old.sa_sigaction == libc::SIG_IGN || old.sa_flags & libc::SA_NOCLDWAIT != 0)
}
