//! `epoll(7)`: one kernel-side interest list for waiting on many descriptors, so a wait costs
//! the number of ready descriptors, not the number watched.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::cvt;

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(EPOLL_CTL_ADD)` of `fd` with `events`, tagged with `data`.
pub(crate) fn epoll_add(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    cvt(unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            &mut ev,
        )
    })
    .map(drop)
}

/// `epoll_ctl(EPOLL_CTL_DEL)` of the descriptor numbered `fd`. `ENOENT`/`EBADF` (not watched,
/// or already closed, which removes it) are not errors.
pub(crate) fn epoll_del(epoll: BorrowedFd<'_>, fd: libc::c_int) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: `ev` is valid (old kernels require a non-null event even for DEL).
    match cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) }) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) => Ok(()),
        other => other.map(drop),
    }
}

/// `epoll_wait` until something is ready or `deadline` passes: fills `events` and returns how
/// many it filled, `0` once the deadline has passed. A signal resumes the sleep with the time
/// that is left.
pub(crate) fn epoll_wait(
    epoll: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: `events` is a valid, exclusively borrowed array of at least `max` entries.
    super::poll::sleep_until(deadline, true, |ms| unsafe {
        libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, ms)
    })
    .map(Option::unwrap_or_default)
}
