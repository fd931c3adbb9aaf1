//! Starting a child: prepare in the parent, pick a path, start, collect the child's report.
//!
//! Layers: `prepare` (the only allocation site) → `strategy` (the path choice) → one back-end
//! (`posix`, `clone_vfork`, `fork`) → `child` (the code between clone/fork and exec) →
//! `report` (how a child that could not exec says why).

pub(crate) mod child;
mod clone_vfork;
mod fork;
mod posix;
pub(crate) mod prepare;
pub(crate) mod report;
pub(crate) mod strategy;

pub use strategy::{default_spawn_path, set_default_spawn_path, PathChoice, SpawnPath};

use crate::audit;
use crate::command::Command;
use crate::error::{SpawnError, Step};
use crate::popen::Popen;
use crate::reaper;
use crate::sys;
use child::ChildPlan;
use prepare::{FdPlan, Prepared};

/// A started child, before it is wrapped in a [`Popen`].
pub(crate) struct Started {
    pub(crate) pid: libc::pid_t,
}

pub(crate) fn spawn(cmd: &mut Command) -> Result<Popen, SpawnError> {
    // CPython's `_cleanup()`: collect children whose handles were dropped before they exited.
    reaper::reap_orphans();
    let prep = prepare::prepare(cmd)?;
    audit::check(cmd, &prep)?;
    let choice = strategy::choose(cmd);
    if let Some(why) = choice.impossible() {
        return Err(SpawnError::new(
            Step::Prepare,
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("the {} path was forced, but {why}", choice.path()),
            ),
        ));
    }
    let fds = prepare::plan_fds(cmd)?;
    let started = match choice.path() {
        SpawnPath::PosixSpawn => posix::spawn(cmd, &prep, &fds)?,
        SpawnPath::CloneVfork => clone_vfork::spawn(cmd, &prep, &fds)?,
        SpawnPath::Fork => fork::spawn(cmd, &prep, &fds)?,
    };
    let group = match (cmd.new_session, cmd.process_group) {
        (true, _) | (false, Some(0)) => Some(started.pid),
        (false, Some(g)) => Some(g),
        (false, None) => None,
    };
    let FdPlan {
        keep_alive,
        stdin,
        stdout,
        stderr,
        ..
    } = fds;
    // The child has its copies now: close ours, so the child sees EOF when we drop our ends.
    drop(keep_alive);
    let mut popen = Popen::from_parts(started, choice.path(), group, stdin, stdout, stderr);
    popen.set_args(cmd.argv.clone());
    Ok(popen)
}

/// The plan a vfork-style or forked child follows.
fn child_plan<'a>(
    cmd: &'a Command,
    prep: &'a Prepared,
    fds: &FdPlan,
    report: report::Report<'a>,
    mask: Option<&'a sys::signal::SigSet>,
    reset_handlers: bool,
) -> ChildPlan<'a> {
    ChildPlan {
        argv: prep.argv.as_ptr(),
        envp: prep.envp.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
        candidates: &prep.candidates,
        cwd: prep.cwd.as_ref(),
        fds: fds.sources.map(|s| s.unwrap_or(-1)),
        pass_fds: &prep.pass_fds,
        close: &cmd.close_in_child,
        close_fds: cmd.close_fds,
        report,
        umask: cmd.umask.map(|m| m as libc::mode_t),
        reset_handlers,
        restore_signals: cmd.restore_signals,
        mask,
        setsid: cmd.new_session,
        pgid: cmd.process_group,
        rlimits: &prep.rlimits,
        groups: prep.groups.as_deref(),
        gid: cmd.gid,
        uid: cmd.uid,
        pdeathsig: cmd
            .parent_death_signal
            .map(|s| (s, std::process::id() as libc::pid_t)),
    }
}

/// After a vfork-style or forked child: its `report` (`Ok(None)`: it exec'd); on failure reap
/// it (unless the command keeps failed children) and build the error.
fn finish(
    cmd: &Command,
    prep: &Prepared,
    report: std::io::Result<Option<(Step, i32)>>,
    pid: libc::pid_t,
) -> Result<Started, SpawnError> {
    match report {
        // The handle opens a pidfd when it first needs one.
        Ok(None) => Ok(Started { pid }),
        Ok(Some((step, errno))) if cmd.keep_failed_child => {
            Err(step_error(prep, step, errno).with_pid(pid))
        }
        Ok(Some((step, errno))) => {
            let _ = sys::wait::waitpid_blocking(pid);
            Err(step_error(prep, step, errno))
        }
        Err(e) => {
            let _ = sys::wait::waitpid_blocking(pid);
            Err(SpawnError::new(Step::Spawn, e))
        }
    }
}

/// The error for `step` failing with `errno`, naming the path involved.
fn step_error(prep: &Prepared, step: Step, errno: i32) -> SpawnError {
    let err = SpawnError::from_errno(step, errno);
    match step {
        Step::Exec => err.with_path(prep.program_path()),
        Step::Chdir => match prep.cwd_path() {
            Some(cwd) => err.with_path(cwd),
            None => err,
        },
        _ => err,
    }
}
