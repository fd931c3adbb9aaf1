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

/// A pidfd for `pid`, a child of ours that may have been reaped elsewhere since it started (the
/// kernel reaps children itself when SIGCHLD is ignored; any `waitpid(-1)` in the process
/// does too): opened, then checked to be a child of ours still, exited or not. `Ok(None)`
/// where the kernel has no pidfds; an `ESRCH` error when the child is gone (reaped elsewhere:
/// `pid` may name a stranger by now).
///
/// What is left: a pid recycled, between the reaping elsewhere and this call, by another child
/// of this process. Spawns avoid that by making the pidfd with the child.
pub(crate) fn pidfd_open_child(pid: libc::pid_t) -> io::Result<Option<OwnedFd>> {
    let Some(fd) = pidfd_open(pid)? else {
        return Ok(None);
    };
    let nohang = libc::WNOHANG | libc::WNOWAIT;
    match super::wait::waitid_pidfd(std::os::fd::AsFd::as_fd(&fd), nohang) {
        // Someone else's process: ours is gone.
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
            Err(io::Error::from_raw_os_error(libc::ESRCH))
        }
        Err(e) => Err(e),
        Ok(_) => Ok(Some(fd)),
    }
}

/// `fork()` for the fork spawn path: `(pid, pidfd)` in the parent, `(0, None)` in the child,
/// `(-1, None)` with errno set on failure. `user_hooks`: the child runs a user's pre-exec hooks.
///
/// Where the kernel reaps children itself (SIGCHLD ignored or `SA_NOCLDWAIT`), a child may exit
/// and be reaped before the parent could open a pidfd for it, and its pid be recycled by then.
/// Without user hooks the fork is then a raw `clone(CLONE_PIDFD | SIGCHLD)`, which makes the
/// pidfd with the child. That skips the C library's fork handlers (`pthread_atfork`, and
/// glibc's own, which make the malloc and stdio locks usable in the child): harmless to our own
/// child code, which makes raw system calls only, but not to a user's hook, which may lean on
/// them beyond its contract (Python's `preexec_fn` runs the interpreter). With hooks it stays
/// the C library's `fork`, and the caller opens the pidfd and checks that it names a child of
/// ours ([`pidfd_open_child`]): what is left is the child exiting and its pid being taken by
/// another child of this process before that — a whole cycle of the pid space in between.
///
/// Otherwise it is the C library's `fork`, and the caller opens the pidfd: the child stays a
/// zombie, its pid reserved, until it is reaped.
///
/// # Safety
///
/// As `fork`: the child may only make async-signal-safe calls until it execs or exits.
#[cfg(all(target_os = "linux", not(target_arch = "s390x")))]
pub(crate) unsafe fn fork_with_pidfd(user_hooks: bool) -> (libc::pid_t, Option<OwnedFd>) {
    if user_hooks || known_unsupported() || !super::wait::children_reaped_by_kernel() {
        // SAFETY: the caller keeps to fork's contract.
        return (unsafe { libc::fork() }, None);
    }
    let mut pidfd: libc::c_int = -1;
    let flags = (libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with no new stack, clone duplicates this process as fork does; the kernel writes
    // the pidfd into `pidfd` (the parent_tid argument, for CLONE_PIDFD). tls and child_tid are
    // unused without their flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    } as libc::pid_t;
    if ret <= 0 {
        return (ret, None);
    }
    // SAFETY: the kernel made this descriptor (close-on-exec) for the child; nobody else owns it.
    let fd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    (ret, fd)
}

/// `fork()`; the caller opens the pidfd (see the Linux version).
///
/// # Safety
///
/// As `fork`.
#[cfg(not(all(target_os = "linux", not(target_arch = "s390x"))))]
pub(crate) unsafe fn fork_with_pidfd(_user_hooks: bool) -> (libc::pid_t, Option<OwnedFd>) {
    // SAFETY: the caller keeps to fork's contract.
    (unsafe { libc::fork() }, None)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    pidfd_send_signal_flags(pidfd, sig, 0)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` (Linux ≥ 6.9): signal the process group the pidfd's process is
/// in.
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

static NO_GROUP_FLAG: AtomicBool = AtomicBool::new(false);

/// Sends `sig` to the process group the process of `pidfd` is in now: `Ok(false)` where the
/// kernel cannot (before Linux 6.9). The group is found through the process, atomically, so
/// a process that was reaped (whose group id may be another's by now) gives `ESRCH`.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_send_signal_to_group(
    pidfd: BorrowedFd<'_>,
    sig: libc::c_int,
) -> io::Result<bool> {
    if NO_GROUP_FLAG.load(Ordering::Relaxed) {
        return Ok(false);
    }
    match pidfd_send_signal_flags(pidfd, sig, PIDFD_SIGNAL_PROCESS_GROUP) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // A bad signal number or an unknown flag: signal 0 with the flag tells which.
            match pidfd_send_signal_flags(pidfd, 0, PIDFD_SIGNAL_PROCESS_GROUP) {
                Err(probe) if probe.raw_os_error() == Some(libc::EINVAL) => {
                    NO_GROUP_FLAG.store(true, Ordering::Relaxed);
                    Ok(false)
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_send_signal_to_group(
    _pidfd: BorrowedFd<'_>,
    _sig: libc::c_int,
) -> io::Result<bool> {
    Ok(false)
}

#[cfg(target_os = "linux")]
fn pidfd_send_signal_flags(
    pidfd: BorrowedFd<'_>,
    sig: libc::c_int,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: a null siginfo asks the kernel to fill it in as kill(2) would.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            flags,
        )
    };
    cvt(ret as libc::c_int).map(drop)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_send_signal(_pidfd: BorrowedFd<'_>, _sig: libc::c_int) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
