//! The handle to a started pipeline: every stage's [`Popen`], the outer pipe ends, waits and
//! signals.

use std::io;
use std::time::{Duration, Instant};

use super::status::PipelineStatus;
use crate::popen::Popen;
use crate::status::ExitStatus;
use crate::stdio::{ChildStdin, ChildStdout};
use crate::sys;

/// A started pipeline, as returned by [`Pipeline::spawn`](crate::Pipeline::spawn): one
/// [`Popen`] per stage, and the parent's ends of the first stage's stdin and the last stage's
/// stdout when they were [`Stdio::piped`](crate::Stdio::piped). A stage's piped stderr is on
/// its own handle ([`stages_mut`](Self::stages_mut)).
///
/// Statuses are cached in the stages' handles; [`wait_any`](crate::wait_any),
/// [`wait_all`](crate::wait_all) and [`WaitSet`](crate::WaitSet) take pipelines too.
///
/// # Drop behavior
///
/// As for each stage's [`Popen`]: the pipes are closed, nothing blocks, and stages still
/// running are reaped in the background when they exit.
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
/// use std::io::Read;
///
/// let mut child = Command::new("yes")
///     .pipe(Command::new("head").arg("-n1"))
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let mut out = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut out)?;
/// let status = child.wait()?;
/// assert_eq!(out, "y\n");
/// assert_eq!(status.stages()[0].signal(), Some(libc::SIGPIPE));
/// assert!(status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PipelineChild {
    stages: Vec<Popen>,
    checked: Vec<bool>,
    strict_sigpipe: bool,
    group: Option<libc::pid_t>,
    /// The parent's end of the first stage's stdin, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the last stage's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
}

impl PipelineChild {
    pub(crate) fn new(
        mut stages: Vec<Popen>,
        checked: Vec<bool>,
        strict_sigpipe: bool,
        group: Option<libc::pid_t>,
    ) -> PipelineChild {
        let stdin = stages.first_mut().and_then(|c| c.stdin.take());
        let stdout = stages.last_mut().and_then(|c| c.stdout.take());
        PipelineChild {
            stages,
            checked,
            strict_sigpipe,
            group,
            stdin,
            stdout,
        }
    }

    /// Every stage's handle, stage 0 first.
    pub fn stages(&self) -> &[Popen] {
        &self.stages
    }

    /// Every stage's handle, to take a piped stderr.
    pub fn stages_mut(&mut self) -> &mut [Popen] {
        &mut self.stages
    }

    /// Every stage's process id, stage 0 first.
    pub fn pids(&self) -> Vec<i32> {
        self.stages.iter().map(Popen::pid).collect()
    }

    /// The process group every stage is in, with
    /// [`Pipeline::process_group`](crate::Pipeline::process_group).
    pub fn process_group(&self) -> Option<i32> {
        self.group
    }

    pub(crate) fn status_of(&self, statuses: Vec<ExitStatus>) -> PipelineStatus {
        PipelineStatus::new(statuses, self.checked.clone(), self.strict_sigpipe)
    }

    /// Every stage's status once all have exited (reaping those that have), else `None`.
    /// Never blocks.
    ///
    /// # Errors
    ///
    /// An unexpected `waitpid` error.
    pub fn poll(&self) -> io::Result<Option<PipelineStatus>> {
        let mut statuses = Vec::with_capacity(self.stages.len());
        for child in &self.stages {
            match child.poll()? {
                Some(s) => statuses.push(s),
                None => return Ok(None),
            }
        }
        Ok(Some(self.status_of(statuses)))
    }

    /// Waits for every stage to exit.
    ///
    /// Does not close the first stage's stdin: take and drop [`stdin`](Self::stdin) first if
    /// it waits for end of input.
    ///
    /// # Errors
    ///
    /// An unexpected `poll`/`waitid` error.
    pub fn wait(&self) -> io::Result<PipelineStatus> {
        let mut statuses = Vec::with_capacity(self.stages.len());
        for child in &self.stages {
            statuses.push(child.wait()?);
        }
        Ok(self.status_of(statuses))
    }

    /// Waits at most `timeout` for every stage to exit; `None` if one still runs then.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<PipelineStatus>> {
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` (`None`: no deadline) for every stage to exit.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> io::Result<Option<PipelineStatus>> {
        if !crate::wait_set::wait_all_deadline(&self.stages, deadline)? {
            return Ok(None);
        }
        self.poll()
    }

    /// Sends `signal` to every stage not yet reaped (never to a reaped one, whose pid may be
    /// another process's by now).
    ///
    /// # Errors
    ///
    /// The first error of [`Popen::send_signal`]; every stage is still tried.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let mut first = Ok(());
        for child in &self.stages {
            let r = child.send_signal(signal);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Sends `signal` to the pipeline's process group
    /// ([`Pipeline::process_group`](crate::Pipeline::process_group)), grandchildren included,
    /// while a stage of it is not yet reaped (a group with no member left may be another's by
    /// now).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the pipeline has no group of its own, or when the group is this
    /// process's own (which the signal would hit too); else the error of `killpg`.
    pub fn send_signal_group(&self, signal: i32) -> io::Result<()> {
        let Some(group) = self.group else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the pipeline has no process group of its own",
            ));
        };
        if group == sys::pgrp::getpgrp() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to signal this process's own process group",
            ));
        }
        if self.stages.iter().all(|c| matches!(c.poll(), Ok(Some(_)))) {
            return Ok(());
        }
        sys::pgrp::killpg(group, signal)
    }

    /// Signals the pipeline's own group, if it has one, whether or not a stage is left: for
    /// stopping it, right after its stages were signalled, when grandchildren may remain.
    pub(crate) fn signal_own_group(&self, signal: i32) {
        signal_group(self.group, signal);
    }

    /// Sends SIGTERM to every stage not yet reaped.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends SIGKILL to every stage not yet reaped.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }
}

/// Signals `group` (a pipeline's own group; never this process's).
pub(crate) fn signal_group(group: Option<libc::pid_t>, signal: i32) {
    if let Some(g) = group.filter(|&g| g != sys::pgrp::getpgrp()) {
        let _ = sys::pgrp::killpg(g, signal);
    }
}

impl crate::wait_set::sealed::Sealed for PipelineChild {}

impl crate::wait_set::Waitable for PipelineChild {
    fn processes(&self) -> &[Popen] {
        self.stages()
    }
}
