//! The handle to a started child: its pid and pidfd, its exit status, signals, its pipes.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::reaper;
use crate::spawn::{SpawnPath, Started};
use crate::status::ExitStatus;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sys;

/// A running (or finished) child process, as returned by [`Command::spawn`](crate::Command::spawn).
///
/// Waiting and signalling take `&self` and are safe to call from several threads at once. The
/// exit status is cached once the child has been reaped, and a reaped child is never signalled,
/// so a recycled pid is never hit. Where the kernel has pidfds (Linux ≥ 5.3), signals go through
/// the pidfd and waits sleep on it.
///
/// # Drop behavior
///
/// Dropping a `Popen` closes the parent's pipe ends and never blocks. A child that has already
/// exited is reaped at once; one that still runs is handed to a background reaper (a thread
/// that sleeps on the pidfds of such children and reaps each as it exits), so no zombie is left.
/// Without pidfds, such children are reaped at the next spawn, as CPython does. Use
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
    /// Opened on first need (a timed wait, a signal, a drop while running) under the status
    /// lock, so never for a reaped pid.
    /// Not opening one for every child saves a system call and keeps descriptors that every
    /// later child would inherit and close out of the table.
    pidfd: OnceLock<Option<OwnedFd>>,
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
    pub(crate) comm: Option<Box<crate::communicate::CommState>>,
}

impl Popen {
    pub(crate) fn from_parts(
        started: Started,
        path: SpawnPath,
        group: Option<libc::pid_t>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> Popen {
        Popen {
            pid: started.pid,
            pidfd: OnceLock::new(),
            status: Mutex::new(None),
            path,
            group,
            detached: false,
            stdin,
            stdout,
            stderr,
            args: Vec::new(),
            comm: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's pidfd, where the kernel has them; opened on first use. `None` once the child
    /// was reaped without one having been opened.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        let status = self.lock();
        self.pidfd_locked(&status).map(|fd| fd.as_fd())
    }

    /// The pidfd, opening it if need be. The caller holds the status lock (`status`), so the
    /// child cannot be reaped, and its pid recycled, before the pidfd refers to it.
    fn pidfd_locked(&self, status: &Option<ExitStatus>) -> Option<&OwnedFd> {
        if let Some(fd) = self.pidfd.get() {
            return fd.as_ref();
        }
        if status.is_some() {
            return None;
        }
        self.pidfd
            .get_or_init(|| sys::pidfd::pidfd_open(self.pid).ok().flatten())
            .as_ref()
    }

    /// The spawn path that started the child.
    pub fn spawn_path(&self) -> SpawnPath {
        self.path
    }

    /// The process group the child was put in, if it was started in a new session or group.
    pub fn process_group(&self) -> Option<i32> {
        self.group
    }

    /// The arguments the child was started with, `argv[0]` first.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    pub(crate) fn set_args(&mut self, args: Vec<OsString>) {
        self.args = args;
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
        match sys::wait::waitpid_nohang(self.pid) {
            Ok(Some(raw)) => {
                *status = Some(ExitStatus::from_raw(raw));
            }
            Ok(None) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                // Reaped behind our back (SIGCHLD ignored, or a waitpid(-1) elsewhere): the
                // status is lost. CPython reports 0 in this case.
                *status = Some(ExitStatus::from_raw(0));
            }
            Err(e) => return Err(e),
        }
        Ok(*status)
    }

    /// The exit status if the child is known to have been reaped; no system call.
    #[cfg(feature = "tokio")]
    pub(crate) fn reaped_status(&self) -> Option<ExitStatus> {
        *self.lock()
    }

    /// The exit status if the child has exited (reaping it), else `None`. Never blocks.
    ///
    /// # Errors
    ///
    /// An unexpected `waitpid` error.
    pub fn poll(&self) -> io::Result<Option<ExitStatus>> {
        self.try_reap()
    }

    /// CPython's `returncode`: the exit code or minus the signal, once known (this polls).
    pub fn returncode(&self) -> Option<i32> {
        self.poll().ok().flatten().map(ExitStatus::returncode)
    }

    /// Waits for the child to exit and returns its status.
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

    /// Waits at most `timeout` for the child to exit; `None` if it is still running then.
    ///
    /// With a pidfd the wait sleeps on it and returns as soon as the child exits, burning no CPU
    /// meanwhile. Without pidfds it falls back to polling with sleeps of at most 20 ms.
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
        // Without a deadline a blocking waitid needs no pidfd; with one, sleep on the pidfd.
        let pidfd = match (self.pidfd.get(), deadline) {
            (Some(fd), _) => fd.as_ref(),
            (None, None) => None,
            (None, Some(_)) => self.pidfd_locked(&self.lock()),
        };
        if let Some(fd) = pidfd {
            return sys::wait::poll_readable(fd.as_fd(), deadline);
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

    /// Sends `signal` to the child. Sending to a child that has already been reaped does nothing
    /// (as in CPython): its pid may belong to another process by now.
    ///
    /// # Errors
    ///
    /// The error of `pidfd_send_signal`/`kill` (e.g. `EINVAL` for a bad signal number).
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let status = self.lock();
        if status.is_some() {
            return Ok(());
        }
        if let Some(fd) = self.pidfd_locked(&status) {
            return match sys::pidfd::pidfd_send_signal(fd.as_fd(), signal) {
                // ESRCH: the process is gone (reaped elsewhere); nothing to signal.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                other => other,
            };
        }
        // No pidfds: the lock keeps the pid from being reaped, hence recycled, while we signal.
        #[allow(unsafe_code)]
        // SAFETY: kill takes two integers.
        let ret = unsafe { libc::kill(self.pid, signal) };
        match sys::cvt(ret) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Sends `signal` to the child's whole process group, when it was started in a new session
    /// or process group ([`process_group`](Self::process_group)); else to the child alone. The
    /// group is signalled even after the child itself was reaped, so grandchildren left in it
    /// are reached.
    ///
    /// # Errors
    ///
    /// The error of `killpg`, except `ESRCH` (nobody left in the group), which is ignored.
    pub fn send_signal_group(&self, signal: i32) -> io::Result<()> {
        let Some(group) = self.group else {
            return self.send_signal(signal);
        };
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
    /// responsible for waiting for it. The pipes are closed.
    pub fn detach(mut self) -> i32 {
        self.detached = true;
        self.pid
    }
}

impl Drop for Popen {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        // The reaper sleeps on the pidfd: open it now, while the child is surely unreaped.
        let _ = self.pidfd_locked(&self.lock());
        reaper::adopt(self.pid, self.pidfd.take().flatten());
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
