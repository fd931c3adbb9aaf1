//! The engine's request: a plain, owned description of the child to start. The builder
//! ([`Command`](crate::Command)) fills it; the engine reads nothing else.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::SpawnPath;
use crate::rlimit::Resource;
use crate::stdio::Stdio;
use crate::sys::signal::SigSet;

/// The signal mask the child starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignalMask {
    /// No signal blocked (the default): a mask blocked in some parent thread does not leak into
    /// the child.
    #[default]
    Empty,
    /// The mask of the thread that spawns, as `fork` would leave it (CPython's `fork_exec`).
    Inherit,
    /// Exactly this set.
    Set(SigSet),
}

pub(crate) type Hook = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

pub(crate) enum PassFd {
    Owned(OwnedFd),
    Raw(RawFd),
}

impl PassFd {
    pub(crate) fn raw(&self) -> RawFd {
        match self {
            PassFd::Owned(fd) => fd.as_raw_fd(),
            PassFd::Raw(fd) => *fd,
        }
    }
}

/// Every option of a spawn, as the caller gave it. Checked and turned into C strings and a
/// descriptor plan by `prepare`, before any process exists.
pub(crate) struct Request {
    pub(crate) argv: Vec<OsString>,
    pub(crate) executable: Option<OsString>,
    pub(crate) executable_list: Option<Vec<OsString>>,
    pub(crate) cwd: Option<OsString>,
    pub(crate) env_clear: bool,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    /// Set by `Command::environ`: the whole environment, entry by entry.
    pub(crate) environ: Option<Vec<OsString>>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) close_fds: bool,
    pub(crate) pass_fds: Vec<PassFd>,
    /// Descriptors to give the child at a chosen number: (source, number in the child).
    pub(crate) pass_fds_as: Vec<(PassFd, RawFd)>,
    /// Descriptors the child closes before its standard streams are set up.
    pub(crate) close_in_child: Vec<RawFd>,
    pub(crate) restore_signals: bool,
    pub(crate) signal_mask: SignalMask,
    pub(crate) new_session: bool,
    pub(crate) process_group: Option<i32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) extra_groups: Option<Vec<u32>>,
    pub(crate) keep_supplementary_groups: bool,
    pub(crate) umask: Option<u32>,
    pub(crate) pipe_size: Option<usize>,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    pub(crate) parent_death_signal: Option<i32>,
    pub(crate) spawn_path: Option<SpawnPath>,
    pub(crate) keep_failed_child: bool,
}

impl Request {
    /// A request to run `argv` with every option at its default: `close_fds` and
    /// `restore_signals` on (as in CPython), the streams inherited.
    pub(crate) fn new(argv: Vec<OsString>) -> Request {
        Request {
            argv,
            executable: None,
            executable_list: None,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            environ: None,
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            close_fds: true,
            pass_fds: Vec::new(),
            pass_fds_as: Vec::new(),
            close_in_child: Vec::new(),
            restore_signals: true,
            signal_mask: SignalMask::Empty,
            new_session: false,
            process_group: None,
            uid: None,
            gid: None,
            extra_groups: None,
            keep_supplementary_groups: false,
            umask: None,
            pipe_size: None,
            hooks: Vec::new(),
            rlimits: Vec::new(),
            parent_death_signal: None,
            spawn_path: None,
            keep_failed_child: false,
        }
    }
}
