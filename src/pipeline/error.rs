//! Why a pipeline did not run to a successful end: the stage at fault, and every stage.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use super::status::{PipelineStatus, StageReport};
use crate::error::SpawnError;
use crate::text::Stream;

/// What went wrong in a pipeline; see [`PipelineError::kind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineErrorKind {
    /// Stage `stage` could not start. The stages started before it were stopped and reaped.
    Spawn {
        /// The stage that could not start, counted from 0.
        stage: usize,
        /// Why.
        error: SpawnError,
    },
    /// A check was asked for and stage `stage` failed (see [`PipelineStatus::failed_stage`]).
    Failed {
        /// The rightmost checked stage that failed.
        stage: usize,
        /// Every stage's status.
        status: PipelineStatus,
    },
    /// The deadline passed; every stage was terminated, then killed, and reaped.
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A stage's captured stream went over its
    /// [`CaptureLimit::Error`](crate::CaptureLimit::Error) cap; every stage was stopped.
    LimitExceeded {
        /// The stage whose stream went over.
        stage: usize,
        /// The stream.
        stream: Stream,
        /// The cap, in bytes.
        limit: usize,
    },
    /// Bad input, refused before any process was started, or a system call that failed while
    /// running the pipeline (the stages were then killed).
    Io(io::Error),
}

/// A pipeline failed: the [kind](Self::kind) of failure, and a report of every stage —
/// arguments, pid, status, captured stderr — plus the stdout read before the failure.
///
/// `Display` names the stage at fault: ``stage 2 of 3 `grep x` exited 2``.
///
/// # Examples
///
/// ```
/// use popen::{Command, PipelineErrorKind, RunOptions};
///
/// let err = Command::shell("echo a")
///     .pipe(Command::new("grep").arg("x"))
///     .pipe(Command::new("cat"))
/// .run(&RunOptions::new().check())
/// .unwrap_err();
/// assert!(matches!(err.kind(), PipelineErrorKind::Failed { stage: 1, .. }));
/// assert_eq!(err.to_string(), "stage 2 of 3 `grep x` exited 1");
/// ```
#[derive(Debug)]
pub struct PipelineError {
    kind: Box<PipelineErrorKind>,
    /// Every stage, stage 0 first; stages that never started have no pid.
    pub stages: Vec<StageReport>,
    /// The last stage's stdout read before the failure (when it was captured).
    pub stdout: Vec<u8>,
}

impl PipelineError {
    pub(crate) fn new(
        kind: PipelineErrorKind,
        stages: Vec<StageReport>,
        stdout: Vec<u8>,
    ) -> PipelineError {
        PipelineError {
            kind: Box::new(kind),
            stages,
            stdout,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &PipelineErrorKind {
        &self.kind
    }

    /// The stage at fault, where one is (spawn failure, failed check, exceeded cap).
    pub fn stage(&self) -> Option<usize> {
        match *self.kind {
            PipelineErrorKind::Spawn { stage, .. }
            | PipelineErrorKind::Failed { stage, .. }
            | PipelineErrorKind::LimitExceeded { stage, .. } => Some(stage),
            PipelineErrorKind::Timeout { .. } | PipelineErrorKind::Io(_) => None,
        }
    }

    /// The whole pipeline's command line, stages joined by ` | `.
    pub fn command_line(&self) -> String {
        self.stages
            .iter()
            .map(StageReport::command_line)
            .collect::<Vec<_>>()
            .join(" | ")
    }

    fn stage_label(&self, i: usize) -> String {
        format!(
            "stage {} of {} `{}`",
            i + 1,
            self.stages.len(),
            self.stages
                .get(i)
                .map(StageReport::command_line)
                .unwrap_or_default()
        )
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            PipelineErrorKind::Spawn { stage, error } => {
                write!(f, "{} could not start: {error}", self.stage_label(*stage))?;
            }
            PipelineErrorKind::Failed { stage, status } => {
                let s = status.stages()[*stage];
                write!(f, "{} ", self.stage_label(*stage))?;
                match (s.code(), s.signal()) {
                    (Some(c), _) => write!(f, "exited {c}")?,
                    (None, Some(sig)) => write!(f, "was killed by signal {sig}")?,
                    _ => write!(f, "ended with {s}")?,
                }
                if let Some(tail) = self.stages.get(*stage).and_then(StageReport::stderr_tail) {
                    write!(f, ": {tail}")?;
                }
            }
            PipelineErrorKind::Timeout { timeout } => {
                write!(
                    f,
                    "pipeline `{}` timed out after {timeout:?}",
                    self.command_line()
                )?;
            }
            PipelineErrorKind::LimitExceeded {
                stage,
                stream,
                limit,
            } => write!(
                f,
                "{} wrote more than {limit} bytes to {stream}",
                self.stage_label(*stage)
            )?,
            PipelineErrorKind::Io(e) => write!(f, "pipeline `{}`: {e}", self.command_line())?,
        }
        Ok(())
    }
}

impl Error for PipelineError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &*self.kind {
            PipelineErrorKind::Spawn { error, .. } => Some(error),
            PipelineErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PipelineError> for io::Error {
    fn from(e: PipelineError) -> io::Error {
        let kind = match &*e.kind {
            PipelineErrorKind::Spawn { error, .. } => error.kind(),
            PipelineErrorKind::Timeout { .. } => io::ErrorKind::TimedOut,
            PipelineErrorKind::Io(io) => io.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
