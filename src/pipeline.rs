//! Pipelines: `a | b | c` from [`Command`]s, with every stage's status, one deadline, and
//! stages that cannot outlive a failed start.
//!
//! Layers: the builder ([`Pipeline`], here) starts the stages one after the other through
//! [`Command::spawn`]; the handle ([`PipelineChild`], `handle`) waits and signals; `io` is the
//! one poll loop that feeds the first stage, reads the last one's stdout and every captured
//! stderr, and watches every stage's pidfd; `status` and `error` are what comes out.

mod error;
mod handle;
mod io;
mod status;

pub use error::{PipelineError, PipelineErrorKind};
pub use handle::PipelineChild;
pub use status::{PipelineOutput, PipelineStatus, StageReport};

use std::fmt;
use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::error::{SpawnError, Step};
use crate::popen::Popen;
use crate::run::RunOptions;
use crate::stdio::{Stdio, StdioKind};
use crate::sys;

/// How long the stages already started get to end on their own, once a later stage failed to
/// start and their pipes are closed, before they are sent SIGTERM — and, after as long again,
/// SIGKILL.
const SPAWN_FAILURE_GRACE: Duration = Duration::from_millis(100);

/// A pipeline of commands, each one's stdout connected to the next one's stdin (`a | b | c`).
///
/// Built from [`Command`]s, which it owns: the first command's stdin and the last one's
/// stdout are theirs to set, with every redirection a command takes (a file, a pipe, the null
/// device, [`Stdio::piped`] — whose end appears on the [`PipelineChild`]); [`run`](Self::run)
/// adds input bytes and capture. Each stage's stderr is its own command's. The connections in
/// between are made by the pipeline: an inner stream set to anything but inherit is refused.
/// A one-stage pipeline behaves as its command.
///
/// Every stage starts with SIGPIPE (and SIGXFSZ) at their default disposition, even where this
/// process ignores SIGPIPE, as Rust programs do: a producer whose reader has gone ends as it
/// would in a shell. Pipe descriptors are close-on-exec from birth, and the parent closes each
/// inter-stage pipe end as soon as the stage it was made for has started, so a stage sees end
/// of file when its neighbour ends, and pipelines started at once from many threads never hold
/// each other's pipes open.
///
/// # Examples
///
/// ```
/// use popen::{Command, RunOptions};
///
/// // printf 'pear\napple\nfig\n' | sort | head -n 2
/// let out = Command::new("printf")
///     .arg("pear\napple\nfig\n")
///     .pipe(Command::new("sort"))
///     .pipe(Command::new("head").args(["-n", "2"]))
/// .run(&RunOptions::new().capture_stdout().check())?;
/// assert_eq!(out.stdout, b"apple\nfig\n");
/// assert!(out.status.stages().iter().all(|s| s.success()));
/// # Ok::<(), popen::PipelineError>(())
/// ```
pub struct Pipeline<'a> {
    stages: Vec<StageCommand<'a>>,
    checked: Vec<bool>,
    strict_sigpipe: bool,
    own_group: bool,
}

/// A stage's command, owned by the pipeline or borrowed from the caller (as the builder
/// methods of [`Command`] return it); made by `From`.
pub struct StageCommand<'a>(StageInner<'a>);

enum StageInner<'a> {
    Owned(Box<Command>),
    Borrowed(&'a mut Command),
}

impl From<Command> for StageCommand<'_> {
    fn from(cmd: Command) -> Self {
        StageCommand(StageInner::Owned(Box::new(cmd)))
    }
}

impl<'a> From<&'a mut Command> for StageCommand<'a> {
    fn from(cmd: &'a mut Command) -> Self {
        StageCommand(StageInner::Borrowed(cmd))
    }
}

impl std::ops::Deref for StageCommand<'_> {
    type Target = Command;

    fn deref(&self) -> &Command {
        match &self.0 {
            StageInner::Owned(c) => c,
            StageInner::Borrowed(c) => c,
        }
    }
}

impl std::ops::DerefMut for StageCommand<'_> {
    fn deref_mut(&mut self) -> &mut Command {
        match &mut self.0 {
            StageInner::Owned(c) => c,
            StageInner::Borrowed(c) => c,
        }
    }
}

impl fmt::Debug for StageCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<'a> Pipeline<'a> {
    /// A pipeline of `commands`, in order: [`Command`]s, or `&mut Command`s as the builder
    /// methods return them (a borrowed command can be run again; the pipeline must then be
    /// used within the statement, or the commands kept in variables). To mix both, add stages
    /// with [`pipe`](Self::pipe). An empty pipeline is accepted here and refused by
    /// [`spawn`](Self::spawn), before anything is created.
    pub fn new<C: Into<StageCommand<'a>>>(commands: impl IntoIterator<Item = C>) -> Pipeline<'a> {
        let stages: Vec<StageCommand<'a>> = commands.into_iter().map(Into::into).collect();
        Pipeline {
            checked: vec![true; stages.len()],
            stages,
            strict_sigpipe: false,
            own_group: false,
        }
    }

    /// Appends a stage: `self | command`.
    pub fn pipe(&mut self, command: impl Into<StageCommand<'a>>) -> &mut Pipeline<'a> {
        self.stages.push(command.into());
        self.checked.push(true);
        self
    }

    /// The number of stages.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Whether there is no stage.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Stage `i`'s command, to change it.
    pub fn stage_mut(&mut self, i: usize) -> Option<&mut Command> {
        self.stages.get_mut(i).map(|c| &mut **c)
    }

    /// The first stage's stdin (the same as setting it on that command).
    ///
    /// # Panics
    ///
    /// If the pipeline is empty.
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Pipeline<'a> {
        self.stages
            .first_mut()
            .expect("an empty pipeline")
            .stdin(stdio);
        self
    }

    /// The last stage's stdout (the same as setting it on that command).
    ///
    /// # Panics
    ///
    /// If the pipeline is empty.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Pipeline<'a> {
        self.stages
            .last_mut()
            .expect("an empty pipeline")
            .stdout(stdio);
        self
    }

    /// Whether stage `i`'s failure counts (default: every stage's does). A check reports the
    /// rightmost checked stage that failed; see [`PipelineStatus`].
    ///
    /// ```
    /// use popen::{Command, RunOptions};
    ///
    /// // grep exits 1 when nothing matches: not a failure here.
    /// let out = Command::shell("echo a")
    ///     .pipe(Command::new("grep").arg("x"))
    ///     .check_stage(1, false)
    ///     .run(&RunOptions::new().capture_stdout().check())?;
    /// assert_eq!(out.status.pipefail().code(), Some(1));
    /// assert!(out.status.success());
    /// # Ok::<(), popen::PipelineError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If there is no stage `i`.
    pub fn check_stage(&mut self, i: usize, on: bool) -> &mut Pipeline<'a> {
        self.checked[i] = on;
        self
    }

    /// Whether a stage other than the last one killed by SIGPIPE counts as a failure (bash's
    /// `pipefail`). Default `false`: in `producer | head` the producer is meant to end so.
    pub fn strict_sigpipe(&mut self, on: bool) -> &mut Pipeline<'a> {
        self.strict_sigpipe = on;
        self
    }

    /// Puts every stage in one new process group, led by stage 0 (as a shell's job control
    /// does), so that [`PipelineChild::send_signal_group`] reaches them all, grandchildren
    /// included. Each stage joins the group both in the child, before exec, and from the
    /// parent, so the group is complete whichever runs first.
    pub fn process_group(&mut self, on: bool) -> &mut Pipeline<'a> {
        self.own_group = on;
        self
    }

    /// Starts every stage, first to last.
    ///
    /// # Errors
    ///
    /// [`PipelineErrorKind::Io`] (`InvalidInput`) for an empty pipeline or an inner stream set
    /// by a command, before anything is created; [`PipelineErrorKind::Spawn`] naming the stage
    /// that could not start. The stages started before it get their pipes closed, are given
    /// 100 ms to end, then SIGTERM, then after 100 ms more SIGKILL, and are reaped: the error
    /// comes back with no stage left running and no descriptor left open.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Pipeline, PipelineErrorKind};
    ///
    /// let err = Pipeline::new([
    ///     Command::new("sleep").arg("1000"),
    ///     &mut Command::new("/nonexistent"),
    ///     &mut Command::new("cat"),
    /// ])
    /// .spawn()
    /// .unwrap_err();
    /// assert!(matches!(err.kind(), PipelineErrorKind::Spawn { stage: 1, .. }));
    /// assert!(err.to_string().starts_with("stage 2 of 3 `/nonexistent` could not start"));
    /// ```
    pub fn spawn(&mut self) -> Result<PipelineChild, PipelineError> {
        self.spawn_with(None)
    }

    /// Starts the stages; `pipe_size`, if any, is asked for the pipes between them.
    fn spawn_with(&mut self, pipe_size: Option<usize>) -> Result<PipelineChild, PipelineError> {
        self.check_redirections()?;
        let n = self.stages.len();
        let mut started: Vec<Popen> = Vec::with_capacity(n);
        let mut next_stdin: Option<OwnedFd> = None;
        let mut group: Option<libc::pid_t> = None;
        for i in 0..n {
            let to_next = if i + 1 < n {
                match make_pipe(
                    &self.stages[i],
                    self.stages.get(i + 1).map(|c| &**c),
                    pipe_size,
                ) {
                    Ok(p) => Some(p),
                    Err(e) => return Err(self.abort(started, group, i, e)),
                }
            } else {
                None
            };
            let (read_end, write_end) = match to_next {
                Some((r, w)) => (Some(r), Some(w)),
                None => (None, None),
            };
            let spawned = spawn_stage(
                &mut self.stages[i],
                next_stdin.take(),
                write_end,
                self.own_group.then_some(group.unwrap_or(0)),
            );
            // Both ends this stage was given are closed now (spawn_stage dropped them): only
            // the read end for the next stage is still held.
            match spawned {
                Ok(child) => {
                    if self.own_group {
                        let leader = *group.get_or_insert(child.pid());
                        join_group(child.pid(), leader);
                    }
                    started.push(child);
                    next_stdin = read_end;
                }
                Err(e) => {
                    drop(read_end);
                    return Err(self.abort(started, group, i, e));
                }
            }
        }
        Ok(PipelineChild::new(
            started,
            self.checked.clone(),
            self.strict_sigpipe,
            group,
        ))
    }

    /// Refuses what cannot be honoured, before anything is created.
    fn check_redirections(&self) -> Result<(), PipelineError> {
        let invalid = |msg: String| {
            PipelineError::new(
                PipelineErrorKind::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)),
                self.reports(&[]),
                Vec::new(),
            )
        };
        if self.stages.is_empty() {
            return Err(invalid("a pipeline needs at least one command".into()));
        }
        let n = self.stages.len();
        for (i, cmd) in self.stages.iter().enumerate() {
            if self.own_group && (cmd.req.new_session || cmd.req.process_group.is_some()) {
                return Err(invalid(format!(
                    "stage {} of {n} chooses its own session or process group, but the \
                     pipeline puts every stage in one group",
                    i + 1
                )));
            }
            if i > 0 && !matches!(cmd.req.stdin.0, StdioKind::Inherit) {
                return Err(invalid(format!(
                    "stage {} of {n} sets its stdin, which the pipeline connects to stage {}",
                    i + 1,
                    i
                )));
            }
            if i + 1 < n && !matches!(cmd.req.stdout.0, StdioKind::Inherit) {
                return Err(invalid(format!(
                    "stage {} of {n} sets its stdout, which the pipeline connects to stage {}",
                    i + 1,
                    i + 2
                )));
            }
        }
        Ok(())
    }

    /// After stage `failed` could not start: stops and reaps the stages started before it
    /// (their pipe ends are already closed) and builds the error.
    fn abort(
        &self,
        started: Vec<Popen>,
        group: Option<libc::pid_t>,
        failed: usize,
        error: SpawnError,
    ) -> PipelineError {
        stop_stages(&started, group, SPAWN_FAILURE_GRACE);
        let mut reports = self.reports(&started);
        for (r, child) in reports.iter_mut().zip(&started) {
            r.status = child.poll().ok().flatten();
        }
        PipelineError::new(
            PipelineErrorKind::Spawn {
                stage: failed,
                error,
            },
            reports,
            Vec::new(),
        )
    }

    /// A report per stage, with the pids of those `started`.
    fn reports(&self, started: &[Popen]) -> Vec<StageReport> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, cmd)| StageReport {
                args: cmd.get_argv().to_vec(),
                pid: started.get(i).map(Popen::pid),
                status: None,
                stderr: Vec::new(),
            })
            .collect()
    }

    /// Runs the pipeline to its end with `opts` (the options of [`run`](crate::run)): `input`
    /// goes to the first stage's stdin, `capture_stdout` reads the last stage's stdout and
    /// `capture_stderr` every stage's stderr, all in one poll loop that also watches every
    /// stage's pidfd, so no pattern of output can deadlock it.
    ///
    /// # Timeouts
    ///
    /// One deadline covers the whole pipeline, from the start of the first stage. When it
    /// passes, every stage still running gets SIGTERM (its whole group too, with
    /// [`process_group`](Self::process_group)); the pipes are read until end of file for at
    /// most the [grace period](RunOptions::grace_period); survivors get SIGKILL; the pipes are
    /// closed, so a grandchild holding one cannot hold up the call; the stages are reaped
    /// (given at least 50 ms); and [`PipelineErrorKind::Timeout`] comes back with the output
    /// read so far and every status. So `run` returns within timeout + 2 × grace (+ a few ms).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn); `Timeout` and `LimitExceeded` as above;
    /// [`PipelineErrorKind::Failed`] with [`check`](RunOptions::check) when a checked stage
    /// failed (see [`PipelineStatus::failed_stage`]); `Io` if a system call fails (every stage
    /// is then killed and reaped).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, RunOptions};
    ///
    /// let out = Command::new("tr")
    ///     .args(["a-z", "A-Z"])
    ///     .pipe(Command::new("rev"))
    ///     .run(&RunOptions::new().input(&b"hello\n"[..]).capture_stdout())?;
    /// assert_eq!(out.stdout, b"OLLEH\n");
    /// # Ok::<(), popen::PipelineError>(())
    /// ```
    pub fn run(&mut self, opts: &RunOptions<'_>) -> Result<PipelineOutput, PipelineError> {
        let started = Instant::now();
        let deadline = opts.timeout.and_then(|t| started.checked_add(t));
        let n = self.stages.len();
        let saved = self.redirect_for_run(opts);
        let spawned = self.spawn_with(opts.capture_opts.pipe_size);
        self.restore_after_run(saved);
        let mut child = spawned?;
        io::run_to_end(&mut child, opts, deadline, n)
    }

    /// Points the outer streams at pipes as `opts` asks; returns what they were.
    fn redirect_for_run(&mut self, opts: &RunOptions<'_>) -> SavedStreams {
        let Some(last) = self.stages.len().checked_sub(1) else {
            return SavedStreams::default();
        };
        let stdin = opts
            .input
            .is_some()
            .then(|| mem::replace(&mut self.stages[0].req.stdin, Stdio::piped()));
        let stdout = opts.capture[0]
            .then(|| mem::replace(&mut self.stages[last].req.stdout, Stdio::piped()));
        let stderr = if opts.capture[1] {
            self.stages
                .iter_mut()
                .map(|c| Some(mem::replace(&mut c.req.stderr, Stdio::piped())))
                .collect()
        } else {
            Vec::new()
        };
        SavedStreams {
            stdin,
            stdout,
            stderr,
        }
    }

    /// The commands keep their own redirections for later runs.
    fn restore_after_run(&mut self, saved: SavedStreams) {
        if let Some(s) = saved.stdin {
            self.stages[0].req.stdin = s;
        }
        if let Some(s) = saved.stdout {
            if let Some(last) = self.stages.last_mut() {
                last.req.stdout = s;
            }
        }
        for (cmd, s) in self.stages.iter_mut().zip(saved.stderr) {
            if let Some(s) = s {
                cmd.req.stderr = s;
            }
        }
    }
}

impl Command {
    /// A pipeline of this command and `next`: `self | next`. Add stages with
    /// [`Pipeline::pipe`].
    ///
    /// ```
    /// use popen::{Command, RunOptions};
    ///
    /// let out = Command::new("echo")
    ///     .arg("b a c")
    ///     .pipe(Command::new("tr").args([" ", "\\n"]))
    ///     .pipe(Command::new("sort"))
    ///     .run(&RunOptions::new().capture_stdout())?;
    /// assert_eq!(out.stdout, b"a\nb\nc\n");
    /// # Ok::<(), popen::PipelineError>(())
    /// ```
    pub fn pipe<'a>(&'a mut self, next: impl Into<StageCommand<'a>>) -> Pipeline<'a> {
        let mut p = Pipeline::new([self]);
        p.pipe(next);
        p
    }
}

#[derive(Default)]
struct SavedStreams {
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Vec<Option<Stdio>>,
}

impl From<Command> for Pipeline<'_> {
    /// A one-stage pipeline.
    fn from(cmd: Command) -> Self {
        Pipeline::new([cmd])
    }
}

impl fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.stages)
            .field("checked", &self.checked)
            .field("strict_sigpipe", &self.strict_sigpipe)
            .field("process_group", &self.own_group)
            .finish()
    }
}

/// The pipe from `cmd` to `next`, close-on-exec, sized as asked by the run or either command.
fn make_pipe(
    cmd: &Command,
    next: Option<&Command>,
    pipe_size: Option<usize>,
) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (r, w) = sys::fd::pipe_cloexec().map_err(|e| SpawnError::new(Step::Pipe, e))?;
    let size = [
        cmd.req.pipe_size,
        next.and_then(|c| c.req.pipe_size),
        pipe_size,
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(size) = size {
        if sys::poll::pipe_size(r.as_fd()).is_ok_and(|cur| cur < size) {
            // Best effort: the kernel refuses past the per-user pipe quota.
            let _ = sys::fd::set_pipe_size(r.as_fd(), size);
        }
    }
    Ok((r, w))
}

/// Spawns one stage with the given pipe ends as its inner streams and, with `group`, in that
/// process group (`0`: a new one it leads). The command gets back its own settings, and the
/// pipe ends are closed, whatever the outcome.
fn spawn_stage(
    cmd: &mut Command,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    group: Option<libc::pid_t>,
) -> Result<Popen, SpawnError> {
    let saved_stdin = stdin.map(|fd| mem::replace(&mut cmd.req.stdin, Stdio::from(fd)));
    let saved_stdout = stdout.map(|fd| mem::replace(&mut cmd.req.stdout, Stdio::from(fd)));
    let saved_group = group.map(|g| cmd.req.process_group.replace(g));
    let saved_restore = mem::replace(&mut cmd.req.restore_signals, true);
    let spawned = cmd.spawn();
    cmd.req.restore_signals = saved_restore;
    if let Some(g) = saved_group {
        cmd.req.process_group = g;
    }
    if let Some(s) = saved_stdout {
        cmd.req.stdout = s;
    }
    if let Some(s) = saved_stdin {
        cmd.req.stdin = s;
    }
    spawned
}

/// The parent's half of joining a process group: whichever of parent and child runs first
/// makes the membership true. `EACCES` (the child has already exec'd, so it joined itself)
/// and `ESRCH` (it is gone) are expected.
fn join_group(pid: libc::pid_t, group: libc::pid_t) {
    let _ = sys::pgrp::setpgid(pid, group);
}

/// Lets `stages` end on their own for `grace`, then SIGTERM, `grace` more, SIGKILL — each also
/// to their own process `group`, if any, for the grandchildren in it; reaps them all.
fn stop_stages(stages: &[Popen], group: Option<libc::pid_t>, grace: Duration) {
    let deadline = Instant::now() + grace;
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let deadline = if signal == libc::SIGTERM {
            deadline
        } else {
            deadline + grace
        };
        let _ = crate::wait_set::wait_all_deadline(stages, Some(deadline));
        for child in stages {
            if matches!(child.poll(), Ok(None)) {
                let _ = child.send_signal(signal);
            }
        }
        handle::signal_group(group, signal);
    }
    for child in stages {
        let _ = child.wait();
    }
}
