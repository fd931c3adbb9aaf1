//! What the communicate loop needs from the kernel: `poll(2)` with a deadline, reads into a
//! vector's spare capacity, pipe sizes, and a guard that keeps SIGPIPE from killing the process
//! while it writes to a pipe whose reader may be gone.
//!
//! # Safety
//!
//! Each wrapper takes safe types (`BorrowedFd`, slices, `Vec`) and hands the kernel only
//! pointers into memory it owns for the duration of the call. `EINTR` is retried everywhere.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use super::{cvt, cvt_r};

/// Milliseconds from now until `deadline`, rounded up so that a wake-up never comes before the
/// deadline (which would spin); `-1` for no deadline.
pub(crate) fn timeout_ms(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Calls `wait` — a `poll`-like system call, given its timeout in milliseconds — until it
/// reports something or `deadline` passes (`None`: no deadline); `Some(0)` then. A signal that
/// interrupts the sleep resumes it with the time that is left, or, unless `resume`, returns
/// `None` so that the caller can run its signal handlers (then call again: the deadline is
/// absolute).
pub(crate) fn sleep_until(
    deadline: Option<Instant>,
    resume: bool,
    mut wait: impl FnMut(libc::c_int) -> libc::c_int,
) -> io::Result<Option<usize>> {
    loop {
        match cvt(wait(timeout_ms(deadline))) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Some(0));
                }
            }
            Ok(n) => return Ok(Some(n as usize)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && resume => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// `poll(2)` until at least one descriptor is ready or `deadline` passes (`None`: no deadline).
/// Returns the number of ready descriptors, `0` once the deadline has passed. A signal that
/// interrupts the sleep resumes it with the time that is left.
pub(crate) fn poll(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    sleep_until(deadline, true, |ms| unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms)
    })
    .map(Option::unwrap_or_default)
}

/// [`poll`], except that a signal that interrupts the sleep returns `None`, so that the caller
/// can run its signal handlers (then call again: the deadline is absolute).
pub(crate) fn poll_or_signal(
    fds: &mut [libc::pollfd],
    deadline: Option<Instant>,
) -> io::Result<Option<usize>> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    sleep_until(deadline, false, |ms| unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms)
    })
}

/// How much of a buffer's allocation is known to be faulted in, so that each page is populated
/// once however many reads land in it.
#[derive(Default)]
pub(crate) struct Prefaulted {
    /// The allocation this describes (its address and capacity when last seen).
    base: usize,
    capacity: usize,
    /// Bytes from `base` known to be mapped writable.
    upto: usize,
}

/// `read(2)` of at most `max` bytes appended to `buf`, into its spare capacity (reserving
/// `max` first), so no byte is zeroed or copied twice. Retries `EINTR`; returns `0` at end of
/// file. Large reads first fault in, once, the pages they may fill (`pre` remembers which).
pub(crate) fn read_append(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    pre: &mut Prefaulted,
) -> io::Result<usize> {
    buf.reserve(max);
    let filled = buf.len();
    // SAFETY: the Vec's whole allocation, of which the first `filled` bytes are initialised;
    // `read_into` writes only after them. The slice is gone before `set_len`.
    let whole = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.capacity())
    };
    let mut upto = filled;
    let n = read_into(fd, whole, &mut upto, max, pre)?.len();
    // SAFETY: the kernel initialised the `n` bytes after the first `filled`, within capacity.
    unsafe { buf.set_len(filled + n) };
    Ok(n)
}

/// `read(2)` of at most `max` bytes into `buf[*filled..]`, which must have room; advances
/// `*filled` past the bytes read and returns them (empty at end of file). Retries `EINTR`.
/// Large reads first fault in, once, the pages they may fill (`pre` remembers which, for this
/// allocation: a buffer that moved or changed size starts over).
pub(crate) fn read_into<'b>(
    fd: BorrowedFd<'_>,
    buf: &'b mut [MaybeUninit<u8>],
    filled: &mut usize,
    max: usize,
    pre: &mut Prefaulted,
) -> io::Result<&'b [u8]> {
    let start = *filled;
    let (base, capacity) = (buf.as_ptr() as usize, buf.len());
    if (pre.base, pre.capacity) != (base, capacity) {
        // A new allocation: only its filled part is known to be mapped.
        *pre = Prefaulted {
            base,
            capacity,
            upto: start,
        };
    }
    let spare = &mut buf[start..];
    let want = spare.len().min(max);
    debug_assert!(want > 0, "read_into without room");
    let ptr = spare.as_mut_ptr();
    if want >= POPULATE_FROM && start + want > pre.upto {
        let from = start.max(pre.upto);
        populate(base + from, start + want - from);
        pre.upto = start + want;
    }
    // SAFETY: `ptr` points to `want` writable bytes of `buf`, exclusively borrowed; the kernel
    // writes at most `want` bytes there.
    let n = cvt_r(|| unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), want) })? as usize;
    *filled = start + n;
    // SAFETY: the kernel initialised the first `n <= want` bytes at `ptr`, which `buf` (borrowed
    // for 'b) owns.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), n) })
}

const POPULATE_FROM: usize = 256 << 10;

/// Faults in, in one system call, the whole pages of `[start, start + len)`, which the caller
/// owns and is about to fill: much cheaper than one page fault per page. Advice only: an old
/// kernel's refusal changes nothing.
#[cfg(target_os = "linux")]
fn populate(start: usize, len: usize) {
    const PAGE: usize = 4096;
    let (from, to) = (start.next_multiple_of(PAGE), (start + len) / PAGE * PAGE);
    if from < to {
        // SAFETY: the range is whole pages inside memory the caller owns; MADV_POPULATE_WRITE
        // maps them writable without changing any byte of their contents.
        unsafe {
            libc::madvise(
                from as *mut libc::c_void,
                to - from,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_start: usize, _len: usize) {}

/// `splice(2)` of at most `max` bytes from the pipe `from` into the pipe `to`, without
/// blocking (`SPLICE_F_NONBLOCK`): the kernel moves references to the pipe's pages, it copies
/// no byte. Retries `EINTR`; `0` at end of file; `WouldBlock` when `from` is empty.
#[cfg(target_os = "linux")]
pub(crate) fn splice_pipes(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    max: usize,
) -> io::Result<usize> {
    // SAFETY: splice between two live descriptors with null offsets touches no memory of ours.
    let n = cvt_r(|| unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            max,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    })?;
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn splice_pipes(
    _from: BorrowedFd<'_>,
    _to: BorrowedFd<'_>,
    _max: usize,
) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `fcntl(F_GETPIPE_SZ)`: the pipe's buffer size.
#[cfg(target_os = "linux")]
pub(crate) fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ on a live descriptor touches no memory of ours.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pipe_size(_fd: BorrowedFd<'_>) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Keeps a write to a pipe whose reader has gone from killing the process with SIGPIPE, for
/// as long as it lives, in the calling thread.
///
/// When SIGPIPE is ignored (the default in Rust programs and in CPython) it does nothing. Else
/// it blocks SIGPIPE in the thread; a write then fails with `EPIPE` and leaves a SIGPIPE
/// pending, which [`consume`](Self::consume) takes back, unless one was already pending
/// before. The old mask is restored on drop.
pub(crate) struct SigpipeGuard {
    restore: Option<libc::sigset_t>,
    was_pending: bool,
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset with a valid signal cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

fn sigpipe_pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; sigismember reads an initialised set.
    unsafe {
        libc::sigpending(set.as_mut_ptr());
        libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

impl SigpipeGuard {
    pub(crate) fn new() -> SigpipeGuard {
        let mut old_action = MaybeUninit::<libc::sigaction>::uninit();
        // SAFETY: with a null new action, sigaction only writes the current one.
        let ret =
            unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old_action.as_mut_ptr()) };
        // SAFETY: sigaction succeeded and filled the struct.
        if ret == 0 && unsafe { old_action.assume_init_ref() }.sa_sigaction == libc::SIG_IGN {
            return SigpipeGuard {
                restore: None,
                was_pending: false,
            };
        }
        let block = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: both sets are valid; SIG_BLOCK with a valid set cannot fail.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, old.as_mut_ptr()) };
        // SAFETY: pthread_sigmask filled the old mask.
        let old = unsafe { old.assume_init() };
        SigpipeGuard {
            restore: Some(old),
            was_pending: sigpipe_pending(),
        }
    }

    /// After a write failed with `EPIPE`: takes back the SIGPIPE that write left pending, so it
    /// is not delivered when the mask is restored.
    pub(crate) fn consume(&self) {
        if self.restore.is_none() || self.was_pending {
            return;
        }
        let set = sigpipe_set();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` and `zero` are valid for the call; a null siginfo is allowed. The
        // signal is blocked, so this only dequeues a pending one (or times out at once).
        while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) } == -1
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

impl Drop for SigpipeGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.restore {
            // SAFETY: restores a mask previously returned by the kernel.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
        }
    }
}
