//! The exit status of a child.

use std::fmt;

/// How a child ended: an exit code or a signal.
///
/// # Examples
///
/// ```
/// use popen::Command;
///
/// let status = Command::shell("exit 3").spawn()?.wait()?;
/// assert_eq!(status.code(), Some(3));
/// assert!(!status.success());
/// assert_eq!(status.returncode(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    raw: libc::c_int,
}

impl ExitStatus {
    /// From a raw wait status as `waitpid` returns it.
    pub fn from_raw(raw: i32) -> ExitStatus {
        ExitStatus { raw }
    }

    /// The raw wait status.
    pub fn into_raw(self) -> i32 {
        self.raw
    }

    /// Whether the child exited with code 0.
    pub fn success(self) -> bool {
        self.code() == Some(0)
    }

    /// The exit code, if the child exited normally.
    pub fn code(self) -> Option<i32> {
        libc::WIFEXITED(self.raw).then(|| libc::WEXITSTATUS(self.raw))
    }

    /// The signal that killed the child, if one did.
    pub fn signal(self) -> Option<i32> {
        libc::WIFSIGNALED(self.raw).then(|| libc::WTERMSIG(self.raw))
    }

    /// Whether the child dumped core.
    pub fn core_dumped(self) -> bool {
        libc::WIFSIGNALED(self.raw) && libc::WCOREDUMP(self.raw)
    }

    /// CPython's `returncode`: the exit code, or minus the signal number.
    pub fn returncode(self) -> i32 {
        match (self.code(), self.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => -s,
            (None, None) => self.raw,
        }
    }
}

impl From<ExitStatus> for std::process::ExitStatus {
    fn from(s: ExitStatus) -> std::process::ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(s.raw)
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({self})")
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code(), self.signal()) {
            (Some(c), _) => write!(f, "exit status: {c}"),
            (None, Some(s)) if self.core_dumped() => write!(f, "signal: {s} (core dumped)"),
            (None, Some(s)) => write!(f, "signal: {s}"),
            (None, None) => write!(f, "raw wait status: {}", self.raw),
        }
    }
}
