//! Starting a child: prepare in the parent, pick a path, start, collect the child's report.
//!
//! Layers: `prepare` (the only allocation site) → `strategy` (the path choice) → one back-end
//! (`posix`, `clone_vfork`, `fork`) → `child` (the code between clone/fork and exec) →
//! `report` (how a child that could not exec says why).

pub(crate) mod child;
mod clone_vfork;
mod fork;
mod in_place;
mod posix;
pub(crate) mod posix_layer;
pub(crate) mod prepare;
pub(crate) mod report;
mod request;
pub(crate) mod strategy;

pub(crate) use in_place::exec;
pub use request::SignalMask;
pub(crate) use request::{PassFd, Request};
pub use strategy::{PathChoice, SpawnPath};

use crate::audit;
use crate::error::{SpawnError, Step};
use crate::exec::interpreter;
use crate::reaper;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sys;
use child::ChildPlan;
use prepare::{FdPlan, Prepared};

/// A started child: what the engine hands the handle.
pub(crate) struct Started {
    pub(crate) pid: libc::pid_t,
    /// Made with the child (`CLONE_PIDFD`) or opened right after it started; `None` where the
    /// kernel has no pidfds or the descriptor table is full.
    pub(crate) pidfd: Option<std::os::fd::OwnedFd>,
    /// Seen gone before its pidfd could be opened: reaped elsewhere, its status lost.
    pub(crate) reaped_elsewhere: bool,
}

impl Started {
    /// A child that runs, with its pidfd if it has one yet. Without one it is opened now. On
    /// the posix_spawn path the child cannot have been reaped (hence its pid recycled) yet:
    /// that path is not taken while the kernel reaps children itself (SIGCHLD ignored or
    /// `SA_NOCLDWAIT`). On the fork path (`checked`) that is so only for a child with user
    /// hooks, so the pidfd is checked to name a child of ours (see
    /// `sys::pidfd::fork_with_pidfd`). A failure (`EMFILE`) leaves it to the handle, which
    /// retries.
    pub(crate) fn with_pidfd(self, checked: bool) -> Started {
        if self.pidfd.is_some() {
            return self;
        }
        let pidfd = if checked {
            sys::pidfd::pidfd_open_child(self.pid)
        } else {
            sys::pidfd::pidfd_open(self.pid)
        };
        match pidfd {
            Ok(pidfd) => Started { pidfd, ..self },
            Err(e) => Started {
                reaped_elsewhere: checked && e.raw_os_error() == Some(libc::ESRCH),
                ..self
            },
        }
    }

    /// A child just started, with its pidfd if it was made with it.
    pub(crate) fn new(pid: libc::pid_t, pidfd: Option<std::os::fd::OwnedFd>) -> Started {
        Started {
            pid,
            pidfd,
            reaped_elsewhere: false,
        }
    }
}

/// What the engine returns for a child it started: the process, the path that started it, the
/// group it leads, and the parent's ends of its piped streams.
pub(crate) struct Child {
    pub(crate) started: Started,
    pub(crate) path: SpawnPath,
    pub(crate) group: Option<libc::pid_t>,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

/// Checks and prepares `req` (see `prepare`), then asks the audit hooks about it.
pub(crate) fn prepare_audited(req: &Request) -> Result<Prepared, SpawnError> {
    let prep = prepare::prepare(req)?;
    if audit::enabled() {
        audit::check(
            prep.program_path(),
            &req.argv,
            prep.cwd_path(),
            (!prep.env_inherited).then_some(&prep.envp),
        )?;
    }
    Ok(prep)
}

/// Starts the child `req` describes: checks and prepares it, asks the audit hooks, picks the
/// path, starts the child and collects its report. Nothing is left behind on an error.
pub(crate) fn spawn(req: &mut Request) -> Result<Child, SpawnError> {
    // CPython's `_cleanup()`: collect children whose handles were dropped before they exited.
    reaper::reap_orphans();
    let prep = prepare_audited(req)?;
    let choice = strategy::choose(req);
    if let Some(why) = choice.impossible() {
        return Err(SpawnError::new(
            Step::Prepare,
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("the {} path was forced, but {why}", choice.path()),
            ),
        ));
    }
    let fds = prepare::plan_fds(req)?;
    let path = pinned_path(req, choice.path());
    let started = match path {
        SpawnPath::PosixSpawn => posix::spawn(req, &prep, &fds)?,
        SpawnPath::CloneVfork => clone_vfork_spawn(req, &prep, &fds)?,
        SpawnPath::Fork => fork::spawn(req, &prep, &fds)?,
    }
    .with_pidfd(path == SpawnPath::Fork);
    let group = led_group(req.new_session, req.process_group, started.pid);
    let FdPlan {
        keep_alive,
        stdin,
        stdout,
        stderr,
        ..
    } = fds;
    // The child has its copies now: close ours, so the child sees EOF when we drop our ends.
    drop(keep_alive);
    Ok(Child {
        started,
        path,
        group,
        stdin,
        stdout,
        stderr,
    })
}

/// The path to take instead of `posix_spawn` while the kernel reaps children itself (SIGCHLD
/// ignored or `SA_NOCLDWAIT`): the C library's `posix_spawn` gives no pidfd, and a child that
/// exits at once may be reaped, and its pid recycled, before one could be opened. The
/// vfork-style child honours every option `posix_spawn` does and gets its pidfd with the child;
/// where it cannot run, the fork path does the same. The check costs one system call, and only
/// on this path: the automatic choice on Linux is the vfork-style child.
fn pinned_path(req: &Request, path: SpawnPath) -> SpawnPath {
    if path != SpawnPath::PosixSpawn
        || sys::pidfd::known_unsupported()
        || !sys::wait::children_reaped_by_kernel()
    {
        return path;
    }
    if strategy::vfork_possible(req) {
        SpawnPath::CloneVfork
    } else {
        SpawnPath::Fork
    }
}

/// The vfork-style spawn, with the pidfd made with the child. With a full descriptor table
/// (`EMFILE`, `ENFILE`) that fails before any child exists: the child is started without one
/// then (the handle opens it when it can), as the other paths do — except while the kernel
/// reaps children itself, where a child without a pidfd could not be told from a process that
/// reuses its pid: the spawn fails then.
fn clone_vfork_spawn(req: &Request, prep: &Prepared, fds: &FdPlan) -> Result<Started, SpawnError> {
    match clone_vfork::spawn(req, prep, fds, true) {
        Err(e)
            if e.step() == Step::Spawn
                && matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                && !sys::wait::children_reaped_by_kernel() =>
        {
            clone_vfork::spawn(req, prep, fds, false)
        }
        other => other,
    }
}

/// The process group the child leads (its id is the child's pid), if it made one: a new session
/// or `process_group(0)`. A group the child merely joined is not recorded: it is not the
/// child's, and may be the caller's own.
pub(crate) fn led_group(
    new_session: bool,
    process_group: Option<libc::pid_t>,
    pid: libc::pid_t,
) -> Option<libc::pid_t> {
    match (new_session, process_group) {
        (true, _) => Some(pid),
        (false, Some(g)) if g == 0 || g == pid => Some(pid),
        _ => None,
    }
}

/// The plan a vfork-style or forked child follows.
fn child_plan<'a>(
    req: &'a Request,
    prep: &'a Prepared,
    fds: &'a FdPlan,
    report: report::Report<'a>,
    mask: Option<&'a sys::signal::SigSet>,
    reset_handlers: bool,
) -> ChildPlan<'a> {
    ChildPlan {
        argv: prep.argv.as_ptr(),
        envp: prep.envp.as_ptr(),
        env_after_hooks: prep.env_inherited && !req.hooks.is_empty(),
        candidates: &prep.candidates,
        cwd: prep.cwd.as_ref(),
        fds: fds.sources.map(|s| s.unwrap_or(-1)),
        extra_fds: &fds.extra,
        pass_fds: &prep.pass_fds,
        keep_fds: &prep.keep_fds,
        close: &req.close_in_child,
        close_fds: req.close_fds,
        report,
        umask: req.umask.map(|m| m as libc::mode_t),
        reset_handlers,
        restore_signals: req.restore_signals,
        mask,
        setsid: req.new_session,
        pgid: req.process_group,
        rlimits: &prep.rlimits,
        groups: prep.groups.as_deref(),
        gid: req.gid,
        uid: req.uid,
        pdeathsig: req
            .parent_death_signal
            .map(|s| (s, std::process::id() as libc::pid_t)),
        in_place: false,
        unshare_fds_below: None,
    }
}

/// After a vfork-style or forked child: its `report` (`Ok(None)`: it exec'd); on failure reap
/// it (unless the command keeps failed children) and build the error.
fn finish(
    req: &Request,
    prep: &Prepared,
    report: std::io::Result<Option<(Step, i32)>>,
    pid: libc::pid_t,
    pidfd: Option<std::os::fd::OwnedFd>,
) -> Result<Started, SpawnError> {
    match report {
        Ok(None) => Ok(Started::new(pid, pidfd)),
        Ok(Some((step, errno))) if req.keep_failed_child => {
            Err(step_error(prep, step, errno).with_pid(pid))
        }
        Ok(Some((step, errno))) => {
            reap_failed(pid, pidfd);
            Err(step_error(prep, step, errno))
        }
        Err(e) => {
            reap_failed(pid, pidfd);
            Err(SpawnError::new(Step::Spawn, e))
        }
    }
}

/// Reaps a child that could not exec: through its pidfd where there is one, as the kernel may
/// have reaped it already (SIGCHLD ignored) and its pid be another's.
fn reap_failed(pid: libc::pid_t, pidfd: Option<std::os::fd::OwnedFd>) {
    match pidfd {
        Some(fd) => {
            let _ = sys::wait::waitid_pidfd(std::os::fd::AsFd::as_fd(&fd), 0);
        }
        None => {
            let _ = sys::wait::waitpid_blocking(pid);
        }
    }
}

/// The error for `step` failing with `errno`, naming the path involved.
fn step_error(prep: &Prepared, step: Step, errno: i32) -> SpawnError {
    let err = SpawnError::from_errno(step, errno);
    match step {
        Step::Exec if errno == libc::ENOENT => {
            let err = err.with_path(prep.program_path());
            // Judged here, in the parent, once the child has reported.
            match interpreter::explain_enoent(&prep.candidates, prep.cwd_path()) {
                Some(missing) => err.with_missing_interpreter(missing),
                None => err,
            }
        }
        Step::Exec => err.with_path(prep.program_path()),
        Step::Chdir => match prep.cwd_path() {
            Some(cwd) => err.with_path(cwd),
            None => err,
        },
        _ => err,
    }
}
