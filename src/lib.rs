//! # popen
//!
//! Start and control child processes with every option of CPython's `subprocess.Popen` on
//! POSIX — redirections, `cwd`, environment, `close_fds`/`pass_fds`, `restore_signals`, sessions
//! and process groups, user and groups, umask, pipe size, pre-exec hooks — plus resource limits
//! and a parent-death signal, through the cheapest spawn path the options allow:
//!
//! 1. on Linux, a vfork-style child (`clone(CLONE_VM | CLONE_VFORK)`) for every option set
//!    without a user hook, credentials included;
//! 2. elsewhere, or when asked for, `posix_spawn` (with glibc's `addchdir_np`/`addclosefrom_np`,
//!    so `cwd` and `close_fds` stay on it);
//! 3. `fork`, only for a pre-exec hook.
//!
//! Failures in the child come back as a [`SpawnError`] that names the step, the errno and the
//! path. The [`Popen`] handle waits on a pidfd (no busy polling), signals through it (no
//! recycled pid is ever hit), and never leaves a zombie.
//!
//! On top of the handle: [`Popen::communicate`] (deadlock-free, resumable after a timeout),
//! [`Popen::lines`], [`Popen::output_lines`] (stdout and stderr lines tagged by stream), and
//! [`run`] with [`call`], [`check_call`], [`check_output`], [`getoutput`], [`getstatusoutput`],
//! whose timeouts always return, even when a grandchild holds the pipes. Below it,
//! [`posix_spawn`] is a safe `posix_spawn` layer of its own.
//!
//! On top of those: [`Pipeline`]s (`a | b | c`, [`Command::pipe`]) with every stage's status
//! ([`PipelineStatus`]: `last`, `pipefail`, `all_success`), one deadline and one poll loop for
//! the whole pipeline; and [`wait_any`], [`wait_all`] and [`WaitSet`] to wait on many children
//! (and the caller's own descriptors) at once, over pidfds.
//!
//! With the `tokio` feature, `popen::tokio` puts the same engine and handle on a tokio runtime:
//! waits on the pidfd through the reactor, async pipes, cancel-safe `communicate` and `run`.
//! `ARCHITECTURE.md` in the repository describes the layers these sit in.
//!
//! ```
//! use popen::{Command, Stdio};
//! use std::io::Read;
//! use std::time::Duration;
//!
//! let mut child = Command::new("sh")
//!     .args(["-c", "echo hello; exit 7"])
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let mut out = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut out)?;
//! let status = child.wait_timeout(Duration::from_secs(10))?.expect("exited");
//! assert_eq!((out.as_str(), status.code()), ("hello\n", Some(7)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg(unix)]

mod audit;
mod capture;
mod command;
mod communicate;
mod communicator;
mod error;
mod exec;
mod lines;
mod outcome;
mod output_lines;
mod pipeline;
mod popen;
pub mod posix_spawn;
mod reaper;
pub mod rlimit;
mod run;
mod spawn;
mod status;
mod stdio;
mod sys;
pub mod testing;
mod text;
#[cfg(feature = "tokio")]
pub mod tokio;
mod wait_set;

pub use audit::{add_audit_hook, AuditEvent};
pub use capture::{CaptureLimit, CaptureOptions};
pub use command::Command;
pub use communicate::DEFAULT_GRACE_PERIOD;
pub use communicator::{ChildPipes, Communicator, OutputSpace, PipeEvent};
pub use error::{SpawnError, Step};
pub use lines::Lines;
pub use outcome::{
    CalledProcessError, CommunicateError, LimitExceeded, Output, RunError, TimeoutExpired,
};
pub use output_lines::{Line, OutputLines, StderrLines};
pub use pipeline::{
    Pipeline, PipelineChild, PipelineError, PipelineErrorKind, PipelineOutput, PipelineStatus,
    StageCommand, StageReport,
};
pub use popen::Popen;
pub use rlimit::Resource;
pub use run::{
    call, check_call, check_output, getoutput, getstatusoutput, run, CompletedProcess, RunOptions,
};
pub use spawn::{PathChoice, SignalMask, SpawnPath};
pub use status::ExitStatus;
pub use stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};
pub use sys::signal::SigSet;
pub use text::{translate_newlines, DecodeError, Stream, Text};
pub use wait_set::{wait_all, wait_any, Waitable};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use wait_set::{Interest, Ready, Token, WaitSet};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
