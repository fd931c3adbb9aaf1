//! The handle to a started child: its pid and pidfd, its exit status, signals, its pipes.

use std::any::Any;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::SpawnError;
use crate::posix_spawn::{FileActions, SpawnAttr};
use crate::reaper;
use crate::spawn::{self, Child, SpawnPath};
use crate::status::ExitStatus;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sys;

/// A running (or finished) child process, as returned by [`Command::spawn`](crate::Command::spawn).
///
/// Waiting and signalling take `&self` and are safe to call from several threads at once. The
/// exit status is cached once the child has been reaped, and a reaped child is never signalled.
///
/// Where the kernel has pidfds (Linux ≥ 5.4), the handle holds one from the child's birth: the
/// vfork-style child is made with it (`CLONE_PIDFD`), the other paths open it as soon as the
/// child exists, while its pid is still reserved. Every wait (`waitid(P_PIDFD)`) and every
/// signal (`pidfd_send_signal`) goes through it, so a recycled pid is never hit, even when the
/// child is reaped by someone else: SIGCHLD set to `SIG_IGN` or `SA_NOCLDWAIT` (the kernel then
/// reaps each child as it exits; spawns then take only paths that make the pidfd with the
/// child), or a `waitpid(-1)` elsewhere. Such a child's status is lost: waits return
/// [`ExitStatus::unavailable`], never a made-up exit code 0.
///
/// # Drop behavior
///
/// Dropping a `Popen` closes the parent's pipe ends and its pidfd, and never blocks. A child
/// that has already exited is reaped at once; one that still runs is handed to a background
/// reaper (a thread that sleeps on the pidfds of up to 64 such children and reaps each as it
/// exits; past 64, children are held by pid, reaped by the sweep that follows each exit and
/// each spawn, and watched as slots free up), so no zombie is left and the descriptor table
/// is not filled. Without pidfds, such children are reaped at the next spawn, as CPython does.
/// While the kernel reaps children itself (SIGCHLD ignored) there is nothing to hand over. Use
/// [`detach`](Self::detach) to take over reaping yourself.
///
/// # Examples
///
/// ```
/// use popen::Command;
/// use std::time::Duration;
///
/// let child = Command::new("sleep").arg("10").spawn()?;
/// assert_eq!(child.wait_timeout(Duration::from_millis(50))?, None);
/// child.kill()?;
/// assert_eq!(child.wait()?.signal(), Some(libc::SIGKILL));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Popen {
    pid: libc::pid_t,
    /// Made with the child or opened right after it started (by the engine); else opened on
    /// first need under the status lock, and checked to refer to our child. An attempt that
    /// fails (`EMFILE`) is made again at the next need.
    pidfd: OnceLock<OwnedFd>,
    /// Held only for a non-blocking `waitpid` or a signal, never across a sleep, so that a
    /// reaped pid is never signalled and a poll never waits for a waiter.
    status: Mutex<Option<ExitStatus>>,
    path: SpawnPath,
    group: Option<libc::pid_t>,
    detached: bool,
    /// The parent's end of the child's stdin, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    pub(crate) args: Vec<OsString>,
    /// State that I/O layers above the handle keep between calls (a resumable
    /// `communicate`): opaque here, so the handle knows nothing of them.
    io_state: Option<Box<dyn Any + Send + Sync>>,
}

impl Popen {
    /// The handle for a child the engine started with `args` (`argv[0]` first).
    pub(crate) fn from_child(child: Child, args: Vec<OsString>) -> Popen {
        let Child {
            started,
            path,
            group,
            stdin,
            stdout,
            stderr,
        } = child;
        let pidfd = OnceLock::new();
        if let Some(fd) = started.pidfd {
            let _ = pidfd.set(fd);
        }
        let status = started.reaped_elsewhere.then(ExitStatus::unavailable);
        Popen {
            pid: started.pid,
            pidfd,
            status: Mutex::new(status),
            path,
            group,
            detached: false,
            stdin,
            stdout,
            stderr,
            args,
            io_state: None,
        }
    }

    /// Starts `path` with `posix_spawn`, as [`posix_spawn::spawn`](crate::posix_spawn::spawn)
    /// does, but as every spawn of this crate: the audit hooks see it, and the child comes back
    /// as a handle that waits, signals through its pidfd and reaps.
    ///
    /// # Errors
    ///
    /// As [`posix_spawn::spawn`](crate::posix_spawn::spawn), and [`Step::Audit`](crate::Step)
    /// when an audit hook refuses the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::{FileActions, SpawnAttr};
    /// use popen::Popen;
    ///
    /// let (actions, attr) = (FileActions::new()?, SpawnAttr::new()?);
    /// let child = Popen::posix_spawn("/bin/sh", &["sh", "-c", "exit $X"], Some(&["X=4"][..]), &actions, &attr)?;
    /// assert_eq!(child.wait()?.code(), Some(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn posix_spawn<S: AsRef<OsStr>>(
        path: impl AsRef<OsStr>,
        argv: &[S],
        env: Option<&[S]>,
        actions: &FileActions,
        attr: &SpawnAttr,
    ) -> Result<Popen, SpawnError> {
        Self::through_posix_spawn(path.as_ref(), argv, env, actions, attr, false)
    }

    /// [`posix_spawn`](Self::posix_spawn) with `posix_spawnp`'s search of `PATH`, as
    /// [`posix_spawn::spawnp`](crate::posix_spawn::spawnp) does it.
    ///
    /// # Errors
    ///
    /// As [`posix_spawn::spawnp`](crate::posix_spawn::spawnp), and
    /// [`Step::Audit`](crate::Step) when an audit hook refuses the spawn.
    pub fn posix_spawnp<S: AsRef<OsStr>>(
        file: impl AsRef<OsStr>,
        argv: &[S],
        env: Option<&[S]>,
        actions: &FileActions,
        attr: &SpawnAttr,
    ) -> Result<Popen, SpawnError> {
        Self::through_posix_spawn(file.as_ref(), argv, env, actions, attr, true)
    }

    fn through_posix_spawn<S: AsRef<OsStr>>(
        program: &OsStr,
        argv: &[S],
        env: Option<&[S]>,
        actions: &FileActions,
        attr: &SpawnAttr,
        search: bool,
    ) -> Result<Popen, SpawnError> {
        let child = spawn::posix_layer::spawn(program, argv, env, actions, attr, search)?;
        let args = argv.iter().map(|a| a.as_ref().to_owned()).collect();
        Ok(Popen::from_child(child, args))
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's pidfd, where the kernel has them (held from the child's start). `None` where
    /// it could not be had: a kernel without pidfds, a child reaped without one, or a
    /// descriptor table that is full (each call tries again).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        let mut status = self.lock();
        self.pidfd_locked(&mut status).map(|fd| fd.as_fd())
    }

    /// The pidfd, opening it if need be. The caller holds the status lock (`status`), so the
    /// child cannot be reaped, and its pid recycled, before the pidfd refers to it.
    fn pidfd_locked(&self, status: &mut Option<ExitStatus>) -> Option<&OwnedFd> {
        if let Some(fd) = self.pidfd.get() {
            return Some(fd);
        }
        if status.is_some() {
            return None;
        }
        // Nothing is cached on failure: a full descriptor table may have room at the next need.
        match sys::pidfd::pidfd_open_child(self.pid) {
            Ok(Some(fd)) => {
                let _ = self.pidfd.set(fd);
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                // Reaped elsewhere: the pid may be another's now, and must not be used again.
                *status = Some(ExitStatus::unavailable());
            }
            _ => {}
        }
        self.pidfd.get()
    }

    /// The spawn path that started the child.
    pub fn spawn_path(&self) -> SpawnPath {
        self.path
    }

    /// The process group the child leads (its id is the child's pid), if it was started in a
    /// new session or with [`process_group(0)`](crate::Command::process_group). `None` for a
    /// child that joined an existing group: that group is not the child's.
    pub fn process_group(&self) -> Option<i32> {
        self.group
    }

    /// The arguments the child was started with, `argv[0]` first.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// Takes the state an I/O layer left with [`put_io_state`](Self::put_io_state), if it is
    /// a `T`.
    pub(crate) fn take_io_state<T: Any + Send + Sync>(&mut self) -> Option<Box<T>> {
        match self.io_state.take()?.downcast::<T>() {
            Ok(state) => Some(state),
            Err(other) => {
                self.io_state = Some(other);
                None
            }
        }
    }

    /// Keeps `state` for the next call of the I/O layer that owns it.
    pub(crate) fn put_io_state<T: Any + Send + Sync>(&mut self, state: Box<T>) {
        self.io_state = Some(state);
    }

    fn lock(&self) -> MutexGuard<'_, Option<ExitStatus>> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reaps the child if it has exited, under the lock.
    fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        let mut status = self.lock();
        if let Some(s) = *status {
            return Ok(Some(s));
        }
        let reaped = match self.pidfd.get() {
            Some(fd) => sys::wait::waitid_pidfd(fd.as_fd(), libc::WNOHANG),
            None => sys::wait::waitpid_nohang(self.pid),
        };
        match reaped {
            Ok(Some(raw)) => {
                *status = Some(ExitStatus::from_raw(raw));
            }
            Ok(None) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                // Reaped behind our back (SIGCHLD ignored, or a waitpid(-1) elsewhere): the
                // status is lost, and says so.
                *status = Some(ExitStatus::unavailable());
            }
            Err(e) => return Err(e),
        }
        Ok(*status)
    }

    /// The exit status if the child has exited (reaping it), else `None`. Never blocks.
    /// [Unavailable](ExitStatus::is_unavailable) if the child was reaped elsewhere.
    ///
    /// # Errors
    ///
    /// An unexpected `waitid`/`waitpid` error.
    pub fn poll(&self) -> io::Result<Option<ExitStatus>> {
        self.try_reap()
    }

    /// CPython's `returncode`: the exit code or minus the signal, once known (this polls).
    pub fn returncode(&self) -> Option<i32> {
        self.poll().ok().flatten().map(ExitStatus::returncode)
    }

    /// Waits for the child to exit and returns its status:
    /// [unavailable](ExitStatus::is_unavailable) if it was reaped elsewhere (SIGCHLD ignored).
    ///
    /// Does not close the child's stdin: a child that waits for end of input will wait forever
    /// if its stdin pipe is still held (take and drop [`stdin`](Self::stdin) first).
    ///
    /// # Errors
    ///
    /// An unexpected `poll`/`waitid` error. `EINTR` is retried.
    pub fn wait(&self) -> io::Result<ExitStatus> {
        if let Some(s) = *self.lock() {
            return Ok(s);
        }
        // Sleep first: a reap attempt before would cost a system call that almost always
        // finds the child still running.
        loop {
            self.sleep_until_exit(None)?;
            if let Some(s) = self.try_reap()? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout` for the child to exit; `None` if it is still running then. The
    /// status is [unavailable](ExitStatus::is_unavailable) if it was reaped elsewhere.
    ///
    /// With a pidfd the wait sleeps on it and returns as soon as the child exits, burning no CPU
    /// meanwhile. Without a pidfd (a kernel without them, or a descriptor table that was full)
    /// it falls back to polling with sleeps of at most 20 ms.
    ///
    /// # Errors
    ///
    /// An unexpected `poll`/`waitpid` error. `EINTR` is retried with the time left.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` (`None`: no deadline) for the child to exit.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.try_reap()? {
                return Ok(Some(s));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            if !self.sleep_until_exit(deadline)? {
                return self.try_reap();
            }
        }
    }

    /// Sleeps until the child has exited (without reaping it) or `deadline` passes. Returns
    /// whether it may have exited.
    fn sleep_until_exit(&self, deadline: Option<Instant>) -> io::Result<bool> {
        let pidfd = match self.pidfd.get() {
            Some(fd) => Some(fd),
            None => self.pidfd_locked(&mut self.lock()),
        };
        match (pidfd, deadline) {
            (Some(fd), Some(_)) => return sys::wait::poll_readable(fd.as_fd(), deadline),
            (Some(fd), None) => {
                // Without reaping: whoever holds the status lock reaps, so that two waiters
                // cannot both reap (the second would see the status as lost).
                let options = libc::WNOWAIT;
                return match sys::wait::waitid_pidfd(fd.as_fd(), options) {
                    Ok(_) => Ok(true),
                    // Reaped elsewhere; try_reap will see ECHILD too.
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(true),
                    Err(e) => Err(e),
                };
            }
            (None, _) => {}
        }
        match deadline {
            None => match sys::wait::wait_exited_noreap(self.pid) {
                Ok(()) => Ok(true),
                // Someone else reaped it; try_reap will see ECHILD.
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(true),
                Err(e) => Err(e),
            },
            Some(d) => {
                // No pidfd: nothing to sleep on, so poll with short sleeps.
                let left = d.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(20)));
                Ok(true)
            }
        }
    }

    /// Sends `signal` to the child, through its pidfd where the kernel has them. Sending to a
    /// child that has already been reaped, by us or elsewhere, does nothing (as in CPython):
    /// its pid may belong to another process by now.
    ///
    /// # Errors
    ///
    /// The error of `pidfd_send_signal`/`kill` (e.g. `EINVAL` for a bad signal number).
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let mut status = self.lock();
        if status.is_some() {
            return Ok(());
        }
        if let Some(fd) = self.pidfd_locked(&mut status) {
            return match sys::pidfd::pidfd_send_signal(fd.as_fd(), signal) {
                // ESRCH: the process is gone (reaped elsewhere); nothing to signal.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                other => other,
            };
        }
        if status.is_some() {
            // Found gone while opening its pidfd: reaped elsewhere.
            return Ok(());
        }
        // No pidfd (a kernel without them, or no descriptor to be had): the lock keeps the pid
        // from being reaped by us, hence recycled, while we signal; nothing can stop a reaping
        // elsewhere, which a pidfd made at the start covers.
        #[allow(unsafe_code)]
        // SAFETY: kill takes two integers.
        let ret = unsafe { libc::kill(self.pid, signal) };
        match sys::cvt(ret) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Sends `signal` to the process group the child leads — when it was started in a new
    /// session or with [`process_group(0)`](crate::Command::process_group), see
    /// [`process_group`](Self::process_group) — grandchildren left in it included; to the child
    /// alone when it leads no group of its own.
    ///
    /// Only while the child is not reaped: until then its pid, hence its group's id, cannot be
    /// another's. Signal the group before waiting for the child. Where the kernel can (Linux ≥
    /// 6.9), the group is found through the child's pidfd, so a child reaped elsewhere
    /// (SIGCHLD ignored) is never mistaken for a group that reuses its id.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`], before any signal is sent: the child was reaped (its
    /// group id may be another's by now), or the group is the caller's own (the child joined
    /// it). Else the error of `pidfd_send_signal`/`killpg`, except `ESRCH` (nobody left in the
    /// group), which is ignored.
    pub fn send_signal_group(&self, signal: i32) -> io::Result<()> {
        let Some(group) = self.group else {
            return self.send_signal(signal);
        };
        let mut status = self.lock();
        if status.is_some() {
            return Err(refused(
                "the child was reaped, so its process group id may belong to another group by \
                 now: signal the group before waiting for the child",
            ));
        }
        // SAFETY: getpgrp and getpgid take and return integers.
        #[allow(unsafe_code)]
        let (own, current) = unsafe { (libc::getpgrp(), libc::getpgid(self.pid)) };
        if group == own || current == own {
            return Err(refused(
                "the child's process group is the caller's own: signalling it would signal the \
                 caller",
            ));
        }
        if let Some(fd) = self.pidfd_locked(&mut status) {
            match sys::pidfd::pidfd_send_signal_to_group(fd.as_fd(), signal) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    // Reaped elsewhere (SIGCHLD ignored): its status is lost, its group id free.
                    *status = Some(ExitStatus::unavailable());
                    return Err(refused(
                        "the child was reaped elsewhere, so its process group id may belong to \
                         another group by now",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        if status.is_some() {
            return Err(refused(
                "the child was reaped elsewhere, so its process group id may belong to another \
                 group by now",
            ));
        }
        // No pidfd, or a kernel before 6.9: the status lock keeps us from reaping the leader,
        // whose pid keeps the group's id from being reused, while we signal. (A reaping
        // elsewhere in between is the one case only the pidfd form rules out.)
        #[allow(unsafe_code)]
        // SAFETY: killpg takes two integers.
        let ret = unsafe { libc::killpg(group, signal) };
        match sys::cvt(ret) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Sends SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends SIGKILL.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Gives up the child without reaping it, and returns its pid: the caller becomes
    /// responsible for waiting for it. The pipes and the pidfd are closed.
    pub fn detach(mut self) -> i32 {
        self.detached = true;
        self.pid
    }
}

/// The error of a group signal refused before it was sent.
fn refused(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

impl Drop for Popen {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        // The reaper sleeps on the pidfd: open it now if need be (the child is not reaped by
        // us yet). A child found gone meanwhile was reaped elsewhere: nothing to hand over.
        let gone = {
            let mut status = self.lock();
            let _ = self.pidfd_locked(&mut status);
            status.is_some()
        };
        if !gone {
            reaper::adopt(self.pid, self.pidfd.take());
        }
    }
}

impl fmt::Debug for Popen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Popen")
            .field("pid", &self.pid)
            .field("spawn_path", &self.path)
            .field("status", &*self.lock())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}
