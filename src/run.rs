//! `run` and its conveniences — `call`, `check_call`, `check_output`, `getoutput`,
//! `getstatusoutput` — on top of the handle and `communicate`.

use std::borrow::{BorrowMut, Cow};
use std::ffi::{OsStr, OsString};
use std::mem;
use std::time::Duration;

use crate::capture::{CaptureLimit, CaptureOptions};
use crate::command::Command;
use crate::communicate::DEFAULT_GRACE_PERIOD;
use crate::error::SpawnError;
use crate::outcome::{CalledProcessError, CommunicateError, Output, RunError};
use crate::popen::Popen;
use crate::status::ExitStatus;
use crate::stdio::Stdio;
use crate::text::{DecodeError, Stream, Text};

/// The options of CPython's `run`: what to capture, the input, a timeout, whether to check the
/// status — plus caps on captured bytes, tee, and the grace period after a kill.
///
/// Redirections other than capture are the [`Command`]'s own ([`Command::stdout`] etc.);
/// capture and input override them for the run only, and the command keeps its settings.
///
/// # Examples
///
/// ```
/// use popen::{Command, RunOptions};
/// use std::time::Duration;
///
/// let done = RunOptions::new()
///     .input(&b"b\na\n"[..])
///     .capture_output()
///     .timeout(Duration::from_secs(10))
///     .check()
///     .run(&mut Command::new("sort"))?;
/// assert_eq!(done.stdout, b"a\nb\n");
/// # Ok::<(), popen::RunError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RunOptions<'a> {
    pub(crate) capture: [bool; 2],
    pub(crate) input: Option<Cow<'a, [u8]>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) check: bool,
    pub(crate) grace: Duration,
    pub(crate) capture_opts: CaptureOptions,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            capture: [false, false],
            input: None,
            timeout: None,
            check: false,
            grace: DEFAULT_GRACE_PERIOD,
            capture_opts: CaptureOptions::new(),
        }
    }
}

impl<'a> RunOptions<'a> {
    /// Nothing captured, no input, no timeout, no check (CPython's defaults).
    pub fn new() -> RunOptions<'a> {
        RunOptions::default()
    }

    /// Captures stdout and stderr (CPython's `capture_output=True`).
    pub fn capture_output(self) -> RunOptions<'a> {
        self.capture_stdout().capture_stderr()
    }

    /// Captures stdout (CPython's `stdout=PIPE`).
    pub fn capture_stdout(mut self) -> RunOptions<'a> {
        self.capture[0] = true;
        self
    }

    /// Captures stderr (CPython's `stderr=PIPE`). To capture it mixed with stdout, set
    /// [`Stdio::same_as_stdout`] on the command and capture stdout.
    pub fn capture_stderr(mut self) -> RunOptions<'a> {
        self.capture[1] = true;
        self
    }

    /// Bytes to write to the child's stdin, which becomes a pipe closed after them (CPython's
    /// `input=`). Borrowed bytes are not copied.
    pub fn input(mut self, bytes: impl Into<Cow<'a, [u8]>>) -> RunOptions<'a> {
        self.input = Some(bytes.into());
        self
    }

    /// Gives the child at most `timeout`, from its start to its reaping. See [`run`] for what
    /// happens when it expires.
    pub fn timeout(mut self, timeout: Duration) -> RunOptions<'a> {
        self.timeout = Some(timeout);
        self
    }

    /// Makes an unsuccessful exit an error, [`RunError::Failed`] (CPython's `check=True`).
    pub fn check(mut self) -> RunOptions<'a> {
        self.check = true;
        self
    }

    /// How long to wait for the pipes' end of file after killing a child that timed out or
    /// exceeded an error cap (default [`DEFAULT_GRACE_PERIOD`], 250 ms). See [`run`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, RunError, RunOptions};
    /// use std::time::{Duration, Instant};
    ///
    /// let opts = RunOptions::new()
    ///     .capture_output()
    ///     .timeout(Duration::from_millis(200))
    ///     .grace_period(Duration::from_millis(50));
    /// let started = Instant::now();
    /// let err = popen::run(Command::shell("sleep 5 & echo hi; exec sleep 30"), &opts).unwrap_err();
    /// assert!(matches!(err, RunError::Timeout(t) if t.stdout == b"hi\n"));
    /// assert!(started.elapsed() < Duration::from_secs(10));
    /// ```
    pub fn grace_period(mut self, grace: Duration) -> RunOptions<'a> {
        self.grace = grace;
        self
    }

    /// Caps the bytes captured from stdout.
    pub fn stdout_limit(mut self, limit: CaptureLimit) -> RunOptions<'a> {
        self.capture_opts = self.capture_opts.stdout_limit(limit);
        self
    }

    /// Caps the bytes captured from stderr.
    pub fn stderr_limit(mut self, limit: CaptureLimit) -> RunOptions<'a> {
        self.capture_opts = self.capture_opts.stderr_limit(limit);
        self
    }

    /// Copies captured stdout to this process's stdout as it arrives.
    pub fn tee_stdout(mut self, on: bool) -> RunOptions<'a> {
        self.capture_opts = self.capture_opts.tee_stdout(on);
        self
    }

    /// Copies captured stderr to this process's stderr as it arrives.
    pub fn tee_stderr(mut self, on: bool) -> RunOptions<'a> {
        self.capture_opts = self.capture_opts.tee_stderr(on);
        self
    }

    /// The pipe size to ask for before moving data ([`CaptureOptions::pipe_size`]).
    pub fn pipe_size(mut self, bytes: Option<usize>) -> RunOptions<'a> {
        self.capture_opts = self.capture_opts.pipe_size(bytes);
        self
    }

    /// Runs `cmd` with these options: [`run`]`(cmd, self)`.
    ///
    /// # Errors
    ///
    /// As [`run`].
    pub fn run(&self, cmd: impl BorrowMut<Command>) -> Result<CompletedProcess, RunError> {
        run(cmd, self)
    }
}

/// A child that ran to its end (CPython's `CompletedProcess`).
///
/// # Examples
///
/// ```
/// use popen::{Command, RunOptions, Text};
///
/// let done = popen::run(Command::shell("printf 'a\\r\\nb'; exit 4"), &RunOptions::new().capture_stdout())?;
/// assert_eq!(done.returncode(), 4);
/// assert_eq!(done.stdout_text(Text::strict().universal_newlines(true))?, "a\nb");
/// assert!(done.check().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompletedProcess {
    /// The child's arguments, `argv[0]` first.
    pub args: Vec<OsString>,
    /// How the child ended.
    pub status: ExitStatus,
    /// The captured stdout (empty when it was not captured).
    pub stdout: Vec<u8>,
    /// The captured stderr (empty when it was not captured).
    pub stderr: Vec<u8>,
    /// Bytes of stdout dropped by a [`CaptureLimit::Truncate`] cap.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped by a [`CaptureLimit::Truncate`] cap.
    pub stderr_dropped: u64,
}

impl CompletedProcess {
    /// CPython's `returncode`: the exit code, or minus the signal number.
    pub fn returncode(&self) -> i32 {
        self.status.returncode()
    }

    /// Returns `self` if the child succeeded, else the error a check gives (CPython's
    /// `check_returncode`).
    ///
    /// # Errors
    ///
    /// A [`CalledProcessError`] carrying the status and the output, when the status is not
    /// success.
    pub fn check(self) -> Result<CompletedProcess, CalledProcessError> {
        if self.status.success() {
            return Ok(self);
        }
        Err(CalledProcessError {
            args: self.args,
            status: self.status,
            stdout: self.stdout,
            stderr: self.stderr,
        })
    }

    /// The captured stdout as text.
    ///
    /// # Errors
    ///
    /// With [`Text::strict`], a [`DecodeError`] naming stdout and the offset of the first
    /// invalid byte.
    pub fn stdout_text(&self, text: Text) -> Result<Cow<'_, str>, DecodeError> {
        text.decode(&self.stdout, Stream::Stdout)
    }

    /// The captured stderr as text.
    ///
    /// # Errors
    ///
    /// As [`stdout_text`](Self::stdout_text), naming stderr.
    pub fn stderr_text(&self, text: Text) -> Result<Cow<'_, str>, DecodeError> {
        text.decode(&self.stderr, Stream::Stderr)
    }
}

/// Spawns `cmd` with the redirections `opts` asks for (stdin piped for input, stdout and
/// stderr piped for capture), and gives the command its own redirections back for later
/// spawns.
pub(crate) fn spawn_for(cmd: &mut Command, opts: &RunOptions<'_>) -> Result<Popen, SpawnError> {
    let stdin = opts
        .input
        .is_some()
        .then(|| mem::replace(&mut cmd.req.stdin, Stdio::piped()));
    let stdout = opts.capture[0].then(|| mem::replace(&mut cmd.req.stdout, Stdio::piped()));
    let stderr = opts.capture[1].then(|| mem::replace(&mut cmd.req.stderr, Stdio::piped()));
    let spawned = cmd.spawn();
    if let Some(s) = stdin {
        cmd.req.stdin = s;
    }
    if let Some(s) = stdout {
        cmd.req.stdout = s;
    }
    if let Some(s) = stderr {
        cmd.req.stderr = s;
    }
    spawned
}

/// Runs `cmd` to its end with `opts` and returns what it did (CPython's `subprocess.run`).
///
/// `cmd` is a [`Command`] or a `&mut Command` (as the builder methods return), here and in the
/// other functions of this family; a borrowed command can be run again.
///
/// Captured streams are read, and the input written, by one thread with `poll(2)`, so no
/// pattern of output can deadlock ([`Popen::communicate`](crate::Popen::communicate)).
///
/// # Timeouts
///
/// The timeout runs from the start of the child. When it expires:
///
/// 1. the child is killed with SIGKILL — and, when it leads a process group of its own
///    ([`Command::start_new_session`], [`Command::process_group`]`(0)`), every process in that
///    group too;
/// 2. the pipes are read until end of file, but for at most the
///    [grace period](RunOptions::grace_period) (default 250 ms): a grandchild outside the group
///    that keeps a pipe open does not hold the call up (it does in CPython — issue 81605);
///    it keeps running, and finds the pipe closed when it next writes;
/// 3. the pipes are closed and the child is reaped (given at least 50 ms);
/// 4. [`RunError::Timeout`] is returned with every byte read, and the child's status.
///
/// So `run` returns within timeout + grace period (+ a few milliseconds). The same happens
/// when a stream exceeds a [`CaptureLimit::Error`] cap ([`RunError::LimitExceeded`]).
///
/// # Errors
///
/// [`RunError::Spawn`] if the child cannot start; `Timeout` and `LimitExceeded` as above;
/// [`RunError::Failed`] with [`check`](RunOptions::check) and an unsuccessful status, carrying
/// the output; [`RunError::Io`] if a system call fails (the child is then killed).
///
/// # Examples
///
/// ```
/// use popen::{Command, RunOptions};
///
/// let done = popen::run(
///     Command::shell("echo out; echo err >&2; exit 3"),
///     &RunOptions::new().capture_output(),
/// )?;
/// assert_eq!((done.returncode(), &done.stdout[..], &done.stderr[..]), (3, &b"out\n"[..], &b"err\n"[..]));
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn run(
    mut cmd: impl BorrowMut<Command>,
    opts: &RunOptions<'_>,
) -> Result<CompletedProcess, RunError> {
    let cmd = cmd.borrow_mut();
    let mut child = spawn_for(cmd, opts)?;
    let capture = opts.capture_opts.clone().kill_on_timeout(Some(opts.grace));
    let result = child
        .capture_options(capture)
        .communicate(opts.input.as_deref(), opts.timeout);
    let out = match result {
        Ok(out) => out,
        Err(CommunicateError::Io(e)) => {
            // Do not leave it running behind a failed call; dropping the handle reaps it.
            let _ = child.kill();
            return Err(RunError::Io(e));
        }
        Err(e) => return Err(e.into()),
    };
    completed(child.args().to_vec(), out, opts.check)
}

/// What `run` returns for a child started with `args` whose communication gave `out`:
/// checked when `check` is set.
pub(crate) fn completed(
    args: Vec<OsString>,
    out: Output,
    check: bool,
) -> Result<CompletedProcess, RunError> {
    let done = CompletedProcess {
        args,
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
        stdout_dropped: out.stdout_dropped,
        stderr_dropped: out.stderr_dropped,
    };
    if check {
        return Ok(done.check()?);
    }
    Ok(done)
}

/// Runs `cmd` and returns its exit status (CPython's `call`). Nothing is captured.
///
/// # Errors
///
/// [`RunError::Spawn`] if it cannot start; [`RunError::Io`] if waiting fails.
///
/// # Examples
///
/// ```
/// let status = popen::call(popen::Command::new("false").arg("ignored"))?;
/// assert_eq!(status.code(), Some(1));
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn call(cmd: impl BorrowMut<Command>) -> Result<ExitStatus, RunError> {
    Ok(run(cmd, &RunOptions::new())?.status)
}

/// Runs `cmd` and fails unless it succeeds (CPython's `check_call`). Nothing is captured.
///
/// # Errors
///
/// [`RunError::Failed`] with the status when it does not succeed; else as [`call`].
///
/// # Examples
///
/// ```
/// use popen::{Command, RunError};
///
/// popen::check_call(&mut Command::new("true"))?;
/// let err = popen::check_call(Command::shell("exit 2")).unwrap_err();
/// assert!(matches!(err, RunError::Failed(e) if e.returncode() == 2));
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn check_call(cmd: impl BorrowMut<Command>) -> Result<(), RunError> {
    run(cmd, &RunOptions::new().check()).map(drop)
}

/// Runs `cmd`, captures its stdout, and fails unless it succeeds (CPython's `check_output`).
/// stderr is left as the command sets it.
///
/// # Errors
///
/// [`RunError::Failed`] carrying the status and the stdout when it does not succeed; else as
/// [`call`].
///
/// # Examples
///
/// ```
/// let out = popen::check_output(popen::Command::new("echo").arg("hi"))?;
/// assert_eq!(out, b"hi\n");
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn check_output(cmd: impl BorrowMut<Command>) -> Result<Vec<u8>, RunError> {
    Ok(run(cmd, &RunOptions::new().capture_stdout().check())?.stdout)
}

/// Runs `cmd` with `/bin/sh -c`, stderr merged into stdout, and returns the exit status
/// (CPython's `returncode`: minus the signal number for a signal) and the output as text
/// (strict UTF-8, universal newlines) without one trailing newline (CPython's
/// `getstatusoutput`).
///
/// # Errors
///
/// [`RunError::Spawn`] if the shell cannot start; [`RunError::Decode`] if the output is not
/// UTF-8; [`RunError::Io`] if a system call fails. An unsuccessful status is not an error.
///
/// # Examples
///
/// ```
/// let (code, text) = popen::getstatusoutput("echo out; echo err >&2; exit 5")?;
/// assert_eq!((code, text.as_str()), (5, "out\nerr"));
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn getstatusoutput(cmd: impl AsRef<OsStr>) -> Result<(i32, String), RunError> {
    let mut shell = Command::shell(cmd);
    shell.stderr(Stdio::same_as_stdout());
    let done = run(shell, &RunOptions::new().capture_stdout())?;
    let mut text = Text::strict()
        .universal_newlines(true)
        .decode_vec(done.stdout, Stream::Stdout)?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok((done.status.returncode(), text))
}

/// The output of `cmd` run with `/bin/sh -c`, stderr included, without one trailing newline
/// (CPython's `getoutput`). The exit status is ignored.
///
/// # Errors
///
/// As [`getstatusoutput`].
///
/// # Examples
///
/// ```
/// assert_eq!(popen::getoutput("echo hello")?, "hello");
/// # Ok::<(), popen::RunError>(())
/// ```
pub fn getoutput(cmd: impl AsRef<OsStr>) -> Result<String, RunError> {
    Ok(getstatusoutput(cmd)?.1)
}

/// std's everyday calls, on top of [`run`].
impl Command {
    /// Runs the command to its end and returns its status and everything it wrote (std's
    /// `Command::output`). As in std, a stream the command does not set is given a default
    /// for this call only: stdout and stderr are captured, stdin is the null device. A stream
    /// the command sets keeps its setting (a piped one is captured too, a piped stdin is
    /// closed at once). Reading both streams cannot deadlock: it is [`run`] underneath.
    ///
    /// # Errors
    ///
    /// [`RunError::Spawn`] if the child cannot start, [`RunError::Io`] if a system call fails
    /// while reading or waiting (the child is then killed). An unsuccessful status is not an
    /// error. `RunError` converts into [`std::io::Error`], so `?` works where std's
    /// `io::Result` did.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::Command;
    ///
    /// let out = Command::shell("echo out; echo err >&2; cat; exit 3").output()?;
    /// assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    /// assert_eq!(out.status.code(), Some(3));
    /// # Ok::<(), popen::RunError>(())
    /// ```
    pub fn output(&mut self) -> Result<Output, RunError> {
        let mut opts = RunOptions::new();
        if !self.stdio_set[1] {
            opts = opts.capture_stdout();
        }
        if !self.stdio_set[2] {
            opts = opts.capture_stderr();
        }
        let stdin = (!self.stdio_set[0]).then(|| mem::replace(&mut self.req.stdin, Stdio::null()));
        let done = run(&mut *self, &opts);
        if let Some(s) = stdin {
            self.req.stdin = s;
        }
        let done = done?;
        Ok(Output {
            status: done.status,
            stdout: done.stdout,
            stderr: done.stderr,
            stdout_dropped: 0,
            stderr_dropped: 0,
        })
    }

    /// Runs the command to its end and returns its status (std's `Command::status`, CPython's
    /// [`call`]). Streams the command does not set are inherited, as with std.
    ///
    /// # Errors
    ///
    /// As [`call`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::Command;
    ///
    /// assert_eq!(Command::shell("exit 4").status()?.code(), Some(4));
    /// # Ok::<(), popen::RunError>(())
    /// ```
    pub fn status(&mut self) -> Result<ExitStatus, RunError> {
        call(self)
    }
}
