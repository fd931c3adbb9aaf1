//! What communicating with a child produces: its output, and the typed errors that carry
//! whatever output was read before things went wrong.

use std::error::Error;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::error::SpawnError;
use crate::status::ExitStatus;
use crate::text::{DecodeError, Stream};

/// What [`Popen::communicate`](crate::Popen::communicate) collected: the exit status and
/// everything the child wrote to its piped stdout and stderr.
///
/// A stream that was not piped reads as empty.
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
///
/// let mut child = Command::shell("echo out; echo err >&2")
///     .stdout(Stdio::piped())
///     .stderr(Stdio::piped())
///     .spawn()?;
/// let out = child.communicate(None, None)?;
/// assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
/// assert!(out.status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// The bytes read from the child's stdout.
    pub stdout: Vec<u8>,
    /// The bytes read from the child's stderr.
    pub stderr: Vec<u8>,
    /// Bytes of stdout read and dropped because of a
    /// [`CaptureLimit::Truncate`](crate::CaptureLimit::Truncate) cap.
    pub stdout_dropped: u64,
    /// Bytes of stderr read and dropped because of a
    /// [`CaptureLimit::Truncate`](crate::CaptureLimit::Truncate) cap.
    pub stderr_dropped: u64,
}

impl Output {
    /// Whether a [`CaptureLimit::Truncate`](crate::CaptureLimit::Truncate) cap dropped bytes.
    pub fn truncated(&self) -> bool {
        self.stdout_dropped > 0 || self.stderr_dropped > 0
    }
}

/// A timeout expired before the child finished (CPython's `TimeoutExpired`). It carries every
/// byte read so far.
///
/// From [`Popen::communicate`](crate::Popen::communicate) the child is left running (unless
/// [`CaptureOptions::kill_on_timeout`](crate::CaptureOptions::kill_on_timeout) was set) and
/// `status` is `None`; a later `communicate` resumes where this one stopped. From
/// [`run`](crate::run) the child has been killed, and `status` is how it ended once reaped.
///
/// # Examples
///
/// ```
/// use popen::{Command, RunError, RunOptions};
/// use std::time::Duration;
///
/// let opts = RunOptions::new().capture_output().timeout(Duration::from_millis(300));
/// let err = popen::run(Command::shell("echo early; exec sleep 10"), &opts).unwrap_err();
/// let RunError::Timeout(t) = err else { panic!("{err}") };
/// assert_eq!(t.stdout, b"early\n");
/// assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TimeoutExpired {
    /// The child's arguments, `argv[0]` first.
    pub args: Vec<OsString>,
    /// The timeout that expired.
    pub timeout: Duration,
    /// The bytes read from stdout before the error.
    pub stdout: Vec<u8>,
    /// The bytes read from stderr before the error.
    pub stderr: Vec<u8>,
    /// How the child ended, when it was killed and reaped before the error was returned.
    pub status: Option<ExitStatus>,
}

impl fmt::Display for TimeoutExpired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command {:?} timed out after {:?}",
            self.args, self.timeout
        )?;
        if let Some(s) = self.status {
            write!(f, " (killed; {s})")?;
        }
        Ok(())
    }
}

impl Error for TimeoutExpired {}

/// A stream produced more bytes than its
/// [`CaptureLimit::Error`](crate::CaptureLimit::Error) cap allowed. `stdout` and `stderr` hold
/// what was kept: the stream that overflowed holds exactly `limit` bytes.
///
/// # Examples
///
/// ```
/// use popen::{CaptureLimit, Command, RunError, RunOptions, Stream};
///
/// let opts = RunOptions::new()
///     .capture_output()
///     .stdout_limit(CaptureLimit::Error(4));
/// let err = popen::run(Command::shell("echo 0123456789"), &opts).unwrap_err();
/// let RunError::LimitExceeded(e) = err else { panic!("{err}") };
/// assert_eq!((e.stream, e.limit, &e.stdout[..]), (Stream::Stdout, 4, &b"0123"[..]));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LimitExceeded {
    /// The child's arguments, `argv[0]` first.
    pub args: Vec<OsString>,
    /// The stream that went over its cap.
    pub stream: Stream,
    /// The cap, in bytes.
    pub limit: usize,
    /// The bytes kept from stdout.
    pub stdout: Vec<u8>,
    /// The bytes kept from stderr.
    pub stderr: Vec<u8>,
    /// How the child ended, when it was killed and reaped before the error was returned.
    pub status: Option<ExitStatus>,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command {:?} wrote more than {} bytes to {}",
            self.args, self.limit, self.stream
        )?;
        if let Some(s) = self.status {
            write!(f, " (killed; {s})")?;
        }
        Ok(())
    }
}

impl Error for LimitExceeded {}

/// The child ended unsuccessfully and the caller asked for a check (CPython's
/// `CalledProcessError`). It carries the status and the captured output.
///
/// # Examples
///
/// ```
/// use popen::{Command, RunError};
///
/// let err = popen::check_output(Command::shell("echo partial; exit 3")).unwrap_err();
/// let RunError::Failed(e) = err else { panic!("{err}") };
/// assert_eq!((e.returncode(), &e.stdout[..]), (3, &b"partial\n"[..]));
/// assert_eq!(e.to_string(), r#"command ["/bin/sh", "-c", "echo partial; exit 3"] returned non-zero exit status 3"#);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CalledProcessError {
    /// The child's arguments, `argv[0]` first.
    pub args: Vec<OsString>,
    /// How the child ended.
    pub status: ExitStatus,
    /// The captured stdout (empty when it was not captured).
    pub stdout: Vec<u8>,
    /// The captured stderr (empty when it was not captured).
    pub stderr: Vec<u8>,
}

impl CalledProcessError {
    /// CPython's `returncode`: the exit code, or minus the signal number.
    pub fn returncode(&self) -> i32 {
        self.status.returncode()
    }
}

impl fmt::Display for CalledProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => write!(
                f,
                "command {:?} returned non-zero exit status {c}",
                self.args
            ),
            (None, Some(s)) => write!(f, "command {:?} died with signal {s}", self.args),
            _ => write!(f, "command {:?} ended with {}", self.args, self.status),
        }
    }
}

impl Error for CalledProcessError {}

/// Why [`Popen::communicate`](crate::Popen::communicate) (or a [`Lines`](crate::Lines)
/// iterator) stopped without a result.
///
/// The timeout and cap errors carry the output read so far.
///
/// # Examples
///
/// ```
/// use popen::{CommunicateError, Command, Stdio};
/// use std::time::Duration;
///
/// let mut child = Command::shell("echo first; exec sleep 10")
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let err = child.communicate(None, Some(Duration::from_millis(200))).unwrap_err();
/// assert!(matches!(&err, CommunicateError::Timeout(t) if t.stdout == b"first\n"));
/// child.kill()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CommunicateError {
    /// The timeout expired.
    Timeout(TimeoutExpired),
    /// A stream went over its capture cap.
    LimitExceeded(LimitExceeded),
    /// A system call failed (resuming after this is not supported).
    Io(io::Error),
}

impl CommunicateError {
    /// The error of a communication that stopped early with the output read so far: a
    /// timeout, or, when `over` names a stream, that stream's cap of `limit` bytes exceeded.
    pub(crate) fn stopped(
        args: Vec<OsString>,
        timeout: Duration,
        over: Option<(Stream, usize)>,
        [stdout, stderr]: [Vec<u8>; 2],
        status: Option<ExitStatus>,
    ) -> CommunicateError {
        match over {
            None => CommunicateError::Timeout(TimeoutExpired {
                args,
                timeout,
                stdout,
                stderr,
                status,
            }),
            Some((stream, limit)) => CommunicateError::LimitExceeded(LimitExceeded {
                args,
                stream,
                limit,
                stdout,
                stderr,
                status,
            }),
        }
    }

    /// The stdout read before the error (empty for an I/O error).
    pub fn stdout(&self) -> &[u8] {
        match self {
            CommunicateError::Timeout(t) => &t.stdout,
            CommunicateError::LimitExceeded(l) => &l.stdout,
            CommunicateError::Io(_) => &[],
        }
    }

    /// The stderr read before the error (empty for an I/O error).
    pub fn stderr(&self) -> &[u8] {
        match self {
            CommunicateError::Timeout(t) => &t.stderr,
            CommunicateError::LimitExceeded(l) => &l.stderr,
            CommunicateError::Io(_) => &[],
        }
    }
}

impl fmt::Display for CommunicateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunicateError::Timeout(e) => e.fmt(f),
            CommunicateError::LimitExceeded(e) => e.fmt(f),
            CommunicateError::Io(e) => write!(f, "communicating with the child failed: {e}"),
        }
    }
}

/// The message is the wrapped error's (with context for `Io`), so `source()` is `None`: a
/// reporter printing the chain prints it once. The wrapped error is the variant's field.
impl Error for CommunicateError {}

impl From<io::Error> for CommunicateError {
    fn from(e: io::Error) -> CommunicateError {
        CommunicateError::Io(e)
    }
}

impl From<CommunicateError> for io::Error {
    fn from(e: CommunicateError) -> io::Error {
        match e {
            CommunicateError::Io(e) => e,
            CommunicateError::Timeout(t) => io::Error::new(io::ErrorKind::TimedOut, t),
            CommunicateError::LimitExceeded(l) => io::Error::other(l),
        }
    }
}

/// Why [`run`](crate::run) or one of its convenience functions failed.
///
/// Every variant that happens after the child started carries the output captured so far.
///
/// # Examples
///
/// ```
/// use popen::{Command, RunError, Step};
///
/// match popen::check_call(&mut Command::new("surely-no-such-program")) {
///     Err(RunError::Spawn(e)) => assert_eq!(e.step(), Step::Exec),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The child could not be started.
    Spawn(SpawnError),
    /// The timeout expired; the child was killed.
    Timeout(TimeoutExpired),
    /// A stream went over its capture cap; the child was killed.
    LimitExceeded(LimitExceeded),
    /// A check was asked for and the child ended unsuccessfully.
    Failed(CalledProcessError),
    /// Output that had to be text was not valid UTF-8.
    Decode(DecodeError),
    /// A system call failed while communicating with or waiting for the child.
    Io(io::Error),
}

impl RunError {
    /// The stdout captured before the error (empty where there is none).
    pub fn stdout(&self) -> &[u8] {
        match self {
            RunError::Timeout(t) => &t.stdout,
            RunError::LimitExceeded(l) => &l.stdout,
            RunError::Failed(c) => &c.stdout,
            _ => &[],
        }
    }

    /// The stderr captured before the error (empty where there is none).
    pub fn stderr(&self) -> &[u8] {
        match self {
            RunError::Timeout(t) => &t.stderr,
            RunError::LimitExceeded(l) => &l.stderr,
            RunError::Failed(c) => &c.stderr,
            _ => &[],
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => e.fmt(f),
            RunError::Timeout(e) => e.fmt(f),
            RunError::LimitExceeded(e) => e.fmt(f),
            RunError::Failed(e) => e.fmt(f),
            RunError::Decode(e) => e.fmt(f),
            RunError::Io(e) => write!(f, "communicating with the child failed: {e}"),
        }
    }
}

/// The message is the wrapped error's (with context for `Io`), so `source()` is `None`: a
/// reporter printing the chain prints it once. The wrapped error is the variant's field.
impl Error for RunError {}

impl From<SpawnError> for RunError {
    fn from(e: SpawnError) -> RunError {
        RunError::Spawn(e)
    }
}

impl From<CommunicateError> for RunError {
    fn from(e: CommunicateError) -> RunError {
        match e {
            CommunicateError::Timeout(t) => RunError::Timeout(t),
            CommunicateError::LimitExceeded(l) => RunError::LimitExceeded(l),
            CommunicateError::Io(e) => RunError::Io(e),
        }
    }
}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> RunError {
        RunError::Io(e)
    }
}

impl From<DecodeError> for RunError {
    fn from(e: DecodeError) -> RunError {
        RunError::Decode(e)
    }
}

impl From<CalledProcessError> for RunError {
    fn from(e: CalledProcessError) -> RunError {
        RunError::Failed(e)
    }
}

impl From<RunError> for io::Error {
    fn from(e: RunError) -> io::Error {
        match e {
            RunError::Spawn(e) => e.into(),
            RunError::Io(e) => e,
            RunError::Timeout(t) => io::Error::new(io::ErrorKind::TimedOut, t),
            RunError::Decode(d) => d.into(),
            other => io::Error::other(other),
        }
    }
}
