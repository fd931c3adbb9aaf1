//! How a child that could not exec tells the parent which step failed, and with which errno.
//!
//! - A forked child writes one [`RECORD_LEN`]-byte record (a magic number, the step, the errno)
//!   on the error pipe, far below `PIPE_BUF` so it arrives whole, then exits. The pipe is
//!   close-on-exec: a successful exec closes the child's end and the parent reads end-of-file.
//! - A vfork-style child shares the parent's memory and the parent is suspended until it execs
//!   or exits, so it stores the step and errno in a [`SharedReport`] in the parent's frame (as
//!   glibc's `posix_spawn` does): no pipe to make, read and close.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use crate::error::Step;
use crate::sys;

const MAGIC: [u8; 4] = *b"pOpN";
pub(crate) const RECORD_LEN: usize = 12;

/// The record for `step` failing with `errno`. Allocation-free: callable in the child.
pub(crate) fn encode(step: Step, errno: i32) -> [u8; RECORD_LEN] {
    let mut rec = [0u8; RECORD_LEN];
    let code = step.to_code().to_ne_bytes();
    let errno = errno.to_ne_bytes();
    let mut i = 0;
    while i < 4 {
        rec[i] = MAGIC[i];
        rec[4 + i] = code[i];
        rec[8 + i] = errno[i];
        i += 1;
    }
    rec
}

/// Reads the read end to end-of-file. `Ok(None)`: the child exec'd. `Ok(Some((step, errno)))`:
/// it reported a failure. A short or malformed record is a bug and comes back as an error.
pub(crate) fn read_report(read_end: &OwnedFd) -> io::Result<Option<(Step, i32)>> {
    let mut buf = [0u8; RECORD_LEN];
    let mut len = 0;
    while len < RECORD_LEN {
        let n = sys::fd::read(read_end.as_fd(), &mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    match len {
        0 => Ok(None),
        RECORD_LEN if buf[..4] == MAGIC => {
            let code = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let errno = i32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
            let step = Step::from_code(code).ok_or_else(|| bad_record(&buf[..len]))?;
            Ok(Some((step, errno)))
        }
        _ => Err(bad_record(&buf[..len])),
    }
}

/// Where a failing child reports.
#[derive(Clone, Copy)]
pub(crate) enum Report<'a> {
    /// The error pipe's write end (≥ 3, close-on-exec): a forked child.
    Pipe(RawFd),
    /// Memory shared with the suspended parent: a `CLONE_VM | CLONE_VFORK` child.
    Shared(&'a SharedReport),
    /// No child: the steps run in the calling process (`Command::exec`), which gets the
    /// failure back as a return value.
    Caller,
}

impl Report<'_> {
    /// The descriptor the child must keep open until exec, if any.
    pub(crate) fn fd(self) -> Option<RawFd> {
        match self {
            Report::Pipe(fd) => Some(fd),
            Report::Shared(_) | Report::Caller => None,
        }
    }
}

/// A failure report in memory the parent and a vfork-style child share. Both fields are
/// lock-free atomics: a store is a plain memory write, safe in the child.
#[derive(Default)]
pub(crate) struct SharedReport {
    /// Set by the child first thing: still unset after the clone, the child did not share our
    /// memory (an emulator such as valgrind runs a `CLONE_VM | CLONE_VFORK` child as a fork),
    /// and nothing it stored here can be seen.
    started: AtomicBool,
    /// The failed step's code plus one; 0 while nothing failed.
    step: AtomicU32,
    errno: AtomicI32,
}

impl SharedReport {
    /// Notes that the child runs: one atomic store, safe in the child.
    pub(crate) fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Whether the child's stores reach this memory (see `started`).
    pub(crate) fn is_shared(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Records `step` failing with `errno`: two atomic stores, safe in the child.
    pub(crate) fn set(&self, step: Step, errno: i32) {
        self.errno.store(errno, Ordering::Relaxed);
        // Release: a parent that sees the step sees the errno stored before it.
        self.step.store(step.to_code() + 1, Ordering::Release);
    }

    /// What the child reported, once it has exec'd or exited: `None` if it exec'd.
    pub(crate) fn get(&self) -> Option<(Step, i32)> {
        match self.step.load(Ordering::Acquire) {
            0 => None,
            code => Some((
                Step::from_code(code - 1).unwrap_or(Step::Spawn),
                self.errno.load(Ordering::Relaxed),
            )),
        }
    }
}

fn bad_record(data: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad error record from child: {data:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        sys::fd::write(w.as_fd(), &encode(Step::Chdir, libc::ENOENT)).unwrap();
        drop(w);
        assert_eq!(read_report(&r).unwrap(), Some((Step::Chdir, libc::ENOENT)));
    }

    #[test]
    fn eof_means_exec_succeeded() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        drop(w);
        assert_eq!(read_report(&r).unwrap(), None);
    }

    #[test]
    fn shared_report_round_trips() {
        let shared = SharedReport::default();
        assert!(!shared.is_shared());
        shared.mark_started();
        assert!(shared.is_shared());
        assert_eq!(shared.get(), None);
        shared.set(Step::Setuid, libc::EPERM);
        assert_eq!(shared.get(), Some((Step::Setuid, libc::EPERM)));
    }

    #[test]
    fn short_record_is_an_error() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        sys::fd::write(w.as_fd(), b"pOpN\x01").unwrap();
        drop(w);
        assert_eq!(
            read_report(&r).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
