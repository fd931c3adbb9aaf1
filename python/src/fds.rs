//! The descriptor steps of CPython's child, decided in the parent.
//!
//! CPython's child first makes `pass_fds` inheritable, closes the parent's pipe ends
//! (`p2cwrite`, `c2pread`, `errread` unless `-1`, and `errpipe_read` always), then moves the
//! standard-stream descriptors into place, failing with `EBADF` at the first descriptor that
//! is not open *at that point* (a parent end that is also a stream source, the same end named
//! twice, a closed one, `-1` as `errpipe_read`, …). The engine takes its own copies of the
//! stream descriptors in the parent, so it would not fail the same way: these steps are
//! replayed here on a model of this process's descriptor table, before anything is created.
//!
//! When they succeed, the parent ends that the child would otherwise keep (inheritable ones,
//! or passed ones, that `close_fds` does not close) are closed by the engine's child
//! ([`Command::close_in_child`]). When they fail, the child is made to fail the same way:
//! see [`failing_command`].
#![allow(unsafe_code)]

use std::os::fd::RawFd;

use engine::{Command, SpawnPath};

use crate::args::Request;

/// This process's descriptor table as CPython's child would see it after some of its steps:
/// the changes made so far over the table as it is now.
#[derive(Default)]
struct FdModel {
    changed: Vec<(RawFd, bool)>,
}

impl FdModel {
    fn is_open(&self, fd: RawFd) -> bool {
        if fd < 0 {
            return false;
        }
        if let Some(&(_, open)) = self.changed.iter().rev().find(|(f, _)| *f == fd) {
            return open;
        }
        // SAFETY: F_GETFD only reads the descriptor's flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
    }

    fn set(&mut self, fd: RawFd, open: bool) {
        self.changed.push((fd, open));
    }

    /// `dup`: the lowest free number becomes open.
    fn dup(&mut self) -> RawFd {
        let mut fd = 0;
        while self.is_open(fd) {
            fd += 1;
        }
        self.set(fd, true);
        fd
    }
}

/// What CPython's descriptor steps would do in the child.
pub(crate) struct FdSteps {
    /// They fail with `EBADF`; they come before any other step that can fail.
    pub(crate) fail: bool,
    /// `errpipe_write` is still open where they end (it may be one of the parent's ends, which
    /// they close): a failure record can still be written.
    pub(crate) errpipe_open: bool,
}

/// Replays CPython's descriptor steps on a model of this process's descriptor table.
pub(crate) fn cpython_fd_steps(req: &Request) -> FdSteps {
    let mut fds = FdModel::default();
    let fail = !replay(req, &mut fds);
    FdSteps {
        fail,
        errpipe_open: fds.is_open(req.errpipe_write),
    }
}

/// The steps in CPython's order; false at the first one that would fail.
fn replay(req: &Request, fds: &mut FdModel) -> bool {
    // make_inheritable(fds_to_keep), errpipe_write excepted.
    if req
        .fds_to_keep
        .iter()
        .any(|&fd| fd != req.errpipe_write && !fds.is_open(fd))
    {
        return false;
    }
    // Close the parent's ends.
    for &fd in &req.parent_ends {
        if !fds.is_open(fd) {
            return false;
        }
        fds.set(fd, false);
    }
    // A stream source on a lower stream's number is first copied away (`dup`).
    let mut c2pwrite = req.c2pwrite;
    if c2pwrite == 0 {
        if !fds.is_open(0) {
            return false;
        }
        c2pwrite = fds.dup();
    }
    let mut errwrite = req.errwrite;
    while errwrite == 0 || errwrite == 1 {
        if !fds.is_open(errwrite) {
            return false;
        }
        errwrite = fds.dup();
    }
    // dup2 each source onto its stream (or clear close-on-exec when it is already there).
    for (target, src) in [(0, req.p2cread), (1, c2pwrite), (2, errwrite)] {
        if src == -1 {
            continue;
        }
        if !fds.is_open(src) {
            return false;
        }
        fds.set(target, true);
    }
    true
}

/// The parent ends the engine's child must close itself: those it would otherwise keep past
/// exec. A passed one is made inheritable first (as CPython does), so it is closed too; one
/// at 3 or above that `close_fds` closes needs nothing more.
pub(crate) fn close_in_child(req: &Request) -> Vec<RawFd> {
    let mut out = Vec::new();
    for &fd in &req.parent_ends {
        let passed = fd != req.errpipe_write && req.fds_to_keep.contains(&fd);
        // SAFETY: F_GETFD only reads the descriptor's flags (the replayed steps checked that the
        // descriptor is open).
        let inheritable = unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC == 0;
        let survives = fd < 3 || !req.close_fds || passed;
        if (passed || inheritable) && survives && !out.contains(&fd) {
            out.push(fd);
        }
    }
    out
}

/// A command whose child fails as CPython's does when its descriptor steps fail: with `EBADF`
/// before any other step. The engine's child closes descriptor `-1` first thing and reports
/// that failure as one before user code, so `fork_exec` writes CPython's record
/// (`OSError:9:noexec`) and returns the failed child for `subprocess.py` to reap.
pub(crate) fn failing_command(req: &Request) -> Command {
    let mut cmd = Command::from_argv(req.argv.as_deref().unwrap_or_default().iter().take(1));
    if cmd.get_argv().is_empty() {
        cmd = Command::from_argv([""]);
    }
    cmd.executable_list(&req.executable_list);
    engine::testing::keep_failed_child(&mut cmd, true);
    cmd.close_in_child(-1);
    if !req.allow_vfork {
        cmd.spawn_path(SpawnPath::Fork);
    }
    cmd
}
