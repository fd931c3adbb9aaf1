//! The async handle: a [`Popen`] whose exit is awaited on its pidfd, registered with the
//! tokio reactor.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::time::Duration;

use ::tokio::io::Interest;
use ::tokio::time::Instant;

use super::communicate::Comm;
use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use super::reactor;
use crate::command::Command;
use crate::error::SpawnError;
use crate::popen::Popen;
use crate::status::ExitStatus;

/// Without pidfds (Linux < 5.3, other systems) there is nothing to sleep on: the exit is
/// polled, first after this, then at most every [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(20);

/// An async handle to a child process: the [`Popen`] it wraps, with `wait().await`, and its
/// pipes as [`AsyncRead`](::tokio::io::AsyncRead)/[`AsyncWrite`](::tokio::io::AsyncWrite).
///
/// The wait sleeps on the child's pidfd, registered with the reactor of the runtime that
/// awaits it: no SIGCHLD handler, no thread per child, no polling (where the kernel has
/// pidfds, Linux ≥ 5.3; elsewhere the exit is polled with sleeps of 1 to 20 ms). Spawning
/// itself ([`spawn`](Self::spawn)) is synchronous: a few system calls, which return as soon
/// as the child has exec'd.
///
/// Every method is cancel-safe: a future dropped before it completes loses nothing (see
/// [`communicate`](Self::communicate) for what it keeps).
///
/// # Drop behavior
///
/// As [`Popen`]'s: the pipes are closed, a child that has exited is reaped at once, and one
/// that still runs is handed to the crate's reaper, so no zombie is left and the runtime is
/// never blocked. With [`kill_on_drop`](Self::kill_on_drop), a running child is sent SIGKILL
/// first.
///
/// # Examples
///
/// ```
/// use popen::Command;
/// use popen::tokio::Child;
///
/// # ::tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let mut child = Child::spawn(Command::shell("exit 3"))?;
/// assert_eq!(child.wait().await?.code(), Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Child {
    /// The parent's end of the child's stdin, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    kill_on_drop: bool,
    pub(crate) comm: Option<Box<Comm>>,
    /// Dropped after the pipes.
    inner: Popen,
}

impl Child {
    /// Starts `cmd` (synchronously: see above) and returns the async handle.
    ///
    /// The child is registered with the reactor lazily, at the first wait or pipe operation,
    /// so a child may be spawned outside a runtime and awaited inside one.
    ///
    /// # Errors
    ///
    /// As [`Command::spawn`].
    pub fn spawn(mut cmd: impl std::borrow::BorrowMut<Command>) -> Result<Child, SpawnError> {
        Ok(Child::from(cmd.borrow_mut().spawn()?))
    }

    /// The child's process id.
    pub fn id(&self) -> i32 {
        self.inner.pid()
    }

    /// The arguments the child was started with, `argv[0]` first.
    pub fn args(&self) -> &[OsString] {
        self.inner.args()
    }

    /// The synchronous handle underneath, for what only it offers (its process group, spawn
    /// path, pidfd, group signals).
    pub fn as_popen(&self) -> &Popen {
        &self.inner
    }

    /// Sends SIGKILL to the child, if it still runs, when this handle is dropped (tokio's
    /// `kill_on_drop`). Off by default: a dropped child runs on, and is reaped when it exits.
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Child {
        self.kill_on_drop = on;
        self
    }

    /// The exit status if the child has exited (reaping it), else `None`. Never blocks.
    ///
    /// # Errors
    ///
    /// An unexpected `waitpid` error.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.poll()
    }

    /// Waits for the child to exit and returns its status.
    ///
    /// Does not close the child's stdin: a child that waits for end of input will wait forever
    /// if [`stdin`](Self::stdin) is still held (take and drop it first).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future changes nothing; a later call waits again.
    ///
    /// # Errors
    ///
    /// An unexpected `waitpid` error, or the reactor's refusal to register the pidfd.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O (and, without pidfds, time) enabled.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut nap = POLL_FIRST;
        loop {
            // The handle's pidfd (held from the child's start where the kernel has them),
            // registered for this call only: the registration borrows the handle, so it ends
            // before the handle could close the descriptor.
            let Some(pidfd) = self.inner.pidfd() else {
                // No pidfds (or the child was reaped, and the poll says so): nothing to sleep
                // on.
                if let Some(status) = self.inner.poll()? {
                    return Ok(status);
                }
                ::tokio::time::sleep(nap).await;
                nap = (nap * 2).min(POLL_MAX);
                continue;
            };
            let exit = reactor::register(pidfd, Interest::READABLE).map_err(|(_, e)| e)?;
            loop {
                let mut ready = exit.readable().await?;
                // A pidfd turns readable when the process exits and stays so.
                if let Some(status) = self.inner.poll()? {
                    return Ok(status);
                }
                ready.clear_ready();
            }
        }
    }

    /// Waits at most `timeout` for the child to exit; `None` if it still runs then.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub async fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_deadline(Instant::now().checked_add(timeout))
            .await
    }

    /// Waits until `deadline` (`None`: no deadline) for the child to exit.
    pub(crate) async fn wait_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        // Called mostly once the pipes are at end of file, when the child has most likely
        // exited: one `waitpid` may spare the pidfd and a turn of the reactor.
        if let Some(status) = self.inner.poll()? {
            return Ok(Some(status));
        }
        match deadline {
            None => self.wait().await.map(Some),
            Some(d) => match ::tokio::time::timeout_at(d, self.wait()).await {
                Ok(status) => status.map(Some),
                Err(_elapsed) => self.inner.poll(),
            },
        }
    }

    /// Sends `signal` to the child; nothing once it was reaped (its pid may be another
    /// process's by now). Through the pidfd where the kernel has them.
    ///
    /// # Errors
    ///
    /// As [`Popen::send_signal`].
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        self.inner.send_signal(signal)
    }

    /// Sends `signal` to the child's process group; see [`Popen::send_signal_group`].
    ///
    /// # Errors
    ///
    /// As [`Popen::send_signal_group`].
    pub fn send_signal_group(&self, signal: i32) -> io::Result<()> {
        self.inner.send_signal_group(signal)
    }

    /// Sends SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.inner.terminate()
    }

    /// Sends SIGKILL and returns at once (tokio's `start_kill`).
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn start_kill(&self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Sends SIGKILL and waits for the child to exit.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the signal is sent before the first await; a later [`wait`](Self::wait)
    /// reaps the child.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal) and [`wait`](Self::wait).
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        self.start_kill()?;
        self.wait().await
    }
}

impl From<Popen> for Child {
    /// Takes over a started child; its pipes become async ones.
    fn from(mut popen: Popen) -> Child {
        Child {
            stdin: popen.stdin.take().map(ChildStdin::from_sync),
            stdout: popen.stdout.take().map(ChildStdout::from_sync),
            stderr: popen.stderr.take().map(ChildStderr::from_sync),
            kill_on_drop: false,
            comm: None,
            inner: popen,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop && matches!(self.inner.poll(), Ok(None)) {
            let _ = self.inner.kill();
        }
        // The fields drop next: the pipes, then the handle, which reaps the child or hands it
        // to the reaper.
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("inner", &self.inner)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish_non_exhaustive()
    }
}
