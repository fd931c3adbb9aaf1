//! The exit status of a child.

use std::fmt;

/// How a child ended: an exit code or a signal — or, when its status could not be had,
/// [unavailable](Self::is_unavailable).
///
/// A status is unavailable when the child was reaped by someone else: SIGCHLD set to `SIG_IGN`
/// or with `SA_NOCLDWAIT` (the kernel then reaps every child itself), or a `waitpid(-1)`
/// elsewhere in the process. Such a status is no success and has neither a code nor a signal;
/// it is never reported as exit code 0.
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

/// The raw value of an unavailable status: no wait status has bits above the low 16.
const UNAVAILABLE: libc::c_int = -1;

impl ExitStatus {
    /// From a raw wait status as `waitpid` returns it (`-1`: [unavailable](Self::unavailable)).
    pub fn from_raw(raw: i32) -> ExitStatus {
        ExitStatus { raw }
    }

    /// The status of a child that was reaped by someone else, so that its real status is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::ExitStatus;
    ///
    /// let lost = ExitStatus::unavailable();
    /// assert!(lost.is_unavailable() && !lost.success());
    /// assert_eq!((lost.code(), lost.signal()), (None, None));
    /// assert_eq!(lost.to_string(), "exit status unavailable (the child was reaped elsewhere)");
    /// ```
    pub fn unavailable() -> ExitStatus {
        ExitStatus { raw: UNAVAILABLE }
    }

    /// Whether the status could not be had: the child was reaped elsewhere (SIGCHLD ignored or
    /// `SA_NOCLDWAIT`, or another `waitpid` in the process).
    pub fn is_unavailable(self) -> bool {
        self.raw == UNAVAILABLE
    }

    /// The raw wait status; `-1` for an [unavailable](Self::is_unavailable) one.
    pub fn into_raw(self) -> i32 {
        self.raw
    }

    /// Whether the child exited with code 0 (`false` for an unavailable status).
    pub fn success(self) -> bool {
        self.code() == Some(0)
    }

    /// The exit code, if the child exited normally.
    pub fn code(self) -> Option<i32> {
        (!self.is_unavailable() && libc::WIFEXITED(self.raw)).then(|| libc::WEXITSTATUS(self.raw))
    }

    /// The signal that killed the child, if one did.
    pub fn signal(self) -> Option<i32> {
        (!self.is_unavailable() && libc::WIFSIGNALED(self.raw)).then(|| libc::WTERMSIG(self.raw))
    }

    /// Whether the child dumped core.
    pub fn core_dumped(self) -> bool {
        self.signal().is_some() && libc::WCOREDUMP(self.raw)
    }

    /// CPython's `returncode`: the exit code, or minus the signal number.
    ///
    /// An [unavailable](Self::is_unavailable) status gives 0, as CPython's `Popen` reports a
    /// child reaped elsewhere; test [`is_unavailable`](Self::is_unavailable) (or
    /// [`success`](Self::success), which is `false`) to tell it from a real exit code 0.
    pub fn returncode(self) -> i32 {
        match (self.code(), self.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => -s,
            (None, None) if self.is_unavailable() => 0,
            (None, None) => self.raw,
        }
    }
}

/// An [unavailable](ExitStatus::is_unavailable) status becomes std's status for the raw value
/// `-1`, which has neither a code nor a signal and is no success.
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
        if self.is_unavailable() {
            return f.write_str("exit status unavailable (the child was reaped elsewhere)");
        }
        match (self.code(), self.signal()) {
            (Some(c), _) => write!(f, "exit status: {c}"),
            (None, Some(s)) if self.core_dumped() => write!(f, "signal: {s} (core dumped)"),
            (None, Some(s)) => write!(f, "signal: {s}"),
            (None, None) => write!(f, "raw wait status: {}", self.raw),
        }
    }
}
