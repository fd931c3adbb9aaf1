//! Process file descriptors (Linux ≥ 5.3): race-free signals and sleeping waits.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::cvt;

static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Whether the kernel has said it has no pidfds.
pub(crate) fn known_unsupported() -> bool {
    UNSUPPORTED.load(Ordering::Relaxed)
}

pub(crate) fn mark_unsupported() {
    UNSUPPORTED.store(true, Ordering::Relaxed);
}

/// `pidfd_open(pid, 0)`, made close-on-exec by the kernel. `Ok(None)` where the kernel has no
/// pidfds.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<Option<OwnedFd>> {
    if known_unsupported() {
        return Ok(None);
    }
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    match cvt(ret as libc::c_int) {
        // SAFETY: the kernel returned a fresh descriptor (always O_CLOEXEC) that nobody owns.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            mark_unsupported();
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_open(_pid: libc::pid_t) -> io::Result<Option<OwnedFd>> {
    Ok(None)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo asks the kernel to fill it in as kill(2) would.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    };
    cvt(ret as libc::c_int).map(drop)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_send_signal(_pidfd: BorrowedFd<'_>, _sig: libc::c_int) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
