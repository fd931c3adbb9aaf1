//! Async `run`, `output`, `status`, `check_output`: the contract of [`crate::run`], awaited.

use std::borrow::BorrowMut;

use super::child::Child;
use crate::command::Command;
use crate::outcome::{CommunicateError, Output, RunError};
use crate::run::{CompletedProcess, RunOptions};
use crate::status::ExitStatus;

/// Runs `cmd` to its end with `opts` and returns what it did: [`crate::run`], awaited.
///
/// The same contract: capture and input as `opts` say (the command keeps its own redirections
/// for later spawns), caps, tee, and a timeout that always returns — on expiry the child (and
/// its own process group) is killed, the pipes are read for at most the grace period, even
/// when a grandchild holds them open, the child is reaped, and [`RunError::Timeout`] carries
/// every byte read and the status.
///
/// Spawning is synchronous (a few system calls, done when the child has exec'd); the rest is
/// awaited.
///
/// # Cancel safety
///
/// Dropping the future drops the child's handle: the child runs on unless it was killed, and
/// is reaped by the crate's reaper when it exits; what was read is lost.
///
/// # Errors
///
/// As [`crate::run`].
///
/// # Examples
///
/// ```
/// use popen::{Command, RunOptions};
/// use std::time::Duration;
///
/// # ::tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let opts = RunOptions::new()
///     .input(&b"b\na\n"[..])
///     .capture_output()
///     .timeout(Duration::from_secs(10))
///     .check();
/// let done = popen::tokio::run(&mut Command::new("sort"), &opts).await?;
/// assert_eq!(done.stdout, b"a\nb\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn run(
    mut cmd: impl BorrowMut<Command>,
    opts: &RunOptions<'_>,
) -> Result<CompletedProcess, RunError> {
    let mut child = spawn_for(cmd.borrow_mut(), opts)?;
    let capture = opts.capture_opts.clone().kill_on_timeout(Some(opts.grace));
    let result = child
        .capture_options(capture)
        .communicate(opts.input.as_deref(), opts.timeout)
        .await;
    let out = match result {
        Ok(out) => out,
        Err(CommunicateError::Io(e)) => {
            // Do not leave it running behind a failed call; dropping the handle reaps it.
            let _ = child.start_kill();
            return Err(RunError::Io(e));
        }
        Err(e) => return Err(e.into()),
    };
    crate::run::completed(child.args().to_vec(), out, opts.check)
}

/// Spawns `cmd` with the redirections `opts` asks for, as the sync `run` does.
fn spawn_for(cmd: &mut Command, opts: &RunOptions<'_>) -> Result<Child, RunError> {
    Ok(Child::from(crate::run::spawn_for(cmd, opts)?))
}

/// Runs `cmd` with stdout and stderr captured and returns its status and output (tokio's
/// `Command::output`). An unsuccessful status is not an error.
///
/// # Errors
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// use popen::Command;
///
/// # ::tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let out = popen::tokio::output(Command::shell("echo out; echo err >&2; exit 3")).await?;
/// assert_eq!((out.status.code(), &out.stdout[..]), (Some(3), &b"out\n"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn output(cmd: impl BorrowMut<Command>) -> Result<Output, RunError> {
    let done = run(cmd, &RunOptions::new().capture_output()).await?;
    Ok(Output {
        status: done.status,
        stdout: done.stdout,
        stderr: done.stderr,
        stdout_dropped: done.stdout_dropped,
        stderr_dropped: done.stderr_dropped,
    })
}

/// Runs `cmd`, capturing nothing, and returns its exit status (tokio's `Command::status`,
/// CPython's `call`).
///
/// # Errors
///
/// [`RunError::Spawn`] if it cannot start; [`RunError::Io`] if waiting fails.
pub async fn status(cmd: impl BorrowMut<Command>) -> Result<ExitStatus, RunError> {
    Ok(run(cmd, &RunOptions::new()).await?.status)
}

/// Runs `cmd`, captures its stdout, and fails unless it succeeds (CPython's `check_output`).
///
/// # Errors
///
/// [`RunError::Failed`] carrying the status and the stdout when it does not succeed; else as
/// [`status`].
pub async fn check_output(cmd: impl BorrowMut<Command>) -> Result<Vec<u8>, RunError> {
    Ok(run(cmd, &RunOptions::new().capture_stdout().check())
        .await?
        .stdout)
}
