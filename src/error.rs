//! Typed spawn errors: which step failed, the errno, and the path involved.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What an exec failing with `ENOENT` on an existing file says about its interpreter.
#[derive(Debug)]
pub(crate) struct MissingInterpreter {
    /// The interpreter named on the script's `#!` line; `None` when the file is not a script
    /// (a binary whose dynamic loader is missing) or the line cannot be read.
    pub(crate) interpreter: Option<PathBuf>,
}

/// The step of starting a child that failed.
///
/// Steps up to and including [`Step::Setuid`] happen before any user code runs in the child;
/// CPython marks failures of those steps with `noexec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Checking the command before anything is created (a NUL byte, an empty argv, …).
    Prepare,
    /// An audit hook refused the spawn.
    Audit,
    /// Creating a pipe or opening the null device in the parent.
    Pipe,
    /// Setting the pipe buffer size (`F_SETPIPE_SZ`) in the parent.
    PipeSize,
    /// Opening, in the parent, a file a standard stream is redirected to or from
    /// ([`Stdio::read_from`](crate::Stdio::read_from) and its kin); the error names the path.
    Open,
    /// Creating the process (`posix_spawn`, `clone`, `fork`).
    Spawn,
    /// Clearing close-on-exec on a passed descriptor, or closing one named by
    /// [`Command::close_in_child`](crate::Command::close_in_child).
    PassFds,
    /// Redirecting a standard stream (`dup2`).
    Dup2,
    /// Changing directory.
    Chdir,
    /// Setting the umask.
    Umask,
    /// Resetting signal dispositions or setting the signal mask.
    Signals,
    /// Starting a new session (`setsid`).
    Setsid,
    /// Joining or creating a process group (`setpgid`).
    Setpgid,
    /// Setting a resource limit.
    Rlimit,
    /// Setting the supplementary groups.
    Setgroups,
    /// Setting the group id.
    Setgid,
    /// Setting the user id.
    Setuid,
    /// Setting the parent-death signal.
    ParentDeathSignal,
    /// A pre-exec hook returned an error.
    PreExecHook,
    /// Closing inherited descriptors.
    CloseFds,
    /// Executing the program.
    Exec,
}

impl Step {
    /// A short name for the step, as used in messages (`"exec"`, `"chdir"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Audit => "audit",
            Step::Pipe => "pipe",
            Step::PipeSize => "set pipe size",
            Step::Open => "open",
            Step::Spawn => "spawn",
            Step::PassFds => "pass fds",
            Step::Dup2 => "dup2",
            Step::Chdir => "chdir",
            Step::Umask => "umask",
            Step::Signals => "reset signals",
            Step::Setsid => "setsid",
            Step::Setpgid => "setpgid",
            Step::Rlimit => "setrlimit",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::ParentDeathSignal => "set parent-death signal",
            Step::PreExecHook => "run pre-exec hook",
            Step::CloseFds => "close fds",
            Step::Exec => "exec",
        }
    }

    /// Whether the step runs in the child before any user code (CPython's `noexec` marker).
    pub fn is_before_user_code(self) -> bool {
        !matches!(self, Step::PreExecHook | Step::CloseFds | Step::Exec)
    }

    pub(crate) fn to_code(self) -> u32 {
        ALL_STEPS.iter().position(|&s| s == self).unwrap_or(0) as u32
    }

    pub(crate) fn from_code(code: u32) -> Option<Step> {
        ALL_STEPS.get(code as usize).copied()
    }
}

const ALL_STEPS: [Step; 21] = [
    Step::Prepare,
    Step::Audit,
    Step::Pipe,
    Step::PipeSize,
    Step::Open,
    Step::Spawn,
    Step::PassFds,
    Step::Dup2,
    Step::Chdir,
    Step::Umask,
    Step::Signals,
    Step::Setsid,
    Step::Setpgid,
    Step::Rlimit,
    Step::Setgroups,
    Step::Setgid,
    Step::Setuid,
    Step::ParentDeathSignal,
    Step::PreExecHook,
    Step::CloseFds,
    Step::Exec,
];

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A child could not be started.
///
/// It names the [`Step`] that failed, keeps the OS error (so [`kind`](Self::kind) and
/// [`raw_os_error`](Self::raw_os_error) match the errno), and names the path involved: the
/// program for [`Step::Exec`], the directory for [`Step::Chdir`]. When this error is returned,
/// no child is left running and every descriptor made for it is closed.
///
/// It converts into [`io::Error`] with the same kind and message, so `?` works in functions
/// that return `io::Result`.
///
/// Like every error of this crate, its `Display` is the whole message, including the message
/// of the OS error it wraps, and [`source`](Error::source) returns `None`, so that a
/// reporter printing the `source()` chain prints each message once (the Rust API guidelines:
/// a wrapped error is either displayed or returned as the source, never both). The OS error
/// is [`io_error`](Self::io_error).
///
/// # Examples
///
/// ```
/// use popen::{Command, Step};
///
/// let err = Command::new("surely-no-such-program").spawn().unwrap_err();
/// assert_eq!(err.step(), Step::Exec);
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert_eq!(
///     err.to_string(),
///     r#"could not exec "surely-no-such-program": No such file or directory (os error 2)"#
/// );
/// ```
#[derive(Debug)]
pub struct SpawnError {
    step: Step,
    error: io::Error,
    path: Option<PathBuf>,
    fd: Option<i32>,
    pid: Option<i32>,
    /// Set when an exec failed with `ENOENT` although the file exists.
    missing_interpreter: Option<MissingInterpreter>,
}

impl SpawnError {
    pub(crate) fn new(step: Step, error: io::Error) -> SpawnError {
        SpawnError {
            step,
            error,
            path: None,
            fd: None,
            pid: None,
            missing_interpreter: None,
        }
    }

    pub(crate) fn with_missing_interpreter(mut self, missing: MissingInterpreter) -> SpawnError {
        self.missing_interpreter = Some(missing);
        self
    }

    pub(crate) fn with_fd(mut self, fd: i32) -> SpawnError {
        self.fd = Some(fd);
        self
    }

    pub(crate) fn with_path(mut self, path: impl Into<PathBuf>) -> SpawnError {
        self.path = Some(path.into());
        self
    }

    pub(crate) fn with_pid(mut self, pid: i32) -> SpawnError {
        self.pid = Some(pid);
        self
    }

    pub(crate) fn from_errno(step: Step, errno: i32) -> SpawnError {
        let error = if errno == 0 {
            io::Error::other(format!("{} failed", step.name()))
        } else {
            io::Error::from_raw_os_error(errno)
        };
        SpawnError::new(step, error)
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> SpawnError {
        SpawnError::new(
            Step::Prepare,
            io::Error::new(io::ErrorKind::InvalidInput, msg.into()),
        )
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The error kind, matching the errno where there is one.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    /// The errno, where the failure came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.error.raw_os_error()
    }

    /// The path involved: the program for an exec failure, the directory for a chdir failure,
    /// the file for an [`Open`](Step::Open) failure.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The descriptor involved: for [`Step::PassFds`] and [`Step::Dup2`] refused before the
    /// spawn, the passed or redirected descriptor that is not open in this process.
    pub fn fd(&self) -> Option<i32> {
        self.fd
    }

    /// For an exec that failed with `ENOENT` (`NotFound`) although the program file exists: the
    /// interpreter named on its `#!` line, which is then what is missing. The message says so
    /// too, and also for a file that is not a script (a binary whose dynamic loader is
    /// missing), for which this is `None`.
    pub fn missing_interpreter(&self) -> Option<&Path> {
        self.missing_interpreter
            .as_ref()
            .and_then(|m| m.interpreter.as_deref())
    }

    /// The pid of the child that failed, left unreaped for the caller to wait for; only with
    /// [`testing::keep_failed_child`](crate::testing::keep_failed_child).
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.step, &self.path, self.fd) {
            (Step::Prepare, _, _) => write!(f, "invalid command: {}", self.error),
            (Step::Audit, _, _) => write!(f, "spawn refused by an audit hook: {}", self.error),
            (Step::Exec, Some(p), _) => {
                write!(f, "could not exec {:?}: {}", p, self.error)?;
                match &self.missing_interpreter {
                    Some(MissingInterpreter {
                        interpreter: Some(i),
                    }) => write!(
                        f,
                        "; the file exists: the interpreter named on its first line, {i:?}, \
                         may be missing"
                    ),
                    Some(MissingInterpreter { interpreter: None }) => write!(
                        f,
                        "; the file exists: the interpreter it needs (for a binary, its \
                         dynamic loader) may be missing"
                    ),
                    None => Ok(()),
                }
            }
            (Step::Chdir, Some(p), _) => write!(f, "could not chdir to {:?}: {}", p, self.error),
            (Step::Open, Some(p), _) => write!(f, "could not open {:?}: {}", p, self.error),
            (step, Some(p), _) => write!(f, "could not {step} for {:?}: {}", p, self.error),
            (step, None, Some(fd)) => {
                write!(f, "could not {step} (descriptor {fd}): {}", self.error)
            }
            (step, None, None) => write!(f, "could not {step}: {}", self.error),
        }
    }
}

/// The message already includes the OS error's, so `source()` is `None`: an error reporter
/// that prints the whole chain (anyhow, eyre) prints it once. The OS error itself is
/// [`io_error`](SpawnError::io_error).
impl Error for SpawnError {}

impl From<SpawnError> for io::Error {
    fn from(e: SpawnError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}
