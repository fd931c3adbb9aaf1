//! Process groups: joining one from the parent's side, and knowing our own.
#![allow(unsafe_code)]

use std::io;

use super::cvt;

/// `setpgid(pid, pgid)`.
pub(crate) fn setpgid(pid: libc::pid_t, pgid: libc::pid_t) -> io::Result<()> {
    // SAFETY: setpgid takes two integers.
    cvt(unsafe { libc::setpgid(pid, pgid) }).map(drop)
}

/// `getpgrp()`: the calling process's group.
pub(crate) fn getpgrp() -> libc::pid_t {
    // SAFETY: getpgrp takes nothing and cannot fail.
    unsafe { libc::getpgrp() }
}

/// `killpg(pgid, sig)`; `ESRCH` (nobody left in the group) is not an error.
pub(crate) fn killpg(pgid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: killpg takes two integers.
    match cvt(unsafe { libc::killpg(pgid, sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other.map(drop),
    }
}
