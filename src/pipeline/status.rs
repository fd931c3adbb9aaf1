//! What a pipeline's stages ended with, and which of them counts as the pipeline's failure.

use std::ffi::OsString;

use crate::status::ExitStatus;

/// How every stage of a pipeline ended (bash's `PIPESTATUS`), and the rules that make one
/// status out of them.
///
/// A stage *fails* when it does not exit with 0 — except that a stage other than the last one
/// killed by SIGPIPE counts as a success by default: in `producer | head` the producer is
/// meant to stop that way. [`Pipeline::strict_sigpipe`](crate::Pipeline::strict_sigpipe)
/// turns that exemption off, as bash's `pipefail` has it.
///
/// Stages can be left out of checking ([`Pipeline::check_stage`](crate::Pipeline::check_stage)):
/// [`pipefail`](Self::pipefail) then prefers a checked failure to an unchecked one, any
/// failure to a success, and the rightmost stage among equals.
///
/// # Examples
///
/// ```
/// use popen::{Command, Pipeline};
///
/// let status = Pipeline::new([Command::new("false"), Command::new("true")]).spawn()?.wait()?;
/// assert_eq!(status.last().code(), Some(0));
/// assert_eq!(status.pipefail().code(), Some(1));
/// assert!(!status.all_success());
/// assert_eq!(status.failed_stage(), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineStatus {
    statuses: Vec<ExitStatus>,
    checked: Vec<bool>,
    strict_sigpipe: bool,
}

impl PipelineStatus {
    pub(crate) fn new(
        statuses: Vec<ExitStatus>,
        checked: Vec<bool>,
        strict_sigpipe: bool,
    ) -> PipelineStatus {
        PipelineStatus {
            statuses,
            checked,
            strict_sigpipe,
        }
    }

    /// Every stage's status, stage 0 first (bash's `PIPESTATUS`).
    pub fn stages(&self) -> &[ExitStatus] {
        &self.statuses
    }

    /// The last stage's status (what a shell without `pipefail` reports).
    pub fn last(&self) -> ExitStatus {
        *self
            .statuses
            .last()
            .expect("a pipeline has at least one stage")
    }

    /// Whether stage `i` failed, under the SIGPIPE rule (see the type's documentation).
    ///
    /// # Panics
    ///
    /// If there is no stage `i`.
    pub fn stage_failed(&self, i: usize) -> bool {
        let s = self.statuses[i];
        let last = i + 1 == self.statuses.len();
        let sigpipe = s.signal() == Some(libc::SIGPIPE);
        let exempt = sigpipe && !last && !self.strict_sigpipe;
        !s.success() && !exempt
    }

    /// The status bash's `pipefail` reports: the rightmost failed stage's (a checked one before
    /// an unchecked one), else the last stage's.
    ///
    /// `(exit 1) | (exit 2) | (exit 3) | (exit 4) | (exit 0)` gives 4.
    pub fn pipefail(&self) -> ExitStatus {
        match self.deciding_stage() {
            Some(i) => self.statuses[i],
            None => self.last(),
        }
    }

    /// Whether every stage succeeded (a non-final stage killed by SIGPIPE counting as a
    /// success unless the pipeline is strict), checked or not.
    pub fn all_success(&self) -> bool {
        (0..self.statuses.len()).all(|i| !self.stage_failed(i))
    }

    /// Whether no checked stage failed: what a check ([`RunOptions::check`](crate::RunOptions::check))
    /// looks at.
    pub fn success(&self) -> bool {
        self.failed_stage().is_none()
    }

    /// The stage a check reports: the rightmost checked stage that failed.
    pub fn failed_stage(&self) -> Option<usize> {
        (0..self.statuses.len())
            .rev()
            .find(|&i| self.checked[i] && self.stage_failed(i))
    }

    /// The stage [`pipefail`](Self::pipefail) reports, if any failed.
    fn deciding_stage(&self) -> Option<usize> {
        self.failed_stage().or_else(|| {
            (0..self.statuses.len())
                .rev()
                .find(|&i| self.stage_failed(i))
        })
    }
}

/// One stage of a pipeline, as an error or an output reports it.
#[derive(Debug)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's arguments, `argv[0]` first.
    pub args: Vec<OsString>,
    /// Its process id, if it started.
    pub pid: Option<i32>,
    /// How it ended, if it started and was reaped.
    pub status: Option<ExitStatus>,
    /// What it wrote to its stderr, when that was captured.
    pub stderr: Vec<u8>,
}

impl StageReport {
    /// The stage's command line for messages: its arguments joined by spaces.
    pub fn command_line(&self) -> String {
        command_line(&self.args)
    }

    /// The last non-empty line of the captured stderr, if any.
    pub fn stderr_tail(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.stderr);
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim_end().to_string())
    }
}

pub(crate) fn command_line(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What [`Pipeline::run`](crate::Pipeline::run) returns when the pipeline ran to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineOutput {
    /// How every stage ended.
    pub status: PipelineStatus,
    /// The last stage's stdout, when captured.
    pub stdout: Vec<u8>,
    /// Every stage's stderr, stage 0 first (empty where not captured).
    pub stderr: Vec<Vec<u8>>,
    /// Every stage's arguments, stage 0 first.
    pub args: Vec<Vec<OsString>>,
    /// Bytes of stdout read and dropped by a
    /// [`CaptureLimit::Truncate`](crate::CaptureLimit::Truncate) cap.
    pub stdout_dropped: u64,
    /// Per stage, bytes of stderr read and dropped by a truncating cap.
    pub stderr_dropped: Vec<u64>,
}
